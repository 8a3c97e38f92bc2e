"""The fast JAX engine (training/engine_jax_fast.py) takes exactly the standard engine's steps, and resumes exactly.

Training runs go through training/train.py on the JAX backend in a subprocess (this suite runs on
TensorFlow first), on the tiny CIFAR JPEG tree.
"""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT
from helpers.kill_resume import h5_arrays, run_whole_then_killed_and_resumed

HELPER = REPO_ROOT / "tests" / "helpers" / "fast_engine_runs.py"


def tiny_fields(data_dir, **overrides):
    # 300 images, batch 20: 15 steps per epoch. Log every 7 and checkpoint every 10 make chunks of
    # 7, 3, 4, 1 (epoch end), 5, ... so chunk ends, epoch ends and the lr decay at 18 all interleave.
    # The low-rate warm-up (lr 0.005) ends at the first log (any training error under 99%). Rates stay
    # low: at 0.1 this tiny net is chaotic enough to turn float32 rounding into visibly different weights.
    fields = dict(
        model="resnet8", dataset="image_folder", data_dir=str(data_dir), image_size=16, global_batch_size=20,
        train_length=30, base_lr=0.02, lr_boundaries=[18], log_every_steps=7, checkpoint_every_steps=10,
        deterministic=True, seed=4, warmup_lr=0.005, warmup_until_train_error=0.99,
    )
    fields.update(overrides)
    return fields


def run_jax(jobs, mode="runs"):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, str(HELPER), mode, json.dumps(jobs)]
    process = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    line = [line for line in process.stdout.splitlines() if line.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def history(workdir):
    rows = json.loads((workdir / "history.json").read_text())
    return [{k: v for k, v in row.items() if "time" not in k and "per_second" not in k} for row in rows]


def test_device_augmentation_equals_the_numpy_pipeline():
    from keras_resnets.data import augment
    from training.engine_jax_fast import device_augment

    images = np.random.default_rng(0).integers(0, 256, (64, 16, 12, 3), dtype=np.uint8)
    for padding in (4, 2):
        expected = augment.cifar_augment_numpy(images, np.random.default_rng([1, padding]), padding)
        top, left, flip = augment.cifar_crop_draws(np.random.default_rng([1, padding]), len(images), padding)
        assert flip.any() and not flip.all() and len(set(top)) > 1
        np.testing.assert_array_equal(np.asarray(device_augment(images, top, left, flip, padding)), expected)


@pytest.mark.parametrize("loop", ["scan", "steps"])
def test_fast_engine_takes_the_standard_steps_and_resumes_bit_identically(loop):
    # Engines alone (no loop, no files): 8 steps over an epoch boundary (6 steps per epoch), chunks of
    # at most 3 steps; the resumed engine restarts from a state saved at step 3 (a chunk end). "scan"
    # is what an accelerator runs, "steps" what the CPU runs ("auto").
    result = run_jax({"steps": 8, "steps_per_epoch": 6, "log_every_steps": 3, "resume_at": 3, "loop": loop}, mode="engines")
    assert result["fast_loop"] == loop
    standard, fast = np.asarray(result["standard_metrics"]), np.asarray(result["fast_metrics"])
    assert standard.shape == fast.shape == (8, 3)
    np.testing.assert_array_equal(fast[:, 2], standard[:, 2])  # Batch sizes.
    np.testing.assert_allclose(fast[:, 0], standard[:, 0], rtol=1e-4)  # Loss sums, step by step.
    assert np.ptp(standard[:, 0]) > 1e-3 * np.abs(standard[:, 0]).max()  # Steps differ from each other.
    assert result["max_weight_difference"] < 1e-3 < result["weights_moved"]
    assert result["resumed_equal"], "a resumed fast engine must end bit-identical to the uninterrupted one"
    np.testing.assert_array_equal(np.asarray(result["resumed_metrics"]), fast[3:])


@pytest.mark.slow
def test_fast_engine_trains_like_the_standard_one_and_resumes_exactly(tiny_cifar_root, tmp_path):
    jobs = [
        {"workdir": str(tmp_path / "standard"), "config": tiny_fields(tiny_cifar_root)},
        {"workdir": str(tmp_path / "fast"), "config": tiny_fields(tiny_cifar_root, engine="jax_fast")},
        # Stopped early by a time budget (which may change between the sittings of one run; the schedule
        # may not), then resumed to 30 in the same workdir.
        {"workdir": str(tmp_path / "resumed"), "config": tiny_fields(tiny_cifar_root, engine="jax_fast", max_train_seconds=1e-6)},
        {"workdir": str(tmp_path / "resumed"), "config": tiny_fields(tiny_cifar_root, engine="jax_fast")},
    ]
    standard, fast, first_half, resumed = run_jax(jobs)
    assert standard["steps"] == fast["steps"] == resumed["steps"] == 30 and 0 < first_half["steps"] < 30

    # Same data, same augmentation, same schedule: the same weights up to float32 rounding.
    reference, candidate = h5_arrays(tmp_path / "standard" / "last.weights.h5"), h5_arrays(tmp_path / "fast" / "last.weights.h5")
    assert reference.keys() == candidate.keys() and len(reference) > 20
    for name in reference:
        np.testing.assert_allclose(candidate[name], reference[name], rtol=2e-3, atol=2e-4, err_msg=name)
    for a, b in zip(history(tmp_path / "standard"), history(tmp_path / "fast")):
        assert a.keys() == b.keys() and a["step"] == b["step"] and a["learning_rate"] == b["learning_rate"]
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-3)
    first = json.loads((tmp_path / "fast" / "history.json").read_text())[0]
    assert first["learning_rate"] == pytest.approx(0.02)  # The warm-up ended at step 7, as in the standard run.

    # A resumed run is bit-identical to the uninterrupted one.
    whole = h5_arrays(tmp_path / "fast" / "last.weights.h5")
    again = h5_arrays(tmp_path / "resumed" / "last.weights.h5")
    for name in whole:
        np.testing.assert_array_equal(whole[name], again[name], err_msg=name)
    # The stop added an evaluation row, so only the last row's evaluation is compared.
    last_whole, last_again = history(tmp_path / "fast")[-1], history(tmp_path / "resumed")[-1]
    assert (last_whole["step"], last_whole["eval_loss"], last_whole["eval_error"]) == \
        (last_again["step"], last_again["eval_loss"], last_again["eval_error"])


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_fast_run_resumes_to_identical_weights(tiny_cifar_root, tmp_path, stop_signal):
    # SIGTERM lands while a chunk runs on the device: the run must still checkpoint the state it holds
    # (the chunk's end), never a mid-chunk step number with the end-of-chunk weights.
    command = [
        sys.executable, "-m", "training", "--config", "cifar10_paper", "--model", "resnet8",
        "--set", "dataset=image_folder", "--set", f"data_dir={tiny_cifar_root}", "--set", "image_size=16",
        "--set", "global_batch_size=20", "--set", "train_length=40", "--set", "lr_boundaries=30",
        "--set", "log_every_steps=5", "--set", "checkpoint_every_steps=5", "--set", "deterministic=true",
        "--set", "engine=jax_fast",
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="2")
    whole_dir, interrupted, resumed = run_whole_then_killed_and_resumed(command, env, tmp_path, stop_signal=stop_signal)
    assert "Resumed from" in resumed.stdout
    for name in os.listdir(interrupted / "checkpoints"):
        if name.endswith(".npz"):  # Chunks end at multiples of 5 (log and checkpoint steps, epochs of 15).
            assert int(name[len("ckpt-"):-len(".npz")]) % 5 == 0, name
    whole, again = h5_arrays(whole_dir / "last.weights.h5"), h5_arrays(interrupted / "last.weights.h5")
    assert whole.keys() == again.keys() and len(whole) > 20
    for name in whole:
        np.testing.assert_array_equal(whole[name], again[name], err_msg=name)
    assert history(whole_dir) == history(interrupted)


