"""Periodic checkpoints of the full training state, written atomically by the chief only, with checksums.

A checkpoint is ``<workdir>/checkpoints/ckpt-<9-digit step>.npz``: every model and optimizer variable (in
the engine's fixed order) and a JSON record of the loop's own state (step, warm-up flag, partial
metrics, elapsed time, best result). Beside it, ``ckpt-<step>.json`` holds the file's size and sha256.
Both are written under temporary names, fsynced and renamed, so a run killed at any moment leaves only
complete checkpoints.

Restoring takes the newest checkpoint that is intact: its size and sha256 match the record (files of
earlier versions, without a record, must load completely). A damaged one is renamed to ``*.damaged``
(kept for inspection) and the previous one is used. Other files in the folder are ignored and never
deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from typing import Callable, List, Optional, Tuple

import numpy as np

from .workdir import write_failure

_NAME = re.compile(r"ckpt-(\d{9})\.npz")


def file_sha256(path: str) -> str:
    """The sha256 hex digest of the file at `path`."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _Damaged(Exception):
    """A checkpoint file that cannot be trusted; the message says why."""


class Checkpointer:
    """Saves and finds checkpoints in `directory`; only the chief (`is_chief`) writes.

    Args:
        directory: the checkpoint folder (created on the first save).
        is_chief: whether this process writes (saves, prunes and renames damaged files).
        keep: how many of the newest checkpoints to keep.
    """

    def __init__(self, directory: str, is_chief: bool = True, keep: int = 2):
        self.directory, self.is_chief, self.keep = directory, is_chief, keep

    def steps(self) -> List[int]:
        """Steps of the checkpoint files present (named ``ckpt-<9 digits>.npz``), oldest first."""
        if not os.path.isdir(self.directory):
            return []
        found = []
        for name in os.listdir(self.directory):
            match = _NAME.fullmatch(name)
            if match and os.path.isfile(os.path.join(self.directory, name)):
                found.append(int(match.group(1)))
        return sorted(found)

    def path(self, step: int) -> str:
        """The checkpoint file of `step`."""
        return os.path.join(self.directory, f"ckpt-{step:09d}.npz")

    def _record(self, step: int) -> str:
        return os.path.join(self.directory, f"ckpt-{step:09d}.json")

    def save(self, step: int, arrays, loop_state: dict) -> Optional[str]:
        """Write the checkpoint of `step` with its checksum record (chief only) and prune old ones.

        Returns the checkpoint's path (None on other processes).

        Raises:
            WorkdirWriteError: the folder is not writable or the disk is full; no temporary file is
                left and the older checkpoints are untouched.
        """
        if not self.is_chief:
            return None
        path, record = self.path(step), self._record(step)
        temporaries = (path + ".tmp", record + ".tmp")
        payload = {f"v{i:05d}": np.asarray(a) for i, a in enumerate(arrays)}
        payload["loop_state"] = np.asarray(json.dumps(loop_state))
        try:
            os.makedirs(self.directory, exist_ok=True)
            with open(temporaries[0], "wb") as handle:
                np.savez(handle, **payload)
                handle.flush()
                os.fsync(handle.fileno())
            summary = {"step": step, "bytes": os.path.getsize(temporaries[0]), "sha256": file_sha256(temporaries[0])}
            with open(temporaries[1], "w") as handle:
                json.dump(summary, handle)
                handle.flush()
                os.fsync(handle.fileno())
            # The data first: a crash between the renames leaves a complete file without its record,
            # which restoring checks by reading it whole (as for files of earlier versions).
            os.replace(temporaries[0], path)
            os.replace(temporaries[1], record)
        except OSError as error:
            for temporary in temporaries:
                try:
                    os.remove(temporary)
                except OSError:
                    pass  # Never written, or the folder refuses even that.
            kept = [s for s in self.steps() if s != step]
            raise write_failure(
                path, error,
                f"The training stopped; the older checkpoints in {self.directory} are intact "
                f"(steps {kept or 'none'}) and a rerun resumes from the newest.",
            ) from error
        for old in self.steps()[: -self.keep]:
            for stale in (self.path(old), self._record(old)):
                if os.path.exists(stale):
                    os.remove(stale)
        return path

    def _load(self, step: int) -> Tuple[list, dict]:
        """(arrays, loop_state) of the checkpoint of `step`, checked against its record; raises _Damaged."""
        path, record = self.path(step), self._record(step)
        if os.path.exists(record):
            try:
                with open(record) as handle:
                    expected = json.load(handle)
                size, digest = expected["bytes"], expected["sha256"]
            except (OSError, ValueError, KeyError, TypeError) as error:
                raise _Damaged(f"its checksum record {record} is unreadable: {error}") from error
            if os.path.getsize(path) != size:
                raise _Damaged(f"{os.path.getsize(path)} bytes where its record says {size}")
            if file_sha256(path) != digest:
                raise _Damaged("its sha256 differs from the one recorded when it was written")
        try:
            with np.load(path, allow_pickle=False) as data:
                names = sorted(k for k in data.files if k.startswith("v"))
                arrays = [data[name] for name in names]
                loop_state = json.loads(str(data["loop_state"]))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            raise _Damaged(f"it cannot be read: {error}") from error
        return arrays, loop_state

    def restore_latest(self, report: Optional[Callable[[str], None]] = None) -> Optional[Tuple[int, list, dict]]:
        """(step, arrays, loop_state) of the newest intact checkpoint, or None when there is none.

        Damaged checkpoints are skipped (and renamed to ``*.damaged`` by the chief); `report` receives
        one line about each.
        """
        for step in reversed(self.steps()):
            try:
                arrays, loop_state = self._load(step)
            except _Damaged as damage:
                line = f"Checkpoint {self.path(step)} is damaged ({damage})"
                if self.is_chief:
                    for name in (self.path(step), self._record(step)):
                        if os.path.exists(name):
                            os.replace(name, name + ".damaged")
                    line += f"; kept as {os.path.basename(self.path(step))}.damaged"
                if report is not None:
                    report(line + "; falling back to the previous checkpoint.")
                continue
            return step, arrays, loop_state
        return None
