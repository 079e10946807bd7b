"""cartokit.io.allenai: reading (against an oracle, then corrupt files that must name their
line) and writing the allenai/cartography layout."""

from __future__ import annotations

import json
import math
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from dynamics_files import Rows, assert_matches_oracle, base_rows, lines_of, make_rows, write_run
from hypothesis import given, settings
from hypothesis import strategies as st

from cartokit.dynamics import TrainingDynamics
from cartokit.io import read_allenai, write_allenai

# ----------------------------------------------------------------------------- allenai: reading


def test_oracle_with_shuffled_int_guids(tmp_path: Path) -> None:
    rows = make_rows(list(range(40)), epochs=5, classes=4, seed=1)
    dyn = read_allenai(write_run(tmp_path, rows))
    assert dyn.ids.dtype == np.int64
    assert dyn.ids.tolist() == [r["guid"] for r in rows[0]]  # order of the first epoch file
    assert dyn.labels.tolist() == [r["gold"] for r in rows[0]]
    assert (dyn.num_epochs, dyn.num_classes) == (5, 4)
    assert_matches_oracle(dyn, rows)


def test_string_guids_including_awkward_ones(tmp_path: Path) -> None:
    guids = ["a", 'quote"d', "tab\there", "ünïcode", "12", "line\nbreak", ""]
    rows = make_rows(guids, seed=2)
    dyn = read_allenai(write_run(tmp_path, rows))
    assert dyn.ids.dtype == object
    assert dyn.ids.tolist() == [r["guid"] for r in rows[0]]
    assert_matches_oracle(dyn, rows)


def test_big_int_guids_stay_int64(tmp_path: Path) -> None:
    guids = [2**62 + 7, -(2**63), 2**63 - 1, 0, 5]
    rows = make_rows(guids, seed=3)
    dyn = read_allenai(write_run(tmp_path, rows))
    assert dyn.ids.dtype == np.int64
    assert sorted(dyn.ids.tolist()) == sorted(guids)
    assert_matches_oracle(dyn, rows)


def test_ints_beyond_int64_make_every_guid_a_string(tmp_path: Path) -> None:
    guids = [2**64 + 1, 3, 4]
    rows = make_rows(guids, seed=4)
    dyn = read_allenai(write_run(tmp_path, rows))
    assert dyn.ids.dtype == object
    assert sorted(dyn.ids.tolist()) == sorted(str(g) for g in guids)
    assert_matches_oracle(dyn, rows)


def test_mixed_int_and_str_guids_become_strings(tmp_path: Path) -> None:
    rows = make_rows([1, "b", 3], seed=5)  # mixed within each file
    dyn = read_allenai(write_run(tmp_path / "within", rows))
    assert dyn.ids.dtype == object and sorted(dyn.ids.tolist()) == ["1", "3", "b"]
    assert_matches_oracle(dyn, rows)

    rows = make_rows([1, 2, 3], seed=6)  # ints in epoch 0, strings from epoch 2 on
    for e in (2,):
        for r in rows[e]:
            r["guid"] = str(r["guid"])
    dyn = read_allenai(write_run(tmp_path / "across", rows))
    assert dyn.ids.tolist() == [str(r["guid"]) for r in rows[0]]
    assert_matches_oracle(dyn, rows)


def test_epochs_found_by_name_and_sorted_numerically(tmp_path: Path) -> None:
    # Each epoch's logits make the gold probability of the one sample encode its epoch number.
    rows: Rows = {}
    for e in reversed(range(12)):  # create files in reverse order; "10" must follow "9"
        p = (e + 1) / 13
        rows[e] = [{"guid": "x", f"logits_epoch_{e}": [math.log(p), math.log(1 - p)], "gold": 0}]
    run = write_run(tmp_path, rows)
    (run / "training_dynamics" / "notes.txt").write_text("not an epoch file")
    (run / "training_dynamics" / "dynamics_epoch_3.jsonl.bak").write_text("{}")
    for path in (run, run / "training_dynamics"):  # the run folder or the folder itself
        dyn = read_allenai(path)
        assert dyn.num_epochs == 12
        np.testing.assert_allclose(dyn.gold_prob[:, 0], np.arange(1, 13) / 13, atol=1e-6)


def test_gap_in_epoch_numbers_warns_with_the_missing_ones(tmp_path: Path) -> None:
    rows = make_rows([0, 1, 2], epochs=6, seed=7)
    del rows[2], rows[4]
    with pytest.warns(UserWarning, match=r"no file for epoch\(s\) \[2, 4\]"):
        dyn = read_allenai(write_run(tmp_path, rows))
    assert dyn.num_epochs == 4
    assert_matches_oracle(dyn, rows)


