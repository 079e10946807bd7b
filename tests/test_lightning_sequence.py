"""CartographyCallback on a language model: 3-D logits and -100-masked labels, on the CPU.

The module is a tiny next-token model (embedding + linear head). Its ``training_step`` keeps its
own copy of every batch's ids, logits and labels (the oracle), which a fresh SequenceRecorder
must turn into the callback's dynamics.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("lightning", reason="Lightning is an optional extra: cartokit[lightning]")

import lightning.pytorch as pl  # noqa: E402
from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402

from cartokit.integrations.lightning import CartographyCallback  # noqa: E402
from cartokit.sequence import SequenceRecorder  # noqa: E402

N, T, VOCAB, BATCH, EPOCHS = 11, 6, 13, 4, 3

pytestmark = pytest.mark.filterwarnings(
    "ignore::UserWarning:lightning", "ignore::DeprecationWarning", "ignore::FutureWarning"
)

_rng = np.random.default_rng(0)
TOKENS = torch.tensor(_rng.integers(0, VOCAB, (N, T)))
LABELS = TOKENS.clone()
LABELS[:, :2] = -100  # the prompt
LABELS[0, -1] = -100  # padding


class Pairs(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return N

    def __getitem__(self, i: int) -> dict:
        return {"idx": i, "input_ids": TOKENS[i], "labels": LABELS[i]}


class TinyLM(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(VOCAB, 8)
        self.head = torch.nn.Linear(8, VOCAB)
        self.seen: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def training_step(self, batch, batch_idx):
        logits = self.head(self.embed(batch["input_ids"]))
        loss = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, VOCAB), batch["labels"][:, 1:].reshape(-1)
        )
        self.seen.append((batch["idx"].clone(), logits.detach().clone(), batch["labels"].clone()))
        return {"loss": loss, "logits": logits}  # ids and labels are found in the batch

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(Pairs(), batch_size=BATCH)

    def oracle(self) -> SequenceRecorder:
        rec = SequenceRecorder(N)
        per_epoch = -(-N // BATCH)
        for b, (ids, logits, labels) in enumerate(self.seen):
            rec.update(ids, logits, labels)
            if (b + 1) % per_epoch == 0:
                rec.end_epoch()
        return rec


def trainer(*callbacks, epochs: int = EPOCHS, **options) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=epochs, logger=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        callbacks=list(callbacks), **options,
    )  # fmt: skip


def test_records_a_language_model_from_its_training_step():
    carto, module = CartographyCallback(), TinyLM()
    trainer(carto, enable_checkpointing=False).fit(module)
    assert isinstance(carto.recorder, SequenceRecorder) and carto.recorder.shift
    want = module.oracle().dynamics
    np.testing.assert_allclose(carto.dynamics.gold_prob, want.gold_prob, rtol=1e-6)
    np.testing.assert_array_equal(carto.dynamics.pred, want.pred)
    np.testing.assert_allclose(
        carto.dynamics.extras["token_accuracy"], want.extras["token_accuracy"]
    )
    assert np.nanmean(want.gold_prob[-1]) > np.nanmean(want.gold_prob[0])  # it learned


def test_resume_from_an_epoch_checkpoint(tmp_path):
    full = CartographyCallback()
    trainer(full, enable_checkpointing=False).fit(TinyLM())
    first = CartographyCallback()
    save = ModelCheckpoint(dirpath=tmp_path, every_n_epochs=1, save_top_k=-1)
    trainer(first, save, epochs=2).fit(TinyLM())
    resumed = CartographyCallback()  # a fresh callback: the checkpoint tells the recorder kind
    ckpt = next(tmp_path.glob("epoch=1-*.ckpt"))
    trainer(resumed, enable_checkpointing=False).fit(TinyLM(), ckpt_path=ckpt)
    assert isinstance(resumed.recorder, SequenceRecorder)
    assert resumed.recorder.num_epochs == EPOCHS and resumed.recorder.missing == [0] * EPOCHS
    np.testing.assert_allclose(resumed.dynamics.gold_prob, full.dynamics.gold_prob, rtol=1e-5)


def test_shift_option_is_checked():
    with pytest.raises(TypeError, match=r"The 'shift' parameter of CartographyCallback must be"):
        CartographyCallback(shift="no")
