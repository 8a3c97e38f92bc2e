"""The same-data PyTorch control (training.torch_control): torch-free parts always, a 3-step run when torch is installed."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from training import torch_control

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_arguments_schedule_and_data_order():
    args = torch_control.parse_args(["--data-dir", "d", "--workdir", "w", "--model", "resnet56", "--device", "cpu",
                                     "--max-steps", "3"])
    assert (args.model, args.epochs, args.batch_size, args.lr_epochs, args.max_steps) == ("resnet56", 200, 128, (100, 150), 3)
    with pytest.raises(ValueError, match="--model='plain20'.*resnet20"):
        torch_control.parse_args(["--data-dir", "d", "--workdir", "w", "--model", "plain20"])
    with pytest.raises(ValueError, match="--device='tpu'.*'cuda', 'cpu'"):
        torch_control.parse_args(["--data-dir", "d", "--workdir", "w", "--device", "tpu"])
    assert [torch_control.learning_rate(e) for e in (0, 99, 100, 149, 150, 199)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    first = torch_control.epoch_order(500, 3, seed=0)
    assert sorted(first) == list(range(500))  # A permutation, replayed identically on resume.
    assert (first == torch_control.epoch_order(500, 3, seed=0)).all()
    assert not (first == torch_control.epoch_order(500, 4, seed=0)).all()


def test_augment_and_normalise():
    images = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    out = torch_control.augment(images, np.random.default_rng(1))
    assert out.shape == images.shape and out.dtype == np.uint8
    # Each output is a shifted (by at most 4 pixels, zero filled) and possibly mirrored copy of its input.
    for source, crop in zip(images, out):
        padded = np.pad(source, ((4, 4), (4, 4), (0, 0)))
        views = [padded[r:r + 32, c:c + 32] for r in range(9) for c in range(9)]
        assert any((crop == v).all() or (crop == v[:, ::-1]).all() for v in views)
    normalised = torch_control.normalise(np.full((1, 32, 32, 3), 255, np.uint8))
    assert normalised.shape == (1, 3, 32, 32)
    assert normalised[0, :, 0, 0] == pytest.approx((1 - torch_control.MEAN) / torch_control.STD)


def test_load_split_reads_class_folders(tiny_cifar_root):
    x, y, classes = torch_control.load_split(str(tiny_cifar_root), "test")
    assert x.shape == (100, 32, 32, 3) and x.dtype == np.uint8 and classes[0] == "airplane"
    assert np.bincount(y).tolist() == [10] * 10
    with pytest.raises(ValueError, match="No 'val' folder"):
        torch_control.load_split(str(tiny_cifar_root), "val")


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is optional (not a project dependency)")
def test_three_steps_write_the_pipeline_workdir_and_resume(tiny_cifar_root, tmp_path):
    command = [sys.executable, "-m", "training.torch_control", "--data-dir", str(tiny_cifar_root),
               "--workdir", str(tmp_path), "--device", "cpu", "--batch-size", "128"]
    env = {**os.environ, "PYTHONPATH": REPO}
    subprocess.run([*command, "--max-steps", "2"], check=True, cwd=REPO, env=env, timeout=600)
    subprocess.run([*command, "--max-steps", "3"], check=True, cwd=REPO, env=env, timeout=600)
    rows = json.loads((tmp_path / "history.json").read_text())
    assert [row["step"] for row in rows] == [2, 3]  # 300 images, batch 128: epoch 1 ends at step 3.
    assert set(torch_control.HISTORY_FIELDS) <= set(rows[-1])
    assert rows[-1]["epoch"] == 1.0
    metrics = json.loads((tmp_path / "final_metrics.json").read_text())
    assert {"model", "eval_error", "steps", "wall_time_s", "device", "precision"} <= set(metrics)
    assert (metrics["model"], metrics["steps"], metrics["device"]) == ("resnet20", 3, "cpu")
    assert 0.0 <= metrics["eval_error"] <= 1.0
