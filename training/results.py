"""Table 6 and Figure 6 from finished runs: ``python -m training.results RUN_DIR... --control DIR... --out docs/results``.

Writes into ``--out``:
  table6.md / table6.json   per net: this project's final test error, the same-data PyTorch control's
                            (``training.torch_control`` workdirs), the paper's Table 6 figure (read from
                            ``$KERAS_RESNETS_SHARED_DIR/reference/paper_numbers.json``, default ``../shared``)
                            and the final training errors; plus a degradation summary (final training error
                            of plain-56 vs plain-20 and ResNet-56 vs ResNet-20, and where the plain-20 and
                            plain-56 training-error curves cross)
  figure6.png               the paper's layout: plain nets left, ResNets middle, ResNet-110 right (when run);
                            training error dashed, test error bold, iterations in units of 1e4, error in %
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List, Optional, Sequence

from training.plot import COLORS, load_history


def shared_dir() -> str:
    """The shared data folder: ``$KERAS_RESNETS_SHARED_DIR``, default ``../shared`` next to the project root."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.environ.get("KERAS_RESNETS_SHARED_DIR", os.path.join(root, "..", "shared"))


def paper_errors(path: Optional[str] = None) -> Dict[str, float]:
    """Table 6 of the paper as ``{"resnet20": 8.75, ...}`` (test error in %), from paper_numbers.json."""
    path = path or os.path.join(shared_dir(), "reference", "paper_numbers.json")
    if not os.path.isfile(path):
        raise ValueError(f"paper_numbers.json not found (set KERAS_RESNETS_SHARED_DIR). Received: path={path!r}")
    with open(path) as handle:
        table = json.load(handle)["table6_cifar10_test_error_pct"]
    return {key.lower().replace("-", ""): value["error"] for key, value in table.items()
            if key.startswith("ResNet-") and isinstance(value, dict)}


def load_run(run_dir: str) -> dict:
    """A run folder's model name, precision, history rows and final metrics (errors in %).

    A run that has not finished its schedule (no ``final_metrics.json`` with ``completed``) is read
    from its last history row and marked ``complete: False``.
    """
    rows, model = load_history(run_dir)
    if not rows:
        raise ValueError(f"history.json of the run folder has no rows. Received: run_dir={run_dir!r}")
    metrics, config = {}, {}
    for name, target in (("final_metrics.json", metrics), ("config.json", config)):
        path = os.path.join(run_dir, name)
        if os.path.isfile(path):
            with open(path) as handle:
                target.update(json.load(handle))
    model = metrics.get("model", config.get("model", model))
    complete = bool(metrics.get("completed"))
    test = metrics["eval_error"] if complete else rows[-1]["eval_error"]
    precision = metrics.get("mixed_precision") or metrics.get("precision") or config.get("mixed_precision") or "float32"
    return {
        "dir": run_dir, "model": model, "rows": rows, "precision": precision, "complete": complete,
        "test_error": 100 * test, "train_error": 100 * rows[-1]["train_error"],
        "steps": metrics.get("steps", rows[-1]["step"]) if complete else rows[-1]["step"],
        "total_steps": metrics.get("total_steps") or config.get("train_length") or config.get("max_steps"),
        "device": metrics.get("device"),
    }


def at_common_step(first: dict, second: dict) -> Optional[dict]:
    """Both runs' training and test errors (%) at the last step both histories recorded (None: none)."""
    a = {row["step"]: row for row in first["rows"]}
    b = {row["step"]: row for row in second["rows"]}
    common = sorted(set(a) & set(b))
    if not common:
        return None
    step = common[-1]
    return {"step": step, "train_error": (round(100 * a[step]["train_error"], 2), round(100 * b[step]["train_error"], 2)),
            "test_error": (round(100 * a[step]["eval_error"], 2), round(100 * b[step]["eval_error"], 2))}


def crossings(first: dict, second: dict) -> List[int]:
    """Steps where the training-error curves of two runs cross (sign change of their difference).

    Only the steps both histories recorded are compared; a crossing is reported at the first step with
    the new sign.
    """
    a = {row["step"]: row["train_error"] for row in first["rows"]}
    b = {row["step"]: row["train_error"] for row in second["rows"]}
    found, previous = [], 0
    for step in sorted(set(a) & set(b)):
        difference = b[step] - a[step]
        sign = (difference > 0) - (difference < 0)
        if sign and previous and sign != previous:
            found.append(step)
        if sign:
            previous = sign
    return found


