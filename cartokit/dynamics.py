"""The :class:`TrainingDynamics` container and its binary file format."""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cartokit._validation import atomic_write, check_ids, check_labels, first_few

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "TrainingDynamics"]

FORMAT_NAME = "cartokit-dynamics"
FORMAT_VERSION = 1

_STAT_DTYPES = {"gold_prob": np.float32, "margin": np.float32, "sq_error": np.float32}


def _pred_dtype(num_classes: int) -> type[np.integer]:
    # The predicted label is one of the 16 bytes budgeted per sample-epoch; most tasks have
    # fewer than 128 classes, so it usually costs one byte.
    if num_classes <= np.iinfo(np.int8).max:
        return np.int8
    if num_classes <= np.iinfo(np.int16).max:
        return np.int16
    return np.int32


class TrainingDynamics:
    """Per-checkpoint statistics of every training sample, from one training run.

    For each checkpoint ``e`` (usually an epoch) and sample ``i`` it holds what the metrics
    need, 13 bytes for fewer than 128 classes: the gold-label probability, the margin
    ``logit[y] - max_{k != y} logit[k]``, the squared error ``||p - onehot(y)||^2`` (for EL2N)
    and the predicted label. NaN (and predicted label -1) mark a sample not seen at a checkpoint.
    Full probabilities are kept only when asked for (``probs``).

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
        self.pred = np.asarray(pred).astype(_pred_dtype(self.num_classes), copy=False)
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
        import torch

        from cartokit.metrics import checkpoint_stats

        x = torch.as_tensor(np.ascontiguousarray(scores) if not torch.is_tensor(scores) else scores)
        x = x.detach().to("cpu", torch.float32)
        if x.ndim != 3 or x.shape[2] < 2:
            raise ValueError(
                f"{caller}: expected an array of shape (epochs, samples, classes) with at least "
                f"2 classes. Got shape {tuple(x.shape)}; for a single epoch use x[None]."
            )
        n_epochs, n_samples, n_classes = x.shape
        finite = torch.isfinite(x).all(dim=2)
        if not bool(finite.all()):
            e, i = (int(v[0]) for v in torch.nonzero(~finite, as_tuple=True))
            raise ValueError(
                f"{caller}: {kind} must be finite; epoch {e}, sample {i} holds NaN or inf "
                f"({int((~finite).sum())} rows in all). Check the model for divergence."
            )
        if kind == "probs":
            if bool((x < 0).any()):
                raise ValueError(
                    f"{caller}: probabilities must be >= 0. Got a minimum of {float(x.min())}; "
                    "pass logits to from_logits instead."
                )
            total = x.sum(dim=2, keepdim=True)
            if bool((total <= 0).any()):
                raise ValueError(f"{caller}: every probability row must have a positive sum.")
            x = torch.log((x / total).clamp_min(np.finfo(np.float32).tiny))
        labels_np = check_labels(np.asarray(labels), n_classes, caller=caller)
        if labels_np.shape[0] != n_samples:
            raise ValueError(f"{caller}: got {labels_np.shape[0]} labels for {n_samples} samples.")
        y = torch.from_numpy(labels_np)
        stats = [checkpoint_stats(x[e], y) for e in range(n_epochs)]
        gold, margin, sq_err, pred = (torch.stack([s[k] for s in stats]).numpy() for k in range(4))
        probs = torch.softmax(x, dim=2).numpy() if store_probs else None
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
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
        with atomic_write(path, "wb") as fh:
            np.savez(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TrainingDynamics:
        """Read a file written by :meth:`save`.

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
            raise FileNotFoundError(f"No dynamics file at {path}.")
        try:
            if not zipfile.is_zipfile(path):
                raise zipfile.BadZipFile("not a zip archive")
            with np.load(path, allow_pickle=False) as npz:
                files = set(npz.files)
                if "meta" not in files:
                    raise ValueError("it has no 'meta' entry")
                meta = json.loads(npz["meta"].tobytes().decode("utf-8"))
                if meta.get("format") != FORMAT_NAME:
                    raise ValueError(f"its format is {meta.get('format')!r}")
                if int(meta.get("version", 0)) > FORMAT_VERSION:
                    raise ValueError(
                        f"it has format version {meta['version']}, newer than this cartokit "
                        f"reads ({FORMAT_VERSION}); upgrade cartokit"
                    )
                data = {k: npz[k] for k in files if k != "meta"}
        except (zipfile.BadZipFile, EOFError, OSError, KeyError, json.JSONDecodeError) as err:
            raise ValueError(
                f"{path} is not a readable cartokit dynamics file (truncated or corrupt: {err})."
            ) from None
        except ValueError as err:
            raise ValueError(f"{path} is not a cartokit dynamics file: {err}.") from None
        if "id_bytes" in data:
            blob, offsets = data.pop("id_bytes").tobytes(), data.pop("id_offsets")
            ids: np.ndarray = np.array(
                [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:])],
                dtype=object,
            )
        else:
            ids = data.pop("ids")
        try:
            return cls(
                ids=ids,
                num_classes=meta["num_classes"],
                class_names=meta.get("class_names"),
                probs=data.pop("probs", None),
                **data,
            )
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path} holds inconsistent dynamics: {err}") from None
