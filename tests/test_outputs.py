"""Outputs that must never be lost: what ``-o`` and ``atomic_write`` refuse to replace, one-line
errors when a file cannot be written or read, and a run stopped by SIGTERM or kill -9."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from notebook_cells import NOTEBOOK_DIR

from cartokit import TrainingDynamics, compute_metrics, select, select_mixture
from cartokit._files import atomic_write, write_marker
from cartokit.cli import main
from cartokit.io import write_allenai, write_metrics_csv
from cartokit.study import NOTEBOOKS


@pytest.fixture()
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder (the working directory) with dyn.npz, its metrics m.csv and an allenai run."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 60, 3)) + np.linspace(0, 3, 4)[:, None, None]
    dyn = TrainingDynamics.from_logits(logits, rng.integers(0, 3, 60), store_probs=True)
    dyn.save(tmp_path / "dyn.npz")
    write_allenai(dyn, tmp_path / "allen")
    assert main(["metrics", "dyn.npz", "-o", "m.csv"]) == 0
    return tmp_path


def fails(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run the CLI, expect exit 1 and exactly one line on stderr; return that line."""
    capsys.readouterr()
    assert main(list(argv)) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"cartokit {argv[0]}: error: ")
    return lines[0]


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def char_device(path: Path) -> Path:
    """A copy of /dev/null's node: what `-o /dev/null` meets, without touching the real one."""
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs root")
    return path


# ------------------------------------------------------------------------ -o is not the input


@pytest.mark.parametrize("spelling", ["dyn.npz", "./dyn.npz", "absolute", "symlink", "hardlink"])
def test_metrics_refuses_to_write_over_its_input(work, capsys, spelling):
    before = (work / "dyn.npz").read_bytes()
    out = {"absolute": str(work / "dyn.npz"), "symlink": "link.npz", "hardlink": "hard.npz"}
    if spelling == "symlink":
        os.symlink(work / "dyn.npz", work / "link.npz")
    if spelling == "hardlink":
        os.link(work / "dyn.npz", work / "hard.npz")
    line = fails(capsys, "metrics", "dyn.npz", "-o", out.get(spelling, spelling))
    assert "is the input dyn.npz; writing it would replace the input" in line
    assert (work / "dyn.npz").read_bytes() == before


def test_select_refuses_to_write_over_its_metrics(work, capsys):
    before = (work / "m.csv").read_bytes()
    line = fails(capsys, "select", "m.csv", "--fraction", "0.5", "-o", "m.csv")
    assert "the output m.csv is the input m.csv" in line and "Choose another -o file" in line
    assert (work / "m.csv").read_bytes() == before


def test_an_allenai_folder_takes_outputs_inside_it_but_not_over_its_files(work, capsys):
    epoch0 = work / "allen" / "training_dynamics" / "dynamics_epoch_0.jsonl"
    before = epoch0.read_bytes()
    assert "is the input" in fails(capsys, "metrics", "allen", "-o", str(epoch0))
    assert epoch0.read_bytes() == before
    assert main(["metrics", "allen", "-o", "allen/m.csv"]) == 0
    assert len(pd.read_csv(work / "allen" / "m.csv")) == 60


# ------------------------------------------------------------------------ special files


@pytest.mark.parametrize(
    ("make", "kind"), [(fifo, "a named pipe"), (char_device, "a character device")]
)
@pytest.mark.parametrize("command", ["metrics", "select"])
def test_o_never_replaces_a_device_or_a_pipe(work, capsys, make, kind, command):
    node = make(work / "node")
    mode = node.lstat().st_mode
    argv = ["dyn.npz"] if command == "metrics" else ["m.csv", "--fraction", "0.5"]
    line = fails(capsys, command, *argv, "-o", "node")
    assert f"Cannot write node: it is {kind}" in line and "Give the path of a regular file" in line
    assert node.lstat().st_mode == mode  # still the node, not a regular file
    assert not list(work.glob(".node.*"))


