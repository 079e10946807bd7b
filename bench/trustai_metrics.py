"""Time ``cartokit metrics`` on a TrustAI training-signal file against a TrustAI-style baseline.

Writes a seeded signal file in the format of TrustAI's data-map tutorial
(``tutorials/data_map`` in PaddlePaddle/TrustAI): one line per sample per evaluation step,
appended step after step, each line a Python ``str(dict)`` as its trainer writes them::

    {'id': 0, 'label': 2, 'pred_label': 2, 'noisy_label': 0, 'correct': 'true',
     'loss': 0.0973..., 'probs': [0.0017..., 0.0909..., 0.9072...], 'label_probs': 0.9072...}

with single quotes, ``correct`` as the string ``'true'`` or ``'false'``, and the float32
softmax written through ``.tolist()`` (so ``0.9072821736335754``, not ``0.9072822``). Every
step logs the samples in the same order, ids 0..N-1. With 3 classes a line is about 217 bytes:
200,000 samples x 18 steps make 3.6M lines and about 783 MB, the size of the file in issue 14.

Then runs, each in its own process:

* cartokit: ``python -m cartokit.cli metrics FILE -o out.csv`` (interpreter start, imports,
  parse, metrics and the CSV write, end to end);
* the baseline: a re-implementation, written for this bench, of the algorithm that the
  tutorial's README documents for its ``sample_stat_summary.py``. It is not TrustAI's code. It
  parses each line with TrustAI's own trick, ``json.loads(line.replace("'", '"'))``; appends
  label_probs, the correct flag and a Forget/Learn/None transition to per-id Python lists; then
  computes per id, with numpy over those lists, the mean, variance, max and min of label_probs,
  and in Python correct_times and correct_ratio, forgetting_times, learnt_times, first_forget
  and first_learn; and writes the README's 13 columns as a TSV. It does less than the script:
  no per-line argmax of probs and no prediction histogram (the script's two extra columns).

The two children run ``--repeats`` times, interleaved (each round starts with the other one),
and each figure is the median over the repeats: wall seconds, CPU seconds (user + system time
of the child, from ``os.wait4``) and peak RSS (MiB), measured by the wrapper of
``allenai_metrics.py``. Prints one JSON line: sizes, those figures, the speedups, and the largest
differences between the two outputs (confidence against avg_probs, variability squared against
label_var, correctness against correct_ratio, forgetting against forgetting_times).

Usage: ``python bench/trustai_metrics.py [--samples N] [--steps S] [--classes C] [--seed S]
[--repeats R] [--skip-baseline] [--keep FILE]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from allenai_metrics import measure, median_of  # noqa: E402  (the same wrapper and medians)

BASELINE = r"""
import json, sys
import numpy as np

# A re-implementation of the algorithm TrustAI's data-map README documents for
# sample_stat_summary.py; not TrustAI's code.
path, out = sys.argv[1], sys.argv[2]
order, label, s_label, label_probs, correct, transition = [], {}, {}, {}, {}, {}
with open(path) as fh:
    for line in fh:
        if not line.strip():
            continue
        info = json.loads(line.strip().replace("'", '"'))  # TrustAI's trick, once per line
        sid = int(info["id"])
        if sid not in label:
            order.append(sid)
            label[sid] = int(info["label"])
            s_label[sid] = int(info.get("noisy_label", 0))
            label_probs[sid], correct[sid], transition[sid] = [], [], []
        label_probs[sid].append(float(info["label_probs"]))
        flags = correct[sid]
        flags.append(info["correct"])
        if len(flags) == 1 or flags[-1] == flags[-2]:
            transition[sid].append("None")
        elif flags[-1] == "true":
            transition[sid].append("Learn")
        else:
            transition[sid].append("Forget")

probs = [label_probs[sid] for sid in order]
columns = {
    "avg_probs": np.mean(probs, axis=1),
    "label_var": np.var(probs, axis=1),
    "max_label_probs": np.max(probs, axis=1),
    "min_label_probs": np.min(probs, axis=1),
}
names = ["id", "label", "s_label", "correct_times", "correct_ratio", "avg_probs", "label_var",
         "max_label_probs", "min_label_probs", "forgetting_times", "learnt_times",
         "first_forget", "first_learn"]
with open(out, "w") as fh:
    fh.write("\t".join(names) + "\n")
    for k, sid in enumerate(order):
        times = sum(1 for flag in correct[sid] if flag == "true")
        forgot = learnt = first_forget = first_learn = 0
        for step, event in enumerate(transition[sid]):
            if event == "Forget":
                forgot += 1
                first_forget = first_forget or step
            elif event == "Learn":
                learnt += 1
                first_learn = first_learn or step
        row = [sid, label[sid], s_label[sid], times, times / len(correct[sid]),
               columns["avg_probs"][k], columns["label_var"][k], columns["max_label_probs"][k],
               columns["min_label_probs"][k], forgot, learnt, first_forget, first_learn]
        fh.write("\t".join(str(v) for v in row) + "\n")
