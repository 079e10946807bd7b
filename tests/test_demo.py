"""`make demo`'s job, at a small size: files written, counts consistent, flips found."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cartokit import REGIONS, TrainingDynamics
from cartokit.demo import run_demo


def test_demo_writes_dynamics_metrics_and_map(tmp_path):
    summary = run_demo(tmp_path / "demo", epochs=6, noise=0.1, seed=0, verbose=False)
    out = tmp_path / "demo"
    metrics = pd.read_csv(out / "metrics.csv", index_col="id")
    dyn = TrainingDynamics.load(out / "dynamics.npz")
    assert (out / "data_map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert dyn.num_epochs == 6 and dyn.num_samples == len(metrics) == summary["samples"]
    assert sum(summary["regions"].values()) == len(metrics)
    assert set(summary["regions"]) == set(REGIONS)
    assert metrics["region"].value_counts().to_dict() == {
        k: v for k, v in summary["regions"].items() if v
    }
    # The flipped labels are what the map should expose: far lower confidence than the rest.
    flipped = metrics["flipped"].to_numpy()
    assert flipped.sum() == summary["flipped"] > 0
    assert (
        metrics.loc[flipped, "confidence"].mean() < 0.5 * metrics.loc[~flipped, "confidence"].mean()
    )
    assert summary["test_accuracy"] > 0.8


def test_demo_is_deterministic_for_a_seed(tmp_path):
    a = run_demo(tmp_path / "a", epochs=3, seed=1, verbose=False)
    b = run_demo(tmp_path / "b", epochs=3, seed=1, verbose=False)
    da = TrainingDynamics.load(tmp_path / "a" / "dynamics.npz")
    db = TrainingDynamics.load(tmp_path / "b" / "dynamics.npz")
    np.testing.assert_array_equal(da.gold_prob, db.gold_prob)
    assert a["regions"] == b["regions"]
