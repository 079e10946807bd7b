"""Review suspected label errors one by one, and apply the decisions to the data.

:class:`ReviewSession` walks through suspects, most suspicious first. Each decision (*keep*,
*relabel* to another class, or *drop*) is appended to a CSV log, flushed and synced to disk
(``fsync``) the moment it is made, so a dead kernel loses nothing; reopening the session on the
same log resumes at the first suspect without a decision. :func:`apply_review` returns the
cleaned data. The same session as an ipywidgets panel (the sample, its training trajectory, its
given and suggested labels, and the buttons) is :class:`cartokit.widgets.ReviewWidget`.

Test data is off limits by default. Dropping or relabelling the test samples a model gets wrong
raises its test score without making it any better, a known pitfall; a session refuses suspects
from a test split, and :func:`apply_review` refuses decisions about them, unless
``allow_test=True``.

Examples
--------
>>> import numpy as np, pandas as pd, tempfile, os
>>> from cartokit.data import from_arrays
>>> train = from_arrays(np.eye(4), [0, 1, 0, 1], ids=[10, 11, 12, 13], name="toy/train")
>>> scores = pd.Series([0.1, 0.9, 0.5, 0.2], index=train.ids)
>>> log = os.path.join(tempfile.mkdtemp(), "review.csv")
>>> session = ReviewSession(scores, log, data=train, limit=2)
>>> session.current  # the most suspicious first
11
>>> session.decide("relabel", new_label=0)
>>> session.decide("drop")
>>> session.done
True
>>> cleaned = apply_review(train, log)
>>> cleaned.ids.tolist(), cleaned.labels.tolist()
([10, 11, 13], [0, 0, 1])
"""

from __future__ import annotations

import csv
import io
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from cartokit._deprecation import moved
from cartokit._validation import first_few, positions_of

if TYPE_CHECKING:
    from cartokit.data import DataBundle, Split
    from cartokit.dynamics import TrainingDynamics

__all__ = [
    "DECISIONS",
    "LOG_COLUMNS",
    "ReviewItem",
    "ReviewSession",
    "apply_review",
    "read_decisions",
]

#: What a reviewer can decide about a suspect.
DECISIONS = ("keep", "relabel", "drop")
#: Columns of the decision log, in order.
LOG_COLUMNS = ("time", "id", "split", "decision", "label", "new_label")
#: Last parts of split names that mark held-out data (``digits/test``, ``glue/validation``).
_HELD_OUT_NAMES = ("test", "validation", "valid", "val", "dev", "eval", "evaluation")
_TEST_HINT = (
    "Cleaning test data makes test scores look better without making the model any better "
    "(the hard samples it gets wrong are the ones removed). Review the training split; pass "
    "allow_test=True only if you mean to clean the test set, and report that you did."
)


def _key(sample_id: Any) -> str:
    """Ids are matched by their text, the form the CSV log keeps them in."""
    return str(sample_id.item() if isinstance(sample_id, np.generic) else sample_id)


def _is_held_out(split: Split) -> bool:
    last = split.name.lower().rstrip("/").rsplit("/", 1)[-1]
    return last in _HELD_OUT_NAMES or last.startswith(("test", "validation"))


# ----------------------------------------------------------------------------------------------
# The log


