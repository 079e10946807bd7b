"""Tests for cartokit.train.loop: fit, its options and errors, eval_every, multi-process runs."""

from __future__ import annotations

import os
import socket
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from train_helpers import STATS, assert_same_dynamics, quick_fit

from cartokit import DynamicsRecorder, TrainingDynamics
from cartokit.data import load_dataset
from cartokit.models import MLP
from cartokit.train import evaluate, fit

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
        ValueError, match=r"'eval_every' parameter of fit must be a float in the range \(0, 1\]"
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


# ------------------------------------------------------------------------------ the loss hook


def test_a_cross_entropy_loss_fn_gives_the_default_run(small):
    default = quick_fit(small)
    hooked = quick_fit(
        small, loss_fn=lambda logits, labels, positions: F.cross_entropy(logits, labels)
    )
    assert_same_dynamics(hooked.dynamics, default.dynamics)
    pd.testing.assert_frame_equal(hooked.history, default.history)


def test_loss_fn_gets_each_batch_positions_once_an_epoch(small):
    labels = torch.as_tensor(small.labels)
    seen = []

    def loss_fn(logits, y, positions):
        assert (labels[positions] == y).all()  # the rows of the batch, in the batch's order
        seen.append(positions.clone())
        return F.cross_entropy(logits, y) * 0.5

    result = quick_fit(small, epochs=2, loss_fn=loss_fn)
    epochs = torch.cat(seen).reshape(2, -1)
    for epoch in epochs:
        assert sorted(epoch.tolist()) == list(range(len(small)))
    assert not torch.equal(epochs[0], epochs[1])  # reshuffled each epoch
    default = quick_fit(small, epochs=2).history
    # the history reports the hooked loss: half of cross-entropy on the first checkpoint
    assert result.history["train_loss"].iloc[0] == pytest.approx(
        default["train_loss"].iloc[0] * 0.5, rel=1e-6
    )


def test_a_loss_fn_that_returns_no_scalar_loss_is_one_line(small):
    def per_sample(logits, y, positions):
        return F.cross_entropy(logits, y, reduction="none")

    with pytest.raises(ValueError, match=r"fit: loss_fn must return the batch's loss as a scalar "
                       r"tensor .* It returned shape \(32,\)\."):  # fmt: skip
        quick_fit(small, loss_fn=per_sample)
    with pytest.raises(ValueError, match=r"It returned float\."):
        quick_fit(small, loss_fn=lambda logits, y, positions: 1.0)
    with pytest.raises(ValueError, match=r"It returned shape \(\) without a gradient\."):
        quick_fit(small, loss_fn=lambda logits, y, positions: torch.tensor(1.0))
    with pytest.raises(TypeError, match=r"The 'loss_fn' parameter of fit must be a callable"):
        quick_fit(small, loss_fn="kd")
