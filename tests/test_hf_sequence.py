"""CartographyTrainer on language models: SFT data (prompt masked with -100, one padded pair per
row), recorded by a SequenceRecorder from the training forward pass, on the CPU.

The models are tiny random-init GPT-2 and T5 built from configs (no download). The oracle is a
spy: a forward hook on the LM head captures each training forward's logits and a collator
wrapper the ids and labels of the same batch; fed to a fresh SequenceRecorder they must give
the trainer's dynamics.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
datasets = pytest.importorskip("datasets")

from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    T5Config,
    T5ForConditionalGeneration,
    TrainerCallback,
    TrainingArguments,
    default_data_collator,
)

from cartokit import compute_metrics  # noqa: E402
from cartokit.integrations.hf import CartographyTrainer, language_model_kind  # noqa: E402
from cartokit.sequence import SequenceRecorder  # noqa: E402

N, L, VOCAB, BATCH, EPOCHS = 13, 12, 30, 4, 2  # 13: the last batch of an epoch is partial
PAD, SEP, EOS = 0, 1, 2


def sft_rows(n: int = N, seed: int = 0) -> dict[str, list]:
    """Prompt -> reply pairs, one per row, padded to L; only the reply and its EOS are scored."""
    rng = np.random.default_rng(seed)
    cols = {"input_ids": [], "attention_mask": [], "labels": []}
    for _ in range(n):
        prompt = rng.integers(3, VOCAB, rng.integers(2, 5)).tolist() + [SEP]
        reply = rng.integers(3, VOCAB, rng.integers(1, 5)).tolist() + [EOS]
        ids = prompt + reply
        pad = L - len(ids)
        cols["input_ids"].append(ids + [PAD] * pad)
        cols["attention_mask"].append([1] * len(ids) + [0] * pad)
        cols["labels"].append([-100] * len(prompt) + reply + [-100] * pad)
    return cols


def gpt2(seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=VOCAB, n_positions=L, n_embd=16, n_layer=1, n_head=2,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )  # fmt: skip
    return GPT2LMHeadModel(config)


def args(out, **overrides) -> TrainingArguments:
    options = dict(
        output_dir=str(out), per_device_train_batch_size=BATCH, num_train_epochs=EPOCHS,
        learning_rate=5e-3, use_cpu=True, report_to=[], save_strategy="no",
        logging_strategy="no", disable_tqdm=True, seed=0, data_seed=0,
    )  # fmt: skip
    options.update(overrides)
    return TrainingArguments(**options)


class Spy:
    """Captures (ids, logits, labels) of every training forward pass."""

    def __init__(self, head: torch.nn.Module) -> None:
        self.logits: list[torch.Tensor] = []
        self.batches: list[tuple[torch.Tensor, torch.Tensor]] = []
        head.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output) -> None:
        if module.training:
            self.logits.append(output.detach().clone())

    def collate(self, features: list[dict]) -> dict:
        batch = default_data_collator(features)
        self.batches.append((batch["idx"].clone(), batch["labels"].clone()))
        return batch

    def replay(self, *, shift: bool, per_epoch: int) -> SequenceRecorder:
        rec = SequenceRecorder(N, shift=shift)
        for b, ((ids, labels), logits) in enumerate(zip(self.batches, self.logits, strict=True)):
            rec.update(ids, logits, labels)
            if (b + 1) % per_epoch == 0:
                rec.end_epoch()
        return rec


def assert_same(got, want) -> None:
    np.testing.assert_allclose(got.gold_prob, want.gold_prob, rtol=1e-5)
    np.testing.assert_allclose(got.margin, want.margin, atol=1e-5)
    np.testing.assert_array_equal(got.pred, want.pred)
    np.testing.assert_allclose(got.extras["token_accuracy"], want.extras["token_accuracy"])


def test_causal_lm_records_the_training_pass_with_gradient_accumulation(tmp_path):
    model = gpt2()
    spy = Spy(model.lm_head)
    trainer = CartographyTrainer(
        model=model,
        args=args(tmp_path, gradient_accumulation_steps=2),
        train_dataset=datasets.Dataset.from_dict(sft_rows()),
        data_collator=spy.collate,
    )
    assert isinstance(trainer.recorder, SequenceRecorder) and trainer.recorder.shift
    trainer.train()
    per_epoch = -(-N // BATCH)
    # no extra pass: one LM-head forward per micro-batch, each recorded once
    assert len(spy.logits) == EPOCHS * per_epoch
    rec = trainer.recorder
    assert rec.num_epochs == EPOCHS and rec.missing == [0] * EPOCHS and rec.empty == [0] * EPOCHS
    assert_same(trainer.dynamics, spy.replay(shift=True, per_epoch=per_epoch).dynamics)
    with pytest.warns(UserWarning, match="uses 2 checkpoint"):
        metrics = compute_metrics(trainer.dynamics)
    assert metrics["perplexity"].gt(1).all() and metrics["token_accuracy"].between(0, 1).all()


def test_a_model_loaded_by_name_through_auto_model_for_causal_lm(tmp_path):
    gpt2().save_pretrained(tmp_path / "tiny-gpt2")  # stands in for a hub name offline
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "tiny-gpt2")
    assert language_model_kind(model) == "causal"
    trainer = CartographyTrainer(
        model=model,
        args=args(tmp_path / "out", num_train_epochs=3),
        train_dataset=datasets.Dataset.from_dict(sft_rows()),
    )
    trainer.train()
    dyn = trainer.dynamics
    assert (dyn.num_samples, dyn.num_epochs) == (N, 3)
    # training lowers the loss: the geometric-mean token probability rises
    assert np.nanmean(dyn.gold_prob[-1]) > np.nanmean(dyn.gold_prob[0])
    assert (tmp_path / "out" / "dynamics.npz").is_file()


def test_seq2seq_logits_are_scored_unshifted(tmp_path):
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=VOCAB, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
        dropout_rate=0.0, decoder_start_token_id=PAD, pad_token_id=PAD,
    )  # fmt: skip
    model = T5ForConditionalGeneration(config)
    spy = Spy(model.lm_head)
    rows = sft_rows()
    rows["labels"] = [r[::-1] for r in rows["labels"]]  # any targets: the decoder's own
    trainer = CartographyTrainer(
        model=model,
        args=args(tmp_path),
        train_dataset=datasets.Dataset.from_dict(rows),
        data_collator=spy.collate,
    )
    assert language_model_kind(model) == "seq2seq"
    assert trainer.recorder.shift is False
    trainer.train()
    assert_same(trainer.dynamics, spy.replay(shift=False, per_epoch=-(-N // BATCH)).dynamics)


class CustomLM(GPT2LMHeadModel):
    """A language model of a class transformers does not map: known by its 2-D labels."""


def test_an_unmapped_language_model_is_known_by_its_labels(tmp_path):
    torch.manual_seed(0)
    model = CustomLM(gpt2().config)
    assert language_model_kind(model) is None
    trainer = CartographyTrainer(
        model=model, args=args(tmp_path), train_dataset=datasets.Dataset.from_dict(sft_rows())
    )
    trainer.train()
    assert isinstance(trainer.recorder, SequenceRecorder)
    assert trainer.dynamics.num_epochs == EPOCHS


class Crash(Exception):
    pass


class CrashAfterSave(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Crash


def test_resume_mid_epoch_gives_the_uninterrupted_record(tmp_path):
    def run(out, **kw):
        resume = kw.pop("resume", None)
        trainer = CartographyTrainer(
            model=gpt2(),
            args=args(out, save_strategy="steps", save_steps=2, num_train_epochs=3),
            train_dataset=datasets.Dataset.from_dict(sft_rows()),
            **kw,
        )
        trainer.train(resume_from_checkpoint=resume)
        return trainer

    full = run(tmp_path / "full").dynamics
    with pytest.raises(Crash):
        run(tmp_path / "cut", callbacks=[CrashAfterSave(6)])  # step 6: inside epoch 2 of 4 steps
    resumed = run(tmp_path / "cut", resume=str(tmp_path / "cut" / "checkpoint-6"))
    assert resumed.recorder.missing == [0, 0, 0]
    assert_same(resumed.dynamics, full)
