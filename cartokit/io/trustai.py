"""The training-signal file of TrustAI's data-map tutorial: reading.

One ``.jsonl`` file, one line per sample per recorded step, written with Python's ``str(dict)``:
``{'id': ..., 'label': ..., 'pred_label': ..., 'correct': ..., 'loss': ..., 'probs': [...],
'label_probs': ...}``. :func:`read_trustai` reads it; :func:`parse_line` is how any of its lines
is read (format detection uses it too).
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cartokit._validation import first_few, show
from cartokit.dynamics import TrainingDynamics
from cartokit.io._reading import ClassCount, check_regular, clip, is_int64, not_utf8

__all__ = ["read_trustai"]

#: The layout in words, for errors.
LAYOUT = (
    "one .jsonl (or .json) file, one line per sample per recorded step: "
    "{'id': ..., 'label': <int>, 'probs': [C floats], ...}"
)
_CANONICAL_INT = re.compile(r"-?(0|[1-9][0-9]*)")


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
    strings.

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
    # JSON first; then TrustAI's own trick (single to double quotes); then a Python literal,
    # which also covers True/False and strings holding an apostrophe. Text that parses as JSON
    # but not as an object (a list, say) is no dict literal either: stop there, as
    # ast.literal_eval of a 5 MB list costs about 1 GB.
    for parse in (json.loads, lambda s: json.loads(s.replace("'", '"')), ast.literal_eval):
        try:
            record = parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        return record if isinstance(record, dict) else None
    return None


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
    ids: list[int | str] = []
    labels: list[int] = []
    probs: list[list[float]] = []
    lines: list[int] = []
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
            lines.append(lineno)
    if not ids:
        raise ValueError(f"{file}: the file has no rows. Expected {LAYOUT}.")
    return _assemble_trustai(file, ids, labels, probs, lines, width.count, class_names)


def _assemble_trustai(
    file: Path,
    ids: list[int | str],
    labels: list[int],
    probs: list[list[float]],
    lines: list[int],
    num_classes: int,
    class_names: list[str] | None,
) -> TrainingDynamics:
    if all(is_int64(i) for i in ids):
        id_arr = np.array(ids, dtype=np.int64)
    else:
        id_arr = np.array([str(i) for i in ids], dtype=object)
    codes, uniques = pd.factorize(id_arr)
    counts = np.bincount(codes)
    values, how_often = np.unique(counts, return_counts=True)
    expected = int(values[len(values) - 1 - how_often[::-1].argmax()])  # the mode; ties: larger
    odd = np.flatnonzero(counts != expected)
    if odd.size:
        code = int(odd[0])
        first_row = int(np.flatnonzero(codes == code)[0])
        raise ValueError(
            f"{file}: id {show(uniques[code])} (first on line {lines[first_row]}) occurs "
            f"{counts[code]} times, but most ids occur {expected} times ({odd.size} ids differ); "
            "every recorded step must log every sample once."
        )
    order = np.argsort(codes, kind="stable")
    starts = np.cumsum(counts) - counts
    occurrence = np.empty(codes.shape[0], dtype=np.int64)
    occurrence[order] = np.arange(codes.shape[0]) - np.repeat(starts, counts)
    label_arr = np.asarray(labels, dtype=np.int64)
    first_rows = order[starts]
    changed = np.flatnonzero(label_arr != label_arr[first_rows][codes])
    if changed.size:
        row = int(changed[0])
        before = int(first_rows[codes[row]])
        raise ValueError(
            f"{file}, line {lines[row]}: label {labels[row]} for id {show(id_arr[row])}, but "
            f"line {lines[before]} gives {labels[before]}; a sample's label cannot change "
            "between steps."
        )
    stacked = np.empty((expected, uniques.shape[0], num_classes), dtype=np.float32)
    stacked[occurrence, codes] = np.asarray(probs, dtype=np.float32)
    return TrainingDynamics.from_probabilities(
        stacked, label_arr[first_rows], ids=np.asarray(uniques), class_names=class_names
    )
