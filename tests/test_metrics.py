"""Tests for cartokit.metrics: hand-computed cases, an oracle, and hypothesis properties."""

from __future__ import annotations

import math
import warnings

import hypothesis.extra.numpy as hnp
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import cartokit.metrics as metrics_module
from cartokit import TrainingDynamics, compute_metrics
from cartokit.metrics import checkpoint_stats, checkpoint_stats_numpy

COLUMNS = [
    "label",
    "confidence",
    "variability",
    "correctness",
    "forgetting",
    "learned_events",
    "first_learned_epoch",
    "never_learned",
    "min_prob",
    "max_prob",
    "aum",
    "el2n",
    "aleatoric",
    "threshold_closeness",
    "predicted_label",
    "num_observed",
]
FLOAT_COLUMNS = [
    "confidence",
    "variability",
    "correctness",
    "min_prob",
    "max_prob",
    "aum",
    "el2n",
    "aleatoric",
    "threshold_closeness",
]
INT_COLUMNS = ["label", "forgetting", "learned_events", "num_observed"]
LN2, LN3 = math.log(2.0), math.log(3.0)
FEW_EPOCHS = "ignore:compute_metrics uses:UserWarning"


def _std(values: list[float]) -> float:
    mu = sum(values) / len(values)
    return math.sqrt(sum((v - mu) ** 2 for v in values) / len(values))


def _first_learned(m: pd.DataFrame) -> list[int | None]:
    return [None if pd.isna(v) else int(v) for v in m["first_learned_epoch"]]


def _with_missing(dyn: TrainingDynamics, missing: np.ndarray) -> TrainingDynamics:
    """A TrainingDynamics in which the entries under ``missing`` were never observed."""
    stats = {}
    for name in ("gold_prob", "margin", "sq_error"):
        stats[name] = np.where(missing, np.nan, getattr(dyn, name)).astype(np.float32)
    stats["pred"] = np.where(missing, -1, dyn.pred)
    return TrainingDynamics(
        ids=dyn.ids,
        labels=dyn.labels,
        num_classes=dyn.num_classes,
        class_names=dyn.class_names,
        **stats,
    )


# ----------------------------------------------------------------------- hand-computed cases


def test_hand_computed_two_classes_with_tie():
    # label 0. epoch 0: logits (0, 0) -> p = (1/2, 1/2), a tie: argmax is the first class (0),
    # so correct. epoch 1: (ln 3, 0) -> p = (3/4, 1/4), correct. epoch 2: (0, ln 3) -> wrong.
    logits = np.array([[[0.0, 0.0]], [[LN3, 0.0]], [[0.0, LN3]]])
    row = compute_metrics(TrainingDynamics.from_logits(logits, labels=[0])).iloc[0]
    assert row["confidence"] == pytest.approx(0.5, abs=1e-7)
    assert row["variability"] == pytest.approx(math.sqrt(1 / 24), abs=1e-7)
    assert row["correctness"] == pytest.approx(2 / 3)
    assert row["forgetting"] == 1
    assert row["learned_events"] == 1
    assert row["first_learned_epoch"] == 0
    assert not row["never_learned"]
    assert row["min_prob"] == pytest.approx(0.25, abs=1e-7)
    assert row["max_prob"] == pytest.approx(0.75, abs=1e-7)
    assert row["aum"] == pytest.approx(0.0, abs=1e-6)  # (0 + ln3 - ln3) / 3
    # ||p - e_0||: sqrt(1/2), sqrt(1/8), sqrt(9/8); their mean is sqrt(2)/2
    assert row["el2n"] == pytest.approx(math.sqrt(2) / 2, abs=1e-6)
    assert row["aleatoric"] == pytest.approx((1 / 4 + 3 / 16 + 3 / 16) / 3, abs=1e-7)
    assert row["threshold_closeness"] == pytest.approx(0.25, abs=1e-7)
    assert row["predicted_label"] == 1
    assert row["num_observed"] == 3
    assert row["label"] == 0


