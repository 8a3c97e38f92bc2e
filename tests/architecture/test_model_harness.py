"""One harness that every registered model passes: build and predict on every backend (marked `backend`),
float32 outputs under mixed precision on every backend, and the config/save round trip.

Each model is built at a small input with a few classes. ResNet-1202 and plain-1202 get a forward pass
(a direct call) in test_deepest_nets.py, on the one build of each that their other checks share. The
predict and round-trip tests of a model read one module-scoped build when they run in one process
(pytest puts them one after the other).

The round trip runs on TensorFlow only: it is Keras's own serialization of standard layers (the zoo's
graphs have no custom layers), the same code on every backend, and test_keras_file_portable.py saves and
reloads a CIFAR and an ImageNet net on each backend.
"""

import copy

import numpy as np
import pytest
import tensorflow as tf

import keras
import keras_resnets
from helpers.deepest_nets import DEEPEST

NUM_CLASSES = 5

MODELS = [name for name in keras_resnets.list_models() if name not in DEEPEST]


def _small_input_shape(name):
    entry = keras_resnets.model_entry(name)
    return (32, 32, 3) if entry.spec.family == "imagenet" else (16, 16, 3)


def _build(name, **kwargs):
    return keras_resnets.get_model(name, input_shape=_small_input_shape(name), classes=NUM_CLASSES, **kwargs)


@pytest.fixture(scope="module")
def model(name):
    """The float32 model `name`, built once for the tests of this module that only read it."""
    return _build(name)


def _images(name, batch=2, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (batch, *_small_input_shape(name))).astype("float32")


def assert_predicts(model, images, num_classes):
    """predict() of 4 `images` from NumPy and from tf.data gives probabilities over `num_classes`, the same both ways.

    Two batches of 2: one input shape, so each backend traces (TensorFlow) or compiles (JAX) the model's
    predict step once; a second shape costs a second trace of the whole graph. A partial last batch is
    model-independent: tested once, on ResNet-20.
    """
    assert len(images) == 4
    from_numpy = model.predict(images, batch_size=2, verbose=0)
    assert from_numpy.shape == (4, num_classes)
    np.testing.assert_allclose(from_numpy.sum(axis=-1), 1.0, rtol=1e-5)
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(2)
    from_dataset = model.predict(dataset, verbose=0)
    np.testing.assert_allclose(from_dataset, from_numpy, rtol=1e-5, atol=1e-6)


@pytest.mark.backend
@pytest.mark.parametrize("name", MODELS, scope="module")
def test_build_predict_numpy_and_tf_data(name, model):
    assert_predicts(model, _images(name, batch=4), NUM_CLASSES)


@pytest.mark.backend
def test_predict_with_a_partial_last_batch():
    """Three images in batches of 2 (the last one partial), from NumPy and from tf.data, on ResNet-20."""
    model = _build("resnet20")
    images = _images("resnet20", batch=3)
    expected = keras.ops.convert_to_numpy(model(images, training=False))
    from_numpy = model.predict(images, batch_size=2, verbose=0)
    from_dataset = model.predict(tf.data.Dataset.from_tensor_slices(images).batch(2), verbose=0)
    assert from_numpy.shape == from_dataset.shape == (3, NUM_CLASSES)
    np.testing.assert_allclose(from_numpy, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(from_dataset, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", MODELS, scope="module")
def test_config_round_trip_and_save_load(name, model, tmp_path):
    images = _images(name)
    # Direct calls (inference mode) rather than predict(): the predict path is the test above, and each
    # new model would otherwise trace (TensorFlow) or compile (JAX) its own predict function.
    run = lambda m: keras.ops.convert_to_numpy(m(images, training=False))  # noqa: E731
    expected = run(model)

    config = model.get_config()
    clone = keras.Model.from_config(copy.deepcopy(config))
    assert clone.get_config() == config
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(run(clone), expected)

    path = tmp_path / f"{name}.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_array_equal(run(restored), expected)


@pytest.mark.backend
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("name", MODELS)
def test_mixed_precision_outputs_float32(name, policy):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        model = _build(name)
        # Training mode: an untrained deep net in inference mode grows activations ~2x per block
        # (BN moving statistics are still 0/1), which overflows float16 for reasons unrelated to the head.
        output = model(_images(name), training=True)
    finally:
        keras.config.set_dtype_policy(previous)
    assert keras.backend.standardize_dtype(output.dtype) == "float32"
    assert model.get_layer("conv1").compute_dtype == policy.split("_")[1]
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(output)))
