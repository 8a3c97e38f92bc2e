"""Shared fixtures: the ../shared data folder and small helpers."""

import os
import pathlib
import shutil
import sys

import pytest

# Fixtures that live beside their helpers (the fake Hub server, the tiny CIFAR tree), shared by every folder.
pytest_plugins = ["helpers.fake_hub", "helpers.training_fixtures"]

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def shared_dir() -> pathlib.Path:
    """The shared test-data folder: $KERAS_RESNETS_SHARED_DIR, default ../shared beside the checkout."""
    return pathlib.Path(os.environ.get("KERAS_RESNETS_SHARED_DIR", REPO_ROOT.parent / "shared"))


# The longest single tests (minutes each on 2 cores): handed out first so that no worker starts one late.
LONGEST_FIRST = ("training/test_training_real_data.py",)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """Slow tests first (the longest modules before them), otherwise collection order (a stable sort).

    pytest-xdist hands tests to the workers one at a time in this order (pyproject.toml), so the expensive
    ones start early and cheap ones fill the end of the run instead of one long test finishing alone on
    one worker.
    """
    def rank(item):
        longest = any(item.nodeid.startswith(f"tests/{path}") for path in LONGEST_FIRST)
        return (not longest, item.get_closest_marker("slow") is None)

    items.sort(key=rank)


def pytest_configure(config):
    """JAX's persistent compilation cache, in a new folder for this test session.

    On JAX, building a model compiles a random initializer for each weight shape (16 s of ResNet-50's 20 s
    build on 2 cores), and every JAX process compiles again what another one already did: the other
    pytest-xdist worker, or the process a test starts (a training run that is then killed and resumed
    compiles the same programs three times; a fresh process loading a saved model). With the cache each
    program is compiled about once per session. The folder is made here, before the workers start, so
    that they and their child processes all share it, and it is removed at the end. (Two processes that
    compile one program at the same moment may both write it; a reader that catches an entry half written
    gets a warning and compiles the program itself.) An existing $JAX_COMPILATION_CACHE_DIR is used as it is.
    """
    if hasattr(config, "workerinput") or "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return  # A pytest-xdist worker has the folder from its environment.
    import tempfile

    folder = tempfile.mkdtemp(prefix="keras-resnets-tests-jax-cache-")
    config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))
    os.environ.update({"JAX_COMPILATION_CACHE_DIR": folder, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"})
    if "jax" in sys.modules:  # Imported already: it read its settings then.
        import jax

        jax.config.update("jax_compilation_cache_dir", folder)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


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
    and a file lock lets the first worker extract while the others wait. GNU tar takes about 4 s for the
    60,000 files where Python's tarfile took about 45 s; without it, tarfile does the work.
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
            if not _gnu_tar_extract(archive, target):
                with tarfile.open(archive) as tar:
                    tar.extractall(target, filter="data")
            done.touch()
    assert (root / "train").is_dir() and (root / "test").is_dir()
    return root


def _gnu_tar_extract(archive, target) -> bool:
    """Extract `archive` into `target` with GNU tar (no owners, no absolute or ``..`` paths); False without it."""
    import shutil
    import subprocess

    tar = shutil.which("tar")
    if tar is None or "GNU tar" not in subprocess.run([tar, "--version"], capture_output=True, text=True).stdout:
        return False
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run([tar, "-xzf", str(archive), "-C", str(target), "--no-same-owner", "--no-same-permissions"],
                   check=True)
    return True