def _order(model: str):
    digits = "".join(c for c in model if c.isdigit())
    return (not model.startswith("plain"), int(digits) if digits else 0, model)


def build_table(runs: Sequence[dict], controls: Sequence[dict], paper: Dict[str, float],
                variants: Sequence[dict] = ()) -> dict:
    """The Table 6 rows, the degradation summary and the precision comparison as a JSON-ready dict.

    ``variants`` are runs of another precision than ``runs``; each is compared with the run of the
    same model at the last step both recorded.
    """
    by_model = {run["model"]: run for run in runs}
    control_by_model = {run["model"]: run for run in controls}
    for name, group in (("RUN_DIR", runs), ("--control", controls), ("variant", variants)):
        models = [run["model"] for run in group]
        duplicates = sorted({m for m in models if models.count(m) > 1})
        if duplicates:
            raise ValueError(f"Two {name} folders hold the same model. Received: {duplicates}")
    rows = []
    for model in sorted(set(by_model) | set(control_by_model), key=_order):
        run, control = by_model.get(model), control_by_model.get(model)
        rows.append({
            "model": model,
            "test_error": run and round(run["test_error"], 2),
            "control_test_error": control and round(control["test_error"], 2),
            "paper_test_error": paper.get(model),
            "train_error": run and round(run["train_error"], 2),
            "control_train_error": control and round(control["train_error"], 2),
            "steps": run and run["steps"], "control_steps": control and control["steps"],
            "complete": run and run["complete"], "control_complete": control and control["complete"],
            "total_steps": run and run["total_steps"], "control_total_steps": control and control["total_steps"],
            "precision": run and run["precision"],
        })
    degradation = {}
    for shallow, deep in (("plain20", "plain56"), ("resnet20", "resnet56")):
        if shallow in by_model and deep in by_model:
            both_complete = by_model[shallow]["complete"] and by_model[deep]["complete"]
            common = at_common_step(by_model[shallow], by_model[deep])
            if common is None:
                continue
            shallow_error, deep_error = (
                (by_model[shallow]["train_error"], by_model[deep]["train_error"]) if both_complete else common["train_error"])
            degradation[f"{deep}_vs_{shallow}"] = {
                "at_step": by_model[deep]["steps"] if both_complete else common["step"], "final": both_complete,
                f"{shallow}_train_error": round(shallow_error, 2), f"{deep}_train_error": round(deep_error, 2),
                "deeper_has_higher_train_error": deep_error > shallow_error,
            }
    if "plain20" in by_model and "plain56" in by_model:
        degradation["plain20_plain56_train_error_crossings"] = crossings(by_model["plain20"], by_model["plain56"])
    comparison = []
    for variant in variants:
        reference = by_model.get(variant["model"])
        common = reference and at_common_step(reference, variant)
        if common:
            comparison.append({"model": variant["model"], "step": common["step"],
                               "precisions": [reference["precision"], variant["precision"]],
                               "train_error": common["train_error"], "test_error": common["test_error"]})
    return {"rows": rows, "degradation": degradation, "precision_comparison": comparison}


def _cell(value, suffix=""):
    return "—" if value is None else f"{value:.2f}{suffix}"


def _error_cell(error, complete, steps, total) -> str:
    if error is None:
        return "—"
    if complete:
        return f"{error:.2f}"
    return f"{error:.2f} (at {steps:,} of {total:,} steps)" if total else f"{error:.2f} (at {steps:,} steps, unfinished)"


