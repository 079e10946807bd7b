"""cartokit.io.trustai: reading TrustAI's training-signal files, and their bad lines."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import numpy as np
import pytest
from dynamics_files import trustai_line, write_trustai

from cartokit.io import read_trustai, trustai

# ----------------------------------------------------------------------------- TrustAI


def test_trustai_single_quotes_and_string_numbers(tmp_path: Path) -> None:
    steps = [
        {0: [0.7, 0.3], 1: [0.1, 0.9], 2: [0.5, 0.5]},
        {0: [0.2, 0.8], 1: [0.4, 0.6], 2: [0.9, 0.1]},
        {0: [0.3, 0.7], 1: [0.35, 0.65], 2: [0.05, 0.95]},
    ]
    labels = {0: 1, 1: 0, 2: 1}
    lines = []
    for k, step in enumerate(steps):
        for sid in (2, 0, 1) if k % 2 else (0, 1, 2):  # order within a step does not matter
            probs = step[sid]
            if k == 1:  # numbers as strings, a bool for 'correct', as TrustAI sometimes writes
                lines.append(
                    trustai_line(str(sid), str(labels[sid]), [str(p) for p in probs], correct=True)
                )
            else:
                lines.append(trustai_line(sid, labels[sid], probs))
        lines.append("")
    path = tmp_path / "output_data.json"
    path.write_text("\n".join(lines) + "\n")
    dyn = read_trustai(path, class_names=["dissimilar", "similar"])
    assert dyn.ids.dtype == np.int64 and dyn.ids.tolist() == [0, 1, 2]
    assert dyn.labels.tolist() == [1, 0, 1]
    want = np.array([[step[s][labels[s]] for s in (0, 1, 2)] for step in steps])
    np.testing.assert_allclose(dyn.gold_prob, want, atol=1e-6)
    assert dyn.class_names == ["dissimilar", "similar"]
    assert read_trustai(tmp_path).ids.tolist() == [0, 1, 2]  # the folder with its one file


def test_trustai_json_lines_and_string_ids(tmp_path: Path) -> None:
    path = tmp_path / "signals.jsonl"
    records = [
        {"id": "it's", "label": 0, "probs": [0.6, 0.4]},
        {"id": "b", "label": 1, "probs": [0.6, 0.4]},
        {"id": "it's", "label": 0, "probs": [0.9, 0.1]},
        {"id": "b", "label": 1, "probs": [0.2, 0.8]},
    ]
    path.write_text(
        "\n".join(json.dumps(r) for r in records[:2])
        + "\n"
        + str(records[2])
        + "\n"
        + json.dumps(records[3])
    )
    dyn = read_trustai(path)
    assert dyn.ids.tolist() == ["it's", "b"]
    np.testing.assert_allclose(dyn.gold_prob, [[0.6, 0.4], [0.9, 0.8]], atol=1e-6)


def test_trustai_ids_recorded_unequally(tmp_path: Path) -> None:
    lines = [trustai_line(i, 0, [0.5, 0.5]) for i in (0, 1, 2, 0, 2, 0, 1, 2)]
    with pytest.raises(
        ValueError,
        match=r"output_data\.json: id 1 \(first on line 2\) occurs 2 times, "
        r"but most ids occur 3 times",
    ):
        read_trustai(write_trustai(tmp_path, lines))


def test_trustai_label_changing(tmp_path: Path) -> None:
    lines = [trustai_line(i, 1, [0.5, 0.5]) for i in (0, 1)] + [
        "",
        trustai_line(0, 1, [0.5, 0.5]),
        trustai_line(1, 0, [0.5, 0.5]),
    ]
    with pytest.raises(
        ValueError, match=r"output_data\.json, line 5: label 0 for id 1, but line 2 gives 1"
    ):
        read_trustai(write_trustai(tmp_path, lines))


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        ("{'id': 3, 'label': 0, 'probs': [0.5, ", "neither JSON nor a Python dict literal"),
        ("{'id': 3, 'probs': [0.5, 0.5]}", r"missing key\(s\) \['label'\]"),
        (trustai_line(3, 0, [0.5, 0.3, 0.2]), "3 probs, but line 1 has 2"),
        (trustai_line(3, 0, [0.5, "x"]), "probs must be a list of >= 2 numbers"),
        (trustai_line(3, 0, [1.5, -0.5]), "probs must be finite and >= 0"),
        (trustai_line(3, 2, [0.5, 0.5]), r"label 2 is out of range \[0, 2\)"),
        (trustai_line(3, -1, [0.5, 0.5]), "label must be a class index >= 0"),
        (trustai_line(3.5, 0, [0.5, 0.5]), "id must be an int or a string"),
    ],
)
def test_trustai_bad_lines(tmp_path: Path, bad: str, fragment: str) -> None:
    lines = [trustai_line(0, 0, [0.5, 0.5]), "", bad]
    with pytest.raises(ValueError, match=r"output_data\.json, line 3: " + fragment):
        read_trustai(write_trustai(tmp_path, lines))


def test_trustai_folder_must_hold_one_file(tmp_path: Path) -> None:
    write_trustai(tmp_path, [trustai_line(0, 0, [0.5, 0.5])])
    (tmp_path / "other.jsonl").write_text("")
    with pytest.raises(ValueError, match=r"exactly one \.jsonl or \.json file\. Found 2"):
        read_trustai(tmp_path)


# ----------------------------------------------------------------------------- the bulk parse


def _signal_lines(
    *, samples: int = 12, steps: int = 4, classes: int = 3, seed: int = 0, ids=None
) -> tuple[list[str], np.ndarray]:
    """TrustAI's own lines: str(dict) of the float32 softmax, every step in the same order."""
    rng = np.random.default_rng(seed)
    ids = list(range(samples)) if ids is None else ids
    labels = rng.integers(0, classes, size=len(ids))
    probs = rng.dirichlet(np.ones(classes), size=(steps, len(ids))).astype(np.float32)
    lines = []
    for e in range(steps):
        for n, sid in enumerate(ids):
            p = probs[e, n].tolist()
            pred = int(np.argmax(probs[e, n]))
            correct = "true" if pred == labels[n] else "false"
            record = {"id": sid, "label": int(labels[n]), "pred_label": pred, "noisy_label": 0}
            record.update(correct=correct, loss=0.5, probs=p, label_probs=p[labels[n]])
            lines.append(str(record))
    return lines, probs


