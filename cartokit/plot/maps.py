"""Static data maps, drawn with matplotlib.

Everything is drawn on :class:`matplotlib.figure.Figure` objects made here (or on an Axes you
pass), never through ``pyplot``'s global state, so the functions work headless and in threads.

* :func:`plot_data_map`: the data map of Swayamdipta et al. (2020), Figure 1: variability (x)
  against confidence (y), coloured by correctness on an ordered colour scale, with the region
  boundaries of the current :class:`~cartokit.Thresholds` and marginal distributions;
* :func:`plot_data_map_by_class`: the same map as small multiples, one panel per class.

The Axes of a figure carry labels so that code can find them again: ``"data-map"`` for the
scatter (``"data-map:<class>"`` for a panel of the per-class grid), ``"marginal:y"``,
``"marginal:x"`` and ``"marginal:hue"`` for the side panels.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib import colors as mcolors
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure, SubFigure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from cartokit._validation import (
    InstanceOf,
    Optional,
    check_int,
    check_metrics_frame,
    check_param,
)
from cartokit.plot._style import (
    BAR_COLOR,
    CONTINUOUS_COLORS,
    MISSING_COLOR,
    REGION_COLORS,
    REGION_LABELS,
    UNIT_RANGE_COLUMNS,
    NotebookFigure,
    category_colors,
    check_figure_path,
    root_figure,
    save_figure,
    value_range,
)
from cartokit.regions import REGIONS, Thresholds, assign_regions

__all__ = ["plot_data_map", "plot_data_map_by_class"]

_NAME_COLUMNS = {"label": "label_name", "predicted_label": "predicted_name"}
# Class-index columns are categories even though they hold ints.
_CATEGORICAL_INT_COLUMNS = {"label", "predicted_label"}
_MAX_LEVELS = 41  # a discrete colour scale with more steps than this is drawn as continuous


# --------------------------------------------------------------------------------------------
# Validation


class _MapArgs(NamedTuple):
    """The checked arguments that every map function shares."""

    metrics: pd.DataFrame
    x: str
    y: str
    hue: str | None
    thresholds: Thresholds
    max_points: int | None
    seed: int


def _check_map_args(
    metrics: Any,
    x: Any,
    y: Any,
    hue: Any,
    thresholds: Any,
    max_points: Any,
    seed: Any,
    *,
    caller: str,
) -> _MapArgs:
    check_metrics_frame(metrics, caller=caller)
    if len(metrics) == 0:
        raise ValueError(
            f"{caller} got an empty metrics table (0 rows); there is nothing to plot. "
            "Pass the table from compute_metrics for a recorded run."
        )
    x, y, hue = _check_columns(metrics, x, y, hue, caller=caller)
    return _MapArgs(
        metrics,
        x,
        y,
        hue,
        Thresholds.coerce(thresholds, caller=caller),
        None
        if max_points is None
        else check_int("max_points", max_points, caller=caller, minimum=1),
        check_int("seed", seed, caller=caller, minimum=0),
    )


def _check_columns(
    metrics: pd.DataFrame, x: Any, y: Any, hue: Any, *, caller: str
) -> tuple[str, str, str | None]:
    for name, value, optional in (("x", x, False), ("y", y, False), ("hue", hue, True)):
        if not (isinstance(value, str) or (optional and value is None)):
            kind = "a column name or None" if optional else "a column name"
            raise TypeError(
                f"The '{name}' parameter of {caller} must be {kind}. "
                f"Got {value!r} of type {type(value).__name__} instead."
            )
    check_metrics_frame(metrics, caller=caller, columns=[x, y])
    derivable = hue == "region" and {"confidence", "variability"} <= set(metrics.columns)
    if hue is not None and hue not in metrics.columns and not derivable:
        raise ValueError(
            f"The 'hue' parameter of {caller} must be a column of the metrics table or None. "
            f"Got {hue!r} instead. Available columns: {list(metrics.columns)}."
        )
    for name, column in (("x", x), ("y", y)):
        dtype = metrics[column].dtype
        if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            raise ValueError(
                f"The '{name}' parameter of {caller} must name a numeric column. Got {column!r} "
                f"of dtype {dtype} instead; pick a numeric column such as 'confidence'."
            )
    return x, y, hue


def _as_float(series: pd.Series) -> np.ndarray:
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


# --------------------------------------------------------------------------------------------
# Colour: an ordered scale for numbers, a fixed order for categories


@dataclass
class _Hue:
    """How to colour the points, decided once from the whole table (not the drawn subset)."""

    column: str | None
    kind: Literal["none", "numeric", "categorical"]
    values: np.ndarray  # float per row (numeric) or category code per row (-1: missing)
    cmap: mcolors.Colormap | None = None
    norm: mcolors.Normalize | None = None
    levels: np.ndarray | None = None  # the discrete values of a stepped scale
    names: list[str] = field(default_factory=list)  # category display names, in order
    colors: list[str] = field(default_factory=list)  # category colours, in order

    def point_colors(self, rows: np.ndarray) -> np.ndarray:
        """RGBA per row for categorical hue: by category position, never by appearance."""
        table = np.array([mcolors.to_rgba(c) for c in [*self.colors, MISSING_COLOR]])
        return table[self.values[rows]]  # code -1 picks the last entry: missing


def _default_cmap() -> mcolors.Colormap:
    # the explorer interpolates the same stops, so a number has one colour in both
    return mcolors.LinearSegmentedColormap.from_list("cartokit_continuous", CONTINUOUS_COLORS)


def _check_cmap(cmap: Any, *, caller: str) -> mcolors.Colormap:
    if cmap is None:
        return _default_cmap()
    if isinstance(cmap, mcolors.Colormap):
        return cmap
    if isinstance(cmap, str) and cmap in mpl.colormaps:
        return mpl.colormaps[cmap]
    raise ValueError(
        f"The 'cmap' parameter of {caller} must be a matplotlib Colormap or the name of a "
        f"registered one, such as 'viridis'. Got {cmap!r} instead."
    )


def _is_categorical(series: pd.Series, column: str) -> bool:
    dtype = series.dtype
    if column in _CATEGORICAL_INT_COLUMNS or column == "region":
        return True
    return (
        pd.api.types.is_bool_dtype(dtype)
        or isinstance(dtype, pd.CategoricalDtype)
        or not pd.api.types.is_numeric_dtype(dtype)
    )


def _category_order(series: pd.Series, column: str) -> list[Any]:
    dtype = series.dtype
    present = pd.unique(series.dropna())
    if column == "region" or (len(present) and set(present) <= set(REGIONS)):
        return list(REGIONS)
    if isinstance(dtype, pd.CategoricalDtype):
        return list(dtype.categories)
    # (a 0/1 int column compares equal to {False, True}, so test the types, not the values)
    if pd.api.types.is_bool_dtype(dtype) or (
        len(present) and all(isinstance(v, (bool, np.bool_)) for v in present)
    ):
        return [False, True]
    try:
        return sorted(present)
    except TypeError:  # mixed types: order by their text
        return sorted(present, key=str)


def _category_names(metrics: pd.DataFrame, column: str, categories: list[Any]) -> list[str]:
    if column == "region":
        return [REGION_LABELS.get(c, str(c)) for c in categories]
    name_column = _NAME_COLUMNS.get(column)
    if name_column in metrics.columns:
        pairs = metrics[[column, name_column]].dropna().drop_duplicates(column)
        known = dict(zip(pairs[column], pairs[name_column]))
        return [str(known.get(c, c)) for c in categories]
    return [str(c) for c in categories]


def _discrete_levels(column: str, finite: np.ndarray) -> np.ndarray | None:
    """The evenly spaced values a numeric column takes, when it takes few: a stepped scale.

    Integer columns (forgetting counts, epochs) step by 1. Correctness is ``k / E`` for ``E``
    checkpoints; its grid is found from the values, so an unseen level still gets its step.
    """
    if finite.size == 0:
        return None
    unique = np.unique(finite)
    if np.all(unique == np.round(unique)):
        lo, hi = unique[0], unique[-1]
        if hi - lo + 1 <= _MAX_LEVELS:
            return np.arange(lo, hi + 1)
        return None
    if column == "correctness" and unique[0] >= 0 and unique[-1] <= 1:
        for epochs in range(1, _MAX_LEVELS):
            scaled = unique * epochs
            if np.all(np.abs(scaled - np.round(scaled)) < 1e-6):
                return np.arange(epochs + 1) / epochs
    return None


def _resolve_hue(
    metrics: pd.DataFrame, hue: str | None, thresholds: Thresholds, cmap: Any, *, caller: str
) -> _Hue:
    if hue is None:
        return _Hue(None, "none", np.empty(0))
    if hue not in metrics.columns:  # "region", derived from the current thresholds
        series = assign_regions(metrics, thresholds)
    else:
        series = metrics[hue]
    if _is_categorical(series, hue):
        categories = _category_order(series, hue)
        codes = pd.Categorical(series, categories=categories).codes.astype(np.int64)
        if hue == "region":
            colors = [REGION_COLORS[c] for c in categories]
        else:
            colors = category_colors(len(categories))
        names = _category_names(metrics, hue, categories)
        return _Hue(hue, "categorical", codes, names=names, colors=colors)

    values = _as_float(series)
    finite = values[np.isfinite(values)]
    base = _check_cmap(cmap, caller=caller).with_extremes(bad=MISSING_COLOR)
    levels = _discrete_levels(hue, finite)
    if levels is not None:
        step = levels[1] - levels[0] if len(levels) > 1 else 1.0
        bounds = np.append(levels - step / 2, levels[-1] + step / 2)
        cmap_ = base.resampled(len(levels))
        norm: mcolors.Normalize = mcolors.BoundaryNorm(bounds, len(levels))
        return _Hue(hue, "numeric", values, cmap=cmap_, norm=norm, levels=levels)
    lo, hi = value_range(hue, finite)
    return _Hue(hue, "numeric", values, cmap=base, norm=mcolors.Normalize(lo, hi))


# --------------------------------------------------------------------------------------------
# Drawing pieces


def _sample_rows(valid: np.ndarray, max_points: int | None, seed: int) -> np.ndarray:
    """Row positions to draw, in a seeded random order (so no class is always drawn on top)."""
    rows = np.flatnonzero(valid)
    rng = np.random.default_rng(seed)
    if max_points is not None and rows.size > max_points:
        return rows[rng.choice(rows.size, max_points, replace=False)]
    return rows[rng.permutation(rows.size)]


def _point_style(n: int, point_size: float | None, alpha: float | None) -> tuple[float, float]:
    size = (
        float(np.clip(400.0 / math.sqrt(max(n, 1)), 2.0, 30.0))
        if point_size is None
        else point_size
    )
    return size, (0.85 if n <= 5_000 else 0.55) if alpha is None else alpha


def _scatter(
    ax: Axes,
    xv: np.ndarray,
    yv: np.ndarray,
    rows: np.ndarray,
    hue: _Hue,
    *,
    size: float,
    alpha: float,
) -> PathCollection:
    common = {"s": size, "alpha": alpha, "linewidths": 0, "rasterized": rows.size > 2_000}
    if hue.kind == "numeric":
        points = ax.scatter(
            xv[rows], yv[rows], c=hue.values[rows], cmap=hue.cmap, norm=hue.norm,
            plotnonfinite=True, **common,
        )  # fmt: skip
    elif hue.kind == "categorical":
        points = ax.scatter(xv[rows], yv[rows], c=hue.point_colors(rows), **common)
    else:
        points = ax.scatter(xv[rows], yv[rows], color=BAR_COLOR, **common)
    points.set_gid("data-map-points")
    return points


def _add_key(fig: Figure | SubFigure, points: PathCollection, hue: _Hue, axes: Any) -> None:
    """A colour bar for a numeric hue, a legend in category order for a categorical one."""
    if hue.kind == "numeric":
        ticks = None
        if hue.levels is not None:
            step = max(1, math.ceil((len(hue.levels) - 1) / 5))
            ticks = hue.levels[::step]
        # from a fresh mappable, so that the bar shows opaque colours, not the points' alpha
        scale = mpl.cm.ScalarMappable(norm=hue.norm, cmap=hue.cmap)
        bar = fig.colorbar(
            scale, ax=axes, ticks=ticks, label=hue.column, shrink=0.9, aspect=30, pad=0.02
        )
        if ticks is not None:
            bar.ax.set_yticklabels([f"{t:g}" for t in ticks])
        bar.ax.minorticks_off()
    elif hue.kind == "categorical":
        handles = [
            Line2D([], [], ls="", marker="o", ms=6, mfc=c, mec="none", label=n)
            for n, c in zip(hue.names, hue.colors)
        ]
        anchor = axes if isinstance(axes, Axes) else axes[-1]
        anchor.legend(
            handles=handles, title=hue.column, loc="upper left", bbox_to_anchor=(1.02, 1.0),
            borderaxespad=0, frameon=False, fontsize=8, title_fontsize=9,
            ncols=1 if len(handles) <= 16 else 2,
        )  # fmt: skip


def _is_region_map(x: str, y: str) -> bool:
    return x == "variability" and y == "confidence"


def _region_xmax(xv: np.ndarray, thresholds: Thresholds) -> float:
    finite = xv[np.isfinite(xv)]
    top = float(finite.max()) if finite.size else 0.5
    return max(top, thresholds.ambiguous_variability + 0.03) * 1.05


def _draw_regions(
    ax: Axes,
    thresholds: Thresholds,
    xmax: float,
    shares: dict[str, float] | None,
    *,
    fontsize: float,
    points: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    """Boundaries and names of the regions, placed from the thresholds themselves.

    Each name goes to the spot of its region that the fewest ``points`` (x, y) fall near, so it
    does not hide the samples; without points, to the region's centre.
    """
    t = thresholds
    a, easy, hard = t.ambiguous_variability, t.easy_confidence, t.hard_confidence
    line = {"color": "0.2", "lw": 0.9, "ls": (0, (4, 3)), "zorder": 3}
    ax.plot([a, a], [0.0, 1.0], gid="region-boundary:ambiguous_variability", **line)
    ax.plot([0.0, a], [easy, easy], gid="region-boundary:easy_confidence", **line)
    ax.plot([0.0, a], [hard, hard], gid="region-boundary:hard_confidence", **line)
    if shares is None:
        return
    # (x0, x1, y0, y1) of each region; a region too thin to hold its name goes unnamed.
    bounds = {
        "easy": (0.0, a, easy, 1.0, a > 0.04 and 1.0 - easy > 0.07),
        "hard": (0.0, a, 0.0, hard, a > 0.04 and hard > 0.07),
        "ambiguous": (a, xmax, 0.0, 1.0, xmax - a > 0.04),
    }
    box = {"boxstyle": "round,pad=0.25", "fc": "white", "ec": "0.6", "lw": 0.6, "alpha": 0.85}
    for region in REGIONS:
        x0, x1, y0, y1, fits = bounds[region]
        if fits:
            x, y = _quiet_spot(x0, x1, y0, y1, points)
            text = f"{REGION_LABELS[region]}\n{shares[region]:.0%}"
            ax.text(
                x, y, text, ha="center", va="center", fontsize=fontsize, color="0.1",
                bbox=box, zorder=4, gid=f"region-label:{region}", linespacing=1.1,
            )  # fmt: skip


def _quiet_spot(
    x0: float, x1: float, y0: float, y1: float, points: tuple[np.ndarray, np.ndarray] | None
) -> tuple[float, float]:
    """Of a 3 x 3 grid of spots inside the box (the centre first), the one with the fewest
    points within a label's reach; ties go to the earlier spot."""
    w, h = x1 - x0, y1 - y0
    spots = [(x0 + fx * w, y0 + fy * h) for fy in (0.5, 0.25, 0.75) for fx in (0.5, 0.3, 0.7)]
    if points is None:
        return spots[0]
    xv, yv = points
    near = [np.count_nonzero((abs(xv - x) < 0.2 * w) & (abs(yv - y) < 0.12 * h)) for x, y in spots]
    return spots[int(np.argmin(near))]


