"""Mislabel detection: detection quality, K-fold probabilities, the benchmark, retraining."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

import cartokit.train
from cartokit import compute_metrics, inject_noise, load_dataset
from cartokit.data import subsample
from cartokit.detection import (
    DetectionBenchmark,
    benchmark_detection,
    cross_val_probs,
    detection_quality,
    evaluate_detection,
    recorded_run,
    retrain_comparison,
)
from cartokit.mislabel import DYNAMICS_METHODS, METHODS, score_all, score_mislabeled, suggest_cutoff
from cartokit.models import model_factory
from cartokit.noise import class_dependent_transition

HAS_CLEANLAB = importlib.util.find_spec("cleanlab") is not None
needs_cleanlab = pytest.mark.skipif(
    not HAS_CLEANLAB, reason='cleanlab not installed (pip install "cartokit[cleanlab]")'
)


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
    import cartokit.detection as detection

    monkeypatch.setattr(detection, "_has_cleanlab", lambda: False)
    with pytest.warns(UserWarning, match="K-fold baseline is skipped"):
        result = benchmark_detection(
            digits.train, noise={"n": {"rate": 0.2}}, methods=["aum"], folds=3, epochs=3
        )
    assert result.table["method"].tolist() == ["aum"] and result.compare().empty


def test_compare_reports_the_method_named_in_advance_not_the_best():
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


def test_make_model_must_make_fresh_models_said_in_one_line(digits):
    """The README once passed make_model=... (an Ellipsis); a model instead of a maker would be
    trained on, not anew, in each training."""
    from cartokit.models import MLP

    expected = r"must be a callable that returns a fresh model for a split, such as "
    calls = {
        "benchmark_detection": lambda m: benchmark_detection(digits, make_model=m, folds=None),
        "cross_val_probs": lambda m: cross_val_probs(m, digits.train, folds=2),
        "recorded_run": lambda m: recorded_run(m, digits.train, epochs=2),
        "retrain_comparison": lambda m: retrain_comparison(m, {"a": digits.train}, digits.test),
    }
    for caller, call in calls.items():
        with pytest.raises(TypeError, match=rf"^The 'make_model' parameter of {caller} {expected}"):
            call(...)
    with pytest.raises(TypeError) as info:
        benchmark_detection(digits, make_model=...)
    assert str(info.value) == (
        "The 'make_model' parameter of benchmark_detection must be a callable that returns a "
        "fresh model for a split, such as cartokit.models.model_factory('linear'), or None for "
        "an MLP. Got Ellipsis of type ellipsis instead."
    )
    with pytest.raises(TypeError, match=r"Got a model, MLP, instead; every training needs a fresh"):
        benchmark_detection(digits, make_model=MLP.from_split(digits.train), folds=None)


def test_a_noise_rate_is_one_symmetric_setting(digits):
    result = benchmark_detection(
        digits, make_model=model_factory("linear"), noise=0.25, methods=["aum"], folds=None,
        epochs=3,
    )  # fmt: skip
    assert result.settings == ["symmetric 25%"]
    assert result.runs.loc["symmetric 25%", "flipped"] == 100  # round(0.25 x 400)
    with pytest.raises(ValueError, match=r"'noise' parameter .* in the range \(0, 1\)\. Got 1.5"):
        benchmark_detection(digits, noise=1.5)
    with pytest.raises(TypeError, match=r"'noise' parameter .* a rate in \(0, 1\) for one sym"):
        benchmark_detection(digits, noise=True)


@needs_cleanlab
def test_the_quick_call_of_the_readme_runs_in_seconds():
    """benchmark_detection's docstring and the README give this call for a quick look."""
    bundle = load_dataset("digits")
    bench = benchmark_detection(
        bundle, make_model=model_factory("linear"), noise=0.1, folds=2, epochs=5
    )
    headline = bench.compare()
    assert headline.index.tolist() == ["symmetric 10%"]
    assert headline.loc["symmetric 10%", "trainings_ratio"] == 0.5
    assert headline.loc["symmetric 10%", "auroc"] > 0.8  # 0.909 measured; chance is 0.5


# ------------------------------------------------------------------------------ new helpers


def test_detection_quality_is_evaluate_detection_per_method_at_its_cutoff():
    rng = np.random.default_rng(0)
    flipped = pd.Series(rng.random(200) < 0.2, index=np.arange(200) * 3)
    scores = pd.DataFrame(
        {
            "aum": np.where(flipped, 1.0, -1.0) + rng.normal(0, 0.8, 200),
            "low_confidence": rng.random(200),
            "cleanlab (3-fold)": np.where(flipped, 1.5, 0.2),
        },
        index=flipped.index,
    )
    table = detection_quality(scores, flipped)
    assert table.index.tolist() == list(scores.columns)
    for column in scores.columns:
        method = column if column in METHODS else None
        want = evaluate_detection(
            scores[column], flipped, cutoff=suggest_cutoff(scores[column], method)
        )
        assert table.loc[column].to_dict() == pytest.approx(want, nan_ok=True)
    assert table.loc["aum", "cutoff"] == 0.0  # the method's own threshold
    with pytest.raises(TypeError, match="The 'scores' parameter of detection_quality"):
        detection_quality(scores["aum"], flipped)


