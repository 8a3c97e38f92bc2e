"""The model table: parameters, multiply-adds and the paper's error for every registered model.

Run ``python -m keras_resnets.summary`` to print it as Markdown (the README's table is this output);
one progress line per model goes to stderr while the models are built.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Callable, Dict, List, Optional

import numpy as np

import keras

from keras_resnets.models.registry import list_models, model_entry


def count_multiply_adds(model: keras.Model) -> int:
    """Multiply-accumulate operations of one forward pass of a single image.

    Counts convolutions and dense layers (the paper's "FLOPs" are multiply-adds of these); BatchNorm,
    ReLU, pooling and additions are left out, as in the paper. Needs fully known spatial shapes.
    """
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, out_h, out_w, out_c = layer.output.shape
            kernel_h, kernel_w = layer.kernel_size
            in_c = layer.input.shape[-1]
            total += out_h * out_w * out_c * kernel_h * kernel_w * in_c // layer.groups
        elif isinstance(layer, keras.layers.Dense):
            total += int(np.prod(layer.kernel.shape))
    return int(total)


def trainable_parameter_count(model: keras.Model) -> int:
    """Number of trainable scalars (BatchNorm moving statistics excluded)."""
    return int(sum(np.prod(weight.shape) for weight in model.trainable_weights))


def model_table(names: List[str] = None, progress: Optional[Callable[[str], None]] = None) -> List[Dict]:
    """One row per model: name, family, depth, parameters, multiply-adds (both layouts), paper error.

    Args:
        names: the models (default: every registered model).
        progress: called with one line per model once it is built and counted (building the 22
            models takes a while on a CPU).
    """
    rows = []
    names = list(names or list_models())
    for index, name in enumerate(names, 1):
        started = time.perf_counter()
        entry = model_entry(name)
        model = entry.builder()
        row = {
            "name": name,
            "family": entry.spec.family,
            "depth": entry.spec.depth,
            "residual": entry.residual,
            "params": trainable_parameter_count(model),
            "mult_adds": count_multiply_adds(model),
            "input": "x".join(str(d) for d in entry.spec.default_input_shape),
            "paper_top1_error": entry.paper_top1_error,
            "paper_error_source": entry.paper_error_source,
        }
        if entry.spec.block == "bottleneck":
            row["mult_adds_paper_layout"] = count_multiply_adds(entry.builder(downsample="conv1x1"))
        rows.append(row)
        keras.backend.clear_session()
        if progress is not None:
            progress(f"[{index}/{len(names)}] {name}: {row['params']:,} params, built in {time.perf_counter() - started:.1f}s")
    return rows


def format_markdown(rows: List[Dict]) -> str:
    """Render :func:`model_table` rows as a Markdown table."""
    lines = [
        "| model | family | input | trainable params | mult-adds | mult-adds, paper layout | paper top-1 error (%) |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for row in rows:
        paper_layout = row.get("mult_adds_paper_layout")
        error = row["paper_top1_error"]
        paper = "" if error is None else f"{error} ({row['paper_error_source']})"
        lines.append(
            f"| {row['name']} | {row['family']} | {row['input']} | {row['params']:,} "
            f"| {row['mult_adds'] / 1e9:.3f} G | "
            f"{'' if paper_layout is None else f'{paper_layout / 1e9:.3f} G'} | "
            f"{paper} |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    """Print the model table as Markdown (``python -m keras_resnets.summary [--family cifar]``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=("imagenet", "cifar"), help="only this family")
    parser.add_argument("--skip", nargs="*", default=[], help="model names to leave out")
    args = parser.parse_args(argv)
    names = [n for n in list_models(family=args.family) if n not in args.skip]
    # Progress goes to stderr so that stdout stays the Markdown table alone.
    table = model_table(names, progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(format_markdown(table))


if __name__ == "__main__":
    main()