def _region_shares(metrics: pd.DataFrame, thresholds: Thresholds) -> dict[str, float]:
    counts = assign_regions(metrics, thresholds).value_counts()
    total = max(int(counts.sum()), 1)
    return {r: int(counts.get(r, 0)) / total for r in REGIONS}


def _set_limits(ax: Axes, x: str, y: str, xv: np.ndarray, yv: np.ndarray, thresholds: Thresholds):
    if _is_region_map(x, y):
        ax.set_xlim(0.0, _region_xmax(xv, thresholds))
    elif x in UNIT_RANGE_COLUMNS:
        ax.set_xlim(-0.02, 1.02)
    if y in UNIT_RANGE_COLUMNS:
        ax.set_ylim(-0.02, 1.02)


def _note(shown: int, total: int, unplottable: int, x: str, y: str) -> str:
    text = f"{shown:,} of {total:,} samples shown" if shown < total else f"{total:,} samples"
    if unplottable:
        text += f"\n{unplottable:,} without finite {x}/{y} left out"
    return text


def _histogram(ax: Axes, values: np.ndarray, column: str) -> None:
    lo, hi = value_range(column, values)
    counts, edges = np.histogram(values, bins=30, range=(lo, hi))
    ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color=BAR_COLOR, lw=0)
    ax.set_xlabel(column)


