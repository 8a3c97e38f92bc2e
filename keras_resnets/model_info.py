"""What a trained classifier needs besides its weights: its class names and its input preprocessing.

A :class:`ModelInfo` travels with every fine-tuned model as ``keras_resnets.json`` beside
``model.keras`` (see :func:`save_classifier` / :func:`load_classifier`), and is embedded in exported
artifacts, so predictions and serving resize and normalise images exactly as training did.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import List, Optional, Sequence, Tuple

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision/timm evaluation: resize the shorter side to size / 0.875, then centre-crop `size`.
IMAGENET_CROP_FRACTION = 0.875
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")

# The pretrained weight tag used when a command or function is asked for weights="default".
DEFAULT_WEIGHTS = {"imagenet": "imagenet", "cifar": "cifar10"}

MODEL_FILE_NAME = "model.keras"
INFO_FILE_NAME = "keras_resnets.json"
INFO_FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """How raw RGB images become model inputs.

    Attributes:
        input_size: (height, width) the network sees.
        resize_size: if set, the shorter image side is resized to this many pixels (aspect kept) and
            the centre ``input_size`` is cropped; if None, the whole image is resized to
            ``input_size`` (aspect not kept), which suits small, already square data such as CIFAR.
        mean: per-channel mean subtracted after scaling pixels to [0, 1].
        std: per-channel standard deviation divided by after subtracting the mean.
        interpolation: resize filter, "bilinear", "bicubic" or "nearest" (antialiased when shrinking).
    """

    input_size: Tuple[int, int]
    resize_size: Optional[int] = None
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"

    def __post_init__(self):
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"`interpolation` must be one of {INTERPOLATIONS}. Received: interpolation={self.interpolation!r}"
            )
        size = tuple(self.input_size)
        if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in size):
            raise ValueError(f"`input_size` must be (height, width) positive integers. Received: input_size={self.input_size!r}")
        if self.resize_size is not None and self.resize_size < max(size):
            raise ValueError(
                "`resize_size` (the shorter side before the centre crop) must be at least the crop size "
                f"{max(size)}. Received: resize_size={self.resize_size!r}"
            )
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            raise ValueError(f"`mean` and `std` need 3 values, std > 0. Received: mean={self.mean!r}, std={self.std!r}")
        object.__setattr__(self, "input_size", size)
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return {
            "input_size": list(self.input_size),
            "resize_size": self.resize_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Preprocessing":
        """The inverse of :meth:`to_dict`."""
        return cls(
            input_size=tuple(data["input_size"]),
            resize_size=data.get("resize_size"),
            mean=tuple(data.get("mean", IMAGENET_MEAN)),
            std=tuple(data.get("std", IMAGENET_STD)),
            interpolation=data.get("interpolation", "bilinear"),
        )


def default_preprocessing(family: str, input_size: Sequence[int]) -> Preprocessing:
    """The usual preprocessing of a ResNet `family` ("imagenet" or "cifar") at `input_size`.

    ImageNet nets: resize the shorter side to input/0.875 and centre-crop (torchvision eval). CIFAR nets:
    resize the whole image to the input size. Both normalise with the ImageNet mean and std, as the
    torchvision weights and the akamaster CIFAR-10 checkpoints do.
    """
    height, width = (int(s) for s in input_size)
    resize_size = None
    if family == "imagenet":
        resize_size = int(round(max(height, width) / IMAGENET_CROP_FRACTION))
    return Preprocessing(input_size=(height, width), resize_size=resize_size)


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


def save_classifier(model, info: ModelInfo, directory) -> str:
    """Save `model` as ``directory/model.keras`` and `info` as ``directory/keras_resnets.json``.

    Returns:
        The directory path.
    """
    directory = os.fspath(directory)
    if model.output_shape[-1] != info.num_classes:
        raise ValueError(
            f"The model has {model.output_shape[-1]} outputs but `info` names {info.num_classes} classes. "
            f"Received: class_names={info.class_names!r}"
        )
    os.makedirs(directory, exist_ok=True)
    model.save(os.path.join(directory, MODEL_FILE_NAME))
    info.save(os.path.join(directory, INFO_FILE_NAME))
    return directory


def is_saved_classifier(path) -> bool:
    """Whether `path` is a directory written by :func:`save_classifier`."""
    path = os.fspath(path)
    return os.path.isfile(os.path.join(path, MODEL_FILE_NAME)) and os.path.isfile(os.path.join(path, INFO_FILE_NAME))


def resolve_default_weights(model_name: str, weights):
    """Map ``weights="default"`` to the standard pretrained tag of the model's family; others pass through."""
    from .registry import model_entry

    if isinstance(weights, str) and weights == "default":
        return DEFAULT_WEIGHTS[model_entry(model_name).spec.family]
    return weights


def describe_model(model, base_model: Optional[str] = None, weights=None) -> ModelInfo:
    """A :class:`ModelInfo` for a zoo model that has no saved info (e.g. freshly built with weights).

    Class names are the output indices as strings ("0", "1", ...); preprocessing is the family default
    at the model's input size.
    """
    from .registry import model_entry

    input_size = tuple(model.input_shape[1:3])
    if None in input_size:
        raise ValueError(
            "The model needs a fixed input size to describe its preprocessing; build it with a full "
            f"`input_shape`. Received: model input shape {model.input_shape}"
        )
    family = model_entry(base_model).spec.family if base_model else ("cifar" if max(input_size) < 64 else "imagenet")
    return ModelInfo(
        class_names=[str(i) for i in range(model.output_shape[-1])],
        preprocessing=default_preprocessing(family, input_size),
        base_model=base_model,
        weights=None if weights is None else os.fspath(weights),
    )


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

    from .registry import get_model, model_entry

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
