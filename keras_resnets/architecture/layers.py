"""Custom Keras layers used by the ResNet builder (serialisable, backend-agnostic)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_resnets")
class ZeroPadShortcut(keras.layers.Layer):
    """The paper's parameter-free shortcut, option A (section 3.3).

    Subsamples the input spatially (``x[:, ::stride, ::stride, :]``) and pads the channel axis with zeros
    up to ``filters``, splitting the padding evenly between both sides (the extra channel, if the
    difference is odd, goes last). For the usual doubling of width this pads ``filters // 4`` channels on
    each side, which is what the widely used CIFAR reference implementation does.

    Args:
        filters: number of output channels; must be >= the input channels.
        stride: spatial subsampling factor.
    """

    def __init__(self, filters: int, stride: int = 2, **kwargs):
        super().__init__(**kwargs)
        if filters < 1:
            raise ValueError(f"`filters` must be >= 1. Received: filters={filters}")
        if stride < 1:
            raise ValueError(f"`stride` must be >= 1. Received: stride={stride}")
        self.filters = int(filters)
        self.stride = int(stride)

    def _channel_padding(self, in_channels: int):
        extra = self.filters - in_channels
        if extra < 0:
            raise ValueError(
                f"ZeroPadShortcut cannot reduce channels: input has {in_channels}, `filters`={self.filters}."
            )
        return extra // 2, extra - extra // 2

    def build(self, input_shape):
        self._channel_padding(input_shape[-1])
        super().build(input_shape)

    def call(self, inputs):
        x = inputs[:, :: self.stride, :: self.stride, :] if self.stride > 1 else inputs
        before, after = self._channel_padding(inputs.shape[-1])
        if before or after:
            x = ops.pad(x, [[0, 0], [0, 0], [0, 0], [before, after]])
        return x

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape

        def subsample(size):
            return None if size is None else -(-size // self.stride)

        return (batch, subsample(height), subsample(width), self.filters)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "stride": self.stride})
        return config
