"""Mislabel scores: each method by hand and against oracles, cleanlab, cut-offs, suggestions."""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cartokit import TrainingDynamics, compute_metrics
from cartokit.detection import evaluate_detection
from cartokit.mislabel import (
    DYNAMICS_METHODS,
    METHODS,
    score_mislabeled,
    suggest_cutoff,
    suggest_labels,
)

HAS_CLEANLAB = importlib.util.find_spec("cleanlab") is not None
needs_cleanlab = pytest.mark.skipif(
    not HAS_CLEANLAB, reason='cleanlab not installed (pip install "cartokit[cleanlab]")'
)


@pytest.fixture(scope="module")
def noisy_run():
    """Synthetic dynamics of 300 samples, 3 classes, 8 epochs, 10 % flipped labels: flipped
    samples see their given label's probability fall while another class's rises."""
    rng = np.random.default_rng(0)
    n, classes, epochs = 300, 3, 8
    clean = rng.integers(0, classes, n)
    flipped = np.zeros(n, dtype=bool)
    flipped[rng.choice(n, 30, replace=False)] = True
    given_labels = np.where(flipped, (clean + rng.integers(1, classes, n)) % classes, clean)
    logits = rng.normal(0, 0.7, (epochs, n, classes))
    ramp = np.linspace(0.0, 3.0, epochs)[:, None]
    logits[:, np.arange(n), clean] += ramp + rng.normal(0.3, 0.6, n)
    dyn = TrainingDynamics.from_logits(
        logits, given_labels, ids=np.arange(n) * 7 + 3, store_probs=True
    )
    return dyn, compute_metrics(dyn), flipped, clean


def table(**columns):
    return pd.DataFrame(columns, index=pd.Index(["a", "b", "c"], name="id"))


# ------------------------------------------------------------------------------ scores


def test_scores_by_hand():
    m = table(
        label=[0, 1, 1],
        confidence=[0.9, 0.2, 0.5],
        aum=[2.0, -1.0, 0.0],
        el2n=[0.1, 1.1, 0.7],
        aleatoric=[0.05, 0.1, 0.25],
        correctness=[1.0, 0.0, 0.5],
        forgetting=[1, 0, 2],
        never_learned=[False, True, False],
        num_observed=[4, 4, 4],
    )
    assert score_mislabeled(m, "low_confidence").round(6).tolist() == [0.1, 0.8, 0.5]
    assert score_mislabeled(m, "aum").tolist() == [-2.0, 1.0, -0.0]
    assert score_mislabeled(m, "el2n").tolist() == [0.1, 1.1, 0.7]
    assert score_mislabeled(m, "aleatoric").tolist() == [0.05, 0.1, 0.25]
    assert score_mislabeled(m, "low_correctness").tolist() == [0.0, 1.0, 0.5]
    # forgetting events per checkpoint; never learned counts as always forgotten: 1
    assert score_mislabeled(m, "forgetting").tolist() == [0.25, 1.0, 0.5]
    scores = score_mislabeled(m, "combined")
    assert scores.name == "combined" and scores.index.equals(m.index)
    # ranks of (lowconf, aum, el2n, lowcorr): a 1/3 each, b 1 each, c 2/3 each
    assert scores.round(6).tolist() == [round(1 / 3, 6), 1.0, round(2 / 3, 6)]


def test_combined_is_the_mean_percentile_rank_oracle(noisy_run):
    _, metrics, _, _ = noisy_run
    parts = {
        "lc": 1 - metrics["confidence"],
        "aum": -metrics["aum"],
        "el2n": metrics["el2n"],
        "corr": 1 - metrics["correctness"],
    }
    n = len(metrics)
    expected = []
    for i in range(n):  # a literal percentile rank: (below + (ties + 1) / 2) / n, averaged
        total = 0.0
        for values in parts.values():
            v = values.to_numpy()
            below, ties = (v < v[i]).sum(), (v == v[i]).sum()
            total += (below + (ties + 1) / 2) / n
        expected.append(total / 4)
    got = score_mislabeled(metrics, "combined").to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@settings(max_examples=25, deadline=None)
@given(st.permutations(list(range(12))), st.sampled_from(DYNAMICS_METHODS))
def test_scores_follow_the_rows_when_shuffled(order, method):
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 2, (4, 12, 3))
    metrics = compute_metrics(TrainingDynamics.from_logits(logits, rng.integers(0, 3, 12)))
    base = score_mislabeled(metrics, method)
    shuffled = score_mislabeled(metrics.iloc[order], method)
    if method == "combined":  # ranks are of the whole table: same set, same values per id
        pd.testing.assert_series_equal(shuffled.sort_index(), base.sort_index())
    else:
        pd.testing.assert_series_equal(shuffled, base.iloc[order])


