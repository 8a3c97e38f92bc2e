"""Writing outputs without losing data: check first, write beside, rename into place.

Every folder or file the library writes for the user (exports, fine-tuning outputs, published model
folders) goes through :func:`check_destination` before any work and :func:`atomic_output` for the
writing itself:

* an existing destination is replaced only with ``overwrite=True`` and only if an earlier run of this
  library wrote it: folders carry the marker file :data:`MARKER_NAME`, single files a hidden sidecar
  ``.<name>.keras_resnets``. Anything else (a folder of your photos, a file of another program) is
  refused and left untouched;
* an unwritable destination (a path under a regular file, a read-only folder) is reported before any
  training or export starts;
* the output is written into a temporary folder/file beside the destination and renamed into place
  only when complete, so a full disk or a crash leaves the old output (or nothing), never half a new one.

Standard library only, so every layer of the package may use it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from typing import Iterator

MARKER_NAME = ".keras_resnets_output"


class OutputPathError(ValueError):
    """An output destination cannot be used (exists, foreign, unwritable); nothing was changed."""


class OutputExistsError(OutputPathError):
    """The destination exists and may not (or cannot safely) be replaced; nothing was changed."""


def _marker_content(kind: str) -> str:
    return json.dumps({"written_by": "keras_resnets", "kind": kind}) + "\n"


def _sidecar(path: str) -> str:
    parent, name = os.path.split(os.path.abspath(path))
    return os.path.join(parent, f".{name}.keras_resnets")


def written_by_this_library(path) -> bool:
    """Whether `path` (a folder or file) carries the marker this module writes."""
    path = os.fspath(path)
    marker = os.path.join(path, MARKER_NAME) if os.path.isdir(path) else _sidecar(path)
    try:
        with open(marker, encoding="utf-8") as handle:
            return json.load(handle).get("written_by") == "keras_resnets"
    except (OSError, ValueError, AttributeError):
        return False


def _nearest_existing(path: str) -> str:
    current = os.path.abspath(path)
    while not os.path.exists(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def check_destination(path, *, overwrite: bool, kind: str, is_directory: bool = True) -> str:
    """Check, before any work, that `kind` (e.g. "export") can be written at `path`; returns the path.

    Raises:
        OutputExistsError: `path` exists (a non-empty folder or a file) and `overwrite` is False, or it
            was not written by this library, or it is a file where a folder is expected (or vice versa).
        OutputPathError: the destination cannot be created (a path under a regular file, or a folder
            without write permission).
    """
    path = os.path.abspath(os.fspath(path))
    if os.path.lexists(path):
        if is_directory and not os.path.isdir(path):
            raise OutputExistsError(f"The {kind} destination {path!r} is a file, expected a folder; nothing was changed.")
        if not is_directory and os.path.isdir(path):
            raise OutputExistsError(f"The {kind} destination {path!r} is a folder, expected a file; nothing was changed.")
        empty_folder = is_directory and not os.listdir(path)
        if not empty_folder:
            if not overwrite:
                raise OutputExistsError(
                    f"The {kind} destination {path!r} exists"
                    f"{' and is not empty' if is_directory else ''}; pass overwrite=True (--overwrite on the "
                    "command line) to replace an earlier output of keras_resnets, or choose another path."
                )
            if not written_by_this_library(path):
                marker = MARKER_NAME if is_directory else os.path.basename(_sidecar(path))
                raise OutputExistsError(
                    f"Refusing to overwrite {path!r}: it was not written by keras_resnets (no {marker} marker), "
                    f"so replacing it could destroy unrelated files. Nothing was changed; choose another path "
                    "or remove it yourself."
                )
    existing = _nearest_existing(os.path.dirname(path))
    if not os.path.isdir(existing):
        raise OutputPathError(
            f"Cannot write the {kind} to {path!r}: {existing!r} is a file, not a folder. Nothing was written."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputPathError(
            f"Cannot write the {kind} to {path!r}: folder {existing!r} is not writable. Nothing was written."
        )
    return path


def _clear_error(error: OSError, kind: str, path: str) -> OSError:
    reason = error.strerror or str(error)
    message = (f"Writing the {kind} to {path!r} failed: {reason}. Nothing was written there "
               "(the partial output was removed; an earlier output, if any, is unchanged).")
    return type(error)(error.errno, message) if error.errno is not None else OSError(message)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        with contextlib.suppress(OSError):
            os.remove(path)


@contextlib.contextmanager
def atomic_output(path, *, overwrite: bool, kind: str, is_directory: bool = True) -> Iterator[str]:
    """Yield a temporary folder (or file path) beside `path`; on success mark it and rename it to `path`.

    The destination is checked first (:func:`check_destination`); an earlier output there is replaced
    only after the new one is complete. On any error the temporary output is removed; an ``OSError``
    (full disk, permissions) is re-raised with a message naming `path`.
    """
    path = check_destination(path, overwrite=overwrite, kind=kind, is_directory=is_directory)
    parent, name = os.path.split(path)
    token = uuid.uuid4().hex[:8]
    suffix = "" if is_directory else os.path.splitext(name)[1]  # Writers pick the format from it (.tflite).
    temporary = os.path.join(parent, f".{name}.partial-{token}{suffix}")
    try:
        os.makedirs(parent, exist_ok=True)
        if is_directory:
            os.mkdir(temporary)
        yield temporary
        if is_directory:
            with open(os.path.join(temporary, MARKER_NAME), "w", encoding="utf-8") as handle:
                handle.write(_marker_content(kind))
        _replace(temporary, path, kind, overwrite, is_directory)
    except OSError as error:
        _remove(temporary)
        raise _clear_error(error, kind, path) from error
    except BaseException:
        _remove(temporary)
        raise


def _replace(temporary: str, path: str, kind: str, overwrite: bool, is_directory: bool) -> None:
    # Checked again: the destination may have appeared while the output was being written.
    check_destination(path, overwrite=overwrite, kind=kind, is_directory=is_directory)
    if not is_directory:
        sidecar = _sidecar(path)
        with open(sidecar + ".partial", "w", encoding="utf-8") as handle:
            handle.write(_marker_content(kind))
        os.replace(temporary, path)
        os.replace(sidecar + ".partial", sidecar)
        return
    if not os.path.exists(path):
        os.rename(temporary, path)
        return
    old = f"{temporary}.old"
    os.rename(path, old)  # An empty folder, or an earlier output of this library (checked above).
    try:
        os.rename(temporary, path)
    except OSError:
        os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_text_atomically(path, text: str) -> None:
    """Write `text` to `path` through a temporary file beside it and a rename."""
    path = os.fspath(path)
    temporary = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.partial-{uuid.uuid4().hex[:8]}")
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
