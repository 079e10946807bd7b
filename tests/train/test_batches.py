"""Tests for cartokit.train.batches: where checkpoints cut an epoch."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from cartokit.train.batches import checkpoint_steps

# ------------------------------------------------------------------------------ checkpoints


@given(steps=st.integers(1, 500), eval_every=st.floats(0.01, 1.0))
def test_checkpoint_steps_cut_the_epoch_evenly(steps, eval_every):
    closes = checkpoint_steps(steps, eval_every)
    k = int(np.ceil(1 / eval_every - 1e-9))
    assert closes[-1] == steps and len(closes) == min(k, steps)
    assert closes == sorted(set(closes)) and closes[0] >= 1
    runs = np.diff([0, *closes])
    if len(closes) == k:
        assert runs.max() - runs.min() <= 1


def test_checkpoint_steps_by_hand():
    assert checkpoint_steps(23, 0.25) == [6, 12, 18, 23]
    assert checkpoint_steps(7, 0.25) == [2, 4, 6, 7]
    assert checkpoint_steps(7, 1.0) == [7]
    assert checkpoint_steps(8, 0.3) == [2, 4, 6, 8]  # ceil(1 / 0.3) = 4 runs
    assert checkpoint_steps(2, 0.25) == [1, 2]
