"""Architecture fingerprints and content hashes in weight files, so a file is never loaded into the wrong
net, nor loaded after it was altered.

A Keras ``.weights.h5`` file stores variables by position, not by layer name, and a plain net has
exactly the variables of its option-A residual twin: without extra information such a file would load
into the wrong architecture silently. Files written by this project (training runs, publishing, the
conversion cache) therefore carry the :class:`~keras_resnets.architecture.identity.Architecture` of the
model as an HDF5 attribute, read back and compared on load, and a sha256 over every variable (and the
architecture record), checked on load. Every file read here is also checked for NaN/infinite values.

They also carry where each variable is stored (:data:`LAYOUT_ATTRIBUTE`: HDF5 dataset -> layer name
and variable index), so a load can read the arrays and assign them by layer name directly, without
Keras' generic walk over the model, which costs several times the reading itself.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid
from typing import Dict, List, NamedTuple, Optional

import h5py
import keras
import numpy as np

from keras_resnets.architecture.identity import Architecture
from keras_resnets.weights.errors import WeightsFileError, file_error

ATTRIBUTE = "keras_resnets_architecture"
CONTENT_HASH_ATTRIBUTE = "keras_resnets_content_sha256"
LAYOUT_ATTRIBUTE = "keras_resnets_variables"
EXPECTED = "a Keras .weights.h5 file (HDF5)"
# A file is read into memory whole before it is checked. The zoo's largest file (ResNet-152, float32) is
# about 240 MB; this bound keeps a hostile or mistaken path (a disk image, a sparse file) from
# exhausting memory.
MAX_WEIGHTS_FILE_BYTES = 2 << 30


class WeightsFileInfo(NamedTuple):
    """A ``.weights.h5`` file read once and verified: what it says about itself and what it holds.

    Loads use :attr:`arrays`, the very values that were hashed and checked, never a second read of the
    file, so a file replaced after its check cannot slip in.
    """

    architecture: Optional[Architecture]  # None for files without a fingerprint (plain Keras).
    verified_hash: bool  # Whether it carried a content hash (which then matched).
    path: str
    arrays: Dict[str, np.ndarray]  # HDF5 dataset path -> value, as hashed.
    layout: Optional[str]  # The raw LAYOUT_ATTRIBUTE, if any.
    file_sha256: str  # Of the bytes that were read.

    def classifier_classes(self) -> Optional[int]:
        """Outputs of the classifier stored in this file of the zoo (None without top).

        The classifier kernel is the only 2-D variable of these models (conv kernels are 4-D, BN 1-D).

        Raises:
            WeightsFileError: if the file holds several 2-D variables (not a model of this zoo).
        """
        kernels = [value.shape for value in self.arrays.values() if value.ndim == 2]
        if len(kernels) > 1:
            raise file_error(self.path, "a model of this zoo (one 2-D variable, the classifier)",
                             f"it holds {len(kernels)} 2-D variables")
        return int(kernels[0][1]) if kernels else None


def _content_sha256(handle: h5py.File, path: str, arrays: Optional[Dict[str, np.ndarray]] = None) -> str:
    """sha256 over every dataset (name, dtype, shape, bytes) and the architecture record; checks finiteness.

    Fills `arrays` (dataset path -> value) with what it hashed, when given.
    """
    names = []
    handle.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    digest = hashlib.sha256()
    for name in sorted(names):
        value = np.asarray(handle[name][()])
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise file_error(path, "finite values", f"variable {name!r} holds NaN or infinite values")
        digest.update(f"{name}\0{value.dtype.str}\0{value.shape}\0".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
        if arrays is not None:
            arrays[name] = value
    digest.update(str(handle.attrs.get(ATTRIBUTE, "")).encode())
    # The variable layout decides which array goes to which layer, so it is part of the content.
    digest.update(b"\0" + str(handle.attrs.get(LAYOUT_ATTRIBUTE, "")).encode())
    return digest.hexdigest()


def save_weights(model: keras.Model, path: str) -> None:
    """``model.save_weights(path)``, then record the model's architecture, variable layout and a content
    hash in the file.

    Written to a temporary file beside `path` and renamed, so `path` is never left half-written.
    """
    path = os.fspath(path)
    temporary = os.path.join(os.path.dirname(os.path.abspath(path)), f".{uuid.uuid4().hex[:8]}.partial.weights.h5")
    try:
        model.save_weights(temporary)
        with h5py.File(temporary, "a") as handle:
            handle.attrs[ATTRIBUTE] = json.dumps(Architecture.from_model(model).to_dict(), sort_keys=True)
            layout = variable_layout(model, handle)
            if layout is not None:
                handle.attrs[LAYOUT_ATTRIBUTE] = json.dumps(layout, sort_keys=True)
            handle.attrs[CONTENT_HASH_ATTRIBUTE] = _content_sha256(handle, path)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def verify_weights_file(path: str, expected_file_sha256: Optional[str] = None) -> WeightsFileInfo:
    """Read a ``.weights.h5`` once; check it is readable, finite and (if it carries one) matches its content hash.

    The file's bytes are read into memory once and everything (file sha256, HDF5 parsing, content hash,
    values) comes from those bytes, so what was checked is what gets loaded.

    Args:
        expected_file_sha256: if given, the sha256 the file's bytes must have (e.g. recorded in a cache entry).

    Raises:
        WeightsFileError: naming `path`: unreadable (empty, truncated, not HDF5, a folder), larger than
            :data:`MAX_WEIGHTS_FILE_BYTES`, other bytes than `expected_file_sha256`, a NaN or infinite variable, a content hash that does not match,
            or an unreadable architecture record.
    """
    from keras_resnets.weights.checkpoints import require_regular_file

    path = os.fspath(path)
    require_regular_file(path, EXPECTED)
    try:
        with open(path, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            if size > MAX_WEIGHTS_FILE_BYTES:
                raise file_error(path, f"at most {MAX_WEIGHTS_FILE_BYTES} bytes (MAX_WEIGHTS_FILE_BYTES)",
                                 f"it has {size} bytes")
            data = stream.read(MAX_WEIGHTS_FILE_BYTES + 1)
    except OSError as error:
        raise file_error(path, EXPECTED, error) from error
    if len(data) > MAX_WEIGHTS_FILE_BYTES:  # It grew while being read.
        raise file_error(path, f"at most {MAX_WEIGHTS_FILE_BYTES} bytes (MAX_WEIGHTS_FILE_BYTES)", "it grew past that while read")
    file_sha256 = hashlib.sha256(data).hexdigest()
    if expected_file_sha256 is not None and file_sha256 != expected_file_sha256:
        raise file_error(path, f"the file with sha256 {expected_file_sha256}",
                         f"its sha256 is {file_sha256}: it changed since it was recorded")
    arrays: Dict[str, np.ndarray] = {}
    try:
        with h5py.File(io.BytesIO(data), "r") as handle:
            recorded = handle.attrs.get(ATTRIBUTE)
            stored_hash = handle.attrs.get(CONTENT_HASH_ATTRIBUTE)
            layout = handle.attrs.get(LAYOUT_ATTRIBUTE)
            actual_hash = _content_sha256(handle, path, arrays)
    except WeightsFileError:
        raise
    except Exception as error:  # noqa: BLE001 - h5py raises OSError/KeyError/RuntimeError for broken files.
        raise file_error(path, EXPECTED, error) from error
    del data
    if stored_hash is not None and str(stored_hash) != actual_hash:
        raise file_error(
            path, "the content it was written with",
            f"its variables or architecture record were changed after writing (content sha256 {actual_hash}, "
            f"recorded {stored_hash})",
        )
    architecture = None
    if recorded is not None:
        try:
            architecture = Architecture.from_dict(json.loads(recorded))
        except (ValueError, TypeError) as error:
            raise file_error(path, f"a readable {ATTRIBUTE} record", error) from None
    return WeightsFileInfo(architecture, stored_hash is not None, path, arrays,
                           None if layout is None else str(layout), file_sha256)


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


def assign_by_layout(model: keras.Model, info: WeightsFileInfo) -> bool:
    """Assign the in-memory arrays of a verified weights file to `model` by its :data:`LAYOUT_ATTRIBUTE`.

    Returns:
        False, with nothing assigned, when the file has no usable layout or it does not cover exactly
        `model`'s variables; True once every variable was assigned.
    """
    layers = {layer.name: layer for layer in model.layers if layer.weights}
    wanted = {(name, index) for name, layer in layers.items() for index in range(len(layer.weights))}
    try:
        layout = json.loads(info.layout or "null")
        if not isinstance(layout, dict) or len(layout) != len(wanted):
            return False
        pairs = []
        for dataset_path, (layer_name, index) in layout.items():
            if (layer_name, index) not in wanted or dataset_path not in info.arrays:
                return False
            variable, value = layers[layer_name].weights[index], info.arrays[dataset_path]
            if tuple(value.shape) != tuple(variable.shape):
                return False
            pairs.append((variable, value))
    except (ValueError, TypeError, KeyError):  # A damaged or foreign attribute: let Keras read the file.
        return False
    if len({(id(variable)) for variable, _ in pairs}) != len(wanted):
        return False
    for variable, value in pairs:  # Assigned only once everything was read and checked.
        variable.assign(value)
    return True


def require_loaded_content(model: keras.Model, info: WeightsFileInfo) -> None:
    """Check that `model` now holds exactly the verified values of `info` (after Keras read the file itself).

    Keras reads a file without a usable layout from its path, a second read; comparing what it
    assigned with what was verified means a file replaced in between is caught, not loaded.

    Raises:
        WeightsFileError: naming the file, if the model's values are not the verified ones.
    """
    loaded = sorted(_digest(np.asarray(keras.ops.convert_to_numpy(v))) for v in model.weights)
    verified = sorted(_digest(np.asarray(value)) for value in info.arrays.values())
    if loaded != verified:
        raise file_error(info.path, "the content that was verified",
                         "the values read while loading differ from those checked: it changed during the load")

