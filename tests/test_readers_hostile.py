"""Hostile inputs to every file cartokit reads: one line naming the file, a warning, or a value
refused; never a traceback, never a silently wrong value, never a change to a file not cartokit's.

Covers the readers of issue 9: dynamics ``.npz`` files, format detection, the TrustAI and allenai
readers, training checkpoints and review logs.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import re
import signal
import stat
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import cartokit.io as cio
from cartokit.cli import main
from cartokit.data import from_arrays
from cartokit.dynamics import TrainingDynamics
from cartokit.io import detect_format, read_allenai, read_dynamics, write_allenai
from cartokit.models import MLP
from cartokit.review import LOG_COLUMNS, ReviewSession, read_decisions
from cartokit.train import fit

HEADER = ",".join(LOG_COLUMNS)


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message, message
    return message


# ================================================================ 1. malformed .npz


def _saved(tmp_path: Path, *, str_ids: bool = True) -> Path:
    rng = np.random.default_rng(0)
    ids = ["a", "b", "c", "d"] if str_ids else None
    dyn = TrainingDynamics.from_logits(rng.normal(size=(3, 4, 3)), [0, 1, 2, 0], ids=ids)
    return dyn.save(tmp_path / "dyn.npz")


def _entries(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as npz:
        return {k: npz[k] for k in npz.files}


def _write_entries(path: Path, entries: dict[str, np.ndarray | bytes]) -> None:
    """Write a .npz by hand; bytes values are stored as the raw member content."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, value in entries.items():
            if isinstance(value, bytes):
                zf.writestr(f"{name}.npy", value)
            else:
                buf = io.BytesIO()
                np.lib.format.write_array(buf, value, allow_pickle=True)
                zf.writestr(f"{name}.npy", buf.getvalue())


def _meta(**change) -> np.ndarray:
    meta = {"format": "cartokit-dynamics", "version": 1, "num_classes": 3}
    meta.update(change)
    meta = {k: v for k, v in meta.items() if v is not _DROP}
    return np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)


_DROP = object()


def _header_only(shape: tuple[int, ...], descr: str) -> bytes:
    buf = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            {"meta": np.frombuffer(b"[1, 2]", dtype=np.uint8)},
            r"is not a cartokit dynamics file: its metadata is a JSON array, not an object\.",
        ),
        (
            {"meta": _meta(num_classes=_DROP)},
            r"is not a cartokit dynamics file: its metadata has no 'num_classes'\.",
        ),
        (
            {"meta": _meta(num_classes="three")},
            r"its num_classes is 'three', not an int >= 2\.",
        ),
        ({"meta": _meta(class_names=5)}, r"its class_names is 5, not a list of strings or null"),
        ({"meta": _meta(version="x")}, r"its format version is 'x', not an int >= 1"),
        ({"id_offsets": None, "id_bytes": None}, r"it has no 'ids' entry\."),
        ({"gold_prob": None}, r"it has no 'gold_prob' entry\."),
        ({"labels": None, "pred": None}, r"it has no 'labels', 'pred' entries\."),
        (
            {"gold_prob": _header_only((10**12,), "<f4")},
            r"is not a readable cartokit dynamics file \(truncated or corrupt: the 'gold_prob' "
            r"entry declares shape \(1000000000000,\) of float32 \(4,000,000,000,000 bytes\) "
            r"but stores 0 bytes\)\.",
        ),
        (
            {"meta": _header_only((10**12,), "|u1")},
            r"the 'meta' entry declares shape \(1000000000000,\)",
        ),
        (
            {"labels": np.array([0, 1, 2, 0], dtype=object)},
            r"its 'labels' entry holds Python objects, which cartokit files never do",
        ),
        ({"gold_prob": np.array([["x"] * 4] * 3)}, r"its 'gold_prob' entry has dtype <U1"),
        (
            {"id_offsets": np.array([0, 100, 5, 2, 1])},
            r"its id_offsets do not cut its 4 id bytes into ids",
        ),
        (
            {"id_bytes": np.frombuffer(b"\xff\xfe\xfd\xfc", dtype=np.uint8)},
            r"the id of sample 0 is not UTF-8 text",
        ),
    ],
)
def test_malformed_npz_is_one_line_naming_the_file(tmp_path, change, match):
    path = _saved(tmp_path)
    entries = _entries(path)
    for key, value in change.items():
        if value is None:
            entries.pop(key)
        else:
            entries[key] = value
    _write_entries(path, entries)
    with pytest.raises(ValueError, match=re.escape(str(path)) + r" .*" + match) as err:
        TrainingDynamics.load(path)
    _one_line(err)


