"""What recording training dynamics costs in cartokit's reference loop, per epoch.

Prints one JSON line. Each workload trains the same model, from the same initial weights, with
:func:`cartokit.train.fit` in three settings, interleaved repeat by repeat so that load from
other processes hits all three alike; each setting's figure is the median over the repeats:

* ``off``: ``record=False``, the baseline;
* ``train_pass``: recording the training pass's own logits (the default);
* ``eval_pass``: recording an extra no-grad pass over the training set at each epoch end.

Ratios are ``median(setting) / median(off)`` of the time per epoch (fit's wall time divided by
its epochs, so setup such as the model probe counts, alike in all three), by the wall clock and
by this process's CPU time (steadier on a shared machine). The limits of cartokit issue 3 apply
to the wall-clock train-pass ratio:

* ``mlp_digits``: the small MLP on digits (1,437 samples, batch 64), the worst case: a tiny
  model, where recording is largest relative to a step; limit 1.10;
* ``minilm_finetune``: fine-tuning all-MiniLM-L6-v2 (the offline wheel) at batch 32 on short
  sentiment snippets; limit 1.03.

    python bench/recording_overhead.py [--repeats 15] [--text-repeats 5] [--threads 1]
                                       [--skip-text]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from cartokit.data import load_dataset
from cartokit.models import MLP, TextClassifier
from cartokit.train import fit

SETTINGS = {
    "off": {"record": False},
    "train_pass": {"mode": "train_pass"},
    "eval_pass": {"mode": "eval_pass"},
}


def run_interleaved(
    make_model: Callable[[], torch.nn.Module], data: Any, repeats: int, **options: Any
) -> dict[str, float]:
    """Time each setting ``repeats`` times, rotating the order each round."""
    wall: dict[str, list[float]] = {name: [] for name in SETTINGS}
    cpu: dict[str, list[float]] = {name: [] for name in SETTINGS}
    names = list(SETTINGS)
    epochs = options["epochs"]
    fit(make_model(), data, progress=False, **{**options, "epochs": 1, "record": False})  # warm-up
    for r in range(repeats):
        for name in names[r % 3 :] + names[: r % 3]:
            model = make_model()
            t_wall, t_cpu = time.perf_counter(), time.process_time()
            fit(model, data, progress=False, **options, **SETTINGS[name])
            wall[name].append((time.perf_counter() - t_wall) / epochs)
            cpu[name].append((time.process_time() - t_cpu) / epochs)
    med = {name: statistics.median(wall[name]) for name in names}
    med_cpu = {name: statistics.median(cpu[name]) for name in names}
    out = {"epoch_s_off": round(med["off"], 5)}
    for name in ("train_pass", "eval_pass"):
        out[f"{name}_ratio"] = round(med[name] / med["off"], 4)
        out[f"{name}_cpu_ratio"] = round(med_cpu[name] / med_cpu["off"], 4)
    return out


def bench_mlp(repeats: int) -> dict[str, Any]:
    train = load_dataset("digits").train
    options = {"epochs": 5, "batch_size": 64, "lr": 3e-3, "seed": 0}
    result = run_interleaved(lambda: MLP.from_split(train, seed=0), train, repeats, **options)
    limit = 1.10
    return {
        "samples": len(train),
        **options,
        **result,
        "limit": limit,
        "ok": result["train_pass_ratio"] <= limit,
    }


def sentiment_snippets(n: int) -> tuple[list[str], np.ndarray, str]:
    """``n`` movie-review snippets, or made-up sentences where the data is not installed."""
    try:
        train = load_dataset("sentiment", max_samples=2 * n, ood=None).train
        return list(train.inputs[:n]), train.labels[:n], "sentiment/movie"
    except (ImportError, OSError, ValueError, TypeError):
        rng = np.random.default_rng(0)
        words = "a the film movie story plot acting great dull fun slow moving witty long".split()
        texts = [" ".join(rng.choice(words, size=rng.integers(8, 25))) for _ in range(n)]
        return texts, rng.integers(0, 2, n), "synthetic"


def bench_minilm(repeats: int, samples: int) -> dict[str, Any]:
    texts, labels, source = sentiment_snippets(samples)
    model = TextClassifier(2, max_length=64, seed=0)
    initial = {k: v.clone() for k, v in model.state_dict().items()}

    def make_model() -> TextClassifier:
        model.load_state_dict(initial)
        return model

    options = {"epochs": 2, "batch_size": 32, "lr": 2e-5, "seed": 0, "eval_batch_size": 64}
    result = run_interleaved(make_model, (texts, labels), repeats, **options)
    limit = 1.03
    return {
        "data": source,
        "samples": samples,
        "max_length": 64,
        **options,
        **result,
        "limit": limit,
        "ok": result["train_pass_ratio"] <= limit,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="MLP repeats per setting")
    parser.add_argument("--text-repeats", type=int, default=5, help="MiniLM repeats per setting")
    parser.add_argument("--text-samples", type=int, default=96, help="MiniLM training snippets")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--skip-text", action="store_true", help="only the MLP workload")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    report: dict[str, Any] = {
        "bench": "recording_overhead",
        "torch_threads": args.threads,
        "cpus": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "mlp_digits": bench_mlp(args.repeats),
    }
    if not args.skip_text:
        report["minilm_finetune"] = bench_minilm(args.text_repeats, args.text_samples)
    report["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
