"""Tests for cartokit.train: the reference loop (fit), evaluate, resume and multi-process runs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, f1_score, recall_score
from torch import nn

from cartokit import DynamicsRecorder, TrainingDynamics
from cartokit.data import load_dataset
from cartokit.models import MLP
from cartokit.train import _checkpoint_steps, evaluate, fit

STATS = ("gold_prob", "margin", "sq_error", "pred")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny models run fastest, and most reproducibly, on one thread; restore it afterwards.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def small(digits):
    """200 training digits: 7 steps of 32 per epoch."""
    return digits.train.subset(range(200), name="digits/small")


def assert_same_dynamics(got: TrainingDynamics, want: TrainingDynamics, atol: float = 0.0):
    assert got.num_epochs == want.num_epochs
    np.testing.assert_array_equal(got.labels, want.labels)
    for key in STATS:
        if atol and key != "pred":
            np.testing.assert_allclose(getattr(got, key), getattr(want, key), atol=atol)
        else:
            np.testing.assert_array_equal(getattr(got, key), getattr(want, key))


def quick_fit(split, **options):
    options = {"epochs": 3, "batch_size": 32, "progress": False, **options}
    model = options.pop("model", None) or MLP(64, 10, hidden=(32,), seed=0)
    return fit(model, split, **options)


# ------------------------------------------------------------------------------ the loop


def test_fit_records_the_split_and_learns(digits, small):
    result = quick_fit(small, epochs=4, lr=1e-2, eval_data={"test": digits.test})
    dyn = result.dynamics
    assert dyn.num_epochs == 4 and dyn.num_samples == 200
    np.testing.assert_array_equal(dyn.ids, small.ids)
    np.testing.assert_array_equal(dyn.labels, small.labels)
    assert dyn.class_names == small.class_names
    assert result.recorder.duplicates == [0] * 4 and result.recorder.missing == [0] * 4
    hist = result.history
    assert list(hist.columns) == [
        "epoch",
        "step",
        "train_loss",
        "train_accuracy",
        "test_loss",
        "test_accuracy",
        "test_macro_f1",
    ]
    assert hist["epoch"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert hist["step"].tolist() == [7, 14, 21, 28]
    assert hist["train_loss"].is_monotonic_decreasing
    assert hist["test_accuracy"].iloc[-1] > 0.5  # chance: 0.1
    assert not result.model.training
    # The recorded gold probabilities rise as the model learns.
    assert dyn.gold_prob[-1].mean() > dyn.gold_prob[0].mean() + 0.2


def test_train_pass_matches_a_literal_loop(small):
    """Oracle: the recorded dynamics are those of the obvious loop over the same batches."""
    epochs, batch, seed = 3, 32, 5
    result = quick_fit(small, epochs=epochs, seed=seed, lr=3e-3)

    model = MLP.from_split(small, hidden=(32,), seed=0)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    x, y = torch.as_tensor(small.inputs), torch.as_tensor(small.labels)
    logits = torch.zeros(epochs, len(y), 10)
    for epoch in range(epochs):
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed + epoch))
        for ids in order.split(batch):
            out = model(x[ids])
            logits[epoch, ids] = out.detach()
            loss = F.cross_entropy(out, y[ids])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    want = TrainingDynamics.from_logits(logits, small.labels, small.ids)
    assert_same_dynamics(result.dynamics, want, atol=1e-6)


def test_eval_pass_records_the_model_in_eval_mode(small):
    """Oracle: the last eval-pass checkpoint is the returned model's eval-mode output."""
    model = MLP.from_split(small, hidden=(32,), dropout=0.5, seed=0)
    result = quick_fit(small, model=model, mode="eval_pass")
    with torch.no_grad():
        logits = result.model.eval()(torch.as_tensor(small.inputs))
    want = TrainingDynamics.from_logits(logits[None], small.labels, small.ids)
    np.testing.assert_allclose(result.dynamics.gold_prob[-1:], want.gold_prob, atol=1e-6)
    np.testing.assert_array_equal(result.dynamics.pred[-1:], want.pred)
    # With dropout, the training pass sees other logits than the eval pass.
    train = quick_fit(small, model=MLP.from_split(small, hidden=(32,), dropout=0.5, seed=0))
    assert not np.allclose(train.dynamics.gold_prob, result.dynamics.gold_prob)


