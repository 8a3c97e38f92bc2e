"""One architecture identity: which network a model is, a name is, or a weight file was made for.

An :class:`Architecture` is the spec plus the options that change a network's tensors or their meaning
(residual or plain, shortcut option, where a bottleneck strides). It is built from a registry-style name
(``Architecture.from_name("plain56")``), from a model's layer graph (``Architecture.from_model(model)``,
layer names are part of the weights contract) or from the JSON stored in weight files and published
``config.json`` (``Architecture.from_dict``). Options that do not change a given network are
normalised away (a plain net has no shortcut option, a basic-block net no stride placement), so two
descriptions of the same network compare equal, and :meth:`Architecture.require_same` says exactly what
differs when they do not.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Dict, Optional, Tuple

from keras_resnets.architecture import specs as specs_lib
from keras_resnets.architecture.specs import ResNetSpec

_NAME = re.compile(r"^(resnet|plainnet|plain)(\d+)$")
_BLOCK_CONV = re.compile(r"^layer(\d+)\.(\d+)\.conv(\d)$")
FIELDS = ("family", "depth", "block", "residual", "shortcut", "downsample")


class WeightsMismatchError(ValueError):
    """Weights do not fit the model they are loaded into (another architecture, missing or mis-shaped tensors)."""


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A network of the zoo, as far as weights are concerned.

    Attributes:
        spec: the stage table entry (family, depth, block type, widths).
        residual: False for the paper's plain counterpart (no shortcuts).
        shortcut: the paper's option "A", "B" or "C" for residual nets (default: the spec's); None for
            plain nets.
        downsample: "conv3x3" or "conv1x1" for bottleneck nets (where the block strides); None for
            basic-block nets.
    """

    spec: ResNetSpec
    residual: bool = True
    shortcut: Optional[str] = None
    downsample: Optional[str] = "conv3x3"

    def __post_init__(self):
        if not isinstance(self.spec, ResNetSpec):
            raise ValueError(f"`spec` must be a ResNetSpec. Received: spec={self.spec!r}")
        if not isinstance(self.residual, bool):
            raise ValueError(f"`residual` must be True or False. Received: residual={self.residual!r}")
        shortcut = self.shortcut
        if isinstance(shortcut, str):
            shortcut = shortcut.upper()
        if shortcut is not None and shortcut not in specs_lib.SHORTCUT_OPTIONS:
            raise ValueError(f"`shortcut` must be one of {specs_lib.SHORTCUT_OPTIONS}. Received: shortcut={self.shortcut!r}")
        downsample = self.downsample if self.downsample is not None else "conv3x3"
        if downsample not in specs_lib.DOWNSAMPLE_MODES:
            raise ValueError(
                f"`downsample` must be one of {specs_lib.DOWNSAMPLE_MODES}. Received: downsample={self.downsample!r}"
            )
        object.__setattr__(self, "shortcut", (shortcut or self.spec.default_shortcut) if self.residual else None)
        object.__setattr__(self, "downsample", downsample if self.spec.block == "bottleneck" else None)

    # ------------------------------------------------------------------------------------------------
    # Constructors

    @classmethod
    def from_name(cls, name: str, shortcut: Optional[str] = None, downsample: Optional[str] = "conv3x3") -> "Architecture":
        """Parse ``resnetN``/``plainN`` (also ``ResNetN``/``PlainNetN``): ImageNet depths 18/34/50/101/152,
        any other depth 6n+2 a CIFAR net."""
        match = _NAME.match(name.lower()) if isinstance(name, str) else None
        if match is None:
            raise ValueError(
                "A model name must be resnetN or plainN (e.g. resnet50, plain56; CIFAR depths are 6n+2). "
                f"Received: name={name!r}"
            )
        depth = int(match.group(2))
        family = "imagenet" if depth in specs_lib.IMAGENET_STAGE_TABLE else "cifar"
        return cls(specs_lib.spec_for(family, depth), match.group(1) == "resnet", shortcut, downsample)

    @classmethod
    def from_dict(cls, data: Dict) -> "Architecture":
        """The inverse of :meth:`to_dict` (also reads older files that lack ``block``)."""
        if not isinstance(data, dict) or "family" not in data or "depth" not in data:
            raise ValueError(f"An architecture description needs 'family' and 'depth'. Received: {data!r}")
        spec = specs_lib.spec_for(data["family"], data["depth"])
        if data.get("block") not in (None, spec.block):
            raise ValueError(f"A {data['family']} net of depth {data['depth']} has {spec.block} blocks. Received: {data!r}")
        return cls(spec, bool(data.get("residual", True)), data.get("shortcut"), data.get("downsample"))

    @classmethod
    def from_model(cls, model) -> "Architecture":
        """Read the architecture of a zoo model (fine-tuned or loaded from disk) from its layer graph.

        Raises:
            WeightsMismatchError: `model` was not built by this zoo (no ``conv1``/``layerN.M.convK`` layers).
        """
        layers = {layer.name: layer for layer in model.layers}
        blocks: Dict[Tuple[int, int], int] = {}
        for layer_name in layers:
            match = _BLOCK_CONV.match(layer_name)
            if match:
                stage, block, conv = (int(g) for g in match.groups())
                blocks[(stage, block)] = max(blocks.get((stage, block), 0), conv)
        if "conv1" not in layers or not blocks:
            raise WeightsMismatchError(
                f"Model {model.name!r} is not a keras_resnets model (no conv1/layerN.M.convK layers)."
            )
        convs_per_block = max(blocks.values())
        family = "imagenet" if layers["conv1"].kernel_size[0] == 7 else "cifar"
        depth = 2 + convs_per_block * len(blocks)
        try:
            spec = specs_lib.spec_for(family, depth)
        except ValueError:
            raise WeightsMismatchError(f"Model {model.name!r} has {depth} layers, no {family} depth of the zoo.") from None
        stage_blocks = tuple(sum(1 for stage, _ in blocks if stage == s + 1) for s in range(len(spec.stage_blocks)))
        if stage_blocks != spec.stage_blocks:
            raise WeightsMismatchError(
                f"Model {model.name!r} has stages {stage_blocks}; a {family} net of depth {depth} has {spec.stage_blocks}."
            )
        residual = any(layer_name.endswith(".add") for layer_name in layers)
        projections = sum(layer_name.endswith(".downsample.0") for layer_name in layers)
        if not residual:
            shortcut = None
        elif any(layer_name.endswith(".shortcut") for layer_name in layers):
            shortcut = "A"
        elif projections == len(blocks):
            shortcut = "C"
        else:
            shortcut = "B"
        downsample = None
        if spec.block == "bottleneck":
            downsample = "conv1x1" if tuple(layers["layer2.0.conv1"].strides) == (2, 2) else "conv3x3"
        return cls(spec, residual, shortcut, downsample)

    # ------------------------------------------------------------------------------------------------
    # Views

    @property
    def family(self) -> str:
        """"imagenet" or "cifar"."""
        return self.spec.family

    @property
    def depth(self) -> int:
        """Weighted layers, as the paper counts them."""
        return self.spec.depth

    @property
    def block(self) -> str:
        """"basic" or "bottleneck"."""
        return self.spec.block

    @property
    def name(self) -> str:
        """Registry-style name: ``resnet50``, ``plain56``."""
        return f"{'resnet' if self.residual else 'plain'}{self.spec.depth}"

    @property
    def is_standard(self) -> bool:
        """Whether this is the registered model of its name with default options (what published weights fit)."""
        return self == Architecture(self.spec, self.residual)

    def to_dict(self) -> Dict:
        """JSON-ready description, stored in weight files and published ``config.json``."""
        return {field: getattr(self, field) for field in FIELDS}

    def differences(self, other: "Architecture") -> Dict[str, tuple]:
        """``{field: (this value, other value)}`` for every field in which the two differ."""
        mine, theirs = self.to_dict(), other.to_dict()
        return {field: (mine[field], theirs[field]) for field in FIELDS if mine[field] != theirs[field]}

    def require_same(self, weights: "Architecture", weights_name: str, hint: str = "") -> None:
        """Raise :class:`WeightsMismatchError` naming every difference if `weights` (what a weight file was
        made for) is not this architecture (the model's)."""
        differences = weights.differences(self)
        if differences:
            detail = ", ".join(f"{field}: weights {theirs!r} vs model {ours!r}" for field, (theirs, ours) in differences.items())
            raise WeightsMismatchError(
                f"Weights {weights_name!r} were made for {weights.name} and do not fit this {self.name} ({detail}). "
                + (hint or f"Build the model they were made for ({weights.name}) or use weights=None.")
            )
