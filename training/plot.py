"""Figure-6-style training curves: ``python -m training.plot runs/resnet20 runs/plain20 --out curves.png``.

For each run folder: training error (dashed) and evaluation error (bold) in percent against iterations,
one colour per run, as in Figure 6 of He et al. (2015).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional, Sequence


def load_history(run_dir: str):
    """The evaluation rows of a run folder's history.json, and a label for the run."""
    path = os.path.join(run_dir, "history.json")
    if not os.path.isfile(path):
        raise ValueError(f"No history.json in the run folder (is it a training workdir?). Received: run_dir={run_dir!r}")
    with open(path) as handle:
        rows = json.load(handle)
    label = os.path.basename(os.path.normpath(run_dir))
    config_path = os.path.join(run_dir, "config.json")
    if os.path.isfile(config_path):
        with open(config_path) as handle:
            label = json.load(handle).get("model", label)
    return rows, label


def plot_runs(run_dirs: Sequence[str], out: str, labels: Optional[Sequence[str]] = None, title: Optional[str] = None) -> str:
    """Draw the runs' curves into the PNG `out` and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not run_dirs:
        raise ValueError("Give at least one run folder. Received: run_dirs=[]")
    figure, axes = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, run_dir in enumerate(run_dirs):
        rows, label = load_history(run_dir)
        if labels:
            label = labels[index]
        color = colors[index % len(colors)]
        steps = [row["step"] for row in rows]
        axes.plot(steps, [100 * row["train_error"] for row in rows], "--", color=color, linewidth=1.0)
        axes.plot(steps, [100 * row["eval_error"] for row in rows], "-", color=color, linewidth=2.2, label=label)
    axes.set_xlabel("iterations")
    axes.set_ylabel("error (%)")
    axes.set_title(title or "training error (dashed), test error (bold)")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    figure.savefig(out)
    plt.close(figure)
    return out


def main(argv=None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python -m training.plot", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="training workdirs")
    parser.add_argument("--out", required=True, help="output PNG path")
    parser.add_argument("--labels", nargs="*", help="legend labels (default: model names)")
    parser.add_argument("--title", default=None)
    args = parser.parse_args(argv)
    try:
        print(plot_runs(args.runs, args.out, args.labels, args.title))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
