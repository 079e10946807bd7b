"""The :class:`TrainingDynamics` container and its binary file format."""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cartokit._files import atomic_write
from cartokit._validation import check_ids, check_labels, first_few

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "TrainingDynamics", "pred_dtype"]

FORMAT_NAME = "cartokit-dynamics"
FORMAT_VERSION = 1

_STAT_DTYPES = {"gold_prob": np.float32, "margin": np.float32, "sq_error": np.float32}


def pred_dtype(num_classes: int) -> type[np.integer]:
    """The smallest integer type that holds a predicted label of ``num_classes`` classes."""
    # The predicted label is one of the 16 bytes budgeted per sample-epoch; most tasks have
    # fewer than 128 classes, so it usually costs one byte.
    if num_classes <= np.iinfo(np.int8).max:
        return np.int8
    if num_classes <= np.iinfo(np.int16).max:
        return np.int16
    return np.int32


# Allowed values of the per-checkpoint statistics (NaN aside, which marks a sample not seen).
# sq_error = ||p - onehot(y)||^2 is at most 2; its two float32 terms can round one ulp above.
_RANGES = (
    ("gold_prob", 0.0, 1.0, "in [0, 1]"),
    ("sq_error", 0.0, 2.0 + 1e-6, "in [0, 2]"),
    ("margin", -np.inf, np.inf, "finite"),
)


def _at(mask: np.ndarray, ids: np.ndarray) -> str:
    """Where the first True of an [E, N(, C)] mask is, for an error message."""
    e, i = np.unravel_index(int(np.argmax(mask)), mask.shape)[:2]
    sample = ids[i]
    return f"epoch {e}, sample {(sample.item() if isinstance(sample, np.generic) else sample)!r}"


def _check_pred_dtype(pred: np.ndarray, *, caller: str) -> np.ndarray:
    if np.issubdtype(pred.dtype, np.integer):
        return pred
    if np.issubdtype(pred.dtype, np.floating):
        whole = np.isfinite(pred) & (np.mod(pred, 1) == 0)
        if whole.all():
            return pred.astype(np.int64)
    raise TypeError(
        f"{caller}: pred must hold integer class indices (-1 for a sample not seen). "
        f"Got dtype {pred.dtype}."
    )


def _check_values(dyn: TrainingDynamics, pred: np.ndarray, *, caller: str) -> None:
    """Refuse statistics that no model could produce: every loaded or built record passes here.

    Without unseen samples this is a min, a max and a NaN-propagating min per array, no
    temporaries; element-wise masks are built only when a NaN shows up (to check that it shows
    up in every array alike) or a check fails (to say where).
    """
    if dyn.gold_prob.size == 0:
        return
    ids = dyn.ids
    has_nan = False
    for name, low, high, rule in _RANGES:
        values = getattr(dyn, name)
        has_nan |= bool(np.isnan(np.minimum.reduce(values, axis=None)))
        lo, hi = np.fmin.reduce(values, axis=None), np.fmax.reduce(values, axis=None)
        if np.isnan(lo) or (low <= lo and hi <= high and np.isfinite(lo) and np.isfinite(hi)):
            continue
        bad = ~np.isnan(values) & ~((values >= low) & (values <= high) & np.isfinite(values))
        first = values[np.unravel_index(int(np.argmax(bad)), bad.shape)]
        raise ValueError(
            f"{caller}: {name} must be {rule} (NaN for a sample not seen). {int(bad.sum())} "
            f"values are not, e.g. {float(first)!r} at {_at(bad, ids)}."
        )
    pred_lo, pred_hi = int(pred.min()), int(pred.max())
    if pred_lo < -1 or pred_hi >= dyn.num_classes:
        bad = (pred < -1) | (pred >= dyn.num_classes)
        first = pred[np.unravel_index(int(np.argmax(bad)), bad.shape)]
        raise ValueError(
            f"{caller}: pred must be a class index in [0, {dyn.num_classes}), or -1 for a sample "
            f"not seen. {int(bad.sum())} values are not, e.g. {int(first)} at {_at(bad, ids)}."
        )
    probs = dyn.probs
    if probs is not None:
        lo, hi = np.fmin.reduce(probs, axis=None), np.fmax.reduce(probs, axis=None)
        if not np.isnan(lo) and not (lo >= 0 and hi <= 1):
            bad = (probs < 0) | (probs > 1)
            raise ValueError(
                f"{caller}: probs must be in [0, 1] (NaN for a sample not seen). "
                f"{int(bad.sum())} values are not, e.g. at {_at(bad, ids)}."
            )
        has_nan |= bool(np.isnan(np.minimum.reduce(probs, axis=None)))
    if not has_nan and pred_lo != -1:
        return
    # A sample not seen at a checkpoint is NaN in every statistic and -1 in pred; a mix means
    # the arrays were assembled from different records.
    unseen = np.isnan(dyn.gold_prob)
    values = {"margin": dyn.margin, "sq_error": dyn.sq_error, "pred": pred}
    marks = {"margin": np.isnan(dyn.margin), "sq_error": np.isnan(dyn.sq_error)}
    marks["pred"] = pred == -1
    if probs is not None:
        nan = np.isnan(probs)
        partial = nan.any(axis=2) & ~nan.all(axis=2)
        if partial.any():
            raise ValueError(
                f"{caller}: probs rows must be all NaN (a sample not seen) or hold no NaN. "
                f"{int(partial.sum())} rows mix the two, e.g. at {_at(partial, ids)}."
            )
        marks["probs"] = nan[:, :, 0]
        values["probs"] = probs[:, :, 0]
    for name, mark in marks.items():
        differ = mark != unseen
        if differ.any():
            e, i = np.unravel_index(int(np.argmax(differ)), differ.shape)
            raise ValueError(
                f"{caller}: a sample not seen at a checkpoint must be NaN in gold_prob, margin, "
                f"sq_error and probs and -1 in pred, all together; at {_at(differ, ids)}, "
                f"gold_prob is {float(dyn.gold_prob[e, i])!r} but {name} is "
                f"{values[name][e, i].item()!r} ({int(differ.sum())} such sample-checkpoints)."
            )


