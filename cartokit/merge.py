"""Merged and federated maps: :func:`merge_dynamics` puts the records of disjoint sets of samples
(clients that trained apart, shards recorded separately) side by side, as one record whose
metrics say where each sample comes from (a ``source`` column), so that selection can work
across them (``select(..., per_source=True)`` takes the same share of each).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cartokit._validation import Options, check_param, first_few
from cartokit.dynamics import TrainingDynamics, pred_dtype
from cartokit.streaming import blocks_of

__all__ = ["MergedDynamics", "SourceBlock", "merge_dynamics"]

#: How merge_dynamics treats an id found in more than one map.
OVERLAP = ("error", "prefix")


def _prefixed(ids: np.ndarray, name: str) -> np.ndarray:
    return np.array([f"{name}:{i}" for i in ids.tolist()], dtype=object)


@dataclass(frozen=True)
class SourceBlock:
    """A block of one source of a merge: read with the merge's checkpoints (a source with
    fewer is padded with unseen ones) and, with ``prefix``, its ids named by the source."""

    inner: Any
    source: str
    source_epochs: int
    prefix: bool

    def read(self, epochs: Sequence[int] | None = None) -> TrainingDynamics:
        """The block's samples as a record (at ``epochs`` only, when given)."""
        epochs = list(range(self.source_epochs) if epochs is None else epochs)
        own = [e for e in epochs if e < self.source_epochs]
        dyn = self.inner.read(own)
        ids = _prefixed(dyn.ids, self.source) if self.prefix else dyn.ids
        if len(own) == len(epochs):
            if not self.prefix:
                return dyn
            arrays = {k: getattr(dyn, k) for k in ("gold_prob", "margin", "sq_error", "pred")}
            extras = dyn.extras
        else:
            shape = (len(epochs), dyn.num_samples)
            arrays = {k: np.full(shape, np.nan, dtype=np.float32) for k in ("gold_prob", "margin")}
            arrays["sq_error"] = np.full(shape, np.nan, dtype=np.float32)
            arrays["pred"] = np.full(shape, -1, dtype=pred_dtype(dyn.num_classes))
            extras = {k: np.full(shape, np.nan, dtype=np.float32) for k in dyn.extras}
            for name in arrays:
                arrays[name][: len(own)] = getattr(dyn, name)
            for name in extras:
                extras[name][: len(own)] = dyn.extras[name]
        return TrainingDynamics(
            ids=ids, labels=dyn.labels, num_classes=dyn.num_classes,
            class_names=dyn.class_names, extras=extras, **arrays,
        )  # fmt: skip


class MergedDynamics(TrainingDynamics):
    """Several records side by side (:func:`merge_dynamics`): the samples of each source in
    turn, with as many checkpoints as the longest (a shorter one's later checkpoints are
    "not seen"). :func:`~cartokit.compute_metrics` reads it source by source, block by block,
    and adds a ``source`` column; its arrays load on first use."""

    def __init__(self, parts: list[TrainingDynamics], names: list[str], prefix: bool) -> None:
        self.parts, self.source_names, self.prefix = parts, names, prefix
        self.num_classes = parts[0].num_classes
        self.class_names = next((p.class_names for p in parts if p.class_names), None)
        self._full_record: TrainingDynamics | None = None

    @property
    def num_epochs(self) -> int:
        return max(p.num_epochs for p in self.parts)

    @property
    def num_samples(self) -> int:
        return sum(p.num_samples for p in self.parts)

    @property
    def extra_names(self) -> list[str]:
        return extra_names(self.parts[0])

    @property
    def sources(self) -> pd.Categorical:
        """The source of each sample, in order."""
        codes = np.repeat(np.arange(len(self.parts)), [p.num_samples for p in self.parts])
        return pd.Categorical.from_codes(codes, categories=self.source_names)

    def __repr__(self) -> str:
        return (
            f"MergedDynamics(sources={self.source_names}, num_samples={self.num_samples}, "
            f"num_epochs={self.num_epochs}, num_classes={self.num_classes})"
        )

    def blocks(self, size: int | None = None) -> list[SourceBlock]:
        """Each source's blocks, in order, tagged with its name."""
        return [
            SourceBlock(block, name, part.num_epochs, self.prefix)
            for part, name in zip(self.parts, self.source_names)
            for block in blocks_of(part, size)
        ]

    def _full(self) -> TrainingDynamics:
        if self._full_record is None:
            pieces = [b.read(range(self.num_epochs)) for b in self.blocks()]
            self._full_record = TrainingDynamics(
                ids=np.concatenate([p.ids for p in pieces]),
                labels=np.concatenate([p.labels for p in pieces]),
                num_classes=self.num_classes,
                class_names=self.class_names,
                **{
                    k: np.concatenate([getattr(p, k) for p in pieces], axis=1)
                    for k in ("gold_prob", "margin", "sq_error", "pred")
                },
                extras={
                    k: np.concatenate([p.extras[k] for p in pieces], axis=1)
                    for k in pieces[0].extras
                },
            )
        return self._full_record

    ids = property(lambda self: self._full().ids, doc="The sample ids, source after source.")
    labels = property(lambda self: self._full().labels, doc="The gold labels.")
    gold_prob = property(lambda self: self._full().gold_prob, doc="``[E, N]``.")
    margin = property(lambda self: self._full().margin, doc="``[E, N]``.")
    sq_error = property(lambda self: self._full().sq_error, doc="``[E, N]``.")
    pred = property(lambda self: self._full().pred, doc="``[E, N]``.")
    probs = property(lambda self: None, doc="Not kept in a merge.")
    extras = property(lambda self: self._full().extras, doc="Name -> ``[E, N]``.")


