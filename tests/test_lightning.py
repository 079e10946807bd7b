"""CartographyCallback: recording inside a Lightning training loop, on the CPU.

The module is a linear classifier on random features. Its ``training_step`` keeps its own
copy of every batch's ids and logits (the oracle), independently of the callback. A sampler
seeded by the epoch makes the data order a function of the epoch, so a resumed run sees the
same batches as an uninterrupted one.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("lightning", reason="Lightning is an optional extra: cartokit[lightning]")

import lightning.pytorch as pl  # noqa: E402
from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402

from cartokit import DynamicsRecorder, TrainingDynamics  # noqa: E402
from cartokit.integrations.lightning import CartographyCallback  # noqa: E402

N, C, D, BATCH, EPOCHS = 37, 3, 6, 8, 3  # 5 batches per epoch, the last one partial
STATS = ("gold_prob", "margin", "sq_error")

pytestmark = pytest.mark.filterwarnings(
    "ignore::UserWarning:lightning", "ignore::DeprecationWarning", "ignore::FutureWarning"
)

_rng = np.random.default_rng(0)
X = torch.tensor(_rng.normal(size=(N, D)), dtype=torch.float32)
Y = torch.tensor(_rng.integers(0, C, N))


class DictData(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return N

    def __getitem__(self, i: int) -> dict:
        return {"idx": i, "x": X[i], "labels": Y[i]}


class TupleData(DictData):
    def __getitem__(self, i: int) -> tuple:
        return i, X[i], Y[i]


class EpochSampler(torch.utils.data.Sampler):
    """Shuffles with the epoch as seed (Lightning calls set_epoch)."""

    def __init__(self) -> None:
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(torch.randperm(N, generator=torch.Generator().manual_seed(self.epoch)).tolist())

    def __len__(self) -> int:
        return N


class Classifier(pl.LightningModule):
    def __init__(self, *, tuple_batches: bool = False, returns: str = "dict", val: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(D, C)
        self.tuple_batches = tuple_batches
        self.returns = returns
        self.seen: list[tuple[int, np.ndarray, np.ndarray]] = []  # (epoch, ids, logits)
        if val:
            self.validation_step = self._validation_step
            self.val_dataloader = self._loader

    def training_step(self, batch, batch_idx):
        if self.tuple_batches:
            idx, x, y = batch
        else:
            idx, x, y = batch["idx"], batch["x"], batch["labels"]
        logits = self.lin(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        self.seen.append((self.current_epoch, idx.numpy(), logits.detach().numpy().copy()))
        if self.returns == "tensor":
            return loss
        out = {"loss": loss, "logits": logits}
        if self.tuple_batches:  # ids and labels are not in the batch: return them
            out.update(idx=idx, labels=y)
        return out

    def _validation_step(self, batch, batch_idx):
        return None

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)

    def _loader(self):
        data = TupleData() if self.tuple_batches else DictData()
        return torch.utils.data.DataLoader(data, batch_size=BATCH, sampler=EpochSampler())

    def train_dataloader(self):
        return self._loader()

    def oracle(self, epochs: int = EPOCHS) -> TrainingDynamics:
        logits = np.full((epochs, N, C), np.nan, dtype=np.float32)
        first = self.seen[0][0]
        for epoch, ids, out in self.seen:
            logits[epoch - first, ids] = out
        return TrainingDynamics.from_logits(logits, Y.numpy())


def trainer(*callbacks, epochs: int = EPOCHS, checkpoint: bool = False, **options) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=epochs,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=checkpoint,
        num_sanity_val_steps=0,
        callbacks=list(callbacks),
        **options,
    )


def assert_same(got: TrainingDynamics, want: TrainingDynamics, atol: float = 1e-6) -> None:
    assert got.num_epochs == want.num_epochs
    for key in STATS:
        np.testing.assert_allclose(getattr(got, key), getattr(want, key), atol=atol, err_msg=key)
    np.testing.assert_array_equal(got.pred, want.pred)
    np.testing.assert_array_equal(got.labels, want.labels)


def assert_clean(callback: CartographyCallback, epochs: int = EPOCHS) -> None:
    rec = callback.recorder
    assert rec.num_epochs == epochs
    assert rec.duplicates == [0] * epochs
    assert rec.missing == [0] * epochs


# ---------------------------------------------------------------------------- recording
@pytest.mark.parametrize("tuple_batches", [False, True], ids=["dict_batch", "tuple_batch"])
def test_records_the_training_pass(tmp_path, tuple_batches):
    module = Classifier(tuple_batches=tuple_batches)
    carto = CartographyCallback(save_path=tmp_path / "dynamics.npz")
    trainer(carto).fit(module)
    assert_clean(carto)
    assert len(module.seen) == EPOCHS * 5
    assert_same(carto.dynamics, module.oracle())
    assert not np.allclose(carto.dynamics.gold_prob[0], carto.dynamics.gold_prob[-1])
    assert_same(TrainingDynamics.load(tmp_path / "dynamics.npz"), carto.dynamics, atol=0)
    assert carto.recorder.num_samples == N and carto.recorder.num_classes == C


def test_gradient_accumulation_records_every_micro_batch(tmp_path):
    module = Classifier()
    carto = CartographyCallback()
    trainer(carto, accumulate_grad_batches=2).fit(module)
    assert_clean(carto)
    assert len(module.seen) == EPOCHS * 5
    assert_same(carto.dynamics, module.oracle())


def test_validation_is_not_recorded(tmp_path):
    module = Classifier(val=True)
    carto = CartographyCallback()
    trainer(carto).fit(module)
    assert_clean(carto)
    assert_same(carto.dynamics, module.oracle())


def test_own_recorder_with_sample_ids():
    rec = DynamicsRecorder(N, C, sample_ids=[f"s{i}" for i in range(N)])
    carto = CartographyCallback(rec)
    trainer(carto, epochs=2).fit(Classifier())
    assert carto.recorder is rec
    assert carto.dynamics.ids[:2].tolist() == ["s0", "s1"]


def test_custom_keys(tmp_path):
    class Renamed(Classifier):
        def training_step(self, batch, batch_idx):
            out = super().training_step(batch, batch_idx)
            return {"loss": out["loss"], "scores": out["logits"], "row": batch["idx"]}

    module = Renamed()
    carto = CartographyCallback(id_key="row", logits_key="scores")  # labels from the batch
    trainer(carto).fit(module)
    assert_same(carto.dynamics, module.oracle())


# ---------------------------------------------------------------------------- checkpoints
class Crash(Exception):
    pass


class CrashAtEpochStart(pl.Callback):
    """Simulates a killed job: raise when ``epoch`` starts (its checkpoint already written)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise Crash


