"""Small splits and dynamics for the review tests (tests/test_review.py and
tests/widgets/test_review_widget.py)."""

from __future__ import annotations

import numpy as np

from cartokit import TrainingDynamics
from cartokit.data import Split, from_arrays

CLASSES = ["cat", "dog", "eel"]


def make_split(name="toy/train", n=12, offset=100, kind="image"):
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 3
    if kind == "text":
        return Split(
            name=name, inputs=[f"text {i}" for i in range(n)], labels=labels,
            ids=np.arange(n) + offset, class_names=CLASSES, kind="text",
        )  # fmt: skip
    return from_arrays(
        rng.random((n, 16)), labels, ids=np.arange(n) + offset, class_names=CLASSES, name=name,
        image_shape=(4, 4),
    )  # fmt: skip


def make_dynamics(split):
    """5 epochs; sample k's gold probability falls with k; class (label + 1) % 3 takes over."""
    n = len(split)
    logits = np.zeros((5, n, 3))
    other = (split.labels + 1) % 3
    for e in range(5):
        logits[e, np.arange(n), split.labels] = 2.0 - 0.4 * np.arange(n) * e / 4
        logits[e, np.arange(n), other] = 0.3 * np.arange(n) * e / 4
    return TrainingDynamics.from_logits(
        logits, split.labels, ids=split.ids, class_names=CLASSES, store_probs=True
    )
