"""Trustworthy runs: checksummed checkpoints, the run a workdir holds, time and signal checkpoints, write failures."""

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT
from training.checkpoint import Checkpointer
from training.workdir import RunMismatchError, RunStateError, WorkdirWriteError


def tiny_config(data_dir, **overrides):
    from training.config import TrainConfig

    fields = dict(
        model="resnet8", dataset="image_folder", data_dir=str(data_dir), image_size=16, global_batch_size=20,
        train_length=4, lr_boundaries=(), log_every_steps=2, checkpoint_every_steps=2, eval_every_steps=1000,
        xla=False, seed=1,
    )
    fields.update(overrides)
    return TrainConfig(**fields)


def arrays(step):
    return [np.full((3, 4), step, np.float32), np.asarray([step], np.int64)]


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_checkpoints_carry_checksums_and_a_damaged_newest_falls_back(tmp_path):
    directory = tmp_path / "checkpoints"
    checkpointer = Checkpointer(str(directory), keep=3)
    for step in (5, 10, 15):
        checkpointer.save(step, arrays(step), {"step": step})
    record = json.loads((directory / "ckpt-000000015.json").read_text())
    assert record["sha256"] == sha256(directory / "ckpt-000000015.npz") and record["step"] == 15

    # A complete, loadable file of another step put in place of the newest: only the checksum tells.
    shutil.copy(directory / "ckpt-000000010.npz", directory / "ckpt-000000015.npz")
    # A bit flipped inside the second newest.
    data = bytearray((directory / "ckpt-000000010.npz").read_bytes())
    data[len(data) // 2] ^= 0x01
    (directory / "ckpt-000000010.npz").write_bytes(bytes(data))

    notes = []
    step, restored, state = checkpointer.restore_latest(report=notes.append)
    assert step == 5 and state == {"step": 5}
    np.testing.assert_array_equal(restored[0], arrays(5)[0])
    assert len(notes) == 2 and all("is damaged" in n and "falling back" in n for n in notes), notes
    assert "ckpt-000000015.npz" in notes[0] and "sha256 differs" in notes[0]
    # Kept for inspection under another name, out of the way of later saves and pruning.
    assert (directory / "ckpt-000000015.npz.damaged").exists() and not (directory / "ckpt-000000015.npz").exists()
    assert checkpointer.steps() == [5]


def test_stray_files_in_checkpoints_are_ignored_and_never_deleted(tmp_path):
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    strays = ["notes.txt", "ckpt-7.npz", "ckpt-000000099.npz.tmp", "my-ckpt-000000050.npz", "ckpt-000000060.npz.bak"]
    for name in strays:
        (directory / name).write_text("not a checkpoint")
    (directory / "ckpt-000000070.npz").mkdir()  # A folder with a checkpoint's name.
    checkpointer = Checkpointer(str(directory), keep=1)
    assert checkpointer.restore_latest() is None and checkpointer.steps() == []
    for step in (1, 2, 3):
        checkpointer.save(step, arrays(step), {"step": step})
    assert checkpointer.restore_latest()[0] == 3
    assert sorted(os.listdir(directory)) == sorted(strays + ["ckpt-000000070.npz", "ckpt-000000003.npz", "ckpt-000000003.json"])


def test_checkpoint_write_failure_keeps_older_checkpoints_and_leaves_no_temp_files(tmp_path, monkeypatch):
    # Running as root ignores chmod, so a full disk is simulated: savez writes part of the file, then
    # the OS refuses more (ENOSPC), from the second checkpoint on.
    real_savez = np.savez
    calls = []

    def savez_on_a_full_disk(handle, **payload):
        calls.append(1)
        if len(calls) < 2:
            return real_savez(handle, **payload)
        handle.write(b"PK\x03\x04 partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez", savez_on_a_full_disk)
    directory = tmp_path / "checkpoints"
    checkpointer = Checkpointer(str(directory))
    checkpointer.save(5, arrays(5), {"step": 5})
    with pytest.raises(WorkdirWriteError, match=r"ckpt-000000010\.npz: No space left on device \(the disk is full\).*"
                                                 r"older checkpoints .* intact \(steps \[5\]\)") as raised:
        checkpointer.save(10, arrays(10), {"step": 10})
    assert raised.value.errno == errno.ENOSPC
    assert sorted(os.listdir(directory)) == ["ckpt-000000005.json", "ckpt-000000005.npz"]
    assert Checkpointer(str(directory)).restore_latest(report=pytest.fail)[0] == 5


def test_unusable_workdir_is_refused_naming_the_path(tmp_path, capsys):
    from training.__main__ import main

    # A workdir below a regular file can never be created (root ignores chmod, not this).
    (tmp_path / "file").write_text("")
    workdir = tmp_path / "file" / "run"
    args = ["--config", "cifar10_paper", "--model", "resnet8", "--workdir", str(workdir), "--set", "dataset=image_folder",
            "--set", f"data_dir={tmp_path}"]
    assert main(args) == 4
    assert f"Cannot use '{workdir}' as the workdir: Not a directory" in capsys.readouterr().err


def test_full_disk_during_a_run_stops_cleanly(tiny_cifar_root, tmp_path, monkeypatch):
    from training.train import train_and_evaluate

    real_replace = os.replace

    def replace_on_a_full_disk(source, target):
        if str(target).endswith("ckpt-000000004.npz"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace_on_a_full_disk)
    workdir = tmp_path / "run"
    with pytest.raises(WorkdirWriteError, match=r"ckpt-000000004\.npz: No space left on device"):
        train_and_evaluate(tiny_config(tiny_cifar_root), str(workdir))
    assert [p.name for p in workdir.rglob("*") if ".tmp" in p.name] == []
    assert Checkpointer(str(workdir / "checkpoints")).restore_latest(report=pytest.fail)[0] == 2


def test_a_workdir_keeps_its_run(tiny_cifar_root, tmp_path, capsys):
    from training.train import train_and_evaluate

    workdir = tmp_path / "run"
    first = train_and_evaluate(tiny_config(tiny_cifar_root), str(workdir))
    assert first["completed"] and json.loads((workdir / "run.json").read_text())["config"]["train_length"] == 4

    # Result-changing settings: refused before anything is loaded, naming each difference.
    with pytest.raises(RunMismatchError, match=r"train_length: 4 -> 30.*--new-run"):
        train_and_evaluate(tiny_config(tiny_cifar_root, train_length=30), str(workdir))
    with pytest.raises(RunMismatchError, match=r"model: 'resnet8' -> 'plain8'; recipe: 'custom' -> 'cifar10_paper'"):
        train_and_evaluate(tiny_config(tiny_cifar_root, model="plain8", recipe="cifar10_paper"), str(workdir))
    # The same settings on other data (the folder may move, but not change).
    other = tmp_path / "other-data"
    shutil.copytree(tiny_cifar_root, other)
    for path in sorted((other / "train" / "cat").iterdir())[:10]:
        path.unlink()
    with pytest.raises(RunMismatchError, match=r"data train_examples: 300 -> 290"):
        train_and_evaluate(tiny_config(other), str(workdir))
    moved = tmp_path / "moved-data"
    shutil.copytree(tiny_cifar_root, moved)

    # Watching and keeping settings may change; the finished run is not trained again.
    capsys.readouterr()
    again = train_and_evaluate(
        tiny_config(moved, log_every_steps=1, checkpoint_every_steps=3, max_train_seconds=100.0), str(workdir)
    )
    assert "already complete (4/4 steps)" in capsys.readouterr().out
    assert again["steps"] == 4 and again["eval_error"] == first["eval_error"]

    # --new-run: the old run's files move aside (nothing deleted) and a new run starts at step 0.
    (workdir / "notes.txt").write_text("mine")
    new = train_and_evaluate(tiny_config(tiny_cifar_root, train_length=6), str(workdir), new_run=True)
    assert new["steps"] == 6 and "--new-run: the earlier run's files are now in" in capsys.readouterr().out
    (previous,) = (workdir / "previous").iterdir()
    assert json.loads((previous / "final_metrics.json").read_text())["steps"] == 4
    assert (previous / "checkpoints").is_dir() and (workdir / "notes.txt").read_text() == "mine"
    assert json.loads((workdir / "run.json").read_text())["config"]["train_length"] == 6


def test_history_without_an_intact_checkpoint_is_not_restarted_silently(tiny_cifar_root, tmp_path):
    from training.train import train_and_evaluate

    workdir = tmp_path / "run"
    (workdir / "checkpoints").mkdir(parents=True)
    (workdir / "history.json").write_text(json.dumps([{"step": 15, "eval_error": 0.5}]))
    (workdir / "checkpoints" / "ckpt-000000015.npz").write_bytes(b"truncated")
    with pytest.raises(RunStateError, match=r"\(history\.json: 1 evaluation rows up to step 15\) but no intact checkpoint.*--new-run"):
        train_and_evaluate(tiny_config(tiny_cifar_root), str(workdir))
    assert (workdir / "checkpoints" / "ckpt-000000015.npz.damaged").exists()
    metrics = train_and_evaluate(tiny_config(tiny_cifar_root, train_length=2), str(workdir), new_run=True)
    assert metrics["steps"] == 2


def test_checkpoints_by_wall_time(tiny_cifar_root, tmp_path):
    from training.train import train_and_evaluate

    # A tiny interval: every step is past it; the step interval alone would give only step 1000.
    config = tiny_config(tiny_cifar_root, checkpoint_every_steps=1000, checkpoint_every_seconds=1e-6, keep_checkpoints=10)
    train_and_evaluate(config, str(tmp_path / "run"))
    assert Checkpointer(str(tmp_path / "run" / "checkpoints")).steps() == [1, 2, 3, 4]


def test_sigterm_checkpoints_the_current_step_and_exits_143(tiny_cifar_root, tmp_path, monkeypatch, capsys):
    from training import engine_tf
    from training.__main__ import main

    # SIGTERM arrives while step 3 trains; steps 2 and 4 are the regular checkpoints, 3 and 6 evaluate.
    real_train_steps = engine_tf.TensorFlowEngine.train_steps

    def terminated_during_step_3(self, pipeline, epoch, steps_per_epoch, start_step):
        for index, metrics in enumerate(real_train_steps(self, pipeline, epoch, steps_per_epoch, start_step), start_step + 1):
            if index == 3:
                os.kill(os.getpid(), signal.SIGTERM)
            yield metrics

    monkeypatch.setattr(engine_tf.TensorFlowEngine, "train_steps", terminated_during_step_3)
    handler_before = signal.getsignal(signal.SIGTERM)
    workdir = tmp_path / "run"
    args = ["--config", "cifar10_paper", "--model", "resnet8", "--workdir", str(workdir)] + [
        f"--set={item}" for item in ("dataset=image_folder", f"data_dir={tiny_cifar_root}", "image_size=16",
                                     "global_batch_size=20", "train_length=6", "lr_boundaries=", "checkpoint_every_steps=2",
                                     "eval_every_steps=3", "xla=false")
    ]
    assert main(args) == 143
    assert "Stopped by SIGTERM at step 3/6; checkpoint written to" in capsys.readouterr().out
    assert Checkpointer(str(workdir / "checkpoints")).steps() == [2, 3]
    assert not (workdir / "history.json").exists()  # Stopping skipped the evaluation of step 3...
    assert signal.getsignal(signal.SIGTERM) == handler_before  # The loop's handler is gone with it.
    monkeypatch.setattr(engine_tf.TensorFlowEngine, "train_steps", real_train_steps)
    assert main(args) == 0
    assert "ckpt-000000003.npz at step 3." in capsys.readouterr().out
    assert json.loads((workdir / "final_metrics.json").read_text())["steps"] == 6
    assert [row["step"] for row in json.loads((workdir / "history.json").read_text())] == [3, 6]  # ...done on resume.


@pytest.mark.slow
def test_deterministic_resnet20_at_batch_128_repeats_bit_for_bit(tiny_cifar_root, tmp_path):
    # Two fresh processes on this multi-core CPU; without a single inter-op thread the weights
    # differed after one step.
    command = [
        sys.executable, "-m", "training", "--config", "cifar10_paper", "--model", "resnet20",
        "--set", "dataset=image_folder", "--set", f"data_dir={tiny_cifar_root}", "--set", "global_batch_size=128",
        "--set", "train_length=3", "--set", "lr_boundaries=", "--set", "deterministic=true", "--set", "eval_examples=20",
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_NUM_INTEROP_THREADS", None)
    digests = []
    for name in ("a", "b"):
        done = subprocess.run(command + ["--workdir", str(tmp_path / name)], env=env, capture_output=True, text=True, timeout=400)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "warning: deterministic" not in done.stdout
        weights = tmp_path / name / "last.weights.h5"
        import h5py

        with h5py.File(weights, "r") as handle:
            values = []
            handle.visititems(lambda key, item: values.append((key, item[()].tobytes())) if isinstance(item, h5py.Dataset) else None)
        assert len(values) > 60
        digests.append(hashlib.sha256(repr(sorted(values)).encode()).hexdigest())
    assert digests[0] == digests[1]
