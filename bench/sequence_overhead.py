"""What recording a language model's training costs: SequenceRecorder in a GPT-2-small step.

Prints one JSON line. The model is GPT-2 small's shape (12 layers, width 768, 12 heads, a
vocabulary of 50,257), randomly initialised (no weights are downloaded), trained with AdamW on
random token ids at batch 8 and sequence length 128, the first half of each sequence masked with
``-100`` as an SFT prompt is. One training step is the forward pass with labels (the model's own
loss), backward and the optimizer step; a recorded step adds
``recorder.update(ids, outputs.logits, labels)`` on the logits of that same forward pass.

* **Time.** Unrecorded and recorded steps alternate (ABBA order, so that warm-up drift and load
  from other processes hit both alike) in one process, on one model; each figure is the median
  over ``--repeats`` steps of its kind. Reported: the wall-clock and CPU-time ratios
  ``median(recorded) / median(unrecorded)``, and the overhead measured directly: the median time
  of ``update`` itself as a share of the median unrecorded step (steadier on a loaded machine,
  where whole steps vary by more than the overhead). The goal of cartokit issue 11 is
  ``<= 3 %`` on the CPU (``<= 1 %`` on a GPU).
* **Peak memory.** Each setting runs ``--memory-steps`` steps in a fresh process of its own
  (interleaved, ``--memory-repeats`` times): its peak resident memory on the CPU
  (``ru_maxrss``), or ``torch.cuda.max_memory_allocated`` on a GPU, median over the repeats.
  The recorder's own bytes (epoch buffers, record) and its float32 workspace are reported
  beside it, with the size of one float32 copy of the logits for scale.
* **On a GPU** (``--device cuda``), each ``update`` also runs under
  ``torch.cuda.set_sync_debug_mode("error")``: a host synchronisation inside it would fail the
  run, and ``host_syncs_in_update`` reports 0 when none happened.

MB here means MiB (2**20 bytes).

    python bench/sequence_overhead.py [--repeats 6] [--memory-repeats 1] [--memory-steps 2]
                                      [--threads 2] [--device cpu]
                                      [--layers 12 --width 768 --heads 12 --vocab 50257
                                       --seq 128 --batch 8]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import torch

MB = 2**20


def build(args: argparse.Namespace) -> tuple[Any, Any, torch.Tensor, torch.Tensor]:
    """The model (random init, seeded), its AdamW, and one batch of token ids and labels."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=args.vocab,
        n_positions=max(args.seq, 8),
        n_embd=args.width,
        n_layer=args.layers,
        n_head=args.heads,
        bos_token_id=args.vocab - 1,
        eos_token_id=args.vocab - 1,
    )
    model = GPT2LMHeadModel(config).to(args.device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, args.vocab, (args.batch, args.seq), generator=generator)
    labels = input_ids.clone()
    labels[:, : args.seq // 2] = -100  # the prompt is not scored
    return model, optimizer, input_ids.to(args.device), labels.to(args.device)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def step(
    model: Any,
    optimizer: Any,
    input_ids: torch.Tensor,
    labels: torch.Tensor,
    recorder: Any = None,
    ids: torch.Tensor | None = None,
    device: str = "cpu",
) -> float:
    """One training step; returns the seconds ``recorder.update`` took (0 without one)."""
    out = model(input_ids=input_ids, labels=labels)
    update_s = 0.0
    if recorder is not None:
        cuda = device.startswith("cuda")
        sync(device)
        start = time.perf_counter()
        if cuda:
            torch.cuda.set_sync_debug_mode("error")
        try:
            recorder.update(ids, out.logits, labels)
        finally:
            if cuda:
                torch.cuda.set_sync_debug_mode("default")
        sync(device)
        update_s = time.perf_counter() - start
    out.loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return update_s


def timed(fn: Any, device: str) -> tuple[float, float, Any]:
    sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu, result


def bench_time(args: argparse.Namespace) -> dict[str, Any]:
    from cartokit import SequenceRecorder

    model, optimizer, input_ids, labels = build(args)
    batch = args.batch
    recorder = SequenceRecorder(num_samples=batch * (args.repeats + 1))
    warm_ids = torch.arange(batch, device=args.device)
    # warm-up: one step of each kind (allocator, kernels, the recorder's first allocation)
    step(model, optimizer, input_ids, labels, device=args.device)
    step(model, optimizer, input_ids, labels, recorder, warm_ids, device=args.device)
    wall: dict[str, list[float]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    update: list[float] = []
    recorded = 1
    for r in range(args.repeats):
        order = ("off", "on") if r % 2 == 0 else ("on", "off")
        for name in order:
            if name == "on":
                ids = torch.arange(recorded * batch, (recorded + 1) * batch, device=args.device)
                recorded += 1
                w, c, u = timed(
                    lambda ids=ids: step(
                        model, optimizer, input_ids, labels, recorder, ids, device=args.device
                    ),
                    args.device,
                )
                update.append(u)
            else:
                w, c, _ = timed(
                    lambda: step(model, optimizer, input_ids, labels, device=args.device),
                    args.device,
                )
            wall[name].append(w)
            cpu[name].append(c)
    end_wall, _, _ = timed(recorder.end_epoch, args.device)
    med = {k: statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    med_update = statistics.median(update)
    out: dict[str, Any] = {
        "step_s_off": round(med["off"], 4),
        "step_s_on": round(med["on"], 4),
        "update_s": round(med_update, 4),
        "update_share_of_step": round(med_update / med["off"], 4),
        "step_ratio": round(med["on"] / med["off"], 4),
        "step_cpu_ratio": round(med_cpu["on"] / med_cpu["off"], 4),
        "end_epoch_s": round(end_wall, 4),
        "steps_off_s": [round(x, 3) for x in wall["off"]],
        "steps_on_s": [round(x, 3) for x in wall["on"]],
        "recorder_bytes": recorder.memory_bytes(),
        "recorded_samples": recorder.num_samples,
        "goal": 0.01 if args.device.startswith("cuda") else 0.03,
    }
    out["ok"] = out["update_share_of_step"] <= out["goal"]
    if args.device.startswith("cuda"):
        out["host_syncs_in_update"] = 0  # any would have raised under set_sync_debug_mode
    return out


def memory_child(args: argparse.Namespace) -> None:
    """Run ``--memory-steps`` steps of one setting and print this process's peak memory."""
    from cartokit import SequenceRecorder

    model, optimizer, input_ids, labels = build(args)
    record = args.memory_child == "on"
    recorder = SequenceRecorder(num_samples=args.batch) if record else None
    ids = torch.arange(args.batch, device=args.device)
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for _ in range(args.memory_steps):
        step(model, optimizer, input_ids, labels, recorder, ids, device=args.device)
    sync(args.device)
    peak = torch.cuda.max_memory_allocated() if cuda else _max_rss()
    print(json.dumps({"peak_bytes": peak}))


def _max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def bench_memory(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    from cartokit.sequence import CHUNK_VALUES

    peaks: dict[str, list[int]] = {"off": [], "on": []}
    for r in range(args.memory_repeats):
        for name in ("off", "on") if r % 2 == 0 else ("on", "off"):
            done = subprocess.run(
                [sys.executable, __file__, *argv, "--memory-child", name],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise SystemExit(done.stderr[-3000:])
            peaks[name].append(json.loads(done.stdout.strip().splitlines()[-1])["peak_bytes"])
    off, on = (statistics.median(peaks[k]) for k in ("off", "on"))
    logits = args.batch * args.seq * args.vocab * 4
    kind = "cuda_max_allocated" if args.device.startswith("cuda") else "max_rss"
    return {
        "measure": kind,
        "peak_mb_off": round(off / MB, 1),
        "peak_mb_on": round(on / MB, 1),
        "peak_growth_mb": round((on - off) / MB, 1),
        "peak_ratio": round(on / off, 4),
        "workspace_mb": round(min(CHUNK_VALUES, logits // 4) * 4 / MB, 2),
        "float32_logits_mb": round(logits / MB, 1),
        "runs": peaks,
    }


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=6, help="timed steps of each kind")
    parser.add_argument("--memory-repeats", type=int, default=1, help="processes per setting")
    parser.add_argument("--memory-steps", type=int, default=2, help="steps in each process")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--vocab", type=int, default=50257)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--skip-memory", action="store_true", help="time only")
    parser.add_argument("--memory-child", choices=("off", "on"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("repeats", "memory_repeats", "memory_steps", "threads", "batch"):
        if getattr(args, name) < 1:
            parser.error(
                f"--{name.replace('_', '-')} must be at least 1. Got {getattr(args, name)}."
            )
    if args.seq < 2:
        parser.error(f"--seq must be at least 2 (position t predicts token t+1). Got {args.seq}.")
    return args


def main() -> None:
    argv = sys.argv[1:]
    args = parse(argv)
    torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args)
        return
    shape = {k: getattr(args, k) for k in ("layers", "width", "heads", "vocab", "seq", "batch")}
    report: dict[str, Any] = {
        "bench": "sequence_overhead",
        "model": "gpt2 (random init)",
        **shape,
        "device": args.device,
        "torch_threads": args.threads,
        "cpus": os.cpu_count(),
        "repeats": args.repeats,
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "time": bench_time(args),
    }
    if not args.skip_memory:
        report["memory"] = bench_memory(args, argv)
    report["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
