"""CartographyTrainer under real multi-process training; launched by tests/test_distributed_hf.py.

Run as ``python -m torch.distributed.run --nproc_per_node 2 hf_ddp_train.py OUT`` (CPU, gloo).
Every rank writes ``OUT/<scenario>_rank<r>.npz`` with its record and the ids its own training
batches held. The test also imports this file to run the same scenarios in one process.

Scenarios:

- ``frozen``: learning rate 0 and no dropout, so a sample's logits depend on the sample alone and
  the record must equal a single-process run's, whatever the batches; gradient accumulation 2.
- ``eval_pass``: the same frozen model, recorded by an eval pass at each epoch end.
- ``learning``: learning rate > 0 and dropout, uninterrupted.
- ``resumed``: the ``learning`` run, killed right after a mid-epoch checkpoint (each process
  saves its own unfinished epoch) and resumed from it; must equal ``learning``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

N, C, L, VOCAB, BATCH, EPOCHS = 37, 3, 8, 40, 4, 3  # 37 is odd: the samplers pad


def arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "input_ids": rng.integers(1, VOCAB, (N, L)),
        "attention_mask": np.ones((N, L), dtype=np.int64),
        "label": rng.integers(0, C, N),
    }


def make_model(dropout: float) -> Any:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=L,
        num_labels=C,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    return BertForSequenceClassification(cfg)


def frozen_logits() -> np.ndarray:
    """The frozen model's logits for every sample, computed directly."""
    import torch

    data = arrays()
    model = make_model(0.0).eval()
    with torch.no_grad():
        out = model(
            input_ids=torch.as_tensor(data["input_ids"]),
            attention_mask=torch.as_tensor(data["attention_mask"]),
        )
    return out.logits.numpy()


class IdSpy:
    """A data collator that notes the ids of each training batch this process collates."""

    def __init__(self) -> None:
        self.ids: list[int] = []

    def __call__(self, features: list[dict]) -> dict:
        from transformers import default_data_collator

        self.ids.extend(int(f["idx"]) for f in features)
        return default_data_collator(features)


class Crash(Exception):
    pass


def scenario_args(name: str, out: Path, world: int) -> dict[str, Any]:
    options: dict[str, Any] = dict(
        output_dir=str(out / name),
        per_device_train_batch_size=BATCH,
        per_device_eval_batch_size=8,
        num_train_epochs=EPOCHS,
        learning_rate=0.0,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        seed=0,
        data_seed=0,
        dataloader_num_workers=0,
    )
    if world > 1:
        options["ddp_backend"] = "gloo"
    if name == "frozen":
        options["gradient_accumulation_steps"] = 2
    if name in ("learning", "resumed"):
        options.update(learning_rate=5e-3)
    if name == "resumed":
        options.update(save_strategy="steps", save_steps=7)
    return options


def run_scenario(name: str, out: Path, *, world: int = 1, rank: int = 0) -> dict[str, np.ndarray]:
    """Train one scenario; return (and, under torchrun, save) this process's view."""
    import datasets
    from transformers import TrainerCallback, TrainingArguments

    from cartokit.integrations.hf import CartographyTrainer

    class CrashAfterSave(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == 7:  # 5 steps per epoch per process: mid-epoch 2
                raise Crash

    cols = {k: v.tolist() for k, v in arrays().items()}
    cols["text"] = [f"sample {i}" for i in range(N)]  # removed by remove_unused_columns
    dataset = datasets.Dataset.from_dict(cols)
    args = TrainingArguments(**scenario_args(name, out, world))
    dropout = 0.1 if name in ("learning", "resumed") else 0.0
    spy = IdSpy()

    def trainer(callbacks: list) -> CartographyTrainer:
        return CartographyTrainer(
            model=make_model(dropout),
            args=args,
            train_dataset=dataset,
            data_collator=spy,
            callbacks=callbacks,
            record="eval_pass" if name == "eval_pass" else "train",
        )

    if name == "resumed":
        try:
            trainer([CrashAfterSave()]).train()
            raise RuntimeError("the run was meant to crash after its checkpoint at step 7")
        except Crash:
            if world > 1:
                import torch.distributed as dist

                dist.barrier()  # a real restart finds every process's files written
        spy.ids.clear()  # the resumed run's batches only
        resumed = trainer([])
        resumed.train(resume_from_checkpoint=str(out / name / "checkpoint-7"))
        recorder = resumed.recorder
    else:
        done = trainer([])
        done.train()
        recorder = done.recorder
    dyn = recorder.dynamics
    result = {
        "gold": dyn.gold_prob,
        "margin": dyn.margin,
        "sq": dyn.sq_error,
        "pred": dyn.pred,
        "dup": np.array(recorder.duplicates),
        "missing": np.array(recorder.missing),
        "ids": np.array(spy.ids, dtype=np.int64),
    }
    if world > 1:
        np.savez(out / f"{name}_rank{rank}.npz", **result)
    return result


def main(out: Path) -> None:
    import torch.distributed as dist
    from transformers import TrainingArguments

    # Creating TrainingArguments with ddp_backend="gloo" starts the process group.
    TrainingArguments(output_dir=str(out / "setup"), use_cpu=True, ddp_backend="gloo")
    world, rank = dist.get_world_size(), dist.get_rank()
    for name in ("frozen", "eval_pass", "learning", "resumed"):
        run_scenario(name, out, world=world, rank=rank)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