@pytest.fixture(scope="module")
def uninterrupted() -> TrainingDynamics:
    carto = CartographyCallback()
    trainer(carto).fit(Classifier())
    return carto.dynamics


@pytest.mark.parametrize(
    "how",
    ["epoch_end", "validation_end", "last_batch_step"],
)
def test_resume_gives_the_uninterrupted_dynamics(tmp_path, uninterrupted, how):
    # epoch_end: saved in on_train_epoch_end, after the epoch was closed;
    # validation_end and last_batch_step: saved after the epoch's last batch but before its
    # end, so the checkpoint holds the whole epoch as unfinished.
    val = how == "validation_end"
    every = {"every_n_train_steps": 5} if how == "last_batch_step" else {"every_n_epochs": 1}
    if val:
        every["save_on_train_epoch_end"] = False  # save in on_validation_end
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_top_k=-1, **every)
    with pytest.raises(Crash):
        trainer(CartographyCallback(), CrashAtEpochStart(2), ckpt, checkpoint=True).fit(
            Classifier(val=val)
        )
    path = tmp_path / "epoch=1-step=10.ckpt"
    state = torch.load(path, weights_only=False)["callbacks"]
    (saved,) = [v for k, v in state.items() if k.startswith("CartographyCallback")]
    assert len(saved["recorder"]["epochs"]) == (2 if how == "epoch_end" else 1)

    module = Classifier(val=val)
    carto = CartographyCallback()
    trainer(carto).fit(module, ckpt_path=path)
    assert_clean(carto)  # no epoch twice, none missing
    assert_same(carto.dynamics, uninterrupted)
    assert {epoch for epoch, _, _ in module.seen} == {2}  # only epoch 2 was trained again


def test_mid_epoch_state_round_trip():
    """A mid-epoch state_dict continues the unfinished epoch (the hooks called directly)."""

    class FakeTrainer:
        current_epoch = 0
        train_dataloader = torch.utils.data.DataLoader(DictData())

    logits = torch.randn(2, N, C, generator=torch.Generator().manual_seed(0))
    batches = torch.arange(N).split(BATCH)

    def feed(cb, epoch, part):
        FakeTrainer.current_epoch = epoch
        for ids in part:
            out = {"loss": None, "logits": logits[epoch, ids], "idx": ids, "labels": Y[ids]}
            cb.on_train_batch_start(FakeTrainer, None, None, 0)
            cb.on_train_batch_end(FakeTrainer, None, out, None, 0)

    whole = CartographyCallback()
    first = CartographyCallback()
    for epoch in range(2):
        feed(whole, epoch, batches)
        whole.on_train_epoch_end(FakeTrainer, None)
    feed(first, 0, batches)
    first.on_train_epoch_end(FakeTrainer, None)
    feed(first, 1, batches[:2])
    state = first.state_dict()
    assert state["recorder"]["partial"] is not None

    resumed = CartographyCallback()
    resumed.load_state_dict(state)
    feed(resumed, 1, batches[2:])
    resumed.on_train_epoch_end(FakeTrainer, None)
    assert resumed.recorder.duplicates == [0, 0] and resumed.recorder.missing == [0, 0]
    assert_same(resumed.dynamics, whole.dynamics, atol=0)
    assert_same(whole.dynamics, TrainingDynamics.from_logits(logits, Y.numpy()))