def test_npz_entries_cartokit_does_not_know_are_ignored(tmp_path):
    path = _saved(tmp_path, str_ids=False)
    entries = _entries(path)
    _write_entries(path, {**entries, "notes": np.zeros(3)})
    assert TrainingDynamics.load(path).ids.tolist() == [0, 1, 2, 3]


def test_a_device_is_not_a_dynamics_file():
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero on this system")
    with pytest.raises(ValueError, match=r"/dev/zero is not a cartokit dynamics file: it is not a"):
        TrainingDynamics.load("/dev/zero")


# ================================================================ 2. values out of range


def _stats(epochs: int = 2, samples: int = 3) -> dict:
    shape = (epochs, samples)
    return {
        "ids": ["a", "b", "c"],
        "labels": [0, 1, 2],
        "num_classes": 3,
        "gold_prob": np.full(shape, 0.5),
        "margin": np.zeros(shape),
        "sq_error": np.full(shape, 0.5),
        "pred": np.zeros(shape, dtype=np.int64),
    }


def _unseen(kw: dict, e: int, i: int) -> dict:
    for key in ("gold_prob", "margin", "sq_error"):
        kw[key][e, i] = np.nan
    kw["pred"][e, i] = -1
    return kw


def _set(key, e, i, value):
    def change(kw):
        kw[key] = np.array(kw[key], dtype=np.float64 if key != "pred" else np.int64)
        kw[key][e, i] = value
        return kw

    return change


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            _set("gold_prob", 0, 1, 7.5),
            r"gold_prob must be in \[0, 1\] \(NaN for a sample not seen\)\. 1 values are not, "
            r"e\.g\. 7\.5 at epoch 0, sample 'b'\.",
        ),
        (_set("gold_prob", 1, 2, -0.25), r"gold_prob must be in \[0, 1\].* -0\.25 at epoch 1"),
        (_set("gold_prob", 0, 0, np.inf), r"gold_prob must be in \[0, 1\].* inf at epoch 0"),
        (
            _set("sq_error", 1, 0, 2.5),
            r"sq_error must be in \[0, 2\].* 2\.5 at epoch 1, sample 'a'",
        ),
        (_set("sq_error", 1, 0, -1.0), r"sq_error must be in \[0, 2\]"),
        (_set("margin", 0, 2, -np.inf), r"margin must be finite .* -inf at epoch 0, sample 'c'"),
        (
            _set("pred", 1, 1, 99),
            r"pred must be a class index in \[0, 3\), or -1 for a sample not seen\. 1 values are "
            r"not, e\.g\. 99 at epoch 1, sample 'b'\.",
        ),
        # 300 would wrap to 44 in the int8 pred array; checked before the cast.
        (_set("pred", 0, 0, 300), r"pred must be a class index in \[0, 3\).* 300 at epoch 0"),
        (_set("pred", 0, 0, -2), r"pred must be a class index .* -2 at epoch 0"),
        (
            lambda kw: {**_unseen(kw, 0, 1), "margin": np.zeros((2, 3))},
            r"a sample not seen at a checkpoint must be NaN in gold_prob, margin, sq_error and "
            r"probs and -1 in pred, all together; at epoch 0, sample 'b', gold_prob is nan but "
            r"margin is 0\.0 \(1 such sample-checkpoints\)\.",
        ),
        (
            lambda kw: {**kw, "pred": np.where(np.eye(2, 3) > 0, -1, 0)},
            r"a sample not seen .* at epoch 0, sample 'a', gold_prob is 0\.5 but pred is -1",
        ),
        (
            lambda kw: {**_unseen(kw, 1, 2), "pred": np.zeros((2, 3), dtype=np.int64)},
            r"a sample not seen .* at epoch 1, sample 'c', gold_prob is nan but pred is 0",
        ),
        (
            lambda kw: {**kw, "probs": np.full((2, 3, 3), 1.5)},
            r"probs must be in \[0, 1\] \(NaN for a sample not seen\)\. 18 values are not",
        ),
        (
            lambda kw: {**_unseen(kw, 0, 0), "probs": np.full((2, 3, 3), 1 / 3)},
            r"a sample not seen .* gold_prob is nan but probs is 0\.333",
        ),
        (
            lambda kw: {
                **kw,
                "probs": np.where(np.arange(3) == 0, np.nan, 1 / 3) + np.zeros((2, 3, 1)),
            },
            r"probs rows must be all NaN \(a sample not seen\) or hold no NaN\. 6 rows mix",
        ),
        (lambda kw: {**kw, "pred": np.full((2, 3), 0.5)}, r"pred must hold integer class indices"),
        (
            lambda kw: {**kw, "num_classes": "3"},
            r"num_classes must be an int\. Got '3' of type str",
        ),
    ],
)
def test_values_no_model_gives_are_refused_by_every_constructor(change, match):
    with pytest.raises((ValueError, TypeError), match=r"^TrainingDynamics: " + match) as err:
        TrainingDynamics(**change(_stats()))
    _one_line(err)