def test_same_seed_same_dynamics_other_seed_other_dynamics(small):
    def run(seed):
        model = MLP.from_split(small, hidden=(32,), dropout=0.3, seed=0)
        return quick_fit(small, model=model, seed=seed)

    a, b, c = run(1), run(1), run(2)
    assert_same_dynamics(a.dynamics, b.dynamics)
    pd.testing.assert_frame_equal(a.history, b.history)
    assert not np.array_equal(a.dynamics.gold_prob, c.dynamics.gold_prob)


class Wrapped(torch.utils.data.Dataset):
    """A generic dataset of triples: fetched and collated sample by sample."""

    def __init__(self, inner):
        self.inner = inner

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        return self.inner[i]


def test_split_arrays_and_torch_datasets_give_the_same_run(small):
    x, y = small.inputs, small.labels
    runs = [quick_fit(small), quick_fit((x, y)), quick_fit(small.to_torch())]
    runs.append(quick_fit(Wrapped(small.to_torch()), eval_data={"e": Wrapped(small.to_torch())}))
    for other in runs[1:]:
        np.testing.assert_array_equal(other.dynamics.gold_prob, runs[0].dynamics.gold_prob)
        np.testing.assert_array_equal(other.dynamics.ids, np.arange(200))
        assert other.dynamics.class_names is None


def test_a_recorder_passed_in_is_used_and_record_false_records_nothing(small):
    recorder = DynamicsRecorder(200, 10, buffer_bytes=0)
    result = quick_fit(small, recorder=recorder)
    assert result.recorder is recorder and recorder.num_epochs == 3
    np.testing.assert_allclose(
        recorder.dynamics.gold_prob, quick_fit(small).dynamics.gold_prob, atol=1e-6
    )
    off = quick_fit(small, record=False)
    assert off.recorder is None and len(off.history) == 3
    with pytest.raises(RuntimeError, match="fit was run with record=False"):
        _ = off.dynamics


def test_hugging_face_style_outputs_and_a_given_optimizer(small):
    class HFLike(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = MLP.from_split(small, hidden=(32,), seed=0)

        def forward(self, x):
            return SimpleNamespace(logits=self.inner(x))

    model = HFLike()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    result = quick_fit(small, model=model, optimizer=optimizer, max_grad_norm=1.0)
    assert result.dynamics.num_epochs == 3
    assert result.history["train_loss"].iloc[-1] < result.history["train_loss"].iloc[0]


def test_progress_bars_show_loss_and_accuracy(small, capsys):
    quick_fit(small, progress=True)
    err = capsys.readouterr().err
    assert "fit: 100%" in err and "train_loss=" in err and "train_accuracy=" in err


# ------------------------------------------------------------------------------ checkpoints


@given(steps=st.integers(1, 500), eval_every=st.floats(0.01, 1.0))
def test_checkpoint_steps_cut_the_epoch_evenly(steps, eval_every):
    closes = _checkpoint_steps(steps, eval_every)
    k = int(np.ceil(1 / eval_every - 1e-9))
    assert closes[-1] == steps and len(closes) == min(k, steps)
    assert closes == sorted(set(closes)) and closes[0] >= 1
    runs = np.diff([0, *closes])
    if len(closes) == k:
        assert runs.max() - runs.min() <= 1


def test_checkpoint_steps_by_hand():
    assert _checkpoint_steps(23, 0.25) == [6, 12, 18, 23]
    assert _checkpoint_steps(7, 0.25) == [2, 4, 6, 7]
    assert _checkpoint_steps(7, 1.0) == [7]
    assert _checkpoint_steps(8, 0.3) == [2, 4, 6, 8]  # ceil(1 / 0.3) = 4 runs
    assert _checkpoint_steps(2, 0.25) == [1, 2]


def test_eval_every_with_eval_pass_gives_sub_epoch_map_checkpoints(digits, small):
    result = quick_fit(
        small, epochs=2, mode="eval_pass", eval_every=0.25, eval_data={"t": digits.test}
    )
    assert result.dynamics.num_epochs == 8
    assert result.recorder.missing == [0] * 8
    hist = result.history
    np.testing.assert_allclose(hist["epoch"], np.array([2, 4, 6, 7, 9, 11, 13, 14]) / 7, atol=1e-6)
    assert hist["step"].tolist() == [2, 4, 6, 7, 9, 11, 13, 14]
    assert hist["t_accuracy"].notna().all()


def test_eval_every_with_train_pass_keeps_one_map_checkpoint_per_epoch(small):
    with pytest.warns(UserWarning, match="keeps one checkpoint per epoch with mode='train_pass'"):
        result = quick_fit(small, epochs=2, eval_every=0.5)
    assert result.dynamics.num_epochs == 2
    assert result.history["step"].tolist() == [4, 7, 11, 14]
    assert result.recorder.missing == [0, 0]


# ------------------------------------------------------------------------------ resume


def test_resume_after_an_epoch_equals_an_uninterrupted_run(small, tmp_path):
    def model():
        return MLP.from_split(small, hidden=(32,), dropout=0.3, seed=0)

    full = quick_fit(small, model=model(), epochs=4)
    quick_fit(small, model=model(), epochs=2, checkpoint_dir=tmp_path)
    resumed = quick_fit(small, model=model(), epochs=4, checkpoint_dir=tmp_path, resume=True)
    assert_same_dynamics(resumed.dynamics, full.dynamics)
    pd.testing.assert_frame_equal(resumed.history, full.history)
    assert resumed.recorder.num_epochs == 4 and resumed.recorder.duplicates == [0] * 4
    for key, value in full.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0)


