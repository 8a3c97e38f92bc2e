"""Reading torch-layout checkpoints from disk as ``{name: numpy array}`` state dicts.

Formats: ``.safetensors`` (timm / torchvision), ``.npz`` (a state dict saved with numpy), and the
legacy torch pickle ``.th``/``.pth``/``.pt`` (needs the optional ``torch`` package). Keys lose the
``module.`` prefix that ``torch.nn.DataParallel`` adds.
"""

from __future__ import annotations

import os
from typing import Dict

import numpy as np

SAFETENSORS_SUFFIXES = (".safetensors",)
NPZ_SUFFIXES = (".npz",)
TORCH_PICKLE_SUFFIXES = (".th", ".pth", ".pt")
TORCH_LAYOUT_SUFFIXES = SAFETENSORS_SUFFIXES + NPZ_SUFFIXES + TORCH_PICKLE_SUFFIXES
# Classifier names used by known checkpoints: torchvision/timm "fc", akamaster's CIFAR nets "linear".
HEAD_NAMES = ("fc", "linear")


def _strip_data_parallel_prefix(state_dict: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    if state_dict and all(key.startswith("module.") for key in state_dict):
        return {key[len("module."):]: value for key, value in state_dict.items()}
    return state_dict


def _read_torch_pickle(path: str) -> Dict[str, np.ndarray]:
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            f"Reading the torch pickle {path!r} needs PyTorch (`pip install torch`), which keras_resnets does "
            "not require. Alternatively convert it once to .npz "
            "(`numpy.savez(out, **{k: v.numpy() for k, v in state_dict.items()})`) and load that."
        ) from error
    # weights_only=False because legacy checkpoints pickle a dict with extra entries (e.g. best_prec1);
    # only load files you trust.
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    state_dict = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else checkpoint
    return {key: value.detach().cpu().numpy() for key, value in state_dict.items() if hasattr(value, "detach")}


def read_state_dict(path) -> Dict[str, np.ndarray]:
    """Read a torch-layout checkpoint (.safetensors, .npz, .th/.pth/.pt) into numpy arrays.

    Raises:
        ValueError: for any other file type.
    """
    path = os.fspath(path)
    lower = path.lower()
    if lower.endswith(SAFETENSORS_SUFFIXES):
        from safetensors.numpy import load_file

        state_dict = load_file(path)
    elif lower.endswith(NPZ_SUFFIXES):
        with np.load(path, allow_pickle=False) as archive:
            state_dict = {key: archive[key] for key in archive.files}
    elif lower.endswith(TORCH_PICKLE_SUFFIXES):
        state_dict = _read_torch_pickle(path)
    else:
        raise ValueError(
            f"Unknown checkpoint type; accepted: {TORCH_LAYOUT_SUFFIXES}. Received: path={path!r}"
        )
    return _strip_data_parallel_prefix(state_dict)


def head_name_of(state_dict: Dict[str, np.ndarray]) -> str:
    """The checkpoint's name for the classifier ("fc" unless only a known alternative is present)."""
    for name in HEAD_NAMES:
        if f"{name}.weight" in state_dict:
            return name
    return HEAD_NAMES[0]
