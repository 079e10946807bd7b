"""A dataset as cartokit holds it: :class:`Split` (one split's inputs, labels, ids, class names
and per-sample frame) and :class:`DataBundle` (train, test and out-of-distribution splits), and
what cuts and combines them: :func:`subsample`, :func:`split_train_test`, :func:`make_bundle`.

Also the steps every source of data shares: :func:`encode_labels` (class names to indices),
:func:`sample_positions` (a stratified, seeded sample) and :func:`check_max_samples`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cartokit._validation import (
    Interval,
    Optional,
    check_ids,
    check_int,
    check_labels,
    check_param,
    first_few,
)

__all__ = [
    "DataBundle",
    "Split",
    "check_max_samples",
    "encode_labels",
    "make_bundle",
    "sample_positions",
    "split_train_test",
    "subsample",
]


@dataclass
class Split:
    """One split of a dataset.

    Attributes
    ----------
    name : str
        E.g. ``"digits/train"``.
    inputs : numpy array or list of str
        Model inputs by position: a float32 array ``(N, ...)`` for images and tabular data, or
        a list of N strings for text (pairs are joined by the loader, or kept in ``frame``).
    labels : numpy array of int64, shape (N,)
    ids : numpy array, shape (N,)
        Unique sample ids (ints or strings); default ``0..N-1``.
    class_names : list of str
    kind : {"image", "text", "tabular"}
    frame : pandas.DataFrame
        Per-sample extra columns indexed like ``ids`` (e.g. ``text``, ``human_score``,
        ``flipped``), shown by the explorer and joined onto metrics tables.
    image_shape : tuple of int, optional
        How to reshape one row of ``inputs``, for flattened images: ``(H, W)``, or
        channels-first ``(C, H, W)`` for colour (what torch convolutions take).
    """

    name: str
    inputs: Any
    labels: np.ndarray
    ids: np.ndarray
    class_names: list[str]
    kind: str
    frame: pd.DataFrame = field(default_factory=pd.DataFrame)
    image_shape: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        n = len(self.inputs)
        if n == 0:
            raise ValueError(f"Split {self.name!r} is empty; a data map needs samples.")
        self.labels = check_labels(np.asarray(self.labels), len(self.class_names), caller=self.name)
        if self.labels.shape[0] != n:
            raise ValueError(f"Split {self.name!r}: {n} inputs but {self.labels.shape[0]} labels.")
        self.ids = check_ids(self.ids, n, caller=self.name)
        if self.kind not in ("image", "text", "tabular"):
            raise ValueError(
                f"Split {self.name!r}: kind must be 'image', 'text' or 'tabular'. "
                f"Got {self.kind!r}."
            )
        if self.frame.empty and len(self.frame.columns) == 0:
            self.frame = pd.DataFrame(index=pd.Index(self.ids, name="id"))
        elif len(self.frame) != n:
            raise ValueError(f"Split {self.name!r}: frame has {len(self.frame)} rows for {n}.")
        else:
            self.frame.index = pd.Index(self.ids, name="id")

    def __len__(self) -> int:
        return len(self.inputs)

    def __repr__(self) -> str:
        return (
            f"Split({self.name!r}, {len(self)} samples, {len(self.class_names)} classes, "
            f"kind={self.kind!r})"
        )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def show(self, position: int) -> str | np.ndarray:
        """The sample at ``position`` for display: its text, or its image as a 2-D/3-D array.

        Channels-first images (``(1, H, W)`` or ``(3, H, W)``, as torchvision transforms give)
        come back as ``(H, W)`` or ``(H, W, 3)``, the layout image viewers take.
        """
        x = self.inputs[position]
        if self.kind == "text":
            return str(x)
        x = np.asarray(x)
        if self.image_shape is not None:
            x = x.reshape(self.image_shape)
        if (
            self.kind == "image"
            and x.ndim == 3
            and x.shape[0] in (1, 3)
            and x.shape[-1] not in (1, 3, 4)
        ):
            x = x[0] if x.shape[0] == 1 else np.moveaxis(x, 0, -1)
        return x

    def subset(self, positions: Sequence[int] | np.ndarray, *, name: str | None = None) -> Split:
        """A new split holding the rows at ``positions`` (in that order)."""
        positions = np.asarray(positions, dtype=np.int64)
        inputs = (
            [self.inputs[i] for i in positions]
            if isinstance(self.inputs, list)
            else self.inputs[positions]
        )
        return Split(
            name=name or f"{self.name}[subset]",
            inputs=inputs,
            labels=self.labels[positions],
            ids=self.ids[positions],
            class_names=list(self.class_names),
            kind=self.kind,
            frame=self.frame.iloc[positions].copy(),
            image_shape=self.image_shape,
        )

    def with_labels(self, labels: np.ndarray, *, name: str | None = None) -> Split:
        """A copy with other labels (e.g. after noise injection or relabelling)."""
        return Split(
            name=name or self.name,
            inputs=self.inputs,
            labels=np.asarray(labels),
            ids=self.ids,
            class_names=list(self.class_names),
            kind=self.kind,
            frame=self.frame.copy(),
            image_shape=self.image_shape,
        )

    def to_torch(self) -> Any:
        """A ``torch.utils.data.Dataset`` of ``(position, x, label)`` triples.

        ``x`` is a float32 tensor for array inputs and a string for text; positions are what
        :meth:`DynamicsRecorder.update` takes as ids.
        """
        from cartokit.data.indexed import IndexedDataset

        return IndexedDataset(self.inputs, self.labels)


@dataclass
class DataBundle:
    """The splits of one dataset: ``train``, ``test`` and optional out-of-distribution ones.

    Every split must have the train split's class names, so that label ``k`` means the same
    class everywhere.
    """

    name: str
    train: Split
    test: Split
    ood: dict[str, Split] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, split in {"test": self.test, **self.ood}.items():
            if list(split.class_names) != list(self.train.class_names):
                raise ValueError(
                    f"DataBundle {self.name!r}: split {key!r} has class names "
                    f"{first_few(split.class_names)} but train has "
                    f"{first_few(self.train.class_names)}. Build every split with the same "
                    "class_names= so that a label means the same class in each."
                )

    @property
    def class_names(self) -> list[str]:
        return self.train.class_names

    @property
    def splits(self) -> dict[str, Split]:
        """Every split by key: ``train``, ``test``, then the out-of-distribution ones."""
        return {"train": self.train, "test": self.test, **self.ood}


# ----------------------------------------------------------------------------------------------
# Building blocks: labels, sampling, splitting

_MAX_SAMPLES = Optional(Interval(int, 1, None))


def encode_labels(
    labels: Any, class_names: Sequence[Any] | None, *, caller: str
) -> tuple[np.ndarray, list[str]]:
    """Integer labels and class names; string labels become indices into sorted class names."""
    values = np.asarray(labels)
    if values.ndim != 1:
        raise ValueError(f"{caller}: labels must be 1-D, one per sample. Got shape {values.shape}.")
    missing = pd.isna(values)
    if missing.any():
        raise ValueError(
            f"{caller}: {int(missing.sum())} labels are missing, at positions "
            f"{first_few(np.flatnonzero(missing))}. Drop those rows first."
        )
    if values.dtype.kind in "biuf":
        if class_names is None:
            count = int(values.max()) + 1 if values.size else 0
            class_names = [str(c) for c in range(count)]
        return values, [str(c) for c in class_names]
    text = np.array([str(v) for v in values], dtype=object)
    names = sorted(set(text)) if class_names is None else [str(c) for c in class_names]
    index = {c: i for i, c in enumerate(names)}
    unknown = sorted(set(text) - set(index))
    if unknown:
        raise ValueError(
            f"{caller}: labels {first_few(unknown)} are not among class_names "
            f"{first_few(names)}. Add them to class_names, or drop those rows."
        )
    return np.array([index[v] for v in text], dtype=np.int64), names


def sample_positions(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """``size`` sorted positions, stratified by label where every class allows it."""
    from sklearn.model_selection import train_test_split

    positions = np.arange(len(labels))
    try:
        kept, _ = train_test_split(positions, train_size=size, stratify=labels, random_state=seed)
    except ValueError:  # a class too small to stratify: a plain random sample instead
        kept = np.random.default_rng(seed).choice(positions, size=size, replace=False)
    return np.sort(kept)


def check_max_samples(max_samples: Any, *, caller: str) -> int | None:
    """``max_samples`` as an int >= 1, or ``None`` (no cap)."""
    return check_param("max_samples", max_samples, _MAX_SAMPLES, caller=caller)


def subsample(split: Split, max_samples: int, *, seed: int = 0) -> Split:
    """At most ``max_samples`` rows of ``split``, stratified by label and in their original order.

    For CI-sized runs. Ids are kept, so a subsample's rows can be found in the full split.

    >>> from cartokit.data import load_digits
    >>> small = subsample(load_digits().train, 100)
    >>> len(small), small.name
    (100, 'digits/train')
    """
    size = check_int("max_samples", max_samples, caller="subsample", minimum=1)
    if size >= len(split):
        return split
    return split.subset(sample_positions(split.labels, size, seed), name=split.name)


def split_train_test(
    split: Split, *, test_size: float | int = 0.2, seed: int = 0, stratify: bool = True
) -> tuple[Split, Split]:
    """Split one :class:`Split` into train and test, stratified by label and seeded.

    Parameters
    ----------
    split : Split
    test_size : float in (0, 1) or int
        The test fraction, or the number of test samples.
    seed : int
    stratify : bool
        Keep each class's share equal in both parts (needs at least 2 samples a class).

    Returns
    -------
    train, test : Split
        Named ``"<name>/train"`` and ``"<name>/test"``; rows keep their original order and ids.

    >>> from cartokit.data import from_arrays
    >>> train, test = split_train_test(from_arrays(np.eye(10), np.arange(10) % 2), test_size=0.2)
    >>> len(train), len(test), test.name
    (8, 2, 'arrays/test')
    """
    from sklearn.model_selection import train_test_split

    if isinstance(test_size, bool) or not (
        (isinstance(test_size, (float, np.floating)) and 0 < test_size < 1)
        or (isinstance(test_size, (int, np.integer)) and 1 <= test_size < len(split))
    ):
        raise ValueError(
            "The 'test_size' parameter of split_train_test must be a float in the range (0, 1) "
            f"or an int in [1, {len(split) - 1}]. Got {test_size!r} instead."
        )
    positions = np.arange(len(split))
    counts = np.bincount(split.labels)
    strata = split.labels if stratify and counts[counts > 0].min() >= 2 else None
    train, test = train_test_split(
        positions, test_size=test_size, stratify=strata, random_state=seed
    )
    return (
        split.subset(np.sort(train), name=f"{split.name}/train"),
        split.subset(np.sort(test), name=f"{split.name}/test"),
    )


def make_bundle(
    train: Split,
    test: Split | None = None,
    *,
    ood: Mapping[str, Split] | Split | None = None,
    name: str | None = None,
    test_size: float | int = 0.2,
    seed: int = 0,
) -> DataBundle:
    """A :class:`DataBundle` from your own splits; without ``test``, carve one from ``train``.

    ``ood`` is a split or a mapping of name to split; a lone split is keyed by the last part
    of its name.

    >>> from cartokit.data import from_arrays
    >>> bundle = make_bundle(from_arrays(np.eye(10), np.arange(10) % 2, name="toy"))
    >>> bundle.name, len(bundle.train), len(bundle.test)
    ('toy', 8, 2)
    """
    if test is None:
        train, test = split_train_test(train, test_size=test_size, seed=seed)
    if isinstance(ood, Split):
        ood = {ood.name.rsplit("/", 1)[-1]: ood}
    return DataBundle(
        name=name or train.name.split("/", 1)[0],
        train=train,
        test=test,
        ood=dict(ood or {}),
    )
