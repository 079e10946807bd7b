"""Time cartokit's allenai-layout metrics path against a per-line, per-guid Python baseline.

Generates a seeded allenai ``training_dynamics/`` folder, then runs, each in its own process:

* cartokit: ``python -m cartokit.cli metrics DIR -o out.csv`` (or, while ``cartokit.cli`` does not
  exist, ``read_dynamics`` -> ``compute_metrics`` -> ``to_csv`` in ``python -c``);
* the baseline: the shape of allenai/cartography's ``compute_train_dy_metrics`` path, per-line
  ``json.loads`` into a dict of guid -> per-epoch logits, then a Python loop per guid (softmax,
  gold probability, ``np.mean``, ``np.std``, correctness, forgetting), a pandas DataFrame and a
  CSV. It does less than the real script (``cartography/selection/train_dy_filtering.py``): a
  numpy softmax per epoch instead of a torch one; no per-epoch training-loss table; correctness
  as a fraction (the script keeps a count); a never-learned sample's forgetting left at 0 (the
  script sets it to 1000); a CSV where the script writes JSON lines. It is an allenai-style
  baseline, not a re-implementation of that script.

The two children run ``--repeats`` times, interleaved (cartokit, baseline, baseline, cartokit,
..., each round in turn starting with the other) so that load from other processes hits both
alike, and each figure is the median over the repeats: wall seconds, CPU seconds (user + system
time of the child, from ``os.wait4``: what ``time.process_time`` measures inside it) and peak RSS
(MiB). Prints one JSON line: sizes, those figures (and each run's wall time), the speedups by wall
and by CPU time, the largest absolute difference in confidence, variability and correctness
between the two CSVs, and the machine's 1-minute load average before and after the timed runs
(other processes' load slows the two-threaded cartokit more than the one-threaded baseline).

Usage: ``python bench/allenai_metrics.py [--samples N] [--epochs E] [--classes C] [--seed S]
[--repeats R] [--skip-baseline]``
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

# Runs one command and reports its wall time, CPU time and peak RSS. os.wait4 returns the rusage
# of exactly that child. The wrapper itself is tiny: a child's ru_maxrss starts from the RSS of the
# process it was forked from, so forking from this (data-generating) script would inflate it.
WRAPPER = r"""
import json, os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=sys.stderr)
_, status, usage = os.wait4(proc.pid, 0)
proc.returncode = os.waitstatus_to_exitcode(status)
wall = time.perf_counter() - start
cpu = usage.ru_utime + usage.ru_stime
print(json.dumps({"wall_s": wall, "cpu_s": cpu, "peak_mb": usage.ru_maxrss / 1024,
                  "rc": proc.returncode}))
"""

CARTOKIT_FALLBACK = r"""
import sys
from cartokit.io import read_dynamics
from cartokit.metrics import compute_metrics
compute_metrics(read_dynamics(sys.argv[1])).to_csv(sys.argv[2])
"""

BASELINE = r"""
import json, os, sys
import numpy as np
import pandas as pd

folder, out_csv = sys.argv[1], sys.argv[2]
num_epochs = len([f for f in os.listdir(folder) if f.startswith("dynamics_epoch_")])

# guid -> {"gold": int, "logits": [per-epoch list of C floats]}
dynamics = {}
for epoch in range(num_epochs):
    with open(os.path.join(folder, f"dynamics_epoch_{epoch}.jsonl")) as fh:
        for line in fh:
            record = json.loads(line.strip())
            guid = record["guid"]
            if guid not in dynamics:
                dynamics[guid] = {"gold": record["gold"], "logits": []}
            dynamics[guid]["logits"].append(record[f"logits_epoch_{epoch}"])

def softmax(x):
    z = np.exp(x - np.max(x))
    return z / z.sum()

rows = []
correct_per_epoch = np.zeros(num_epochs)
for guid, record in dynamics.items():
    gold = record["gold"]
    gold_probs, correct = [], []
    for epoch, logits in enumerate(record["logits"]):
        probs = softmax(np.asarray(logits, dtype=np.float64))
        gold_probs.append(float(probs[gold]))
        is_correct = int(np.argmax(logits) == gold)
        correct.append(is_correct)
        correct_per_epoch[epoch] += is_correct
    confidence = np.mean(gold_probs)
    variability = np.std(gold_probs)
    forgetting = sum(1 for a, b in zip(correct, correct[1:]) if a and not b)
    rows.append(
        [guid, gold, confidence, variability, sum(correct) / num_epochs, forgetting,
         confidence * (1 - confidence)]
    )
accuracy = correct_per_epoch / len(dynamics)
columns = ["guid", "gold", "confidence", "variability", "correctness", "forgetfulness",
           "threshold_closeness"]