def test_hand_computed_three_classes_four_epochs():
    # label 2.
    # e0 (0, 0, 0):        p = (1/3, 1/3, 1/3); tie -> pred 0, wrong; margin 0
    # e1 (0, 0, ln 2):     p = (1/4, 1/4, 1/2); pred 2, right; margin ln 2
    # e2 (ln 4, 0, 0):     p = (2/3, 1/6, 1/6); pred 0, wrong; margin -ln 4
    # e3 (0, ln 2, ln 2):  p = (1/5, 2/5, 2/5); tie of 1 and 2 -> pred 1, wrong; margin 0
    logits = np.array(
        [[[0.0, 0.0, 0.0]], [[0.0, 0.0, LN2]], [[2 * LN2, 0.0, 0.0]], [[0.0, LN2, LN2]]]
    )
    gold = [1 / 3, 1 / 2, 1 / 6, 2 / 5]
    norms = [math.sqrt(2 / 3), math.sqrt(3 / 8), math.sqrt(7 / 6), math.sqrt(14 / 25)]
    row = compute_metrics(TrainingDynamics.from_logits(logits, labels=[2])).iloc[0]
    assert row["confidence"] == pytest.approx(0.35, abs=1e-7)  # (20 + 30 + 10 + 24) / 60 / 4
    assert row["variability"] == pytest.approx(_std(gold), abs=1e-7)
    assert row["correctness"] == 0.25
    assert (row["forgetting"], row["learned_events"]) == (1, 1)
    assert row["first_learned_epoch"] == 1
    assert not row["never_learned"]
    assert (row["min_prob"], row["max_prob"]) == pytest.approx((1 / 6, 1 / 2), abs=1e-7)
    assert row["aum"] == pytest.approx(-LN2 / 4, abs=1e-6)
    assert row["el2n"] == pytest.approx(sum(norms) / 4, abs=1e-6)
    assert row["aleatoric"] == pytest.approx(sum(g * (1 - g) for g in gold) / 4, abs=1e-7)
    assert row["threshold_closeness"] == pytest.approx(0.35 * 0.65, abs=1e-7)
    assert row["predicted_label"] == 1
    assert row["num_observed"] == 4


def _stat_rows(gold, pred, label_of_two_classes):
    """Per-epoch stats of a two-class sample from its gold probabilities (None = not seen)."""
    g = np.array([np.nan if v is None else v for v in gold], dtype=np.float64)
    margin = np.log(g) - np.log1p(-g)
    sq_err = 2 * (1 - g) ** 2  # two classes: the other class holds 1 - g
    return g, margin, sq_err, np.array([-1 if p is None else p for p in pred])


def test_hand_computed_missing_epochs():
    # Two classes, four checkpoints, built directly (NaN / -1 = not seen at that checkpoint).
    samples = [
        # label 0, seen at 0 and 2: wrong (0.2) then right (0.8)
        (0, [0.2, None, 0.8, None], [1, None, 0, None]),
        # label 1, seen at 0 and 3: right (0.6), then wrong (0.4) across the gap -> forgotten
        (1, [0.6, None, None, 0.4], [1, None, None, 0]),
        # label 0, never seen
        (0, [None] * 4, [None] * 4),
        # label 0, seen everywhere, always right
        (0, [0.9] * 4, [0] * 4),
    ]
    cols = [_stat_rows(g, p, y) for y, g, p in samples]
    dyn = TrainingDynamics(
        ids=["a", "b", "c", "d"],
        labels=[y for y, _, _ in samples],
        gold_prob=np.stack([c[0] for c in cols], axis=1),
        margin=np.stack([c[1] for c in cols], axis=1),
        sq_error=np.stack([c[2] for c in cols], axis=1),
        pred=np.stack([c[3] for c in cols], axis=1),
        num_classes=2,
    )
    m = compute_metrics(dyn)  # no RuntimeWarning from the all-NaN sample (pyproject: error)
    assert m.index.tolist() == ["a", "b", "c", "d"]
    a, b, c, d = (m.loc[k] for k in "abcd")

    assert a["confidence"] == pytest.approx(0.5, abs=1e-7)
    assert a["variability"] == pytest.approx(0.3, abs=1e-7)
    assert a["correctness"] == 0.5
    assert (a["forgetting"], a["learned_events"], a["first_learned_epoch"]) == (0, 1, 2)
    assert (a["min_prob"], a["max_prob"]) == pytest.approx((0.2, 0.8), abs=1e-7)
    assert a["aum"] == pytest.approx(0.0, abs=1e-6)  # -ln 4 and +ln 4
    assert a["el2n"] == pytest.approx((math.sqrt(1.28) + math.sqrt(0.08)) / 2, abs=1e-6)
    assert a["aleatoric"] == pytest.approx(0.16, abs=1e-7)
    assert a["threshold_closeness"] == pytest.approx(0.25, abs=1e-7)
    assert (a["predicted_label"], a["num_observed"]) == (0, 2)

    assert b["confidence"] == pytest.approx(0.5, abs=1e-7)
    assert b["variability"] == pytest.approx(0.1, abs=1e-7)
    assert b["correctness"] == 0.5
    assert (b["forgetting"], b["learned_events"], b["first_learned_epoch"]) == (1, 1, 0)
    assert (b["predicted_label"], b["num_observed"]) == (0, 2)

    for col in ("confidence", "variability", "correctness", "min_prob", "max_prob", "aum"):
        assert np.isnan(c[col]), col
    for col in ("el2n", "aleatoric", "threshold_closeness"):
        assert np.isnan(c[col]), col
    assert (c["forgetting"], c["learned_events"], c["num_observed"]) == (0, 0, 0)
    assert pd.isna(c["first_learned_epoch"]) and c["never_learned"]

    assert d["confidence"] == pytest.approx(0.9, abs=1e-7)
    assert d["variability"] == pytest.approx(0.0, abs=1e-7)
    assert d["correctness"] == 1.0
    assert (d["forgetting"], d["learned_events"], d["first_learned_epoch"]) == (0, 1, 0)
    assert d["num_observed"] == 4


