"""Input preprocessing and prediction decoding tied to a weight set.

Every path that turns an image into a network input applies the one evaluation transform of a
:class:`~keras_resnets.weights.records.Preprocessing` (:meth:`Preprocessing.geometry`: shorter side to
``floor(size / crop_pct)``, antialiased resize, centre crop): :func:`prepare_image` with PIL here, the
:class:`ResizeCenterCrop` layer of ``include_preprocessing=True`` with Keras ops (any backend), and
:mod:`keras_resnets.data.transforms` with TensorFlow ops (fine-tuning, prediction, exported serving
signatures). :func:`preprocess_input` normalises; :func:`decode_predictions` turns scores into class
names shipped with the package (ImageNet-1k, CIFAR-10).
"""

from __future__ import annotations

import functools
import json
import os
import pathlib
from typing import List, Optional

import keras
import numpy as np
from keras import ops

from keras_resnets.architecture.identity import Architecture, WeightsMismatchError
from keras_resnets.data import augment
from keras_resnets.weights.catalog import CATALOG, DEFAULT_TAGS, default_preprocessing, is_registered_name
from keras_resnets.weights.records import Preprocessing, WeightsRecord

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_DATA_DIR = pathlib.Path(__file__).resolve().parent  # imagenet_classes.json ships beside this module
_WEIGHT_FILE_SUFFIXES = (".h5", ".keras", ".npz", ".th", ".pt", ".pth", ".safetensors")
_PIL_FILTERS = {"bilinear": "BILINEAR", "bicubic": "BICUBIC", "nearest": "NEAREST"}

# Name prefix of the layers include_preprocessing=True adds (fine-tuning and export look for it).
LAYER_PREFIX = "preprocessing"


def _is_weights_location(weights: str) -> bool:
    """Whether `weights` names a file or a Hub repository rather than a registry tag."""
    return (
        weights.startswith("hf://")
        or "/" in weights
        or os.sep in weights
        or weights.lower().endswith(_WEIGHT_FILE_SUFFIXES)
        or os.path.exists(weights)
    )


def preprocessing_beside(weights_path) -> Optional[Preprocessing]:
    """The preprocessing in the ``config.json`` beside a published weights file (a Hub folder written by
    ``python -m weights.publish`` or ``push_to_hub``, such as ``weights/trained/<name>/``), or None.

    Only a config.json that names the file as its ``weights_file`` counts; an unreadable one counts as none.
    """
    path = os.fspath(weights_path)
    if path.startswith("hf://") or not os.path.isfile(path):
        return None
    try:
        with open(os.path.join(os.path.dirname(os.path.abspath(path)), "config.json"), encoding="utf-8") as handle:
            config = json.load(handle)
        if config.get("weights_file") != os.path.basename(path) or "preprocessing" not in config:
            return None
        return Preprocessing.from_dict(config["preprocessing"])
    except (OSError, ValueError, AttributeError, TypeError):
        return None  # No usable metadata: the family's usual transform applies.


def preprocessing_for(weights="imagenet", model=None, input_size=None) -> Preprocessing:
    """The evaluation preprocessing of a weight set, or of a model with weights of unknown preprocessing.

    Args:
        weights: a :class:`Preprocessing` (returned as is), a :class:`WeightsRecord`, a record name
            ("resnet50.tv2_in1k"), or a tag/alias ("imagenet", "cifar10", "a1_in1k"); a tag shared by
            records with different preprocessing needs `model`. A published weights file with its
            ``config.json`` beside it (see :func:`preprocessing_beside`): that file's preprocessing. With
            `model`, also None, another weights file or an ``hf://`` repository: the usual preprocessing
            of the model's family.
        model: model name ("resnet50") or :class:`Architecture`.
        input_size: (height, width) or int: the same transform at another network input size.

    Raises:
        ValueError: an unknown tag, a tag `model` has no weights for, or weights whose preprocessing
            cannot be known without `model`.
    """
    pre = _lookup_preprocessing(weights, model)
    return pre if input_size is None else pre.with_input_size(input_size)


