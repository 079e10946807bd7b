"""cartokit.pipeline, deprecated: every name it had still resolves for one release, with a
DeprecationWarning that names where the name lives now."""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import pandas as pd
import pytest

import cartokit.pipeline as pipeline
from cartokit.data import Split

#: The public names of cartokit.pipeline before the redesign (its __all__ then).
OLD_NAMES = (
    "ABOVE_CHANCE_MARGIN FULL GITHUB_REPO INSTALL_SPEC MODELS MODES NOTEBOOKS PAPER_SUBSETS Run "
    "RunError SUBSET_SELECTORS Subset TEXT_DATASETS Terminated above_chance add_regions "
    "build_model build_subsets colab_badge colab_url default_kernel describe_bundle "
    "enable_colab_widgets expand_grid find_notebooks human_agreement load_config load_data "
    "load_preset load_run load_subsets metrics_table model_data notebook_parameters "
    "parse_overrides plot_fraction_curve plot_human_scores plot_results preset_names "
    "read_metrics read_parameters_cell region_table resolve_params results_markdown "
    "results_table retrain rotate_images run_grid run_study save_results save_run save_subsets "
    "show_examples small_model_threads subsets_summary top_ids validate_params write_report"
).split()

RENAMED = {
    "MODELS": "cartokit.study.STUDY_MODELS",
    "MODES": "cartokit.train.MODES",
    "plot_fraction_curve": "cartokit.plot.study.plot_fraction_curve",
    "plot_human_scores": "cartokit.plot.study.plot_human_scores",
    "plot_results": "cartokit.plot.study.plot_results",
}
ADAPTED = {"build_model", "read_metrics"}


def resolve(path: str) -> object:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("name", OLD_NAMES)
def test_every_old_name_warns_with_its_new_path_and_forwards(name):
    new = RENAMED.get(name, f"cartokit.study.{name}")
    with pytest.warns(DeprecationWarning) as caught:
        value = getattr(pipeline, name)
    (warning,) = caught
    assert str(warning.message).startswith(f"cartokit.pipeline.{name} is deprecated; use cartokit.")
    assert warning.filename == __file__  # points at the caller's line
    if name not in ADAPTED:
        assert str(warning.message) == f"cartokit.pipeline.{name} is deprecated; use {new}"
        assert value is resolve(new)


def test_from_import_warns_too():
    with pytest.warns(DeprecationWarning, match=r"use cartokit.study.load_run$"):
        from cartokit.pipeline import load_run
    from cartokit.study import load_run as new

    assert load_run is new


def test_the_old_build_model_builds_what_it_built():
    embedded = Split("e", np.zeros((4, 384), np.float32), [0, 1, 0, 1], None, ["n", "p"], "tabular")
    with pytest.warns(
        DeprecationWarning,
        match=r"use cartokit.models.build_model\(cartokit.study.model_kind\(model, split\)",
    ):
        build_model = pipeline.build_model
    head = build_model("minilm", embedded, seed=0)
    assert type(head).__name__ == "MLP" and head.hidden == ()
    assert type(build_model("mlp", embedded)).__name__ == "MLP"


def test_the_old_read_metrics_reads_a_run_folders_table(tmp_path):
    from cartokit.io import write_metrics_csv

    table = pd.DataFrame(
        {"label": [0, 1], "confidence": [0.9, 0.2], "variability": [0.1, 0.1]},
        index=pd.Index([7, 8], name="id"),
    ).assign(region=pd.Categorical(["easy", "hard"], categories=["easy", "ambiguous", "hard"]))
    write_metrics_csv(table, tmp_path / "metrics.csv")
    with pytest.warns(DeprecationWarning, match=r"use cartokit.io.read_metrics_table$"):
        read_metrics = pipeline.read_metrics
    back = read_metrics(tmp_path / "metrics.csv")
    assert back.index.tolist() == [7, 8] and back["region"].tolist() == ["easy", "hard"]
    assert list(back["region"].cat.categories) == ["easy", "ambiguous", "hard"]


def test_other_names_are_missing_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError, match=r"'cartokit.pipeline' has no attribute '_CHECKS'"):
            pipeline._CHECKS  # noqa: B018
        assert not hasattr(pipeline, "no_such_name")
    assert pipeline.__all__ == []
