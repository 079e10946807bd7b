"""The `cartokit` console script: outputs match the library, errors are one line, exit != 0."""

from __future__ import annotations

import re
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
        "cartokit metrics: warning: cartokit metrics uses 2 checkpoint(s); variability and "
        "forgetting need at least 3 to mean much. Record more epochs, or use sub-epoch "
        "checkpoints."
    )
    assert len(lines) == 2 and lines[1].startswith("30 samples x 2 checkpoints")
    assert warnings.showwarning is before


# ------------------------------------------------------------------------------ help texts


def _subparsers() -> dict:
    import argparse

    from cartokit.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_each_subcommand_shows_only_its_own_examples():
    from cartokit.cli import COMMAND_EXAMPLES

    for command, sub in _subparsers().items():
        text = sub.format_help()
        shown = [line.split()[1] for line in text.splitlines() if line.startswith("  cartokit ")]
        assert shown and set(shown) == {command}, (command, shown)
        assert COMMAND_EXAMPLES[command] in text


def test_every_option_has_help_and_shows_its_default():
    for command, sub in _subparsers().items():
        text = " ".join(sub.format_help().split())
        for action in sub._actions:
            assert action.help, (command, action.dest)
            default = action.default
            if action.option_strings and default not in (None, False, [], "==SUPPRESS=="):
                assert f"(default: {default})" in text, (command, action.dest)
    select = " ".join(_subparsers()["select"].format_help().split())
    assert "--fraction FRACTION share of all samples to select, in (0, 1] (default: 0.33;" in select
    assert "(default: ambiguous; random with --region)" in select
    for region, default in (("ambiguous", 0.2), ("easy-to-learn", 0.7), ("hard-to-learn", 0.3)):
        assert f"in the {region} region (default: {default})" in select
    assert "--seed SEED seed of random choices (default: 0)" in select
    demo = " ".join(_subparsers()["demo"].format_help().split())
    assert "flipped at random (default: 0.1)" in demo and "(default: 20)" in demo
    metrics = " ".join(_subparsers()["metrics"].format_help().split())
    assert "--burn-in K leave out the first K recorded checkpoints" in metrics


# ------------------------------------------------------------------------------ errors


def _internal_names() -> set[str]:
    """Every function and method of the package with an underscore in its name, less the words
    a user knows: selectors, metric columns, study parameters."""
    import ast

    from cartokit import SELECTORS
    from cartokit.study import SCHEMA

    package = Path(__file__).resolve().parents[1] / "cartokit"
    names = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
    rng = np.random.default_rng(0)
    columns = compute_metrics(
        TrainingDynamics.from_logits(rng.normal(size=(3, 4, 2)), [0, 1, 0, 1])
    ).columns
    known = {*SELECTORS, *columns, *SCHEMA}
    return {n for n in names if "_" in n.strip("_") and n.strip("_") not in known}


BAD_INPUTS = [
    ["metrics", "nope.jsonl", "-o", "o.csv"],
    ["metrics", "bad.jsonl", "-o", "o.csv"],
    ["metrics", "m.csv", "-o", "o.csv"],
    ["metrics", "dyn.npz", "-o", "o.csv", "--burn-in", "30"],
    ["metrics", "dyn.npz", "-o", "o.csv", "--burn-in", "-1"],
    ["metrics", "dyn.npz", "-o", "o.csv", "--format", "allenai"],
    ["metrics", "dyn.npz", "-o", "o.csv", "--format", "trustai"],
    ["select", "nope.csv", "-o", "i.txt"],
    ["select", "bad.csv", "-o", "i.txt"],
    ["select", "m.csv", "--by", "ambigous", "-o", "i.txt"],
    ["select", "m.csv", "--fraction", "1.5", "-o", "i.txt"],
    ["select", "m.csv", "--fraction", "0.0001", "-o", "i.txt"],
    ["select", "m.csv", "--mixture", "17% ambigous + 10% easy", "-o", "i.txt"],
    ["select", "m.csv", "--mixture", "90% ambiguous + 90% easy", "-o", "i.txt"],
    ["select", "m.csv", "--mixture", "10% ambiguous", "--seed", "-2", "-o", "i.txt"],
    ["select", "m.csv", "--easy-confidence", "0.2", "-o", "i.txt"],
    ["select", "m.csv", "--ambiguous-variability", "0.9", "-o", "i.txt"],
    ["select", "m.csv", "--by", "random", "--seed", "-1", "-o", "i.txt"],
    ["select", "m.csv", "--by", "random", "--lowest", "-o", "i.txt"],
    ["select", "m.csv", "--region", "hard", "--lowest", "-o", "i.txt"],
    ["demo", "--epochs", "1", "--out", "d"],
    ["demo", "--noise", "1.5", "--out", "d"],
    ["demo", "--seed", "-3", "--out", "d"],
    ["run", "--preset", "digitz", "--out", "r"],
    ["run", "-p", "epochs=1", "--out", "r"],
    ["grid", "nope.yaml"],
]


