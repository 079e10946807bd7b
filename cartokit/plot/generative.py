"""The small-to-large figure of notebook 07: a language model's held-out score against the share
of the training set each selector chose, in the palette of :mod:`cartokit.plot._style`.

It takes the rows of :func:`cartokit.study.generative.small_to_large`: one per subset and seed,
with ``subset``, ``selector``, ``fraction`` and the score (``loss``, ``perplexity``).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from cartokit._validation import Options, check_param
from cartokit.plot._style import NotebookFigure, check_figure_path, line_style, save_figure

__all__ = ["plot_subset_curves"]


def plot_subset_curves(
    results: pd.DataFrame,
    *,
    metric: str = "perplexity",
    reference: str = "full",
    path: str | os.PathLike[str] | None = None,
) -> NotebookFigure:
    """``metric`` against the share of the training set, one line per selector (mean ± std over
    seeds, shaded), and the ``reference`` selector's mean (the whole set) as a dashed line.

    Lower is better for both metrics: the held-out loss (mean token negative log-likelihood)
    and its perplexity ``exp(loss)``.
    """
    caller = "plot_subset_curves"
    target = check_figure_path(path, caller=caller)
    metric = check_param("metric", metric, Options(["loss", "perplexity"]), caller=caller)
    missing = {"selector", "fraction", metric} - set(results.columns)
    if missing:
        raise ValueError(
            f"{caller}: results must have the columns 'selector', 'fraction' and {metric!r} "
            f"(the rows of small_to_large). Missing: {sorted(missing)}."
        )
    fig = NotebookFigure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    selectors = [s for s in pd.unique(results["selector"]) if s != reference]
    for i, selector in enumerate(selectors):
        rows = results[results["selector"] == selector]
        stats = rows.groupby("fraction")[metric].agg(["mean", "std"]).sort_index()
        x, mean, std = 100 * stats.index.to_numpy(), stats["mean"], stats["std"].fillna(0)
        color, dash = line_style(i)
        ax.plot(x, mean, marker="o", color=color, linestyle=dash, label=selector)
        ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.15, linewidth=0)
    full = results.loc[results["selector"] == reference, metric]
    if len(full):
        ax.axhline(full.mean(), color="#555555", linestyle="--", linewidth=1, label="100 %")
    ax.set_xlabel("share of the training set (%)")
    ax.set_ylabel(f"held-out {metric}")
    ax.set_title(f"held-out {metric} at an equal budget (lower is better)", loc="left")
    if np.isfinite(results[metric]).any():
        ax.legend(frameon=False)
    save_figure(fig, target)
    return fig
