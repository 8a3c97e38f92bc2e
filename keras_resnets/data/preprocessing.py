"""Input preprocessing and prediction decoding tied to a weight set.

``preprocess_input`` normalises RGB 0..255 images the way the weights expect (from the weights
record); ``prepare_image`` adds the evaluation resize and centre crop; ``decode_predictions`` turns
scores into class names shipped with the package (ImageNet-1k, CIFAR-10); ``preprocessing_layers``
builds the Keras layers that ``include_preprocessing=True`` puts inside a model.
"""

from __future__ import annotations

import functools
import json
import pathlib
from typing import List, Optional

import numpy as np

from keras_resnets.weights.catalog import CATALOG, DEFAULT_TAGS, default_preprocessing
from keras_resnets.weights.records import Preprocessing, WeightsRecord

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_DATA_DIR = pathlib.Path(__file__).resolve().parent  # imagenet_classes.json sits beside this module.


def preprocessing_for(weights="imagenet", model: Optional[str] = None) -> Preprocessing:
    """The preprocessing of a weight set.

    Args:
        weights: a :class:`WeightsRecord`, a record name ("resnet50.tv2_in1k"), or a tag/alias
            ("imagenet", "cifar10", "a1_in1k"); a tag shared by records with different preprocessing
            needs `model`.
        model: model name ("resnet50") to resolve a tag.
    """
    if isinstance(weights, WeightsRecord):
        return weights.preprocessing
    if isinstance(weights, Preprocessing):
        return weights
    if not isinstance(weights, str):
        raise ValueError(
            "`weights` must be a weights record, a record name or a tag such as 'imagenet'. "
            f"Received: weights={weights!r}"
        )
    if model is not None:
        return CATALOG.resolve(model, weights).preprocessing
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


def preprocess_input(x, weights="imagenet", model: Optional[str] = None):
    """Normalise RGB images with values 0..255 for `weights`: ``(x / 255 - mean) / std`` per channel.

    Works on numpy arrays and backend tensors (channels last); resizing is not done here (see
    :func:`prepare_image` or ``include_preprocessing=True``).

    Args:
        x: images, shape (..., 3), RGB, 0..255.
        weights: which weights the images are for (see :func:`preprocessing_for`).
        model: model name, to resolve a tag used by several models.

    Returns:
        float32 array/tensor of the same shape.
    """
    pre = preprocessing_for(weights, model)
    mean = np.asarray(pre.mean, dtype="float32") * 255.0
    std = np.asarray(pre.std, dtype="float32") * 255.0
    if isinstance(x, np.ndarray) or np.isscalar(x) or isinstance(x, (list, tuple)):
        x = np.asarray(x, dtype="float32")
        if x.shape[-1:] != (3,):
            raise ValueError(f"`x` must be RGB images with 3 channels last. Received: x.shape={x.shape}")
        return (x - mean) / std
    from keras import ops

    return (ops.cast(x, "float32") - mean) / std


def prepare_image(image, weights="imagenet", model: Optional[str] = None) -> np.ndarray:
    """Resize (shorter side to ``resize_size``) and centre-crop one image as the weights were evaluated.

    Args:
        image: a path, a PIL image, or an (H, W, 3) uint8 array.
        weights, model: which weights (see :func:`preprocessing_for`).

    Returns:
        float32 array (input_size, input_size, 3) with values 0..255, ready for :func:`preprocess_input`.
    """
    from PIL import Image

    pre = preprocessing_for(weights, model)
    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.asarray(image, dtype="uint8"))
    elif not isinstance(image, Image.Image):
        image = Image.open(image)
    image = image.convert("RGB")
    width, height = image.size
    scale = pre.resize_size / min(width, height)
    resized = (max(pre.input_size, round(width * scale)), max(pre.input_size, round(height * scale)))
    filters = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}
    image = image.resize(resized, filters[pre.interpolation])
    left = (resized[0] - pre.input_size) // 2
    top = (resized[1] - pre.input_size) // 2
    image = image.crop((left, top, left + pre.input_size, top + pre.input_size))
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


# Name prefix of the layers include_preprocessing=True adds (fine-tuning and export look for it).
LAYER_PREFIX = "preprocessing"


def preprocessing_layers(preprocessing: Preprocessing, name_prefix: str = LAYER_PREFIX):
    """Keras layers that take RGB 0..255 images of any size to normalised ``input_size`` squares.

    A centre crop to a square followed by a resize (``Resizing(crop_to_aspect_ratio=True)``), then the
    per-channel normalisation in one ``Normalization`` layer (mean and variance scaled to 0..255).
    """
    from keras import layers

    size = preprocessing.input_size
    mean = [255.0 * m for m in preprocessing.mean]
    variance = [(255.0 * s) ** 2 for s in preprocessing.std]
    return [
        layers.Resizing(size, size, interpolation=preprocessing.interpolation, crop_to_aspect_ratio=True,
                        name=f"{name_prefix}.resize"),
        layers.Normalization(mean=mean, variance=variance, name=f"{name_prefix}.normalize"),
    ]


def model_preprocessing(architecture, weights) -> Preprocessing:
    """The preprocessing a model of `architecture` built with `weights` needs (the registry record's when
    `weights` names one, else the family's usual one)."""
    if isinstance(weights, str) and not weights.startswith("hf://") and "/" not in weights:
        try:
            return CATALOG.resolve(architecture.name, weights).preprocessing
        except ValueError:
            pass  # Not a registry name (e.g. a file); the loader reports real errors.
    return default_preprocessing(architecture.family)