def _fsync_dir(folder: Path) -> None:
    """Sync a folder, so that a file just created in it survives a crash (POSIX only)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: The header line of a log, as :meth:`ReviewSession._append` writes it.
_HEADER = ",".join(LOG_COLUMNS).encode("utf-8")
_BOM = b"\xef\xbb\xbf"  # a spreadsheet saving the log as "CSV UTF-8" puts it in front
_INT = re.compile(r"-?[0-9]+")


class _Log(NamedTuple):
    """A parsed review log: its decision rows and where its complete records end."""

    rows: list[tuple[int, list[str]]]  # (line the row starts on, its fields), header excluded
    complete: int  # bytes of the file holding complete records
    torn: bytes  # what follows: a record cut by a kill in mid-write, or b""


def _read_log(path: Path) -> _Log:
    """Parse a review log without changing it; raise one line naming the file for anything else.

    The header is checked on the first bytes, before the rest is read, so that a large file given
    by mistake is refused at once. Records are parsed by :mod:`csv` on the text itself, not split
    into lines first: an id may hold a line break (or U+2028, which ``str.splitlines`` breaks on)
    inside its quotes. The writer ends every record with a newline, so bytes after the last
    newline, and a quoted field still open at the end of the file, are a torn last record.
    """
    with open(path, "rb") as fh:
        head = fh.read(len(_BOM) + len(_HEADER) + 2)
        bom = len(_BOM) if head.startswith(_BOM) else 0
        first = head[bom:].split(b"\n", 1)[0].removesuffix(b"\r")
        if b"\n" not in head and len(first) >= len(b"time,id") and _HEADER.startswith(first):
            # Only the start of a header: a new log whose first write was cut.
            return _Log([], 0, head)
        if first != _HEADER:
            raise ValueError(
                f"{path} is not a cartokit review log: it starts with "
                f"{first[:60].decode('utf-8', 'replace')!r}, not the header "
                f"{_HEADER.decode()!r}. Give another log_path; this file was not changed."
            )
        data = head + fh.read()
    cut = data.rfind(b"\n") + 1
    try:
        text = data[bom:cut].decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: bom + err.start].count(b"\n") + 1
        raise ValueError(
            f"{path}, line {line}: not UTF-8 text (byte 0x{err.object[err.start]:02x}); the log "
            "was damaged or edited with another encoding."
        ) from None
    consumed = 0

    def lines() -> Any:
        nonlocal consumed
        for line in io.StringIO(text, newline=""):
            consumed += len(line)
            yield line

    reader = csv.reader(lines(), strict=True)
    rows: list[tuple[int, list[str]]] = []
    complete = cut
    while True:
        start, start_line = consumed, reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            if consumed == len(text) and "unexpected end of data" in str(err):
                complete = bom + len(text[:start].encode("utf-8"))
                break
            raise ValueError(
                f"{path}, line {reader.line_num}: not a CSV record ({err}); the log was damaged "
                "or edited by hand. Fix or delete that line."
            ) from None
        if row:  # a blank line, e.g. left by an editor, holds no decision
            rows.append((start_line, row))
    return _Log(rows[1:], complete, data[complete:])


def _decisions_of(path: Path, log: _Log) -> pd.DataFrame:
    """The log's rows as a table, each field checked; errors name the file and the line."""
    for line, row in log.rows:
        where = f"{path}, line {line}"
        if len(row) != len(LOG_COLUMNS):
            raise ValueError(
                f"{where}: {len(row)} fields, expected {len(LOG_COLUMNS)} "
                f"({','.join(LOG_COLUMNS)}); the line was edited or is not from a review log."
            )
        record = dict(zip(LOG_COLUMNS, row, strict=True))
        if record["decision"] not in DECISIONS:
            raise ValueError(
                f"{where}: decision {record['decision']!r}; expected one of {list(DECISIONS)}."
            )
        for column in ("label", "new_label"):
            value = record[column]
            if not _INT.fullmatch(value) and not (column == "new_label" and value == ""):
                raise ValueError(
                    f"{where}: {column} {value!r} is not a class index (an integer"
                    f"{', or empty' if column == 'new_label' else ''})."
                )
    table = pd.DataFrame([row for _, row in log.rows], columns=list(LOG_COLUMNS), dtype=object)
    for column in ("label", "new_label"):
        table[column] = pd.array(
            [int(v) if v != "" else None for v in table[column]], dtype="Int64"
        )
    return table


def _repair_tail(path: Path, log: _Log) -> None:
    """Cut a torn last record (a kill in the middle of a write) so that appends start clean.

    Called only on a file that :func:`_read_log` parsed as a review log.
    """
    if not log.torn:
        return
    with open(path, "rb+") as fh:
        fh.truncate(log.complete)
        fh.flush()
        os.fsync(fh.fileno())
    warnings.warn(
        f"The review log {path} ended in an incomplete line (the process died while writing "
        f"it); dropped it: {log.torn.decode('utf-8', 'replace')!r}.",
        UserWarning,
        stacklevel=3,
    )