def test_no_epoch_files_is_file_not_found(tmp_path: Path) -> None:
    (tmp_path / "training_dynamics").mkdir()
    with pytest.raises(
        FileNotFoundError,
        match=r"no dynamics_epoch_<e>\.jsonl files in .*training_dynamics.*Expected",
    ):
        read_allenai(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_allenai(tmp_path / "nope")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ValueError, match="expects a folder, not the file"):
        read_allenai(tmp_path / "file.txt")


def test_blank_lines_and_crlf_are_fine_and_agree_with_the_fast_path(tmp_path: Path) -> None:
    rows = make_rows(list(range(20)), epochs=3, seed=8)
    plain = read_allenai(write_run(tmp_path / "plain", rows))
    spaced = {e: "\r\n\r\n".join(lines_of(r)) + "\n   \n" for e, r in rows.items()}
    messy = read_allenai(write_run(tmp_path / "messy", {}, text=spaced))  # takes the line scan
    assert messy.ids.tolist() == plain.ids.tolist()
    for name in ("gold_prob", "margin", "sq_error", "pred"):
        np.testing.assert_array_equal(getattr(messy, name), getattr(plain, name))


def test_class_names_pass_through(tmp_path: Path) -> None:
    rows = make_rows([0, 1], classes=2, seed=9)
    dyn = read_allenai(write_run(tmp_path, rows), class_names=["neg", "pos"])
    assert dyn.class_names == ["neg", "pos"]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 12), epochs=st.integers(1, 4))
def test_row_order_never_matters(seed: int, n: int, epochs: int) -> None:
    ordered = make_rows(list(range(n)), epochs=epochs, classes=3, seed=seed, shuffle=False)
    shuffled = {e: random.Random(seed + e).sample(r, len(r)) for e, r in ordered.items()}
    with tempfile.TemporaryDirectory() as tmp:
        a = read_allenai(write_run(Path(tmp) / "a", ordered))
        b = read_allenai(write_run(Path(tmp) / "b", shuffled))
    order = np.argsort(b.ids)
    assert a.ids.tolist() == b.ids[order].tolist()
    for name in ("gold_prob", "margin", "pred"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name)[:, order])


# ----------------------------------------------------------------------------- allenai: errors


def corrupt(rows: Rows, epoch: int, edit) -> dict[int, str]:  # noqa: ANN001
    lines = lines_of(rows[epoch])
    return {epoch: edit(lines)}


def _set(rows: Rows, epoch: int, row: int, **changes: Any) -> Rows:
    rows[epoch][row].update(changes)
    return rows


def _pop(rows: Rows, epoch: int, row: int, key: str) -> Rows:
    rows[epoch][row].pop(key)
    return rows


def case_truncated_last_line(rows: Rows) -> dict[int, str]:
    return corrupt(rows, 1, lambda ls: "\n".join(ls)[:-15])


def case_garbage_after_blank_lines(rows: Rows) -> dict[int, str]:
    return corrupt(rows, 0, lambda ls: "\n".join(ls[:2] + ["", "  ", "{not json"] + ls[2:]) + "\n")


def case_two_objects_on_one_line(rows: Rows) -> dict[int, str]:
    return corrupt(rows, 2, lambda ls: "\n".join([ls[0], ls[1] + " " + ls[2]] + ls[3:]) + "\n")


def case_empty_file(rows: Rows) -> dict[int, str]:
    return {1: "\n\n"}


