"""Datasets as cartokit sees them: splits with sample ids, labels, class names and a way to
show a sample.

Every loader returns a :class:`DataBundle` of :class:`Split` objects (train, test and optional
out-of-distribution splits). A split's rows are addressed by *position* ``0..N-1`` (what the
recorder's ``update(ids, ...)`` takes) and carry the dataset's own ``ids`` for tables and exports.

>>> bundle = load_dataset("digits")
>>> bundle.train
Split('digits/train', 1437 samples, 10 classes, kind='image')
>>> bundle.train.show(0).shape
(8, 8)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cartokit._validation import check_ids, check_labels

__all__ = ["DATASETS", "DataBundle", "Split", "load_dataset", "register_dataset"]


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
        How to reshape one row of ``inputs`` for display, for flattened images.
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
        if self.frame.empty:
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
        """The sample at ``position`` for display: its text, or its image as a 2-D/3-D array."""
        x = self.inputs[position]
        if self.kind == "text":
            return str(x)
        x = np.asarray(x)
        return x.reshape(self.image_shape) if self.image_shape is not None else x

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
        from cartokit._torch_data import IndexedDataset

        return IndexedDataset(self.inputs, self.labels)


@dataclass
class DataBundle:
    """The splits of one dataset: ``train``, ``test`` and optional out-of-distribution ones."""

    name: str
    train: Split
    test: Split
    ood: dict[str, Split] = field(default_factory=dict)

    @property
    def class_names(self) -> list[str]:
        return self.train.class_names


#: Registered loaders, by name: ``load_dataset(name, **options)`` calls ``DATASETS[name]``.
DATASETS: dict[str, Callable[..., DataBundle]] = {}


def register_dataset(name: str) -> Callable[[Callable[..., DataBundle]], Callable[..., DataBundle]]:
    """Decorator adding a loader to :data:`DATASETS`."""

    def add(loader: Callable[..., DataBundle]) -> Callable[..., DataBundle]:
        DATASETS[name] = loader
        return loader

    return add


def load_dataset(name: str, **options: Any) -> DataBundle:
    """Load a dataset by name (see :data:`DATASETS`), e.g. ``load_dataset("digits")``."""
    if name not in DATASETS:
        raise ValueError(
            f"Unknown dataset {name!r}. Choose one of {sorted(DATASETS)}, or build splits from "
            "your own data with cartokit.data.from_arrays / from_dataframe."
        )
    return DATASETS[name](**options)


@register_dataset("digits")
def load_digits(*, test_size: float = 0.2, seed: int = 0) -> DataBundle:
    """scikit-learn's bundled 8x8 digits (1,797 images, 10 classes), a stratified split.

    Pixels are scaled to [0, 1] and flattened to 64 features; :meth:`Split.show` gives 8x8.
    """
    from sklearn.datasets import load_digits as _sk_digits
    from sklearn.model_selection import train_test_split

    digits = _sk_digits()
    x = digits.data.astype(np.float32) / 16.0
    positions = np.arange(len(x))
    tr, te = train_test_split(
        positions, test_size=test_size, stratify=digits.target, random_state=seed
    )
    names = [str(d) for d in range(10)]

    def split(rows: np.ndarray, part: str) -> Split:
        return Split(
            name=f"digits/{part}",
            inputs=x[rows],
            labels=digits.target[rows],
            ids=rows,  # the row in scikit-learn's array: stable across splits and seeds
            class_names=names,
            kind="image",
            image_shape=(8, 8),
        )

    return DataBundle("digits", train=split(tr, "train"), test=split(te, "test"))
