"""Weight gradients over slices of the batch (training/chunked_convolution.py) are what whole batches give.

At real sizes (ResNet-20's convolutions and the whole net, batch 128; JAX pass): the sliced kernel
gradient against the float64 answer, for slices that divide the batch and ragged ones, strides 1 and 2,
float32 and mixed bfloat16; everything else bit-identical to the whole batch; and the JAX engine slices
on one CPU device by default, and only there, taking the step the whole-batch engine takes.
"""

import keras
import numpy as np
import pytest

import keras_resnets
from helpers.float_reference import flat, relative_error

BATCH = 128
KIB = 1024


@pytest.mark.parametrize(
    "batch_size, images_per_chunk, expected",
    [
        (128, 64 * KIB, 16),  # ResNet-20's first stage (32x32x16 float32) under a 1 MiB budget.
        (128, 16 * KIB, 64),  # Its last stage: two slices.
        (128, 3 * 1024 * KIB, 8),  # An image over the budget: at most 16 slices, so 8 images each.
        (8, 64 * KIB, 8),  # A small batch stays whole.
        (100, 96 * KIB, 10),  # by bytes: 10 images per slice, the last slice holds 10 as well.
    ],
)
def test_slice_sizes_follow_the_byte_budget_and_the_slice_cap(batch_size, images_per_chunk, expected):
    from training.chunked_convolution import images_per_chunk as rule

    assert rule(batch_size, images_per_chunk, 1024 * KIB, 16) == expected


def _needs_jax():
    if keras.backend.backend() != "jax":
        pytest.skip("the sliced weight gradient is JAX code (this test repeats in the JAX pass)")


def _first_stage_convolution(strides=1):
    """ResNet-20's first-stage 3x3 convolution (32x32x16 -> 16 channels, no bias) as a one-layer model."""
    return keras.Sequential([keras.Input((32, 32, 16)), keras.layers.Conv2D(16, 3, strides=strides, padding="same", use_bias=False)])


def _outputs_and_gradients(model, inputs, output_gradient, training=False):
    """The model's output and the vector-Jacobian product of `output_gradient`: (output, input grad, weight grads)."""
    import jax

    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    def run(trainable, inputs):
        return model.stateless_call(trainable, non_trainable, inputs, training=training)[0]

    output, vjp = jax.vjp(run, trainable, inputs)
    weight_gradients, input_gradient = vjp(jax.numpy.asarray(output_gradient, output.dtype))
    return np.asarray(output), np.asarray(input_gradient), [np.asarray(g) for g in weight_gradients]