@pytest.mark.parametrize(
    ("sequence", "forgotten", "learned", "first"),
    [
        ("TFTF", 2, 2, 0),
        ("FFF", 0, 0, None),
        ("FTT", 0, 1, 1),
        ("TTT", 0, 1, 0),
        ("TFF", 1, 1, 0),
        ("FTFT", 1, 2, 1),
        ("FFFT", 0, 1, 3),
    ],
)
def test_forgetting_and_learning_events(sequence, forgotten, learned, first):
    # label 0; logits (1, 0) are correct, (0, 1) wrong
    logits = np.array([[[1.0, 0.0]] if s == "T" else [[0.0, 1.0]] for s in sequence])
    m = compute_metrics(TrainingDynamics.from_logits(logits, labels=[0]))
    assert (m["forgetting"].iloc[0], m["learned_events"].iloc[0]) == (forgotten, learned)
    assert _first_learned(m) == [first]
    assert m["never_learned"].iloc[0] == (first is None)
    assert m["correctness"].iloc[0] == pytest.approx(sequence.count("T") / len(sequence))


def test_el2n_keeps_precision_for_confident_samples():
    # logits (10, 0), label 0: p_1 = 1 / (1 + e^10) = 4.54e-5, ||p - e_0|| = sqrt(2) * p_1.
    # EL2N ranks the easy tail (Paul et al. prune by it), so small values must stay resolved.
    logits = np.array([[[10.0, 0.0]], [[9.0, 0.0]], [[11.0, 0.0]]])
    expected = np.mean([math.sqrt(2) / (1 + math.exp(d)) for d in (10.0, 9.0, 11.0)])
    m = compute_metrics(TrainingDynamics.from_logits(logits, labels=[0]))
    assert m["el2n"].iloc[0] == pytest.approx(expected, rel=1e-2)


def test_columns_dtypes_and_index():
    logits = np.random.default_rng(0).normal(size=(3, 4, 3))
    dyn = TrainingDynamics.from_logits(logits, [0, 1, 2, 0], ids=[10, 11, 12, 13])
    m = compute_metrics(dyn)
    assert m.columns.tolist() == COLUMNS
    assert m.index.name == "id" and m.index.tolist() == [10, 11, 12, 13]
    for col in FLOAT_COLUMNS:
        assert m[col].dtype == np.float64, col
    for col in INT_COLUMNS:
        assert m[col].dtype == np.int64, col
    assert m["first_learned_epoch"].dtype == pd.Int64Dtype()
    assert m["predicted_label"].dtype == pd.Int64Dtype()  # <NA> for a sample never seen
    assert m["never_learned"].dtype == bool


def test_class_name_columns():
    logits = np.array([[[2.0, 0.0, 0.0], [0.0, 0.0, 3.0]]] * 3)
    dyn = TrainingDynamics.from_logits(logits, [0, 1], class_names=["neg", "neu", "pos"])
    m = compute_metrics(dyn)
    assert m.columns.tolist() == [*COLUMNS, "label_name", "predicted_name"]
    assert m["label_name"].tolist() == ["neg", "neu"]
    assert m["predicted_name"].tolist() == ["neg", "pos"]
    assert m["predicted_label"].tolist() == [0, 2]


def test_never_observed_sample_has_no_predicted_class():
    # A sample seen at no checkpoint has no prediction; it must not be shown as the last class.
    dyn = TrainingDynamics.from_logits(
        np.array([[[2.0, 0.0, 0.0], [0.0, 3.0, 0.0]]] * 3), [0, 1], class_names=["a", "b", "c"]
    )
    dyn = _with_missing(dyn, np.array([[False, True]] * 3))
    row = compute_metrics(dyn).iloc[1]
    assert row["num_observed"] == 0
    assert pd.isna(row["predicted_label"]) or row["predicted_label"] == -1
    assert pd.isna(row["predicted_name"])


