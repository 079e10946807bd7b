"""Your own data from files: a table of texts or numeric features with labels
(:func:`from_file`: ``.csv``, ``.tsv``, ``.jsonl``, ``.parquet``), a folder of images with one
subfolder per class (:func:`from_image_folder`, read with Pillow), and a training file with its
test and out-of-distribution files as one :class:`~cartokit.data.DataBundle`
(:func:`load_files`).

Every refusal is one line that names the file: a missing column (with the columns found), an
empty file, labels of one class, repeated ids, a test file with classes the training file lacks,
an image Pillow cannot read. Labels are class names: the sorted distinct values of the label
column (numbers sort as numbers, so labels 1-5 are the classes "1" to "5"), the same indices in
every file of a bundle.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cartokit._validation import first_few
from cartokit.data.split import DataBundle, Split, split_train_test

__all__ = [
    "IMAGE_SUFFIXES",
    "TABLE_SUFFIXES",
    "check_files",
    "from_file",
    "from_image_folder",
    "is_table_file",
    "load_files",
    "read_table",
]

#: The table files :func:`read_table` reads, by suffix.
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".parquet")
#: The image files :func:`from_image_folder` reads, by suffix (others are left alone).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def is_table_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a file :func:`read_table` reads (by its suffix)."""
    return Path(path).suffix.lower() in TABLE_SUFFIXES


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A ``.csv``, ``.tsv``, ``.jsonl`` (one JSON object a line) or ``.parquet`` file as a
    DataFrame, with at least one row.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If its suffix is none of those, it cannot be parsed, or it has no rows.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise ValueError(
            f"{p}: cartokit reads tables from {', '.join(TABLE_SUFFIXES)} files, not "
            f"{suffix or 'files without a suffix'}."
        )
    if not p.is_file():
        raise FileNotFoundError(f"No file at {p}.")
    if p.stat().st_size == 0:
        raise ValueError(f"{p} is empty: a data map needs samples.")
    try:
        if suffix == ".parquet":
            table = pd.read_parquet(p)
        elif suffix == ".jsonl":
            table = pd.read_json(p, lines=True, dtype=False)
        else:
            table = pd.read_csv(p, sep="\t" if suffix == ".tsv" else ",", keep_default_na=True)
    except Exception as err:  # pandas' and pyarrow's parser errors are many; each says where
        kind = suffix.lstrip(".").upper()
        reason = " ".join(str(err).split()) or type(err).__name__
        raise ValueError(f"{p} is not a readable {kind} file: {reason}") from None
    if len(table) == 0:
        raise ValueError(f"{p} has a header but no rows: a data map needs samples.")
    return table


def _check_columns(p: Path, table: pd.DataFrame, wanted: Sequence[tuple[str, str | None]]) -> None:
    """Each ``(parameter, column)``'s column is in the table; else one line with the columns
    found."""
    for parameter, column in wanted:
        if column is not None and column not in table.columns:
            raise ValueError(
                f"{p} has no column {column!r} (the {parameter}). Its columns are "
                f"{first_few(list(table.columns), 20)}; set {parameter} to one of them."
            )


def _class_names(values: np.ndarray) -> list[str]:
    """The sorted distinct labels as class names; numbers sort as numbers."""
    distinct = pd.unique(values)
    try:
        ordered = sorted(distinct)
    except TypeError:  # numbers mixed with text
        ordered = sorted(distinct, key=str)
    return [_label_text(v) for v in ordered]


def _label_text(value: Any) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value.item() if isinstance(value, np.generic) else value)


def _encode(
    p: Path, values: np.ndarray, class_names: Sequence[str] | None, *, where: str
) -> tuple[np.ndarray, list[str]]:
    """Labels as indices into ``class_names`` (default: the sorted distinct labels)."""
    missing = pd.isna(values)
    if missing.any():
        raise ValueError(
            f"{p}: {int(missing.sum())} {where} are missing, at rows "
            f"{first_few(np.flatnonzero(missing))}. Drop those rows or give them labels."
        )
    text = np.array([_label_text(v) for v in values], dtype=object)
    if class_names is None:
        names = _class_names(values)
        if len(names) < 2:
            raise ValueError(
                f"{p}: every {where[:-1]} is {names[0]!r}, one class; a data map needs at least "
                "2 classes."
            )
    else:
        names = list(class_names)
        unknown = sorted(set(text) - set(names))
        if unknown:
            raise ValueError(
                f"{p} has classes the training data lacks: {first_few(unknown)}. The training "
                f"classes are {first_few(names, 20)}; drop those rows or add the classes to "
                "the training data."
            )
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[v] for v in text], dtype=np.int64), names


def _ids(p: Path, table: pd.DataFrame, id_column: str | None) -> np.ndarray:
    if id_column is None:
        return np.arange(len(table), dtype=np.int64)
    ids = table[id_column]
    if ids.isna().any():
        rows = np.flatnonzero(ids.isna().to_numpy())
        raise ValueError(f"{p}: the id column {id_column!r} is empty at rows {first_few(rows)}.")
    repeated = ids[ids.duplicated()].unique()
    if len(repeated):
        raise ValueError(
            f"{p}: the id column {id_column!r} repeats ids, e.g. {first_few(list(repeated))}; "
            "each row must be one sample with its own id."
        )
    values = ids.to_numpy()
    return values.astype(np.int64) if values.dtype.kind in "iu" else values.astype(str)