def _assert_same(a, b) -> None:
    assert a.ids.dtype == b.ids.dtype and a.ids.tolist() == b.ids.tolist()
    for name in ("labels", "gold_prob", "margin", "sq_error", "pred"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def _scanned(path: Path, monkeypatch: pytest.MonkeyPatch):
    """What the line-by-line reading gives, the bulk parse switched off."""
    with monkeypatch.context() as m:
        m.setattr(trustai, "_parse_fast", lambda file: None)
        return read_trustai(path)


def _no_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    def scan(file):
        raise AssertionError(f"{file} went through the line scan")

    monkeypatch.setattr(trustai, "_scan", scan)


@pytest.mark.parametrize("block", [64, 700, 1 << 20])  # 64: every line outgrows a block
@pytest.mark.parametrize("ids", [None, ["a", "b b", "c-1", "d"]], ids=["int", "str"])
def test_the_bulk_parse_reads_trustai_lines_as_the_scan_does(tmp_path, monkeypatch, block, ids):
    lines, _ = _signal_lines(ids=ids)
    path = write_trustai(tmp_path, lines)
    want = _scanned(path, monkeypatch)
    monkeypatch.setattr(trustai, "BLOCK_BYTES", block)
    _no_scan(monkeypatch)
    _assert_same(read_trustai(path), want)


def test_json_lines_and_blank_lines_take_the_bulk_parse_too(tmp_path, monkeypatch):
    lines, _ = _signal_lines(samples=5, steps=3)
    path = tmp_path / "signals.jsonl"
    records = [json.dumps(ast.literal_eval(line)) for line in lines]
    path.write_text("\n".join(r + ("\n" if k % 5 == 4 else "") for k, r in enumerate(records)))
    want = _scanned(path, monkeypatch)
    monkeypatch.setattr(trustai, "BLOCK_BYTES", 300)
    _no_scan(monkeypatch)
    _assert_same(read_trustai(path), want)


def test_steps_in_any_order_give_the_same_record(tmp_path, monkeypatch):
    lines, _ = _signal_lines(samples=6, steps=3)
    rng = np.random.default_rng(1)
    # the first step fixes the sample order (first appearance); later steps come in any order
    shuffled = lines[:6] + [line for k in (6, 12) for line in rng.permutation(lines[k : k + 6])]
    regular = read_trustai(write_trustai(tmp_path, lines))
    (tmp_path / "shuffled").mkdir()
    _no_scan(monkeypatch)
    _assert_same(read_trustai(write_trustai(tmp_path / "shuffled", shuffled)), regular)


def test_a_trustai_line_is_parsed_once(monkeypatch):
    # Before: json.loads failed on every str(dict) line before the quote-swapping retry.
    calls = []
    real = json.loads
    monkeypatch.setattr(trustai.json, "loads", lambda text: calls.append(text) or real(text))
    line = trustai_line(3, 1, [0.25, 0.75])
    assert trustai.parse_line(line)["probs"] == [0.25, 0.75]
    assert len(calls) == 1 and "'" not in calls[0]


def test_python_only_spellings_fall_back_to_the_line_scan(tmp_path, monkeypatch):
    # True, and a label as a string: pyarrow refuses them, the scan reads them as before.
    lines, _ = _signal_lines(samples=4, steps=3)
    want = read_trustai(write_trustai(tmp_path, lines))
    lines[5] = lines[5].replace("'noisy_label': 0", "'noisy_label': True")
    lines[6] = re.sub(r"'label': (\d+),", r"'label': '\1',", lines[6])
    assert "'label': '" in lines[6]
    scanned = []
    monkeypatch.setattr(
        trustai, "_scan", lambda file, scan=trustai._scan: scanned.append(file) or scan(file)
    )
    _assert_same(read_trustai(write_trustai(tmp_path, lines)), want)
    assert scanned


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("{'id': 3, 'label': 0, 'probs': [0.5, ", "neither JSON nor a Python dict literal"),
        ("{'id': 3, 'label': 0, 'probs': [0.5, 0.5]} {'id': 4}", "neither JSON nor a Python"),
        ("{'id': 3, 'label': 0, 'probs': [0.5, NaN]}", "probs must be finite and >= 0"),
        ("{'id': 3, 'label': 0, 'probs': [0.5, 0.5], 'correct': '\udcff'}", "not UTF-8 text"),
        ("{'id': 3, 'label': 0, 'probs': [0.5, -0.5]}", "probs must be finite and >= 0"),
        ("{'id': 3, 'label': 7, 'probs': [0.2, 0.3, 0.5]}", r"label 7 is out of range \[0, 3\)"),
        ("{'id': 3, 'label': 0}", r"missing key\(s\) \['probs'\]"),
    ],
)
def test_a_bad_line_deep_in_a_large_file_is_named(tmp_path, monkeypatch, line, fragment):
    # The bulk parse meets it in a later block and hands the file to the scan, which names it.
    lines, _ = _signal_lines(samples=30, steps=4)
    lines[100] = line
    path = tmp_path / "output_data.json"
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogateescape") + b"\n")
    monkeypatch.setattr(trustai, "BLOCK_BYTES", 2000)
    with pytest.raises(ValueError, match=r"output_data\.json, line 101: " + fragment):
        read_trustai(path)


def test_an_empty_file_has_no_rows(tmp_path):
    path = tmp_path / "output_data.json"
    path.write_text("\n\n")
    with pytest.raises(ValueError, match=r"output_data\.json: the file has no rows"):
        read_trustai(path)
