"""The explorer's column model without a widget: columns, regions and counts, axes, filter,
down-sampling, selection and the checks of its inputs (pandas and numpy only)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cartokit import REGIONS, Thresholds, assign_regions, region_counts
from cartokit.data import Split
from cartokit.widgets._columns import JITTER, MAX_CATEGORIES, Column, ColumnModel, domain

N = 400
CLASSES = ["ant", "bee", "cow"]


@pytest.fixture(scope="module")
def table():
    """Metrics (ids not positions, one NaN confidence) and a split listing them in another
    order, with a bool, a number, a few-valued text column and a many-valued one."""
    rng = np.random.default_rng(3)
    ids = np.arange(N) * 7 + 2
    metrics = pd.DataFrame(
        {
            "confidence": rng.random(N),
            "variability": rng.random(N) / 2,
            "correctness": rng.integers(0, 5, N) / 4,
            "label": rng.integers(0, 3, N),
            "predicted_label": rng.integers(0, 3, N),
            "label_name": "x",
            "region": "stale",
        },
        index=pd.Index(ids, name="id"),
    )
    metrics.iloc[5, 0] = np.nan  # no region for this one
    order = rng.permutation(N)
    frame = pd.DataFrame(
        {
            "flipped": rng.random(N) < 0.2,
            "human_score": rng.random(N),
            "source": rng.choice(["web", "book", "news"], N),
            "text": [f"sentence {i}" for i in range(N)],
        }
    ).iloc[order]
    split = Split(
        name="toy/train",
        inputs=[f"sentence {i}" for i in ids[order]],
        labels=metrics["label"].to_numpy()[order],
        ids=ids[order],
        class_names=CLASSES,
        kind="text",
        frame=frame.reset_index(drop=True),
    )
    return metrics, split


def test_columns_offered_and_their_values_follow_the_ids(table):
    metrics, split = table
    model = ColumnModel(metrics, data=split)
    assert model.names[0] == "region"
    offered = set(model.names)
    assert {"confidence", "variability", "label", "flipped", "human_score", "source"} <= offered
    # the stale region column, names, and free text with one value per row are not offered
    assert not {"label_name", "predicted_name", "text"} & offered
    assert model.names.count("region") == 1
    assert len(split.frame["text"].unique()) > MAX_CATEGORIES
    by_id = split.frame.set_index(split.ids)
    human = model.column("human_score")
    assert human.categories is None
    np.testing.assert_array_equal(human.values, by_id["human_score"].reindex(metrics.index))
    flipped = model.column("flipped")
    assert flipped.categories == ["False", "True"]
    np.testing.assert_array_equal(flipped.values, by_id["flipped"].reindex(metrics.index))
    source = model.column("source")
    assert source.categories == ["book", "news", "web"]  # sorted, never by appearance
    codes = source.values.astype(int)
    assert [source.categories[c] for c in codes] == by_id["source"].reindex(metrics.index).tolist()
    assert model.column("label").categories == CLASSES  # from the split


def test_regions_and_counts_agree_with_assign_regions(table):
    metrics = table[0]
    model = ColumnModel(metrics, thresholds=Thresholds(0.15, 0.8, 0.2))
    for thresholds in (Thresholds(0.15, 0.8, 0.2), Thresholds(0.3, 0.5, 0.5), Thresholds()):
        model.set_thresholds(thresholds)
        assert model.regions.equals(assign_regions(metrics, thresholds))
        assert model.counts.equals(region_counts(metrics, thresholds))
        by_class = region_counts(metrics, thresholds, by="label")
        assert np.array_equal(model.counts_by_class.to_numpy(), by_class.to_numpy())
        assert model.class_counts[:, 0].sum() == 1  # the NaN confidence: no region
        codes = assign_regions(metrics, thresholds).cat.codes.to_numpy()
        for code, region in enumerate(REGIONS):
            assert np.array_equal(model.region_ids(region), metrics.index[codes == code])
    region = model.column("region")
    assert region.categories == list(REGIONS)
    assert np.isnan(region.values[5]) and np.isfinite(np.delete(region.values, 5)).all()


def test_categorical_axes_are_jittered_the_same_way_for_a_seed(table):
    metrics = table[0].drop(columns="label_name")
    model = ColumnModel(metrics, seed=4)
    x_col, y_col = model.set_axes("label", "confidence")
    x, y = model.xy
    assert x_col.categories == ["0", "1", "2"] and y_col.categories is None
    offset = x - metrics["label"].to_numpy()
    assert 0 < np.abs(offset).max() <= JITTER
    np.testing.assert_array_equal(y, metrics["confidence"].to_numpy())
    again = ColumnModel(metrics, seed=4)
    again.set_axes("label", "confidence")
    np.testing.assert_array_equal(again.xy[0], x)
    other = ColumnModel(metrics, seed=5)
    other.set_axes("label", "confidence")
    assert not np.array_equal(other.xy[0], x)


def test_filter_and_seeded_down_sampling(table):
    metrics = table[0]
    model = ColumnModel(metrics)
    model.set_axes("variability", "confidence")
    model.set_filter()
    assert len(model.shown_ids) == N - 1  # the NaN confidence cannot be placed
    model.set_filter(column="correctness", op="<=", value=0.5, label=2)
    keep = (metrics["correctness"] <= 0.5) & (metrics["label"] == 2) & metrics["confidence"].notna()
    assert np.array_equal(model.shown_ids, metrics.index[keep])
    model.set_filter(max_points=50)
    assert len(model.drawn) == 50 and np.all(np.diff(model.drawn) > 0)
    drawn = set(model.drawn_ids.tolist())
    model.set_filter(column="confidence", value=0.5, max_points=50)
    # narrowing the filter keeps the points that were drawn and are still shown
    assert drawn & set(model.shown_ids.tolist()) <= set(model.drawn_ids.tolist())
    assert model.counts.sum() == N - 1  # counts ignore the filter


def test_colour_values_put_a_missing_category_one_past_the_last(table):
    metrics, split = table
    gappy = metrics.assign(kind=pd.Series(["a", None, "b"] * (N // 3) + ["a"], index=metrics.index))
    model = ColumnModel(gappy, data=split)
    model.set_axes("variability", "confidence")
    model.set_filter()
    colours = model.color_values("kind")
    assert colours.dtype == np.uint8
    kind = gappy["kind"].iloc[model.drawn]
    assert kind.isna().sum() == N // 3
    np.testing.assert_array_equal(colours[kind.isna().to_numpy()], 2.0)
    np.testing.assert_array_equal(colours[(kind == "b").to_numpy()], 1.0)
    np.testing.assert_array_equal(colours[(kind == "a").to_numpy()], 0.0)


def test_selection_is_unique_in_table_order_and_checked(table):
    metrics = table[0]
    model = ColumnModel(metrics)
    chosen = metrics.index[[30, 4, 30, 9]]
    ids = model.selection(list(chosen), caller="X")
    assert ids.tolist() == metrics.index[[4, 9, 30]].tolist()
    assert model.selection(None, caller="X").size == 0
    model.select(ids)
    assert model.selected.sum() == 3 and model.selected[[4, 9, 30]].all()
    with pytest.raises(ValueError, match=r"X.selected_ids: 1 of the 2 ids are not in the metrics"):
        model.selection([metrics.index[0], -1], caller="X")
    with pytest.raises(TypeError, match="'selected_ids' of X must be a sequence of sample ids"):
        model.selection("abc", caller="X")


def test_pick_positions_prefer_the_selection(table):
    metrics = table[0]
    model = ColumnModel(metrics)
    model.set_axes("variability", "confidence")
    model.set_filter()
    assert np.array_equal(model.pick_positions(1000), model.drawn)
    assert len(model.pick_positions(10)) == 10
    model.select(metrics.index[[3, 8]])
    assert model.pick_positions(10).tolist() == [3, 8]


def test_class_index_takes_names_and_indices(table):
    model = ColumnModel(table[0], data=table[1])
    assert model.class_index("cow", caller="X") == 2
    assert model.class_index(np.int64(1), caller="X") == 1
    assert model.class_index(None, caller="X") is None
    for bad in ("cat", 3, True):
        with pytest.raises(ValueError, match=r"'filter_class' of X must be None, a class index"):
            model.class_index(bad, caller="X")


def test_class_names_from_the_label_name_column(table):
    metrics = table[0]
    names = np.array(["zero", "one", "two"], dtype=object)[metrics["label"]]
    model = ColumnModel(metrics.assign(label_name=names))
    assert model.class_names == ["zero", "one", "two"]
    assert ColumnModel(metrics.drop(columns="label_name")).class_names == ["0", "1", "2"]


def test_bad_inputs_are_refused_in_one_line(table):
    metrics, split = table
    with pytest.raises(ValueError, match=r"are not in data.ids, e.g. .* Pass the data the metrics"):
        ColumnModel(metrics, data=split.subset(np.arange(10)))
    with pytest.raises(TypeError, match="'dynamics' parameter of M must have sample ids"):
        ColumnModel(metrics, dynamics=object(), caller="M")
    with pytest.raises(TypeError, match="integer class indices in the 'label' column"):
        ColumnModel(metrics.assign(label=metrics["label"] + 0.5))
    with pytest.raises(ValueError, match="labels must be >= 0. Got -1"):
        ColumnModel(metrics.assign(label=metrics["label"] - 1))
    with pytest.raises(ValueError, match=r"M: labels go up to 2, but only 2 class names"):
        ColumnModel(metrics, dynamics=_Named(["a", "b"]), caller="M")
    with pytest.raises(ValueError, match="repeats ids"):
        ColumnModel(pd.concat([metrics.iloc[:3], metrics.iloc[:1]]))
    with pytest.raises(ValueError, match="empty metrics table"):
        ColumnModel(metrics.iloc[:0])
    with pytest.raises(ValueError, match="The 'seed' parameter of M must be an int >= 0"):
        ColumnModel(metrics, seed=-1, caller="M")
    with pytest.raises(TypeError, match="'thresholds' parameter of M must be a Thresholds"):
        ColumnModel(metrics, thresholds=(0.2, 0.7, 0.3), caller="M")


class _Named:
    """A stand-in for dynamics: ids and class names only."""

    def __init__(self, class_names):
        self.class_names = class_names
        self.ids = np.arange(N) * 7 + 2


def test_domain_pads_numbers_and_centres_categories():
    assert domain(np.array([2.0, 4.0, np.nan]), Column(np.zeros(3))) == pytest.approx((1.92, 4.08))
    assert domain(np.array([3.0, 3.0]), Column(np.zeros(2))) == (2.5, 3.5)
    assert domain(np.array([np.nan]), Column(np.zeros(1))) == (0.0, 1.0)
    assert domain(np.zeros(4), Column(np.zeros(4), ["a", "b"])) == (-0.5, 1.5)
