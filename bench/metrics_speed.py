"""compute_metrics speed on in-memory dynamics, on one core.

Prints one JSON line. The baseline is a literal per-sample loop (numpy on each sample's epoch
vector, as the paper's script does), run in this process on a slice of the same data; the ratio
compares per-sample throughput.

    python bench/metrics_speed.py [--samples 1000000] [--epochs 10] [--baseline-samples 50000]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as the target says

import argparse
import json
import time

import numpy as np

from cartokit import TrainingDynamics, compute_metrics


def synthetic_dynamics(n: int, e: int, c: int, seed: int = 0) -> TrainingDynamics:
    """Plausible dynamics: gold probabilities drifting upwards per sample, with noise."""
    rng = np.random.default_rng(seed)
    skill = rng.normal(0.0, 2.0, n).astype(np.float32)
    steps = np.linspace(-1.0, 2.0, e, dtype=np.float32)[:, None]
    gold_logit = skill[None, :] + steps + rng.normal(0, 1, (e, n)).astype(np.float32)
    gold = (1 / (1 + np.exp(-gold_logit))).astype(np.float32)
    labels = rng.integers(0, c, n)
    wrong = (labels[None, :] + rng.integers(1, c, (e, n))) % c
    pred = np.where(gold > 0.5, labels[None, :], wrong)
    return TrainingDynamics(
        ids=None,
        labels=labels,
        gold_prob=gold,
        margin=gold_logit,
        sq_error=(1 - gold) ** 2 * (1 + 1 / (c - 1)),  # the rest spread evenly
        pred=pred,
        num_classes=c,
    )


def literal_loop(dyn: TrainingDynamics) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"confidence": [], "variability": [], "correctness": []}
    for i in range(dyn.num_samples):
        p = dyn.gold_prob[:, i].astype(np.float64)
        ok = dyn.pred[:, i] == dyn.labels[i]
        out["confidence"].append(float(np.mean(p)))
        out["variability"].append(float(np.std(p)))
        out["correctness"].append(float(np.mean(ok)))
        forgot = sum(1 for a, b in zip(ok[:-1], ok[1:]) if a and not b)
        out.setdefault("forgetting", []).append(forgot)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--classes", type=int, default=3)
    ap.add_argument("--baseline-samples", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    dyn = synthetic_dynamics(args.samples, args.epochs, args.classes)
    compute_metrics(dyn)  # warm-up
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        metrics = compute_metrics(dyn)
        times.append(time.perf_counter() - t0)
    best = min(times)

    small = dyn.select_epochs(slice(None))
    small = TrainingDynamics(
        ids=None,
        labels=dyn.labels[: args.baseline_samples],
        gold_prob=dyn.gold_prob[:, : args.baseline_samples],
        margin=dyn.margin[:, : args.baseline_samples],
        sq_error=dyn.sq_error[:, : args.baseline_samples],
        pred=dyn.pred[:, : args.baseline_samples],
        num_classes=dyn.num_classes,
    )
    t0 = time.perf_counter()
    ref = literal_loop(small)
    base = time.perf_counter() - t0
    k = args.baseline_samples
    diff = max(
        float(np.max(np.abs(metrics[col].to_numpy()[:k] - np.asarray(ref[col]))))
        for col in ("confidence", "variability", "correctness", "forgetting")
    )
    per_sample_fast = best / args.samples
    per_sample_base = base / k
    print(
        json.dumps(
            {
                "bench": "compute_metrics",
                "samples": args.samples,
                "epochs": args.epochs,
                "threads": os.environ.get("OMP_NUM_THREADS"),
                "seconds_best_of": args.repeats,
                "seconds": round(best, 3),
                "target_seconds": 1.0,
                "baseline_literal_loop_samples": k,
                "baseline_seconds": round(base, 3),
                "throughput_ratio_vs_baseline": round(per_sample_base / per_sample_fast, 1),
                "max_abs_diff_vs_baseline": diff,
            }
        )
    )


if __name__ == "__main__":
    main()
