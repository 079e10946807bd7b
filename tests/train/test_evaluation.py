"""Tests for cartokit.train.evaluation: evaluate against scikit-learn and by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, f1_score, recall_score
from torch import nn

from cartokit.models import MLP
from cartokit.train import evaluate

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
