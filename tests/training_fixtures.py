"""Fixtures of the training tests (imported by tests/test_training_*.py)."""

import shutil

import pytest


@pytest.fixture(scope="session")
def tiny_cifar_root(cifar10_jpeg_root, tmp_path_factory):
    """A 300/100-image CIFAR-10 JPEG folder (30 train and 10 test images per class) for tiny runs."""
    root = tmp_path_factory.mktemp("tiny-cifar")
    for split, per_class in (("train", 30), ("test", 10)):
        for class_dir in sorted((cifar10_jpeg_root / split).iterdir()):
            target = root / split / class_dir.name
            target.mkdir(parents=True)
            for image in sorted(class_dir.iterdir())[:per_class]:
                shutil.copy(image, target / image.name)
    return root
