"""What a run tells its user: the workdir it uses, progress lines with images/s and ETA, the model table's progress."""

import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from conftest import REPO_ROOT
from training.workdir import default_workdir

SMOKE = ["--set", "train_length=30", "--set", "lr_boundaries=10,20", "--set", "train_examples=2000"]


def test_smoke_run_and_main_job_get_different_workdirs():
    assert default_workdir("runs", "resnet20") == "runs/resnet20"
    smoke = default_workdir("runs", "resnet20", SMOKE)
    assert re.fullmatch(r"runs/resnet20-[0-9a-f]{8}", smoke)
    # The same overrides find their run again, however they are spelled.
    assert default_workdir("runs/", "ResNet20", ["--set=train_examples=2000", "--set", "lr_boundaries=10, 20",
                                                 "--set", "train_length=30"]) == smoke
    assert default_workdir("runs", "resnet20", SMOKE + ["--set", "train_length=31"]) != smoke
    assert default_workdir("runs", "resnet20", ["--distribution", "mirrored"]) != "runs/resnet20"
    # Logging, checkpoint and time-budget settings do not make a new run.
    assert default_workdir("runs", "resnet20", ["--set", "log_every_steps=10", "--set", "max_train_seconds=60"]) == "runs/resnet20"


def fake_checkout(tmp_path):
    """A copy of scripts/main.sh whose setup step and .venv python are stand-ins.

    The stand-in python answers ``-m training.workdir`` with the real module and, for the training
    command, records its PID and arguments instead of training.
    """
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "scripts" / "main.sh", root / "scripts" / "main.sh")
    (root / "scripts" / "setup.sh").write_text("#!/usr/bin/env bash\n")
    (root / "runs" / "data").mkdir(parents=True)
    (root / "runs" / "data" / ".complete").touch()
    python = root / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(
        "#!/usr/bin/env bash\n"
        'if [ "$2" = training.workdir ]; then\n'
        f'  PYTHONPATH="{REPO_ROOT}" exec "{sys.executable}" "$@"\n'
        "fi\n"
        'echo "$$ $*" >> "$(dirname "$0")/../../calls.txt"\n'
    )
    python.chmod(0o755)
    return root


def run_main(root, *args, **env):
    process = subprocess.Popen(
        ["bash", str(root / "scripts" / "main.sh"), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, **env),
    )
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    pid, _, command = (root / "calls.txt").read_text().splitlines()[-1].partition(" ")
    return process.pid, int(pid), command, out


def test_main_script_names_its_workdir_and_execs_training(tmp_path):
    root = fake_checkout(tmp_path)
    script_pid, training_pid, command, out = run_main(root)
    assert "Workdir: runs/resnet20\n" in out
    assert "--workdir runs/resnet20 --curves runs/resnet20/curves.png" in command
    # exec: the training command runs in the script's own process, so killing that PID stops training.
    assert training_pid == script_pid

    _, _, smoke_command, out = run_main(root, *SMOKE)
    smoke = default_workdir("runs", "resnet20", SMOKE)
    assert f"Workdir: {smoke}\n" in out and f"--workdir {smoke} " in smoke_command
    assert smoke_command.endswith(" ".join(SMOKE))

    _, _, command, out = run_main(root, *SMOKE, WORKDIR="elsewhere/r20")
    assert "Workdir: elsewhere/r20\n" in out and "--workdir elsewhere/r20 " in command


def test_log_lines_show_true_images_per_second_and_eta(tiny_cifar_root, tmp_path, capsys, monkeypatch):
    from training import engine_tf
    from training.config import TrainConfig
    from training.train import train_and_evaluate

    # An independent clock around the training steps: from the first step's start to the last one's end.
    marks = []
    original = engine_tf.TensorFlowEngine.train_steps

    def timed_train_steps(self, *args):
        if not marks:
            marks.append(time.perf_counter())
        for item in original(self, *args):
            yield item
            marks.append(time.perf_counter())

    monkeypatch.setattr(engine_tf.TensorFlowEngine, "train_steps", timed_train_steps)
    # 3 steps per epoch and a log line every 4 steps: most lines fall inside an epoch, where the old
    # loop restarted its step clock and so counted only a fraction of the interval's time.
    config = TrainConfig(
        model="resnet8", dataset="image_folder", data_dir=str(tiny_cifar_root), image_size=16, global_batch_size=100,
        train_length=14, lr_boundaries=(), log_every_steps=4, eval_every_steps=1000, checkpoint_every_steps=1000,
        xla=False, seed=1,
    )
    metrics = train_and_evaluate(config, str(tmp_path / "run"))
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == ["4/14", "8/14", "12/14", "14/14"], out
    for line in lines:
        assert re.search(r"\d+ img/s\)? ETA (\d+h\d\dm|\d+m\d\ds|\d+s)$", line), line
    assert lines[-1].endswith("ETA 0s")  # The schedule is done.

    reference = 14 * 100 / (marks[-1] - marks[0])
    rates = [float(re.search(r"(\d+) img/s", line).group(1)) for line in lines[:3]]
    # Seconds the three interval lines account for (12 steps), against the independent clock.
    implied = sum(400 / rate for rate in rates) * 14 / 12
    assert 0.5 < (14 * 100 / implied) / reference < 2.0, (rates, reference)
    assert 0.5 < metrics["images_per_second"] / reference < 2.0, (metrics["images_per_second"], reference)


def test_model_table_reports_progress_per_model(capsys):
    from keras_resnets import summary

    others = [name for name in summary.list_models(family="cifar") if name not in ("resnet20", "plain20")]
    summary.main(["--family", "cifar", "--skip", *others])
    captured = capsys.readouterr()
    assert re.fullmatch(r"\[1/2\] (resnet20|plain20): [\d,]+ params, built in \d+\.\ds\n"
                        r"\[2/2\] (resnet20|plain20): [\d,]+ params, built in \d+\.\ds\n", captured.err), captured.err
    assert captured.out.startswith("| model |") and "resnet20" in captured.out and "built" not in captured.out
