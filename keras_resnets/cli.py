"""The ``keras-resnets`` command: fine-tune, predict, export, and list models and weights.

Run ``keras-resnets --help`` or ``keras-resnets COMMAND --help`` (also ``python -m keras_resnets.cli``).
Each command imports the modules it needs when it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

MODEL_HELP = (
    "a registry model name (see `keras-resnets models`), a fine-tuned model folder "
    "(written by `keras-resnets fine-tune`), or a .keras file"
)
WEIGHTS_HELP = (
    "weights for a registry model name: 'default' (the family's pretrained tag: imagenet or cifar10), "
    "another tag (see `keras-resnets weights`), a weights file path, or 'none' for random weights"
)


def _weights_argument(value: str):
    return None if value.lower() == "none" else value


def _unfreeze_argument(value: str):
    if value == "all":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'all' or a number of stages, got {value!r}") from None


def _image_size_argument(value: str):
    parts = value.lower().replace("x", ",").split(",")
    try:
        sizes = tuple(int(p) for p in parts if p)
    except ValueError:
        sizes = ()
    if len(sizes) not in (1, 2):
        raise argparse.ArgumentTypeError(f"expected SIZE or HEIGHTxWIDTH, got {value!r}")
    return sizes if len(sizes) == 2 else (sizes[0], sizes[0])


def _load(model: str, weights):
    from keras_resnets.tasks.model_info import load_classifier

    return load_classifier(model, weights=weights)


def _run_models(args) -> int:
    from keras_resnets.models.registry import list_models, model_entry

    names = list_models(family=args.family, residual={"residual": True, "plain": False}.get(args.kind))
    print(f"{'model':<12} {'family':<9} {'kind':<8} {'blocks':<15} {'input':<11} paper top-1 error (%)")
    for name in names:
        entry = model_entry(name)
        spec = entry.spec
        blocks = f"{spec.block} " + "+".join(str(n) for n in spec.stage_blocks)
        size = "x".join(str(s) for s in spec.default_input_shape)
        error = "" if entry.paper_top1_error is None else f"{entry.paper_top1_error} ({entry.paper_error_source})"
        print(f"{name:<12} {spec.family:<9} {'residual' if entry.residual else 'plain':<8} {blocks:<15} {size:<11} {error}")
    return 0


def _run_weights(args) -> int:
    from keras_resnets.weights import DEFAULT_TAGS, list_weights

    records = list_weights(args.model)
    print(f"{'weights':<22} {'top-1 (%)':>9}  {'input':>5}  {'license':<12} description")
    for record in records:
        top1 = "" if record.metrics.top1 is None else f"{record.metrics.top1:.2f}"
        print(f"{record.name:<22} {top1:>9}  {record.preprocessing.input_size:>5}  {record.license:<12} "
              f"{record.description}")
    aliases = ", ".join(sorted(DEFAULT_TAGS))
    print(f"\nUse --weights with a tag (the part after the dot) or an alias ({aliases}); "
          "'default' picks imagenet or cifar10 by the model's family.")
    return 0


def _run_fine_tune(args) -> int:
    from keras_resnets.tasks.finetune import fine_tune

    verbose = 0 if args.quiet else (1 if sys.stdout.isatty() else 2)
    result = fine_tune(
        args.model,
        args.data,
        weights=args.weights,
        validation_data=args.validation_dir,
        validation_fraction=args.validation_fraction,
        image_size=args.image_size,
        batch_size=args.batch_size,
        head_epochs=args.head_epochs,
        fine_tune_epochs=args.fine_tune_epochs,
        unfreeze=args.unfreeze,
        learning_rate=args.learning_rate,
        fine_tune_learning_rate=args.fine_tune_learning_rate,
        train_batchnorm=args.train_batchnorm,
        augment=not args.no_augment,
        early_stopping_patience=args.patience or None,
        distribution=_distribution(args.distribution),
        output_dir=args.output_dir,
        overwrite=args.overwrite,
        seed=args.seed,
        verbose=verbose,
    )
    if args.test_dir:
        from keras_resnets.tasks.predict import evaluate_folder

        scores = evaluate_folder(result.model, result.info, args.test_dir)
        per_class = ", ".join(f"{name} {value:.3f}" for name, value in scores["per_class"].items())
        print(f"Held-out accuracy on {args.test_dir}: {scores['accuracy']:.4f} ({scores['count']} images; {per_class})")
    return 0


def _distribution(name: str):
    from keras_resnets.tasks.distribution import resolve_distribution

    return resolve_distribution(name)


def _run_predict(args) -> int:
    from keras_resnets.tasks.predict import predict_images

    model, info = _load(args.model, args.weights)
    predictions = predict_images(model, info, args.images, top_k=args.top_k, batch_size=args.batch_size)
    if args.json:
        print(json.dumps([
            {"image": p.source, "top_k": [
                {"class_id": c, "label": label, "probability": round(prob, 6)}
                for c, label, prob in zip(p.class_ids, p.labels, p.probabilities)
            ]}
            for p in predictions
        ], indent=2))
        return 0
    for prediction in predictions:
        print(prediction.source)
        for label, probability in zip(prediction.labels, prediction.probabilities):
            print(f"  {probability:7.4f}  {label}")
    return 0


def _run_export(args) -> int:
    from keras_resnets.tasks.export import export_model, saved_model_signatures

    model, info = _load(args.model, args.weights)
    print(f"Exporting {model.name} ({info.num_classes} classes) as {args.format} to {args.output} ...", flush=True)
    kwargs = {"top_k": args.top_k} if args.format == "saved_model" else {}
    path = export_model(model, info, args.output, format=args.format, overwrite=args.overwrite, **kwargs)
    if args.format == "saved_model":
        print(f"Wrote {path} with signatures: {', '.join(saved_model_signatures(path))}")
    else:
        print(f"Wrote {path} (class names and preprocessing in keras_resnets.json beside it)")
    return 0


def _add_model_source_arguments(parser) -> None:
    """--model and --weights, shared by the commands that load a trained classifier."""
    parser.add_argument("--model", default="resnet50", help=MODEL_HELP + " (default: resnet50)")
    parser.add_argument("--weights", type=_weights_argument, default="default", help=WEIGHTS_HELP + " (default: default)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``keras-resnets`` with its sub-commands."""
    parser = argparse.ArgumentParser(
        prog="keras-resnets",
        description="ResNets of He et al. (2015) for Keras 3: fine-tune on your images, predict, export for serving.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    models = commands.add_parser("models", help="list the registered models", description="List the registered models.")
    models.add_argument("--family", choices=("imagenet", "cifar"), help="only this family")
    models.add_argument("--kind", choices=("residual", "plain"), help="only ResNets or only plain nets")
    models.set_defaults(run=_run_models)

    weights = commands.add_parser("weights", help="list the pretrained weight sets", description="List the pretrained weight sets.")
    weights.add_argument("--model", help="only weights for this model")
    weights.set_defaults(run=_run_weights)

    tune = commands.add_parser(
        "fine-tune",
        help="fine-tune a model on a folder of images (one sub-folder per class)",
        description=(
            "Fine-tune a pretrained model on DATA (one sub-folder of images per class; other files are "
            "skipped with a warning). Phase 1 trains a new head with the backbone frozen, phase 2 also "
            "trains the top stage(s) at a 100x lower learning rate. The best epoch's weights, the class "
            "names and the preprocessing are saved in --output-dir."
        ),
    )
    tune.add_argument("data", help="training folder: DATA/<class name>/<images>")
    tune.add_argument("--model", default="resnet50", help="registry model name (default: resnet50)")
    tune.add_argument("--weights", type=_weights_argument, default="default", help=WEIGHTS_HELP + " (default: default)")
    tune.add_argument("--output-dir", required=True, help="where to save model.keras and keras_resnets.json")
    tune.add_argument("--overwrite", action="store_true",
                      help="replace an earlier fine-tuning output in --output-dir (never a folder keras_resnets did not write)")
    tune.add_argument("--validation-dir", help="held-out folder for validation (default: split DATA)")
    tune.add_argument("--validation-fraction", type=float, default=0.2, help="share of DATA held out (default: 0.2)")
    tune.add_argument("--test-dir", help="labelled folder to report held-out accuracy on after training")
    tune.add_argument("--image-size", type=_image_size_argument, help="input SIZE or HEIGHTxWIDTH (default: the model's)")
    tune.add_argument("--batch-size", type=int, default=32, help="(default: 32)")
    tune.add_argument("--head-epochs", type=int, default=5, help="epochs with the backbone frozen (default: 5)")
    tune.add_argument("--fine-tune-epochs", type=int, default=5, help="epochs with top stages unfrozen; 0 skips (default: 5)")
    tune.add_argument("--unfreeze", type=_unfreeze_argument, default=1, help="top stages to unfreeze in phase 2, or 'all' (default: 1)")
    tune.add_argument("--learning-rate", type=float, default=1e-2, help="Adam learning rate of phase 1 (default: 0.01)")
    tune.add_argument("--fine-tune-learning-rate", type=float, help="of phase 2 (default: learning rate / 100)")
    tune.add_argument("--train-batchnorm", action="store_true", help="also train BatchNorm of unfrozen stages")
    tune.add_argument("--no-augment", action="store_true", help="no random flips/translations")
    tune.add_argument("--patience", type=int, default=3, help="early-stopping patience in epochs; 0 disables (default: 3)")
    tune.add_argument(
        "--distribution",
        choices=("auto", "none", "mirrored", "multi_worker", "tpu", "jax_data_parallel"),
        default="auto",
        help="how to spread training over devices, as in the training pipeline (default: auto: all local "
        "GPUs when there are several, TF_CONFIG workers when set, else one device)",
    )
    tune.add_argument("--seed", type=int, default=0, help="(default: 0)")
    tune.add_argument("--quiet", action="store_true", help="no progress output")
    tune.set_defaults(run=_run_fine_tune)

    predict = commands.add_parser(
        "predict",
        help="print the top-k labels of images",
        description="Print the top-k labels and probabilities of each IMAGE (any size; resized as the weights' preprocessing says).",
    )
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, GIF or BMP)")
    _add_model_source_arguments(predict)
    predict.add_argument("--top-k", type=int, default=5, help="(default: 5)")
    predict.add_argument("--batch-size", type=int, default=32, help="(default: 32)")
    predict.add_argument("--json", action="store_true", help="print JSON instead of text")
    predict.set_defaults(run=_run_predict)

    export = commands.add_parser(
        "export",
        help="export a model as a SavedModel, TFLite or ONNX file",
        description=(
            "Export for serving. saved_model: signatures take encoded image bytes (serving_default) or "
            "uint8 images of any size (serve_images) and return probabilities, top_k_class_ids, "
            "top_k_probabilities and top_k_labels. tflite/onnx: uint8 images at the model's input size "
            "in, probabilities out."
        ),
    )
    export.add_argument("output", help="output folder (saved_model) or .tflite/.onnx file")
    _add_model_source_arguments(export)
    export.add_argument("--format", choices=("saved_model", "tflite", "onnx"), default="saved_model", help="(default: saved_model)")
    export.add_argument("--top-k", type=int, default=5, help="classes in the top_k outputs (default: 5)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing export at OUTPUT")
    export.set_defaults(run=_run_export)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``keras-resnets`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, ImportError) as error:
        print(f"keras-resnets {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
