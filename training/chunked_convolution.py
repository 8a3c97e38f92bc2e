"""Convolutions over slices of the batch, for the JAX engines on a CPU.

XLA:CPU computes a convolution's weight gradient several times slower once the batch's activations
overflow the core's cache. ResNet-20's first-stage 3x3 convolution (batch 128, 32x32x16 activations,
8 MB) takes about 170 ms for its weight gradient; the same work split into 16 slices of 8 images takes
about 12 ms, while the forward pass and the input gradient cost about the same either way. Training
ResNet-20 at batch 128 on 2 CPU cores went from 75 to 156 images/s (``benchmarks/bench_vs_torch.py``,
``jax_unchunked`` against ``jax``; README, "Against PyTorch").

:func:`use_batch_chunked_convolutions` switches the Conv2D layers of one model (an engine's own) to
compute each convolution slice by slice, each slice's input at most `max_chunk_bytes` (and at most
`max_chunks` slices, because every slice adds its own convolutions to the compiled program), and
concatenate the results. A convolution treats every image on its own, so this changes how the work is
scheduled, not what is computed: outputs and gradients equal the whole-batch ones within float32
rounding (``tests/training/test_chunked_convolution.py``). BatchNormalization and every other layer
still see the whole batch. The switch lives on the layer instances and is never saved.
"""

from __future__ import annotations

import functools
import math
import re
import types

import keras

from . import modeling

# Measured on ResNet-20 at batch 128 (2-core AMD EPYC, 1 MB L2 per core); README, "Against PyTorch".
DEFAULT_MAX_CHUNK_BYTES = 1 << 20
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


def _chunked_convolution_op(self, inputs, kernel, max_chunk_bytes: int, max_chunks: int):
    whole_batch_op = type(self).convolution_op
    count = inputs.shape[0]
    if count is None:  # Traced without a static batch size: nothing to slice by.
        return whole_batch_op(self, inputs, kernel)
    bytes_per_image = math.prod(inputs.shape[1:]) * _itemsize(inputs.dtype)
    step = images_per_chunk(count, bytes_per_image, max_chunk_bytes, max_chunks)
    if step >= count:
        return whole_batch_op(self, inputs, kernel)
    pieces = [whole_batch_op(self, inputs[start : start + step], kernel) for start in range(0, count, step)]
    return keras.ops.concatenate(pieces, axis=0)


def use_batch_chunked_convolutions(
    model: keras.Model, max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES, max_chunks: int = DEFAULT_MAX_CHUNKS
) -> int:
    """Make every Conv2D layer of `model` convolve its batch in slices of at most `max_chunk_bytes`.

    Meant for models traced with a static batch size (the JAX engines' jitted steps); with an unknown
    batch size a layer convolves the whole batch. Returns how many layers were switched.

    Raises:
        ValueError: `max_chunk_bytes` or `max_chunks` is not a positive integer.
    """
    for name, value in (("max_chunk_bytes", max_chunk_bytes), ("max_chunks", max_chunks)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be an integer >= 1. Received: {name}={value!r}")
    op = functools.partial(_chunked_convolution_op, max_chunk_bytes=max_chunk_bytes, max_chunks=max_chunks)
    switched = 0
    for layer in modeling.all_layers(model):
        if isinstance(layer, keras.layers.Conv2D):
            layer.convolution_op = types.MethodType(op, layer)
            switched += 1
    return switched