ERROR_CASES = [
    # (name, how to break base_rows, file, line, message fragment)
    ("truncated", case_truncated_last_line, 1, 5, "not valid JSON"),
    ("garbage", case_garbage_after_blank_lines, 0, 5, "not valid JSON"),
    ("two objects", case_two_objects_on_one_line, 2, 2, "not valid JSON"),
    ("missing gold", lambda r: _pop(r, 1, 2, "gold"), 1, 3, r"missing key\(s\) \['gold'\]"),
    ("missing guid", lambda r: _pop(r, 0, 4, "guid"), 0, 5, r"missing key\(s\) \['guid'\]"),
    ("null guid", lambda r: _set(r, 0, 1, guid=None), 0, 2, "guid must be an int or a string"),
    ("float guid", lambda r: _set(r, 2, 1, guid=1.5), 2, 2, "guid must be an int or a string"),
    ("nan logit", lambda r: _set(r, 1, 1, logits_epoch_1=[0.0, float("nan"), 1.0]), 1, 2, "finite"),
    ("inf logit", lambda r: _set(r, 2, 4, logits_epoch_2=[1e400, 0.0, 1.0]), 2, 5, "finite"),
    ("str logit", lambda r: _set(r, 0, 3, logits_epoch_0=[1, "2", 3]), 0, 4, "list of numbers"),
    ("null logit", lambda r: _set(r, 0, 3, logits_epoch_0=[1, None, 3]), 0, 4, "list of numbers"),
    ("one class", lambda r: _set(r, 0, 0, logits_epoch_0=[1.0]), 0, 1, r"1 logit\(s\)"),
    (
        "classes in file",
        lambda r: _set(r, 1, 3, logits_epoch_1=[1.0, 2.0]),
        1,
        4,
        "2 logits, but line 1 has 3",
    ),
    ("negative gold", lambda r: _set(r, 0, 2, gold=-1), 0, 3, r"gold -1 is out of range \[0, 3\)"),
    ("gold too big", lambda r: _set(r, 2, 0, gold=3), 2, 1, r"gold 3 is out of range \[0, 3\)"),
    ("float gold", lambda r: _set(r, 1, 0, gold=1.0), 1, 1, "gold must be an int class index"),
    ("str gold", lambda r: _set(r, 1, 0, gold="1"), 1, 1, "gold must be an int class index"),
    ("duplicate guid", lambda r: _set(r, 1, 3, guid=1), 1, 4, "duplicate guid 1, first on line 2"),
    (
        "extra guid",
        lambda r: _set(r, 2, 4, guid=99),
        2,
        5,
        "guid 99 is not in dynamics_epoch_0.jsonl",
    ),
    (
        "gold changes",
        lambda r: _set(r, 2, 3, gold=(r[0][3]["gold"] + 1) % 3),
        2,
        4,
        "gold label cannot change",
    ),
    ("empty file", case_empty_file, 1, None, "the file has no rows"),
]


@pytest.mark.parametrize(
    ("name", "breaker", "epoch", "line", "fragment"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES]
)
def test_corrupt_files_name_file_and_line(
    tmp_path: Path,
    name: str,
    breaker,
    epoch: int,
    line: int | None,
    fragment: str,  # noqa: ANN001
) -> None:
    rows = base_rows()
    broken = breaker(rows)
    if all(isinstance(v, str) for v in broken.values()):  # whole-file text for one epoch
        run = write_run(tmp_path, rows, text=broken)
    else:
        run = write_run(tmp_path, broken)
    where = rf"dynamics_epoch_{epoch}\.jsonl" + ("" if line is None else rf", line {line}: ")
    with pytest.raises(ValueError, match=where + ".*" + fragment) as info:
        read_allenai(run)
    assert "\n" not in str(info.value)


def test_wrong_logits_key_for_the_file(tmp_path: Path) -> None:
    rows = base_rows()
    rows[3] = [dict(r) for r in rows[2]]
    for r in rows[3]:
        r["logits_epoch_3"] = r.pop("logits_epoch_2")
    rows[3][1]["logits_epoch_2"] = rows[3][1].pop("logits_epoch_3")
    with pytest.raises(
        ValueError,
        match=r"dynamics_epoch_3\.jsonl, line 2: has the key 'logits_epoch_2'.*'logits_epoch_3'",
    ):
        read_allenai(write_run(tmp_path, rows))


def test_class_count_changing_between_epochs(tmp_path: Path) -> None:
    rows = base_rows()
    for r in rows[1]:
        r["logits_epoch_1"].append(0.5)
    text = {1: "\n" + "\n".join(lines_of(rows[1])) + "\n"}  # a leading blank line: data on line 2
    with pytest.raises(
        ValueError,
        match=r"dynamics_epoch_1\.jsonl, line 2: 4 logits per row, "
        r"but dynamics_epoch_0\.jsonl has 3",
    ):
        read_allenai(write_run(tmp_path, rows, text=text))


def test_missing_guid_names_its_line_in_the_first_file(tmp_path: Path) -> None:
    rows = base_rows()
    rows[2] = [r for r in rows[2] if r["guid"] != 3]
    with pytest.raises(
        ValueError,
        match=r"dynamics_epoch_2\.jsonl: no row for guid 3 \(line 4 of dynamics_epoch_0\.jsonl\); "
        r"1 of 5 guids are missing",
    ):
        read_allenai(write_run(tmp_path, rows))


