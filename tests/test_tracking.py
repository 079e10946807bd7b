"""The data map in experiment trackers: fit, CartographyTrainer and CartographyCallback log it,
and each backend's own reader reads it back (TensorBoard's event reader, MLflow's client, the
W&B offline run folder through ``wandb leet inspect``).

The oracle of every backend test is the record itself: the region counts, histograms and table
read back must equal those computed from ``result.dynamics`` after training.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from tracking_helpers import (
    end_wandb,
    expected_counts,
    expected_histogram,
    map_rows,
    mlflow_store,
    read_events,
    wandb_records,
)

import cartokit as ck
from cartokit.regions import REGIONS
from cartokit.tracking import (
    HISTOGRAM_BINS,
    MapSnapshot,
    MLflowTracker,
    TensorBoardTracker,
    Tracker,
    Trackers,
    WandbTracker,
    check_tracking,
    make_trackers,
)

N, D, C, EPOCHS, BATCH = 60, 5, 3, 4, 20  # 3 steps per epoch
STEPS = [3 * e for e in range(1, EPOCHS + 1)]  # optimizer steps at each epoch's end


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D)).astype(np.float32)
    y = rng.integers(0, C, N)
    y[:6] = (y[:6] + 1) % C  # a few flipped labels, so that the map has a hard corner
    return x, y


def train(tracking, **options):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(D, 16), torch.nn.ReLU(), torch.nn.Linear(16, C))
    return ck.fit(
        model, data(), epochs=EPOCHS, batch_size=BATCH, lr=0.05, progress=False,
        eval_data={"test": data(1)}, tracking=tracking, **options,
    )  # fmt: skip


# ------------------------------------------------------------------------------ the protocol


class Spy(Tracker):
    """Keeps what it is given."""

    backend = "spy"

    def __init__(self) -> None:
        super().__init__(owned=False)
        self.scalars: list[tuple[int, dict]] = []
        self.maps: list[MapSnapshot] = []
        self.closed = 0

    def log_scalars(self, values, step):
        self.scalars.append((step, dict(values)))

    def log_map(self, snapshot):
        self.maps.append(snapshot)

    def close(self):
        self.closed += 1


def test_fit_logs_history_rows_and_the_map_from_its_second_checkpoint():
    spy = Spy()
    result = train(spy)
    assert [step for step, _ in spy.scalars] == STEPS
    first = spy.scalars[0][1]
    assert "step" not in first and first["train_loss"] == result.history["train_loss"][0]
    assert set(first) == set(result.history.columns) - {"step"}
    # checkpoint 1 has no variability: the map starts at 2; the last one comes with the table
    assert [s.step for s in spy.maps] == STEPS[1:]
    assert [s.num_checkpoints for s in spy.maps] == [2, 3, 4]
    assert [s.metrics is None for s in spy.maps] == [True, True, False]
    final = spy.maps[-1]
    assert final.counts == expected_counts(result.dynamics)
    assert sum(final.counts.values()) == N and list(final.counts) == list(REGIONS)
    for column in ("confidence", "variability"):
        assert final.histograms[column][0].tolist() == expected_histogram(result.dynamics, column)
    pd.testing.assert_frame_equal(
        final.metrics.drop(columns="region"), ck.compute_metrics(result.dynamics)
    )
    assert final.image.dtype == np.uint8 and final.image.ndim == 3 and final.image.shape[2] == 3
    assert final.image.std() > 10  # a drawn figure, not a blank canvas
    assert spy.closed == 1  # a tracker passed in is closed (flushed), once


def test_fit_closes_its_trackers_when_training_fails():
    spy = Spy()
    calls = []

    def failing_loss(logits, labels, positions):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("boom")
        return torch.nn.functional.cross_entropy(logits, labels)

    with pytest.raises(RuntimeError, match="boom"):
        train(spy, loss_fn=failing_loss)
    assert spy.closed == 1 and len(spy.scalars) == 1


def test_fit_without_record_logs_only_the_history():
    spy = Spy()
    train(spy, record=False)
    assert len(spy.scalars) == EPOCHS and spy.maps == []


def test_bad_tracking_values_are_refused_in_one_sentence():
    with pytest.raises(ValueError, match=r"The 'tracking' parameter of fit must be one of "
                       r"\['tensorboard', 'mlflow', 'wandb'\]\. Got 'tensorbord' instead\. "
                       r"Did you mean 'tensorboard'\?"):  # fmt: skip
        train("tensorbord")
    with pytest.raises(TypeError, match=r"The 'tracking' parameter of fit must be a backend name"
                       r".* Got 3 of type int instead\."):  # fmt: skip
        train(3)
    assert check_tracking(None, caller="fit") == ()
    assert check_tracking(["mlflow", "wandb"], caller="fit") == ("mlflow", "wandb")


def test_a_missing_backend_names_its_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ImportError, match=r'WandbTracker needs wandb\. Install it with: pip '
                       r'install "cartokit\[wandb\]"'):  # fmt: skip
        WandbTracker()


# ------------------------------------------------------------------------------ TensorBoard


def test_tensorboard_through_fit(tmp_path):
    tracker = TensorBoardTracker(tmp_path / "tb")
    result = train(tracker)
    tracker.close()
    events = read_events(tmp_path / "tb")
    tags = events.Tags()
    assert {"train_loss", "test_accuracy", "epoch"} <= set(tags["scalars"])
    assert [e.value for e in events.Scalars("train_loss")] == pytest.approx(
        result.history["train_loss"].tolist()
    )
    want = expected_counts(result.dynamics)
    for region in REGIONS:
        logged = events.Scalars(f"cartography/regions/{region}")
        assert [e.step for e in logged] == STEPS[1:]
        assert logged[-1].value == want[region]
    for column in ("confidence", "variability"):
        histograms = events.Histograms(f"cartography/{column}")
        assert [h.step for h in histograms] == STEPS[1:]
        last = histograms[-1].histogram_value
        assert last.num == N
        assert list(last.bucket_limit) == pytest.approx(HISTOGRAM_BINS[column][1:].tolist())
        assert list(last.bucket) == expected_histogram(result.dynamics, column)
    images = events.Images("cartography/data_map")
    assert [i.step for i in images] == STEPS[1:]
    assert images[-1].encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n"
    table = pd.read_csv(tmp_path / "tb" / "cartography_metrics.csv", index_col="id")
    assert len(table) == N and table["region"].value_counts().to_dict() == {
        k: v for k, v in want.items() if v
    }
    text = events.Tensors("cartography/metrics/text_summary")[-1]
    summary = text.tensor_proto.string_val[0].decode()
    assert "| region | samples | share | confidence | variability |" in summary
    assert "cartography_metrics.csv" in summary


def test_fit_by_name_makes_and_closes_its_own_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train("tensorboard")
    (folder,) = (tmp_path / "runs").iterdir()  # SummaryWriter's default place
    assert "cartography/data_map" in read_events(folder).Tags()["images"]


# ------------------------------------------------------------------------------ MLflow


@pytest.fixture
def mlflow_uri(tmp_path, tmp_path_factory):
    """A new SQLite store (a copy of one made once: creating its tables costs seconds)."""
    pytest.importorskip("mlflow", reason="MLflow is an optional extra: cartokit[mlflow]")
    return mlflow_store(tmp_path / "store", tmp_path_factory.getbasetemp())


def test_mlflow_through_fit(mlflow_uri, monkeypatch, tmp_path):
    import mlflow

    uri = mlflow_uri
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root: ./mlruns
    spy = Spy()
    result = train(["mlflow", spy])  # by name: a new run, ended by fit
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("cartokit").experiment_id
    (run,) = client.search_runs([experiment])
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "test_accuracy")
    assert [m.step for m in history] == STEPS
    assert [m.value for m in history] == pytest.approx(result.history["test_accuracy"].tolist())
    want = expected_counts(result.dynamics)
    for region in REGIONS:
        logged = client.get_metric_history(run.info.run_id, f"cartography/regions/{region}")
        assert [m.step for m in logged] == STEPS[1:] and logged[-1].value == want[region]
    table = client.load_table(experiment, "cartography/metrics.json", [run.info.run_id])
    expected = ck.compute_metrics(result.dynamics)
    assert len(table) == N and table["id"].tolist() == expected.index.tolist()
    np.testing.assert_allclose(table["confidence"], expected["confidence"], rtol=1e-6)
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "cartography")]
    assert "cartography/confidence_histogram" in artifacts
    last = f"cartography/confidence_histogram/step_{STEPS[-1]:08d}.json"
    histogram = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/{last}")
    assert histogram["counts"] == expected_histogram(result.dynamics, "confidence")
    images = client.list_artifacts(run.info.run_id, "images")
    assert sum(a.path.endswith(".png") for a in images) >= len(STEPS[1:])


def test_mlflow_refuses_its_old_file_store_in_one_sentence(tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="MLflow is an optional extra: cartokit[mlflow]")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    with pytest.raises(ValueError, match=r"^MLflowTracker: MLflow 3 opens its old file store "
                       r"\(file:.*\) only with MLFLOW_ALLOW_FILE_STORE=true\. Use a local SQLite"
                       r" file instead"):  # fmt: skip
        MLflowTracker(f"file:{tmp_path / 'mlruns'}")


# ------------------------------------------------------------------------------ W&B


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="W&B is an optional extra: cartokit[wandb]")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    end_wandb()


def test_wandb_offline_through_fit(offline_wandb):
    result = train("wandb")
    (run_dir,) = (offline_wandb / "wandb").glob("offline-run-*")
    rows, summary = wandb_records(run_dir)
    assert summary["state"].startswith("finished")  # fit ended the run it made
    history = [r for r in rows if "train_loss" in r]
    assert [r["global_step"] for r in history] == STEPS
    assert [r["train_loss"] for r in history] == pytest.approx(result.history["train_loss"])
    maps = map_rows(rows)
    assert [r["global_step"] for r in maps] == STEPS[1:]
    want = expected_counts(result.dynamics)
    assert {region: maps[-1][f"cartography/regions/{region}"] for region in REGIONS} == want
    last = maps[-1]
    assert last["cartography/confidence._type"] == "histogram"
    assert last["cartography/confidence.values"] == expected_histogram(
        result.dynamics, "confidence"
    )
    assert (run_dir / "files" / last["cartography/data_map.path"]).stat().st_size > 10_000
    table = json.loads((run_dir / "files" / last["cartography/metrics.path"]).read_text())
    frame = pd.DataFrame(table["data"], columns=table["columns"])
    expected = ck.compute_metrics(result.dynamics)
    assert frame["id"].tolist() == expected.index.tolist()
    np.testing.assert_allclose(frame["variability"], expected["variability"], rtol=1e-6)


def test_wandb_table_beyond_its_row_limit_goes_whole_to_a_file(offline_wandb, monkeypatch):
    import wandb

    monkeypatch.setattr(wandb.Table, "MAX_ROWS", N - 1)
    tracker = WandbTracker(dir=offline_wandb)
    result = train(tracker)
    tracker.close()
    (run_dir,) = (offline_wandb / "wandb").glob("offline-run-*")
    rows, _ = wandb_records(run_dir)
    assert "cartography/metrics._type" not in map_rows(rows)[-1]
    saved = pd.read_csv(run_dir / "files" / "cartography_metrics.csv", index_col="id")
    assert saved.index.tolist() == ck.compute_metrics(result.dynamics).index.tolist()


def test_wandb_init_failure_is_one_sentence(offline_wandb, monkeypatch):
    import wandb

    def refuse(**kwargs):
        raise wandb.errors.UsageError("api_key not configured (no-tty).\ncall wandb.login()")

    monkeypatch.setattr(wandb, "init", refuse)
    with pytest.raises(RuntimeError, match=r"^WandbTracker: wandb.init failed: api_key not "
                       r"configured \(no-tty\)\.\. Log in with `wandb login`, or set "
                       r"WANDB_MODE=offline"):  # fmt: skip
        WandbTracker()


# ------------------------------------------------------------------------------ run folders


def test_make_trackers_keeps_everything_in_the_run_folder(
    tmp_path, tmp_path_factory, offline_wandb, monkeypatch
):
    mlflow = pytest.importorskip("mlflow", reason="MLflow is an optional extra: cartokit[mlflow]")

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    folder = tmp_path / "run"
    mlflow_store(folder, tmp_path_factory.getbasetemp())  # MLflow adds its run to this file
    with Trackers(["tensorboard", "mlflow", "wandb", "mlflow"], directory=folder) as trackers:
        assert [t.backend for t in trackers.trackers] == ["tensorboard", "mlflow", "wandb"]
        train(trackers)
        assert "tensorboard" in repr(trackers) and "mlflow.db" in repr(trackers)
    assert read_events(folder / "tensorboard").Tags()["images"] == ["cartography/data_map"]
    client = mlflow.MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("cartokit").experiment_id])
    assert run.info.status == "FINISHED"  # the with block ended the runs it made
    assert Path(run.info.artifact_uri.removeprefix("file://")).is_relative_to(folder)
    (run_dir,) = (folder / "wandb").glob("offline-run-*")
    assert wandb_records(run_dir)[1]["state"].startswith("finished")
    assert make_trackers([], directory=folder) == []


# ------------------------------------------------------------------------------ the study


def test_notebook_01_logs_into_its_run_folder_which_may_move(
    tmp_path, tmp_path_factory, monkeypatch
):
    """``cartokit run -p tracking=[tensorboard,mlflow]``: notebook 01's own cells, run here
    in-process with CI-sized parameters, log into the staging folder; once the runner has
    repointed the MLflow store and renamed the folder, MLflow's client still reads the run's
    artifacts there (a neighbour whose name the old one prefixes is left alone)."""
    mlflow = pytest.importorskip("mlflow", reason="MLflow is an optional extra: cartokit[mlflow]")
    from notebook_cells import code_cells, load, python_of, source

    from cartokit import study
    from cartokit.tracking import repoint_mlflow_store

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    staged, out = tmp_path / ".ci.partial-12", tmp_path / "ci"
    neighbour = tmp_path / ".ci.partial-123"
    mlflow_store(staged, tmp_path_factory.getbasetemp())
    uri = f"sqlite:///{staged / 'mlflow.db'}"
    mlflow.MlflowClient(uri).create_experiment("other", (neighbour / "mlartifacts").as_uri())
    overrides = study.validate_params(tracking="tensorboard")["tracking"]
    assert overrides == ["tensorboard"]  # one name from -p becomes a list
    first, *cells = code_cells(load("01_train_and_record"))
    namespace: dict = {}
    exec(python_of(source(first)), namespace)
    namespace.update(
        run_dir=str(staged), epochs=3, max_samples=200, tracking=["tensorboard", "mlflow"]
    )
    for cell in cells:
        exec(python_of(source(cell)), namespace)
    dynamics = namespace["result"].dynamics

    assert repoint_mlflow_store(staged, staged, out) == 2  # the experiment and its run
    staged.rename(out)
    events = read_events(out / "tensorboard")
    assert [e.step for e in events.Scalars("cartography/regions/hard")][-1] > 0
    client = mlflow.MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("cartokit")
    assert experiment.artifact_location == (out / "mlartifacts").as_uri()
    (run,) = client.search_runs([experiment.experiment_id])
    table = client.load_table(experiment.experiment_id, "cartography/metrics.json")
    assert len(table) == dynamics.num_samples
    assert [a.path for a in client.list_artifacts(run.info.run_id, "cartography")]
    other = client.get_experiment_by_name("other").artifact_location
    assert other == (neighbour / "mlartifacts").as_uri()
    assert repoint_mlflow_store(tmp_path / "nothing", staged, out) == 0
