"""Architecture specifications: one table drives every depth of the paper.

A :class:`ResNetSpec` is pure data. The builder in :mod:`keras_resnets.models.builder` turns any spec into a
Keras functional model, so adding a depth (or a custom stage layout) costs no model code.
"""

from __future__ import annotations

import dataclasses
from typing import Tuple

BLOCK_TYPES = ("basic", "bottleneck")
STEM_TYPES = ("imagenet", "cifar")
SHORTCUT_OPTIONS = ("A", "B", "C")
DOWNSAMPLE_MODES = ("conv3x3", "conv1x1")
FAMILIES = ("imagenet", "cifar")

# Paper Table 1: ImageNet depth -> (block type, blocks per stage).
IMAGENET_STAGE_TABLE = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
IMAGENET_STAGE_FILTERS = (64, 128, 256, 512)

# Paper section 4.2: CIFAR nets are 6n+2 layers deep, three stages of n basic blocks.
CIFAR_STAGE_FILTERS = (16, 32, 64)
CIFAR_PAPER_DEPTHS = (20, 32, 44, 56, 110, 1202)


@dataclasses.dataclass(frozen=True)
class ResNetSpec:
    """Everything that distinguishes one ResNet architecture from another.

    Attributes:
        family: "imagenet" or "cifar"; used for defaults and for naming.
        depth: number of weighted layers as the paper counts them.
        block: "basic" (two 3x3 convs) or "bottleneck" (1x1, 3x3, 1x1 with 4x expansion).
        stage_blocks: number of blocks in each stage.
        stage_filters: base width of each stage (bottleneck outputs are 4x this).
        stem: "imagenet" (7x7/2 conv + 3x3/2 max-pool) or "cifar" (3x3 conv, 16 filters).
        stem_filters: output channels of the stem convolution.
        default_shortcut: the paper's shortcut option used when the caller gives none.
        default_input_shape: input shape used when the caller gives none.
        default_classes: number of classes used when the caller gives none.
    """

    family: str
    depth: int
    block: str
    stage_blocks: Tuple[int, ...]
    stage_filters: Tuple[int, ...]
    stem: str
    stem_filters: int
    default_shortcut: str
    default_input_shape: Tuple[int, int, int]
    default_classes: int

    def __post_init__(self):
        if self.block not in BLOCK_TYPES:
            raise ValueError(f"`block` must be one of {BLOCK_TYPES}. Received: block={self.block!r}")
        if self.stem not in STEM_TYPES:
            raise ValueError(f"`stem` must be one of {STEM_TYPES}. Received: stem={self.stem!r}")
        if len(self.stage_blocks) != len(self.stage_filters) or not self.stage_blocks:
            raise ValueError(
                "`stage_blocks` and `stage_filters` must be non-empty and of equal length. "
                f"Received: stage_blocks={self.stage_blocks}, stage_filters={self.stage_filters}"
            )
        if any(n < 1 for n in self.stage_blocks):
            raise ValueError(f"Every stage needs at least one block. Received: stage_blocks={self.stage_blocks}")
        if self.default_shortcut not in SHORTCUT_OPTIONS:
            raise ValueError(
                f"`default_shortcut` must be one of {SHORTCUT_OPTIONS}. Received: {self.default_shortcut!r}"
            )

    @property
    def expansion(self) -> int:
        """Output channels of a block divided by its base width."""
        return 4 if self.block == "bottleneck" else 1

    @property
    def total_stride(self) -> int:
        """Spatial downsampling factor between the input and the last feature map."""
        stem_stride = 4 if self.stem == "imagenet" else 1
        return stem_stride * 2 ** (len(self.stage_blocks) - 1)

    @property
    def num_features(self) -> int:
        """Channels of the last feature map (the classifier's input width)."""
        return self.stage_filters[-1] * self.expansion


def imagenet_spec(depth: int) -> ResNetSpec:
    """Return the spec of the ImageNet ResNet of the given depth (18, 34, 50, 101 or 152)."""
    if depth not in IMAGENET_STAGE_TABLE:
        raise ValueError(
            f"Unknown ImageNet ResNet depth. Accepted depths: {sorted(IMAGENET_STAGE_TABLE)}. "
            f"Received: depth={depth!r}"
        )
    block, stage_blocks = IMAGENET_STAGE_TABLE[depth]
    return ResNetSpec(
        family="imagenet",
        depth=depth,
        block=block,
        stage_blocks=stage_blocks,
        stage_filters=IMAGENET_STAGE_FILTERS,
        stem="imagenet",
        stem_filters=64,
        default_shortcut="B",
        default_input_shape=(224, 224, 3),
        default_classes=1000,
    )


def cifar_spec(depth: int) -> ResNetSpec:
    """Return the spec of the CIFAR ResNet of depth 6n+2 (paper section 4.2), for any n >= 1."""
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 8 or (depth - 2) % 6:
        raise ValueError(
            "CIFAR ResNet depth must be 6n+2 for an integer n >= 1 (8, 14, 20, 32, 44, 56, 110, 1202, ...). "
            f"Received: depth={depth!r}"
        )
    n = (depth - 2) // 6
    return ResNetSpec(
        family="cifar",
        depth=depth,
        block="basic",
        stage_blocks=(n, n, n),
        stage_filters=CIFAR_STAGE_FILTERS,
        stem="cifar",
        stem_filters=16,
        default_shortcut="A",
        default_input_shape=(32, 32, 3),
        default_classes=10,
    )


def spec_for(family: str, depth: int) -> ResNetSpec:
    """Return the spec of `family` ("imagenet" or "cifar") at `depth`."""
    if family == "imagenet":
        return imagenet_spec(depth)
    if family == "cifar":
        return cifar_spec(depth)
    raise ValueError(f"`family` must be one of {FAMILIES}. Received: family={family!r}")
