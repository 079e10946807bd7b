"""Fixtures of the tests of cartokit.train: one torch thread, the digits, a small split."""

from __future__ import annotations

import pytest
import torch

from cartokit.data import load_dataset


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny models run fastest, and most reproducibly, on one thread; restore it afterwards.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def small(digits):
    """200 training digits: 7 steps of 32 per epoch."""
    return digits.train.subset(range(200), name="digits/small")
