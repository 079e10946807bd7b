"""cartokit.plot.study: the figures of a study (accuracy per subset and against a fraction,
example images)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from cartokit import study
from cartokit.data import Split, load_digits
from cartokit.plot.study import plot_examples, plot_fraction_curve, plot_results


def fake_results(subsets: tuple[str, ...]) -> pd.DataFrame:
    """Rows of retrain: accuracy falls with each subset on test, rises on rotated; 2 seeds."""
    rows = []
    for i, name in enumerate(subsets):
        selector, _, pct = name.rpartition(" ")
        for seed in (0, 1):
            for split, base in (("test", 0.9 - 0.1 * i), ("rotated", 0.5 + 0.05 * i)):
                rows.append(
                    {
                        "subset": name,
                        "selector": selector,
                        "fraction": float(pct[:-1]) / 100,
                        "size": 100,
                        "seed": seed,
                        "split": split,
                        "accuracy": base + 0.01 * seed,
                    }
                )
    return pd.DataFrame(rows)


def test_result_figures(tmp_path):
    results = fake_results(("full 100%", "ambiguous 10%", "ambiguous 33%", "random 33%"))
    bars = plot_results(results, path=tmp_path / "bars.png")
    assert isinstance(bars, Figure) and (tmp_path / "bars.png").read_bytes()[:4] == b"\x89PNG"
    curve = plot_fraction_curve(results, path=tmp_path / "curve.png")
    line = curve.axes[0].get_lines()[0]
    assert line.get_xdata().tolist() == [10.0, 33.0]  # ambiguous: the most fractions
    assert plot_fraction_curve(results, selector="hard") is None


def test_bars_are_the_mean_over_seeds_of_each_subset_and_split():
    results = fake_results(("full 100%", "random 33%"))
    bars = [p.get_height() for p in plot_results(results).axes[0].patches]
    table = study.results_table(results)
    expected = [*(100 * table["test mean"]), *(100 * table["rotated mean"])]
    np.testing.assert_allclose(bars, expected)


def test_the_fraction_curve_draws_the_full_data_as_a_dashed_line():
    results = fake_results(("full 100%", "ambiguous 10%", "ambiguous 33%"))
    ax = plot_fraction_curve(results).axes[0]
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert [line.get_ydata()[0] for line in dashed] == pytest.approx([90.5, 50.5])
    assert study.FULL == "full"  # the curve's default reference
    ax = plot_fraction_curve(results, reference="random").axes[0]
    assert not [line for line in ax.get_lines() if line.get_linestyle() == "--"]


def test_plot_examples_shows_the_label_a_flip_replaced():
    train = load_digits().train
    frame = train.frame.assign(clean_label=(train.labels + 1) % 10)
    flipped = Split(
        train.name, train.inputs, train.labels, train.ids, train.class_names, "image",
        frame=frame, image_shape=train.image_shape,
    )  # fmt: skip
    fig = plot_examples(flipped, train.ids[:3], title="three")
    assert len(fig.axes) == 3 and fig.get_suptitle() == "three"
    first = train.labels[0]
    assert fig.axes[0].get_title() == f"id {train.ids[0]}\nlabel {first} (was {(first + 1) % 10})"
    with pytest.raises(ValueError, match=r"plot_examples: 1 of the 1 ids are not in"):
        plot_examples(train, [10**9])
    texts = Split("t", ["good"], [1], None, ["neg", "pos"], "text")
    with pytest.raises(TypeError, match=r"plot_examples: 't' holds text data, not images"):
        plot_examples(texts, [0])
