"""The density view of the live map: the shown points binned on a grid over the plot's window and
drawn as one small image, for maps with more points than the WebGL scatter redraws quickly.

Each cell of :data:`DENSITY_GRID` takes the colour of the colour column over the points in it
(the most frequent category, or the mean of a numeric column, on the same scale as the points)
and an opacity that grows with the log of its count. Cells holding a selected point are drawn
darker. Only the image (a PNG of a few kilobytes) goes to the page: a threshold move repaints
one image instead of recolouring every point.

numpy only; :class:`~cartokit.widgets._render.MapMarks` draws it as a PNG
(:func:`cartokit.plot._style.rgba_png`).
"""

from __future__ import annotations

import numpy as np

from cartokit.plot._style import MISSING_COLOR

__all__ = ["DENSITY_GRID", "Window", "density_rgba", "in_window", "window_cells"]

#: Columns and rows of cells of the density view: about 2 x 2 pixels of the 620 x 460 figure.
DENSITY_GRID = (274, 198)
#: Opacity of a cell holding one point; the densest cell is opaque.
_MIN_ALPHA = 0.35
#: Darkening of a cell that holds a selected point (its colour times this).
_SELECTED_SHADE = 0.45
#: Category counts up to which the per-cell counts are one dense table.
_DENSE_CATEGORIES = 64

Window = tuple[float, float, float, float]
"""The plot's window: x from, x to, y from, y to (the scales' bounds)."""


def in_window(x: np.ndarray, y: np.ndarray, window: Window) -> np.ndarray:
    """Which points lie inside ``window`` (bounds included); NaN is outside."""
    x0, x1, y0, y1 = window
    with np.errstate(invalid="ignore"):
        return (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)


def window_cells(
    x: np.ndarray, y: np.ndarray, shown: np.ndarray, window: Window, grid: tuple[int, int]
) -> np.ndarray:
    """The cell of each point on a ``grid`` (columns, rows) over ``window``, numbered row by
    row from the top left; -1 for a point not shown or outside the window.

    >>> window_cells(np.array([0.0, 0.99, 2.0]), np.array([0.0, 0.99, 0.5]),
    ...              np.ones(3, bool), (0.0, 1.0, 0.0, 1.0), (2, 2)).tolist()
    [2, 1, -1]
    """
    x0, x1, y0, y1 = window
    cols, rows = grid
    inside = shown & in_window(x, y, window)
    cx = np.zeros(len(x), dtype=np.int64)
    cy = np.zeros(len(x), dtype=np.int64)
    span_x, span_y = (x1 - x0) or 1.0, (y1 - y0) or 1.0
    cx[inside] = np.minimum(((x[inside] - x0) / span_x * cols).astype(np.int64), cols - 1)
    cy[inside] = np.minimum(((y1 - y[inside]) / span_y * rows).astype(np.int64), rows - 1)
    return np.where(inside, cy * cols + cx, -1)


def density_rgba(
    cells: np.ndarray,
    grid: tuple[int, int],
    values: np.ndarray,
    *,
    categories: int | None,
    colors: list[str],
    low: float,
    high: float,
    selected: np.ndarray | None = None,
) -> np.ndarray:
    """The density image: rows x columns x RGBA, uint8.

    Parameters
    ----------
    cells : numpy.ndarray
        Cell of each point in the image (:func:`window_cells`, without the -1 of the points
        outside it).
    values : numpy.ndarray
        The colour column's value of each point: a category code (NaN for missing) when
        ``categories`` is a count, else a number.
    colors, low, high
        The colour scale of the points (:func:`~cartokit.widgets._render.color_scale`): for
        categories, one colour per code then the missing colour; for numbers, evenly spaced
        stops from ``low`` to ``high``.
    selected : numpy.ndarray, optional
        Which points are selected; their cells are drawn darker.
    """
    cols, rows = grid
    size = cols * rows
    counts = np.bincount(cells, minlength=size)
    rgb = np.tile(_rgb(MISSING_COLOR), (size, 1))
    filled = counts > 0
    if categories is not None:
        codes = np.where(np.isnan(values), categories, values).astype(np.int64)
        majority = _majority(cells, codes, size, categories + 1)
        rgb[filled] = _palette(colors)[majority[filled]]
    else:
        finite = np.isfinite(values)
        total = np.bincount(cells[finite], weights=values[finite], minlength=size)
        n_finite = np.bincount(cells[finite], minlength=size)
        has = n_finite > 0
        mean = np.divide(total, n_finite, out=np.zeros(size), where=has)
        span = (high - low) or 1.0
        rgb[has] = _interpolate(colors, np.clip((mean[has] - low) / span, 0.0, 1.0))
    alpha = np.zeros(size)
    if filled.any():
        scale = np.log1p(counts.max())
        alpha[filled] = _MIN_ALPHA + (1 - _MIN_ALPHA) * np.log1p(counts[filled]) / scale
    if selected is not None and selected.any():
        marked = np.bincount(cells[selected], minlength=size) > 0
        rgb[marked] *= _SELECTED_SHADE
        alpha[marked] = 1.0
    image = np.concatenate([rgb, alpha[:, None]], axis=1).reshape(rows, cols, 4)
    return np.round(image * 255).astype(np.uint8)


def _majority(cells: np.ndarray, codes: np.ndarray, size: int, k: int) -> np.ndarray:
    """The most frequent code per cell (the lowest on a tie; 0 for an empty cell)."""
    if k <= _DENSE_CATEGORIES:
        table = np.bincount(cells * k + codes, minlength=size * k).reshape(size, k)
        return table.argmax(axis=1)
    # Many categories: count the (cell, code) pairs that occur instead of a size x k table.
    pairs, counts = np.unique(cells * k + codes, return_counts=True)
    cell, code = pairs // k, pairs % k
    # Per cell, the pair with the largest count (then the lowest code) comes last.
    order = np.lexsort((-code, counts, cell))
    last = np.r_[cell[order][1:] != cell[order][:-1], True]
    majority = np.zeros(size, dtype=np.int64)
    majority[cell[order][last]] = code[order][last]
    return majority


def _rgb(color: str) -> np.ndarray:
    """A ``#RRGGBB`` colour as three floats in [0, 1]."""
    return np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)], dtype=np.float64) / 255


def _palette(colors: list[str]) -> np.ndarray:
    return np.array([_rgb(c) for c in colors])


def _interpolate(colors: list[str], t: np.ndarray) -> np.ndarray:
    """Colours at ``t`` in [0, 1] along evenly spaced stops, linearly per channel (as bqplot's
    ``ColorScale`` maps values to the points' colours)."""
    stops = _palette(colors)
    if len(stops) == 1:
        return np.tile(stops[0], (len(t), 1))
    where = t * (len(stops) - 1)
    left = np.minimum(where.astype(np.int64), len(stops) - 2)
    frac = (where - left)[:, None]
    return stops[left] * (1 - frac) + stops[left + 1] * frac
