"""cartokit.io.tables: metrics tables written and read back, and every file the reader refuses.

The same checks seen through ``cartokit select`` are in tests/test_outputs.py and
tests/test_cli.py; here the library's own sentences, with their caller and fix.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cartokit.dynamics import TrainingDynamics
from cartokit.io import read_metrics_table, write_metrics_csv
from cartokit.metrics import compute_metrics
from cartokit.regions import REGIONS, assign_regions

REWRITE = "Write the table again with 'cartokit metrics'."


@pytest.fixture()
def table() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(4, 12, 3)) + np.linspace(0, 3, 4)[:, None, None]
    dyn = TrainingDynamics.from_logits(
        logits, rng.integers(0, 3, 12), ids=[f"s{i}" for i in range(12)]
    )
    return compute_metrics(dyn)


@pytest.fixture()
def csv_path(tmp_path: Path, table: pd.DataFrame) -> Path:
    return write_metrics_csv(table, tmp_path / "m.csv")


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def test_a_written_table_reads_back_at_float32_precision(table, csv_path):
    back = read_metrics_table(csv_path, caller="select")
    assert back.index.name == "id" and back.index.tolist() == table.index.tolist()
    assert back.columns.tolist() == table.columns.tolist()
    for column in ("confidence", "variability", "aum", "el2n"):
        # the shortest text that reads back to the same float32
        expected = table[column].to_numpy(np.float32)
        np.testing.assert_array_equal(back[column].to_numpy(np.float32), expected)
    assert back["never_learned"].dtype == bool
    assert (back["forgetting"] == table["forgetting"]).all()


def test_the_region_column_comes_back_as_the_categorical_it_was(table, tmp_path):
    table = table.assign(region=assign_regions(table))
    back = read_metrics_table(write_metrics_csv(table, tmp_path / "r.csv"), caller="load_run")
    assert isinstance(back["region"].dtype, pd.CategoricalDtype)
    assert back["region"].cat.categories.tolist() == list(REGIONS)
    assert back["region"].tolist() == table["region"].tolist()


def test_no_file_names_the_path_and_how_to_write_one(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(
        FileNotFoundError,
        match=rf"^select: no metrics file at {missing}\. Write one with 'cartokit metrics INPUT "
        rf"-o {missing}'\.$",
    ):
        read_metrics_table(missing, caller="select")
    with pytest.raises(FileNotFoundError, match=r"^select: no metrics file at .*\. Run it\.$"):
        read_metrics_table(tmp_path, caller="select", fix="Run it.")  # a folder is no file


def test_a_path_of_the_wrong_type_gets_the_parameter_sentence():
    with pytest.raises(
        TypeError,
        match=r"^The 'path' parameter of load_run must be a str or os\.PathLike\. Got 3 of type "
        r"int instead\.$",
    ):
        read_metrics_table(3, caller="load_run")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "No columns to parse from file"),
        (b"id,label,confidence,variability\n\xff\xfe,0,0.5,0.1\n", "can't decode byte 0xff"),
    ],
    ids=["empty", "not-utf8"],
)
def test_a_file_that_is_not_csv_is_one_line(tmp_path, content, reason):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(
        ValueError, match=r"^select: .*bad\.csv is not a readable CSV file: "
    ) as err:
        read_metrics_table(path, caller="select")
    message = str(err.value)
    assert reason in message and message.endswith(REWRITE) and "\n" not in message


def test_a_table_without_the_map_coordinates_is_refused(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("id,label,score\n1,0,0.5\n")
    with pytest.raises(
        ValueError,
        match=r"^select: .*other\.csv lacks the column\(s\) \['confidence', 'variability'\] of a "
        r"cartokit metrics table\. Write the table again",
    ):
        read_metrics_table(path, caller="select")


@pytest.mark.parametrize(
    ("edit", "line", "got"),
    [
        (lambda ls: ls[:-1] + [ls[-1].split(",")[0] + "\n"], 13, "1 field"),
        (lambda ls: ls[:4] + [",".join(ls[4].split(",")[:3]) + "\n"] + ls[5:], 5, "3 fields"),
        (lambda ls: ls[:4] + [ls[4].rstrip("\n") + ",7\n"] + ls[5:], 5, "one more"),
    ],
    ids=["only-the-id", "short-middle-row", "extra-field"],
)
def test_a_row_cut_short_or_too_long_names_its_line(csv_path, tmp_path, edit, line, got):
    fields = lines(csv_path)[0].count(",") + 1
    got = f"{fields + 1} fields" if got == "one more" else got
    cut = tmp_path / "cut.csv"
    cut.write_text("".join(edit(lines(csv_path))))
    with pytest.raises(
        ValueError,
        match=rf"^load_run: .*cut\.csv line {line} has {got} where its header has {fields}; the "
        r"file is incomplete \(cut short\?\)\. Run notebook 01 again\.$",
    ):
        read_metrics_table(cut, caller="load_run", fix="Run notebook 01 again.")


def test_a_value_that_is_not_a_number_names_its_line_and_column(csv_path, tmp_path):
    rows = lines(csv_path)
    header = [name.strip('"') for name in rows[0].rstrip("\n").split(",")]
    row = rows[3].rstrip("\n").split(",")
    row[header.index("el2n")] = "n/a!"
    bad = tmp_path / "bad.csv"
    bad.write_text("".join(rows[:3] + [",".join(row) + "\n"] + rows[4:]))
    with pytest.raises(
        ValueError,
        match=r"^select: .*bad\.csv line 4: the 'el2n' column holds 'n/a!', which is not a "
        r"number\. Write the table again with 'cartokit metrics'\.$",
    ):
        read_metrics_table(bad, caller="select")


def test_an_empty_field_is_a_missing_value(csv_path, tmp_path):
    rows = lines(csv_path)
    header = [name.strip('"') for name in rows[0].rstrip("\n").split(",")]
    row = rows[2].rstrip("\n").split(",")
    row[header.index("aum")] = ""
    gaps = tmp_path / "gaps.csv"
    gaps.write_text("".join(rows[:2] + [",".join(row) + "\n"] + rows[3:]))
    back = read_metrics_table(gaps, caller="select")
    assert back["aum"].isna().tolist() == [i == 1 for i in range(12)]


def test_metrics_and_select_import_no_torch(csv_path, tmp_path, table):
    # the commands a user runs on a laptop without a GPU stack: reading, scoring, selecting
    npz = tmp_path / "dyn.npz"
    TrainingDynamics.from_logits(np.zeros((3, 4, 2)), [0, 1, 0, 1]).save(npz)
    code = (
        "import sys\nfrom cartokit.cli import main\n"
        f"assert main(['metrics', {str(npz)!r}, '-o', {str(tmp_path / 'out.csv')!r}]) == 0\n"
        f"assert main(['select', {str(csv_path)!r}, '-o', {str(tmp_path / 'ids.txt')!r}]) == 0\n"
        "print(sorted(m for m in ('torch', 'matplotlib', 'ipywidgets') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert len((tmp_path / "ids.txt").read_text().split()) == 4  # 0.33 of 12
