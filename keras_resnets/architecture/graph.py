"""The pure graph builder behind every model of the zoo: an :class:`Architecture` in, a Keras model out.

No I/O and no weights here (see :mod:`keras_resnets.models.builder` for the public ``build_resnet``).
Layer names follow torchvision's state-dict keys one-to-one (``conv1``, ``bn1``, ``layer2.0.conv1``,
``layer2.0.downsample.0``, ``fc``, ...), so weight conversion is a name lookup. Every strided convolution
and the stem max-pool get explicit symmetric zero padding followed by ``"valid"`` padding, because
Keras ``"same"`` pads asymmetrically at stride 2 while PyTorch pads symmetrically; stride-1 3x3
convolutions use ``"same"``, which is symmetric there. Only standard Keras layers are used, so a saved
``.keras`` file loads with ``keras.saving.load_model`` in a process that never imported keras_resnets.
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

import keras
import numpy as np
from keras import layers

from keras_resnets.architecture.identity import Architecture
from keras_resnets.architecture.specs import ResNetSpec

BN_EPSILON = 1e-5  # PyTorch's default, so converted weights reproduce their source.
BN_MOMENTUM = 0.9  # Keras convention for PyTorch's momentum=0.1.
POOLING_OPTIONS = (None, "avg", "max")


def conv_initializer():
    """He-normal initialisation (paper ref. [13]), fan-out mode as in torchvision."""
    return keras.initializers.VarianceScaling(scale=2.0, mode="fan_out", distribution="untruncated_normal")


class _LayerFactory:
    """Creates the conv/BN layers of one model with shared numerics options."""

    def __init__(self, synchronized_bn: bool, random_kernels: bool = True):
        self.synchronized_bn = synchronized_bn
        self.random_kernels = random_kernels

    def conv(self, x, filters, kernel_size, stride, name):
        if stride > 1 and kernel_size > 1:
            x = layers.ZeroPadding2D(padding=kernel_size // 2, name=f"{name}_pad")(x)
            padding = "valid"
        else:
            padding = "same" if kernel_size > 1 else "valid"
        return layers.Conv2D(
            filters,
            kernel_size,
            strides=stride,
            padding=padding,
            use_bias=False,
            kernel_initializer=conv_initializer() if self.random_kernels else "zeros",
            name=name,
        )(x)

    def batch_norm(self, x, name, zero_gamma=False):
        return layers.BatchNormalization(
            axis=-1,
            epsilon=BN_EPSILON,
            momentum=BN_MOMENTUM,
            gamma_initializer="zeros" if zero_gamma else "ones",
            synchronized=self.synchronized_bn,
            name=name,
        )(x)


def _shortcut(make, x, out_channels, stride, option, prefix):
    """The shortcut branch of a block, or None when it is the identity."""
    in_channels = x.shape[-1]
    needs_change = stride != 1 or in_channels != out_channels
    if option == "C" or (option == "B" and needs_change):
        s = make.conv(x, out_channels, 1, stride, f"{prefix}.downsample.0")
        return make.batch_norm(s, f"{prefix}.downsample.1")
    if option == "A" and needs_change:
        return _zero_pad_shortcut(x, out_channels, stride, prefix)
    return x


def _zero_pad_shortcut(x, out_channels, stride, prefix):
    """Option A from standard Keras layers: ``x[:, ::stride, ::stride, :]`` then zero channels on both sides.

    A 1x1 average pool with stride `stride` is exactly the subsampling (a max-pool would be too, but its
    gradient has no deterministic XLA kernel, which deterministic TF training with XLA needs). Keras has no channel-padding layer, so
    the channels are moved to a spatial axis, padded by ``ZeroPadding2D`` and moved back; for a doubling
    of width that pads ``filters // 4`` channels on each side, as the CIFAR reference implementation does
    (an odd difference puts the extra channel last). The last layer keeps the name ``<block>.shortcut``.
    """
    extra = out_channels - x.shape[-1]
    if extra < 0:
        raise ValueError(f"An option-A shortcut cannot reduce channels: {x.shape[-1]} -> {out_channels} at {prefix}.")
    if stride > 1:
        x = layers.AveragePooling2D(pool_size=1, strides=stride, padding="valid", name=f"{prefix}.shortcut.subsample")(x)
    x = layers.Permute((3, 1, 2), name=f"{prefix}.shortcut.channels_to_rows")(x)
    x = layers.ZeroPadding2D(((extra // 2, extra - extra // 2), (0, 0)), data_format="channels_last",
                             name=f"{prefix}.shortcut.pad")(x)
    return layers.Permute((2, 3, 1), name=f"{prefix}.shortcut")(x)


def _basic_block(make, x, filters, stride, residual, shortcut, downsample, zero_init_last_bn, prefix):
    del downsample  # Both 3x3 convs are the same size, so the stride always sits on the first.
    y = make.conv(x, filters, 3, stride, f"{prefix}.conv1")
    y = make.batch_norm(y, f"{prefix}.bn1")
    y = layers.ReLU(name=f"{prefix}.relu1")(y)
    y = make.conv(y, filters, 3, 1, f"{prefix}.conv2")
    y = make.batch_norm(y, f"{prefix}.bn2", zero_gamma=zero_init_last_bn and residual)
    if residual:
        y = layers.Add(name=f"{prefix}.add")([_shortcut(make, x, filters, stride, shortcut, prefix), y])
    return layers.ReLU(name=f"{prefix}.out")(y)


def _bottleneck_block(make, x, filters, stride, residual, shortcut, downsample, zero_init_last_bn, prefix):
    out_channels = filters * 4
    stride_1x1, stride_3x3 = (stride, 1) if downsample == "conv1x1" else (1, stride)
    y = make.conv(x, filters, 1, stride_1x1, f"{prefix}.conv1")
    y = make.batch_norm(y, f"{prefix}.bn1")
    y = layers.ReLU(name=f"{prefix}.relu1")(y)
    y = make.conv(y, filters, 3, stride_3x3, f"{prefix}.conv2")
    y = make.batch_norm(y, f"{prefix}.bn2")
    y = layers.ReLU(name=f"{prefix}.relu2")(y)
    y = make.conv(y, out_channels, 1, 1, f"{prefix}.conv3")
    y = make.batch_norm(y, f"{prefix}.bn3", zero_gamma=zero_init_last_bn and residual)
    if residual:
        y = layers.Add(name=f"{prefix}.add")([_shortcut(make, x, out_channels, stride, shortcut, prefix), y])
    return layers.ReLU(name=f"{prefix}.out")(y)


_BLOCKS = {"basic": _basic_block, "bottleneck": _bottleneck_block}


def _stem(make, x, spec: ResNetSpec):
    if spec.stem == "imagenet":
        x = make.conv(x, spec.stem_filters, 7, 2, "conv1")
        x = make.batch_norm(x, "bn1")
        x = layers.ReLU(name="relu")(x)
        # Zero padding equals PyTorch's -inf padding here because the input is post-ReLU (>= 0).
        x = layers.ZeroPadding2D(padding=1, name="maxpool_pad")(x)
        return layers.MaxPooling2D(pool_size=3, strides=2, padding="valid", name="maxpool")(x)
    x = make.conv(x, spec.stem_filters, 3, 1, "conv1")
    x = make.batch_norm(x, "bn1")
    return layers.ReLU(name="relu")(x)


def _ensure_recursion_headroom(spec: ResNetSpec) -> None:
    """Keras walks the layer graph recursively (build, get_config, save); ResNet-1202 has ~3,600 layers.

    The limit is raised for the process, not only during the build, because saving, cloning and
    ``from_config`` of the model walk the same graph later.
    """
    needed = 2000 + 12 * spec.depth * 3
    if sys.getrecursionlimit() < needed:
        sys.setrecursionlimit(needed)


def _choice(argument, value, accepted):
    if value not in accepted:
        raise ValueError(f"`{argument}` must be one of {tuple(accepted)}. Received: {argument}={value!r}")
    return value


def check_bool(argument: str, value) -> bool:
    """`value` as a bool if it is one (Python or NumPy); else ValueError naming `argument`.

    ``bool()`` would turn "False", 0.5 or an array into a flag, so only real flags are accepted.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"`{argument}` must be True or False. Received: {argument}={value!r}")
    return bool(value)