def test_not_seen_samples_are_accepted_when_marked_in_every_array():
    kw = _unseen(_stats(), 1, 2)
    kw["probs"] = np.full((2, 3, 3), 1 / 3)
    kw["probs"][1, 2] = np.nan
    dyn = TrainingDynamics(**kw)
    assert dyn.pred[1, 2] == -1 and np.isnan(dyn.probs[1, 2]).all()
    # Exactly 2 (p = onehot of another class) and exactly 0 and 1 are legal.
    kw = _stats()
    kw["sq_error"][0, 0], kw["gold_prob"][0, 0], kw["gold_prob"][0, 1] = 2.0, 0.0, 1.0
    TrainingDynamics(**kw)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("gold_prob", 7.5, r"gold_prob must be in \[0, 1\]"),
        ("pred", 99, r"pred must be a class index in \[0, 3\)"),
    ],
)
def test_a_loaded_file_with_impossible_values_is_refused(tmp_path, capsys, key, value, match):
    # Before: gold probability 7.5 loaded as confidence 7.5, every sample "easy"; pred 99 of 3
    # classes was accepted.
    path = _saved(tmp_path)
    entries = _entries(path)
    entries[key] = np.full_like(entries[key], value)
    _write_entries(path, entries)
    prefix = re.escape(str(path)) + r" holds inconsistent dynamics: "
    with pytest.raises(ValueError, match=prefix + match):
        TrainingDynamics.load(path)
    assert main(["metrics", str(path), "-o", str(tmp_path / "m.csv")]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and re.search(prefix + match, err), err
    assert not (tmp_path / "m.csv").exists()


# ================================================================ 3. bounded format detection


@contextmanager
def _counting_open(monkeypatch):
    """Count the bytes cartokit.io reads; a reader that iterates lines fails loudly."""
    read = {"bytes": 0}

    class Counting:
        def __init__(self, fh):
            self._fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self._fh.close()

        def read(self, n=-1):
            data = self._fh.read(n)
            read["bytes"] += len(data)
            return data

    def counting_open(file, mode="r", *args, **kwargs):
        return Counting(builtins.open(file, mode, *args, **kwargs))

    monkeypatch.setattr(cio, "open", counting_open, raising=False)
    yield read


def test_detection_reads_a_bounded_prefix_of_a_huge_single_line_file(tmp_path, monkeypatch):
    # Before: a 4.7 MB one-line JSON array took 4 s and 1.1 GB to say "cannot tell the format".
    path = tmp_path / "big.json"
    with open(path, "w") as fh:
        json.dump(list(range(2_000_000)), fh)  # ~16 MB, one line
    with _counting_open(monkeypatch) as read:
        with pytest.raises(
            ValueError, match=r"detect_format: cannot tell the format of .*big\.json"
        ):
            detect_format(path)
    assert 0 < read["bytes"] <= cio._SNIFF_BYTES + 4


def test_a_trustai_first_line_longer_than_the_sniff_is_still_detected(tmp_path):
    # 20,000 classes: about 460 KB per line, far beyond what detection reads.
    probs = np.random.default_rng(0).dirichlet(np.ones(20_000))
    path = tmp_path / "signal.jsonl"
    with open(path, "w") as fh:
        for _step in range(2):
            for i in range(3):
                row = {"id": i, "label": i, "pred_label": 0, "correct": "false", "loss": 0.1}
                fh.write(str({**row, "probs": probs.tolist(), "label_probs": 0.1}) + "\n")
    assert path.stat().st_size / 6 > 4 * cio._SNIFF_BYTES
    assert detect_format(path) == "trustai"
    assert read_dynamics(path).num_classes == 20_000


def test_a_json_list_line_is_not_parsed_as_a_python_literal(tmp_path, monkeypatch):
    # ast.literal_eval of a 5 MB list costs ~1 GB; valid JSON that is not an object is no dict.
    path = tmp_path / "list.json"
    path.write_text(json.dumps(list(range(1000))) + "\n")
    calls = []
    monkeypatch.setattr(cio.trustai.ast, "literal_eval", lambda text: calls.append(text))
    with pytest.raises(ValueError, match=r"list\.json, line 1: neither JSON nor a Python dict"):
        read_dynamics(path, format="trustai")
    assert calls == []


@pytest.mark.parametrize("fmt", ["auto", "trustai", "cartokit", "allenai"])
def test_dev_zero_is_refused_at_once(fmt):
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero on this system")
    with pytest.raises(ValueError, match=r"/dev/zero") as err:
        read_dynamics("/dev/zero", format=fmt)
    assert re.search(r"not a regular file|expects a folder", _one_line(err))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX named pipes")
@pytest.mark.parametrize("fmt", ["auto", "trustai"])
def test_a_named_pipe_is_refused_without_opening_it(tmp_path, fmt):
    # Opening a FIFO with no writer blocks for ever: the alarm turns a regression into a failure.
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    assert stat.S_ISFIFO(fifo.stat().st_mode)

    def hung(*_):
        raise TimeoutError("opened the FIFO")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(10)
    try:
        with pytest.raises(ValueError, match=r"pipe\.jsonl is not a regular file or folder"):
            read_dynamics(fifo, format=fmt)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ================================================================ 4. binary input


def test_trustai_binary_line_names_the_file_and_line(tmp_path, capsys):
    path = tmp_path / "signal.jsonl"
    path.write_bytes(b"{'id': 0, 'label': 1, 'probs': [0.5, 0.5]}\n\x00\x01\xff\xfe garbage\n")
    match = re.escape(str(path)) + r", line 2: not UTF-8 text \(byte 0xff at column 3\)"
    with pytest.raises(ValueError, match=match) as err:
        read_dynamics(path, format="trustai")
    _one_line(err)
    assert main(["metrics", str(path), "--format", "trustai", "-o", str(tmp_path / "m.csv")]) == 1
    assert re.search(match, capsys.readouterr().err)


def test_trustai_random_bytes_are_one_line(tmp_path):
    path = tmp_path / "noise.jsonl"
    path.write_bytes(b"\x80" + np.random.default_rng(1).bytes(5000))
    with pytest.raises(ValueError, match=re.escape(str(path)) + r", line 1: ") as err:
        read_dynamics(path, format="trustai")
    _one_line(err)


@pytest.mark.parametrize("line", [1, 3])
def test_allenai_invalid_utf8_names_the_file_and_line(tmp_path, line):
    dyn = TrainingDynamics.from_logits(np.zeros((2, 4, 2)), [0, 1, 1, 0], ids=list("abcd"))
    folder = write_allenai(dyn, tmp_path, logits=np.zeros((2, 4, 2)))
    path = folder / "dynamics_epoch_1.jsonl"
    rows = path.read_bytes().split(b"\n")
    rows[line - 1] = rows[line - 1].replace(b'"guid": "', b'"guid": "\xff')
    path.write_bytes(b"\n".join(rows))
    with pytest.raises(ValueError, match=re.escape(str(path)) + rf", line {line}: not UTF-8 text"):
        read_allenai(tmp_path)


def test_read_decisions_on_a_binary_file(tmp_path):
    path = tmp_path / "log.csv"
    path.write_bytes(np.random.default_rng(2).bytes(3000))
    with pytest.raises(ValueError, match=re.escape(str(path)) + " is not a cartokit review log"):
        read_decisions(path)
    path.write_bytes(f"{HEADER}\nt,1,s,keep,0,\nt,\xff,s,keep,0,\n".encode("latin-1"))
    with pytest.raises(ValueError, match=re.escape(str(path)) + r", line 3: not UTF-8 text"):
        read_decisions(path)


@pytest.mark.parametrize(
    ("line", "want_id"),
    [
        # an escaped apostrophe: the quote swap would read it as a double quote
        (r"""{'id': 'it\'s', 'label': 0, 'probs': [0.5, 0.5]}""", "it's"),
        # a string id shaped like more keys: the quote swap would read id 'a' and label '1'
        ("""{'id': "a', 'label': '1", 'label': 0, 'probs': [0.5, 0.5]}""", "a', 'label': '1"),
    ],
)
def test_a_quote_inside_a_trustai_string_keeps_its_meaning(tmp_path, line, want_id):
    path = tmp_path / "signal.jsonl"
    path.write_text(f"{line}\n{line}\n{line}\n")
    dyn = read_dynamics(path, format="trustai")
    assert dyn.ids.tolist() == [want_id] and dyn.labels.tolist() == [0]


# ================================================================ 5. checkpoints


class NotACheckpoint:
    """A class torch.load(weights_only=True) refuses, as it would any code-running pickle."""

    def __init__(self) -> None:
        self.payload = "never unpickled"


def _resume(tmp_path: Path):
    split = from_arrays(np.random.default_rng(0).random((40, 8)), np.arange(40) % 2, name="t")
    model = MLP(8, 2, hidden=(4,), seed=0)
    return fit(model, split, epochs=5, batch_size=8, progress=False, checkpoint_dir=tmp_path,
               resume=True)  # fmt: skip


def test_a_checkpoint_holding_python_objects_is_not_loaded(tmp_path):
    torch.save({"version": 1, "model": NotACheckpoint()}, tmp_path / "checkpoint.pt")
    match = (
        r"fit\(resume=True\): .*checkpoint\.pt is not a cartokit checkpoint: it holds Python "
        r"objects that fit never saves, and loading them could run code"
    )
    with pytest.raises(ValueError, match=match) as err:
        _resume(tmp_path)
    assert "weights_only" not in _one_line(err)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", r"it is truncated or corrupt \(EOFError\)"),
        (b"hello, not a checkpoint", r"it is truncated or corrupt \("),
        ("cut", r"it is truncated or corrupt \(RuntimeError: PytorchStreamReader failed"),
        ("list", r"it holds a list, not a dict"),
        ("dict", r"its entries \['config', .*\] are missing or of the wrong type"),
    ],
)
def test_a_damaged_checkpoint_is_one_line(tmp_path, content, match):
    path = tmp_path / "checkpoint.pt"
    if content == "cut":
        torch.save({"version": 1, "model": {"w": torch.zeros(100)}}, path)
        path.write_bytes(path.read_bytes()[:200])
    elif content == "list":
        torch.save([1, 2], path)
    elif content == "dict":
        torch.save({"version": 1}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=r"checkpoint\.pt is not a cartokit checkpoint: " + match):
        _resume(tmp_path)


