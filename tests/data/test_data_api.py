"""cartokit.data, the package: every name it exported before the split into split.py,
adapters.py and datasets.py still imports from it, and the label-noise names that moved to
cartokit.noise still work there, with a warning that names the new place."""

from __future__ import annotations

import numpy as np
import pytest

import cartokit.data
import cartokit.noise
from cartokit.data import load_digits

#: What ``from cartokit.data import ...`` gave before the package was split (its __all__, and
#: FASHION_MNIST_CLASSES, public but unlisted).
BEFORE = [
    "DATASETS",
    "FASHION_MNIST_CLASSES",
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


def test_every_name_of_the_old_module_is_still_exported():
    # the old names, plus your own files and hub sets by name (data/files.py, data/sources.py)
    added = {"dataset_source", "from_file", "from_image_folder", "load_files", "load_hub"}
    added |= {"load_source", "read_table"}
    assert sorted(cartokit.data.__all__) == sorted(
        (set(BEFORE) - {"FASHION_MNIST_CLASSES"}) | added
    )
    for name in BEFORE:
        assert getattr(cartokit.data, name) is getattr(cartokit.data, name)  # one object
    assert cartokit.data.Split is cartokit.data.split.Split
    assert cartokit.data.from_hf is cartokit.data.adapters.from_hf
    assert cartokit.data.DATASETS is cartokit.data.datasets.DATASETS


def test_the_registry_holds_the_hub_and_torchvision_names_once_the_package_is_imported():
    assert {"digits", "sentiment", "fashion_mnist", "snli", "ag_news", "cifar100"} <= set(
        cartokit.data.DATASETS
    )


def test_inject_noise_under_cartokit_data_warns_and_forwards():
    with pytest.warns(DeprecationWarning, match=r"use cartokit\.noise\.inject_noise"):
        old = cartokit.data.inject_noise
    assert old is cartokit.noise.inject_noise
    noisy, flipped = old(np.arange(10) % 2, 0.3, seed=0)
    assert int(flipped.sum()) == 3 and np.array_equal(noisy != np.arange(10) % 2, flipped)


def test_add_label_noise_under_cartokit_data_warns_and_gives_the_same_split():
    train = load_digits().train
    with pytest.warns(
        DeprecationWarning,
        match=r"cartokit\.data\.add_label_noise is deprecated; use cartokit\.inject_noise\(split",
    ):
        from cartokit.data import add_label_noise
    assert add_label_noise is cartokit.noise.inject_noise  # the same call, on a Split
    old = add_label_noise(train, 0.1, seed=0)
    new = cartokit.noise.inject_noise(train, 0.1, seed=0)
    np.testing.assert_array_equal(old.labels, new.labels)
    np.testing.assert_array_equal(old.frame["flipped"], new.frame["flipped"])


def test_a_name_that_never_was_is_an_attribute_error():
    with pytest.raises(AttributeError, match=r"module 'cartokit.data' has no attribute 'nope'"):
        cartokit.data.nope  # noqa: B018