def test_score_ranges(noisy_run):
    _, metrics, _, _ = noisy_run
    assert score_mislabeled(metrics, "low_confidence").between(0, 1).all()
    assert score_mislabeled(metrics, "el2n").between(0, np.sqrt(2)).all()
    assert score_mislabeled(metrics, "aleatoric").between(0, 0.25).all()
    forgetting = score_mislabeled(metrics, "forgetting")
    assert (forgetting.between(0, 0.5) | (forgetting == 1.0)).all()
    combined = score_mislabeled(metrics, "combined")
    assert combined.gt(0).all() and combined.le(1).all()


def test_dynamics_scores_find_the_flipped_labels(noisy_run):
    _, metrics, flipped, _ = noisy_run
    for method in ("low_confidence", "aum", "el2n", "low_correctness", "combined"):
        quality = evaluate_detection(score_mislabeled(metrics, method), flipped)
        assert quality["auroc"] > 0.95, method


def test_unseen_samples_score_nan_and_rank_last():
    gold = np.array([[0.9, np.nan, 0.1], [0.8, np.nan, 0.2], [0.9, np.nan, 0.1]], np.float32)
    pred = np.where(np.isnan(gold), -1, np.where(gold > 0.5, 0, 1))
    dyn = TrainingDynamics(
        ids=[0, 1, 2], labels=[0, 0, 0], gold_prob=gold, margin=np.log(gold / (1 - gold)),
        sq_error=2 * (1 - gold) ** 2, pred=pred, num_classes=2,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metrics = compute_metrics(dyn)
    scores = score_mislabeled(metrics, "aum")
    assert np.isnan(scores.iloc[1])
    quality = evaluate_detection(scores, [False, True, False], k=1)
    assert quality["precision_at_k"] == 0.0  # the NaN sample is not in the top 1
    assert np.isnan(score_mislabeled(metrics, "forgetting").iloc[1])


# ------------------------------------------------------------------------------ cleanlab


@needs_cleanlab
def test_cleanlab_flags_first_and_matches_its_own_api(noisy_run):
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    dyn, metrics, flipped, _ = noisy_run
    scores = score_mislabeled(metrics, "cleanlab", dynamics=dyn)
    probs = dyn.probs.astype(np.float64).mean(axis=0)
    issues = find_label_issues(dyn.labels, probs, n_jobs=1)
    quality = get_label_quality_scores(dyn.labels, probs)
    np.testing.assert_allclose(scores.to_numpy(), issues + 1 - quality, atol=1e-6)
    assert scores.between(0, 2).all()
    assert scores[issues].min() >= 1.0 > scores[~issues].max()
    assert evaluate_detection(scores, flipped)["auroc"] > 0.95


@needs_cleanlab
def test_cleanlab_with_out_of_sample_probabilities():
    metrics = pd.DataFrame({"label": [0, 0, 1, 1, 0, 1]}, index=list("uvwxyz"))
    probs = np.array([[0.9, 0.1], [0.1, 0.9], [0.2, 0.8], [0.3, 0.7], [0.8, 0.2], [0.6, 0.4]])
    scores = score_mislabeled(metrics, "cleanlab", pred_probs=probs)
    assert scores.idxmax() == "v"  # labelled 0, predicted 1 with 0.9


def test_cleanlab_missing_raises_import_error_naming_the_extra(monkeypatch, noisy_run):
    dyn, metrics, _, _ = noisy_run
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "cleanlab" else real(name, *a)
    )
    with pytest.raises(ImportError, match=r"cartokit\[cleanlab\]"):
        score_mislabeled(metrics, "cleanlab", dynamics=dyn)


@needs_cleanlab
def test_cleanlab_needs_probabilities(noisy_run):
    dyn, metrics, _, _ = noisy_run
    with pytest.raises(ValueError, match="needs probabilities: pass dynamics="):
        score_mislabeled(metrics, "cleanlab")
    no_probs = TrainingDynamics.from_logits(np.zeros((3, 2, 2)), [0, 1])
    with pytest.raises(ValueError, match="store_probs=True"):
        score_mislabeled(compute_metrics(no_probs), "cleanlab", dynamics=no_probs)
    with pytest.raises(ValueError, match=r"must have shape \(n_samples, n_classes\) = \(300, C\)"):
        score_mislabeled(metrics, "cleanlab", pred_probs=np.ones((5, 3)))
    with pytest.raises(ValueError, match="finite and non-negative"):
        score_mislabeled(metrics, "cleanlab", pred_probs=-np.ones((300, 3)))


