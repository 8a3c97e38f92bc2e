"""The 10,000 CIFAR-10 JPEG test images, decoded once per test session as the training pipeline decodes them.

Import the fixture into a test module (``from helpers.cifar_jpeg import cifar10_jpeg_test_set``).
"""

import numpy as np
import pytest


def decode_test_split(jpeg_root):
    """Decode ``<jpeg_root>/test`` (the extracted ``cifar10-jpeg`` tree) with the training pipeline's functions:
    :func:`scan_image_folder` (labels from the sorted class folders) and :func:`load_image_arrays` with
    ``size=(32, 32)`` (PIL, what ``input_pipeline`` does for 32x32 data).

    Returns:
        ``(images, labels)``: uint8 (10000, 32, 32, 3) and int (10000,).
    """
    from keras_resnets.data.image_folder import load_image_arrays, scan_image_folder
    from keras_resnets.data.preprocessing import CIFAR10_CLASSES

    folder = scan_image_folder(jpeg_root / "test")
    assert folder.class_names == list(CIFAR10_CLASSES), folder.class_names
    assert len(folder) == 10000 and not folder.skipped, (len(folder), folder.skipped[:3])
    return load_image_arrays(folder.paths, size=(32, 32)), np.asarray(folder.labels)


@pytest.fixture(scope="session")
def cifar10_jpeg_test_set(cifar10_jpeg_root):
    """``(images, labels)`` of the 10,000 JPEG test images of ``shared/data/cifar10-jpeg.tar.gz`` (a missing
    archive fails the test), decoded once per session (a few seconds) from the tree that the session
    extracts once for all its workers (``cifar10_jpeg_root``), rather than from another pass over the archive
    (about 15 s per worker)."""
    return decode_test_split(cifar10_jpeg_root)
