"""Accuracy of a zoo model and its weights on a labelled image folder (``keras-resnets validate``).

Images are prepared with the evaluation transform of the weights record (``prepare_image``: shorter side to
``floor(input_size / crop_pct)``, centre crop, then ``preprocess_input``); an image already at the input
size with ``crop_pct == 1`` (CIFAR) is used as it is, exactly as the weights were evaluated. Labels are
the positions of the class sub-folders (sorted), or of the classes listed in a labels file; when the
weights' class names are known, a folder whose names sit at other positions is reported, because its
accuracy would be meaningless.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from keras_resnets.data import image_folder
from keras_resnets.data import preprocessing as preprocessing_lib
from keras_resnets.models.registry import get_model, model_entry
from keras_resnets.weights import catalog
from keras_resnets.weights.records import Preprocessing

# The pretrained tag that weights="default" means for each family.
DEFAULT_TAGS = {"imagenet": "imagenet", "cifar": "cifar10"}
# The class list a family's classifier usually predicts, by number of classes (decode_predictions' rule).
USUAL_CLASS_NAMES = {("imagenet", 1000): "imagenet-1k", ("cifar", 10): "cifar-10"}


@dataclasses.dataclass
class ValidationResult:
    """What :func:`validate` measured (``to_dict`` gives the JSON written by the command)."""

    model: str
    weights: Optional[str]
    data: str
    count: int
    top1: float
    top5: float
    top_k: int
    per_class: Dict[str, dict]
    class_names: List[str]
    weights_class_names: Optional[str]
    class_name_mismatch: Optional[str]
    preprocessing: dict
    preprocessing_source: str
    seconds: float

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return dataclasses.asdict(self)


def _is_registered(weights) -> bool:
    return isinstance(weights, str) and not weights.startswith("hf://") and not os.path.exists(weights) \
        and "/" not in weights and os.sep not in weights


def resolve_weights(model: str, weights):
    """``(weights, record or None)``: "default" becomes the family's tag; a tag gets its registry record."""
    entry = model_entry(model)
    if isinstance(weights, str) and weights.lower() == "default":
        weights = DEFAULT_TAGS[entry.spec.family]
    if _is_registered(weights):
        return weights, catalog.CATALOG.resolve(entry.name, weights)
    return weights, None


