"""What ``cartokit explore PATH`` reads (cartokit.widgets.page.read_explorable), with no server:
every kind of PATH the command takes gives the same metrics table, and a bad one is refused by
the command in one line naming the file, before any server starts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cartokit import TrainingDynamics, compute_metrics
from cartokit.cli import main
from cartokit.io import write_allenai, write_metrics_csv, write_metrics_parquet
from cartokit.widgets.page import read_explorable

pytest.importorskip("pyarrow", reason="metrics tables need pyarrow (a core dependency)")


@pytest.fixture
def probs() -> tuple[np.ndarray, np.ndarray]:
    """Softmax outputs of 4 epochs x 30 samples x 3 classes, and the labels."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 30, 3)) + np.linspace(0, 2, 4)[:, None, None]
    exp = np.exp(logits)
    return exp / exp.sum(axis=2, keepdims=True), rng.integers(0, 3, 30)


def write_trustai(path, probs: np.ndarray, labels: np.ndarray) -> None:
    """TrustAI's signal file: one ``str(dict)`` line per sample per recorded step."""
    lines = []
    for step in probs:
        for i, (row, label) in enumerate(zip(step, labels)):
            record = {"id": i, "label": int(label), "probs": [float(p) for p in row]}
            lines.append(f"{record}\n")
    path.write_text("".join(lines))


def test_every_kind_of_path_gives_the_same_map(tmp_path, probs):
    p, labels = probs
    dyn = TrainingDynamics.from_probabilities(p, labels, np.arange(30))
    want = compute_metrics(dyn)
    run = tmp_path / "run"  # a cartokit run folder: its metrics (extra columns kept) + dynamics
    run.mkdir()
    write_metrics_csv(want.assign(flipped=want.index % 7 == 0), run / "metrics.csv")
    dyn.save(run / "dynamics.npz")
    write_allenai(dyn, tmp_path / "allenai", logits=np.log(p))
    write_trustai(tmp_path / "signals.jsonl", p, labels)
    paths = {
        "csv": write_metrics_csv(want, tmp_path / "m.csv"),
        "parquet": write_metrics_parquet(want, tmp_path / "m.parquet"),
        "npz": dyn.save(tmp_path / "d.npz"),
        "allenai": tmp_path / "allenai",
        "trustai": tmp_path / "signals.jsonl",
        "run": run,
    }
    for kind, path in paths.items():
        metrics, dynamics = read_explorable(path)
        assert metrics.index.astype(str).tolist() == [str(i) for i in range(30)], kind
        np.testing.assert_allclose(
            metrics["confidence"], want["confidence"], rtol=1e-5, err_msg=kind
        )
        assert (dynamics is None) == (kind in ("csv", "parquet")), kind
    assert read_explorable(run)[0]["flipped"].sum() == 5  # ids 0, 7, 14, 21, 28


def test_a_bad_path_is_refused_in_one_line_before_serving(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a data map\n")
    pd.DataFrame({"x": [1, 2]}).to_parquet(tmp_path / "other.parquet")
    for path, says in [
        (tmp_path / "missing.csv", "Nothing at"),
        (notes, "cartokit explore takes a metrics table (.csv or .parquet), a dynamics file"),
        (tmp_path / "other.parquet", "lacks the column(s)"),
    ]:
        assert main(["explore", str(path), "--no-browser"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("cartokit explore: error: ") and err.count("\n") == 1, err
        assert str(path) in err and says in err, err
        assert "serving" not in err
