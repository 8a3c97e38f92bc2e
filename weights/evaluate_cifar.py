"""Top-1 of the converted akamaster CIFAR-10 ResNets on the 10,000-image JPEG test set.

    python -m weights.evaluate_cifar [--shared ../shared] [--depths 20 32 44 56]

Reads ``data/cifar10-jpeg.tar.gz`` (extracted into a temporary folder) and the ``.npz`` checkpoints in
``weights/akamaster/`` of the shared folder. The JPEGs are lossy re-encodings (about 29.7 dB PSNR),
so accuracy is lower than on the original PNG test set (upstream README: 91.73 / 92.63 / 93.10 / 93.39 %).
The evaluation itself is :func:`keras_resnets.tasks.validate.validate` (``keras-resnets validate``).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tarfile
import tempfile

from keras_resnets.tasks.validate import validate
from keras_resnets.weights import get_weights_record


def extract_jpeg_test_set(archive: pathlib.Path, workdir: str) -> pathlib.Path:
    """Extract the test split of the JPEG archive into `workdir`; returns the folder of class sub-folders."""
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if "/test/" in m.name and m.name.endswith(".jpg")]
        tar.extractall(workdir, members=members, filter="data")
    return next(pathlib.Path(workdir).rglob("test"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_shared = os.environ.get("KERAS_RESNETS_SHARED_DIR", str(pathlib.Path(__file__).resolve().parents[2] / "shared"))
    parser.add_argument("--shared", default=default_shared, help="the shared data folder")
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 32, 44, 56])
    args = parser.parse_args(argv)
    shared = pathlib.Path(args.shared)
    print("| model | top-1 (JPEG test, 10,000) | upstream top-1 (PNG test) |")
    print("|---|---:|---:|")
    with tempfile.TemporaryDirectory() as workdir:
        test_root = extract_jpeg_test_set(shared / "data" / "cifar10-jpeg.tar.gz", workdir)
        for depth in args.depths:
            weights = shared / "weights" / "akamaster" / f"resnet{depth}.npz"
            result = validate(f"resnet{depth}", test_root, weights=str(weights), batch_size=500, progress=False)
            upstream = get_weights_record(f"resnet{depth}.cifar10").metrics.top1
            print(f"| resnet{depth} | {result.top1:.2f} % | {upstream:.2f} % |  ({result.count} images, {result.seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
