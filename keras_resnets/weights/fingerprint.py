"""Architecture fingerprints in weight files, so a file is never loaded into the wrong net.

A Keras ``.weights.h5`` file stores variables by position, not by layer name, and a plain net has
exactly the variables of its option-A residual twin: without extra information such a file would load
into the wrong architecture silently. Files written by this project (training runs, publishing, the
conversion cache) therefore carry the :class:`~keras_resnets.architecture.identity.Architecture` of the
model as an HDF5 attribute, read back and compared on load.
"""

from __future__ import annotations

import json
from typing import Optional

import h5py
import keras

from keras_resnets.architecture.identity import Architecture

ATTRIBUTE = "keras_resnets_architecture"


def save_weights(model: keras.Model, path: str) -> None:
    """``model.save_weights(path)``, then record the model's architecture in the file."""
    model.save_weights(path)
    with h5py.File(path, "a") as handle:
        handle.attrs[ATTRIBUTE] = json.dumps(Architecture.from_model(model).to_dict(), sort_keys=True)


def read_fingerprint(path: str) -> Optional[Architecture]:
    """The architecture stored in a ``.weights.h5`` file, or None if it has none (e.g. plain Keras)."""
    with h5py.File(path, "r") as handle:
        value = handle.attrs.get(ATTRIBUTE)
    return None if value is None else Architecture.from_dict(json.loads(value))
