"""One GPU sitting of many CIFAR runs: ``python -m training.sitting --data-dir D --runs-dir R --minutes M RUN ...``.

A sitting is the time one machine is held. It trains a queue of runs, a few at once as separate
processes on the one accelerator, and stops every run cleanly (a checkpoint, then exit) when the
sitting's time is up. Every run has its own workdir under ``--runs-dir``, so the same command on another
machine, with that folder copied back, resumes each run where it stopped and skips those already
complete: a full Figure 6 set can be spread over as many sittings as it takes.

RUN is ``MODEL`` or ``MODEL@PRECISION`` (``resnet20``, ``plain56@float32``) for ``python -m training``
with the ``cifar10_paper`` recipe and the fast JAX engine (precision default ``--precision``), or
``torch:MODEL`` for the same-data PyTorch control (``training.torch_control``). Runs start in the
order given, ``--parallel`` at a time (the PyTorch controls in a slot of their own); a run is started
only while at least ``--min-start-minutes`` remain. Several processes share the GPU: while one compiles,
evaluates or writes a checkpoint, another trains.

A fast-engine run that fails is restarted once with the standard JAX engine, so one engine's fault
does not cost the sitting. At the end it prints and writes ``<runs-dir>/sitting-<time>.json``: per run
the steps reached, whether it is complete, its last training and test error and its images/s, and the
aggregate images/s of the sitting.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence

STEPS_PER_EPOCH = 390  # CIFAR-10's 50,000 training images at batch 128.


class Run:
    """One queued training run: its command line, workdir and process."""

    def __init__(self, spec: str, args: argparse.Namespace):
        self.spec = spec
        self.is_control = spec.startswith("torch:")
        if self.is_control:
            self.model, self.precision = spec[len("torch:"):], "float32"
            self.name = f"torch_{self.model}"
        else:
            self.model, _, precision = spec.partition("@")
            self.precision = precision or args.precision
            self.name = self.model if self.precision == args.precision else f"{self.model}_{self.precision}"
        self.workdir = os.path.join(args.runs_dir, self.name)
        self.engine = "jax_fast"
        self.process: Optional[subprocess.Popen] = None
        self.log_handle = None
        self.started = self.ended = None
        self.returncode: Optional[int] = None
        self.retried = False

    def command(self, args: argparse.Namespace, seconds_left: float) -> List[str]:
        """The command line for this run, given the seconds left in the sitting."""
        if self.is_control:
            return [sys.executable, "-m", "training.torch_control", "--data-dir", args.data_dir, "--workdir",
                    self.workdir, "--model", self.model, "--device", args.torch_device,
                    "--max-seconds", f"{max(seconds_left - 60, 1):.0f}"]
        return [sys.executable, "-m", "training", "--config", "cifar10_paper", "--model", self.model,
                "--workdir", self.workdir, "--set", "dataset=image_folder", "--set", f"data_dir={args.data_dir}",
                "--set", f"mixed_precision={self.precision}", "--set", f"engine={self.engine}",
                "--set", "input_pipeline=numpy", "--set", "eval_batch_size=1000",
                "--set", f"log_every_steps={STEPS_PER_EPOCH}", "--set", f"checkpoint_every_steps={10 * STEPS_PER_EPOCH}",
                "--set", "checkpoint_every_seconds=120", *args.set_args]

    def complete(self) -> bool:
        """Whether the workdir holds a finished run."""
        metrics = _read_json(os.path.join(self.workdir, "final_metrics.json"))
        return bool(metrics and metrics.get("completed"))


def _read_json(path: str):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse and check the command line (``--help`` lists the options)."""
    parser = argparse.ArgumentParser(prog="python -m training.sitting", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="RUN", help="MODEL, MODEL@PRECISION or torch:MODEL, in priority order")
    parser.add_argument("--data-dir", required=True, help="the cifar10-jpeg folder (train/ and test/)")
    parser.add_argument("--runs-dir", required=True, help="one workdir per run is kept here (resumed when rerun)")
    parser.add_argument("--minutes", type=float, required=True, help="length of the sitting")
    parser.add_argument("--parallel", type=int, default=3, help="training processes at once (default 3)")
    parser.add_argument("--precision", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--min-start-minutes", type=float, default=2.0,
                        help="start no run with less time left than this (default 2)")
    parser.add_argument("--torch-device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--set", dest="set_args", action="append", default=[], metavar="FIELD=VALUE",
                        help="extra override for every `python -m training` run (e.g. train_length=200 for a smoke test)")
    args = parser.parse_args(argv)
    if not args.minutes > 0 or args.parallel < 1:
        parser.error(f"--minutes must be above 0 and --parallel at least 1. Received: --minutes={args.minutes} --parallel={args.parallel}")
    args.set_args = [part for value in args.set_args for part in ("--set", value)]
    for spec in args.runs:
        model = spec.split(":", 1)[-1].split("@", 1)[0]
        if not model or "@" in spec.split("@", 1)[-1] or spec.count(":") > 1 or (":" in spec and not spec.startswith("torch:")):
            parser.error(f"A RUN is MODEL, MODEL@PRECISION or torch:MODEL. Received: {spec!r}")
        precision = spec.partition("@")[2]
        if precision and precision not in ("bfloat16", "float32"):
            parser.error(f"Unknown precision in RUN {spec!r}; accepted: bfloat16, float32")
    return args


