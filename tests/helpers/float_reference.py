"""Float64 references for tests that check a float32 computation only reorders rounding (TensorFlow backend)."""

from __future__ import annotations

import keras
import numpy as np

import keras_resnets


def float64_twin(model, name: str = "resnet20"):
    """The zoo model `name` (32x32 input, logits) in float64, holding `model`'s weights."""
    keras.config.set_dtype_policy("float64")
    try:
        twin = keras_resnets.get_model(name, input_shape=(32, 32, 3), classifier_activation=None)
    finally:
        keras.config.set_dtype_policy("float32")
    twin.set_weights([w.astype("float64") for w in model.get_weights()])
    return twin


def forward_and_gradients(model, images, training: bool):
    """The outputs and the gradients of their summed squares for every trainable variable, as numpy.

    Float16/bfloat16 outputs are squared in float32 (a mixed policy's loss precision); float32 and
    float64 ones in their own precision.
    """
    import tensorflow as tf

    with tf.GradientTape() as tape:
        outputs = model(images, training=training)
        if outputs.dtype in (tf.float16, tf.bfloat16):
            outputs = tf.cast(outputs, tf.float32)
        loss = tf.reduce_sum(tf.square(outputs))
    return outputs.numpy(), [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]


def relative_error(a, b) -> float:
    """||a - b|| / ||b|| in float64."""
    return float(np.linalg.norm(a.astype("float64") - b) / max(np.linalg.norm(b.astype("float64")), 1e-30))


def flat(arrays):
    """Every array raveled into one float64 vector."""
    return np.concatenate([np.ravel(a).astype("float64") for a in arrays])
