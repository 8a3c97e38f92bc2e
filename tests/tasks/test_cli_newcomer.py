"""The command line as a newcomer meets it: fast listings without TensorFlow, weight status, offline
failures in seconds with the fix, labelled predictions, and one-line errors (tracebacks only with --debug)."""

import hashlib
import json
import os
import pathlib
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from PIL import Image

from keras_resnets import cli
from keras_resnets.weights import cache, catalog

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def _environment(tmp_path, **extra):
    """A child environment with empty caches and this checkout first on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TF_CPP_MIN_LOG_LEVEL")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]),
        HF_HOME=str(tmp_path / "hf-home"),
        HF_HUB_CACHE=str(tmp_path / "hf-cache"),
        KERAS_RESNETS_CACHE=str(tmp_path / "converted"),
        **extra,
    )
    return env


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def cifar_images(shared, tmp_path_factory):
    """The first two lossless CIFAR-10 test images as PNG files: a cat and a ship."""
    folder = tmp_path_factory.mktemp("cifar-png")
    with np.load(shared("data/cifar10-test-first100.npz")) as data:
        assert data["y"][:2].tolist() == [3, 8]
        paths = []
        for index in range(2):
            paths.append(folder / f"test{index}.png")
            Image.fromarray(data["x"][index]).save(paths[-1])
    return paths


def test_help_models_and_weights_do_not_import_keras_or_tensorflow(tmp_path):
    script = textwrap.dedent("""
        import contextlib, io, sys
        import keras_resnets
        from keras_resnets import cli
        assert len(keras_resnets.list_models()) == 22 and keras_resnets.list_weights("resnet50")
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                cli.main(["--help"])
            except SystemExit as exit:
                assert exit.code == 0
            assert cli.main(["models"]) == 0 and cli.main(["weights"]) == 0
        heavy = sorted(m for m in ("keras", "tensorflow", "jax", "h5py") if m in sys.modules)
        print("heavy:", heavy)
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env=_environment(tmp_path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "heavy: []" and run.stderr == ""


def test_the_builders_are_still_attributes_of_the_package():
    import keras_resnets

    assert keras_resnets.ResNet50.__name__ == "ResNet50"
    assert keras_resnets.model_entry("resnet20").builder().count_params() == keras_resnets.ResNet20().count_params()
    assert {"ResNet50", "download_weights", "list_models"} <= set(dir(keras_resnets))
    with pytest.raises(AttributeError, match="ResNet51"):
        keras_resnets.ResNet51


def test_weights_shows_each_records_status(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KERAS_RESNETS_CACHE", str(tmp_path / "converted"))
    cached = catalog.CATALOG.get("resnet18.tv_in1k")
    entry = cache.CacheEntry(cached)  # A complete entry, as download_weights leaves it.
    entry.weights_path.parent.mkdir(parents=True)
    entry.weights_path.write_bytes(b"weights")
    entry.meta_path.write_text(json.dumps(dict(entry.expected_meta(), source_sha256=cached.sha256,
                                               weights_sha256=hashlib.sha256(b"weights").hexdigest())))
    assert cli.main(["weights"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("resnet")}
    assert " cached " in rows["resnet18.tv_in1k"]
    assert "downloadable (pinned)" in rows["resnet50.tv_in1k"]
    assert "downloadable (unpinned)" in rows["resnet18.a1_in1k"]
    assert "not published: use a local file" in rows["resnet20.cifar10"]
    assert "--weights /path/to/resnet20-12fca82f.th" in rows["resnet20.cifar10:"]  # The local alternative.
    assert not any("fill" in row or "OWNER" in row for row in rows.values())


@pytest.mark.parametrize("setting", ["unreachable", "offline"])
def test_offline_predict_fails_within_seconds_in_one_line_with_the_fix(setting, cifar_images, tmp_path):
    extra = {"HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}"} if setting == "unreachable" else {"HF_HUB_OFFLINE": "1"}
    env = _environment(tmp_path, **extra)
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "keras_resnets.cli", "predict", str(cifar_images[0])],
                         capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    elapsed = time.monotonic() - start
    assert run.returncode == 2 and run.stdout == ""
    assert len(run.stderr.splitlines()) == 1, run.stderr
    assert run.stderr.startswith("keras-resnets predict: error: ")
    assert "download_weights('resnet50.tv_in1k')" in run.stderr and "--weights /path/to/model.safetensors" in run.stderr
    assert ("unreachable" if setting == "unreachable" else "HF_HUB_OFFLINE=1") in run.stderr
    assert elapsed < 5, elapsed  # Before TensorFlow is even imported.


def test_predict_labels_cifar_classes_from_a_weights_file(shared, cifar_images, capsys):
    weights = str(shared("weights/akamaster/resnet20.npz"))
    assert cli.main(["predict", *map(str, cifar_images), "--model", "resnet20", "--weights", weights,
                     "--top-k", "2", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["top_k"][0]["label"] for r in results] == ["cat", "ship"]
    assert all(r["top_k"][1]["label"] in {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                                           "horse", "ship", "truck"} for r in results)


def _one_line_error(capsys, command):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[-1].startswith(f"keras-resnets {command}: error: ") or f"keras-resnets {command}: error:" in lines[-1]
    return lines[-1]


@pytest.mark.parametrize("argv, expected", [
    (["predict", "x.png", "--batch-size", "-1"], "argument --batch-size: expected a positive integer, got '-1'"),
    (["predict", "x.png", "--top-k", "0"], "argument --top-k: expected a positive integer, got '0'"),
    (["fine-tune", "d", "--output-dir", "o", "--validation-fraction", "1.5"], "expected a fraction in [0, 1)"),
    (["export", "o", "--format", "pdf"], "invalid choice: 'pdf'"),
])
def test_bad_arguments_are_one_usage_line(argv, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert expected in _one_line_error(capsys, argv[0])


def test_library_errors_are_one_line_without_traceback(shared, cifar_images, tmp_path, capsys):
    image = str(cifar_images[0])
    wrong = str(shared("weights/akamaster/resnet32.npz"))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    cases = [
        (["predict", image, "--model", "resnet20", "--weights", wrong], "belong to another architecture"),
        (["predict", image, "--model", "resnet20", "--weights", "cifar10"], "not published on the Hub"),
        (["predict", image, "--model", "resnet20", "--weights", "tv_in1k"], "Unknown weights tag for resnet20"),
        (["predict", image, "--model", "resnet7"], "registered model name"),
        (["predict", str(tmp_path / "missing.png"), "--model", "resnet20", "--weights", "none"], "missing.png"),
        (["predict", str(broken), "--model", "resnet20", "--weights", "none"], "broken.png"),
        (["predict", image, "--model", "resnet20", "--weights", str(tmp_path / "nowhere.npz")], "nowhere.npz"),
    ]
    for argv, expected in cases:
        assert cli.main(argv) == 2, argv
        assert expected in _one_line_error(capsys, "predict"), argv


def test_a_bug_is_one_line_and_debug_shows_the_traceback(cifar_images, monkeypatch, capsys):
    from keras_resnets.tasks import predict

    def broken(*args, **kwargs):
        raise RuntimeError("something internal\nbroke")

    monkeypatch.setattr(predict, "predict_images", broken)
    argv = ["predict", str(cifar_images[0]), "--model", "resnet20", "--weights", "none"]
    assert cli.main(argv) == 1
    line = _one_line_error(capsys, "predict")
    assert "RuntimeError: something internal broke" in line and "--debug" in line
    assert cli.main(argv + ["--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and err.strip().splitlines()[-1].startswith("keras-resnets predict: error:")
    monkeypatch.undo()
    assert cli.main(["--debug", *argv[:1], "missing.png", *argv[2:]]) == 2  # Also before the command name.
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_the_console_entry_point_prints_no_traceback(tmp_path):
    command = [sys.executable, "-m", "keras_resnets.cli", "predict", "x.png", "--model", "resnet20", "--weights", "cifar10"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120, env=_environment(tmp_path), cwd=tmp_path)
    assert run.returncode == 2 and len(run.stderr.splitlines()) == 1 and "Traceback" not in run.stderr
    run = subprocess.run(command + ["--debug"], capture_output=True, text=True, timeout=120,
                         env=_environment(tmp_path), cwd=tmp_path)
    assert run.returncode == 2 and "Traceback (most recent call last)" in run.stderr


@pytest.mark.slow
def test_a_real_predict_prints_labels_and_no_tensorflow_log_lines(shared, cifar_images, tmp_path):
    command = [sys.executable, "-m", "keras_resnets.cli", "predict", str(cifar_images[1]), "--model", "resnet20",
               "--weights", str(shared("weights/akamaster/resnet20.npz")), "--top-k", "1"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, env=_environment(tmp_path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""  # No cuInit / oneDNN / absl lines.
    assert run.stdout.splitlines()[1].split()[1] == "ship"


def test_install_metadata_uses_an_spdx_license_and_a_setuptools_that_reads_it():
    import tomllib

    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    # A TOML table here makes setuptools >= 77 print a deprecation warning on every install.
    assert pyproject["project"]["license"] == "Apache-2.0"
    assert "setuptools>=77" in pyproject["build-system"]["requires"]
