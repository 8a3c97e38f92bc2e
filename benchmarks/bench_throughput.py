"""Images/s of ResNet-50 (or other zoo models) for inference and training, float32 and bfloat16.

    KERAS_BACKEND=jax python benchmarks/bench_throughput.py [--models resnet50 resnet18] [--batch 32] [--steps 10]

A fixed sweep over :mod:`keras_resnets.tasks.benchmark` (the code behind ``keras-resnets benchmark``):
both precisions and both modes, the machine described first, and a JSON copy when ``--json`` is given.
"""

from __future__ import annotations

import argparse
import json
import sys

from keras_resnets.tasks.benchmark import benchmark, describe_machine, format_machine, format_table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet50"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--json", help="write the machine and rows there")
    args = parser.parse_args(argv)
    machine = describe_machine()
    print(format_machine(machine))
    rows = benchmark(args.models, batch_sizes=[args.batch], precisions=["float32", "bfloat16"], steps=args.steps)
    print(format_table(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"machine": machine, "rows": [r.to_dict() for r in rows]}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
