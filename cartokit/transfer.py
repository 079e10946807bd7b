"""Map transfer: map the data with a small model, select, train a larger one on the selection.

Swayamdipta et al. (2020) map the data with the model they then retrain. A map from a smaller,
cheaper model is worth as much when it ranks the samples alike: :func:`map_agreement` measures
that (Spearman correlation per metric, a region confusion matrix, Jaccard overlap of the
selected subsets), and :func:`train_on_subsets` trains the large model on each candidate subset
and reports accuracy and what the training cost.

:func:`model_factory` builds the small and large models of notebook 06 by name: an MLP or a CNN
for images, a linear or a deeper head on frozen all-MiniLM-L6-v2 embeddings (from
:func:`cartokit.pipeline.model_data`), or the encoder itself, frozen or fine-tuned, for text.

Examples
--------
>>> import numpy as np, pandas as pd
>>> ids = pd.Index(range(6), name="id")
>>> m1 = pd.DataFrame({"confidence": [0.9, 0.8, 0.2, 0.5, 0.95, 0.1],
...                    "variability": [0.05, 0.1, 0.1, 0.3, 0.02, 0.05]}, index=ids)
>>> m2 = m1.assign(confidence=m1["confidence"] * 0.9)
>>> agreement = map_agreement(m1, m2, fraction=0.5)
>>> float(agreement.spearman["confidence"]), float(agreement.jaccard["hard"])
(1.0, 1.0)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cartokit._validation import check_int
from cartokit.regions import REGIONS, Thresholds, map_coordinates, region_codes

if TYPE_CHECKING:
    from torch import nn

    from cartokit.data import Split

__all__ = [
    "MODEL_KINDS",
    "MapAgreement",
    "map_agreement",
    "model_factory",
    "train_on_subsets",
]

_DEFAULT_COLUMNS = ("confidence", "variability", "correctness", "forgetting", "aum", "el2n")
_DEFAULT_SELECTORS = ("ambiguous", "easy", "hard")


@dataclass
class MapAgreement:
    """How alike two data maps of the same samples are (see :func:`map_agreement`).

    Attributes
    ----------
    spearman : pandas.Series
        Spearman rank correlation of each metric between the maps, in [-1, 1].
    regions : pandas.DataFrame
        Region confusion matrix: samples by region in the first map (rows) and the second
        (columns), with an ``unassigned`` row or column only when some sample has no region.
    region_agreement : float
        Share of samples in the same region in both maps.
    jaccard : pandas.Series
        Per selector, ``|A & B| / |A | B|`` of the subsets that :func:`~cartokit.select`
        takes from each map at ``fraction``.
    fraction : float
    samples : int
        Samples in both maps (the ones compared).
    """

    spearman: pd.Series
    regions: pd.DataFrame
    region_agreement: float
    jaccard: pd.Series
    fraction: float
    samples: int

    def __repr__(self) -> str:
        rho = ", ".join(f"{k} {v:.2f}" for k, v in self.spearman.items())
        jac = ", ".join(f"{k} {v:.2f}" for k, v in self.jaccard.items())
        return (
            f"MapAgreement({self.samples} samples; Spearman: {rho}; same region: "
            f"{self.region_agreement:.2f}; Jaccard at {self.fraction:g}: {jac})"
        )


def map_agreement(
    m1: pd.DataFrame,
    m2: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    thresholds: Thresholds | None = None,
    fraction: float = 0.33,
    selectors: Sequence[str] = _DEFAULT_SELECTORS,
) -> MapAgreement:
    """Compare two data maps of the same samples, e.g. a small model's and a large model's.

    Samples are matched by id (the tables' index); only ids in both are compared.

    Parameters
    ----------
    m1, m2 : pandas.DataFrame
        Metrics tables (:func:`~cartokit.compute_metrics`), indexed by sample id.
    columns : sequence of str, optional
        Metrics to correlate; default those of confidence, variability, correctness,
        forgetting, aum and el2n present in both tables.
    thresholds : Thresholds, optional
        Region cut points for both maps; ``None`` means ``Thresholds()``.
    fraction : float in (0, 1], default 0.33
        Share of the compared samples each selector takes from each map.
    selectors : sequence of str, default ("ambiguous", "easy", "hard")
        Anything :func:`~cartokit.select` takes as ``by``.

    Returns
    -------
    MapAgreement

    Raises
    ------
    ValueError
        If the tables share no sample id, or a column is missing or not numeric.
    """
    from scipy.stats import spearmanr

    from cartokit.selection import select

    caller = "map_agreement"
    for name, table in (("m1", m1), ("m2", m2)):
        if not isinstance(table, pd.DataFrame):
            raise TypeError(
                f"The '{name}' parameter of {caller} must be a pandas DataFrame, such as the "
                f"output of compute_metrics. Got {type(table).__name__} instead."
            )
        if not table.index.is_unique:
            raise ValueError(f"{caller}: the index of {name} must hold unique sample ids.")
    common = m1.index.intersection(m2.index, sort=False)
    if len(common) == 0:
        raise ValueError(
            f"{caller}: m1 and m2 share no sample id, so there is nothing to compare. Map the "
            "same training samples with both models (ids are the tables' index)."
        )
    a, b = m1.loc[common], m2.loc[common]
    if columns is None:
        columns = [c for c in _DEFAULT_COLUMNS if c in a.columns and c in b.columns]
    else:
        columns = list(columns)
        missing = [c for c in columns if c not in a.columns or c not in b.columns]
        if missing:
            raise ValueError(
                f"The 'columns' parameter of {caller} names {missing}, not in both tables. "
                f"Columns of both: {[c for c in a.columns if c in b.columns]}."
            )
    rho = {}
    for column in columns:
        x = pd.to_numeric(a[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        y = pd.to_numeric(b[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        both = np.isfinite(x) & np.isfinite(y)
        constant = both.sum() < 2 or np.ptp(x[both]) == 0 or np.ptp(y[both]) == 0
        rho[column] = np.nan if constant else float(spearmanr(x[both], y[both]).statistic)

    thresholds = Thresholds.coerce(thresholds, caller=caller)
    codes_a = region_codes(*map_coordinates(a, caller=caller), thresholds)
    codes_b = region_codes(*map_coordinates(b, caller=caller), thresholds)
    names = list(REGIONS)
    if (codes_a < 0).any() or (codes_b < 0).any():
        names.append("unassigned")
    label = np.asarray(names, dtype=object)
    confusion = pd.crosstab(
        pd.Categorical(label[codes_a], categories=names),
        pd.Categorical(label[codes_b], categories=names),
        dropna=False,
    )
    confusion.index.name, confusion.columns.name = "m1", "m2"

    jaccard = {}
    for by in selectors:
        first = set(select(a, by, fraction).tolist())
        second = set(select(b, by, fraction).tolist())
        jaccard[by] = len(first & second) / len(first | second)
    return MapAgreement(
        spearman=pd.Series(rho, name="spearman", dtype=np.float64),
        regions=confusion,
        region_agreement=float((codes_a == codes_b).mean()),
        jaccard=pd.Series(jaccard, name="jaccard", dtype=np.float64),
        fraction=float(fraction),
        samples=len(common),
    )


# ----------------------------------------------------------------------------------------------
# Models and data for the experiments

#: Model kinds for :func:`model_factory`: name -> what it builds.
MODEL_KINDS: dict[str, str] = {
    "linear": "logistic regression: MLP(hidden=()) (a linear head on embeddings)",
    "mlp": "MLP(hidden=(128,))",
    "deep_mlp": "MLP(hidden=(512, 256), dropout=0.1) (a deeper head on embeddings)",
    "cnn": "CNN(channels=(16, 32)) on the split's image_shape",
    "wide_cnn": "CNN(channels=(32, 64))",
    "minilm_frozen": "TextClassifier(freeze_encoder=True): all-MiniLM-L6-v2 and a linear head",
    "minilm_finetune": "TextClassifier(freeze_encoder=False): all of all-MiniLM-L6-v2 trained",
}


def model_factory(kind: str, *, seed: int = 0) -> Callable[[Split], nn.Module]:
    """A maker of fresh, seeded models of a named kind (:data:`MODEL_KINDS`).

    The result, ``factory(split) -> torch.nn.Module``, sizes each model for the split it gets;
    pass it wherever a ``make_model`` or ``make_student`` callable is wanted.

    Examples
    --------
    >>> from cartokit.data import load_dataset
    >>> model_factory("linear")(load_dataset("digits").train)
    MLP(in_features=64, hidden=(), num_classes=10, dropout=0.0)
    """
    if kind not in MODEL_KINDS:
        raise ValueError(
            f"The 'kind' parameter of model_factory must be one of {list(MODEL_KINDS)}. "
            f"Got {kind!r} instead."
        )
    seed = check_int("seed", seed, caller="model_factory", minimum=0)

    def build(split: Split) -> nn.Module:
        from cartokit.models import CNN, MLP, TextClassifier

        if kind == "linear":
            return MLP.from_split(split, hidden=(), seed=seed)
        if kind == "mlp":
            return MLP.from_split(split, hidden=(128,), seed=seed)
        if kind == "deep_mlp":
            return MLP.from_split(split, hidden=(512, 256), dropout=0.1, seed=seed)
        if kind == "cnn":
            return CNN.from_split(split, seed=seed)
        if kind == "wide_cnn":
            return CNN.from_split(split, channels=(32, 64), seed=seed)
        return TextClassifier.from_split(split, freeze_encoder=kind == "minilm_frozen", seed=seed)

    build.__name__ = f"build_{kind}"
    return build


def train_on_subsets(
    make_model: Callable[[Split], nn.Module],
    train: Split,
    subsets: Mapping[str, Sequence[Any] | np.ndarray | None],
    *,
    eval_data: Mapping[str, Any] | None = None,
    epochs: int = 10,
    equal_budget: bool = False,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    map_seconds: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Train a fresh model on each subset of ``train`` and report accuracy and training cost.

    Parameters
    ----------
    make_model : callable
        ``make_model(split) -> torch.nn.Module``, a fresh model each call.
    train : Split
    subsets : dict of str to ids or None
        Name -> sample ids of ``train`` (``None``: all of it).
    eval_data : dict of str to data, optional
        In- and out-of-distribution test sets, e.g. ``{"test": ..., "tweets": ...}``.
    epochs : int, default 10
    equal_budget : bool, default False
        Train each subset for :func:`~cartokit.distillation.budget_epochs` epochs (as many samples
        as ``epochs`` on the full data) instead of ``epochs``.
    batch_size, lr, seed
        As in :func:`~cartokit.fit`.
    map_seconds : dict of str to float, optional
        Wall time spent building the map a subset came from (e.g. the small model's training),
        added to its row as ``map_seconds`` and counted in ``total_seconds``.

    Returns
    -------
    pandas.DataFrame
        Indexed by subset name: ``samples``, ``epochs``, ``sample_epochs``, the final
        ``<name>_accuracy`` of each evaluation set, ``train_seconds``, ``map_seconds`` and
        ``total_seconds``.
    """
    from cartokit.data import Split
    from cartokit.distillation import _subset_positions, budget_epochs
    from cartokit.train import evaluate, fit

    caller = "train_on_subsets"
    if not isinstance(train, Split):
        raise TypeError(
            f"The 'train' parameter of {caller} must be a cartokit Split. "
            f"Got {type(train).__name__} instead."
        )
    if not isinstance(subsets, Mapping) or not subsets:
        raise TypeError(
            f"The 'subsets' parameter of {caller} must be a non-empty dict from names to sample "
            f"ids (or None for all the data). Got {type(subsets).__name__} instead."
        )
    unknown = sorted(set(map_seconds or {}) - set(subsets))
    if unknown:
        raise ValueError(
            f"The 'map_seconds' parameter of {caller} names subsets {unknown} that are not in "
            f"subsets {list(subsets)}."
        )
    rows = []
    for name, ids in subsets.items():
        part = (
            train
            if ids is None
            else train.subset(
                _subset_positions(train, ids, caller=caller), name=f"{train.name}[{name}]"
            )
        )
        run_epochs = budget_epochs(len(train), len(part), epochs) if equal_budget else epochs
        started = time.perf_counter()
        model = fit(
            make_model(part), part, epochs=run_epochs, batch_size=batch_size, lr=lr, seed=seed,
            record=False, progress=False,
        ).model  # fmt: skip
        seconds = time.perf_counter() - started  # training only: evaluation comes after
        row = {"subset": name, "samples": len(part), "epochs": run_epochs,
               "sample_epochs": len(part) * run_epochs}  # fmt: skip
        for key, split in (eval_data or {}).items():
            row[f"{key}_accuracy"] = evaluate(model, split).accuracy
        extra = float((map_seconds or {}).get(name, 0.0))
        row.update(train_seconds=seconds, map_seconds=extra, total_seconds=seconds + extra)
        rows.append(row)
    return pd.DataFrame(rows).set_index("subset")
