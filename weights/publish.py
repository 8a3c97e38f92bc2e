"""Convert (or take) weights, check the outputs against the source, write a Hub folder, optionally upload.

Examples (from the repository root):

    # akamaster CIFAR-10 ResNet-20: convert the torch state dict, compare with the PyTorch logits,
    # write model.weights.h5 + config.json + README.md into out/resnet20.cifar10 (no upload):
    python -m weights.publish --model resnet20 --tag cifar10 \
        --source ../shared/weights/akamaster/resnet20.npz \
        --check-images ../shared/data/cifar10-test-first100.npz \
        --check-logits ../shared/weights/akamaster/resnet20_logits_first100.npy \
        --out out/resnet20.cifar10 --dry-run

    # a model trained with this package, uploaded (needs a token: HF_TOKEN or --token):
    python -m weights.publish --model resnet56 --source run/model.keras --top1 93.0 \
        --dataset "CIFAR-10 test" --provenance "trained with training/train.py, config ..." \
        --out out/resnet56 --repo-id you/resnet56-cifar10

The written folder loads back with ``weights="path/model.weights.h5"``, the uploaded repository
with ``weights="hf://owner/name@<commit>"`` (printed at the end).
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np


import keras_resnets
from keras_resnets.data.preprocessing import default_preprocessing, preprocess_input
from keras_resnets.weights import catalog, publishing


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="registered model name, e.g. resnet20")
    parser.add_argument("--source", required=True,
                        help="weights to publish: a file (.npz/.th/.safetensors/.weights.h5/.keras) or a registry tag")
    parser.add_argument("--tag", help="registry tag whose record supplies metrics, license, provenance (e.g. cifar10)")
    parser.add_argument("--out", required=True, help="folder to write")
    parser.add_argument("--check-images", help=".npz with uint8 RGB images `x` to compare outputs on")
    parser.add_argument("--check-logits", help=".npy with the source framework's logits on --check-images")
    parser.add_argument("--tolerance", type=float, default=1e-3, help="max |logit difference| accepted")
    parser.add_argument("--license", help="SPDX license (default: the record's)")
    parser.add_argument("--provenance", help="where the weights come from (default: the record's)")
    parser.add_argument("--top1", type=float, help="top-1 accuracy (%%) to put in the model card")
    parser.add_argument("--dataset", help="evaluation data set of --top1")
    parser.add_argument("--repo-id", help="Hub repository to upload to (owner/name)")
    parser.add_argument("--token", help="Hub token (default: HF_TOKEN / logged-in token)")
    parser.add_argument("--dry-run", action="store_true", help="write the folder only, upload nothing")
    return parser.parse_args(argv)


def _metadata(args):
    record = catalog.CATALOG.resolve(args.model, args.tag) if args.tag else None
    metrics = None
    if args.top1 is not None:
        metrics = {"top1": args.top1, "top5": None, "dataset": args.dataset or "unspecified",
                   "source": "measured by the publisher"}
    elif record is not None:
        metrics = {"top1": record.metrics.top1, "top5": record.metrics.top5, "dataset": record.metrics.dataset,
                   "source": record.metrics.source}
    license = args.license or (record.license if record else None)
    provenance = args.provenance or (record.provenance if record else None)
    if not license or not provenance:
        raise SystemExit("error: --license and --provenance are required when --tag names no registry record")
    return record, metrics, license, provenance


def _check_images(args, spec, preprocessing):
    if args.check_images:
        with np.load(args.check_images) as data:
            images = data["x"]
        return images, args.check_images
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (4, *preprocessing.input_size, 3)).astype("uint8"), "4 random images"


def main(argv=None) -> int:
    args = parse_args(argv)
    record, metrics, license, provenance = _metadata(args)
    entry = keras_resnets.model_entry(args.model)
    preprocessing = record.preprocessing if record else default_preprocessing(entry.spec.family)
    model = keras_resnets.get_model(args.model, weights=args.source, classifier_activation=None)

    images, images_name = _check_images(args, entry.spec, preprocessing)
    inputs = preprocess_input(images, preprocessing)
    logits = np.asarray(model.predict(inputs, verbose=0))
    source_check = None
    if args.check_logits:
        reference = np.load(args.check_logits)
        difference = float(np.abs(logits - reference).max())
        print(f"max |logit difference| against {args.check_logits}: {difference:.3g} (tolerance {args.tolerance})")
        if not difference < args.tolerance:
            print("error: outputs differ from the source; nothing written", file=sys.stderr)
            return 1
        source_check = {"max_abs_diff": difference, "reference": pathlib.Path(args.check_logits).name,
                        "inputs": pathlib.Path(images_name).name}

    repo_name = args.repo_id or f"keras-resnets/{args.model}{'.' + args.tag if args.tag else ''}"
    folder = publishing.write_model_folder(
        model, args.out, repo_name=repo_name, license=license, provenance=provenance, metrics=metrics,
        preprocessing=preprocessing, class_names=record.class_names if record else None, source_check=source_check,
        overwrite=True,  # Replaces only an earlier output of this script (keras_resnets.outputs checks).
    )
    reloaded = keras_resnets.get_model(args.model, weights=str(folder / "model.weights.h5"), classifier_activation=None)
    round_trip = float(np.abs(np.asarray(reloaded.predict(inputs, verbose=0)) - logits).max())
    if round_trip > 1e-6:
        print(f"error: the written weights give different outputs ({round_trip:.3g})", file=sys.stderr)
        return 1
    print(f"wrote {folder}: " + ", ".join(sorted(p.name for p in folder.iterdir())) + " (reload check passed)")
    if args.repo_id and not args.dry_run:
        reference = publishing.upload_folder(folder, args.repo_id, token=args.token)
        print(f"uploaded; load with weights={reference!r}")
    elif args.repo_id:
        print(f"--dry-run: not uploading to {args.repo_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