def test_errors_found_after_shuffling_still_name_the_right_line(tmp_path: Path) -> None:
    rows = make_rows(list(range(30)), epochs=2, seed=12)
    row = next(i for i, r in enumerate(rows[1]) if r["guid"] == 17)
    rows[1][row]["gold"] = (rows[1][row]["gold"] + 1) % 3
    with pytest.raises(ValueError, match=rf"dynamics_epoch_1\.jsonl, line {row + 1}: gold"):
        read_allenai(write_run(tmp_path, rows))


def test_two_files_for_one_epoch(tmp_path: Path) -> None:
    run = write_run(tmp_path, base_rows())
    (run / "training_dynamics" / "dynamics_epoch_01.jsonl").write_text("{}\n")
    with pytest.raises(
        ValueError,
        match=r"dynamics_epoch_0?1\.jsonl and dynamics_epoch_0?1\.jsonl .* both hold epoch 1",
    ):
        read_allenai(run)


# ----------------------------------------------------------------------------- allenai: writing


@pytest.mark.parametrize(
    "ids", [None, ["a", "b'c", 'd"e', "f", "g", "h"], [2**62 + 7, 1, 2, 3, 4, 5]]
)
def test_round_trip_through_probs(tmp_path: Path, ids: list[Any] | None) -> None:
    rng = np.random.default_rng(13)
    logits = rng.normal(scale=3.0, size=(4, 6, 3))
    labels = rng.integers(0, 3, size=6)
    dyn = TrainingDynamics.from_logits(logits, labels, ids=ids, store_probs=True)
    folder = write_allenai(dyn, tmp_path)
    assert folder == tmp_path / "training_dynamics"
    back = read_allenai(folder)
    assert back.ids.tolist() == dyn.ids.tolist()
    assert back.ids.dtype == dyn.ids.dtype
    np.testing.assert_array_equal(back.labels, dyn.labels)
    np.testing.assert_allclose(back.gold_prob, dyn.gold_prob, atol=1e-6)
    np.testing.assert_allclose(back.margin, dyn.margin, atol=1e-4)
    np.testing.assert_array_equal(back.pred, dyn.pred)
    first = json.loads((folder / "dynamics_epoch_0.jsonl").read_text().splitlines()[0])
    assert type(first["guid"]) is (str if ids and isinstance(ids[0], str) else int)
    assert set(first) == {"guid", "logits_epoch_0", "gold"}


def test_round_trip_with_given_logits_numpy_and_torch(tmp_path: Path) -> None:
    rng = np.random.default_rng(14)
    logits = rng.normal(scale=2.0, size=(3, 5, 4))
    dyn = TrainingDynamics.from_logits(logits, rng.integers(0, 4, size=5))
    for name, given_logits in (("np", logits), ("torch", torch.from_numpy(logits))):
        back = read_allenai(write_allenai(dyn, tmp_path / name, logits=given_logits))
        np.testing.assert_allclose(back.gold_prob, dyn.gold_prob, atol=1e-6)
        np.testing.assert_allclose(back.margin, dyn.margin, atol=1e-5)
        np.testing.assert_array_equal(back.pred, dyn.pred)
    # float64 logits are written with their full repr
    text = (tmp_path / "np" / "training_dynamics" / "dynamics_epoch_0.jsonl").read_text()
    assert json.loads(text.splitlines()[0])["logits_epoch_0"] == logits[0, 0].tolist()


def test_write_errors(tmp_path: Path) -> None:
    dyn = TrainingDynamics.from_logits(np.zeros((3, 2, 2)), [0, 1])
    with pytest.raises(ValueError, match=r"store_probs=True.*logits="):
        write_allenai(dyn, tmp_path)
    with pytest.raises(
        ValueError, match=r"shape \(epochs, samples, classes\) = \(3, 2, 2\).*\(2, 2, 2\)"
    ):
        write_allenai(dyn, tmp_path, logits=np.zeros((2, 2, 2)))
    bad = np.zeros((3, 2, 2))
    bad[1, 0, 0] = np.nan
    with pytest.raises(ValueError, match="epoch 1, sample 0 holds NaN or inf"):
        write_allenai(dyn, tmp_path, logits=bad)
    with pytest.raises(TypeError, match="must be a TrainingDynamics"):
        write_allenai("not dynamics", tmp_path)  # type: ignore[arg-type]
    write_run(tmp_path, make_rows([0, 1], epochs=5, classes=2))
    with pytest.raises(
        ValueError, match=r"already holds \['dynamics_epoch_3.jsonl', 'dynamics_epoch_4.jsonl'\]"
    ):
        write_allenai(dyn, tmp_path, logits=np.zeros((3, 2, 2)))
