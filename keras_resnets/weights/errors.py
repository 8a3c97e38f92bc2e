"""The one error type for weight files that cannot be read or must not be used."""

from __future__ import annotations


class WeightsFileError(ValueError):
    """A weights file is unreadable, truncated, not of the type its name says, unsafe or holds bad values.

    Raised instead of the many low-level errors of the file readers (OSError, EOFError, KeyError,
    zipfile.BadZipFile, h5py and safetensors errors, ...); the message names the file and what was expected.
    Nothing from such a file is loaded.
    """


def file_error(path, expected: str, problem) -> WeightsFileError:
    """A :class:`WeightsFileError` naming `path`, what kind of file was `expected` and the `problem` found."""
    if isinstance(problem, BaseException):
        detail = str(problem).strip().splitlines()[0] if str(problem).strip() else ""
        problem = f"{type(problem).__name__}: {detail}" if detail else type(problem).__name__
    return WeightsFileError(f"Cannot use weights file {str(path)!r}: expected {expected}; {problem}.")
