"""Writing torch checkpoint files (legacy stream and zip) without torch, for reader tests.

The pickles name the same globals ``torch.save`` writes (``torch._utils._rebuild_tensor_v2``,
``torch.FloatStorage``, ``collections.OrderedDict``). To pickle those names without torch, stand-in
modules are put into ``sys.modules`` only while dumping. ``tamper`` hooks let a test corrupt the
size/stride/offset of a tensor or the element count of a storage.
"""

from __future__ import annotations

import collections
import contextlib
import io
import pickle
import struct
import sys
import types
import zipfile
from typing import Dict, Optional

import numpy as np

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_STORAGE_NAMES = {np.dtype(np.float32): "FloatStorage", np.dtype(np.int64): "LongStorage",
                  np.dtype(np.float64): "DoubleStorage", np.dtype(np.float16): "HalfStorage"}


@contextlib.contextmanager
def _fake_torch():
    """Stand-in ``torch``/``torch._utils`` modules with the globals torch.save names, removed afterwards."""
    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):  # Never called here: only its name is pickled.
        raise AssertionError(args)

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    for name in set(_STORAGE_NAMES.values()):
        storage = type(name, (), {"__module__": "torch"})
        setattr(torch, name, storage)
    torch._utils = utils
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
    try:
        yield torch, utils
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


class _Storage:
    def __init__(self, tensor):
        self.tensor = tensor


class _Tensor:
    def __init__(self, key, array, rebuild, storage_type, geometry):
        self.key, self.array, self.rebuild, self.storage_type = key, array, rebuild, storage_type
        self.geometry = geometry

    def __reduce__(self):
        offset, size, stride = self.geometry
        return self.rebuild, (_Storage(self), offset, size, stride, False, collections.OrderedDict())


def _geometry(array: np.ndarray):
    return 0, tuple(array.shape), tuple(s // array.itemsize for s in array.strides)


def _pickled(state_dict, extra, torch, utils, persistent_id, tamper_tensor) -> bytes:
    tensors = collections.OrderedDict()
    for key, value in state_dict.items():
        array = np.ascontiguousarray(value)
        geometry = _geometry(array)
        if tamper_tensor and key in tamper_tensor:
            geometry = tamper_tensor[key]
        storage_type = getattr(torch, _STORAGE_NAMES[array.dtype])
        tensors[key] = _Tensor(key, array, utils._rebuild_tensor_v2, storage_type, geometry)
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=2)
    pickler.persistent_id = persistent_id
    pickler.dump({**extra, "state_dict": tensors})
    return buffer.getvalue()


def write_legacy(path, state_dict: Dict[str, np.ndarray], *, extra: Optional[dict] = None,
                 tamper_tensor: Optional[dict] = None, tamper_count: Optional[dict] = None) -> None:
    """A torch < 1.6 style file (what the akamaster checkpoints are)."""
    tamper_count = tamper_count or {}
    with _fake_torch() as (torch, utils):
        def persistent_id(obj):
            if isinstance(obj, _Storage):
                tensor = obj.tensor
                return ("storage", tensor.storage_type, tensor.key, "cpu", tensor.array.size, None)
            return None

        body = _pickled(state_dict, extra or {"best_prec1": 91.5}, torch, utils, persistent_id, tamper_tensor)
    with open(path, "wb") as handle:
        for header in (LEGACY_MAGIC_NUMBER, 1001, {"protocol_version": 1001, "little_endian": True,
                                                   "type_sizes": {"int": 4, "long": 4, "short": 2}}):
            pickle.dump(header, handle, protocol=2)
        handle.write(body)
        keys = sorted(state_dict)
        pickle.dump(keys, handle, protocol=2)
        for key in keys:
            array = np.ascontiguousarray(state_dict[key])
            handle.write(struct.pack("<q", tamper_count.get(key, array.size)))
            handle.write(array.astype(array.dtype.newbyteorder("<")).tobytes())


def write_zip(path, state_dict: Dict[str, np.ndarray], *, drop_storages=False) -> None:
    """A torch >= 1.6 zip checkpoint; `drop_storages` leaves out the tensor data entries."""
    keys = {key: str(index) for index, key in enumerate(state_dict)}
    with _fake_torch() as (torch, utils):
        def persistent_id(obj):
            if isinstance(obj, _Storage):
                tensor = obj.tensor
                return ("storage", tensor.storage_type, keys[tensor.key], "cpu", tensor.array.size)
            return None

        body = _pickled(state_dict, {}, torch, utils, persistent_id, None)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("checkpoint/data.pkl", body)
        archive.writestr("checkpoint/byteorder", "little")
        if not drop_storages:
            for key, name in keys.items():
                archive.writestr(f"checkpoint/data/{name}", np.ascontiguousarray(state_dict[key]).tobytes())