def read_decisions(path: str | os.PathLike[str], *, latest: bool = True) -> pd.DataFrame:
    """Read a review log written by :class:`ReviewSession`.

    Parameters
    ----------
    path : path
    latest : bool, default True
        Keep only the last decision per sample (a later decision overrides an earlier one);
        ``False`` gives every row, in the order written.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`LOG_COLUMNS`; ``id`` and ``split`` as text, ``label`` and ``new_label``
        as nullable integers. An incomplete last record (from a kill while writing) is left out;
        the file is never changed.

    Raises
    ------
    FileNotFoundError
        When there is no file at ``path``.
    ValueError
        When the file is not a review log (its first line is not the header), is not UTF-8 text,
        or has a row with the wrong number of fields, an unknown decision or a label that is not
        an integer. The one-line message names the file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No review log at {path}.")
    if path.stat().st_size == 0:
        return pd.DataFrame(columns=list(LOG_COLUMNS))
    table = _decisions_of(path, _read_log(path))
    if latest:
        table = table.drop_duplicates("id", keep="last").reset_index(drop=True)
    return table


def _decisions_table(decisions: Any, *, caller: str) -> pd.DataFrame:
    if isinstance(decisions, ReviewSession):
        return decisions.decisions
    if isinstance(decisions, (str, os.PathLike)):
        path = Path(decisions)
        if not path.exists() or (path.is_file() and path.stat().st_size == 0):
            # A session writes its log at the first decision; before it, there is none to apply.
            warnings.warn(
                f"{caller}: no decisions to apply: the review log {path} "
                f"{'is empty' if path.exists() else 'does not exist yet'} (a review writes it at "
                "its first decision); the data is returned unchanged.",
                UserWarning,
                stacklevel=3,
            )
            return pd.DataFrame(columns=list(LOG_COLUMNS))
        return read_decisions(decisions)
    if isinstance(decisions, pd.DataFrame):
        missing = [c for c in ("id", "decision") if c not in decisions.columns]
        if missing:
            raise ValueError(
                f"The 'decisions' parameter of {caller} needs the columns 'id' and 'decision' "
                f"(and 'new_label' for relabels); missing {missing}."
            )
        table = decisions.copy()
        table["id"] = table["id"].map(_key)
        bad = ~table["decision"].isin(DECISIONS)
        if bad.any():
            raise ValueError(
                f"The 'decision' column of {caller}'s decisions must hold {list(DECISIONS)}. "
                f"Got {first_few(list(table.loc[bad, 'decision']))}."
            )
        return table.drop_duplicates("id", keep="last").reset_index(drop=True)
    raise TypeError(
        f"The 'decisions' parameter of {caller} must be a review log path, a DataFrame or a "
        f"ReviewSession. Got {type(decisions).__name__} instead."
    )


# ----------------------------------------------------------------------------------------------
# Applying decisions


def _apply_to_split(split: Split, table: pd.DataFrame, *, caller: str) -> Split:
    """The split with ``table``'s decisions (ids all in the split) applied."""
    positions = positions_of([_key(i) for i in split.ids], table["id"], caller=caller)
    labels = split.labels.copy()
    review = np.full(len(split), None, dtype=object)
    review[positions] = table["decision"].to_numpy()
    relabel = (table["decision"] == "relabel").to_numpy()
    if relabel.any():
        new = pd.to_numeric(table.loc[relabel, "new_label"], errors="coerce")
        bad = new.isna() | (new < 0) | (new >= split.num_classes)
        if bad.any():
            raise ValueError(
                f"{caller}: relabel decisions need a new_label in [0, {split.num_classes}); ids "
                f"{first_few(list(table.loc[relabel].loc[bad, 'id']))} have "
                f"{first_few(list(table.loc[relabel].loc[bad, 'new_label']))}."
            )
        labels[positions[relabel]] = new.to_numpy(dtype=np.int64)
    cleaned = split.with_labels(labels)
    cleaned.frame["given_label"] = split.labels
    cleaned.frame["review"] = review
    kept = np.flatnonzero(review != "drop")
    return cleaned if kept.size == len(split) else cleaned.subset(kept, name=split.name)


