"""The 10,000 CIFAR-10 JPEG test images, decoded once per test session as the training pipeline decodes them.

Import the fixture into a test module (``from helpers.cifar_jpeg import cifar10_jpeg_test_set``).
"""

import tarfile

import numpy as np
import pytest


def decode_test_split(archive, workdir):
    """Extract ``cifar10-jpeg/test`` of `archive` into `workdir` and decode it with the training pipeline's
    functions: :func:`scan_image_folder` (labels from the sorted class folders) and
    :func:`load_image_arrays` with ``size=(32, 32)`` (PIL, what ``input_pipeline`` does for 32x32 data).

    Returns:
        ``(images, labels)``: uint8 (10000, 32, 32, 3) and int (10000,).
    """
    from keras_resnets.data.image_folder import load_image_arrays, scan_image_folder
    from keras_resnets.data.preprocessing import CIFAR10_CLASSES

    with tarfile.open(archive) as tar:  # One streaming pass; only the test split is written.
        for member in tar:
            parts = member.name.split("/")  # cifar10-jpeg/<split>/<class>/<file>
            if member.isfile() and len(parts) == 4 and parts[1] == "test":
                tar.extract(member, workdir, filter="data")
    folder = scan_image_folder(workdir / "cifar10-jpeg" / "test")
    assert folder.class_names == list(CIFAR10_CLASSES), folder.class_names
    assert len(folder) == 10000 and not folder.skipped, (len(folder), folder.skipped[:3])
    return load_image_arrays(folder.paths, size=(32, 32)), np.asarray(folder.labels)


@pytest.fixture(scope="session")
def cifar10_jpeg_test_set(shared, tmp_path_factory):
    """``(images, labels)`` of the 10,000 JPEG test images of ``shared/data/cifar10-jpeg.tar.gz`` (a missing
    archive fails the test), decoded once per session (about 10 s)."""
    return decode_test_split(shared("data/cifar10-jpeg.tar.gz"), tmp_path_factory.mktemp("cifar10-jpeg-test"))