def _float64_kernel_gradient(inputs, output_gradient, strides):
    """The exact 3x3 "same" convolution kernel gradient, in float64 NumPy (TensorFlow/XLA padding rule)."""
    x, dy = inputs.astype(np.float64), output_gradient.astype(np.float64)
    size, out = x.shape[1], dy.shape[1]
    pad = max((out - 1) * strides + 3 - size, 0)
    x = np.pad(x, ((0, 0), (pad // 2, pad - pad // 2), (pad // 2, pad - pad // 2), (0, 0)))
    span = (out - 1) * strides + 1
    return np.stack([
        np.stack([np.einsum("bhwc,bhwo->co", x[:, i : i + span : strides, j : j + span : strides], dy) for j in range(3)])
        for i in range(3)
    ])


@pytest.mark.backend
@pytest.mark.parametrize("strides", [1, 2])
@pytest.mark.parametrize(
    "max_chunk_bytes, slices",
    [
        pytest.param(8 * 64 * KIB, 16, id="16-slices-of-8"),
        pytest.param(24 * 64 * KIB, 6, id="ragged-5x24-and-8"),
    ],
)
def test_sliced_weight_gradient_is_the_exact_sum_up_to_float32_rounding(strides, max_chunk_bytes, slices):
    # ResNet-20's first-stage convolution at batch 128 (and its stride-2 form, as in a stage's first block).
    _needs_jax()
    from training.chunked_convolution import images_per_chunk, use_batch_chunked_convolutions

    assert -(-BATCH // images_per_chunk(BATCH, 64 * KIB, max_chunk_bytes, 16)) == slices

    keras.utils.set_random_seed(6)
    whole, sliced = _first_stage_convolution(strides), _first_stage_convolution(strides)
    sliced.set_weights(whole.get_weights())
    assert use_batch_chunked_convolutions(sliced, max_chunk_bytes) == 1
    rng = np.random.default_rng(7)
    inputs = rng.normal(size=(BATCH, 32, 32, 16)).astype("float32")
    output_gradient = rng.normal(size=(BATCH, 32 // strides, 32 // strides, 16)).astype("float32")
    output, input_gradient, (kernel_gradient,) = _outputs_and_gradients(whole, inputs, output_gradient)
    sliced_output, sliced_input_gradient, (sliced_kernel_gradient,) = _outputs_and_gradients(sliced, inputs, output_gradient)
    # Forward pass and input gradient: the very same whole-batch operations.
    assert np.array_equal(sliced_output, output) and np.array_equal(sliced_input_gradient, input_gradient)
    truth = _float64_kernel_gradient(inputs, output_gradient, strides)
    whole_error, sliced_error = relative_error(kernel_gradient, truth), relative_error(sliced_kernel_gradient, truth)
    assert sliced_kernel_gradient.dtype == np.float32
    assert sliced_error <= max(4 * whole_error, 1e-6), (sliced_error, whole_error)


@pytest.mark.backend
def test_bfloat16_weight_gradients_accumulate_in_float32():
    _needs_jax()
    from training.chunked_convolution import use_batch_chunked_convolutions

    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        keras.utils.set_random_seed(8)
        whole, sliced = _first_stage_convolution(), _first_stage_convolution()
    finally:
        keras.config.set_dtype_policy("float32")
    sliced.set_weights(whole.get_weights())
    use_batch_chunked_convolutions(sliced, 8 * 32 * KIB)  # 16 slices of 8 bfloat16 images.
    rng = np.random.default_rng(9)
    inputs = rng.normal(size=(BATCH, 32, 32, 16)).astype("float32")
    output_gradient = rng.normal(size=(BATCH, 32, 32, 16)).astype("float32")
    _, _, (kernel_gradient,) = _outputs_and_gradients(whole, inputs, output_gradient)
    _, _, (sliced_kernel_gradient,) = _outputs_and_gradients(sliced, inputs, output_gradient)
    assert sliced_kernel_gradient.dtype == kernel_gradient.dtype == np.float32  # The float32 variable's.
    # The convolution ran on bfloat16 inputs: the exact answer for those rounded values.
    rounded = np.asarray(keras.ops.cast(keras.ops.cast(inputs, "bfloat16"), "float32"))
    rounded_gradient = np.asarray(keras.ops.cast(keras.ops.cast(output_gradient, "bfloat16"), "float32"))
    truth = _float64_kernel_gradient(rounded, rounded_gradient, 1)
    whole_error, sliced_error = relative_error(kernel_gradient, truth), relative_error(sliced_kernel_gradient, truth)
    assert sliced_error <= max(2 * whole_error, 1e-6), (sliced_error, whole_error)


@pytest.mark.backend
def test_resnet20_differs_only_in_kernel_gradients_and_only_by_rounding():
    # A whole ResNet-20 in training mode (batch statistics over the whole batch) at batch 128: outputs,
    # the input gradient and every BN gradient are bit-identical; each kernel gradient is within float32
    # rounding of the whole-batch one.
    _needs_jax()
    from training.chunked_convolution import use_batch_chunked_convolutions

    keras.utils.set_random_seed(3)
    whole = keras_resnets.get_model("resnet20", input_shape=(32, 32, 3), classifier_activation=None)
    sliced = keras_resnets.get_model("resnet20", input_shape=(32, 32, 3), classifier_activation=None)
    sliced.set_weights(whole.get_weights())
    assert use_batch_chunked_convolutions(sliced) == 19  # The stem's convolution and two per block.
    rng = np.random.default_rng(1)
    images = rng.normal(size=(BATCH, 32, 32, 3)).astype("float32")
    output_gradient = rng.normal(size=(BATCH, 10)).astype("float32")
    output, input_gradient, gradients = _outputs_and_gradients(whole, images, output_gradient, training=True)
    sliced_output, sliced_input_gradient, sliced_gradients = _outputs_and_gradients(sliced, images, output_gradient, training=True)
    assert np.array_equal(sliced_output, output) and np.array_equal(sliced_input_gradient, input_gradient)
    kernels = 0
    for variable, got, want in zip(whole.trainable_variables, sliced_gradients, gradients):
        if len(variable.shape) == 4:
            kernels += 1
            assert relative_error(got, want) < 1e-5, variable.path
        else:
            assert np.array_equal(got, want), variable.path
    assert kernels == 19


def test_bad_budgets_and_backends_are_refused_by_name():
    from training.chunked_convolution import use_batch_chunked_convolutions

    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3)])
    with pytest.raises(ValueError, match=r"`max_chunk_bytes` must be an integer >= 1. Received: max_chunk_bytes=0"):
        use_batch_chunked_convolutions(model, 0)
    with pytest.raises(ValueError, match=r"max_chunks=2.5"):
        use_batch_chunked_convolutions(model, 1024, max_chunks=2.5)
    if keras.backend.backend() != "jax":
        with pytest.raises(ValueError, match=r"JAX backend .*Received: keras.backend.backend\(\)='tensorflow'"):
            use_batch_chunked_convolutions(model)


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
    assert JaxEngine._conv_chunk_bytes(TrainConfig(), one_device) == 512 * KIB  # On by default.
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
