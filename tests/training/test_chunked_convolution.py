"""Convolutions over slices of the batch (training/chunked_convolution.py) compute what whole batches do.

At a real size (ResNet-20, batch 128): outputs in training mode (batch statistics over the whole batch)
and every gradient against the float64 answer, for slices that divide the batch and for ragged ones;
and the JAX engine slices its convolutions on one CPU device by default, and only there, taking the
step the whole-batch engine takes.
"""

import keras
import numpy as np
import pytest

import keras_resnets
from helpers.float_reference import flat, float64_twin, forward_and_gradients, relative_error

BATCH = 128
KIB = 1024


def _pair(max_chunk_bytes):
    """Two identical ResNet-20s (logits out), the second switched to sliced convolutions."""
    from training.chunked_convolution import use_batch_chunked_convolutions

    keras.utils.set_random_seed(3)
    whole = keras_resnets.get_model("resnet20", input_shape=(32, 32, 3), classifier_activation=None)
    sliced = keras_resnets.get_model("resnet20", input_shape=(32, 32, 3), classifier_activation=None)
    sliced.set_weights(whole.get_weights())
    return whole, sliced, use_batch_chunked_convolutions(sliced, max_chunk_bytes)


@pytest.mark.parametrize(
    "batch_size, images_per_chunk, expected",
    [
        (128, 64 * KIB, 16),  # ResNet-20's first stage (32x32x16 float32) under the default 1 MiB.
        (128, 16 * KIB, 64),  # Its last stage: two slices.
        (128, 3 * 1024 * KIB, 8),  # An image over the budget: at most 16 slices, so 8 images each.
        (8, 64 * KIB, 8),  # A small batch stays whole.
        (100, 96 * KIB, 10),  # by bytes: 10 images per slice, the last slice holds 10 as well.
    ],
)
def test_slice_sizes_follow_the_byte_budget_and_the_slice_cap(batch_size, images_per_chunk, expected):
    from training.chunked_convolution import images_per_chunk as rule

    assert rule(batch_size, images_per_chunk, 1024 * KIB, 16) == expected


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow pass (JAX: the engine test)")
@pytest.mark.parametrize(
    "max_chunk_bytes",
    [
        pytest.param(1024 * KIB, id="default-1MiB"),
        # On JAX, the engine test below slices ResNet-20 the same ragged way.
        pytest.param(24 * 64 * KIB, id="ragged-24-48-96-images"),
    ],
)
def test_sliced_convolutions_compute_what_whole_batches_do(max_chunk_bytes):
    whole, sliced, switched = _pair(max_chunk_bytes)
    assert switched == 19  # The stem's convolution and two per block; option-A shortcuts have none.
    images = np.random.default_rng(1).normal(size=(BATCH, 32, 32, 3)).astype("float32")
    truth, truth_grads = forward_and_gradients(float64_twin(whole), images.astype("float64"), training=True)
    expected, expected_grads = forward_and_gradients(whole, images, training=True)
    actual, actual_grads = forward_and_gradients(sliced, images, training=True)
    # Slicing is about as close to the exact answer as the whole-batch float32 computation: a net in
    # training mode amplifies rounding from layer to layer, so either lands within a few times the
    # other's error (1e-4 here), where a slicing bug would be off by about 1.
    assert relative_error(actual, truth) <= max(4 * relative_error(expected, truth), 1e-6)
    whole_error = relative_error(flat(expected_grads), flat(truth_grads))
    sliced_error = relative_error(flat(actual_grads), flat(truth_grads))
    assert sliced_error <= max(4 * whole_error, 1e-6), (sliced_error, whole_error)
    for variable, got, want in zip(whole.trainable_variables, actual_grads, truth_grads):
        assert relative_error(got, want) < 1e-2, variable.path


def test_bad_budgets_are_refused_by_name():
    from training.chunked_convolution import use_batch_chunked_convolutions

    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3)])
    with pytest.raises(ValueError, match=r"`max_chunk_bytes` must be an integer >= 1. Received: max_chunk_bytes=0"):
        use_batch_chunked_convolutions(model, 0)
    with pytest.raises(ValueError, match=r"max_chunks=2.5"):
        use_batch_chunked_convolutions(model, 1024, max_chunks=2.5)


@pytest.mark.backend
def test_jax_engine_slices_convolutions_on_one_cpu_device_only():
    if keras.backend.backend() != "jax":
        pytest.skip("the JAX engine runs on the JAX backend (this test repeats in the JAX pass)")
    import jax

    from keras_resnets.tasks.distribution import DistributionContext, resolve_distribution
    from training.config import TrainConfig
    from training.engine_jax import JaxEngine

    assert jax.default_backend() == "cpu"
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (BATCH, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, BATCH).astype(np.int32)
    mean, std = np.full(3, 0.5, np.float32), np.full(3, 0.25, np.float32)
    one_device = resolve_distribution("none")
    assert JaxEngine._conv_chunk_bytes(TrainConfig(), one_device) == 1024 * KIB  # On by default.
    ragged = 24 * 64 * KIB  # Slices of 24, 48 and 96 images, the last one shorter.
    states = {}
    for chunk_bytes in (ragged, 0):
        keras.utils.set_random_seed(5)
        config = TrainConfig(model="resnet20", distribution="none", cpu_conv_chunk_bytes=chunk_bytes)
        engine = JaxEngine(config, one_device, 10, 32, mean, std)
        convolutions = [layer for layer in engine.model._flatten_layers() if isinstance(layer, keras.layers.Conv2D)]
        assert len(convolutions) == 19
        assert all(("convolution_op" in vars(layer)) is bool(chunk_bytes) for layer in convolutions)
        before = engine.get_state()
        engine.state, _ = engine._train(engine.state, images, labels, np.float32(0.05))
        states[chunk_bytes] = (before, engine.get_state())
    (start, whole_after), (sliced_start, sliced_after) = states[0], states[ragged]
    assert all(np.array_equal(a, b) for a, b in zip(start, sliced_start))
    update = flat(whole_after) - flat(start)
    assert np.linalg.norm(flat(sliced_after) - flat(whole_after)) < 1e-4 * np.linalg.norm(update)
    # Several devices get whole batches: slicing a sharded batch would move it between the devices.
    several = DistributionContext(kind="jax_data_parallel", backend="jax", num_replicas=2)
    assert JaxEngine._conv_chunk_bytes(TrainConfig(), several) == 0
