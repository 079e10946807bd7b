"""cartokit.study.rundir: the files of a run folder, and how a run replaces one without losing an
earlier run or someone else's files (driven through run_study with a stand-in for papermill)."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from study_helpers import dead_pid, snapshot, synthetic_metrics, user_folder

from cartokit import Thresholds, study
from cartokit._files import write_marker
from cartokit.cli import main
from cartokit.study import RunError, Subset

# ------------------------------------------------------------------------------ what a run holds


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
        study.load_run(tmp_path)


def test_load_run_refuses_a_metrics_table_cut_short_in_one_line(digits_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(digits_run.path, run)
    text = (run / "metrics.csv").read_text()
    (run / "metrics.csv").write_text(text[: len(text) // 2].rsplit(",", 1)[0] + "\n")
    with pytest.raises(ValueError, match=r"^load_run: .*metrics.csv line \d+") as info:
        study.load_run(run)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "ids", [np.arange(50), np.array([f"movie:{i}" for i in range(50)], dtype=object)]
)
def test_subsets_round_trip_through_the_run_folder(tmp_path, ids):
    metrics = synthetic_metrics(50).set_axis(pd.Index(ids, name="id"))
    subsets = study.build_subsets(metrics, selectors=["full", "ambiguous"], mixtures=["10% hard"])
    study.save_subsets(tmp_path, subsets)
    loaded = study.load_subsets(tmp_path)
    assert list(loaded) == list(subsets)
    for name, subset in subsets.items():
        assert loaded[name].selector == subset.selector and loaded[name].fraction == subset.fraction
        assert loaded[name].ids.tolist() == subset.ids.tolist()
    summary = study.subsets_summary(loaded, metrics)
    assert summary["samples"].tolist() == [50, 17, 5]  # 0.33 * 50 = 16.5 rounds up


def test_subset_length():
    assert len(Subset("a", "ambiguous", 0.5, np.arange(3))) == 3


# ------------------------------------------------------------------------------ replacing a run


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
        study.run_study(out, log=lambda m: None)
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
        study.run_study(tmp_path / "notes.txt", log=lambda m: None)
    assert (tmp_path / "notes.txt").read_text() == "mine\n"
    # --out .: even an empty working directory would be pulled from under the shell
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    with pytest.raises(ValueError, match=r"here holds the working directory; choose another"):
        study.run_study(".", log=lambda m: None)
    user_folder(tmp_path / "study.failed")
    before = snapshot(tmp_path / "study.failed")
    with pytest.raises(ValueError, match=r"study.failed, which exists and was not written by"):
        study.run_study(tmp_path / "study", log=lambda m: None)
    assert snapshot(tmp_path / "study.failed") == before and calls == []


def test_run_replaces_an_empty_folder_its_own_run_and_a_run_from_before_the_marker(
    tmp_path, fake_papermill
):
    out = tmp_path / "study"
    out.mkdir()
    study.run_study(out, progress=False, log=lambda m: None)
    marker = json.loads((out / "run.json").read_text())
    assert marker["written_by"] == "cartokit run" and marker["params"]["epochs"] > 1
    study.run_study(out, progress=False, log=lambda m: None)  # make demo, twice
    del marker["written_by"]  # a run folder written before the marker named its writer
    (out / "run.json").write_text(json.dumps(marker))
    (out / "results.csv").unlink()
    study.run_study(out, progress=False, log=lambda m: None)
    assert (out / "results.csv").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study"]


def test_a_failed_runs_folder_is_marked_so_the_next_run_may_replace_it(tmp_path, fake_papermill):
    _, fail = fake_papermill
    fail["at"] = "02_map"
    with pytest.raises(RunError):
        study.run_study(tmp_path / "study", progress=False, log=lambda m: None)
    assert json.loads((tmp_path / "study.failed" / "run.json").read_text()) == {
        "written_by": "cartokit run",
        "finished": None,
    }
    fail.clear()
    study.run_study(tmp_path / "study", progress=False, log=lambda m: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study"]


def test_a_failed_folder_from_before_the_marker_is_still_a_runs(tmp_path, fake_papermill):
    failed = tmp_path / "study.failed"  # what a failed run left before the marker: no run.json
    (failed / "notebooks").mkdir(parents=True)
    (failed / "notebooks" / "02_map.ipynb").write_text("{}")
    (failed / "dynamics.npz").write_bytes(b"PK")
    study.run_study(tmp_path / "study", progress=False, log=lambda m: None)
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
    study.run_study(out, progress=False, log=messages.append)
    assert not killed.exists() and alive.is_dir() and (foreign / "thesis.txt").is_file()
    assert messages[0] == (
        f"removed 1 folder(s) left in {tmp_path} by killed runs into study: {killed.name}"
    )


def test_an_earlier_run_moved_aside_by_a_killed_swap_is_put_back(tmp_path, fake_papermill):
    out = tmp_path / "study"
    study.run_study(out, progress=False, log=lambda m: None)
    before = snapshot(out)
    aside = tmp_path / f".study.old-{dead_pid()}"
    out.rename(aside)  # kill -9 between swap_in's two renames
    messages: list[str] = []
    with pytest.raises(ValueError, match="'epochs' parameter"):
        study.run_study(out, overrides={"epochs": 1}, log=messages.append)
    assert not out.exists()  # a refused run changes nothing
    study.run_study(out, progress=False, log=messages.append, overrides={"epochs": 5})
    assert messages[0] == f"restored the earlier run {out} from {aside.name}, left by a killed run"
    assert not aside.exists() and snapshot(out) != before  # restored, then replaced by this run
    assert json.loads((out / "run.json").read_text())["params"]["epochs"] == 5


def test_sigterm_stops_a_run_like_ctrl_c_and_the_handler_is_restored(
    tmp_path, fake_papermill, monkeypatch
):
    import signal

    from cartokit.study import runner

    calls, _ = fake_papermill
    execute = runner.execute_notebook

    def terminated_in_03(source, target, parameters, **kwargs):
        execute(source, target, parameters, **kwargs)
        if source.stem == "03_select":
            signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(runner, "execute_notebook", terminated_in_03)
    before = signal.getsignal(signal.SIGTERM)
    messages: list[str] = []
    with pytest.raises(study.Terminated, match="stopped by SIGTERM"):
        study.run_study(tmp_path / "study", progress=False, log=messages.append)
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
        study.run_grid(grid, out=user, log=lambda m: None)
    assert snapshot(user) == before and calls == []
    # a job's folder holding someone's files stops the grid before any job runs
    g = tmp_path / "g"
    user_folder(g / "jobs" / "model=cnn")
    write_marker(g, "cartokit grid")
    with pytest.raises(ValueError, match=r"jobs/model=cnn is not empty and has no run.json"):
        study.run_grid(grid, out=g, log=lambda m: None)
    assert calls == [] and not (g / "jobs" / "model=mlp").exists()
    # a run folder is not a grid folder, nor a grid folder a run folder
    run = tmp_path / "run"
    study.run_study(run, progress=False, log=lambda m: None)
    calls.clear()
    assert main(["grid", str(grid), "--out", str(run), "--quiet"]) == 1
    assert "is not empty and was written by cartokit run" in capsys.readouterr().err
    (g / "jobs" / "model=cnn" / "thesis.txt").unlink()
    (g / "jobs" / "model=cnn" / "data" / "raw.csv").unlink()
    (g / "jobs" / "model=cnn" / "data").rmdir()
    study.run_grid(grid, out=g, progress=False, log=lambda m: None)
    assert main(["run", "--out", str(g), "--quiet"]) == 1
    assert "was written by cartokit grid" in capsys.readouterr().err


def test_a_grid_folder_from_before_the_marker_is_still_resumed(tmp_path, fake_papermill):
    calls, _ = fake_papermill
    grid = tmp_path / "grid.yaml"
    grid.write_text("preset: digits\ngrid:\n  model: [mlp, cnn]\n")
    out = tmp_path / "g"
    study.run_grid(grid, out=out, progress=False, log=lambda m: None)
    (out / "run.json").unlink()
    calls.clear()
    study.run_grid(grid, out=out, progress=False, log=lambda m: None)
    assert calls == [] and json.loads((out / "run.json").read_text())["written_by"] == (
        "cartokit grid"
    )
