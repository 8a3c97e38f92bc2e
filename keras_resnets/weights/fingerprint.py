"""Architecture fingerprints in weight files, so a file is never loaded into the wrong net.

A Keras ``.weights.h5`` file stores variables by position, not by layer name, and a plain net has
exactly the variables of its option-A residual twin: without extra information such a file would load
into the wrong architecture silently. Files written by this project (training runs, publishing, the
conversion cache) therefore carry the :class:`~keras_resnets.architecture.identity.Architecture` of the
model as an HDF5 attribute, read back and compared on load.

They also carry where each variable is stored (:data:`LAYOUT_ATTRIBUTE`: HDF5 dataset -> layer name
and variable index), so a load can read the arrays and assign them by layer name directly, without
Keras' generic walk over the model, which costs several times the reading itself.
"""

from __future__ import annotations

import hashlib
import json
from typing import Dict, List, Optional

import h5py
import keras

from keras_resnets.architecture.identity import Architecture

ATTRIBUTE = "keras_resnets_architecture"
LAYOUT_ATTRIBUTE = "keras_resnets_variables"


def save_weights(model: keras.Model, path: str) -> None:
    """``model.save_weights(path)``, then record the model's architecture and variable layout in the file."""
    model.save_weights(path)
    with h5py.File(path, "a") as handle:
        handle.attrs[ATTRIBUTE] = json.dumps(Architecture.from_model(model).to_dict(), sort_keys=True)
        layout = variable_layout(model, handle)
        if layout is not None:
            handle.attrs[LAYOUT_ATTRIBUTE] = json.dumps(layout, sort_keys=True)


def _digest(value) -> str:
    return hashlib.sha1(f"{value.dtype}{value.shape}".encode() + value.tobytes()).hexdigest()


def variable_layout(model: keras.Model, handle: h5py.File) -> Optional[Dict[str, List]]:
    """``{dataset path: [layer name, variable index]}`` for the weights `model` just saved in `handle`.

    Keras names datasets by layer class and position, not by layer name; the pairing is found by
    value instead of by re-deriving Keras' naming, so it holds for any Keras version. Variables with
    identical values are interchangeable, so pairing them either way is correct. None if some dataset
    or variable finds no partner (then loads take Keras' own path).
    """
    owners: Dict[str, List] = {}
    for layer in model.layers:
        for index, variable in enumerate(layer.weights):
            owners.setdefault(_digest(keras.ops.convert_to_numpy(variable)), []).append([layer.name, index])
    datasets = []
    handle.visititems(lambda name, item: datasets.append(name) if isinstance(item, h5py.Dataset) else None)
    layout = {}
    for name in datasets:
        candidates = owners.get(_digest(handle[name][()]))
        if not candidates:
            return None
        layout[name] = candidates.pop()
    if any(owners.values()):
        return None
    return layout


def assign_by_layout(model: keras.Model, path: str) -> bool:
    """Load the weights file at `path` into `model` by its :data:`LAYOUT_ATTRIBUTE`; False (nothing
    assigned) when the file has no usable layout or it does not cover exactly `model`'s variables."""
    layers = {layer.name: layer for layer in model.layers if layer.weights}
    wanted = {(name, index) for name, layer in layers.items() for index in range(len(layer.weights))}
    with h5py.File(path, "r") as handle:
        try:
            layout = json.loads(handle.attrs.get(LAYOUT_ATTRIBUTE, "null"))
            if not isinstance(layout, dict) or len(layout) != len(wanted):
                return False
            pairs = []
            for dataset_path, (layer_name, index) in layout.items():
                if (layer_name, index) not in wanted:
                    return False
                variable, dataset = layers[layer_name].weights[index], handle[dataset_path]
                if not isinstance(dataset, h5py.Dataset) or tuple(dataset.shape) != tuple(variable.shape):
                    return False
                pairs.append((variable, dataset[()]))
        except (ValueError, TypeError, KeyError):  # A damaged or foreign attribute: let Keras read the file.
            return False
    if len({(id(variable)) for variable, _ in pairs}) != len(wanted):
        return False
    for variable, value in pairs:  # Assigned only once everything was read and checked.
        variable.assign(value)
    return True


def read_fingerprint(path: str) -> Optional[Architecture]:
    """The architecture stored in a ``.weights.h5`` file, or None if it has none (e.g. plain Keras)."""
    with h5py.File(path, "r") as handle:
        value = handle.attrs.get(ATTRIBUTE)
    return None if value is None else Architecture.from_dict(json.loads(value))
