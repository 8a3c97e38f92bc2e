"""Fixtures of the training tests (imported by tests/test_training_*.py)."""

import tarfile

import pytest


@pytest.fixture(scope="session")
def tiny_cifar_root(shared, tmp_path_factory):
    """A 300/100-image CIFAR-10 JPEG folder (30 train and 10 test images per class) for tiny runs.

    Extracted straight from the shared tarball (one streaming pass, a few seconds) rather than from the
    full 60,000-file tree, which costs about a minute of file-system time per test worker here.
    """
    root = tmp_path_factory.mktemp("tiny-cifar")
    limits, counts = {"train": 30, "test": 10}, {}
    with tarfile.open(shared("data/cifar10-jpeg.tar.gz")) as tar:
        for member in tar:
            parts = member.name.split("/")  # cifar10-jpeg/<split>/<class>/<file>
            if not member.isfile() or len(parts) != 4 or parts[1] not in limits:
                continue
            key = (parts[1], parts[2])
            if counts.get(key, 0) < limits[parts[1]]:
                counts[key] = counts.get(key, 0) + 1
                tar.extract(member, root, filter="data")
    assert len(counts) == 20 and sum(counts.values()) == 400, counts
    return root / "cifar10-jpeg"
