"""The recorder under real multi-process training: 2 CPU processes, gloo, on 127.0.0.1."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from cartokit import DynamicsRecorder, TrainingDynamics

N, C, EPOCHS, BATCH = 103, 3, 3, 8  # 103 is odd: DistributedSampler pads one sample


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _logits(epoch: int) -> torch.Tensor:
    return torch.randn(N, C, generator=torch.Generator().manual_seed(epoch))


def _labels() -> torch.Tensor:
    return torch.randint(0, C, (N,), generator=torch.Generator().manual_seed(99))


def _worker(rank: int, world: int, port: int, out: str, buffer_bytes: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        labels = _labels()
        rec = DynamicsRecorder(N, C, buffer_bytes=buffer_bytes)
        sampler = torch.utils.data.DistributedSampler(range(N), num_replicas=world, rank=rank)
        for epoch in range(EPOCHS):
            sampler.set_epoch(epoch)
            ids = torch.tensor(list(sampler))
            logits = _logits(epoch)
            for batch in ids.split(BATCH):
                rec.update(batch, logits[batch], labels[batch])
            rec.end_epoch()
        dyn = rec.dynamics
        np.savez(
            f"{out}/rank{rank}.npz",
            gold=dyn.gold_prob,
            margin=dyn.margin,
            sq=dyn.sq_error,
            pred=dyn.pred,
            dup=np.array(rec.duplicates),
            missing=np.array(rec.missing),
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("buffer_bytes", [32 * 2**20, 0], ids=["buffer", "per_batch"])
def test_two_ranks_give_the_single_process_record(tmp_path, buffer_bytes):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), buffer_bytes), nprocs=2, join=True)
    labels = _labels()
    single = TrainingDynamics.from_logits(torch.stack([_logits(e) for e in range(EPOCHS)]), labels)
    for rank in range(2):
        got = np.load(tmp_path / f"rank{rank}.npz")
        np.testing.assert_allclose(got["gold"], single.gold_prob, atol=1e-6)
        np.testing.assert_allclose(got["margin"], single.margin, atol=1e-5)
        np.testing.assert_allclose(got["sq"], single.sq_error, atol=1e-6)
        np.testing.assert_array_equal(got["pred"], single.pred)
        # 103 samples over 2 ranks: 104 rows, one a padding duplicate, counted once.
        assert got["dup"].tolist() == [1] * EPOCHS
        assert got["missing"].tolist() == [0] * EPOCHS


def _uneven_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        rec = DynamicsRecorder(4, 2)
        for _ in range(3):
            if rank == 0:  # rank 1 gets no batch at all (unevenly sharded data)
                rec.update(torch.arange(4), torch.eye(2)[[0, 1, 0, 1]], torch.tensor([0, 1, 0, 1]))
            rec.end_epoch()
        np.save(f"{out}/rank{rank}.npy", rec.dynamics.gold_prob)
    finally:
        dist.destroy_process_group()


def test_a_rank_without_batches_still_takes_part(tmp_path):
    mp.spawn(_uneven_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        gold = np.load(tmp_path / f"rank{rank}.npy")
        np.testing.assert_allclose(gold, np.full((3, 4), np.e / (1 + np.e)), atol=1e-6)