def test_resume_after_an_error_mid_epoch_equals_an_uninterrupted_run(small, tmp_path):
    def model():
        return MLP.from_split(small, hidden=(32,), dropout=0.3, seed=0)

    full = quick_fit(small, model=model(), eval_every=0.5, mode="eval_pass")
    crashing, calls = model(), []

    def crash(module, args):
        if module.training and torch.is_grad_enabled():
            calls.append(1)
            if len(calls) == 12:  # epoch 1, step 5; the last save was after step 3
                raise KeyboardInterrupt

    handle = crashing.register_forward_pre_hook(crash)
    with pytest.raises(KeyboardInterrupt):
        quick_fit(
            small,
            model=crashing,
            eval_every=0.5,
            mode="eval_pass",
            checkpoint_dir=tmp_path,
            checkpoint_every_steps=5,
        )
    handle.remove()
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert (saved["epoch"], saved["step"], saved["global_step"]) == (1, 3, 10)
    resumed = quick_fit(
        small,
        model=model(),
        eval_every=0.5,
        mode="eval_pass",
        checkpoint_dir=tmp_path,
        checkpoint_every_steps=5,
        resume=True,
    )
    assert_same_dynamics(resumed.dynamics, full.dynamics)
    pd.testing.assert_frame_equal(resumed.history, full.history)


KILLED_RUN = """
import os, signal, sys
import torch
torch.set_num_threads(1)
from cartokit.data import load_dataset
from cartokit.models import MLP
from cartokit.train import fit

split = load_dataset("digits").train.subset(range(120))
model = MLP.from_split(split, hidden=(32,), dropout=0.3, seed=0)
calls = 0

def kill(module, args):
    global calls
    if module.training and torch.is_grad_enabled():
        calls += 1
        if calls == 14:  # epoch 1, step 6 of 8; the last save was after global step 12
            os.kill(os.getpid(), signal.SIGKILL)

model.register_forward_pre_hook(kill)
fit(model, split, epochs=3, batch_size=16, progress=False, checkpoint_dir=sys.argv[1],
    checkpoint_every_steps=3)
"""


