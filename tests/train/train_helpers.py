"""Shared by the tests of cartokit.train: comparing two runs' dynamics, a quick fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cartokit import TrainingDynamics
from cartokit.models import MLP
from cartokit.train import fit

STATS = ("gold_prob", "margin", "sq_error", "pred")
REPO = Path(__file__).resolve().parents[2]


def assert_same_dynamics(got: TrainingDynamics, want: TrainingDynamics, atol: float = 0.0):
    assert got.num_epochs == want.num_epochs
    np.testing.assert_array_equal(got.labels, want.labels)
    for key in STATS:
        if atol and key != "pred":
            np.testing.assert_allclose(getattr(got, key), getattr(want, key), atol=atol)
        else:
            np.testing.assert_array_equal(getattr(got, key), getattr(want, key))


def quick_fit(split, **options):
    options = {"epochs": 3, "batch_size": 32, "progress": False, **options}
    model = options.pop("model", None) or MLP(64, 10, hidden=(32,), seed=0)
    return fit(model, split, **options)
