"""Read and write training dynamics in other tools' file layouts.

Three formats are understood:

* ``"allenai"``: the layout of allenai/cartography (Swayamdipta et al., 2020): a folder
  ``training_dynamics/`` holding ``dynamics_epoch_<e>.jsonl`` files, one JSON object per line,
  ``{"guid": ..., "logits_epoch_<e>": [C floats], "gold": <int>}``.
* ``"trustai"``: the training-signal file of TrustAI's data-map tutorial: one ``.jsonl`` file,
  one line per sample per recorded step,
  ``{'id': ..., 'label': ..., 'pred_label': ..., 'correct': ..., 'loss': ..., 'probs': [...],
  'label_probs': ...}``.
* ``"cartokit"``: the ``.npz`` file written by :meth:`TrainingDynamics.save`.

:func:`read_dynamics` reads any of them, telling them apart with :func:`detect_format`.
"""

from __future__ import annotations

import ast
import itertools
import json
import math
import os
import re
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from cartokit._files import atomic_write
from cartokit._validation import first_few
from cartokit.dynamics import TrainingDynamics

__all__ = [
    "FORMATS",
    "detect_format",
    "read_allenai",
    "read_dynamics",
    "read_trustai",
    "write_allenai",
    "write_metrics_csv",
]

#: The formats :func:`read_dynamics` reads.
FORMATS = ("allenai", "trustai", "cartokit")

_ALLENAI_DIR = "training_dynamics"
_EPOCH_FILE = re.compile(r"dynamics_epoch_(\d+)\.jsonl")
_ZIP_MAGIC = b"PK\x03\x04"
_INT64 = np.iinfo(np.int64)
_CANONICAL_INT = re.compile(r"-?(0|[1-9][0-9]*)")

_ALLENAI_LAYOUT = (
    "a folder 'training_dynamics/' holding dynamics_epoch_0.jsonl, dynamics_epoch_1.jsonl, ..., "
    'one JSON object per line: {"guid": ..., "logits_epoch_<e>": [C floats], "gold": <int>}'
)
_TRUSTAI_LAYOUT = (
    "one .jsonl (or .json) file, one line per sample per recorded step: "
    "{'id': ..., 'label': <int>, 'probs': [C floats], ...}"
)
_CARTOKIT_LAYOUT = "a .npz file written by TrainingDynamics.save"


# ============================================================================ allenai: reading


class _Epoch(NamedTuple):
    """One epoch file: guids (int64 or str objects), float32 logits [n, C], int64 gold [n]."""

    guids: np.ndarray
    logits: np.ndarray
    gold: np.ndarray


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
        raise FileNotFoundError(f"read_allenai: {path} does not exist. Expected {_ALLENAI_LAYOUT}.")
    if not path.is_dir():
        raise ValueError(
            f"read_allenai expects a folder, not the file {path}. Pass the folder that holds the "
            f"epoch files ({path.parent}) or the run folder above it."
        )
    sub = path / _ALLENAI_DIR
    return sub if sub.is_dir() else path


def _find_epoch_files(folder: Path) -> list[tuple[int, Path]]:
    if not folder.is_dir():
        return []
    found = []
    for entry in folder.iterdir():
        match = _EPOCH_FILE.fullmatch(entry.name)
        if match and entry.is_file():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def _epoch_files(folder: Path) -> list[tuple[int, Path]]:
    files = _find_epoch_files(folder)
    if not files:
        raise FileNotFoundError(
            f"read_allenai: no dynamics_epoch_<e>.jsonl files in {folder}. Expected "
            f"{_ALLENAI_LAYOUT}."
        )
    for (e1, p1), (e2, p2) in itertools.pairwise(files):
        if e1 == e2:
            raise ValueError(
                f"read_allenai: {p1.name} and {p2.name} in {folder} both hold epoch {e1}. "
                "Keep one of them."
            )
    return files