def _hue_bars(ax: Axes, hue: _Hue, rows: np.ndarray) -> None:
    """Distribution of the hue over the drawn points, each bar in its colour: a legend too."""
    if hue.kind == "categorical":
        codes = hue.values[rows]
        counts = np.bincount(codes[codes >= 0], minlength=len(hue.names))
        positions = np.arange(len(hue.names))
        ax.bar(positions, counts, color=hue.colors, width=0.8, lw=0)
        names = list(REGIONS) if hue.column == "region" else hue.names  # short tick labels
        ax.set_xticks(positions, names)
        if sum(len(n) for n in names) > 24:
            steep = len(names) > 12
            ax.tick_params(axis="x", labelrotation=90 if steep else 45)
            for label in ax.get_xticklabels():
                label.set_horizontalalignment("center" if steep else "right")
    else:
        values = hue.values[rows]
        values = values[np.isfinite(values)]
        if hue.levels is not None:
            levels = hue.levels
            step = levels[1] - levels[0] if len(levels) > 1 else 1.0
            index = np.clip(np.rint((values - levels[0]) / step).astype(np.int64), 0, None)
            counts = np.bincount(index, minlength=len(levels))[: len(levels)]
            centres, widths = levels, step * 0.85
        else:
            counts, edges = np.histogram(values, bins=30, range=(hue.norm.vmin, hue.norm.vmax))
            centres, widths = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
        ax.bar(centres, counts, width=widths, color=hue.cmap(hue.norm(centres)), lw=0)
    ax.set_xlabel(hue.column)


