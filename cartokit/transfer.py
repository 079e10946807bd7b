"""Map transfer: map the data with a small model, select, train a larger one on the selection.

Swayamdipta et al. (2020) map the data with the model they then retrain. A map from a smaller,
cheaper model is worth as much when it ranks the samples alike: :func:`map_agreement` measures
that (Spearman correlation per metric, a region confusion matrix, Jaccard overlap of the
selected subsets), and :func:`train_on_subsets` trains the large model on each candidate subset
and reports accuracy and what the training cost.

:func:`cartokit.models.model_factory` builds the small and large models of notebook 06 by name.

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

from cartokit._deprecation import moved
from cartokit._validation import ListOf, Options, check_model_maker, check_param, positions_of
from cartokit.regions import REGIONS, Thresholds, map_coordinates, region_codes

if TYPE_CHECKING:
    from torch import nn

    from cartokit.data import DataBundle, Split

__all__ = [
    "MapAgreement",
    "MapRuns",
    "ModelChoice",
    "choose_models",
    "map_agreement",
    "record_maps",
    "train_on_subsets",
]

# Moved to cartokit.models: old name -> new name, kept for one release.
__getattr__ = moved(
    __name__,
    {"MODEL_KINDS": "cartokit.models.MODELS", "model_factory": "cartokit.models.model_factory"},
)


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
    from cartokit.distillation import budget_epochs
    from cartokit.models import threads_for
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
    check_model_maker(make_model, caller=caller)
    unknown = sorted(set(map_seconds or {}) - set(subsets))
    if unknown:
        raise ValueError(
            f"The 'map_seconds' parameter of {caller} names subsets {unknown} that are not in "
            f"subsets {list(subsets)}."
        )
    rows = []
    with threads_for(make_model):
        for name, ids in subsets.items():
            part = train if ids is None else _part(train, ids, name, caller=caller)
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


def _part(train: Split, ids: Any, name: str, *, caller: str) -> Split:
    positions = positions_of(
        train.ids, ids, caller=caller, what=f"the sample ids of {train.name!r}"
    )
    return train.subset(positions, name=f"{train.name}[{name}]")


# ----------------------------------------------------------------------------------------------
# The models of a transfer experiment: which kind in which role, and their maps


@dataclass
class ModelChoice:
    """Which model kind plays which role, and the data each kind trains on.

    Attributes
    ----------
    kinds : dict of str to str
        Role -> kind of :data:`cartokit.models.MODELS`. The roles: ``"small"``, the cheap
        map's model; ``"large"``, the model trained on the selections (and the distillation
        teacher); ``"student"``, the distilled model.
    data : dict of str to DataBundle
        Role -> the bundle its kind takes: the texts themselves for the ``"minilm_*"`` kinds,
        the model-ready features (e.g. sentence embeddings of the texts) for the others.
    """

    kinds: dict[str, str]
    data: dict[str, DataBundle]

    @property
    def table(self) -> pd.DataFrame:
        """One row per role: its kind and what that kind builds."""
        from cartokit.models import MODELS

        return pd.DataFrame(
            {"kind": self.kinds, "model": {r: MODELS[k] for r, k in self.kinds.items()}}
        ).rename_axis("role")


def choose_models(
    raw: DataBundle,
    features: DataBundle,
    *,
    small: str = "auto",
    large: str = "auto",
    student: str = "auto",
) -> ModelChoice:
    """The kinds of the small map model, the large model and the student, and their data.

    ``"auto"`` picks by the features: on images an ``"mlp"`` map for a ``"cnn"``, on
    features such as sentence embeddings a ``"linear"`` head for a ``"deep_mlp"``
    (:func:`cartokit.models.default_kind`); the student is the small model's kind.

    Parameters
    ----------
    raw : DataBundle
        The data as loaded: what the ``"minilm_*"`` kinds train on (the texts).
    features : DataBundle
        The same samples as the other kinds take them: for text, its embeddings (e.g. from
        :func:`cartokit.study.model_data`); for images, ``raw`` itself.
    small, large, student : str, default "auto"
        ``"auto"`` or a kind of :data:`cartokit.models.MODELS`.

    Returns
    -------
    ModelChoice

    Examples
    --------
    >>> from cartokit.data import load_dataset
    >>> digits = load_dataset("digits")
    >>> choose_models(digits, digits, large="wide_cnn").kinds
    {'small': 'mlp', 'large': 'wide_cnn', 'student': 'mlp'}
    """
    from cartokit.models import MODELS, default_kind

    caller = "choose_models"
    named = {"small": small, "large": large, "student": student}
    for role, kind in named.items():
        check_param(role, kind, Options(["auto", *MODELS]), caller=caller)
    if [s.ids.tolist() for s in raw.splits.values()] != [
        s.ids.tolist() for s in features.splits.values()
    ]:
        raise ValueError(
            f"{caller}: raw and features must hold the same samples, split by split (the "
            "features of the raw data, in the same order)."
        )
    kinds = {
        "small": default_kind(features.train) if small == "auto" else small,
        "large": default_kind(features.train, large=True) if large == "auto" else large,
    }
    kinds["student"] = kinds["small"] if student == "auto" else student
    data = {role: raw if kind.startswith("minilm") else features for role, kind in kinds.items()}
    return ModelChoice(kinds=kinds, data=data)


@dataclass
class MapRuns:
    """What :func:`record_maps` returns, by role.

    Attributes
    ----------
    metrics : dict of str to pandas.DataFrame
        Each model's data map (:func:`~cartokit.compute_metrics`).
    seconds : pandas.Series
        Wall time of each training, named ``"training seconds"``.
    models : dict of str to torch.nn.Module
        The trained models (the large one is the distillation teacher).
    """

    metrics: dict[str, pd.DataFrame]
    seconds: pd.Series
    models: dict[str, nn.Module]


def record_maps(
    choice: ModelChoice,
    *,
    roles: Sequence[str] = ("small", "large"),
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
) -> MapRuns:
    """Train a fresh model of each role's kind on its full training set while recording, and
    time each training.

    One untimed epoch comes first, so that torch's one-off start-up costs land on no one's
    time; small kinds train on one torch thread (:func:`cartokit.models.threads_for`).

    Parameters
    ----------
    choice : ModelChoice
        From :func:`choose_models`.
    roles : sequence of str, default ("small", "large")
    epochs, batch_size, lr, seed
        As in :func:`~cartokit.fit`; ``seed`` also seeds each model's initialisation.

    Returns
    -------
    MapRuns
    """
    from cartokit.metrics import compute_metrics
    from cartokit.models import model_factory, threads_for
    from cartokit.train import fit

    roles = check_param("roles", roles, ListOf(Options(list(choice.kinds)), empty=False),
                        caller="record_maps")  # fmt: skip
    options = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed}
    metrics, seconds, models = {}, {}, {}
    with threads_for(*(choice.kinds[role] for role in roles)):
        first = choice.data[roles[0]].train
        warm = model_factory(choice.kinds[roles[0]])(first)  # untimed: torch's first steps
        fit(warm, first, **{**options, "epochs": 1, "record": False, "progress": False})
        for role in roles:
            train = choice.data[role].train
            model = model_factory(choice.kinds[role], seed=seed)(train)
            started = time.perf_counter()
            run = fit(model, train, progress=False, **options)
            seconds[role] = time.perf_counter() - started
            metrics[role], models[role] = compute_metrics(run.dynamics), run.model
    return MapRuns(metrics, pd.Series(seconds, name="training seconds"), models)
