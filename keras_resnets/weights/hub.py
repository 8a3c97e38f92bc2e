"""Downloading weight files from the Hugging Face Hub and verifying them before use.

Files are fetched with ``huggingface_hub.hf_hub_download`` (its cache, its ``HF_ENDPOINT``/
``HF_HUB_OFFLINE``/``HF_HUB_CACHE`` settings) at a pinned revision where one is known, then their
sha256 is compared with the pinned value, or with the sha256 the Hub reported for the file (the
ETag of an LFS file, which names the cached blob). A file that does not match is never loaded.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import NamedTuple, Optional

DEFAULT_REVISION = "main"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class WeightsIntegrityError(ValueError):
    """A downloaded file is corrupt, truncated or tampered with; it was not loaded."""


class WeightsNotAvailableError(OSError):
    """Weights cannot be obtained: offline without a cached copy, or not found on the Hub."""


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


def download_verified(
    repo_id: str,
    filename: str,
    revision: Optional[str] = None,
    *,
    sha256: Optional[str] = None,
    require_sha256: bool = True,
    force_download: bool = False,
    description: str = "weights",
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

    Raises:
        WeightsNotAvailableError: offline with nothing cached, or the repository/revision/file does not exist.
        WeightsIntegrityError: the file's sha256 differs from the expected one, or the download was incomplete.
    """
    import huggingface_hub
    from huggingface_hub import constants, errors

    revision = revision or DEFAULT_REVISION
    url = f"{constants.ENDPOINT}/{repo_id}/blob/{revision}/{filename}"
    try:
        path = huggingface_hub.hf_hub_download(
            repo_id, filename, revision=revision, force_download=force_download
        )
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
                f"{repo_id}/{filename} @ {revision} is not in the local cache ({constants.HF_HUB_CACHE}). "
                f"Download it once with network access: {_fetch_command(repo_id, filename, revision)}, "
                "or copy a populated cache folder to this machine and point HF_HUB_CACHE at it."
            ) from error
        raise WeightsNotAvailableError(
            f"Cannot download {description} from {url} and no cached copy exists: {error}. "
            f"When the Hub is reachable, run: {_fetch_command(repo_id, filename, revision)}"
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
