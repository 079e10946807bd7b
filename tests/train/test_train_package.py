"""Tests for the cartokit.train package: MODES without torch, the lazily loaded public names."""

from __future__ import annotations

import subprocess
import sys

import pytest

import cartokit.train
from cartokit.train import evaluation, loop


def test_modes_import_without_torch():
    code = (
        "import sys\n"
        "from cartokit.train import MODES\n"
        "assert MODES == ('train_pass', 'eval_pass'), MODES\n"
        "assert 'torch' not in sys.modules, 'cartokit.train imported torch'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_public_names_resolve_to_their_modules_objects():
    assert set(cartokit.train.__all__) <= set(dir(cartokit.train))
    assert cartokit.train.fit is loop.fit and cartokit.train.FitResult is loop.FitResult
    assert cartokit.train.evaluate is evaluation.evaluate
    assert cartokit.train.predict_logits is evaluation.predict_logits
    assert cartokit.train.Evaluation is evaluation.Evaluation
    for name in cartokit.train.__all__:
        assert getattr(cartokit.train, name) is getattr(cartokit.train, name)
    with pytest.raises(AttributeError, match="module 'cartokit.train' has no attribute 'fitt'"):
        cartokit.train.fitt  # noqa: B018
