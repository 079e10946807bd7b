"""SequenceRecorder under real multi-process training: 2 CPU processes, gloo, on 127.0.0.1,
against the same epochs recorded by one process."""

from __future__ import annotations

import os
import socket

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from cartokit.sequence import SequenceRecorder

N, T, V, EPOCHS, BATCH = 23, 5, 7, 3, 4  # 23 is odd: DistributedSampler pads one sample


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _logits(epoch: int) -> torch.Tensor:
    return torch.randn(N, T, V, generator=torch.Generator().manual_seed(epoch))


def _labels() -> torch.Tensor:
    labels = torch.randint(0, V, (N, T), generator=torch.Generator().manual_seed(99))
    labels[:, :2] = -100
    labels[3] = -100  # a sequence with no scored token: missing on every rank alike
    return labels


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        labels = _labels()
        rec = SequenceRecorder(N)
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
            acc=dyn.extras["token_accuracy"],
            dup=np.array(rec.duplicates),
            empty=np.array(rec.empty),
        )
    finally:
        dist.destroy_process_group()


def test_two_ranks_give_the_single_process_record(tmp_path, recwarn):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    single = SequenceRecorder(N)
    for epoch in range(EPOCHS):
        single.update(torch.arange(N), _logits(epoch), _labels())
        single.end_epoch()
    want = single.dynamics
    for rank in range(2):
        got = np.load(tmp_path / f"rank{rank}.npz")
        np.testing.assert_allclose(got["gold"], want.gold_prob, rtol=1e-6)
        np.testing.assert_allclose(got["margin"], want.margin, atol=1e-6)
        np.testing.assert_allclose(got["sq"], want.sq_error, atol=1e-6)
        np.testing.assert_array_equal(got["pred"], want.pred)
        np.testing.assert_allclose(got["acc"], want.extras["token_accuracy"])
        # 23 samples over 2 ranks: 24 rows, one a padding duplicate, counted once
        assert got["dup"].tolist() == [1] * EPOCHS
        assert got["empty"].tolist() == [1] * EPOCHS
