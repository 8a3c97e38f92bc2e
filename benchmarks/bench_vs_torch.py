"""CIFAR ResNet training throughput against a PyTorch reference, measured side by side in one run.

    python benchmarks/bench_vs_torch.py [--models resnet20 resnet56] [--rounds 3] [--steps 20]
                                        [--torch-python /path/to/python-with-torch] [--configs ...]
                                        [--onednn-breakdown]

The reference is an akamaster-style CIFAR ResNet written here in PyTorch (3x3 stem, three stages of
basic blocks, option-A shortcuts: stride-2 subsampling plus zero channels), trained with SGD
(momentum 0.9, weight decay 1e-4) at batch 128 and float32, on CPU, the way
github.com/akamaster/pytorch_resnet_cifar10 trains it. PyTorch is not a dependency of this project:
the reference runs in its own process under ``--torch-python`` (default: this Python when it has
torch); without one the script prints "torch not installed" and compares the engines only.

Every measurement runs in a fresh subprocess (one framework per process). Rounds are interleaved
(round 1 runs every configuration once, then round 2, ...) and the median images/s over rounds is
kept, so background load on a shared machine hits every configuration alike. Compile and two warm-up
steps (one chunk for the fast engine) are excluded. Configurations:

  torch         the PyTorch reference, float32
  torch_bf16    the same under ``torch.autocast("cpu", torch.bfloat16)`` (only with --bf16)
  torch_cl      the same model and step in PyTorch's channels-last layout (NHWC, as this project's
                engines use), float32: PyTorch's fastest CPU layout here, a second, harder reference
  tf            training/engine_tf.py (the TensorFlow engine) as ``python -m training`` runs it on a CPU:
                XLA off, oneDNN kernels on (``TF_ENABLE_ONEDNN_OPTS=1`` unless --env sets it), fused BN
  tf_keras_bn   the same with Keras's own BatchNormalization ops (``fused_batch_norm=False``)
  tf_xla        the same with XLA (jit_compile=True)
  tf_bf16       the TF engine under Keras's mixed_bfloat16 policy (only with --bf16)
  jax           training/engine_jax.py: one jitted step per dispatch, batch fed from the host;
                convolution weight gradients over slices of the batch (training/chunked_convolution.py)
  jax_unchunked the same with whole-batch weight gradients (``cpu_conv_chunk_bytes=0``)
  jax_cpu_devices the JAX engine data-parallel over one XLA host device per core
                (``XLA_FLAGS=--xla_force_host_platform_device_count=N``, ``distribution=jax_data_parallel``;
                the same math as one device: BatchNorm statistics still cover the whole batch)
  jax_fast      training/engine_jax_fast.py: data on the device, augmentation in the step,
                --chunk steps per dispatch (lax.scan)
  jax_fast_bf16 the same with mixed_precision=bfloat16 (only with --bf16)

``--onednn-breakdown`` instead runs each configuration once with oneDNN's verbose log on
(``ONEDNN_VERBOSE=1``) and prints, per primitive kind (convolution forward, backward data, backward
weights, reorder, batch normalization...), the milliseconds per timed step spent inside oneDNN,
beside the step's wall time: where a TensorFlow or PyTorch step goes (JAX's XLA:CPU calls oneDNN only
for matrix products, the ``gemm_api`` row). TensorFlow runs independent primitives at once (a layer's two gradients), so its sum may
exceed the wall time; the verbose log itself slows every configuration a little.

The last lines print each configuration's median images/s over the reference's, and the median of the
rounds' own ratios ("paired", less affected by a machine whose speed drifts): float32 rows against
``torch`` (and against ``torch_cl`` too when it ran), bfloat16 rows against ``torch_bf16`` (never a
bfloat16 figure against a float32 one).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 128
TIMED_START, TIMED_END = "TIMED_REGION_START", "TIMED_REGION_END"
CONFIGS = ("torch", "torch_bf16", "torch_cl", "tf", "tf_keras_bn", "tf_xla", "tf_bf16", "jax", "jax_unchunked", "jax_cpu_devices", "jax_fast",
           "jax_fast_bf16")
_BACKENDS = {
    "tf": "tensorflow", "tf_keras_bn": "tensorflow", "tf_xla": "tensorflow", "tf_bf16": "tensorflow",
    "jax": "jax", "jax_unchunked": "jax", "jax_cpu_devices": "jax", "jax_fast": "jax", "jax_fast_bf16": "jax",
}


# ----------------------------------------------------------------------------------------------------
# Workers (each runs in its own process)


def _mark(line: str) -> None:
    """Write a marker line to stdout, in order with oneDNN's verbose log (which flushes every line)."""
    print(line, flush=True)


