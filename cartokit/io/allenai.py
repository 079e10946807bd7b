"""The layout of allenai/cartography (Swayamdipta et al., 2020): reading and writing.

A folder ``training_dynamics/`` holds ``dynamics_epoch_<e>.jsonl`` files, one JSON object per
line, ``{"guid": ..., "logits_epoch_<e>": [C floats], "gold": <int>}``. :func:`read_allenai`
parses each file with pyarrow and falls back to a literal line scan, which names the line of the
first problem, for anything pyarrow cannot vouch for; :func:`write_allenai` writes the layout
back, one atomic file per epoch.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import warnings
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from cartokit._files import atomic_write
from cartokit._validation import first_few, show
from cartokit.dynamics import TrainingDynamics, pred_dtype
from cartokit.io._arrow import numbers_of
from cartokit.io._reading import (
    ClassCount,
    clip,
    has_duplicates,
    is_int64,
    list_matrix,
    not_utf8,
)
from cartokit.metrics import checkpoint_stats_numpy

__all__ = ["read_allenai", "write_allenai"]

#: The folder of a run that holds the epoch files.
DYNAMICS_DIR = "training_dynamics"
#: The name of one epoch's file; the group is the epoch number.
EPOCH_FILE = re.compile(r"dynamics_epoch_(\d+)\.jsonl")
#: The layout in words, for errors.
LAYOUT = (
    "a folder 'training_dynamics/' holding dynamics_epoch_0.jsonl, dynamics_epoch_1.jsonl, ..., "
    'one JSON object per line: {"guid": ..., "logits_epoch_<e>": [C floats], "gold": <int>}'
)


# ============================================================================ reading


class _Epoch(NamedTuple):
    """One epoch file: guids (int64 or str objects), float32 logits [n, C], int64 gold [n]."""

    guids: np.ndarray
    logits: np.ndarray
    gold: np.ndarray


class _Scored(NamedTuple):
    """One epoch file, its rows reduced to the record's statistics (in the file's row order):
    guids, gold [n], the class count, and gold_prob, margin, sq_error, pred [n] each."""

    guids: np.ndarray
    gold: np.ndarray
    num_classes: int
    stats: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _read_and_score(path: Path, epoch: int) -> _Scored:
    """Parse one epoch file and reduce its logits (:func:`checkpoint_stats_numpy`, row by
    row: the numbers of ``TrainingDynamics.from_logits``), in the thread that parsed it."""
    part = _read_epoch_file(path, epoch)
    stats = checkpoint_stats_numpy(part.logits, part.gold)
    return _Scored(part.guids, part.gold, part.logits.shape[1], stats)


def read_allenai(
    path: str | os.PathLike[str], *, class_names: list[str] | None = None
) -> TrainingDynamics:
    """Read training dynamics saved in the allenai/cartography layout.

    The layout is a folder ``training_dynamics/`` holding ``dynamics_epoch_<e>.jsonl``, one JSON
    object per line: ``{"guid": ..., "logits_epoch_<e>": [C floats], "gold": <int>}``.

    Parameters
    ----------
    path : path-like
        The run folder that contains ``training_dynamics/``, or that folder itself.
    class_names : list of str, optional
        Names of the C classes; the layout does not store them.

    Returns
    -------
    TrainingDynamics
        One checkpoint per epoch file, in numerical epoch order; samples in the row order of the
        first epoch file.

    Raises
    ------
    FileNotFoundError
        When ``path`` holds no ``dynamics_epoch_<e>.jsonl`` file.
    ValueError
        On a corrupt or inconsistent file (truncated or non-JSON line, missing key, a logits key
        for another epoch, unequal class counts, non-finite logits, a gold label out of range
        or changing between epochs, duplicate, missing or extra guids). The one-line message
        names the file and the line.

    Warns
    -----
    UserWarning
        When epoch numbers have a gap (e.g. 0, 1, 3, or 1, 2 without 0: the allenai script
        numbers epochs from 0); the files found are read in order.

    Notes
    -----
    Epochs are found by file name and sorted numerically, so ``dynamics_epoch_10.jsonl`` follows
    ``dynamics_epoch_9.jsonl``. Rows may come in any order within a file. Guids are kept as int64
    when every guid of the run is a JSON integer within the int64 range; otherwise (strings,
    integers beyond int64, or a mix) all guids become strings, so the int ``7`` and the string
    ``"7"`` name the same sample.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> logits = np.array([[[2.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [2.0, 0.0]]])
    >>> dyn = TrainingDynamics.from_logits(logits, labels=[0, 1], ids=["a", "b"])
    >>> folder = write_allenai(dyn, tempfile.mkdtemp(), logits=logits)
    >>> back = read_allenai(folder.parent)
    >>> back.ids.tolist(), back.correct.tolist()
    (['a', 'b'], [[True, True], [True, False]])
    """
    files = _epoch_files(_allenai_folder(Path(path)))
    numbers = [e for e, _ in files]
    # The allenai script numbers epochs from 0, so a run starting at 1 has lost a file too.
    missing = sorted(set(range(numbers[-1] + 1)) - set(numbers))
    if missing:
        warnings.warn(
            f"read_allenai: {files[0][1].parent} has no file for epoch(s) {first_few(missing)}; "
            f"reading the {len(files)} epochs found ({first_few(numbers)}) as consecutive "
            "checkpoints.",
            UserWarning,
            stacklevel=2,
        )
    return _read_allenai(files, class_names)


def _allenai_folder(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"read_allenai: {path} does not exist. Expected {LAYOUT}.")
    if not path.is_dir():
        raise ValueError(
            f"read_allenai expects a folder, not the file {path}. Pass the folder that holds the "
            f"epoch files ({path.parent}) or the run folder above it."
        )
    sub = path / DYNAMICS_DIR
    return sub if sub.is_dir() else path


def find_epoch_files(folder: Path) -> list[tuple[int, Path]]:
    """The ``(epoch, path)`` of each epoch file directly in ``folder``, by epoch; ``[]`` if none."""
    if not folder.is_dir():
        return []
    found = []
    for entry in folder.iterdir():
        match = EPOCH_FILE.fullmatch(entry.name)
        if match and entry.is_file():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def _epoch_files(folder: Path) -> list[tuple[int, Path]]:
    files = find_epoch_files(folder)
    if not files:
        raise FileNotFoundError(
            f"read_allenai: no dynamics_epoch_<e>.jsonl files in {folder}. Expected {LAYOUT}."
        )
    for (e1, p1), (e2, p2) in itertools.pairwise(files):
        if e1 == e2:
            raise ValueError(
                f"read_allenai: {p1.name} and {p2.name} in {folder} both hold epoch {e1}. "
                "Keep one of them."
            )
    return files


def _read_allenai(files: list[tuple[int, Path]], class_names: list[str] | None) -> TrainingDynamics:
    # Epoch files are parsed and reduced to their statistics by threads (see _parsed_ahead)
    # while the main thread puts the statistics of the previous ones in place: the peak holds
    # the record plus PARSE_THREADS + 1 parsed files.
    parsed = _parsed_ahead(files)
    first_path, first = next(parsed)
    ids, gold, num_classes = first.guids, first.gold, first.num_classes
    ref = _GuidIndex(ids)
    shape = (len(files), len(ids))
    record = [np.empty(shape, dtype=np.float32) for _ in range(3)]
    record.append(np.empty(shape, dtype=pred_dtype(num_classes)))
    for out, values in zip(record, first.stats, strict=True):
        out[0] = values
    del first
    for e, (path, part) in enumerate(parsed, start=1):
        if part.num_classes != num_classes:
            raise ValueError(
                f"{path}, line {_line_of_row(path, 0)}: {part.num_classes} logits per row, "
                f"but {first_path.name} has {num_classes}; every epoch must score the same "
                "classes."
            )
        # Any string guid makes the whole run string-keyed; str() of distinct ints stays
        # distinct, so the epochs already aligned keep their positions.
        if part.guids.dtype == object and ids.dtype != object:
            ids = _as_str(ids)
            ref = _GuidIndex(ids)
        elif ids.dtype == object and part.guids.dtype != object:
            part = part._replace(guids=_as_str(part.guids))
        # Not positions_of: an unmatched guid is reported with its line in this file.
        pos = ref.positions(part.guids)
        extra = np.flatnonzero(pos < 0)
        if extra.size:
            row = int(extra[0])
            raise ValueError(
                f"{path}, line {_line_of_row(path, row)}: guid {show(part.guids[row])} is not in "
                f"{first_path.name}, the first epoch file ({extra.size} such guids); every epoch "
                "file must list the same samples."
            )
        if pos.shape[0] < len(ids):
            seen = np.zeros(len(ids), dtype=bool)
            seen[pos] = True
            row = int(np.flatnonzero(~seen)[0])
            raise ValueError(
                f"{path}: no row for guid {show(ids[row])} (line "
                f"{_line_of_row(first_path, row)} of {first_path.name}); "
                f"{len(ids) - pos.shape[0]} of {len(ids)} guids are missing. Every epoch file "
                "must list the same samples."
            )
        changed = np.flatnonzero(gold[pos] != part.gold)
        if changed.size:
            row = int(changed[0])
            raise ValueError(
                f"{path}, line {_line_of_row(path, row)}: gold {int(part.gold[row])} for guid "
                f"{show(part.guids[row])}, but {first_path.name} gives {int(gold[pos[row]])}; "
                "a sample's gold label cannot change between epochs."
            )
        for out, values in zip(record, part.stats, strict=True):
            out[e, pos] = values
    gold_prob, margin, sq_error, pred = record
    return TrainingDynamics(
        ids=ids,
        labels=gold,
        gold_prob=gold_prob,
        margin=margin,
        sq_error=sq_error,
        pred=pred,
        num_classes=num_classes,
        class_names=class_names,
    )


class _GuidIndex:
    """The position of each guid of the first epoch file, to place the rows of the others.

    Integer guids are matched by binary search in a sorted copy, string guids through a dict:
    both without pandas, whose import would cost ``cartokit metrics`` more than the lookups.
    """

    def __init__(self, ids: np.ndarray) -> None:
        self._strings = ids.dtype == object
        if self._strings:
            self._where = {guid: k for k, guid in enumerate(ids.tolist())}
        else:
            self._order = np.argsort(ids, kind="stable")
            self._sorted = ids[self._order]

    def positions(self, guids: np.ndarray) -> np.ndarray:
        """Each guid's position among the first file's (intp), -1 for a guid not there."""
        if self._strings:
            where = self._where
            return np.fromiter((where.get(g, -1) for g in guids.tolist()), np.intp, len(guids))
        if not len(self._sorted):
            return np.full(len(guids), -1, dtype=np.intp)
        at = np.searchsorted(self._sorted, guids)
        np.minimum(at, len(self._sorted) - 1, out=at)
        found = self._sorted[at] == guids
        return np.where(found, self._order[at], -1).astype(np.intp, copy=False)


#: Epoch files parsed at once, ahead of the one being placed. pyarrow parses without the GIL,
#: so two files keep two cores busy; more would only hold more files in memory.
PARSE_THREADS = 2


def _parsed_ahead(files: list[tuple[int, Path]]) -> Iterator[tuple[Path, _Scored]]:
    """Each epoch file, parsed and scored, in order; up to :data:`PARSE_THREADS` threads work
    on the next ones while the caller places this one (pyarrow and numpy release the GIL)."""
    workers = max(1, min(PARSE_THREADS, os.cpu_count() or 1, len(files)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future[_Scored]] = deque()
        upcoming = iter(files)
        for epoch, path in itertools.islice(upcoming, workers):
            pending.append(pool.submit(_read_and_score, path, epoch))
        for _, path in files:
            part = pending.popleft().result()
            following = next(upcoming, None)
            if following is not None:
                pending.append(pool.submit(_read_and_score, following[1], following[0]))
            yield path, part
            del part


def _read_epoch_file(path: Path, epoch: int) -> _Epoch:
    """Parse one epoch file: pyarrow first, a line-by-line scan for anything it cannot vouch for."""
    raw = path.read_bytes()
    first = _first_nonblank_line(raw)
    if first is None:
        raise ValueError(
            f"{path}: the file has no rows. Each epoch file holds one JSON line per training "
            "sample; re-export it."
        )
    try:
        record = json.loads(first)
    except ValueError:
        record = None
    guid = record.get("guid") if isinstance(record, dict) else None
    if isinstance(guid, str) or is_int64(guid):
        parsed = _parse_epoch_fast(
            raw, f"logits_epoch_{epoch}", guid_is_int=not isinstance(guid, str)
        )
        if parsed is not None:
            return parsed
    # The scan raises with the line of the first problem, or returns what pyarrow could not
    # type (mixed int/str guids, integers beyond int64).
    return _scan_epoch_file(path, raw, epoch)


def _parse_epoch_fast(raw: bytes, key: str, *, guid_is_int: bool) -> _Epoch | None:
    """Multi-threaded pyarrow parse; None when the file needs the line scan."""
    import pyarrow as pa
    import pyarrow.json as pj

    schema = pa.schema(
        [
            ("guid", pa.int64() if guid_is_int else pa.string()),
            (key, pa.list_(pa.float64())),
            ("gold", pa.int64()),
        ]
    )
    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    try:
        table = pj.read_json(
            pa.BufferReader(raw),
            read_options=pj.ReadOptions(use_threads=True),
            parse_options=options,
            # The system allocator hands parse buffers back; pyarrow's default pool keeps them,
            # which here raised peak RSS by ~100 MB without being faster.
            memory_pool=pa.system_memory_pool(),
        )
    except pa.ArrowException:  # e.g. invalid UTF-8 in a guid: the scan names the line
        return None
    n_rows = table.num_rows
    # Blank lines, or two objects on one line, make rows and lines disagree: let the scan judge.
    if n_rows == 0 or n_rows != raw.count(b"\n") + (not raw.endswith(b"\n")):
        return None
    guid_col, logit_col, gold_col = (table.column(k).combine_chunks() for k in schema.names)
    if guid_col.null_count or logit_col.null_count or gold_col.null_count:
        return None
    logits = list_matrix(logit_col)
    if logits is None:
        return None
    num_classes = logits.shape[1]
    # Copies: arrow buffers are read-only, and torch.from_numpy warns on read-only arrays.
    gold = numbers_of(gold_col).astype(np.int64)
    if not np.isfinite(logits).all() or gold.min() < 0 or gold.max() >= num_classes:
        return None
    if guid_is_int:
        guids = numbers_of(guid_col).astype(np.int64)
    else:
        try:
            guids = np.array(guid_col.to_pylist(), dtype=object)
        except (pa.ArrowException, UnicodeDecodeError):  # not UTF-8: the scan names its line
            return None
    if has_duplicates(guids):
        return None
    return _Epoch(guids, logits.astype(np.float32), gold)


def _scan_epoch_file(path: Path, raw: bytes, epoch: int) -> _Epoch:
    """Slow, literal line-by-line parse that names the line of the first problem."""
    key = f"logits_epoch_{epoch}"
    guids: list[int | str] = []
    rows: list[list[float]] = []
    golds: list[int] = []
    first_line: dict[str, int] = {}
    width = ClassCount(values="logits", row="row", each="logit")
    for lineno, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {lineno}"
        try:
            record = json.loads(line)
        except UnicodeDecodeError as err:
            raise ValueError(f"{where}: {not_utf8(err)}") from None
        except ValueError as err:
            reason = f"{err.msg} at column {err.colno}" if hasattr(err, "colno") else str(err)
            raise ValueError(
                f"{where}: not valid JSON ({reason}); the line may be truncated or corrupt. "
                "Re-export the file or delete the line."
            ) from None
        if not isinstance(record, dict):
            raise ValueError(
                f"{where}: expected a JSON object with keys 'guid', {key!r} and 'gold'. "
                f"Got a {type(record).__name__}."
            )
        absent = [k for k in ("guid", key, "gold") if k not in record]
        other_logits = sorted(k for k in record if k.startswith("logits_epoch_") and k != key)
        if key in absent and other_logits:
            raise ValueError(
                f"{where}: has the key {other_logits[0]!r}, but every line of {path.name} must "
                f"hold {key!r}; the file name and the logits key number the epoch alike. "
                "Rename the file or fix the key."
            )
        if absent:
            raise ValueError(
                f"{where}: missing key(s) {absent}; every line needs 'guid', {key!r} and 'gold'."
            )
        guid = record["guid"]
        if isinstance(guid, bool) or not isinstance(guid, (int, str)):
            raise ValueError(f"{where}: guid must be an int or a string. Got {guid!r}.")
        logits = record[key]
        if not isinstance(logits, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in logits
        ):
            raise ValueError(
                f"{where}: {key} must be a list of numbers, one logit per class. "
                f"Got {clip(logits)}."
            )
        if len(logits) < 2:
            raise ValueError(
                f"{where}: {key} holds {len(logits)} logit(s); need one per class, >= 2."
            )
        width.check(len(logits), lineno, where)
        if not all(math.isfinite(v) for v in logits):
            raise ValueError(
                f"{where}: logits must be finite. Got {clip(logits)}; check the model for "
                "divergence."
            )
        gold = record["gold"]
        if isinstance(gold, bool) or not isinstance(gold, int):
            raise ValueError(f"{where}: gold must be an int class index. Got {gold!r}.")
        if not 0 <= gold < width.count:
            raise ValueError(
                f"{where}: gold {gold} is out of range [0, {width.count}) for {width.count} "
                "logits per row."
            )
        # str() is the key because a file that mixes ints and strings is read as all strings.
        name = str(guid)
        if name in first_line:
            raise ValueError(
                f"{where}: duplicate guid {guid!r}, first on line {first_line[name]}; each "
                "sample appears once per epoch file."
            )
        first_line[name] = lineno
        guids.append(guid)
        rows.append(logits)
        golds.append(gold)
    if not rows:
        raise ValueError(
            f"{path}: the file has no rows. Each epoch file holds one JSON line per training "
            "sample; re-export it."
        )
    if all(is_int64(g) for g in guids):
        ids = np.array(guids, dtype=np.int64)
    else:
        ids = np.array([str(g) for g in guids], dtype=object)
    return _Epoch(ids, np.array(rows, dtype=np.float32), np.array(golds, dtype=np.int64))


def _first_nonblank_line(raw: bytes) -> bytes | None:
    start = 0
    while start < len(raw):
        end = raw.find(b"\n", start)
        end = len(raw) if end < 0 else end
        if raw[start:end].strip():
            return raw[start:end]
        start = end + 1
    return None


def _line_of_row(path: Path, row: int) -> int:
    """1-based line number of the ``row``-th (0-based) non-blank line of a file."""
    seen = -1
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            if line.strip():
                seen += 1
                if seen == row:
                    return lineno
    return row + 1


def _as_str(ids: np.ndarray) -> np.ndarray:
    return np.array([str(v) for v in ids.tolist()], dtype=object)


# ============================================================================ writing


def write_allenai(
    dyn: TrainingDynamics, path: str | os.PathLike[str], *, logits: Any = None
) -> Path:
    """Write training dynamics in the allenai/cartography layout, under ``path/training_dynamics/``.

    The layout stores logits, which a :class:`TrainingDynamics` does not keep. So ``logits``
    are written when given; otherwise ``log(dyn.probs)`` is written (logits up to a per-row
    constant, to which softmax and every cartography metric are invariant).

    Parameters
    ----------
    dyn : TrainingDynamics
        Supplies the ids (written as JSON ints or strings), the gold labels and the epoch count.
    path : path-like
        The run folder; ``training_dynamics/`` is created inside it.
    logits : array of shape (E, N, C), optional
        The logits behind ``dyn`` (numpy or torch), in ``dyn``'s sample order.

    Returns
    -------
    pathlib.Path
        The ``training_dynamics`` folder. Each ``dynamics_epoch_<e>.jsonl`` is written
        atomically.

    Raises
    ------
    ValueError
        When ``dyn`` holds no probabilities and ``logits`` is not given; when the scores have the
        wrong shape or are not finite (a sample not seen at some epoch cannot be written); when
        the folder already holds epoch files beyond ``dyn``'s epochs.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> dyn = TrainingDynamics.from_logits(np.zeros((2, 3, 2)), [0, 1, 1], store_probs=True)
    >>> folder = write_allenai(dyn, tempfile.mkdtemp())
    >>> (folder / "dynamics_epoch_1.jsonl").read_text().splitlines()[0]
    '{"guid": 0, "logits_epoch_1": [-0.693147182, -0.693147182], "gold": 0}'
    """
    caller = "write_allenai"
    if not isinstance(dyn, TrainingDynamics):
        raise TypeError(f"{caller}: dyn must be a TrainingDynamics. Got {type(dyn).__name__}.")
    expected = (dyn.num_epochs, dyn.num_samples, dyn.num_classes)
    if logits is not None:
        if hasattr(logits, "detach"):  # a torch tensor; torch itself stays unimported here
            logits = logits.detach().cpu().numpy()
        scores = np.asarray(logits)
        if scores.dtype.kind not in "fiu":
            raise TypeError(f"{caller}: logits must be numeric. Got dtype {scores.dtype}.")
        what = "logits"
    elif dyn.probs is not None:
        scores = np.log(np.clip(dyn.probs, np.finfo(np.float32).tiny, None))
        what = "log(dyn.probs)"
    else:
        raise ValueError(
            f"{caller}: the allenai layout stores logits, and this record keeps neither logits "
            "nor probabilities. Record with store_probs=True (e.g. TrainingDynamics.from_logits("
            "..., store_probs=True)) or pass logits= of shape (epochs, samples, classes) "
            f"{expected}."
        )
    if scores.shape != expected:
        raise ValueError(
            f"{caller}: {what} must have shape (epochs, samples, classes) = {expected} to match "
            f"dyn. Got {scores.shape}."
        )
    finite = np.isfinite(scores).all(axis=2)
    if not finite.all():
        e, i = (int(v[0]) for v in np.nonzero(~finite))
        raise ValueError(
            f"{caller}: {what} must be finite; epoch {e}, sample {i} holds NaN or inf. A sample "
            "not seen at some epoch cannot be written in the allenai layout."
        )
    folder = Path(path) / DYNAMICS_DIR
    stale = [p.name for e, p in find_epoch_files(folder) if e >= dyn.num_epochs]
    if stale:
        raise ValueError(
            f"{caller}: {folder} already holds {first_few(stale)}, beyond the {dyn.num_epochs} "
            "epochs being written; readers would mix the two runs. Write to an empty folder or "
            "delete those files."
        )
    _write_allenai(dyn, scores, folder)
    return folder


def _write_allenai(dyn: TrainingDynamics, scores: np.ndarray, folder: Path) -> None:
    if dyn.ids.dtype == object:
        guids = [json.dumps(str(g)) for g in dyn.ids.tolist()]
    else:
        guids = [str(g) for g in dyn.ids.tolist()]
    labels = dyn.labels.tolist()
    # 9 significant digits round-trip float32 exactly; float64 logits keep their repr.
    number = "%.9g" if scores.dtype.itemsize <= 4 else "%r"
    values = ", ".join([number] * dyn.num_classes)
    for e in range(dyn.num_epochs):
        line = '{"guid": %s, "logits_epoch_' + str(e) + '": [' + values + '], "gold": %d}\n'
        rows = scores[e].astype(np.float64).tolist()
        with atomic_write(folder / f"dynamics_epoch_{e}.jsonl", "w") as fh:
            fh.writelines(
                line % (g, *row, y) for g, row, y in zip(guids, rows, labels, strict=True)
            )
