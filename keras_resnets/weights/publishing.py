"""Publishing Keras-native weights: a folder with weights, ``config.json`` and a model card, and its upload.

The folder layout is what ``weights="hf://owner/repo[@revision]"`` loads:

* ``model.weights.h5``: Keras weights of a model of this zoo;
* ``config.json``: the architecture (family, depth, residual, shortcut, downsample), classes, class
  names, preprocessing, metrics, license, provenance and the sha256 of the weights file;
* ``README.md``: a Hugging Face model card with ``model-index`` metrics.

Weights with a registry record (the project's own ``cifar10_jpeg`` weights) are published from folders
committed in the repository; :func:`check_model_folder` says whether such a folder is complete and agrees
with its record before it is uploaded.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
from typing import List, Optional, Sequence

import keras

from keras_resnets import outputs
from keras_resnets.weights import fingerprint, hub
from keras_resnets.weights.catalog import default_preprocessing
from keras_resnets.architecture.identity import Architecture
from keras_resnets.version import __version__
from keras_resnets.weights.loader import CONFIG_FILENAME, WEIGHTS_FILENAME
from keras_resnets.weights.records import Preprocessing, WeightsRecord

CONFIG_FORMAT_VERSION = 1
DEFAULT_INTENDED_USE = (
    "Image classification on the classes listed in config.json, and as a pretrained backbone for "
    "fine-tuning (load with include_top=False or another `classes`). Not evaluated for any "
    "safety-critical use; accuracy outside the evaluation data set is unknown."
)


def _classifier_units(model) -> Optional[int]:
    from keras_resnets.weights.torch_layout import model_classifier

    head = model_classifier(model)
    return None if head is None else head.units


_DATASET_IDS = {"imagenet-1k": "imagenet-1k", "cifar-10": "cifar10"}  # Hub data set ids for model-index.


def _yaml_string(value: str) -> str:
    return json.dumps(value)  # JSON strings are valid YAML scalars and escape everything needed.


def _or_unmeasured(value) -> str:
    return "not measured" if value is None else f"{value}"


def _error_text(top1) -> str:
    return "" if top1 is None else f" % (top-1 error {100 - top1:.2f} %)"


def _usage_lines(config: dict, repo_name: str):
    record = config.get("weights_record")
    lines = []
    if isinstance(record, str) and "." in record:
        tag = record.split(".", 1)[1]
        lines.append(f"model = keras_resnets.get_model({config['model']!r}, weights={tag!r})  # registry record {record}")
    lines.append(f"model = keras_resnets.get_model({config['model']!r}, weights=\"hf://{repo_name}\")")
    return lines


def _training_lines(training) -> list:
    """The card's "Training" section from the ``training`` entry of config.json (None: no section).

    Keys (all optional): ``description`` (a paragraph), ``curve`` (rows of step, epoch, learning_rate,
    train_error and test_error, errors in %), ``curve_note``, ``notes`` (bullets), ``history`` (where the
    full curve is), ``reproduce`` (shell commands).
    """
    if not training:
        return []
    lines = ["## Training", ""]
    if training.get("description"):
        lines += [training["description"], ""]
    curve = training.get("curve") or []
    if curve:
        lines += ["| step | epoch | learning rate | training error (%) | test error (%) |", "|---:|---:|---:|---:|---:|"]
        for row in curve:
            lines.append(
                f"| {row['step']:,} | {row['epoch']:.0f} | {row['learning_rate']:g} | {row['train_error']:.2f} "
                f"| {row['test_error']:.2f} |"
            )
        lines.append("")
    if training.get("curve_note"):
        lines += [training["curve_note"], ""]
    notes = training.get("notes") or []
    if notes:
        lines += [f"- {note}" for note in notes] + [""]
    if training.get("history"):
        lines += [f"Full training curve: {training['history']}.", ""]
    if training.get("reproduce"):
        lines += ["### Reproduce", "", "```bash", *training["reproduce"], "```", ""]
    return lines


def model_card(config: dict, repo_name: str) -> str:
    """A Hugging Face model card (README.md) with ``model-index`` metrics for a published weight set.

    `config` is the folder's config.json; its optional ``training`` entry adds a "Training" section
    (description, curve table, notes, where the full history is, reproduce commands) and its
    ``weights_record`` the registry tag to load it by.
    """
    metrics = config.get("metrics") or {}
    architecture = config["architecture"]
    lines = [
        "---",
        f"license: {config['license'].lower()}",
        "library_name: keras",
        "pipeline_tag: image-classification",
        "tags:",
        "- keras",
        "- keras-resnets",
        "- resnet",
        "- image-classification",
    ]
    if metrics.get("top1") is not None:
        lines += [
            "model-index:",
            f"- name: {_yaml_string(repo_name)}",
            "  results:",
            "  - task:",
            "      type: image-classification",
            "      name: Image Classification",
            "    dataset:",
            f"      name: {_yaml_string(metrics.get('dataset', 'unknown'))}",
            f"      type: {_yaml_string(_DATASET_IDS.get(config.get('class_names'), 'custom'))}",
            "    metrics:",
            "    - type: accuracy",
            "      name: top-1 accuracy",
            f"      value: {metrics['top1']}",
        ]
        if metrics.get("top5") is not None:
            lines += ["    - type: top_5_accuracy", "      name: top-5 accuracy", f"      value: {metrics['top5']}"]
    lines.append("---")
    pre = config.get("preprocessing") or {}
    check = config.get("source_check")
    lines += [
        "",
        f"# {repo_name}",
        "",
        f"{config['model']} ({'residual' if architecture['residual'] else 'plain'} network of He et al. 2015, "
        f"{architecture['family']} layout, shortcut option {architecture['shortcut']}, "
        f"downsample {architecture['downsample']}) with {config.get('classes') or 'no'} output classes, "
        "for keras-resnets (Keras 3, any backend).",
        "",
        "## Usage",
        "",
        "```python",
        "import keras_resnets",
        *_usage_lines(config, repo_name),
        "```",
        "",
        "## Metrics",
        "",
        f"- top-1: {_or_unmeasured(metrics.get('top1'))}{_error_text(metrics.get('top1'))}; "
        f"top-5: {_or_unmeasured(metrics.get('top5'))}{'' if metrics.get('top5') is None else ' %'} "
        f"({metrics.get('dataset', 'n/a')}; source: {metrics.get('source', 'n/a')})",
        "",
        "## Preprocessing",
        "",
        f"RGB pixels / 255, then per channel (x - mean) / std with mean {pre.get('mean')} and std {pre.get('std')}; "
        f"evaluation input {'x'.join(str(side) for side in pre.get('input_size') or ())} (crop_pct {pre.get('crop_pct')}, "
        f"{pre.get('interpolation')}). `keras_resnets.preprocess_input` does the normalisation.",
        "",
        "## Provenance",
        "",
        config.get("provenance") or "Not stated.",
        "",
    ]
    lines += _training_lines(config.get("training"))
    if check:
        lines += [
            f"Output check before publishing: max |logit difference| {check['max_abs_diff']:.3g} against "
            f"{check['reference']} on {check['inputs']}.",
            "",
        ]
    lines += [
        "## Intended use",
        "",
        config.get("intended_use") or DEFAULT_INTENDED_USE,
        "",
        "## License",
        "",
        f"{config['license']}.",
        "",
    ]
    return "\n".join(lines)


def write_model_folder(
    model: keras.Model,
    folder,
    *,
    repo_name: str,
    license: str,
    provenance: str,
    metrics: Optional[dict] = None,
    preprocessing: Optional[Preprocessing] = None,
    class_names=None,
    intended_use: Optional[str] = None,
    source_check: Optional[dict] = None,
    training: Optional[dict] = None,
    weights_record: Optional[str] = None,
    overwrite: bool = False,
) -> pathlib.Path:
    """Write ``model.weights.h5``, ``config.json`` and ``README.md`` for `model` into `folder`.

    Args:
        model: a model of this zoo (possibly fine-tuned).
        folder: output folder (created).
        repo_name: "owner/name" the folder is meant for (used in the card).
        license: SPDX license of the weights.
        provenance: where the weights come from (training run, source checkpoint, conversion).
        metrics: {"top1", "top5", "dataset", "source"} (values in %), or None.
        preprocessing: the evaluation transform; defaults to the family's usual one.
        class_names: "imagenet-1k", "cifar-10", or a list of names (one per class).
        intended_use: a paragraph for the card.
        source_check: {"max_abs_diff", "reference", "inputs"} from comparing outputs with the source.
        training: how the weights were trained, for the card's "Training" section (see
            :func:`model_card`): description, curve rows, notes, history location, reproduce commands.
        weights_record: the registry record these files are for ("resnet20.cifar10_jpeg"), so the card
            shows ``weights="<tag>"``.
        overwrite: replace an existing folder written earlier by this function (never any other).

    The folder is written beside `folder` and renamed into place when complete (see
    :mod:`keras_resnets.outputs`); an existing non-empty `folder` is refused unless `overwrite`.

    Returns:
        The folder.
    """
    architecture = Architecture.from_model(model)
    classes = _classifier_units(model)
    if isinstance(class_names, (list, tuple)) and classes is not None and len(class_names) != classes:
        raise ValueError(
            f"`class_names` must have one name per class ({classes}). Received: {len(class_names)} names"
        )
    folder = pathlib.Path(outputs.check_destination(folder, overwrite=overwrite, kind="model folder"))
    with outputs.atomic_output(folder, overwrite=overwrite, kind="model folder") as temporary:
        _write_model_files(model, pathlib.Path(temporary), architecture, classes, repo_name, license, provenance,
                           metrics, preprocessing, class_names, intended_use, source_check, training, weights_record)
    return folder


def _write_model_files(model, folder, architecture, classes, repo_name, license, provenance, metrics,
                       preprocessing, class_names, intended_use, source_check, training, weights_record) -> None:

    weights_path = folder / WEIGHTS_FILENAME
    fingerprint.save_weights(model, str(weights_path))
    preprocessing = preprocessing or default_preprocessing(architecture.spec.family)
    config = {
        "format_version": CONFIG_FORMAT_VERSION,
        "library": "keras-resnets",
        "library_version": __version__,
        "model": architecture.name,
        "architecture": architecture.to_dict(),
        "classes": classes,
        "class_names": list(class_names) if isinstance(class_names, (list, tuple)) else class_names,
        "preprocessing": preprocessing.to_dict(),
        "weights_file": WEIGHTS_FILENAME,
        "weights_sha256": hub.file_sha256(weights_path),
        "metrics": metrics,
        "license": license,
        "provenance": provenance,
        "intended_use": intended_use or DEFAULT_INTENDED_USE,
        "source_check": source_check,
        "training": training,
        "weights_record": weights_record,
    }
    (folder / CONFIG_FILENAME).write_text(json.dumps(config, indent=2) + "\n")
    (folder / "README.md").write_text(model_card(config, repo_name))


FOLDER_FILES = (WEIGHTS_FILENAME, CONFIG_FILENAME, "README.md")


def check_model_folder(folder, record: WeightsRecord) -> List[str]:
    """What is wrong with a Hub folder (as :func:`write_model_folder` writes it) for registry `record`.

    Checks that the folder holds exactly ``model.weights.h5``, ``config.json`` and ``README.md`` (and the
    writer's marker, which is never uploaded); that the weights file's sha256 is the one pinned in
    `record` and in config.json; that the file passes :func:`fingerprint.verify_weights_file` and records
    `record`'s architecture; and that config.json and the card agree with `record` (model, architecture,
    classes, class names, preprocessing, metrics, license, provenance, repository).

    Args:
        folder: the folder to check.
        record: the :class:`WeightsRecord` it is to be published as.

    Returns:
        One sentence per problem, naming the file and the values; empty when the folder is ready.
    """
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        return [f"{folder} is not a folder"]
    problems = []
    present = sorted(path.name for path in folder.iterdir())
    missing = [name for name in FOLDER_FILES if name not in present]
    extra = [name for name in present if name not in FOLDER_FILES and name != outputs.MARKER_NAME]
    if missing:
        problems.append(f"{folder} lacks {missing} (expected {list(FOLDER_FILES)})")
    if extra:
        problems.append(f"{folder} holds files that would be uploaded but belong to no Hub folder: {extra}")
    if missing:
        return problems
    weights_path, config_path = folder / WEIGHTS_FILENAME, folder / CONFIG_FILENAME
    actual_sha256 = hub.file_sha256(weights_path)
    if record.filename != WEIGHTS_FILENAME:
        problems.append(f"record {record.name} names file {record.filename!r}; the folder holds {WEIGHTS_FILENAME!r}")
    if record.sha256 is None:
        problems.append(f"record {record.name} pins no sha256; set it to {actual_sha256} (the sha256 of {weights_path})")
    elif actual_sha256 != record.sha256:
        problems.append(f"{weights_path} has sha256 {actual_sha256}; record {record.name} pins {record.sha256}")
    expected_architecture = Architecture.from_name(record.model)
    try:
        recorded = fingerprint.verify_weights_file(str(weights_path)).architecture
    except ValueError as error:
        problems.append(str(error))
        recorded = expected_architecture
    if recorded != expected_architecture:
        problems.append(f"{weights_path} records the architecture {getattr(recorded, 'name', None)!r}, not {record.model!r}")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return problems + [f"{config_path} is not readable JSON: {error}"]
    if not isinstance(config, dict):
        return problems + [f"{config_path} does not hold a JSON object"]
    expected = {
        "model": record.model,
        "architecture": expected_architecture.to_dict(),
        "classes": record.classes,
        "class_names": record.class_names,
        "weights_file": record.filename,
        "weights_sha256": actual_sha256,
        "metrics": {"top1": record.metrics.top1, "top5": record.metrics.top5, "dataset": record.metrics.dataset,
                    "source": record.metrics.source},
        "license": record.license,
        "provenance": record.provenance,
        "weights_record": record.name,
    }
    for key, value in expected.items():
        if config.get(key) != value:
            problems.append(f"{config_path}: {key} is {config.get(key)!r}; record {record.name} says {value!r}")
    try:
        preprocessing = Preprocessing.from_dict(config.get("preprocessing"))
    except ValueError as error:
        preprocessing = error
    if preprocessing != record.preprocessing:
        problems.append(f"{config_path}: preprocessing is {preprocessing!r}; record {record.name} has {record.preprocessing!r}")
    card = (folder / "README.md").read_text(encoding="utf-8")
    for needed in (f"# {record.repo_id}\n", f"license: {record.license.lower()}\n"):
        if needed not in card:
            problems.append(f"{folder / 'README.md'} lacks the line {needed.strip()!r}")
    return problems


_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def upload_folder(folder, repo_id: str, *, token=None, private: Optional[bool] = None,
                  commit_message: str = "Upload keras-resnets weights") -> str:
    """Create `repo_id` on the Hub if needed and upload `folder`; returns ``"hf://repo_id@commit"``."""
    from huggingface_hub import HfApi

    if not isinstance(repo_id, str) or not _REPO_ID.match(repo_id):
        raise ValueError(f"`repo_id` must look like 'owner/name'. Received: repo_id={repo_id!r}")
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message,
                             ignore_patterns=[outputs.MARKER_NAME])
    return f"hf://{repo_id}@{info.oid}"


def push_to_hub(
    model: keras.Model,
    repo_id: str,
    *,
    token=None,
    private: Optional[bool] = None,
    license: str = "apache-2.0",
    provenance: str = "Fine-tuned with keras-resnets.",
    metrics: Optional[dict] = None,
    preprocessing: Optional[Preprocessing] = None,
    class_names: Optional[Sequence[str]] = None,
    intended_use: Optional[str] = None,
    folder=None,
    commit_message: str = "Upload keras-resnets weights",
) -> str:
    """Publish `model`'s weights on the Hub so that ``weights="hf://repo_id"`` loads them back.

    Args:
        model: a model built by keras_resnets (fine-tuned or not).
        repo_id: "owner/name" on the Hub (created if missing).
        token: Hub token (default: the logged-in one, ``HF_TOKEN``).
        private: create the repository private.
        license, provenance, metrics, preprocessing, class_names, intended_use: model card and config
            contents (see :func:`write_model_folder`).
        folder: where to write the files first (default: a temporary folder).
        commit_message: the commit message on the Hub.

    Returns:
        ``"hf://repo_id@<commit>"``, a pinned reference to pass as ``weights=``.
    """
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        target = folder if folder is not None else os.path.join(scratch, "model")
        write_model_folder(
            model, target, repo_name=repo_id, license=license, provenance=provenance, metrics=metrics,
            preprocessing=preprocessing, class_names=class_names, intended_use=intended_use,
        )
        return upload_folder(target, repo_id, token=token, private=private, commit_message=commit_message)
