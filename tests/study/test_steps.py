"""cartokit.study.steps: the model of a study, the map's regions and examples, human agreement,
the subsets, and retraining on them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from study_helpers import synthetic_metrics

from cartokit import REGIONS, Thresholds, select, select_mixture, study
from cartokit.data import Split, load_digits
from cartokit.models import build_model
from cartokit.plot.study import plot_human_scores
from cartokit.study import PAPER_SUBSETS

# ------------------------------------------------------------------------------ 01: the model


def test_model_kind_per_name():
    train = load_digits().train
    assert study.model_kind("mlp", train) == "mlp"
    assert study.model_kind("cnn", train) == "cnn"
    assert type(build_model(study.model_kind("mlp", train), train)).__name__ == "MLP"
    assert type(build_model(study.model_kind("cnn", train), train)).__name__ == "CNN"
    embedded = Split("e", np.zeros((4, 384), np.float32), [0, 1, 0, 1], None, ["n", "p"], "tabular")
    assert study.model_kind("minilm", embedded) == "linear"
    head = build_model(study.model_kind("minilm", embedded), embedded)
    assert type(head).__name__ == "MLP" and head.hidden == ()
    texts = Split("t", ["good", "bad"], [1, 0], None, ["neg", "pos"], "text")
    assert study.model_kind("minilm", texts) == "minilm_frozen"
    assert study.model_kind("minilm", texts, freeze_encoder=False) == "minilm_finetune"
    with pytest.raises(ValueError, match=r"'model' parameter of model_kind must be one of"):
        study.model_kind("resnet", train)


def test_small_model_threads_restores_the_setting():
    import torch

    before = torch.get_num_threads()
    train = load_digits().train
    with study.small_model_threads("mlp", train) as threads:
        assert threads == torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with study.small_model_threads("cnn", train) as threads:
        assert threads == before


# ------------------------------------------------------------------------------ 02: the map


def test_add_regions_saves_the_thresholds_for_later_notebooks(digits_run):
    thresholds = Thresholds(0.15, 0.8, 0.2)
    metrics = study.add_regions(digits_run, thresholds)
    again = study.load_run(digits_run.path)
    assert again.thresholds == thresholds
    assert again.metrics["region"].tolist() == metrics["region"].tolist()
    table = study.region_table(again.metrics)
    assert list(table.index) == list(REGIONS)
    assert table["samples"].sum() == len(metrics)
    assert table["flipped labels"].sum() == metrics["flipped"].sum()


def test_show_examples_images_and_text(digits_run):
    metrics, train = digits_run.metrics, digits_run.bundle.train
    fig = study.show_examples(metrics, train, by="hard", k=6)
    assert isinstance(fig, Figure) and len(fig.axes) == 6
    assert fig.axes[0].get_title().startswith(f"id {study.top_ids(metrics, 'hard', 1)[0]}")
    assert fig.get_suptitle() == "The 6 hardest samples (lowest confidence)"
    texts = Split("t", ["good", "bad", "meh"], [1, 0, 1], ["a", "b", "c"], ["neg", "pos"], "text")
    m = pd.DataFrame(
        {"confidence": [0.9, 0.2, 0.5], "variability": [0.1, 0.1, 0.3]},
        index=pd.Index(["a", "b", "c"], name="id"),
    )
    table = study.show_examples(m, texts, by="ambiguous", k=2)
    assert table.index.tolist() == ["c", "a"]
    assert table["text"].tolist() == ["meh", "good"] and table["label"].tolist() == ["pos", "pos"]


def test_show_examples_says_when_the_run_and_the_data_differ():
    texts = Split("t", ["good", "bad"], [1, 0], ["a", "b"], ["neg", "pos"], "text")
    m = pd.DataFrame({"confidence": [0.9, 0.2], "variability": [0.1, 0.3]}, index=["a", "z"])
    with pytest.raises(
        ValueError,
        match=r"show_examples: 1 of the 2 ids are not in 't', e.g. \['z'\]. The run folder and "
        r"the data differ.",
    ):
        study.show_examples(m, texts, k=2)


def test_top_ids_rejects_unknown_rankings():
    with pytest.raises(ValueError, match=r"'nope' is neither a selector"):
        study.top_ids(synthetic_metrics(), "nope", 3)


def test_human_agreement_is_spearman_of_the_score_magnitude(tmp_path):
    from scipy.stats import spearmanr

    metrics = synthetic_metrics(300, seed=3)
    metrics["human_score"] = np.random.default_rng(1).uniform(-4, 4, 300)
    metrics["region"] = pd.Categorical(np.array(REGIONS)[np.arange(300) % 3], categories=REGIONS)
    table = study.human_agreement(metrics, run_dir=tmp_path)
    for column in ("confidence", "variability", "correctness", "forgetting"):
        expected = spearmanr(metrics[column], metrics["human_score"].abs()).statistic
        assert table.loc[column, "spearman"] == pytest.approx(expected, abs=1e-3)
    assert (tmp_path / "human_agreement.csv").is_file()
    by_region = pd.read_csv(tmp_path / "human_by_region.csv", index_col=0)
    assert by_region["count"].tolist() == [100, 100, 100]
    fig = plot_human_scores(metrics, path=tmp_path / "h.png")
    assert isinstance(fig, Figure) and (tmp_path / "h.png").is_file()


def test_no_human_scores_no_comparison(capsys):
    assert study.human_agreement(synthetic_metrics()) is None
    assert "no human scores" in capsys.readouterr().out
    assert plot_human_scores(synthetic_metrics()) is None


# ------------------------------------------------------------------------------ 03: subsets


def test_build_subsets_names_orders_and_matches_select():
    metrics = synthetic_metrics(200)
    subsets = study.build_subsets(
        metrics,
        selectors=["full", "random", "ambiguous", "hard"],
        fractions=[0.33, 0.1],
        curve_selector="ambiguous",
        curve_fractions=[0.1, 0.5],
        mixtures=["17% ambiguous + 10% easy"],
        seed=3,
    )
    assert list(subsets) == [
        "full 100%",
        "random 33%",
        "random 10%",
        "ambiguous 33%",
        "ambiguous 10%",
        "hard 33%",
        "hard 10%",
        "ambiguous 50%",
        "17% ambiguous + 10% easy",
    ]
    assert len(subsets["full 100%"]) == 200 and subsets["full 100%"].fraction == 1.0
    np.testing.assert_array_equal(subsets["hard 33%"].ids, select(metrics, "hard", 0.33))
    np.testing.assert_array_equal(subsets["random 10%"].ids, select(metrics, "random", 0.1, seed=3))
    mixture = subsets["17% ambiguous + 10% easy"]
    np.testing.assert_array_equal(
        mixture.ids, select_mixture(metrics, "17% ambiguous + 10% easy", seed=3)
    )
    assert (mixture.selector, mixture.fraction, len(mixture)) == (
        "17% ambiguous + 10% easy",
        0.27,
        54,
    )


def test_selectors_that_rank_alike_give_one_subset_with_a_warning():
    metrics = synthetic_metrics()
    with pytest.warns(UserWarning) as caught:
        subsets = study.build_subsets(
            metrics,
            selectors=["high_confidence", "easy", "hard", "low_confidence"],
            fractions=[0.33],
            curve_selector="easy",
            curve_fractions=[0.33, 0.1],
            mixtures=[],
        )
    assert list(subsets) == ["high_confidence 33%", "hard 33%", "easy 10%"]
    assert [str(w.message) for w in caught] == [
        "The selectors 'easy' and 'high_confidence' both take the highest confidence first, so "
        "their subsets would be the same; only 'high_confidence' is kept. Leave 'easy' out of "
        "the selectors.",
        "The selectors 'low_confidence' and 'hard' both take the lowest confidence first, so "
        "their subsets would be the same; only 'hard' is kept. Leave 'low_confidence' out of "
        "the selectors.",
    ]


def test_full_alone_needs_no_fraction():
    subsets = study.build_subsets(synthetic_metrics(), selectors=["full"], fractions=[])
    assert list(subsets) == ["full 100%"] and len(subsets["full 100%"]) == 200


def test_paper_subsets_by_default():
    subsets = study.build_subsets(synthetic_metrics())
    assert [s.selector for s in subsets.values()] == list(PAPER_SUBSETS)
    assert [len(s) for s in subsets.values()] == [200] + [66] * 6


def test_a_fraction_too_small_for_the_data_says_so():
    with pytest.raises(ValueError, match=r"too small: 0.001 of 200 samples rounds to 0"):
        study.build_subsets(synthetic_metrics(), selectors=["ambiguous"], fractions=[0.001])


def test_build_subsets_names_itself_in_its_errors():
    with pytest.raises(ValueError, match=r"^The 'selection_seed' parameter of build_subsets"):
        study.build_subsets(synthetic_metrics(), seed=-1)


# ------------------------------------------------------------------------------ 04: retraining


def test_retrain_gives_one_row_per_subset_seed_and_split(digits_run):
    subsets = study.build_subsets(
        digits_run.metrics, selectors=["full", "ambiguous"], fractions=[0.5]
    )
    results = study.retrain(
        digits_run.bundle, subsets, model="mlp", seeds=[0, 1], epochs=3, lr=0.003, progress=False
    )
    assert len(results) == 2 * 2 * 2
    assert set(results["split"]) == {"test", "rotated"}
    assert results.groupby("subset")["size"].first().to_dict() == {
        "full 100%": 500,
        "ambiguous 50%": 250,
    }
    assert results["accuracy"].between(0, 1).all()
    again = study.retrain(
        digits_run.bundle, subsets, model="mlp", seeds=[0, 1], epochs=3, lr=0.003, progress=False
    )
    pd.testing.assert_frame_equal(results, again)
    assert study.above_chance(results, 10)
    with pytest.raises(ValueError, match="run notebook 03_select on this run folder first"):
        study.retrain(digits_run.bundle, None, model="mlp", seeds=[0], epochs=2)