#: Names an extra statistic may take: a column name of the metrics table.
_EXTRA_NAME = re.compile(r"[a-z][a-z0-9_]*")
#: The .npz entries of the extras are named ``extra__<name>``.
_EXTRA_PREFIX = "extra__"


def _check_extras(
    extras: Mapping[str, np.ndarray] | None, gold_prob: np.ndarray, *, caller: str
) -> dict[str, np.ndarray]:
    """Extra per-checkpoint statistics: named like a column, shaped like ``gold_prob``, float32
    and NaN exactly where ``gold_prob`` is (a sample not seen)."""
    if extras is None:
        return {}
    if not isinstance(extras, Mapping):
        raise TypeError(
            f"The 'extras' parameter of {caller} must be a mapping of names to (epochs, samples) "
            f"arrays, or None. Got {type(extras).__name__} instead."
        )
    checked = {}
    unseen = np.isnan(gold_prob)
    for name, values in extras.items():
        if not isinstance(name, str) or not _EXTRA_NAME.fullmatch(name):
            raise ValueError(
                f"{caller}: an extra statistic must be named like a column (lower case letters, "
                f"digits and _, starting with a letter). Got {name!r}."
            )
        if name in _CORE_NAMES:
            raise ValueError(f"{caller}: the extra {name!r} would shadow the core array {name!r}.")
        array = np.asarray(values, dtype=np.float32)
        if array.shape != gold_prob.shape:
            raise ValueError(
                f"{caller}: the extra {name!r} must have the shape of gold_prob "
                f"{gold_prob.shape}. Got {array.shape}."
            )
        if not np.array_equal(np.isnan(array), unseen):
            raise ValueError(
                f"{caller}: the extra {name!r} must be NaN exactly where the sample was not seen "
                "(where gold_prob is NaN)."
            )
        if np.isinf(array).any():
            raise ValueError(f"{caller}: the extra {name!r} holds inf; it must be finite.")
        checked[name] = array
    return checked


def _host_scores(scores: Any, *, kind: str, caller: str) -> np.ndarray:
    """Scores as a numpy array: a torch tensor is detached and brought to the host."""
    if hasattr(scores, "detach"):  # a torch tensor; torch is loaded already, so this is free
        import torch

        tensor = scores.detach().cpu()
        if tensor.dtype not in (torch.float32, torch.float64):
            tensor = tensor.to(torch.float32)  # bfloat16 and friends have no numpy dtype
        return tensor.numpy()
    x = np.asarray(scores)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{caller}: {kind} must be numeric. Got an array of dtype {x.dtype}.")
    return x


