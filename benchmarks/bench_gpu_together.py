"""Aggregate training throughput of the paper's Figure 6 networks trained together on one accelerator (JAX).

    KERAS_BACKEND=jax python benchmarks/bench_gpu_together.py [--precision bfloat16] [--chunk 390]
        [--chunks 3] [--seeds 1] [--models plain20 plain32 plain44 plain56 resnet20 resnet32 resnet44 resnet56 resnet110]

Every model gets a fast JAX engine (training/engine_jax_fast.py): the training set (random
CIFAR-shaped uint8 images, 50,000 by default) sits on the device once and is shared by all models;
each dispatch runs --chunk steps of one model, with its own data order and augmentation drawn from
its own seed. Three measurements, compile and one warm-up chunk per model excluded:

  alone     each model by itself (dispatch, wait): its images/s and the wall time of --schedule steps;
  together  one chunk of every model dispatched back to back, then one wait: the device never
            waits for the host between models; aggregate images/s over all models;
  seeds     with --seeds N > 1, each architecture trains N seeds at once in one program (jax.vmap
            over the weights; the batches differ per seed); aggregate images/s.

It prints, per mode, the aggregate images/s and the projected wall time of every model's full
schedule (--schedule steps, 64,000 in the paper; evaluation passes not included), and the speed-up
of "together" over training the models one after another. On CPU, try a tiny setting:
``--models resnet8 plain8 --batch 16 --image-size 16 --examples 256 --chunk 4 --chunks 2 --seeds 2``.
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import keras
import numpy as np

from keras_resnets.data import input_pipeline
from keras_resnets.tasks.distribution import resolve_distribution
from training.config import TrainConfig
from training.engine_jax_fast import FastJaxEngine

FIGURE6 = ["plain20", "plain32", "plain44", "plain56", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110"]


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:6.2f} h"


class Member:
    """One model being benchmarked: its engine(s), pipeline(s) and the chunk plans of its seeds."""

    def __init__(self, model, args, split, seeds):
        config = TrainConfig(model=model, image_size=args.image_size, global_batch_size=args.batch,
                             log_every_steps=args.chunk, distribution="none", mixed_precision=args.precision)
        dist = resolve_distribution("none")
        mean, std = np.full(3, 0.47, np.float32), np.full(3, 0.25, np.float32)
        self.model, self.seeds, self.steps = model, seeds, 0
        self.pipelines = [
            input_pipeline.NumpyPipeline(split, input_pipeline.PipelineOptions(image_size=args.image_size, seed=s), args.batch)
            for s in seeds
        ]
        self.engines = []
        for seed in seeds:
            keras.utils.set_random_seed(seed)
            self.engines.append(FastJaxEngine(config, dist, 10, args.image_size, mean, std))
        self.engine = self.engines[0]
        self.rates = np.full(args.chunk, 0.1, np.float32)
        self.steps_per_epoch = split.num_examples // args.batch
        if len(seeds) > 1:
            # Weights of every seed stacked on a leading axis; one program trains them all.
            self.state = jax.tree.map(lambda *values: jnp.stack(values), *[e.state for e in self.engines])
            step = functools.partial(self.engine.chunk_fn, padding=FastJaxEngine.padding_of(self.pipelines[0]))
            self._vmapped = jax.jit(jax.vmap(step, in_axes=(0, None, None, 0, 0, 0, 0, None, None)), donate_argnums=0)

    def _plan(self, engine, pipeline, chunk):
        epoch, start = divmod(self.steps, self.steps_per_epoch)
        start = min(start, self.steps_per_epoch - chunk)  # Whole chunks inside an epoch are enough here.
        return engine.plan_chunk(pipeline, epoch, start, chunk, self.rates[:chunk])

    def dispatch(self, chunk):
        """Start one chunk of every seed of this model; returns the metrics array(s) to wait on."""
        if len(self.seeds) == 1:
            metrics = self.engine.dispatch_chunk(self.pipelines[0], self._plan(self.engine, self.pipelines[0], chunk))
        else:
            plans = [self._plan(self.engine, p, chunk) for p in self.pipelines]
            stacked = [np.stack(parts) for parts in zip(*[FastJaxEngine.chunk_arguments(p) for p in plans])]
            stacked[4], stacked[5] = stacked[4][0], stacked[5][0]  # Rates and validity are shared.
            images, labels = self.engine._data_on_device(self.pipelines[0])
            self.state, metrics = self._vmapped(self.state, images, labels, *stacked)
        self.steps += chunk
        return metrics


def measure(members, chunk, chunks, together: bool):
    """Seconds of `chunks` chunks of every member: all dispatched before one wait, or one by one."""
    start = time.perf_counter()
    if together:
        pending = []
        for _ in range(chunks):
            pending = [m.dispatch(chunk) for m in members]
        jax.block_until_ready(pending)
        return time.perf_counter() - start, None
    alone = {}
    for member in members:
        begin = time.perf_counter()
        for _ in range(chunks):
            metrics = member.dispatch(chunk)
        jax.block_until_ready(metrics)
        alone[member.model] = time.perf_counter() - begin
    return time.perf_counter() - start, alone


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=FIGURE6)
    parser.add_argument("--precision", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--examples", type=int, default=50000, help="images in the device-resident training set")
    parser.add_argument("--chunk", type=int, default=390, help="steps per dispatch")
    parser.add_argument("--chunks", type=int, default=3, help="timed chunks per model")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per architecture trained in one program (vmap)")
    parser.add_argument("--schedule", type=int, default=64000, help="steps of a full schedule, for the projection")
    args = parser.parse_args()
    if keras.backend.backend() != "jax":
        raise SystemExit(f"Run with KERAS_BACKEND=jax. Received: backend {keras.backend.backend()!r}")
    if args.chunk * args.batch > args.examples:
        raise SystemExit(f"--chunk x --batch must fit one epoch of --examples. Received: {args.chunk} x {args.batch} > {args.examples}")
    keras.config.set_dtype_policy("mixed_bfloat16" if args.precision == "bfloat16" else "float32")

    rng = np.random.default_rng(0)
    split = input_pipeline.DataSplit(
        args.examples, labels=rng.integers(0, 10, args.examples).astype(np.int32),
        images=rng.integers(0, 256, (args.examples, args.image_size, args.image_size, 3), dtype=np.uint8),
    )
    print(f"devices {jax.devices()}; {args.precision}; batch {args.batch}; {args.chunk} steps per dispatch; "
          f"{args.chunks} timed chunks per model", flush=True)
    rows = []
    modes = [("alone", 1, False), ("together", 1, True)]
    if args.seeds > 1:
        modes.append((f"seeds x{args.seeds}", args.seeds, True))
    members, compile_seconds = None, 0.0
    for mode, seeds, together in modes:
        if members is None or len(members[0].seeds) != seeds:  # "alone" and "together" share programs.
            members = [Member(model, args, split, list(range(seeds))) for model in args.models]
            start = time.perf_counter()
            jax.block_until_ready([m.dispatch(args.chunk) for m in members])  # Compile and warm up.
            compile_seconds = time.perf_counter() - start
        seconds, alone = measure(members, args.chunk, args.chunks, together)
        trained_models = len(members) * seeds
        images = trained_models * args.chunks * args.chunk * args.batch
        projected = seconds / (args.chunks * args.chunk) * args.schedule
        rows.append((mode, images / seconds, projected, trained_models))
        print(f"\n{mode}: {trained_models} models, compile + warm-up {compile_seconds:.0f} s", flush=True)
        if alone:
            for model, value in alone.items():
                rate = args.chunks * args.chunk * args.batch / value
                print(f"  {model:10s} {rate:10.0f} images/s   {args.schedule} steps: {_hours(value / (args.chunks * args.chunk) * args.schedule)}")
        print(f"  aggregate {images / seconds:10.0f} images/s   all {trained_models} schedules of {args.schedule} steps: {_hours(projected)}")
    alone_rate = rows[0][1]
    for mode, rate, projected, count in rows[1:]:
        print(f"{mode}: {rate / alone_rate:.2f}x the aggregate images/s of training the models one after another")


if __name__ == "__main__":
    main()