def test_a_checkpoint_from_a_newer_cartokit_asks_for_an_upgrade(tmp_path):
    # Checked before the entries: a newer format may hold other ones.
    torch.save({"version": 99, "weights": {}}, tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match=r"has version 99, newer than this cartokit understands"):
        _resume(tmp_path)


# ================================================================ 6. allenai without epoch 0


@pytest.mark.parametrize(("remove", "missing"), [((0,), "[0]"), ((0, 2), "[0, 2]")])
def test_allenai_without_epoch_0_warns_like_any_gap(tmp_path, remove, missing):
    dyn = TrainingDynamics.from_logits(np.zeros((4, 2, 2)), [0, 1])
    folder = write_allenai(dyn, tmp_path, logits=np.zeros((4, 2, 2)))
    for e in remove:
        (folder / f"dynamics_epoch_{e}.jsonl").unlink()
    with pytest.warns(UserWarning, match=rf"has no file for epoch\(s\) {re.escape(missing)}"):
        back = read_allenai(tmp_path)
    assert back.num_epochs == 4 - len(remove)


# ================================================================ 7. review logs


def _split(ids=None):
    ids = list(range(100, 106)) if ids is None else ids
    return from_arrays(np.eye(len(ids)), np.arange(len(ids)) % 3, ids=ids, name="toy/train")