pd.DataFrame(rows, columns=columns).to_csv(out_csv, index=False)
"""


def generate(folder: Path, *, samples: int, epochs: int, classes: int, seed: int) -> None:
    """Seeded allenai layout: logits drift toward the gold class at a per-sample pace."""
    rng = np.random.default_rng(seed)
    guids = rng.choice(10 * samples, size=samples, replace=False)
    gold = rng.integers(0, classes, size=samples)
    pace = rng.normal(0.6, 0.5, size=samples)
    values = ", ".join(["%.6f"] * classes)
    folder.mkdir(parents=True, exist_ok=True)
    for epoch in range(epochs):
        logits = rng.normal(0.0, 1.0, size=(samples, classes))
        logits[np.arange(samples), gold] += pace * (epoch + 1)
        order = rng.permutation(samples)  # rows in a different order each epoch
        line = '{"guid": %d, "logits_epoch_' + str(epoch) + '": [' + values + '], "gold": %d}\n'
        cols = [guids[order].tolist(), *logits[order].T.tolist(), gold[order].tolist()]
        with open(folder / f"dynamics_epoch_{epoch}.jsonl", "w") as fh:
            fh.writelines(line % row for row in zip(*cols, strict=True))


def measure(command: list[str]) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, *command], capture_output=True, text=True, check=False
    )
    if done.returncode != 0 or not done.stdout.strip():
        sys.exit(f"wrapper failed ({done.returncode}): {done.stderr[-2000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    if figures["rc"] != 0:
        sys.exit(f"{command[:4]} failed with exit code {figures['rc']}:\n{done.stderr[-4000:]}")
    return figures


def read_metrics(csv: Path) -> pd.DataFrame:
    table = pd.read_csv(csv)
    key = next((c for c in ("id", "guid") if c in table.columns), table.columns[0])
    return table.set_index(key)[["confidence", "variability", "correctness"]]


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {
        key: statistics.median(run[key] for run in runs) for key in ("wall_s", "cpu_s", "peak_mb")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=500_000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each child, interleaved")
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1. Got {args.repeats} instead.")

    with tempfile.TemporaryDirectory(prefix="cartokit-bench-") as tmp:
        run = Path(tmp)
        folder = run / "training_dynamics"
        started = time.perf_counter()
        generate(
            folder, samples=args.samples, epochs=args.epochs, classes=args.classes, seed=args.seed
        )
        generate_s = time.perf_counter() - started
        # Flush the fresh files first: otherwise whichever child runs first also pays for the
        # kernel writing ~40 MB per epoch back to disk (it doubled the first child's time here).
        os.sync()

        ours_csv = run / "cartokit.csv"
        base_csv = run / "baseline.csv"
        if importlib.util.find_spec("cartokit.cli") is not None:
            entry = "cli"
            command = [sys.executable, "-m", "cartokit.cli", "metrics", str(run), "-o"]
        else:
            entry = "python -c read_dynamics"
            command = [sys.executable, "-c", CARTOKIT_FALLBACK, str(run)]
        children = {"cartokit": [*command, str(ours_csv)]}
        if not args.skip_baseline:
            children["baseline"] = [sys.executable, "-c", BASELINE, str(folder), str(base_csv)]
        timings: dict[str, list[dict[str, float]]] = {name: [] for name in children}
        names = list(children)
        load_before = os.getloadavg()[0]
        for r in range(args.repeats):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                timings[name].append(measure(children[name]))
        ours = median_of(timings["cartokit"])

        result: dict[str, object] = {
            "samples": args.samples,
            "epochs": args.epochs,
            "classes": args.classes,
            "repeats": args.repeats,
            "cartokit_entry": entry,
            "generate_s": round(generate_s, 2),
            "cartokit_s": round(ours["wall_s"], 3),
            "cartokit_cpu_s": round(ours["cpu_s"], 3),
            "cartokit_peak_mb": round(ours["peak_mb"], 1),
            "cartokit_wall_runs_s": [round(t["wall_s"], 3) for t in timings["cartokit"]],
            "loadavg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        }
        if not args.skip_baseline:
            base = median_of(timings["baseline"])
            diff = read_metrics(ours_csv).sub(read_metrics(base_csv)).abs().to_numpy()
            result.update(
                baseline="allenai-style per-line, per-guid loop (lighter than the real script)",
                baseline_s=round(base["wall_s"], 3),
                baseline_cpu_s=round(base["cpu_s"], 3),
                baseline_peak_mb=round(base["peak_mb"], 1),
                baseline_wall_runs_s=[round(t["wall_s"], 3) for t in timings["baseline"]],
                speedup=round(base["wall_s"] / ours["wall_s"], 1),
                cpu_speedup=round(base["cpu_s"] / ours["cpu_s"], 1),
                metrics_max_abs_diff=float(np.nanmax(diff)) if diff.size else 0.0,
                rows_compared=int(np.isfinite(diff).all(axis=1).sum()),
            )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
