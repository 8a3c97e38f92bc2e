"""Downloading weight files from the Hugging Face Hub and verifying them before use.

Files are fetched with ``huggingface_hub.hf_hub_download`` (its cache, its ``HF_ENDPOINT``/
``HF_HUB_OFFLINE``/``HF_HUB_CACHE`` settings) at a pinned revision where one is known, then their
sha256 is compared with the pinned value, or with the sha256 the Hub reported for the file (the
ETag of an LFS file, which names the cached blob). A file that does not match is never loaded.

Downloads cannot hang: each file has a total deadline (``timeout`` argument, else
``$KERAS_RESNETS_DOWNLOAD_TIMEOUT`` seconds, default :data:`DEFAULT_DOWNLOAD_TIMEOUT_S`), and before
asking huggingface_hub (which retries a failing connection for minutes) for a file it does not have
locally, a TCP connection to the Hub endpoint is tried with a short timeout, so an unreachable Hub fails
in seconds with what to do instead.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import re
import socket
import threading
import time
import urllib.parse
from typing import NamedTuple, Optional

DEFAULT_REVISION = "main"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
TIMEOUT_ENV = "KERAS_RESNETS_DOWNLOAD_TIMEOUT"
# Generous enough for ResNet-152 (230 MB) on a slow link; a stalled transfer is caught by the deadline.
DEFAULT_DOWNLOAD_TIMEOUT_S = 900.0
PROBE_TIMEOUT_S = 3.0


class WeightsIntegrityError(ValueError):
    """A downloaded file is corrupt, truncated or tampered with; it was not loaded."""


class WeightsNotAvailableError(OSError):
    """Weights cannot be obtained: offline without a cached copy, or not found on the Hub."""


class DownloadTimeoutError(WeightsNotAvailableError):
    """A download did not finish within its deadline; nothing was loaded."""


class DownloadedFile(NamedTuple):
    """A verified file from the Hub."""

    path: str
    sha256: str


def file_sha256(path, chunk_size: int = 1 << 22) -> str:
    """Hex sha256 of the file at `path`."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _hub_sha256_of(path: str) -> Optional[str]:
    """The sha256 the Hub reported for a cached file: LFS blobs are stored under their ETag (sha256)."""
    blob_name = os.path.basename(os.path.realpath(path))
    return blob_name if _SHA256.match(blob_name) else None


def _redownload_hint(repo_id, filename, revision, path):
    return (
        f"Delete the cached file ({os.path.realpath(path)}) or download it again with "
        f"huggingface_hub.hf_hub_download({repo_id!r}, {filename!r}, revision={revision!r}, force_download=True)."
    )


def _fetch_command(repo_id, filename, revision):
    return (
        f"python -c \"import huggingface_hub; huggingface_hub.hf_hub_download({repo_id!r}, {filename!r}, "
        f"revision={revision!r})\"  (or: hf download {repo_id} {filename} --revision {revision})"
    )


def download_timeout(timeout=None) -> float:
    """The total deadline in seconds for one file: `timeout`, else ``$KERAS_RESNETS_DOWNLOAD_TIMEOUT``, else 900.

    Raises:
        ValueError: naming the argument or the variable, if the value is not a positive number.
    """
    source, value = "timeout", timeout
    if value is None:
        source, value = TIMEOUT_ENV, os.environ.get(TIMEOUT_ENV)
        if value in (None, ""):
            return DEFAULT_DOWNLOAD_TIMEOUT_S
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if isinstance(value, bool) or not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"`{source}` must be a positive number of seconds. Received: {source}={value!r}")
    return seconds


