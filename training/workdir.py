"""Which workdir a run uses, and what a workdir remembers about the run it holds.

``run.json`` records the run a workdir holds: the config fields that change the result and the identity
of the data (class names, example counts, a hash of the labels in order; not the data's location). A
rerun whose settings differ is refused (:class:`RunMismatchError`) before it can resume or finish that
run with other settings; ``--new-run`` (``new_run=True``) moves the old run's files aside instead.

Standard library only: ``scripts/main.sh`` asks this module for the workdir of its arguments
(``python -m training.workdir runs resnet20 --set train_length=30``), which must not wait for
TensorFlow to load.
"""

from __future__ import annotations

import argparse
import datetime
import errno as errno_lib
import hashlib
import json
import os
import sys
from typing import Callable, Dict, List, Optional, Sequence

# Fields that change how a run is watched or kept, not what it computes: they may differ between the
# runs of one workdir (a resumed run may log more often or get a new time budget). Everything else in
# TrainConfig changes the result. With `warmup_lr` the logging interval counts too (the warm-up's end
# is checked at log points): see `result_fields`.
RESUMABLE_FIELDS = frozenset({
    "log_every_steps", "checkpoint_every_steps", "checkpoint_every_seconds", "keep_checkpoints",
    "max_train_seconds", "accuracy_targets", "data_dir", "manual_dir", "tpu_address", "fast_engine_loop",
    "fused_batch_norm", "cpu_conv_chunk_bytes",
})


def _override_arguments(args: Sequence[str]) -> List[str]:
    """The ``field=value`` overrides in training command-line arguments (``--set``, ``--distribution``)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--distribution", default=None)
    known, _ = parser.parse_known_args(list(args))
    return list(known.set) + ([f"distribution={known.distribution}"] if known.distribution else [])


def result_overrides(args: Sequence[str]) -> Dict[str, str]:
    """The overrides in `args` that change a run's result: field -> value text (the last one wins).

    Whitespace is dropped so that ``lr_boundaries=10, 20`` and ``lr_boundaries=10,20`` are one run.

    Raises:
        ValueError: an override without ``=``.
    """
    changes = {}
    for item in _override_arguments(args):
        field, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"Overrides take the form field=value. Received: {item!r}")
        field = field.strip()
        if field not in RESUMABLE_FIELDS:
            changes[field] = "".join(value.split())
    return changes


def default_workdir(runs_dir: str, model: str, args: Sequence[str] = ()) -> str:
    """``<runs_dir>/<model>`` for the recipe as it is, ``<runs_dir>/<model>-<8 hex>`` with overrides.

    The suffix is a hash of the result-changing overrides in `args` (sorted by field), so a 30-step
    smoke run and the full schedule never share checkpoints, while the same overrides find their run
    again. Overrides of fields in ``RESUMABLE_FIELDS`` (logging, checkpoints, time budget) keep the
    plain name.
    """
    changes = result_overrides(args)
    name = model.lower()
    if changes:
        text = "\n".join(f"{field}={changes[field]}" for field in sorted(changes))
        name += "-" + hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{runs_dir.rstrip('/')}/{name}"


RUN_FILE = "run.json"
# Everything a run writes into its workdir; --new-run moves these (and nothing else) aside.
RUN_OUTPUTS = (
    RUN_FILE, "config.json", "history.json", "history.csv", "tensorboard", "checkpoints", "last.weights.h5",
    "best.weights.h5", "final_metrics.json", "pixel_mean.npy", "curves.png",
)
PREVIOUS_DIR = "previous"


class RunMismatchError(ValueError):
    """The workdir holds a run with other result-changing settings or data."""


class RunStateError(ValueError):
    """The workdir's files do not allow resuming (history without an intact checkpoint)."""


class WorkdirWriteError(OSError):
    """A file of the workdir could not be written (read-only, full, or not a folder)."""

    def __init__(self, message: str, error: Optional[OSError] = None):
        super().__init__(message)
        self.errno = getattr(error, "errno", None)


def write_failure(path: str, error: OSError, consequence: str = "") -> WorkdirWriteError:
    """The WorkdirWriteError for failing to write `path`, with the OS's reason and what it means."""
    reason = error.strerror or str(error)
    if error.errno == errno_lib.ENOSPC:
        reason += " (the disk is full)"
    return WorkdirWriteError(f"Could not write {path}: {reason}.{' ' + consequence if consequence else ''}", error)


