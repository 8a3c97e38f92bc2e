"""TensorFlow ops that turn decoded RGB images into model inputs, as a :class:`Preprocessing` says.

Fine-tuning, prediction and the exported serving signatures all call these functions, so a model sees
the same pixels in training, in ``keras-resnets predict`` and behind TF Serving; the geometry is
:meth:`Preprocessing.geometry`, the one evaluation transform that :func:`keras_resnets.prepare_image`
and ``include_preprocessing=True`` apply too. They are TF ops (run eagerly, inside ``tf.data`` or
inside a ``tf.function``) whatever the Keras backend.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_resnets.data.augment import resize_tf
from keras_resnets.weights.records import Preprocessing


def normalization_constants(preprocessing: Preprocessing):
    """``(scale, offset)`` float32 arrays with ``input = pixels * scale + offset`` for 0-255 pixels.

    Equal to ``(pixels / 255 - mean) / std``, folded into one multiply-add so every export format
    (including a Keras ``Rescaling`` layer) computes bit-identical inputs.
    """
    std = np.asarray(preprocessing.std, np.float64)
    mean = np.asarray(preprocessing.mean, np.float64)
    scale = (1.0 / (255.0 * std)).astype(np.float32)
    offset = (-mean / std).astype(np.float32)
    return scale, offset


def resize_for_model(images, preprocessing: Preprocessing):
    """Resize and centre-crop RGB images of any size to the model's input size (the evaluation transform).

    Args:
        images: one image (H, W, 3) or a batch (N, H, W, 3) of equal-sized images, uint8 or float.
        preprocessing: the transform (:meth:`Preprocessing.geometry`, filter).

    Returns:
        float32 tensor (..., input_height, input_width, 3), whole pixel values 0..255.
    """
    images = tf.convert_to_tensor(images)
    height, width = preprocessing.input_size
    shape = tf.shape(images)
    resized_height, resized_width, top, left = preprocessing.geometry(shape[-3], shape[-2], minimum=tf.minimum)
    resized = resize_tf(images, resized_height, resized_width, preprocessing.interpolation)
    cropped = resized[..., top : top + height, left : left + width, :]
    return tf.ensure_shape(cropped, [None] * (images.shape.rank - 3) + [height, width, 3])


def normalize(images, preprocessing: Preprocessing):
    """Map 0-255 pixels to the network's input range: ``(pixels / 255 - mean) / std``, float32."""
    scale, offset = normalization_constants(preprocessing)
    return tf.cast(images, tf.float32) * scale + offset


def model_inputs(images, preprocessing: Preprocessing):
    """:func:`resize_for_model` then :func:`normalize`: raw uint8 images to network inputs."""
    return normalize(resize_for_model(images, preprocessing), preprocessing)


def augment(image, preprocessing: Preprocessing, seed=None):
    """Training augmentation of one resized image (H, W, 3), pixels 0-255.

    A random horizontal flip and a random translation by up to 1/8 of the size (zero-padding then a
    random crop): the CIFAR recipe of the paper (section 4.2), mild enough for fine-tuning on any size.
    """
    height, width = preprocessing.input_size
    image = tf.image.random_flip_left_right(image, seed=seed)
    pad_h, pad_w = max(1, height // 8), max(1, width // 8)
    padded = tf.pad(image, [[pad_h, pad_h], [pad_w, pad_w], [0, 0]])
    return tf.image.random_crop(padded, [height, width, 3], seed=seed)


def batched_model_inputs(dataset, preprocessing: Preprocessing, batch_size: int, *, training: bool = False,
                         seed=None):
    """Turn a tf.data pipeline of decoded images (or ``(image, label)`` pairs) into model batches.

    Each image is resized on its own (sizes may differ), augmented when `training`, normalised, then
    batched and prefetched.
    """

    def prepare(image, *label):
        image = resize_for_model(image, preprocessing)
        if training:
            image = augment(image, preprocessing, seed=seed)
        image = normalize(image, preprocessing)
        return (image, *label) if label else image

    dataset = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
