"""Inference speed of keras_resnets.ResNet50 against keras.applications.ResNet50, measured in one run.

    KERAS_BACKEND=tensorflow python benchmarks/bench_inference.py [--batch 32] [--repeats 5]

Times ``predict_on_batch`` on a (batch, 224, 224, 3) float32 batch, with and without XLA
(``jit_compile``). Runs of the two models are interleaved and the median is kept, so background load
affects both alike. Prints, per setting, each model's seconds per batch and the ratio
reference_time / our_time (>= 1 means ours is at least as fast). Our ResNet50 is compared in two
layouts: ``downsample="conv1x1"`` is the same architecture as keras.applications (stride on the first
1x1 of a bottleneck: the same work, minus the conv biases keras.applications carries), and the default
"v1.5" layout ``downsample="conv3x3"`` (torchvision's, ~6% more multiply-adds), each also with its
BatchNorm folded into the convolutions (``keras_resnets.fold_batch_norm``: the same predictions, one
pass less over every activation). Also times how long building ResNet-1202 takes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import keras
import keras_resnets


def seconds_per_batch(model, images, jit_compile, repeats):
    model.compile(jit_compile=jit_compile)
    model.predict_on_batch(images)  # Trace/compile outside the timed region.
    model.predict_on_batch(images)
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_on_batch(images)
        timings.append(time.perf_counter() - start)
    return timings


def compare(models, images, jit_compile, repeats, rounds):
    """Interleave the models round by round; return the median seconds per batch of each."""
    samples = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            samples[name] += seconds_per_batch(model, images, jit_compile, repeats)
    return {name: statistics.median(values) for name, values in samples.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="timed batches per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per setting")
    parser.add_argument("--skip-1202", action="store_true", help="don't time the ResNet-1202 build")
    args = parser.parse_args()

    images = np.random.default_rng(0).uniform(0, 255, (args.batch, 224, 224, 3)).astype("float32")
    same_layout = keras_resnets.ResNet50(downsample="conv1x1")
    v15 = keras_resnets.ResNet50()
    models = {
        "keras.applications.ResNet50": keras.applications.ResNet50(weights=None),
        "keras_resnets.ResNet50(downsample='conv1x1')": same_layout,
        "  + fold_batch_norm (conv1x1)": keras_resnets.fold_batch_norm(same_layout),
        "keras_resnets.ResNet50() (v1.5)": v15,
        "  + fold_batch_norm (v1.5)": keras_resnets.fold_batch_norm(v15),
    }
    reference = "keras.applications.ResNet50"
    print(f"backend={keras.backend.backend()} batch={args.batch} input=224x224x3 device=CPU")
    for jit_compile in (False, True):
        medians = compare(models, images, jit_compile, args.repeats, args.rounds)
        print(f"\njit_compile={jit_compile}")
        for name, seconds in medians.items():
            ratio = medians[reference] / seconds
            print(f"  {name:48s} {seconds:7.3f} s/batch  {args.batch / seconds:7.1f} img/s  ratio {ratio:5.3f}")

    if not args.skip_1202:
        start = time.perf_counter()
        keras_resnets.ResNet1202()
        print(f"\nbuild ResNet1202: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