def endpoint_reachable(endpoint: str, timeout: float = PROBE_TIMEOUT_S) -> Optional[str]:
    """None if a TCP connection to `endpoint` (a URL) opens within `timeout` seconds, else why not.

    Runs in a helper thread, so a hanging name lookup cannot outlast `timeout` either.
    """
    parsed = urllib.parse.urlsplit(endpoint)
    host = parsed.hostname or ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    outcome = []

    def connect():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as error:
            outcome.append(f"{type(error).__name__}: {error}")

    worker = threading.Thread(target=connect, name="keras-resnets-hub-probe", daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    if not outcome:
        return f"no answer from {host}:{port} within {timeout:g} s"
    return outcome[0]


def _deadline_tqdm(deadline: float, cancelled: threading.Event):
    """A huggingface_hub progress-bar class that aborts the transfer once cancelled or past `deadline`."""
    from huggingface_hub.utils import tqdm as hub_tqdm

    class DeadlineProgress(hub_tqdm):
        def update(self, n=1):
            if cancelled.is_set() or time.monotonic() > deadline:
                raise DownloadTimeoutError("download cancelled: past its deadline")
            return super().update(n)

    return DeadlineProgress


def _hf_hub_download_before(deadline: float, seconds: float, **kwargs) -> str:
    """``hf_hub_download(**kwargs)`` in a helper thread, abandoned (and told to stop) at `deadline`.

    huggingface_hub's own timeouts bound single reads, not a whole transfer: a server that trickles
    bytes, or accepts a connection and never answers, would otherwise hold the caller for minutes.
    """
    import huggingface_hub

    cancelled = threading.Event()
    if "tqdm_class" in inspect.signature(huggingface_hub.hf_hub_download).parameters:
        kwargs["tqdm_class"] = _deadline_tqdm(deadline, cancelled)
    outcome = {}

    def download():
        try:
            outcome["path"] = huggingface_hub.hf_hub_download(**kwargs)
        except BaseException as error:  # Re-raised in the caller's thread.
            outcome["error"] = error

    worker = threading.Thread(target=download, name="keras-resnets-download", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    if worker.is_alive():
        cancelled.set()
        raise DownloadTimeoutError(f"it did not finish within its {seconds:g} s deadline")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["path"]


def _local_copy(repo_id: str, filename: str, revision: str) -> Optional[str]:
    """The file from huggingface_hub's cache without any request, or None."""
    import huggingface_hub
    from huggingface_hub import errors

    try:
        return huggingface_hub.hf_hub_download(repo_id, filename, revision=revision, local_files_only=True)
    except (errors.LocalEntryNotFoundError, errors.EntryNotFoundError, OSError):
        return None


def download_verified(
    repo_id: str,
    filename: str,
    revision: Optional[str] = None,
    *,
    sha256: Optional[str] = None,
    require_sha256: bool = True,
    force_download: bool = False,
    description: str = "weights",
    timeout: Optional[float] = None,
    hint: Optional[str] = None,
) -> DownloadedFile:
    """Download `filename` of `repo_id` at `revision` (default "main") and verify its sha256.

    Args:
        repo_id: Hub repository ("timm/resnet50.tv_in1k").
        filename: file inside the repository.
        revision: full commit id (pinned; then a cached copy is used without any request) or a branch.
        sha256: expected sha256 of the file; when None the sha256 reported by the Hub (LFS ETag) is used.
        require_sha256: raise if no expected sha256 is known at all (non-LFS file and no pin).
        force_download: download again even if the file is cached.
        description: what the file is, for error messages.
        timeout: total deadline in seconds (default: ``$KERAS_RESNETS_DOWNLOAD_TIMEOUT``, else 900).
        hint: what the user can do when the file cannot be downloaded (default: the huggingface_hub
            command that fetches it).

    Raises:
        WeightsNotAvailableError: offline or Hub unreachable with nothing cached, past the deadline
            (:class:`DownloadTimeoutError`), or the repository/revision/file does not exist.
        WeightsIntegrityError: the file's sha256 differs from the expected one, or the download was incomplete.
        ValueError: `timeout` is not a positive number.
    """
    from huggingface_hub import constants, errors

    seconds = download_timeout(timeout)
    deadline = time.monotonic() + seconds
    revision = revision or DEFAULT_REVISION
    url = f"{constants.ENDPOINT}/{repo_id}/blob/{revision}/{filename}"
    hint = hint or f"When the Hub is reachable, run: {_fetch_command(repo_id, filename, revision)}"
    path = None
    if not force_download and _COMMIT.match(revision):
        path = _local_copy(repo_id, filename, revision)  # Pinned and cached: no network at all.
    if path is None and not constants.is_offline_mode():
        problem = endpoint_reachable(constants.ENDPOINT, min(PROBE_TIMEOUT_S, seconds))
        if problem is not None:
            path = None if force_download else _local_copy(repo_id, filename, revision)
            if path is None:
                raise WeightsNotAvailableError(
                    f"Cannot download {description}: the Hugging Face Hub ({constants.ENDPOINT}) is unreachable "
                    f"({problem}) and no cached copy exists. {hint}"
                )
    try:
        if path is None:
            path = _hf_hub_download_before(
                deadline, seconds, repo_id=repo_id, filename=filename, revision=revision,
                force_download=force_download,
                etag_timeout=max(0.1, min(constants.HF_HUB_ETAG_TIMEOUT, deadline - time.monotonic())),
            )
    except DownloadTimeoutError as error:
        raise DownloadTimeoutError(
            f"Cannot download {description} from {url}: {error} (set by the `timeout` argument or "
            f"{TIMEOUT_ENV}). Nothing was loaded. {hint}"
        ) from None
    except (errors.RepositoryNotFoundError, errors.RevisionNotFoundError, errors.RemoteEntryNotFoundError) as error:
        raise WeightsNotAvailableError(
            f"Cannot download {description}: {url} was not found on the Hub (HTTP "
            f"{getattr(getattr(error, 'response', None), 'status_code', '404')}, {type(error).__name__}). Check the "
            "repository id, revision and filename (a private repository also needs a token: `hf auth login`)."
        ) from error
    except errors.LocalEntryNotFoundError as error:
        if constants.is_offline_mode():
            raise WeightsNotAvailableError(
                f"Cannot load {description}: the Hugging Face Hub is offline (HF_HUB_OFFLINE=1) and "
                f"{repo_id}/{filename} @ {revision} is not in the local cache ({constants.HF_HUB_CACHE}). {hint}"
            ) from error
        raise WeightsNotAvailableError(
            f"Cannot download {description} from {url} and no cached copy exists: {error}. {hint}"
        ) from error
    except OSError as error:
        if "Consistency check failed" in str(error):
            raise WeightsIntegrityError(
                f"The download of {description} from {url} was incomplete ({error}). Nothing was loaded or cached; "
                "try again (huggingface_hub.hf_hub_download(..., force_download=True))."
            ) from error
        raise

    expected = sha256 or _hub_sha256_of(path)
    if expected is None:
        if require_sha256:
            raise WeightsIntegrityError(
                f"Cannot verify {description} ({path}): no sha256 is pinned and the Hub did not report one "
                "(the file is not stored with Git LFS). It was not loaded."
            )
        return DownloadedFile(path, file_sha256(path))
    actual = file_sha256(path)
    if actual != expected:
        source = "pinned in the weights registry" if sha256 else "reported by the Hub (LFS ETag)"
        raise WeightsIntegrityError(
            f"sha256 mismatch for {description} ({repo_id}/{filename} @ {revision}): the file has {actual}, "
            f"expected {expected} ({source}). The file is corrupt or was tampered with and was NOT loaded. "
            + _redownload_hint(repo_id, filename, revision, path)
        )
    return DownloadedFile(path, actual)
