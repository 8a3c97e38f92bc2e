"""Convolution weight gradients over slices of the batch, for the JAX engines on a CPU.

XLA:CPU computes a convolution's weight gradient several times slower once the batch's activations
overflow the core's cache. On a 2-core AVX2 machine, ResNet-20's first-stage 3x3 convolution (batch 128,
32x32x16 activations, 8 MB) took about 170 ms for its weight gradient as one operation and about
12 ms as the sum of 16 slices of 8 images; its forward pass and its input gradient cost about the same
whole or sliced.

:func:`use_batch_chunked_convolutions` switches the Conv2D layers of one model (an engine's own) to a
convolution whose forward pass and input gradient take the whole batch, as before, and whose weight
gradient is the sum of the weight gradients of slices of the batch, each slice's input at most
`max_chunk_bytes` (and at most `max_chunks` slices, since every slice is one more convolution in the
compiled program), accumulated in float32. The weight gradient is a sum over the images of the batch,
so this only regroups that sum: gradients equal the whole-batch ones within float32 rounding
(``tests/training/test_chunked_convolution.py``, against float64 answers). Slicing only the weight
gradient, rather than the whole convolution as this module first did, trained ResNet-20 and ResNet-56
8-14 % faster on a 2-core AVX-512 CPU and halved their compile time (docs/speed-log.md).
The switch lives on the layer instances and is never saved.
"""

from __future__ import annotations

import functools
import math
import re
import types

import jax
import jax.numpy as jnp
import keras

from . import modeling

# Measured on ResNet-20 and ResNet-56 at batch 128 (2-core AMD EPYC, AVX-512); docs/speed-log.md.
DEFAULT_MAX_CHUNK_BYTES = 1 << 19
DEFAULT_MAX_CHUNKS = 16


def images_per_chunk(batch_size: int, bytes_per_image: int, max_chunk_bytes: int, max_chunks: int) -> int:
    """How many images each slice of a `batch_size` batch holds (the whole batch when that is small)."""
    by_bytes = max(1, max_chunk_bytes // max(1, bytes_per_image))
    by_count = -(-batch_size // max_chunks)
    return min(batch_size, max(by_bytes, by_count))


def _itemsize(dtype) -> int:
    # "float32" -> 4, "bfloat16" -> 2: Keras names every float dtype by its width.
    name = keras.backend.standardize_dtype(dtype)
    return int(re.search(r"\d+$", name).group()) // 8


def sliced_weight_gradient_convolution(convolve, images_per_slice: int):
    """`convolve(inputs, kernel)` with the same values and gradients, its kernel gradient summed over slices.

    The forward pass and the input gradient are `convolve`'s own on the whole batch; the kernel
    gradient is the sum, accumulated in float32 and returned in the kernel's dtype, of the kernel
    gradients of consecutive slices of `images_per_slice` images (the last one may be shorter).
    """

    @jax.custom_vjp
    def convolution(inputs, kernel):
        return convolve(inputs, kernel)

    def forward(inputs, kernel):
        return convolve(inputs, kernel), (inputs, kernel)

    def backward(residuals, output_gradient):
        inputs, kernel = residuals
        _, input_vjp = jax.vjp(lambda x: convolve(x, kernel), inputs)
        (input_gradient,) = input_vjp(output_gradient)
        kernel_gradient = jnp.zeros(kernel.shape, jnp.float32)
        for start in range(0, inputs.shape[0], images_per_slice):
            piece = slice(start, start + images_per_slice)
            _, kernel_vjp = jax.vjp(lambda k: convolve(inputs[piece], k), kernel)
            kernel_gradient += kernel_vjp(output_gradient[piece])[0].astype(jnp.float32)
        return input_gradient, kernel_gradient.astype(kernel.dtype)

    convolution.defvjp(forward, backward)
    return convolution


def _sliced_convolution_op(self, inputs, kernel, max_chunk_bytes: int, max_chunks: int):
    whole_batch_op = type(self).convolution_op
    count = inputs.shape[0]
    if count is None:  # Traced without a static batch size: nothing to slice by.
        return whole_batch_op(self, inputs, kernel)
    bytes_per_image = math.prod(inputs.shape[1:]) * _itemsize(inputs.dtype)
    step = images_per_chunk(count, bytes_per_image, max_chunk_bytes, max_chunks)
    if step >= count:
        return whole_batch_op(self, inputs, kernel)
    # The kernel arrives as a Keras variable (autocast to the compute dtype on read); custom_vjp
    # differentiates arrays only.
    kernel = keras.ops.convert_to_tensor(kernel)
    convolve = functools.partial(whole_batch_op, self)
    return sliced_weight_gradient_convolution(convolve, step)(inputs, kernel)


def use_batch_chunked_convolutions(
    model: keras.Model, max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES, max_chunks: int = DEFAULT_MAX_CHUNKS
) -> int:
    """Make every Conv2D layer of `model` compute its weight gradient over slices of at most `max_chunk_bytes`.

    For the JAX backend and models traced with a static batch size (the JAX engines' jitted steps);
    with an unknown batch size a layer keeps whole batches. Returns how many layers were switched.

    Raises:
        ValueError: `max_chunk_bytes` or `max_chunks` is not a positive integer, or the backend is not JAX.
    """
    for name, value in (("max_chunk_bytes", max_chunk_bytes), ("max_chunks", max_chunks)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be an integer >= 1. Received: {name}={value!r}")
    if keras.backend.backend() != "jax":
        raise ValueError(
            "Sliced convolution weight gradients are written for the JAX backend (jax.custom_vjp). "
            f"Received: keras.backend.backend()={keras.backend.backend()!r}"
        )
    op = functools.partial(_sliced_convolution_op, max_chunk_bytes=max_chunk_bytes, max_chunks=max_chunks)
    switched = 0
    for layer in modeling.all_layers(model):
        if isinstance(layer, keras.layers.Conv2D):
            layer.convolution_op = types.MethodType(op, layer)
            switched += 1
    return switched
