"""The steps of notebooks 01-04 that act on a run: the model, the map's regions and examples,
the subsets, and retraining on them.

* 01: :func:`model_kind` (the study's ``model`` parameter as a kind of
  :data:`cartokit.models.MODELS`), :func:`small_model_threads`;
* 02: :func:`add_regions`, :func:`region_table`, :func:`top_ids`, :func:`show_examples`,
  :func:`human_agreement`;
* 03: :func:`build_subsets`, :func:`subsets_summary`;
* 04: :func:`retrain`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cartokit._files import atomic_write
from cartokit._validation import positions_of
from cartokit.data import DataBundle, Split
from cartokit.regions import REGIONS, Thresholds, assign_regions, region_counts
from cartokit.selection import S2L, SELECTORS, parse_mixture, select, select_mixture
from cartokit.study.params import FULL, PAPER_SUBSETS, validate_params
from cartokit.study.rundir import Run, Subset, write_json

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from cartokit.dynamics import TrainingDynamics

__all__ = [
    "add_regions",
    "build_subsets",
    "human_agreement",
    "model_kind",
    "region_table",
    "retrain",
    "show_examples",
    "small_model_threads",
    "subsets_summary",
    "top_ids",
]


def _rows_of(split: Split, ids: Sequence[Any] | np.ndarray, *, caller: str) -> np.ndarray:
    return positions_of(
        split.ids,
        ids,
        caller=caller,
        what=repr(split.name),
        hint="The run folder and the data differ.",
    )


# ============================================================================ 01: the model


def model_kind(model: str, split: Split, *, freeze_encoder: bool = True) -> str:
    """The kind of :data:`cartokit.models.MODELS` that the study's ``model`` parameter trains on
    ``split`` (:func:`cartokit.models.build_model` builds it).

    ``"mlp"`` and ``"cnn"`` are kinds of their own. ``"minilm"`` is a linear head
    (``"linear"``) on the embeddings of :func:`~cartokit.study.model_data`, which is what a
    frozen encoder trains, or, on text, the encoder itself: ``"minilm_frozen"``, or
    ``"minilm_finetune"`` unless ``freeze_encoder``.

    >>> from cartokit.data import load_digits
    >>> model_kind("mlp", load_digits().train)
    'mlp'
    """
    validate_params(caller="model_kind", model=model, freeze_encoder=freeze_encoder)
    if model != "minilm":
        return model
    if split.kind != "text":
        return "linear"
    return "minilm_frozen" if freeze_encoder else "minilm_finetune"


@contextmanager
def small_model_threads(model: str, split: Split) -> Iterator[int]:
    """Train small models on one torch thread: inside the ``with`` block, torch uses one thread
    for ``"mlp"`` and for the linear head of a frozen encoder, and its own setting otherwise.

    Their steps take about a millisecond, too short to share across cores: on 2 busy CPU
    cores, one thread trained the digits MLP about 10 times faster than two. Yields the number
    of threads in use; the previous setting comes back after the block.
    """
    import torch

    before = torch.get_num_threads()
    if model_kind(model, split) in ("mlp", "linear"):
        torch.set_num_threads(1)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


# ============================================================================ 02: the map


def add_regions(run: Run, thresholds: Thresholds) -> pd.DataFrame:
    """Assign regions with ``thresholds``; save them (``thresholds.json``, a ``region`` column
    in ``metrics.csv``) for notebooks 03-04; return the metrics table."""
    from cartokit.io import write_metrics_csv

    thresholds.validate()
    metrics = run.metrics.copy()
    metrics["region"] = assign_regions(metrics, thresholds)
    write_metrics_csv(metrics, run.path / "metrics.csv")
    write_json(run.path / "thresholds.json", vars(thresholds))
    run.metrics, run.thresholds = metrics, thresholds
    return metrics


def region_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Samples per region (and their share); with a ``flipped`` column, the flipped labels per
    region; with ``human_score``, the median magnitude of the human score per region."""
    regions = metrics["region"] if "region" in metrics else assign_regions(metrics)
    counts = region_counts(regions)
    table = pd.DataFrame({"samples": counts, "share": (counts / counts.sum()).round(3)})
    if "flipped" in metrics:
        flipped = metrics["flipped"].astype(bool)
        table["flipped labels"] = flipped.groupby(regions, observed=False).sum().astype(int)
    if "human_score" in metrics:
        magnitude = metrics["human_score"].abs()
        table["median |human score|"] = magnitude.groupby(regions, observed=False).median().round(2)
    table.index.name = "region"
    return table


