"""The one generic builder behind every model of the zoo.

Layer names follow torchvision's state-dict keys one-to-one (``conv1``, ``bn1``, ``layer2.0.conv1``,
``layer2.0.downsample.0``, ``fc``, ...), so weight conversion is a name lookup. Every strided convolution
and the stem max-pool get explicit symmetric zero padding followed by ``"valid"`` padding, because
Keras ``"same"`` pads asymmetrically at stride 2 while PyTorch pads symmetrically; stride-1 3x3
convolutions use ``"same"``, which is symmetric there.
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

import keras
from keras import layers

from keras_resnets.architecture import specs as specs_lib
from keras_resnets.architecture.identity import Architecture
from keras_resnets.architecture.layers import ZeroPadShortcut
from keras_resnets.architecture.specs import ResNetSpec

BN_EPSILON = 1e-5  # PyTorch's default, so converted weights reproduce their source.
BN_MOMENTUM = 0.9  # Keras convention for PyTorch's momentum=0.1.
POOLING_OPTIONS = (None, "avg", "max")


def conv_initializer():
    """He-normal initialisation (paper ref. [13]), fan-out mode as in torchvision."""
    return keras.initializers.VarianceScaling(scale=2.0, mode="fan_out", distribution="untruncated_normal")


class _LayerFactory:
    """Creates the conv/BN layers of one model with shared numerics options."""

    def __init__(self, synchronized_bn: bool):
        self.synchronized_bn = synchronized_bn

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
            kernel_initializer=conv_initializer(),
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
        return ZeroPadShortcut(out_channels, stride, name=f"{prefix}.shortcut")(x)
    return x


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


def default_model_name(spec: ResNetSpec, residual: bool) -> str:
    """The registry-style base name of a spec: ``resnet50``, ``plain56``, ..."""
    return f"{'resnet' if residual else 'plain'}{spec.depth}"


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
        shape = tuple(input_shape)
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


def build_resnet(
    spec: ResNetSpec,
    *,
    residual: bool = True,
    shortcut: Optional[str] = None,
    downsample: str = "conv3x3",
    include_top: bool = True,
    weights=None,
    input_tensor=None,
    input_shape: Optional[Sequence[Optional[int]]] = None,
    pooling: Optional[str] = None,
    classes: Optional[int] = None,
    classifier_activation="softmax",
    name: Optional[str] = None,
    zero_init_last_bn: bool = False,
    synchronized_bn: bool = False,
    include_preprocessing: bool = False,
) -> keras.Model:
    """Build a ResNet (or its plain counterpart) from a spec as a Keras functional model.

    Args:
        spec: the architecture, e.g. ``imagenet_spec(50)`` or ``cifar_spec(56)`` or a custom ResNetSpec.
        residual: True for a ResNet; False for the paper's plain net (same layers, no shortcuts).
        shortcut: the paper's shortcut option (section 3.3): "A" zero-padding identity (parameter-free),
            "B" projection only where dimensions change, "C" projection everywhere. Defaults to the
            spec's (A for CIFAR, B for ImageNet). Ignored by plain nets.
        downsample: where a bottleneck block strides: "conv3x3" (torchvision/timm "v1.5", needed by
            the published ImageNet weights) or "conv1x1" (the paper's original layout).
        include_top: whether to add global average pooling and the classifier.
        weights: None (random init), or a pretrained weight specification resolved by
            :func:`keras_resnets.weights.load_weights` (a tag such as "imagenet", ``hf://owner/repo``,
            or a local file).
        input_tensor: optional Keras tensor to use as the image input.
        input_shape: (height, width, channels); defaults to the spec's input shape with the top, and
            to (None, None, 3) without it.
        pooling: with ``include_top=False``: None (4D feature map), "avg" or "max" (2D features).
        classes: number of classes for the classifier; defaults to the spec's.
        classifier_activation: activation of the classifier ("softmax", None for logits, ...). Under a
            mixed-precision policy the classifier computes in float32.
        name: model name; defaults to a unique ``resnet50``/``plain56``-style name.
        zero_init_last_bn: start each residual branch's last BN scale at zero (Goyal et al. 2017).
        synchronized_bn: use cross-replica BatchNormalization under a distribution strategy.
        include_preprocessing: put the weights' preprocessing inside the model: the input is then RGB
            0..255 of any size (default input shape (None, None, 3)), resized and centre-cropped as the
            weights were evaluated (shorter side to input size / crop_pct, antialiased, centre crop)
            and normalised with their mean/std.

    Returns:
        A ``keras.Model``.
    """
    if not isinstance(spec, ResNetSpec):
        raise ValueError(f"`spec` must be a ResNetSpec. Received: spec={spec!r}")
    shortcut = spec.default_shortcut if shortcut is None else shortcut
    if isinstance(shortcut, str):
        shortcut = shortcut.upper()
    _choice("shortcut", shortcut, specs_lib.SHORTCUT_OPTIONS)
    _choice("downsample", downsample, specs_lib.DOWNSAMPLE_MODES)
    _choice("pooling", pooling, POOLING_OPTIONS)
    classes = spec.default_classes if classes is None else classes
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ValueError(f"`classes` must be an integer >= 1. Received: classes={classes!r}")
    if keras.config.image_data_format() != "channels_last":
        raise ValueError(
            "keras_resnets builds channels-last models only. Received: "
            f"keras.config.image_data_format()={keras.config.image_data_format()!r}"
        )
    if classifier_activation is not None:
        keras.activations.get(classifier_activation)  # Raises ValueError on an unknown activation.

    _ensure_recursion_headroom(spec)
    if include_preprocessing and input_shape is None and input_tensor is None:
        input_shape = (None, None, spec.default_input_shape[-1])
    img_input, model_inputs, shape = _resolve_input(spec, include_top, input_tensor, input_shape)
    x = img_input
    if include_preprocessing:
        from keras_resnets.data import preprocessing as preprocessing_lib

        preprocessing = preprocessing_lib.model_preprocessing(Architecture(spec, residual), weights)
        for layer in preprocessing_lib.preprocessing_layers(preprocessing):
            x = layer(x)
        shape = (*preprocessing.input_size, shape[-1])
    _validate_shape(spec, shape, include_top, weights)

    make = _LayerFactory(synchronized_bn)
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
                residual,
                shortcut,
                downsample,
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

    model = keras.Model(model_inputs, x, name=name or _unique_name(default_model_name(spec, residual)))
    if weights is not None:
        from keras_resnets.weights import load_weights  # Imported lazily: keeps model building free of Hub code.

        load_weights(
            model,
            weights,
            spec=spec,
            residual=residual,
            shortcut=shortcut,
            downsample=downsample,
            include_top=include_top,
            classes=classes,
        )
    return model
