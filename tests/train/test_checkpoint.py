"""Tests for cartokit.train.checkpoint: resuming after an error, an epoch, a SIGKILL; refusals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
import torch
from train_helpers import REPO, assert_same_dynamics, quick_fit

from cartokit.models import MLP
from cartokit.train import fit

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
