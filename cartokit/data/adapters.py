"""Your own data as a :class:`~cartokit.data.Split`: :func:`from_arrays` (arrays or texts),
:func:`from_dataframe` (a pandas table), :func:`from_torch` (a map-style torch ``Dataset``) and
:func:`from_hf` (one split of a Hugging Face ``datasets.Dataset``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from cartokit._validation import first_few
from cartokit.data.split import Split, check_max_samples, encode_labels, sample_positions

__all__ = ["PAIR_SEPARATOR", "from_arrays", "from_dataframe", "from_hf", "from_torch"]

#: Joins a text pair into one input string; BERT-family tokenizers read ``[SEP]`` as their own
#: separator token. The two texts also stay in ``Split.frame`` under their source column names.
PAIR_SEPARATOR = " [SEP] "


def _array_split(
    inputs: Any,
    y: Any,
    *,
    name: str,
    caller: str,
    ids: Any,
    names: Sequence[str] | None,
    kind: str | None,
    image_shape: tuple[int, ...] | None,
    frame: pd.DataFrame | None = None,
) -> Split:
    """The Split of :func:`from_arrays` and :func:`from_torch`: labels encoded, kind inferred
    (``"text"`` for strings, ``"image"`` for 3-D+ arrays or with ``image_shape``, else
    ``"tabular"``)."""
    labels, names = encode_labels(y, names, caller=caller)
    if not kind:
        if isinstance(inputs, list):
            kind = "text"
        else:
            kind = "image" if inputs.ndim >= 3 or image_shape is not None else "tabular"
    return Split(
        name=name,
        inputs=inputs,
        labels=labels,
        ids=ids,
        class_names=names,
        kind=kind,
        frame=pd.DataFrame() if frame is None else frame.reset_index(drop=True),
        image_shape=image_shape,
    )


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
    layout = {"kind": kind, "image_shape": image_shape, "frame": frame}
    return _array_split(inputs, y, name=name, caller=caller, ids=ids, names=class_names, **layout)


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
    labels, names = encode_labels(df[label].to_numpy(), class_names, caller=caller)
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
    layout = {"kind": kind, "image_shape": image_shape}
    return _array_split(inputs, ys, name=name, caller=caller, ids=ids, names=class_names, **layout)


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
    cap = check_max_samples(max_samples, caller=caller)

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
        keep = keep[sample_positions(raw[keep], cap, seed)]
    rows = dataset.select(keep) if keep.size < len(raw) else dataset

    feature = getattr(dataset, "features", {}).get(label)
    if class_names is None and getattr(feature, "names", None):
        class_names = list(feature.names)
    labels, names = encode_labels(raw[keep], class_names, caller=caller)
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