def _start(run: Run, args: argparse.Namespace, seconds_left: float) -> None:
    os.makedirs(run.workdir, exist_ok=True)
    run.log_handle = open(os.path.join(args.runs_dir, f"{run.name}.log"), "a")
    command = run.command(args, seconds_left)
    run.log_handle.write(f"\n$ {' '.join(command)}\n")
    run.log_handle.flush()
    run.process = subprocess.Popen(command, stdout=run.log_handle, stderr=subprocess.STDOUT)
    run.started = time.time()
    print(f"[{_clock()}] started {run.name} ({'torch' if run.is_control else run.engine}, {run.precision})", flush=True)


def _clock() -> str:
    return time.strftime("%H:%M:%S")


def _finish(run: Run) -> None:
    run.returncode = run.process.returncode
    run.ended = time.time()
    run.log_handle.close()
    print(f"[{_clock()}] {run.name} exited with {run.returncode} after {run.ended - run.started:.0f}s", flush=True)


def summarise(runs: Sequence[Run], wall_seconds: float, images_before: Dict[str, int]) -> dict:
    """Per-run progress from the workdirs, and the sitting's aggregate training images/s."""
    rows, images = [], 0
    for run in runs:
        history = _read_json(os.path.join(run.workdir, "history.json")) or []
        metrics = _read_json(os.path.join(run.workdir, "final_metrics.json")) or {}
        last = history[-1] if history else {}
        step = int(last.get("step", 0))
        trained = max(step - images_before.get(run.name, 0), 0) * 128
        images += trained
        rates = [row["images_per_second"] for row in history[-5:] if row.get("images_per_second")]
        rows.append({
            "run": run.name, "framework": "torch" if run.is_control else "jax", "engine": None if run.is_control else run.engine,
            "precision": run.precision, "step": step, "complete": run.complete(), "exit_status": run.returncode,
            "train_error": last.get("train_error"), "test_error": last.get("eval_error"),
            "images_per_second_recent": sum(rates) / len(rates) if rates else None,
            "images_this_sitting": trained, "final_metrics": metrics or None,
        })
    return {"wall_seconds": wall_seconds, "images_trained": images,
            "aggregate_images_per_second": images / wall_seconds if wall_seconds > 0 else None, "runs": rows}


def run_sitting(args: argparse.Namespace) -> dict:
    """Train the queue until the sitting's time is up; returns the summary (also written as JSON)."""
    started = time.time()
    deadline = started + 60 * args.minutes
    os.makedirs(args.runs_dir, exist_ok=True)
    runs = [Run(spec, args) for spec in args.runs]
    images_before = {}
    for run in runs:
        history = _read_json(os.path.join(run.workdir, "history.json")) or []
        images_before[run.name] = int(history[-1]["step"]) if history else 0
    queue = [run for run in runs if not run.complete()]
    for run in runs:
        if run not in queue:
            print(f"[{_clock()}] {run.name} is already complete", flush=True)
    active: List[Run] = []
    stopping = False
    while queue or active:
        now = time.time()
        for run in list(active):
            if run.process.poll() is not None:
                _finish(run)
                active.remove(run)
                failed = run.returncode not in (0, 143) and not stopping  # Not a stop the sitting asked for.
                if failed and not run.is_control and run.engine == "jax_fast" and not run.retried:
                    run.engine, run.retried = "standard", True
                    print(f"[{_clock()}] {run.name}: the fast engine failed; retrying with the standard engine", flush=True)
                    queue.insert(0, run)
        if now >= deadline and not stopping:
            stopping = True
            queue.clear()
            for run in active:
                if not run.is_control:  # The control stops itself (--max-seconds) at an epoch end.
                    run.process.send_signal(signal.SIGTERM)
            print(f"[{_clock()}] time is up: asked {len(active)} runs to checkpoint and stop", flush=True)
        if stopping and now >= deadline + 45:
            for run in active:
                run.process.kill()
        seconds_left = deadline - now
        for kind in (False, True):  # Training runs, then the control's own slot.
            slots = 1 if kind else args.parallel
            while not stopping and seconds_left >= 60 * args.min_start_minutes and \
                    sum(r.is_control == kind for r in active) < slots:
                candidates = [r for r in queue if r.is_control == kind]
                if not candidates:
                    break
                run = candidates[0]
                queue.remove(run)
                _start(run, args, seconds_left)
                active.append(run)
        if not active and (stopping or seconds_left < 60 * args.min_start_minutes):
            break
        time.sleep(1.0)
    summary = summarise(runs, time.time() - started, images_before)
    path = os.path.join(args.runs_dir, time.strftime("sitting-%Y%m%d-%H%M%S.json"))
    with open(path + ".tmp", "w") as handle:
        json.dump(summary, handle, indent=2)
    os.replace(path + ".tmp", path)
    print(f"\nSitting of {summary['wall_seconds']:.0f}s: {summary['images_trained']} training images, "
          f"{summary['aggregate_images_per_second'] or 0:.0f} images/s in all (every run together)")
    for row in summary["runs"]:
        error = lambda value: "-" if value is None else f"{100 * value:.2f}%"
        rate = row["images_per_second_recent"]
        print(f"  {row['run']:18s} step {row['step']:6d} {'complete' if row['complete'] else 'resumable':9s} "
              f"train err {error(row['train_error']):>7s} test err {error(row['test_error']):>7s} "
              f"{'-' if rate is None else f'{rate:.0f}':>7s} img/s (recent epochs)")
    print(f"Summary written to {path}")
    return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point."""
    run_sitting(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
