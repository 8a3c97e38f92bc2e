"""Which workdir a run uses, and what a workdir remembers about the run it holds.

Standard library only: ``scripts/main.sh`` asks this module for the workdir of its arguments
(``python -m training.workdir runs resnet20 --set train_length=30``), which must not wait for
TensorFlow to load.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from typing import Dict, List, Sequence

# Fields that change how a run is watched or kept, not what it computes: they may differ between the
# runs of one workdir (a resumed run may log more often or get a new time budget). Everything else in
# TrainConfig changes the result. With `warmup_lr` the logging interval counts too (the warm-up's end
# is checked at log points): see `result_fields`.
RESUMABLE_FIELDS = frozenset({
    "log_every_steps", "checkpoint_every_steps", "checkpoint_every_seconds", "keep_checkpoints",
    "max_train_seconds", "accuracy_targets", "data_dir", "manual_dir", "tpu_address",
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
