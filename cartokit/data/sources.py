"""Where a study's data comes from, as its ``dataset`` parameter names it: a registered name
(:data:`~cartokit.data.DATASETS`), ``hf:<name>`` for any Hugging Face hub dataset
(:func:`load_hub`), or the path of a table file or an image folder
(:func:`~cartokit.data.files.load_files`).

:func:`dataset_source` tells them apart and normalises the value (an absolute path, so that a
notebook run in another folder reads the same file); :func:`load_source` loads any of them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cartokit._validation import did_you_mean
from cartokit.data.datasets import DATASETS, load_dataset, load_hf
from cartokit.data.files import TABLE_SUFFIXES, load_files
from cartokit.data.split import DataBundle

__all__ = ["HUB_PREFIX", "dataset_source", "load_hub", "load_source"]

#: ``dataset: hf:<name>`` loads ``<name>`` with ``datasets.load_dataset``.
HUB_PREFIX = "hf:"


def dataset_source(value: Any) -> tuple[str, str]:
    """``(source, value)``: ``source`` is ``"name"``, ``"hub"``, ``"file"`` or ``"folder"``, and
    ``value`` the dataset normalised (paths made absolute, also after ``hf:`` when local).

    Raises
    ------
    TypeError
        If ``value`` is not a str or a path.
    ValueError
        If it names no registered dataset and no existing table file or folder; the message
        says which (with a "Did you mean" for a near name).

    >>> dataset_source("digits")
    ('name', 'digits')
    >>> dataset_source("hf:stanfordnlp/imdb")
    ('hub', 'hf:stanfordnlp/imdb')
    """
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError
    text = os.fspath(value)
    if text in DATASETS:
        return "name", text
    if text.startswith(HUB_PREFIX):
        name = text[len(HUB_PREFIX) :].strip()
        if not name:
            raise ValueError("Give the dataset's hub name after 'hf:', e.g. 'hf:stanfordnlp/imdb'.")
        local = Path(name).expanduser()
        return "hub", HUB_PREFIX + (str(local.resolve()) if local.exists() else name)
    path = Path(text).expanduser()
    looks_like_path = path.suffix.lower() in TABLE_SUFFIXES or "/" in text or os.sep in text
    if path.is_dir():
        return "folder", str(path.resolve())
    if path.is_file():
        if path.suffix.lower() not in TABLE_SUFFIXES:
            raise ValueError(
                f"{path.resolve()} is a {path.suffix or 'suffix-less'} file; cartokit reads "
                f"{', '.join(TABLE_SUFFIXES)} files."
            )
        return "file", str(path.resolve())
    if looks_like_path:
        raise ValueError(f"There is no file or folder at {path.resolve()}.")
    raise ValueError(did_you_mean(text, sorted(DATASETS)).strip())


def _labelled(split: Any, label: str) -> bool:
    """Whether a hub split has gold labels (GLUE and SST-2 test splits have -1 throughout)."""
    if label not in split.column_names:
        return False
    values = split[label]
    return len(values) > 0 and not all(isinstance(v, int) and v < 0 for v in values)


def load_hub(
    name: str,
    *,
    text_column: str | None = None,
    label_column: str = "label",
    id_column: str | None = None,
    test_data: str | None = None,
    ood_data: Mapping[str, str] | None = None,
    test_size: float = 0.2,
    max_samples: int | None = None,
    seed: int = 0,
) -> DataBundle:
    """Any Hugging Face hub dataset with texts and labels, by name, through
    ``datasets.load_dataset(name)`` (a local folder of data files works too, offline).

    The ``train`` split is mapped; the test split is ``test_data`` (a split name), else
    ``test`` or ``validation``, whichever has labels first, else a stratified ``test_size``
    share of ``train``. ``ood_data`` maps names to more split names. Text columns are guessed
    as :func:`~cartokit.data.from_hf` does unless ``text_column`` names one.
    """
    try:
        import datasets
    except ImportError:
        raise ImportError(
            'hf: datasets need the Hugging Face datasets library: pip install "cartokit[hf]"'
        ) from None
    try:
        loaded = datasets.load_dataset(name)
    except Exception as err:  # network, missing repo, unknown builder: datasets says which
        reason = " ".join(str(err).split()) or type(err).__name__
        raise ValueError(f"datasets.load_dataset({name!r}) failed: {reason}") from None
    if test_data is None:
        labelled = [s for s in ("test", "validation") if s in loaded]
        test_data = next((s for s in labelled if _labelled(loaded[s], label_column)), None)
    return load_hf(
        name,
        text=text_column,
        label=label_column,
        id=id_column,
        test_split=test_data,
        ood_splits=ood_data,
        test_size=test_size,
        max_samples=max_samples,
        seed=seed,
        bundle_name=Path(name).name if Path(name).is_absolute() else name,
    )


def load_source(
    dataset: str,
    *,
    text_column: str | None = None,
    feature_columns: Sequence[str] = (),
    label_column: str = "label",
    id_column: str | None = None,
    test_data: str | None = None,
    ood_data: Mapping[str, str] | None = None,
    test_size: float = 0.2,
    max_samples: int | None = None,
    seed: int = 0,
) -> DataBundle:
    """The :class:`~cartokit.data.DataBundle` that ``dataset`` names (see
    :func:`dataset_source`); the other options apply to hub datasets and files (a registered
    dataset takes ``max_samples`` and ``seed`` only, where its loader does)."""
    source, value = dataset_source(dataset)
    if source == "name":
        return load_dataset(value, **_registered_options(value, max_samples, seed))
    if source == "hub":
        return load_hub(
            value[len(HUB_PREFIX) :],
            text_column=text_column,
            label_column=label_column,
            id_column=id_column,
            test_data=test_data,
            ood_data=ood_data,
            test_size=test_size,
            max_samples=max_samples,
            seed=seed,
        )
    return load_files(
        value,
        test_data=test_data,
        ood_data=ood_data,
        test_size=test_size,
        seed=seed,
        **(
            {}
            if source == "folder"
            else {
                "text_column": text_column,
                "feature_columns": list(feature_columns),
                "label_column": label_column,
                "id_column": id_column,
            }
        ),
    )


def _registered_options(name: str, max_samples: int | None, seed: int) -> dict[str, Any]:
    import inspect

    params = inspect.signature(DATASETS[name]).parameters
    takes = {k for k in params} | (
        {"seed", "max_samples"} if any(p.kind is p.VAR_KEYWORD for p in params.values()) else set()
    )
    options: dict[str, Any] = {"seed": seed} if "seed" in takes else {}
    if max_samples is not None and "max_samples" in takes:
        options["max_samples"] = max_samples
    return options