def test_resume_after_sigkill_mid_epoch_equals_an_uninterrupted_run(digits, tmp_path):
    script = tmp_path / "killed_run.py"
    script.write_text(textwrap.dedent(KILLED_RUN))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "ckpt")], env=env, capture_output=True
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    saved = torch.load(tmp_path / "ckpt" / "checkpoint.pt", weights_only=True)
    assert (saved["epoch"], saved["step"], saved["global_step"]) == (1, 4, 12)
    assert saved["recorder"]["partial"]["rows"] == 4 * 16  # the epoch's recorded part
    assert not list((tmp_path / "ckpt").glob("*.tmp"))

    split = digits.train.subset(range(120))
    options = {"epochs": 3, "batch_size": 16, "progress": False}

    def model():
        return MLP.from_split(split, hidden=(32,), dropout=0.3, seed=0)

    resumed = fit(model(), split, checkpoint_dir=tmp_path / "ckpt", resume=True, **options)
    full = fit(model(), split, **options)
    assert_same_dynamics(resumed.dynamics, full.dynamics)
    pd.testing.assert_frame_equal(resumed.history, full.history)
    assert resumed.recorder.duplicates == [0, 0, 0] and resumed.recorder.missing == [0, 0, 0]


def test_resume_without_a_checkpoint_starts_afresh(small, tmp_path):
    resumed = quick_fit(small, checkpoint_dir=tmp_path / "new", resume=True)
    assert_same_dynamics(resumed.dynamics, quick_fit(small).dynamics)
    assert (tmp_path / "new" / "checkpoint.pt").exists()


