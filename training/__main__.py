"""Command line: ``python -m training --config cifar10_paper --model plain56 --workdir runs/p56 [--set f=v ...]``."""

from __future__ import annotations

import argparse
import sys

from training import use_onednn_by_default

use_onednn_by_default()  # Before anything imports TensorFlow.


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Train a keras-resnets model with a recipe from training/configs (resumes from the workdir).",
    )
    parser.add_argument("--config", required=True, help="recipe name: a module of training/configs, e.g. cifar10_paper")
    parser.add_argument("--model", required=True, help="model name, e.g. resnet20, plain56, resnet50")
    parser.add_argument("--workdir", required=True, help="output folder (checkpoints, history, weights)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a config field (repeatable), e.g. --set base_lr=0.05 --set lr_boundaries=30,60")
    parser.add_argument("--distribution", default=None,
                        help="shortcut for --set distribution=...: auto, none, mirrored, multi_worker, tpu, jax_data_parallel")
    parser.add_argument("--new-run", action="store_true",
                        help="start from step 0 even though the workdir holds a run: its files move to <workdir>/previous/<time>/")
    parser.add_argument("--curves", default=None, metavar="PNG",
                        help="after training, draw the run's training/test error curves into this PNG (training.plot)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """Run one training job; returns the process exit status.

    0: done (or stopped by ``max_train_seconds``); 2: invalid settings, or the workdir holds another run
    or cannot resume; 3: the loss diverged; 4: a workdir file could not be written; 128 + signal number
    (143 SIGTERM, 130 SIGINT): stopped by that signal after writing a checkpoint.
    """
    args = parse_args(argv)
    from .config import apply_overrides, load_recipe, validate
    from .train import TrainingDivergedError, TrainingInterrupted, train_and_evaluate

    try:
        overrides = list(args.set) + ([f"distribution={args.distribution}"] if args.distribution else [])
        config = validate(apply_overrides(load_recipe(args.config, args.model), overrides))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        train_and_evaluate(config, args.workdir, new_run=args.new_run)
    except TrainingInterrupted as interrupted:
        return interrupted.exit_status  # The loop has printed where it stopped and how to resume.
    except TrainingDivergedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return 4
    if args.curves:
        from .plot import plot_runs

        try:
            print(plot_runs([args.workdir], args.curves), flush=True)
        except (ValueError, OSError) as error:
            # The run itself is complete and saved; only the picture is missing.
            print(f"warning: could not draw the curves into {args.curves}: {error}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
