"""Shared fixtures: the ../shared data folder and small helpers."""

import os
import pathlib

import pytest

# Fixtures that live beside their helpers (the fake Hub server, the tiny CIFAR tree), shared by every folder.
pytest_plugins = ["helpers.fake_hub", "helpers.training_fixtures"]

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def shared_dir() -> pathlib.Path:
    """The shared test-data folder: $KERAS_RESNETS_SHARED_DIR, default ../shared beside the checkout."""
    return pathlib.Path(os.environ.get("KERAS_RESNETS_SHARED_DIR", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared():
    """Returns a function mapping a path inside shared/ to an existing file; a missing file fails."""

    def resolve(relative: str) -> pathlib.Path:
        path = shared_dir() / relative
        assert path.exists(), (
            f"Shared test file missing: {path}. Set KERAS_RESNETS_SHARED_DIR to the shared/ folder."
        )
        return path

    return resolve


@pytest.fixture(scope="session")
def cifar10_jpeg_root(shared, tmp_path_factory) -> pathlib.Path:
    """The CIFAR-10 JPEG tree (train/<class>/*.jpg, test/<class>/*.jpg) extracted from shared/.

    Extracted once per test session: pytest-xdist workers share the parent of their base temp folder,
    and a file lock lets the first worker extract while the others wait.
    """
    import tarfile

    from filelock import FileLock

    archive = shared("data/cifar10-jpeg.tar.gz")
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    target = base / "cifar10-jpeg-extracted"
    root = target / "cifar10-jpeg"
    done = target / ".complete"
    with FileLock(str(base / "cifar10-jpeg.lock")):
        if not done.exists():
            with tarfile.open(archive) as tar:
                tar.extractall(target, filter="data")
            done.touch()
    assert (root / "train").is_dir() and (root / "test").is_dir()
    return root
