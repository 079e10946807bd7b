"""The training-signal file of TrustAI's data-map tutorial: reading.

One ``.jsonl`` file, one line per sample per recorded step, written with Python's ``str(dict)``:
``{'id': ..., 'label': ..., 'pred_label': ..., 'correct': ..., 'loss': ..., 'probs': [...],
'label_probs': ...}``. :func:`read_trustai` reads it: pyarrow parses the file in blocks (after
one swap of single for double quotes, where that swap is unambiguous), and anything pyarrow
cannot vouch for is read again line by line, which names the line of the first problem.
:func:`parse_line` is how that scan reads one line (format detection uses it too).
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from cartokit._validation import first_few, show
from cartokit.dynamics import TrainingDynamics
from cartokit.io._reading import (
    ClassCount,
    check_regular,
    clip,
    has_duplicates,
    is_int64,
    list_matrix,
    not_utf8,
)

__all__ = ["read_trustai"]

#: The layout in words, for errors.
LAYOUT = (
    "one .jsonl (or .json) file, one line per sample per recorded step: "
    "{'id': ..., 'label': <int>, 'probs': [C floats], ...}"
)
_CANONICAL_INT = re.compile(r"-?(0|[1-9][0-9]*)")
#: Bytes pyarrow parses at a time. On the 786 MB file of bench/trustai_metrics.py, 8 MiB blocks
#: parsed faster than 2 MiB or 64 MiB ones, and held half the memory of the latter.
BLOCK_BYTES = 8 << 20
#: Single to double quotes: TrustAI's str(dict) lines become JSON.
_SWAP_QUOTES = bytes.maketrans(b"'", b'"')


class _Rows(NamedTuple):
    """A file's rows in file order: ids (int64 or str objects), int64 labels, probs [n, C]."""

    ids: np.ndarray
    labels: np.ndarray
    probs: np.ndarray


def read_trustai(
    path: str | os.PathLike[str], *, class_names: list[str] | None = None
) -> TrainingDynamics:
    """Read the training-signal file of TrustAI's data-map tutorial.

    Each line is one sample at one recorded training step, e.g.
    ``{'id': 3, 'label': 1, 'pred_label': 0, 'correct': 'false', 'loss': 0.9,
    'probs': [0.6, 0.4], 'label_probs': 0.4}``. Lines for all steps are appended to one file; the
    k-th line of an id is that id's k-th checkpoint. Only ``id``, ``label`` and ``probs`` are
    used.

    Parameters
    ----------
    path : path-like
        The file, or a folder holding exactly one ``.jsonl`` or ``.json`` file.
    class_names : list of str, optional
        Names of the C classes.

    Returns
    -------
    TrainingDynamics
        One checkpoint per recorded step; samples in order of first appearance.

    Raises
    ------
    ValueError
        On a line that is not UTF-8 text or is neither JSON nor a Python dict literal, a missing
        key, a bad value, unequal class counts, a label that changes between steps, or ids
        recorded a different number of times. The one-line message names the file and the line
        (or the id).

    Notes
    -----
    TrustAI writes lines with Python's ``str(dict)``, so single quotes, ``True``/``False`` and
    numbers written as strings (``"0.25"``) are all accepted. Ids that are integers, or strings
    spelling an integer (``"12"``), become int64 ids when every id is one; otherwise all ids are
    strings. A sample's predicted class is the argmax of its probabilities as written (the
    first on ties), not of their logarithms, which float32 can merge.

    The file is parsed by pyarrow in blocks, after swapping single for double quotes where no
    line holds a double quote or a backslash (there the swap cannot change what a line says).
    Anything pyarrow cannot vouch for (a string number, ``True``, an unparsable line, a file
    whose lines are not all alike) sends the whole file through a line-by-line reading, which
    accepts every spelling above and names the line of the first problem.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> lines = [
    ...     "{'id': 0, 'label': 1, 'correct': 'false', 'probs': [0.7, 0.3]}",
    ...     "{'id': 0, 'label': 1, 'correct': 'true', 'probs': ['0.2', '0.8']}",
    ... ]
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "output_data.json"
    >>> _ = path.write_text("\\n".join(lines))
    >>> dyn = read_trustai(path)
    >>> [round(float(p), 2) for p in dyn.gold_prob[:, 0]], dyn.correct[:, 0].tolist()
    ([0.3, 0.8], [False, True])
    """
    return _read_trustai(_trustai_file(Path(path)), class_names)