@pytest.mark.parametrize(
    "content",
    [
        b"my notes\nsecond line without a newline",
        b"id,confidence\n1,0.5\n2,0.2",
        b"time,id,split,decision,label,new_label_and_more\nx",
        np.random.default_rng(3).bytes(2000),
    ],
)
def test_a_file_that_is_not_a_log_keeps_every_byte(tmp_path, content):
    # Before: the last line was cut before the header was checked.
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    split = _split()
    with pytest.raises(ValueError, match=re.escape(str(path)) + r" is not a cartokit review log:"):
        ReviewSession(list(split.ids), path, data=split)
    assert path.read_bytes() == content


@pytest.mark.parametrize("odd", ["line\u2028sep", "new\nline", 'quo"te', "cr\rlf", "comma,id"])
def test_ids_with_line_breaks_and_quotes_survive_a_reopen(tmp_path, odd):
    # Before: an id holding U+2028 made the log unreadable (splitlines split inside the field).
    split = _split(["plain", odd, "last"])
    log = tmp_path / "review.csv"
    session = ReviewSession(["plain", odd, "last"], log, data=split)
    session.decide("keep")
    session.decide("relabel", new_label=0)
    again = ReviewSession(["plain", odd, "last"], log, data=split)
    assert again.current == "last" and again.num_decided == 2
    table = read_decisions(log)
    assert table["id"].tolist() == ["plain", odd]
    assert table["new_label"].tolist()[1] == 0


