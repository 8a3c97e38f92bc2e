"""TensorFlow ops that turn decoded RGB images into model inputs, as a :class:`Preprocessing` says.

Fine-tuning, prediction and the exported serving signatures all call these functions, so a model sees
the same pixels in training, in ``keras-resnets predict`` and behind TF Serving. They are TF ops (run
eagerly, inside ``tf.data`` or inside a ``tf.function``) whatever the Keras backend.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_resnets.tasks.model_info import Preprocessing


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
    """Resize RGB images of any size to the model's input size; float32 pixels stay in 0-255.

    Args:
        images: one image (H, W, 3) or a batch (N, H, W, 3) of equal-sized images, uint8 or float.
        preprocessing: says whether to resize the whole image or the shorter side then centre-crop.

    Returns:
        float32 tensor (..., input_height, input_width, 3).
    """
    images = tf.cast(tf.convert_to_tensor(images), tf.float32)
    height, width = preprocessing.input_size
    method = preprocessing.interpolation
    # PIL (torchvision's eval transforms) filters when shrinking; TF does so only with antialias.
    antialias = method != "nearest"
    if preprocessing.resize_size is None:
        resized = tf.image.resize(images, (height, width), method=method, antialias=antialias)
    else:
        shape = tf.shape(images)
        image_height = tf.cast(shape[-3], tf.float32)
        image_width = tf.cast(shape[-2], tf.float32)
        scale = float(preprocessing.resize_size) / tf.minimum(image_height, image_width)
        # The max() keeps the crop inside the image when the aspect ratio is extreme.
        new_height = tf.maximum(tf.cast(tf.round(image_height * scale), tf.int32), height)
        new_width = tf.maximum(tf.cast(tf.round(image_width * scale), tf.int32), width)
        resized = tf.image.resize(images, tf.stack([new_height, new_width]), method=method, antialias=antialias)
        top = (new_height - height) // 2
        left = (new_width - width) // 2
        resized = resized[..., top : top + height, left : left + width, :]
    # Bicubic filtering overshoots at edges; PIL clips to the pixel range, so do the same.
    resized = tf.clip_by_value(resized, 0.0, 255.0)
    return tf.ensure_shape(resized, [None] * (images.shape.rank - 3) + [height, width, 3])


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