def _row_sums(x: np.ndarray) -> np.ndarray:
    """``x.sum(axis=2)`` in float32, adding the classes in order as torch does."""
    if x.shape[2] > 32:
        return x.sum(axis=2, dtype=np.float32)
    # One class at a time: numpy reduces a short last axis row by row, several times slower.
    total = x[:, :, 0].astype(np.float32)
    for k in range(1, x.shape[2]):
        np.add(total, x[:, :, k], out=total, dtype=np.float32)  # float64 input: cast first
    return total


class TrainingDynamics:
    """Per-checkpoint statistics of every training sample, from one training run.

    For each checkpoint ``e`` (usually an epoch) and sample ``i`` it holds what the metrics
    need, 13 bytes for fewer than 128 classes: the gold-label probability, the margin
    ``logit[y] - max_{k != y} logit[k]``, the squared error ``||p - onehot(y)||^2`` (for EL2N)
    and the predicted label. NaN (and predicted label -1) mark a sample not seen at a checkpoint.
    Full probabilities are kept only when asked for (``probs``).

    Every constructor checks the values, whatever their source: ``gold_prob`` in [0, 1],
    ``sq_error`` in [0, 2], ``margin`` finite, ``pred`` in ``[0, num_classes)``, ``probs`` in
    [0, 1], each NaN (or -1) exactly where the sample was not seen. A value outside raises a
    one-line ``ValueError`` saying where; a file with such values is refused when loaded.

    Build one with :class:`~cartokit.DynamicsRecorder` while training, with
    :meth:`from_logits` / :meth:`from_probabilities` from arrays, or with the readers in
    :mod:`cartokit.io`.

    Parameters
    ----------
    ids : array of shape (N,)
        Unique sample ids, ints or strings.
    labels : array of shape (N,)
        Gold labels in ``[0, num_classes)``.
    gold_prob, margin, sq_error : arrays of shape (E, N)
    pred : array of shape (E, N)
    num_classes : int
    class_names : sequence of str, optional
    probs : array of shape (E, N, C), optional
    extras : mapping of str to arrays of shape (E, N), optional
        Further per-checkpoint statistics, e.g. ``token_accuracy`` for sequence models
        (:class:`~cartokit.SequenceRecorder`): float32, NaN exactly where the sample was not
        seen. :func:`~cartokit.compute_metrics` reports the mean of each over the checkpoints,
        as a column of the same name; they are saved and loaded with the rest.
    """

    def __init__(
        self,
        *,
        ids: Sequence[Any] | np.ndarray | None,
        labels: Sequence[int] | np.ndarray,
        gold_prob: np.ndarray,
        margin: np.ndarray,
        sq_error: np.ndarray,
        pred: np.ndarray,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        probs: np.ndarray | None = None,
        extras: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        caller = "TrainingDynamics"
        gold_prob = np.asarray(gold_prob, dtype=np.float32)
        if gold_prob.ndim != 2:
            raise ValueError(
                f"{caller}: per-checkpoint arrays must have shape (epochs, samples). "
                f"Got gold_prob of shape {gold_prob.shape}."
            )
        shape = gold_prob.shape
        arrays = {"margin": margin, "sq_error": sq_error, "pred": pred}
        for name, arr in arrays.items():
            if np.shape(arr) != shape:
                raise ValueError(
                    f"{caller}: {name} must have the same shape as gold_prob {shape}. "
                    f"Got {np.shape(arr)}."
                )
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
            raise TypeError(
                f"{caller}: num_classes must be an int. Got {num_classes!r} of type "
                f"{type(num_classes).__name__}."
            )
        if num_classes < 2:
            raise ValueError(f"{caller}: num_classes must be >= 2. Got {num_classes}.")
        self.num_classes = int(num_classes)
        self.labels = check_labels(np.asarray(labels), self.num_classes, caller=caller)
        if self.labels.shape[0] != shape[1]:
            raise ValueError(f"{caller}: got {self.labels.shape[0]} labels for {shape[1]} samples.")
        self.ids = check_ids(ids, shape[1], caller=caller)
        self.gold_prob = gold_prob
        self.margin = np.asarray(margin, dtype=np.float32)
        self.sq_error = np.asarray(sq_error, dtype=np.float32)
        # Checked before the cast to the narrow pred dtype, which would wrap 300 to 44.
        pred = _check_pred_dtype(np.asarray(pred), caller=caller)
        self.pred = pred.astype(pred_dtype(self.num_classes), copy=False)
        if class_names is not None:
            class_names = [str(c) for c in class_names]
            if len(class_names) != self.num_classes:
                raise ValueError(
                    f"{caller}: got {len(class_names)} class names for {self.num_classes} "
                    f"classes: {first_few(class_names)}."
                )
        self.class_names: list[str] | None = class_names
        if probs is not None:
            probs = np.asarray(probs, dtype=np.float32)
            if probs.shape != (*shape, self.num_classes):
                raise ValueError(
                    f"{caller}: probs must have shape {(*shape, self.num_classes)}. "
                    f"Got {probs.shape}."
                )
        self.probs = probs
        self.extras = _check_extras(extras, gold_prob, caller=caller)
        _check_values(self, pred, caller=caller)

    # ---------------------------------------------------------------- shape
    @property
    def num_epochs(self) -> int:
        """Number of recorded checkpoints."""
        return self.gold_prob.shape[0]

    @property
    def num_samples(self) -> int:
        return self.gold_prob.shape[1]

    @property
    def correct(self) -> np.ndarray:
        """``[E, N]`` bool: ``argmax == gold`` at each checkpoint (False where not seen)."""
        return self.pred == self.labels[None, :]

    @property
    def nbytes(self) -> int:
        """Memory held by the per-checkpoint arrays."""
        arrays = [self.gold_prob, self.margin, self.sq_error, self.pred, self.labels]
        arrays += list(self.extras.values())
        return sum(a.nbytes for a in arrays) + (0 if self.probs is None else self.probs.nbytes)

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        names = f", class_names={self.class_names}" if self.class_names else ""
        return (
            f"TrainingDynamics(num_samples={self.num_samples}, num_epochs={self.num_epochs}, "
            f"num_classes={self.num_classes}{names})"
        )

    def select_epochs(self, epochs: Sequence[int] | slice) -> TrainingDynamics:
        """A copy holding only the given checkpoints, e.g. ``dyn.select_epochs(slice(1, None))``."""
        idx = epochs if isinstance(epochs, slice) else list(epochs)
        return TrainingDynamics(
            ids=self.ids.copy(),
            labels=self.labels.copy(),
            gold_prob=self.gold_prob[idx].copy(),
            margin=self.margin[idx].copy(),
            sq_error=self.sq_error[idx].copy(),
            pred=self.pred[idx].copy(),
            num_classes=self.num_classes,
            class_names=self.class_names,
            probs=None if self.probs is None else self.probs[idx].copy(),
            extras={name: values[idx].copy() for name, values in self.extras.items()},
        )

    # ---------------------------------------------------------------- constructors
    @classmethod
    def from_logits(
        cls,
        logits: Any,
        labels: Sequence[int] | np.ndarray,
        ids: Sequence[Any] | np.ndarray | None = None,
        *,
        class_names: Sequence[str] | None = None,
        store_probs: bool = False,
    ) -> TrainingDynamics:
        """Build from logits of shape ``(epochs, samples, classes)``, numpy or torch.

        Examples
        --------
        >>> import numpy as np
        >>> dyn = TrainingDynamics.from_logits(np.zeros((3, 4, 2)), labels=[0, 1, 1, 0])
        >>> dyn
        TrainingDynamics(num_samples=4, num_epochs=3, num_classes=2)
        >>> dyn.gold_prob[0].tolist()
        [0.5, 0.5, 0.5, 0.5]
        """
        return cls._from_scores(
            logits, labels, ids, class_names, store_probs, kind="logits", caller="from_logits"
        )

    @classmethod
    def from_probabilities(
        cls,
        probs: Any,
        labels: Sequence[int] | np.ndarray,
        ids: Sequence[Any] | np.ndarray | None = None,
        *,
        class_names: Sequence[str] | None = None,
        store_probs: bool = False,
    ) -> TrainingDynamics:
        """Build from probabilities of shape ``(epochs, samples, classes)``, numpy or torch.

        Rows are renormalised to sum to 1; they must be finite and non-negative. Margins are
        computed on ``log(p)`` (with p clipped at the smallest float32 normal), which equals the
        logit margin of any logits that produced ``p``.

        Examples
        --------
        >>> import numpy as np
        >>> p = np.array([[[0.9, 0.1]], [[0.4, 0.6]], [[0.8, 0.2]]])
        >>> dyn = TrainingDynamics.from_probabilities(p, labels=[0])
        >>> dyn.gold_prob[:, 0].astype(float).round(2).tolist(), dyn.correct[:, 0].tolist()
        ([0.9, 0.4, 0.8], [True, False, True])
        """
        return cls._from_scores(
            probs, labels, ids, class_names, store_probs, kind="probs", caller="from_probabilities"
        )

    @classmethod
    def _from_scores(
        cls,
        scores: Any,
        labels: Any,
        ids: Any,
        class_names: Sequence[str] | None,
        store_probs: bool,
        *,
        kind: str,
        caller: str,
    ) -> TrainingDynamics:
        # numpy all the way: reading a file and computing its metrics never imports torch.
        from cartokit.metrics import checkpoint_stats_numpy

        x = _host_scores(scores, kind=kind, caller=caller)
        if x.ndim != 3 or x.shape[2] < 2:
            raise ValueError(
                f"{caller}: expected an array of shape (epochs, samples, classes) with at least "
                f"2 classes. Got shape {tuple(x.shape)}; for a single epoch use x[None]."
            )
        n_epochs, n_samples, n_classes = x.shape
        if not np.isfinite(x).all():  # a whole-array reduction first: per-row ones are slow
            finite = np.isfinite(x).all(axis=2)
            e, i = (int(v[0]) for v in np.nonzero(~finite))
            raise ValueError(
                f"{caller}: {kind} must be finite; epoch {e}, sample {i} holds NaN or inf "
                f"({int((~finite).sum())} rows in all). Check the model for divergence."
            )
        totals = None
        if kind == "probs":
            if x.size and x.min() < 0:
                raise ValueError(
                    f"{caller}: probabilities must be >= 0. Got a minimum of {float(x.min())}; "
                    "pass logits to from_logits instead."
                )
            totals = _row_sums(x)
            if (totals <= 0).any():
                raise ValueError(f"{caller}: every probability row must have a positive sum.")
        labels_np = check_labels(np.asarray(labels), n_classes, caller=caller)
        if labels_np.shape[0] != n_samples:
            raise ValueError(f"{caller}: got {labels_np.shape[0]} labels for {n_samples} samples.")
        shape = (n_epochs, n_samples)
        gold, margin, sq_err = (np.empty(shape, dtype=np.float32) for _ in range(3))
        pred = np.empty(shape, dtype=pred_dtype(n_classes))
        probs = np.empty((*shape, n_classes), dtype=np.float32) if store_probs else None
        for e in range(n_epochs):
            if totals is None:
                scores_e, pred_from = x[e], None
            else:
                # log p serves as logits (softmax(log p) = p); the argmax is taken on the
                # probabilities as given, which a float32 log may turn into ties.
                p = x[e].astype(np.float32) / totals[e][:, None]
                scores_e, pred_from = np.log(np.maximum(p, np.finfo(np.float32).tiny)), x[e]
            stats = checkpoint_stats_numpy(scores_e, labels_np, pred_from=pred_from)
            for out, value in zip((gold, margin, sq_err, pred), stats, strict=True):
                out[e] = value
            if probs is not None:
                z = scores_e.astype(np.float32)
                z -= z.max(axis=1, keepdims=True)
                np.exp(z, out=z)
                probs[e] = z / z.sum(axis=1, keepdims=True)
        return cls(
            ids=ids,
            labels=labels_np,
            gold_prob=gold,
            margin=margin,
            sq_error=sq_err,
            pred=pred,
            num_classes=n_classes,
            class_names=class_names,
            probs=probs,
        )

    # ---------------------------------------------------------------- file format
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a compact binary file (a ``.npz`` archive with a format version and metadata).

        The write is atomic: the file appears complete under ``path`` or not at all.
        Returns the path written.
        """
        path = Path(path)
        meta = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "num_classes": self.num_classes,
            "class_names": self.class_names,
            "id_kind": "int" if self.ids.dtype != object else "str",
            "extras": sorted(self.extras),
        }
        arrays: dict[str, np.ndarray] = {
            "labels": self.labels,
            "gold_prob": self.gold_prob,
            "margin": self.margin,
            "sq_error": self.sq_error,
            "pred": self.pred,
        }
        if self.ids.dtype == object:
            encoded = [s.encode("utf-8") for s in self.ids]
            arrays["id_offsets"] = np.cumsum([0] + [len(b) for b in encoded], dtype=np.int64)
            arrays["id_bytes"] = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        else:
            arrays["ids"] = self.ids
        if self.probs is not None:
            arrays["probs"] = self.probs
        for name, values in self.extras.items():
            arrays[_EXTRA_PREFIX + name] = values
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
        with atomic_write(path, "wb") as fh:
            np.savez(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TrainingDynamics:
        """Read a file written by :meth:`save`.

        Raises
        ------
        FileNotFoundError
            When there is no file at ``path``.
        ValueError
            When the file is not a cartokit dynamics file, is truncated or corrupt, or holds
            values that no training run gives (a probability outside [0, 1], a predicted class
            beyond ``num_classes``, NaN in one statistic but not the others). The one-line
            message names the file and what is wrong.

        Examples
        --------
        >>> import numpy as np, tempfile, os
        >>> dyn = TrainingDynamics.from_logits(np.zeros((3, 2, 2)), [0, 1], ids=["a", "b"])
        >>> path = dyn.save(os.path.join(tempfile.mkdtemp(), "dynamics.npz"))
        >>> TrainingDynamics.load(path).ids.tolist()
        ['a', 'b']
        """
        path = Path(path)
        if not path.is_file():
            if path.exists() and not path.is_dir():
                raise ValueError(
                    f"{path} is not a cartokit dynamics file: it is not a regular file (a device, "
                    "pipe or socket)."
                )
            raise FileNotFoundError(f"No dynamics file at {path}.")
        try:
            meta, data = _read_archive(path)
            ids = _decode_ids(data)
        except (
            _Unreadable,
            zipfile.BadZipFile,
            zipfile.LargeZipFile,
            EOFError,
            OSError,
            zlib.error,
            NotImplementedError,
            RuntimeError,
        ) as err:
            raise ValueError(
                f"{path} is not a readable cartokit dynamics file (truncated or corrupt: {err})."
            ) from None
        except MemoryError as err:
            raise ValueError(f"{path}: not enough memory to load it ({err}).") from None
        except ValueError as err:
            raise ValueError(f"{path} is not a cartokit dynamics file: {err}.") from None
        try:
            return cls(
                ids=ids,
                labels=data["labels"],
                gold_prob=data["gold_prob"],
                margin=data["margin"],
                sq_error=data["sq_error"],
                pred=data["pred"],
                num_classes=meta["num_classes"],
                class_names=meta.get("class_names"),
                probs=data.get("probs"),
                extras={
                    k.removeprefix(_EXTRA_PREFIX): v
                    for k, v in data.items()
                    if k.startswith(_EXTRA_PREFIX)
                },
            )
        except (TypeError, ValueError) as err:
            reason = str(err).removeprefix("TrainingDynamics: ")
            raise ValueError(f"{path} holds inconsistent dynamics: {reason}") from None


# ---------------------------------------------------------------- reading the .npz safely
# np.load would trust each entry's header: a 200-byte file declaring shape (10**12,) asks for a
# 4 TB allocation. Headers are read first and checked against the bytes actually stored.

#: Entries of the .npz and the dtype kinds each may have; others are ignored.
_ENTRY_KINDS = {
    "meta": "u",
    "labels": "iu",
    "gold_prob": "f",
    "margin": "f",
    "sq_error": "f",
    "pred": "iu",
    "ids": "iuU",
    "id_offsets": "iu",
    "id_bytes": "u",
    "probs": "f",
}
_REQUIRED = ("labels", "gold_prob", "margin", "sq_error", "pred")
_CORE_NAMES = frozenset({*_ENTRY_KINDS, "ids"})
_JSON_KINDS = {
    list: "a JSON array",
    str: "a JSON string",
    int: "a JSON number",
    float: "a JSON number",
}


class _Unreadable(Exception):
    """The archive is damaged: an entry's header and its stored bytes disagree."""


def _read_entry(zf: zipfile.ZipFile, name: str, kinds: str) -> np.ndarray:
    info = zf.getinfo(f"{name}.npy")
    fmt = np.lib.format
    with zf.open(info) as fh:
        try:
            version = fmt.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, fortran, dtype = fmt.read_array_header_2_0(fh)
            else:
                raise ValueError(f".npy format version {version}")
        except ValueError as err:
            raise _Unreadable(f"the '{name}' entry has no valid array header: {err}") from None
        stored = info.file_size - fh.tell()
    if dtype.hasobject:
        raise ValueError(
            f"its '{name}' entry holds Python objects, which cartokit files never do "
            "(and loading them could run code)"
        )
    if dtype.kind not in kinds:
        raise ValueError(f"its '{name}' entry has dtype {dtype}")
    declared = math.prod(shape) * dtype.itemsize
    if declared != stored:
        raise _Unreadable(
            f"the '{name}' entry declares shape {shape} of {dtype} ({declared:,} bytes) but "
            f"stores {stored:,} bytes"
        )
    with zf.open(info) as fh:
        return fmt.read_array(fh, allow_pickle=False)


def _read_archive(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if not zipfile.is_zipfile(path):
        raise zipfile.BadZipFile("not a zip archive")
    with zipfile.ZipFile(path) as zf:
        present = {n[: -len(".npy")] for n in zf.namelist() if n.endswith(".npy")}
        if "meta" not in present:
            raise ValueError("it has no 'meta' entry")
        raw = _read_entry(zf, "meta", _ENTRY_KINDS["meta"])
        try:
            meta = json.loads(raw.tobytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"its metadata is not JSON ({err})") from None
        _check_meta(meta)
        absent = [k for k in _REQUIRED if k not in present]
        if "ids" not in present and not {"id_offsets", "id_bytes"} <= present:
            absent.append("ids")
        if absent:
            raise ValueError(
                f"it has no {', '.join(map(repr, absent))} entr{'ies' if len(absent) > 1 else 'y'}"
            )
        data = {
            k: _read_entry(zf, k, kinds)
            for k, kinds in _ENTRY_KINDS.items()
            if k in present and k != "meta"
        }
        for name in meta.get("extras") or []:
            entry = _EXTRA_PREFIX + name
            if entry not in present:
                raise ValueError(f"its metadata lists the extra {name!r}, but it has no such entry")
            data[entry] = _read_entry(zf, entry, "f")
    return meta, data


def _check_meta(meta: Any) -> None:
    if not isinstance(meta, dict):
        kind = _JSON_KINDS.get(type(meta), f"JSON {json.dumps(meta)}")
        raise ValueError(f"its metadata is {kind}, not an object")
    if meta.get("format") != FORMAT_NAME:
        raise ValueError(f"its format is {meta.get('format')!r}")
    version = meta.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"its format version is {version!r}, not an int >= 1")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"it has format version {version}, newer than this cartokit reads "
            f"({FORMAT_VERSION}); upgrade cartokit"
        )
    if "num_classes" not in meta:
        raise ValueError("its metadata has no 'num_classes'")
    num_classes = meta["num_classes"]
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"its num_classes is {num_classes!r}, not an int >= 2")
    extras = meta.get("extras")
    if extras is not None and not (
        isinstance(extras, list)
        and all(isinstance(n, str) and _EXTRA_NAME.fullmatch(n) for n in extras)
    ):
        raise ValueError(f"its extras is {_clip(extras)}, not a list of names or null")
    names = meta.get("class_names")
    if names is not None and not (
        isinstance(names, list) and all(isinstance(n, str) for n in names)
    ):
        raise ValueError(f"its class_names is {_clip(names)}, not a list of strings or null")


def _decode_ids(data: dict[str, np.ndarray]) -> np.ndarray:
    if "id_offsets" not in data or "id_bytes" not in data:
        return data.pop("ids")
    blob, offsets = data.pop("id_bytes"), data.pop("id_offsets")
    if (
        offsets.ndim != 1
        or blob.ndim != 1
        or offsets.size == 0
        or offsets[0] != 0
        or offsets[-1] != blob.size
        or (np.diff(offsets) < 0).any()
    ):
        raise _Unreadable(
            f"its id_offsets do not cut its {blob.size} id bytes into ids (they must rise "
            "from 0 to that length)"
        )
    raw = blob.tobytes()
    ids = []
    for i, (a, b) in enumerate(itertools.pairwise(offsets.tolist())):
        try:
            ids.append(raw[a:b].decode("utf-8"))
        except UnicodeDecodeError:
            raise _Unreadable(f"the id of sample {i} is not UTF-8 text") from None
    return np.array(ids, dtype=object)


def _clip(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
