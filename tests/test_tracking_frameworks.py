"""The map goes where the framework's curves go: CartographyTrainer follows the HF Trainer's
``report_to``, CartographyCallback uses the Lightning Trainer's loggers. Each backend is read
back with its own reader, and must hold the framework's loss and the map in the same run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from tracking_helpers import (
    end_wandb,
    expected_counts,
    map_rows,
    mlflow_store,
    read_events,
    wandb_records,
)

from cartokit.regions import REGIONS

pytest.importorskip("tensorboard", reason="TensorBoard is an optional extra: cartokit[tensorboard]")
mlflow = pytest.importorskip("mlflow", reason="MLflow is an optional extra: cartokit[mlflow]")
wandb = pytest.importorskip("wandb", reason="W&B is an optional extra: cartokit[wandb]")

N, C, EPOCHS, BATCH = 37, 3, 3, 8  # 5 steps per epoch, the last batch partial
STEPS = [5, 10, 15]


@pytest.fixture
def mlflow_uri(tmp_path, tmp_path_factory):
    """A new SQLite store (a copy of one made once: creating its tables costs seconds)."""
    return mlflow_store(tmp_path / "store", tmp_path_factory.getbasetemp())


@pytest.fixture
def offline(tmp_path, monkeypatch, mlflow_uri):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    end_wandb()  # a failed test must not leave the next one a live run, or W&B's settings


def assert_run_holds_the_map(client, run_id, dynamics, steps, loss_key):
    assert client.get_metric_history(run_id, loss_key), f"no {loss_key!r}: not the same run"
    want = expected_counts(dynamics)
    for region in REGIONS:
        logged = client.get_metric_history(run_id, f"cartography/regions/{region}")
        assert [m.step for m in logged] == steps and logged[-1].value == want[region]
    assert "cartography/metrics.json" in [
        a.path for a in client.list_artifacts(run_id, "cartography")
    ]


# ------------------------------------------------------------------------------ HF Trainer


def test_cartography_trainer_follows_report_to(offline, monkeypatch):
    datasets = pytest.importorskip("datasets")
    pytest.importorskip("transformers")
    from transformers import BertConfig, BertForSequenceClassification, TrainingArguments

    from cartokit.integrations.hf import CartographyTrainer

    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "hf")
    monkeypatch.setenv("WANDB_PROJECT", "hf")
    rng = np.random.default_rng(0)
    train = datasets.Dataset.from_dict(
        {"input_ids": rng.integers(1, 40, (N, 8)).tolist(), "label": rng.integers(0, C, N)}
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(
        BertConfig(
            vocab_size=40, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=37, max_position_embeddings=8, num_labels=C,
        )
    )  # fmt: skip
    args = TrainingArguments(
        output_dir=str(offline / "out"), per_device_train_batch_size=BATCH,
        num_train_epochs=EPOCHS, learning_rate=5e-3, use_cpu=True, save_strategy="no",
        logging_strategy="epoch", disable_tqdm=True, seed=0,
        report_to=["tensorboard", "mlflow", "wandb"],
    )  # fmt: skip
    trainer = CartographyTrainer(model=model, args=args, train_dataset=train)
    trainer.train()
    dynamics = trainer.dynamics
    wandb.finish()

    from transformers.integrations import TensorBoardCallback

    (tensorboard,) = [
        c for c in trainer.callback_handler.callbacks if isinstance(c, TensorBoardCallback)
    ]
    events = read_events(tensorboard.logging_dir)
    assert "train/loss" in events.Tags()["scalars"]  # the Trainer's curve, in the same folder
    logged = events.Scalars("cartography/regions/hard")
    assert [e.step for e in logged] == STEPS[1:]
    assert logged[-1].value == expected_counts(dynamics)["hard"]
    assert [i.step for i in events.Images("cartography/data_map")] == STEPS[1:]

    client = mlflow.MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("hf").experiment_id])
    assert run.info.status == "FINISHED"  # the Trainer's callback ended it, after the map
    assert_run_holds_the_map(client, run.info.run_id, dynamics, STEPS[1:], "loss")

    (run_dir,) = (offline / "wandb").glob("offline-run-*")
    rows, summary = wandb_records(run_dir)
    assert summary["project"] == "hf"
    assert any("train/loss" in r for r in rows)
    maps = map_rows(rows)
    assert [r["global_step"] for r in maps] == STEPS[1:]
    assert "cartography/metrics._type" in maps[-1]


def test_report_to_none_logs_no_map(offline):
    pytest.importorskip("transformers")
    from transformers import Trainer, TrainingArguments

    from cartokit.integrations.hf import report_trackers

    args = TrainingArguments(output_dir=str(offline / "out"), report_to="none", use_cpu=True)
    trainer = Trainer(model=torch.nn.Linear(2, 2), args=args)
    assert report_trackers(trainer) == []


# ------------------------------------------------------------------------------ Lightning


def test_lightning_callback_uses_the_trainers_loggers(offline, mlflow_uri):
    pytest.importorskip("lightning", reason="Lightning is an optional extra: cartokit[lightning]")
    import lightning.pytorch as pl
    from lightning.pytorch import loggers

    from cartokit.integrations.lightning import CartographyCallback

    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(size=(N, 6)), dtype=torch.float32)
    y = torch.tensor(rng.integers(0, C, N))

    class Data(torch.utils.data.Dataset):
        def __len__(self):
            return N

        def __getitem__(self, i):
            return {"idx": i, "x": x[i], "labels": y[i]}

    class Classifier(pl.LightningModule):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.lin = torch.nn.Linear(6, C)

        def training_step(self, batch, batch_idx):
            logits = self.lin(batch["x"])
            loss = torch.nn.functional.cross_entropy(logits, batch["labels"])
            self.log("train_loss", loss, on_step=True)
            return {"loss": loss, "logits": logits}

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.5)

        def train_dataloader(self):
            return torch.utils.data.DataLoader(Data(), batch_size=BATCH)

    tensorboard = loggers.TensorBoardLogger(save_dir=str(offline), name="tb")
    mlflow_logger = loggers.MLFlowLogger(experiment_name="lightning", tracking_uri=mlflow_uri)
    wandb_logger = loggers.WandbLogger(project="lightning", save_dir=str(offline), offline=True)
    csv = loggers.CSVLogger(save_dir=str(offline), name="csv")
    callback = CartographyCallback()
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=EPOCHS, log_every_n_steps=1,
        logger=[tensorboard, mlflow_logger, wandb_logger, csv], callbacks=[callback],
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
    )  # fmt: skip
    trainer.fit(Classifier())
    dynamics = callback.dynamics
    wandb_logger.experiment.finish()

    events = read_events(tensorboard.log_dir)
    assert "train_loss" in events.Tags()["scalars"]
    assert [e.step for e in events.Scalars("cartography/regions/easy")] == STEPS[1:]
    assert [h.step for h in events.Histograms("cartography/variability")] == STEPS[1:]

    client = mlflow.MlflowClient(mlflow_uri)
    assert_run_holds_the_map(client, mlflow_logger.run_id, dynamics, STEPS[1:], "train_loss")

    (run_dir,) = (offline / "wandb").glob("offline-run-*")
    rows, _ = wandb_records(run_dir)
    assert any("train_loss" in r for r in rows)
    assert [r["global_step"] for r in map_rows(rows)] == STEPS[1:]

    metrics = pd.read_csv(f"{csv.log_dir}/metrics.csv")  # another logger: the counts only
    counts = metrics.dropna(subset=["cartography/regions/easy"])
    assert counts["step"].tolist() == STEPS[1:]
    want = expected_counts(dynamics)
    assert {r: counts[f"cartography/regions/{r}"].iloc[-1] for r in REGIONS} == want
