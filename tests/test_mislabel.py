"""Mislabel detection: scores, cut-offs, suggested labels, detection quality, the benchmark."""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cartokit import TrainingDynamics, compute_metrics, inject_noise, load_dataset
from cartokit.data import subsample
from cartokit.mislabel import (
    DYNAMICS_METHODS,
    METHODS,
    benchmark_detection,
    cross_val_probs,
    evaluate_detection,
    score_mislabeled,
    suggest_cutoff,
    suggest_labels,
)
from cartokit.noise import class_dependent_transition

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


# ------------------------------------------------------------------------------ evaluation


def test_evaluate_detection_by_hand():
    result = evaluate_detection([0.9, 0.8, 0.1, 0.2], [True, False, False, True], cutoff=0.5)
    assert result["auroc"] == 0.75
    assert result["precision_at_k"] == result["recall_at_k"] == 0.5
    assert result["flagged"] == 2 and result["precision_at_cutoff"] == 0.5
    assert result["recall_at_cutoff"] == 0.5
    top3 = evaluate_detection([0.9, 0.8, 0.1, 0.2], [True, False, False, True], k=3)
    assert top3["precision_at_k"] == pytest.approx(2 / 3) and top3["recall_at_k"] == 1.0
    # two Series align by index
    s = pd.Series([0.1, 0.9], index=["a", "b"])
    assert evaluate_detection(s, pd.Series([True, False], index=["b", "a"]))["auroc"] == 1.0
    nothing = evaluate_detection([0.1, 0.9], [False, True], cutoff=5.0)
    assert nothing["flagged"] == 0 and np.isnan(nothing["precision_at_cutoff"])


def test_evaluate_detection_errors():
    with pytest.raises(ValueError, match="must mark some samples but not all"):
        evaluate_detection([0.1, 0.2], [False, False])
    with pytest.raises(ValueError, match="Got 2 scores and 3 flags"):
        evaluate_detection([0.1, 0.2], [False, True, True])
    with pytest.raises(ValueError, match=r"The 'k' parameter of evaluate_detection must be an int"):
        evaluate_detection([0.1, 0.2], [False, True], k=3)


def test_class_dependent_transition():
    matrix = class_dependent_transition(10, 0.2, seed=3)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
    off = matrix - np.diag(np.diag(matrix))
    assert ((off > 0).sum(axis=1) == 1).all()  # one partner per class
    partners = off.argmax(axis=1)
    assert sorted(partners) == list(range(10))  # a permutation: every class receives once
    rates = 1 - np.diag(matrix)
    assert rates.mean() == pytest.approx(0.2) and rates.min() == pytest.approx(0.1)
    assert len(set(np.round(rates, 6))) == 10  # really class-dependent
    with pytest.raises(ValueError, match=r"The 'rate' parameter .* range \(0, 2/3\]"):
        class_dependent_transition(3, 0.7)


# ------------------------------------------------------------------------------ benchmark


@pytest.fixture(scope="module")
def digits():
    bundle = load_dataset("digits")
    bundle.train = subsample(bundle.train, 400)
    bundle.test = subsample(bundle.test, 150)
    return bundle