def test_predicted_label_is_last_observed_checkpoint():
    logits = np.array([[[0.0, 1.0]], [[1.0, 0.0]], [[0.0, 1.0]], [[1.0, 0.0]]])
    dyn = TrainingDynamics.from_logits(logits, [0])
    assert compute_metrics(dyn)["predicted_label"].iloc[0] == 0
    missing_last = _with_missing(dyn, np.array([[False], [False], [False], [True]]))
    assert compute_metrics(missing_last)["predicted_label"].iloc[0] == 1


# ----------------------------------------------------------------------- checkpoint_stats


def test_checkpoint_stats_chunks_agree(monkeypatch):
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(size=(11, 4)), dtype=torch.float32)
    y = torch.tensor(rng.integers(0, 4, size=11))
    whole = checkpoint_stats(x, y)
    monkeypatch.setattr(metrics_module, "CHUNK_ROWS", 3)
    chunked = checkpoint_stats(x, y)
    for a, b in zip(whole, chunked):
        assert a.shape == (11,)
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert [t.dtype for t in chunked] == [torch.float32] * 3 + [torch.int64]


def test_checkpoint_stats_empty_and_half_precision():
    out = checkpoint_stats(torch.empty(0, 3), torch.empty(0, dtype=torch.int64))
    assert [t.shape for t in out] == [(0,)] * 4
    assert [t.dtype for t in out] == [torch.float32] * 3 + [torch.int64]
    x = torch.tensor([[0.0, math.log(3.0)]], dtype=torch.bfloat16)
    gold, margin, sq_err, pred = checkpoint_stats(x, torch.tensor([1]))
    assert gold.dtype == torch.float32
    assert float(gold) == pytest.approx(0.75, abs=2e-3)
    assert int(pred) == 1


# ----------------------------------------------------------------------- the numpy twin

F32_EPS = float(np.finfo(np.float32).eps)


