"""Top-1 of the converted akamaster CIFAR-10 ResNets on the 10,000-image JPEG test set.

    python -m weights.evaluate_cifar [--shared ../shared] [--depths 20 32 44 56]
    python -m weights.evaluate_cifar --trained     # the project's own weights/trained/*.cifar10_jpeg

Reads ``data/cifar10-jpeg.tar.gz`` (extracted into a temporary folder) and the ``.npz`` checkpoints in
``weights/akamaster/`` of the shared folder. The JPEGs are lossy re-encodings (about 29.7 dB PSNR),
so accuracy is lower than on the original PNG test set (upstream README: 91.73 / 92.63 / 93.10 / 93.39 %).
The evaluation itself is :func:`keras_resnets.tasks.validate.validate` (``keras-resnets validate``).

:func:`load_jpeg_split` and :func:`classification_metrics` are what ``python -m weights.publish --evaluate``
measures the project's own ``cifar10_jpeg`` weights with: the split decoded into memory with PIL exactly
as the training pipeline decodes it, the record's preprocessing, float32 inference.
"""

from __future__ import annotations

import argparse
import io
import os
import pathlib
import sys
import tarfile
import tempfile

import numpy as np

from keras_resnets.tasks.validate import validate
from keras_resnets.weights import get_weights_record


def extract_jpeg_test_set(archive: pathlib.Path, workdir: str) -> pathlib.Path:
    """Extract the test split of the JPEG archive into `workdir`; returns the folder of class sub-folders."""
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if "/test/" in m.name and m.name.endswith(".jpg")]
        tar.extractall(workdir, members=members, filter="data")
    return next(pathlib.Path(workdir).rglob("test"))


def load_jpeg_split(archive, split: str = "test"):
    """Decode one split of the CIFAR-10 JPEG tarball into memory, as the training pipeline decodes it.

    The archive (``cifar10-jpeg/<split>/<class>/<file>.jpg``) is streamed once, without extracting it;
    the images are decoded by :func:`keras_resnets.data.image_folder.load_image_arrays` with ``size=(32,
    32)``, the call the training pipeline makes for 32x32 data held in memory (PIL, RGB, no resampling
    of 32x32 images). Labels follow the sorted class folder names, which are CIFAR-10's standard order.

    Args:
        archive: path of ``cifar10-jpeg.tar.gz``.
        split: "test" or "train".

    Returns:
        ``(images, labels)``: uint8 (N, 32, 32, 3) and int64 (N,), in archive order.

    Raises:
        ValueError: naming the archive, if `split` is not one of its splits or its classes are not
            CIFAR-10's ten.
    """
    from keras_resnets.data.image_folder import load_image_arrays
    from keras_resnets.data.preprocessing import CIFAR10_CLASSES

    if split not in ("test", "train"):
        raise ValueError(f"`split` must be 'test' or 'train'. Received: split={split!r}")
    files, classes = [], []
    with tarfile.open(archive) as tar:
        for member in tar:
            parts = member.name.split("/")  # cifar10-jpeg/<split>/<class>/<file>
            if member.isfile() and len(parts) == 4 and parts[1] == split and parts[3].lower().endswith(".jpg"):
                files.append(io.BytesIO(tar.extractfile(member).read()))
                classes.append(parts[2])
    names = sorted(set(classes))
    if names != list(CIFAR10_CLASSES):
        raise ValueError(
            f"{archive} must hold cifar10-jpeg/{split}/<class>/*.jpg for the ten CIFAR-10 classes "
            f"{list(CIFAR10_CLASSES)}. Found classes: {names}"
        )
    labels = np.array([names.index(name) for name in classes], np.int64)
    return load_image_arrays(files, size=(32, 32)), labels


def classification_metrics(model, images, labels, preprocessing, batch_size: int = 1000) -> dict:
    """Top-1 and top-5 accuracy (%) of `model` on uint8 `images` normalised with `preprocessing`.

    Args:
        model: a classifier (softmax or logits output).
        images: uint8 (N, H, W, 3) at the model's input size.
        labels: int (N,) class indices.
        preprocessing: a :class:`keras_resnets.weights.Preprocessing` (scale 1/255, mean, std).
        batch_size: images per forward pass.

    Returns:
        ``{"top1", "top5", "count"}``, accuracies in percent over all `count` images.
    """
    from keras_resnets.data.preprocessing import preprocess_input

    scores = np.asarray(model.predict(preprocess_input(images, preprocessing), batch_size=batch_size, verbose=0))
    top5 = np.argsort(-scores, axis=1)[:, :5]
    labels = np.asarray(labels)
    return {
        "top1": 100.0 * float((top5[:, 0] == labels).mean()),
        "top5": 100.0 * float((top5 == labels[:, None]).any(axis=1).mean()),
        "count": int(len(labels)),
    }


def evaluate_trained(archive) -> int:
    """Print the test error of every committed ``cifar10_jpeg`` weights file (float32, this machine)
    next to the one its registry record states; 1 if any differs by more than 0.1 points."""
    import time

    import keras

    import keras_resnets
    from keras_resnets.weights import catalog

    root = pathlib.Path(__file__).resolve().parents[1] / catalog.TRAINED_FOLDER
    images, labels = load_jpeg_split(archive, "test")
    print(f"CIFAR-10 JPEG test set: {len(labels)} images, float32, Keras backend {keras.backend.backend()}")
    print("| weights | top-1 error (measured here) | top-1 error (record) | top-5 |")
    print("|---|---:|---:|---:|")
    status = 0
    for record in keras_resnets.list_weights():
        if record.tag != catalog.CIFAR10_JPEG_TAG:
            continue
        start = time.monotonic()
        path = root / record.name / record.filename
        model = keras_resnets.get_model(record.model, weights=str(path), classifier_activation=None)
        measured = classification_metrics(model, images, labels, record.preprocessing)
        error, recorded = 100 - measured["top1"], 100 - record.metrics.top1
        print(f"| {record.name} | {error:.2f} % | {recorded:.2f} % | {measured['top5']:.2f} % |  "
              f"({time.monotonic() - start:.0f} s)")
        status |= abs(error - recorded) > 0.1
    return int(status)


def main(argv=None) -> int:
    """Run the command line (see the module doc); returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_shared = os.environ.get("KERAS_RESNETS_SHARED_DIR", str(pathlib.Path(__file__).resolve().parents[2] / "shared"))
    parser.add_argument("--shared", default=default_shared, help="the shared data folder")
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 32, 44, 56])
    parser.add_argument("--trained", action="store_true",
                        help="evaluate the project's own cifar10_jpeg weights committed in weights/trained/ instead")
    args = parser.parse_args(argv)
    shared = pathlib.Path(args.shared)
    if args.trained:
        return evaluate_trained(shared / "data" / "cifar10-jpeg.tar.gz")
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