@pytest.mark.parametrize("writer", ["atomic_write", "save", "write_metrics_csv"])
def test_the_library_never_swaps_out_a_special_file(tmp_path, writer):
    node = fifo(tmp_path / "node")
    dyn = TrainingDynamics.from_logits(np.zeros((3, 4, 2)), [0, 1, 0, 1])
    write = {
        "atomic_write": lambda p: atomic_write(p, "w").__enter__(),
        "save": dyn.save,
        "write_metrics_csv": lambda p: write_metrics_csv(compute_metrics(dyn), p),
    }[writer]
    with pytest.raises(ValueError, match=r"Cannot write .*node: it is a named pipe, and writing"):
        write(node)
    assert stat.S_ISFIFO(node.lstat().st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["node"]


def test_atomic_write_through_a_symlink_writes_the_target_and_keeps_the_link(tmp_path):
    (tmp_path / "target.txt").write_text("old\n")
    os.symlink("target.txt", tmp_path / "link.txt")
    with atomic_write(tmp_path / "link.txt", "w") as fh:
        fh.write("new\n")
    assert (tmp_path / "link.txt").is_symlink()
    assert (tmp_path / "target.txt").read_text() == "new\n"


# ------------------------------------------------------------------------ one line, not a traceback


@pytest.mark.parametrize("command", ["metrics", "select"])
@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("afolder", r"Cannot write .*afolder: it is a folder. Give the path of a file."),
        ("", r"The output path is empty; give the name of the file to write."),
        ("notes.txt/out.csv", r"Cannot write notes.txt/out.csv: notes.txt is a file, not a folder"),
    ],
)
def test_output_problems_are_one_line(work, capsys, command, output, message):
    (work / "afolder").mkdir()
    (work / "notes.txt").write_text("mine\n")
    argv = ["dyn.npz"] if command == "metrics" else ["m.csv", "--fraction", "0.5"]
    assert re.search(message, fails(capsys, command, *argv, "-o", output))
    assert (work / "notes.txt").read_text() == "mine\n" and (work / "afolder").is_dir()


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="sysfs refuses new files, even to root"
)
def test_a_folder_no_one_may_write_in_gives_the_path_and_the_reason(work, capsys):
    line = fails(capsys, "metrics", "dyn.npz", "-o", "/sys/out.csv")
    assert line == (
        "cartokit metrics: error: /sys/out.csv: cannot create a file in /sys (Permission denied)"
    )


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores folder permissions"
)
def test_an_unwritable_folder_gives_the_path_and_the_reason(work, capsys):
    locked = work / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        line = fails(capsys, "select", "m.csv", "--fraction", "0.5", "-o", "locked/ids.txt")
    finally:
        locked.chmod(0o700)
    assert line.endswith("locked/ids.txt: cannot create a file in locked (Permission denied)")


# ------------------------------------------------------------------------ seeds


def test_a_negative_seed_gets_the_parameter_sentence(work, capsys):
    metrics = pd.read_csv(work / "m.csv", index_col="id")
    sentence = r"The 'seed' parameter of select must be an int >= 0, or None. Got -5 instead."
    with pytest.raises(ValueError, match=sentence):
        select(metrics, by="random", fraction=0.5, seed=-5)
    with pytest.raises(ValueError, match=sentence.replace("of select", "of select_mixture")):
        select_mixture(metrics, "10% random + 10% easy", seed=-5)
    line = fails(capsys, "select", "m.csv", "--by", "random", "--seed", "-5", "-o", "ids.txt")
    assert line == "cartokit select: error: --seed must be an int >= 0. Got -5 instead."
    assert not (work / "ids.txt").exists()


# ------------------------------------------------------------------------ metrics CSV


def metrics_lines(work: Path) -> list[str]:
    return (work / "m.csv").read_text().splitlines(keepends=True)


def header(lines: list[str]) -> list[str]:
    return [name.strip('"') for name in lines[0].rstrip("\n").split(",")]


@pytest.mark.parametrize(
    ("edit", "line", "fields"),
    [
        # the last row cut mid-number: fewer fields, with and without its final newline
        (lambda ls: ls[:-1] + [ls[-1][: ls[-1].index(",", 10) + 3] + "\n"], 61, None),
        (lambda ls: ls[:-1] + [ls[-1][: ls[-1].index(",", 10) + 3]], 61, None),
        (lambda ls: ls[:-1] + [ls[-1].split(",")[0]], 61, 1),
        (lambda ls: ls[:9] + [",".join(ls[9].split(",")[:3]) + "\n"] + ls[10:], 10, 3),
        (lambda ls: ls[:9] + [ls[9].rstrip("\n") + ",7\n"] + ls[10:], 10, "one more"),
    ],
    ids=["cut-mid-number", "cut-no-newline", "only-the-id", "short-middle-row", "extra-field"],
)
def test_select_refuses_incomplete_rows(work, capsys, edit, line, fields):
    lines = metrics_lines(work)
    n = len(header(lines))
    (work / "cut.csv").write_text("".join(edit(lines)))
    message = fails(capsys, "select", "cut.csv", "-o", "ids.txt")
    got = {None: "", 1: "1 field ", "one more": f"{n + 1} fields "}.get(fields, f"{fields} fields ")
    assert f"cut.csv line {line} has {got}" in message
    assert f"where its header has {n}; the file is incomplete" in message
    assert not (work / "ids.txt").exists()


