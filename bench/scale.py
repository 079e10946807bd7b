"""A record larger than memory: 20M samples x 4 epochs x 2 classes recorded into a store in
shuffled batches, then ``cartokit metrics STORE -o m.parquet``; each in its own process, whose
peak resident memory (ru_maxrss) is reported. MB means MiB (2**20 bytes).

Stages, each a separate process:

1. ``record``: ``DynamicsRecorder(N, C, store=DIR)`` fed every epoch in shuffled batches
   (logits computed from each sample's id and the epoch, so that any process can make them
   again). The shuffle is an int32 permutation of the ids, part of the training loop's memory.
2. ``cartokit metrics DIR -o m.parquet``, the command line itself.
3. ``baseline`` (unless ``--no-baseline``): the in-memory path on the same batches,
   ``DynamicsRecorder(N, C)`` without a store, then ``compute_metrics`` and
   ``write_metrics_parquet`` of its table, timed; then, in the same process,
   ``compute_metrics(DIR, output=...)``, the streaming path, timed; and the streamed file of
   stage 2 compared with the in-memory table, column by column (``values_equal``: every value
   identical, NaN and missing alike). This process holds the whole record, so it is exempt
   from the 1 GB goal: at 100M samples, run with ``--no-baseline``.

``throughput_ratio`` is the streaming path's samples per second over the in-memory path's
(metrics and a Parquet table in both), in the baseline process: medians of ``--repeats``
interleaved runs of each.

    python bench/scale.py [--samples 20000000] [--epochs 4] [--classes 2] [--dir /tmp/scale]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

MB = 2**20
#: The file that marks --dir as this script's, so that a rerun may empty it.
MARKER = ".cartokit-scale"
ROOT = Path(__file__).resolve().parents[1]


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB


def logits_for(ids, epoch: int, num_classes: int):  # noqa: ANN001, ANN201
    """Deterministic logits of samples ``ids`` at ``epoch``: noise, and the gold class rising."""
    import torch

    x = ids.double()[:, None]
    phase = torch.arange(num_classes, dtype=torch.float64) * 4.1414 + epoch * 78.233
    wave = torch.sin(x * 12.9898 + phase) * 43758.5453
    noise = (wave - wave.floor()) * 4 - 2
    gold = torch.nn.functional.one_hot(labels_for(ids, num_classes), num_classes)
    return (noise + gold * (0.5 * epoch)).float()


def labels_for(ids, num_classes: int):  # noqa: ANN001, ANN201
    return (ids * 7919 + 13) % num_classes


def feed(rec, args: argparse.Namespace) -> None:  # noqa: ANN001
    import numpy as np
    import torch

    order = np.arange(args.samples, dtype=np.int32)
    for epoch in range(args.epochs):
        np.random.default_rng(epoch).shuffle(order)  # in place: no second copy
        for start in range(0, args.samples, args.batch):
            ids = torch.from_numpy(order[start : start + args.batch]).long()
            rec.update(ids, logits_for(ids, epoch, args.classes), labels_for(ids, args.classes))
        rec.end_epoch()


def set_threads(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)


def stage_record(args: argparse.Namespace) -> dict:
    import cartokit.recorder_store as recorder_store
    from cartokit import DynamicsRecorder

    set_threads(args)

    if args.run_rows:
        recorder_store.RUN_ROWS = args.run_rows
    start = time.perf_counter()
    rec = DynamicsRecorder(args.samples, args.classes, store=args.dir / "store")
    feed(rec, args)
    return {
        "seconds": round(time.perf_counter() - start, 2),
        "peak_rss_mb": round(peak_mb(), 1),
        "recorder_accounted_mb": round(rec.memory_bytes() / MB, 1),
    }


def _equal(streamed_path: Path, table) -> tuple[bool, float, int]:  # noqa: ANN001
    """Whether the Parquet file holds exactly ``table`` (compared a row group at a time)."""
    import numpy as np
    import pyarrow.parquet as pq

    same, worst, start = True, 0.0, 0
    for batch in pq.ParquetFile(streamed_path).iter_batches(batch_size=1 << 20):
        part = batch.to_pandas().set_index("id")
        want = table.iloc[start : start + len(part)]
        start += len(part)
        same &= bool((part.index == want.index).all())
        for column in want.columns:
            a, b = part[column].to_numpy(), want[column].to_numpy()
            if a.dtype.kind == "f" or b.dtype.kind == "f":
                a, b = a.astype(np.float64), b.astype(np.float64)
                same &= bool(np.array_equal(a, b, equal_nan=True))
                worst = max(worst, float(np.nanmax(np.abs(a - b), initial=0.0)))
            else:
                same &= pd_equal(part[column], want[column])
    return same and start == len(table), worst, start


def pd_equal(a, b) -> bool:  # noqa: ANN001
    return bool(a.reset_index(drop=True).equals(b.reset_index(drop=True)))


def stage_baseline(args: argparse.Namespace) -> dict:
    import cartokit.recorder_store as recorder_store
    from cartokit import DynamicsRecorder, compute_metrics
    from cartokit.io import write_metrics_parquet

    set_threads(args)
    if args.run_rows:
        recorder_store.RUN_ROWS = args.run_rows
    start = time.perf_counter()
    rec = DynamicsRecorder(args.samples, args.classes)
    feed(rec, args)
    dyn = rec.dynamics
    record_s = time.perf_counter() - start
    memory_runs, streaming_runs = [], []
    for _ in range(args.repeats):  # interleaved, so that a busy spell hits both paths alike
        start = time.perf_counter()
        table = compute_metrics(dyn)
        write_metrics_parquet(table, args.dir / "in_memory.parquet")
        memory_runs.append(time.perf_counter() - start)
        start = time.perf_counter()
        compute_metrics(args.dir / "store", output=args.dir / "streamed_here.parquet")
        streaming_runs.append(time.perf_counter() - start)
    memory_s, streaming_s = statistics.median(memory_runs), statistics.median(streaming_runs)
    equal, worst, rows = _equal(args.dir / "m.parquet", table)
    return {
        "record_seconds": round(record_s, 2),
        "metrics_and_parquet_seconds": round(memory_s, 2),
        "streaming_seconds": round(streaming_s, 2),
        "metrics_and_parquet_runs_s": [round(x, 2) for x in memory_runs],
        "streaming_runs_s": [round(x, 2) for x in streaming_runs],
        "throughput_ratio": round(memory_s / streaming_s, 3),
        "values_equal": equal,
        "max_abs_diff": worst,
        "rows_compared": rows,
        "peak_rss_mb": round(peak_mb(), 1),
    }


def child(stage: str, args: argparse.Namespace) -> dict:
    """Run a stage in a fresh process; its JSON line, and its peak RSS from wait4."""
    cmd = [sys.executable, __file__, "--stage", stage, *sys.argv[1:]]
    if stage == "cli":
        cmd = [sys.executable, "-m", "cartokit.cli", "metrics", str(args.dir / "store"), "-o",
               str(args.dir / "m.parquet")]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()  # type: ignore[union-attr]
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"bench/scale.py: the {stage} stage failed:\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1]) if stage != "cli" else {}
    result["wall_seconds"] = round(seconds, 2)
    result["peak_rss_mb_wait4"] = round(usage.ru_maxrss * 1024 / MB, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=20_000_000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--classes", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/cartokit-scale"))
    parser.add_argument("--run-rows", type=int, default=0, help="rows per sorted run (0: default)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the in-memory path")
    parser.add_argument(
        "--repeats", type=int, default=3, help="interleaved timings of each path (medians)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads while recording (1: on a busy machine, small CPU ops split over "
        "several OpenMP threads wait on each other, 20-50x slower)",
    )
    parser.add_argument("--stage", choices=["record", "baseline"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if min(args.samples, args.epochs, args.repeats) < 1:
        parser.error(
            "--samples, --epochs and --repeats must be at least 1. Got "
            f"{args.samples}, {args.epochs}, {args.repeats}."
        )
    if args.stage == "record":
        print(json.dumps(stage_record(args)))
        return
    if args.stage == "baseline":
        print(json.dumps(stage_baseline(args)))
        return
    if args.dir.exists() and any(args.dir.iterdir()):
        if not (args.dir / MARKER).is_file():
            parser.error(f"--dir {args.dir} is not empty and was not made by this script.")
        shutil.rmtree(args.dir)  # an earlier run's
    args.dir.mkdir(parents=True, exist_ok=True)
    (args.dir / MARKER).touch()
    report: dict = {"samples": args.samples, "epochs": args.epochs, "classes": args.classes}
    report["batch"], report["torch_threads"] = args.batch, args.threads
    report["record"] = child("record", args)
    store = args.dir / "store"
    report["store_mb"] = round(sum(p.stat().st_size for p in store.rglob("*")) / MB, 1)
    report["cli_metrics"] = child("cli", args)
    report["cli_metrics"]["samples_per_second"] = round(
        args.samples / report["cli_metrics"]["wall_seconds"]
    )
    report["metrics_parquet_mb"] = round((args.dir / "m.parquet").stat().st_size / MB, 1)
    if not args.no_baseline:
        report["in_memory_baseline"] = child("baseline", args)
    report["each_process_under_1gb"] = all(
        report[k]["peak_rss_mb_wait4"] < 1024 for k in ("record", "cli_metrics")
    )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