def _lookup_preprocessing(weights, model) -> Preprocessing:
    if isinstance(weights, Preprocessing):
        return weights
    if isinstance(weights, WeightsRecord):
        return weights.preprocessing
    if model is not None and not isinstance(model, (str, Architecture)):
        raise ValueError(f"`model` must be a model name such as 'resnet50' or an Architecture. Received: model={model!r}")
    architecture = Architecture.from_name(model) if isinstance(model, str) else model
    if weights is None or (isinstance(weights, str) and not is_registered_name(weights) and _is_weights_location(weights)):
        published = None if weights is None else preprocessing_beside(weights)
        if published is not None:
            return published
        if architecture is None:
            raise ValueError(
                "The preprocessing of these weights is not recorded; pass `model` (its family's usual "
                f"preprocessing is used) or `preprocessing`. Received: weights={weights!r}"
            )
        return default_preprocessing(architecture.family)
    if not isinstance(weights, str):
        raise ValueError(
            "`weights` must be a Preprocessing, a weights record, a record name or a tag such as 'imagenet'. "
            f"Received: weights={weights!r}"
        )
    if architecture is not None:
        return CATALOG.resolve(architecture.name, weights).preprocessing
    if "." in weights:
        return CATALOG.get(weights).preprocessing
    candidates = [
        r for r in CATALOG.records()
        if r.tag == weights or r.tag == DEFAULT_TAGS.get(weights, {}).get(r.model)
    ]
    distinct = {r.preprocessing for r in candidates}
    if len(distinct) == 1:
        return distinct.pop()
    if not distinct:
        tags = sorted({r.tag for r in CATALOG.records()} | set(DEFAULT_TAGS))
        raise ValueError(f"Unknown weights tag. Available tags: {tags}. Received: weights={weights!r}")
    raise ValueError(
        f"Weights tag {weights!r} is used by several models with different preprocessing; pass `model` "
        f"(one of {sorted(r.model for r in candidates)}) or a full name such as {candidates[0].name!r}. "
        f"Received: weights={weights!r}"
    )


def model_preprocessing(architecture: Architecture, weights) -> Preprocessing:
    """The preprocessing a model of `architecture` built with `weights` needs: the registry record's,
    else (a file, None, an unknown tag: the loader reports real errors) the family's usual one."""
    try:
        return preprocessing_for(weights, architecture)
    except ValueError:
        return default_preprocessing(architecture.family)


def builtin_preprocessing(model) -> Optional[Preprocessing]:
    """The preprocessing inside `model` (built with ``include_preprocessing=True``), or None."""
    for layer in model.layers:
        if isinstance(layer, ResizeCenterCrop):
            return layer.preprocessing
    return None


def _keras_model_preprocessing(model, weights) -> Preprocessing:
    """The preprocessing for a zoo ``keras.Model``: the record of `weights` (or the family's usual one)
    at the model's input size."""
    if builtin_preprocessing(model) is not None:
        raise ValueError(
            f"`model` resizes and normalises its input itself (built with include_preprocessing=True); give "
            f"it the RGB 0..255 image as it is. Received: model={model.name!r}"
        )
    try:
        architecture = Architecture.from_model(model)
    except WeightsMismatchError:
        raise ValueError(
            "`model` is not a keras_resnets model, so its preprocessing is unknown; pass `preprocessing` "
            f"(a keras_resnets.weights.Preprocessing) instead. Received: model={model.name!r}"
        ) from None
    pre = default_preprocessing(architecture.family) if weights is None else preprocessing_for(weights, architecture)
    size = tuple(model.input_shape[1:3])
    return pre if None in size else pre.with_input_size(size)


def _resolve(weights, model, preprocessing) -> Preprocessing:
    if preprocessing is not None:
        if not isinstance(preprocessing, Preprocessing):
            raise ValueError(
                "`preprocessing` must be a keras_resnets.weights.Preprocessing (e.g. a weights record's "
                f"`.preprocessing`). Received: preprocessing={preprocessing!r}"
            )
        return preprocessing
    if isinstance(model, keras.Model):
        return _keras_model_preprocessing(model, weights)
    return preprocessing_for("imagenet" if weights is None else weights, model)