def _trustai_file(path: Path) -> Path:
    if path.is_file():
        return path
    if not path.exists():
        raise FileNotFoundError(f"read_trustai: {path} does not exist. Expected {LAYOUT}.")
    check_regular(path, "read_trustai")
    found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in (".jsonl", ".json"))
    if len(found) != 1:
        raise ValueError(
            f"read_trustai: the folder {path} must hold exactly one .jsonl or .json file. Found "
            f"{len(found)}: {first_few([p.name for p in found])}. Pass the file itself."
        )
    return found[0]


def parse_line(text: str) -> dict[str, Any] | None:
    """One line of a TrustAI file as a dict, or ``None`` when it is no dict in any spelling."""
    # A line with no double quote and no backslash is read by TrustAI's own trick (single to
    # double quotes), which then cannot change its meaning: a JSON object would need double
    # quotes, and no string in it can hold a quote. TrustAI's str(dict) lines are such lines,
    # so each is parsed once. Other lines try JSON, then a Python literal (True/False, strings
    # holding an apostrophe), then the swap as a last resort. Text that parses as JSON but not
    # as an object (a list, say) is no dict literal either: stop there, as ast.literal_eval of
    # a 5 MB list costs about 1 GB.
    if '"' not in text and "\\" not in text:
        parsers: tuple[Callable[[str], Any], ...] = (_swapped, ast.literal_eval)
    else:
        parsers = (json.loads, ast.literal_eval, _swapped)
    for parse in parsers:
        try:
            record = parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        return record if isinstance(record, dict) else None
    return None


def _swapped(text: str) -> Any:
    return json.loads(text.replace("'", '"'))


def _trustai_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _CANONICAL_INT.fullmatch(value.strip()):
        return int(value.strip())
    return None


def _trustai_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _read_trustai(file: Path, class_names: list[str] | None) -> TrainingDynamics:
    rows = _parse_fast(file)
    if rows is None:
        # The scan raises with the line of the first problem, or reads what pyarrow could not
        # type (string numbers, True/False, mixed id types, ids beyond int64).
        rows = _scan(file)
    return _assemble_trustai(file, rows, lambda row: _line_of_row(file, row), class_names)


# ---------------------------------------------------------------------------- the bulk parse


def _parse_fast(file: Path) -> _Rows | None:
    """pyarrow's multi-threaded parse, block by block; None when the file needs the scan."""
    import pyarrow as pa
    import pyarrow.json as pj

    first = _first_record(file)
    if first is None or not {"id", "label", "probs"} <= first.keys():
        return None
    sid = first["id"]
    if is_int64(sid):
        id_type = pa.int64()
    elif isinstance(sid, str) and not _CANONICAL_INT.fullmatch(sid.strip()):
        id_type = pa.string()  # ids spelling an integer become ints: the scan decides that
    else:
        return None
    schema = pa.schema([("id", id_type), ("label", pa.int64()), ("probs", pa.list_(pa.float64()))])
    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    store: _RowStore | None = None
    blocks = _json_blocks(file)
    # One thread reads and rewrites the next block while pyarrow, which releases the GIL,
    # parses this one.
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        pending = pool.submit(next, blocks, _END)
        while (block := pending.result()) is not _END:
            if block is None:
                return None
            pending = pool.submit(next, blocks, _END)
            text, lines = block
            try:
                table = pj.read_json(
                    pa.BufferReader(pa.py_buffer(text)),
                    read_options=pj.ReadOptions(use_threads=True),
                    parse_options=options,
                    memory_pool=pa.system_memory_pool(),  # hands buffers back, as in allenai.py
                )
            except pa.ArrowException:  # a string number, True, a missing comma: the scan
                return None
            if table.num_rows == 0 and not _nonblank_lines(text):
                continue  # a block of blank lines
            part = _block_rows(table, text, lines, id_is_int=id_type == pa.int64())
            if part is None:
                return None
            if store is None:
                rows_per_byte = len(part.ids) / len(text)
                store = _RowStore(int(file.stat().st_size * rows_per_byte * 1.05) + 16, part)
            if not store.add(part):
                return None
    finally:
        pool.shutdown(wait=True)
        blocks.close()
    return None if store is None else store.rows()


