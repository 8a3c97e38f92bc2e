"""The paper's augmentation and test-time views (TensorFlow ops) and multi-view scoring."""

import numpy as np
import pytest
import tensorflow as tf

import keras_resnets
from keras_resnets.data import augment
from keras_resnets.weights.records import Preprocessing
from training import objective


def test_cifar_augment_tf_is_seeded_per_example():
    image = tf.constant(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    a = augment.cifar_augment_tf(image, tf.constant([1, 7], tf.int64))
    b = augment.cifar_augment_tf(image, tf.constant([1, 7], tf.int64))
    c = augment.cifar_augment_tf(image, tf.constant([1, 8], tf.int64))
    assert a.shape == (32, 32, 3) and a.dtype == tf.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_imagenet_scale_augmentation_and_crops():
    image = tf.constant(np.random.default_rng(1).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    crop = augment.imagenet_augment_tf(image, tf.constant([0, 1], tf.int64), crop_size=224, pca_lighting=True)
    assert crop.shape == (224, 224, 3) and crop.dtype == tf.uint8
    assert augment.resize_shorter_side(image, 256).shape == (256, 341, 3)
    # The evaluation views resize as prepare_image does (PIL's filtering), then crop at torchvision's offsets.
    resized = tf.cast(augment.resize_tf(image, 256, 341), tf.uint8)
    center = augment.center_crop_tf(image, 224, 256)
    np.testing.assert_array_equal(center, resized[16:240, 58:282])
    pil = keras_resnets.prepare_image(image.numpy(), preprocessing=Preprocessing((0.5,) * 3, (0.5,) * 3, input_size=224, crop_pct=0.875))
    assert np.abs(center.numpy() - pil).max() <= 1  # PIL filters in 8-bit fixed point.
    crops = augment.ten_crop_tf(image, 224, 256)
    assert crops.shape == (10, 224, 224, 3)
    np.testing.assert_array_equal(crops[0], resized[:224, :224])  # Top-left corner.
    np.testing.assert_array_equal(crops[3], resized[32:, 117:])  # Bottom-right corner.
    np.testing.assert_array_equal(crops[4], center)
    np.testing.assert_array_equal(crops[5], resized[:224, :224, :][:, ::-1])  # Mirror of the first.


def test_multi_view_scores_average_probabilities():
    # Two examples, two views each: averaged softmax decides, not the single most confident view.
    logits = np.log(np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.6, 0.4]], np.float32))
    losses, correct = objective.per_example_losses(logits, np.array([1, 0]), num_classes=2, views=2)
    np.testing.assert_allclose(np.asarray(losses), [-np.log(0.45), -np.log(0.6)], rtol=1e-5)
    assert np.asarray(correct).tolist() == [0.0, 1.0]


def test_label_smoothing_and_l2_penalty():
    logits = np.zeros((1, 4), np.float32)
    smooth, _ = objective.per_example_losses(logits, np.array([2]), num_classes=4, label_smoothing=0.1)
    assert float(np.asarray(smooth)[0]) == pytest.approx(np.log(4.0))  # Uniform prediction: log K either way.
    weights = [np.full((2, 2), 2.0, np.float32), np.ones(3, np.float32)]
    assert float(objective.l2_penalty(weights)) == pytest.approx(0.5 * (16 + 3))
    assert objective.decays(weights[0], False) and not objective.decays(weights[1], False)