def test_a_record_torn_inside_a_quoted_line_break_is_dropped(tmp_path):
    split = _split(["a", "b\nc", "d"])
    log = tmp_path / "review.csv"
    ReviewSession(["a", "b\nc", "d"], log, data=split).decide("keep")
    before = log.read_bytes()
    with open(log, "ab") as fh:
        fh.write(b'2026-01-01T00:00:00+00:00,"b\n')  # killed after the line break of the id
    assert log.read_bytes().endswith(b"\n")
    assert read_decisions(log)["id"].tolist() == ["a"]
    with pytest.warns(UserWarning, match="ended in an incomplete line"):
        session = ReviewSession(["a", "b\nc", "d"], log, data=split)
    assert log.read_bytes() == before
    assert session.current == "b\nc"


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ("t,101,toy/train,keep", r"line 3: 4 fields, expected 6 \(time,id,split,decision,"),
        ("t,101,toy/train,keep,1,,extra", r"line 3: 7 fields, expected 6"),
        ("t,101,toy/train,relabel,1,abc", r"line 3: new_label 'abc' is not a class index"),
        ("t,101,toy/train,relabel,1,1.5", r"line 3: new_label '1\.5' is not a class index"),
        ("t,101,toy/train,keep,x,", r"line 3: label 'x' is not a class index \(an integer\)\."),
        ("t,101,toy/train,maybe,1,", r"line 3: decision 'maybe'; expected one of"),
        ('t,"10"1,toy/train,keep,1,', r"line 3: not a CSV record"),
    ],
)
def test_a_bad_log_row_names_the_file_and_line(tmp_path, row, match):
    log = tmp_path / "review.csv"
    content = f"{HEADER}\nt,100,toy/train,keep,0,\n{row}\nt,102,toy/train,drop,2,\n"
    log.write_text(content)
    full = re.escape(str(log)) + ", " + match
    with pytest.raises(ValueError, match=full) as err:
        read_decisions(log)
    _one_line(err)
    split = _split()
    with pytest.raises(ValueError, match=full):
        ReviewSession(list(split.ids), log, data=split)
    assert log.read_text() == content


def test_a_bad_row_is_reported_before_a_torn_tail_is_cut(tmp_path):
    log = tmp_path / "review.csv"
    content = f"{HEADER}\nt,100,toy/train,keep\nt,101,toy/tr"
    log.write_text(content)
    split = _split()
    with pytest.raises(ValueError, match=r"line 2: 4 fields"):
        ReviewSession(list(split.ids), log, data=split)
    assert log.read_text() == content


def test_a_log_cut_inside_its_header_starts_afresh(tmp_path):
    log = tmp_path / "review.csv"
    log.write_text("time,id,split,deci")
    assert read_decisions(log).empty
    split = _split()
    with pytest.warns(UserWarning, match="ended in an incomplete line"):
        session = ReviewSession(list(split.ids), log, data=split)
    session.decide("drop")
    assert log.read_text().splitlines()[0] == HEADER
    assert read_decisions(log)["decision"].tolist() == ["drop"]


def test_a_log_saved_by_a_spreadsheet_with_crlf_and_bom_is_read(tmp_path):
    log = tmp_path / "review.csv"
    log.write_bytes(b"\xef\xbb\xbf" + f"{HEADER}\r\nt,100,toy/train,relabel,0,2\r\n".encode())
    table = read_decisions(log)
    assert table["id"].tolist() == ["100"] and table["new_label"].tolist() == [2]
    assert pd.api.types.is_integer_dtype(table["label"])
