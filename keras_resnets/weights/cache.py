"""The cache of converted weights: Keras-native ``.weights.h5`` files, one per weight record.

Loading cached weights needs no network request and no conversion. The cache lives in
``$KERAS_RESNETS_CACHE``, default ``$HF_HOME/keras_resnets`` (``~/.cache/huggingface/keras_resnets``).
Entries are written to a temporary file and renamed into place, under a file lock, so concurrent
processes never read a half-written entry and convert a weight set only once. The sha256 of each
converted file is recorded in its metadata at conversion and checked on every lookup: an altered,
truncated or swapped entry is never used, and the loader re-creates it from the verified download.
"""

from __future__ import annotations

import json
import os
import pathlib
import uuid
from typing import Optional

from keras_resnets.weights import hub

CACHE_ENV = "KERAS_RESNETS_CACHE"
ENTRY_FORMAT_VERSION = 2  # 2: metadata records the sha256 of the converted file.
LOCK_TIMEOUT_S = 30 * 60  # A slow first download of ResNet-152 (230 MB) must not time out waiters.


def cache_root() -> pathlib.Path:
    """Folder of the converted-weights cache (``$KERAS_RESNETS_CACHE`` or ``$HF_HOME/keras_resnets``)."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return pathlib.Path(configured).expanduser()
    from huggingface_hub import constants

    return pathlib.Path(constants.HF_HOME) / "keras_resnets"


class CacheEntry:
    """The cached Keras weights of one record: ``<name>.weights.h5`` plus a ``.json`` describing its source."""

    def __init__(self, record):
        self.record = record
        revision = record.revision or "unpinned"
        folder = cache_root() / "converted" / record.repo_id.replace("/", "--") / revision
        self.weights_path = folder / f"{record.name}.weights.h5"
        self.meta_path = folder / f"{record.name}.json"
        self.lock_path = folder / f"{record.name}.lock"

    def expected_meta(self) -> dict:
        """What the metadata of a valid entry must say."""
        return {
            "format_version": ENTRY_FORMAT_VERSION,
            "weights": self.record.name,
            "repo_id": self.record.repo_id,
            "revision": self.record.revision,
            "filename": self.record.filename,
        }

    def lookup(self) -> Optional[pathlib.Path]:
        """The cached weights file if a complete, matching entry exists whose file still has the sha256
        recorded when it was converted, else None (the caller then converts it again)."""
        if not self.weights_path.is_file():
            return None
        try:
            meta = json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            return None
        expected = self.expected_meta()
        if any(meta.get(key) != value for key, value in expected.items()):
            return None
        if self.record.sha256 is not None and meta.get("source_sha256") != self.record.sha256:
            return None
        try:
            if hub.file_sha256(self.weights_path) != meta.get("weights_sha256"):
                return None
        except OSError:
            return None
        return self.weights_path

    def recorded_sha256(self) -> Optional[str]:
        """The sha256 of the weights file recorded in this entry's metadata (None if unreadable)."""
        try:
            value = json.loads(self.meta_path.read_text()).get("weights_sha256")
        except (OSError, ValueError, AttributeError):
            return None
        return value if isinstance(value, str) else None

    def lock(self):
        """An inter-process lock (``filelock.FileLock``) held while this entry is being created."""
        import filelock  # Here, not at the top: listing weights must stay quick.

        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        return filelock.FileLock(str(self.lock_path), timeout=LOCK_TIMEOUT_S)

    def write(self, model, source_sha256: str, extra: Optional[dict] = None) -> pathlib.Path:
        """Save `model`'s weights as this entry (atomically: temp file, then rename; metadata last)."""
        from keras_resnets.weights import fingerprint  # Imports Keras; listing the cache must not.

        self.weights_path.parent.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex[:8]
        temporary_weights = self.weights_path.with_name(f".{self.record.name}.{token}.weights.h5")
        temporary_meta = self.meta_path.with_name(f".{self.record.name}.{token}.json")
        try:
            fingerprint.save_weights(model, str(temporary_weights))
            weights_sha256 = hub.file_sha256(temporary_weights)
            os.replace(temporary_weights, self.weights_path)
            meta = dict(self.expected_meta(), source_sha256=source_sha256, weights_sha256=weights_sha256,
                        **(extra or {}))
            temporary_meta.write_text(json.dumps(meta, indent=1))
            os.replace(temporary_meta, self.meta_path)
        finally:
            for leftover in (temporary_weights, temporary_meta):
                if leftover.exists():
                    leftover.unlink()
        return self.weights_path
