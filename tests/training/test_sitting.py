"""training/sitting.py (through training/gpu_sitting.sh) on CPU: runs in parallel, complete runs skipped on the
next sitting, and the summary it writes; on a Python where TensorFlow is absent, as on the GPU machine."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT
from training import sitting
from test_training_gpu_script import BLOCKER


@pytest.mark.slow
def test_a_sitting_trains_its_runs_and_the_next_one_skips_them(tiny_cifar_root, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    runs_dir = tmp_path / "runs"
    env = dict(os.environ, PYTHON=sys.executable, PYTHONPATH=f"{site}{os.pathsep}{REPO_ROOT}")
    env.pop("KERAS_BACKEND", None)  # The script sets jax itself.
    command = ["bash", str(REPO_ROOT / "training" / "gpu_sitting.sh"), str(tiny_cifar_root), str(runs_dir), "6",
               "--min-start-minutes", "0.1", "--set", "train_length=4", "--set", "eval_examples=50",
               "plain8@float32"]
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=500)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "started plain8_float32 (jax_fast, float32)" in first.stdout
    for name, precision in (("plain8_float32", "float32"),):
        final = json.loads((runs_dir / name / "final_metrics.json").read_text())
        assert final["completed"] and final["steps"] == 4 and final["mixed_precision"] == precision
        assert (runs_dir / f"{name}.log").stat().st_size > 0
    [summary_file] = runs_dir.glob("sitting-*.json")
    summary = json.loads(summary_file.read_text())
    rows = {row["run"]: row for row in summary["runs"]}
    row = rows["plain8_float32"]
    assert row["complete"] and row["step"] == 4 and row["exit_status"] == 0 and row["precision"] == "float32"
    assert summary["images_trained"] == 4 * 128 and summary["aggregate_images_per_second"] > 0

    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "plain8_float32 is already complete" in second.stdout
    assert "started" not in second.stdout and "0 training images" in second.stdout


@pytest.mark.parametrize("spec, message", [
    ("keras:resnet20", "A RUN is MODEL, MODEL@PRECISION or torch:MODEL"),
    ("resnet20@float16", "Unknown precision in RUN 'resnet20@float16'"),
])
def test_bad_runs_are_refused_by_name(spec, message, capsys):
    with pytest.raises(SystemExit):
        sitting.parse_args([spec, "--data-dir", "d", "--runs-dir", "r", "--minutes", "1"])
    assert message in capsys.readouterr().err


def test_bad_minutes_are_refused(capsys):
    with pytest.raises(SystemExit):
        sitting.parse_args(["resnet20", "--data-dir", "d", "--runs-dir", "r", "--minutes", "0"])
    assert "--minutes must be above 0" in capsys.readouterr().err
