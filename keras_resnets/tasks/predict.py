"""Top-k predictions for image files or arrays of any size, and accuracy on a labelled folder."""

from __future__ import annotations

import dataclasses
import os
from typing import List, Sequence, Tuple

import numpy as np
import tensorflow as tf

from keras_resnets.data import image_folder
from keras_resnets.tasks.model_info import ModelInfo, reject_builtin_preprocessing
from keras_resnets.data.transforms import batched_model_inputs, model_inputs


@dataclasses.dataclass(frozen=True)
class Prediction:
    """The top-k classes of one image.

    Attributes:
        source: the file path, or ``"<array 0>"``-style for in-memory images.
        class_ids: class indices, most probable first.
        labels: their class names.
        probabilities: their probabilities.
    """

    source: str
    class_ids: Tuple[int, ...]
    labels: Tuple[str, ...]
    probabilities: Tuple[float, ...]

    def top(self) -> Tuple[str, float]:
        """The most probable label and its probability."""
        return self.labels[0], self.probabilities[0]


def decode_image_source(source, name: str, max_pixels=None):
    """Decode one image (a path, encoded bytes or an (H, W, 3) array) into a uint8 tensor.

    Files and bytes are checked from their header first: more than `max_pixels` pixels (see
    :func:`keras_resnets.data.image_folder.max_image_pixels`) is refused before decoding.

    Raises:
        ValueError: a missing or unreadable file, undecodable bytes or a wrongly shaped array
            (:class:`~keras_resnets.data.image_folder.ImageTooLargeError` for too many pixels).
    """
    limit = image_folder.max_image_pixels(max_pixels)
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise ValueError(f"Image file not found. Received: image={path!r}")
        image_folder.check_image_file(path, repr(path), limit)
        with open(path, "rb") as handle:
            source = handle.read()
    if isinstance(source, bytes):
        image_folder.check_image_file(source, name if name.startswith("<") else repr(name), limit)
        try:
            return image_folder.decode_image(tf.constant(source), limit)
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as error:
            raise ValueError(
                f"Cannot decode {name} as an image (JPEG, PNG, GIF or BMP expected): {error.message.splitlines()[0]}. "
                f"Received: image={name!r}"
            ) from None
    array = np.asarray(source)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"An image array must be (height, width, 3) RGB. Received: image of shape {array.shape}")
    if array.shape[0] * array.shape[1] > limit:
        raise image_folder.ImageTooLargeError(
            f"Image {name} is {array.shape[1]}x{array.shape[0]} pixels, more than the limit of {limit:,} "
            f"(max_image_pixels / ${image_folder.MAX_IMAGE_PIXELS_ENV})."
        )
    return tf.convert_to_tensor(array)


def _source_name(source, index: int) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return f"<{'bytes' if isinstance(source, bytes) else 'array'} {index}>"


def predict_probabilities(model, info: ModelInfo, images: Sequence, batch_size: int = 32,
                          max_image_pixels=None) -> np.ndarray:
    """Class probabilities (N, classes) for `images` (paths, encoded bytes or RGB arrays, any sizes).

    Images with more than `max_image_pixels` pixels (default ``$KERAS_RESNETS_MAX_IMAGE_PIXELS`` or
    40 megapixels) are refused before decoding.
    """
    reject_builtin_preprocessing(model)
    if isinstance(images, (str, bytes, os.PathLike)) or (isinstance(images, np.ndarray) and images.ndim == 3):
        images = [images]
    names = [_source_name(source, i) for i, source in enumerate(images)]
    if not names:
        raise ValueError("`images` must contain at least one image. Received: images=[]")
    inputs = np.stack(
        [model_inputs(decode_image_source(source, name, max_image_pixels), info.preprocessing).numpy()
         for source, name in zip(images, names)]
    )
    probabilities = np.asarray(model.predict(inputs, batch_size=batch_size, verbose=0), dtype=np.float32)
    if probabilities.shape[-1] != info.num_classes:
        raise ValueError(
            f"The model has {probabilities.shape[-1]} outputs but {info.num_classes} class names are known."
        )
    return probabilities


def predict_images(model, info: ModelInfo, images: Sequence, top_k: int = 5, batch_size: int = 32,
                   max_image_pixels=None) -> List[Prediction]:
    """Top-`top_k` labels with probabilities for each image, resized as ``info.preprocessing`` says.

    Args:
        model: a classifier with softmax outputs (e.g. from :func:`keras_resnets.tasks.model_info.load_classifier`).
        info: its class names and preprocessing.
        images: image file paths, encoded image bytes or uint8 RGB arrays (H, W, 3), any sizes.
        top_k: how many classes to report per image (capped at the number of classes).
        batch_size: images per forward pass.
        max_image_pixels: refuse larger images before decoding (default ``$KERAS_RESNETS_MAX_IMAGE_PIXELS``
            or 40 megapixels).
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"`top_k` must be an integer >= 1. Received: top_k={top_k!r}")
    if isinstance(images, (str, bytes, os.PathLike)) or (isinstance(images, np.ndarray) and images.ndim == 3):
        images = [images]
    probabilities = predict_probabilities(model, info, images, batch_size=batch_size, max_image_pixels=max_image_pixels)
    k = min(top_k, info.num_classes)
    results = []
    for index, (source, row) in enumerate(zip(images, probabilities)):
        order = np.argsort(-row, kind="stable")[:k]
        results.append(
            Prediction(
                source=_source_name(source, index),
                class_ids=tuple(int(i) for i in order),
                labels=tuple(info.class_names[i] for i in order),
                probabilities=tuple(float(row[i]) for i in order),
            )
        )
    return results


def evaluate_folder(model, info: ModelInfo, root, batch_size: int = 64) -> dict:
    """Top-1 accuracy of `model` on a labelled image folder whose sub-folders are ``info.class_names``.

    Returns:
        ``{"accuracy": float, "count": int, "per_class": {name: accuracy}}``.
    """
    folder = image_folder.scan_image_folder(root)
    unknown = sorted(set(folder.class_names) - set(info.class_names))
    if unknown:
        raise ValueError(
            f"`root` has classes the model does not know: {unknown}. Model classes: {info.class_names}. "
            f"Received: root={os.fspath(root)!r}"
        )
    labels = np.asarray([info.class_names.index(folder.class_names[i]) for i in folder.labels])
    dataset = batched_model_inputs(image_folder.image_dataset(folder.paths), info.preprocessing, batch_size)
    predicted = np.argmax(model.predict(dataset, verbose=0), axis=-1)
    correct = predicted == labels
    per_class = {info.class_names[c]: float(correct[labels == c].mean()) for c in np.unique(labels)}
    return {"accuracy": float(correct.mean()), "count": int(len(labels)), "per_class": per_class}
