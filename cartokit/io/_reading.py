"""What the line-by-line dynamics readers (:mod:`.allenai`, :mod:`.trustai`) and format
detection share: refusing special files before opening them, and the words of their errors.

Every error names the file and, where one is to blame, the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ClassCount",
    "check_regular",
    "clip",
    "has_duplicates",
    "is_int64",
    "list_matrix",
    "not_utf8",
]

_INT64 = np.iinfo(np.int64)


def check_regular(path: Path, caller: str) -> None:
    """Refuse devices, pipes and sockets before opening: /dev/zero never ends, a FIFO blocks."""
    if path.exists() and not path.is_dir() and not path.is_file():
        raise ValueError(
            f"{caller}: {path} is not a regular file or folder (a device, pipe or socket). "
            "Pass a dynamics file or run folder."
        )


def not_utf8(err: UnicodeDecodeError) -> str:
    """Why a line could not be read, from the byte that broke it."""
    return (
        f"not UTF-8 text (byte 0x{err.object[err.start]:02x} at column {err.start + 1}); "
        "is this a binary file? Dynamics files are UTF-8 JSON lines."
    )


def clip(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters: a bad value quoted in one line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_int64(value: Any) -> bool:
    """Whether ``value`` is a Python int (not a bool) that fits in int64."""
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and int(_INT64.min) <= value <= int(_INT64.max)
    )


def has_duplicates(ids: np.ndarray) -> bool:
    """Whether a 1-D array of ids (int64, or str objects) repeats one; without pandas, whose
    import would cost ``cartokit metrics`` more than this check."""
    if ids.dtype == object:
        return len(set(ids.tolist())) != len(ids)
    ordered = np.sort(ids)
    return bool((ordered[1:] == ordered[:-1]).any())


class ClassCount:
    """The number of classes of a file: its first row sets it, and every later row must match.

    ``values`` names what a row holds one of per class (``"logits"``), ``row`` what the file
    calls a row, ``each`` one value (``"logit"``): the words of the error.
    """

    def __init__(self, *, values: str, row: str, each: str) -> None:
        self.values, self.row, self.each = values, row, each
        self.count, self.line = 0, 0

    def check(self, count: int, lineno: int, where: str) -> None:
        """Note the count of line ``lineno`` (described by ``where`` in an error)."""
        if not self.count:
            self.count, self.line = count, lineno
        elif count != self.count:
            raise ValueError(
                f"{where}: {count} {self.values}, but line {self.line} has {self.count}; "
                f"every {self.row} needs one {self.each} per class."
            )


def list_matrix(column: Any) -> np.ndarray | None:
    """A pyarrow list column with one equal-length (>= 2) row of numbers per sample, as an
    ``(n, C)`` array; ``None`` when rows differ in length or hold nulls (the careful line scan
    then says which line).

    The row lengths come from the list offsets, in numpy, and the values are read from their
    buffer: neither ``pyarrow.compute`` nor pandas (which ``to_numpy`` imports) is loaded.
    """
    from cartokit.io._arrow import numbers_of

    if len(column) == 0 or column.null_count:
        return None
    offsets = numbers_of(column.offsets)
    lengths = np.diff(offsets)
    width = int(lengths[0])
    if width < 2 or (lengths != width).any():
        return None
    values = column.values  # the whole child array (flatten() would import pyarrow.compute)
    if values.null_count:
        return None
    return numbers_of(values)[offsets[0] : offsets[-1]].reshape(len(column), width)
