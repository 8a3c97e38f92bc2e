"""Pretrained weights: the registry, Hub download and verification, conversion, cache and publishing.

Public entry points (re-exported by :mod:`keras_resnets`): :func:`list_weights`,
:func:`get_weights_record`, :func:`download_weights`, :func:`push_to_hub`; the builders call
:func:`load_weights`.
"""

from keras_resnets.weights.cache import cache_root
from keras_resnets.weights.catalog import DEFAULT_TAGS, get_weights_record, list_weights
from keras_resnets.weights.errors import WeightsFileError
from keras_resnets.weights.hub import WeightsIntegrityError, WeightsNotAvailableError
from keras_resnets.weights.loader import load_weights
from keras_resnets.weights.publishing import push_to_hub, write_model_folder
from keras_resnets.weights.records import Metrics, Preprocessing, WeightsRecord
from keras_resnets.weights.torch_layout import WeightsMismatchError


def download_weights(weights: str, model=None, force_download: bool = False) -> str:
    """Download, verify and convert a registered weight set now; returns the cached ``.weights.h5`` path.

    Use it to prepare a machine for offline use (then ``HF_HUB_OFFLINE=1`` works), or with
    ``force_download=True`` to replace a corrupt download.

    Args:
        weights: a record name ("resnet50.tv_in1k"), or a tag/alias with `model` ("imagenet", "resnet50").
        model: model name, needed when `weights` is a tag.
        force_download: download and convert again even if cached.
    """
    from keras_resnets.weights.loader import cached_record_weights

    record = get_weights_record(weights, model)
    return str(cached_record_weights(record, force_download=force_download))


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
