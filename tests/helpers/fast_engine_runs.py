"""Runs tiny training jobs on the JAX backend in one fresh process (the tests themselves may run on TensorFlow).

Usage: KERAS_BACKEND=jax python tests/helpers/fast_engine_runs.py MODE JSON. Prints one line ``RESULT ...``.
Modes:
  runs     JSON is a list of ``{"workdir": ..., "config": {TrainConfig fields}}`` run in order with
           ``train_and_evaluate``; prints the JSON-safe part of each run's metrics.
  engines  JSON is ``{"steps", "steps_per_epoch", "log_every_steps", "resume_at"}``: the standard and the
           fast JAX engines, from the same initial weights, train `steps` steps on random in-memory
           images (lr 0.05); the fast engine then restarts from its state saved at `resume_at`.
           Prints the per-step metrics of each, the largest weight difference between the standard and
           fast engines, how far the weights moved, and whether the resumed engine ends bit-identical.
"""

import json
import sys

import numpy as np


def runs(jobs):
    from training.config import TrainConfig
    from training.train import train_and_evaluate

    results = []
    for job in jobs:
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in job["config"].items()}
        metrics = train_and_evaluate(TrainConfig(**fields), job["workdir"])
        results.append({k: metrics[k] for k in ("steps", "eval_error", "eval_loss", "weights_fingerprint")})
    return results


def train(engine, pipeline, steps_per_epoch, first, last):
    """Per-step metrics of steps [first, last) (global step numbers), epoch by epoch."""
    rows = []
    step = first
    while step < last:
        epoch, start = divmod(step, steps_per_epoch)
        for metrics in engine.train_steps(pipeline, epoch, steps_per_epoch, start):
            rows.append([float(v) for v in metrics])
            step += 1
            if step == last:
                break
    return rows


def engines(job):
    import keras

    from keras_resnets.data import input_pipeline
    from keras_resnets.tasks.distribution import resolve_distribution
    from training.config import TrainConfig
    from training.engine_jax import JaxEngine
    from training.engine_jax_fast import FastJaxEngine

    batch, spe, steps = 16, job["steps_per_epoch"], job["steps"]
    rng = np.random.default_rng(0)
    count = batch * spe + 5  # A remainder that no epoch uses.
    split = input_pipeline.DataSplit(count, labels=rng.integers(0, 10, count).astype(np.int32),
                                     images=rng.integers(0, 256, (count, 16, 16, 3), dtype=np.uint8))
    pipeline = input_pipeline.NumpyPipeline(split, input_pipeline.PipelineOptions(image_size=16, seed=7), batch)
    config = TrainConfig(model="resnet8", image_size=16, global_batch_size=batch, base_lr=0.05, lr_boundaries=(),
                         train_length=steps, log_every_steps=job["log_every_steps"], distribution="none",
                         fast_engine_loop=job.get("loop", "auto"))
    dist = resolve_distribution("none")
    mean, std = np.full(3, 0.5, np.float32), np.full(3, 0.25, np.float32)

    def make(cls):
        keras.utils.set_random_seed(1)
        engine = cls(config, dist, 10, 16, mean, std)
        engine.set_learning_rate(0.05)
        return engine

    standard, fast = make(JaxEngine), make(FastJaxEngine)
    initial = standard.get_state()
    fast.set_state(initial)
    standard_rows = train(standard, pipeline, spe, 0, steps)
    fast_rows = train(fast, pipeline, spe, 0, job["resume_at"])
    saved = fast.get_state()
    fast_rows += train(fast, pipeline, spe, job["resume_at"], steps)
    final_standard, final_fast = standard.get_state(), fast.get_state()
    # Resume: the saved (NumPy) state restored, with the engine's lr set as the loop would set it.
    fast.set_state(saved)
    fast.set_learning_rate(0.05)
    resumed_rows = train(fast, pipeline, spe, job["resume_at"], steps)
    final_resumed = fast.get_state()
    return {
        "standard_metrics": standard_rows,
        "fast_metrics": fast_rows,
        "resumed_metrics": resumed_rows,
        "max_weight_difference": max(float(np.max(np.abs(a - b))) for a, b in zip(final_standard, final_fast)),
        "weights_moved": max(float(np.max(np.abs(a - b))) for a, b in zip(initial, final_fast)),
        "fast_loop": fast.loop,
        "resumed_equal": all(np.array_equal(a, b) for a, b in zip(final_fast, final_resumed)),
    }


def main():
    mode, payload = sys.argv[1], json.loads(sys.argv[2])
    result = runs(payload) if mode == "runs" else engines(payload)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
