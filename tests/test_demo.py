"""`make demo`'s job, at a small size: files written, counts consistent, flips found."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cartokit import REGIONS, TrainingDynamics
from cartokit.cli import main
from cartokit.demo import run_demo


def test_demo_writes_dynamics_metrics_and_map(tmp_path):
    summary = run_demo(tmp_path / "demo", epochs=6, noise=0.1, seed=0, verbose=False)
    out = tmp_path / "demo"
    metrics = pd.read_csv(out / "metrics.csv", index_col="id")
    dyn = TrainingDynamics.load(out / "dynamics.npz")
    assert (out / "data_map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert dyn.num_epochs == 6 and dyn.num_samples == len(metrics) == summary["samples"]
    assert sum(summary["regions"].values()) == len(metrics)
    assert set(summary["regions"]) == set(REGIONS)
    assert metrics["region"].value_counts().to_dict() == {
        k: v for k, v in summary["regions"].items() if v
    }
    # The flipped labels are what the map should expose: far lower confidence than the rest.
    flipped = metrics["flipped"].to_numpy()
    assert flipped.sum() == summary["flipped"] > 0
    assert (
        metrics.loc[flipped, "confidence"].mean() < 0.5 * metrics.loc[~flipped, "confidence"].mean()
    )
    assert summary["test_accuracy"] > 0.8


def test_demo_is_deterministic_for_a_seed(tmp_path):
    a = run_demo(tmp_path / "a", epochs=3, seed=1, verbose=False)
    b = run_demo(tmp_path / "b", epochs=3, seed=1, verbose=False)
    da = TrainingDynamics.load(tmp_path / "a" / "dynamics.npz")
    db = TrainingDynamics.load(tmp_path / "b" / "dynamics.npz")
    np.testing.assert_array_equal(da.gold_prob, db.gold_prob)
    assert a["regions"] == b["regions"]


def test_demo_refuses_a_folder_it_did_not_write_before_training(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "metrics.csv").write_text("id,label\n7,0\n")  # someone's table, same name as ours
    with pytest.raises(
        ValueError,
        match=r"cartokit demo replaces what it wrote in its output folder, and .*mine is not "
        r"empty and has no run.json from cartokit demo, so it may hold other work; choose "
        r"another --out",
    ):
        run_demo(out, epochs=2, verbose=False)
    assert [p.name for p in out.iterdir()] == ["metrics.csv"]
    assert (out / "metrics.csv").read_text() == "id,label\n7,0\n"
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    assert main(["demo", "--out", str(notes), "--epochs", "2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"cartokit demo: error: cartokit demo writes a folder, and {notes} is a file; "
        "choose another --out."
    ]
    assert notes.read_text() == "mine\n"


def test_a_second_demo_into_the_same_folder_replaces_the_first(tmp_path):
    out = tmp_path / "demo"
    run_demo(out, epochs=3, seed=0, verbose=False)
    assert json.loads((out / "run.json").read_text())["written_by"] == "cartokit demo"
    run_demo(out, epochs=4, seed=1, verbose=False)
    assert TrainingDynamics.load(out / "dynamics.npz").num_epochs == 4
    assert sorted(p.name for p in out.iterdir()) == [
        "data_map.png",
        "dynamics.npz",
        "metrics.csv",
        "run.json",
    ]


@pytest.mark.parametrize(
    ("seed", "message"),
    [
        ("-5", "--seed must be an int >= 0. Got -5 instead."),
        (str(2**40), f"--seed must be an int in the range [0, 2**32 - 1]. Got {2**40} instead."),
    ],
)
def test_a_bad_seed_is_one_line(tmp_path, capsys, seed, message):
    assert main(["demo", "--out", str(tmp_path / "d"), "--seed", seed]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [f"cartokit demo: error: {message}"]
    assert not (tmp_path / "d").exists()


def test_demo_trains_as_notebook_01_of_the_digits_preset(tmp_path, capsys):
    """`cartokit demo` and `make demo` (the digits study) must agree: the demo records exactly
    what notebook 01's own cells record with the digits preset, at the same epochs, noise and
    seed, so their region counts are the same."""
    from notebook_cells import code_cells, load, python_of, source

    from cartokit import compute_metrics, region_counts
    from cartokit.study import load_preset

    summary = run_demo(tmp_path / "demo", epochs=3, noise=0.2, seed=1)
    said = capsys.readouterr().out
    assert "Trained as notebook 01 of 'cartokit run --preset digits' does" in said
    assert "287 training labels (20%) flipped to another class at random" in said
    cells = {c["id"]: c for c in code_cells(load("01_train_and_record"))}
    namespace: dict = {}
    exec(source(cells["parameters"]), namespace)  # then the values cartokit run would inject
    namespace.update({**load_preset("digits"), "epochs": 3, "noise": 0.2, "seed": 1})
    for name in ("check-params", "data", "train"):
        exec(python_of(source(cells[name])), namespace)
    recorded = namespace["result"].dynamics
    demo = TrainingDynamics.load(tmp_path / "demo" / "dynamics.npz")
    np.testing.assert_array_equal(demo.ids, recorded.ids)
    np.testing.assert_array_equal(demo.labels, recorded.labels)
    np.testing.assert_array_equal(demo.gold_prob, recorded.gold_prob)
    counts = region_counts(compute_metrics(recorded))
    assert summary["regions"] == {k: int(v) for k, v in counts.items()}
    flipped = pd.read_csv(tmp_path / "demo" / "metrics.csv", index_col="id")["flipped"]
    assert flipped.sum() == namespace["bundle"].train.frame["flipped"].sum() == 287
