"""The on-disk store: DynamicsRecorder(store=...), open_dynamics, write_store; crash safety, resume,
damaged and newer stores, a full disk."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import cartokit.recorder_store as recorder_store
from cartokit import DynamicsRecorder, TrainingDynamics, compute_metrics, plot_trajectories
from cartokit.store import open_dynamics, write_store

ROOT = Path(__file__).resolve().parents[1]
N, C, E = 60, 3, 4


def run(seed: int = 0, epochs: int = E, samples: int = N):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(epochs, samples, C, generator=g) * 2
    labels = torch.randint(0, C, (samples,), generator=g)
    return logits, labels


def record(rec: DynamicsRecorder, logits, labels, epochs=None, batch: int = 8, seed: int = 1):
    """Feed ``epochs`` of ``logits`` in shuffled batches, ending each epoch."""
    g = torch.Generator().manual_seed(seed)
    for e in range(logits.shape[0]) if epochs is None else epochs:
        for ids in torch.randperm(logits.shape[1], generator=g).split(batch):
            rec.update(ids, logits[e, ids], labels[ids])
        rec.end_epoch()
    return rec


@pytest.fixture(autouse=True)
def small_runs(monkeypatch):
    # several sorted runs per epoch, so that reads merge runs as at scale
    monkeypatch.setattr(recorder_store, "RUN_ROWS", 13)


@pytest.mark.parametrize("probs", [False, True])
def test_a_store_records_what_memory_records(tmp_path, probs):
    logits, labels = run()
    names = ["a", "b", "c"]
    ids = [f"s{i}" for i in range(N)]
    mem = DynamicsRecorder(N, C, sample_ids=ids, class_names=names, store_probs=probs)
    disk = DynamicsRecorder(
        N, C, sample_ids=ids, class_names=names, store_probs=probs, store=tmp_path / "s"
    )
    for rec in (mem, disk):
        record(rec, logits, labels)
    got, want = disk.dynamics, mem.dynamics
    assert type(got).__name__ == "StoreDynamics" and got.nbytes == 0  # nothing loaded yet
    pd.testing.assert_frame_equal(compute_metrics(got), compute_metrics(want))
    for name in ("gold_prob", "margin", "sq_error", "pred", "labels", "ids"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    if probs:
        np.testing.assert_array_equal(got.probs, want.probs)
    assert got.class_names == names and disk.duplicates == [0] * E
    # no record in memory: the run buffer, this epoch's labels and the known labels
    assert disk.memory_bytes() < 40 * N
    parts = list((tmp_path / "s" / "epochs" / "00000").glob("r*.parquet"))
    assert len(parts) == 5  # 60 rows in runs of at most 13


def test_repeats_in_an_epoch_count_once_and_unseen_samples_are_missing(tmp_path):
    logits, labels = run(epochs=3)
    mem, disk = DynamicsRecorder(N, C), DynamicsRecorder(N, C, store=tmp_path / "s")
    for rec in (mem, disk):
        for e in range(3):
            ids = torch.cat([torch.arange(0, N - 5), torch.tensor([3, 7, 3])])  # 5 unseen
            for batch in ids.split(7):
                rec.update(batch, logits[e, batch] * (1 + e), labels[batch])
            with pytest.warns(UserWarning, match=r"5 of 60 samples were not seen in epoch"):
                rec.end_epoch()
    assert disk.duplicates == mem.duplicates == [3, 3, 3]
    assert disk.missing == mem.missing == [5, 5, 5]
    pd.testing.assert_frame_equal(compute_metrics(disk.dynamics), compute_metrics(mem.dynamics))


def test_a_resumed_run_appends_and_other_settings_are_refused(tmp_path):
    logits, labels = run()
    store = tmp_path / "s"
    record(DynamicsRecorder(N, C, store=store), logits[:2], labels)
    again = DynamicsRecorder(N, C, store=store)
    assert again.num_epochs == 2
    record(again, logits, labels, epochs=[2, 3])
    whole = record(DynamicsRecorder(N, C), logits, labels)
    np.testing.assert_array_equal(open_dynamics(store).gold_prob, whole.dynamics.gold_prob)
    with pytest.raises(ValueError, match=r"was recorded with num_classes=3, this recorder has 4"):
        DynamicsRecorder(N, 4, store=store)
    with pytest.raises(ValueError, match=r"recorded with other sample ids .* pass the same"):
        DynamicsRecorder(N, C, store=store, sample_ids=[f"x{i}" for i in range(N)])
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"is not empty and holds no cartokit store"):
        DynamicsRecorder(N, C, store=tmp_path / "other")


def test_a_checkpoint_mid_epoch_resumes_the_epoch_and_drops_later_epochs(tmp_path):
    logits, labels = run()
    store = tmp_path / "s"
    rec = DynamicsRecorder(N, C, store=store)
    record(rec, logits[:2], labels)
    first = torch.arange(0, 25)
    rec.update(first, logits[2, first], labels[first])
    state = rec.state_dict()  # mid-epoch 2
    rest = torch.arange(25, N)
    rec.update(rest, logits[2, rest], labels[rest])
    rec.end_epoch()
    record(rec, logits, labels, epochs=[3])  # 4 epochs in the store, the checkpoint has 2
    resumed = DynamicsRecorder(N, C, store=store)
    with pytest.warns(UserWarning, match=r"holds 4 epochs, the checkpoint 2; epochs 2-3 are"):
        resumed.load_state_dict(state)
    resumed.update(rest, logits[2, rest], labels[rest])
    resumed.end_epoch()  # no warning: the first 25 samples came with the checkpoint
    assert open_dynamics(store).num_epochs == 3
    whole = record(DynamicsRecorder(N, C), logits[:3], labels)
    np.testing.assert_array_equal(open_dynamics(store).gold_prob, whole.dynamics.gold_prob)
    with pytest.raises(ValueError, match=r"the saved record is in the store .* create the"):
        DynamicsRecorder(N, C).load_state_dict(state)


def test_store_dynamics_serve_every_function_that_takes_dynamics(tmp_path):
    logits, labels = run()
    dyn = TrainingDynamics.from_logits(logits, labels, ids=[f"s{i}" for i in range(N)])
    opened = open_dynamics(write_store(dyn, tmp_path / "s"))
    fig = plot_trajectories(opened, ["s3", "s9"])
    np.testing.assert_array_equal(fig.axes[0].lines[1].get_ydata(), dyn.gold_prob[:, 9])
    np.testing.assert_array_equal(opened.select_epochs([1, 3]).margin, dyn.margin[[1, 3]])
    np.testing.assert_array_equal(opened.correct, dyn.correct)
    part = opened.read(10, 20, epochs=[0, 2])
    np.testing.assert_array_equal(part.gold_prob, dyn.gold_prob[[0, 2], 10:20])
    assert part.ids.tolist() == [f"s{i}" for i in range(10, 20)]


def test_the_explorer_takes_a_small_store(tmp_path):
    pytest.importorskip("bqplot", reason='the explorer needs pip install "cartokit[widgets]"')
    from cartokit.widgets import DataMapExplorer

    logits, labels = run()
    opened = open_dynamics(write_store(TrainingDynamics.from_logits(logits, labels), tmp_path))
    explorer = DataMapExplorer(compute_metrics(opened), dynamics=opened)
    assert explorer.dynamics is opened


# ---------------------------------------------------------------------------- faults


def test_a_newer_store_and_a_damaged_epoch_are_one_line_errors(tmp_path):
    logits, labels = run()
    store = write_store(TrainingDynamics.from_logits(logits, labels), tmp_path / "s")
    manifest = json.loads((store / "manifest.json").read_text())
    torn = store / manifest["epochs"][2]["parts"][0]["file"]
    torn.write_bytes(torn.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"epoch 2 of the store .* holds 100 bytes where") as err:
        open_dynamics(store)
    assert "\n" not in str(err.value) and "num_epochs=2) reads them" in str(err.value)
    assert open_dynamics(store, num_epochs=2).gold_prob.shape == (2, N)  # earlier epochs
    torn.unlink()
    with pytest.raises(ValueError, match=r"epoch 2 of the store .*\.parquet is missing"):
        compute_metrics(store)
    meta = json.loads((store / "store.json").read_text())
    (store / "store.json").write_text(json.dumps({**meta, "version": 99}))
    with pytest.raises(ValueError, match=r"written by a newer cartokit \(store version 99; this"):
        open_dynamics(store)
    with pytest.raises(FileNotFoundError, match=r"no dynamics store at .* \(it has no store"):
        open_dynamics(tmp_path / "nothing")


def test_a_full_disk_at_end_epoch_keeps_the_earlier_epochs(tmp_path, monkeypatch):
    """Simulated: no loop device or small tmpfs here, so the Parquet writer raises ENOSPC."""
    import pyarrow.parquet as pq

    logits, labels = run()
    store = tmp_path / "s"
    rec = record(DynamicsRecorder(N, C, store=store), logits[:2], labels)
    real = pq.ParquetWriter.write_table

    def no_space(self, table, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", no_space)
    with pytest.raises(
        OSError, match=r"epoch 2 was not recorded, cannot write .*No space left"
    ) as e:
        record(rec, logits, labels, epochs=[2])
    assert "\n" not in str(e.value) and "keeps the 2 epochs before it" in str(e.value)
    assert open_dynamics(store).num_epochs == 2
    assert not list(store.rglob("*.tmp")) and not list((store / "epochs").glob("00002/*"))
    monkeypatch.setattr(pq.ParquetWriter, "write_table", real)  # space freed: go on
    record(rec, logits, labels, epochs=[2, 3])
    whole = record(DynamicsRecorder(N, C), logits, labels)
    np.testing.assert_array_equal(open_dynamics(store).gold_prob, whole.dynamics.gold_prob)


def test_a_full_disk_at_the_commit_keeps_the_earlier_epochs(tmp_path, monkeypatch):
    import cartokit.store as store_module

    logits, labels = run()
    store = tmp_path / "s"
    rec = record(DynamicsRecorder(N, C, store=store), logits[:2], labels)
    real = store_module.atomic_write

    def full_at_manifest(path, mode="wb"):
        if Path(path).name == "manifest.json":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, mode)

    monkeypatch.setattr(store_module, "atomic_write", full_at_manifest)
    with pytest.raises(OSError, match=r"cannot write .*manifest.json: No space left on device"):
        record(rec, logits, labels, epochs=[2])
    assert open_dynamics(store).num_epochs == 2 and rec.num_epochs == 2
    assert not list((store / "epochs").glob("00002/r*"))


KILLED = """
import os, sys, time, torch
import cartokit.recorder_store as recorder_store
import cartokit.store as store
from cartokit import DynamicsRecorder
root, where = sys.argv[1], sys.argv[2]
g = torch.Generator().manual_seed(0)
logits, labels = torch.randn(3, 5000, 3, generator=g), torch.randint(0, 3, (5000,), generator=g)
rec = DynamicsRecorder(5000, 3, store=root)
for e in range(2):
    rec.update(torch.arange(5000), logits[e], labels)
    rec.end_epoch()

