"""Tests for cartokit.regions: the region rule, its thresholds, and region counts."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cartokit.regions import REGIONS, Thresholds, assign_regions, region_counts


def make_metrics(n: int = 50, *, seed: int = 0, n_classes: int = 3, str_ids: bool = False):
    """A metrics table with every column compute_metrics produces, random but seeded."""
    rng = np.random.default_rng(seed)
    confidence = rng.random(n)
    variability = rng.random(n) * 0.5
    learned = rng.random(n) < 0.7
    first = pd.array(np.where(learned, rng.integers(0, 5, n), 0), dtype="Int64")
    first[~learned] = pd.NA
    ids = [f"s{i:03d}" for i in range(n)] if str_ids else np.arange(100, 100 + n)
    return pd.DataFrame(
        {
            "label": rng.integers(0, n_classes, n),
            "confidence": confidence,
            "variability": variability,
            "correctness": rng.random(n),
            "forgetting": rng.integers(0, 4, n),
            "learned_events": rng.integers(0, 4, n),
            "first_learned_epoch": first,
            "never_learned": ~learned,
            "min_prob": confidence * 0.5,
            "max_prob": np.minimum(confidence * 1.5, 1.0),
            "aum": rng.normal(size=n),
            "el2n": rng.random(n),
            "aleatoric": rng.random(n) * 0.25,
            "threshold_closeness": rng.random(n) * 0.25,
            "predicted_label": rng.integers(0, n_classes, n),
        },
        index=pd.Index(ids, name="id"),
    )


def slow_region(confidence: float, variability: float, t: Thresholds) -> str | None:
    """The documented rule, written out literally."""
    if math.isnan(confidence) or math.isnan(variability):
        return None
    if variability >= t.ambiguous_variability:
        return "ambiguous"
    if confidence >= t.easy_confidence:
        return "easy"
    if confidence <= t.hard_confidence:
        return "hard"
    return "ambiguous"


def frame(confidence, variability, **columns) -> pd.DataFrame:
    return pd.DataFrame({"confidence": confidence, "variability": variability, **columns})


# --------------------------------------------------------------------------- the rule


def test_regions_and_defaults():
    assert REGIONS == ("easy", "ambiguous", "hard")
    t = Thresholds()
    assert (t.ambiguous_variability, t.easy_confidence, t.hard_confidence) == (0.2, 0.7, 0.3)


@pytest.mark.parametrize(
    ("confidence", "variability", "expected"),
    [
        (0.9, 0.2, "ambiguous"),  # variability exactly at the cut is ambiguous (>=)
        (0.9, 0.19999, "easy"),
        (0.1, 0.2, "ambiguous"),  # high variability wins over low confidence
        (0.7, 0.1, "easy"),  # confidence exactly at the easy cut is easy (>=)
        (0.69999, 0.1, "ambiguous"),  # steady but middling: consistently unsure
        (0.3, 0.1, "hard"),  # confidence exactly at the hard cut is hard (<=)
        (0.30001, 0.1, "ambiguous"),
        (0.5, 0.0, "ambiguous"),
        (0.0, 0.0, "hard"),
        (1.0, 0.0, "easy"),
        (1.0, 0.5, "ambiguous"),
    ],
)
def test_hand_computed_boundaries(confidence, variability, expected):
    regions = assign_regions(frame([confidence], [variability]))
    assert regions.iloc[0] == expected


def test_custom_thresholds_move_the_cuts():
    metrics = frame([0.6, 0.4, 0.6], [0.1, 0.1, 0.25])
    assert assign_regions(metrics).tolist() == ["ambiguous", "ambiguous", "ambiguous"]
    t = Thresholds(ambiguous_variability=0.3, easy_confidence=0.6, hard_confidence=0.4)
    assert assign_regions(metrics, t).tolist() == ["easy", "hard", "easy"]


def test_equal_cuts_put_the_tie_in_easy():
    t = Thresholds(easy_confidence=0.5, hard_confidence=0.5)
    metrics = frame([0.5, 0.49, 0.51], [0.0, 0.0, 0.0])
    assert assign_regions(metrics, t).tolist() == ["easy", "hard", "easy"]


def test_output_dtype_index_and_name():
    metrics = make_metrics(20, str_ids=True)
    regions = assign_regions(metrics)
    assert isinstance(regions.dtype, pd.CategoricalDtype)
    assert list(regions.cat.categories) == list(REGIONS)
    assert regions.index.equals(metrics.index)
    assert regions.name == "region"


def test_nan_inputs_give_missing_region():
    metrics = frame([0.9, np.nan, 0.1], [0.05, 0.05, np.nan])
    regions = assign_regions(metrics)
    assert regions.iloc[0] == "easy"
    assert regions.isna().tolist() == [False, True, True]


def test_nullable_float_columns_with_na():
    metrics = frame(
        pd.array([0.9, None, 0.1], dtype="Float64"), pd.array([0.05, 0.05, 0.05], dtype="Float64")
    )
    regions = assign_regions(metrics)
    assert regions.iloc[0] == "easy"
    assert pd.isna(regions.iloc[1])
    assert regions.iloc[2] == "hard"


probabilities = st.floats(0, 1) | st.sampled_from([0.2, 0.3, 0.7, math.nan])
spreads = st.floats(0, 0.5) | st.sampled_from([0.2, 0.1, math.nan])


@settings(max_examples=60, deadline=None)
@given(
    points=st.lists(st.tuples(probabilities, spreads), min_size=1, max_size=40),
    cuts=st.tuples(st.floats(0, 0.5), st.floats(0, 1), st.floats(0, 1)),
)
def test_matches_literal_rule(points, cuts):
    variability_cut, a, b = cuts
    t = Thresholds(
        ambiguous_variability=variability_cut, easy_confidence=max(a, b), hard_confidence=min(a, b)
    )
    metrics = frame([p[0] for p in points], [p[1] for p in points])
    got = [None if pd.isna(r) else r for r in assign_regions(metrics, t)]
    assert got == [slow_region(c, v, t) for c, v in points]


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"easy_confidence": 1.5},
            r"^The 'easy_confidence' threshold must be a float in the range \[0, 1\]\. "
            r"Got 1\.5 instead\.$",
        ),
        (
            {"hard_confidence": -0.1},
            r"^The 'hard_confidence' threshold must be a float in the range \[0, 1\]\. "
            r"Got -0\.1 instead\.$",
        ),
        (
            {"ambiguous_variability": 0.6},
            r"^The 'ambiguous_variability' threshold must be a float in the range \[0, 0\.5\]\. "
            r"Got 0\.6 instead\.$",
        ),
        (
            {"ambiguous_variability": math.nan},
            r"The 'ambiguous_variability' threshold .* Got nan instead\.",
        ),
        (
            {"hard_confidence": 0.8},
            r"^hard_confidence \(0\.8\) must not exceed easy_confidence \(0\.7\); "
            r"lower hard_confidence or raise easy_confidence\.$",
        ),
    ],
)
def test_threshold_value_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Thresholds(**kwargs)


@pytest.mark.parametrize("value", ["0.7", True, None, [0.7]])
def test_threshold_type_errors(value):
    with pytest.raises(
        TypeError, match=r"The 'easy_confidence' threshold must be a float .* of type"
    ):
        Thresholds(easy_confidence=value)


def test_numpy_and_int_thresholds_are_accepted():
    Thresholds(ambiguous_variability=np.float32(0.25), easy_confidence=1, hard_confidence=0)


def test_edited_thresholds_are_checked_on_use():
    t = Thresholds()
    t.easy_confidence = 0.9  # a valid edit changes the result
    assert assign_regions(frame([0.8], [0.0]), t).iloc[0] == "ambiguous"
    t.easy_confidence = 0.2  # now below hard_confidence
    with pytest.raises(ValueError, match=r"hard_confidence \(0\.3\) must not exceed"):
        assign_regions(frame([0.8], [0.0]), t)
    with pytest.raises(ValueError, match="must not exceed"):
        t.validate()


def test_missing_columns_are_named():
    with pytest.raises(
        ValueError,
        match=r"assign_regions needs the columns \['confidence', 'variability'\] of the metrics "
        r"table; missing: \['variability'\]\. Available columns: \['confidence', 'label'\]\.",
    ):
        assign_regions(pd.DataFrame({"confidence": [0.5], "label": [1]}))


def test_bad_argument_types():
    with pytest.raises(TypeError, match="must be a pandas DataFrame.*Got dict instead"):
        assign_regions({"confidence": [0.5], "variability": [0.1]})
    with pytest.raises(TypeError, match="must be a Thresholds instance or None. Got dict instead"):
        assign_regions(frame([0.5], [0.1]), {"easy_confidence": 0.6})
    with pytest.raises(TypeError, match="needs a numeric 'confidence' column. Got dtype"):
        assign_regions(frame(["high"], [0.1]))


# --------------------------------------------------------------------------- counts


def test_counts_in_region_order_with_zeros():
    counts = region_counts(frame([0.9, 0.95, 0.5], [0.0, 0.1, 0.1]))
    assert counts.index.tolist() == list(REGIONS)
    assert counts.tolist() == [2, 1, 0]
    assert counts.name == "count"


def test_counts_sum_to_n_minus_nan_rows():
    metrics = make_metrics(200, seed=1)
    metrics.loc[metrics.index[:7], "confidence"] = np.nan
    metrics.loc[metrics.index[5:12], "variability"] = np.nan
    counts = region_counts(metrics)
    assert counts.sum() == 200 - 12
    assert counts.to_dict() == assign_regions(metrics).value_counts().to_dict()


def test_counts_from_series_equal_counts_from_frame():
    metrics = make_metrics(100, seed=2)
    t = Thresholds(ambiguous_variability=0.3, easy_confidence=0.6, hard_confidence=0.2)
    from_frame = region_counts(metrics, t)
    from_series = region_counts(assign_regions(metrics, t))
    from_strings = region_counts(assign_regions(metrics, t).astype(str))
    pd.testing.assert_series_equal(from_frame, from_series)
    pd.testing.assert_series_equal(from_frame, from_strings)
    assert not from_frame.equals(region_counts(metrics))  # thresholds were used


def test_counts_by_label():
    metrics = make_metrics(300, seed=3, n_classes=4)
    metrics.loc[metrics.index[:3], "confidence"] = np.nan
    table = region_counts(metrics, by="label")
    regions = assign_regions(metrics)
    assert table.columns.tolist() == list(REGIONS)
    assert table.index.tolist() == [0, 1, 2, 3]
    assert table.index.name == "label"
    for label in range(4):
        in_class = regions[metrics["label"] == label]
        for region in REGIONS:
            assert table.loc[label, region] == (in_class == region).sum()
    assert table.to_numpy().sum() == 300 - 3
    pd.testing.assert_series_equal(table.sum(axis=0), region_counts(metrics), check_names=False)


def test_counts_by_label_keeps_empty_regions():
    metrics = frame([0.9, 0.95, 0.5], [0.0, 0.1, 0.1], label=[1, 0, 1])
    table = region_counts(metrics, by="label")
    assert table.to_numpy().tolist() == [[1, 0, 0], [1, 1, 0]]


def test_count_errors():
    metrics = make_metrics(10)
    regions = assign_regions(metrics)
    with pytest.raises(ValueError, match="got a region Series together with thresholds"):
        region_counts(regions, Thresholds())
    with pytest.raises(ValueError, match=r"region_counts\(by='label'\) needs the metrics table"):
        region_counts(regions, by="label")
    with pytest.raises(
        ValueError, match=r"The 'by' parameter of region_counts must be a column .* Got 'klass'"
    ):
        region_counts(metrics, by="klass")
    with pytest.raises(ValueError, match=r"region names \['medium'\] that are not in REGIONS"):
        region_counts(pd.Series(["easy", "medium", None]))
    with pytest.raises(TypeError, match="must be a pandas Series .* Got list instead"):
        region_counts(["easy"])
