"""CartographyTrainer: recording inside transformers.Trainer, single process, on the CPU.

The model is a randomly initialised one-layer BERT (32 hidden units) built from a config, and
the data are random token ids, so no download and no tokenizer are needed. The oracle is a
spy: a forward hook on the classifier head captures each training forward's logits, and a
collator wrapper captures the ids of the same batch, independently of the trainer's own
bookkeeping.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
datasets = pytest.importorskip("datasets")

from transformers import (  # noqa: E402
    BertConfig,
    BertForSequenceClassification,
    TrainerCallback,
    TrainingArguments,
    default_data_collator,
)

from cartokit import DynamicsRecorder, TrainingDynamics  # noqa: E402
from cartokit.integrations.hf import (  # noqa: E402
    DYNAMICS_FILE,
    RECORDER_FILE,
    CartographyTrainer,
    add_id_column,
)

N, C, L, VOCAB, BATCH, EPOCHS = 37, 3, 8, 40, 8, 3  # 37: the last batch of an epoch is partial
STATS = ("gold_prob", "margin", "sq_error", "pred")


def make_model(*, seed: int = 0, dropout: float = 0.0, num_labels: int = C, **config):
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=L,
        num_labels=num_labels,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        **config,
    )
    return BertForSequenceClassification(cfg)


def arrays(n: int = N, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "input_ids": rng.integers(1, VOCAB, (n, L)),
        "attention_mask": np.ones((n, L), dtype=np.int64),
        "label": rng.integers(0, C, n),
    }


def make_dataset(n: int = N, *, text: bool = False, ids: bool = False):
    cols = {k: v.tolist() for k, v in arrays(n).items()}
    if text:
        cols["text"] = [f"sample {i}" for i in range(n)]  # dropped by remove_unused_columns
    ds = datasets.Dataset.from_dict(cols)
    return add_id_column(ds) if ids else ds


class TorchDataset(torch.utils.data.Dataset):
    """A plain map-style dataset returning dicts, with the row position under "idx"."""

    def __init__(self, n: int = N, *, with_ids: bool = True) -> None:
        self.data = {k: torch.as_tensor(v) for k, v in arrays(n).items()}
        self.with_ids = with_ids

    def __len__(self) -> int:
        return len(self.data["label"])

    def __getitem__(self, i: int) -> dict:
        item = {k: v[i] for k, v in self.data.items()}
        item["note"] = "unused"  # a key the model does not take
        if self.with_ids:
            item["idx"] = i
        return item


def make_args(out, **overrides) -> TrainingArguments:
    options = dict(
        output_dir=str(out),
        per_device_train_batch_size=BATCH,
        per_device_eval_batch_size=16,
        num_train_epochs=EPOCHS,
        learning_rate=5e-3,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        seed=0,
        data_seed=0,
    )
    options.update(overrides)
    return TrainingArguments(**options)


class Spy:
    """Captures (ids, logits) of every training forward pass, by hook and collator."""

    def __init__(self, model) -> None:
        self.ids: list[np.ndarray] = []
        self.logits: list[np.ndarray] = []
        self.head_dtypes: set[torch.dtype] = set()
        model.classifier.register_forward_hook(self._hook)

    def _hook(self, module, args, output) -> None:
        if module.training:
            self.head_dtypes.add(output.dtype)
            self.logits.append(output.detach().float().numpy())

    def collate(self, features: list[dict]) -> dict:
        # Evaluation batches carry an "is_eval" marker (when columns are kept).
        if "idx" in features[0] and "is_eval" not in features[0]:
            self.ids.append(np.array([f["idx"] for f in features]))
        cleaned = [{k: v for k, v in f.items() if k not in ("note", "is_eval")} for f in features]
        return default_data_collator(cleaned)

    def dynamics(self, epochs: int = EPOCHS, labels: np.ndarray | None = None) -> TrainingDynamics:
        labels = arrays()["label"] if labels is None else labels
        assert len(self.ids) == len(self.logits)
        logits = np.full((epochs, len(labels), C), np.nan, dtype=np.float32)
        per_epoch = len(self.ids) // epochs
        for b, (ids, out) in enumerate(zip(self.ids, self.logits)):
            logits[b // per_epoch, ids] = out
        return TrainingDynamics.from_logits(logits, labels)


def assert_same(got: TrainingDynamics, want: TrainingDynamics, atol: float = 1e-5) -> None:
    assert got.num_epochs == want.num_epochs
    for key in STATS[:3]:
        np.testing.assert_allclose(getattr(got, key), getattr(want, key), atol=atol, err_msg=key)
    np.testing.assert_array_equal(got.pred, want.pred)
    np.testing.assert_array_equal(got.labels, want.labels)


def assert_clean(trainer: CartographyTrainer, epochs: int = EPOCHS) -> None:
    rec = trainer.recorder
    assert rec.num_epochs == epochs
    assert rec.duplicates == [0] * epochs
    assert rec.missing == [0] * epochs
    assert np.isfinite(rec.dynamics.gold_prob).all()


# ---------------------------------------------------------------------------- training pass
@pytest.mark.parametrize("remove_unused", [True, False], ids=["remove_unused", "keep_columns"])
def test_records_the_training_pass(tmp_path, remove_unused):
    model = make_model()
    spy = Spy(model)
    trainer = CartographyTrainer(
        model=model,
        args=make_args(tmp_path, remove_unused_columns=remove_unused),
        train_dataset=make_dataset(text=remove_unused),  # no id column: added
        data_collator=spy.collate,
    )
    assert trainer.train_dataset["idx"][:] == list(range(N))
    trainer.train()
    assert_clean(trainer)
    assert len(spy.ids) == EPOCHS * 5
    assert_same(trainer.dynamics, spy.dynamics())
    # Weights changed, so the record is not three copies of one epoch.
    assert not np.allclose(trainer.dynamics.gold_prob[0], trainer.dynamics.gold_prob[-1])
    saved = TrainingDynamics.load(tmp_path / DYNAMICS_FILE)
    assert_same(saved, trainer.dynamics, atol=0)


@pytest.mark.parametrize("remove_unused", [True, False], ids=["remove_unused", "keep_columns"])
def test_torch_dataset_with_ids_from_getitem(tmp_path, remove_unused):
    model = make_model()
    spy = Spy(model)
    trainer = CartographyTrainer(
        model=model,
        args=make_args(tmp_path, remove_unused_columns=remove_unused, num_train_epochs=2),
        train_dataset=TorchDataset(),
        data_collator=spy.collate,
    )
    trainer.train()
    assert_clean(trainer, epochs=2)
    assert_same(trainer.dynamics, spy.dynamics(epochs=2))


def test_gradient_accumulation_and_label_smoothing(tmp_path):
    model = make_model()
    spy = Spy(model)
    trainer = CartographyTrainer(
        model=model,
        args=make_args(
            tmp_path,
            per_device_train_batch_size=4,
            gradient_accumulation_steps=3,
            label_smoothing_factor=0.1,  # the parent pops the labels from the batch
        ),
        train_dataset=make_dataset(),
        data_collator=spy.collate,
    )
    trainer.train()
    assert_clean(trainer)  # every micro-batch once: complete, no duplicates
    assert len(spy.ids) == EPOCHS * 10  # 10 micro-batches of <= 4 per epoch
    assert trainer.state.global_step == EPOCHS * 4  # 4 optimizer steps per epoch
    assert_same(trainer.dynamics, spy.dynamics())


def test_bf16_mixed_precision(tmp_path):
    model = make_model()
    spy = Spy(model)
    trainer = CartographyTrainer(
        model=model,
        args=make_args(tmp_path, bf16=True, num_train_epochs=2),
        train_dataset=make_dataset(),
        data_collator=spy.collate,
    )
    trainer.train()
    assert spy.head_dtypes == {torch.bfloat16}  # autocast was on in the training pass
    assert_clean(trainer, epochs=2)
    assert_same(trainer.dynamics, spy.dynamics(epochs=2))


@pytest.mark.parametrize("remove_unused", [True, False], ids=["remove_unused", "keep_columns"])
def test_evaluation_during_training_is_not_recorded(tmp_path, remove_unused):
    model = make_model()
    spy = Spy(model)
    trainer = CartographyTrainer(
        model=model,
        args=make_args(
            tmp_path,
            remove_unused_columns=remove_unused,
            eval_strategy="steps",
            eval_steps=2,
        ),
        train_dataset=make_dataset(),
        # The training set itself, ids included: recording it would show as duplicates.
        eval_dataset=make_dataset(ids=True).add_column("is_eval", [1] * N),
        data_collator=spy.collate,
    )
    trainer.train()
    evals = [log for log in trainer.state.log_history if "eval_loss" in log]
    assert len(evals) == 8  # steps 2, 4, ..., 14, and the last step (15)
    assert_clean(trainer)
    assert_same(trainer.dynamics, spy.dynamics())
    # predict() on a set carrying the id column works too (the column is dropped).
    assert trainer.predict(make_dataset(ids=True)).predictions.shape == (N, C)


# ---------------------------------------------------------------------------- eval pass
class EvalOracle(TrainerCallback):
    """At each epoch end, the eval-mode logits of the whole training set."""

    def __init__(self) -> None:
        self.logits: list[np.ndarray] = []

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        data = arrays()
        was = model.training
        model.eval()
        with torch.no_grad():
            out = model(
                input_ids=torch.as_tensor(data["input_ids"]),
                attention_mask=torch.as_tensor(data["attention_mask"]),
            ).logits
        model.train(was)
        self.logits.append(out.numpy())


def test_eval_pass_records_eval_mode_logits_at_epoch_end(tmp_path):
    oracle = EvalOracle()
    trainer = CartographyTrainer(
        model=make_model(dropout=0.3),  # eval mode matters: dropout is off in the pass
        args=make_args(tmp_path),
        train_dataset=make_dataset(text=True),
        callbacks=[oracle],
        record="eval_pass",
    )
    trainer.train()
    assert_clean(trainer)
    want = TrainingDynamics.from_logits(np.stack(oracle.logits), arrays()["label"])
    assert_same(trainer.dynamics, want)


def test_eval_pass_sub_epoch_checkpoints(tmp_path):
    oracle = EvalOracle()
    trainer = CartographyTrainer(
        model=make_model(),
        args=make_args(tmp_path, num_train_epochs=2),
        train_dataset=make_dataset(),
        callbacks=[oracle],
        record="eval_pass",
        eval_passes_per_epoch=2,
    )
    trainer.train()
    assert_clean(trainer, epochs=4)  # two passes per epoch
    want = TrainingDynamics.from_logits(np.stack(oracle.logits), arrays()["label"])
    assert_same(trainer.dynamics.select_epochs([1, 3]), want)  # each epoch's last pass
    # The mid-epoch pass saw other weights than the epoch-end pass.
    assert not np.allclose(trainer.dynamics.gold_prob[0], trainer.dynamics.gold_prob[1])


# ---------------------------------------------------------------------------- checkpoints
class Crash(Exception):
    pass


class CrashAfterSave(TrainerCallback):
    """Simulates a killed job: raise right after the checkpoint at ``step`` is written."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise Crash


