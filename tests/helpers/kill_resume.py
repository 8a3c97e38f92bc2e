"""Kill a training command (SIGKILL, or SIGTERM) after its first checkpoint, resume it, and read back weights."""

import os
import signal
import subprocess
import time

import h5py


def h5_arrays(path):
    """Every dataset of an HDF5 weights file, by path."""
    arrays = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda name, item: arrays.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None)
    return arrays


def run_whole_then_killed_and_resumed(command, env, tmp_path, delay=0.0, stop_signal=signal.SIGKILL):
    """Run `command` uninterrupted in ``tmp_path/whole``; run it again in ``tmp_path/interrupted``, send it
    `stop_signal` `delay` seconds after its first checkpoint appears, and rerun it there to resume.

    SIGKILL leaves only the checkpoints written before; SIGTERM asks the run to write one and exit 143.

    Returns:
        ``(whole, interrupted, resumed)``: the two workdirs and the resumed run's CompletedProcess.
    """
    reference = subprocess.run(command + ["--workdir", str(tmp_path / "whole")], env=env, capture_output=True, text=True, timeout=300)
    assert reference.returncode == 0, reference.stderr[-3000:]

    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen(command + ["--workdir", str(interrupted)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = interrupted / "checkpoints"
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if checkpoints.is_dir() and any(name.endswith(".npz") for name in os.listdir(checkpoints)):
            break
        time.sleep(0.02)
    time.sleep(delay)
    process.send_signal(stop_signal)
    process.wait(timeout=240)
    expected = -signal.SIGKILL if stop_signal == signal.SIGKILL else 128 + stop_signal
    assert process.returncode == expected, f"the run finished before it could be stopped ({delay:.2f}s): {process.returncode}"
    assert not (interrupted / "final_metrics.json").exists()

    resumed = subprocess.run(command + ["--workdir", str(interrupted)], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return tmp_path / "whole", interrupted, resumed