def atomic_write(path: str, write: Callable[[object], None], mode: str = "w") -> None:
    """Write `path` through a temporary file in the same folder, fsync it and rename it into place.

    On failure the temporary file is removed and WorkdirWriteError (naming `path`) is raised; an
    earlier version of `path` is left as it was.
    """
    temporary = path + ".tmp"
    try:
        with open(temporary, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        _remove_quietly(temporary)
        raise write_failure(path, error, "Its previous version, if any, is unchanged.") from error


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def ensure_workdir(workdir: str) -> None:
    """Create `workdir` if needed; WorkdirWriteError (naming it) when it cannot be a writable folder."""
    try:
        os.makedirs(workdir, exist_ok=True)
        if not os.access(workdir, os.W_OK):
            raise PermissionError(errno_lib.EACCES, "Permission denied")
    except OSError as error:
        reason = error.strerror or str(error)
        raise WorkdirWriteError(
            f"Cannot use {workdir!r} as the workdir: {reason}. Choose a writable folder (--workdir).", error
        ) from error


def result_fields(resolved_config: dict) -> dict:
    """The fields of a resolved TrainConfig (``dataclasses.asdict`` form) that change the run's result."""
    fields = {k: v for k, v in resolved_config.items() if k not in RESUMABLE_FIELDS and k != "derived"}
    if resolved_config.get("warmup_lr") is not None and "log_every_steps" in resolved_config:
        fields["log_every_steps"] = resolved_config["log_every_steps"]
    fields["model"] = str(fields.get("model", "")).lower()
    return json.loads(json.dumps(fields))  # Tuples become lists, as they come back from JSON.


def data_identity(class_names, train_labels, eval_labels, train_examples: int, eval_examples: int) -> dict:
    """What identifies a run's data wherever it is stored: classes, example counts, labels in order."""
    identity = {"class_names": list(class_names), "train_examples": int(train_examples), "eval_examples": int(eval_examples)}
    if train_labels is not None and eval_labels is not None:
        digest = hashlib.sha256()
        for labels in (train_labels, eval_labels):
            digest.update(",".join(str(int(v)) for v in labels).encode())
            digest.update(b";")
        identity["labels_sha256"] = digest.hexdigest()
    return identity


def has_progress(workdir: str) -> bool:
    """Whether `workdir` holds any training outcome (checkpoints, history, final files)."""
    checkpoints = os.path.join(workdir, "checkpoints")
    if os.path.isdir(checkpoints) and any(name.startswith("ckpt-") for name in os.listdir(checkpoints)):
        return True
    return any(os.path.exists(os.path.join(workdir, name)) for name in ("history.json", "final_metrics.json", "last.weights.h5"))


def read_run_record(workdir: str) -> Optional[dict]:
    """The run a workdir holds: its run.json, else what an older version's config.json says, else None."""
    path = os.path.join(workdir, RUN_FILE)
    legacy = os.path.join(workdir, "config.json")
    source = path if os.path.exists(path) else legacy if os.path.exists(legacy) else None
    if source is None:
        return None
    try:
        with open(source) as handle:
            saved = json.load(handle)
    except (OSError, ValueError) as error:
        raise RunStateError(
            f"Cannot read {source} (what the workdir's run was): {error}. Pass --new-run to set this run's "
            "files aside and start again, or use another --workdir."
        ) from error
    if source == path:
        return saved
    derived = saved.get("derived", {})
    data = {key: derived[key] for key in ("train_examples", "eval_examples") if key in derived}
    return {"format": 0, "config": result_fields(saved), "data": data}


def _differences(kind: str, before: dict, now: dict) -> List[str]:
    return [
        f"{kind}{key}: {before[key]!r} -> {now[key]!r}"
        for key in sorted(set(before) & set(now))
        if before[key] != now[key]
    ]


def check_same_run(workdir: str, prior: dict, config: Optional[dict] = None, data: Optional[dict] = None) -> None:
    """Raise RunMismatchError when `config` (result fields) or `data` differ from the `prior` record.

    Keys missing on either side (fields of another version) are not compared.
    """
    differences = []
    if config is not None:
        differences += _differences("", prior.get("config", {}), config)
    if data is not None:
        differences += _differences("data ", prior.get("data", {}), data)
    if differences:
        raise RunMismatchError(
            f"The workdir {workdir} holds another run; resuming it with these settings would continue or "
            f"finish that run with others. Differences (that run -> this one): {'; '.join(differences)}. "
            f"Start a new run with another --workdir (scripts/main.sh: WORKDIR=...), or pass --new-run to move "
            f"that run's files into {os.path.join(workdir, PREVIOUS_DIR)}/ and start again here. Settings that "
            f"may change on resume: {', '.join(sorted(RESUMABLE_FIELDS))}."
        )


def write_run_record(workdir: str, config: dict, data: dict) -> None:
    """Write run.json: the result-changing fields and the data identity of the run starting in `workdir`."""
    record = {"format": 1, "config": config, "data": data}
    atomic_write(os.path.join(workdir, RUN_FILE), lambda handle: (json.dump(record, handle, indent=2), handle.write("\n")))


def set_aside(workdir: str) -> Optional[str]:
    """Move the run outputs of `workdir` into ``previous/<UTC time>/``; returns that folder (None: nothing).

    Only the files a run writes (``RUN_OUTPUTS``) move; nothing is deleted.
    """
    present = [name for name in RUN_OUTPUTS if os.path.lexists(os.path.join(workdir, name))]
    if not present:
        return None
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    target = os.path.join(workdir, PREVIOUS_DIR, stamp)
    try:
        os.makedirs(target)
        for name in present:
            os.replace(os.path.join(workdir, name), os.path.join(target, name))
    except OSError as error:
        raise write_failure(target, error, "The old run's files that did not move are still in the workdir.") from error
    return target


def main(argv=None) -> int:
    """``python -m training.workdir RUNS_DIR MODEL [training arguments]``: print the default workdir."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 2:
        print("usage: python -m training.workdir RUNS_DIR MODEL [--set field=value ...]", file=sys.stderr)
        return 2
    try:
        print(default_workdir(argv[0], argv[1], argv[2:]))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