def run(out, *, callbacks=(), resume=None, **args):
    trainer = CartographyTrainer(
        model=make_model(dropout=0.1),  # dropout: the RNG state must be restored too
        args=make_args(out, **args),
        train_dataset=make_dataset(),
        callbacks=list(callbacks),
    )
    trainer.train(resume_from_checkpoint=resume)
    return trainer


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> TrainingDynamics:
    """The reference run; saving checkpoints does not change training, so one serves all."""
    return run(tmp_path_factory.mktemp("full")).dynamics


@pytest.mark.parametrize(
    ("save", "crash_step", "epochs_saved"),
    [
        ({"save_strategy": "epoch"}, 10, 2),  # after epoch 2
        ({"save_strategy": "steps", "save_steps": 7}, 7, 1),  # mid-epoch 2
        ({"save_strategy": "steps", "save_steps": 5}, 10, 1),  # last step of epoch 2,
        # saved before that epoch was closed
    ],
    ids=["epoch_end", "mid_epoch", "last_step"],
)
def test_resume_gives_the_uninterrupted_dynamics(
    tmp_path, uninterrupted, save, crash_step, epochs_saved
):
    full = uninterrupted
    out = tmp_path
    with pytest.raises(Crash):
        run(out, callbacks=[CrashAfterSave(crash_step)], **save)
    checkpoint = out / f"checkpoint-{crash_step}"
    assert (checkpoint / RECORDER_FILE).is_file()
    assert TrainingDynamics.load(checkpoint / DYNAMICS_FILE).num_epochs == epochs_saved

    resumed = run(out, resume=str(checkpoint), **save)
    assert_clean(resumed)  # no epoch twice, none missing
    assert_same(resumed.dynamics, full, atol=1e-6)
    assert_same(TrainingDynamics.load(out / DYNAMICS_FILE), full, atol=1e-6)


