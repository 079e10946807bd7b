"""Files that cartokit writes: where it may write, and how it writes so that nothing is lost.

* :func:`check_output_file` refuses a path whose write would destroy something: a folder, a
  device, a pipe, a path under a regular file.
* :func:`atomic_write` writes through a temporary file renamed into place: the file appears whole
  or not at all, and an earlier file survives a crash.
* Folder markers (:func:`write_marker`, :func:`marker_kind`, :func:`check_output_folder`): a
  command that replaces a whole output folder (``cartokit run``, ``demo``, ``grid``) does so only
  for a folder it marked itself, or an empty one.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = [
    "MARKER_WRITERS",
    "RUN_MARKER",
    "atomic_write",
    "check_output_file",
    "check_output_folder",
    "marker_kind",
    "write_marker",
]

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
