"""Metrics over a store, block by block: the in-memory numbers exactly, in this process, on a
Dask cluster of 2 workers, and through ``cartokit metrics STORE -o m.parquet`` and ``cartokit
select``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cartokit import TrainingDynamics, compute_metrics, select
from cartokit.cli import main
from cartokit.io import read_metrics_table, write_metrics_parquet
from cartokit.store import StoreDynamics, open_dynamics, write_store

E, N, C = 5, 2000, 3


@pytest.fixture(scope="module")
def record() -> TrainingDynamics:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, C, N)
    logits = rng.normal(size=(E, N, C)) + np.linspace(0, 3, E)[:, None, None] * np.eye(C)[labels]
    dyn = TrainingDynamics.from_logits(
        logits, labels, ids=[f"s{i}" for i in range(N)], class_names=["x", "y", "z"]
    )
    # some samples unseen at some checkpoints, and an extra statistic, as a sequence record has
    unseen = rng.random((E, N)) < 0.05
    for name in ("gold_prob", "margin", "sq_error"):
        getattr(dyn, name)[unseen] = np.nan
    dyn.pred[unseen] = -1
    extra = np.where(unseen, np.nan, rng.random((E, N))).astype(np.float32)
    return TrainingDynamics(
        ids=dyn.ids, labels=dyn.labels, gold_prob=dyn.gold_prob, margin=dyn.margin,
        sq_error=dyn.sq_error, pred=dyn.pred, num_classes=C, class_names=dyn.class_names,
        extras={"token_accuracy": extra},
    )  # fmt: skip


@pytest.fixture(scope="module")
def store(record, tmp_path_factory):
    return write_store(record, tmp_path_factory.mktemp("store") / "s")


def never_load_it_all(monkeypatch) -> None:
    def refuse(self):
        raise AssertionError("the whole record was loaded")

    monkeypatch.setattr(StoreDynamics, "_full", refuse)


@pytest.mark.parametrize("kwargs", [{}, {"burn_in": 2}, {"epochs": [4, 0, 2]}])
def test_streamed_metrics_are_the_in_memory_metrics(record, store, monkeypatch, kwargs):
    want = compute_metrics(record, **kwargs)
    opened = open_dynamics(store)
    monkeypatch.setattr(StoreDynamics, "blocks", lambda self, size=None: blocks(self, 333))
    never_load_it_all(monkeypatch)
    got = compute_metrics(opened, **kwargs)
    pd.testing.assert_frame_equal(got, want)  # bit for bit, block boundaries or not
    assert {"perplexity", "token_accuracy", "label_name"} <= set(got.columns)


blocks = StoreDynamics.blocks


def test_metrics_straight_to_parquet_and_back(record, store, tmp_path, monkeypatch):
    never_load_it_all(monkeypatch)
    path = compute_metrics(store, output=tmp_path / "m.parquet")
    assert path == tmp_path / "m.parquet"
    pd.testing.assert_frame_equal(
        read_metrics_table(path, caller="select"), compute_metrics(record)
    )
    write_metrics_parquet(compute_metrics(record).head(3), tmp_path / "small.parquet")
    assert len(read_metrics_table(tmp_path / "small.parquet", caller="select")) == 3


def test_a_failure_mid_stream_writes_no_file_and_keeps_the_old_one(store, tmp_path, monkeypatch):
    import cartokit.streaming as streaming

    target = tmp_path / "m.parquet"
    target.write_bytes(b"the earlier table")
    real = streaming.block_metrics
    calls = []

    def fail_third(block, epochs, sources=None):
        calls.append(1)
        if len(calls) == 3:
            raise ValueError("compute_metrics: block 3 is broken.")
        return real(block, epochs, sources)

    monkeypatch.setattr(streaming, "block_metrics", fail_third)
    monkeypatch.setattr(StoreDynamics, "blocks", lambda self, size=None: blocks(self, 500))
    with pytest.raises(ValueError, match="block 3 is broken"):
        compute_metrics(store, output=target)
    assert target.read_bytes() == b"the earlier table"
    assert [p.name for p in tmp_path.iterdir()] == ["m.parquet"]


def test_a_dask_cluster_of_two_workers_gives_identical_results(
    record, store, tmp_path, monkeypatch
):
    distributed = pytest.importorskip("distributed", reason='pip install "cartokit[dask]"')
    want = compute_metrics(record)
    monkeypatch.setattr(StoreDynamics, "blocks", lambda self, size=None: blocks(self, 250))
    # two workers in this process (quick to start), reached over TCP as remote ones are: each
    # task and result is serialised on its way
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", dashboard_address=None
    ) as cluster:
        with distributed.Client(cluster) as client:
            with distributed.get_task_stream(client) as tasks:
                got = compute_metrics(open_dynamics(store), engine="dask")
            pd.testing.assert_frame_equal(got, want)
            ran = [t for t in tasks.data if t["key"].startswith("block_metrics")]
            assert len(ran) == N // 250 and len({t["worker"] for t in ran}) == 2
            address = cluster.scheduler_address
        out = tmp_path / "dask.parquet"
        assert main(["metrics", str(store), "-o", str(out), "--dask", address]) == 0
    pd.testing.assert_frame_equal(read_metrics_table(out, caller="select"), want)


def test_a_store_on_object_storage_reads_through_fsspec(record, store, tmp_path, monkeypatch):
    """A URL that fsspec knows (here its in-memory filesystem, standing for s3:// or gs://)."""
    fsspec = pytest.importorskip("fsspec", reason='pip install "cartokit[dask]"')
    fs = fsspec.filesystem("memory")
    for path in store.rglob("*"):
        if path.is_file():
            fs.pipe(f"/bucket/run/{path.relative_to(store).as_posix()}", path.read_bytes())
    opened = open_dynamics("memory://bucket/run")
    assert opened.location == "memory://bucket/run" and opened.num_samples == N
    monkeypatch.setattr(StoreDynamics, "blocks", lambda self, size=None: blocks(self, 700))
    never_load_it_all(monkeypatch)
    pd.testing.assert_frame_equal(compute_metrics(opened), compute_metrics(record))
    out = tmp_path / "m.parquet"
    assert main(["metrics", "memory://bucket/run", "-o", str(out)]) == 0
    pd.testing.assert_frame_equal(read_metrics_table(out, caller="t"), compute_metrics(record))
    fs.rm("/bucket/run", recursive=True)


def test_cli_metrics_of_a_store_to_parquet_then_select(record, store, tmp_path, capsys):
    out = tmp_path / "m.parquet"
    assert main(["metrics", str(store), "-o", str(out), "--burn-in", "1"]) == 0
    said = capsys.readouterr().err
    assert f"{N} samples x {E} checkpoints x {C} classes; regions" in said
    want = compute_metrics(record, burn_in=1)
    pd.testing.assert_frame_equal(read_metrics_table(out, caller="select"), want)
    ids = tmp_path / "ids.txt"
    assert main(["select", str(out), "--by", "ambiguous", "--fraction", "0.1", "-o", str(ids)]) == 0
    assert ids.read_text().split() == [str(i) for i in select(want, "ambiguous", 0.1)]
    csv = tmp_path / "m.csv"
    assert main(["metrics", str(store), "-o", str(csv)]) == 0  # CSV for small runs, still
    np.testing.assert_allclose(
        pd.read_csv(csv, index_col="id")["confidence"], compute_metrics(record)["confidence"],
        rtol=1e-6,
    )  # fmt: skip


def test_a_broken_parquet_table_and_an_unreachable_scheduler_are_one_line(
    store, tmp_path, capsys, monkeypatch
):
    good = compute_metrics(store, output=tmp_path / "m.parquet")
    torn = tmp_path / "torn.parquet"
    torn.write_bytes(good.read_bytes()[:-200])
    assert main(["select", str(torn), "-o", str(tmp_path / "ids.txt")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"cartokit select: error: {torn} is not a readable Parquet file")
    assert "\n" not in err
    pytest.importorskip("distributed", reason='pip install "cartokit[dask]"')
    monkeypatch.setattr("cartokit.cli.DASK_CONNECT_TIMEOUT", "1s")
    out = tmp_path / "x.parquet"
    assert main(["metrics", str(store), "-o", str(out), "--dask", "tcp://127.0.0.1:9"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("cartokit metrics: error: cannot reach the Dask scheduler at tcp://")
    assert not out.exists()
