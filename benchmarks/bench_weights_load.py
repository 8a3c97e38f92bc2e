"""Cost of loading cached pretrained weights: ``ResNet50(weights="imagenet")`` vs ``ResNet50(weights=None)``.

    python benchmarks/bench_weights_load.py [--repeats 5] [--use-real-cache]

Both are timed in the same process, alternating, and the medians are compared (target: a cached
load costs under 1.2x a bare build). By default the converted-cache entry of ``resnet50.tv_in1k``
is created in a temporary ``KERAS_RESNETS_CACHE`` from a random timm-layout conversion, so no
network is needed; the load path timed is exactly the one real cached weights take (cache lookup,
Keras ``.weights.h5`` read, no request, no conversion). ``--use-real-cache`` times your real cache
instead (after one ``keras_resnets.download_weights("resnet50.tv_in1k")`` with network access).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


def _prepare_fake_cache_entry() -> None:
    import keras_resnets
    from keras_resnets.weights import cache, get_weights_record

    record = get_weights_record("resnet50.tv_in1k")
    model = keras_resnets.ResNet50()  # Random weights stand in for the converted timm file.
    cache.CacheEntry(record).write(model, source_sha256=record.sha256, extra={"source_file": "benchmark"})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--use-real-cache", action="store_true")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        if not args.use_real_cache:
            os.environ["KERAS_RESNETS_CACHE"] = scratch
        import keras
        import keras_resnets

        if not args.use_real_cache:
            _prepare_fake_cache_entry()
        keras_resnets.ResNet50(weights="imagenet")  # Warm-up: imports, first graph build.
        bare, cached = [], []
        for _ in range(args.repeats):
            for weights, times in ((None, bare), ("imagenet", cached)):
                keras.backend.clear_session()
                start = time.perf_counter()
                keras_resnets.ResNet50(weights=weights)
                times.append(time.perf_counter() - start)
    bare_s, cached_s = statistics.median(bare), statistics.median(cached)
    print(f"backend: {keras.backend.backend()}, repeats: {args.repeats} (median)")
    print(f"ResNet50(weights=None)        {bare_s:6.3f} s")
    print(f"ResNet50(weights='imagenet')  {cached_s:6.3f} s   (cached .weights.h5)")
    print(f"ratio cached / bare: {cached_s / bare_s:.2f}x (target < 1.2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