def preprocess_input(x, weights=None, model=None, preprocessing: Optional[Preprocessing] = None):
    """Normalise RGB images with values 0..255 for `weights`: ``(x / 255 - mean) / std`` per channel.

    Works on numpy arrays and backend tensors (channels last); resizing is not done here (see
    :func:`prepare_image` or ``include_preprocessing=True``).

    Args:
        x: images, shape (..., 3), RGB, 0..255.
        weights: which weights the images are for (see :func:`preprocessing_for`); default "imagenet".
        model: a model name to resolve a tag used by several models, or a zoo ``keras.Model`` (then the
            family's usual statistics, or those of `weights`).
        preprocessing: a :class:`Preprocessing` to use instead of `weights` and `model`.

    Returns:
        float32 array/tensor of the same shape.
    """
    pre = _resolve(weights, model, preprocessing)
    mean = np.asarray(pre.mean, dtype="float32") * 255.0
    std = np.asarray(pre.std, dtype="float32") * 255.0
    if isinstance(x, np.ndarray) or np.isscalar(x) or isinstance(x, (list, tuple)):
        x = np.asarray(x, dtype="float32")
        if x.shape[-1:] != (3,):
            raise ValueError(f"`x` must be RGB images with 3 channels last. Received: x.shape={x.shape}")
        return (x - mean) / std
    return (ops.cast(x, "float32") - mean) / std


def prepare_image(image, weights=None, model=None, preprocessing: Optional[Preprocessing] = None) -> np.ndarray:
    """Resize and centre-crop one image exactly as the weights were evaluated (torchvision/timm on PIL).

    The shorter side is resized to ``floor(size / crop_pct)`` with the record's antialiased filter,
    then the central ``input_size`` is cropped (see :meth:`Preprocessing.geometry`).

    Args:
        image: a path, a PIL image, or an (H, W, 3) uint8 array.
        weights: which weights (see :func:`preprocessing_for`); default "imagenet".
        model: a model name to resolve a tag, or the zoo ``keras.Model`` the image is for: its family's
            usual transform (or that of `weights`) at its input size, so a CIFAR model gets 32x32.
        preprocessing: a :class:`Preprocessing` to use instead (e.g. ``record.preprocessing``).

    Returns:
        float32 array (height, width, 3) of the input size, values 0..255, ready for :func:`preprocess_input`.
    """
    from PIL import Image  # Only this function needs Pillow.

    pre = _resolve(weights, model, preprocessing)
    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.asarray(image, dtype="uint8"))
    elif not isinstance(image, Image.Image):
        path = os.fspath(image)
        try:
            image = Image.open(path)
        except (OSError, ValueError) as error:
            raise ValueError(f"Cannot read {path!r} as an image: {error}") from None
    image = image.convert("RGB")
    width, height = image.size
    resized_height, resized_width, top, left = pre.geometry(height, width)
    # PIL's resize filters with a kernel widened by the shrink factor (antialiasing), as torchvision does.
    image = image.resize((resized_width, resized_height), getattr(Image, _PIL_FILTERS[pre.interpolation]))
    crop_height, crop_width = pre.input_size
    image = image.crop((left, top, left + crop_width, top + crop_height))
    return np.asarray(image, dtype="float32")


@functools.lru_cache(maxsize=None)
def imagenet_classes():
    """The 1000 ImageNet-1k classes as ``(wordnet_id, label)`` in the standard index order."""
    with open(_DATA_DIR / "imagenet_classes.json") as handle:
        return tuple((wnid, label) for wnid, label in json.load(handle))


def class_names(source: str = "imagenet-1k") -> List[str]:
    """Class labels of "imagenet-1k" or "cifar-10", index order."""
    if source == "imagenet-1k":
        return [label for _, label in imagenet_classes()]
    if source == "cifar-10":
        return list(CIFAR10_CLASSES)
    raise ValueError(f"`source` must be 'imagenet-1k' or 'cifar-10'. Received: source={source!r}")