def top_ids(metrics: pd.DataFrame, by: str, k: int) -> np.ndarray:
    """The ids of the ``k`` samples ranked first by a selector (e.g. ``"ambiguous"``: highest
    variability; ``"hard"``: lowest confidence), or by a column (highest first).

    >>> m = pd.DataFrame({"confidence": [0.9, 0.1, 0.5], "variability": [0.0, 0.1, 0.3]})
    >>> top_ids(m, "hard", 2).tolist(), top_ids(m, "ambiguous", 1).tolist()
    ([1, 2], [2])
    """
    column, highest = SELECTORS.get(by, (by, True))
    if column not in metrics.columns:
        raise ValueError(
            f"top_ids: {by!r} is neither a selector ({list(SELECTORS)}) nor a column of the "
            f"metrics table ({list(metrics.columns)})."
        )
    ranked = metrics[column].dropna().sort_values(ascending=not highest, kind="stable")
    return ranked.index.to_numpy()[:k]


_EXAMPLE_TITLES = {
    "ambiguous": "most ambiguous samples (highest variability)",
    "hard": "hardest samples (lowest confidence)",
    "easy": "easiest samples (highest confidence)",
}


def show_examples(
    metrics: pd.DataFrame, split: Split, *, by: str = "ambiguous", k: int = 8
) -> Figure | pd.DataFrame:
    """The ``k`` samples ranked first by ``by``, with their labels: a figure of images for image
    data (:func:`cartokit.plot.study.plot_examples`), else a table (with the text for text
    data). Flipped labels show their clean label."""
    ids = top_ids(metrics, by, k)
    if split.kind == "image":
        from cartokit.plot.study import plot_examples

        title = _EXAMPLE_TITLES.get(by)
        return plot_examples(
            split,
            ids,
            title=f"The {len(ids)} {title}" if title else f"Top {len(ids)} by {by!r}",
        )
    rows = metrics.loc[ids]
    positions = _rows_of(split, ids, caller="show_examples")
    names = split.class_names
    table = pd.DataFrame(index=pd.Index(ids, name="id"))
    if "text" in split.frame:
        table["text"] = split.frame["text"].to_numpy()[positions]
    elif split.kind == "text":
        table["text"] = [split.show(int(p)) for p in positions]
    table["label"] = [names[y] for y in split.labels[positions]]
    if "clean_label" in split.frame:
        clean = split.frame["clean_label"].to_numpy()
        table["clean label"] = [names[y] for y in clean[positions]]
    for column in ("human_score", "confidence", "variability", "correctness"):
        if column in rows:
            table[column] = rows[column].round(3).to_numpy()
    return table


_AGREEMENT_METRICS = (
    "confidence",
    "variability",
    "correctness",
    "forgetting",
    "aum",
    "el2n",
    "threshold_closeness",
)


def human_agreement(
    metrics: pd.DataFrame, *, run_dir: str | os.PathLike[str] | None = None
) -> pd.DataFrame | None:
    """Do the map's metrics match human judgement? Spearman's rank correlation of each metric
    with the magnitude of the human score (``|human_score|``: 0 is neutral, 4 is clear-cut).

    Ambiguous samples should sit near 0: a positive correlation for confidence and a negative
    one for variability say the map agrees with the humans. Returns ``None`` (with a note) when
    the table has no ``human_score`` column; with ``run_dir``, also writes
    ``human_agreement.csv`` and, when regions are known, ``human_by_region.csv``.

    >>> m = pd.DataFrame({"confidence": [0.9, 0.6, 0.2], "variability": [0.1, 0.3, 0.2],
    ...                   "human_score": [3.0, -1.0, 0.6]})
    >>> human_agreement(m)["spearman"].to_dict()
    {'confidence': 1.0, 'variability': -0.5}
    """
    if "human_score" not in metrics:
        print(
            "This dataset has no human scores (the VADER sentiment sets have), so there is no "
            "comparison with human judgement."
        )
        return None
    magnitude = metrics["human_score"].abs()
    rows = []
    for column in _AGREEMENT_METRICS:
        if column not in metrics:
            continue
        pair = pd.concat([metrics[column].astype(float), magnitude], axis=1).dropna()
        rho = pair.iloc[:, 0].rank().corr(pair.iloc[:, 1].rank())  # Spearman = Pearson of ranks
        rows.append({"metric": column, "spearman": round(float(rho), 3), "samples": len(pair)})
    table = pd.DataFrame(rows).set_index("metric")
    if run_dir is not None:
        run = Path(run_dir)
        with atomic_write(run / "human_agreement.csv", "w") as fh:
            table.to_csv(fh)
        if "region" in metrics:
            by_region = magnitude.groupby(metrics["region"], observed=False).describe()
            with atomic_write(run / "human_by_region.csv", "w") as fh:
                by_region.round(3).to_csv(fh)
    return table