def from_file(
    path: str | os.PathLike[str],
    *,
    text_column: str | None = None,
    feature_columns: Sequence[str] | None = None,
    label_column: str = "label",
    id_column: str | None = None,
    class_names: Sequence[str] | None = None,
    name: str | None = None,
) -> Split:
    """A :class:`~cartokit.data.Split` from a table file (see :func:`read_table`).

    Parameters
    ----------
    path : path-like
    text_column : str, optional
        The column of texts (a text split). Default ``"text"``, unless ``feature_columns``.
    feature_columns : list of str, optional
        Numeric columns: a tabular split of these features, in this order.
    label_column : str
    id_column : str, optional
        A column of unique ids (ints or strings). Default: the row number, from 0.
    class_names : list of str, optional
        The classes, in index order; labels outside them are refused. Default: the sorted
        distinct labels (as a test file takes them from its training file).
    name : str, optional
        Default: the file's name.

    The other columns stay in :attr:`Split.frame` (numeric ones, such as a human score, show
    in the explorer and join the metrics table).

    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "reviews.csv"
    >>> _ = path.write_text("review,stars\\ngreat,5\\nawful,1\\nfine,5\\n")
    >>> split = from_file(path, text_column="review", label_column="stars")
    >>> split, split.class_names, split.labels.tolist()
    (Split('reviews.csv', 3 samples, 2 classes, kind='text'), ['1', '5'], [1, 0, 1])
    >>> from_file(path, label_column="rating")
    Traceback (most recent call last):
    ...
    ValueError: .../reviews.csv has no column 'rating' (the label_column). Its columns are ['review', 'stars']; set label_column to one of them.
    """  # noqa: E501
    p = Path(path)
    table = read_table(p)
    features = list(feature_columns or [])
    text = None if features else (text_column or "text")
    wanted = [("label_column", label_column), ("id_column", id_column)]
    if features:
        wanted += [("feature_columns", column) for column in features]
    else:
        wanted.append(("text_column", text))
    _check_columns(p, table, wanted)
    labels, names = _encode(p, table[label_column].to_numpy(), class_names, where="labels")
    ids = _ids(p, table, id_column)
    frame = table.drop(columns=[c for c in (label_column, id_column) if c is not None])
    frame = frame.reset_index(drop=True)
    if features:
        inputs: Any = _features(p, table, features)
        kind = "tabular"
    else:
        texts = table[text]
        if texts.isna().any():
            rows = np.flatnonzero(texts.isna().to_numpy())
            raise ValueError(
                f"{p}: the text column {text!r} is empty at rows {first_few(rows)}. Drop or fill "
                "those rows."
            )
        inputs, kind = [str(t) for t in texts], "text"
    return Split(
        name=name or p.name,
        inputs=inputs,
        labels=labels,
        ids=ids,
        class_names=names,
        kind=kind,
        frame=frame,
    )


def _features(p: Path, table: pd.DataFrame, columns: list[str]) -> np.ndarray:
    for column in columns:
        values = table[column]
        if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)):
            bad = values[pd.to_numeric(values, errors="coerce").isna() & values.notna()]
            raise ValueError(
                f"{p}: the feature column {column!r} holds text, e.g. {first_few(list(bad), 3)}; "
                "feature_columns must be numeric (encode categories as numbers first)."
            )
        if values.isna().any():
            rows = np.flatnonzero(values.isna().to_numpy())
            raise ValueError(
                f"{p}: the feature column {column!r} is empty at rows {first_few(rows)}. Fill "
                "or drop those rows."
            )
    return table[columns].to_numpy(dtype=np.float32)


# ---------------------------------------------------------------------------- image folders


def _image_files(folder: Path) -> dict[str, list[Path]]:
    """Class name -> its image files, for each subfolder that holds any."""
    classes = {}
    for sub in sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")):
        files = sorted(
            f for f in sub.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
        )
        if files:
            classes[sub.name] = files
    return classes


def _folder_classes(
    root: Path, class_names: Sequence[str] | None
) -> tuple[list[str], dict[str, list[Path]]]:
    """The class names and each class's image files of an image folder, checked."""
    if not root.is_dir():
        raise FileNotFoundError(f"No folder at {root}.")
    files = _image_files(root)
    if not files:
        raise ValueError(
            f"{root} has no subfolder with images ({', '.join(IMAGE_SUFFIXES)}): give a folder "
            "with one subfolder of images per class."
        )
    if class_names is None:
        names = list(files)
        if len(names) < 2:
            raise ValueError(
                f"{root} has one class, {names[0]!r}; a data map needs at least 2 classes (one "
                "subfolder of images each)."
            )
        return names, files
    names = list(class_names)
    unknown = [c for c in files if c not in names]
    if unknown:
        raise ValueError(
            f"{root} has classes the training data lacks: {first_few(unknown)}. The training "
            f"classes are {first_few(names, 20)}."
        )
    return names, files


