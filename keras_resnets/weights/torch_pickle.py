"""A torch checkpoint reader that cannot run code: state dicts from ``.th``/``.pth``/``.pt`` without torch.

``torch.save`` writes pickles, and unpickling an arbitrary pickle can call any Python function. This
reader accepts only what a saved state dict needs: ``collections.OrderedDict``, torch's tensor rebuild
functions, the typed storage classes (mapped to numpy dtypes), ``torch.Size`` and numpy scalars (for
entries such as ``best_prec1``). Every other global is refused before anything is called, so a file
that would run code raises :class:`~keras_resnets.weights.errors.WeightsFileError` and nothing runs.

Both on-disk layouts are read:

* the legacy stream (torch < 1.6, e.g. the akamaster CIFAR checkpoints): magic number, protocol
  version and system info pickles, the object pickle, the sorted storage keys, then each storage as
  an int64 element count followed by its raw bytes;
* the zip archive (torch >= 1.6): ``<name>/data.pkl`` plus one ``<name>/data/<key>`` entry per storage
  and an optional ``<name>/byteorder``.

Tensors are rebuilt with bounds-checked strides, so a hostile size or offset cannot read outside
its storage.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from typing import Dict, Optional

import numpy as np

from keras_resnets.weights.errors import WeightsFileError, file_error

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
EXPECTED = "a torch state dict saved with torch.save (.th/.pth/.pt)"

# bfloat16 has no numpy dtype: its bits are the upper half of a float32 and are widened on read.
_BFLOAT16 = "bfloat16"
STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "BFloat16Storage": _BFLOAT16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    """Stands for ``torch.<X>Storage`` in a pickle: only its element type matters here."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = STORAGE_DTYPES[name]

    @property
    def itemsize(self) -> int:
        return 2 if self.dtype == _BFLOAT16 else np.dtype(self.dtype).itemsize


class _StorageRef:
    """A storage named by the pickle; its bytes are attached once read (legacy files store them after it)."""

    def __init__(self, key: str, storage_type: _StorageType, numel: int, base: Optional["_StorageRef"] = None,
                 offset: int = 0):
        self.key, self.storage_type, self.numel = key, storage_type, numel
        self.base, self.offset = base, offset
        self.array: Optional[np.ndarray] = None

    def elements(self) -> np.ndarray:
        if self.base is not None:
            return self.base.elements()[self.offset:self.offset + self.numel]
        if self.array is None:
            raise ValueError(f"the data of storage {self.key!r} is missing")
        return self.array


class _TensorRef:
    """A tensor the pickle asked to rebuild; turned into a numpy array once storages are read."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def to_numpy(self, name: str) -> np.ndarray:
        if not isinstance(self.storage, _StorageRef):
            raise ValueError(f"tensor {name!r} does not refer to a storage")
        size, stride, offset = _int_tuple(self.size), _int_tuple(self.stride), self.offset
        if size is None or stride is None or len(size) != len(stride) or not _is_count(offset):
            raise ValueError(f"tensor {name!r} has a malformed size/stride/offset")
        elements = self.storage.elements()
        if 0 in size:
            return np.zeros(size, dtype=_numpy_dtype(self.storage.storage_type))
        last = offset + sum((s - 1) * st for s, st in zip(size, stride))
        if last >= len(elements):
            raise ValueError(
                f"tensor {name!r} reaches element {last} of a storage of {len(elements)} elements"
            )
        itemsize = elements.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            elements[offset:], shape=size, strides=[st * itemsize for st in stride], writeable=False
        )
        return _widen(np.array(view), self.storage.storage_type)


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _int_tuple(value):
    if not isinstance(value, (tuple, list)) or not all(_is_count(v) for v in value):
        return None
    return tuple(value)


def _numpy_dtype(storage_type: _StorageType):
    return np.float32 if storage_type.dtype == _BFLOAT16 else storage_type.dtype


def _widen(array: np.ndarray, storage_type: _StorageType) -> np.ndarray:
    if storage_type.dtype != _BFLOAT16:
        return array
    return (array.astype(np.uint32) << 16).view(np.float32)


def _raw_dtype(storage_type: _StorageType, little_endian: bool) -> np.dtype:
    dtype = np.dtype(np.uint16 if storage_type.dtype == _BFLOAT16 else storage_type.dtype)
    return dtype.newbyteorder("<" if little_endian else ">")


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    del unused  # requires_grad, backward hooks and metadata do not change the values.
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *unused):
    del unused
    return data


def _torch_size(values=()):
    return tuple(values)


def _numpy_scalar(dtype, data=None):
    # A numpy scalar (e.g. best_prec1 saved as np.float64): only plain numeric dtypes are rebuilt.
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise ValueError("malformed numpy scalar")
    return np.frombuffer(data, dtype=dtype)[0]


def _numpy_dtype_constructor(name, align=False, copy=False):
    dtype = np.dtype(name, align=bool(align), copy=bool(copy))
    if dtype.hasobject:
        raise ValueError("object dtype")
    return dtype


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch", "Size"): _torch_size,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): _numpy_dtype_constructor,
}


class RefusedGlobalError(pickle.UnpicklingError):
    """The pickle names a global that a state dict does not need (it could run code)."""


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals of :data:`_ALLOWED` and torch storage types; everything else is refused."""

    def __init__(self, file, persistent_load=None):
        super().__init__(file)
        self._persistent = persistent_load

    def find_class(self, module, name):
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        allowed = _ALLOWED.get((module, name))
        if allowed is None:
            raise RefusedGlobalError(
                f"it asks to call {module}.{name}, which a state dict does not need, so it was refused "
                "and nothing from the file was run or loaded"
            )
        return allowed

    def persistent_load(self, pid):
        if self._persistent is None:
            raise pickle.UnpicklingError("unexpected persistent id")
        return self._persistent(pid)


