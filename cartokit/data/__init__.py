"""Datasets as cartokit sees them: splits with sample ids, labels, class names and a way to
show a sample.

Every loader returns a :class:`DataBundle` of :class:`Split` objects (train, test and optional
out-of-distribution splits). A split's rows are addressed by *position* ``0..N-1`` (what the
recorder's ``update(ids, ...)`` takes) and carry the dataset's own ``ids`` for tables and exports.

* :mod:`.split`: :class:`Split`, :class:`DataBundle`, :func:`subsample`,
  :func:`split_train_test`, :func:`make_bundle`.
* :mod:`.adapters`: your own data, :func:`from_arrays`, :func:`from_dataframe`,
  :func:`from_torch`, :func:`from_hf`.
* :mod:`.datasets`: loaders by name (:func:`load_dataset`): ``digits`` (the quick default),
  ``sentiment`` (VADER human-rated snippets: movie reviews in-domain, tweets out-of-domain),
  ``fashion_mnist`` (the Debian package), the Hugging Face hub sets ``snli``, ``mnli``,
  ``qnli``, ``sst2`` and ``ag_news`` (:func:`load_hf` loads any other), and torchvision's
  ``mnist``, ``cifar10`` and ``cifar100``; :func:`register_dataset` adds one.
* :mod:`.files`: your own files, :func:`from_file` (``.csv``, ``.tsv``, ``.jsonl``,
  ``.parquet``), :func:`from_image_folder` (one subfolder per class), :func:`load_files`.
* :mod:`.sources`: a study's ``dataset`` value, a registered name, ``hf:<name>`` or a path,
  loaded by :func:`load_source`.
* :mod:`.indexed`: :class:`~cartokit.data.indexed.IndexedDataset`, a split as a torch
  ``Dataset`` of ``(position, x, label)``.

Label noise: :mod:`cartokit.noise`.

>>> bundle = load_dataset("digits")
>>> bundle.train
Split('digits/train', 1437 samples, 10 classes, kind='image')
>>> bundle.train.show(0).shape
(8, 8)
"""

from __future__ import annotations

from cartokit._deprecation import Moved, moved
from cartokit.data.adapters import PAIR_SEPARATOR, from_arrays, from_dataframe, from_hf, from_torch
from cartokit.data.datasets import (
    DATASETS,
    FASHION_MNIST_DIR,
    HUB_DATASETS,
    SENTIMENT_DOMAINS,
    TORCHVISION_DATASETS,
    load_dataset,
    load_digits,
    load_fashion_mnist,
    load_hf,
    load_sentiment,
    load_torchvision,
    register_dataset,
)
from cartokit.data.datasets import (
    FASHION_MNIST_CLASSES as FASHION_MNIST_CLASSES,  # importable as before, not in __all__
)
from cartokit.data.files import from_file, from_image_folder, load_files, read_table
from cartokit.data.sources import dataset_source, load_hub, load_source
from cartokit.data.split import DataBundle, Split, make_bundle, split_train_test, subsample

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
    "dataset_source",
    "from_dataframe",
    "from_file",
    "from_image_folder",
    "from_hf",
    "from_torch",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_files",
    "load_hf",
    "load_hub",
    "load_sentiment",
    "load_source",
    "load_torchvision",
    "make_bundle",
    "read_table",
    "register_dataset",
    "split_train_test",
    "subsample",
]

#: Names that moved out of cartokit.data: the label-noise API lives in cartokit.noise.
__getattr__ = moved(
    __name__,
    {
        "add_label_noise": Moved(
            "cartokit.noise.inject_noise", use="cartokit.inject_noise(split, ...)"
        ),
        "inject_noise": "cartokit.noise.inject_noise",
    },
)