def test_fast_engine_refuses_what_it_cannot_reproduce():
    from training.config import TrainConfig, validate

    import keras

    if keras.backend.backend() == "jax":
        with pytest.raises(ValueError, match=r"augmentation='imagenet'"):
            validate(TrainConfig(engine="jax_fast", augmentation="imagenet"))
    else:
        with pytest.raises(ValueError, match=r"engine='jax_fast'.*JAX backend.*Received: engine='jax_fast' with backend 'tensorflow'"):
            validate(TrainConfig(engine="jax_fast"))
    with pytest.raises(ValueError, match=r"`engine` must be one of \('standard', 'jax_fast'\). Received: engine='fast'"):
        validate(TrainConfig(engine="fast"))


@pytest.mark.slow
def test_gpu_together_benchmark_runs_a_tiny_schedule_on_cpu():
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_gpu_together.py"), "--models", "resnet8",
               "--batch", "8", "--image-size", "8", "--examples", "64", "--chunk", "2", "--chunks", "1",
               "--seeds", "2", "--precision", "float32", "--schedule", "100"]
    process = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    lines = process.stdout.splitlines()
    assert any(line.startswith("alone: 1 models") for line in lines)
    assert any(line.startswith("seeds x2: 2 models") for line in lines)
    aggregates = [line for line in lines if line.strip().startswith("aggregate")]
    assert len(aggregates) == 3 and all("schedules of 100 steps" in line for line in aggregates)
    assert any(line.startswith("together: ") and "x the aggregate images/s" in line for line in lines)