def to_markdown(table: dict) -> str:
    """Table 6, the degradation summary and the precision comparison as Markdown."""
    lines = [
        "## Table 6: CIFAR-10 test error (%)", "",
        "| net | this project | same-data PyTorch control | paper (Table 6) | train error, this project | train error, control |",
        "|---|---|---|---|---|---|",
    ]
    for row in table["rows"]:
        lines.append(
            f"| {row['model']} | {_error_cell(row['test_error'], row.get('complete', True), row['steps'], row.get('total_steps'))} | "
            f"{_error_cell(row['control_test_error'], row.get('control_complete', True), row['control_steps'], row.get('control_total_steps'))} | "
            f"{_cell(row['paper_test_error'])} | {_cell(row['train_error'])} | {_cell(row['control_train_error'])} |")
    lines += ["", "The paper trains and tests on the original PNG CIFAR-10; this project and the control on the "
              "same JPEG folders, so the paper column is not a same-data comparison. — means not run; an "
              "unfinished run shows its last evaluation and how far it got.", "",
              "## Degradation (training error, %)", ""]
    degradation = table["degradation"]
    for key, value in degradation.items():
        if key.endswith("crossings"):
            continue
        deep, shallow = key.split("_vs_")
        verdict = "higher" if value["deeper_has_higher_train_error"] else "not higher"
        when = "final" if value.get("final", True) else f"at iteration {value['at_step']:,}, the last both runs recorded"
        lines.append(f"- {deep} {value[f'{deep}_train_error']:.2f} vs {shallow} {value[f'{shallow}_train_error']:.2f} "
                     f"({when}): the deeper net's training error is {verdict}.")
    if "plain20_plain56_train_error_crossings" in degradation:
        steps = degradation["plain20_plain56_train_error_crossings"]
        lines.append("- plain-20 and plain-56 training-error curves cross at iteration(s) "
                     + ", ".join(str(s) for s in steps) + "." if steps else
                     "- plain-20 and plain-56 training-error curves do not cross (at the recorded evaluations).")
    if not degradation:
        lines.append("- not available (needs plain20+plain56 or resnet20+resnet56 runs).")
    if table.get("precision_comparison"):
        lines += ["", "## Precision (same net, same recipe, same data)", "",
                  "| net | iteration | precisions | train error (%) | test error (%) |", "|---|---|---|---|---|"]
        for row in table["precision_comparison"]:
            lines.append(f"| {row['model']} | {row['step']:,} | {' vs '.join(row['precisions'])} | "
                         f"{row['train_error'][0]:.2f} vs {row['train_error'][1]:.2f} | "
                         f"{row['test_error'][0]:.2f} vs {row['test_error'][1]:.2f} |")
    return "\n".join(lines) + "\n"


def plot_figure6(runs: Sequence[dict], out: str, y_max: float = 20.0) -> None:
    """Figure 6 layout: plain nets | ResNets | ResNet-110 (if run); dashed training, bold test error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("plain", [r for r in runs if r["model"].startswith("plain")]),
              ("ResNet", [r for r in runs if r["model"].startswith("resnet") and r["model"] != "resnet110"])]
    r110 = [r for r in runs if r["model"] == "resnet110"]
    if r110:
        panels.append(("ResNet-110", r110))
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), dpi=110, squeeze=False)
    for axis, (title, group) in zip(axes[0], panels):
        for index, run in enumerate(sorted(group, key=lambda r: _order(r["model"]))):
            steps = [row["step"] / 1e4 for row in run["rows"]]
            color = COLORS[index % len(COLORS)]
            axis.plot(steps, [100 * row["train_error"] for row in run["rows"]], "--", color=color, linewidth=1.0)
            axis.plot(steps, [100 * row["eval_error"] for row in run["rows"]], "-", color=color, linewidth=2.2,
                      label=run["model"])
        axis.set_title(title)
        axis.set_xlabel("iter. (1e4)")
        axis.set_ylabel("error (%)")
        axis.set_ylim(0, y_max)
        axis.grid(alpha=0.3)
        if group:
            axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out)
    plt.close(figure)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m training.results", description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", help="workdirs of python -m training")
    parser.add_argument("--control", nargs="*", default=[], help="workdirs of python -m training.torch_control")
    parser.add_argument("--out", required=True, help="output folder (created)")
    parser.add_argument("--paper-numbers", default=None, help="paper_numbers.json (default: from the shared folder)")
    parser.add_argument("--y-max", type=float, default=20.0, help="top of the figure's error axis in %% (paper: 20)")
    parser.add_argument("--precision", default=None,
                        help="the precision of Table 6's runs (default: the most common); runs of another "
                             "precision are compared with the same net at the last common iteration")
    args = parser.parse_args(argv)
    loaded = [load_run(d) for d in args.run_dirs]
    precisions = [run["precision"] for run in loaded]
    primary = args.precision or max(set(precisions), key=precisions.count)
    runs = [run for run in loaded if run["precision"] == primary]
    variants = [run for run in loaded if run["precision"] != primary]
    controls = [load_run(d) for d in args.control]
    table = build_table(runs, controls, paper_errors(args.paper_numbers), variants)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "table6.json"), "w") as handle:
        json.dump(table, handle, indent=2)
        handle.write("\n")
    markdown = to_markdown(table)
    with open(os.path.join(args.out, "table6.md"), "w") as handle:
        handle.write(markdown)
    plot_figure6(runs, os.path.join(args.out, "figure6.png"), args.y_max)
    print(markdown + f"Wrote {args.out}/table6.md, table6.json, figure6.png", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
