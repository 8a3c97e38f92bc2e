"""The ``keras-resnets`` command: fine-tune, predict, export, and list models and weights.

Run ``keras-resnets --help`` or ``keras-resnets COMMAND --help`` (also ``python -m keras_resnets.cli``).
Each command imports the modules it needs when it runs: ``--help``, ``models`` and ``weights`` never
import Keras or TensorFlow, so they answer in a fraction of a second. TensorFlow's native log lines
are silenced unless ``--verbose`` is given, and errors are one line on stderr (``--debug`` shows the
traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
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


def _number_argument(convert, accept, expected: str):
    """An argparse type: `convert` the text, then keep it only if `accept(number)`; the error says `expected`."""

    def parse(value: str):
        try:
            number = convert(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}") from None
        if not accept(number):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}")
        return number

    return parse


_positive_int = _number_argument(int, lambda n: n >= 1, "a positive integer")
_non_negative_int = _number_argument(int, lambda n: n >= 0, "an integer >= 0")
_positive_float = _number_argument(float, lambda n: 0 < n < float("inf"), "a positive number")
_fraction = _number_argument(float, lambda n: 0 <= n < 1, "a fraction in [0, 1)")


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


def preflight_weights(model: str, weights) -> None:
    """Get a registry model's pretrained weights file now, before TensorFlow starts (seconds of work).

    Weights that are unpublished, offline or unreachable then fail at once instead of after the import
    and the model build; anything that is not a registry name/tag is left to the loader.
    """
    from keras_resnets.models.registry import model_entry
    from keras_resnets.models.registry import resolve_default_weights
    from keras_resnets.weights import catalog
    from keras_resnets.weights.cache import CacheEntry
    from keras_resnets.weights.fetch import fetch_record

    if os.path.exists(model):
        return
    try:
        name = model_entry(model).name
    except ValueError:
        return  # The loader names the accepted kinds of --model.
    weights = resolve_default_weights(name, weights)
    if not isinstance(weights, str) or not catalog.is_registered_name(weights):
        return
    record = catalog.CATALOG.resolve(name, weights)
    if not record.published or CacheEntry(record).lookup() is None:
        fetch_record(record)


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


def weights_status(record) -> str:
    """Where `record`'s weights stand on this machine: cached, downloadable (pinned or not), awaiting upload, or not published."""
    from keras_resnets.weights.cache import CacheEntry

    if not record.published:
        return "not published: use a local file"
    if CacheEntry(record).lookup() is not None:
        return "cached"
    if record.pinned:
        return "downloadable (pinned)"
    if record.sha256 and record.local_alternative:
        # The project's own weights before their upload: the Hub has no repository for them yet, so
        # "downloadable" would be untrue; the record names the committed file to load instead.
        return "awaiting upload: committed file"
    return "downloadable (sha256 pinned)" if record.sha256 else "downloadable (unpinned)"


def _run_weights(args) -> int:
    from keras_resnets.weights import DEFAULT_TAGS, cache_root, list_weights

    records = list_weights(args.model)
    name_width = max([20] + [len(record.name) + 1 for record in records])  # "plain20.cifar10_jpeg" is 20 long.
    print(f"{'weights':<{name_width}} {'top-1 (%)':>9}  {'input':>5}  {'license':<12} {'status':<31} description")
    for record in records:
        top1 = "" if record.metrics.top1 is None else f"{record.metrics.top1:.2f}"
        height, width = record.preprocessing.input_size
        size = str(height) if height == width else f"{height}x{width}"
        print(f"{record.name:<{name_width}} {top1:>9}  {size:>5}  {record.license:<12} "
              f"{weights_status(record):<31} {record.description}")
    aliases = ", ".join(sorted(DEFAULT_TAGS))
    print(f"\nUse --weights with a tag (the part after the dot) or an alias ({aliases}); "
          "'default' picks imagenet or cifar10 by the model's family.")
    print(f"Cached weights load without network ({cache_root()}). To use weights on a machine without network, run "
          "`python -c \"import keras_resnets; keras_resnets.download_weights('NAME')\"` where there is network and "
          "copy the Hugging Face cache folder (HF_HOME, default ~/.cache/huggingface) over.")
    for record in records:
        if record.local_alternative:  # Unpublished weights, and the project's own (also in a checkout).
            print(f"{record.name}: {record.local_alternative}")
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