def hold(*args, **kwargs):
    open(os.path.join(root, "..", "ready"), "w").close()
    time.sleep(120)

if where == "part":  # mid-way through writing a part: after its first row group
    recorder_store.ROW_GROUP_ROWS = 1000
    real = store._arrow_table
    count = [0]
    def slow(columns, schema):
        count[0] += 1
        if count[0] == 2:
            hold()
        return real(columns, schema)
    store._arrow_table = slow
else:  # every part written, the manifest not yet replaced
    store.StoreWriter.commit = hold
rec.update(torch.arange(5000), logits[2], labels)
rec.end_epoch()
"""


@pytest.mark.parametrize("where", ["part", "commit"])
def test_a_process_killed_mid_write_leaves_the_earlier_epochs(tmp_path, where):
    store = tmp_path / "s"
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(store), where],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while not (tmp_path / "ready").exists():
        assert child.poll() is None, child.communicate()[1].decode()[-3000:]
        assert time.monotonic() < deadline, "the child never reached the write"
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    left = list((store / "epochs" / "00002").iterdir())
    assert left, "the kill left nothing of epoch 2 to ignore"
    opened = open_dynamics(store)
    assert opened.num_epochs == 2
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5000, 3, generator=g)
    labels = torch.randint(0, 3, (5000,), generator=g)
    want = TrainingDynamics.from_logits(logits[:2], labels)
    np.testing.assert_allclose(opened.gold_prob, want.gold_prob, atol=1e-6)
    resumed = DynamicsRecorder(5000, 3, store=store)  # appends, after clearing what was left
    resumed.update(torch.arange(5000), logits[2], labels)
    resumed.end_epoch()
    assert open_dynamics(store).num_epochs == 3
    assert not [p for p in (store / "epochs" / "00002").iterdir() if p.suffix == ".tmp"]
