"""What a run writes as it goes: history (CSV + JSON), TensorBoard scalars, and console progress."""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from typing import List, Optional

from .workdir import atomic_write

HISTORY_FIELDS = (
    "step", "epoch", "learning_rate", "train_loss", "train_error", "eval_loss", "eval_error",
    "train_time_s", "images_per_second",
)


def format_duration(seconds: Optional[float]) -> str:
    """Seconds as ``1h02m``, ``4m05s`` or ``42s``; ``?`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(max(seconds, 0.0)))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def write_json(path: str, payload) -> None:
    """Write JSON atomically (temporary file + rename); WorkdirWriteError naming `path` on failure."""

    def write(handle):
        json.dump(payload, handle, indent=2, sort_keys=False)
        handle.write("\n")

    atomic_write(path, write)


class RunLog:
    """History rows (one per evaluation), TensorBoard scalars and console output; chief only writes.

    On resume the rows recorded after the restored checkpoint are dropped, so the history of a resumed
    run matches an uninterrupted one.
    """

    def __init__(self, workdir: str, is_chief: bool, resume_step: int, total_steps: int):
        self.workdir, self.is_chief, self.total_steps = workdir, is_chief, total_steps
        self.rows: List[dict] = []
        self._writer = None
        # On a terminal the training line is rewritten in place; logs get one line per interval.
        self._terminal = sys.stdout.isatty()
        self._open_line = False
        history = os.path.join(workdir, "history.json")
        if os.path.exists(history):
            with open(history) as handle:
                self.rows = [row for row in json.load(handle) if row["step"] <= resume_step]
        if not is_chief:
            return
        try:
            import tensorflow as tf  # TensorBoard needs it; JAX-only machines go without.

            self._writer = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))
        except ImportError:
            self._writer = None

    @property
    def tensorboard(self) -> bool:
        """Whether TensorBoard logs are written."""
        return self._writer is not None

    def scalars(self, step: int, values: dict) -> None:
        """Write scalars to TensorBoard (chief only, when TensorFlow is installed)."""
        if not self.is_chief or self._writer is None:
            return
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2

        # tf.summary.write with the "scalars" plugin tag is what tf.summary.scalar writes, without
        # needing the tensorboard package installed.
        metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
        with self._writer.as_default(step=step):
            for name, value in values.items():
                tf.summary.write(name, tf.constant(value, tf.float32), metadata=metadata)

    def _print(self, line: str, final: bool) -> None:
        """Print a console line; on a terminal a non-final line is overwritten by the next one."""
        if not self._terminal:
            print(line, flush=True)
            return
        sys.stdout.write("\r" + line + "\x1b[K" + ("\n" if final else ""))
        sys.stdout.flush()
        self._open_line = not final

    def training_line(self, step: int, values: dict, images_per_second: float, eta_s: Optional[float]) -> None:
        """Log one training interval: TensorBoard scalars and a console line with images/s and the ETA.

        Args:
            step: the step reached.
            values: ``train_loss``, ``train_error`` and ``learning_rate`` of the interval.
            images_per_second: training throughput over the interval.
            eta_s: estimated seconds until the end of the schedule (None: unknown yet).
        """
        if not self.is_chief:
            return
        self.scalars(step, {**values, "images_per_second": images_per_second})
        self._print(
            f"step {step}/{self.total_steps} lr {values['learning_rate']:.4g} train_loss {values['train_loss']:.4f} "
            f"train_err {100 * values['train_error']:.2f}% {images_per_second:.0f} img/s ETA {format_duration(eta_s)}",
            final=False,
        )

    def add_row(self, row: dict, eta_s: Optional[float] = None) -> None:
        """Record an evaluation row, rewrite history.csv/json and print it with the ETA of the schedule."""
        self.rows.append(row)
        if not self.is_chief:
            return
        self.scalars(row["step"], {"eval_loss": row["eval_loss"], "eval_error": row["eval_error"]})
        write_json(os.path.join(self.workdir, "history.json"), self.rows)

        def write_csv(handle):
            writer = csv.DictWriter(handle, fieldnames=HISTORY_FIELDS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.rows)

        atomic_write(os.path.join(self.workdir, "history.csv"), write_csv)
        self._print(
            f"step {row['step']}/{self.total_steps} epoch {row['epoch']:.2f} lr {row['learning_rate']:.4g} "
            f"train_loss {row['train_loss']:.4f} train_err {100 * row['train_error']:.2f}% "
            f"eval_loss {row['eval_loss']:.4f} eval_err {100 * row['eval_error']:.2f}% "
            f"({row['images_per_second']:.0f} img/s) ETA {format_duration(eta_s)}",
            final=True,
        )

    def message(self, text: str) -> None:
        """Print a line (chief only)."""
        if self.is_chief:
            if self._open_line:
                sys.stdout.write("\n")
                self._open_line = False
            print(text, flush=True)

    def close(self) -> None:
        """End an open terminal line and flush TensorBoard."""
        if self._open_line:
            sys.stdout.write("\n")
            self._open_line = False
        if self._writer is not None:
            self._writer.flush()