def apply_review(
    data: Split | DataBundle, decisions: Any, *, allow_test: bool = False
) -> Split | DataBundle:
    """The data with the review's decisions applied: relabelled, dropped samples removed.

    Parameters
    ----------
    data : Split or DataBundle
        The reviewed split, or a bundle: decisions then go to the split holding each id
        (train first).
    decisions : path, pandas.DataFrame or ReviewSession
        A review log (:func:`read_decisions`), a table with ``id``, ``decision`` and
        ``new_label`` columns, or a session. The last decision per id counts. A log that
        does not exist yet (a session writes it at its first decision) or is empty holds no
        decisions: the data comes back unchanged, with a warning.
    allow_test : bool, default False
        Apply decisions about test (held-out) samples. Without it they raise: see the module
        notes on cleaning test data.

    Returns
    -------
    Split or DataBundle
        Of the same kind as ``data``. Reviewed splits gain the frame columns ``given_label``
        (the label before review) and ``review`` (the decision; missing where none).

    Raises
    ------
    ValueError
        For ids found in no split, a relabel without a valid new label, or decisions about
        test samples without ``allow_test``.
    """
    from cartokit.data import DataBundle, Split

    caller = "apply_review"
    table = _decisions_table(decisions, caller=caller)
    if isinstance(data, Split):
        splits = {"data": data}
    elif isinstance(data, DataBundle):
        splits = data.splits
    else:
        raise TypeError(
            f"The 'data' parameter of {caller} must be a cartokit Split or DataBundle. "
            f"Got {type(data).__name__} instead."
        )
    owner = pd.Series(None, index=table["id"], dtype=object)
    for key, split in splits.items():  # train first: an id in several splits goes to train
        known = owner.index.isin([_key(i) for i in split.ids]) & owner.isna().to_numpy()
        owner[known] = key
    if owner.isna().any():
        raise ValueError(
            f"{caller}: {int(owner.isna().sum())} decided ids are not in the data, e.g. "
            f"{first_few(list(owner.index[owner.isna()]))}. Apply the log to the data it was "
            "made on."
        )
    if not allow_test:
        held = [
            k
            for k, s in splits.items()
            if (isinstance(data, DataBundle) and k != "train") or _is_held_out(s)
        ]
        touched = table.loc[owner.isin(held).to_numpy()]
        touched = touched[touched["decision"] != "keep"]
        if len(touched):
            names = sorted({splits[k].name for k in owner[owner.isin(held)].unique()})
            raise ValueError(
                f"{caller}: {len(touched)} decisions would drop or relabel test samples (split "
                f"{', '.join(map(repr, names))}), e.g. ids {first_few(list(touched['id']))}. "
                f"{_TEST_HINT}"
            )
    cleaned = {
        key: _apply_to_split(split, table[(owner == key).to_numpy()], caller=caller)
        if (owner == key).any()
        else split
        for key, split in splits.items()
    }
    if isinstance(data, Split):
        return cleaned["data"]
    return DataBundle(
        data.name,
        train=cleaned["train"],
        test=cleaned["test"],
        ood={k: cleaned[k] for k in data.ood},
    )


# ----------------------------------------------------------------------------------------------
# The session


@dataclass
class ReviewItem:
    """Everything shown about one suspect."""

    id: Any
    rank: int  # 1 = most suspicious
    total: int
    score: float
    split: str
    sample: Any  # text, or an image array (Split.show)
    label: int
    label_name: str
    suggested: int | None
    suggested_name: str | None
    support: float | None  # the suggestion's mean probability or share of checkpoints
    trajectory: np.ndarray | None  # gold-label probability per checkpoint
    suggested_trajectory: np.ndarray | None  # the suggested class's probability per checkpoint
    decision: str | None  # the latest decision about it, if any
    new_label: int | None
    #: What ``support`` is, in words with its value, e.g. "mean probability 0.60 over 20
    #: checkpoints"; None without a suggestion.
    support_text: str | None = None


