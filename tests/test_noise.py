"""cartokit.noise: symmetric and class-dependent label noise, on labels and on splits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cartokit.data import (
    Split,
    load_dataset,
    load_digits,
)
from cartokit.noise import inject_noise

# ----------------------------------------------------------------------------------------------
# label noise


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 300),
    num_classes=st.integers(2, 12),
    rate=st.floats(0, 1),
    seed=st.integers(0, 2**31),
)
def test_symmetric_noise_flips_exactly_round_rate_n_to_other_classes(
    n: int, num_classes: int, rate: float, seed: int
) -> None:
    labels = np.random.default_rng(seed).integers(0, num_classes, n)
    noisy, flipped = inject_noise(labels, rate, num_classes=num_classes, seed=seed)
    assert flipped.dtype == bool and noisy.dtype == np.int64
    assert int(flipped.sum()) == round(rate * n)
    assert np.all(noisy[flipped] != labels[flipped])
    np.testing.assert_array_equal(noisy[~flipped], labels[~flipped])
    assert n == 0 or (noisy.min() >= 0 and noisy.max() < num_classes)


def test_noise_is_seeded() -> None:
    labels = np.arange(1000) % 7
    first = inject_noise(labels, 0.3, num_classes=7, seed=5)
    again = inject_noise(labels, 0.3, num_classes=7, seed=5)
    other = inject_noise(labels, 0.3, num_classes=7, seed=6)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])
    T = np.full((7, 7), 0.05) + np.eye(7) * 0.65
    a = inject_noise(labels, transition=T, seed=np.random.default_rng(1))
    b = inject_noise(labels, transition=T, seed=np.random.default_rng(1))
    np.testing.assert_array_equal(a[0], b[0])


def test_symmetric_noise_targets_the_other_classes_uniformly() -> None:
    labels = np.arange(40_000) % 4
    noisy, flipped = inject_noise(labels, 1.0, num_classes=4, seed=0)
    assert flipped.all()
    for cls in range(4):
        shares = np.bincount(noisy[labels == cls], minlength=4) / 10_000
        assert shares[cls] == 0
        np.testing.assert_allclose(np.delete(shares, cls), 1 / 3, atol=0.03)


def test_transition_noise_matches_the_matrix_on_a_large_sample() -> None:
    T = np.array([[0.7, 0.3, 0.0], [0.1, 0.8, 0.1], [0.0, 0.0, 1.0]])
    labels = np.arange(90_000) % 3
    noisy, flipped = inject_noise(labels, transition=T, seed=0)
    empirical = np.array([np.bincount(noisy[labels == c], minlength=3) / 30_000 for c in range(3)])
    np.testing.assert_allclose(empirical, T, atol=0.015)
    np.testing.assert_array_equal(flipped, noisy != labels)
    assert not flipped[labels == 2].any()  # a zero-probability move never happens
    identity, none = inject_noise(labels, transition=np.eye(3), seed=0)
    assert not none.any() and np.array_equal(identity, labels)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"transition": np.ones((2, 3)) / 3}, ValueError, r"square \(C, C\) matrix.*\(2, 3\)"),
        ({"transition": [[0.5, 0.5], [1.2, -0.2]]}, ValueError, r">= 0. Got -0.2 at row 1, col"),
        ({"transition": [[0.5, 0.4], [0.0, 1.0]]}, ValueError, r"sum to 1. Row 0 sums to 0.9"),
        ({"transition": [[np.nan, 1.0], [0.0, 1.0]]}, ValueError, r">= 0. Got nan at row 0"),
        ({"transition": np.eye(2), "num_classes": 3}, ValueError, r"must be 3x3 for num_classes"),
        ({"rate": 0.1, "transition": np.eye(3)}, ValueError, r"exactly one of rate=.*Got both"),
        ({}, ValueError, r"exactly one of rate=.*Got neither"),
        ({"rate": 1.5}, ValueError, r"'rate' parameter of inject_noise.*\[0, 1\]. Got 1.5"),
        ({"rate": 0.1, "num_classes": 1}, ValueError, r"'num_classes' parameter.*>= 2"),
        ({"rate": 0.1, "num_classes": 2}, ValueError, r"labels must be in \[0, 2\)"),
    ],
)
def test_noise_input_errors(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        inject_noise(np.array([0, 1, 2, 1]), **kwargs)


def test_inject_noise_on_a_split_records_the_truth_in_the_frame() -> None:
    train = load_dataset("digits").train
    noisy = inject_noise(train, 0.2, seed=3)
    assert isinstance(noisy, Split) and noisy.name == train.name
    assert int(noisy.frame["flipped"].sum()) == round(0.2 * len(train))
    np.testing.assert_array_equal(noisy.frame["clean_label"].to_numpy(), train.labels)
    np.testing.assert_array_equal(noisy.frame["flipped"].to_numpy(), noisy.labels != train.labels)
    assert "flipped" not in train.frame  # the source split is untouched


def test_add_label_noise_is_a_deprecated_alias_of_inject_noise() -> None:
    import cartokit.noise

    train = load_digits().train
    with pytest.warns(DeprecationWarning, match=r"use cartokit\.inject_noise\(split"):
        add_label_noise = cartokit.noise.add_label_noise
    old = add_label_noise(train, 0.2, seed=3)  # the same call as inject_noise on a Split
    new = inject_noise(train, 0.2, seed=3)
    np.testing.assert_array_equal(old.labels, new.labels)
    np.testing.assert_array_equal(old.frame["flipped"], new.frame["flipped"])