def _count_batch_norms(model) -> int:
    import keras

    return sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model._flatten_layers())


def _run_export(args) -> int:
    from keras_resnets.tasks.export import check_export_destination, export_model, saved_model_signatures

    check_export_destination(args.output, args.format, overwrite=args.overwrite)  # Before the model loads.
    model, info = _load(args.model, args.weights)
    if args.fold_batch_norm:
        from keras_resnets.models.folding import fold_batch_norm

        norms = _count_batch_norms(model)
        model = fold_batch_norm(model)
        print(f"Folded {norms - _count_batch_norms(model)} of {norms} BatchNormalization layers into the convolutions before them")
    print(f"Exporting {model.name} ({info.num_classes} classes) as {args.format} to {args.output} ...", flush=True)
    kwargs = {"top_k": args.top_k} if args.format == "saved_model" else {}
    path = export_model(model, info, args.output, format=args.format, overwrite=args.overwrite, **kwargs)
    if args.format == "saved_model":
        print(f"Wrote {path} with signatures: {', '.join(saved_model_signatures(path))}")
    else:
        print(f"Wrote {path} (class names and preprocessing in keras_resnets.json beside it)")
    return 0


def _run_validate(args) -> int:
    from keras_resnets.tasks.validate import format_result, validate

    result = validate(args.model, args.data, weights=args.weights, labels_file=args.labels_file,
                      batch_size=args.batch_size, top_k=args.top_k, progress=not args.quiet,
                      output_json=args.output_json)
    print(format_result(result))
    if args.output_json:
        print(f"Wrote {args.output_json}")
    return 0


def _run_benchmark(args) -> int:
    from keras_resnets.tasks.benchmark import benchmark, describe_machine, format_machine, format_table
    from keras_resnets.tasks.validate import write_json

    machine = describe_machine()
    print(f"machine: {format_machine(machine)}", flush=True)

    def report(row):
        speed = f"not run ({row.error})" if row.error else f"{row.images_per_second:.1f} images/s"
        print(f"  {row.model} {row.mode} batch {row.batch_size} {row.precision}: {speed}", flush=True)

    rows = benchmark(args.models, batch_sizes=args.batch_sizes, precisions=args.precisions, modes=args.modes,
                     steps=args.steps, warmup=args.warmup, input_size=args.image_size,
                     jit_compile={"auto": "auto", "on": True, "off": False}[args.xla],
                     progress=None if args.quiet else report)
    print(format_table(rows))
    if args.output_json:
        write_json({"machine": machine, "rows": [row.to_dict() for row in rows]}, args.output_json)
        print(f"Wrote {args.output_json}")
    return 0


