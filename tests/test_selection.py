"""Tests for cartokit.selection: ranked, regional, balanced, random and mixed subsets."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cartokit.regions import REGIONS, Thresholds, assign_regions
from cartokit.selection import (
    RANDOM,
    SELECTORS,
    parse_mixture,
    select,
    select_mixture,
    selection_mask,
    subset,
)


def make_metrics(
    n: int = 60, *, seed: int = 0, n_classes: int = 3, str_ids: bool = False, ties: bool = False
) -> pd.DataFrame:
    """A metrics table with every column compute_metrics produces, random but seeded.

    ``ties=True`` rounds the float columns to one decimal so that many values tie.
    """
    rng = np.random.default_rng(seed)

    def floats(scale: float = 1.0) -> np.ndarray:
        values = rng.random(n) * scale
        return np.round(values, 1) if ties else values

    confidence = floats()
    learned = rng.random(n) < 0.7
    first = pd.array(np.where(learned, rng.integers(0, 5, n), 0), dtype="Int64")
    first[~learned] = pd.NA
    ids = [f"s{i:03d}" for i in range(n)] if str_ids else np.arange(1000, 1000 + n)
    return pd.DataFrame(
        {
            "label": rng.integers(0, n_classes, n),
            "label_name": [f"class{c}" for c in rng.integers(0, n_classes, n)],
            "confidence": confidence,
            "variability": floats(0.5),
            "correctness": floats(),
            "forgetting": rng.integers(0, 4, n),
            "learned_events": rng.integers(0, 4, n),
            "first_learned_epoch": first,
            "never_learned": ~learned,
            "min_prob": confidence * 0.5,
            "max_prob": np.minimum(confidence * 1.5, 1.0),
            "aum": np.round(rng.normal(size=n), 1) if ties else rng.normal(size=n),
            "el2n": floats(),
            "aleatoric": floats(0.25),
            "threshold_closeness": floats(0.25),
            "predicted_label": rng.integers(0, n_classes, n),
        },
        index=pd.Index(ids, name="id"),
    )


def expected_size(fraction: float, n: int) -> int:
    return int(np.floor(fraction * n + 0.5))


def slow_top(metrics: pd.DataFrame, column: str, k: int, *, highest: bool) -> list:
    """Literal reference: sort (is NaN, signed value, table position); take the first k.

    By forgetting, a never-learned sample sorts as more forgettable than any learned one
    (Toneva et al., 2019): first when highest first, after every learned sample otherwise.
    """
    never = (
        metrics["never_learned"].tolist()
        if column == "forgetting" and "never_learned" in metrics.columns
        else [False] * len(metrics)
    )
    rows = []
    for position, (sample_id, value) in enumerate(metrics[column].items()):
        if never[position]:
            rows.append((False, 0 if highest else 2, 0.0, position, sample_id))
            continue
        missing = pd.isna(value)
        key = 0.0 if missing else (-float(value) if highest else float(value))
        rows.append((missing, 1, key, position, sample_id))
    return [row[-1] for row in sorted(rows)[:k]]


# --------------------------------------------------------------------------- sizes and ranking


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 300), fraction=st.floats(0, 1, exclude_min=True))
def test_size_is_round_half_up_of_fraction_times_n(n, fraction):
    metrics = make_metrics(n, seed=n)
    k = expected_size(fraction, n)
    if k == 0:
        with pytest.raises(ValueError, match="too small"):
            select(metrics, "ambiguous", fraction)
        return
    for by in ("ambiguous", RANDOM):
        ids = select(metrics, by, fraction)
        assert len(ids) == k
        assert len(set(ids.tolist())) == k
        assert set(ids.tolist()) <= set(metrics.index)


def test_half_rounds_up_not_to_even():
    metrics = make_metrics(10)
    assert len(select(metrics, "easy", 0.25)) == 3  # 2.5 -> 3 (Python's round gives 2)
    assert len(select(metrics, "easy", 0.35)) == 4  # 3.5 -> 4
    assert len(select(make_metrics(2), "easy", 0.25)) == 1  # 0.5 -> 1
    assert len(select(metrics, "easy", 1)) == 10


@pytest.mark.parametrize("name", sorted(SELECTORS))
@pytest.mark.parametrize("ties", [False, True])
def test_named_selectors_match_slow_reference(name, ties):
    metrics = make_metrics(80, seed=4, ties=ties)
    metrics.loc[metrics.index[[3, 40]], SELECTORS[name][0]] = np.nan
    column, highest = SELECTORS[name]
    for fraction in (0.1, 0.33, 1.0):
        k = expected_size(fraction, 80)
        got = select(metrics, name, fraction).tolist()
        assert got == slow_top(metrics, column, k, highest=highest)


def test_paper_selectors():
    assert SELECTORS["ambiguous"] == ("variability", True)
    assert SELECTORS["easy"] == ("confidence", True)
    assert SELECTORS["hard"] == ("confidence", False)
    metrics = make_metrics(100, seed=5)
    ambiguous = select(metrics, "ambiguous", 0.33)
    threshold = metrics["variability"].sort_values().iloc[-33]
    assert (metrics.loc[ambiguous, "variability"] >= threshold).all()
    hard = select(metrics, "hard", 0.1)
    assert metrics.loc[hard, "confidence"].max() <= metrics["confidence"].drop(hard).min()


@pytest.mark.parametrize("column", ["aum", "forgetting", "first_learned_epoch", "never_learned"])
@pytest.mark.parametrize("lowest", [None, False, True])
def test_any_numeric_column(column, lowest):
    metrics = make_metrics(70, seed=6, ties=True)
    got = select(metrics, column, 0.4, lowest=lowest).tolist()
    assert got == slow_top(metrics, column, 28, highest=not lowest)


def test_lowest_overrides_named_direction():
    metrics = make_metrics(50, seed=7)
    assert (
        select(metrics, "hard", 0.2, lowest=False).tolist() == select(metrics, "easy", 0.2).tolist()
    )
    assert (
        select(metrics, "easy", 0.2, lowest=True).tolist() == select(metrics, "hard", 0.2).tolist()
    )
    assert (
        select(metrics, "hard", 0.2, lowest=True).tolist() == select(metrics, "hard", 0.2).tolist()
    )


def test_nan_ranks_last_in_both_directions():
    metrics = pd.DataFrame({"aum": [np.nan, 1.0, -1.0, np.nan, 0.0]}, index=list("abcde"))
    assert select(metrics, "aum", 1.0).tolist() == ["b", "e", "c", "a", "d"]
    assert select(metrics, "aum", 1.0, lowest=True).tolist() == ["c", "e", "b", "a", "d"]
    assert select(metrics, "aum", 0.8).tolist() == ["b", "e", "c", "a"]
    assert select(metrics, "aum", 0.6, lowest=True).tolist() == ["c", "e", "b"]


def test_ties_keep_table_order():
    metrics = pd.DataFrame({"aum": [0.5, 1.0, 0.5, 1.0, 0.5]}, index=[9, 8, 7, 6, 5])
    assert select(metrics, "aum", 1.0).tolist() == [8, 6, 9, 7, 5]
    assert select(metrics, "aum", 1.0, lowest=True).tolist() == [9, 7, 5, 8, 6]


def test_string_ids_come_back_as_ids():
    metrics = make_metrics(30, str_ids=True)
    ids = select(metrics, "easy", 0.1)
    assert ids.tolist() == metrics["confidence"].nlargest(3).index.tolist()


# --------------------------------------------------------------------------- random


def test_random_is_deterministic_per_seed():
    metrics = make_metrics(200, seed=8)
    first = select(metrics, RANDOM, 0.3, seed=11)
    assert first.tolist() == select(metrics, RANDOM, 0.3, seed=11).tolist()
    assert set(first.tolist()) != set(select(metrics, RANDOM, 0.3, seed=12).tolist())
    assert len(set(first.tolist())) == 60
    # not just the head of the table
    assert set(first.tolist()) != set(metrics.index[:60])


# --------------------------------------------------------------------------- forgetting


def forgetting_table() -> pd.DataFrame:
    # ids 12 and 14 were never learned: no forgetting event, yet the most forgettable
    return pd.DataFrame(
        {
            "forgetting": [0, 3, 0, 1, 0, 2],
            "never_learned": [False, False, True, False, True, False],
            "label": [0, 0, 0, 1, 1, 1],
        },
        index=pd.Index([10, 11, 12, 13, 14, 15], name="id"),
    )


def test_never_learned_are_the_most_forgettable():
    metrics = forgetting_table()
    # the count alone would give [11, 15, 13] and [10, 12, 14]
    assert select(metrics, "high_forgetting", 0.5).tolist() == [12, 14, 11]
    assert select(metrics, "low_forgetting", 0.5).tolist() == [10, 13, 15]
    assert select(metrics, "low_forgetting", 5 / 6).tolist() == [10, 13, 15, 11, 12]
    assert select(metrics, "low_forgetting", 1.0).tolist() == [10, 13, 15, 11, 12, 14]
    # the column name ranks as high_forgetting does; lowest=True as low_forgetting does
    assert select(metrics, "forgetting", 0.5).tolist() == [12, 14, 11]
    assert select(metrics, "high_forgetting", 0.5, lowest=True).tolist() == [10, 13, 15]


def test_never_learned_rule_holds_balanced_in_regions_and_mixtures():
    metrics = forgetting_table()
    # class 0 holds 10, 11, 12 and class 1 holds 13, 14, 15: two of each
    assert select(metrics, "high_forgetting", 4 / 6, balanced=True).tolist() == [12, 14, 11, 15]
    assert select(metrics, "low_forgetting", 4 / 6, balanced=True).tolist() == [10, 13, 15, 11]
    assert select_mixture(
        metrics, {"high_forgetting": 1 / 6, "low_forgetting": 2 / 6}
    ).tolist() == [
        12,
        10,
        13,
    ]
    metrics["confidence"] = [0.9, 0.5, 0.1, 0.5, 0.1, 0.5]
    metrics["variability"] = [0.0, 0.3, 0.0, 0.3, 0.0, 0.3]
    # ambiguous region: 11, 13, 15; hard region: 12, 14
    assert select(metrics, "low_forgetting", 2 / 6, region="ambiguous").tolist() == [13, 15]
    assert select(metrics, "high_forgetting", 1 / 6, region="hard").tolist() == [12]
    assert select_mixture(metrics, "50% high_forgetting in ambiguous").tolist() == [11, 15, 13]


def test_forgetting_without_never_learned_ranks_the_count_alone():
    metrics = forgetting_table().drop(columns="never_learned")
    assert select(metrics, "high_forgetting", 0.5).tolist() == [11, 15, 13]
    assert select(metrics, "low_forgetting", 0.5).tolist() == [10, 12, 14]
    # allenai's code writes 1000 for a never-learned sample, which then ranks first as it stands
    metrics.loc[[12, 14], "forgetting"] = 1000
    assert select(metrics, "high_forgetting", 0.5).tolist() == [12, 14, 11]


@pytest.mark.parametrize(
    "column",
    [
        [True, None, False, True, False, False],
        ["yes", "no", "no", "no", "no", "no"],
        [0, 2, 0, 1, 0, 0],
    ],
)
def test_never_learned_that_is_not_true_or_false_is_refused(column):
    metrics = forgetting_table()
    metrics["never_learned"] = column
    with pytest.raises(ValueError, match=r"^The 'never_learned' column .* True or False .*\.$"):
        select(metrics, "high_forgetting", 0.5)
    # other rankings do not read the column
    assert select(metrics, "random", 0.5).size == 3


def test_never_learned_read_back_from_csv(tmp_path):
    path = tmp_path / "m.csv"
    forgetting_table().to_csv(path)
    metrics = pd.read_csv(path, index_col="id")
    assert select(metrics, "high_forgetting", 0.5).tolist() == [12, 14, 11]


# --------------------------------------------------------------------------- balanced


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(2, 200),
    fraction=st.floats(0.01, 1),
    n_classes=st.integers(1, 6),
    by=st.sampled_from(["ambiguous", "hard", RANDOM]),
)
def test_balanced_keeps_class_proportions_and_exact_total(n, fraction, n_classes, by):
    metrics = make_metrics(n, seed=n + n_classes, n_classes=n_classes)
    k = expected_size(fraction, n)
    if k == 0:
        return
    ids = select(metrics, by, fraction, balanced=True)
    assert len(ids) == k
    assert len(set(ids.tolist())) == k
    chosen = metrics.loc[ids, "label"].value_counts()
    for label, count in metrics["label"].value_counts().items():
        assert abs(chosen.get(label, 0) - k * count / n) < 1
    if by != RANDOM:
        column, highest = SELECTORS[by]
        for _label, group in metrics.groupby("label"):
            picked = [i for i in ids.tolist() if i in set(group.index)]
            assert picked == slow_top(group, column, len(picked), highest=highest)


def test_balanced_differs_from_plain_on_skewed_data():
    # class 1 holds every high-variability sample; balanced must still take class 0
    metrics = pd.DataFrame(
        {"variability": [0.01, 0.02, 0.03, 0.04, 0.4, 0.41, 0.42, 0.43], "label": [0] * 4 + [1] * 4}
    )
    assert select(metrics, "ambiguous", 0.5).tolist() == [7, 6, 5, 4]
    assert select(metrics, "ambiguous", 0.5, balanced=True).tolist() == [7, 6, 3, 2]


def test_balanced_largest_remainder_total():
    # 3 classes of 2 and k = 4: quotas 4/3 each -> 2, 1, 1 (remainder tie to the first class)
    metrics = pd.DataFrame({"aum": np.arange(6.0), "label": [0, 0, 1, 1, 2, 2]})
    ids = select(metrics, "aum", 4 / 6, balanced=True)
    assert metrics.loc[ids, "label"].value_counts().sort_index().tolist() == [2, 1, 1]


# --------------------------------------------------------------------------- regions


def test_region_restricts_candidates_and_ranks_within():
    metrics = make_metrics(300, seed=9)
    regions = assign_regions(metrics)
    n_ambiguous = int((regions == "ambiguous").sum())
    ids = select(metrics, "low_aum", 0.1, region="ambiguous")
    assert len(ids) == 30 and n_ambiguous >= 30
    assert (regions[ids] == "ambiguous").all()
    assert ids.tolist() == slow_top(metrics[regions == "ambiguous"], "aum", 30, highest=False)


def test_region_with_fraction_none_takes_the_whole_region():
    metrics = make_metrics(120, seed=10)
    t = Thresholds(easy_confidence=0.8)
    regions = assign_regions(metrics, t)
    ids = select(metrics, "hard", None, region="easy", thresholds=t)
    assert sorted(ids.tolist()) == sorted(regions.index[regions == "easy"].tolist())
    assert ids.tolist() == slow_top(
        metrics[regions == "easy"], "confidence", len(ids), highest=False
    )


def test_region_with_too_few_samples():
    metrics = pd.DataFrame({"confidence": [0.9, 0.1, 0.5, 0.5], "variability": [0.0] * 4})
    with pytest.raises(
        ValueError,
        match=r"^The 'hard' region holds 1 samples, fewer than the 2 that fraction=0\.5 of 4 "
        r"asks for\. Lower fraction, pass fraction=None",
    ):
        select(metrics, "random", 0.5, region="hard")
    empty = Thresholds(hard_confidence=0.05)
    with pytest.raises(ValueError, match=r"^The 'hard' region is empty under Thresholds\("):
        select(metrics, "random", None, region="hard", thresholds=empty)


# --------------------------------------------------------------------------- select errors


@pytest.mark.parametrize("fraction", [1.5, 0, 0.0, -0.1, math.nan])
def test_fraction_out_of_range(fraction):
    with pytest.raises(
        ValueError,
        match=rf"^The 'fraction' parameter of select must be a float in the range \(0, 1\]\. "
        rf"Got {fraction!r} instead\.$",
    ):
        select(make_metrics(10), "easy", fraction)


@pytest.mark.parametrize("fraction", [True, "0.3", [0.3]])
def test_fraction_of_wrong_type(fraction):
    with pytest.raises(TypeError, match=r"^The 'fraction' parameter of select must be a float"):
        select(make_metrics(10), "easy", fraction)


def test_fraction_none_needs_region():
    with pytest.raises(ValueError, match="may be None only together with region="):
        select(make_metrics(10), "easy", None)


@pytest.mark.parametrize("n", [3, 6, 7, 100, 999])
def test_fraction_too_small_names_the_smallest_that_works(n):
    metrics = make_metrics(n)
    with pytest.raises(ValueError, match="too small") as info:
        select(metrics, "easy", 0.4 / n)
    smallest = float(str(info.value).split("at least ")[1].split(" to select")[0])
    assert len(select(metrics, "easy", smallest)) == 1
    assert smallest <= 0.5 / n * 1.01


def test_fraction_too_small_message():
    with pytest.raises(
        ValueError,
        match=r"^The 'fraction' parameter of select is too small: 0\.001 of 100 samples rounds "
        r"to 0\. Use a fraction of at least 0\.005 to select one sample\.$",
    ):
        select(make_metrics(100), "easy", 0.001)


def test_unknown_selector_lists_choices():
    with pytest.raises(
        ValueError,
        match=r"^The 'by' parameter of select must be a selector name or a numeric column of "
        r"the metrics table\. Got 'ambigous' instead\. Selectors: \['ambiguous', 'easy', .*"
        r"'random'\]; numeric columns: \['label', 'confidence', .*\]\. "
        r"Did you mean 'ambiguous'\?$",
    ):
        select(make_metrics(10), "ambigous")


def test_non_numeric_column():
    with pytest.raises(
        ValueError, match=r"^The column 'label_name' cannot rank samples: its dtype"
    ):
        select(make_metrics(10), "label_name")


def test_selector_column_missing():
    metrics = make_metrics(10).drop(columns="aum")
    with pytest.raises(
        ValueError, match=r"^The selector 'low_aum' ranks by the 'aum' column, which the metrics"
    ):
        select(metrics, "low_aum")


def test_unknown_region():
    with pytest.raises(
        ValueError,
        match=r"^The 'region' parameter of select must be one of \['easy', 'ambiguous', "
        r"'hard'\] or None\. Got 'medium' instead\.$",
    ):
        select(make_metrics(10), "easy", region="medium")


def test_thresholds_without_region_do_not_change_the_ranking():
    # the CLI passes its thresholds along every time; they only matter with region=
    metrics = make_metrics(40, seed=15)
    t = Thresholds(easy_confidence=0.95, hard_confidence=0.9)
    assert (
        select(metrics, "easy", 0.3, thresholds=t).tolist() == select(metrics, "easy", 0.3).tolist()
    )
    mixed = select_mixture(metrics, "10% ambiguous + 10% hard", thresholds=t)
    assert mixed.tolist() == select_mixture(metrics, "10% ambiguous + 10% hard").tolist()


def test_other_argument_errors():
    metrics = make_metrics(10)
    with pytest.raises(TypeError, match="'thresholds' parameter of select must be a Thresholds"):
        select(metrics, "easy", region="easy", thresholds={"easy_confidence": 0.5})
    with pytest.raises(ValueError, match="'lowest' parameter has no meaning with by='random'"):
        select(metrics, RANDOM, lowest=True)
    with pytest.raises(
        TypeError, match=r"'lowest' parameter of select must be a bool, or None\. Got 'yes' of type"
    ):
        select(metrics, "easy", lowest="yes")
    with pytest.raises(TypeError, match="'balanced' parameter of select must be a bool"):
        select(metrics, "easy", balanced=1)
    with pytest.raises(
        TypeError, match=r"'seed' parameter of select must be an int >= 0, or None\. Got 1\.5 of"
    ):
        select(metrics, RANDOM, seed=1.5)
    with pytest.raises(TypeError, match="'by' parameter of select must be a selector name"):
        select(metrics, 3)
    with pytest.raises(TypeError, match="must be a pandas DataFrame"):
        select(metrics.to_numpy(), "easy")
    with pytest.raises(ValueError, match=r"select\(balanced=True\) needs the 'label' column"):
        select(metrics.drop(columns="label"), "easy", balanced=True)
    with pytest.raises(ValueError, match=r"select needs unique sample ids, but the index repeats"):
        select(metrics.set_axis([1, 1] + list(range(8))), "easy")
    with pytest.raises(ValueError, match="The metrics table is empty"):
        select(metrics.iloc[:0], "easy")


# --------------------------------------------------------------------------- mixtures


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("17% ambiguous + 10% easy", {"ambiguous": 0.17, "easy": 0.1}),
        ("0.17 ambiguous + 0.1 easy", {"ambiguous": 0.17, "easy": 0.1}),
        ("17 % ambiguous+10%easy", {"ambiguous": 0.17, "easy": 0.1}),
        (".5 low_aum", {"low_aum": 0.5}),
        ("100% random", {"random": 1.0}),
        ("5% random  in   hard + 1 aum", {"random in hard": 0.05, "aum": 1.0}),
    ],
)
def test_parse_mixture_forms(text, expected):
    assert parse_mixture(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", r"^Could not parse the mixture piece 'abc' of 'abc'\. Each piece must read"),
        ("17% ambiguous + ", r"^Could not parse the mixture piece '' of '17% ambiguous \+ '"),
        ("", r"^Could not parse the mixture piece ''"),
        ("17% ambiguous, 10% easy", r"piece '17% ambiguous, 10% easy'"),
        ("-5% easy", r"piece '-5% easy'"),
        (
            "17 ambiguous",
            r"^The mixture piece '17 ambiguous' must have a fraction in the range \(0, 1\]\. "
            r"Got 17\.0 instead\. For a percentage write '17% ambiguous'\.$",
        ),
        ("0% easy", r"^The mixture piece '0% easy' must have a fraction in the range"),
        ("150% easy", r"Got 1\.5 instead\.$"),
        ("10% easy + 5% easy", r"^The mixture '10% easy \+ 5% easy' names 'easy' twice"),
    ],
)
def test_parse_mixture_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_mixture(text)


def test_parse_mixture_type_error():
    with pytest.raises(TypeError, match="must be a str. Got dict instead"):
        parse_mixture({"easy": 0.1})


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(20, 200),
    first=st.floats(0.05, 0.55),
    second=st.floats(0.05, 0.4),
    balanced=st.booleans(),
)
def test_mixture_is_disjoint_with_exact_total(n, first, second, balanced):
    metrics = make_metrics(n, seed=n)
    parts = {"ambiguous": first, "easy": second, "random": 0.05}
    sizes = [expected_size(f, n) for f in parts.values()]
    if sum(sizes) > n:  # three round-ups can overshoot by one
        with pytest.raises(ValueError, match="more than the"):
            select_mixture(metrics, parts, balanced=balanced, seed=3)
        return
    ids = select_mixture(metrics, parts, balanced=balanced, seed=3)
    assert len(ids) == sum(sizes)
    assert len(set(ids.tolist())) == len(ids)
    head = ids[: sizes[0]].tolist()
    assert head == select(metrics, "ambiguous", first, balanced=balanced).tolist()
    easy_part = ids[sizes[0] : sizes[0] + sizes[1]].tolist()
    rest = metrics.drop(index=head)
    if balanced:
        assert sorted(metrics.loc[easy_part, "label"].value_counts().tolist()) == sorted(
            metrics.loc[select(rest, "easy", sizes[1] / len(rest), balanced=True), "label"]
            .value_counts()
            .tolist()
        )
    else:
        assert easy_part == slow_top(rest, "confidence", sizes[1], highest=True)


def test_mixture_later_part_takes_its_next_best():
    metrics = pd.DataFrame(
        {"confidence": [0.9, 0.8, 0.7, 0.1], "variability": [0.4, 0.3, 0.0, 0.1]},
        index=list("abcd"),
    )
    # ambiguous takes a and b, so easy skips them and takes c
    assert select_mixture(metrics, {"ambiguous": 0.5, "easy": 0.25}).tolist() == ["a", "b", "c"]
    assert select_mixture(metrics, "50% ambiguous + 25% easy").tolist() == ["a", "b", "c"]
    assert select_mixture(metrics, "25% easy + 50% ambiguous").tolist() == ["a", "b", "d"]


def test_mixture_matches_text_and_mapping():
    metrics = make_metrics(150, seed=12)
    a = select_mixture(metrics, "17% ambiguous + 10% easy")
    b = select_mixture(metrics, {"ambiguous": 0.17, "easy": 0.10})
    assert a.tolist() == b.tolist()
    assert len(a) == 26 + 15


def test_mixture_region_part_and_thresholds():
    metrics = make_metrics(200, seed=13)
    t = Thresholds(easy_confidence=0.6)
    ids = select_mixture(metrics, "10% ambiguous + 10% random in easy", thresholds=t, seed=1)
    regions = assign_regions(metrics, t)
    assert (regions[ids[20:]] == "easy").all()
    again = select_mixture(metrics, "10% ambiguous + 10% random in easy", thresholds=t, seed=1)
    assert ids.tolist() == again.tolist()


def test_mixture_errors():
    metrics = make_metrics(20)
    with pytest.raises(
        ValueError,
        match=r"^The fractions of select_mixture must sum to at most 1\. "
        r"Got 0\.6 \+ 0\.5 = 1\.1 instead\.$",
    ):
        select_mixture(metrics, {"ambiguous": 0.6, "easy": 0.5})
    with pytest.raises(
        ValueError,
        match=r"^The fraction of part 'easy' of select_mixture must be a float in the range "
        r"\(0, 1\]\. Got 0 instead\.$",
    ):
        select_mixture(metrics, {"easy": 0})
    with pytest.raises(ValueError, match=r"^The part 'easiest' of select_mixture must be"):
        select_mixture(metrics, {"easiest": 0.1})
    with pytest.raises(ValueError, match=r"^The region of part 'random in medium'"):
        select_mixture(metrics, {"random in medium": 0.1})
    with pytest.raises(ValueError, match="parts of select_mixture round to 2 \\+ 2 = 4 samples"):
        select_mixture(make_metrics(3), {"easy": 0.5, "hard": 0.5})
    with pytest.raises(ValueError, match="The 'parts' parameter of select_mixture is empty"):
        select_mixture(metrics, {})
    with pytest.raises(TypeError, match="must be a mapping .* Got list instead"):
        select_mixture(metrics, [("easy", 0.1)])
    edited = Thresholds()
    edited.hard_confidence = 0.9  # invalid edits are caught even when the thresholds go unused
    with pytest.raises(ValueError, match=r"hard_confidence \(0\.9\) must not exceed"):
        select_mixture(metrics, {"easy": 0.1}, thresholds=edited)
    with pytest.raises(ValueError, match="The fraction of part 'easy' is too small"):
        select_mixture(metrics, {"easy": 0.01})
    tiny = pd.DataFrame({"confidence": [0.9, 0.1, 0.5, 0.5], "variability": [0.0] * 4})
    with pytest.raises(
        ValueError,
        match=r"^The part 'random in hard' of select_mixture asks for 2 samples \(0\.5 of 4\), "
        r"but only 1 are left in the 'hard' region after the earlier parts\.",
    ):
        select_mixture(tiny, {"random in hard": 0.5})


# --------------------------------------------------------------------------- masks and subsets


def test_selection_mask_in_table_order():
    metrics = make_metrics(40, str_ids=True)
    ids = select(metrics, "ambiguous", 0.25)
    mask = selection_mask(metrics, ids)
    assert mask.dtype == bool and mask.sum() == 10
    assert set(metrics.index[mask]) == set(ids.tolist())
    np.testing.assert_array_equal(selection_mask(metrics.index, ids), mask)
    np.testing.assert_array_equal(selection_mask(metrics["aum"], ids), mask)
    np.testing.assert_array_equal(selection_mask(list(metrics.index), list(ids)), mask)


def test_selection_mask_errors():
    with pytest.raises(
        ValueError,
        match=r"^selection_mask: 2 of the 3 ids are not in the index, e\.g\. \[7, 9\]\.$",
    ):
        selection_mask(pd.Index([1, 2, 3]), [1, 7, 9])
    with pytest.raises(ValueError, match="selection_mask needs unique sample ids"):
        selection_mask(pd.Index([1, 1, 3]), [1])
    with pytest.raises(TypeError, match="must be a 1-D sequence of sample ids"):
        selection_mask(pd.Index([1, 2]), 1)


def test_subset_numpy_and_pandas():
    data = np.arange(20).reshape(10, 2)
    np.testing.assert_array_equal(subset(data, [4, 0]), data[[4, 0]])
    table = pd.DataFrame({"text": list("abcdefghij")}, index=range(100, 110))
    assert subset(table, np.array([9, 2]))["text"].tolist() == ["j", "c"]
    assert subset(table["text"], [1]).tolist() == ["b"]
    assert subset(list("abcde"), [3, 1]) == ["d", "b"]
    assert subset(tuple("abcde"), [3]) == ("d",)


def test_subset_with_order_maps_ids_to_rows():
    metrics = make_metrics(8, str_ids=True)
    data = np.arange(8) * 10
    ids = select(metrics, "easy", 0.25)
    rows = [metrics.index.get_loc(i) for i in ids]
    np.testing.assert_array_equal(subset(data, ids, order=metrics.index), data[rows])


class TinyDataset(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i * 10


def test_subset_torch():
    picked = subset(TinyDataset(6), np.array([5, 2]))
    assert isinstance(picked, torch.utils.data.Subset)
    assert [picked[i] for i in range(len(picked))] == [50, 20]
    tensor = torch.arange(6) * 10
    assert subset(tensor, [5, 2]).tolist() == [50, 20]


class FakeHFDataset:
    """Quacks like datasets.Dataset: has select() and column_names."""

    column_names = ["text", "label"]

    def __init__(self, n: int) -> None:
        self.n = n
        self.selected: list[int] | None = None

    def __len__(self) -> int:
        return self.n

    def select(self, indices):
        self.selected = list(indices)
        return self


class Stream(torch.utils.data.IterableDataset):
    def __iter__(self):
        return iter(range(3))


def test_subset_hf_like():
    data = FakeHFDataset(5)
    assert subset(data, ["c", "a"], order=["a", "b", "c", "d", "e"]) is data
    assert data.selected == [2, 0]


def test_subset_errors():
    data = np.arange(5)
    with pytest.raises(ValueError, match=r"Pass order=metrics\.index"):
        subset(data, np.array(["s001", "s002"]))
    with pytest.raises(
        ValueError,
        match=r"^subset: 2 of the 3 ids are not row positions of data \(0 to 4\), e\.g\. "
        r"\[5, -1\]\. If the ids are not row positions, pass order=metrics\.index\.$",
    ):
        subset(data, [1, 5, -1])
    with pytest.raises(
        ValueError, match=r"^subset: 1 of the 2 ids are not in the 'order' ids, e\.g\. \['z'\]\.$"
    ):
        subset(data, ["a", "z"], order=list("abcde"))
    with pytest.raises(ValueError, match="data has 5 rows, but order has 3 ids"):
        subset(data, ["a"], order=list("abc"))
    with pytest.raises(
        TypeError, match="must be a cartokit Split, numpy array, pandas DataFrame .* Got dict"
    ):
        subset({"a": 1}, [0])
    with pytest.raises(TypeError, match="cannot index a torch IterableDataset"):
        subset(Stream(), [0])


def test_select_then_subset_round_trip():
    metrics = make_metrics(50, seed=14)
    texts = np.array([f"text of {i}" for i in metrics.index])
    ids = select(metrics, "ambiguous", 0.2)
    got = subset(texts, ids, order=metrics.index)
    assert got.tolist() == [f"text of {i}" for i in ids]
    assert sorted(subset(texts, np.flatnonzero(selection_mask(metrics, ids)))) == sorted(got)


def test_region_names_are_regions():
    assert set(REGIONS) <= set(SELECTORS)


def test_ids_of_another_kind_than_order_say_so():
    # positions_of names the mismatch: integer ids looked up among text ids find nothing
    with pytest.raises(
        ValueError,
        match=r"^subset: 2 of the 2 ids are not in the 'order' ids, e\.g\. \[0, 1\]\. the 'order' "
        r"ids holds text ids, the ids given are integer\.$",
    ):
        subset(np.arange(3), [0, 1], order=["0", "1", "2"])
    with pytest.raises(ValueError, match=r"^subset needs unique sample ids, but the index repeats"):
        subset(np.arange(3), ["a"], order=["a", "a", "b"])


def test_subset_of_a_split_finds_rows_by_the_split_ids() -> None:
    from cartokit.data import load_digits

    train = load_digits().train  # keeps the original digit ids, not row positions
    ids = train.ids[[5, 0, 3]]
    cut = subset(train, ids)
    assert cut.ids.tolist() == ids.tolist()
    np.testing.assert_array_equal(cut.labels, train.labels[[5, 0, 3]])
    missing = np.setdiff1d(np.arange(train.ids.max() + 2), train.ids)[:1]
    with pytest.raises(ValueError, match=r"subset: 1 of the 1 ids are not in"):
        subset(train, missing)
