"""Merged and federated maps: merge_dynamics, the source column, select(per_source=True)."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from cartokit import TrainingDynamics, compute_metrics, select
from cartokit.cli import main
from cartokit.merge import merge_dynamics
from cartokit.store import StoreDynamics, open_dynamics, write_store

NAMES = ["neg", "pos"]


def client(seed: int, n: int, epochs: int, prefix: str, *, names=NAMES) -> TrainingDynamics:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    logits = (
        rng.normal(size=(epochs, n, 2))
        + np.linspace(0, 2, epochs)[:, None, None] * (np.eye(2)[labels])
    )
    ids = [f"{prefix}{i}" for i in range(n)]
    return TrainingDynamics.from_logits(logits, labels, ids=ids, class_names=names)


def test_each_source_keeps_its_own_metrics_and_is_named(tmp_path, monkeypatch):
    a, b, c = client(0, 40, 5, "a"), client(1, 70, 3, "b"), client(2, 25, 5, "c")
    stored = open_dynamics(write_store(b, tmp_path / "b"))
    monkeypatch.setattr(StoreDynamics, "_full", lambda self: pytest.fail("loaded the store"))
    merged = merge_dynamics([a, stored, c], names=["A", "B", "C"])
    assert (merged.num_samples, merged.num_epochs) == (135, 5)
    table = compute_metrics(merged)
    assert table["source"].dtype == pd.CategoricalDtype(["A", "B", "C"])
    assert table["source"].value_counts().to_dict() == {"A": 40, "B": 70, "C": 25}
    for name, own in (("A", a), ("B", b), ("C", c)):
        part = table[table["source"] == name].drop(columns="source")
        # B trained 3 epochs: its checkpoints 3 and 4 count as not seen, and its numbers stay
        pd.testing.assert_frame_equal(part, compute_metrics(own), check_dtype=False)
    monkeypatch.undo()
    assert merged.gold_prob.shape == (5, 135) and np.isnan(merged.gold_prob[3:, 40:110]).all()
    assert merged.ids[:2].tolist() == ["a0", "a1"] and list(merged.sources[-1:]) == ["C"]


def test_overlapping_ids_are_refused_unless_prefixed(tmp_path):
    a, b = client(0, 30, 3, "s"), client(1, 20, 3, "s")
    with pytest.raises(ValueError, match=r"20 ids are in more than one map, e\.g\. \['s0'") as e:
        merge_dynamics([a, b], names=["north", "south"])
    assert "in 'north' and 'south'" in str(e.value) and "\n" not in str(e.value)
    merged = merge_dynamics([a, b], names=["north", "south"], on_overlap="prefix")
    table = compute_metrics(merged)
    assert table.index[[0, 30]].tolist() == ["north:s0", "south:s0"]
    with pytest.raises(ValueError, match=r"The 'on_overlap' parameter of merge_dynamics must be"):
        merge_dynamics([a, b], on_overlap="mean")


def test_maps_of_other_classes_are_refused_in_one_line(tmp_path):
    a = client(0, 10, 3, "a")
    other = write_store(client(1, 10, 3, "b", names=["bad", "good"]), tmp_path / "other")
    with pytest.raises(ValueError, match=r"'source0' names its classes \['neg', 'pos'\], "):
        merge_dynamics([a, other])
    three = TrainingDynamics.from_logits(np.zeros((3, 4, 3)), [0, 1, 2, 0], ids=list("wxyz"))
    with pytest.raises(ValueError, match=r"has 2 classes, 'source1' 3; merged maps must"):
        merge_dynamics([a, three])
    with pytest.raises(ValueError, match=r"needs at least two records to merge. Got 1"):
        merge_dynamics([a])
    with pytest.raises(ValueError, match=r"must give one distinct name per record \(2\)"):
        merge_dynamics([a, client(2, 5, 3, "c")], names=["x", "x"])


def test_per_source_selection_takes_the_same_share_of_each_source(tmp_path, capsys):
    a, b = client(0, 100, 4, "a"), client(1, 300, 4, "b")
    merged = merge_dynamics([a, b], names=["small", "large"])
    table = compute_metrics(merged)
    ids = select(table, "ambiguous", 0.2, per_source=True)
    assert len(ids) == 20 + 60
    assert ids[:20].tolist() == select(compute_metrics(a), "ambiguous", 0.2).tolist()
    assert ids[20:].tolist() == select(compute_metrics(b), "ambiguous", 0.2).tolist()
    with pytest.raises(ValueError, match=r"per_source=True\) needs the 'source' column"):
        select(compute_metrics(a), "ambiguous", 0.2, per_source=True)
    path = compute_metrics(merged, output=tmp_path / "m.parquet")
    out = tmp_path / "ids.txt"
    args = ["select", str(path), "--fraction", "0.2", "--per-source", "-o", str(out)]
    assert main(args) == 0
    assert out.read_text().split() == ids.tolist()


def test_blocks_of_a_merge_travel_to_workers_with_their_data():
    merged = merge_dynamics([client(0, 10, 3, "a"), client(1, 12, 2, "b")])
    for block in merged.blocks():
        copy = pickle.loads(pickle.dumps(block))
        got, want = copy.read(range(3)), block.read(range(3))
        np.testing.assert_array_equal(got.gold_prob, want.gold_prob)
        assert got.ids.tolist() == want.ids.tolist()
    dask = pytest.importorskip("dask", reason='pip install "cartokit[dask]"')
    with dask.config.set(scheduler="processes"):
        got = compute_metrics(merged, engine="dask")
    pd.testing.assert_frame_equal(got, compute_metrics(merged))
