"""Notebook 08 (federated maps): its shape, the client split it relies on, and a CI-sized run
under papermill whose hidden check cell asserts the key results."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from notebook_cells import (
    NOTEBOOK_DIR,
    check_parameters_validated,
    check_thin_notebook,
    code_cells,
)

from cartokit import study
from cartokit.data import load_digits
from cartokit.study.federated import MIN_CLIENT_SAMPLES, label_table, split_clients

NAME = "08_federated"


def test_parameters_first_thin_stripped_and_colab_ready():
    check_thin_notebook(NAME, forbidden=("import torch",))


def test_the_parameters_cell_agrees_with_the_schema_and_is_validated_whole():
    defaults = check_parameters_validated(NAME)
    assert 3 <= defaults["num_clients"] <= 5  # the 3-5 clients


def test_clients_partition_the_set_with_label_skew_that_follows_the_concentration():
    train = load_digits().train
    skewed = split_clients(train, 4, skew=0.1, seed=0)
    even = split_clients(train, 4, skew=1000.0, seed=0)
    for clients in (skewed, even):
        ids = np.concatenate([c.ids for c in clients.values()])
        assert sorted(ids.tolist()) == sorted(train.ids.tolist())  # each sample once
        assert min(len(c) for c in clients.values()) >= MIN_CLIENT_SAMPLES
    whole = np.bincount(train.labels) / len(train)

    def distance(clients):  # mean total-variation distance of a client's labels to the whole's
        table = label_table(clients).drop(columns="samples")
        shares = table.to_numpy() / table.to_numpy().sum(axis=1, keepdims=True)
        return float(np.abs(shares - whole).sum(axis=1).mean() / 2)

    assert distance(skewed) > 0.4 > 0.05 > distance(even)
    again = split_clients(train, 4, skew=0.1, seed=0)
    assert all(np.array_equal(again[k].ids, skewed[k].ids) for k in skewed)  # seeded
    table = label_table(skewed)
    assert list(table.columns) == [*train.class_names, "samples"]
    assert table["samples"].sum() == len(train)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_clients": 1, "skew": 1.0}, r"'num_clients' parameter of split_clients"),
        ({"num_clients": 3, "skew": 0.0}, r"'skew' parameter of split_clients"),
        ({"num_clients": 200, "skew": 0.01}, r"no draw out of 100 gave each of 200 clients"),
    ],
)
def test_bad_client_splits_are_one_line_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        split_clients(load_digits().train, **kwargs)


def test_08_at_its_defaults_on_digits(tmp_path):
    papermill = pytest.importorskip("papermill")
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
    shares = pd.read_csv(out / "selection_shares.csv", index_col=0)
    assert list(shares.index) == [f"client{k}" for k in range(4)]
    assert list(shares.columns) == ["full", "random", "ambiguous, global", "ambiguous, per client"]
    results = pd.read_csv(out / "retrain.csv")
    assert set(results["subset"]) == set(shares.columns) and set(results["seed"]) == {0, 1}
    assert sorted(p.name for p in (out / "stores").iterdir()) == list(shares.index)
    merged = pd.read_csv(out / "merged_metrics.csv", index_col=0)
    assert merged["source"].value_counts().sort_index().tolist() == (
        pd.read_csv(out / "clients.csv", index_col=0)["samples"].tolist()
    )