def _read_allenai(files: list[tuple[int, Path]], class_names: list[str] | None) -> TrainingDynamics:
    # Epoch files are read one at a time and copied into place, so the peak holds the result
    # plus one parsed file.
    first_path = files[0][1]
    first = _read_epoch_file(first_path, files[0][0])
    ids, gold = first.guids, first.gold
    ref = pd.Index(ids)
    num_classes = first.logits.shape[1]
    logits = np.empty((len(files), len(ref), num_classes), dtype=np.float32)
    logits[0] = first.logits
    del first
    for e, (epoch, path) in enumerate(files[1:], start=1):
        part = _read_epoch_file(path, epoch)
        if part.logits.shape[1] != num_classes:
            raise ValueError(
                f"{path}, line {_line_of_row(path, 0)}: {part.logits.shape[1]} logits per row, "
                f"but {first_path.name} has {num_classes}; every epoch must score the same "
                "classes."
            )
        # Any string guid makes the whole run string-keyed; str() of distinct ints stays
        # distinct, so the epochs already aligned keep their positions.
        if part.guids.dtype == object and ids.dtype != object:
            ids = _as_str(ids)
            ref = pd.Index(ids)
        elif ids.dtype == object and part.guids.dtype != object:
            part = part._replace(guids=_as_str(part.guids))
        pos = ref.get_indexer(part.guids)
        extra = np.flatnonzero(pos < 0)
        if extra.size:
            row = int(extra[0])
            raise ValueError(
                f"{path}, line {_line_of_row(path, row)}: guid {_show(part.guids[row])} is not in "
                f"{first_path.name}, the first epoch file ({extra.size} such guids); every epoch "
                "file must list the same samples."
            )
        if pos.shape[0] < len(ref):
            seen = np.zeros(len(ref), dtype=bool)
            seen[pos] = True
            row = int(np.flatnonzero(~seen)[0])
            raise ValueError(
                f"{path}: no row for guid {_show(ref[row])} (line "
                f"{_line_of_row(first_path, row)} of {first_path.name}); "
                f"{len(ref) - pos.shape[0]} of {len(ref)} guids are missing. Every epoch file "
                "must list the same samples."
            )
        changed = np.flatnonzero(gold[pos] != part.gold)
        if changed.size:
            row = int(changed[0])
            raise ValueError(
                f"{path}, line {_line_of_row(path, row)}: gold {int(part.gold[row])} for guid "
                f"{_show(part.guids[row])}, but {first_path.name} gives {int(gold[pos[row]])}; "
                "a sample's gold label cannot change between epochs."
            )
        logits[e, pos] = part.logits
    return TrainingDynamics.from_logits(logits, gold, ids=ids, class_names=class_names)


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
    if isinstance(guid, str) or _is_int64(guid):
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
    import pyarrow.compute as pc
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
    bounds = pc.min_max(pc.list_value_length(logit_col))
    num_classes = bounds["min"].as_py()
    if num_classes != bounds["max"].as_py() or num_classes < 2:
        return None
    values = logit_col.flatten()
    if values.null_count:
        return None
    logits = values.to_numpy(zero_copy_only=False).reshape(n_rows, num_classes)
    # Copies: arrow buffers are read-only, and torch.from_numpy warns on read-only arrays.
    gold = gold_col.to_numpy(zero_copy_only=False).astype(np.int64)
    if not np.isfinite(logits).all() or gold.min() < 0 or gold.max() >= num_classes:
        return None
    try:
        guids = guid_col.to_numpy(zero_copy_only=False)
    except pa.ArrowException:  # a string guid that is not UTF-8: the scan names its line
        return None
    guids = guids.astype(np.int64) if guid_is_int else guids.astype(object)
    if pd.Index(guids).has_duplicates:
        return None
    return _Epoch(guids, logits.astype(np.float32), gold)


