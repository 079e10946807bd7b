"""Reading trackers back with each backend's own reader, and the map they should hold."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

import cartokit as ck
from cartokit.tracking import HISTOGRAM_BINS


def expected_counts(dynamics: ck.TrainingDynamics) -> dict[str, int]:
    return ck.region_counts(ck.compute_metrics(dynamics)).to_dict()


def expected_histogram(dynamics: ck.TrainingDynamics, column: str) -> list[int]:
    values = ck.compute_metrics(dynamics)[column].to_numpy()
    return np.histogram(values, bins=HISTOGRAM_BINS[column])[0].tolist()


def read_events(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"images": 0, "histograms": 0})
    events.Reload()
    return events


def wandb_records(run_dir: Path) -> tuple[list[dict], dict]:
    """The history rows of an offline run and what its run and exit records say (project,
    state), read by W&B's own reader of the run's ``.wandb`` log (``wandb leet inspect``)."""
    cli = shutil.which("wandb", path=str(Path(sys.executable).parent))
    assert cli is not None, "the wandb command comes with the wandb package"
    lines = subprocess.run(
        [cli, "leet", "inspect", "--json", str(run_dir)],
        capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL, timeout=120,
    ).stdout.splitlines()  # fmt: skip
    records = [json.loads(line) for line in lines]
    rows = [r["history"]["item"] for r in records if r["type"] == "history"]
    (run,) = [r["run"] for r in records if r["type"] == "run"]
    exits = [r["exit"] for r in records if r["type"] == "exit"]
    state = "finished" if exits and exits[-1].get("exit_code", 0) == 0 else "running"
    return rows, {"project": run["project"], "state": state}


def end_wandb() -> None:
    """Finish a run a failed test left, and forget W&B's settings (its ``WANDB_DIR``), so that
    the next test's ``wandb.init`` reads its own environment."""
    import wandb

    if wandb.run is not None:
        wandb.finish()
    wandb.teardown()


_MLFLOW_TEMPLATE: list[Path] = []


def mlflow_store(folder: Path, scratch: Path) -> str:
    """A SQLite MLflow store at ``folder/mlflow.db``, as a URI: a copy of one made once per
    session (creating MLflow's tables costs seconds; ``scratch`` holds that one)."""
    import mlflow

    if not _MLFLOW_TEMPLATE:
        template = scratch / "template.db"
        mlflow.MlflowClient(f"sqlite:///{template}").search_experiments()  # creates the tables
        _MLFLOW_TEMPLATE.append(template)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_MLFLOW_TEMPLATE[0], folder / "mlflow.db")
    return f"sqlite:///{folder / 'mlflow.db'}"


def map_rows(rows: list[dict]) -> list[dict]:
    return [r for r in rows if "cartography/regions/easy" in r]
