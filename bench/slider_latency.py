"""Python-side latency of one threshold-slider move in DataMapExplorer, at 100,000 points.

Prints one JSON line. A move is timed as setting the ``easy_confidence`` traitlet, and as setting
the slider's ``value`` (the path a move in the page takes once its message is decoded): the
explorer recomputes regions, per-class counts, the counts table, the point colours (serialised
as float32 buffers, as they would be sent; no kernel is attached, so nothing leaves the process)
and the guide lines. The budget is 50 ms.

Two baselines run in the same process on the same table:

* ``assign_regions``: the public ``assign_regions`` plus ``region_counts(..., by="label")``,
  the floor any recount pays;
* ``rebuild``: a naive re-render that does the same recount and then builds a new scatter mark
  (x, y, colour) and puts it in the figure in place of the old one.

    python bench/slider_latency.py [--points 100000] [--repeats 60]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import time

import numpy as np

from cartokit import Thresholds, TrainingDynamics, assign_regions, compute_metrics, region_counts
from cartokit.widgets import DataMapExplorer


def synthetic_metrics(n: int, epochs: int = 6, classes: int = 3, seed: int = 0):
    """A plausible data map: gold-label logits drifting upwards, 10% flipped labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    flipped = rng.random(n) < 0.1
    skill = rng.normal(1.0, 2.0, n) - 4.0 * flipped
    logit = skill + np.linspace(-1.0, 2.0, epochs)[:, None] + rng.normal(0, 1.2, (epochs, n))
    gold = (1 / (1 + np.exp(-logit))).astype(np.float32)
    wrong = (labels + rng.integers(1, classes, (epochs, n))) % classes
    dyn = TrainingDynamics(
        ids=None,
        labels=labels,
        gold_prob=gold,
        margin=logit.astype(np.float32),
        sq_error=2 * (1 - gold) ** 2,
        pred=np.where(gold > 0.5, labels, wrong),
        num_classes=classes,
    )
    return compute_metrics(dyn)


def timed(step, values) -> np.ndarray:
    times = []
    for value in values:
        start = time.perf_counter()
        step(value)
        times.append(time.perf_counter() - start)
    return np.asarray(times) * 1e3


def summary(ms: np.ndarray) -> dict[str, float]:
    return {
        "median_ms": round(float(np.median(ms)), 3),
        "p95_ms": round(float(np.percentile(ms, 95)), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=60)
    args = parser.parse_args()

    metrics = synthetic_metrics(args.points)
    start = time.perf_counter()
    explorer = DataMapExplorer(metrics)
    build_s = time.perf_counter() - start
    rng = np.random.default_rng(1)
    # Distinct values on the slider's 0.01 grid, so that every set is a real change.
    values = np.round(rng.uniform(0.4, 0.95, args.repeats + 10), 2)
    values[1:][values[1:] == values[:-1]] += 0.01
    slider = explorer.sliders["easy_confidence"]

    timed(lambda v: setattr(explorer, "easy_confidence", float(v)), values[:10])  # warm-up
    trait = timed(lambda v: setattr(explorer, "easy_confidence", float(v)), values[10:])
    moves = timed(lambda v: setattr(slider, "value", float(v)), values[10:][::-1])
    assert explorer.counts.equals(region_counts(metrics, explorer.thresholds))

    def recount(v: float) -> None:
        t = Thresholds(easy_confidence=float(v))
        assign_regions(metrics, t)
        region_counts(metrics, t, by="label")

    def rebuild(v: float) -> None:
        t = Thresholds(easy_confidence=float(v))
        codes = assign_regions(metrics, t).cat.codes.to_numpy()
        region_counts(metrics, t, by="label")
        mark = type(explorer.scatter)(
            x=metrics["variability"].to_numpy(np.float32),
            y=metrics["confidence"].to_numpy(np.float32),
            color=codes.astype(np.float32),
            scales=explorer.scatter.scales,
        )
        explorer.figure.marks = [mark, *explorer.figure.marks[1:]]

    floor = timed(recount, values[10:])
    naive = timed(rebuild, values[10:])
    result = {
        "bench": "slider_latency",
        "points": args.points,
        "backend": explorer.backend,
        "repeats": args.repeats,
        "budget_ms": 50,
        "build_s": round(build_s, 3),
        "set_trait": summary(trait),
        "slider_move": summary(moves),
        "baseline_assign_regions": summary(floor),
        "baseline_rebuild": summary(naive),
        "speedup_vs_rebuild": round(float(np.median(naive) / np.median(moves)), 2),
        "within_budget": bool(np.percentile(moves, 95) <= 50 and np.percentile(trait, 95) <= 50),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