class _RowStore:
    """The rows of a whole file, copied block by block into arrays sized from the first block:
    joining the blocks at the end would hold every row twice."""

    def __init__(self, capacity: int, first: _Rows) -> None:
        self.num_classes = first.probs.shape[1]
        self.ids = np.empty(capacity, dtype=first.ids.dtype)
        self.labels = np.empty(capacity, dtype=np.int64)
        self.probs = np.empty((capacity, self.num_classes), dtype=first.probs.dtype)
        self.size = 0

    def add(self, part: _Rows) -> bool:
        """Append a block's rows; False when their class count differs from the first's."""
        if part.probs.shape[1] != self.num_classes:
            return False
        stop = self.size + len(part.ids)
        if stop > len(self.ids):  # the first block was denser than the rest: grow by half
            capacity = max(stop, len(self.ids) * 3 // 2)
            self.ids, self.labels = (np.resize(a, capacity) for a in (self.ids, self.labels))
            self.probs = np.resize(self.probs, (capacity, self.num_classes))
        self.ids[self.size : stop] = part.ids
        self.labels[self.size : stop] = part.labels
        self.probs[self.size : stop] = part.probs
        self.size = stop
        return True

    def rows(self) -> _Rows:
        return _Rows(self.ids[: self.size], self.labels[: self.size], self.probs[: self.size])


#: What the block reader gives after the last block.
_END = object()


def _first_record(file: Path) -> dict[str, Any] | None:
    with open(file, "rb") as fh:
        for line in fh:
            if line.strip():
                try:
                    return parse_line(line.decode("utf-8").strip())
                except UnicodeDecodeError:
                    return None
    return None


def _json_blocks(file: Path) -> Iterator[tuple[memoryview, int] | None]:
    """The file as JSON lines, in blocks of about BLOCK_BYTES that end at a line end, each with
    its line count; None for a block that only the scan can read faithfully."""
    # One buffer, read into again and again: a fresh bytes object per block, cut at its last
    # line end and joined to the next, was much slower on the bench file; a memory map as well,
    # and a file truncated while mapped kills the process (SIGBUS).
    buf = bytearray(BLOCK_BYTES)
    have = 0
    with open(file, "rb", buffering=0) as fh:
        while True:
            if have == len(buf):  # a line longer than the buffer: make room
                buf.extend(bytes(len(buf)))
            with memoryview(buf) as view:
                got = fh.readinto(view[have:])
            have += got
            if not have:
                return
            cut = buf.rfind(b"\n", 0, have) + 1 if got else have
            if cut:
                yield _as_json(buf, cut)
                buf[: have - cut] = buf[cut:have]
                have -= cut


def _as_json(buf: bytearray, cut: int) -> tuple[memoryview, int] | None:
    """``buf[:cut]`` as JSON lines in a buffer of its own, with its line count; None when only
    the scan can read it faithfully."""
    if buf.find(b"'", 0, cut) < 0:
        with memoryview(buf) as view:
            text: bytes | bytearray = view[:cut].tobytes()  # JSON lines already
    elif buf.find(b'"', 0, cut) >= 0 or buf.find(b"\\", 0, cut) >= 0:
        # A string holding a quote, or an escape: the quote swap could change what the line
        # says, where the scan reads each such line as Python or as JSON.
        return None
    else:
        text = buf.translate(_SWAP_QUOTES)  # all of buf, so that the cut needs no copy
    data = memoryview(text)[:cut]
    # pyarrow skips over invalid UTF-8 in the keys it ignores; the scan names the line.
    if not text.isascii():
        try:
            str(data, "utf-8")
        except UnicodeDecodeError:
            return None
    return data, text.count(b"\n", 0, cut) + (not text.endswith(b"\n", 0, cut))


def _block_rows(table: Any, text: memoryview, lines: int, *, id_is_int: bool) -> _Rows | None:
    """A parsed block as arrays, or None when any row is not plainly valid."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n_rows = table.num_rows
    # Blank lines are skipped by both readers; two objects on one line would make two rows.
    if n_rows == 0 or (n_rows != lines and n_rows != _nonblank_lines(text)):
        return None
    id_col, label_col, prob_col = (
        table.column(k).combine_chunks() for k in ("id", "label", "probs")
    )
    if id_col.null_count or label_col.null_count or prob_col.null_count:
        return None
    probs = list_matrix(prob_col)
    if probs is None:
        return None
    num_classes = probs.shape[1]
    labels = label_col.to_numpy(zero_copy_only=False).astype(np.int64)
    if not (np.isfinite(probs).all() and probs.min() >= 0):
        return None
    if labels.min() < 0 or labels.max() >= num_classes:
        return None
    if not id_is_int:
        spelled = pc.match_substring_regex(
            pc.utf8_trim_whitespace(id_col), "^" + _CANONICAL_INT.pattern + "$"
        )
        if pc.any(spelled).as_py():
            return None  # a string spelling an integer: the scan applies the id rule
    try:
        ids = id_col.to_numpy(zero_copy_only=False)
    except pa.ArrowException:
        return None
    return _Rows(ids.astype(np.int64 if id_is_int else object), labels, probs)


def _nonblank_lines(text: memoryview) -> int:
    return sum(1 for line in bytes(text).split(b"\n") if line.strip())


def _line_of_row(file: Path, row: int) -> int:
    """1-based line number of the ``row``-th (0-based) non-blank line: for errors only."""
    seen = -1
    with open(file, "rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            if line.strip():
                seen += 1
                if seen == row:
                    return lineno
    return row + 1


# ---------------------------------------------------------------------------- the line scan


def _scan(file: Path) -> _Rows:
    """Slow, literal line-by-line parse that names the line of the first problem."""
    ids: list[int | str] = []
    labels: list[int] = []
    probs: list[list[float]] = []
    width = ClassCount(values="probs", row="line", each="probability")
    # Bytes, decoded line by line, so that a binary file is named with the line it breaks on.
    with open(file, "rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{file}, line {lineno}"
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(f"{where}: {not_utf8(err)}") from None
            record = parse_line(text.strip())
            if record is None:
                raise ValueError(
                    f"{where}: neither JSON nor a Python dict literal; the line may be truncated "
                    "or corrupt. Re-export the file or delete the line."
                )
            absent = [k for k in ("id", "label", "probs") if k not in record]
            if absent:
                raise ValueError(
                    f"{where}: missing key(s) {absent}; every line needs 'id', 'label' and 'probs'."
                )
            raw_id = record["id"]
            sid = _trustai_int(raw_id)
            if sid is None:
                if isinstance(raw_id, bool) or not isinstance(raw_id, str):
                    raise ValueError(f"{where}: id must be an int or a string. Got {raw_id!r}.")
                sid = raw_id
            label = _trustai_int(record["label"])
            if label is None or label < 0:
                raise ValueError(
                    f"{where}: label must be a class index >= 0. Got {record['label']!r}."
                )
            row = record["probs"]
            values = [_trustai_float(v) for v in row] if isinstance(row, list) else [None]
            if any(v is None for v in values) or len(values) < 2:
                raise ValueError(
                    f"{where}: probs must be a list of >= 2 numbers, one per class. "
                    f"Got {clip(row)}."
                )
            if not all(math.isfinite(v) and v >= 0 for v in values):  # type: ignore[arg-type]
                raise ValueError(f"{where}: probs must be finite and >= 0. Got {clip(row)}.")
            width.check(len(values), lineno, where)
            if label >= width.count:
                raise ValueError(
                    f"{where}: label {label} is out of range [0, {width.count}) for "
                    f"{width.count} probabilities per line."
                )
            ids.append(sid)
            labels.append(label)
            probs.append(values)  # type: ignore[arg-type]
    if not ids:
        raise ValueError(f"{file}: the file has no rows. Expected {LAYOUT}.")
    if all(is_int64(i) for i in ids):
        id_arr = np.array(ids, dtype=np.int64)
    else:
        id_arr = np.array([str(i) for i in ids], dtype=object)
    return _Rows(id_arr, np.array(labels, dtype=np.int64), np.array(probs, dtype=np.float64))


# ---------------------------------------------------------------------------- rows to checkpoints


def _assemble_trustai(
    file: Path,
    rows: _Rows,
    line_of: Callable[[int], int],
    class_names: list[str] | None,
) -> TrainingDynamics:
    """Rows to checkpoints: the k-th line of an id is its k-th checkpoint."""
    id_arr, label_arr = rows.ids, rows.labels
    num_classes = rows.probs.shape[1]
    period = _period(id_arr, label_arr)
    if period:
        # Each step logs every sample in the same order, as TrustAI's trainer does: the rows
        # already are (step, sample), and reshaping copies nothing.
        stacked = rows.probs.reshape(-1, period, num_classes)
        first = slice(0, period)
        return TrainingDynamics.from_probabilities(  # copies: views would keep every row alive
            stacked, label_arr[first].copy(), ids=id_arr[first].copy(), class_names=class_names
        )
    import pandas as pd

    codes, uniques = pd.factorize(id_arr)
    n_rows, n_ids = codes.shape[0], uniques.shape[0]
    counts = np.bincount(codes, minlength=n_ids)
    values, how_often = np.unique(counts, return_counts=True)
    expected = int(values[len(values) - 1 - how_often[::-1].argmax()])  # the mode; ties: larger
    odd = np.flatnonzero(counts != expected)
    if odd.size:
        code = int(odd[0])
        first_row = int(np.flatnonzero(codes == code)[0])
        raise ValueError(
            f"{file}: id {show(uniques[code])} (first on line {line_of(first_row)}) occurs "
            f"{counts[code]} times, but most ids occur {expected} times ({odd.size} ids differ); "
            "every recorded step must log every sample once."
        )
    order = np.argsort(codes, kind="stable")
    starts = np.cumsum(counts) - counts
    occurrence = np.empty(n_rows, dtype=np.int64)
    occurrence[order] = np.arange(n_rows) - np.repeat(starts, counts)
    first_rows = order[starts]
    stacked = np.empty((expected, n_ids, num_classes), dtype=rows.probs.dtype)
    stacked[occurrence, codes] = rows.probs
    changed = np.flatnonzero(label_arr != label_arr[first_rows][codes])
    if changed.size:
        row = int(changed[0])
        before = int(first_rows[codes[row]])
        raise ValueError(
            f"{file}, line {line_of(row)}: label {label_arr[row]} for id {show(id_arr[row])}, "
            f"but line {line_of(before)} gives {label_arr[before]}; a sample's label cannot "
            "change between steps."
        )
    return TrainingDynamics.from_probabilities(
        stacked, label_arr[first_rows], ids=np.asarray(uniques), class_names=class_names
    )


def _period(ids: np.ndarray, labels: np.ndarray) -> int:
    """N when the rows are steps of the same N distinct ids in the same order, each with one
    label; 0 otherwise (the general path then orders the rows, or says what is wrong)."""
    again = np.flatnonzero(ids[1:] == ids[0])
    period = int(again[0]) + 1 if again.size else ids.shape[0]
    if ids.shape[0] % period:
        return 0
    steps = ids.shape[0] // period
    if not (ids.reshape(steps, period) == ids[:period]).all():
        return 0
    if not (labels.reshape(steps, period) == labels[:period]).all():
        return 0
    return 0 if has_duplicates(ids[:period]) else period
