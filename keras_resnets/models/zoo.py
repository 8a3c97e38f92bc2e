"""Named builders for every network of the paper, keras.applications style.

Each public builder (``ResNet50``, ``PlainNet56``, ...) is a thin call of
:func:`keras_resnets.models.builder.build_resnet` with a spec from the table in :mod:`keras_resnets.architecture.specs`,
registered under a lowercase name (``resnet50``, ``plain56``).
"""

from __future__ import annotations

from keras_resnets.architecture import specs
from keras_resnets.architecture.identity import Architecture
from keras_resnets.models.builder import build_resnet
from keras_resnets.models.registry import MODELS, ModelEntry

# The paper's top-1 error (%) for each named model. ImageNet: 10-crop validation error (Tables 2-3);
# CIFAR-10: test error (Table 6). None where the paper gives no number (plain CIFAR nets appear only
# as curves in Figure 6).
PAPER_TOP1_ERROR = {
    ("imagenet", 18, True): (27.88, "Table 2, 10-crop val"),
    ("imagenet", 34, True): (25.03, "Table 2, 10-crop val (option A)"),
    ("imagenet", 50, True): (22.85, "Table 3, 10-crop val"),
    ("imagenet", 101, True): (21.75, "Table 3, 10-crop val"),
    ("imagenet", 152, True): (21.43, "Table 3, 10-crop val"),
    ("imagenet", 18, False): (27.94, "Table 2, 10-crop val"),
    ("imagenet", 34, False): (28.54, "Table 2, 10-crop val"),
    ("cifar", 20, True): (8.75, "Table 6, test"),
    ("cifar", 32, True): (7.51, "Table 6, test"),
    ("cifar", 44, True): (7.17, "Table 6, test"),
    ("cifar", 56, True): (6.97, "Table 6, test"),
    ("cifar", 110, True): (6.43, "Table 6, test (best of 5)"),
    ("cifar", 1202, True): (7.93, "Table 6, test"),
}

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
    public_name = f"{'ResNet' if residual else 'PlainNet'}{depth}"

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
    builder.__name__ = builder.__qualname__ = public_name
    builder.__doc__ = _DOC_TEMPLATE.format(
        title=public_name,
        description=f"the {depth}-layer {family} {kind}, {spec.block} blocks {blocks}.",
        input_shape=spec.default_input_shape,
        classes=spec.default_classes,
        name=registry_name,
    )
    error, source = PAPER_TOP1_ERROR.get((family, depth, residual), (None, None))
    MODELS.register(
        ModelEntry(builder, architecture, error, source),
        aliases=(public_name,) if public_name.lower() != registry_name else (),
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
