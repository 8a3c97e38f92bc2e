"""Training throughput on this machine: ResNet-20/56 at batch 128, TF and JAX, with and without XLA,
and the input pipelines alone; the pipeline must outrun training.

    python benchmarks/bench_training.py [--steps 5] [--models resnet20 resnet56] [--data-dir cifar10-jpeg]

Every training measurement runs in its own subprocess (one backend per process) through the real
training engines (training/engine_tf.py, training/engine_jax.py) on a fixed in-memory batch; compile and
warm-up steps are excluded. "JAX without XLA" runs the same step under ``jax.disable_jit()`` (op by op).
The pipelines are measured on real CIFAR-10 JPEGs (extracted from shared/ unless --data-dir is given):
tf.data from memory (what training uses for CIFAR), tf.data decoding JPEG files every epoch, and the
NumPy pipeline of JAX-only machines. The last lines print pipeline/training ratios (must be > 1).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 128


def _train_worker(backend: str, model: str, xla: bool, steps: int) -> dict:
    """Runs in the subprocess: images/s of `steps` training steps after warm-up."""
    from training import use_onednn_by_default

    use_onednn_by_default()  # As `python -m training` does, before TensorFlow loads.
    import numpy as np

    from keras_resnets.tasks.distribution import resolve_distribution
    from training.config import TrainConfig

    config = TrainConfig(model=model, xla=xla if backend == "tensorflow" else None, distribution="none")
    dist = resolve_distribution("none")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (BATCH, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, BATCH).astype(np.int32)
    mean, std = np.full(3, 0.5, np.float32), np.full(3, 0.25, np.float32)
    if backend == "tensorflow":
        import tensorflow as tf

        from training.engine_tf import TensorFlowEngine

        engine = TensorFlowEngine(config, dist, 10, 32, mean, std)
        batch = (tf.constant(images), tf.constant(labels))

        def step():
            return engine._train(batch)
    else:
        import contextlib

        import jax

        from training.engine_jax import JaxEngine

        engine = JaxEngine(config, dist, 10, 32, mean, std)
        batch = (engine._put(images), engine._put(labels))
        lr = jax.numpy.float32(0.1)
        context = contextlib.nullcontext if xla else jax.disable_jit

        def step():
            with context():
                engine.state, metrics = engine._train(engine.state, *batch, lr)
            return metrics

    engine.set_learning_rate(0.1)
    for _ in range(2):  # Compile and warm up.
        [float(v) for v in step()]
    start = time.perf_counter()
    for _ in range(steps):
        metrics = step()
    [float(v) for v in metrics]  # Wait for the last step.
    seconds = time.perf_counter() - start
    return {"images_per_second": steps * BATCH / seconds, "seconds_per_step": seconds / steps}


def _pipeline_worker(kind: str, data_dir: str, batches: int) -> dict:
    """Runs in the subprocess: images/s of a training input pipeline (augmentation included)."""
    from keras_resnets.data import input_pipeline

    in_memory = kind != "tf_data_files"
    data = input_pipeline.load_data("image_folder", data_dir=data_dir, image_size=32, in_memory=in_memory)
    options = input_pipeline.PipelineOptions(augmentation="cifar", image_size=32)
    steps = data.train.num_examples // BATCH
    if kind == "numpy":
        pipeline = input_pipeline.NumpyPipeline(data.train, options, BATCH)
        iterator = pipeline.train_batches(0, steps)
    else:
        pipeline = input_pipeline.TfDataPipeline(data.train, options, BATCH)
        iterator = iter(pipeline.train_dataset(0, steps))
    next(iterator)  # Start-up (thread pools, first batch) excluded.
    count = min(batches, steps - 1)
    start = time.perf_counter()
    for _ in range(count):
        next(iterator)
    return {"images_per_second": count * BATCH / (time.perf_counter() - start)}


def _run(args, backend) -> dict:
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(args)],
                             capture_output=True, text=True, env=env)
    lines = [line for line in process.stdout.splitlines() if line.startswith("RESULT ")]
    if process.returncode or not lines:
        return {"error": (process.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(lines[-1][7:])


def _extract_subset(archive: str, target: str, per_class: int) -> str:
    """Extract the first `per_class` training images of each class (and 10 test images) from the tarball."""
    counts = {}
    with tarfile.open(archive) as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 4:
                continue
            key = (parts[1], parts[2])
            limit = per_class if parts[1] == "train" else 10
            if counts.get(key, 0) < limit:
                counts[key] = counts.get(key, 0) + 1
                tar.extract(member, target, filter="data")
    return os.path.join(target, "cifar10-jpeg")


def main() -> None:
    """Run every measurement and print the table and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per configuration")
    parser.add_argument("--models", nargs="+", default=["resnet20", "resnet56"])
    parser.add_argument("--data-dir", default=None, help="an extracted cifar10-jpeg folder")
    parser.add_argument("--per-class", type=int, default=1000, help="training JPEGs per class to extract")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        job = json.loads(args.worker)
        result = _train_worker(**job["train"]) if "train" in job else _pipeline_worker(**job["pipeline"])
        print("RESULT " + json.dumps(result), flush=True)
        return

    print(f"{os.cpu_count()} CPU(s); batch {BATCH}; {args.steps} timed steps after 2 warm-up steps", flush=True)
    training = {}
    for model in args.models:
        for backend in ("tensorflow", "jax"):
            for xla in (True, False):
                steps = args.steps if (backend == "tensorflow" or xla) else max(1, args.steps // 5)
                job = {"train": {"backend": backend, "model": model, "xla": xla, "steps": steps}}
                result = _run(job, backend)
                training[(model, backend, xla)] = result
                shown = f"{result['images_per_second']:8.1f} images/s" if "error" not in result else result["error"]
                print(f"train  {model:9s} {backend:10s} xla={'on ' if xla else 'off'}  {shown}", flush=True)

    with tempfile.TemporaryDirectory() as scratch:
        data_dir = args.data_dir
        if data_dir is None:
            shared = os.environ.get("KERAS_RESNETS_SHARED_DIR", os.path.join(os.path.dirname(REPO_ROOT), "shared"))
            data_dir = _extract_subset(os.path.join(shared, "data", "cifar10-jpeg.tar.gz"), scratch, args.per_class)
        pipelines = {}
        for kind, backend in (("tf_data_memory", "tensorflow"), ("tf_data_files", "tensorflow"), ("numpy", "jax")):
            pipelines[kind] = _run({"pipeline": {"kind": kind, "data_dir": data_dir, "batches": 60}}, backend)
            result = pipelines[kind]
            shown = f"{result['images_per_second']:8.1f} images/s" if "error" not in result else result["error"]
            print(f"input  {kind:16s} {shown}", flush=True)

    fastest = {}
    for (model, backend, xla), result in training.items():
        if "error" not in result:
            fastest[backend] = max(fastest.get(backend, 0.0), result["images_per_second"])
    for kind, backend in (("tf_data_memory", "tensorflow"), ("numpy", "jax")):
        if backend in fastest and "error" not in pipelines[kind]:
            ratio = pipelines[kind]["images_per_second"] / fastest[backend]
            print(f"ratio  {kind} / fastest {backend} training = {ratio:.1f}x "
                  f"({'pipeline is not the bottleneck' if ratio > 1 else 'PIPELINE IS THE BOTTLENECK'})")


if __name__ == "__main__":
    main()
