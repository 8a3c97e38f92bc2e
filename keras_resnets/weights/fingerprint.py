"""Architecture fingerprints: what a weight file was made for, so it is never loaded into the wrong net.

A Keras ``.weights.h5`` file stores variables by position, not by layer name, and a plain net has
exactly the variables of its option-A residual twin: without extra information such a file would load
into the wrong architecture silently. Files written by this project (training runs, publishing, the
conversion cache) therefore carry the fingerprint as an HDF5 attribute, and ``.keras`` files are
fingerprinted from the model they contain. The fingerprint is derived from the layer graph itself
(layer names are part of the weights contract), so it also works for models loaded from disk.
"""

from __future__ import annotations

import json
import re
from typing import Dict, Optional

import h5py
import keras

from keras_resnets.weights.torch_layout import WeightsMismatchError

ATTRIBUTE = "keras_resnets_architecture"
_BLOCK_CONV = re.compile(r"^layer(\d+)\.(\d+)\.conv(\d)$")


def normalise(architecture: Dict) -> Dict:
    """Drop the options that do not change a given network (shortcut of a plain net, stride placement
    of a basic-block net), so equivalent descriptions compare equal."""
    result = {key: architecture.get(key) for key in ("family", "depth", "block", "residual", "shortcut", "downsample")}
    if not result["residual"]:
        result["shortcut"] = None
    if result["block"] == "basic":
        result["downsample"] = None
    return result


def architecture_of(model: keras.Model) -> Dict:
    """Describe a zoo model from its layers: family, depth, block, residual, shortcut, downsampling."""
    layers = {layer.name: layer for layer in model.layers}
    blocks: Dict[tuple, int] = {}
    for name in layers:
        match = _BLOCK_CONV.match(name)
        if match:
            stage, block, conv = (int(g) for g in match.groups())
            blocks[(stage, block)] = max(blocks.get((stage, block), 0), conv)
    if "conv1" not in layers or not blocks:
        raise WeightsMismatchError(f"Model {model.name!r} is not a keras_resnets model (no conv1/layerN.M.convK layers).")
    convs_per_block = max(blocks.values())
    family = "imagenet" if layers["conv1"].kernel_size[0] == 7 else "cifar"
    residual = any(name.endswith(".add") for name in layers)
    projections = sum(name.endswith(".downsample.0") for name in layers)
    if not residual:
        shortcut = None
    elif any(name.endswith(".shortcut") for name in layers):
        shortcut = "A"
    elif projections == len(blocks):
        shortcut = "C"
    else:
        shortcut = "B"
    downsample = None
    if convs_per_block == 3 and "layer2.0.conv1" in layers:
        downsample = "conv1x1" if tuple(layers["layer2.0.conv1"].strides) == (2, 2) else "conv3x3"
    return normalise({
        "family": family,
        "depth": 2 + convs_per_block * len(blocks),
        "residual": residual,
        "shortcut": shortcut,
        "downsample": downsample,
        "block": "bottleneck" if convs_per_block == 3 else "basic",
    })


def save_weights(model: keras.Model, path: str) -> None:
    """``model.save_weights(path)``, then record the model's fingerprint in the file."""
    model.save_weights(path)
    with h5py.File(path, "a") as handle:
        handle.attrs[ATTRIBUTE] = json.dumps(architecture_of(model), sort_keys=True)


def read_fingerprint(path: str) -> Optional[Dict]:
    """The fingerprint stored in a ``.weights.h5`` file, or None if it has none (e.g. plain Keras)."""
    with h5py.File(path, "r") as handle:
        value = handle.attrs.get(ATTRIBUTE)
    return None if value is None else json.loads(value)


def check_same_architecture(expected: Dict, found: Dict, weights_name: str) -> None:
    """Raise WeightsMismatchError naming every difference between two architecture descriptions."""
    expected, found = normalise(expected), normalise(found)
    differences = {key: (found[key], value) for key, value in expected.items() if found[key] != value}
    if differences:
        detail = ", ".join(f"{key}: weights {theirs!r} vs model {ours!r}" for key, (theirs, ours) in differences.items())
        raise WeightsMismatchError(f"Weights {weights_name!r} were made for another architecture ({detail}).")
