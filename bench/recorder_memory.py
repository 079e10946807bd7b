"""Recorder memory for 1M samples x 20 epochs (CPU), against keeping full logits.

MB here means MiB (2**20 bytes).

Prints one JSON line. The recorder's own accounting (``memory_bytes``, the sum of its arrays'
sizes) and the process's resident-memory growth are both reported; the baseline keeps a copy of
every epoch's full logits, the naive way to record, measured the same way in this process.

Then it takes ``recorder.dynamics``, the way every training loop ends, and measures again with
both alive: the bytes held (the recorder's, plus the dynamics' arrays that are not the
recorder's own) and the resident growth, each also as a ratio against the record alone
(``with_dynamics_*_ratio``: 1.0 means the dynamics costs no second copy). Last, it times
``compute_metrics`` on that dynamics twice: the first call after recording pays for every page of
fresh memory it touches, which the second call finds already mapped.

    python bench/recorder_memory.py [--samples 1000000] [--epochs 20] [--classes 10]
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time

import numpy as np
import torch

from cartokit import DynamicsRecorder, compute_metrics

MB = 2**20


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096


def make_inputs(n: int, c: int, batch: int) -> tuple[torch.Tensor, ...]:
    """The bench's own data, made before memory is measured: logits, labels, a shuffle."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(batch, c, generator=gen)
    labels = torch.randint(0, c, (n,), generator=gen)  # one fixed label per sample
    return logits, labels, torch.randperm(n, generator=gen)


def feed(inputs: tuple[torch.Tensor, ...], epochs: int, batch: int, sink) -> float:  # noqa: ANN001
    logits, labels, order = inputs
    t0 = time.perf_counter()
    for _ in range(epochs):
        for ids in order.split(batch):
            sink.update(ids, logits[: len(ids)], labels[ids])
        sink.end_epoch()
    return time.perf_counter() - t0


class FullLogitsRecorder:
    """The naive baseline: keep every epoch's full logits (and labels)."""

    def __init__(self, n: int, c: int) -> None:
        self.n, self.c, self.epochs = n, c, []
        self.buf = torch.zeros(n, c)
        self.labels = torch.zeros(n, dtype=torch.int64)

    def update(self, ids, logits, labels) -> None:  # noqa: ANN001
        self.buf.index_copy_(0, ids, logits)
        self.labels.index_copy_(0, ids, labels)

    def end_epoch(self) -> None:
        self.epochs.append(self.buf.clone())


_ARRAYS = ("gold_prob", "margin", "sq_error", "pred", "probs")


def dynamics_bytes_not_shared(dyn, again) -> int:  # noqa: ANN001
    """Bytes of ``dyn``'s arrays that are not the recorder's own record.

    ``again`` is a second ``recorder.dynamics``: an array of ``dyn`` that shares memory with it
    is the recorder's record itself (a copy made per call would not).
    """
    total = 0
    for name in _ARRAYS:
        a, b = getattr(dyn, name), getattr(again, name)
        if a is not None and not np.shares_memory(a, b):
            total += a.nbytes
    return total


def measure(which: str, n: int, e: int, c: int, batch: int, buffer_bytes: int) -> dict[str, float]:
    """Run one recorder in this (fresh) process; report its size and the RSS it added."""
    inputs = make_inputs(n, c, batch)
    gc.collect()
    before = rss_bytes()
    if which == "cartokit":
        sink = DynamicsRecorder(n, c, buffer_bytes=buffer_bytes)
    else:
        sink = FullLogitsRecorder(n, c)
    seconds = feed(inputs, e, batch, sink)
    gc.collect()
    with open("/proc/self/status") as fh:
        peak = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM"))
    out = {
        "rss_growth": rss_bytes() - before,
        "peak_growth": peak - before,
        "seconds": seconds,
    }
    if which == "cartokit":
        out["accounted"] = sink.memory_bytes()
        out["per_batch_reduction"] = sink.reduce_per_batch
        t0 = time.perf_counter()
        dyn = sink.dynamics
        out["dynamics_seconds"] = time.perf_counter() - t0
        gc.collect()
        out["rss_growth_with_dynamics"] = rss_bytes() - before
        with open("/proc/self/status") as fh:
            peak = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM"))
        out["peak_growth_with_dynamics"] = peak - before
        # measured after the RSS above: with a recorder that copies, this makes a third copy
        again = sink.dynamics
        out["held_with_dynamics"] = sink.memory_bytes() + dynamics_bytes_not_shared(dyn, again)
        del again
        for call in ("first", "second"):
            t0 = time.perf_counter()
            compute_metrics(dyn)
            out[f"metrics_{call}_call_seconds"] = time.perf_counter() - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument(
        "--buffer-bytes", type=int, default=32 * 2**20, help="DynamicsRecorder(buffer_bytes=)"
    )
    ap.add_argument("--only", choices=["cartokit", "full_logits"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    n, e, c = args.samples, args.epochs, args.classes
    if args.only:
        print(json.dumps(measure(args.only, n, e, c, args.batch, args.buffer_bytes)))
        return

    # Each recorder runs in a fresh interpreter, so neither inherits the other's freed pages.
    results = {}
    for which in ("cartokit", "full_logits"):
        cmd = [
            sys.executable,
            __file__,
            "--only",
            which,
            "--samples",
            str(n),
            "--epochs",
            str(e),
            "--classes",
            str(c),
            "--batch",
            str(args.batch),
            "--buffer-bytes",
            str(args.buffer_bytes),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        results[which] = json.loads(out.strip().splitlines()[-1])
    ours, naive = results["cartokit"], results["full_logits"]
    print(
        json.dumps(
            {
                "bench": "recorder_memory",
                "samples": n,
                "epochs": e,
                "classes": c,
                "per_batch_reduction": ours["per_batch_reduction"],
                "recorder_accounted_mb": round(ours["accounted"] / MB, 1),
                "recorder_rss_growth_mb": round(ours["rss_growth"] / MB, 1),
                "recorder_peak_rss_growth_mb": round(ours["peak_growth"] / MB, 1),
                "accounted_bytes_per_sample_epoch": round(ours["accounted"] / (n * e), 2),
                "target_mb": 320,
                "record_seconds": round(ours["seconds"], 1),
                "with_dynamics_held_mb": round(ours["held_with_dynamics"] / MB, 1),
                "with_dynamics_held_bytes_per_sample_epoch": round(
                    ours["held_with_dynamics"] / (n * e), 2
                ),
                "with_dynamics_held_ratio": round(
                    ours["held_with_dynamics"] / ours["accounted"], 2
                ),
                "with_dynamics_rss_growth_mb": round(ours["rss_growth_with_dynamics"] / MB, 1),
                "with_dynamics_rss_ratio": round(
                    ours["rss_growth_with_dynamics"] / ours["rss_growth"], 2
                ),
                "with_dynamics_peak_rss_growth_mb": round(
                    ours["peak_growth_with_dynamics"] / MB, 1
                ),
                "dynamics_seconds": round(ours["dynamics_seconds"], 2),
                "compute_metrics_first_call_seconds": round(ours["metrics_first_call_seconds"], 2),
                "compute_metrics_second_call_seconds": round(
                    ours["metrics_second_call_seconds"], 2
                ),
                "baseline_full_logits_rss_growth_mb": round(naive["rss_growth"] / MB, 1),
                "ratio_full_logits_vs_recorder": round(naive["rss_growth"] / ours["rss_growth"], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
