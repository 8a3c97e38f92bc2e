"""What a run writes as it goes: history (CSV + JSON), TensorBoard scalars, and console progress."""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from typing import List, Optional

HISTORY_FIELDS = (
    "step", "epoch", "learning_rate", "train_loss", "train_error", "eval_loss", "eval_error",
    "train_time_s", "images_per_second",
)


def write_json(path: str, payload) -> None:
    """Write JSON atomically (temporary file + rename)."""
    temporary = path + ".tmp"
    with open(temporary, "w") as handle:
        json.dump(payload, handle, indent=2, sort_keys=False)
        handle.write("\n")
    os.replace(temporary, path)


class RunLog:
    """History rows (one per evaluation), TensorBoard scalars and console output; chief only writes.

    On resume the rows recorded after the restored checkpoint are dropped, so the history of a resumed
    run matches an uninterrupted one.
    """

    def __init__(self, workdir: str, is_chief: bool, resume_step: int, total_steps: int):
        self.workdir, self.is_chief, self.total_steps = workdir, is_chief, total_steps
        self.rows: List[dict] = []
        self._writer = None
        self._progress = None
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
        if sys.stdout.isatty():
            import keras

            self._progress = keras.utils.Progbar(total_steps, stateful_metrics=["lr", "loss", "train_err", "eval_err"])
        self._last_print = time.time()

    @property
    def tensorboard(self) -> bool:
        """Whether TensorBoard logs are written."""
        return self._writer is not None

    def scalars(self, step: int, values: dict) -> None:
        """Log training scalars (TensorBoard and progress bar)."""
        if not self.is_chief:
            return
        if self._writer is not None:
            import tensorflow as tf
            from tensorflow.core.framework import summary_pb2

            # tf.summary.write with the "scalars" plugin tag is what tf.summary.scalar writes, without
            # needing the tensorboard package installed.
            metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
            with self._writer.as_default(step=step):
                for name, value in values.items():
                    tf.summary.write(name, tf.constant(value, tf.float32), metadata=metadata)
        if "train_loss" not in values:
            return
        if self._progress is not None:
            shown = {"lr": values.get("learning_rate"), "loss": values["train_loss"], "train_err": values.get("train_error")}
            self._progress.update(step, [(k, v) for k, v in shown.items() if v is not None])
        else:  # Logs (not a terminal): one short line per logging interval.
            print(f"step {step}/{self.total_steps} lr {values['learning_rate']:.4g} train_loss {values['train_loss']:.4f} "
                  f"train_err {100 * values['train_error']:.2f}%", flush=True)

    def add_row(self, row: dict) -> None:
        """Record an evaluation row, rewrite history.csv/json and print it."""
        self.rows.append(row)
        if not self.is_chief:
            return
        self.scalars(row["step"], {"eval_loss": row["eval_loss"], "eval_error": row["eval_error"]})
        write_json(os.path.join(self.workdir, "history.json"), self.rows)
        temporary = os.path.join(self.workdir, "history.csv.tmp")
        with open(temporary, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=HISTORY_FIELDS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.rows)
        os.replace(temporary, os.path.join(self.workdir, "history.csv"))
        if self._progress is None:
            print(
                f"step {row['step']}/{self.total_steps} epoch {row['epoch']:.2f} lr {row['learning_rate']:.4g} "
                f"train_loss {row['train_loss']:.4f} train_err {100 * row['train_error']:.2f}% "
                f"eval_loss {row['eval_loss']:.4f} eval_err {100 * row['eval_error']:.2f}% "
                f"({row['images_per_second']:.0f} img/s)",
                flush=True,
            )
        else:
            sys.stdout.write("\n")

    def message(self, text: str) -> None:
        """Print a line (chief only)."""
        if self.is_chief:
            print(text, flush=True)

    def close(self) -> None:
        """Flush TensorBoard."""
        if self._writer is not None:
            self._writer.flush()
