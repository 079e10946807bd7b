"""Static data map (matplotlib)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cartokit._validation import atomic_write
from cartokit.regions import Thresholds

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_data_map"]


def plot_data_map(
    metrics: pd.DataFrame,
    *,
    thresholds: Thresholds | None = None,
    ax: Axes | None = None,
    max_points: int = 25_000,
    seed: int = 0,
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Scatter variability (x) against confidence (y), coloured by correctness.

    Correctness uses an ordered colour scale (a colour bar, not first-appearance order), and
    the region boundaries are drawn from ``thresholds``. Above ``max_points`` samples a seeded
    random subset is drawn, and the figure says how many of how many are shown.

    Parameters
    ----------
    metrics : DataFrame
        From :func:`~cartokit.compute_metrics`.
    thresholds : Thresholds, optional
        Region boundaries to draw (default: ``Thresholds()``).
    ax : matplotlib Axes, optional
        Draw into this axes; otherwise a new figure is made.
    max_points : int
        Most points to draw.
    seed : int
        Seed of the down-sampling.
    title : str, optional
    path : path, optional
        Save the figure here (format from the suffix: .png, .svg, .pdf).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    thresholds = thresholds or Thresholds()
    thresholds.validate()
    missing = [c for c in ("confidence", "variability", "correctness") if c not in metrics]
    if missing:
        raise ValueError(
            f"plot_data_map needs the columns {missing}; pass the table from compute_metrics."
        )
    shown = metrics.dropna(subset=["confidence", "variability"])
    total = len(shown)
    if total > max_points:
        rows = np.sort(np.random.default_rng(seed).choice(total, max_points, replace=False))
        shown = shown.iloc[rows]
    if ax is None:
        fig = Figure(figsize=(6.4, 5.2), dpi=120)
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    points = ax.scatter(
        shown["variability"],
        shown["confidence"],
        c=shown["correctness"],
        cmap="viridis",
        vmin=0.0,
        vmax=1.0,
        s=8,
        alpha=0.7,
        linewidths=0,
    )
    fig.colorbar(points, ax=ax, label="correctness")
    t = thresholds
    ax.axvline(t.ambiguous_variability, color="0.3", lw=0.8, ls="--")
    ax.plot([0, t.ambiguous_variability], [t.easy_confidence] * 2, color="0.3", lw=0.8, ls="--")
    ax.plot([0, t.ambiguous_variability], [t.hard_confidence] * 2, color="0.3", lw=0.8, ls="--")
    label = {"fontsize": 9, "color": "0.15", "bbox": {"fc": "white", "ec": "0.6", "alpha": 0.8}}
    ax.text(0.01, (1 + t.easy_confidence) / 2, "easy-to-learn", va="center", **label)
    ax.text(0.01, t.hard_confidence / 2, "hard-to-learn", va="center", **label)
    ax.text((t.ambiguous_variability + 0.5) / 2, 0.5, "ambiguous", ha="center", **label)
    ax.set_xlim(0, 0.5)
    ax.set_ylim(0, 1)
    ax.set_xlabel("variability")
    ax.set_ylabel("confidence")
    note = (
        f"{len(shown):,} of {total:,} samples shown" if len(shown) < total else f"{total:,} samples"
    )
    ax.set_title(title or f"Data map ({note})", fontsize=10)
    if path is not None:
        suffix = Path(path).suffix.lower().lstrip(".")
        if suffix not in {"png", "svg", "pdf"}:
            raise ValueError(
                f"plot_data_map saves .png, .svg or .pdf files. Got {str(path)!r}; "
                "change the file suffix."
            )
        with atomic_write(path, "wb") as fh:
            fig.savefig(fh, format=suffix, bbox_inches="tight")
    return fig