def extra_names(dyn: TrainingDynamics) -> list[str]:
    """The names of a record's extra statistics, without loading a stored one."""
    names = getattr(dyn, "extra_names", None)
    return sorted(dyn.extras if names is None else names)


def _check_alike(parts: list[TrainingDynamics], names: list[str]) -> None:
    """Same classes (count and names, where given) and the same extra statistics."""
    first = parts[0]
    for part, name in zip(parts[1:], names[1:]):
        if part.num_classes != first.num_classes:
            raise ValueError(
                f"merge_dynamics: {names[0]!r} has {first.num_classes} classes, {name!r} "
                f"{part.num_classes}; merged maps must label the same classes."
            )
        if first.class_names and part.class_names and part.class_names != first.class_names:
            raise ValueError(
                f"merge_dynamics: {names[0]!r} names its classes {first.class_names}, {name!r} "
                f"{part.class_names}; merged maps must name the same classes alike (map the "
                "labels of one to the other's first)."
            )
        if extra_names(part) != extra_names(first):
            raise ValueError(
                f"merge_dynamics: {names[0]!r} has the extra statistics "
                f"{extra_names(first)}, {name!r} {extra_names(part)}; merged maps must record "
                "the same ones."
            )


def _check_disjoint(parts: list[TrainingDynamics], names: list[str]) -> None:
    owner: pd.Series | None = None
    for k, part in enumerate(parts):
        ids = pd.Series(k, index=pd.Index(np.asarray(part.ids)))
        if owner is not None:
            shared = ids.index.intersection(owner.index)
            if len(shared):
                other = names[int(owner[shared[0]])]
                raise ValueError(
                    f"merge_dynamics: {len(shared)} ids are in more than one map, e.g. "
                    f"{first_few(shared.to_numpy())} in {other!r} and {names[k]!r}. Pass "
                    "on_overlap='prefix' to keep both, their ids prefixed by the map's name "
                    "('name:id'), or give each map its own ids (sample_ids=)."
                )
            owner = pd.concat([owner, ids])
        else:
            owner = ids


def merge_dynamics(
    dynamics: Sequence[TrainingDynamics | Any],
    *,
    names: Sequence[str] | None = None,
    on_overlap: str = "error",
) -> MergedDynamics:
    """Merge the maps of disjoint sets of samples into one, e.g. the clients of a federated
    training or shards recorded apart.

    Parameters
    ----------
    dynamics : sequence of TrainingDynamics or store paths
        Two or more records: in memory, opened stores (:func:`~cartokit.store.open_dynamics`),
        or store folders (opened here; nothing is loaded). They must label the same classes.
    names : sequence of str, optional
        A name per record, the values of the ``source`` column. Default ``source0``,
        ``source1``, ...
    on_overlap : {"error", "prefix"}, default "error"
        An id found in more than one record is an error, unless ``"prefix"``: then every id
        becomes ``"<name>:<id>"``, so that each sample stays apart.

    Returns
    -------
    MergedDynamics
        A :class:`~cartokit.TrainingDynamics` with the samples of each record in turn and as
        many checkpoints as the longest record (a shorter one's later checkpoints count as not
        seen, so each source's metrics are those of its own record). Its metrics table has a
        ``source`` column.

    Raises
    ------
    ValueError
        For fewer than two records, names that are not unique, different classes, class names
        or extra statistics, or ids in more than one record.

    Examples
    --------
    >>> import numpy as np
    >>> from cartokit import compute_metrics
    >>> a = TrainingDynamics.from_logits(np.zeros((3, 2, 2)), [0, 1], ids=["a0", "a1"])
    >>> b = TrainingDynamics.from_logits(np.ones((3, 1, 2)), [1], ids=["b0"])
    >>> merged = merge_dynamics([a, b], names=["north", "south"])
    >>> compute_metrics(merged)["source"].tolist()
    ['north', 'north', 'south']
    """
    caller = "merge_dynamics"
    on_overlap = check_param("on_overlap", on_overlap, Options(list(OVERLAP)), caller=caller)
    from cartokit.store import open_dynamics

    parts = [d if isinstance(d, TrainingDynamics) else open_dynamics(d) for d in list(dynamics)]
    if len(parts) < 2:
        raise ValueError(f"{caller} needs at least two records to merge. Got {len(parts)}.")
    names = [f"source{k}" for k in range(len(parts))] if names is None else list(names)
    if len(names) != len(parts) or len(set(names)) != len(names):
        raise ValueError(
            f"The 'names' parameter of {caller} must give one distinct name per record "
            f"({len(parts)}). Got {names} instead."
        )
    _check_alike(parts, names)
    if on_overlap == "error":
        _check_disjoint(parts, names)
    return MergedDynamics(parts, [str(n) for n in names], on_overlap == "prefix")