def read_labels_file(path) -> List[str]:
    """Class names, one per line, in label order (blank lines and lines starting with # are skipped)."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as handle:
            names = [line.strip() for line in handle if line.strip() and not line.lstrip().startswith("#")]
    except OSError as error:
        raise ValueError(f"Cannot read the labels file {path!r}: {error}") from error
    if not names:
        raise ValueError(f"The labels file {path!r} lists no class names (expected one name per line).")
    if len(set(names)) != len(names):
        raise ValueError(f"The labels file {path!r} lists a class twice: {sorted(n for n in set(names) if names.count(n) > 1)}")
    return names


def known_class_names(source: Optional[str]):
    """``(labels, ids)`` of a class list ("imagenet-1k", "cifar-10"), or ``(None, None)`` when unknown."""
    if source is None:
        return None, None
    labels = preprocessing_lib.class_names(source)
    if source == "imagenet-1k":
        return labels, [wnid for wnid, _ in preprocessing_lib.imagenet_classes()]
    return labels, labels


def class_name_mismatch(folder_names: Sequence[str], source: Optional[str]) -> Optional[str]:
    """A sentence naming the classes whose label position differs between the folder and the weights.

    None when they agree, when the weights' classes are unknown, or when the folder's names are not
    class names of the weights (custom names cannot be checked).
    """
    labels, ids = known_class_names(source)
    if labels is None:
        return None
    known = [names for names in (labels, ids) if all(name in names for name in folder_names)]
    if not known:
        return None
    names = known[0]
    wrong = [(i, name, names[i]) for i, name in enumerate(folder_names) if i >= len(names) or names[i] != name]
    if not wrong:
        return None
    preview = "; ".join(f"label {i}: folder {mine!r}, weights {theirs!r}" for i, mine, theirs in wrong[:4])
    return (f"class names of the folder and the weights ({source}) disagree at {len(wrong)} of "
            f"{len(folder_names)} labels ({preview}{' ...' if len(wrong) > 4 else ''}); the accuracy is "
            f"not meaningful. Order the labels file as the weights' classes.")


def _load_one(path: str, preprocessing: Preprocessing) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            size = preprocessing.input_size
            if preprocessing.crop_pct == 1.0 and image.size == (size, size):
                return np.asarray(image, dtype="float32")
            return preprocessing_lib.prepare_image(image, preprocessing)
    except OSError as error:
        raise ValueError(f"Cannot read image {path!r}: {error}") from error


def validate(
    model: str,
    data,
    weights="default",
    *,
    labels_file=None,
    batch_size: int = 256,
    top_k: int = 5,
    progress: bool = True,
    output_json=None,
    workers: int = 4,
) -> ValidationResult:
    """Top-1, top-k and per-class accuracy of `model` with `weights` on the labelled images in `data`.

    Args:
        model: a registry name ("resnet50", "resnet20", ...).
        data: a folder with one sub-folder per class.
        weights: "default" (the family's pretrained tag), a tag, ``hf://owner/repo``, or a weights file.
        labels_file: a text file naming the classes, one per line, in label order (the sub-folders
            read); default: every sub-folder, sorted.
        batch_size: images per forward pass.
        top_k: the k of the second accuracy (capped at the number of classes).
        progress: show a progress bar.
        output_json: write the result there as JSON.
        workers: threads decoding images.

    Returns:
        A :class:`ValidationResult` (percentages, per-class accuracy, the transform used, the class
        name check).
    """
    for argument, value in (("batch_size", batch_size), ("top_k", top_k), ("workers", workers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{argument}` must be an integer >= 1. Received: {argument}={value!r}")
    entry = model_entry(model)
    weights, record = resolve_weights(entry.name, weights)
    class_list = read_labels_file(labels_file) if labels_file is not None else None
    folder = image_folder.scan_image_folder(data, class_names=class_list)

    if record is not None:
        preprocessing, source = record.preprocessing, f"weights record {record.name}"
        names_source = record.class_names
    elif isinstance(weights, (str, os.PathLike)) and preprocessing_lib.preprocessing_beside(weights) is not None:
        preprocessing = preprocessing_lib.preprocessing_beside(weights)
        source = f"the config.json beside {os.fspath(weights)!r} (a published weights folder)"
        names_source = USUAL_CLASS_NAMES.get((entry.spec.family, entry.spec.default_classes))
    else:
        preprocessing = catalog.default_preprocessing(entry.spec.family)
        source = f"the usual {entry.spec.family} transform (weights {weights!r} are not a registry record)"
        names_source = USUAL_CLASS_NAMES.get((entry.spec.family, entry.spec.default_classes))
    classifier = get_model(entry.name, weights=weights, classifier_activation=None)
    num_outputs = int(classifier.output.shape[-1])
    if len(folder.class_names) > num_outputs:
        raise ValueError(
            f"`data` has {len(folder.class_names)} classes but {entry.name} with weights {weights!r} predicts "
            f"{num_outputs}. Received: data={os.fspath(data)!r}"
        )
    mismatch = class_name_mismatch(folder.class_names, names_source)
    k = min(top_k, num_outputs)

    import keras

    bar = keras.utils.Progbar(len(folder), unit_name="image") if progress else None
    correct1 = np.zeros(len(folder), bool)
    correctk = np.zeros(len(folder), bool)
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for first in range(0, len(folder), batch_size):
            paths = folder.paths[first:first + batch_size]
            labels = folder.labels[first:first + batch_size]
            images = np.stack(list(pool.map(lambda p: _load_one(p, preprocessing), paths)))
            logits = np.asarray(classifier.predict_on_batch(preprocessing_lib.preprocess_input(images, preprocessing)))
            top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
            correct1[first:first + len(paths)] = top[:, 0] == labels
            correctk[first:first + len(paths)] = (top == labels[:, None]).any(axis=1)
            if bar is not None:
                bar.add(len(paths), values=[("top1", 100.0 * correct1[:first + len(paths)].mean())])
    seconds = time.perf_counter() - start
    per_class = {}
    for index, name in enumerate(folder.class_names):
        members = folder.labels == index
        count = int(members.sum())
        per_class[name] = {"count": count, "top1": round(100.0 * float(correct1[members].mean()), 4) if count else None}
    result = ValidationResult(
        model=entry.name,
        weights=None if weights is None else str(weights),
        data=os.fspath(data),
        count=len(folder),
        top1=round(100.0 * float(correct1.mean()), 4),
        top5=round(100.0 * float(correctk.mean()), 4),
        top_k=k,
        per_class=per_class,
        class_names=list(folder.class_names),
        weights_class_names=names_source,
        class_name_mismatch=mismatch,
        preprocessing=dataclasses.asdict(preprocessing),
        preprocessing_source=source,
        seconds=round(seconds, 3),
    )
    if output_json is not None:
        write_json(result.to_dict(), output_json)
    return result


def write_json(data: dict, path) -> None:
    """Write `data` as indented JSON to `path` (its folder is created); errors name the file."""
    path = os.fspath(path)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
    except OSError as error:
        raise ValueError(f"Cannot write the JSON result to {path!r}: {error}") from error


def format_result(result: ValidationResult) -> str:
    """The lines ``keras-resnets validate`` prints: totals, then one line per class."""
    lines = [
        f"{result.model} ({result.weights}) on {result.data}: {result.count} images, "
        f"top-1 {result.top1:.2f} %, top-{result.top_k} {result.top5:.2f} % ({result.seconds:.1f} s)",
        f"transform: {result.preprocessing_source}",
    ]
    if result.class_name_mismatch:
        lines.append(f"WARNING: {result.class_name_mismatch}")
    width = max(len(name) for name in result.per_class)
    for name, scores in result.per_class.items():
        top1 = "   n/a" if scores["top1"] is None else f"{scores['top1']:6.2f}"
        lines.append(f"  {name:<{width}}  {top1} %  ({scores['count']} images)")
    return "\n".join(lines)