# ============================================================================ 03: subsets


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.3g}%"


def _wanted_subsets(p: Mapping[str, Any]) -> list[tuple[str, str, float]]:
    """(name, selector, fraction) of each single-selector subset, in order, without repeats.

    Two selectors that rank alike (``easy`` and ``high_confidence``, ``hard`` and
    ``low_confidence``) would select the same samples twice: the first name is kept, with a
    warning.
    """
    pairs: list[tuple[str, float]] = []
    for selector in p["selectors"]:
        pairs += [(FULL, 1.0)] if selector == FULL else [(selector, f) for f in p["fractions"]]
    pairs += [(p["curve_selector"], f) for f in p["curve_fractions"]]
    wanted: dict[tuple[Any, float], tuple[str, str, float]] = {}
    repeats: dict[tuple[str, str], tuple[str, bool]] = {}
    for selector, fraction in pairs:
        name = f"{selector} {_percent(fraction)}"
        ranking = SELECTORS.get(selector, selector)
        kept = wanted.setdefault((ranking, fraction), (name, selector, fraction))
        if kept[1] != selector:
            repeats.setdefault((selector, kept[1]), SELECTORS[selector])
    for (selector, kept), (column, highest) in repeats.items():
        order = "highest" if highest else "lowest"
        warnings.warn(
            f"The selectors {selector!r} and {kept!r} both take the {order} {column} first, so "
            f"their subsets would be the same; only {kept!r} is kept. Leave {selector!r} out of "
            "the selectors.",
            UserWarning,
            stacklevel=3,
        )
    return list(wanted.values())


def build_subsets(
    metrics: pd.DataFrame,
    *,
    selectors: Sequence[str] = PAPER_SUBSETS,
    fractions: Sequence[float] = (0.33,),
    curve_selector: str = "ambiguous",
    curve_fractions: Sequence[float] = (),
    mixtures: Sequence[str] = (),
    thresholds: Thresholds | None = None,
    balanced: bool = False,
    seed: int = 0,
    dynamics: TrainingDynamics | None = None,
) -> dict[str, Subset]:
    """Select the subsets to retrain on, by name (e.g. ``"ambiguous 33%"``), in this order:

    1. each of ``selectors`` at each of ``fractions`` (``"full"`` is the whole set, once);
    2. ``curve_selector`` at each of ``curve_fractions`` (the line plot's points), skipping
       names already there;
    3. each mixture, e.g. ``"17% ambiguous + 10% easy"`` (:func:`~cartokit.select_mixture`).

    Fractions are shares of the whole training set; each selector is ranked as in
    :func:`~cartokit.select` (random subsets draw from ``seed``). A selector is a ranking, not
    a region: ``"hard 33%"`` is the third of the set with the lowest confidence, more samples
    than the hard-to-learn region holds. ``"s2l"`` (SmallToLarge, :func:`~cartokit.select_s2l`)
    clusters the loss trajectories of ``dynamics``, the record the table was computed from, and
    needs it; it is never balanced. Selectors that rank alike (``"easy"`` and
    ``"high_confidence"``) give one subset, named after the first, with a warning.

    >>> m = pd.DataFrame({"confidence": np.linspace(0, 1, 10), "variability": np.zeros(10),
    ...                   "label": [0, 1] * 5})
    >>> {k: len(v) for k, v in build_subsets(m, selectors=["full", "hard"], fractions=[0.3],
    ...                                        mixtures=["20% easy + 10% random"]).items()}
    {'full 100%': 10, 'hard 30%': 3, '20% easy + 10% random': 3}
    """
    p = validate_params(
        caller="build_subsets",
        selectors=selectors,
        fractions=fractions,
        curve_selector=curve_selector,
        curve_fractions=curve_fractions,
        mixtures=mixtures,
        balanced=balanced,
        selection_seed=seed,
    )
    subsets: dict[str, Subset] = {}
    for name, selector, fraction in _wanted_subsets(p):
        if selector == FULL:
            ids = metrics.index.to_numpy()
        else:
            extra = {"dynamics": dynamics} if selector == S2L else {"balanced": balanced}
            ids = select(metrics, selector, fraction, seed=seed, **extra)
        subsets[name] = Subset(name, selector, fraction, ids)
    for mixture in p["mixtures"]:
        parts = parse_mixture(mixture)
        name = " + ".join(f"{_percent(f)} {part}" for part, f in parts.items())
        ids = select_mixture(metrics, parts, thresholds=thresholds, balanced=balanced, seed=seed)
        subsets[name] = Subset(name, name, round(sum(parts.values()), 6), ids)
    return subsets


