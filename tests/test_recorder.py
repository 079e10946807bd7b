"""Tests for cartokit.recorder.DynamicsRecorder."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cartokit import TrainingDynamics, compute_metrics
from cartokit.recorder import DynamicsRecorder

STATS = ("gold_prob", "margin", "sq_error", "pred")
MODES = {"buffer": {}, "per_batch": {"buffer_bytes": 0}}
mode_param = pytest.mark.parametrize("mode", list(MODES))


def make(num_samples: int, num_classes: int, mode: str = "buffer", **kwargs) -> DynamicsRecorder:
    rec = DynamicsRecorder(num_samples, num_classes, **MODES[mode], **kwargs)
    assert rec.reduce_per_batch == (mode == "per_batch")
    return rec


def random_run(seed: int, epochs: int = 3, samples: int = 10, classes: int = 3):
    rng = np.random.default_rng(seed)
    logits = torch.tensor(
        rng.normal(scale=2.0, size=(epochs, samples, classes)), dtype=torch.float32
    )
    labels = torch.tensor(rng.integers(0, classes, size=samples))
    return logits, labels


def epoch_batches(order: np.ndarray | list[int], batch_size: int) -> list[np.ndarray]:
    order = np.asarray(order)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def feed(rec, logits_e, labels, batches, *, as_numpy: bool = False) -> None:
    for idx in batches:
        idx_t = torch.as_tensor(idx, dtype=torch.int64)
        ids, x, y = idx_t, logits_e[idx_t], labels[idx_t]
        if as_numpy:
            ids, x, y = ids.numpy(), x.numpy(), y.numpy()
        rec.update(ids, x, y)


def run_all(rec, logits, labels, batch_size: int = 4, seed: int = 0) -> DynamicsRecorder:
    rng = np.random.default_rng(seed)
    for e in range(logits.shape[0]):
        feed(rec, logits[e], labels, epoch_batches(rng.permutation(logits.shape[1]), batch_size))
        rec.end_epoch()
    return rec


def assert_dynamics_close(got: TrainingDynamics, want: TrainingDynamics, atol: float = 0.0):
    assert got.num_classes == want.num_classes
    assert got.ids.tolist() == want.ids.tolist()
    np.testing.assert_array_equal(got.labels, want.labels)
    for name in STATS:
        a, b = getattr(got, name), getattr(want, name)
        assert a.shape == b.shape and a.dtype == b.dtype, name
        if name == "pred":
            np.testing.assert_array_equal(a, b)
        else:
            np.testing.assert_allclose(a, b, rtol=0, atol=atol, equal_nan=True, err_msg=name)


# ----------------------------------------------------------------------- agreement with arrays


@mode_param
@pytest.mark.parametrize("as_numpy", [False, True], ids=["torch", "numpy"])
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_matches_from_logits_in_any_order_and_batch_size(mode, as_numpy, data):
    n = data.draw(st.integers(1, 12), label="samples")
    c = data.draw(st.integers(2, 4), label="classes")
    e = data.draw(st.integers(1, 3), label="epochs")
    logits, labels = random_run(data.draw(st.integers(0, 2**16), label="seed"), e, n, c)
    rec = make(n, c, mode)
    for epoch in range(e):
        order = data.draw(st.permutations(range(n)), label="order")
        batch_size = data.draw(st.integers(1, n), label="batch size")
        feed(rec, logits[epoch], labels, epoch_batches(order, batch_size), as_numpy=as_numpy)
        rec.end_epoch()
    assert rec.num_epochs == e
    assert rec.duplicates == [0] * e and rec.missing == [0] * e
    assert_dynamics_close(rec.dynamics, TrainingDynamics.from_logits(logits, labels), atol=1e-6)


@mode_param
def test_numpy_float64_and_int32_inputs(mode):
    logits, labels = random_run(1)
    rec = make(10, 3, mode)
    for e in range(3):
        for idx in epoch_batches(np.arange(10)[::-1].copy(), 3):
            rec.update(
                idx.astype(np.int32), logits[e, idx].double().numpy(), labels[idx].int().numpy()
            )
        rec.end_epoch()
    assert_dynamics_close(rec.dynamics, TrainingDynamics.from_logits(logits, labels), atol=1e-6)


@mode_param
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_logits(mode, dtype):
    logits, labels = random_run(2, samples=16)
    low = logits.to(dtype)
    rec = run_all(make(16, 3, mode), low, labels, batch_size=5)
    got = rec.dynamics
    # exact against the same rounded logits, close to the float32 originals
    assert_dynamics_close(got, TrainingDynamics.from_logits(low.float(), labels), atol=1e-6)
    want = TrainingDynamics.from_logits(logits, labels)
    tol = 1e-2 if dtype == torch.bfloat16 else 2e-3
    np.testing.assert_allclose(got.gold_prob, want.gold_prob, atol=tol)
    np.testing.assert_allclose(got.margin, want.margin, atol=5 * tol)
    np.testing.assert_allclose(got.sq_error, want.sq_error, atol=tol)


@mode_param
def test_numpy_views_with_negative_strides(mode):
    # e.g. a reversed or flipped view; numpy hands these out without copying
    logits, labels = random_run(15, epochs=1, samples=6, classes=2)
    rec = make(6, 2, mode)
    rec.update(np.arange(6)[::-1], np.flip(logits[0].numpy(), 0), labels.numpy()[::-1])
    rec.end_epoch()
    assert_dynamics_close(rec.dynamics, TrainingDynamics.from_logits(logits, labels), atol=1e-6)


@mode_param
def test_sample_ids_and_class_names_reach_dynamics_and_metrics(mode):
    logits, labels = random_run(3, samples=4, classes=2)
    ids = ["é", "b", "日本", "a,b"]
    rec = run_all(make(4, 2, mode, sample_ids=ids, class_names=["neg", "pos"]), logits, labels)
    dyn = rec.dynamics
    assert dyn.ids.tolist() == ids
    assert dyn.class_names == ["neg", "pos"]
    m = compute_metrics(dyn)
    assert m.index.tolist() == ids
    assert m["label_name"].tolist() == [["neg", "pos"][y] for y in labels.tolist()]


@mode_param
def test_store_probs(mode):
    logits, labels = random_run(4)
    rec = run_all(
        make(10, 3, mode, store_probs=True)
        if mode == "buffer"
        else DynamicsRecorder(10, 3, buffer_bytes=0, store_probs=True),
        logits,
        labels,
    )
    assert not rec.reduce_per_batch  # full probabilities need the logits buffer
    np.testing.assert_allclose(rec.dynamics.probs, torch.softmax(logits, 2).numpy(), atol=1e-6)


def test_buffer_mode_reduces_in_chunks(monkeypatch):
    import cartokit.metrics
    import cartokit.recorder

    monkeypatch.setattr(cartokit.recorder, "CHUNK_ROWS", 3)
    monkeypatch.setattr(cartokit.metrics, "CHUNK_ROWS", 3)
    logits, labels = random_run(16, epochs=3, samples=11, classes=3)
    rec = run_all(make(11, 3), logits, labels, batch_size=4)
    # from_logits uses the numpy twin of the recorder's torch kernel: equal to float32 rounding
    assert_dynamics_close(rec.dynamics, TrainingDynamics.from_logits(logits, labels), atol=1e-6)
    # checks and missing rows land on the right ids in every chunk
    poisoned = logits[0].clone()
    poisoned[10, 1] = float("nan")
    rec.update(torch.arange(11), poisoned, labels)
    with pytest.raises(ValueError, match=r"NaN or inf logits for 1 samples, e\.g\. ids \[10\]"):
        rec.end_epoch()
    rec.update(torch.arange(8), logits[0, :8], labels[:8])
    with pytest.warns(UserWarning, match=r"3 of 11 samples .* ids \[8, 9, 10\]"):
        rec.end_epoch()
    assert np.isnan(rec.dynamics.gold_prob[3, 8:]).all()
    assert not np.isnan(rec.dynamics.gold_prob[3, :8]).any()


# ----------------------------------------------------------------------- autograd


@mode_param
def test_update_does_not_keep_the_autograd_graph(mode):
    torch.manual_seed(0)
    weight = torch.randn(5, 3, requires_grad=True)
    x, y = torch.randn(6, 5), torch.tensor([0, 1, 2, 0, 1, 2])
    rec = make(6, 3, mode)
    logits = x @ weight
    rec.update(torch.arange(6), logits, y)
    buffers = [rec._logits_buf] if mode == "buffer" else rec._stat_bufs
    assert buffers and all(b is not None and not b.requires_grad for b in buffers)
    assert all(b.grad_fn is None for b in buffers)
    loss = torch.nn.functional.cross_entropy(logits, y)
    loss.backward()
    assert weight.grad is not None and weight.grad.abs().sum() > 0
    # the record is a copy: editing the logits afterwards changes nothing
    with torch.no_grad():
        logits.add_(100.0)
    rec.end_epoch()
    want = TrainingDynamics.from_logits((x @ weight).detach()[None], y)
    assert_dynamics_close(rec.dynamics, want, atol=1e-6)


# ----------------------------------------------------------------------- duplicates / missing


@mode_param
def test_duplicates_last_write_wins(mode):
    logits, labels = random_run(5, epochs=3, samples=4, classes=3)
    other = logits + 3.0 * torch.randn_like(logits)
    rec = make(4, 3, mode)
    rec.update(torch.arange(4), logits[0], labels)
    rec.update(torch.tensor([1, 2]), other[0, [1, 2]], labels[[1, 2]])  # DistributedSampler pad
    rec.end_epoch()
    for e in (1, 2):
        rec.update(torch.arange(4), logits[e], labels)
        rec.end_epoch()
    assert rec.duplicates == [2, 0, 0]
    want = logits.clone()
    want[0, [1, 2]] = other[0, [1, 2]]
    assert_dynamics_close(rec.dynamics, TrainingDynamics.from_logits(want, labels), atol=1e-6)


@mode_param
def test_missing_samples_warn_and_are_recorded_as_nan(mode):
    logits, labels = random_run(6, epochs=3, samples=5, classes=2)
    rec = make(5, 2, mode, sample_ids=[10, 11, 12, 13, 14])
    rec.update(torch.arange(5), logits[0], labels)
    rec.end_epoch()
    rec.update(torch.tensor([2, 0, 1]), logits[1, [2, 0, 1]], labels[[2, 0, 1]])  # drop_last
    with pytest.warns(
        UserWarning,
        match=r"DynamicsRecorder: 2 of 5 samples were not seen in epoch 1, e\.g\. ids \[13, 14\]"
        r"\..*drop_last=True.*require_complete=True.*recorded as missing",
    ):
        rec.end_epoch()
    rec.update(torch.arange(5), logits[2], labels)
    rec.end_epoch()
    assert rec.missing == [0, 2, 0]
    dyn = rec.dynamics
    assert np.isnan(dyn.gold_prob[1, 3:]).all() and np.isnan(dyn.margin[1, 3:]).all()
    assert np.isnan(dyn.sq_error[1, 3:]).all() and (dyn.pred[1, 3:] == -1).all()
    full = TrainingDynamics.from_logits(logits, labels)
    np.testing.assert_allclose(dyn.gold_prob[:, :3], full.gold_prob[:, :3], atol=1e-6)
    m = compute_metrics(dyn)
    assert m["num_observed"].tolist() == [3, 3, 3, 2, 2]
    want = full.gold_prob[[0, 2], 3:].mean(axis=0)
    np.testing.assert_allclose(m["confidence"].to_numpy()[3:], want, atol=1e-6)


@mode_param
def test_warning_lists_at_most_five_missing_ids(mode):
    rec = make(20, 2, mode)
    rec.update(torch.tensor([0]), torch.zeros(1, 2), torch.tensor([0]))
    with pytest.warns(UserWarning, match=r"19 of 20 samples .* ids \[1, 2, 3, 4, 5, \.\.\.\]"):
        rec.end_epoch()


@mode_param
def test_sample_never_seen_keeps_its_row(mode):
    rec = make(3, 2, mode)
    for _ in range(3):
        rec.update(torch.tensor([0, 2]), torch.zeros(2, 2), torch.tensor([1, 1]))
        with pytest.warns(UserWarning, match=r"1 of 3 samples were not seen"):
            rec.end_epoch()
    dyn = rec.dynamics
    assert dyn.num_samples == 3 and np.isnan(dyn.gold_prob[:, 1]).all()
    assert compute_metrics(dyn)["num_observed"].tolist() == [3, 0, 3]


@mode_param
def test_require_complete_raises_and_discards_the_epoch(mode):
    logits, labels = random_run(7, epochs=1, samples=5, classes=2)
    rec = make(5, 2, mode, require_complete=True)
    rec.update(torch.arange(3), logits[0, :3], labels[:3])
    with pytest.raises(
        ValueError, match=r"2 of 5 samples were not seen in epoch 0.*The epoch was discarded\."
    ):
        rec.end_epoch()
    assert rec.num_epochs == 0 and rec.missing == []
    rec.update(torch.arange(5), logits[0], labels)
    rec.end_epoch()
    assert_dynamics_close(rec.dynamics, TrainingDynamics.from_logits(logits, labels), atol=1e-6)


# ----------------------------------------------------------------------- errors in update


@mode_param
@pytest.mark.parametrize(
    ("ids", "shown"), [([0, 7], r"\[7\]"), ([-1, 2], r"\[-1\]"), ([4, 5], r"\[4, 5\]")]
)
def test_ids_out_of_range(mode, ids, shown):
    rec = make(4, 2, mode)
    with pytest.raises(
        ValueError,
        match=r"DynamicsRecorder\.update: ids must be row positions in \[0, 4\)\. Got "
        + shown
        + r"\. Pass the samples' row positions .*sample_ids=",
    ):
        rec.update(torch.tensor(ids), torch.zeros(2, 2), torch.tensor([0, 1]))


@mode_param
def test_rejected_update_leaves_the_epoch_untouched(mode):
    # The batch is refused as a whole: none of its rows may count as seen.
    logits, labels = random_run(8, epochs=1, samples=4, classes=2)
    rec = make(4, 2, mode)
    with pytest.raises(ValueError, match="ids must be row positions"):
        rec.update(torch.tensor([1, 9]), logits[0, [1, 2]], labels[[1, 2]])
    rec.update(torch.tensor([0, 2, 3]), logits[0, [0, 2, 3]], labels[[0, 2, 3]])
    with pytest.warns(
        UserWarning, match=r"1 of 4 samples were not seen in epoch 0, e\.g\. ids \[1\]"
    ):
        rec.end_epoch()
    assert rec.duplicates == [0] and rec.missing == [1]
    assert np.isnan(rec.dynamics.gold_prob[0, 1])


@pytest.mark.parametrize(
    ("logits", "match"),
    [
        (torch.zeros(2, 3), r"Got \(2, 3\)"),
        (torch.zeros(2), r"Got \(2,\)"),
        (torch.zeros(()), r"Got \(\)"),
        (torch.zeros(2, 2, 2), r"Got \(2, 2, 2\)"),
    ],
)
def test_logits_wrong_shape(logits, match):
    rec = DynamicsRecorder(4, 2)
    with pytest.raises(
        ValueError,
        match=r"DynamicsRecorder\.update: logits must have shape \(batch, 2\)\. "
        + match
        + r"\. Pass the classifier's logits \(for Hugging Face models, outputs\.logits\), "
        r"not the loss or a hidden state\.",
    ):
        rec.update(torch.tensor([0, 1]), logits, torch.tensor([0, 1]))


@pytest.mark.parametrize(
    ("ids", "logits", "labels", "error", "match"),
    [
        (
            [0, 1, 2],
            torch.zeros(2, 2),
            [0, 1],
            ValueError,
            r"DynamicsRecorder\.update: ids must have shape \(2,\) to match logits of shape "
            r"\(2, 2\)\. Got \(3,\)\.",
        ),
        (
            [0, 1],
            torch.zeros(2, 2),
            [0],
            ValueError,
            r"DynamicsRecorder\.update: labels must have shape \(2,\) to match logits of shape "
            r"\(2, 2\)\. Got \(1,\)\.",
        ),
        (
            [[0, 1]],
            torch.zeros(2, 2),
            [0, 1],
            ValueError,
            r"ids must have shape \(2,\) .* Got \(1, 2\)\.",
        ),
        (
            torch.tensor([0.0, 1.0]),
            torch.zeros(2, 2),
            [0, 1],
            TypeError,
            r"DynamicsRecorder\.update: ids must be integers\. Got torch\.float32\.",
        ),
        (
            np.array([0.0, 1.0]),
            torch.zeros(2, 2),
            [0, 1],
            TypeError,
            r"ids must be integers\. Got torch\.float64\.",
        ),
        (
            [True, False],
            torch.zeros(2, 2),
            [0, 1],
            TypeError,
            r"ids must be integers\. Got torch\.bool\.",
        ),
        (
            [0, 1],
            torch.zeros(2, 2),
            torch.tensor([0.0, 1.0]),
            TypeError,
            r"DynamicsRecorder\.update: labels must be integers\. Got torch\.float32\.",
        ),
        (
            [0, 1],
            torch.zeros(2, 2, dtype=torch.int64),
            [0, 1],
            TypeError,
            r"DynamicsRecorder\.update: logits must be floating point\. Got torch\.int64\.",
        ),
        (
            object(),
            torch.zeros(2, 2),
            [0, 1],
            TypeError,
            r"DynamicsRecorder\.update: ids must be a tensor or array\. Got object",
        ),
    ],
)
def test_update_input_errors(ids, logits, labels, error, match):
    rec = DynamicsRecorder(4, 2)
    with pytest.raises(error, match=match):
        rec.update(ids, logits, labels)
    assert rec._rows == 0


# ----------------------------------------------------------------------- errors in end_epoch


@mode_param
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")], ids=str)
def test_non_finite_logits_discard_the_epoch(mode, bad):
    logits, labels = random_run(9, epochs=2, samples=4, classes=2)
    rec = make(4, 2, mode, sample_ids=["a", "b", "c", "d"])
    poisoned = logits[0].clone()
    poisoned[2, 0] = bad
    rec.update(torch.arange(4), poisoned, labels)  # not checked per step: no device sync
    with pytest.raises(
        ValueError,
        match=r"DynamicsRecorder: epoch 0 has NaN or inf logits for 1 samples, e\.g\. ids "
        r"\['c'\]; the epoch was discarded\. The model has diverged",
    ):
        rec.end_epoch()
    assert rec.num_epochs == 0 and rec.duplicates == [] and rec.missing == []
    with pytest.raises(RuntimeError, match="no update"):
        rec.end_epoch()
    rec.update(torch.arange(4), logits[1], labels)
    rec.end_epoch()
    want = TrainingDynamics.from_logits(logits[1:], labels, ids=["a", "b", "c", "d"])
    assert_dynamics_close(rec.dynamics, want, atol=1e-6)


@mode_param
@pytest.mark.parametrize(("bad", "shown"), [(3, r"\[3\]"), (-1, r"\[-1\]"), (-100, r"\[-100\]")])
def test_labels_out_of_range_discard_the_epoch(mode, bad, shown):
    logits, labels = random_run(10, epochs=2, samples=4, classes=3)
    rec = make(4, 3, mode)
    wrong = labels.clone()
    wrong[1] = bad
    rec.update(torch.arange(4), logits[0], wrong)  # checked once per epoch, not per step
    with pytest.raises(
        ValueError,
        match=r"DynamicsRecorder: labels must be in \[0, 3\)\. Epoch 0 got "
        + shown
        + r" for ids \[1\]; the epoch was discarded\. Check num_classes, or map ignore-index "
        r"labels \(-100\)",
    ):
        rec.end_epoch()
    assert rec.num_epochs == 0
    rec.update(torch.arange(4), logits[1], labels)
    rec.end_epoch()
    assert_dynamics_close(rec.dynamics, TrainingDynamics.from_logits(logits[1:], labels), atol=1e-6)


@mode_param
def test_label_change_between_epochs(mode):
    logits, labels = random_run(11, epochs=3, samples=4, classes=2)
    rec = make(4, 2, mode, sample_ids=["w", "x", "y", "z"])
    rec.update(torch.arange(4), logits[0], torch.tensor([0, 1, 0, 1]))
    rec.end_epoch()
    rec.update(torch.arange(4), logits[1], torch.tensor([0, 1, 1, 1]))
    with pytest.raises(
        ValueError,
        match=r"DynamicsRecorder: the labels of 1 samples changed in epoch 1, e\.g\. ids \['y'\] "
        r"from \[0\] to \[1\]; the epoch was discarded\. Ids must map to the same sample",
    ):
        rec.end_epoch()
    assert rec.num_epochs == 1
    rec.update(torch.arange(4), logits[2], torch.tensor([0, 1, 0, 1]))
    rec.end_epoch()
    assert rec.num_epochs == 2 and rec.dynamics.labels.tolist() == [0, 1, 0, 1]


def test_end_epoch_without_updates():
    rec = DynamicsRecorder(2, 2)
    msg = r"DynamicsRecorder\.end_epoch\(\) was called with no update\(\) since the last epoch"
    with pytest.raises(RuntimeError, match=msg):
        rec.end_epoch()
    rec.update([0, 1], torch.zeros(2, 2), [0, 1])
    rec.end_epoch()
    with pytest.raises(RuntimeError, match=msg):
        rec.end_epoch()
    assert rec.num_epochs == 1


def test_dynamics_before_any_epoch():
    rec = DynamicsRecorder(2, 2)
    with pytest.raises(RuntimeError, match=r"no epoch has been finished yet; call end_epoch\(\)"):
        rec.dynamics  # noqa: B018
    rec.update([0, 1], torch.zeros(2, 2), [0, 1])
    with pytest.raises(RuntimeError, match=r"no epoch has been finished yet"):
        rec.dynamics  # noqa: B018


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"num_samples": 4, "num_classes": 1},
            ValueError,
            r"The 'num_classes' parameter of DynamicsRecorder must be an int >= 2\. "
            r"Got 1 instead\.",
        ),
        (
            {"num_samples": 0, "num_classes": 2},
            ValueError,
            r"The 'num_samples' parameter of DynamicsRecorder must be an int >= 1\. "
            r"Got 0 instead\.",
        ),
        (
            {"num_samples": 4.0, "num_classes": 2},
            TypeError,
            r"The 'num_samples' parameter of DynamicsRecorder must be an int >= 1\. "
            r"Got 4\.0 of type float instead\.",
        ),
        (
            {"num_samples": 4, "num_classes": 2, "class_names": ["a", "b", "c"]},
            ValueError,
            r"DynamicsRecorder: got 3 class names for 2 classes\.",
        ),
        (
            {"num_samples": 4, "num_classes": 2, "sample_ids": [1, 2, 3]},
            ValueError,
            r"DynamicsRecorder: ids must be a 1-D sequence of 4 sample ids",
        ),
        (
            {"num_samples": 3, "num_classes": 2, "sample_ids": ["a", "b", "a"]},
            ValueError,
            r"DynamicsRecorder: ids must be unique\. 1 ids occur more than once, for example "
            r"\['a'\]",
        ),
        (
            {"num_samples": 4, "num_classes": 2, "buffer_bytes": -1},
            ValueError,
            r"The 'buffer_bytes' parameter of DynamicsRecorder must be an int >= 0\.",
        ),
    ],
)
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        DynamicsRecorder(**kwargs)


def test_buffer_bytes_picks_the_mode():
    assert not DynamicsRecorder(10, 3, buffer_bytes=120).reduce_per_batch  # 10 * 3 * 4 bytes
    assert DynamicsRecorder(10, 3, buffer_bytes=119).reduce_per_batch


# ----------------------------------------------------------------------- memory


@mode_param
@pytest.mark.parametrize(("classes", "per_sample_epoch"), [(3, 13), (127, 13), (200, 14)])
def test_memory_bytes(mode, classes, per_sample_epoch):
    n = 10
    logits = torch.randn(4, n, classes)
    labels = torch.randint(0, classes, (n,))
    rec = make(n, classes, mode)
    assert rec.memory_bytes() == 8 * n  # host labels only; buffers come with the first batch
    buffers = 4 * n * classes + 8 * n if mode == "buffer" else 3 * 4 * n + 8 * n + 8 * n
    sizes = []
    for e in range(4):
        rec.update(torch.arange(n), logits[e], labels)
        rec.end_epoch()
        sizes.append(rec.memory_bytes())
        assert sizes[-1] == per_sample_epoch * n * (e + 1) + 8 * n + buffers
    assert np.diff(sizes).tolist() == [per_sample_epoch * n] * 3


@mode_param
@pytest.mark.parametrize("store_probs", [False, True])
def test_dynamics_shares_the_record_instead_of_copying_it(mode, store_probs):
    kwargs = {"store_probs": True} if store_probs else MODES[mode]
    rec = DynamicsRecorder(12, 3, **kwargs)
    logits, labels = random_run(3, epochs=5, samples=12, classes=3)
    reference = TrainingDynamics.from_logits(logits, labels, store_probs=store_probs)
    run_all(rec, logits[:3], labels)
    held = rec.memory_bytes()
    first = rec.dynamics
    # one copy of the record: taking the dynamics adds no bytes, and a second take is the same
    assert rec.memory_bytes() == held
    again = rec.dynamics
    arrays = [*STATS, "probs"] if store_probs else list(STATS)
    for name in arrays:
        assert np.shares_memory(getattr(first, name), getattr(again, name)), name
    # shared, so read-only: an edit of the dynamics cannot change the recorder's record
    with pytest.raises(ValueError, match="read-only"):
        first.gold_prob[0, 0] = 0.5
    assert_dynamics_close(first, reference.select_epochs(range(3)), atol=1e-6)
    snapshot = first.select_epochs(slice(None))
    # recording on: the dynamics taken before does not change, the next one holds every epoch
    run_all(rec, logits[3:], labels, seed=1)
    per_sample_epoch = 13 + (3 * 4 if store_probs else 0)
    assert rec.memory_bytes() == held + 2 * 12 * per_sample_epoch
    assert first.num_epochs == 3
    assert_dynamics_close(first, snapshot)
    assert_dynamics_close(rec.dynamics, reference, atol=1e-6)
    if store_probs:
        np.testing.assert_allclose(rec.dynamics.probs, reference.probs, atol=1e-6)


@mode_param
def test_state_and_epoch_numbers_after_taking_the_dynamics(mode):
    logits, labels = random_run(4, epochs=4, samples=9, classes=3)
    rec = make(9, 3, mode)
    run_all(rec, logits[:2], labels)
    assert rec.dynamics.num_epochs == 2  # the record is now stacked
    feed(rec, logits[2], labels, epoch_batches(np.arange(9), 4))
    rec.end_epoch()
    assert rec.num_epochs == 3
    # the error names the epoch by its number in the whole record, stacked epochs included
    rec.update(torch.arange(9), torch.full((9, 3), float("nan")), labels)
    with pytest.raises(ValueError, match=r"^DynamicsRecorder: epoch 3 has NaN or inf logits"):
        rec.end_epoch()
    resumed = make(9, 3, mode)
    resumed.load_state_dict(_roundtrip(rec.state_dict()))
    assert resumed.num_epochs == 3
    feed(resumed, logits[3], labels, epoch_batches(np.arange(9), 4))
    resumed.end_epoch()
    want = TrainingDynamics.from_logits(logits, labels)
    assert_dynamics_close(resumed.dynamics, want, atol=1e-6)


def test_compute_metrics_on_recorded_dynamics_copies_nothing_big():
    # The first compute_metrics after recording was 4x slower than the next ones: the kernel
    # faulting in fresh memory for a copy of the whole record (epochs as a list of indices) and
    # a second copy of the table (pandas consolidating the columns). Measured by tracemalloc,
    # which numpy reports to: beyond the table it returns, one [E, N] temporary at a time.
    import tracemalloc

    n, e = 200_000, 10
    rec = DynamicsRecorder(n, 3)
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (n,), generator=gen)
    for _ in range(e):
        rec.update(torch.arange(n), torch.randn(n, 3, generator=gen), labels)
        rec.end_epoch()
    dyn = rec.dynamics
    tracemalloc.start()
    try:
        metrics = compute_metrics(dyn)
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(metrics) == n
    assert peak - held < 1.5 * dyn.gold_prob.nbytes, (peak - held) / dyn.gold_prob.nbytes


# ----------------------------------------------------------------------- checkpoints


def _roundtrip(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def _reference(mode, logits, labels, schedule, **kwargs):
    rec = make(logits.shape[1], logits.shape[2], mode, **kwargs)
    for e, batches in enumerate(schedule):
        feed(rec, logits[e], labels, batches)
        rec.end_epoch()
    return rec


def _schedule(n_epochs: int, n: int, seed: int) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_epochs):
        batches = epoch_batches(rng.permutation(n), 3)
        batches.insert(2, np.array([5, 1]))  # two repeats, to check rows carry over
        out.append(batches)
    return out


def _assert_same_record(a: DynamicsRecorder, b: DynamicsRecorder) -> None:
    assert a.num_epochs == b.num_epochs
    assert a.duplicates == b.duplicates and a.missing == b.missing
    assert_dynamics_close(a.dynamics, b.dynamics)
    if a.store_probs:
        np.testing.assert_array_equal(a.dynamics.probs, b.dynamics.probs)


@mode_param
@pytest.mark.parametrize("stop_after", [1, 2])
def test_resume_after_an_epoch(mode, stop_after):
    logits, labels = random_run(12, epochs=4, samples=11, classes=3)
    schedule = _schedule(4, 11, seed=0)
    reference = _reference(mode, logits, labels, schedule)

    first = make(11, 3, mode)
    for e in range(stop_after):
        feed(first, logits[e], labels, schedule[e])
        first.end_epoch()
    state = _roundtrip(first.state_dict())
    assert state["partial"] is None
    resumed = make(11, 3, mode)
    resumed.load_state_dict(state)
    assert resumed.num_epochs == stop_after
    for e in range(stop_after, 4):
        feed(resumed, logits[e], labels, schedule[e])
        resumed.end_epoch()
    _assert_same_record(resumed, reference)


@pytest.mark.parametrize(
    ("mode", "kwargs"),
    [("buffer", {}), ("per_batch", {}), ("buffer", {"store_probs": True})],
    ids=["buffer", "per_batch", "store_probs"],
)
@pytest.mark.parametrize("target", ["fresh", "used"])
@pytest.mark.parametrize("cut", [1, 3])
def test_resume_mid_epoch(mode, kwargs, target, cut):
    logits, labels = random_run(13, epochs=3, samples=11, classes=3)
    schedule = _schedule(3, 11, seed=1)
    reference = _reference(mode, logits, labels, schedule, **kwargs)

    first = make(11, 3, mode, **kwargs)
    feed(first, logits[0], labels, schedule[0])
    first.end_epoch()
    feed(first, logits[1], labels, schedule[1][:cut])  # part of epoch 1, then the job dies
    state = _roundtrip(first.state_dict())
    assert state["partial"] is not None and state["partial"]["rows"] > 0

    resumed = make(11, 3, mode, **kwargs)
    if target == "used":  # a recorder that already holds a different, unfinished epoch
        resumed.update(torch.arange(11), torch.randn(11, 3) * 9, labels)
    resumed.load_state_dict(state)
    assert resumed.num_epochs == 1
    feed(resumed, logits[1], labels, schedule[1][cut:])
    resumed.end_epoch()
    feed(resumed, logits[2], labels, schedule[2])
    resumed.end_epoch()
    _assert_same_record(resumed, reference)
    assert resumed.duplicates == [2, 2, 2]


@mode_param
@pytest.mark.parametrize("target", ["fresh", "used"])
def test_resume_mid_epoch_keeps_missing_samples_missing(mode, target):
    logits, labels = random_run(14, epochs=1, samples=6, classes=2)
    rec = make(6, 2, mode)
    rec.update(torch.tensor([0, 1]), logits[0, :2], labels[:2])
    resumed = make(6, 2, mode)
    if target == "used":  # rows of its own unfinished epoch must not leak into the loaded one
        resumed.update(torch.tensor([4, 5]), torch.zeros(2, 2), labels[4:])
    resumed.load_state_dict(_roundtrip(rec.state_dict()))
    resumed.update(torch.tensor([2, 3]), logits[0, 2:4], labels[2:4])
    with pytest.warns(
        UserWarning, match=r"2 of 6 samples were not seen in epoch 0, e\.g\. ids \[4, 5\]"
    ):
        resumed.end_epoch()
    assert np.isnan(resumed.dynamics.gold_prob[0, 4:]).all()
    assert not np.isnan(resumed.dynamics.gold_prob[0, :4]).any()


@pytest.mark.parametrize(("key", "value"), [("num_samples", 5), ("num_classes", 3)])
def test_load_state_dict_size_mismatch(key, value):
    rec = DynamicsRecorder(4, 2)
    rec.update([0, 1, 2, 3], torch.zeros(4, 2), [0, 1, 0, 1])
    rec.end_epoch()
    state = rec.state_dict()
    other = DynamicsRecorder(**{"num_samples": 4, "num_classes": 2, key: value})
    with pytest.raises(
        ValueError,
        match=rf"DynamicsRecorder\.load_state_dict: the saved record has {key}="
        rf"{getattr(rec, key)}, this recorder {value}\. Create the recorder with the same",
    ):
        other.load_state_dict(state)


def test_load_state_dict_newer_version():
    rec = DynamicsRecorder(2, 2)
    state = rec.state_dict()
    state["version"] = 99
    with pytest.raises(ValueError, match=r"state version 99 is newer .*upgrade cartokit"):
        DynamicsRecorder(2, 2).load_state_dict(state)


@pytest.mark.parametrize(
    ("saved", "loaded", "match"),
    [
        (
            "buffer",
            "per_batch",
            r"recorded with an epoch logits buffer, this recorder uses the other",
        ),
        ("per_batch", "buffer", r"recorded with per-batch reduction, this recorder uses the other"),
    ],
)
def test_load_mid_epoch_state_into_the_other_mode(saved, loaded, match):
    rec = make(4, 2, saved)
    rec.update([0, 1], torch.zeros(2, 2), [0, 1])
    with pytest.raises(ValueError, match=match + r"; create it with the same buffer_bytes"):
        make(4, 2, loaded).load_state_dict(rec.state_dict())


def test_state_dict_survives_weights_only_load(tmp_path):
    rec = make(4, 2, sample_ids=["a", "b", "c", "d"])
    rec.update([0, 1, 2, 3], torch.randn(4, 2), [0, 1, 0, 1])
    rec.end_epoch()
    rec.update([2], torch.randn(1, 2), [0])
    path = tmp_path / "rec.pt"
    torch.save(rec.state_dict(), path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        state = torch.load(path, weights_only=True)
    assert len(state["epochs"]) == 1
    assert state["partial"]["ids"].tolist() == [2] and state["partial"]["rows"] == 1
    resumed = make(4, 2, sample_ids=["a", "b", "c", "d"])
    resumed.load_state_dict(state)
    resumed.update([0, 1, 3], torch.randn(3, 2), [0, 1, 1])
    resumed.end_epoch()
    assert resumed.num_epochs == 2 and resumed.dynamics.ids.tolist() == ["a", "b", "c", "d"]