def test_resume_true_finds_the_last_checkpoint(tmp_path):
    with pytest.raises(Crash):
        run(tmp_path, callbacks=[CrashAfterSave(5)], save_strategy="epoch")
    resumed = run(tmp_path, resume=True, save_strategy="epoch")
    assert_clean(resumed)


def test_resume_from_a_checkpoint_without_record_warns(tmp_path):
    with pytest.raises(Crash):
        run(tmp_path, callbacks=[CrashAfterSave(5)], save_strategy="epoch")
    (tmp_path / "checkpoint-5" / RECORDER_FILE).unlink()
    with pytest.warns(UserWarning, match="holds no cartokit record"):
        resumed = run(tmp_path, resume=str(tmp_path / "checkpoint-5"), save_strategy="epoch")
    assert resumed.recorder.num_epochs == 2


def test_training_twice_warns_that_epochs_are_appended(tmp_path):
    trainer = run(tmp_path, num_train_epochs=1)
    with pytest.warns(UserWarning, match="already holds 1 epochs"):
        trainer.train()
    assert trainer.recorder.num_epochs == 2


# ---------------------------------------------------------------------------- options, errors
def test_own_recorder_with_sample_ids(tmp_path):
    ds = make_dataset().add_column("guid", [f"s{i}" for i in range(N)])
    rec = DynamicsRecorder(N, C, sample_ids=ds["guid"], class_names=["a", "b", "c"])
    trainer = CartographyTrainer(
        model=make_model(),
        args=make_args(tmp_path, num_train_epochs=1),
        train_dataset=ds,
        recorder=rec,
        id_column="row",
    )
    assert trainer.train_dataset["row"][:] == list(range(N))
    trainer.train()
    assert trainer.recorder is rec
    assert trainer.dynamics.ids.tolist() == [f"s{i}" for i in range(N)]
    assert trainer.dynamics.class_names == ["a", "b", "c"]


