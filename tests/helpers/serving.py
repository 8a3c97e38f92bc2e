"""Helpers shared by the fine-tuning, export and CLI tests."""

from __future__ import annotations

import io
import os
import pathlib

import keras
import numpy as np
from PIL import Image

import keras_resnets
from keras_resnets.tasks.finetune import build_classifier
from keras_resnets.tasks.model_info import ModelInfo
from keras_resnets.weights.catalog import IMAGENET_MEAN, IMAGENET_STD
from keras_resnets.weights.records import Preprocessing


def small_classifier(class_names, input_size=(32, 32), crop_pct=None, seed=0):
    """A ResNet-8 classifier with random but non-trivial BN statistics, and its ModelInfo.

    `crop_pct` None resizes whole images to `input_size` ("squash"); a number resizes the shorter side
    to ``floor(size / crop_pct)`` and centre-crops.

    Random moving statistics make the outputs depend on every layer (fresh BN layers are identities).
    """
    backbone = keras_resnets.ResNet(8, family="cifar", input_shape=(*input_size, 3))
    model, _ = build_classifier(backbone, len(class_names), weights=None)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([
                rng.uniform(0.5, 1.5, gamma.shape).astype("float32"),
                rng.normal(0, 0.2, beta.shape).astype("float32"),
                rng.normal(0, 0.2, mean.shape).astype("float32"),
                rng.uniform(0.5, 2.0, variance.shape).astype("float32"),
            ])
    crop = {"crop_mode": "squash"} if crop_pct is None else {"crop_pct": crop_pct}
    info = ModelInfo(list(class_names), Preprocessing(IMAGENET_MEAN, IMAGENET_STD, tuple(input_size), **crop))
    return model, info


def link_images(source_root, target_root, classes, per_class, offset=0):
    """Build target_root/<class>/ with symlinks to `per_class` images of each CIFAR class."""
    target_root = pathlib.Path(target_root)
    for name in classes:
        files = sorted((pathlib.Path(source_root) / name).iterdir())[offset : offset + per_class]
        (target_root / name).mkdir(parents=True, exist_ok=True)
        for path in files:
            os.symlink(path, target_root / name / path.name)
    return target_root


def write_random_image_folder(root, classes, per_class, size=(32, 32), seed=0):
    """root/<class>/<i>.png with random pixels: a folder for tests that need files, not content."""
    root = pathlib.Path(root)
    rng = np.random.default_rng(seed)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(root / name / f"{index}.png")
    return root


def random_images(seed, sizes):
    """uint8 RGB images of the given (height, width) sizes."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]


def encode(image: np.ndarray, fmt: str) -> bytes:
    """Encode a uint8 RGB array as PNG or JPEG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt)
    return buffer.getvalue()