def _add_validate_and_benchmark_parsers(commands) -> None:
    """The `validate` and `benchmark` sub-commands."""
    check = commands.add_parser(
        "validate",
        help="top-1/top-5 and per-class accuracy of a model on a labelled image folder",
        description=(
            "Evaluate a registry model with its weights on DATA (one sub-folder of images per class, labels in "
            "sorted folder order, or in the order of --labels-file). Images get the weights record's "
            "evaluation transform (resize, centre crop, normalisation); CIFAR images already 32x32 are used "
            "as they are. Warns when the folder's class names sit at other labels than the weights' classes."
        ),
    )
    check.add_argument("data", help="folder: DATA/<class name>/<images>")
    check.add_argument("--model", default="resnet50", help="registry model name (default: resnet50)")
    check.add_argument("--weights", type=_weights_argument, default="default",
                       help="'default', a tag, hf://owner/repo, or a weights file (default: default)")
    check.add_argument("--labels-file", help="text file of class names, one per line, in label order")
    check.add_argument("--batch-size", type=int, default=256, help="(default: 256)")
    check.add_argument("--top-k", type=int, default=5, help="k of the top-k accuracy (default: 5)")
    check.add_argument("--output-json", help="also write the result there as JSON")
    check.add_argument("--quiet", action="store_true", help="no progress bar")
    check.set_defaults(run=_run_validate)

    bench = commands.add_parser(
        "benchmark",
        help="inference and training images/s of models on this machine",
        description=(
            "Time inference (predict_on_batch) and training (train_on_batch) steps of each model, batch size "
            "and precision on the current Keras backend with random data; warm-up steps (tracing, compilation) "
            "are not timed. Prints the machine, a table, and optionally JSON."
        ),
    )
    bench.add_argument("--models", nargs="+", default=["resnet50"], help="registry names (default: resnet50)")
    bench.add_argument("--batch-sizes", type=int, nargs="+", default=[32], help="(default: 32)")
    bench.add_argument("--precisions", nargs="+", choices=("float32", "bfloat16"), default=["float32"],
                       help="bfloat16 runs mixed precision (default: float32)")
    bench.add_argument("--modes", nargs="+", choices=("inference", "inference_folded", "train"),
                       default=["inference", "train"],
                       help="inference_folded: inference with BatchNorm folded into the convolutions, as "
                            "`export --fold-batch-norm` writes it (default: inference train)")
    bench.add_argument("--steps", type=int, default=10, help="timed steps per row; the median is kept (default: 10)")
    bench.add_argument("--warmup", type=int, default=2, help="untimed steps first (default: 2)")
    bench.add_argument("--image-size", type=_image_size_argument, help="SIZE or HEIGHTxWIDTH (default: the model's)")
    bench.add_argument("--xla", choices=("auto", "on", "off"), default="auto", help="jit_compile (default: auto)")
    bench.add_argument("--output-json", help="also write the machine and rows there as JSON")
    bench.add_argument("--quiet", action="store_true", help="print only the machine and the table")
    bench.set_defaults(run=_run_benchmark)


def _add_model_source_arguments(parser) -> None:
    """--model and --weights, shared by the commands that load a trained classifier."""
    parser.add_argument("--model", default="resnet50", help=MODEL_HELP + " (default: resnet50)")
    parser.add_argument("--weights", type=_weights_argument, default="default", help=WEIGHTS_HELP + " (default: default)")


def _add_output_options(parser, default) -> None:
    parser.add_argument("--verbose", action="store_true", default=default,
                        help="also show TensorFlow's native log lines (device set-up, oneDNN, absl)")
    parser.add_argument("--debug", action="store_true", default=default,
                        help="show the Python traceback of an error")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``keras-resnets`` with its sub-commands."""
    parser = argparse.ArgumentParser(
        prog="keras-resnets",
        description="ResNets of He et al. (2015) for Keras 3: fine-tune on your images, predict, export for serving.",
    )
    _add_output_options(parser, default=False)
    common = argparse.ArgumentParser(add_help=False)
    _add_output_options(common, default=argparse.SUPPRESS)  # Also accepted after the command name.
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_parser = commands.add_parser

    def add_command(*args, **kwargs):
        return add_parser(*args, parents=[common], **kwargs)

    commands.add_parser = add_command

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
    tune.add_argument("--validation-fraction", type=_fraction, default=0.2, help="share of DATA held out (default: 0.2)")
    tune.add_argument("--test-dir", help="labelled folder to report held-out accuracy on after training")
    tune.add_argument("--image-size", type=_image_size_argument, help="input SIZE or HEIGHTxWIDTH (default: the model's)")
    tune.add_argument("--batch-size", type=_positive_int, default=32, help="(default: 32)")
    tune.add_argument("--head-epochs", type=_positive_int, default=5, help="epochs with the backbone frozen (default: 5)")
    tune.add_argument("--fine-tune-epochs", type=_non_negative_int, default=5, help="epochs with top stages unfrozen; 0 skips (default: 5)")
    tune.add_argument("--unfreeze", type=_unfreeze_argument, default=1, help="top stages to unfreeze in phase 2, or 'all' (default: 1)")
    tune.add_argument("--learning-rate", type=_positive_float, default=1e-2, help="Adam learning rate of phase 1 (default: 0.01)")
    tune.add_argument("--fine-tune-learning-rate", type=_positive_float, help="of phase 2 (default: learning rate / 100)")
    tune.add_argument("--train-batchnorm", action="store_true", help="also train BatchNorm of unfrozen stages")
    tune.add_argument("--no-augment", action="store_true", help="no random flips/translations")
    tune.add_argument("--patience", type=_non_negative_int, default=3, help="early-stopping patience in epochs; 0 disables (default: 3)")
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
    predict.add_argument("--top-k", type=_positive_int, default=5, help="(default: 5)")
    predict.add_argument("--batch-size", type=_positive_int, default=32, help="(default: 32)")
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
    export.add_argument("--top-k", type=_positive_int, default=5, help="classes in the top_k outputs (default: 5)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing export at OUTPUT")
    export.add_argument(
        "--fold-batch-norm", action="store_true",
        help="fold BatchNormalization into the convolutions before it (same predictions, faster serving)",
    )
    export.set_defaults(run=_run_export)
    _add_validate_and_benchmark_parsers(commands)
    return parser


# Commands that only read the registries: they must not import Keras/TensorFlow.
LIGHT_COMMANDS = ("models", "weights")
# Commands that load --model with --weights: their weights are fetched before TensorFlow starts.
LOADING_COMMANDS = ("predict", "export", "fine-tune")
# Errors a user can cause and fix (bad argument, file, image, weights, network); anything else is a bug.
USER_ERRORS = (ValueError, OSError, ImportError)


def silence_native_logs() -> None:
    """Ask TensorFlow (not imported yet) not to print its C++ INFO/WARNING/ERROR lines; user settings win."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


