"""Getting a registry record's file onto this machine, without Keras: the part of loading that needs
the network, so callers (the command line) can fail on missing weights before starting TensorFlow."""

from __future__ import annotations

from keras_resnets.weights import hub
from keras_resnets.weights.cache import cache_root
from keras_resnets.weights.records import WeightsRecord


def unavailable_hint(record: WeightsRecord) -> str:
    """What a user without (working) network access can do to load `record`'s weights."""
    from huggingface_hub import constants

    return (
        "On a machine with network access run "
        f"`python -c \"import keras_resnets; keras_resnets.download_weights({record.name!r})\"` and copy "
        f"{constants.HF_HUB_CACHE} and {cache_root()} to the same places here; or load a local "
        f"weights file (weights='/path/to/{record.filename}' in Python, --weights /path/to/{record.filename} "
        "on the command line)."
    )


def fetch_record(record: WeightsRecord, force_download: bool = False, timeout=None) -> hub.DownloadedFile:
    """Download (or find in the Hub cache) and verify the file of `record` within `timeout` seconds."""
    if not record.published:
        raise hub.WeightsNotAvailableError(
            f"Weights {record.name!r} are not published on the Hub, so they cannot be downloaded. "
            f"{record.local_alternative}"
        )
    try:
        return hub.download_verified(
            record.repo_id, record.filename, record.revision, sha256=record.sha256,
            force_download=force_download, description=f"weights {record.name!r}", timeout=timeout,
            hint=unavailable_hint(record),
        )
    except hub.WeightsIntegrityError as error:
        raise hub.WeightsIntegrityError(
            f"{error} Or run keras_resnets.download_weights({record.name!r}, force_download=True)."
        ) from error
    except hub.WeightsNotAvailableError as error:
        # Weights with a local copy (the project's own, committed in the repository) say where it is.
        if record.local_alternative and record.local_alternative not in str(error):
            raise type(error)(f"{error} {record.local_alternative}") from error
        raise
