"""The paper's data augmentation and test-time views, in TensorFlow (tf.data) and NumPy (no TensorFlow).

CIFAR (section 4.2): pad 4 pixels on each side, take a random 32x32 crop, flip horizontally with
probability 1/2; test on the original image. ImageNet (section 3.4): resize so the shorter side is a
random length in [256, 480] ("scale augmentation"), take a random 224x224 crop, flip, optionally add the
AlexNet PCA colour noise; test with a centre crop or the standard 10 crops (four corners and the centre,
and their mirror images) of the image resized to shorter side 256.

Every random TensorFlow op is stateless and seeded per example, so an example's augmentation depends only
on (run seed, epoch, position in the epoch): parallel maps, restarts and resumed runs see the same images.
The views take and return uint8 images (``resize_tf`` returns float32 whole pixel values); normalisation
happens later, on the accelerator. The evaluation views use the geometry of the evaluation transform
(:func:`keras_resnets.weights.records.center_crop_geometry`) that every inference path applies.
"""

from __future__ import annotations

import numpy as np

from keras_resnets.weights.records import center_crop_geometry

# AlexNet's PCA lighting noise (Krizhevsky et al. 2012), eigen-decomposition of ImageNet RGB covariance
# on a 0-255 scale, as used by the Facebook ResNet reference implementation.
IMAGENET_PCA_EIGVAL = np.array([0.2175, 0.0188, 0.0045], np.float32) * 255.0
IMAGENET_PCA_EIGVEC = np.array(
    [[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]], np.float32
)


def _tf():
    import tensorflow as tf  # Lazily: the NumPy functions below must work without TensorFlow.

    return tf


# ----------------------------------------------------------------------------------------------------
# NumPy (JAX-only machines)


def cifar_crop_draws(rng: np.random.Generator, count: int, padding: int = 4):
    """The random choices of :func:`cifar_augment_numpy` for `count` images: (top, left, flip) arrays.

    Kept apart so that an engine augmenting on the accelerator draws exactly what the NumPy pipeline
    draws (same generator, same order): crop offsets in [0, 2 * padding], then flips with probability 1/2.
    """
    top = rng.integers(0, 2 * padding + 1, size=count)
    left = rng.integers(0, 2 * padding + 1, size=count)
    flip = rng.random(count) < 0.5
    return top, left, flip


def cifar_augment_numpy(images: np.ndarray, rng: np.random.Generator, padding: int = 4) -> np.ndarray:
    """Pad + random crop + random horizontal flip of a uint8 batch (N, H, W, C), vectorised.

    Args:
        images: uint8 array (N, H, W, C).
        rng: the generator that draws the crop offsets and flips (seed it per batch for reproducibility).
        padding: zero padding on each side before cropping back to (H, W).
    """
    if images.ndim != 4:
        raise ValueError(f"`images` must be a batch (N, H, W, C). Received: images.shape={images.shape}")
    n, height, width, _ = images.shape
    padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    top, left, flip = cifar_crop_draws(rng, n, padding)
    rows = top[:, None] + np.arange(height)[None, :]  # (N, H)
    cols = left[:, None] + np.arange(width)[None, :]  # (N, W)
    cols = np.where(flip[:, None], cols[:, ::-1], cols)
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


# ----------------------------------------------------------------------------------------------------
# TensorFlow (tf.data maps)


def cifar_augment_tf(image, seed, padding: int = 4):
    """Pad + random crop + flip of one uint8 image (H, W, C), seeded by a stateless seed of shape (2,)."""
    tf = _tf()
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
    shape = tf.shape(image)
    padded = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
    cropped = tf.image.stateless_random_crop(padded, shape, seed=crop_seed)
    return tf.image.stateless_random_flip_left_right(cropped, seed=flip_seed)


