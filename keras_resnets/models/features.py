"""Backbones for dense tasks: every stage's feature map of any zoo model, with pretrained weights.

Detection and segmentation heads (FPN, U-Net, DeepLab decoders) read the output of several stages.
:func:`feature_extractor` builds a zoo model without its classifier, loads the weights, and returns a
``keras.Model`` whose outputs are a dict of those stage outputs keyed by pyramid level:

* ``"P{level}"`` has stride ``2 ** level`` to the input (keras-hub's ``pyramid_outputs`` convention);
* ImageNet nets: ``P1`` stem ReLU (stride 2, 64 channels), ``P2``..``P5`` the outputs of ``layer1``..``layer4``
  (strides 4, 8, 16, 32; 64/128/256/512 channels for basic blocks, 4x that for bottlenecks);
* CIFAR nets: ``P0``..``P2`` the outputs of ``layer1``..``layer3`` (strides 1, 2, 4; 16/32/64 channels).

:func:`feature_info` states the same without building anything (timm's ``feature_info``). Spatial sizes
are ``ceil(input / stride)``, so any input size at least the network's total stride works.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence, Union

import keras

from keras_resnets.architecture.specs import ResNetSpec
from keras_resnets.models.registry import model_entry

# Builder arguments that would change what the feature maps mean or where they are taken from.
_REFUSED_KWARGS = ("include_top", "pooling", "classes", "classifier_activation", "include_preprocessing")


@dataclasses.dataclass(frozen=True)
class FeatureInfo:
    """One feature map a backbone offers.

    Attributes:
        name: output key, ``"P{level}"``.
        level: pyramid level; the stride to the input is ``2 ** level``.
        layer: name of the Keras layer whose output it is (the same layer in the classifier model).
        channels: number of channels.
        stride: downsampling factor to the network input.
        stage: 0 for the stem, i for ``layer{i}`` (torchvision's stage numbering).
    """

    name: str
    level: int
    layer: str
    channels: int
    stride: int
    stage: int

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return dataclasses.asdict(self)


def spec_feature_info(spec: ResNetSpec) -> List[FeatureInfo]:
    """Every feature map a model of `spec` offers, shallowest first."""
    infos = []
    if spec.stem == "imagenet":
        # The stem ReLU is the last stride-2 map; the max-pool output equals layer1's stride.
        infos.append(FeatureInfo("P1", 1, "relu", spec.stem_filters, 2, 0))
    stride = 4 if spec.stem == "imagenet" else 1
    for index, (blocks, filters) in enumerate(zip(spec.stage_blocks, spec.stage_filters)):
        if index > 0:
            stride *= 2
        level = stride.bit_length() - 1
        infos.append(FeatureInfo(f"P{level}", level, f"layer{index + 1}.{blocks - 1}.out",
                                 filters * spec.expansion, stride, index + 1))
    return infos


def feature_info(model: str, levels: Optional[Sequence[Union[int, str]]] = None) -> List[FeatureInfo]:
    """The feature maps of the registered model `model` (all, or the chosen `levels`), shallowest first.

    Args:
        model: a registry name such as "resnet50" or "plain20".
        levels: pyramid levels as integers (2) or names ("P2"); default: every stage output
            (ImageNet P2..P5, CIFAR P0..P2; the ImageNet stem map P1 only when asked for).

    Raises:
        ValueError: an unknown model or a level the model does not offer (the offered ones are listed).
    """
    infos = spec_feature_info(model_entry(model).spec)
    if levels is None:
        return [info for info in infos if info.stage > 0]
    if isinstance(levels, (str, int)) or not isinstance(levels, Sequence) or not levels:
        raise ValueError(
            "`levels` must be a non-empty list of pyramid levels such as (2, 3, 4, 5) or ('P2', 'P3'). "
            f"Received: levels={levels!r}"
        )
    by_level = {info.level: info for info in infos}
    chosen = []
    for level in levels:
        number = level
        if isinstance(level, str) and level.upper().startswith("P") and level[1:].isdigit():
            number = int(level[1:])
        if isinstance(number, bool) or not isinstance(number, int) or number not in by_level:
            raise ValueError(
                f"`levels` holds a level {model!r} does not offer. Offered: "
                f"{[f'P{info.level}' for info in infos]} (level L has stride 2**L). Received: levels={levels!r}"
            )
        if by_level[number] in chosen:
            raise ValueError(f"`levels` names level P{number} twice. Received: levels={levels!r}")
        chosen.append(by_level[number])
    return sorted(chosen, key=lambda info: info.level)


def feature_extractor(
    model: str,
    weights=None,
    levels: Optional[Sequence[Union[int, str]]] = None,
    *,
    input_shape: Optional[Sequence[Optional[int]]] = None,
    input_tensor=None,
    as_list: bool = False,
    name: Optional[str] = None,
    **kwargs,
) -> keras.Model:
    """A Keras model returning the chosen stage outputs of the registered model `model`.

    The layers, names and weights are those of ``get_model(model, include_top=False, weights=weights)``,
    so each output equals the matching intermediate activation of the classifier built with the same
    weights. Layers after the deepest chosen level are left out. The model trains like any other (use
    it in a functional head, freeze it with ``trainable = False``, fine-tune it end to end).

    Args:
        model: a registry name ("resnet50", "plain34", "resnet20", ...).
        weights: anything the builders accept: None, a tag ("imagenet", "cifar10"), ``hf://owner/repo``,
            or a weights file.
        levels: which maps (see :func:`feature_info`); default every stage output.
        input_shape: (height, width, 3); default (None, None, 3), any size >= the total stride.
        input_tensor: optional Keras tensor to use as the image input.
        as_list: return a list of maps (shallowest first) instead of a dict keyed "P2", "P3", ...
        name: model name; default ``"{model}_features"``.
        **kwargs: other builder options (shortcut, downsample, synchronized_bn, zero_init_last_bn).

    Returns:
        A ``keras.Model`` with a ``feature_info`` attribute (a tuple of :class:`FeatureInfo`) describing
        its outputs in order. Inputs are normalised images, as for the classifier
        (:func:`keras_resnets.preprocess_input`).
    """
    for key in _REFUSED_KWARGS:
        if key in kwargs:
            raise ValueError(
                f"`{key}` does not apply to a feature extractor (it has no classifier or pooling and takes "
                f"normalised images so that strides are relative to its input). Received: {key}={kwargs[key]!r}"
            )
    infos = feature_info(model, levels)
    entry = model_entry(model)
    if input_shape is None and input_tensor is None:
        input_shape = (None, None, entry.spec.default_input_shape[-1])
    backbone = entry.builder(include_top=False, weights=weights, input_shape=input_shape,
                             input_tensor=input_tensor, **kwargs)
    outputs = [backbone.get_layer(info.layer).output for info in infos]
    if not as_list:
        outputs = {info.name: output for info, output in zip(infos, outputs)}
    inputs = backbone.inputs[0] if len(backbone.inputs) == 1 else backbone.inputs
    extractor = keras.Model(inputs, outputs, name=name or f"{entry.name}_features")
    extractor.feature_info = tuple(infos)
    return extractor


def feature_shapes(model: str, input_size: Sequence[int], levels=None) -> Dict[str, tuple]:
    """``{"P2": (height, width, channels), ...}`` of `model`'s maps for an input of `input_size` (h, w)."""
    height, width = (int(s) for s in input_size)
    return {info.name: (-(-height // info.stride), -(-width // info.stride), info.channels)
            for info in feature_info(model, levels)}
