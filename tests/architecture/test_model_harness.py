"""One harness that every registered model passes, on every backend (marked `backend`).

Each model is built at a small input with a few classes; ResNet-1202 and its plain twin are marked slow.
"""

import copy

import numpy as np
import pytest
import tensorflow as tf

import keras
import keras_resnets

pytestmark = pytest.mark.backend

NUM_CLASSES = 5


def _small_input_shape(name):
    entry = keras_resnets.model_entry(name)
    return (32, 32, 3) if entry.spec.family == "imagenet" else (16, 16, 3)


def _params(name):
    marks = [pytest.mark.slow] if name.endswith("1202") else []
    return pytest.param(name, marks=marks, id=name)


ALL_MODELS = [_params(name) for name in keras_resnets.list_models()]


def _build(name, **kwargs):
    if name == "resnet1202":
        # Untrained, in inference mode (BN moving statistics still 0/1) every residual block roughly
        # doubles the activations' scale: 600 blocks overflow float32. Starting the branches at zero
        # keeps the forward pass finite while still running every layer.
        kwargs.setdefault("zero_init_last_bn", True)
    return keras_resnets.get_model(name, input_shape=_small_input_shape(name), classes=NUM_CLASSES, **kwargs)


def _images(name, batch=2, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (batch, *_small_input_shape(name))).astype("float32")


@pytest.mark.parametrize("name", ALL_MODELS)
def test_build_predict_numpy_and_tf_data(name):
    model = _build(name)
    images = _images(name, batch=3)
    from_numpy = model.predict(images, batch_size=3, verbose=0)
    assert from_numpy.shape == (3, NUM_CLASSES)
    np.testing.assert_allclose(from_numpy.sum(axis=-1), 1.0, rtol=1e-5)
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(2)
    from_dataset = model.predict(dataset, verbose=0)
    np.testing.assert_allclose(from_dataset, from_numpy, rtol=1e-5, atol=1e-6)


# The 1202-layer nets go through the same code path as the 110-layer ones here, but a Keras
# from_config/load_model of 3,600 layers takes minutes on 2 cores; they are built and run above.
@pytest.mark.parametrize("name", [n for n in keras_resnets.list_models() if not n.endswith("1202")])
def test_config_round_trip_and_save_load(name, tmp_path):
    model = _build(name)
    images = _images(name)
    expected = model.predict(images, verbose=0)

    config = model.get_config()
    clone = keras.Model.from_config(copy.deepcopy(config))
    assert clone.get_config() == config
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone.predict(images, verbose=0), expected)

    path = tmp_path / f"{name}.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_array_equal(restored.predict(images, verbose=0), expected)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("name", [n for n in keras_resnets.list_models() if not n.endswith("1202")])
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
