"""Input checks shared by the public functions, and the sentences they raise.

Every public function validates its input once, here, and then hands plain arrays to a private
twin that assumes they are valid. The messages say what was expected, what was got, and how to
fix it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np


def first_few(values: Sequence[Any] | np.ndarray, k: int = 5) -> str:
    """Render at most ``k`` values for an error message, with an ellipsis when there are more."""
    values = list(values[: k + 1])
    shown = ", ".join(repr(v.item() if isinstance(v, np.generic) else v) for v in values[:k])
    return f"[{shown}{', ...' if len(values) > k else ''}]"


def check_int(name: str, value: Any, *, caller: str, minimum: int | None = None) -> int:
    """Return ``value`` as an int, or raise in the scikit-learn sentence style."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"The '{name}' parameter of {caller} must be an int. "
            f"Got {value!r} of type {type(value).__name__} instead."
        )
    if minimum is not None and value < minimum:
        raise ValueError(
            f"The '{name}' parameter of {caller} must be an int >= {minimum}. Got {value} instead."
        )
    return int(value)


def check_labels(
    labels: np.ndarray,
    num_classes: int,
    *,
    caller: str,
    what: str = "labels",
    hint: str = "Check num_classes or remap the labels.",
) -> np.ndarray:
    """Labels must be a 1-D integer array with values in ``[0, num_classes)``."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"{caller}: labels must be 1-D, one per sample. Got shape {labels.shape}.")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        if np.issubdtype(labels.dtype, np.floating) and np.all(np.mod(labels, 1) == 0):
            labels = labels.astype(np.int64)
        else:
            raise TypeError(
                f"{caller}: labels must be integer class indices. Got dtype {labels.dtype}; "
                "map class names to indices first (e.g. with pandas.factorize)."
            )
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        raise ValueError(
            f"{caller}: {what} must be in [0, {num_classes}) for {num_classes} classes. "
            f"{bad.size} are not, at positions {first_few(bad)} with values "
            f"{first_few(labels[bad])}. {hint}"
        )
    return labels.astype(np.int64, copy=False)


def check_ids(ids: Any, num_samples: int, *, caller: str) -> np.ndarray:
    """Sample ids: ``None`` means ``0..N-1``; otherwise N unique ints or strings."""
    if ids is None:
        return np.arange(num_samples, dtype=np.int64)
    arr = np.asarray(ids)
    if arr.ndim != 1 or arr.shape[0] != num_samples:
        raise ValueError(
            f"{caller}: ids must be a 1-D sequence of {num_samples} sample ids, one per sample. "
            f"Got shape {arr.shape}."
        )
    if np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.int64, copy=False)
    elif arr.dtype.kind in "UO":
        arr = np.array([str(v) for v in arr], dtype=object)
    else:
        raise TypeError(f"{caller}: ids must be integers or strings. Got dtype {arr.dtype}.")
    uniq, counts = np.unique(arr.astype(str) if arr.dtype == object else arr, return_counts=True)
    if uniq.shape[0] != num_samples:
        dup = uniq[counts > 1]
        raise ValueError(
            f"{caller}: ids must be unique. {dup.size} ids occur more than once, "
            f"for example {first_few(dup)}."
        )
    return arr


@contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Write ``path`` through a temporary file in the same folder, renamed into place on success.

    A crash or an exception in the ``with`` block leaves any earlier file at ``path`` untouched and
    no partial file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); give it the mode a plain open() would have.
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
