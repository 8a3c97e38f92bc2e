"""TensorFlow's fused BatchNorm kernels (training/fused_batchnorm.py) compute what Keras's BatchNormalization does.

At a real size (ResNet-20, batch 128): outputs, gradients and moving statistics against Keras's own
layer, in training and inference mode, in float32 and under the mixed bfloat16 policy; and the
TensorFlow engine uses them by default, in its compiled training step.
"""

import keras
import numpy as np
import pytest

import keras_resnets
from helpers.float_reference import flat, float64_twin, forward_and_gradients, relative_error

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="TensorFlow's fused kernels exist only on the TensorFlow backend"
)

BATCH = 128


def _pair(policy="float32"):
    """Two identical ResNet-20s (random BN statistics and scales), the second switched to fused kernels."""
    from training.fused_batchnorm import use_fused_batch_norm

    keras.config.set_dtype_policy(policy)
    try:
        keras.utils.set_random_seed(3)
        # Logits: a saturated softmax would leave nothing but rounding noise in the gradients.
        reference = keras_resnets.get_model("resnet20", input_shape=(32, 32, 3), classifier_activation=None)
        fused = keras_resnets.get_model("resnet20", input_shape=(32, 32, 3), classifier_activation=None)
    finally:
        keras.config.set_dtype_policy("float32")
    rng = np.random.default_rng(0)
    weights = []
    for variable in reference.weights:
        shape = tuple(variable.shape)
        if "moving_variance" in variable.path or "gamma" in variable.path:
            weights.append(rng.uniform(0.5, 1.5, shape).astype("float32"))
        elif "moving_mean" in variable.path or "beta" in variable.path:
            weights.append(rng.normal(0.0, 0.2, shape).astype("float32"))
        else:
            weights.append(np.asarray(variable.numpy()))
    reference.set_weights(weights)
    fused.set_weights(weights)
    switched = use_fused_batch_norm(fused)
    return reference, fused, switched


def _images():
    return np.random.default_rng(1).normal(size=(BATCH, 32, 32, 3)).astype("float32")


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_fused_kernels_match_keras_batch_norm(training):
    reference, fused, switched = _pair()
    assert switched == 19  # Every BN of ResNet-20: the stem's and two per block.
    exact = float64_twin(reference)  # The float64 answer both float32 computations approximate.
    images = _images()
    truth, truth_grads = forward_and_gradients(exact, images.astype("float64"), training)
    expected, expected_grads = forward_and_gradients(reference, images, training)
    actual, actual_grads = forward_and_gradients(fused, images, training)
    # The fused kernels are about as close to the float64 answer as Keras's own float32 ops are. With
    # oneDNN (TensorFlow's default on AVX-512 CPUs) the fused gradients land 2.4x Keras's error here
    # (5.2e-4 against 2.2e-4; 1x without oneDNN); a wrong variance convention or a dropped gradient
    # term is off by orders of magnitude more.
    keras_error = relative_error(flat(expected_grads), flat(truth_grads))
    fused_error = relative_error(flat(actual_grads), flat(truth_grads))
    assert fused_error <= max(4 * keras_error, 1e-5), (fused_error, keras_error)
    assert relative_error(actual, truth) <= max(2 * relative_error(expected, truth), 1e-5)
    for variable, got, want in zip(reference.trainable_variables, actual_grads, truth_grads):
        assert relative_error(got, want) < 1e-2, variable.path
    # Training mode updated the moving statistics alike (Keras's momentum and biased batch variance).
    moved = 0
    for variable, got, want in zip(reference.weights, fused.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6, err_msg=variable.path)
        moved += "moving" in variable.path
    assert moved == 38


def test_small_batch_statistics_use_keras_variance_convention():
    # Few values per channel make the biased (Keras) and unbiased (the kernel's) variance differ by
    # 18/17: a fused layer that kept the kernel's convention would be 6% off.
    from training.fused_batchnorm import use_fused_batch_norm

    inputs = keras.Input((3, 3, 4))
    outputs = keras.layers.BatchNormalization(momentum=0.5, epsilon=1e-5)(inputs)
    reference, fused = keras.Model(inputs, outputs), keras.Model(inputs, outputs)
    fused = keras.models.clone_model(reference)
    assert use_fused_batch_norm(fused) == 1
    images = np.random.default_rng(5).normal(2.0, 3.0, size=(2, 3, 3, 4)).astype("float32")
    for training in (True, False):
        np.testing.assert_allclose(fused(images, training=training), reference(images, training=training),
                                   rtol=1e-5, atol=1e-5)
        for got, want in zip(fused.get_weights(), reference.get_weights()):
            np.testing.assert_allclose(got, want, rtol=1e-6)


def test_moving_statistics_follow_keras_over_several_steps():
    reference, fused, _ = _pair()
    rng = np.random.default_rng(2)
    for _ in range(3):
        images = rng.normal(1.0, 2.0, size=(BATCH, 32, 32, 3)).astype("float32")
        reference(images, training=True)
        fused(images, training=True)
    before = _pair()[0].get_weights()
    for variable, got, want, start in zip(reference.weights, fused.get_weights(), reference.get_weights(), before):
        if "moving" in variable.path:
            assert not np.allclose(want, start), variable.path  # The statistics did move.
            np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6, err_msg=variable.path)


def test_mixed_bfloat16_policy_normalises_in_float32_like_keras():
    reference, fused, switched = _pair("mixed_bfloat16")
    assert switched == 19
    images = _images()
    expected = np.asarray(reference(images, training=True), "float32")
    actual = np.asarray(fused(images, training=True), "float32")
    assert fused.layers[2].compute_dtype == "bfloat16"
    assert relative_error(actual, expected) < 2e-2  # bfloat16 activations: about 3 significant digits.


def test_engine_trains_with_fused_kernels_by_default():
    import tensorflow as tf

    from keras_resnets.tasks.distribution import resolve_distribution
    from training.config import TrainConfig
    from training.engine_tf import TensorFlowEngine

    rng = np.random.default_rng(4)
    images = tf.constant(rng.integers(0, 256, (BATCH, 32, 32, 3), dtype=np.uint8))
    labels = tf.constant(rng.integers(0, 10, BATCH).astype(np.int32))
    mean, std = np.full(3, 0.5, np.float32), np.full(3, 0.25, np.float32)
    states = {}
    for fused in (True, False):
        keras.utils.set_random_seed(5)
        config = TrainConfig(model="resnet20", distribution="none", fused_batch_norm=fused)
        engine = TensorFlowEngine(config, resolve_distribution("none"), 10, 32, mean, std)
        engine.set_learning_rate(0.05)
        before = engine.get_state()
        engine._train((images, labels))
        states[fused] = (before, engine.get_state())
        graph = engine._train.get_concrete_function((images, labels)).graph
        kinds = {op.type for op in graph.get_operations()}
        assert ("FusedBatchNormV3" in kinds) is fused
        assert ("FusedBatchNormGradV3" in kinds) is fused
    # One step moves every variable (weights, BN statistics, momentum) alike. (Over several steps an
    # untrained net amplifies float32 rounding: two runs of Keras's own ops already differ after three.)
    start, keras_after = states[False]
    fused_start, fused_after = states[True]
    assert all(np.array_equal(a, b) for a, b in zip(start, fused_start))
    update = flat(keras_after) - flat(start)
    assert np.linalg.norm(flat(fused_after) - flat(keras_after)) < 1e-3 * np.linalg.norm(update)
