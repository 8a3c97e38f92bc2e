"""Shared fixtures: the ../shared data folder and small helpers."""

import os
import pathlib

import pytest

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
