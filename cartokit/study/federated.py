"""Federated maps, simulated (notebook ``08_federated``): the training set split across clients
with label skew, one model and one data map per client, each recorded into a store of its own,
the maps merged (:func:`cartokit.merge_dynamics`), and selections over the merged map compared.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cartokit._validation import Interval, check_param
from cartokit.data import Split
from cartokit.store import is_store
from cartokit.study.steps import model_kind, small_model_threads

__all__ = ["record_clients", "label_table", "selection_shares", "split_clients"]

#: Fewest samples a client may get: a map and a third of it need a few per client.
MIN_CLIENT_SAMPLES = 10
_DRAWS = 100


def split_clients(
    split: Split, num_clients: int, *, skew: float, seed: int = 0
) -> dict[str, Split]:
    """Split ``split`` across ``num_clients`` clients with label skew.

    Each class's samples are shared among the clients in proportions drawn from a symmetric
    Dirichlet distribution of concentration ``skew`` (Hsu et al., 2019, "Measuring the Effects
    of Non-Identical Data Distribution for Federated Visual Classification"): small values
    (0.1) give each client a few classes, large ones (100) nearly the same mix as the whole.
    Every sample goes to exactly one client. Draws are repeated (seeded) until every client
    has at least :data:`MIN_CLIENT_SAMPLES` samples.

    Returns
    -------
    dict of str to Split
        ``client0``, ``client1``, ... to each client's rows, in the order of ``split``.

    Raises
    ------
    ValueError
        For fewer than 2 clients, a ``skew`` that is not positive, or when no draw out of 100
        gives every client enough samples (fewer clients, a larger skew, or more data).

    Examples
    --------
    >>> from cartokit.data import load_digits
    >>> clients = split_clients(load_digits().train, 3, skew=0.5)
    >>> sum(len(c) for c in clients.values()), list(clients)
    (1437, ['client0', 'client1', 'client2'])
    """
    caller = "split_clients"
    num_clients = check_param("num_clients", num_clients, Interval(int, 2, None), caller=caller)
    skew = check_param("skew", skew, Interval(float, 0, None, closed="neither"), caller=caller)
    rng = np.random.default_rng(seed)
    labels = np.asarray(split.labels)
    owner = np.empty(len(labels), dtype=np.int64)
    for _ in range(_DRAWS):
        for label in np.unique(labels):
            rows = rng.permutation(np.flatnonzero(labels == label))
            shares = rng.dirichlet(np.full(num_clients, skew))
            cuts = np.round(np.cumsum(shares)[:-1] * len(rows)).astype(np.int64)
            for client, part in enumerate(np.split(rows, cuts)):
                owner[part] = client
        sizes = np.bincount(owner, minlength=num_clients)
        if sizes.min() >= MIN_CLIENT_SAMPLES:
            return {
                f"client{k}": split.subset(
                    np.flatnonzero(owner == k), name=f"{split.name}[client{k}]"
                )
                for k in range(num_clients)
            }
    raise ValueError(
        f"split_clients: no draw out of {_DRAWS} gave each of {num_clients} clients "
        f"{MIN_CLIENT_SAMPLES} samples of the {len(labels)} (skew={skew}); use fewer clients, "
        "a larger skew or more data."
    )


def label_table(clients: Mapping[str, Split]) -> pd.DataFrame:
    """Samples per class (columns, by class name) for each client (rows), and their total."""
    first = next(iter(clients.values()))
    counts = {
        name: np.bincount(part.labels, minlength=len(first.class_names))
        for name, part in clients.items()
    }
    table = pd.DataFrame.from_dict(counts, orient="index", columns=list(first.class_names))
    table["samples"] = table.sum(axis=1)
    return table.rename_axis("client")


def record_clients(
    clients: Mapping[str, Split],
    out: str | os.PathLike[str],
    *,
    model: str,
    epochs: int,
    lr: float,
    seed: int = 0,
    batch_size: int = 64,
) -> dict[str, Path]:
    """Train one model per client on its own data, each recording its map into a store of its
    own, ``out/<client>`` (a store left there by an earlier run is replaced). Returns the
    stores, client to path, for :func:`cartokit.merge_dynamics`."""
    from cartokit.models import build_model
    from cartokit.recorder import DynamicsRecorder
    from cartokit.train import fit

    root = Path(out)
    stores = {}
    for name, part in clients.items():
        path = root / name
        if is_store(path):
            shutil.rmtree(path)
        recorder = DynamicsRecorder(
            len(part), len(part.class_names), sample_ids=part.ids,
            class_names=list(part.class_names), store=path,
        )  # fmt: skip
        with small_model_threads(model, part):
            net = build_model(model_kind(model, part), part, seed=seed)
            fit(
                net, part, epochs=epochs, lr=lr, seed=seed, batch_size=batch_size,
                recorder=recorder, progress=False,
            )  # fmt: skip
        stores[name] = path
    return stores


def selection_shares(
    metrics: pd.DataFrame, selections: Mapping[str, Sequence[Any]]
) -> pd.DataFrame:
    """For each selection (columns) and source of a merged map (rows): the share of the
    source's samples that were selected."""
    sources = metrics["source"]
    order = list(sources.cat.categories) if hasattr(sources, "cat") else list(pd.unique(sources))
    sizes = sources.value_counts().reindex(order)
    table = {}
    for name, ids in selections.items():
        chosen = sources.loc[np.asarray(ids)].value_counts().reindex(order, fill_value=0)
        table[name] = chosen / sizes
    return pd.DataFrame(table).rename_axis("source")
