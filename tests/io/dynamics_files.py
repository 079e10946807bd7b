"""Dynamics files for the io tests: allenai runs and TrustAI lines written by hand, and the
paper's definitions computed literally from them (the oracle)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np

from cartokit.dynamics import TrainingDynamics
from cartokit.metrics import compute_metrics

Rows = dict[int, list[dict[str, Any]]]

# ----------------------------------------------------------------------------- helpers


def make_rows(
    guids: list[Any], *, epochs: int = 3, classes: int = 3, seed: int = 0, shuffle: bool = True
) -> Rows:
    """Allenai records per epoch for the given guids; rows shuffled differently each epoch."""
    rng = random.Random(seed)
    gold = {g: rng.randrange(classes) for g in guids}
    rows: Rows = {}
    for e in range(epochs):
        records = [
            {
                "guid": g,
                f"logits_epoch_{e}": [rng.gauss(0.0, 2.0) for _ in range(classes)],
                "gold": gold[g],
            }
            for g in guids
        ]
        if shuffle:
            rng.shuffle(records)
        rows[e] = records
    return rows


def write_run(root: Path, rows: Rows, *, text: dict[int, str] | None = None) -> Path:
    """Write ``root/training_dynamics/dynamics_epoch_<e>.jsonl``; ``text`` overrides a file."""
    folder = root / "training_dynamics"
    folder.mkdir(parents=True, exist_ok=True)
    for e, records in rows.items():
        body = "".join(json.dumps(r) + "\n" for r in records)
        (folder / f"dynamics_epoch_{e}.jsonl").write_text(body, encoding="utf-8")
    for e, body in (text or {}).items():
        (folder / f"dynamics_epoch_{e}.jsonl").write_text(body, encoding="utf-8")
    return root


def lines_of(records: list[dict[str, Any]]) -> list[str]:
    return [json.dumps(r) for r in records]


def oracle(rows: Rows) -> dict[str, tuple[float, float, float]]:
    """The paper's definitions, literally: per guid and epoch a softmax, then mean / std / hits."""
    probs: dict[str, list[float]] = {}
    hits: dict[str, list[bool]] = {}
    for e in sorted(rows):
        for record in rows[e]:
            logits, gold = record[f"logits_epoch_{e}"], record["gold"]
            top = max(logits)
            exps = [math.exp(v - top) for v in logits]
            key = str(record["guid"])
            probs.setdefault(key, []).append(exps[gold] / sum(exps))
            best = max(range(len(logits)), key=lambda k: logits[k])
            hits.setdefault(key, []).append(best == gold)
    return {
        g: (sum(p) / len(p), float(np.std(p)), sum(hits[g]) / len(hits[g]))
        for g, p in probs.items()
    }


def assert_matches_oracle(dyn: TrainingDynamics, rows: Rows) -> None:
    expected = oracle(rows)
    table = compute_metrics(dyn)
    assert sorted(str(i) for i in table.index) == sorted(expected)
    for guid, got in zip(table.index, table.itertuples(), strict=True):
        want = expected[str(guid)]
        assert abs(got.confidence - want[0]) < 1e-6
        assert abs(got.variability - want[1]) < 1e-6
        assert abs(got.correctness - want[2]) < 1e-12


def base_rows() -> Rows:
    """5 samples, 3 epochs, 3 classes, rows in guid order: row k is on line k + 1."""
    return make_rows(list(range(5)), epochs=3, classes=3, seed=11, shuffle=False)


def trustai_line(sid: Any, label: Any, probs: list[Any], **extra: Any) -> str:
    record = {"id": sid, "label": label, "pred_label": 0, "correct": "true", "loss": 0.1}
    record.update(probs=probs, label_probs=probs[0] if probs else 0, **extra)
    return str(record)  # what TrustAI's writer does: a Python dict repr, single quotes


def write_trustai(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "output_data.json"
    path.write_text("\n".join(lines) + "\n")
    return path
