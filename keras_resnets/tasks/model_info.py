"""What a trained classifier needs besides its weights: its class names and its input preprocessing.

A :class:`ModelInfo` travels with every fine-tuned model as ``keras_resnets.json`` beside
``model.keras`` (see :func:`save_classifier` / :func:`load_classifier`), and is embedded in exported
artifacts, so predictions and serving resize and normalise images exactly as training did.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import List, Optional, Sequence

from keras_resnets.data import preprocessing as preprocessing_lib
from keras_resnets.models.registry import DEFAULT_WEIGHTS, get_model, model_entry, resolve_default_weights  # noqa: F401
from keras_resnets.weights.catalog import get_weights_record, is_registered_name
from keras_resnets.weights.records import Preprocessing


MODEL_FILE_NAME = "model.keras"
INFO_FILE_NAME = "keras_resnets.json"
INFO_FORMAT_VERSION = 1


def classifier_preprocessing(model_name: Optional[str], weights, input_size: Sequence[int]) -> Preprocessing:
    """How to prepare images for a classifier at `input_size` whose backbone is the zoo model `model_name`
    started from `weights`: the weights record's transform (statistics, filter, crop fraction) at that
    size, or the usual one of the family (from `model_name`, else guessed from `input_size`)."""
    if model_name is None:
        return preprocessing_lib.default_preprocessing(guess_family(input_size), input_size)
    return preprocessing_lib.preprocessing_for(weights, model_name, input_size)


def class_names_for(model_name: Optional[str], weights, num_classes: int) -> List[str]:
    """Class names of the weights when they fit the model's outputs, else the output indices ("0", "1", ...).

    Where the names come from, first match wins: a registered weights tag (its record: ImageNet-1k,
    CIFAR-10); the ``config.json`` beside a weights file (written by ``python -m weights.publish``);
    for any other pretrained weights of a registry model, its family's data set (CIFAR-10 for a
    10-class CIFAR net, ImageNet-1k for a 1000-class ImageNet net, in the standard label order).
    """
    if isinstance(weights, os.PathLike):
        weights = os.fspath(weights)
    candidates = []
    if model_name is not None and isinstance(weights, str):
        if is_registered_name(weights):
            candidates.append(get_weights_record(weights, model_name).class_names)
        else:
            candidates.append(_class_names_beside(weights))
            candidates.append({"cifar": "cifar-10", "imagenet": "imagenet-1k"}[model_entry(model_name).spec.family])
    for source in candidates:
        names = preprocessing_lib.class_names(source) if isinstance(source, str) else source
        if names is not None and len(names) == num_classes:
            return list(names)
    return [str(i) for i in range(num_classes)]


def _class_names_beside(weights_path: str):
    """``class_names`` of the ``config.json`` next to a published weights file (a source name or a list), or None."""
    config_path = os.path.join(os.path.dirname(os.path.abspath(weights_path)), "config.json")
    try:
        with open(config_path) as handle:
            names = json.load(handle).get("class_names")
    except (OSError, ValueError, AttributeError):
        return None  # No usable metadata: the family default applies.
    if isinstance(names, list) and all(isinstance(n, str) for n in names):
        return names
    return names if names in ("imagenet-1k", "cifar-10") else None


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """Class names, preprocessing and provenance of a classifier.

    Attributes:
        class_names: label of each output unit, in output order.
        preprocessing: how to turn images into inputs.
        base_model: registry name of the architecture (e.g. "resnet50"), if known.
        weights: where the starting weights came from (tag or path), if known.
        extra: free-form JSON-ready details (e.g. fine-tuning metrics).
    """

    class_names: List[str]
    preprocessing: Preprocessing
    base_model: Optional[str] = None
    weights: Optional[str] = None
    extra: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        names = [str(name) for name in self.class_names]
        if not names:
            raise ValueError(f"`class_names` must not be empty. Received: class_names={self.class_names!r}")
        object.__setattr__(self, "class_names", names)

    @property
    def num_classes(self) -> int:
        """Number of output classes."""
        return len(self.class_names)

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return {
            "format_version": INFO_FORMAT_VERSION,
            "class_names": list(self.class_names),
            "preprocessing": self.preprocessing.to_dict(),
            "base_model": self.base_model,
            "weights": self.weights,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "ModelInfo":
        """The inverse of :meth:`to_dict`."""
        return cls(
            class_names=list(data["class_names"]),
            preprocessing=Preprocessing.from_dict(data["preprocessing"]),
            base_model=data.get("base_model"),
            weights=data.get("weights"),
            extra=dict(data.get("extra") or {}),
        )

    def save(self, path) -> None:
        """Write this info as JSON to `path`."""
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(self.to_dict(), handle, indent=2)
            handle.write("\n")

    @classmethod
    def load(cls, path) -> "ModelInfo":
        """Read an info JSON written by :meth:`save`."""
        with open(path, encoding="utf-8") as handle:
            return cls.from_dict(json.load(handle))


def save_classifier(model, info: ModelInfo, directory, overwrite: bool = False) -> str:
    """Save `model` as ``directory/model.keras`` and `info` as ``directory/keras_resnets.json``.

    The folder is written beside `directory` and renamed into place when complete; an existing
    non-empty `directory` is refused unless `overwrite`, and then only if this library wrote it
    (see :mod:`keras_resnets.outputs`).

    Returns:
        The directory path.
    """
    from keras_resnets import outputs

    directory = os.fspath(directory)
    if model.output_shape[-1] != info.num_classes:
        raise ValueError(
            f"The model has {model.output_shape[-1]} outputs but `info` names {info.num_classes} classes. "
            f"Received: class_names={info.class_names!r}"
        )
    with outputs.atomic_output(directory, overwrite=overwrite, kind="saved classifier") as temporary:
        model.save(os.path.join(temporary, MODEL_FILE_NAME))
        info.save(os.path.join(temporary, INFO_FILE_NAME))
    return directory


def is_saved_classifier(path) -> bool:
    """Whether `path` is a directory written by :func:`save_classifier`."""
    path = os.fspath(path)
    return os.path.isfile(os.path.join(path, MODEL_FILE_NAME)) and os.path.isfile(os.path.join(path, INFO_FILE_NAME))


def reject_builtin_preprocessing(model, argument: str = "model") -> None:
    """Raise if `model` normalises its own input (built with ``include_preprocessing=True``).

    Fine-tuning, prediction and export put the weights' resize and normalisation in front of the model
    themselves; a model that also normalises inside would see its images normalised twice.
    """
    builtin = [layer.name for layer in model.layers if layer.name.startswith(preprocessing_lib.LAYER_PREFIX + ".")]
    if builtin:
        raise ValueError(
            f"`{argument}` already resizes/normalises its input (layers {builtin}, from "
            "include_preprocessing=True), and this step normalises images itself, so they would be "
            f"normalised twice. Build the model with include_preprocessing=False. Received: {argument}={model.name!r}"
        )


def describe_model(model, base_model: Optional[str] = None, weights=None) -> ModelInfo:
    """A :class:`ModelInfo` for a zoo model that has no saved info (e.g. freshly built with weights).

    Class names and preprocessing come from the weights record when `weights` is a registered tag
    (see :func:`class_names_for`, :func:`classifier_preprocessing`), or from the ``config.json`` beside a
    published weights file; otherwise class names are the output indices and the preprocessing is the
    family's usual one at the model's input size.
    """
    input_size = tuple(model.input_shape[1:3])
    if None in input_size:
        raise ValueError(
            "The model needs a fixed input size to describe its preprocessing; build it with a full "
            f"`input_shape`. Received: model input shape {model.input_shape}"
        )
    return ModelInfo(
        class_names=class_names_for(base_model, weights, model.output_shape[-1]),
        preprocessing=classifier_preprocessing(base_model, weights, input_size),
        base_model=base_model,
        weights=None if weights is None else os.fspath(weights),
    )


def guess_family(input_size: Sequence[int]) -> str:
    """"cifar" for small inputs (under 64 pixels), else "imagenet": for models of unknown origin."""
    return "cifar" if max(input_size) < 64 else "imagenet"


def load_classifier(source, weights=None):
    """Resolve `source` into ``(model, info)``.

    Args:
        source: a directory written by :func:`save_classifier` (e.g. a fine-tuning output), a ``.keras``
            file (with ``keras_resnets.json`` beside it, or described with defaults), or a registry
            model name such as "resnet50" (built with its default input size and classes).
        weights: weights for a registry model name: "default" (the family's pretrained tag), another
            tag, a path, or None for random initialisation; ignored otherwise.

    Raises:
        ValueError: `source` is neither an existing model file/directory nor a registered name.
    """
    import keras

    path = os.fspath(source)
    if os.path.isdir(path):
        if not is_saved_classifier(path):
            raise ValueError(
                f"`source` is a folder but has no {MODEL_FILE_NAME} and {INFO_FILE_NAME} (a fine-tuning "
                f"output folder). Received: source={path!r}"
            )
        model = keras.saving.load_model(os.path.join(path, MODEL_FILE_NAME), compile=False)
        return model, ModelInfo.load(os.path.join(path, INFO_FILE_NAME))
    if path.endswith(".keras") and os.path.isfile(path):
        model = keras.saving.load_model(path, compile=False)
        sidecar = os.path.join(os.path.dirname(path), INFO_FILE_NAME)
        if os.path.isfile(sidecar):
            return model, ModelInfo.load(sidecar)
        return model, describe_model(model)
    try:
        entry = model_entry(path)
    except ValueError:
        raise ValueError(
            "`source` must be a fine-tuned model folder, a .keras file or a registered model name "
            f"(see `keras-resnets models`). Received: source={path!r}"
        ) from None
    weights = resolve_default_weights(entry.name, weights)
    model = get_model(entry.name, weights=weights)
    return model, describe_model(model, base_model=entry.name, weights=weights)