def _open_image(path: Path, *, decode: bool = True) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            if not decode:  # the file's structure, without decoding the pixels
                opened.verify()
                return None
            image = opened.copy()  # decoded; the file closes with the block
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        reason = " ".join(str(err).split()) or type(err).__name__
        raise ValueError(f"{path} is not an image Pillow can read: {reason}") from None
    return image


def from_image_folder(
    folder: str | os.PathLike[str],
    *,
    class_names: Sequence[str] | None = None,
    size: tuple[int, int] | None = None,
    name: str | None = None,
) -> Split:
    """An image :class:`~cartokit.data.Split` from a folder with one subfolder per class.

    Each subfolder's name is a class; its ``.png``, ``.jpg``, ... files (:data:`IMAGE_SUFFIXES`)
    are read with Pillow, scaled to [0, 1] and flattened, grayscale when every image is, else
    RGB channels-first (``image_shape`` ``(3, H, W)``). Ids are the files' paths relative to
    ``folder`` (``"cat/001.png"``).

    Parameters
    ----------
    folder : path-like
    class_names : list of str, optional
        The classes, in index order (a test folder takes its training folder's); a subfolder
        outside them is refused.
    size : (width, height), optional
        Every image is resized to this size. Default: the size of the first image.
    name : str, optional
        Default: the folder's name.
    """
    root = Path(folder)
    names, files = _folder_classes(root, class_names)
    paths = [(names.index(c), f) for c in files for f in files[c]]
    images = [_open_image(f) for _, f in paths]
    gray = all(image.mode in ("1", "L", "I;16", "I", "F") for image in images)
    mode = "L" if gray else "RGB"
    width, height = size or images[0].size
    pixels = (
        np.stack(
            [np.asarray(image.convert(mode).resize((width, height))) for image in images]
        ).astype(np.float32)
        / 255.0
    )
    if not gray:
        pixels = pixels.transpose(0, 3, 1, 2)  # channels first, what torch convolutions take
    shape = tuple(int(d) for d in pixels.shape[1:])
    return Split(
        name=name or root.name,
        inputs=pixels.reshape(len(paths), -1),
        labels=np.array([label for label, _ in paths], dtype=np.int64),
        ids=np.array([f.relative_to(root).as_posix() for _, f in paths], dtype=object),
        class_names=names,
        kind="image",
        image_shape=shape,
    )


# ---------------------------------------------------------------------------- a bundle


def check_files(
    dataset: str | os.PathLike[str],
    *,
    test_data: str | os.PathLike[str] | None = None,
    ood_data: Mapping[str, str | os.PathLike[str]] | None = None,
    **columns: Any,
) -> None:
    """Refuse now what :func:`load_files` would refuse later, without keeping the data: every
    table is read and checked; every image of a folder is opened and verified by Pillow, not
    decoded. ``cartokit run`` calls it before the first notebook starts."""
    source = Path(dataset)
    others = [p for p in (test_data, *(ood_data or {}).values()) if p is not None]
    if source.is_dir():
        names, _ = _folder_classes(source, None)
        for root, known in [(source, None), *((Path(p), names) for p in others)]:
            for paths in _folder_classes(root, known)[1].values():
                for path in paths:
                    _open_image(path, decode=False)
        return
    train = from_file(source, **columns)
    for path in others:
        from_file(path, **columns, class_names=train.class_names)


def load_files(
    dataset: str | os.PathLike[str],
    *,
    test_data: str | os.PathLike[str] | None = None,
    ood_data: Mapping[str, str | os.PathLike[str]] | None = None,
    test_size: float = 0.2,
    seed: int = 0,
    **columns: Any,
) -> DataBundle:
    """A :class:`~cartokit.data.DataBundle` from a training file (or image folder), its test
    file and out-of-distribution files, all in one layout.

    Without ``test_data``, a stratified, seeded ``test_size`` share of the training file is the
    test split. ``columns`` are those of :func:`from_file` (``text_column``,
    ``feature_columns``, ``label_column``, ``id_column``); an image folder takes none. The test
    and out-of-distribution files take the training file's classes, and may not add any.
    """
    source = Path(dataset)

    def read(path: str | os.PathLike[str], names: Sequence[str] | None, split: str) -> Split:
        p = Path(path)
        title = f"{source.stem}/{split}"
        if source.is_dir():
            size = None if names is None else train.image_shape[-1:-3:-1]  # (width, height)
            return from_image_folder(p, class_names=names, size=size, name=title)
        return from_file(p, **columns, class_names=names, name=title)

    train = read(source, None, "train")
    if test_data is None:
        train, test = split_train_test(train, test_size=test_size, seed=seed)
        train.name, test.name = f"{source.stem}/train", f"{source.stem}/test"
    else:
        test = read(test_data, train.class_names, "test")
    ood = {key: read(p, train.class_names, key) for key, p in (ood_data or {}).items()}
    return DataBundle(source.stem, train=train, test=test, ood=ood)