def resize_shorter_side(image, shorter_side):
    """Bilinearly resize a uint8 image so its shorter side equals `shorter_side` (a scalar tensor)."""
    tf = _tf()
    height = tf.cast(tf.shape(image)[0], tf.float32)
    width = tf.cast(tf.shape(image)[1], tf.float32)
    scale = tf.cast(shorter_side, tf.float32) / tf.minimum(height, width)
    new_size = tf.cast(tf.round(tf.stack([height * scale, width * scale])), tf.int32)
    new_size = tf.maximum(new_size, tf.cast(shorter_side, tf.int32))
    resized = tf.image.resize(image, new_size, method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def pca_lighting_tf(image, seed, std: float = 0.1):
    """AlexNet colour augmentation: add a random combination of the ImageNet RGB principal components."""
    tf = _tf()
    alpha = tf.random.stateless_normal([3], seed=seed, stddev=std)
    offset = tf.linalg.matvec(tf.constant(IMAGENET_PCA_EIGVEC), alpha * tf.constant(IMAGENET_PCA_EIGVAL))
    shifted = tf.cast(image, tf.float32) + offset
    return tf.cast(tf.clip_by_value(tf.round(shifted), 0, 255), tf.uint8)


def imagenet_augment_tf(image, seed, crop_size=224, scale_range=(256, 480), pca_lighting=False):
    """Scale augmentation (shorter side uniform in `scale_range`), random crop, flip, optional PCA noise."""
    tf = _tf()
    scale_seed, crop_seed, flip_seed, light_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=4))
    shorter = tf.random.stateless_uniform([], seed=scale_seed, minval=scale_range[0], maxval=scale_range[1] + 1, dtype=tf.int32)
    image = resize_shorter_side(image, shorter)
    image = tf.image.stateless_random_crop(image, [crop_size, crop_size, 3], seed=crop_seed)
    image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
    if pca_lighting:
        image = pca_lighting_tf(image, light_seed)
    return image


def resize_tf(images, height, width, interpolation: str = "bilinear"):
    """Resize an image or a batch to `height` x `width` (ints or scalar tensors) as PIL does.

    Antialiased (the filter widens by the shrink factor), width first and then height, with 8-bit
    pixels in between and at the end (clipped to 0..255, halves rounded up): the images PIL, and so
    torchvision's and timm's evaluation transforms, produce, bicubic overshoot included.

    Returns:
        float32 tensor of whole pixel values.
    """
    tf = _tf()
    antialias = interpolation != "nearest"
    wide = tf.image.resize(images, tf.stack([tf.shape(images)[-3], width]), method=interpolation, antialias=antialias)
    resized = tf.image.resize(to_pixels_tf(wide), tf.stack([height, width]), method=interpolation, antialias=antialias)
    return to_pixels_tf(resized)


def to_pixels_tf(images):
    """Clip to 0..255 and round halves up, as PIL stores a filtered 8-bit pixel; float32."""
    tf = _tf()
    return tf.floor(tf.clip_by_value(tf.cast(images, tf.float32), 0.0, 255.0) + 0.5)


def _eval_resize_tf(image, crop_size, resize_to, interpolation):
    """The resized uint8 image and the centre crop offsets of torchvision's Resize + CenterCrop."""
    tf = _tf()
    shape = tf.shape(image)
    resized_height, resized_width, top, left = center_crop_geometry(
        shape[0], shape[1], (crop_size, crop_size), resize_to, minimum=tf.minimum
    )
    resized = tf.cast(resize_tf(image, resized_height, resized_width, interpolation), tf.uint8)
    return resized, top, left


def center_crop_tf(image, crop_size=224, resize_to=256, interpolation="bilinear"):
    """Single-crop evaluation view: shorter side to `resize_to`, then the central `crop_size` square
    (the evaluation transform: :func:`keras_resnets.weights.records.center_crop_geometry`, :func:`resize_tf`)."""
    tf = _tf()
    resized, top, left = _eval_resize_tf(image, crop_size, resize_to, interpolation)
    return tf.image.crop_to_bounding_box(resized, top, left, crop_size, crop_size)


def ten_crop_tf(image, crop_size=224, resize_to=256, interpolation="bilinear"):
    """The 10-crop evaluation views (N=10, crop, crop, 3): 4 corners + centre, and their mirror images."""
    tf = _tf()
    image, top, left = _eval_resize_tf(image, crop_size, resize_to, interpolation)
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    offsets = [
        (0, 0),
        (0, width - crop_size),
        (height - crop_size, 0),
        (height - crop_size, width - crop_size),
        (top, left),
    ]
    crops = [tf.image.crop_to_bounding_box(image, row, column, crop_size, crop_size) for row, column in offsets]
    crops += [tf.image.flip_left_right(crop) for crop in crops]
    return tf.stack(crops)


def resize_exact_tf(image, size):
    """Resize to exactly (size, size) (for image folders of mixed sizes evaluated at a small resolution)."""
    tf = _tf()
    resized = tf.image.resize(image, [size, size], method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)