def _style_side(ax: Axes) -> None:
    ax.set_ylabel("samples", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.xaxis.label.set_fontsize(9)
    ax.spines[["top", "right"]].set_visible(False)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))


def _new_map_figure(
    n_side: int, marginals: bool, title: str | None
) -> tuple[Figure, Axes, list[Axes]]:
    """A figure for one map: its scatter Axes and, with ``marginals``, ``n_side`` side panels."""
    if marginals:
        fig = NotebookFigure(figsize=(10.0, 6.0), layout="constrained")
        grid = fig.add_gridspec(n_side, 2, width_ratios=[2.7, 1.0])
        ax = fig.add_subplot(grid[:, 0])
        side = [fig.add_subplot(grid[i, 1]) for i in range(n_side)]
    else:
        fig = NotebookFigure(figsize=(7.0, 5.6), layout="constrained")
        ax, side = fig.add_subplot(), []
    if title is not None:
        fig.suptitle(title, fontsize=12)
    return fig, ax, side


def _draw_map(
    ax: Axes, args: _MapArgs, xv: np.ndarray, yv: np.ndarray, rows: np.ndarray, hue: _Hue, *,
    size: float, alpha: float, regions: bool,
) -> PathCollection:  # fmt: skip
    """The scatter of one map on ``ax``, with its limits, regions, labels and sample note."""
    x, y, thresholds = args.x, args.y, args.thresholds
    ax.set_label("data-map")
    points = _scatter(ax, xv, yv, rows, hue, size=size, alpha=alpha)
    _set_limits(ax, x, y, xv, yv, thresholds)
    if regions and _is_region_map(x, y):
        shares = _region_shares(args.metrics, thresholds)
        _draw_regions(
            ax, thresholds, ax.get_xlim()[1], shares, fontsize=9, points=(xv[rows], yv[rows])
        )
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.spines[["top", "right"]].set_visible(False)
    total = int((np.isfinite(xv) & np.isfinite(yv)).sum())
    ax.text(
        0.99, 0.01, _note(rows.size, total, len(xv) - total, x, y), transform=ax.transAxes,
        ha="right", va="bottom", fontsize=8, color="0.3", gid="sample-note",
    )  # fmt: skip
    return points


