"""Inference and training throughput of zoo models on the current backend (``keras-resnets benchmark``).

Each configuration (model, mode, batch size, precision) is built with random weights, run for `warmup`
steps that are not timed (tracing, XLA compilation, allocator warm-up; the first one's duration is
reported as ``compile_s``), then timed over `steps` single steps whose median gives images/s. Each
timed call returns numpy values, so asynchronous devices have finished the step when the clock stops.
:func:`describe_machine` records what the numbers were measured on.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from keras_resnets.models.registry import get_model, model_entry

MODES = ("inference", "inference_folded", "train")
# What `keras-resnets benchmark` runs unless asked: the folded inference row is an extra.
DEFAULT_MODES = ("inference", "train")
PRECISIONS = ("float32", "bfloat16")
# The Keras dtype policy each precision runs under; bfloat16 keeps float32 variables (mixed precision).
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


@dataclasses.dataclass
class BenchmarkRow:
    """One measured configuration; ``error`` is set (and the speeds are None) when it could not run."""

    model: str
    mode: str
    batch_size: int
    precision: str
    input_size: List[int]
    backend: str
    steps: int
    warmup: int
    images_per_second: Optional[float] = None
    step_ms_median: Optional[float] = None
    step_ms_min: Optional[float] = None
    compile_s: Optional[float] = None
    error: Optional[str] = None

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return dataclasses.asdict(self)


def _read_cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass  # Not Linux: fall back to what the platform module knows.
    return platform.processor() or platform.machine()


def describe_machine() -> Dict[str, object]:
    """CPU model, cores, accelerators, backend and library versions of this process."""
    import keras

    backend = keras.backend.backend()
    versions = {"python": platform.python_version(), "keras": keras.__version__, "numpy": np.__version__}
    accelerators: List[str] = []
    if backend == "tensorflow":
        import tensorflow as tf

        versions["tensorflow"] = tf.__version__
        accelerators = [d.name for d in tf.config.list_physical_devices() if d.device_type != "CPU"]
    elif backend == "jax":
        import jax

        versions["jax"] = jax.__version__
        accelerators = [str(d) for d in jax.devices() if d.platform != "cpu"]
    elif backend == "torch":
        import torch

        versions["torch"] = torch.__version__
        if torch.cuda.is_available():
            accelerators = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": _read_cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": usable,
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "accelerators": accelerators,
        "platform": platform.platform(),
        "backend": backend,
        "versions": versions,
    }


def time_steps(step: Callable[[], object], steps: int, warmup: int):
    """``(seconds of each timed step, seconds of the first warm-up step)``; warm-up steps are not timed."""
    compile_s = None
    for index in range(warmup):
        start = time.perf_counter()
        step()
        if index == 0:
            compile_s = time.perf_counter() - start
    timings = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        timings.append(time.perf_counter() - start)
    return timings, compile_s


def _check_int(argument: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{argument}` must be an integer >= {minimum}. Received: {argument}={value!r}")
    return value


def _check_choices(argument: str, values, accepted) -> List[str]:
    values = [values] if isinstance(values, str) else list(values)
    bad = [v for v in values if v not in accepted]
    if not values or bad:
        raise ValueError(f"`{argument}` must be a non-empty list of {tuple(accepted)}. Received: {argument}={values!r}")
    return values


def build_network(model: str, mode: str, input_size: Sequence[int]):
    """The registry model `model` with random weights and logits out, as `mode` times it.

    ``inference_folded`` is the same network with every BatchNormalization folded into the convolution
    before it (:func:`keras_resnets.fold_batch_norm`): what an exported, inference-only model runs.
    """
    from keras_resnets.models.folding import fold_batch_norm  # Imports Keras: only when a row runs.

    network = get_model(model, input_shape=(*input_size, 3), classifier_activation=None)
    return fold_batch_norm(network) if mode == "inference_folded" else network


def run_configuration(model: str, mode: str, batch_size: int, precision: str, *, steps: int = 10, warmup: int = 2,
                      input_size: Optional[Sequence[int]] = None, jit_compile="auto") -> BenchmarkRow:
    """Build `model` under `precision` and time `mode` steps on random data of `batch_size` images."""
    import keras

    spec = model_entry(model).spec
    height, width = input_size or spec.default_input_shape[:2]
    row = BenchmarkRow(model_entry(model).name, mode, batch_size, precision, [int(height), int(width)],
                       keras.backend.backend(), steps, warmup)
    previous_policy = keras.config.dtype_policy()
    rng = np.random.default_rng(0)
    images = rng.normal(size=(batch_size, height, width, 3)).astype("float32")
    labels = rng.integers(0, spec.default_classes, size=(batch_size,)).astype("int32")
    try:
        keras.config.set_dtype_policy(POLICIES[precision])
        keras.backend.clear_session()
        network = build_network(model, mode, (height, width))
        if mode in ("inference", "inference_folded"):
            network.compile(jit_compile=jit_compile)

            def step():
                return network.predict_on_batch(images)
        else:
            network.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                            keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=jit_compile)

            def step():
                return network.train_on_batch(images, labels)
        timings, row.compile_s = time_steps(step, steps, warmup)
    except Exception as error:  # noqa: BLE001 - an unsupported precision/op on this device is a result, not a crash.
        row.error = f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
        return row
    finally:
        keras.config.set_dtype_policy(previous_policy)
    median = statistics.median(timings)
    row.step_ms_median = round(1000.0 * median, 3)
    row.step_ms_min = round(1000.0 * min(timings), 3)
    row.images_per_second = round(batch_size / median, 2)
    row.compile_s = None if row.compile_s is None else round(row.compile_s, 3)
    return row


def benchmark(models: Sequence[str], *, batch_sizes: Sequence[int] = (32,), precisions: Sequence[str] = ("float32",),
              modes: Sequence[str] = DEFAULT_MODES, steps: int = 10, warmup: int = 2,
              input_size: Optional[Sequence[int]] = None, jit_compile="auto",
              progress: Optional[Callable[[BenchmarkRow], None]] = None) -> List[BenchmarkRow]:
    """One :class:`BenchmarkRow` per (model, mode, batch size, precision), in that nesting order.

    Args:
        models: registry names.
        batch_sizes: images per step.
        precisions: "float32" and/or "bfloat16" (mixed precision: bfloat16 compute, float32 variables).
        modes: any of "inference" (``predict_on_batch``), "inference_folded" (the same with BatchNorm
            folded into the convolutions, see :func:`build_network`) and "train" (``train_on_batch``,
            SGD with momentum).
        steps: timed steps per configuration (the median is reported).
        warmup: untimed steps first (>= 1, so tracing and compilation are excluded).
        input_size: (height, width); default each model's default input size.
        jit_compile: passed to ``Model.compile`` ("auto", True or False).
        progress: called with each row as soon as it is measured.
    """
    models = [models] if isinstance(models, str) else list(models)
    if not models:
        raise ValueError(f"`models` must name at least one registered model. Received: models={models!r}")
    for name in models:
        model_entry(name)  # Fails early, listing the registered names.
    modes = _check_choices("modes", modes, MODES)
    precisions = _check_choices("precisions", precisions, PRECISIONS)
    batch_sizes = [batch_sizes] if isinstance(batch_sizes, int) else list(batch_sizes)
    if not batch_sizes:
        raise ValueError(f"`batch_sizes` must list at least one batch size. Received: batch_sizes={batch_sizes!r}")
    for size in batch_sizes:
        _check_int("batch_sizes", size, 1)
    _check_int("steps", steps, 1)
    _check_int("warmup", warmup, 1)
    if input_size is not None:
        input_size = tuple(input_size)
        if len(input_size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in input_size):
            raise ValueError(f"`input_size` must be (height, width) positive integers. Received: input_size={input_size!r}")
    rows = []
    for name in models:
        for mode in modes:
            for batch_size in batch_sizes:
                for precision in precisions:
                    row = run_configuration(name, mode, batch_size, precision, steps=steps, warmup=warmup,
                                            input_size=input_size, jit_compile=jit_compile)
                    rows.append(row)
                    if progress is not None:
                        progress(row)
    return rows


def format_machine(machine: Dict[str, object]) -> str:
    """One line describing the machine of :func:`describe_machine`."""
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    accelerators = ", ".join(machine["accelerators"]) or "none"
    return (f"{machine['cpu']}, {machine['cpu_cores_usable']}/{machine['cpu_cores']} cores usable, load "
            f"{machine['load_average_1min']}, accelerators: {accelerators}; backend {machine['backend']}; {versions}")


def format_table(rows: Sequence[BenchmarkRow]) -> str:
    """A Markdown table of the rows (images/s, median and fastest step, first-step compile time)."""
    lines = ["| model | mode | batch | precision | input | images/s | step ms (median) | step ms (min) | compile s |",
             "|---|---|---:|---|---|---:|---:|---:|---:|"]
    for row in rows:
        size = "x".join(str(s) for s in row.input_size)
        if row.error:
            lines.append(f"| {row.model} | {row.mode} | {row.batch_size} | {row.precision} | {size} | "
                         f"not run: {row.error} | | | |")
        else:
            lines.append(f"| {row.model} | {row.mode} | {row.batch_size} | {row.precision} | {size} | "
                         f"{row.images_per_second:.1f} | {row.step_ms_median:.1f} | {row.step_ms_min:.1f} | "
                         f"{row.compile_s:.1f} |")
    return "\n".join(lines)
