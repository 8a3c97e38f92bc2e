"""``build_resnet``: the public builder. The graph (:mod:`keras_resnets.architecture.graph`), then the
optional evaluation transform in front of it (``include_preprocessing=True``), then pretrained weights."""

from __future__ import annotations

from typing import Optional, Sequence

import keras

from keras_resnets.architecture import graph
from keras_resnets.architecture import specs as specs_lib
from keras_resnets.architecture.identity import Architecture
from keras_resnets.architecture.specs import ResNetSpec
from keras_resnets.data import preprocessing as preprocessing_lib
from keras_resnets.weights import catalog
from keras_resnets.weights.loader import load_weights


def _choice(argument, value, accepted):
    if value not in accepted:
        raise ValueError(f"`{argument}` must be one of {tuple(accepted)}. Received: {argument}={value!r}")
    return value


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
        include_preprocessing: put the weights' evaluation transform inside the model: the input is then
            RGB 0..255 of any size (default input shape (None, None, 3)); the shorter side is resized to
            ``floor(input_size / crop_pct)`` (antialiased), the centre ``input_size`` square cropped and
            normalised with the weights' mean/std, exactly as the weights were evaluated.

    Returns:
        A ``keras.Model``.
    """
    if not isinstance(spec, ResNetSpec):
        raise ValueError(f"`spec` must be a ResNetSpec. Received: spec={spec!r}")
    for argument, value in (("residual", residual), ("include_top", include_top),
                            ("zero_init_last_bn", zero_init_last_bn), ("synchronized_bn", synchronized_bn),
                            ("include_preprocessing", include_preprocessing)):
        graph.check_bool(argument, value)
    input_shape = graph.normalize_input_shape(input_shape)
    if isinstance(shortcut, str):
        shortcut = shortcut.upper()
    if shortcut is not None:
        _choice("shortcut", shortcut, specs_lib.SHORTCUT_OPTIONS)
    _choice("downsample", downsample, specs_lib.DOWNSAMPLE_MODES)
    architecture = Architecture(spec, residual, shortcut, downsample)

    input_layers, network_input_size = (), None
    if include_preprocessing:
        preprocessing = preprocessing_lib.model_preprocessing(architecture, weights)
        input_layers = preprocessing_lib.preprocessing_layers(preprocessing)
        network_input_size = preprocessing.input_size
        if input_shape is None and input_tensor is None:
            input_shape = (None, None, spec.default_input_shape[-1])
    model = graph.build_graph(
        architecture,
        include_top=include_top,
        input_tensor=input_tensor,
        input_shape=input_shape,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        name=name,
        zero_init_last_bn=zero_init_last_bn,
        synchronized_bn=synchronized_bn,
        input_layers=input_layers,
        network_input_size=network_input_size,
        weights_for_errors=weights,
        # Loading pretrained weights sets every convolution (a mismatch raises), so skip their random draw.
        random_kernels=weights is None,
    )
    if weights is not None:
        load_weights(model, weights, architecture=architecture)
    return model