def _scan_epoch_file(path: Path, raw: bytes, epoch: int) -> _Epoch:
    """Slow, literal line-by-line parse that names the line of the first problem."""
    key = f"logits_epoch_{epoch}"
    guids: list[int | str] = []
    rows: list[list[float]] = []
    golds: list[int] = []
    first_line: dict[str, int] = {}
    num_classes, classes_line = 0, 0
    for lineno, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {lineno}"
        try:
            record = json.loads(line)
        except UnicodeDecodeError as err:
            raise ValueError(f"{where}: {_not_utf8(err)}") from None
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
                f"Got {_clip(logits)}."
            )
        if len(logits) < 2:
            raise ValueError(
                f"{where}: {key} holds {len(logits)} logit(s); need one per class, >= 2."
            )
        if not num_classes:
            num_classes, classes_line = len(logits), lineno
        elif len(logits) != num_classes:
            raise ValueError(
                f"{where}: {len(logits)} logits, but line {classes_line} has {num_classes}; "
                "every row needs one logit per class."
            )
        if not all(math.isfinite(v) for v in logits):
            raise ValueError(
                f"{where}: logits must be finite. Got {_clip(logits)}; check the model for "
                "divergence."
            )
        gold = record["gold"]
        if isinstance(gold, bool) or not isinstance(gold, int):
            raise ValueError(f"{where}: gold must be an int class index. Got {gold!r}.")
        if not 0 <= gold < num_classes:
            raise ValueError(
                f"{where}: gold {gold} is out of range [0, {num_classes}) for {num_classes} "
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
    if all(_is_int64(g) for g in guids):
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


def _is_int64(value: Any) -> bool:
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and int(_INT64.min) <= value <= int(_INT64.max)
    )


def _as_str(ids: np.ndarray) -> np.ndarray:
    return np.array([str(v) for v in ids.tolist()], dtype=object)


def _show(value: Any) -> str:
    return repr(value.item() if isinstance(value, np.generic) else value)


def _not_utf8(err: UnicodeDecodeError) -> str:
    return (
        f"not UTF-8 text (byte 0x{err.object[err.start]:02x} at column {err.start + 1}); "
        "is this a binary file? Dynamics files are UTF-8 JSON lines."
    )


def _check_regular(path: Path, caller: str) -> None:
    """Refuse devices, pipes and sockets before opening: /dev/zero never ends, a FIFO blocks."""
    if path.exists() and not path.is_dir() and not path.is_file():
        raise ValueError(
            f"{caller}: {path} is not a regular file or folder (a device, pipe or socket). "
            "Pass a dynamics file or run folder."
        )


def _clip(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ============================================================================ allenai: writing


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
    folder = Path(path) / _ALLENAI_DIR
    stale = [p.name for e, p in _find_epoch_files(folder) if e >= dyn.num_epochs]
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


# ============================================================================ TrustAI


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
        raise FileNotFoundError(f"read_trustai: {path} does not exist. Expected {_TRUSTAI_LAYOUT}.")
    _check_regular(path, "read_trustai")
    found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in (".jsonl", ".json"))
    if len(found) != 1:
        raise ValueError(
            f"read_trustai: the folder {path} must hold exactly one .jsonl or .json file. Found "
            f"{len(found)}: {first_few([p.name for p in found])}. Pass the file itself."
        )
    return found[0]


def _parse_trustai_line(text: str) -> dict[str, Any] | None:
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
    num_classes = 0
    # Bytes, decoded line by line, so that a binary file is named with the line it breaks on.
    with open(file, "rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{file}, line {lineno}"
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(f"{where}: {_not_utf8(err)}") from None
            record = _parse_trustai_line(text.strip())
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
                    f"Got {_clip(row)}."
                )
            if not all(math.isfinite(v) and v >= 0 for v in values):  # type: ignore[arg-type]
                raise ValueError(f"{where}: probs must be finite and >= 0. Got {_clip(row)}.")
            if not num_classes:
                num_classes, classes_line = len(values), lineno
            elif len(values) != num_classes:
                raise ValueError(
                    f"{where}: {len(values)} probs, but line {classes_line} has {num_classes}; "
                    "every line needs one probability per class."
                )
            if label >= num_classes:
                raise ValueError(
                    f"{where}: label {label} is out of range [0, {num_classes}) for "
                    f"{num_classes} probabilities per line."
                )
            ids.append(sid)
            labels.append(label)
            probs.append(values)  # type: ignore[arg-type]
            lines.append(lineno)
    if not ids:
        raise ValueError(f"{file}: the file has no rows. Expected {_TRUSTAI_LAYOUT}.")
    return _assemble_trustai(file, ids, labels, probs, lines, num_classes, class_names)