def test_resume_with_other_settings_is_refused(small, tmp_path):
    quick_fit(small, epochs=2, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="written with batch_size=32, this call has batch_size=16"):
        quick_fit(small, batch_size=16, checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(ValueError, match="written with mode='train_pass', this call has mode="):
        quick_fit(small, mode="eval_pass", checkpoint_dir=tmp_path, resume=True)


# ------------------------------------------------------------------------------ evaluate


def test_evaluate_matches_scikit_learn(digits):
    model = MLP.from_split(digits.train, hidden=(8,), seed=0)  # untrained: many mistakes
    result = evaluate(model, digits.test)
    with torch.no_grad():
        logits = model(torch.as_tensor(digits.test.inputs))
    preds, y = logits.argmax(1).numpy(), digits.test.labels
    np.testing.assert_array_equal(result.predictions, preds)
    assert result.accuracy == pytest.approx(accuracy_score(y, preds))
    assert result.macro_f1 == pytest.approx(f1_score(y, preds, average="macro", zero_division=0))
    assert result.loss == pytest.approx(
        F.cross_entropy(logits, torch.as_tensor(y)).item(), rel=1e-5
    )
    want = recall_score(y, preds, average=None, labels=range(10), zero_division=0)
    np.testing.assert_allclose(result.per_class_accuracy.to_numpy(), want)
    assert result.per_class_accuracy.index.tolist() == digits.test.class_names
    assert repr(result).startswith("Evaluation(loss=")


def test_evaluate_by_hand_with_an_absent_class():
    # Always predicts class 0; class 2 has no samples.
    model = nn.Linear(2, 3)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.copy_(torch.tensor([1.0, 0.0, 0.0]))
    x, y = np.zeros((4, 2), np.float32), np.array([0, 0, 0, 1])
    result = evaluate(model, (x, y))
    assert result.accuracy == 0.75
    # F1 of class 0: 2 * 3 / (3 + 4); class 1: 0; class 2 is neither true nor predicted.
    assert result.macro_f1 == pytest.approx((6 / 7 + 0) / 2)
    np.testing.assert_array_equal(result.per_class_accuracy.to_numpy(), [1.0, 0.0, np.nan])


# ------------------------------------------------------------------------------ bad input


class Pairs(torch.utils.data.Dataset):
    def __init__(self, n=10):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return torch.zeros(64), 0


class Triples(torch.utils.data.Dataset):
    """Generic triples whose labels are not known before iterating."""

    def __init__(self, labels):
        self.labels_ = torch.as_tensor(labels)
        self.dropped = 0

    def __len__(self):
        return len(self.labels_) - self.dropped

    def __getitem__(self, i):
        return i, torch.full((64,), 0.1 * (i % 7)), self.labels_[i]


def test_model_not_returning_batch_by_class_logits(small):
    flat = nn.Sequential(nn.Linear(64, 1), nn.Flatten(0))
    with pytest.raises(ValueError, match=r"must return float logits of shape \(batch, num_classes"):
        fit(flat, small, progress=False)

    class Argmax(nn.Linear):
        def forward(self, x):
            return super().forward(x).argmax(dim=1)

    with pytest.raises(ValueError, match=r"it returned \(4,\)"):
        fit(Argmax(64, 10), small, progress=False)

    class Pooled(nn.Linear):
        def forward(self, x):
            return super().forward(x).mean(dim=0, keepdim=True)

    with pytest.raises(ValueError, match=r"For a batch of 4 samples it returned \(1, 10\)"):
        fit(Pooled(64, 10), small, progress=False)
    with pytest.raises(ValueError, match=r"it returned \(4, 1\)"):
        fit(nn.Linear(64, 1), small, progress=False)


def test_model_classes_must_match_the_data(small):
    with pytest.raises(ValueError, match="returns 5 logits per sample, but train_data has 10"):
        fit(MLP(64, 5), small, progress=False)


def test_labels_outside_the_classes(small):
    x, y = small.inputs, small.labels.copy()
    y[[3, 7]] = [10, -1]
    with pytest.raises(ValueError, match=r"train_data labels must be in \[0, 10\).*\[3, 7\]"):
        fit(MLP(64, 10), (x, y), progress=False)
    labels = np.zeros(100, dtype=np.int64)
    labels[40] = 12
    with pytest.raises(ValueError, match=r"labels must be in \[0, 10\).* Batch \d has \[12\]"):
        fit(MLP(64, 10), Triples(labels), batch_size=32, progress=False, epochs=2)
    with pytest.raises(ValueError, match=r"evaluate: labels must be in \[0, 10\).* Batch 1 has"):
        evaluate(MLP(64, 10), Triples(labels))
    with pytest.raises(ValueError, match=r"fit: labels must be in \[0, 10\).* Batch 1 has \[12\]"):
        fit(MLP(64, 10), small, eval_data={"e": Triples(labels)}, progress=False)
    with pytest.raises(TypeError, match="labels must be one integer class index per sample"):
        fit(MLP(64, 10), Triples(np.zeros(10, np.float32)), progress=False)
    with pytest.raises(ValueError, match=r"eval_data\['bad'\] labels must be in \[0, 10\)"):
        fit(MLP(64, 10), small, eval_data={"bad": (x, y)}, progress=False)


def test_empty_data(small):
    with pytest.raises(ValueError, match="train_data is empty; a data map needs training samples"):
        fit(MLP(64, 10), (np.zeros((0, 64), np.float32), np.zeros(0, int)), progress=False)
    with pytest.raises(ValueError, match="train_data is empty"):
        fit(MLP(64, 10), Triples([]), progress=False)
    with pytest.raises(ValueError, match=r"eval_data\['e'\] is empty"):
        fit(MLP(64, 10), small, eval_data={"e": Triples([])}, progress=False)
    with pytest.raises(ValueError, match="evaluate: data is empty"):
        evaluate(MLP(64, 10), Triples([]))


def test_dataset_length_changing_between_epochs():
    data, model = Triples(np.arange(40) % 10), MLP(64, 10, seed=0)

    def shrink(module, args):
        data.dropped = 1

    model.register_forward_pre_hook(shrink)
    with pytest.raises(ValueError, match="had 40 samples when training started and has 39 at the"):
        fit(model, data, epochs=3, batch_size=8, progress=False)


def test_fewer_than_two_map_checkpoints_warns(small):
    with pytest.warns(UserWarning, match="the data map will have 1 checkpoint"):
        quick_fit(small, epochs=1)


def test_bad_datasets_and_options(small):
    model = MLP(64, 10)
    with pytest.raises(TypeError, match=r"must yield \(position, x, label\) triples.*2-tuple"):
        fit(model, Pairs(), progress=False)
    with pytest.raises(TypeError, match="must be a cartokit Split, a torch Dataset"):
        fit(model, [1, 2, 3], progress=False)
    with pytest.raises(ValueError, match=r"with one label per input. Got 200 inputs"):
        fit(model, (small.inputs, small.labels[:10]), progress=False)
    with pytest.raises(TypeError, match="labels must be integer class indices"):
        fit(model, (small.inputs, small.labels + 0.5), progress=False)
    with pytest.raises(ValueError, match=r"'mode' parameter of fit must be one of \['train_pass'"):
        fit(model, small, mode="eval")
    with pytest.raises(
        ValueError, match=r"'eval_every' parameter of fit must be a float in \(0, 1\]"
    ):
        fit(model, small, eval_every=1.5)
    with pytest.raises(ValueError, match="'eval_every' parameter of fit"):
        fit(model, small, eval_every=0)
    with pytest.raises(TypeError, match="'eval_every' parameter of fit must be a float"):
        fit(model, small, eval_every="0.5")
    with pytest.raises(ValueError, match="'epochs' parameter of fit must be an int >= 1. Got 0"):
        fit(model, small, epochs=0)
    with pytest.raises(ValueError, match="'batch_size' parameter of fit must be an int >= 1"):
        fit(model, small, batch_size=0)
    with pytest.raises(TypeError, match="'eval_data' parameter of fit must be a dict"):
        fit(model, small, eval_data=small, progress=False)
    with pytest.raises(TypeError, match="'optimizer' parameter of fit must be a torch.optim"):
        fit(model, small, optimizer="adam", progress=False)
    with pytest.raises(ValueError, match="'max_grad_norm' parameter of fit must be a float > 0"):
        fit(model, small, max_grad_norm=0, progress=False)
    with pytest.raises(ValueError, match="checkpoint_every_steps=5 needs a checkpoint_dir"):
        fit(model, small, checkpoint_every_steps=5, progress=False)
    with pytest.raises(ValueError, match="resume=True needs the checkpoint_dir"):
        fit(model, small, resume=True, progress=False)
    with pytest.raises(ValueError, match=r"recorder was made for 10 samples and 10 classes"):
        fit(model, small, recorder=DynamicsRecorder(10, 10), progress=False)
    with pytest.raises(TypeError, match="'recorder' parameter of fit must be a DynamicsRecorder"):
        fit(model, small, recorder="rec", progress=False)
    frozen = MLP(64, 10).requires_grad_(False)
    with pytest.raises(ValueError, match="the model has no trainable parameters"):
        fit(frozen, small, progress=False)


# ------------------------------------------------------------------------------ multi-process


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_data(n: int):
    split = load_dataset("digits").train
    return split.inputs[:n], split.labels[:n]


def _ddp_fit(x, y, **options):
    options = {"epochs": 3, "batch_size": 8, "lr": 3e-3, "seed": 7, "progress": False, **options}
    return fit(MLP(64, 10, hidden=(32,), seed=0), (x, y), **options)


def _ddp_save(path, result, x):
    dyn = result.dynamics
    with torch.no_grad():
        final = result.model(torch.as_tensor(x))
    np.savez(
        path,
        **{key: getattr(dyn, key) for key in STATS},
        duplicates=np.array(result.recorder.duplicates),
        missing=np.array(result.recorder.missing),
        train_loss=result.history["train_loss"].to_numpy(),
        final=final.numpy(),
    )


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        runs = {
            "even": (96, "train_pass"),  # no padding: vs a single process, batch x2
            "odd": (97, "train_pass"),  # one padding duplicate per epoch
            "odd_eval": (97, "eval_pass"),
        }
        for name, (n, mode) in runs.items():
            x, y = _ddp_data(n)
            _ddp_save(f"{out}/{name}-rank{rank}.npz", _ddp_fit(x, y, mode=mode), x)

        # Resume under DDP, mid-epoch: 6 steps per epoch, saves every 4 steps, an error in
        # step 10 on every rank (the last save after step 8: epoch 1, step 2).
        x, y = _ddp_data(96)
        ckpt = {"checkpoint_dir": f"{out}/ckpt", "checkpoint_every_steps": 4}
        model, calls = MLP(64, 10, hidden=(32,), seed=0), []

        def crash(module, args):
            if module.training and torch.is_grad_enabled():
                calls.append(1)
                if len(calls) == 10:
                    raise KeyboardInterrupt

        model.register_forward_pre_hook(crash)
        try:
            fit(model, (x, y), epochs=3, batch_size=8, lr=3e-3, seed=7, progress=False, **ckpt)
        except KeyboardInterrupt:
            saved = torch.load(f"{out}/ckpt/checkpoint-rank{rank}.pt", weights_only=True)
            np.save(f"{out}/resumed_from-rank{rank}.npy", [saved[k] for k in ("epoch", "step")])
        resumed = _ddp_fit(x, y, resume=True, **ckpt)
        _ddp_save(f"{out}/even_resumed-rank{rank}.npz", resumed, x)
    finally:
        dist.destroy_process_group()


def _reference_two_rank_run(x, y, *, epochs, batch, seed, lr):
    """One process feeding the per-rank batches of a 2-rank run: the gradient of each step is
    the mean of the two ranks' mean losses; the sampler's padding duplicate is not recorded."""
    n = len(y)
    model = MLP(64, 10, hidden=(32,), seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    logits = torch.zeros(epochs, n, 10)
    padded = 2 * -(-n // 2)
    for epoch in range(epochs):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
        order += order[: padded - n]
        shares = [torch.arange(r, padded, 2) for r in range(2)]  # positions in the padded order
        order = torch.tensor(order)
        for step in range(-(-(padded // 2) // batch)):
            loss = 0
            for share in shares:
                pos = share[step * batch : (step + 1) * batch]
                ids = order[pos]
                out = model(x[ids])
                keep = pos < n
                logits[epoch, ids[keep]] = out.detach()[keep]
                loss = loss + F.cross_entropy(out, y[ids]) / 2
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return TrainingDynamics.from_logits(logits, y), model


def test_two_processes_through_fit_equal_a_single_process(tmp_path):
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = {
        name: [dict(np.load(tmp_path / f"{name}-rank{r}.npz")) for r in range(2)]
        for name in ("even", "odd", "odd_eval", "even_resumed")
    }
    for runs in ranks.values():  # every rank ends with the same record
        for key, value in runs[0].items():
            np.testing.assert_array_equal(runs[1][key], value, err_msg=key)

    # No padding: 2 ranks x batch 8 take the same steps as one process with batch 16.
    x, y = _ddp_data(96)
    single = fit(
        MLP(64, 10, hidden=(32,), seed=0),
        (x, y),
        epochs=3,
        batch_size=16,
        lr=3e-3,
        seed=7,
        progress=False,
    )
    even = ranks["even"][0]
    for key in STATS:
        np.testing.assert_allclose(even[key], getattr(single.dynamics, key), atol=1e-5)
    np.testing.assert_allclose(even["train_loss"], single.history["train_loss"], rtol=1e-5)
    assert even["duplicates"].tolist() == [0, 0, 0]

    # Resumed mid-epoch under DDP (epoch 1, step 2): the uninterrupted run's record.
    for r in range(2):
        assert np.load(tmp_path / f"resumed_from-rank{r}.npy").tolist() == [1, 2]
    for key, value in ranks["even"][0].items():
        np.testing.assert_array_equal(ranks["even_resumed"][0][key], value, err_msg=key)

    # 97 samples: the sampler pads one duplicate per epoch, recorded once.
    x, y = _ddp_data(97)
    want, _ = _reference_two_rank_run(x, y, epochs=3, batch=8, seed=7, lr=3e-3)
    odd = ranks["odd"][0]
    for key in STATS:
        np.testing.assert_allclose(odd[key], getattr(want, key), atol=1e-5)
    assert odd["duplicates"].tolist() == [1, 1, 1] and odd["missing"].tolist() == [0, 0, 0]

    # Eval pass under DDP: the last checkpoint is the final model's output on all 97 samples.
    odd_eval = ranks["odd_eval"][0]
    final = TrainingDynamics.from_logits(odd_eval["final"][None], y)
    np.testing.assert_allclose(odd_eval["gold_prob"][-1:], final.gold_prob, atol=1e-6)
    assert odd_eval["duplicates"].tolist() == [1, 1, 1]
