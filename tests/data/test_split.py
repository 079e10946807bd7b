"""cartokit.data.split: a Split refuses to be empty, and splitting, subsampling and bundling
keep ids, order and class balance."""

from __future__ import annotations

import numpy as np
import pytest

from cartokit.data import (
    from_arrays,
    make_bundle,
    split_train_test,
    subsample,
)


def test_empty_dataset_is_refused_before_training() -> None:
    with pytest.raises(ValueError, match="is empty; a data map needs samples"):
        from_arrays(np.empty((0, 3)), np.empty(0, dtype=int), name="nothing")


def test_split_train_test_subsample_and_make_bundle() -> None:
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    split = from_arrays(np.arange(100.0)[:, None], labels, ids=np.arange(100) + 1000, name="toy")
    for seed in range(5):
        train, test = split_train_test(split, test_size=0.2, seed=seed)
        assert np.bincount(test.labels).tolist() == [10, 6, 4]  # stratified
    assert sorted(np.concatenate([train.ids, test.ids]).tolist()) == list(range(1000, 1100))
    assert np.all(np.diff(train.ids) > 0)  # original order kept
    small = subsample(split, 10, seed=0)
    assert np.bincount(small.labels).tolist() == [5, 3, 2] and np.all(np.diff(small.ids) > 0)
    assert subsample(split, 500) is split
    bundle = make_bundle(train, test, ood=subsample(split, 10, seed=1))
    assert bundle.name == "toy" and set(bundle.ood) == {"toy"}
    carved = make_bundle(split, test_size=25, seed=2)
    assert (len(carved.train), len(carved.test)) == (75, 25)
    with pytest.raises(ValueError, match=r"'test_size' parameter of split_train_test.*Got 1.5"):
        split_train_test(split, test_size=1.5)
    other = from_arrays(np.zeros((3, 1)), [0, 1, 2], class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"split 'test' has class names \['a', 'b', 'c'\]"):
        make_bundle(split, other)
