"""Named builders for every network of the paper, keras.applications style.

Each public builder (``ResNet50``, ``PlainNet56``, ...) is a thin call of
:func:`keras_resnets.models.builder.build_resnet` with a spec from the table in :mod:`keras_resnets.architecture.specs`,
registered (in :mod:`keras_resnets.models.registry`) under a lowercase name (``resnet50``, ``plain56``).
"""

from __future__ import annotations

from keras_resnets.architecture import specs
from keras_resnets.architecture.identity import Architecture
from keras_resnets.models.builder import build_resnet
from keras_resnets.models.registry import PAPER_TOP1_ERROR, public_name  # noqa: F401 (re-exported)

_DOC_TEMPLATE = """Build {title}: {description}

    Same signature as ``keras.applications`` builders, plus the architecture options of
    :func:`keras_resnets.build_resnet`.

    Args:
        include_top: add global average pooling and the classifier (default True).
        weights: None (random init, default), "imagenet"/"cifar10" or another weight tag,
            ``"hf://owner/repo[@revision]"``, or a path to weights on disk.
        input_tensor: optional Keras tensor to use as the image input.
        input_shape: (height, width, 3); default {input_shape} with the top, (None, None, 3) without.
        pooling: None, "avg" or "max"; only used with ``include_top=False``.
        classes: number of classes (default {classes}).
        classifier_activation: activation of the classifier, "softmax" by default; None for logits.
        name: model name; defaults to a unique "{name}"-style name.
        **kwargs: architecture options (shortcut, downsample, zero_init_last_bn, synchronized_bn) and
            include_preprocessing (resize + normalisation inside the model; input RGB 0..255).

    Returns:
        A ``keras.Model``.
    """


def _make_builder(family: str, depth: int, residual: bool):
    architecture = Architecture(specs.spec_for(family, depth), residual)
    spec = architecture.spec
    registry_name = architecture.name
    builder_name = public_name(architecture)

    def builder(
        include_top=True,
        weights=None,
        input_tensor=None,
        input_shape=None,
        pooling=None,
        classes=None,
        classifier_activation="softmax",
        name=None,
        **kwargs,
    ):
        return build_resnet(
            spec,
            residual=residual,
            include_top=include_top,
            weights=weights,
            input_tensor=input_tensor,
            input_shape=input_shape,
            pooling=pooling,
            classes=classes,
            classifier_activation=classifier_activation,
            name=name,
            **kwargs,
        )

    kind = "residual network" if residual else "plain network (the paper's baseline: no shortcuts)"
    blocks = "+".join(str(n) for n in spec.stage_blocks)
    builder.__name__ = builder.__qualname__ = builder_name
    builder.__doc__ = _DOC_TEMPLATE.format(
        title=builder_name,
        description=f"the {depth}-layer {family} {kind}, {spec.block} blocks {blocks}.",
        input_shape=spec.default_input_shape,
        classes=spec.default_classes,
        name=registry_name,
    )
    return builder


ResNet18 = _make_builder("imagenet", 18, True)
ResNet34 = _make_builder("imagenet", 34, True)
ResNet50 = _make_builder("imagenet", 50, True)
ResNet101 = _make_builder("imagenet", 101, True)
ResNet152 = _make_builder("imagenet", 152, True)
ResNet20 = _make_builder("cifar", 20, True)
ResNet32 = _make_builder("cifar", 32, True)
ResNet44 = _make_builder("cifar", 44, True)
ResNet56 = _make_builder("cifar", 56, True)
ResNet110 = _make_builder("cifar", 110, True)
ResNet1202 = _make_builder("cifar", 1202, True)
PlainNet18 = _make_builder("imagenet", 18, False)
PlainNet34 = _make_builder("imagenet", 34, False)
PlainNet50 = _make_builder("imagenet", 50, False)
PlainNet101 = _make_builder("imagenet", 101, False)
PlainNet152 = _make_builder("imagenet", 152, False)
PlainNet20 = _make_builder("cifar", 20, False)
PlainNet32 = _make_builder("cifar", 32, False)
PlainNet44 = _make_builder("cifar", 44, False)
PlainNet56 = _make_builder("cifar", 56, False)
PlainNet110 = _make_builder("cifar", 110, False)
PlainNet1202 = _make_builder("cifar", 1202, False)


def ResNet(depth, family=None, residual=True, **kwargs):
    """Build any ResNet or plain net by depth: ImageNet depths 18/34/50/101/152, CIFAR depths 6n+2.

    Args:
        depth: number of weighted layers.
        family: "imagenet" or "cifar". When omitted, depths in the ImageNet table (18, 34, 50, 101,
            152) build ImageNet nets and any other 6n+2 depth builds a CIFAR net; pass
            ``family="cifar"`` for CIFAR depths 50 or 152.
        residual: False builds the plain counterpart.
        **kwargs: everything :func:`keras_resnets.build_resnet` takes.
    """
    if family is None:
        family = "imagenet" if depth in specs.IMAGENET_STAGE_TABLE else "cifar"
    return build_resnet(specs.spec_for(family, depth), residual=residual, **kwargs)
