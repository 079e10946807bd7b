"""Tests for cartokit.sequence: the per-sequence kernel and SequenceRecorder."""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cartokit import TrainingDynamics, compute_metrics
from cartokit.metrics import SEQUENCE_CLASS_NAMES
from cartokit.sequence import SequenceRecorder, sequence_stats

IGNORE = -100


def oracle(logits: np.ndarray, labels: np.ndarray, shift: bool = True) -> dict[str, np.ndarray]:
    """The definitions, token by token, in float64: the slow, obvious reference."""
    if shift:
        logits, labels = logits[:, :-1], labels[:, 1:]
    out = {k: [] for k in ("tokens", "mean_log_prob", "token_accuracy", "exact", "margin", "el2n")}
    for z_seq, y_seq in zip(logits.astype(np.float64), labels):
        logp, correct, margin, el2n = [], [], [], []
        for z, y in zip(z_seq, y_seq):
            if y == IGNORE:
                continue
            p = np.exp(z - z.max())
            p /= p.sum()
            others = np.delete(z, y)
            logp.append(math.log(p[y]))
            correct.append(z[y] > others.max())
            margin.append(z[y] - others.max())
            onehot = np.zeros_like(p)
            onehot[y] = 1.0
            el2n.append(np.linalg.norm(p - onehot))
        n = len(logp)
        out["tokens"].append(n)
        out["mean_log_prob"].append(np.mean(logp) if n else np.nan)
        out["token_accuracy"].append(np.mean(correct) if n else np.nan)
        out["exact"].append(float(all(correct)))
        out["margin"].append(np.mean(margin) if n else np.nan)
        out["el2n"].append(np.mean(el2n) if n else np.nan)
    return {k: np.array(v) for k, v in out.items()}


def random_batch(seed: int, batch: int = 4, steps: int = 7, vocab: int = 11, scale: float = 3.0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=scale, size=(batch, steps, vocab)).astype(np.float32)
    labels = rng.integers(0, vocab, size=(batch, steps))
    prompt = rng.integers(1, steps - 1, size=batch)
    labels[np.arange(steps)[None, :] < prompt[:, None]] = IGNORE  # the prompt is not scored
    labels[0, -1] = IGNORE  # padding
    return logits, labels


def assert_stats_match(got, want, atol=1e-5):
    np.testing.assert_array_equal(got.tokens.numpy(), want["tokens"])
    for key in ("mean_log_prob", "token_accuracy", "exact", "margin", "el2n"):
        np.testing.assert_allclose(getattr(got, key).numpy(), want[key], atol=atol, err_msg=key)


# ---------------------------------------------------------------------------- the kernel


@pytest.mark.parametrize("shift", [True, False])
@pytest.mark.parametrize("chunk_values", [1 << 20, 11, 30], ids=["whole", "per-token", "rows"])
def test_kernel_matches_the_definitions(shift, chunk_values):
    logits, labels = random_batch(0)
    got = sequence_stats(
        torch.from_numpy(logits), torch.from_numpy(labels), shift=shift, chunk_values=chunk_values
    )
    assert_stats_match(got, oracle(logits, labels, shift))


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    batch=st.integers(1, 5),
    steps=st.integers(2, 9),
    vocab=st.integers(2, 40),
    chunk=st.integers(1, 400),
)
def test_kernel_matches_the_definitions_at_any_shape_and_chunk(seed, batch, steps, vocab, chunk):
    logits, labels = random_batch(seed, batch, steps + 1, vocab)
    got = sequence_stats(torch.from_numpy(logits), torch.from_numpy(labels), chunk_values=chunk)
    want = oracle(logits, labels)
    assert_stats_match(got, want, atol=2e-5)


