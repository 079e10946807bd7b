"""Accuracy against model size for compressed students (notebook 09): one line per training
subset, one panel per evaluation set, in the palette of :mod:`cartokit.plot._style`.

It takes the rows of :func:`cartokit.distillation.distill_on_subsets` with ``compress``: one per
subset and compression, indexed by ``(subset, compression)``, with a ``method`` column, the size
columns and ``<name>_accuracy`` per evaluation set.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from cartokit.plot._style import NotebookFigure, check_figure_path, line_style, save_figure

__all__ = ["plot_accuracy_by_size"]

#: The marker of each method, so that a point says how its model was compressed.
METHOD_MARKERS = {
    "none": "o",
    "prune": "s",
    "prune_structured": "^",
    "quantize_dynamic": "D",
    "quantize_static": "v",
}

_SIZE_LABELS = {
    "zipped_bytes": "saved state dict, deflated",
    "size_bytes": "saved state dict",
    "nonzero_params": "non-zero parameters",
    "parameters": "parameters",
}


def _check_results(results: Any, size: str, splits: Sequence[str] | None) -> list[str]:
    caller = "plot_accuracy_by_size"
    expected = "the output of distill_on_subsets(..., compress=...)"
    if not isinstance(results, pd.DataFrame):
        raise TypeError(
            f"The 'results' parameter of {caller} must be a pandas DataFrame, {expected}. "
            f"Got {type(results).__name__} instead."
        )
    if list(results.index.names) != ["subset", "compression"] or "method" not in results:
        raise ValueError(
            f"{caller}: results must be {expected}, indexed by (subset, compression) with a "
            f"'method' column. Got the index {list(results.index.names)}."
        )
    if size not in _SIZE_LABELS or size not in results.columns:
        raise ValueError(
            f"The 'size' parameter of {caller} must be one of {list(_SIZE_LABELS)}, a column "
            f"of results. Got {size!r} instead."
        )
    have = [c.removesuffix("_accuracy") for c in results.columns if c.endswith("_accuracy")]
    if splits is None:
        splits = have
    missing = [s for s in splits if s not in have]
    if missing or not splits:
        raise ValueError(
            f"{caller}: results have accuracy columns for {have}, not for {list(missing)}. Pass "
            "eval_data to distill_on_subsets, or splits among those."
        )
    return list(splits)


def plot_accuracy_by_size(
    results: pd.DataFrame,
    *,
    size: str = "zipped_bytes",
    splits: Sequence[str] | None = None,
    path: str | os.PathLike[str] | None = None,
) -> NotebookFigure:
    """Accuracy against size: in each panel (an evaluation set), one line per subset through
    its students, the compressions placed from the largest to the smallest and labelled with
    their size; the marker says the method.

    Parameters
    ----------
    results : pandas.DataFrame
        From :func:`cartokit.distillation.distill_on_subsets` with ``compress``.
    size : {"zipped_bytes", "size_bytes", "nonzero_params", "parameters"}
        The size that orders and labels the compressions (its mean over subsets).
        ``"zipped_bytes"`` (default) is the one size that both pruning (its zeros deflate) and
        quantization shrink; the saved bytes do not change with pruning, and the non-zero
        parameters do not change with quantization.
    splits : sequence of str, optional
        The evaluation sets to draw (``"test"`` for the ``test_accuracy`` column); default all.
    path : path, optional
        Also save the figure there (png, svg or pdf, by suffix).

    Returns
    -------
    NotebookFigure
    """
    splits = _check_results(results, size, splits)
    target = check_figure_path(path, caller="plot_accuracy_by_size")
    sizes = results[size].groupby(level="compression").mean().sort_values(ascending=False)
    order = list(sizes.index)
    position = {name: i for i, name in enumerate(order)}
    unit = "kB" if size.endswith("bytes") else "k"
    ticks = [f"{name}\n{sizes[name] / 1000:.1f} {unit}" for name in order]
    subsets = list(dict.fromkeys(results.index.get_level_values("subset")))
    fig = NotebookFigure(figsize=(max(5.2, 0.9 * len(order)) * len(splits), 4.4),
                         layout="constrained")  # fmt: skip
    axes = fig.subplots(1, len(splits), squeeze=False)[0]
    for ax, split in zip(axes, splits):
        for i, subset in enumerate(subsets):
            rows = results.xs(subset, level="subset")
            rows = rows.iloc[np.argsort([position[c] for c in rows.index])]
            x = np.array([position[c] for c in rows.index], dtype=float)
            y = 100 * rows[f"{split}_accuracy"].to_numpy()
            color, dashes = line_style(i)
            ax.plot(x, y, color=color, linestyle=dashes, linewidth=1.2, label=subset)
            for method, marker in METHOD_MARKERS.items():
                chosen = (rows["method"] == method).to_numpy()
                ax.scatter(x[chosen], y[chosen], marker=marker, color=color, s=26, zorder=3)
        ax.set_xticks(range(len(order)), ticks, fontsize=7, rotation=30, ha="right")
        ax.set_xlabel(f"compression, largest to smallest ({_SIZE_LABELS[size]})")
        ax.set_ylabel(f"{split} accuracy (%)")
        ax.set_title(f"{split}: accuracy against size")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, title="subset", frameon=False, fontsize=8, loc="outside right")
    save_figure(fig, target)
    return fig