def _draw_marginals(
    side: list[Axes], args: _MapArgs, xv: np.ndarray, yv: np.ndarray, rows: np.ndarray,
    hue: _Hue, regions: bool,
) -> None:  # fmt: skip
    """The side panels: histograms of y and x (with the thresholds on a region map) and the
    distribution of the hue over the drawn points."""
    for panel, label in zip(side, ["marginal:y", "marginal:x", "marginal:hue"]):
        panel.set_label(label)
    _histogram(side[0], yv[rows], args.y)
    _histogram(side[1], xv[rows], args.x)
    if regions and _is_region_map(args.x, args.y):
        t = args.thresholds
        for panel, name in (
            (side[0], "easy_confidence"), (side[0], "hard_confidence"),
            (side[1], "ambiguous_variability"),
        ):  # fmt: skip
            panel.axvline(getattr(t, name), color="0.2", lw=0.8, ls=(0, (4, 3)), gid=name)
    if hue.kind != "none":
        _hue_bars(side[2], hue, rows)
    for panel in side:
        _style_side(panel)


# --------------------------------------------------------------------------------------------
# Public functions


def plot_data_map(
    metrics: pd.DataFrame,
    *,
    x: str = "variability",
    y: str = "confidence",
    hue: str | None = "correctness",
    thresholds: Thresholds | None = None,
    regions: bool = True,
    ax: Axes | None = None,
    marginals: bool = True,
    per_class: bool = False,
    legend: bool = True,
    max_points: int | None = 25_000,
    seed: int = 0,
    cmap: str | mcolors.Colormap | None = None,
    point_size: float | None = None,
    alpha: float | None = None,
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Draw the data map: one point per sample, variability (x) against confidence (y).

    In the spirit of Figure 1 of Swayamdipta et al. (2020), "Dataset Cartography", EMNLP, with
    these choices:

    * **Hue** on an ordered scale. A numeric column gets a colour bar; one that takes few
      evenly spaced values (correctness is ``k / E`` for ``E`` epochs; integer counts) gets a
      stepped scale, one step per value. A categorical column gets a legend in a fixed order:
      ``REGIONS`` for ``region``, sorted class index (shown by class name when the table has
      ``label_name``) for ``label``, False then True for a bool, sorted values otherwise.
      Colours never depend on the order rows appear in.
    * **Regions**: when ``x="variability"`` and ``y="confidence"``, the boundaries of
      ``thresholds`` are drawn, and each region is named at its centre with its share of all
      samples. Other axes get no regions.
    * **Marginals** (own figure only): histograms of ``y`` and ``x`` and the distribution of
      the hue (a bar per value of a stepped scale or category, in its colour) over the drawn
      points.
    * **Large tables**: above ``max_points`` finite samples a seeded random subset is drawn,
      and the map says how many of how many are shown.

    Parameters
    ----------
    metrics : pandas.DataFrame
        One row per sample, e.g. from :func:`~cartokit.compute_metrics`.
    x, y : str, default "variability", "confidence"
        Numeric columns for the axes. Rows where either is NaN are left out (and counted).
    hue : str or None, default "correctness"
        Column to colour by, or None for one colour. ``"region"`` works without a ``region``
        column: it is then assigned from ``thresholds``; an existing column is used as is.
    thresholds : Thresholds, optional
        Region cut points; default ``Thresholds()``.
    regions : bool, default True
        Draw the region boundaries and names (only on a variability/confidence map).
    ax : matplotlib Axes, optional
        Draw only the scatter (with its colour bar or legend) into this Axes, to compose a
        larger figure; ``marginals`` is then ignored. By default a new figure is made.
    marginals : bool, default True
        Add the side panels of distributions when a new figure is made.
    per_class : bool, default False
        Draw one map per class instead: see :func:`plot_data_map_by_class`.
    legend : bool, default True
        Add the colour bar or legend of the hue.
    max_points : int or None, default 25000
        Most points to draw; None draws all.
    seed : int, default 0
        Seed of the down-sampling and of the drawing order.
    cmap : str or Colormap, optional
        Colour scale of a numeric hue; default viridis without its palest tenth.
    point_size, alpha : float, optional
        Marker area (points^2) and opacity; by default they shrink as more points are drawn.
    title : str, optional
        Figure title (the Axes title when ``ax`` is given).
    path : str or path-like, optional
        Also save the figure here; the format follows the suffix (``.png``, ``.svg``,
        ``.pdf``). The file is replaced atomically: a failed save leaves an earlier file intact.

    Returns
    -------
    matplotlib.figure.Figure
        The new figure, or the figure that holds ``ax``.

    Raises
    ------
    TypeError
        If ``metrics`` is not a DataFrame or an argument has the wrong type.
    ValueError
        If the table is empty, a column is missing or ``x``/``y`` is not numeric, no row has
        finite ``x`` and ``y``, or ``path`` has an unsupported suffix.

    Examples
    --------
    >>> import pandas as pd
    >>> metrics = pd.DataFrame(
    ...     {"variability": [0.05, 0.3, 0.04], "confidence": [0.95, 0.5, 0.1],
    ...      "correctness": [1.0, 0.5, 0.0]}
    ... )
    >>> fig = plot_data_map(metrics)
    >>> [a.get_label() for a in fig.axes]
    ['data-map', 'marginal:y', 'marginal:x', 'marginal:hue', '<colorbar>']
    >>> fig = plot_data_map(metrics, thresholds=Thresholds(easy_confidence=0.9))
    >>> easy = [ln for ln in fig.axes[0].lines if ln.get_gid() == "region-boundary:easy_confidence"]
    >>> easy[0].get_ydata().tolist()
    [0.9, 0.9]
    """
    caller = "plot_data_map"
    if per_class:
        if ax is not None:
            raise ValueError(
                "plot_data_map(per_class=True) draws a grid of Axes and cannot draw into one "
                "given Axes. Drop 'ax', or draw per class yourself with the 'ax' of each panel."
            )
        return plot_data_map_by_class(
            metrics, x=x, y=y, hue=hue, thresholds=thresholds, regions=regions,
            legend=legend, max_points=max_points, seed=seed, cmap=cmap,
            point_size=point_size, alpha=alpha, title=title, path=path,
        )  # fmt: skip
    args = _check_map_args(metrics, x, y, hue, thresholds, max_points, seed, caller=caller)
    metrics, x, y, hue, thresholds, max_points, seed = args
    check_param("ax", ax, Optional(InstanceOf(Axes, "a matplotlib Axes")), caller=caller)
    target = check_figure_path(path, caller=caller)

    xv, yv = _as_float(metrics[x]), _as_float(metrics[y])
    valid = np.isfinite(xv) & np.isfinite(yv)
    total = int(valid.sum())
    if total == 0:
        raise ValueError(
            f"{caller}: no row of the metrics table has finite {x!r} and {y!r} values "
            f"(all {len(metrics):,} are NaN or infinite); there is nothing to plot."
        )
    hue_ = _resolve_hue(metrics, hue, thresholds, cmap, caller=caller)
    rows = _sample_rows(valid, max_points, seed)

    if ax is None:
        fig, ax, side = _new_map_figure(3 if hue_.kind != "none" else 2, marginals, title)
    else:
        fig, side = root_figure(ax), []
        if title is not None:
            ax.set_title(title, fontsize=11)
    size, alpha_ = _point_style(rows.size, point_size, alpha)
    points = _draw_map(ax, args, xv, yv, rows, hue_, size=size, alpha=alpha_, regions=regions)
    if legend:  # the key goes in the (sub)figure that holds the map
        _add_key(ax.figure, points, hue_, ax)

    if side:
        _draw_marginals(side, args, xv, yv, rows, hue_, regions)
    save_figure(fig, target)
    return fig


def plot_data_map_by_class(
    metrics: pd.DataFrame,
    *,
    by: str = "label",
    x: str = "variability",
    y: str = "confidence",
    hue: str | None = "correctness",
    thresholds: Thresholds | None = None,
    regions: bool = True,
    legend: bool = True,
    ncols: int | None = None,
    max_points: int | None = 25_000,
    seed: int = 0,
    cmap: str | mcolors.Colormap | None = None,
    point_size: float | None = None,
    alpha: float | None = None,
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Small multiples: one data map per class, with shared axes and one colour scale.

    Panels follow the class order (sorted class index, titled by class name when the table
    has ``label_name``, else ``"label 3"``; ``REGIONS`` order for ``by="region"``). Each panel
    says how many of its samples it shows. The colour scale is fixed from
    the whole table, so one colour means the same value in every panel. ``max_points`` bounds
    the points of the whole grid: one seeded subset is drawn and split by class.

    Parameters
    ----------
    metrics : pandas.DataFrame
        One row per sample, e.g. from :func:`~cartokit.compute_metrics`.
    by : str, default "label"
        Column whose values make the panels.
    x, y, hue, thresholds, regions, legend, max_points, seed, cmap, point_size, alpha, path
        As in :func:`plot_data_map`.
    ncols : int, optional
        Panels per row; default up to 5.
    title : str, optional
        Figure title.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import pandas as pd
    >>> metrics = pd.DataFrame(
    ...     {"variability": [0.05, 0.3, 0.04, 0.1], "confidence": [0.95, 0.5, 0.1, 0.8],
    ...      "correctness": [1.0, 0.5, 0.0, 1.0], "label": [1, 0, 1, 0],
    ...      "label_name": ["pos", "neg", "pos", "neg"]}
    ... )
    >>> fig = plot_data_map_by_class(metrics)
    >>> [a.get_title() for a in fig.axes if a.get_label().startswith("data-map")]
    ['neg', 'pos']
    """
    caller = "plot_data_map_by_class"
    args = _check_map_args(metrics, x, y, hue, thresholds, max_points, seed, caller=caller)
    metrics, x, y, hue, thresholds, max_points, seed = args
    if not isinstance(by, str) or by not in metrics.columns:
        raise ValueError(
            f"The 'by' parameter of {caller} must be a column of the metrics table. "
            f"Got {by!r} instead. Available columns: {list(metrics.columns)}."
        )
    target = check_figure_path(path, caller=caller)

    xv, yv = _as_float(metrics[x]), _as_float(metrics[y])
    groups = metrics[by]
    categories = _category_order(groups, by)
    codes = pd.Categorical(groups, categories=categories).codes
    names = _category_names(metrics, by, categories)
    if by != "region" and _NAME_COLUMNS.get(by) not in metrics.columns:
        names = [f"{by} {name}" for name in names]  # a bare "3" says little as a title
    valid = np.isfinite(xv) & np.isfinite(yv) & (codes >= 0)
    if not valid.any():
        raise ValueError(
            f"{caller}: no row of the metrics table has finite {x!r} and {y!r} values and a "
            f"{by!r} value; there is nothing to plot."
        )
    n = len(categories)
    ncols = min(n, 5) if ncols is None else check_int("ncols", ncols, caller=caller, minimum=1)
    nrows = math.ceil(n / ncols)
    hue_ = _resolve_hue(metrics, hue, thresholds, cmap, caller=caller)
    rows = _sample_rows(valid, max_points, seed)
    # small panels: size the points as if the grid's points shared one panel 2.5 times as big
    size, alpha_ = _point_style(int(rows.size * 2.5), point_size, alpha)

    fig = NotebookFigure(figsize=(2.6 * ncols + 1.2, 2.4 * nrows + 0.8), layout="constrained")
    grid = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)
    panels = list(grid.ravel()[:n])
    for extra in grid.ravel()[n:]:
        fig.delaxes(extra)
    row_codes = codes[rows]
    xmax = _region_xmax(xv[valid], thresholds)
    points = None
    for k, panel in enumerate(panels):
        mine = rows[row_codes == k]
        points = _scatter(panel, xv, yv, mine, hue_, size=size, alpha=alpha_)
        panel.set_label(f"data-map:{names[k]}")
        panel.set_title(names[k], fontsize=10)
        in_class = int((valid & (codes == k)).sum())
        count = f"{mine.size:,} of {in_class:,}" if mine.size < in_class else f"n={in_class:,}"
        panel.text(
            0.98, 0.02, count, transform=panel.transAxes, ha="right", va="bottom", fontsize=7,
            color="0.3",
        )  # fmt: skip
        panel.spines[["top", "right"]].set_visible(False)
        panel.tick_params(labelsize=7)
        if regions and _is_region_map(x, y):
            _draw_regions(panel, thresholds, xmax, None, fontsize=7)
        _set_limits(panel, x, y, xv[valid], yv, thresholds)
        if _is_region_map(x, y):
            panel.set_xlim(0.0, xmax)
    fig.supxlabel(x, fontsize=10)
    fig.supylabel(y, fontsize=10)
    total = int(valid.sum())
    heading = _note(rows.size, total, 0, x, y)
    fig.suptitle(heading if title is None else f"{title}\n{heading}", fontsize=11)
    if legend and points is not None:
        _add_key(fig, points, hue_, panels)
    save_figure(fig, target)
    return fig