def _check_int(argument: str, value, lowest: int = 1) -> int:
    """An int (Python or NumPy, not bool) >= `lowest`, as a Python int."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < lowest:
        raise ValueError(f"`{argument}` must be an integer >= {lowest}. Received: {argument}={value!r}")
    return int(value)


def normalize_input_shape(input_shape):
    """`input_shape` as a tuple of Python ints/None: (height, width, channels), channels >= 1, sizes >= 1."""
    if input_shape is None:
        return None
    if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, (tuple, list, np.ndarray)):
        raise ValueError(
            "`input_shape` must be a tuple (height, width, channels), e.g. (32, 32, 3) or (None, None, 3). "
            f"Received: input_shape={input_shape!r}"
        )
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise ValueError(
            "`input_shape` must be (height, width, channels) in channels-last layout. "
            f"Received: input_shape={input_shape!r}"
        )
    normalized = []
    for size in shape:
        if size is None:
            normalized.append(None)
        elif isinstance(size, (bool, np.bool_)) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(
                "Every entry of `input_shape` must be None or an integer >= 1 (channels: >= 1). "
                f"Received: input_shape={input_shape!r}"
            )
        else:
            normalized.append(int(size))
    return tuple(normalized)


def _unique_name(base: str) -> str:
    uid = keras.backend.get_uid(f"keras_resnets/{base}")
    return base if uid == 1 else f"{base}_{uid - 1}"


def _resolve_input(spec, include_top, input_tensor, input_shape):
    if input_tensor is not None:
        if not keras.backend.is_keras_tensor(input_tensor):
            raise ValueError(
                "`input_tensor` must be a Keras tensor (e.g. from keras.Input). "
                f"Received: input_tensor={input_tensor!r}"
            )
        shape = tuple(input_tensor.shape[1:])
        if input_shape is not None and tuple(input_shape) != shape:
            raise ValueError(
                f"`input_shape` {tuple(input_shape)} does not match `input_tensor` shape {shape}. "
                f"Received: input_shape={input_shape!r}"
            )
        return input_tensor, keras.utils.get_source_inputs(input_tensor), shape
    if input_shape is None:
        shape = spec.default_input_shape if include_top else (None, None, spec.default_input_shape[-1])
    else:
        shape = input_shape
    img_input = layers.Input(shape=shape, name="input")
    return img_input, img_input, shape


def _validate_shape(spec, shape, include_top, weights):
    if len(shape) != 3:
        raise ValueError(
            "`input_shape` must be (height, width, channels) in channels-last layout. "
            f"Received: input_shape={shape!r}"
        )
    height, width, channels = shape
    if channels is None:
        raise ValueError(f"The channel dimension of `input_shape` must be known. Received: input_shape={shape!r}")
    if weights is not None and channels != 3:
        raise ValueError(
            "Pretrained weights expect 3 input channels (RGB). "
            f"Received: input_shape={shape!r} with weights={weights!r}"
        )
    if include_top and (height is None or width is None):
        raise ValueError(
            "`include_top=True` needs known spatial dimensions; pass a full `input_shape` such as "
            f"{spec.default_input_shape}, or use include_top=False with `pooling`. Received: input_shape={shape!r}"
        )
    for size in (height, width):
        if size is not None and size < spec.total_stride:
            raise ValueError(
                f"Input is smaller than this network can take: height and width must be >= "
                f"{spec.total_stride} for {spec.family} ResNets. Received: input_shape={shape!r}"
            )




def build_graph(
    architecture: Architecture,
    *,
    include_top: bool = True,
    input_tensor=None,
    input_shape: Optional[Sequence[Optional[int]]] = None,
    pooling: Optional[str] = None,
    classes: Optional[int] = None,
    classifier_activation="softmax",
    name: Optional[str] = None,
    zero_init_last_bn: bool = False,
    synchronized_bn: bool = False,
    input_layers: Sequence[layers.Layer] = (),
    network_input_size: Optional[Sequence[int]] = None,
    weights_for_errors=None,
    random_kernels: bool = True,
) -> keras.Model:
    """Build the Keras functional model of `architecture` with random weights.

    Args:
        architecture: which network (spec, residual or plain, shortcut option, stride placement).
        include_top, input_tensor, input_shape, pooling, classes, classifier_activation, name: as in
            ``keras.applications`` (see :func:`keras_resnets.build_resnet`).
        zero_init_last_bn: start each residual branch's last BN scale at zero.
        synchronized_bn: cross-replica BatchNormalization under a distribution strategy.
        input_layers: layers applied to the image input before the stem (e.g. the evaluation transform
            of ``include_preprocessing=True``); `network_input_size` is then the (height, width) they output.
        weights_for_errors: the caller's `weights` argument, only quoted in error messages.
        random_kernels: False when pretrained weights will overwrite every convolution kernel: drawing
            millions of He-normal values that are thrown away is a large part of a build's cost.
    """
    spec = architecture.spec
    _choice("pooling", pooling, POOLING_OPTIONS)
    include_top = check_bool("include_top", include_top)
    zero_init_last_bn = check_bool("zero_init_last_bn", zero_init_last_bn)
    synchronized_bn = check_bool("synchronized_bn", synchronized_bn)
    classes = _check_int("classes", spec.default_classes if classes is None else classes)
    input_shape = normalize_input_shape(input_shape)
    if keras.config.image_data_format() != "channels_last":
        raise ValueError(
            "keras_resnets builds channels-last models only. Received: "
            f"keras.config.image_data_format()={keras.config.image_data_format()!r}"
        )
    if classifier_activation is not None:
        keras.activations.get(classifier_activation)  # Raises ValueError on an unknown activation.

    _ensure_recursion_headroom(spec)
    img_input, model_inputs, shape = _resolve_input(spec, include_top, input_tensor, input_shape)
    x = img_input
    for layer in input_layers:
        x = layer(x)
    if network_input_size is not None:
        if isinstance(network_input_size, int):
            network_input_size = (network_input_size, network_input_size)
        shape = (*network_input_size, shape[-1])
    _validate_shape(spec, shape, include_top, weights_for_errors)

    make = _LayerFactory(synchronized_bn, random_kernels)
    block_fn = _BLOCKS[spec.block]
    x = _stem(make, x, spec)
    for stage_index, (num_blocks, filters) in enumerate(zip(spec.stage_blocks, spec.stage_filters)):
        for block_index in range(num_blocks):
            stride = 2 if stage_index > 0 and block_index == 0 else 1
            x = block_fn(
                make,
                x,
                filters,
                stride,
                architecture.residual,
                architecture.shortcut,
                architecture.downsample,
                zero_init_last_bn,
                prefix=f"layer{stage_index + 1}.{block_index}",
            )

    if include_top:
        x = layers.GlobalAveragePooling2D(name="avgpool")(x)
        head_dtype = "float32" if keras.config.dtype_policy().name.startswith("mixed") else None
        x = layers.Dense(classes, activation=classifier_activation, dtype=head_dtype, name="fc")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avgpool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="maxpool_global")(x)
    return keras.Model(model_inputs, x, name=name or _unique_name(architecture.name))