def test_errors_name_options_and_files_never_an_internal_function(
    saved_dynamics, tmp_path, monkeypatch, capsys
):
    """Each bad input gets one line in the user's terms: the option (--burn-in), the file,
    the command; never the library function that found it ("detect_format: ...")."""
    from cartokit.cli import _options

    path, _ = saved_dynamics
    monkeypatch.chdir(tmp_path)
    path.rename("dyn.npz")
    assert main(["metrics", "dyn.npz", "-o", "m.csv"]) == 0
    Path("bad.jsonl").write_text("not json\n")
    Path("bad.csv").write_text("a,b\n1,2\n")
    capsys.readouterr()
    internal = _internal_names()
    assert {"detect_format", "compute_metrics", "select_mixture", "run_demo"} <= internal
    subparsers = _subparsers()
    for argv in BAD_INPUTS:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"cartokit {argv[0]}: error: "), err
        named = {n for n in internal if re.search(rf"\b{n}\b", err)}
        assert not named, (argv, err)
        assert " parameter of select" not in err and "or None" not in err, err
        options = _options(subparsers[argv[0]])
        assert not [d for d in options if "_" in d and re.search(rf"\b{d}\b", err)], err
    assert not Path("o.csv").exists() and not Path("i.txt").exists()


def test_error_lines_in_the_users_terms(saved_dynamics, tmp_path, monkeypatch, capsys):
    path, _ = saved_dynamics
    monkeypatch.chdir(tmp_path)
    main(["metrics", str(path), "-o", "m.csv"])
    capsys.readouterr()

    def line(*argv: str) -> str:
        assert main(list(argv)) == 1
        return capsys.readouterr().err.strip()

    assert line("metrics", "nope.jsonl", "-o", "o.csv") == (
        "cartokit metrics: error: nope.jsonl does not exist."
    )
    assert line("metrics", str(path), "-o", "o.csv", "--burn-in", "-1") == (
        "cartokit metrics: error: --burn-in must be an int >= 0. Got -1 instead."
    )
    assert line("select", "m.csv", "--fraction", "1.5", "-o", "i.txt") == (
        "cartokit select: error: --fraction must be a float in the range (0, 1]. Got 1.5 instead."
    )
    assert line("select", "m.csv", "--easy-confidence", "0.2", "-o", "i.txt") == (
        "cartokit select: error: --hard-confidence (0.3) must not exceed --easy-confidence "
        "(0.2); lower --hard-confidence or raise --easy-confidence."
    )
    assert line("select", "m.csv", "--region", "hard", "--lowest", "-o", "i.txt") == (
        "cartokit select: error: --lowest has no meaning for a random choice (--by random, "
        "which --region implies without --by); leave --lowest out, or give --by a selector or "
        "a column"
    )


def test_a_misspelled_selector_gets_a_did_you_mean(saved_dynamics, tmp_path, capsys):
    path, _ = saved_dynamics
    metrics_csv = tmp_path / "m.csv"
    main(["metrics", str(path), "-o", str(metrics_csv)])
    capsys.readouterr()
    out = str(tmp_path / "ids.txt")
    assert main(["select", str(metrics_csv), "--by", "ambigous", "-o", out]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cartokit select: error: --by must be a selector name")
    assert err.strip().endswith("Did you mean 'ambiguous'?")
    assert (
        main(["select", str(metrics_csv), "--mixture", "17% ambigous + 10% easy", "-o", out]) == 1
    )
    assert capsys.readouterr().err.strip().endswith("Did you mean 'ambiguous'?")
