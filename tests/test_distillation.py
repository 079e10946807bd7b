"""Knowledge distillation: the Hinton loss, distill() with subsets and recording, budgets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cartokit import compute_metrics, load_dataset, select
from cartokit.data import subsample
from cartokit.distillation import budget_epochs, distill, distill_on_subsets, kd_loss
from cartokit.models import MLP
from cartokit.train import evaluate, fit, predict_logits


def literal_kd(s, t, y, temperature, alpha):
    """The definition, sample by sample, with plain Python floats."""
    total = 0.0
    for row_s, row_t, label in zip(s.tolist(), t.tolist(), y.tolist()):
        es = [np.exp(v / temperature) for v in row_s]
        et = [np.exp(v / temperature) for v in row_t]
        ps = [v / sum(es) for v in es]
        pt = [v / sum(et) for v in et]
        kl = sum(q * np.log(q / p) for q, p in zip(pt, ps))
        hard = -np.log(np.exp(row_s[label]) / sum(np.exp(v) for v in row_s))
        total += alpha * temperature**2 * kl + (1 - alpha) * hard
    return total / len(row_s and s)


@settings(max_examples=30, deadline=None)
@given(
    st.integers(1, 6),
    st.integers(2, 5),
    st.floats(0.5, 8.0),
    st.floats(0.0, 1.0),
    st.integers(0, 1000),
)
def test_kd_loss_matches_the_definition(n, c, temperature, alpha, seed):
    g = torch.Generator().manual_seed(seed)
    s, t = torch.randn(n, c, generator=g) * 3, torch.randn(n, c, generator=g) * 3
    y = torch.randint(0, c, (n,), generator=g)
    got = float(kd_loss(s, t, y, temperature=temperature, alpha=alpha))
    assert got == pytest.approx(literal_kd(s, t, y, temperature, alpha), rel=1e-4, abs=1e-5)
    assert got >= -1e-6


def test_kd_loss_limits():
    s, t, y = torch.randn(4, 3), torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    ce = torch.nn.functional.cross_entropy(s, y)
    assert float(kd_loss(s, t, y, alpha=0.0)) == pytest.approx(float(ce))
    assert float(kd_loss(s, s, y, alpha=1.0)) == pytest.approx(0.0, abs=1e-6)


@pytest.fixture(scope="module")
def setup():
    bundle = load_dataset("digits")
    train, test = subsample(bundle.train, 500), subsample(bundle.test, 200)
    teacher = fit(MLP.from_split(train, seed=0), train, epochs=8, progress=False).model
    return train, test, teacher


def student_of(split):
    return MLP.from_split(split, hidden=(32,), seed=1)


def test_distill_learns_and_records(setup):
    train, test, teacher = setup
    result = distill(teacher, student_of(train), train, epochs=6, lr=0.01, eval_data={"test": test})
    assert list(result.history.columns) == [
        "epoch", "step", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
        "test_macro_f1",
    ]  # fmt: skip
    assert result.history["step"].iloc[-1] == 6 * 8  # ceil(500 / 64) = 8 steps an epoch
    assert result.history["test_accuracy"].iloc[-1] > 0.8
    assert result.dynamics.num_epochs == 6 and result.dynamics.ids.tolist() == train.ids.tolist()
    metrics = compute_metrics(result.dynamics)
    # the student's own map, against the given labels: mostly right by the end
    assert metrics["correctness"].mean() > 0.5 and metrics["confidence"].between(0, 1).all()
    assert not result.model.training


def test_distill_on_a_subset_is_seeded(setup):
    train, _, teacher = setup
    metrics = compute_metrics(fit(MLP.from_split(train, seed=0), train, epochs=4,
                                  progress=False).dynamics)  # fmt: skip
    ids = select(metrics, "ambiguous", 0.3)
    logits = predict_logits(teacher, train)
    a = distill(None, student_of(train), train, teacher_logits=logits, subset=ids, epochs=3)
    b = distill(teacher, student_of(train), train, subset=ids, epochs=3)
    assert a.dynamics.ids.tolist() == ids.tolist()  # the subset's order
    np.testing.assert_array_equal(a.dynamics.gold_prob, b.dynamics.gold_prob)
    c = distill(teacher, student_of(train), train, subset=ids, epochs=3, seed=5)
    assert not np.array_equal(a.dynamics.gold_prob, c.dynamics.gold_prob)


def test_distill_errors(setup):
    train, _, teacher = setup
    with pytest.raises(ValueError, match=r"The 'temperature' parameter of distill must be a float"):
        distill(teacher, student_of(train), train, temperature=0)
    with pytest.raises(ValueError, match=r"The 'alpha' parameter of distill .* range \[0, 1\]"):
        distill(teacher, student_of(train), train, alpha=1.5)
    with pytest.raises(ValueError, match="needs a teacher model or its teacher_logits"):
        distill(None, student_of(train), train)
    with pytest.raises(ValueError, match=r"must have shape \(500, 10\)"):
        distill(None, student_of(train), train, teacher_logits=np.zeros((5, 10)))
    with pytest.raises(ValueError, match=r"distill: 1 of the 1 ids are not in the sample ids of"):
        distill(teacher, student_of(train), train, subset=[-1])
    with pytest.raises(ValueError, match="subset repeats sample ids"):
        distill(teacher, student_of(train), train, subset=[train.ids[0]] * 2)
    with pytest.raises(TypeError, match="The 'data' parameter of distill must be a cartokit Split"):
        distill(teacher, student_of(train), (train.inputs, train.labels))


def test_predict_logits_keeps_the_mode(setup):
    train, test, teacher = setup
    teacher.train()
    logits = predict_logits(teacher, test)
    assert teacher.training and logits.shape == (200, 10) and logits.dtype == np.float32
    assert (logits.argmax(1) == evaluate(teacher, test).predictions).all()
    teacher.eval()


def test_budget_epochs():
    assert budget_epochs(1000, 1000, 10) == 10
    assert budget_epochs(1000, 330, 10) == 30
    assert budget_epochs(1000, 5000, 1) == 1  # at least one epoch
    with pytest.raises(ValueError, match="The 'subset_size' parameter of budget_epochs"):
        budget_epochs(10, 0, 1)


def test_distill_on_subsets_at_equal_budget(setup):
    train, test, teacher = setup
    subsets = {"full": None, "half": train.ids[::2]}
    table = distill_on_subsets(
        teacher, student_of, train, subsets, epochs=2, eval_data={"test": test}
    )
    assert table.index.tolist() == ["full", "half"]
    assert table["epochs"].tolist() == [2, 4] and table["sample_epochs"].tolist() == [1000, 1000]
    assert table["test_accuracy"].between(0, 1).all() and (table["train_seconds"] > 0).all()
    with pytest.raises(TypeError, match="The 'subsets' parameter of distill_on_subsets"):
        distill_on_subsets(teacher, student_of, train, [])


def test_distill_is_fit_with_the_kd_loss(setup):
    """With alpha=0 the KD loss is cross-entropy on the labels, so distill trains exactly as fit:
    the same shuffle, steps, recorded dynamics and history."""
    train, test, teacher = setup
    options = {"epochs": 3, "batch_size": 32, "lr": 0.01, "seed": 4}
    distilled = distill(teacher, student_of(train), train, alpha=0.0, eval_data={"t": test},
                        **options)  # fmt: skip
    fitted = fit(student_of(train), train, eval_data={"t": test}, progress=False, **options)
    np.testing.assert_array_equal(distilled.dynamics.gold_prob, fitted.dynamics.gold_prob)
    pd.testing.assert_frame_equal(distilled.history, fitted.history)
    for a, b in zip(distilled.model.parameters(), fitted.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_the_old_predict_logits_path_warns_and_forwards():
    import cartokit.distillation
    import cartokit.train

    with pytest.warns(DeprecationWarning, match=r"cartokit.distillation.predict_logits is "
                      r"deprecated; use cartokit.train.predict_logits"):  # fmt: skip
        assert cartokit.distillation.predict_logits is cartokit.train.predict_logits
    with pytest.raises(AttributeError, match="has no attribute 'predict_probs'"):
        cartokit.distillation.predict_probs  # noqa: B018


def test_distill_on_subsets_trains_small_students_on_one_thread(setup, monkeypatch):
    import cartokit.distillation as distillation
    from cartokit.models import model_factory

    train, _, teacher = setup
    threads = []
    real = distillation.distill

    def spy(*args, **kwargs):
        threads.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(distillation, "distill", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        distill_on_subsets(teacher, model_factory("mlp"), train, {"full": None}, epochs=2)
        distill_on_subsets(teacher, student_of, train, {"full": None}, epochs=2)  # unknown kind
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert threads == [1, 2]