def test_score_errors():
    m = table(confidence=[0.9, 0.2, 0.5])
    with pytest.raises(ValueError, match=r"The 'method' parameter of score_mislabeled must be one"):
        score_mislabeled(m, "loss")
    with pytest.raises(ValueError, match=r"needs the columns \['aum'\].*missing: \['aum'\]"):
        score_mislabeled(m, "aum")
    with pytest.raises(TypeError, match="must be a pandas DataFrame"):
        score_mislabeled(m.to_numpy(), "low_confidence")
    with pytest.raises(ValueError, match="pred_probs is used only by method='cleanlab'"):
        score_mislabeled(m, "low_confidence", pred_probs=np.ones((3, 2)))
    with pytest.raises(ValueError, match="unique sample ids"):
        score_mislabeled(m.set_axis(["a", "a", "b"]), "low_confidence")
    assert set(METHODS) == {*DYNAMICS_METHODS, "cleanlab"}


# ------------------------------------------------------------------------------ cut-offs


def test_natural_cutoffs():
    assert suggest_cutoff([1.0, -2.0], "aum") == 0.0
    assert suggest_cutoff([0.1], "low_correctness") == 0.5
    assert suggest_cutoff(pd.Series([0.2, 1.3], name="cleanlab")) == 1.0  # method from the name


def test_mixture_cutoff_splits_two_groups():
    rng = np.random.default_rng(1)
    scores = np.r_[rng.normal(0.1, 0.03, 900), rng.normal(0.8, 0.05, 100)]
    cutoff = suggest_cutoff(scores, "el2n")
    flagged = scores >= cutoff
    assert flagged[900:].all() and not flagged[:900].any()
    assert suggest_cutoff(np.full(10, 0.3)) == float("inf")  # nothing to split
    with pytest.raises(ValueError, match="The 'method' parameter of suggest_cutoff"):
        suggest_cutoff(scores, "nope")


# ------------------------------------------------------------------------------ suggestions


def test_suggest_labels_from_probabilities(noisy_run):
    dyn, _, flipped, clean = noisy_run
    table_ = suggest_labels(dyn)
    assert list(table_.columns[:4]) == ["label", "suggested_label", "support", "changed"]
    assert table_.index.tolist() == dyn.ids.tolist()
    # the model believes in the clean label for nearly every flipped sample
    assert (table_["suggested_label"].to_numpy()[flipped] == clean[flipped]).mean() > 0.9
    assert table_["changed"].to_numpy()[flipped].mean() > 0.9
    assert table_["support"].between(0, 1).all()
    some = suggest_labels(dyn, ids=[dyn.ids[5], dyn.ids[2]])
    assert some.index.tolist() == [dyn.ids[5], dyn.ids[2]]


def test_suggest_labels_by_vote_with_class_names():
    pred = np.array([[1, 2], [1, 0], [2, 0], [2, 1]])  # sample 0: 1,1,2,2 -> tie, last is 2
    dyn = TrainingDynamics(
        ids=["p", "q"], labels=[0, 1], gold_prob=np.full((4, 2), 0.3), margin=np.zeros((4, 2)),
        sq_error=np.zeros((4, 2)), pred=pred, num_classes=3, class_names=["x", "y", "z"],
    )  # fmt: skip
    got = suggest_labels(dyn)
    assert got["suggested_label"].tolist() == [2, 0]
    assert got["support"].tolist() == [0.5, 0.5]
    assert got["suggested_name"].tolist() == ["z", "x"]
    assert suggest_labels(dyn, burn_in=2)["suggested_label"].tolist() == [2, 1]  # tie: last


def test_suggest_labels_errors():
    dyn = TrainingDynamics.from_logits(np.zeros((3, 2, 2)), [0, 1], ids=[5, 6])
    with pytest.raises(ValueError, match="must be smaller than the number of checkpoints"):
        suggest_labels(dyn, burn_in=3)
    with pytest.raises(ValueError, match=r"not in dyn.ids, e.g. \[7\]"):
        suggest_labels(dyn, ids=[7])
    with pytest.raises(TypeError, match="must be a TrainingDynamics"):
        suggest_labels("dyn")