def _assemble_trustai(
    file: Path,
    ids: list[int | str],
    labels: list[int],
    probs: list[list[float]],
    lines: list[int],
    num_classes: int,
    class_names: list[str] | None,
) -> TrainingDynamics:
    if all(_is_int64(i) for i in ids):
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
            f"{file}: id {_show(uniques[code])} (first on line {lines[first_row]}) occurs "
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
            f"{file}, line {lines[row]}: label {labels[row]} for id {_show(id_arr[row])}, but "
            f"line {lines[before]} gives {labels[before]}; a sample's label cannot change "
            "between steps."
        )
    stacked = np.empty((expected, uniques.shape[0], num_classes), dtype=np.float32)
    stacked[occurrence, codes] = np.asarray(probs, dtype=np.float32)
    return TrainingDynamics.from_probabilities(
        stacked, label_arr[first_rows], ids=np.asarray(uniques), class_names=class_names
    )


# ============================================================================ dispatch


def detect_format(path: str | os.PathLike[str]) -> str:
    """Tell which training-dynamics format ``path`` holds: "allenai", "trustai" or "cartokit".

    * ``"allenai"``: a folder with ``dynamics_epoch_<e>.jsonl`` files, directly or in
      ``training_dynamics/``;
    * ``"trustai"``: a ``.jsonl``/``.json`` file (or a folder with exactly one) whose first line
      has ``id``, ``label`` and ``probs``;
    * ``"cartokit"``: a file starting with the zip magic bytes (the ``.npz`` of
      :meth:`TrainingDynamics.save`).

    Detection reads at most the first 64 KiB of a file, whatever its size.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When the format is none of these (the message describes each), or when ``path`` is a
        device, pipe or socket rather than a file or folder.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> dyn = TrainingDynamics.from_logits(np.zeros((3, 2, 2)), [0, 1])
    >>> detect_format(dyn.save(os.path.join(tempfile.mkdtemp(), "dyn.npz")))
    'cartokit'
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"detect_format: {path} does not exist.")
    _check_regular(path, "detect_format")
    if path.is_dir():
        if _find_epoch_files(path / _ALLENAI_DIR) or _find_epoch_files(path):
            return "allenai"
        found = [p for p in path.iterdir() if p.is_file() and p.suffix in (".jsonl", ".json")]
        if len(found) == 1 and _looks_trustai(found[0]):
            return "trustai"
    else:
        with open(path, "rb") as fh:
            if fh.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC:
                return "cartokit"
        if _EPOCH_FILE.fullmatch(path.name):
            raise ValueError(
                f"detect_format: {path} is one epoch file of the allenai layout; pass its folder "
                f"{path.parent} to read every epoch."
            )
        if _looks_trustai(path):
            return "trustai"
    raise ValueError(
        f"detect_format: cannot tell the format of {path}. cartokit reads 'allenai' "
        f"({_ALLENAI_LAYOUT}), 'trustai' ({_TRUSTAI_LAYOUT}) and 'cartokit' ({_CARTOKIT_LAYOUT}). "
        "Convert the file to one of them, or pass format= if detection got it wrong."
    )


#: Bytes that format detection reads from a file. A TrustAI line is about 20 bytes per class, so
#: whole lines of up to ~3,000 classes fit; a longer first line is judged by its opening keys.
_SNIFF_BYTES = 64 * 1024
#: The start of a TrustAI line: a dict whose keys before the long probability list include
#: 'id' and 'label' (TrustAI writes id, label, pred_label, correct, loss, probs, label_probs).
_TRUSTAI_KEY = r"""[{,]\s*["']%s["']\s*:"""


def _read_head(file: Path, limit: int = _SNIFF_BYTES) -> bytes:
    """At most ``limit`` bytes from the start of ``file``: all that detection ever looks at."""
    with open(file, "rb") as fh:
        return fh.read(limit)


def _looks_trustai(file: Path) -> bool:
    head = _read_head(file)
    lines = head.split(b"\n")
    whole = len(lines) > 1 or len(head) < _SNIFF_BYTES  # the last piece may be cut at the limit
    for k, line in enumerate(lines):
        if not line.strip():
            continue
        text = line.decode("utf-8", errors="replace").strip()
        if k < len(lines) - 1 or whole:
            record = _parse_trustai_line(text)
            return record is not None and {"id", "label", "probs"} <= record.keys()
        # One line longer than the sniff: judge by the keys written before the probabilities.
        return text.startswith("{") and all(
            re.search(_TRUSTAI_KEY % key, text) for key in ("id", "label", "probs")
        )
    return False


def read_dynamics(
    path: str | os.PathLike[str],
    *,
    format: str = "auto",
    class_names: list[str] | None = None,
) -> TrainingDynamics:
    """Read training dynamics from any supported format.

    Parameters
    ----------
    path : path-like
        An allenai run folder, a TrustAI signal file, or a cartokit ``.npz``.
    format : {"auto", "allenai", "trustai", "cartokit"}, default "auto"
        "auto" uses :func:`detect_format`.
    class_names : list of str, optional
        Names of the classes (replacing any stored in a cartokit file).

    Returns
    -------
    TrainingDynamics

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> dyn = TrainingDynamics.from_logits(np.zeros((3, 2, 2)), [0, 1], store_probs=True)
    >>> run = write_allenai(dyn, tempfile.mkdtemp()).parent
    >>> read_dynamics(run, class_names=["neg", "pos"])
    TrainingDynamics(num_samples=2, num_epochs=3, num_classes=2, class_names=['neg', 'pos'])
    """
    if format not in ("auto", *FORMATS):
        raise ValueError(
            "The 'format' parameter of read_dynamics must be one of 'auto', 'allenai', "
            f"'trustai', 'cartokit'. Got {format!r} instead."
        )
    chosen = detect_format(path) if format == "auto" else format
    if chosen == "allenai":
        return read_allenai(path, class_names=class_names)
    if chosen == "trustai":
        return read_trustai(path, class_names=class_names)
    dyn = TrainingDynamics.load(path)
    if class_names is None:
        return dyn
    return TrainingDynamics(
        ids=dyn.ids,
        labels=dyn.labels,
        gold_prob=dyn.gold_prob,
        margin=dyn.margin,
        sq_error=dyn.sq_error,
        pred=dyn.pred,
        num_classes=dyn.num_classes,
        class_names=class_names,
        probs=dyn.probs,
    )


def write_metrics_csv(metrics: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a metrics table (with its id index) as CSV, quickly and atomically.

    Floats are written at float32 precision (the shortest text that reads back to the same
    float32, about 7 significant digits: the statistics behind them are float32), booleans as
    ``true``/``false``, missing values as empty fields. ``pandas.read_csv(path, index_col="id")``
    reads it back. Uses pyarrow's writer: about 8x faster than ``DataFrame.to_csv`` on 500,000
    rows.

    Examples
    --------
    >>> import pandas as pd, tempfile, os
    >>> table = pd.DataFrame({"confidence": [0.25, 1.0]}, index=pd.Index(["a", "b"], name="id"))
    >>> path = write_metrics_csv(table, os.path.join(tempfile.mkdtemp(), "m.csv"))
    >>> pd.read_csv(path, index_col="id")["confidence"].tolist()
    [0.25, 1.0]
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    table = pa.Table.from_pandas(metrics.reset_index(), preserve_index=False)
    columns = []
    for column in table.columns:
        if pa.types.is_float64(column.type):
            column = column.cast(pa.float32())
        elif pa.types.is_dictionary(column.type):  # pandas categoricals, e.g. a region column
            column = column.cast(column.type.value_type)
        columns.append(column)
    table = pa.table(columns, names=table.column_names)
    path = Path(path)
    with atomic_write(path, "wb") as fh:
        pacsv.write_csv(table, fh)
    return path