def _torch_worker(model: str, steps: int, bf16: bool, channels_last: bool = False) -> dict:
    """images/s of the PyTorch reference (akamaster-style CIFAR ResNet, SGD, batch 128) on CPU.

    `bf16`: under CPU bfloat16 autocast; `channels_last`: weights and activations in NHWC memory order.
    """
    import torch
    from torch import nn
    from torch.nn import functional

    class BasicBlock(nn.Module):
        def __init__(self, in_planes, planes, stride, residual):
            super().__init__()
            self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.residual = residual
            # Option A: a parameter-free shortcut; the extra channels are zeros, split over both sides.
            self.extra = (planes - in_planes) // 2 if (stride != 1 or in_planes != planes) else None

        def forward(self, x):
            out = self.bn2(self.conv2(functional.relu(self.bn1(self.conv1(x)))))
            if self.residual:
                shortcut = x if self.extra is None else functional.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.extra, self.extra))
                out = out + shortcut
            return functional.relu(out)

    class CifarResNet(nn.Module):
        def __init__(self, depth, residual, classes=10):
            super().__init__()
            blocks = (depth - 2) // 6
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
            layers, in_planes = [], 16
            for stage, planes in enumerate((16, 32, 64)):
                for index in range(blocks):
                    stride = 2 if stage > 0 and index == 0 else 1
                    layers.append(BasicBlock(in_planes, planes, stride, residual))
                    in_planes = planes
            self.blocks = nn.Sequential(*layers)
            self.fc = nn.Linear(64, classes)
            for module in self.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear)):
                    nn.init.kaiming_normal_(module.weight)

        def forward(self, x):
            x = self.blocks(self.stem(x))
            return self.fc(functional.adaptive_avg_pool2d(x, 1).flatten(1))

    torch.manual_seed(0)
    depth = int(model.lstrip("resnetplain"))
    net = CifarResNet(depth, residual=model.startswith("resnet")).train()
    layout = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=layout)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    criterion = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (BATCH, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (BATCH,), generator=generator)
    mean = torch.tensor([0.49, 0.48, 0.45]).view(1, 3, 1, 1)
    std = torch.tensor([0.25, 0.24, 0.26]).view(1, 3, 1, 1)

    def step():
        inputs = ((images.float() / 255.0 - mean) / std).contiguous(memory_format=layout)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = criterion(net(inputs), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    for _ in range(2):
        step()
    _mark(TIMED_START)
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    float(loss)
    seconds = time.perf_counter() - start
    _mark(TIMED_END)
    return {"images_per_second": steps * BATCH / seconds, "timed_steps": steps, "threads": torch.get_num_threads(),
            "torch": torch.__version__}


def _engine_worker(config_name: str, model: str, steps: int, chunk: int) -> dict:
    """images/s of one of this project's training engines on random CIFAR-shaped data."""
    import numpy as np

    from keras_resnets.tasks.distribution import resolve_distribution
    from training.config import TrainConfig

    backend = _BACKENDS[config_name]
    precision = "bfloat16" if config_name.endswith("bf16") else "float32"
    xla = True if config_name == "tf_xla" else (False if config_name.startswith("tf") else None)
    distribution = "jax_data_parallel" if config_name == "jax_cpu_devices" else "none"
    config = TrainConfig(model=model, xla=xla, distribution=distribution, mixed_precision=precision,
                         fused_batch_norm=config_name != "tf_keras_bn")
    if config_name == "jax_unchunked":
        config.cpu_conv_chunk_bytes = 0
    if precision == "bfloat16":
        import keras

        keras.config.set_dtype_policy("mixed_bfloat16")
    dist = resolve_distribution(distribution)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (BATCH, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, BATCH).astype(np.int32)
    mean, std = np.full(3, 0.5, np.float32), np.full(3, 0.25, np.float32)
    steps_per_call = 1
    if backend == "tensorflow":
        import tensorflow as tf

        from training.engine_tf import TensorFlowEngine

        engine = TensorFlowEngine(config, dist, 10, 32, mean, std)
        engine.set_learning_rate(0.1)
        batch = (tf.constant(images), tf.constant(labels))

        def call():
            return engine._train(batch)
    elif config_name in ("jax", "jax_unchunked", "jax_cpu_devices"):
        import jax

        from training.engine_jax import JaxEngine

        engine = JaxEngine(config, dist, 10, 32, mean, std)
        batch = (engine._put(images), engine._put(labels))
        lr = jax.numpy.float32(0.1)

        def call():
            engine.state, metrics = engine._train(engine.state, *batch, lr)
            return metrics
    else:
        from keras_resnets.data import input_pipeline
        from training.engine_jax_fast import FastJaxEngine

        engine = FastJaxEngine(config, dist, 10, 32, mean, std)
        # A device-resident training set of 40 batches; order and augmentation drawn as in training.
        data = rng.integers(0, 256, (40 * BATCH, 32, 32, 3), dtype=np.uint8)
        split = input_pipeline.DataSplit(len(data), labels=rng.integers(0, 10, len(data)).astype(np.int32), images=data)
        pipeline = input_pipeline.NumpyPipeline(split, input_pipeline.PipelineOptions(), BATCH)
        steps_per_call = chunk
        plan = engine.plan_chunk(pipeline, epoch=0, start_step=0, num_steps=chunk, learning_rates=np.full(chunk, 0.1, np.float32))

        def call():
            return engine.run_chunk(pipeline, plan)[-1]

    for _ in range(2 if steps_per_call == 1 else 1):  # Compile and warm up (a chunk warms up by itself).
        [float(v) for v in call()]
    calls = max(1, -(-steps // steps_per_call))
    _mark(TIMED_START)
    start = time.perf_counter()
    for _ in range(calls):
        metrics = call()
    [float(v) for v in metrics]
    seconds = time.perf_counter() - start
    _mark(TIMED_END)
    return {"images_per_second": calls * steps_per_call * BATCH / seconds, "timed_steps": calls * steps_per_call}


# ----------------------------------------------------------------------------------------------------
# Driver


def _torch_python(requested):
    """A Python executable that can import torch, or None."""
    candidates = [requested] if requested else [sys.executable]
    for python in candidates:
        probe = subprocess.run([python, "-c", "import torch"], capture_output=True)
        if probe.returncode == 0:
            return python
        if requested:
            raise SystemExit(f"--torch-python {requested!r} cannot import torch: {probe.stderr.decode().strip()[-300:]}")
    return None


def _cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as handle:
            flags = handle.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _references_for(config: str) -> list:
    """The PyTorch rows a configuration is compared with: those of the same precision, the main one first."""
    return ["torch_bf16"] if config.endswith("bf16") else ["torch", "torch_cl"]


def onednn_breakdown(stdout: str, timed_steps: int) -> dict:
    """{primitive kind: (ms per step, calls per step)} from a worker's stdout with ``ONEDNN_VERBOSE=1``.

    Only the primitives executed between the timed-region markers count. A kind is the primitive and
    its propagation ("convolution backward_weights"); reorders are "reorder".
    """
    lines = stdout.splitlines()
    if TIMED_START not in lines or TIMED_END not in lines:
        raise ValueError("The worker's output has no timed-region markers")
    totals, calls = collections.Counter(), collections.Counter()
    for line in lines[lines.index(TIMED_START) + 1 : lines.index(TIMED_END)]:
        fields = line.split(",")
        if not fields[0].startswith("onednn_verbose") or "exec" not in fields[:4]:
            continue
        at = fields.index("exec")
        kind, propagation = fields[at + 2], fields[at + 4]
        name = kind if propagation in ("undef", "") else f"{kind} {propagation}"
        totals[name] += float(fields[-1])
        calls[name] += 1
    return {name: (totals[name] / timed_steps, calls[name] / timed_steps) for name, _ in totals.most_common()}


def _run(python, job, env_extra, onednn_verbose: bool = False) -> dict:
    backend = _BACKENDS.get(job["config"], "none")
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="3", **env_extra)
    if onednn_verbose:
        env["ONEDNN_VERBOSE"] = "1"
    if backend != "none":
        env["KERAS_BACKEND"] = backend
    if job["config"] == "jax_cpu_devices":
        flag = f"--xla_force_host_platform_device_count={os.cpu_count()}"
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flag}".strip()
    process = subprocess.run([python, os.path.abspath(__file__), "--worker", json.dumps(job)],
                             capture_output=True, text=True, env=env)
    lines = [line for line in process.stdout.splitlines() if line.startswith("RESULT ")]
    if process.returncode or not lines:
        return {"error": (process.stderr.strip().splitlines() or ["no output"])[-1]}
    result = json.loads(lines[-1][7:])
    if onednn_verbose:
        result["onednn"] = onednn_breakdown(process.stdout, result["timed_steps"])
    return result


def print_onednn_breakdown(models, configs, python_for, args, env_extra) -> None:
    """Run each (model, configuration) once under oneDNN's verbose log and print where its step goes."""
    for model in models:
        results = {}
        for config in configs:
            job = {"config": config, "model": model, "steps": args.steps, "chunk": args.chunk}
            results[config] = _run(python_for(config), job, env_extra, onednn_verbose=True)
        print(f"\n{model}: milliseconds per training step inside oneDNN primitives (calls per step)")
        kinds = list(dict.fromkeys(k for r in results.values() for k in r.get("onednn", {})))
        print(f"  {'':38s}" + "".join(f"{config:>20s}" for config in configs))
        for kind in kinds:
            cells = []
            for config in configs:
                ms, count = results[config].get("onednn", {}).get(kind, (0.0, 0))
                cells.append(f"{ms:10.1f} ({count:5.0f})" if count else f"{'-':>18s}")
            print(f"  {kind:38s}" + "".join(f"{cell:>20s}" for cell in cells))
        sums = [sum(ms for ms, _ in r.get("onednn", {}).values()) for r in results.values()]
        print(f"  {'sum of oneDNN primitives':38s}" + "".join(f"{total:18.1f}  " for total in sums))
        walls = [f"{1000 * BATCH / r['images_per_second']:18.1f}  " if "error" not in r else f"{r['error'][:18]:>18s}  "
                 for r in results.values()]
        print(f"  {'wall time of a step':38s}" + "".join(walls))


def main() -> None:
    """Run the interleaved rounds and print the medians and the ratios against PyTorch."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet56"])
    parser.add_argument("--configs", nargs="+", default=["torch", "tf", "tf_xla", "jax", "jax_fast"], choices=CONFIGS)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (the median is kept)")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per measurement")
    parser.add_argument("--chunk", type=int, default=10, help="steps per dispatch of jax_fast")
    parser.add_argument("--bf16", action="store_true", help="add torch_bf16, tf_bf16 and jax_fast_bf16 rows")
    parser.add_argument("--torch-python", default=None, help="a Python with torch installed (default: this one)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="environment for every worker (e.g. thread settings), repeatable")
    parser.add_argument("--onednn-breakdown", action="store_true",
                        help="run each configuration once under ONEDNN_VERBOSE=1 and print where its step goes")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        job = json.loads(args.worker)
        if job["config"].startswith("torch"):
            result = _torch_worker(job["model"], job["steps"], bf16=job["config"] == "torch_bf16",
                                   channels_last=job["config"] == "torch_cl")
        else:
            from training import use_onednn_by_default

            use_onednn_by_default()  # As `python -m training` does, before TensorFlow loads; --env wins.
            result = _engine_worker(job["config"], job["model"], job["steps"], job["chunk"])
        print("RESULT " + json.dumps(result), flush=True)
        return

    configs = list(dict.fromkeys(args.configs + (["torch_bf16", "tf_bf16", "jax_fast_bf16"] if args.bf16 else [])))
    torch_python = _torch_python(args.torch_python) if any(c.startswith("torch") for c in configs) else None
    if torch_python is None:
        configs = [c for c in configs if not c.startswith("torch")]
    env_extra = dict(item.split("=", 1) for item in args.env)
    print(f"{os.cpu_count()} CPU(s); batch {BATCH}; {args.steps} timed steps; {args.rounds} interleaved rounds; "
          f"AVX-512 BF16: {'yes' if _cpu_has_bf16() else 'no'}; env {env_extra or '-'}", flush=True)
    if torch_python is None:
        print("torch not installed: no PyTorch reference (pass --torch-python PATH to a Python that has it)")

    def python_for(config):
        return torch_python if config.startswith("torch") else sys.executable

    if args.onednn_breakdown:
        print_onednn_breakdown(args.models, configs, python_for, args, env_extra)
        return
    samples = {(m, c): [] for m in args.models for c in configs}
    for round_index in range(args.rounds):
        for model in args.models:
            for config in configs:
                job = {"config": config, "model": model, "steps": args.steps, "chunk": args.chunk}
                result = _run(python_for(config), job, env_extra)
                shown = f"{result['images_per_second']:8.1f} images/s" if "error" not in result else result["error"]
                load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
                print(f"round {round_index + 1}  {model:9s} {config:14s} {shown}   (load average {load:.1f})", flush=True)
                if "error" not in result:
                    samples[(model, config)].append((round_index, result["images_per_second"]))
    print("\nmedian images/s" + ("" if torch_python is None else
                                  " and ratio to torch (same run; 'paired': median of the rounds' own ratios)"))
    for model in args.models:
        for config in configs:
            values = dict(samples[(model, config)])
            if not values:
                print(f"  {model:9s} {config:14s} failed")
                continue
            median = statistics.median(values.values())
            ratio = ""
            for reference_config in _references_for(config):
                reference = dict(samples.get((model, reference_config)) or [])
                if not reference or reference_config == config:
                    continue
                ratio += f"  {median / statistics.median(reference.values()):5.2f}x {reference_config}"
                paired = paired_ratio(values, reference)
                ratio += f" (paired {paired:5.2f}x)" if paired is not None else ""
            print(f"  {model:9s} {config:14s} {median:8.1f}{ratio}")


def paired_ratio(values: dict, reference: dict):
    """Median over rounds of (this round's images/s / the reference's in the same round), or None.

    The machine's speed drifts between rounds by more than the differences measured; a ratio taken
    within one round, where both ran minutes apart at most, cancels most of that drift.
    """
    ratios = [values[r] / reference[r] for r in values if r in reference and reference[r] > 0]
    return statistics.median(ratios) if ratios else None


if __name__ == "__main__":
    main()
