"""Pretrained weights: the registry, Hub download and verification, conversion, cache and publishing.

Public entry points (re-exported by :mod:`keras_resnets`): :func:`list_weights`,
:func:`get_weights_record`, :func:`download_weights`, :func:`push_to_hub`; the builders call
:func:`load_weights`.
"""

import importlib

from keras_resnets.architecture.identity import WeightsMismatchError
from keras_resnets.weights.cache import cache_root
from keras_resnets.weights.catalog import DEFAULT_TAGS, get_weights_record, list_weights
from keras_resnets.weights.errors import WeightsFileError
from keras_resnets.weights.hub import WeightsIntegrityError, WeightsNotAvailableError
from keras_resnets.weights.records import Metrics, Preprocessing, WeightsRecord

# Imported on first use (PEP 562): these modules import Keras, and the registry above must stay
# importable without it (the command line lists weights without starting TensorFlow).
_LAZY = {
    "load_weights": "keras_resnets.weights.loader",
    "push_to_hub": "keras_resnets.weights.publishing",
    "write_model_folder": "keras_resnets.weights.publishing",
}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


def download_weights(weights: str, model=None, force_download: bool = False, timeout=None) -> str:
    """Download, verify and convert a registered weight set now; returns the cached ``.weights.h5`` path.

    Use it to prepare a machine for offline use (then ``HF_HUB_OFFLINE=1`` works, also on another
    machine once the Hugging Face cache folder is copied there), or with ``force_download=True`` to
    replace a corrupt download.

    Args:
        weights: a record name ("resnet50.tv_in1k"), or a tag/alias with `model` ("imagenet", "resnet50").
        model: model name, needed when `weights` is a tag.
        force_download: download and convert again even if cached.
        timeout: total seconds allowed for the download (default ``$KERAS_RESNETS_DOWNLOAD_TIMEOUT``, else 900).

    Raises:
        WeightsNotAvailableError: not published, Hub unreachable or past `timeout`, with what to do instead.
    """
    from keras_resnets.weights.hub import download_timeout
    from keras_resnets.weights.loader import cached_record_weights

    download_timeout(timeout)  # Reject a bad value before any work.
    record = get_weights_record(weights, model)
    return str(cached_record_weights(record, force_download=force_download, timeout=timeout))


__all__ = [
    "DEFAULT_TAGS",
    "Metrics",
    "Preprocessing",
    "WeightsFileError",
    "WeightsIntegrityError",
    "WeightsMismatchError",
    "WeightsNotAvailableError",
    "WeightsRecord",
    "cache_root",
    "download_weights",
    "get_weights_record",
    "list_weights",
    "load_weights",
    "push_to_hub",
    "write_model_folder",
]
