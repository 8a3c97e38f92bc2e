"""Figure-6-style training curves: ``python -m training.plot runs/resnet20 runs/plain20 --out curves.png``.

For each run folder: training error (dashed) and evaluation error (bold) in percent against iterations,
one colour per run, as in Figure 6 of He et al. (2015). Drawn with matplotlib when it is installed, else
with Pillow (GPU machines that carry only the essentials).
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


COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
DEFAULT_TITLE = "training error (dashed), test error (bold)"


def _curves(run_dirs, labels):
    if not run_dirs:
        raise ValueError("Give at least one run folder. Received: run_dirs=[]")
    curves = []
    for index, run_dir in enumerate(run_dirs):
        rows, label = load_history(run_dir)
        steps = [row["step"] for row in rows]
        train = [100 * row["train_error"] for row in rows]
        test = [100 * row["eval_error"] for row in rows]
        curves.append((labels[index] if labels else label, COLORS[index % len(COLORS)], steps, train, test))
    return curves


def _plot_matplotlib(curves, out, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    for label, color, steps, train, test in curves:
        axes.plot(steps, train, "--", color=color, linewidth=1.0)
        axes.plot(steps, test, "-", color=color, linewidth=2.2, label=label)
    axes.set_xlabel("iterations")
    axes.set_ylabel("error (%)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(out, format="png")
    plt.close(figure)


def _plot_pillow(curves, out, title):
    from PIL import Image, ImageDraw

    width, height, left, right, top, bottom = 760, 520, 70, 20, 40, 55
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    max_step = max(max(c[2], default=1) for c in curves) or 1
    values = [v for c in curves for v in (*c[3], *c[4]) if v == v]  # Drop NaNs.
    y_max = min(100.0, max(values, default=100.0) * 1.05) or 1.0

    def to_xy(step, value):
        x = left + (width - left - right) * step / max_step
        y = top + (height - top - bottom) * (1.0 - value / y_max)
        return x, y

    for tick in range(6):  # Grid and axis labels.
        value, step = y_max * tick / 5, max_step * tick / 5
        x, y = to_xy(step, value)
        draw.line([(left, y), (width - right, y)], fill="#dddddd")
        draw.line([(x, top), (x, height - bottom)], fill="#dddddd")
        draw.text((8, y - 6), f"{value:.0f}%", fill="black")
        draw.text((x - 15, height - bottom + 6), f"{step:.0f}", fill="black")
    draw.rectangle([left, top, width - right, height - bottom], outline="black")
    draw.text((width // 2 - 30, height - 22), "iterations", fill="black")
    draw.text((left, 12), title, fill="black")
    for index, (label, color, steps, train, test) in enumerate(curves):
        points_train = [to_xy(s, v) for s, v in zip(steps, train) if v == v]
        for segment, (a, b) in enumerate(zip(points_train, points_train[1:])):
            if segment % 2 == 0:  # Dashed: every other segment.
                draw.line([a, b], fill=color, width=1)
        draw.line([to_xy(s, v) for s, v in zip(steps, test) if v == v], fill=color, width=3)
        draw.line([(width - 170, top + 15 + 18 * index), (width - 140, top + 15 + 18 * index)], fill=color, width=3)
        draw.text((width - 133, top + 9 + 18 * index), label, fill="black")
    image.save(out, format="PNG")


def plot_runs(run_dirs: Sequence[str], out: str, labels: Optional[Sequence[str]] = None, title: Optional[str] = None) -> str:
    """Draw the runs' curves into the PNG `out` and return its path."""
    curves = _curves(run_dirs, labels)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    # Drawn under a temporary name and renamed: a reader never sees half a PNG.
    temporary = out + ".tmp"
    try:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            _plot_pillow(curves, temporary, title or DEFAULT_TITLE)
        else:
            _plot_matplotlib(curves, temporary, title or DEFAULT_TITLE)
        os.replace(temporary, out)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
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