def test_score_all_scores_every_method_it_can(noisy_dynamics):
    metrics, dyn = noisy_dynamics
    every = score_all(metrics, dynamics=dyn)
    want = [*DYNAMICS_METHODS, *(["cleanlab"] if HAS_CLEANLAB else [])]
    assert every.columns.tolist() == want
    for method in want:
        pd.testing.assert_series_equal(
            every[method], score_mislabeled(metrics, method, dynamics=dyn), check_names=False
        )
    assert score_all(metrics).columns.tolist() == list(DYNAMICS_METHODS)  # no probabilities


@pytest.fixture(scope="module")
def noisy_dynamics(digits):
    noisy = inject_noise(digits.train, 0.1, seed=0)
    result = recorded_run(model_factory("mlp", seed=0), noisy, epochs=4, lr=3e-3)
    return compute_metrics(result.dynamics), result.dynamics


def test_recorded_run_keeps_probabilities_and_uses_one_thread_for_small_models(digits, monkeypatch):
    import torch

    threads = []
    real_fit = cartokit.train.fit

    def spy(*args, **kwargs):
        threads.append(torch.get_num_threads())
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(cartokit.train, "fit", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        result = recorded_run(
            model_factory("mlp", seed=0), digits.train, eval_data={"test": digits.test},
            epochs=3, lr=3e-3,
        )  # fmt: skip
        assert torch.get_num_threads() == 2  # restored
    finally:
        torch.set_num_threads(before)
    assert threads == [1]
    dyn = result.dynamics
    assert dyn.probs is not None and dyn.probs.shape == (3, 400, 10)
    np.testing.assert_allclose(np.nansum(dyn.probs, axis=2), 1.0, atol=1e-5)
    assert "test_accuracy" in result.history.columns


def test_retrain_comparison_counts_wrong_labels_and_scores_the_test_set(digits):
    noisy = inject_noise(digits.train, 0.3, seed=0)
    cleaned = noisy.with_labels(noisy.frame["clean_label"].to_numpy(copy=True))
    table = retrain_comparison(
        model_factory("mlp", seed=0), {"noisy": noisy, "clean": cleaned}, digits.test,
        epochs=4, lr=3e-3,
    )  # fmt: skip
    assert table.index.tolist() == ["noisy", "clean"]
    assert table.columns.tolist() == ["samples", "wrong labels", "test accuracy"]
    assert table.loc["noisy", "wrong labels"] == int(noisy.frame["flipped"].sum()) > 0
    assert table.loc["clean", "wrong labels"] == 0 and (table["samples"] == 400).all()
    assert table["test accuracy"].between(0, 1).all()
    assert table.loc["clean", "test accuracy"] > table.loc["noisy", "test accuracy"]
    with pytest.raises(TypeError, match="The 'trainings' parameter of retrain_comparison"):
        retrain_comparison(model_factory("mlp"), [], digits.test)


def test_the_old_mislabel_paths_warn_and_forward():
    import cartokit.detection as detection
    import cartokit.mislabel as mislabel

    for name in ("benchmark_detection", "cross_val_probs", "evaluate_detection",
                 "DetectionBenchmark"):  # fmt: skip
        with pytest.warns(DeprecationWarning, match=f"cartokit.mislabel.{name} is deprecated; "
                          f"use cartokit.detection.{name}"):  # fmt: skip
            assert getattr(mislabel, name) is getattr(detection, name)
    with pytest.raises(AttributeError, match="has no attribute 'recorded_run'"):
        mislabel.recorded_run  # noqa: B018


def test_mislabel_imports_no_torch():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import cartokit.mislabel\n"
        "assert 'torch' not in sys.modules, 'importing cartokit.mislabel imported torch'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_plot_has_one_legend_below_the_panels_and_lines_told_apart():
    """Three panels each had their own 9-entry legend over the curves, in colours such as
    yellow and sky blue that are hard to tell apart: now one legend outside the panels."""
    from matplotlib import colors as mcolors

    rng = np.random.default_rng(0)
    settings = ["symmetric 10%", "symmetric 30%", "class-dependent 20%"]
    methods = [*METHODS, "cleanlab (5-fold)"]
    scores, rows = {}, []
    for k, setting in enumerate(settings):
        flipped = rng.random(200) < 0.2
        frame = pd.DataFrame({m: flipped + rng.normal(0, 1.0, 200) for m in methods})
        scores[setting] = frame.assign(flipped=flipped)
        for i, method in enumerate(methods):
            approach = "K-fold" if method.endswith("fold)") else "single run"
            rows.append({"setting": setting, "method": method, "approach": approach,
                         "average_precision": (i + k) / 20})  # fmt: skip
    fig = DetectionBenchmark(pd.DataFrame(rows), scores, pd.DataFrame()).plot()
    assert len(fig.axes) == 3 and all(ax.get_legend() is None for ax in fig.axes)
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels[0] == f"{methods[0]}   AP 0.00 / 0.05 / 0.10"  # each panel's AP, in order
    assert len(labels) == len(methods) + 1  # and the random ranking's line
    fig.draw_without_rendering()  # lay out the constrained figure
    box = legend.get_window_extent()
    assert all(box.y1 <= ax.get_window_extent().y0 for ax in fig.axes)  # below, not over
    looks = {
        (mcolors.to_hex(line.get_color()), str(line.get_linestyle()))
        for line in fig.axes[0].get_lines()
        if str(line.get_gid()).startswith("pr:")
    }
    assert len(looks) == len(methods)  # one look per method
    assert not {"#f0e442", "#56b4e9", "#88ccee"} & {c for c, _ in looks}  # no pale lines