class ReviewSession:
    """Walk through suspected label errors, most suspicious first, logging every decision.

    Parameters
    ----------
    suspects : pandas.Series or sequence of ids
        Suspicion scores indexed by sample id (e.g. from
        :func:`~cartokit.mislabel.score_mislabeled`), reviewed highest first (ties in the
        given order, NaN last); or ids already in review order.
    log_path : path
        The decision log (CSV). Created with a header when missing; when it exists, its
        decisions are loaded and the session resumes at the first suspect without one.
    data : Split or DataBundle
        Where the suspects' samples and given labels come from. With a bundle, each id is
        looked up in train first, then test and the out-of-distribution splits.
    dynamics : TrainingDynamics, optional
        For trajectories, and for suggested labels when ``suggestions`` is not given.
    suggestions : pandas.DataFrame, optional
        :func:`~cartokit.mislabel.suggest_labels` output (``suggested_label``, ``support``).
    limit : int, optional
        Review at most this many suspects (the top of the ranking).
    allow_test : bool, default False
        Accept suspects from a test (held-out) split. Without it such suspects raise; see the
        module notes.

    Raises
    ------
    ValueError
        For suspects not in ``data``, test suspects without ``allow_test``, or a log file
        that is not a review log.
    """

    def __init__(
        self,
        suspects: pd.Series | Sequence[Any] | np.ndarray,
        log_path: str | os.PathLike[str],
        *,
        data: Split | DataBundle,
        dynamics: TrainingDynamics | None = None,
        suggestions: pd.DataFrame | None = None,
        limit: int | None = None,
        allow_test: bool = False,
    ) -> None:
        from cartokit.data import DataBundle, Split
        from cartokit.mislabel import suggest_labels

        caller = "ReviewSession"
        if isinstance(suspects, pd.Series):
            values = suspects.to_numpy(dtype=np.float64, na_value=np.nan)
            order = np.argsort(-np.where(np.isnan(values), -np.inf, values), kind="stable")
            ids = suspects.index.to_numpy()[order]
            scores = values[order]
        elif isinstance(suspects, (str, bytes)) or not hasattr(suspects, "__len__"):
            raise TypeError(
                f"The 'suspects' parameter of {caller} must be a Series of scores indexed by id "
                f"or a sequence of ids. Got {type(suspects).__name__} instead."
            )
        else:
            ids = np.asarray(list(suspects), dtype=object)
            scores = np.full(len(ids), np.nan)
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
                raise ValueError(
                    f"The 'limit' parameter of {caller} must be an int >= 1 or None. "
                    f"Got {limit!r} instead."
                )
            ids, scores = ids[:limit], scores[:limit]
        if len(ids) == 0:
            raise ValueError(f"{caller}: there are no suspects to review.")
        if len({_key(i) for i in ids}) != len(ids):
            raise ValueError(f"{caller}: suspects repeat sample ids; give each once.")

        if isinstance(data, Split):
            splits = {data.name: data}
            held = {data.name} if _is_held_out(data) else set()
        elif isinstance(data, DataBundle):
            splits = {s.name: s for s in data.splits.values()}
            held = {s.name for k, s in data.splits.items() if k != "train"}
        else:
            raise TypeError(
                f"The 'data' parameter of {caller} must be a cartokit Split or DataBundle. "
                f"Got {type(data).__name__} instead."
            )
        where: dict[str, tuple[Split, int]] = {}
        for split in splits.values():
            for position, sample_id in enumerate(split.ids):
                where.setdefault(_key(sample_id), (split, position))
        missing = [i for i in ids if _key(i) not in where]
        if missing:
            raise ValueError(
                f"{caller}: {len(missing)} suspects are not in the data, e.g. "
                f"{first_few(missing)}. Pass the split (or bundle) the scores were computed on."
            )
        test_ids = [i for i in ids if where[_key(i)][0].name in held]
        if test_ids and not allow_test:
            names = sorted({where[_key(i)][0].name for i in test_ids})
            raise ValueError(
                f"{caller}: {len(test_ids)} of the suspects are test samples (split "
                f"{', '.join(map(repr, names))}), e.g. ids {first_few(test_ids)}. {_TEST_HINT}"
            )

        self.data = data
        self.dynamics = dynamics
        self.allow_test = bool(allow_test)
        self.ids = [i.item() if isinstance(i, np.generic) else i for i in ids]
        self.scores = scores
        self._rank = {_key(i): r for r, i in enumerate(self.ids)}
        self._where = {_key(i): where[_key(i)] for i in ids}
        self._dyn_pos = None
        # What a suggestion's support is: suggest_labels gives the mean probability when
        # probabilities were recorded, else the share of checkpoints predicting the class.
        self._support_kind = "given"
        if dynamics is not None:
            found = pd.Index([_key(i) for i in dynamics.ids]).get_indexer([_key(i) for i in ids])
            self._dyn_pos = found
            if suggestions is None and (found >= 0).any():
                inside = [dynamics.ids[p] for p in found if p >= 0]
                suggestions = suggest_labels(dynamics, ids=inside)
                self._support_kind = "probability" if dynamics.probs is not None else "votes"
        self._suggestions: dict[str, tuple[int, float]] = {}
        if suggestions is not None:
            for sample_id, row in suggestions.iterrows():
                self._suggestions[_key(sample_id)] = (
                    int(row["suggested_label"]),
                    float(row.get("support", np.nan)),
                )
        self.log_path = Path(log_path)
        self._decided: dict[str, dict[str, Any]] = {}
        if self.log_path.exists() and not self.log_path.is_file():
            raise ValueError(
                f"{caller}: the log_path {self.log_path} is not a regular file. Give the path of "
                "a review log (CSV) to create or resume."
            )
        if self.log_path.exists() and self.log_path.stat().st_size > 0:
            # Parsed (and so checked to be a review log) before anything is cut from it.
            log = _read_log(self.log_path)
            table = _decisions_of(self.log_path, log)
            _repair_tail(self.log_path, log)
            table = table.drop_duplicates("id", keep="last")
            for row in table.to_dict("records"):
                self._decided[row["id"]] = row
        self.position = self._next_undecided(0)

    # ------------------------------------------------------------------ state
    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return (
            f"ReviewSession({len(self)} suspects, {self.num_decided} decided, "
            f"log={str(self.log_path)!r})"
        )

    @property
    def num_decided(self) -> int:
        """Suspects of this session with a decision in the log."""
        return sum(_key(i) in self._decided for i in self.ids)

    @property
    def done(self) -> bool:
        """Whether every suspect has a decision."""
        return self.num_decided == len(self.ids)

    @property
    def current(self) -> Any:
        """The id under review, or None when the session is past its last suspect."""
        return self.ids[self.position] if self.position < len(self.ids) else None

    @property
    def decisions(self) -> pd.DataFrame:
        """The latest decision per id in the log (this session's and earlier ones)."""
        return pd.DataFrame(list(self._decided.values()), columns=list(LOG_COLUMNS))

    def _next_undecided(self, start: int) -> int:
        """The first undecided position at or after ``start``, wrapping around; len when none."""
        n = len(self.ids)
        for step in range(n):
            pos = (start + step) % n
            if _key(self.ids[pos]) not in self._decided:
                return pos
        return n

    # ------------------------------------------------------------------ items
    def item(self, sample_id: Any = None) -> ReviewItem:
        """What to show about a suspect (default: the current one)."""
        if sample_id is None:
            sample_id = self.current
            if sample_id is None:
                raise RuntimeError("ReviewSession.item: the review is done; no current suspect.")
        key = _key(sample_id)
        if key not in self._where:
            raise ValueError(f"ReviewSession.item: {sample_id!r} is not one of the suspects.")
        rank = self._rank[key]
        split, position = self._where[key]
        label = int(split.labels[position])
        suggested, support = self._suggestions.get(key, (None, None))
        trajectory = suggested_trajectory = None
        if self._dyn_pos is not None and self._dyn_pos[rank] >= 0:
            column = self._dyn_pos[rank]
            trajectory = np.asarray(self.dynamics.gold_prob[:, column], dtype=np.float64)
            if self.dynamics.probs is not None and suggested is not None:
                suggested_trajectory = np.asarray(
                    self.dynamics.probs[:, column, suggested], dtype=np.float64
                )
        previous = self._decided.get(key, {})
        new_label = previous.get("new_label")
        support_text = None
        if suggested is not None and support is not None and not np.isnan(support):
            if self._support_kind == "probability":
                support_text = (
                    f"mean probability {support:.2f} over {self.dynamics.num_epochs} checkpoints"
                )
            elif self._support_kind == "votes":
                support_text = f"predicted at {support:.0%} of checkpoints"
            else:
                support_text = f"support {support:.2f}"
        return ReviewItem(
            id=self.ids[rank],
            rank=rank + 1,
            total=len(self.ids),
            score=float(self.scores[rank]),
            split=split.name,
            sample=split.show(position),
            label=label,
            label_name=split.class_names[label],
            suggested=suggested,
            suggested_name=None if suggested is None else split.class_names[suggested],
            support=support,
            trajectory=trajectory,
            suggested_trajectory=suggested_trajectory,
            decision=previous.get("decision"),
            new_label=None if new_label is None or pd.isna(new_label) else int(new_label),
            support_text=support_text,
        )

    # ------------------------------------------------------------------ decisions
    def decide(self, decision: str, new_label: int | str | None = None) -> None:
        """Record a decision about the current suspect, then move to the next undecided one.

        The row is appended to the log, flushed and ``fsync``-ed before this returns.

        Parameters
        ----------
        decision : {"keep", "relabel", "drop"}
        new_label : int or str
            For ``"relabel"``: the class index or class name.
        """
        caller = "ReviewSession.decide"
        if decision not in DECISIONS:
            raise ValueError(
                f"The 'decision' parameter of {caller} must be one of {list(DECISIONS)}. "
                f"Got {decision!r} instead."
            )
        sample_id = self.current
        if sample_id is None:
            raise RuntimeError(
                f"{caller}: the review is done; every suspect has a decision. Use back() to "
                "revisit one."
            )
        split, position = self._where[_key(sample_id)]
        label = int(split.labels[position])
        if decision == "relabel":
            new_label = self._check_new_label(new_label, split, label, caller=caller)
        elif new_label is not None:
            raise ValueError(f"{caller}: new_label goes with 'relabel' only; got {decision!r}.")
        row = {
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "id": _key(sample_id),
            "split": split.name,
            "decision": decision,
            "label": label,
            "new_label": "" if new_label is None else int(new_label),
        }
        self._append(row)
        row["new_label"] = pd.NA if new_label is None else int(new_label)
        self._decided[row["id"]] = row
        self.position = self._next_undecided(self.position + 1)

    @staticmethod
    def _check_new_label(new_label: Any, split: Split, label: int, *, caller: str) -> int:
        names = list(split.class_names)
        if isinstance(new_label, str) and new_label in names:
            new_label = names.index(new_label)
        if (
            isinstance(new_label, bool)
            or not isinstance(new_label, (int, np.integer))
            or not 0 <= new_label < len(names)
        ):
            raise ValueError(
                f"The 'new_label' parameter of {caller} must be a class index in "
                f"[0, {len(names)}) or a class name of {first_few(names)}. Got {new_label!r} "
                "instead."
            )
        if int(new_label) == label:
            raise ValueError(
                f"{caller}: new_label {new_label!r} is the given label; decide 'keep' instead."
            )
        return int(new_label)

    def _append(self, row: dict[str, Any]) -> None:
        """Append one decision: write, flush, fsync (and sync the folder for a new file)."""
        path = self.log_path
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists() or path.stat().st_size == 0
        values = [row[c] for c in LOG_COLUMNS]
        # csv quotes a field holding "\n" but not one holding a lone "\r", which readers take
        # for a line break: quote every field of such a row.
        quoting = csv.QUOTE_ALL if any("\r" in str(v) for v in values) else csv.QUOTE_MINIMAL
        with open(path, "a", encoding="utf-8", newline="") as fh:
            if new:
                csv.writer(fh, lineterminator="\n").writerow(LOG_COLUMNS)
            csv.writer(fh, lineterminator="\n", quoting=quoting).writerow(values)
            fh.flush()
            os.fsync(fh.fileno())
        if new:
            _fsync_dir(path.parent)

    def accept_suggestions(self, count: int | None = None) -> int:
        """Decide the next ``count`` undecided suspects (default all) by their suggestions.

        A suspect whose suggested label differs from its given one is relabelled to it; one
        whose suggestion agrees (or that has none) is kept. Each decision is logged as if
        clicked. Returns the number of decisions made.
        """
        caller = "ReviewSession.accept_suggestions"
        if count is not None and (
            isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0
        ):
            raise ValueError(
                f"The 'count' parameter of {caller} must be an int >= 0 or None. "
                f"Got {count!r} instead."
            )
        made = 0
        while self.current is not None and (count is None or made < count):
            item = self.item()
            if item.suggested is not None and item.suggested != item.label:
                self.decide("relabel", item.suggested)
            else:
                self.decide("keep")
            made += 1
        return made

    def back(self) -> None:
        """Go to the previous suspect (to change its decision: decide again)."""
        self.position = max(0, min(self.position, len(self.ids)) - 1)

    def skip(self) -> None:
        """Leave the current suspect undecided for now and go to the next undecided one."""
        if self.position < len(self.ids):
            self.position = self._next_undecided(self.position + 1)
            if self.position == len(self.ids) and not self.done:
                self.position = self._next_undecided(0)

    def go_to(self, sample_id: Any) -> None:
        """Make ``sample_id`` the current suspect."""
        if _key(sample_id) not in self._rank:
            raise ValueError(f"ReviewSession.go_to: {sample_id!r} is not one of the suspects.")
        self.position = self._rank[_key(sample_id)]

    def apply(self) -> Split | DataBundle:
        """:func:`apply_review` of this session's data and log."""
        return apply_review(self.data, self, allow_test=self.allow_test)


# ----------------------------------------------------------------------------------------------
# Names that moved


# For one release: the widget moved to cartokit.widgets, and this module imports no ipywidgets.
__getattr__ = moved(__name__, {"ReviewWidget": "cartokit.widgets.ReviewWidget"})