def test_cross_val_probs_is_out_of_sample(digits):
    from cartokit.models import MLP

    probs, cost = cross_val_probs(
        lambda s: MLP.from_split(s, seed=0), digits.train, folds=3, epochs=3
    )
    assert probs.shape == (400, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert cost["trainings"] == 3
    assert cost["sample_epochs"] == 2 * 400 * 3  # each sample trains in 2 of 3 folds
    assert cost["train_seconds"] > 0
    with pytest.raises(ValueError, match="must be at most the size of the smallest class"):
        cross_val_probs(lambda s: MLP.from_split(s), digits.train.subset(np.arange(30)), folds=5)


def test_benchmark_detection(digits):
    noise = {"sym 10%": {"rate": 0.1}, "pairs": {"transition": class_dependent_transition(10)}}
    folds = 3 if HAS_CLEANLAB else None
    result = benchmark_detection(digits, noise=noise, folds=folds, epochs=8, seed=0)
    table_ = result.table
    methods = [m for m in METHODS if m != "cleanlab" or HAS_CLEANLAB]
    assert table_["setting"].unique().tolist() == ["sym 10%", "pairs"]
    assert len(table_) == 2 * (len(methods) + (folds is not None))
    single = table_[table_["approach"] == "single run"]
    assert (single["trainings"] == 1).all() and (single["sample_epochs"] == 400 * 8).all()
    assert single.groupby("setting")["train_seconds"].nunique().eq(1).all()  # one shared run
    flipped_10 = inject_noise(digits.train, 0.1, seed=0).frame["flipped"].sum()
    assert (table_.loc[table_["setting"] == "sym 10%", "flipped"] == flipped_10).all()
    assert (table_["k"] == table_["flipped"]).all()
    aum = table_[(table_["method"] == "aum") & (table_["setting"] == "sym 10%")].iloc[0]
    assert aum["auroc"] > 0.9 and aum["cutoff"] == 0.0
    assert set(result.scores) == {"sym 10%", "pairs"}
    assert result.scores["pairs"]["flipped"].sum() == result.runs.loc["pairs", "flipped"]
    assert 0.5 < result.runs.loc["sym 10%", "test_accuracy"] <= 1
    fig = result.plot()
    assert len(fig.axes) == 2
    if folds is not None:
        kfold = table_[table_["approach"] == "K-fold"]
        assert (kfold["trainings"] == 3).all() and (kfold["method"] == "cleanlab (3-fold)").all()
        compare = result.compare()
        assert compare.index.tolist() == ["sym 10%", "pairs"]
        assert (compare["trainings_ratio"] == 1 / 3).all()
        assert compare["sample_epochs_ratio"].eq(0.5).all()


def test_benchmark_skips_kfold_without_cleanlab(monkeypatch, digits):
    import cartokit.mislabel as mislabel

    monkeypatch.setattr(mislabel, "_has_cleanlab", lambda: False)
    with pytest.warns(UserWarning, match="K-fold baseline is skipped"):
        result = benchmark_detection(
            digits.train, noise={"n": {"rate": 0.2}}, methods=["aum"], folds=3, epochs=3
        )
    assert result.table["method"].tolist() == ["aum"] and result.compare().empty


def test_compare_reports_the_method_named_in_advance_not_the_best():
    from cartokit.mislabel import DetectionBenchmark

    cost = {"trainings": 1, "train_seconds": 2.0, "train_cpu_seconds": 2.0, "sample_epochs": 8}
    rows = [("aum", "single run", 0.99), ("combined", "single run", 0.9), ("cl", "K-fold", 0.95)]
    table = pd.DataFrame(
        [
            {"setting": "s", "method": m, "approach": a, "auroc": v, "precision_at_k": v, **cost}
            for m, a, v in rows
        ]
    ).assign(trainings=[1, 1, 4])
    bench = DetectionBenchmark(table, {}, pd.DataFrame())
    headline = bench.compare().loc["s"]
    assert (headline["method"], headline["auroc"], headline["as_good"]) == ("combined", 0.9, False)
    assert headline["trainings_ratio"] == 0.25
    assert bench.compare("aum").loc["s", "as_good"]
    with pytest.raises(ValueError, match="the method 'el2n' was not scored in this benchmark"):
        bench.compare("el2n")


def test_benchmark_errors(digits):
    with pytest.raises(ValueError, match=r"The noise setting 'x' of benchmark_detection must be"):
        benchmark_detection(digits, noise={"x": {"share": 0.1}})
    with pytest.raises(ValueError, match="The 'method' parameter of benchmark_detection"):
        benchmark_detection(digits, methods=["margin"])
    with pytest.raises(TypeError, match="must be a cartokit Split or DataBundle"):
        benchmark_detection(np.zeros((3, 2)))
    text = load_dataset("digits").train  # stand-in: a text split fails before any training
    text = text.__class__(
        name="t", inputs=["a", "b"], labels=[0, 1], ids=None, class_names=["n", "p"], kind="text"
    )
    with pytest.raises(ValueError, match="the default model \\(an MLP\\) needs array inputs"):
        benchmark_detection(text, folds=None)
