"""Top-1 of the converted akamaster CIFAR-10 ResNets on the 10,000-image JPEG test set.

    python -m weights.evaluate_cifar [--shared ../shared] [--depths 20 32 44 56]

Reads ``data/cifar10-jpeg.tar.gz`` (extracted into a temporary folder) and the ``.npz`` checkpoints in
``weights/akamaster/`` of the shared folder. The JPEGs are lossy re-encodings (about 29.7 dB PSNR),
so accuracy is lower than on the original PNG test set (upstream README: 91.73 / 92.63 / 93.10 / 93.39 %).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tarfile
import tempfile
import time

import numpy as np


import keras_resnets
from keras_resnets.data import image_folder
from keras_resnets.data.preprocessing import CIFAR10_CLASSES


def load_jpeg_test_set(archive: pathlib.Path, workdir: str):
    """(images uint8 (N, 32, 32, 3), labels (N,)) of the test split, classes in standard label order."""
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if "/test/" in m.name and m.name.endswith(".jpg")]
        tar.extractall(workdir, members=members, filter="data")
    test_root = next(pathlib.Path(workdir).rglob("test"))
    folder = image_folder.scan_image_folder(test_root, class_names=CIFAR10_CLASSES)
    return image_folder.load_image_arrays(folder.paths), folder.labels


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_shared = os.environ.get("KERAS_RESNETS_SHARED_DIR", str(pathlib.Path(__file__).resolve().parents[2] / "shared"))
    parser.add_argument("--shared", default=default_shared, help="the shared data folder")
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 32, 44, 56])
    args = parser.parse_args(argv)
    shared = pathlib.Path(args.shared)
    with tempfile.TemporaryDirectory() as workdir:
        images, labels = load_jpeg_test_set(shared / "data" / "cifar10-jpeg.tar.gz", workdir)
    print(f"CIFAR-10 JPEG test set: {len(labels)} images")
    inputs = keras_resnets.preprocess_input(images, "cifar10")
    print("| model | top-1 (JPEG test, 10,000) | upstream top-1 (PNG test) |")
    print("|---|---:|---:|")
    for depth in args.depths:
        start = time.time()
        model = keras_resnets.ResNet(depth, weights=str(shared / "weights" / "akamaster" / f"resnet{depth}.npz"))
        predictions = model.predict(inputs, batch_size=500, verbose=0).argmax(axis=1)
        top1 = 100.0 * float((predictions == labels).mean())
        upstream = keras_resnets.get_weights_record(f"resnet{depth}.cifar10").metrics.top1
        print(f"| resnet{depth} | {top1:.2f} % | {upstream:.2f} % |  ({time.time() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
