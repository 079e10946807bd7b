"""The store under real multi-process training: 2 CPU processes (torchrun, gloo) write one store,
each the samples it saw; reading it gives the single-process record."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cartokit import TrainingDynamics, compute_metrics
from cartokit.store import open_dynamics

SCRIPTS = Path(__file__).resolve().parent / "scripts"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_cartokit_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


script = _load("store_ddp_train")
run_two_processes = _load("torchrun").run_two_processes


def test_two_ranks_write_what_they_saw_and_read_as_one_process(tmp_path):
    run_two_processes(SCRIPTS / "store_ddp_train.py", tmp_path)
    logits = torch.stack([script.logits_of(e) for e in range(script.EPOCHS)])
    ids = [f"s{i}" for i in range(script.N)]
    single = TrainingDynamics.from_logits(
        logits, script.labels_of(), ids=ids, class_names=["a", "b", "c"]
    )
    stored = open_dynamics(tmp_path / "store")
    np.testing.assert_allclose(stored.gold_prob, single.gold_prob, atol=1e-6)
    np.testing.assert_allclose(stored.margin, single.margin, atol=1e-5)
    np.testing.assert_array_equal(stored.pred, single.pred)
    np.testing.assert_array_equal(stored.labels, single.labels)
    assert stored.ids.tolist() == ids
    got, want = compute_metrics(stored), compute_metrics(single)
    pd.testing.assert_index_equal(got.index, want.index)
    np.testing.assert_allclose(got["confidence"], want["confidence"], atol=1e-6)
    np.testing.assert_array_equal(got["forgetting"], want["forgetting"])
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    for rank in range(2):
        report = json.loads((tmp_path / f"rank{rank}.json").read_text())
        # 103 samples padded to 104: each rank saw 52 per epoch, one sample twice over ranks
        assert report["rows"] == 52 * script.EPOCHS
        assert report["duplicates"] == [1] * script.EPOCHS
        assert report["missing"] == [0] * script.EPOCHS
        assert report["num_epochs"] == script.EPOCHS
        for epoch in manifest["epochs"]:
            mine = [p for p in epoch["parts"] if p["rank"] == rank]
            assert sum(p["rows"] for p in mine) == 52 and len(mine) == 3  # runs of 20 rows
    assert [e["duplicates"] for e in manifest["epochs"]] == [1] * script.EPOCHS