def test_empty_state_before_the_first_batch():
    carto = CartographyCallback()
    assert carto.state_dict() == {}
    carto.load_state_dict({})
    assert carto.recorder is None


# ---------------------------------------------------------------------------- DDP
SCRIPTS = Path(__file__).resolve().parent / "scripts"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_cartokit_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_process_ddp_records_what_one_process_records(tmp_path):
    script = _load("lightning_ddp_train")
    _load("torchrun").run_two_processes(SCRIPTS / "lightning_ddp_train.py", tmp_path)
    frozen = TrainingDynamics.from_logits(
        np.stack([script.frozen_logits()] * script.EPOCHS), script.data()[1]
    )
    got = {
        name: [dict(np.load(tmp_path / f"{name}_rank{r}.npz")) for r in range(2)]
        for name in ("frozen", "learning")
    }
    for name, ranks in got.items():
        ids0, ids1 = (set(r["ids"].tolist()) for r in ranks)
        assert ids0 != ids1 and ids0 | ids1 == set(range(N))  # each process its own share
        for rank in ranks:
            # DistributedSampler pads 37 samples to 38: one duplicate per epoch, counted once.
            assert rank["dup"].tolist() == [1] * EPOCHS
            assert rank["missing"].tolist() == [0] * EPOCHS
            for key, want in (("gold", "gold_prob"), ("margin", "margin"), ("sq", "sq_error")):
                np.testing.assert_array_equal(rank[key], ranks[0][key])  # same on every rank
                if name == "frozen":
                    np.testing.assert_allclose(rank[key], getattr(frozen, want), atol=1e-6)
    assert not np.allclose(got["learning"][0]["gold"][0], got["learning"][0]["gold"][-1])


# ---------------------------------------------------------------------------- errors
def test_training_step_must_return_the_logits():
    # Lightning hands callbacks a returned loss tensor as {"loss": loss}.
    with pytest.raises(KeyError, match=r"found no 'logits' .* \(keys \['loss'\]\)"):
        trainer(CartographyCallback(), epochs=1).fit(Classifier(returns="tensor"))
    with pytest.raises(TypeError, match="training_step must return a dict .* Got Tensor"):
        CartographyCallback().on_train_batch_end(None, None, torch.tensor(1.0), None, 0)


def test_missing_key_names_the_option():
    carto = CartographyCallback(id_key="row")
    with pytest.raises(KeyError, match=r"found no 'row' .* name its key with id_key="):
        trainer(carto, epochs=1).fit(Classifier())


def test_missing_ids_with_tuple_batches():
    class NoIds(Classifier):
        def training_step(self, batch, batch_idx):
            out = super().training_step(batch, batch_idx)
            return {"loss": out["loss"], "logits": out["logits"]}

    with pytest.raises(KeyError, match=r"found no 'idx' in the dict training_step returned"):
        trainer(CartographyCallback(), epochs=1).fit(NoIds(tuple_batches=True))


def test_unsized_training_set_needs_a_recorder():
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            for i in range(N):
                yield {"idx": i, "x": X[i], "labels": Y[i]}

    class Streaming(Classifier):
        def train_dataloader(self):
            return torch.utils.data.DataLoader(Stream(), batch_size=BATCH)

    with pytest.raises(ValueError, match=r"cannot tell the training set's size.*recorder="):
        trainer(CartographyCallback(), epochs=1).fit(Streaming())
    carto = CartographyCallback(DynamicsRecorder(N, C))
    trainer(carto, epochs=1).fit(Streaming())
    assert carto.recorder.missing == [0]


def test_bad_options():
    with pytest.raises(
        TypeError, match=r"The 'recorder' parameter of CartographyCallback must be a cartokit"
    ):
        CartographyCallback(recorder={})
    with pytest.raises(ValueError, match=r"The 'logits_key' parameter .* non-empty str\. Got ''"):
        CartographyCallback(logits_key="")
    with pytest.raises(RuntimeError, match="nothing was recorded yet"):
        _ = CartographyCallback().dynamics
