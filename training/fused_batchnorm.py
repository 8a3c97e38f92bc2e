"""TensorFlow's fused BatchNorm kernels for the TensorFlow training engine.

Keras 3 computes BatchNormalization on TensorFlow from separate ops (mean, variance, scale, shift, and
as many again for the gradient). TensorFlow's ``FusedBatchNormV3`` does the forward pass in one kernel
and the backward pass in one more. With oneDNN on one CPU core this raises ResNet-20 training at batch
128 from 159 to 195 images/s (``benchmarks/bench_vs_torch.py``, ``tf_keras_bn`` against ``tf``; README).

:func:`use_fused_batch_norm` switches the BatchNormalization layers of one model (the engine's own,
never saved as a ``.keras`` file) to the fused kernels. It changes how the layer computes, not what:
the same variables, the same moving-average update (Keras's momentum convention and its biased batch
variance; the fused kernel's Bessel-corrected variance is converted back), float32 statistics for
bfloat16/float16 inputs as Keras does (the kernel computes them in float32 inside), and outputs equal to Keras's within float32 rounding
(``tests/training/test_fused_batchnorm.py``). Layers the fused kernel cannot express (masks,
synchronized statistics, renormalisation, an axis other than the channels-last one) keep Keras's code.
"""

from __future__ import annotations

import types

import keras
import tensorflow as tf

from . import modeling

_EMPTY = ()


def _fusable(layer) -> bool:
    return (
        isinstance(layer, keras.layers.BatchNormalization)
        and not layer.synchronized
        and not layer.renorm
        and len(layer.input.shape) == 4
        and layer.axis in (-1, 3)
    )


def _fused_call(self, inputs, training=None, mask=None):
    if mask is not None:
        return type(self).call(self, inputs, training=training, mask=mask)
    # Keras normalises float16/bfloat16 inputs in float32 and rounds the result back. The fused kernel
    # does the same inside for half-precision inputs (statistics, scale and offset in float32), so
    # they go in as they are: no cast ops around every BN, and oneDNN's bfloat16 kernel on CPUs that have one.
    x = inputs if inputs.dtype in (tf.bfloat16, tf.float16) else tf.cast(inputs, tf.float32)
    channels = x.shape[-1]
    # Explicit casts: under a mixed policy Keras may hand out float32 variables in the compute dtype.
    gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels], tf.float32)
    beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels], tf.float32)
    if training and self.trainable:
        y, batch_mean, corrected_variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=x, scale=gamma, offset=beta, mean=tf.constant(_EMPTY, tf.float32),
            variance=tf.constant(_EMPTY, tf.float32), epsilon=self.epsilon, exponential_avg_factor=1.0,
            data_format="NHWC", is_training=True,
        )
        # The kernel returns the unbiased (n - 1) variance; Keras averages the biased one.
        count = tf.cast(tf.size(x) // channels, tf.float32)
        batch_variance = corrected_variance * ((count - 1.0) / count)
        momentum = self.momentum
        self.moving_mean.assign(self.moving_mean * momentum + tf.stop_gradient(batch_mean) * (1.0 - momentum))
        self.moving_variance.assign(
            self.moving_variance * momentum + tf.stop_gradient(batch_variance) * (1.0 - momentum)
        )
    else:
        y, _, _, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=x, scale=gamma, offset=beta, mean=tf.cast(self.moving_mean, tf.float32),
            variance=tf.cast(self.moving_variance, tf.float32), epsilon=self.epsilon, data_format="NHWC",
            is_training=False,
        )
    return tf.cast(y, self.compute_dtype)


def use_fused_batch_norm(model: keras.Model) -> int:
    """Make every fusable BatchNormalization layer of `model` run TensorFlow's fused kernels.

    Only for the TensorFlow backend, and only for models that are trained and read as weights (the
    layers keep their class, so a ``.keras`` file of the model would still name Keras's layer, but the
    switch lives on the instances and is not saved). Returns how many layers were switched.
    """
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "use_fused_batch_norm needs the TensorFlow backend (it calls TensorFlow's FusedBatchNormV3). "
            f"Received: keras.backend.backend()={keras.backend.backend()!r}"
        )
    switched = 0
    for layer in modeling.all_layers(model):
        if _fusable(layer):
            layer.call = types.MethodType(_fused_call, layer)
            switched += 1
    return switched
