"""Test data shared by the study tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def synthetic_metrics(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "label": rng.integers(0, 3, n),
            "confidence": rng.random(n),
            "variability": rng.random(n) / 2,
            "correctness": rng.integers(0, 5, n) / 4,
            "forgetting": rng.integers(0, 3, n),
        },
        index=pd.Index(np.arange(100, 100 + n), name="id"),
    )


def fake_results(subsets=("full 100%", "random 33%", "ambiguous 33%"), seeds=(0, 1)):
    rows = []
    for i, name in enumerate(subsets):
        selector, _, pct = name.rpartition(" ")
        for seed in seeds:
            for split, base in (("test", 0.9 - 0.1 * i), ("rotated", 0.5 + 0.05 * i)):
                rows.append(
                    {
                        "subset": name,
                        "selector": selector,
                        "fraction": float(pct[:-1]) / 100,
                        "size": 100,
                        "seed": seed,
                        "split": split,
                        "accuracy": base + 0.01 * seed,
                        "macro_f1": base,
                    }
                )
    return pd.DataFrame(rows)


def user_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "thesis.txt").write_text("years of work\n")
    (path / "data").mkdir()
    (path / "data" / "raw.csv").write_text("1,2\n")
    return path


def snapshot(path: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(path)): p.read_bytes() if p.is_file() else None for p in path.rglob("*")
    }


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid
