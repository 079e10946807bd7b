"""Input checks shared by the public functions, and the sentences they raise.

Every public function validates its input once, here, and then hands plain arrays to a private
twin that assumes they are valid. The messages say what was expected, what was got, and how to
fix it.
"""

from __future__ import annotations

import json
import os
import stat
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


_SPECIAL_FILES = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
)


def _file_above(path: Path) -> Path | None:
    """The regular file that stands where a folder above ``path`` should be, if any."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def check_output_file(path: str | os.PathLike[str]) -> Path:
    """Where a file may be written: ``path`` itself, or its target when ``path`` is a symlink.

    A write replaces the file at ``path`` (see :func:`atomic_write`), so this refuses an empty
    path, a folder, and anything that is not a regular file (a device such as ``/dev/null``, a
    pipe, a socket), which a write would swap for a regular file; and a path under a regular
    file, which no one can write.

    Raises
    ------
    ValueError
        For any of those, in one sentence that names the path.
    """
    if os.fspath(path) == "":
        raise ValueError("The output path is empty; give the name of the file to write.")
    path = Path(path)
    # a symlink names the file the user means: write its target and keep the link
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    if path.is_dir():
        raise ValueError(f"Cannot write {path}: it is a folder. Give the path of a file.")
    if path.exists() and not path.is_file():
        mode = path.stat().st_mode
        kind = next((name for test, name in _SPECIAL_FILES if test(mode)), "not a regular file")
        raise ValueError(
            f"Cannot write {path}: it is {kind}, and writing a file there would replace it. "
            "Give the path of a regular file."
        )
    blocker = _file_above(path)
    if blocker is not None:
        raise ValueError(
            f"Cannot write {path}: {blocker} is a file, not a folder. Choose another path."
        )
    return path


#: The file that marks a folder as written by cartokit, and so safe for cartokit to replace.
RUN_MARKER = "run.json"
#: The commands that write a marked folder; each replaces only folders it marked itself.
MARKER_WRITERS = ("cartokit run", "cartokit demo", "cartokit grid")


def marker_kind(folder: str | os.PathLike[str]) -> str | None:
    """Which cartokit command wrote ``folder`` ("cartokit run", "cartokit demo", "cartokit grid"),
    read from its ``run.json``; ``None`` when it has no such marker.

    A ``run.json`` someone else wrote is not enough: the marker must name its command, or (run
    folders from before the marker named it) hold ``run_study``'s parameters and timings.
    """
    marker = Path(folder) / RUN_MARKER
    try:
        if not marker.is_file() or marker.stat().st_size > 1 << 20:
            return None
        info = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # ValueError: not JSON, not UTF-8
        return None
    if not isinstance(info, dict):
        return None
    if info.get("written_by") in MARKER_WRITERS:
        return info["written_by"]
    notebooks = info.get("notebooks")
    if (
        isinstance(info.get("params"), dict)
        and isinstance(notebooks, list)
        and all(isinstance(nb, dict) and "name" in nb for nb in notebooks)
    ):
        return "cartokit run"
    return None


def write_marker(folder: str | os.PathLike[str], written_by: str, **info: Any) -> Path:
    """Write ``folder/run.json``, saying which cartokit command wrote the folder."""
    path = Path(folder) / RUN_MARKER
    with atomic_write(path, "w") as fh:
        json.dump({"written_by": written_by, **info}, fh, indent=2, default=str)
        fh.write("\n")
    return path


def check_output_folder(
    folder: str | os.PathLike[str], *, written_by: str, option: str = "--out"
) -> Path:
    """Refuse an output folder that ``written_by`` (a cartokit command) must not write into.

    Such a command replaces the folder, or the files it writes there. It may do so in a folder
    that does not exist, an empty one, or one whose marker (:func:`marker_kind`) names the same
    command; any other folder may hold someone's work, and a regular file is not a folder.

    Raises
    ------
    ValueError
        In one sentence that names the folder and says to choose another.
    """
    folder = Path(folder)
    if not folder.exists():
        blocker = _file_above(folder)
        if blocker is not None:
            raise ValueError(
                f"{written_by} cannot make the folder {folder}: {blocker} is a file; "
                f"choose another {option}."
            )
        return folder
    if not folder.is_dir():
        raise ValueError(
            f"{written_by} writes a folder, and {folder} is a file; choose another {option}."
        )
    if next(folder.iterdir(), None) is None:
        return folder
    kind = marker_kind(folder)
    if kind == written_by:
        return folder
    what = f"was written by {kind}" if kind else f"has no {RUN_MARKER} from {written_by}"
    raise ValueError(
        f"{written_by} replaces what it wrote in its output folder, and {folder} is not empty "
        f"and {what}, so it may hold other work; choose another {option} (a new or empty folder)."
    )


@contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Write ``path`` through a temporary file in the same folder, renamed into place on success.

    A crash or an exception in the ``with`` block leaves any earlier file at ``path`` untouched and
    no partial file behind. A symlink at ``path`` is kept and its target written. Anything at
    ``path`` that is not a regular file (a folder, a device such as ``/dev/null``, a pipe) is
    refused with a ValueError before anything is written (:func:`check_output_file`), since the
    rename would replace it.
    """
    path = check_output_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:  # name the file asked for, not the temporary one
        reason = f"cannot create a file in {path.parent} ({err.strerror})"
        raise OSError(err.errno, reason, str(path)) from None
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
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        if err.filename is None and err.errno is not None:  # a failed write: say which file
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
