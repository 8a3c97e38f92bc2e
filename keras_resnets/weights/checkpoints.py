"""Reading (and writing) torch-layout checkpoints as ``{name: numpy array}`` state dicts.

Formats: ``.safetensors`` (timm / torchvision), ``.npz`` (a state dict saved with numpy), and the
torch pickle ``.th``/``.pth``/``.pt``. No code runs while reading: torch pickles are read with
``torch.load(weights_only=True)`` when torch is installed and otherwise by the restricted reader of
:mod:`keras_resnets.weights.torch_pickle`; ``.npz`` files are read without pickle. Keys lose the
``module.`` prefix that ``torch.nn.DataParallel`` adds.

A torch-layout file carries no architecture, and an option-A ResNet has exactly the tensors of its
plain twin. Files written by :func:`save_state_dict` therefore record the architecture (the ``.npz``
entry or safetensors metadata :data:`ARCHITECTURE_KEY`), returned by :func:`read_checkpoint`.
Every reading failure raises :class:`~keras_resnets.weights.errors.WeightsFileError` naming the file;
NaN or infinite values are refused, naming the tensor.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Dict, NamedTuple, Optional

import numpy as np

from keras_resnets.architecture.identity import Architecture
from keras_resnets.weights.errors import WeightsFileError, file_error

SAFETENSORS_SUFFIXES = (".safetensors",)
NPZ_SUFFIXES = (".npz",)
TORCH_PICKLE_SUFFIXES = (".th", ".pth", ".pt")
TORCH_LAYOUT_SUFFIXES = SAFETENSORS_SUFFIXES + NPZ_SUFFIXES + TORCH_PICKLE_SUFFIXES
# Classifier names used by known checkpoints: torchvision/timm "fc", akamaster's CIFAR nets "linear".
HEAD_NAMES = ("fc", "linear")
# Where files written by this project record the network they hold (npz entry / safetensors metadata key).
ARCHITECTURE_KEY = "__keras_resnets_architecture__"


class Checkpoint(NamedTuple):
    """A torch-layout state dict and the architecture its file records (None: the file does not say)."""

    state_dict: Dict[str, np.ndarray]
    architecture: Optional[Architecture]


def _strip_data_parallel_prefix(state_dict: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    if state_dict and all(key.startswith("module.") for key in state_dict):
        return {key[len("module."):]: value for key, value in state_dict.items()}
    return state_dict


def _read_torch_pickle(path: str) -> Dict[str, np.ndarray]:
    try:
        import torch
    except ImportError:
        from keras_resnets.weights.torch_pickle import read_state_dict_without_torch

        return read_state_dict_without_torch(path)
    try:
        # weights_only=True: torch refuses any global a state dict does not need, so no code runs.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many types for bad or unsafe files.
        raise file_error(path, "a torch state dict of tensors (loaded with weights_only=True)", error) from error
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("state_dict"), dict):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict):
        raise file_error(path, "a torch state dict", f"it holds a {type(checkpoint).__name__}")
    return {key: value.detach().cpu().numpy() for key, value in checkpoint.items() if hasattr(value, "detach")}


def _architecture_from_json(path: str, text) -> Architecture:
    try:
        return Architecture.from_dict(json.loads(str(text)))
    except (ValueError, TypeError) as error:
        raise file_error(path, f"a readable {ARCHITECTURE_KEY} record", error) from None


def _read_safetensors(path: str):
    from safetensors import safe_open

    try:
        with safe_open(path, framework="numpy") as handle:
            metadata = handle.metadata() or {}
            state_dict = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as error:  # noqa: BLE001 - SafetensorError, OSError, ... are all "unreadable".
        raise file_error(path, "a .safetensors file of tensors", error) from error
    recorded = metadata.get(ARCHITECTURE_KEY)
    return state_dict, None if recorded is None else _architecture_from_json(path, recorded)


def _read_npz(path: str):
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not hasattr(archive, "files"):
                raise ValueError("it is a single .npy array, not an archive of named arrays")
            state_dict = {key: archive[key] for key in archive.files}
    except WeightsFileError:
        raise
    except Exception as error:  # noqa: BLE001 - BadZipFile, EOFError, KeyError, pickled objects, ...
        raise file_error(path, "a .npz archive of numeric arrays (numpy.savez)", error) from error
    recorded = state_dict.pop(ARCHITECTURE_KEY, None)
    return state_dict, None if recorded is None else _architecture_from_json(path, recorded)


def check_finite(path: str, state_dict: Dict[str, np.ndarray]) -> None:
    """Raise :class:`WeightsFileError` naming `path` and the tensor if any value is NaN or infinite."""
    for key, value in state_dict.items():
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise file_error(path, "numeric tensors", f"tensor {key!r} has dtype {array.dtype}")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise file_error(path, "finite values", f"tensor {key!r} holds NaN or infinite values")


def require_regular_file(path: str, expected: str) -> None:
    """Raise :class:`WeightsFileError` unless `path` is an existing, non-empty regular file."""
    if os.path.isdir(path):
        raise file_error(path, expected, "it is a folder")
    if not os.path.exists(path):
        raise file_error(path, expected, "no such file")
    if not os.path.isfile(path):
        raise file_error(path, expected, "it is not a regular file (a device or pipe?)")
    if os.path.getsize(path) == 0:
        raise file_error(path, expected, "the file is empty")


def read_checkpoint(path) -> Checkpoint:
    """Read a torch-layout checkpoint (.safetensors, .npz, .th/.pth/.pt) and the architecture it records.

    Raises:
        ValueError: for any other file type.
        WeightsFileError: naming the file, if it is unreadable, unsafe or holds NaN/infinite values.
    """
    path = os.fspath(path)
    lower = path.lower()
    if not lower.endswith(TORCH_LAYOUT_SUFFIXES):
        raise ValueError(f"Unknown checkpoint type; accepted: {TORCH_LAYOUT_SUFFIXES}. Received: path={path!r}")
    require_regular_file(path, f"a torch-layout checkpoint {TORCH_LAYOUT_SUFFIXES}")
    architecture = None
    if lower.endswith(SAFETENSORS_SUFFIXES):
        state_dict, architecture = _read_safetensors(path)
    elif lower.endswith(NPZ_SUFFIXES):
        state_dict, architecture = _read_npz(path)
    else:
        state_dict = _read_torch_pickle(path)
    if not state_dict:
        raise file_error(path, "a state dict", "it holds no tensors")
    check_finite(path, state_dict)
    return Checkpoint(_strip_data_parallel_prefix(state_dict), architecture)


def read_state_dict(path) -> Dict[str, np.ndarray]:
    """The tensors of a torch-layout checkpoint (see :func:`read_checkpoint`)."""
    return read_checkpoint(path).state_dict


def save_state_dict(model, path) -> str:
    """Write `model`'s weights in torch layout (``.npz`` or ``.safetensors``), recording its architecture.

    The file loads into this zoo (and, renamed, into torchvision-style PyTorch code); it is written to
    a temporary file beside `path` and renamed, so a failed write leaves no partial file.
    """
    from keras_resnets.weights.torch_layout import state_dict_from_model

    path = os.fspath(path)
    lower = path.lower()
    if not lower.endswith(SAFETENSORS_SUFFIXES + NPZ_SUFFIXES):
        raise ValueError(f"`path` must end with .npz or .safetensors. Received: path={path!r}")
    state_dict = state_dict_from_model(model)
    recorded = json.dumps(Architecture.from_model(model).to_dict(), sort_keys=True)
    suffix = ".safetensors" if lower.endswith(SAFETENSORS_SUFFIXES) else ".npz"
    temporary = os.path.join(os.path.dirname(os.path.abspath(path)), f".{uuid.uuid4().hex[:8]}.partial{suffix}")
    try:
        if suffix == ".npz":
            with open(temporary, "wb") as handle:
                np.savez(handle, **state_dict, **{ARCHITECTURE_KEY: np.asarray(recorded)})
        else:
            from safetensors.numpy import save_file

            save_file(state_dict, temporary, metadata={ARCHITECTURE_KEY: recorded})
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def head_name_of(state_dict: Dict[str, np.ndarray]) -> str:
    """The checkpoint's name for the classifier ("fc" unless only a known alternative is present)."""
    for name in HEAD_NAMES:
        if f"{name}.weight" in state_dict:
            return name
    return HEAD_NAMES[0]