def decode_predictions(preds, top: int = 5, classes: Optional[str] = None):
    """Top classes of each prediction: a list (per sample) of ``(class_id, label, score)`` tuples.

    Args:
        preds: scores of shape (batch, 1000) for ImageNet-1k or (batch, 10) for CIFAR-10.
        top: how many classes to return per sample.
        classes: "imagenet-1k" or "cifar-10"; inferred from the number of columns when omitted.
    """
    preds = np.asarray(preds)
    if preds.ndim != 2:
        raise ValueError(f"`preds` must be 2-D (batch, classes). Received: preds.shape={preds.shape}")
    if classes is None:
        classes = {1000: "imagenet-1k", 10: "cifar-10"}.get(preds.shape[1])
        if classes is None:
            raise ValueError(
                "`preds` must have 1000 (ImageNet-1k) or 10 (CIFAR-10) columns, or pass `classes`. "
                f"Received: preds.shape={preds.shape}"
            )
    if classes == "imagenet-1k":
        ids = [wnid for wnid, _ in imagenet_classes()]
    else:
        ids = [str(i) for i in range(len(class_names(classes)))]
    labels = class_names(classes)
    if preds.shape[1] != len(labels):
        raise ValueError(f"{classes} has {len(labels)} classes. Received: preds.shape={preds.shape}")
    if not isinstance(top, int) or not 1 <= top <= len(labels):
        raise ValueError(f"`top` must be an integer in [1, {len(labels)}]. Received: top={top!r}")
    results = []
    for row in preds:
        order = np.argsort(-row, kind="stable")[:top]
        results.append([(ids[i], labels[i], float(row[i])) for i in order])
    return results


@keras.saving.register_keras_serializable(package="keras_resnets")
class ResizeCenterCrop(keras.layers.Layer):
    """The evaluation transform of a :class:`Preprocessing` as a Keras layer (TensorFlow, JAX, ...).

    Takes RGB 0..255 images of any size, (batch, H, W, 3), and returns (batch, height, width, 3) of the
    input size: resized and centre-cropped as :meth:`Preprocessing.geometry` says, filtered as PIL
    does (antialiased, width then height, 8-bit pixels in between; see
    :func:`keras_resnets.data.augment.resize_tf`). Normalisation is left to the next layer.

    Args:
        preprocessing: a :class:`Preprocessing` (or its :meth:`~Preprocessing.to_dict`).
    """

    def __init__(self, preprocessing, **kwargs):
        super().__init__(**kwargs)
        if isinstance(preprocessing, dict):
            preprocessing = Preprocessing.from_dict(preprocessing)
        if not isinstance(preprocessing, Preprocessing):
            raise ValueError(
                f"`preprocessing` must be a keras_resnets.weights.Preprocessing. Received: preprocessing={preprocessing!r}"
            )
        self.preprocessing = preprocessing

    def call(self, images):
        pre = self.preprocessing
        crop_height, crop_width = pre.input_size
        height, width = ops.shape(images)[-3], ops.shape(images)[-2]
        if isinstance(height, int) and isinstance(width, int):
            resized_height, resized_width, top, left = pre.geometry(height, width)
            options = {"interpolation": pre.interpolation, "antialias": pre.interpolation != "nearest"}
            wide = _to_pixels(ops.image.resize(images, (height, resized_width), **options))
            resized = _to_pixels(ops.image.resize(wide, (resized_height, resized_width), **options))
        else:
            # Only a TensorFlow graph leaves the image size unknown until it runs, and ops.image.resize
            # needs Python ints; the TensorFlow version of the same resize takes tensors.
            resized_height, resized_width, top, left = pre.geometry(height, width, minimum=ops.minimum)
            resized = augment.resize_tf(images, resized_height, resized_width, pre.interpolation)
        cropped = resized[..., top : top + crop_height, left : left + crop_width, :]
        return ops.reshape(cropped, (-1, crop_height, crop_width, images.shape[-1]))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.preprocessing.input_size, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "preprocessing": self.preprocessing.to_dict()}


def _to_pixels(images):
    """Clip to 0..255 and round halves up, as PIL stores a filtered 8-bit pixel."""
    return ops.floor(ops.clip(images, 0.0, 255.0) + 0.5)


def preprocessing_layers(preprocessing: Preprocessing, name_prefix: str = LAYER_PREFIX):
    """Keras layers that take RGB 0..255 images of any size to normalised network inputs.

    :class:`ResizeCenterCrop` (the evaluation transform every other path applies too), then the
    per-channel normalisation in one ``Normalization`` layer (mean and variance scaled to 0..255).
    """
    mean = [255.0 * m for m in preprocessing.mean]
    variance = [(255.0 * s) ** 2 for s in preprocessing.std]
    return [
        ResizeCenterCrop(preprocessing, name=f"{name_prefix}.resize"),
        keras.layers.Normalization(mean=mean, variance=variance, name=f"{name_prefix}.normalize"),
    ]