"""


def generate(path: Path, *, samples: int, steps: int, classes: int, seed: int) -> None:
    """A TrustAI signal file: float32 softmax of logits drifting toward the label at a
    per-sample pace, one ``str(dict)`` line per sample per step, ids 0..N-1 in every step."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=samples)
    pace = rng.normal(0.3, 0.3, size=samples)
    rows = np.arange(samples)
    probs_text = ", ".join(["%r"] * classes)
    line = (
        "{'id': %d, 'label': %d, 'pred_label': %d, 'noisy_label': 0, 'correct': %r, "
        "'loss': %r, 'probs': [" + probs_text + "], 'label_probs': %r}\n"
    )
    with open(path, "w") as fh:
        for step in range(steps):
            logits = rng.normal(0.0, 1.0, size=(samples, classes))
            logits[rows, labels] += pace * (step + 1)
            z = np.exp(logits - logits.max(axis=1, keepdims=True))
            probs = (z / z.sum(axis=1, keepdims=True)).astype(np.float32)  # the trainer's softmax
            pred = probs.argmax(axis=1)
            gold = probs[rows, labels]
            loss = -np.log(gold)  # float32, like the trainer's per-sample cross-entropy
            flags = np.where(pred == labels, "true", "false").tolist()
            cols = [
                rows.tolist(),
                labels.tolist(),
                pred.tolist(),
                flags,
                loss.tolist(),
                *probs.T.tolist(),
                gold.tolist(),
            ]
            fh.writelines(line % row for row in zip(*cols, strict=True))


def compare(ours_csv: Path, base_tsv: Path) -> dict[str, float | int]:
    ours = pd.read_csv(ours_csv, index_col="id")
    base = pd.read_csv(base_tsv, sep="\t", index_col="id").loc[ours.index]
    pairs = {
        "confidence": (ours["confidence"], base["avg_probs"]),
        "variability_squared": (ours["variability"] ** 2, base["label_var"]),
        "correctness": (ours["correctness"], base["correct_ratio"]),
        "forgetting": (ours["forgetting"], base["forgetting_times"]),
        "min_prob": (ours["min_prob"], base["min_label_probs"]),
        "max_prob": (ours["max_prob"], base["max_label_probs"]),
    }
    result: dict[str, float | int] = {"rows_compared": len(ours)}
    for name, (a, b) in pairs.items():
        result[f"max_abs_diff_{name}"] = float(np.abs(a.to_numpy() - b.to_numpy()).max())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--steps", type=int, default=18, help="evaluation steps (checkpoints)")
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each child, interleaved")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--keep", help="also copy the generated signal file here")
    args = parser.parse_args()
    for name in ("samples", "steps", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1. Got {getattr(args, name)} instead.")
    if args.classes < 2:
        parser.error(f"--classes must be at least 2. Got {args.classes} instead.")

    with tempfile.TemporaryDirectory(prefix="cartokit-bench-") as tmp:
        run = Path(tmp)
        signal = run / "output_data.json"
        started = time.perf_counter()
        generate(
            signal, samples=args.samples, steps=args.steps, classes=args.classes, seed=args.seed
        )
        generate_s = time.perf_counter() - started
        if args.keep:
            os.replace(signal, args.keep)
            signal = Path(args.keep)
        os.sync()  # the fresh file reaches the disk before either child reads it

        ours_csv, base_tsv = run / "cartokit.csv", run / "baseline.tsv"
        children = {
            "cartokit": [
                sys.executable, "-m", "cartokit.cli", "metrics", str(signal), "-o", str(ours_csv)
            ],
        }  # fmt: skip
        if not args.skip_baseline:
            children["baseline"] = [sys.executable, "-c", BASELINE, str(signal), str(base_tsv)]
        timings: dict[str, list[dict[str, float]]] = {name: [] for name in children}
        names = list(children)
        for r in range(args.repeats):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                timings[name].append(measure(children[name]))
        ours = median_of(timings["cartokit"])
        with open(signal, "rb") as fh:
            lines = sum(1 for _ in fh)
        result: dict[str, object] = {
            "samples": args.samples,
            "steps": args.steps,
            "classes": args.classes,
            "lines": lines,
            "file_mb": round(signal.stat().st_size / 1e6, 1),
            "repeats": args.repeats,
            "generate_s": round(generate_s, 2),
            "cartokit_s": round(ours["wall_s"], 3),
            "cartokit_cpu_s": round(ours["cpu_s"], 3),
            "cartokit_peak_mb": round(ours["peak_mb"], 1),
            "cartokit_wall_runs_s": [round(t["wall_s"], 3) for t in timings["cartokit"]],
        }
        if not args.skip_baseline:
            base = median_of(timings["baseline"])
            result.update(
                baseline="re-implementation of the algorithm TrustAI's data-map README documents "
                "for sample_stat_summary.py (not TrustAI's code; lighter: no per-line argmax)",
                baseline_s=round(base["wall_s"], 3),
                baseline_cpu_s=round(base["cpu_s"], 3),
                baseline_peak_mb=round(base["peak_mb"], 1),
                baseline_wall_runs_s=[round(t["wall_s"], 3) for t in timings["baseline"]],
                speedup=round(base["wall_s"] / ours["wall_s"], 2),
                cpu_speedup=round(base["cpu_s"] / ours["cpu_s"], 2),
                memory_ratio=round(ours["peak_mb"] / base["peak_mb"], 2),
                **compare(ours_csv, base_tsv),
            )
        if args.keep:
            result["kept"] = str(signal)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
