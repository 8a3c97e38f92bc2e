"""The model registry: every named model of the zoo, looked up by name."""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, Optional

from keras_resnets.architecture.identity import Architecture
from keras_resnets.architecture.specs import ResNetSpec


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One registered model: its builder function, its architecture and the paper's error for it."""

    builder: Callable
    architecture: Architecture
    paper_top1_error: Optional[float] = None
    paper_error_source: Optional[str] = None

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