def subsets_summary(subsets: Mapping[str, Subset], metrics: pd.DataFrame) -> pd.DataFrame:
    """Per subset: its size and share, mean confidence and variability, its share of each
    region, and its flipped labels when known."""
    rows = []
    for subset in subsets.values():
        part = metrics.loc[subset.ids]
        row: dict[str, Any] = {
            "subset": subset.name,
            "samples": len(subset),
            "share": round(len(subset) / len(metrics), 3),
            "mean confidence": round(float(part["confidence"].mean()), 3),
            "mean variability": round(float(part["variability"].mean()), 3),
        }
        if "region" in part:
            shares = part["region"].value_counts(normalize=True)
            for region in REGIONS:
                row[f"{region} share"] = round(float(shares.get(region, 0.0)), 3)
        if "flipped" in part:
            row["flipped labels"] = int(part["flipped"].astype(bool).sum())
        rows.append(row)
    return pd.DataFrame(rows).set_index("subset")


# ============================================================================ 04: retraining


def retrain(
    data: DataBundle,
    subsets: Mapping[str, Subset] | None,
    *,
    model: str,
    seeds: Sequence[int],
    epochs: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    freeze_encoder: bool = True,
    progress: bool = True,
) -> pd.DataFrame:
    """Train a fresh model on each subset with each seed; evaluate it on every held-out split.

    ``data`` is :func:`~cartokit.study.model_data`'s bundle. Returns one row per subset, seed
    and evaluation split (``test`` in distribution, the others out of it): ``subset``,
    ``selector``, ``fraction``, ``size``, ``seed``, ``split``, ``accuracy``, ``macro_f1``.
    """
    from cartokit.train.progress import progress_bar

    if subsets is None:
        raise ValueError(
            "retrain: there are no subsets; run notebook 03_select on this run folder first."
        )
    p = validate_params(
        caller="retrain", seeds=seeds, retrain_epochs=epochs, batch_size=batch_size, lr=lr
    )
    kind = model_kind(model, data.train, freeze_encoder=freeze_encoder)
    options = {"epochs": epochs, "batch_size": batch_size, "lr": lr}
    jobs = [(subset, seed) for subset in subsets.values() for seed in p["seeds"]]
    rows = []
    with small_model_threads(model, data.train):
        for subset, seed in progress_bar(jobs, desc="retraining", disable=not progress):
            rows += _retrain_one(data, subset, kind, seed, options)
    return pd.DataFrame(rows)


def _retrain_one(
    data: DataBundle, subset: Subset, kind: str, seed: int, options: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Train a fresh model of ``kind`` on ``subset``; one row per evaluation split."""
    from cartokit.models import build_model
    from cartokit.train import evaluate, fit

    train = data.train
    part = train.subset(
        _rows_of(train, subset.ids, caller="retrain"), name=f"{train.name}[{subset.name}]"
    )
    net = build_model(kind, part, seed=seed)
    fit(net, part, seed=seed, record=False, progress=False, **options)
    rows = []
    for split_name, split in {"test": data.test, **data.ood}.items():
        scores = evaluate(net, split)
        rows.append(
            {
                "subset": subset.name,
                "selector": subset.selector,
                "fraction": subset.fraction,
                "size": len(part),
                "seed": seed,
                "split": split_name,
                "accuracy": scores.accuracy,
                "macro_f1": scores.macro_f1,
            }
        )
    return rows
