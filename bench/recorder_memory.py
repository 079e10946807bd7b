"""Recorder memory for 1M samples x 20 epochs (CPU), against keeping full logits.

Prints one JSON line. The recorder's own accounting (``memory_bytes``, the sum of its arrays'
sizes) and the process's resident-memory growth are both reported; the baseline keeps a copy of
every epoch's full logits, the naive way to record, measured the same way in this process.

    python bench/recorder_memory.py [--samples 1000000] [--epochs 20] [--classes 10]
"""

from __future__ import annotations

import argparse
import gc
import json
import time

import torch

from cartokit import DynamicsRecorder

MB = 2**20


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096


def feed(n: int, c: int, epochs: int, batch: int, sink) -> float:  # noqa: ANN001
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(batch, c, generator=gen)
    labels = torch.randint(0, c, (n,), generator=gen)  # one fixed label per sample
    t0 = time.perf_counter()
    for _ in range(epochs):
        for ids in torch.randperm(n, generator=gen).split(batch):
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--batch", type=int, default=4096)
    args = ap.parse_args()
    n, e, c = args.samples, args.epochs, args.classes

    gc.collect()
    before = rss_bytes()
    rec = DynamicsRecorder(n, c)
    seconds = feed(n, c, e, args.batch, rec)
    gc.collect()
    rec_rss = rss_bytes() - before
    rec_bytes = rec.memory_bytes()
    del rec
    gc.collect()

    before = rss_bytes()
    naive = FullLogitsRecorder(n, c)
    feed(n, c, e, args.batch, naive)
    gc.collect()
    naive_rss = rss_bytes() - before

    print(
        json.dumps(
            {
                "bench": "recorder_memory",
                "samples": n,
                "epochs": e,
                "classes": c,
                "recorder_mb": round(rec_bytes / MB, 1),
                "recorder_rss_growth_mb": round(rec_rss / MB, 1),
                "bytes_per_sample_epoch": round(rec_bytes / (n * e), 2),
                "target_mb": 320,
                "record_seconds": round(seconds, 1),
                "baseline_full_logits_rss_growth_mb": round(naive_rss / MB, 1),
                "ratio_vs_full_logits": round(naive_rss / max(rec_rss, 1), 2),
            }
        )
    )


if __name__ == "__main__":
    main()
