"""plot_trajectories: one line per sample, gaps where unseen, ids checked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from cartokit import TrainingDynamics
from cartokit.plot import plot_trajectories


def make_dyn() -> TrainingDynamics:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 6, 3))
    dyn = TrainingDynamics.from_logits(
        logits, labels=[0, 1, 2, 0, 1, 2], ids=[10, 11, 12, 13, 14, 15],
        class_names=["ant", "bee", "cow"],
    )  # fmt: skip
    dyn.gold_prob[2, 1] = np.nan  # sample 11 unseen at checkpoint 2
    return dyn


def test_trajectories_one_line_per_id_with_gold_probabilities():
    dyn = make_dyn()
    fig = plot_trajectories(dyn, [11, 15, 11])
    lines = fig.axes[0].lines
    assert len(lines) == 2
    np.testing.assert_array_equal(lines[0].get_ydata(), dyn.gold_prob[:, 1])  # NaN stays: a gap
    np.testing.assert_array_equal(lines[1].get_ydata(), dyn.gold_prob[:, 5])
    np.testing.assert_array_equal(lines[0].get_xdata(), np.arange(5))
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["id 11, label bee", "id 15, label cow"]


def test_trajectories_single_id_and_given_ax():
    fig = Figure()
    ax = fig.add_subplot()
    assert plot_trajectories(make_dyn(), 13, ax=ax) is fig
    assert len(ax.lines) == 1


def test_trajectories_unknown_ids_are_named():
    with pytest.raises(ValueError, match=r"2 of the 3 ids are not in dyn.ids, e.g. \[99, 'x'\]"):
        plot_trajectories(make_dyn(), [10, 99, "x"])
    with pytest.raises(ValueError, match="needs at least one sample id"):
        plot_trajectories(make_dyn(), [])
    with pytest.raises(TypeError, match="must be a TrainingDynamics. Got DataFrame"):
        plot_trajectories(pd.DataFrame({"confidence": [0.5]}), [10])


def test_trajectories_bad_suffix_raises_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="with no suffix; change the file suffix"):
        plot_trajectories(make_dyn(), [10], path=tmp_path / "map")
    assert list(tmp_path.iterdir()) == []
