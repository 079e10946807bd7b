"""The figures of a study (:mod:`cartokit.study`): example images of the map, human scores per
region, and the accuracy of models retrained on subsets, in the palette of
:mod:`cartokit.plot._style`.

* :func:`plot_examples`: a grid of images with their labels (notebook 02);
* :func:`plot_human_scores`: the human score's distribution per region (notebook 02);
* :func:`plot_results`: bars of accuracy per subset and evaluation split (notebook 04);
* :func:`plot_fraction_curve`: accuracy against the share of the data a selector chose (04).

The last two take the rows of :func:`cartokit.study.retrain`: one per subset, seed and
evaluation split, with ``subset``, ``selector``, ``fraction``, ``split`` and the metric.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from cartokit._validation import positions_of
from cartokit.data import Split
from cartokit.plot._style import (
    CLASS_COLORS,
    REGION_COLORS,
    NotebookFigure,
    check_figure_path,
    save_figure,
)
from cartokit.regions import REGIONS, Thresholds, assign_regions
from cartokit.selection import RANDOM, SELECTORS

__all__ = ["plot_examples", "plot_fraction_curve", "plot_human_scores", "plot_results"]


def plot_examples(
    split: Split, ids: Sequence[Any] | np.ndarray, *, title: str | None = None
) -> NotebookFigure:
    """The images of ``ids`` in ``split``, eight to a row, each titled with its id and label;
    a flipped label (a ``clean_label`` column in the frame) also shows the label it replaced.

    Raises
    ------
    TypeError
        If ``split`` does not hold images.
    ValueError
        If an id is not in ``split``.
    """
    if split.kind != "image":
        raise TypeError(f"plot_examples: {split.name!r} holds {split.kind} data, not images.")
    ids = np.asarray(ids)
    positions = positions_of(split.ids, ids, caller="plot_examples", what=repr(split.name))
    names = split.class_names
    clean = split.frame["clean_label"].to_numpy() if "clean_label" in split.frame else None
    cols = min(len(ids), 8)
    nrows = -(-len(ids) // cols) if len(ids) else 1
    fig = NotebookFigure(figsize=(1.6 * cols, 1.9 * nrows), layout="constrained")
    for i, (sample_id, pos) in enumerate(zip(ids, positions)):
        ax = fig.add_subplot(nrows, cols, i + 1)
        ax.imshow(split.show(int(pos)), cmap="gray_r")
        label = f"label {names[split.labels[pos]]}"
        if clean is not None and clean[pos] != split.labels[pos]:
            label += f" (was {names[clean[pos]]})"
        ax.set_title(f"id {sample_id}\n{label}", fontsize=8)
        ax.set_axis_off()
    if title is not None:
        fig.suptitle(title)
    return fig


def plot_human_scores(
    metrics: pd.DataFrame,
    *,
    thresholds: Thresholds | None = None,
    path: str | os.PathLike[str] | None = None,
) -> NotebookFigure | None:
    """The human score's distribution per region: its magnitude as box plots, and the signed
    score as overlaid histograms. ``None`` without a ``human_score`` column."""
    if "human_score" not in metrics:
        return None
    target = check_figure_path(path, caller="plot_human_scores")
    regions = metrics["region"] if "region" in metrics else assign_regions(metrics, thresholds)
    score = metrics["human_score"].astype(float)
    fig = NotebookFigure(figsize=(10, 3.8), layout="constrained")
    box_ax, hist_ax = fig.subplots(1, 2)
    groups = [score[regions == r].abs().dropna().to_numpy() for r in REGIONS]
    shown = [i for i, g in enumerate(groups) if len(g)]
    boxes = box_ax.boxplot(
        [groups[i] for i in shown],
        tick_labels=[f"{REGIONS[i]}\n(n={len(groups[i])})" for i in shown],
        patch_artist=True,
        showfliers=False,
    )
    for patch, i in zip(boxes["boxes"], shown):
        patch.set_facecolor(REGION_COLORS[REGIONS[i]])
        patch.set_alpha(0.6)
    box_ax.set_ylabel("|human score|  (0 neutral, 4 clear-cut)")
    box_ax.set_title("Human score magnitude per region")
    bins = np.linspace(-4, 4, 33)
    for i in shown:
        hist_ax.hist(
            score[regions == REGIONS[i]].dropna(),
            bins=bins,
            density=True,
            histtype="step",
            linewidth=1.8,
            color=REGION_COLORS[REGIONS[i]],
            label=REGIONS[i],
        )
    hist_ax.set_xlabel("human score")
    hist_ax.set_ylabel("density")
    hist_ax.set_title("Human score per region")
    hist_ax.legend(frameon=False)
    save_figure(fig, target)
    return fig


def _split_label(split: str) -> str:
    return f"{split} ({'ID' if split == 'test' else 'OOD'})"


def plot_results(
    results: pd.DataFrame,
    *,
    metric: str = "accuracy",
    path: str | os.PathLike[str] | None = None,
) -> NotebookFigure:
    """Bars of ``metric`` per subset, one per evaluation split, with the std over seeds."""
    target = check_figure_path(path, caller="plot_results")
    order, splits = list(pd.unique(results["subset"])), list(pd.unique(results["split"]))
    stats = results.groupby(["subset", "split"], sort=False)[metric].agg(["mean", "std"])
    mean = 100 * stats["mean"].unstack("split").reindex(index=order, columns=splits)
    std = 100 * stats["std"].unstack("split").reindex(index=order, columns=splits)
    fig = NotebookFigure(figsize=(max(6.0, 0.75 * len(order) + 2), 4.2), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(order))
    width = 0.8 / len(splits)
    for i, split in enumerate(splits):
        ax.bar(
            x + (i - (len(splits) - 1) / 2) * width,
            mean[split],
            width,
            yerr=std[split].fillna(0),
            capsize=2,
            color=CLASS_COLORS[i % len(CLASS_COLORS)],
            label=_split_label(split),
        )
    ax.set_xticks(x, order, rotation=35, ha="right")
    ax.set_ylabel(f"{metric} (%)")
    ax.set_ylim(max(0.0, np.nanmin(mean.min()) - 10), 100)
    ax.set_title(f"Retrained on each subset: {metric}, mean ± std over seeds", loc="left")
    ax.legend(frameon=False, ncols=len(splits), loc="lower right", bbox_to_anchor=(1.0, 1.0))
    save_figure(fig, target)
    return fig


def plot_fraction_curve(
    results: pd.DataFrame,
    *,
    selector: str | None = None,
    metric: str = "accuracy",
    reference: str = "full",
    path: str | os.PathLike[str] | None = None,
) -> NotebookFigure | None:
    """``metric`` against the share of the training set that ``selector`` chose, one line per
    evaluation split (mean ± std over seeds), with the ``reference`` subsets (the study's
    ``"full"``: 100 % of the data) as dashed lines.

    ``selector`` defaults to the one retrained at the most fractions (``"ambiguous"`` on a
    tie). ``None`` (with a note) when ``selector`` has no subsets in ``results``.
    """
    target = check_figure_path(path, caller="plot_fraction_curve")
    if selector is None:
        named = results[results["selector"].isin((RANDOM, *SELECTORS))]
        counts = named.groupby("selector")["fraction"].nunique()
        counts = counts.sort_values(ascending=False, kind="stable")
        top = counts[counts == counts.max()].index if len(counts) else []
        selector = "ambiguous" if "ambiguous" in top or not len(top) else str(top[0])
    chosen = results[results["selector"] == selector]
    if chosen.empty:
        print(f"No {selector!r} subsets were retrained, so there is no curve to draw.")
        return None
    full = results[results["selector"] == reference]
    fig = NotebookFigure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for i, split in enumerate(pd.unique(results["split"])):
        color = CLASS_COLORS[i % len(CLASS_COLORS)]
        stats = chosen[chosen["split"] == split].groupby("fraction")[metric].agg(["mean", "std"])
        stats = 100 * stats.sort_index()
        x, mean, std = 100 * stats.index.to_numpy(), stats["mean"], stats["std"].fillna(0)
        ax.plot(x, mean, marker="o", color=color, label=_split_label(split))
        ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)
        reference_rows = full.loc[full["split"] == split, metric]
        if len(reference_rows):
            ax.axhline(100 * reference_rows.mean(), color=color, linestyle="--", linewidth=1)
    ax.set_xlabel(f"share of the training set chosen by {selector!r} (%)")
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title(f"{metric} against the {selector} fraction (dashed: 100 % of the data)")
    ax.legend(frameon=False)
    save_figure(fig, target)
    return fig