def _hostile_logits(rng: np.random.Generator, n: int, classes: int) -> np.ndarray:
    """Logits of every scale, with exact ties, float16-rounded rows and extremes."""
    scale = rng.choice([1e-3, 0.1, 1.0, 10.0, 60.0, 1e4], size=(n, 1))
    x = rng.normal(size=(n, classes)) * scale
    x[: n // 8] = np.round(x[: n // 8])  # ties, between gold and others too
    x[n // 8 : n // 4] = x[n // 8 : n // 4].astype(np.float16)  # float16-ish: many ties
    x[n // 4 : n // 4 + 3] = 0.0  # every class tied
    x[n // 4 + 3 : n // 4 + 6, 0] = 3e37  # near float32's largest
    x[n // 4 + 6 : n // 4 + 9, -1] = -3e37
    return x.astype(np.float32)


def _reference(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    """The four statistics in float64 from the float32 logits: what both kernels round."""
    z = x.astype(np.float64)
    rows = np.arange(len(y))
    shifted = z - z.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    p = np.exp(logp)
    onehot = np.eye(x.shape[1])[y]
    others = np.where(onehot == 1, -np.inf, z).max(axis=1)
    return p[rows, y], z[rows, y] - others, ((p - onehot) ** 2).sum(axis=1), z.argmax(axis=1)


def _assert_float32_close(got, want, x, who: str, *, floor: float = 0.0) -> None:
    """Agreement to float32 rounding: an error of a few ulps in ``logit - logsumexp``, whose
    ulp grows with the logits' scale, moves p by that much relative and ||p - y||^2 by twice
    sqrt(||p - y||^2) as much. ``floor`` is a relative error allowed whatever the scale."""
    gold, margin, sq_err, pred = (np.asarray(v, dtype=np.float64) for v in got)
    gold_w, margin_w, sq_w, pred_w = want
    scale = np.maximum(1.0, np.abs(x.astype(np.float64)).max(axis=1))
    delta = np.maximum(16 * F32_EPS * scale, floor)
    checks = {
        "gold_prob": (gold, gold_w, delta * gold_w + 1e-37),
        "sq_error": (sq_err, sq_w, 4 * np.sqrt(sq_w) * delta + delta**2 + delta * sq_w + 1e-37),
    }
    for name, (a, b, bound) in checks.items():
        bad = np.flatnonzero(~(np.abs(a - b) <= bound))
        assert not bad.size, (
            f"{who} {name}: {bad.size} rows off, e.g. row {bad[0]} logits {x[bad[0]].tolist()} "
            f"got {a[bad[0]]!r} want {b[bad[0]]!r}"
        )
    np.testing.assert_allclose(margin, margin_w, rtol=2 * F32_EPS, atol=0, err_msg=who)
    np.testing.assert_array_equal(pred, pred_w, err_msg=who)


@pytest.mark.parametrize("classes", [2, 3, 10, 33, 200])
def test_numpy_kernel_matches_the_torch_kernel_to_float32_rounding(classes):
    rng = np.random.default_rng(classes)
    x = _hostile_logits(rng, 4000, classes)
    y = rng.integers(0, classes, size=4000)
    want = _reference(x, y)
    ours = checkpoint_stats_numpy(x, y)
    torch_stats = [t.numpy() for t in checkpoint_stats(torch.from_numpy(x), torch.from_numpy(y))]
    _assert_float32_close(ours, want, x, "numpy")
    # torch's float32 exp on the CPU is, in about one process in ten here, off by up to 1.5e-4
    # relative on some elements (torch 2.13): its kernel gets that much slack, numpy's none.
    _assert_float32_close(torch_stats, want, x, "torch", floor=5e-4)
    # the exact parts are exact in both: the argmax (first maximum) and the margin
    np.testing.assert_array_equal(ours[3], torch_stats[3])
    np.testing.assert_array_equal(ours[1], torch_stats[1])
    assert [v.dtype for v in ours] == [np.float32] * 3 + [np.int64]


def test_numpy_kernel_on_float16_and_float64_input_rounds_like_float32():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 4)).astype(np.float16)
    y = rng.integers(0, 4, size=300)
    ours = checkpoint_stats_numpy(x, y)
    torch_stats = [t.numpy() for t in checkpoint_stats(torch.from_numpy(x), torch.from_numpy(y))]
    np.testing.assert_array_equal(ours[3], torch_stats[3])
    _assert_float32_close(ours, _reference(x.astype(np.float32), y), x, "numpy")
    # float64 logits that only float64 tells apart are a tie in float32: the first class wins
    close = np.array([[1.0, 1.0 + 1e-12]])
    assert checkpoint_stats_numpy(close, np.array([1]))[3].tolist() == [0]


def test_numpy_kernel_chunks_agree_and_leave_the_input_alone(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(11, 4)).astype(np.float32)
    y = rng.integers(0, 4, size=11)
    before = x.copy()
    whole = checkpoint_stats_numpy(x, y)
    monkeypatch.setattr(metrics_module, "CHUNK_VALUES", 4)  # one row per chunk
    chunked = checkpoint_stats_numpy(x, y)
    for a, b in zip(whole, chunked, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(x, before)  # the gold logit is masked in a copy
    empty = checkpoint_stats_numpy(np.empty((0, 3)), np.empty(0, dtype=np.int64))
    assert [v.shape for v in empty] == [(0,)] * 4


def test_numpy_kernel_takes_the_prediction_from_pred_from():
    # float32 log can map 0.34000003 and 0.34 to one number (it does on some CPUs' vector
    # log): written here as that tie, which would go to class 0
    probs = np.array([[0.34, 0.34000003, 0.31999997]], dtype=np.float32)
    logp = np.log(probs.astype(np.float64)).astype(np.float32)
    logp[0, 1] = logp[0, 0]
    assert checkpoint_stats_numpy(logp, np.array([1]))[3].tolist() == [0]
    assert checkpoint_stats_numpy(logp, np.array([1]), pred_from=probs)[3].tolist() == [1]
    wide = np.zeros((1, 40), dtype=np.float32)  # many classes: numpy's argmax
    wide[0, [7, 30]] = 1.0
    assert checkpoint_stats_numpy(wide, np.array([0]), pred_from=wide)[3].tolist() == [7]


# ----------------------------------------------------------------------- oracle


def _oracle(logits: np.ndarray, labels: np.ndarray, observed: np.ndarray) -> list[dict]:
    """Every metric by its literal definition: plain Python, one sample and one epoch at a time."""
    n_epochs, n_samples, n_classes = logits.shape
    rows = []
    for i in range(n_samples):
        y = int(labels[i])
        golds, margins, norms, corrects, preds, epochs = [], [], [], [], [], []
        for e in range(n_epochs):
            if not observed[e][i]:
                continue
            z = [float(v) for v in logits[e][i]]
            top = max(z)
            exps = [math.exp(v - top) for v in z]
            p = [v / sum(exps) for v in exps]
            pred = z.index(top)  # first maximum
            golds.append(p[y])
            margins.append(z[y] - max(z[k] for k in range(n_classes) if k != y))
            norms.append(
                math.sqrt(sum((p[k] - (1.0 if k == y else 0.0)) ** 2 for k in range(n_classes)))
            )
            corrects.append(pred == y)
            preds.append(pred)
            epochs.append(e)
        n = len(golds)
        forgotten = learned = 0
        was_correct = False  # before the first checkpoint: not learned
        for c in corrects:
            forgotten += was_correct and not c
            learned += c and not was_correct
            was_correct = c
        first = next((e for e, c in zip(epochs, corrects) if c), None)
        if n == 0:
            nan = float("nan")
            row = dict.fromkeys(FLOAT_COLUMNS, nan)
            row["predicted_label"] = None
        else:
            mu = sum(golds) / n
            row = {
                "confidence": mu,
                "variability": math.sqrt(sum((g - mu) ** 2 for g in golds) / n),
                "correctness": sum(corrects) / n,
                "min_prob": min(golds),
                "max_prob": max(golds),
                "aum": sum(margins) / n,
                "el2n": sum(norms) / n,
                "aleatoric": sum(g * (1 - g) for g in golds) / n,
                "threshold_closeness": mu * (1 - mu),
                "predicted_label": preds[-1],
            }
        row.update(
            label=y,
            forgetting=forgotten,
            learned_events=learned,
            first_learned_epoch=first,
            never_learned=first is None,
            num_observed=n,
        )
        rows.append(row)
    return rows


ORACLE_TOL = {
    "confidence": 1e-6,
    "variability": 1e-5,
    "correctness": 1e-12,
    "min_prob": 1e-6,
    "max_prob": 1e-6,
    "aum": 1e-5,
    "el2n": 1e-5,
    "aleatoric": 1e-6,
    "threshold_closeness": 1e-6,
}


@pytest.mark.filterwarnings(FEW_EPOCHS)
@pytest.mark.parametrize("with_missing", [False, True], ids=["complete", "missing"])
@pytest.mark.parametrize("seed", range(10))
def test_oracle(seed, with_missing):
    rng = np.random.default_rng(seed)
    n_epochs, n_classes, n_samples = rng.integers(1, 9), rng.integers(2, 6), rng.integers(1, 30)
    # float32 logits, so the oracle sees exactly the numbers the module sees
    logits = rng.normal(scale=1.5, size=(n_epochs, n_samples, n_classes)).astype(np.float32)
    labels = rng.integers(0, n_classes, size=n_samples)
    missing = rng.random((n_epochs, n_samples)) < (0.35 if with_missing else 0.0)
    if with_missing:
        missing[:, 0] = True  # one sample never seen
        missing[:, -1] = False  # and one seen everywhere, when there are two
    dyn = TrainingDynamics.from_logits(logits, labels)
    if with_missing:
        dyn = _with_missing(dyn, missing)
    got = compute_metrics(dyn)
    rows = _oracle(logits, labels, ~missing)
    want = pd.DataFrame(rows)
    for col, tol in ORACLE_TOL.items():
        np.testing.assert_allclose(
            got[col].to_numpy(),
            want[col].to_numpy(dtype=float),
            rtol=0,
            atol=tol,
            equal_nan=True,
            err_msg=col,
        )
    for col in ("label", "forgetting", "learned_events", "num_observed", "never_learned"):
        assert got[col].tolist() == want[col].tolist(), col
    assert _first_learned(got) == [r["first_learned_epoch"] for r in rows]
    for r, got_pred in zip(rows, got["predicted_label"]):
        if r["num_observed"]:
            assert got_pred == r["predicted_label"]


# ----------------------------------------------------------------------- hypothesis properties


@st.composite
def recorded(draw, min_epochs: int = 1):
    """Logits with ties and extremes, labels, and a mask of unseen entries."""
    n_epochs = draw(st.integers(min_epochs, 6))
    n_samples = draw(st.integers(1, 8))
    n_classes = draw(st.integers(2, 4))
    logits = draw(
        hnp.arrays(
            np.float32,
            (n_epochs, n_samples, n_classes),
            elements=st.floats(-30, 30, width=32) | st.sampled_from([0.0, 1.0]),
        )
    )
    labels = draw(hnp.arrays(np.int64, n_samples, elements=st.integers(0, n_classes - 1)))
    missing = draw(hnp.arrays(np.bool_, (n_epochs, n_samples)))
    missing &= draw(st.booleans())  # about half the examples take the complete fast path
    dyn = TrainingDynamics.from_logits(logits, labels)
    return dyn if not missing.any() else _with_missing(dyn, missing)


@pytest.mark.filterwarnings(FEW_EPOCHS)
@settings(max_examples=100, deadline=None)
@given(dyn=recorded())
def test_value_ranges(dyn):
    m = compute_metrics(dyn)
    seen = m["num_observed"] > 0
    s = m[seen]
    eps = 1e-6
    assert s["confidence"].between(0, 1 + eps).all()
    assert s["variability"].between(0, 0.5 + eps).all()
    assert s["correctness"].between(0, 1).all()
    assert s["el2n"].between(0, math.sqrt(2) + eps).all()
    assert s["aleatoric"].between(0, 0.25 + eps).all()
    assert s["threshold_closeness"].between(0, 0.25 + eps).all()
    assert (s["min_prob"] <= s["max_prob"]).all()
    assert (s["min_prob"] <= s["confidence"] + eps).all()
    assert (s["confidence"] <= s["max_prob"] + eps).all()
    assert s["predicted_label"].between(0, dyn.num_classes - 1).all()
    assert m[~seen][FLOAT_COLUMNS].isna().all().all()
    assert m["num_observed"].between(0, dyn.num_epochs).all()
    # learned - forgotten is 1 exactly when the last observed prediction is correct
    diff = m["learned_events"] - m["forgetting"]
    assert diff.isin([0, 1]).all()
    assert (m["forgetting"] >= 0).all()
    last_correct = seen & (m["predicted_label"] == m["label"])
    assert ((diff == 1) == last_correct).all()
    assert (m["first_learned_epoch"].isna() == m["never_learned"]).all()
    assert (m["never_learned"] == (m["correctness"].fillna(0) == 0)).all()
    hits = (m["correctness"] * m["num_observed"]).fillna(0)
    np.testing.assert_allclose(hits, hits.round(), atol=1e-9)


@pytest.mark.filterwarnings(FEW_EPOCHS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_sample_order_invariance(data):
    dyn = data.draw(recorded())
    perm = np.array(data.draw(st.permutations(range(dyn.num_samples))))
    ids = np.array([f"id{i}" for i in range(dyn.num_samples)], dtype=object)
    original = TrainingDynamics(
        ids=ids,
        labels=dyn.labels,
        num_classes=dyn.num_classes,
        gold_prob=dyn.gold_prob,
        margin=dyn.margin,
        sq_error=dyn.sq_error,
        pred=dyn.pred,
    )
    shuffled = TrainingDynamics(
        ids=ids[perm],
        labels=dyn.labels[perm],
        num_classes=dyn.num_classes,
        gold_prob=dyn.gold_prob[:, perm],
        margin=dyn.margin[:, perm],
        sq_error=dyn.sq_error[:, perm],
        pred=dyn.pred[:, perm],
    )
    a, b = compute_metrics(original), compute_metrics(shuffled)
    assert b.index.tolist() == ids[perm].tolist()
    pd.testing.assert_frame_equal(b.loc[a.index], a, check_exact=False, rtol=0, atol=1e-12)


EPOCH_ORDER_INVARIANT = [
    "confidence",
    "variability",
    "correctness",
    "min_prob",
    "max_prob",
    "aum",
    "el2n",
    "aleatoric",
    "threshold_closeness",
    "num_observed",
    "never_learned",
]


@pytest.mark.filterwarnings(FEW_EPOCHS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_epoch_order_invariance(data):
    dyn = data.draw(recorded())
    order = data.draw(st.permutations(range(dyn.num_epochs)))
    a = compute_metrics(dyn)
    b = compute_metrics(dyn.select_epochs(order))
    pd.testing.assert_frame_equal(
        b[EPOCH_ORDER_INVARIANT], a[EPOCH_ORDER_INVARIANT], check_exact=False, rtol=0, atol=1e-6
    )


def test_forgetting_depends_on_epoch_order():
    # right, wrong, right: one forgetting event. Reordered to wrong, right, right: none.
    logits = np.array([[[1.0, 0.0]], [[0.0, 1.0]], [[2.0, 0.0]]])
    dyn = TrainingDynamics.from_logits(logits, labels=[0])
    a = compute_metrics(dyn).iloc[0]
    b = compute_metrics(dyn.select_epochs([1, 0, 2])).iloc[0]
    assert (a["forgetting"], b["forgetting"]) == (1, 0)
    assert (a["learned_events"], b["learned_events"]) == (2, 1)
    assert (a["first_learned_epoch"], b["first_learned_epoch"]) == (0, 1)
    assert a["confidence"] == pytest.approx(b["confidence"], abs=1e-12)
    assert a["variability"] == pytest.approx(b["variability"], abs=1e-7)
    assert a["correctness"] == b["correctness"]


# ----------------------------------------------------------------------- burn_in / epochs


def _five_epoch_dynamics():
    logits = np.random.default_rng(3).normal(scale=2.0, size=(5, 12, 3))
    labels = np.random.default_rng(4).integers(0, 3, size=12)
    return TrainingDynamics.from_logits(logits, labels)


def _assert_matches_selection(m: pd.DataFrame, sel: pd.DataFrame, epochs: list[int]) -> None:
    others = [c for c in COLUMNS if c != "first_learned_epoch"]
    pd.testing.assert_frame_equal(m[others], sel[others])
    # first_learned_epoch keeps the recorded checkpoint numbering
    want = [None if v is None else epochs[v] for v in _first_learned(sel)]
    assert _first_learned(m) == want


def test_burn_in_drops_leading_checkpoints():
    dyn = _five_epoch_dynamics()
    for burn_in in (1, 2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            m = compute_metrics(dyn, burn_in=burn_in)
            sel = compute_metrics(dyn.select_epochs(slice(burn_in, None)))
        _assert_matches_selection(m, sel, list(range(burn_in, 5)))
        assert (m["num_observed"] == 5 - burn_in).all()
    assert not compute_metrics(dyn, burn_in=1).equals(compute_metrics(dyn))


@pytest.mark.filterwarnings(FEW_EPOCHS)
@pytest.mark.parametrize("epochs", [[0, 2, 4], [4, 1], [3]])
def test_epochs_selects_checkpoints(epochs):
    dyn = _five_epoch_dynamics()
    m = compute_metrics(dyn, epochs=epochs)
    _assert_matches_selection(m, compute_metrics(dyn.select_epochs(epochs)), epochs)


def test_first_learned_epoch_counts_from_recorded_checkpoints():
    logits = np.array([[[0.0, 1.0]], [[0.0, 1.0]], [[0.0, 1.0]], [[1.0, 0.0]], [[1.0, 0.0]]])
    dyn = TrainingDynamics.from_logits(logits, [0])
    assert _first_learned(compute_metrics(dyn, burn_in=2)) == [3]
    assert _first_learned(compute_metrics(dyn, epochs=[4, 0, 1])) == [4]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"burn_in": 4},
            ValueError,
            r"The 'burn_in' parameter of compute_metrics must be smaller than the number of "
            r"recorded checkpoints \(4\)\. Got 4 instead\.",
        ),
        (
            {"burn_in": -1},
            ValueError,
            r"The 'burn_in' parameter of compute_metrics must be an int >= 0\. Got -1 instead\.",
        ),
        (
            {"burn_in": 1.5},
            TypeError,
            r"The 'burn_in' parameter of compute_metrics must be an int >= 0\. "
            r"Got 1\.5 of type float instead\.",
        ),
        (
            {"burn_in": 1, "epochs": [2, 3]},
            ValueError,
            r"compute_metrics takes either burn_in or epochs, not both\. "
            r"Got burn_in=1 and epochs=\[2, 3\]",
        ),
        (
            {"epochs": [1, 4]},
            ValueError,
            r"The 'epochs' parameter of compute_metrics must list checkpoint indices in "
            r"\[0, 4\)\. Got \[1, 4\]\.",
        ),
        ({"epochs": [-1, 2]}, ValueError, r"checkpoint indices in \[0, 4\)\. Got \[-1, 2\]"),
        ({"epochs": []}, ValueError, r"checkpoint indices in \[0, 4\)\. Got \[\]\."),
        (
            {"epochs": [1, 2, 1]},
            ValueError,
            r"compute_metrics: 'epochs' repeats an index: \[1, 2, 1\]\.",
        ),
        (
            {"epochs": [1.0, 2.0]},
            TypeError,
            r"The 'epochs' parameter of compute_metrics must be an int\. Got 1\.0",
        ),
    ],
)
def test_selection_errors(kwargs, error, match):
    dyn = TrainingDynamics.from_logits(np.zeros((4, 2, 2)), [0, 1])
    with pytest.raises(error, match=match):
        compute_metrics(dyn, **kwargs)


@pytest.mark.parametrize(
    ("n_epochs", "kwargs", "used"),
    [(1, {}, 1), (2, {}, 2), (4, {"burn_in": 2}, 2), (5, {"epochs": [0]}, 1)],
)
def test_few_checkpoints_warn(n_epochs, kwargs, used):
    dyn = TrainingDynamics.from_logits(np.zeros((n_epochs, 2, 2)), [0, 1])
    with pytest.warns(UserWarning, match=rf"compute_metrics uses {used} checkpoint\(s\)"):
        m = compute_metrics(dyn, **kwargs)
    assert (m["num_observed"] == used).all()


def test_three_checkpoints_do_not_warn():
    dyn = TrainingDynamics.from_logits(np.zeros((4, 2, 2)), [0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compute_metrics(dyn)
        compute_metrics(dyn, burn_in=1)
        compute_metrics(dyn, epochs=[0, 1, 3])