@pytest.mark.parametrize(("column", "value"), [("confidence", "abc"), ("aum", "1.2.3")])
def test_select_refuses_a_value_that_is_not_a_number(work, capsys, column, value):
    lines = metrics_lines(work)
    position = header(lines).index(column)
    row = lines[7].rstrip("\n").split(",")
    row[position] = value
    (work / "bad.csv").write_text("".join(lines[:7] + [",".join(row) + "\n"] + lines[8:]))
    message = fails(capsys, "select", "bad.csv", "-o", "ids.txt")
    assert message.endswith(
        f"bad.csv line 8: the {column!r} column holds {value!r}, which is not a number. "
        "Write the table again with 'cartokit metrics'."
    )


def test_an_empty_field_is_a_missing_value_not_a_cut_row(work):
    lines = metrics_lines(work)
    row = lines[5].split(",")
    row[header(lines).index("aum")] = ""  # a missing value: the row still has every field
    (work / "gaps.csv").write_text("".join(lines[:5] + [",".join(row)] + lines[6:]))
    assert main(["select", "gaps.csv", "--fraction", "0.5", "-o", "ids.txt"]) == 0
    assert len((work / "ids.txt").read_text().split()) == 30


# ------------------------------------------------------------------------ SIGTERM and kill -9


def stub_notebooks(folder: Path) -> Path:
    """Notebooks 01-04 with their real parameters cell, then one cell that marks its start with
    the kernel's pid and sleeps STUB_SLEEP seconds."""
    folder.mkdir()
    for name in NOTEBOOKS:
        nb = json.loads((NOTEBOOK_DIR / f"{name}.ipynb").read_text(encoding="utf-8"))
        parameters = next(c for c in nb["cells"] if c["cell_type"] == "code")
        body = (
            "import os, pathlib, time\n"
            f"pathlib.Path(run_dir, '{name}.started').write_text(str(os.getpid()))\n"
            "time.sleep(float(os.environ.get('STUB_SLEEP', '0')))\n"
        )
        cell = {"cell_type": "code", "id": "stub", "metadata": {}, "source": body, "outputs": []}
        nb["cells"] = [parameters, {**cell, "execution_count": None}]
        (folder / f"{name}.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    return folder


def start_run(out: Path, notebooks: Path) -> tuple[subprocess.Popen[str], int]:
    """`cartokit run` in a subprocess, once its first notebook runs; returns it and the kernel's
    pid."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cartokit.cli", "run", "--out", str(out)]
        + ["--notebooks", str(notebooks), "--quiet"],
        env={**os.environ, "STUB_SLEEP": "120"},
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (started := list(out.parent.glob(f".{out.name}.partial-*/01_*.started"))):
        assert proc.poll() is None and time.monotonic() < deadline, "the run did not start"
        time.sleep(0.2)
    return proc, int(started[0].read_text())


def gone(pid: int, wait: float = 15) -> bool:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def test_sigterm_keeps_the_earlier_run_and_writes_out_failed_and_kill_9_is_cleaned_up(tmp_path):
    pytest.importorskip("papermill")
    notebooks = stub_notebooks(tmp_path / "notebooks")
    out = tmp_path / "study"
    out.mkdir()
    write_marker(out, "cartokit run", params={}, notebooks=[])
    (out / "results.csv").write_text("the earlier run\n")
    earlier = {p.name: p.read_bytes() for p in out.iterdir()}

    proc, kernel = start_run(out, notebooks)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    assert (
        f"stopped by SIGTERM during 01_train_and_record.ipynb; partial outputs in {out}.failed; "
        f"{out} was left as it was" in err
    )
    assert err.strip().splitlines()[-1] == "cartokit run: stopped by SIGTERM"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == earlier
    assert (tmp_path / "study.failed" / "01_train_and_record.started").is_file()
    assert not list(tmp_path.glob(".study.partial-*"))
    assert gone(kernel), "the notebook's kernel outlived the run"

    # kill -9: nothing can clean up; the next run into the folder does, and says so
    proc, kernel = start_run(out, notebooks)
    proc.kill()
    proc.communicate(timeout=60)
    left = [p.name for p in tmp_path.glob(".study.partial-*")]
    assert left == [f".study.partial-{proc.pid}"]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == earlier
    done = subprocess.run(
        [sys.executable, "-m", "cartokit.cli", "run", "--out", str(out)]
        + ["--notebooks", str(notebooks), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (
        f"removed 1 folder(s) left in {tmp_path} by killed runs into study: {left[0]}"
        in done.stderr
    )
    assert not list(tmp_path.glob(".study.*")) and not (tmp_path / "study.failed").exists()
    assert (out / "04_retrain.started").is_file()
    assert gone(kernel)
