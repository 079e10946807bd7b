"""Record into one store from 2 gloo processes (launched by tests/scripts/torchrun.py), with a
DistributedSampler that pads 103 samples to 104; then resume the store for one more epoch.

Each rank writes what it saw (``rank<r>.json``: its rows and its parts); reading merges them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

import cartokit.recorder_store as recorder_store
from cartokit import DynamicsRecorder

N, C, EPOCHS, BATCH = 103, 3, 3, 8


def logits_of(epoch: int) -> torch.Tensor:
    return torch.randn(N, C, generator=torch.Generator().manual_seed(epoch)) * 2


def labels_of() -> torch.Tensor:
    return torch.randint(0, C, (N,), generator=torch.Generator().manual_seed(99))


def train(rec: DynamicsRecorder, epochs: range, rank: int, world: int) -> int:
    sampler = torch.utils.data.DistributedSampler(range(N), num_replicas=world, rank=rank)
    labels, rows = labels_of(), 0
    for epoch in epochs:
        sampler.set_epoch(epoch)
        ids = torch.tensor(list(sampler))
        for batch in ids.split(BATCH):
            rec.update(batch, logits_of(epoch)[batch], labels[batch])
            rows += len(batch)
        rec.end_epoch()
    return rows


def main() -> None:
    out = Path(sys.argv[1])
    recorder_store.RUN_ROWS = 20  # several sorted runs per rank and epoch
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    try:
        names = ["a", "b", "c"]
        ids = [f"s{i}" for i in range(N)]
        rec = DynamicsRecorder(N, C, sample_ids=ids, class_names=names, store=out / "store")
        rows = train(rec, range(EPOCHS - 1), rank, world)
        resumed = DynamicsRecorder(N, C, sample_ids=ids, class_names=names, store=out / "store")
        rows += train(resumed, range(EPOCHS - 1, EPOCHS), rank, world)
        report = {
            "rows": rows,
            "num_epochs": resumed.num_epochs,
            "duplicates": rec.duplicates + resumed.duplicates,
            "missing": rec.missing + resumed.missing,
        }
        (out / f"rank{rank}.json").write_text(json.dumps(report))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