def test_hand_computed_sequence():
    # positions 1 and 2 are scored (shifted: logits 0 and 1 predict labels 1 and 2)
    logits = torch.tensor([[[math.log(3.0), 0.0], [0.0, 0.0], [5.0, 5.0]]])
    s = sequence_stats(logits, torch.tensor([[IGNORE, 0, 1]]))
    # token 1: p = (3/4, 1/4), gold 0, correct, margin log 3, EL2N sqrt(2)/4
    # token 2: p = (1/2, 1/2), gold 1, a tie: not correct, margin 0, EL2N sqrt(1/2)
    assert s.tokens.tolist() == [2]
    assert s.mean_log_prob.item() == pytest.approx((math.log(0.75) + math.log(0.5)) / 2, abs=1e-6)
    assert s.token_accuracy.item() == 0.5
    assert s.exact.item() == 0.0
    assert s.margin.item() == pytest.approx(math.log(3.0) / 2, abs=1e-6)
    assert s.el2n.item() == pytest.approx((math.sqrt(2) / 4 + math.sqrt(0.5)) / 2, abs=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_logits_give_the_float32_statistics_of_the_same_values(dtype):
    logits, labels = random_batch(3)
    half = torch.from_numpy(logits).to(dtype)
    got = sequence_stats(half, torch.from_numpy(labels))
    assert_stats_match(got, oracle(half.float().numpy(), labels), atol=1e-5)


def test_nan_at_unscored_positions_does_not_leak():
    logits, labels = random_batch(4)
    want = oracle(logits, labels)
    logits[0, -1] = np.nan  # predicts nothing (shift) and padding: not scored
    got = sequence_stats(torch.from_numpy(logits), torch.from_numpy(labels))
    assert_stats_match(got, want)


# ---------------------------------------------------------------------------- the recorder


def record(epochs: int = 3, n: int = 10, seed: int = 0, batch: int = 3, **kwargs):
    """A recorder fed ``epochs`` of shuffled batches; also returns each epoch's logits."""
    rng = np.random.default_rng(seed)
    logits = [random_batch(seed + e, n, 6, 9)[0] for e in range(epochs)]
    labels = random_batch(seed, n, 6, 9)[1]
    rec = SequenceRecorder(n, **kwargs)
    for x in logits:
        order = rng.permutation(n)
        for start in range(0, n, batch):
            ids = order[start : start + batch]
            rec.update(
                torch.from_numpy(ids), torch.from_numpy(x[ids]), torch.from_numpy(labels[ids])
            )
        rec.end_epoch()
    return rec, logits, labels


def test_recorder_gives_the_sequence_encoding_of_the_definitions():
    rec, logits, labels = record()
    dyn = rec.dynamics
    want = [oracle(x, labels) for x in logits]
    assert dyn.num_classes == 2 and dyn.class_names == list(SEQUENCE_CLASS_NAMES)
    assert (dyn.labels == 1).all()
    np.testing.assert_allclose(dyn.gold_prob, np.exp([w["mean_log_prob"] for w in want]), rtol=2e-5)
    np.testing.assert_array_equal(dyn.pred, [w["exact"] for w in want])
    np.testing.assert_allclose(dyn.margin, [w["margin"] for w in want], atol=1e-5)
    np.testing.assert_allclose(dyn.sq_error, [w["el2n"] ** 2 for w in want], atol=1e-5)
    np.testing.assert_allclose(
        dyn.extras["token_accuracy"], [w["token_accuracy"] for w in want], atol=1e-6
    )
    # 17 bytes per sample-epoch: 4 statistics of 4 bytes, and the prediction in 1
    per_cell = (dyn.nbytes - dyn.labels.nbytes) / (dyn.num_epochs * dyn.num_samples)
    assert per_cell == 17


def test_metrics_table_of_a_sequence_record():
    rec, logits, labels = record(epochs=4)
    metrics = compute_metrics(rec.dynamics)
    want = [oracle(x, labels) for x in logits]
    mean_logp = np.mean([w["mean_log_prob"] for w in want], axis=0)
    np.testing.assert_allclose(
        metrics["confidence"], np.mean([np.exp(w["mean_log_prob"]) for w in want], axis=0),
        rtol=1e-5,
    )  # fmt: skip
    np.testing.assert_allclose(metrics["perplexity"], np.exp(-mean_logp), rtol=1e-5)
    np.testing.assert_allclose(
        metrics["token_accuracy"], np.mean([w["token_accuracy"] for w in want], axis=0), atol=1e-6
    )
    np.testing.assert_allclose(metrics["correctness"], np.mean([w["exact"] for w in want], axis=0))
    np.testing.assert_allclose(
        metrics["el2n"], np.mean([w["el2n"] for w in want], axis=0), atol=1e-5
    )
    assert (metrics["label_name"] == "reference").all()


def test_perplexity_by_hand_skips_unobserved_checkpoints_and_stays_finite():
    from cartokit.metrics import perplexity

    # rows are checkpoints, columns samples
    gold = np.array([[0.5, 0.25, 0.0], [np.nan, 0.25, 0.0], [0.125, 1.0, 0.0]])
    got = perplexity(np.nan_to_num(gold), ~np.isnan(gold))
    # sample 0: exp((log 2 + log 8) / 2) = 4, its unobserved checkpoint left out;
    # sample 1: exp((log 4 + log 4 + 0) / 3) = 4 ** (2 / 3);
    # sample 2: a probability of 0 counts as float32's smallest normal, so 1 / tiny
    np.testing.assert_allclose(got[:2], [4.0, 4.0 ** (2 / 3)], rtol=1e-12)
    assert got[2] == pytest.approx(1 / np.finfo(np.float32).tiny) and np.isfinite(got[2])


def test_batch_order_and_size_do_not_change_the_record():
    a, _, _ = record(seed=5, batch=1)
    b, _, _ = record(seed=5, batch=7)
    np.testing.assert_allclose(a.dynamics.gold_prob, b.dynamics.gold_prob, rtol=1e-6)
    np.testing.assert_array_equal(a.dynamics.pred, b.dynamics.pred)


def test_save_and_load_keep_the_sequence_columns(tmp_path):
    rec, _, _ = record()
    before = compute_metrics(rec.dynamics)
    after = compute_metrics(TrainingDynamics.load(rec.dynamics.save(tmp_path / "d.npz")))
    assert {"token_accuracy", "perplexity"} <= set(after.columns)
    np.testing.assert_allclose(after["perplexity"], before["perplexity"])


def test_a_sequence_with_no_scored_token_warns_and_is_missing():
    rec = SequenceRecorder(3)
    labels = torch.tensor([[IGNORE, 1, 2], [IGNORE, IGNORE, IGNORE], [IGNORE, 0, IGNORE]])
    for _ in range(3):
        rec.update(torch.arange(3), torch.randn(3, 3, 4), labels)
        with pytest.warns(
            UserWarning, match=r"1 sequences of epoch \d have no scored token.*ids \[1\]"
        ):
            rec.end_epoch()
    dyn = rec.dynamics
    assert np.isnan(dyn.gold_prob[:, 1]).all() and (dyn.pred[:, 1] == -1).all()
    assert rec.empty == [1, 1, 1]
    metrics = compute_metrics(dyn)
    assert metrics["num_observed"].tolist() == [3, 0, 3]


def test_unseen_samples_warn_and_are_missing():
    rec = SequenceRecorder(4)
    rec.update(torch.tensor([0, 2]), torch.randn(2, 3, 4), torch.tensor([[IGNORE, 1, 2]] * 2))
    with pytest.warns(UserWarning, match=r"2 of 4 samples were not seen in epoch 0"):
        rec.end_epoch()
    assert rec.missing == [2]
    assert np.isnan(rec.dynamics.gold_prob[0, [1, 3]]).all()


def test_nan_logits_refuse_the_epoch_and_recording_goes_on():
    rec = SequenceRecorder(2)
    labels = torch.tensor([[IGNORE, 1, 2], [IGNORE, 0, 1]])
    logits = torch.randn(2, 3, 4)
    logits[1, 0, 2] = float("nan")
    rec.update(torch.arange(2), logits, labels)
    with pytest.raises(
        ValueError, match=r"NaN or inf logits .* ids \[1\]; the epoch was discarded"
    ):
        rec.end_epoch()
    assert rec.num_epochs == 0
    rec.update(torch.arange(2), torch.randn(2, 3, 4), labels)
    rec.end_epoch()
    assert rec.num_epochs == 1


X34 = torch.randn(1, 3, 4)
BAD_INPUT = [
    ([0], torch.randn(1, 4), [[1, 2, 3, 0]], ValueError,
     r"logits must have shape \(batch, T, vocab\)\. Got \(1, 4\)"),
    ([0], X34, [[1, 2]], ValueError, r"labels must have shape \(1, 3\) .* Got \(1, 2\)"),
    ([0, 1], X34, [[1, 2, 3]], ValueError, r"ids must have shape \(1,\)"),
    ([0], X34, [[IGNORE, 2, 9]], ValueError,
     r"labels must be token ids in \[0, 4\) or ignore_index=-100\. Got \[9\]"),
    ([0], X34, [[IGNORE, -5, 1]], ValueError, r"Got \[-5\]"),
    ([7], X34, [[IGNORE, 1, 2]], ValueError, r"ids must be row positions in \[0, 2\)\. Got \[7\]"),
    ([0], torch.randint(0, 3, (1, 3, 4)), [[IGNORE, 1, 2]], TypeError, r"must be floating point"),
    ([0], X34, [[0.0, 1.0, 2.0]], TypeError, r"labels must be integers"),
    ([0], torch.randn(1, 1, 4), [[1]], ValueError, r"need at least 2 positions"),
    ([0], torch.randn(1, 3, 1), [[IGNORE, 0, 0]], ValueError, r"vocabulary of at least 2"),
]  # fmt: skip


@pytest.mark.parametrize(("ids", "logits", "labels", "error", "match"), BAD_INPUT)
def test_bad_input_is_one_line(ids, logits, labels, error, match):
    rec = SequenceRecorder(2)
    with pytest.raises(error, match=match) as info:
        rec.update(np.array(ids), logits, np.array(labels))
    assert "\n" not in str(info.value)
    # a rejected batch marks no sample as seen
    assert rec._rows == 0


def test_end_epoch_without_updates_and_dynamics_without_epochs():
    rec = SequenceRecorder(2)
    with pytest.raises(RuntimeError, match=r"end_epoch\(\) was called with no update\(\)"):
        rec.end_epoch()
    with pytest.raises(RuntimeError, match=r"no epoch has been finished yet"):
        _ = rec.dynamics


def test_constructor_checks():
    with pytest.raises(
        ValueError,
        match=r"The 'num_samples' parameter of SequenceRecorder must be an int >= 1\. Got 0",
    ):
        SequenceRecorder(0)
    with pytest.raises(TypeError, match=r"The 'shift' parameter of SequenceRecorder must be"):
        SequenceRecorder(2, shift="yes")


# ---------------------------------------------------------------------------- checkpoints


def test_resume_mid_epoch_gives_the_uninterrupted_record():
    full, logits, labels = record(epochs=3, n=8, seed=2, batch=3)
    rng = np.random.default_rng(2)
    rec = SequenceRecorder(8)
    for e, x in enumerate(logits):
        order = rng.permutation(8)
        for start in range(0, 8, 3):
            ids = order[start : start + 3]
            rec.update(
                torch.from_numpy(ids), torch.from_numpy(x[ids]), torch.from_numpy(labels[ids])
            )
            if e == 1 and start == 3:  # a checkpoint in the middle of the second epoch
                buffer = io.BytesIO()
                torch.save(rec.state_dict(), buffer)
                buffer.seek(0)
                rec = SequenceRecorder(8)
                rec.load_state_dict(torch.load(buffer, weights_only=True))
        rec.end_epoch()
    np.testing.assert_array_equal(rec.dynamics.gold_prob, full.dynamics.gold_prob)
    np.testing.assert_array_equal(
        rec.dynamics.extras["token_accuracy"], full.dynamics.extras["token_accuracy"]
    )
    assert rec.missing == full.missing == [0, 0, 0]


def test_load_state_dict_refuses_another_recorder():
    from cartokit import DynamicsRecorder

    classifier = DynamicsRecorder(4, 2)
    with pytest.raises(ValueError, match=r"not a SequenceRecorder's"):
        SequenceRecorder(4).load_state_dict(classifier.state_dict())
    with pytest.raises(ValueError, match=r"the saved record has shift=True, this recorder False"):
        SequenceRecorder(4, shift=False).load_state_dict(SequenceRecorder(4).state_dict())


def test_recording_does_not_touch_autograd():
    logits = torch.randn(2, 4, 6, requires_grad=True)
    labels = torch.tensor([[IGNORE, 1, 2, 3], [IGNORE, IGNORE, 0, 5]])
    loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, 6), labels[:, 1:].reshape(-1)
    )
    rec = SequenceRecorder(2)
    rec.update(torch.arange(2), logits, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss.backward()  # an in-place change to the logits would fail here
    assert logits.grad is not None