def is_legacy_stream(head: bytes) -> bool:
    """Whether `head` (the first bytes of a file) starts a pickle, as legacy torch files do."""
    return head[:1] == b"\x80"


def _storage_type(value) -> _StorageType:
    if not isinstance(value, _StorageType):
        raise pickle.UnpicklingError(f"unknown storage type {value!r}")
    return value


def _read_legacy(handle, size: int) -> object:
    if _RestrictedUnpickler(handle).load() != LEGACY_MAGIC_NUMBER:
        raise pickle.UnpicklingError("not a torch file (wrong magic number)")
    if _RestrictedUnpickler(handle).load() != LEGACY_PROTOCOL_VERSION:
        raise pickle.UnpicklingError("unsupported torch legacy protocol version")
    system = _RestrictedUnpickler(handle).load()
    little_endian = bool(system.get("little_endian", True)) if isinstance(system, dict) else True
    storages: Dict[str, _StorageRef] = {}

    def persistent_load(pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel, view = pid
        storage_type = _storage_type(storage_type)
        if not isinstance(key, str) or not _is_count(numel):
            raise pickle.UnpicklingError("malformed storage reference")
        root = storages.setdefault(key, _StorageRef(key, storage_type, numel))
        if view is None:
            return root
        view_key, offset, view_size = view
        if not (_is_count(offset) and _is_count(view_size) and offset + view_size <= root.numel):
            raise pickle.UnpicklingError("malformed storage view")
        return _StorageRef(view_key, storage_type, view_size, base=root, offset=offset)

    result = _RestrictedUnpickler(handle, persistent_load).load()
    keys = _RestrictedUnpickler(handle).load()
    if not isinstance(keys, list):
        raise pickle.UnpicklingError("malformed storage key list")
    for key in keys:
        if key not in storages:
            raise pickle.UnpicklingError(f"storage {key!r} is not referenced")
        storage = storages[key]
        count = int.from_bytes(_read_exactly(handle, 8, size), "little" if little_endian else "big", signed=True)
        if count != storage.numel:
            raise pickle.UnpicklingError(f"storage {key!r} holds {count} elements, the pickle says {storage.numel}")
        dtype = _raw_dtype(storage.storage_type, little_endian)
        storage.array = np.frombuffer(_read_exactly(handle, count * dtype.itemsize, size), dtype=dtype)
    return result


def _read_exactly(handle, count: int, size: int) -> bytes:
    # The file size bounds every read, so a hostile element count cannot make us allocate gigabytes.
    if count < 0 or handle.tell() + count > size:
        raise EOFError("the file ends before the data it announces (truncated?)")
    return handle.read(count)


def _read_zip(archive: zipfile.ZipFile) -> object:
    pickles = [name for name in archive.namelist() if name.endswith("/data.pkl") and name.count("/") == 1]
    if len(pickles) != 1:
        raise pickle.UnpicklingError("the zip holds no <name>/data.pkl, so it is not a torch checkpoint")
    prefix = pickles[0][: -len("data.pkl")]
    names = set(archive.namelist())
    little_endian = True
    if f"{prefix}byteorder" in names:
        little_endian = archive.read(f"{prefix}byteorder").strip() != b"big"
    storages: Dict[str, _StorageRef] = {}

    def persistent_load(pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid
        storage_type = _storage_type(storage_type)
        if not isinstance(key, str) or not _is_count(numel):
            raise pickle.UnpicklingError("malformed storage reference")
        if key not in storages:
            entry = f"{prefix}data/{key}"
            dtype = _raw_dtype(storage_type, little_endian)
            if entry not in names:
                raise pickle.UnpicklingError(f"the zip lacks {entry}")
            if archive.getinfo(entry).file_size != numel * dtype.itemsize:
                raise pickle.UnpicklingError(f"{entry} does not hold {numel} elements")
            storage = _StorageRef(key, storage_type, numel)
            storage.array = np.frombuffer(archive.read(entry), dtype=dtype)
            storages[key] = storage
        return storages[key]

    with archive.open(pickles[0]) as handle:
        return _RestrictedUnpickler(io.BytesIO(handle.read()), persistent_load).load()


def _state_dict_of(checkpoint) -> dict:
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict):
        raise ValueError(f"it holds a {type(checkpoint).__name__}, not a state dict")
    return checkpoint


def read_state_dict_without_torch(path: str) -> Dict[str, np.ndarray]:
    """The tensors of a torch checkpoint as numpy arrays, read without torch and without running code.

    Raises:
        WeightsFileError: naming `path`, for a file that is not a torch checkpoint, is truncated, or
            asks for any global a state dict does not need.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
            handle.seek(0)
            if head.startswith(b"PK"):
                with zipfile.ZipFile(handle) as archive:
                    checkpoint = _read_zip(archive)
            elif is_legacy_stream(head):
                handle.seek(0, io.SEEK_END)
                size = handle.tell()
                handle.seek(0)
                checkpoint = _read_legacy(handle, size)
            else:
                raise ValueError("it is neither a torch zip archive nor a legacy torch pickle")
        state_dict = _state_dict_of(checkpoint)
        return {
            key: value.to_numpy(key) for key, value in state_dict.items() if isinstance(value, _TensorRef)
        }
    except WeightsFileError:
        raise
    except RefusedGlobalError as error:
        raise WeightsFileError(f"Refused weights file {path!r}: {error}. Only state dicts of tensors are accepted.") from None
    except (Exception,) as error:  # noqa: BLE001 - any failure of a hostile or broken file is one error type.
        raise file_error(path, EXPECTED, error) from error
