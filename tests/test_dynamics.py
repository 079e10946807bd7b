"""Tests for cartokit.dynamics: the TrainingDynamics container, its constructors and file format."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from cartokit.dynamics import FORMAT_NAME, FORMAT_VERSION, TrainingDynamics

STAT_NAMES = ("gold_prob", "margin", "sq_error", "pred")


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _random_case(seed: int, epochs: int = 4, samples: int = 7, classes: int = 3):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(epochs, samples, classes))
    labels = rng.integers(0, classes, size=samples)
    return logits, labels


def _assert_same_dynamics(a: TrainingDynamics, b: TrainingDynamics) -> None:
    assert a.num_classes == b.num_classes
    assert a.class_names == b.class_names
    assert a.ids.dtype == b.ids.dtype
    assert a.ids.tolist() == b.ids.tolist()
    np.testing.assert_array_equal(a.labels, b.labels)
    for name in STAT_NAMES:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)
    if a.probs is None:
        assert b.probs is None
    else:
        np.testing.assert_array_equal(a.probs, b.probs)


# ------------------------------------------------------------------------ from_logits


def test_from_logits_hand_computed():
    # epoch 0: logits (0, ln 3) -> p = (1/4, 3/4); epoch 1: (ln 3, 0) -> p = (3/4, 1/4)
    ln3 = math.log(3.0)
    logits = np.array([[[0.0, ln3]], [[ln3, 0.0]]])
    dyn = TrainingDynamics.from_logits(logits, labels=[0])
    np.testing.assert_allclose(dyn.gold_prob[:, 0], [0.25, 0.75], atol=1e-7)
    np.testing.assert_allclose(dyn.margin[:, 0], [-ln3, ln3], atol=1e-6)
    np.testing.assert_allclose(dyn.sq_error[:, 0], [1.125, 0.125], atol=1e-7)  # 2 (1 - p)^2
    assert dyn.pred[:, 0].tolist() == [1, 0]
    assert dyn.correct[:, 0].tolist() == [False, True]
    assert (dyn.num_epochs, dyn.num_samples, dyn.num_classes, len(dyn)) == (2, 1, 2, 1)
    assert dyn.ids.tolist() == [0]


def test_from_logits_three_classes_margin_uses_best_other_class():
    # gold = 1; margin = 2 - max(5, -1) = -3, not 2 - mean or 2 - second-best-overall.
    logits = np.array([[[5.0, 2.0, -1.0]]])
    dyn = TrainingDynamics.from_logits(logits, labels=[1])
    np.testing.assert_allclose(dyn.margin, [[-3.0]], atol=1e-6)
    p = _softmax(logits[0, 0])
    np.testing.assert_allclose(dyn.gold_prob, [[p[1]]], rtol=1e-6)
    np.testing.assert_allclose(dyn.sq_error, [[np.sum((p - np.eye(3)[1]) ** 2)]], rtol=1e-6)
    assert dyn.pred.tolist() == [[0]]


def test_argmax_tie_takes_first_maximum():
    logits = np.array([[[1.0, 1.0, 0.0], [0.0, 2.0, 2.0]]])
    dyn = TrainingDynamics.from_logits(logits, labels=[1, 2])
    assert dyn.pred.tolist() == [[0, 1]]
    assert dyn.correct.tolist() == [[False, False]]
    # a tie between the gold class and another has margin 0
    np.testing.assert_allclose(dyn.margin, [[0.0, 0.0]], atol=1e-7)


def test_torch_and_numpy_inputs_agree_and_grad_is_detached():
    logits, labels = _random_case(0)
    t = torch.tensor(logits, dtype=torch.float32, requires_grad=True)
    a = TrainingDynamics.from_logits(t, torch.tensor(labels))
    b = TrainingDynamics.from_logits(logits.astype(np.float32), labels.tolist())
    _assert_same_dynamics(a, b)
    assert t.grad is None


def test_numpy_views_with_negative_strides():
    logits, labels = _random_case(7)
    flipped = np.flip(logits, axis=0)  # a view, as numpy hands out for x[::-1]
    want = TrainingDynamics.from_logits(flipped.copy(), labels)
    _assert_same_dynamics(TrainingDynamics.from_logits(flipped, labels), want)
    probs = np.flip(_softmax(logits), axis=2)
    want = TrainingDynamics.from_probabilities(probs.copy(), labels)
    _assert_same_dynamics(TrainingDynamics.from_probabilities(probs, labels), want)


def test_store_probs_holds_softmax():
    logits, labels = _random_case(1)
    dyn = TrainingDynamics.from_logits(logits, labels, store_probs=True)
    assert dyn.probs is not None and dyn.probs.dtype == np.float32
    np.testing.assert_allclose(dyn.probs, _softmax(logits), atol=1e-6)
    assert TrainingDynamics.from_logits(logits, labels).probs is None


@pytest.mark.parametrize(("classes", "dtype", "bytes_per"), [(3, np.int8, 13), (200, np.int16, 14)])
def test_pred_dtype_and_nbytes(classes, dtype, bytes_per):
    logits, labels = _random_case(2, epochs=3, samples=5, classes=classes)
    dyn = TrainingDynamics.from_logits(logits, labels)
    assert dyn.pred.dtype == dtype
    for name in ("gold_prob", "margin", "sq_error"):
        assert getattr(dyn, name).dtype == np.float32
    assert dyn.nbytes == bytes_per * 3 * 5 + 8 * 5  # per sample-epoch, plus int64 labels
    np.testing.assert_array_equal(dyn.pred, _softmax(logits).argmax(axis=2))


def test_repr_mentions_shape_and_class_names():
    dyn = TrainingDynamics.from_logits(np.zeros((3, 2, 2)), [0, 1], class_names=["neg", "pos"])
    assert repr(dyn) == (
        "TrainingDynamics(num_samples=2, num_epochs=3, num_classes=2, class_names=['neg', 'pos'])"
    )


# ------------------------------------------------------------------------ from_probabilities


@pytest.mark.parametrize("seed", range(4))
def test_from_probabilities_agrees_with_from_logits(seed):
    logits, labels = _random_case(seed, classes=2 + seed)
    a = TrainingDynamics.from_logits(logits, labels)
    b = TrainingDynamics.from_probabilities(_softmax(logits), labels)
    np.testing.assert_allclose(b.gold_prob, a.gold_prob, atol=1e-5)
    np.testing.assert_allclose(b.margin, a.margin, atol=1e-5)
    np.testing.assert_allclose(b.sq_error, a.sq_error, atol=1e-5)
    np.testing.assert_array_equal(b.pred, a.pred)


def test_from_probabilities_renormalises_rows():
    p = np.array([[[2.0, 6.0]], [[1.0, 1.0]], [[9.0, 3.0]]])
    dyn = TrainingDynamics.from_probabilities(p, labels=[0])
    np.testing.assert_allclose(dyn.gold_prob[:, 0], [0.25, 0.5, 0.75], atol=1e-6)
    np.testing.assert_allclose(dyn.sq_error[:, 0], [1.125, 0.5, 0.125], atol=1e-6)
    np.testing.assert_allclose(dyn.margin[:, 0], [-math.log(3), 0.0, math.log(3)], atol=1e-6)
    scaled = TrainingDynamics.from_probabilities(p * 7.5, labels=[0])
    np.testing.assert_allclose(scaled.gold_prob, dyn.gold_prob, atol=1e-7)


def test_from_probabilities_zero_probability_stays_finite():
    dyn = TrainingDynamics.from_probabilities(np.array([[[1.0, 0.0]]]), labels=[1])
    # p is clipped at the smallest float32 normal before the log, so gold_prob is ~1e-38
    assert 0.0 <= dyn.gold_prob[0, 0] <= np.finfo(np.float32).tiny
    assert np.isfinite(dyn.margin[0, 0]) and dyn.margin[0, 0] < -80
    assert dyn.pred[0, 0] == 0


def test_from_probabilities_decides_near_ties_on_the_probabilities():
    # Before: correctness came from argmax(log p) in float32, where torch's log maps 0.34000003
    # and 0.34 to one number, so label 1 lost the tie to class 0 and counted as wrong.
    p = np.array([[[0.34, 0.34000003, 0.31999997]]], dtype=np.float32)
    dyn = TrainingDynamics.from_probabilities(p, labels=[1])
    assert dyn.pred.tolist() == [[1]] and dyn.correct.tolist() == [[True]]
    assert dyn.margin[0, 0] >= 0  # the gold class is (within float32) the best one
    # float64 probabilities that only float64 tells apart: compared as given
    p64 = np.array([[[0.34, 0.3400000000001, 0.3199999999999]]])
    assert TrainingDynamics.from_probabilities(p64, labels=[1]).correct.tolist() == [[True]]
    # an exact tie still goes to the first class, as argmax does
    tie = np.array([[[0.4, 0.4, 0.2]]])
    assert TrainingDynamics.from_probabilities(tie, labels=[1]).pred.tolist() == [[0]]


def test_bfloat16_tensors_are_read_in_float32():
    logits, labels = _random_case(3)
    t = torch.tensor(logits, dtype=torch.bfloat16)
    want = TrainingDynamics.from_logits(t.float().numpy(), labels)
    _assert_same_dynamics(TrainingDynamics.from_logits(t, labels), want)


def test_the_constructors_run_without_torch():
    # cartokit metrics reads a file and builds a record with these: torch costs ~1 s to import
    code = (
        "import sys, numpy as np\n"
        "from cartokit.dynamics import TrainingDynamics\n"
        "p = np.random.default_rng(0).dirichlet(np.ones(3), size=(4, 5))\n"
        "TrainingDynamics.from_probabilities(p, [0, 1, 2, 0, 1], store_probs=True)\n"
        "TrainingDynamics.from_logits(np.log(p), [0, 1, 2, 0, 1])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


# ------------------------------------------------------------------------ errors

BAD_ARRAYS = [
    (
        "from_logits",
        np.zeros((3, 2)),
        [0, 1],
        r"from_logits: expected an array of shape \(epochs, samples, classes\) with at least "
        r"2 classes\. Got shape \(3, 2\); for a single epoch use x\[None\]\.",
    ),
    (
        "from_logits",
        np.zeros((3, 2, 1)),
        [0, 0],
        r"from_logits: expected .* at least 2 classes\. Got shape \(3, 2, 1\)",
    ),
    (
        "from_probabilities",
        np.zeros((2, 2, 2, 2)),
        [0, 0],
        r"from_probabilities: expected .*Got shape \(2, 2, 2, 2\)",
    ),
    (
        "from_logits",
        np.array([[[0.0, 1.0], [0.0, 1.0]], [[0.0, 1.0], [np.nan, 1.0]]]),
        [0, 1],
        r"from_logits: logits must be finite; epoch 1, sample 1 holds NaN or inf "
        r"\(1 rows in all\)\. Check the model for divergence\.",
    ),
    (
        "from_logits",
        np.array([[[np.inf, 0.0]], [[0.0, -np.inf]]]),
        [0],
        r"logits must be finite; epoch 0, sample 0 holds NaN or inf \(2 rows in all\)",
    ),
    (
        "from_probabilities",
        np.array([[[0.5, np.nan]]]),
        [0],
        r"from_probabilities: probs must be finite; epoch 0, sample 0",
    ),
    (
        "from_probabilities",
        np.array([[[1.2, -0.2]]]),
        [0],
        r"from_probabilities: probabilities must be >= 0\. Got a minimum of -0\.2.*"
        r"pass logits to from_logits instead",
    ),
    (
        "from_probabilities",
        np.array([[[0.5, 0.5]], [[0.0, 0.0]]]),
        [0],
        r"from_probabilities: every probability row must have a positive sum",
    ),
    (
        "from_logits",
        np.zeros((3, 2, 2)),
        [0, 2],
        r"from_logits: labels must be in \[0, 2\) for 2 classes\. 1 are not, at positions "
        r"\[1\] with values \[2\]\. Check num_classes or remap the labels\.",
    ),
    (
        "from_logits",
        np.zeros((3, 2, 2)),
        [-1, 0],
        r"labels must be in \[0, 2\) .* at positions \[0\] with values \[-1\]",
    ),
    (
        "from_logits",
        np.zeros((3, 2, 2)),
        [0, 1, 1],
        r"from_logits: got 3 labels for 2 samples",
    ),
    (
        "from_logits",
        np.zeros((3, 2, 2)),
        [[0, 1]],
        r"from_logits: labels must be 1-D, one per sample\. Got shape \(1, 2\)",
    ),
]


@pytest.mark.parametrize(("method", "scores", "labels", "match"), BAD_ARRAYS)
def test_constructor_errors(method, scores, labels, match):
    with pytest.raises(ValueError, match=match):
        getattr(TrainingDynamics, method)(scores, labels)


@pytest.mark.parametrize("method", ["from_logits", "from_probabilities"])
def test_non_numeric_scores_are_a_type_error(method):
    kind = "logits" if method == "from_logits" else "probs"
    with pytest.raises(
        TypeError, match=rf"{method}: {kind} must be numeric\. Got an array of dtype <U3"
    ):
        getattr(TrainingDynamics, method)(np.full((3, 2, 2), "0.5"), [0, 1])


def test_non_integer_labels_are_a_type_error():
    with pytest.raises(
        TypeError, match=r"labels must be integer class indices\. Got dtype float64"
    ):
        TrainingDynamics.from_logits(np.zeros((3, 2, 2)), [0.5, 1.0])
    # whole-number floats are accepted as indices
    dyn = TrainingDynamics.from_logits(np.zeros((3, 2, 2)), [0.0, 1.0])
    assert dyn.labels.dtype == np.int64 and dyn.labels.tolist() == [0, 1]


@pytest.mark.parametrize(
    ("ids", "error", "match"),
    [
        (
            ["a", "b", "a"],
            ValueError,
            r"TrainingDynamics: ids must be unique\. 1 ids occur more than once, "
            r"for example \['a'\]\.",
        ),
        ([7, 7, 7], ValueError, r"ids must be unique\. 1 ids occur more than once.*\[7\]"),
        (
            [0, 1],
            ValueError,
            r"TrainingDynamics: ids must be a 1-D sequence of 3 sample ids, one per sample\. "
            r"Got shape \(2,\)\.",
        ),
        (
            [0.5, 1.5, 2.5],
            TypeError,
            r"TrainingDynamics: ids must be integers or strings\. Got dtype",
        ),
    ],
)
def test_bad_ids(ids, error, match):
    with pytest.raises(error, match=match):
        TrainingDynamics.from_logits(np.zeros((3, 3, 2)), [0, 1, 0], ids=ids)


def test_wrong_number_of_class_names():
    with pytest.raises(
        ValueError, match=r"TrainingDynamics: got 3 class names for 2 classes: \['a', 'b', 'c'\]"
    ):
        TrainingDynamics.from_logits(np.zeros((3, 1, 2)), [0], class_names=["a", "b", "c"])


def _stats(epochs=3, samples=2):
    shape = (epochs, samples)
    return {
        "gold_prob": np.full(shape, 0.5),
        "margin": np.zeros(shape),
        "sq_error": np.full(shape, 0.5),
        "pred": np.zeros(shape, dtype=np.int64),
    }


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            {"gold_prob": np.zeros(3)},
            r"TrainingDynamics: per-checkpoint arrays must have shape \(epochs, samples\)\. "
            r"Got gold_prob of shape \(3,\)\.",
        ),
        (
            {"margin": np.zeros((3, 3))},
            r"TrainingDynamics: margin must have the same shape as gold_prob \(3, 2\)\. "
            r"Got \(3, 3\)\.",
        ),
        ({"pred": np.zeros((2, 2))}, r"pred must have the same shape as gold_prob \(3, 2\)"),
        ({"num_classes": 1}, r"TrainingDynamics: num_classes must be >= 2\. Got 1\."),
        ({"labels": [0]}, r"TrainingDynamics: got 1 labels for 2 samples\."),
        (
            {"probs": np.zeros((3, 2, 3))},
            r"TrainingDynamics: probs must have shape \(3, 2, 2\)\. Got \(3, 2, 3\)\.",
        ),
    ],
)
def test_init_errors(change, match):
    kwargs = {"ids": None, "labels": [0, 1], "num_classes": 2, **_stats(), **change}
    with pytest.raises(ValueError, match=match):
        TrainingDynamics(**kwargs)


# ------------------------------------------------------------------------ select_epochs


def test_select_epochs_list_and_slice():
    logits, labels = _random_case(3, epochs=5)
    dyn = TrainingDynamics.from_logits(
        logits, labels, ids=[f"s{i}" for i in range(7)], class_names="abc", store_probs=True
    )
    by_list = dyn.select_epochs([4, 0])
    assert by_list.num_epochs == 2
    for name in (*STAT_NAMES, "probs"):
        np.testing.assert_array_equal(getattr(by_list, name), getattr(dyn, name)[[4, 0]])
    assert by_list.ids.tolist() == dyn.ids.tolist()
    assert by_list.class_names == ["a", "b", "c"]
    np.testing.assert_array_equal(by_list.labels, dyn.labels)

    by_slice = dyn.select_epochs(slice(1, None))
    _assert_same_dynamics(
        by_slice,
        TrainingDynamics.from_logits(
            logits[1:], labels, ids=dyn.ids, class_names="abc", store_probs=True
        ),
    )


def test_select_epochs_returns_a_copy():
    # The docstring promises a copy: editing the selection must not edit the original.
    dyn = TrainingDynamics.from_logits(np.zeros((4, 2, 2)), [0, 1])
    for sel in (dyn.select_epochs(slice(1, None)), dyn.select_epochs([1, 2])):
        sel.gold_prob[:] = np.nan
        sel.pred[:] = -1
        sel.labels[:] = 1
    assert not np.isnan(dyn.gold_prob).any()
    assert (dyn.pred == 0).all()
    assert dyn.labels.tolist() == [0, 1]


# ------------------------------------------------------------------------ save / load


def test_save_load_round_trip_int_ids(tmp_path):
    logits, labels = _random_case(4)
    dyn = TrainingDynamics.from_logits(logits, labels, ids=np.arange(100, 107))
    path = dyn.save(tmp_path / "nested" / "dir" / "dyn.npz")
    assert path == tmp_path / "nested" / "dir" / "dyn.npz" and path.is_file()
    back = TrainingDynamics.load(path)
    _assert_same_dynamics(back, dyn)
    assert back.ids.dtype == np.int64


def test_save_load_round_trip_unicode_ids_probs_and_missing(tmp_path):
    ids = ["é", "日本", "a,b", "", "line\nbreak", "nul\x00byte", "😀"]
    logits, labels = _random_case(5, samples=len(ids))
    dyn = TrainingDynamics.from_logits(
        logits, labels, ids=ids, class_names=["α", "β", "γ"], store_probs=True
    )
    # A sample not seen at a checkpoint, as the recorder writes it: NaN everywhere, pred -1.
    dyn.gold_prob[1, 2] = dyn.margin[1, 2] = dyn.sq_error[1, 2] = np.nan
    dyn.probs[1, 2] = np.nan
    dyn.pred[1, 2] = -1
    back = TrainingDynamics.load(dyn.save(str(tmp_path / "d.npz")))
    _assert_same_dynamics(back, dyn)
    assert back.ids.dtype == object and back.ids.tolist() == ids
    assert back.class_names == ["α", "β", "γ"]


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "dyn.npz"
    TrainingDynamics.from_logits(np.zeros((3, 2, 2)), [0, 1]).save(path)
    before = path.read_bytes()
    real_savez = np.savez

    def failing_savez(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", failing_savez)
    other = TrainingDynamics.from_logits(np.ones((5, 3, 2)), [1, 1, 0])
    with pytest.raises(OSError, match="disk full"):
        other.save(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["dyn.npz"]

    monkeypatch.setattr(np, "savez", real_savez)
    other.save(path)
    assert TrainingDynamics.load(path).num_epochs == 5
    assert sorted(os.listdir(tmp_path)) == ["dyn.npz"]


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9, -1])
def test_load_truncated_file(tmp_path, keep):
    path = tmp_path / "dyn.npz"
    TrainingDynamics.from_logits(*_random_case(6)).save(path)
    data = path.read_bytes()
    cut = len(data) - 1 if keep == -1 else int(len(data) * keep)
    path.write_bytes(data[:cut])
    with pytest.raises(ValueError, match=re.escape(str(path))):
        TrainingDynamics.load(path)


def test_load_random_bytes(tmp_path):
    path = tmp_path / "noise.npz"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ValueError, match=re.escape(str(path)) + r" is not a"):
        TrainingDynamics.load(path)


def test_load_npy_file_is_a_value_error(tmp_path):
    # A plain .npy array (e.g. a hand-saved gold_prob) is not a dynamics file either.
    path = tmp_path / "gold.npy"
    np.save(path, np.zeros((3, 4)))
    with pytest.raises(ValueError, match=re.escape(str(path)) + r" is not a"):
        TrainingDynamics.load(path)


def test_load_text_file(tmp_path):
    path = tmp_path / "dyn.csv"
    path.write_text("id,confidence\n0,0.5\n")
    with pytest.raises(ValueError, match=re.escape(str(path))):
        TrainingDynamics.load(path)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No dynamics file at .*absent\.npz"):
        TrainingDynamics.load(tmp_path / "absent.npz")


def _rewrite(path: Path, meta_change: dict | None = None, drop: tuple[str, ...] = ()) -> None:
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files if k not in drop}
    if meta_change is not None:
        meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
        meta.update(meta_change)
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def test_load_newer_format_version(tmp_path):
    path = TrainingDynamics.from_logits(np.zeros((3, 2, 2)), [0, 1]).save(tmp_path / "d.npz")
    _rewrite(path, {"version": FORMAT_VERSION + 1})
    with pytest.raises(
        ValueError,
        match=re.escape(str(path)) + rf".*format version {FORMAT_VERSION + 1}.*upgrade cartokit",
    ):
        TrainingDynamics.load(path)


def test_load_other_format_and_missing_meta(tmp_path):
    path = TrainingDynamics.from_logits(np.zeros((3, 2, 2)), [0, 1]).save(tmp_path / "d.npz")
    _rewrite(path, {"format": "something-else"})
    with pytest.raises(ValueError, match=r"is not a cartokit dynamics file: its format is "):
        TrainingDynamics.load(path)
    _rewrite(path, drop=("meta",))
    with pytest.raises(ValueError, match=r"is not a cartokit dynamics file: it has no 'meta'"):
        TrainingDynamics.load(path)


def test_load_inconsistent_arrays(tmp_path):
    path = TrainingDynamics.from_logits(np.zeros((3, 2, 2)), [0, 1]).save(tmp_path / "d.npz")
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["pred"] = arrays["pred"][:2]
    with zipfile.ZipFile(path, "w") as zf:
        for name, arr in arrays.items():
            with zf.open(f"{name}.npy", "w") as fh:
                np.lib.format.write_array(fh, arr)
    with pytest.raises(ValueError, match=re.escape(str(path)) + " holds inconsistent dynamics"):
        TrainingDynamics.load(path)


def test_saved_meta_names_the_format(tmp_path):
    path = TrainingDynamics.from_logits(np.zeros((3, 2, 2)), [0, 1]).save(tmp_path / "d.npz")
    with np.load(path) as npz:
        meta = json.loads(npz["meta"].tobytes().decode("utf-8"))
        assert "ids" in npz.files and npz["ids"].dtype == np.int64
    assert meta["format"] == FORMAT_NAME and meta["version"] == FORMAT_VERSION
    assert meta["id_kind"] == "int" and meta["num_classes"] == 2


def test_saved_file_gets_ordinary_permissions(tmp_path):
    # Written through a private temp file, the result must still be readable like any file.
    old = os.umask(0o022)
    try:
        path = TrainingDynamics.from_logits(np.zeros((3, 2, 2)), [0, 1]).save(tmp_path / "d.npz")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_extras_are_checked_kept_sliced_saved_and_reported(tmp_path):
    from cartokit import compute_metrics

    logits = np.random.default_rng(0).normal(size=(3, 4, 2))
    base = TrainingDynamics.from_logits(logits, [0, 1, 1, 0])
    token_accuracy = np.array([[0.5, 1.0, 0.0, 0.25]] * 3, dtype=np.float32)
    arrays = {k: getattr(base, k) for k in ("gold_prob", "margin", "sq_error", "pred")}
    dyn = TrainingDynamics(
        ids=base.ids, labels=base.labels, num_classes=2, **arrays,
        extras={"token_accuracy": token_accuracy},
    )  # fmt: skip
    assert dyn.nbytes == base.nbytes + token_accuracy.nbytes
    back = TrainingDynamics.load(dyn.save(tmp_path / "d.npz"))
    np.testing.assert_array_equal(back.extras["token_accuracy"], token_accuracy)
    assert dyn.select_epochs([0, 2]).extras["token_accuracy"].shape == (2, 4)
    metrics = compute_metrics(dyn)
    np.testing.assert_allclose(metrics["token_accuracy"], [0.5, 1.0, 0.0, 0.25])
    with pytest.raises(ValueError, match=r"extra 'token_accuracy' must have the shape"):
        TrainingDynamics(ids=None, labels=base.labels, num_classes=2, **arrays,
                         extras={"token_accuracy": token_accuracy[:2]})  # fmt: skip
    with pytest.raises(ValueError, match=r"named like a column"):
        TrainingDynamics(ids=None, labels=base.labels, num_classes=2, **arrays,
                         extras={"Token Acc": token_accuracy})  # fmt: skip
    with pytest.raises(ValueError, match=r"would shadow the core array 'margin'"):
        TrainingDynamics(ids=None, labels=base.labels, num_classes=2, **arrays,
                         extras={"margin": token_accuracy})  # fmt: skip
    holes = token_accuracy.copy()
    holes[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"NaN exactly where the sample was not seen"):
        TrainingDynamics(ids=None, labels=base.labels, num_classes=2, **arrays,
                         extras={"token_accuracy": holes})  # fmt: skip
    clash = TrainingDynamics(ids=None, labels=base.labels, num_classes=2, **arrays,
                             extras={"confidence": token_accuracy})  # fmt: skip
    with pytest.raises(ValueError, match=r"extra statistic 'confidence' has the name of a metric"):
        compute_metrics(clash)
