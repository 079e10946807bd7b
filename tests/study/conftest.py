"""Fixtures of the study tests: a small recorded digits run, and a stand-in for papermill."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from study_helpers import fake_results

from cartokit import study
from cartokit.models import build_model
from cartokit.study import NOTEBOOKS, runner


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> study.Run:
    """Notebook 01's outputs for a small digits run: 500 images, 4 epochs, 10 % flipped."""
    from cartokit import fit

    run_dir = tmp_path_factory.mktemp("run")
    params = study.validate_params(
        dataset="digits",
        model="mlp",
        freeze_encoder=True,
        epochs=4,
        mode="train_pass",
        seed=0,
        noise=0.1,
        max_samples=500,
        batch_size=64,
        lr=0.003,
    )
    bundle = study.load_data("digits", noise=0.1, max_samples=500, seed=0)
    net = build_model(study.model_kind("mlp", bundle.train), bundle.train, seed=0)
    with study.small_model_threads("mlp", bundle.train):
        result = fit(net, bundle.train, epochs=4, lr=0.003, seed=0, progress=False)
    study.save_run(run_dir, result, bundle, params)
    return study.load_run(run_dir)


@pytest.fixture()
def fake_papermill(monkeypatch):
    """Stand in for papermill: each notebook writes a marker file, and results.csv at the end;
    ``fail["at"]`` names a notebook that fails, ``fail["interrupt"]`` one that is interrupted."""
    calls: list[tuple[str, dict]] = []
    fail: dict[str, str] = {}

    def execute(source, target, parameters, *, kernel, cwd, progress):
        name = Path(source).stem
        calls.append((name, dict(parameters)))
        run = Path(parameters["run_dir"])
        # as papermill writes it: the injected parameters, and an output that prints a path
        injected = "".join(f"{k} = {v!r}\n" for k, v in parameters.items())
        printed = {"output_type": "stream", "name": "stdout", "text": f"wrote {run}/x.csv\n"}
        cell = {"cell_type": "code", "metadata": {"tags": ["injected-parameters"]}}
        notebook = {
            "cells": [{**cell, "source": injected, "outputs": [printed]}],
            "metadata": {"papermill": {"parameters": parameters, "output_path": str(target)}},
        }
        Path(target).write_text(json.dumps(notebook))
        if fail.get("interrupt") == name:
            raise KeyboardInterrupt
        if fail.get("at") == name:
            error = RuntimeError("boom")
            error.ename, error.evalue, error.exec_count = "ValueError", "The 'x' parameter", 3
            raise error
        (run / f"{name}.done").write_text(json.dumps(parameters))
        if name == NOTEBOOKS[-1]:
            fake_results().to_csv(run / "results.csv", index=False)

    monkeypatch.setattr(runner, "execute_notebook", execute)
    return calls, fail