def test_default_recorder_takes_the_class_names_of_the_config(tmp_path):
    model = make_model(id2label={0: "neg", 1: "neu", 2: "pos"})
    trainer = CartographyTrainer(
        model=model, args=make_args(tmp_path), train_dataset=make_dataset()
    )
    assert trainer.recorder.class_names == ["neg", "neu", "pos"]
    assert trainer.recorder.num_samples == N


def test_a_permuted_id_column_is_accepted(tmp_path):
    perm = np.random.default_rng(1).permutation(N)
    ds = make_dataset().add_column("idx", perm)
    model = make_model()
    spy = Spy(model)
    trainer = CartographyTrainer(
        model=model,
        args=make_args(tmp_path, num_train_epochs=2),
        train_dataset=ds,
        data_collator=spy.collate,
    )
    trainer.train()
    assert_clean(trainer, epochs=2)
    # Row r is recorded under its idx value perm[r], with its own label.
    labels = np.empty(N, dtype=np.int64)
    labels[perm] = arrays()["label"]
    assert_same(trainer.dynamics, spy.dynamics(epochs=2, labels=labels))


def test_bad_options():
    with pytest.raises(ValueError, match=r"'record' parameter .* Got 'both' instead"):
        CartographyTrainer(model=make_model(), record="both")
    with pytest.raises(ValueError, match="eval_passes_per_epoch=2 needs record='eval_pass'"):
        CartographyTrainer(model=make_model(), eval_passes_per_epoch=2)
    with pytest.raises(ValueError, match="'eval_passes_per_epoch' .* int >= 1. Got 0"):
        CartographyTrainer(model=make_model(), record="eval_pass", eval_passes_per_epoch=0)
    with pytest.raises(
        TypeError,
        match=r"The 'recorder' parameter of CartographyTrainer must be a cartokit\.Dynamics"
        r"Recorder or cartokit\.SequenceRecorder, or None\. Got 'rec' of type str instead\.",
    ):
        CartographyTrainer(model=make_model(), recorder="rec")
    with pytest.raises(ValueError, match=r"'id_column' parameter .* must be a non-empty str\."):
        CartographyTrainer(model=make_model(), id_column="")