@contextlib.contextmanager
def _stderr_held_back():
    """Hold back what native code writes to file descriptor 2; replay it only if the block fails.

    Some TensorFlow lines (absl's "before InitializeLog" notice, the CUDA stub probe) are written
    while it is imported, before TF_CPP_MIN_LOG_LEVEL can be consulted.
    """
    sys.stderr.flush()
    with tempfile.TemporaryFile() as held:
        saved = os.dup(2)
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _import_backend_quietly() -> None:
    if "keras" not in sys.modules:
        with _stderr_held_back():
            import keras  # noqa: F401 (imports the backend, TensorFlow by default)
    if "absl.logging" in sys.modules:
        sys.modules["absl.logging"].set_verbosity("error")
    if "tensorflow" in sys.modules:
        sys.modules["tensorflow"].get_logger().setLevel("ERROR")


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _one_line_warning(message, category, filename, lineno, line=None):
    return f"keras-resnets: warning: {' '.join(str(message).split())}\n"


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``keras-resnets`` console script; returns the exit status.

    Exit status 0 on success, 2 for a usage or user error (one line on stderr: bad argument, missing
    or unreadable file or image, weights not available, corrupt or mismatched weights), 1 for an
    unexpected error, 130 when interrupted. ``--debug`` also prints the traceback.
    """
    import traceback
    import warnings

    args = build_parser().parse_args(argv)
    prefix = f"keras-resnets {args.command}"
    original_format = warnings.formatwarning
    if not args.debug:
        warnings.formatwarning = _one_line_warning
    try:
        if not args.verbose:
            silence_native_logs()
        if args.command in LOADING_COMMANDS:
            preflight_weights(args.model, args.weights)
        if not args.verbose and args.command not in LIGHT_COMMANDS:
            _import_backend_quietly()
        return args.run(args)
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as error:
        if args.debug:
            traceback.print_exc()
        print(f"{prefix}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except Exception as error:  # A bug: still one line, with the way to the traceback.
        if args.debug:
            traceback.print_exc()
        print(f"{prefix}: error: {type(error).__name__}: {_one_line(error)} (unexpected; run again with --debug "
              "for the traceback and please report it)", file=sys.stderr)
        return 1
    finally:
        warnings.formatwarning = original_format


if __name__ == "__main__":
    sys.exit(main())
