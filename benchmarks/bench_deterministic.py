"""What `deterministic=true` costs on a CPU: ResNet-20 training at batch 128 on TensorFlow, with and without it.

    python benchmarks/bench_deterministic.py [--steps 10] [--repeats 2]

With `deterministic=true` and one CPU device, training/train.py enables TensorFlow's op determinism and
runs with one inter-op thread (each op still uses every core): with several, independent ops of a step
run concurrently and two identical runs end with different weights. Each configuration runs in its own
process (thread pools are fixed when TensorFlow starts) through the real engine on a fixed in-memory
batch; compile and warm-up steps are excluded. Prints images/s of each and the ratio, and whether two
deterministic processes produced identical weights.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 128


def _worker(deterministic: bool, steps: int) -> dict:
    """Runs in the subprocess: images/s of `steps` steps and a digest of the weights after them."""
    import numpy as np
    import tensorflow as tf

    import keras
    from keras_resnets.tasks.distribution import resolve_distribution
    from training.config import TrainConfig
    from training.engine_tf import TensorFlowEngine
    from training.train import _setup_determinism, _single_inter_op_thread

    config = TrainConfig(model="resnet20", xla=False, distribution="none", deterministic=deterministic)
    warning = _single_inter_op_thread(config, "tensorflow")  # What train_and_evaluate does first.
    if warning:
        raise SystemExit(warning)
    _setup_determinism(config, "tensorflow")
    engine = TensorFlowEngine(config, resolve_distribution("none"), 10, 32, np.full(3, 0.5, np.float32), np.full(3, 0.25, np.float32))
    rng = np.random.default_rng(0)
    batch = (tf.constant(rng.integers(0, 256, (BATCH, 32, 32, 3), dtype=np.uint8)), tf.constant(rng.integers(0, 10, BATCH).astype(np.int32)))
    engine.set_learning_rate(0.1)
    for _ in range(2):  # Trace and warm up.
        [float(v) for v in engine._train(batch)]
    start = time.perf_counter()
    for _ in range(steps):
        metrics = engine._train(batch)
    [float(v) for v in metrics]
    seconds = time.perf_counter() - start
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in engine.get_state())).hexdigest()[:16]
    return {"images_per_second": steps * BATCH / seconds, "weights": digest,
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(), "keras": keras.__version__}


def _run(deterministic: bool, steps: int) -> dict:
    env = dict(os.environ, KERAS_BACKEND="tensorflow", PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TF_NUM_INTEROP_THREADS", None)
    job = json.dumps({"deterministic": deterministic, "steps": steps})
    process = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", job], capture_output=True, text=True, env=env)
    lines = [line for line in process.stdout.splitlines() if line.startswith("RESULT ")]
    if process.returncode or not lines:
        raise SystemExit(f"worker failed: {(process.stderr.strip().splitlines() or ['no output'])[-1]}")
    return json.loads(lines[-1][7:])


def main() -> None:
    """Measure both configurations alternately and print images/s, the ratio and the weight digests."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per process")
    parser.add_argument("--repeats", type=int, default=2, help="processes per configuration (alternating)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(_worker(**json.loads(args.worker))), flush=True)
        return
    results = {False: [], True: []}
    for _ in range(args.repeats):
        for deterministic in (False, True):  # Alternating, so a change in machine load hits both.
            results[deterministic].append(_run(deterministic, args.steps))
    print(f"ResNet-20, batch {BATCH}, TensorFlow on CPU ({os.cpu_count()} cores), {args.steps} steps per process:")
    for deterministic, label in ((False, "default"), (True, "deterministic=true")):
        runs = results[deterministic]
        speeds = ", ".join(f"{r['images_per_second']:.1f}" for r in runs)
        print(f"  {label:<20} images/s {speeds}  inter-op threads {runs[0]['inter_op_threads']}  weights {[r['weights'] for r in runs]}")
    best = {d: max(r["images_per_second"] for r in results[d]) for d in results}
    print(f"deterministic / default images/s (best of each): {best[True] / best[False]:.2f}x")
    print(f"identical weights across processes: default {len({r['weights'] for r in results[False]}) == 1}, "
          f"deterministic {len({r['weights'] for r in results[True]}) == 1}")


if __name__ == "__main__":
    main()