def test_bad_id_column(tmp_path):
    ds = make_dataset().add_column("idx", list(range(100, 100 + N)))
    with pytest.raises(ValueError, match=r"'idx' must hold each row's position.*add_id_column"):
        CartographyTrainer(model=make_model(), args=make_args(tmp_path), train_dataset=ds)


def test_not_a_classifier(tmp_path):
    with pytest.raises(ValueError, match=r"single-label classifier.*num_labels=1"):
        CartographyTrainer(
            model=make_model(num_labels=1), args=make_args(tmp_path), train_dataset=make_dataset()
        )


def test_recorder_of_another_size(tmp_path):
    with pytest.raises(ValueError, match="recorder is for 10 samples, the train_dataset has 37"):
        CartographyTrainer(
            model=make_model(),
            args=make_args(tmp_path),
            train_dataset=make_dataset(),
            recorder=DynamicsRecorder(10, C),
        )


def test_batches_without_ids(tmp_path):
    trainer = CartographyTrainer(
        model=make_model(),
        args=make_args(tmp_path, remove_unused_columns=True),
        train_dataset=TorchDataset(with_ids=False),
    )
    with pytest.raises(KeyError, match="training batch has no 'idx' entry"):
        trainer.train()


def test_iterable_dataset_is_refused(tmp_path):
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(())

    with pytest.raises(TypeError, match="must have a length"):
        CartographyTrainer(
            model=make_model(), args=make_args(tmp_path, max_steps=1), train_dataset=Stream()
        )


def test_add_id_column_errors():
    ds = make_dataset(ids=True)
    with pytest.raises(ValueError, match="already has a column 'idx'. Pass overwrite=True"):
        add_id_column(ds)
    assert add_id_column(ds.select([3, 1]), overwrite=True)["idx"][:] == [0, 1]
    with pytest.raises(TypeError, match="must be a datasets.Dataset"):
        add_id_column([1, 2])


def test_dynamics_before_training(tmp_path):
    trainer = CartographyTrainer(model=make_model(), args=make_args(tmp_path))
    with pytest.raises(RuntimeError, match="nothing was recorded yet"):
        _ = trainer.dynamics
