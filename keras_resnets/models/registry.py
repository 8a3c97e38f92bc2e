"""The model registry: every named model of the zoo, looked up by name.

The registry is pure data (names, specs, the paper's errors), importable without Keras, so that
``keras-resnets models`` and other listings start in a fraction of a second; an entry's builder is
imported from :mod:`keras_resnets.models.zoo` only when a model is built.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Dict, List, Optional

from keras_resnets.architecture import specs as specs_lib
from keras_resnets.architecture.identity import Architecture
from keras_resnets.architecture.specs import ResNetSpec

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

# Every named model of the paper, in listing order: ResNets first, then their plain counterparts.
NAMED_MODELS = tuple(
    (family, depth, residual)
    for residual in (True, False)
    for family, depths in (("imagenet", tuple(specs_lib.IMAGENET_STAGE_TABLE)), ("cifar", specs_lib.CIFAR_PAPER_DEPTHS))
    for depth in depths
)


def public_name(architecture: Architecture) -> str:
    """The builder's name in :mod:`keras_resnets` for a standard architecture: ``ResNet50``, ``PlainNet56``."""
    return f"{'ResNet' if architecture.residual else 'PlainNet'}{architecture.depth}"


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One registered model: its architecture, the paper's error for it and (on demand) its builder."""

    architecture: Architecture
    paper_top1_error: Optional[float] = None
    paper_error_source: Optional[str] = None

    @property
    def builder(self) -> Callable:
        """A function that builds this model with the ``keras.applications`` keyword arguments (what
        ``keras_resnets.ResNet50`` and friends call). Importing the builder imports Keras, so it happens
        here, on first use, and listing the registry stays free of Keras."""
        from keras_resnets.models.builder import build_resnet

        return functools.partial(build_resnet, self.spec, residual=self.residual)

    @property
    def name(self) -> str:
        """Registry name, e.g. "resnet50", "plain56"."""
        return self.architecture.name

    @property
    def spec(self) -> ResNetSpec:
        """The stage table entry of the model."""
        return self.architecture.spec

    @property
    def residual(self) -> bool:
        """False for the paper's plain nets."""
        return self.architecture.residual


class ModelRegistry:
    """A name -> :class:`ModelEntry` mapping that refuses to register a name twice."""

    def __init__(self):
        self._entries: Dict[str, ModelEntry] = {}
        self._aliases: Dict[str, str] = {}

    def register(self, entry: ModelEntry, aliases=()) -> ModelEntry:
        """Add `entry` (and optional alternative spellings of its name); raises on a duplicate name."""
        for key in (entry.name, *aliases):
            key = key.lower()
            if key in self._entries or key in self._aliases:
                raise ValueError(f"A model named {key!r} is already registered.")
        self._entries[entry.name.lower()] = entry
        for alias in aliases:
            self._aliases[alias.lower()] = entry.name.lower()
        return entry

    def names(self, family: Optional[str] = None, residual: Optional[bool] = None) -> List[str]:
        """Registered names, optionally filtered by family and by residual/plain."""
        return [
            name
            for name, entry in self._entries.items()
            if (family is None or entry.spec.family == family)
            and (residual is None or entry.residual == residual)
        ]

    def entry(self, name: str) -> ModelEntry:
        """The entry registered under `name` (case-insensitive; builder names such as "PlainNet56" work)."""
        if not isinstance(name, str):
            raise ValueError(f"`name` must be a string. Received: name={name!r}")
        key = name.lower()
        key = self._aliases.get(key, key)
        if key not in self._entries:
            raise ValueError(f"Unknown model name. Available models: {self.names()}. Received: name={name!r}")
        return self._entries[key]


MODELS = ModelRegistry()
for _family, _depth, _residual in NAMED_MODELS:
    _architecture = Architecture(specs_lib.spec_for(_family, _depth), _residual)
    _error, _source = PAPER_TOP1_ERROR.get((_family, _depth, _residual), (None, None))
    _public = public_name(_architecture)
    MODELS.register(
        ModelEntry(_architecture, _error, _source),
        aliases=(_public,) if _public.lower() != _architecture.name else (),
    )


def list_models(family: Optional[str] = None, residual: Optional[bool] = None) -> List[str]:
    """Names of every registered model, e.g. ``['resnet18', ..., 'plain1202']``.

    Args:
        family: keep only "imagenet" or "cifar" models.
        residual: keep only ResNets (True) or only plain nets (False).
    """
    return MODELS.names(family=family, residual=residual)


def get_model(name: str, **kwargs):
    """Build the registered model `name` (e.g. "resnet50", "plain56"); kwargs go to its builder."""
    return MODELS.entry(name).builder(**kwargs)


def model_entry(name: str) -> ModelEntry:
    """The registry record (spec, residual flag, paper error) of the model `name`."""
    return MODELS.entry(name)


# The pretrained weight tag used when a command or function is asked for weights="default".
DEFAULT_WEIGHTS = {"imagenet": "imagenet", "cifar": "cifar10"}


def resolve_default_weights(model_name: str, weights):
    """Map ``weights="default"`` to the standard pretrained tag of the model's family; others pass through."""
    if isinstance(weights, str) and weights == "default":
        return DEFAULT_WEIGHTS[model_entry(model_name).spec.family]
    return weights
