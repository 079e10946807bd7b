"""cartokit.io.trustai: reading TrustAI's training-signal files, and their bad lines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from dynamics_files import trustai_line, write_trustai

from cartokit.io import read_trustai

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
