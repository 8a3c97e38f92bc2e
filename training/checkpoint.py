"""Periodic checkpoints of the full training state, written atomically by the chief only.

A checkpoint ``<workdir>/checkpoints/ckpt-<step>.npz`` holds every model and optimizer variable (in the
engine's fixed order) and a JSON record of the loop's own state (step, warm-up flag, partial metrics,
elapsed time, best result). Files are written under a temporary name and renamed, so a run killed at any
moment leaves only complete checkpoints; the newest one is where a restarted run continues.
"""

from __future__ import annotations

import glob
import json
import os
import re
from typing import List, Optional, Tuple

import numpy as np

_NAME = re.compile(r"ckpt-(\d+)\.npz$")


class Checkpointer:
    """Saves and finds checkpoints in `directory`; only the chief (`is_chief`) writes.

    Args:
        directory: the checkpoint folder (created on the first save).
        is_chief: whether this process writes.
        keep: how many of the newest checkpoints to keep.
    """

    def __init__(self, directory: str, is_chief: bool = True, keep: int = 2):
        self.directory, self.is_chief, self.keep = directory, is_chief, keep

    def steps(self) -> List[int]:
        """Steps of the complete checkpoints present, oldest first."""
        found = []
        for path in glob.glob(os.path.join(self.directory, "ckpt-*.npz")):
            match = _NAME.search(os.path.basename(path))
            if match:
                found.append(int(match.group(1)))
        return sorted(found)

    def _path(self, step: int) -> str:
        return os.path.join(self.directory, f"ckpt-{step:09d}.npz")

    def save(self, step: int, arrays, loop_state: dict) -> None:
        """Write the checkpoint of `step` (chief only) and prune old ones."""
        if not self.is_chief:
            return
        os.makedirs(self.directory, exist_ok=True)
        path = self._path(step)
        temporary = path + ".tmp"
        payload = {f"v{i:05d}": np.asarray(a) for i, a in enumerate(arrays)}
        payload["loop_state"] = np.asarray(json.dumps(loop_state))
        with open(temporary, "wb") as handle:
            np.savez(handle, **payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        for old in self.steps()[: -self.keep]:
            os.remove(self._path(old))

    def restore_latest(self) -> Optional[Tuple[int, list, dict]]:
        """(step, arrays, loop_state) of the newest checkpoint, or None when there is none."""
        steps = self.steps()
        if not steps:
            return None
        with np.load(self._path(steps[-1]), allow_pickle=False) as data:
            names = sorted(k for k in data.files if k.startswith("v"))
            arrays = [data[name] for name in names]
            loop_state = json.loads(str(data["loop_state"]))
        return steps[-1], arrays, loop_state
