"""The `cartokit` console script: outputs match the library, errors are one line, exit != 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cartokit import TrainingDynamics, compute_metrics, select, select_mixture
from cartokit.cli import main


@pytest.fixture()
def saved_dynamics(tmp_path: Path) -> tuple[Path, TrainingDynamics]:
    rng = np.random.default_rng(0)
    logits = (
        rng.normal(size=(5, 300, 3))
        + np.linspace(0, 3, 5)[:, None, None] * np.eye(3)[rng.integers(0, 3, 300)]
    )
    labels = rng.integers(0, 3, 300)
    dyn = TrainingDynamics.from_logits(logits, labels, ids=[f"s{i}" for i in range(300)])
    return dyn.save(tmp_path / "dynamics.npz"), dyn


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cartokit.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_help_shows_examples_without_importing_torch():
    code = (
        "import sys\nfrom cartokit.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "examples:" in out.stdout
    assert "cartokit select metrics.csv" in out.stdout
    assert out.stdout.strip().endswith("NO-TORCH")


def test_metrics_writes_the_library_table(saved_dynamics, tmp_path, capsys):
    path, dyn = saved_dynamics
    out = tmp_path / "m.csv"
    assert main(["metrics", str(path), "-o", str(out)]) == 0
    table = pd.read_csv(out, index_col="id")
    expected = compute_metrics(dyn)
    assert list(table.index) == list(expected.index)
    for col in ("confidence", "variability", "correctness", "aum", "el2n"):
        np.testing.assert_allclose(table[col], expected[col], rtol=1e-5, atol=1e-6)
    assert (table["forgetting"] == expected["forgetting"]).all()
    assert "300 samples x 5 checkpoints x 3 classes" in capsys.readouterr().err


def test_metrics_burn_in_drops_checkpoints(saved_dynamics, tmp_path):
    path, dyn = saved_dynamics
    out = tmp_path / "m.csv"
    assert main(["metrics", str(path), "-o", str(out), "--burn-in", "2"]) == 0
    table = pd.read_csv(out, index_col="id")
    expected = compute_metrics(dyn, burn_in=2)
    np.testing.assert_allclose(table["confidence"], expected["confidence"], rtol=1e-5)


def test_select_matches_library_and_sizes(saved_dynamics, tmp_path):
    path, dyn = saved_dynamics
    metrics_csv = tmp_path / "m.csv"
    main(["metrics", str(path), "-o", str(metrics_csv)])
    table = pd.read_csv(metrics_csv, index_col="id")
    ids_txt = tmp_path / "ids.txt"
    args = ["select", str(metrics_csv), "--by", "variability", "--fraction", "0.33"]
    assert main([*args, "-o", str(ids_txt)]) == 0
    got = ids_txt.read_text().split()
    assert len(got) == 99  # round(0.33 * 300)
    assert got == [str(i) for i in select(table, by="variability", fraction=0.33)]
    top = table["variability"].sort_values(ascending=False, kind="stable")
    assert set(got) == set(top.index[:99])

    lowest = tmp_path / "low.txt"
    main(
        [
            "select",
            str(metrics_csv),
            "--by",
            "confidence",
            "--fraction",
            "0.1",
            "--lowest",
            "-o",
            str(lowest),
        ]
    )
    assert set(lowest.read_text().split()) == set(table["confidence"].nsmallest(30).index)


def test_select_mixture_and_region(saved_dynamics, tmp_path):
    path, _ = saved_dynamics
    metrics_csv = tmp_path / "m.csv"
    main(["metrics", str(path), "-o", str(metrics_csv)])
    table = pd.read_csv(metrics_csv, index_col="id")
    out = tmp_path / "mix.txt"
    assert (
        main(["select", str(metrics_csv), "--mixture", "17% ambiguous + 10% easy", "-o", str(out)])
        == 0
    )
    got = out.read_text().split()
    assert len(got) == 51 + 30 and len(set(got)) == len(got)
    assert got == [str(i) for i in select_mixture(table, {"ambiguous": 0.17, "easy": 0.10})]


def test_errors_are_one_line_with_nonzero_exit_and_keep_old_output(saved_dynamics, tmp_path):
    path, _ = saved_dynamics
    metrics_csv = tmp_path / "m.csv"
    main(["metrics", str(path), "-o", str(metrics_csv)])
    ids_txt = tmp_path / "ids.txt"
    ids_txt.write_text("previous result\n")

    bad = run_cli("select", str(metrics_csv), "--fraction", "1.5", "-o", str(ids_txt))
    assert bad.returncode == 1
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cartokit select: error:")
    assert "fraction" in lines[0] and "1.5" in lines[0]
    assert ids_txt.read_text() == "previous result\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]

    missing = run_cli("metrics", str(tmp_path / "nope"), "-o", str(tmp_path / "x.csv"))
    assert missing.returncode == 1
    assert len(missing.stderr.strip().splitlines()) == 1
    assert "nope" in missing.stderr
    assert not (tmp_path / "x.csv").exists()

    unknown = run_cli("select", str(metrics_csv), "--by", "shininess", "-o", str(ids_txt))
    assert unknown.returncode == 1 and "shininess" in unknown.stderr
    assert "variability" in unknown.stderr  # lists the valid choices


def test_select_rejects_a_file_that_is_not_a_metrics_table(tmp_path, capsys):
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    assert main(["select", str(other), "-o", str(tmp_path / "ids.txt")]) == 1
    err = capsys.readouterr().err
    assert "lacks the column(s)" in err and "cartokit metrics" in err


def test_warnings_print_as_one_line_naming_the_command(saved_dynamics, tmp_path, capsys):
    """A library warning (here: too few checkpoints) is one line, not Python's two with a
    quoted source line; outside the command, warnings print as before."""
    import warnings

    rng = np.random.default_rng(0)
    two = TrainingDynamics.from_logits(rng.normal(size=(2, 30, 3)), rng.integers(0, 3, 30))
    path = two.save(tmp_path / "two.npz")
    before = warnings.showwarning
    assert main(["metrics", str(path), "-o", str(tmp_path / "m.csv")]) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == (
        "cartokit metrics: warning: compute_metrics uses 2 checkpoint(s); variability and "
        "forgetting need at least 3 to mean much. Record more epochs, or use sub-epoch "
        "checkpoints."
    )
    assert len(lines) == 2 and lines[1].startswith("30 samples x 2 checkpoints")
    assert warnings.showwarning is before
