"""cartokit.study.runner: run_study passes each notebook its parameters and keeps failures
apart; run_grid runs a queue of studies and collects one table (papermill is stood in for;
tests/test_notebooks.py runs the real notebooks)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from study_helpers import fake_results

from cartokit import study
from cartokit.cli import main
from cartokit.study import NOTEBOOKS, RunError
from cartokit.train.progress import PROGRESS_ENV


def test_run_study_passes_each_notebook_its_parameters_and_the_run_folder(tmp_path, fake_papermill):
    calls, _ = fake_papermill
    report = study.run_study(
        tmp_path / "study",
        preset="digits",
        overrides={"epochs": 3},
        progress=False,
        log=lambda m: None,
    )
    assert report == (tmp_path / "study" / "report.md").resolve()
    assert [name for name, _ in calls] == list(NOTEBOOKS)
    declared = study.notebook_parameters()
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
    study.run_study(out, progress=False, log=lambda m: None)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    fail["at"] = failing
    with pytest.raises(
        RunError,
        match=rf"notebook {failing}.ipynb failed in cell \[3\] with ValueError: The 'x' "
        rf"parameter. Its executed copy is .*study.failed/notebooks/{failing}.ipynb; "
        r".*study was left as it was",
    ) as info:
        study.run_study(out, overrides={"epochs": 5}, progress=False, log=lambda m: None)
    assert info.value.notebook == failing and info.value.executed.is_file()
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert (tmp_path / "study.failed" / f"{NOTEBOOKS[0]}.done").is_file()
    assert not list(tmp_path.glob(".study*"))
    fail.clear()
    study.run_study(out, progress=False, log=lambda m: None)
    assert not (tmp_path / "study.failed").exists()


def test_an_interrupted_first_run_writes_nothing_in_place(tmp_path, fake_papermill):
    _, fail = fake_papermill
    fail["interrupt"] = "03_select"
    messages = []
    with pytest.raises(KeyboardInterrupt):
        study.run_study(tmp_path / "study", progress=False, log=messages.append)
    assert not (tmp_path / "study").exists()
    assert "interrupted during 03_select.ipynb" in messages[-1]
    assert (tmp_path / "study.failed" / "notebooks" / "03_select.ipynb").is_file()


def test_bad_parameters_fail_before_any_notebook_runs(tmp_path, fake_papermill):
    calls, _ = fake_papermill
    with pytest.raises(
        ValueError,
        match=r"'fractions' parameter of run_study must be a list of floats in the range "
        r"\(0, 1\]. Got \[0\]",
    ):
        study.run_study(tmp_path / "s", overrides={"fractions": [0]}, log=lambda m: None)
    assert calls == [] and not list(tmp_path.iterdir())


def test_cli_run_and_its_errors(tmp_path, fake_papermill, capsys):
    calls, fail = fake_papermill
    out = tmp_path / "runs" / "d"
    argv = ["run", "--preset", "digits", "-p", "epochs=4", "-p", "seeds=[5]", "--out", str(out)]
    assert main([*argv, "--quiet"]) == 0
    assert calls[0][1]["epochs"] == 4 and calls[3][1]["seeds"] == [5]
    assert f"Report: {out.resolve() / 'report.md'}" in capsys.readouterr().err
    assert main(["run", "--preset", "nope", "--out", str(out)]) == 1
    assert (
        "cartokit run: error: --preset must be one of ['dialogue', 'digits', 'sentiment']. Got "
        "'nope' "
        "instead." in capsys.readouterr().err
    )
    assert main(["run", "-p", "epochs=1", "--out", str(out)]) == 1
    assert (
        "cartokit run: error: The 'epochs' parameter of cartokit run must be an int >= 2"
        in capsys.readouterr().err
    )
    fail["at"] = "02_map"
    assert main(["run", "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert (
        "cartokit run: error: notebook 02_map.ipynb failed" in err
        and "d.failed/notebooks/02_map.ipynb" in err
    )


def test_expand_grid_crosses_scalar_parameters_only():
    jobs = study.expand_grid(
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
    assert study.expand_grid({"params": {"epochs": 3}}) == [("job", {"epochs": 3})]
    assert study.expand_grid({"grid": {"seed": 4}}) == [("seed=4", {"seed": 4})]
    with pytest.raises(
        ValueError, match=r"takes the keys \['preset', 'params', 'grid', 'out'\]. Got \['epochs'\]"
    ):
        study.expand_grid({"epochs": 3})
    with pytest.raises(ValueError, match="The grid axis 'model' is empty"):
        study.expand_grid({"grid": {"model": []}})


def test_grid_runs_jobs_collects_one_table_and_resumes(tmp_path, fake_papermill, capsys):
    calls, fail = fake_papermill
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        "preset: digits\nparams: {epochs: 3}\ngrid:\n  model: [mlp, cnn]\n  seeds: [0, 1]\n"
    )
    out = tmp_path / "g"
    results = study.run_grid(grid, out=out, progress=False, log=lambda m: None)
    assert len(calls) == 2 * len(NOTEBOOKS)
    assert results["job"].unique().tolist() == ["model=mlp", "model=cnn"]
    assert list(results.columns[:3]) == ["job", "dataset", "model"]
    assert results.groupby("job")["model"].first().to_dict() == {
        "model=cnn": "cnn",
        "model=mlp": "mlp",
    }
    assert (results["dataset"] == "digits").all() and len(results) == 2 * len(fake_results())
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv"), results, check_dtype=False)
    assert "## model=cnn (done)" in (out / "summary.md").read_text()
    # again: both jobs are done, nothing runs
    study.run_grid(grid, out=out, progress=False, log=lambda m: None)
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
    with pytest.raises(
        ValueError, match=r"^The 'model' parameter of job model=resnet of grid.yaml must be one of"
    ):
        study.run_grid(grid, out=tmp_path / "g", log=lambda m: None)
    assert calls == []


def test_a_grid_over_seed_keeps_the_job_seed_beside_the_retraining_seed(
    tmp_path, fake_papermill, capsys
):
    """The example of `cartokit grid --help`: each job's results have their own `seed` column
    (the retraining seed), so the job's axis becomes `job_seed`; a rerun skips both jobs and
    collects the same table."""
    calls, _ = fake_papermill
    grid = tmp_path / "grid.yaml"
    grid.write_text("params: {epochs: 2}\ngrid:\n  seed: [0, 1]\n")
    out = tmp_path / "g"
    assert main(["grid", str(grid), "--out", str(out), "--quiet"]) == 0
    results = pd.read_csv(out / "results.csv")
    assert list(results.columns[:4]) == ["job", "dataset", "model", "job_seed"]
    assert results.groupby("job")["job_seed"].unique().map(list).to_dict() == {
        "seed=0": [0],
        "seed=1": [1],
    }
    assert sorted(results["seed"].unique()) == sorted(fake_results()["seed"].unique())
    assert "# Grid grid.yaml: 2 jobs" in (out / "summary.md").read_text()
    assert "## seed=1 (done)" in (out / "summary.md").read_text()
    assert [params["seed"] for name, params in calls if name == NOTEBOOKS[0]] == [0, 1]
    # again: nothing runs, and the table comes out the same
    assert main(["grid", str(grid), "--out", str(out), "--quiet"]) == 0
    assert len(calls) == 2 * len(NOTEBOOKS)
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv"), results)
    assert "Grid results:" in capsys.readouterr().err


def test_a_one_job_grid_counts_one_job(tmp_path, fake_papermill, capsys):
    _, fail = fake_papermill
    grid = tmp_path / "grid.yaml"
    grid.write_text("grid:\n  model: [mlp]\n")
    study.run_grid(grid, out=tmp_path / "g", progress=False, log=lambda m: None)
    assert (tmp_path / "g" / "summary.md").read_text().startswith("# Grid grid.yaml: 1 job\n")
    fail["at"] = "02_map"
    assert main(["grid", str(grid), "--out", str(tmp_path / "g"), "--force", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "1 of 1 grid job failed: ['model=mlp']" in err and "to retry it." in err


def _injected_run_dir(notebook: Path) -> str:
    cells = json.loads(notebook.read_text())["cells"]
    (cell,) = [c for c in cells if "injected-parameters" in c["metadata"].get("tags", [])]
    namespace: dict = {}
    exec("".join(cell["source"]), namespace)
    return namespace["run_dir"]


def test_executed_notebooks_name_the_run_folder_not_the_staging_folder(tmp_path, fake_papermill):
    _, fail = fake_papermill
    out = tmp_path / "study"
    study.run_study(out, progress=False, log=lambda m: None)
    for name in NOTEBOOKS:
        executed = out / "notebooks" / f"{name}.ipynb"
        assert _injected_run_dir(executed) == str(out.resolve())
        text = executed.read_text()
        assert ".partial-" not in text and f"wrote {out.resolve()}/x.csv" in text
    # a failed run's copies name the folder they are kept in
    fail["at"] = "03_select"
    with pytest.raises(RunError):
        study.run_study(out, progress=False, log=lambda m: None)
    failed = tmp_path / "study.failed"
    for name in NOTEBOOKS[:3]:
        assert _injected_run_dir(failed / "notebooks" / f"{name}.ipynb") == str(failed.resolve())
    assert _injected_run_dir(out / "notebooks" / "03_select.ipynb") == str(out.resolve())


def test_the_notebooks_kernels_print_finished_progress_bars(tmp_path, monkeypatch):
    """A kernel started by cartokit run inherits CARTOKIT_PROGRESS=log (unless it is set)."""
    papermill = pytest.importorskip("papermill")
    seen = []
    monkeypatch.setattr(
        papermill, "execute_notebook", lambda *a, **k: seen.append(os.environ.get(PROGRESS_ENV))
    )
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    study.execute_notebook(Path("a"), Path("b"), {}, kernel="k", cwd=tmp_path, progress=False)
    assert seen == ["log"] and PROGRESS_ENV not in os.environ
    monkeypatch.setenv(PROGRESS_ENV, "off")
    study.execute_notebook(Path("a"), Path("b"), {}, kernel="k", cwd=tmp_path, progress=False)
    assert seen == ["log", "off"] and os.environ[PROGRESS_ENV] == "off"
