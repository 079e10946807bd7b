"""CartographyCallback under Lightning DDP; launched by tests/test_lightning.py.

Run as ``python -m torch.distributed.run --nproc_per_node 2 lightning_ddp_train.py OUT`` (CPU,
gloo). Lightning shards the data with a ``DistributedSampler``, which pads 37 samples to 38.
Every rank writes ``OUT/<scenario>_rank<r>.npz``: its record and the ids its batches held.

Scenarios: ``frozen`` (learning rate 0, so the logits depend on the sample alone and the
record must equal the directly computed one) and ``learning`` (learning rate 0.5).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

N, C, D, BATCH, EPOCHS = 37, 3, 6, 8, 3


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(N, D)).astype(np.float32), rng.integers(0, C, N)


def frozen_logits() -> np.ndarray:
    """The untrained model's logits for every sample, computed directly."""
    import torch

    torch.manual_seed(0)
    lin = torch.nn.Linear(D, C)
    with torch.no_grad():
        return lin(torch.as_tensor(data()[0])).numpy()


def main(out: Path) -> None:
    import lightning.pytorch as pl
    import torch

    from cartokit.integrations.lightning import CartographyCallback

    x, y = data()

    class Rows(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return N

        def __getitem__(self, i: int) -> dict:
            return {"idx": i, "x": torch.as_tensor(x[i]), "labels": int(y[i])}

    class Classifier(pl.LightningModule):
        def __init__(self, lr: float) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.lin = torch.nn.Linear(D, C)
            self.lr = lr
            self.ids: list[int] = []

        def training_step(self, batch: dict, batch_idx: int) -> dict:
            self.ids.extend(batch["idx"].tolist())
            logits = self.lin(batch["x"])
            return {
                "loss": torch.nn.functional.cross_entropy(logits, batch["labels"]),
                "logits": logits,
            }

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=self.lr)

        def train_dataloader(self) -> torch.utils.data.DataLoader:
            return torch.utils.data.DataLoader(Rows(), batch_size=BATCH, shuffle=True)

    for name, lr in (("frozen", 0.0), ("learning", 0.5)):
        module = Classifier(lr)
        carto = CartographyCallback()
        trainer = pl.Trainer(
            accelerator="cpu",
            devices=2,
            strategy="ddp",
            max_epochs=EPOCHS,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[carto],
        )
        trainer.fit(module)
        rec, dyn = carto.recorder, carto.dynamics
        np.savez(
            out / f"{name}_rank{trainer.global_rank}.npz",
            gold=dyn.gold_prob,
            margin=dyn.margin,
            sq=dyn.sq_error,
            pred=dyn.pred,
            dup=np.array(rec.duplicates),
            missing=np.array(rec.missing),
            ids=np.array(module.ids, dtype=np.int64),
        )
    # Tear the process group down before the interpreter exits: left to exit, gloo's threads
    # sometimes abort the process ("terminate called without an active exception", SIGABRT)
    # after the work is done (seen in 2 of 2 full-suite runs on 2 cores).
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
