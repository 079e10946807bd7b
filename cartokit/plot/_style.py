"""The one palette of cartokit, and the one way its figures are saved and shown.

Every figure and widget takes its colours from here.

A region, a class or a missing value has the same colour in the static map
(:mod:`cartokit.plot`), the live explorer (:mod:`cartokit.widgets`) and the study figures
(:mod:`cartokit.study`), as plain hex strings. Figures are matplotlib :class:`NotebookFigure`
objects, saved by :func:`save_figure` to a path checked by :func:`check_figure_path`. PNG bytes
for a notebook or a widget come from :func:`figure_png` (a figure) and :func:`image_png` (a
sample image).

The region colours are Okabe and Ito's blue and orange with Paul Tol's vibrant red. Under a
simulation of full protanopia, deuteranopia and tritanopia (Machado et al., 2009) the closest
two of the three stay 28 CIE76 Delta-E units apart, against 13 for Tol's bright blue, green and
red that the static map used before (``tests/test_plot.py`` recomputes this and asks for > 25).
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure

from cartokit._files import atomic_write

__all__ = [
    "BAR_COLOR",
    "LINE_COLORS",
    "LINE_STYLES",
    "UNIT_RANGE_COLUMNS",
    "NotebookFigure",
    "PNG_DPI",
    "SAVE_FORMATS",
    "check_figure_path",
    "figure_png",
    "image_png",
    "root_figure",
    "save_figure",
    "CLASS_COLORS",
    "CONTINUOUS_COLORS",
    "MISSING_COLOR",
    "REGION_COLORS",
    "REGION_LABELS",
    "category_colors",
    "line_style",
    "png_size",
    "rgba_png",
    "value_range",
]

REGION_COLORS: Mapping[str, str] = MappingProxyType(
    {"easy": "#0072B2", "ambiguous": "#E69F00", "hard": "#CC3311"}
)
"""Region -> colour, in the order of :data:`cartokit.regions.REGIONS`. Read-only."""

REGION_LABELS: Mapping[str, str] = MappingProxyType(
    {"easy": "easy-to-learn", "ambiguous": "ambiguous", "hard": "hard-to-learn"}
)
"""Region -> the words a legend shows (Swayamdipta et al., 2020). Read-only."""

MISSING_COLOR = "#BBBBBB"
"""Samples without a value: no region (a NaN metric), a missing category or a NaN number."""

CLASS_COLORS: tuple[str, ...] = (
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
    "#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255",
)  # fmt: skip
"""Qualitative colours for classes and other categories: Okabe-Ito, then Tol's muted scheme."""

CONTINUOUS_COLORS: tuple[str, ...] = (
    "#440154", "#482878", "#3E4A89", "#30698E", "#25848E", "#1FA088", "#38B977", "#73D056",
    "#BDDF26",
)  # fmt: skip
"""Stops of the scale for numeric columns: viridis from 0 to 0.9, evenly spaced.

Viridis without its palest tenth, whose light yellow nearly vanishes on white (and correctness
1, its top, is the most common value of a data map). Matplotlib and bqplot both interpolate
linearly between these stops; within 0.022 of viridis itself on every RGB channel.
"""

BAR_COLOR = "#5E7FA8"
"""Histograms and other bars that stand for no category."""

LINE_COLORS: tuple[str, ...] = (
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#000000", "#E69F00", "#332288", "#882255",
    "#999933", "#44AA99",
)  # fmt: skip
"""Colours of lines that must be told apart on white (one curve per method): Okabe-Ito and
Tol's muted scheme without their pale members (sky blue, yellow, cyan, sand), whose thin lines
vanish on a white page."""

LINE_STYLES: tuple[Any, ...] = ("-", (0, (5, 2)), (0, (1, 1.5)), (0, (6, 2, 1, 2)))
"""Dash patterns that, with :data:`LINE_COLORS`, give each of many lines its own look."""

UNIT_RANGE_COLUMNS = frozenset({"confidence", "correctness", "min_prob", "max_prob"})
"""Columns known to lie in [0, 1]: their axes and colour scales span all of it, in the static
map and the explorer alike, so that maps of different runs (and of a filtered table) compare."""


def value_range(column: str, finite: np.ndarray) -> tuple[float, float]:
    """The span of an axis or colour scale of a numeric column, from its finite values.

    [0, 1] (or wider) for :data:`UNIT_RANGE_COLUMNS`, from 0 for ``variability``, else the
    values' own range; one unit wide around a single value.

    >>> value_range("correctness", np.array([0.5, 1.0]))
    (0.0, 1.0)
    >>> value_range("aum", np.array([2.0, 2.0]))
    (1.5, 2.5)
    """
    if finite.size == 0:
        return (0.0, 1.0)
    lo, hi = float(finite.min()), float(finite.max())
    if column in UNIT_RANGE_COLUMNS:
        lo, hi = min(lo, 0.0), max(hi, 1.0)
    elif column == "variability":
        lo = min(lo, 0.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def line_style(i: int) -> tuple[str, Any]:
    """Colour and dash pattern of the ``i``-th of several lines: every colour of
    :data:`LINE_COLORS` solid, then again with the next dash pattern.

    >>> line_style(0), line_style(10)
    (('#0072B2', '-'), ('#0072B2', (0, (5, 2))))
    """
    k = len(LINE_COLORS)
    return LINE_COLORS[i % k], LINE_STYLES[(i // k) % len(LINE_STYLES)]


def category_colors(k: int) -> list[str]:
    """Colours for ``k`` categories, in order: :data:`CLASS_COLORS`, repeated beyond 16.

    Examples
    --------
    >>> category_colors(3)
    ['#0072B2', '#E69F00', '#009E73']
    >>> category_colors(17)[-1] == category_colors(1)[0]
    True
    """
    return [CLASS_COLORS[i % len(CLASS_COLORS)] for i in range(k)]


# --------------------------------------------------------------------------------------------
# Saving and showing figures

SAVE_FORMATS: tuple[str, ...] = ("png", "svg", "pdf")
"""File suffixes the plot functions can save to; the format follows the suffix."""

PNG_DPI = 200
"""Resolution of saved PNG figures."""


def check_figure_path(path: Any, *, caller: str) -> tuple[Path, str] | None:
    """Check a figure's save path before anything is drawn; return it with its format
    (``None`` for no path). The format follows the suffix: one of :data:`SAVE_FORMATS`."""
    if path is None:
        return None
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            f"The 'path' parameter of {caller} must be a str or path-like or None. "
            f"Got {type(path).__name__} instead."
        )
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in SAVE_FORMATS:
        got = f"the suffix {path.suffix!r}" if path.suffix else "no suffix"
        raise ValueError(
            f"The 'path' parameter of {caller} must end in .png, .svg or .pdf (the format "
            f"follows the suffix). Got {str(path)!r}, with {got}; change the file suffix."
        )
    return path, suffix


def save_figure(fig: Figure, target: tuple[Path, str] | None) -> None:
    """Save ``fig`` to a target from :func:`check_figure_path`, atomically; nothing for None."""
    if target is None:
        return
    path, fmt = target
    # atomic: an exception while rendering leaves any earlier file at `path` as it was
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format=fmt, dpi=PNG_DPI, bbox_inches="tight")


class NotebookFigure(Figure):
    """A Figure that shows itself in a notebook even when pyplot was never imported.

    IPython draws a plain Figure only after an inline backend registered its formatter (which
    importing pyplot does); ``_repr_png_`` makes the figures made here display regardless.
    """

    def _repr_png_(self) -> bytes:
        return figure_png(self, dpi=100, bbox_inches="tight")


def root_figure(ax: Axes) -> Figure:
    """The top-level figure that holds ``ax`` (through any subfigures): the one to save."""
    fig = ax.figure
    while isinstance(fig, SubFigure):
        fig = fig.figure
    return fig  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# PNG bytes, for notebooks and widgets


def figure_png(fig: Figure, **options: Any) -> bytes:
    """The PNG bytes of ``fig``; ``options`` go to ``savefig`` (e.g. ``dpi``)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", **options)
    return buffer.getvalue()


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height in pixels of PNG bytes (from the header: no decoding).

    >>> png_size(image_png(np.eye(4), size=8))
    (8, 8)
    """
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("png_size: not PNG bytes (no PNG signature and IHDR header).")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def rgba_png(image: np.ndarray) -> bytes:
    """PNG bytes of an RGBA image (rows x columns x 4, uint8), pixel for pixel and quickly
    compressed (the explorer's density view sends one per repaint).

    >>> rgba_png(np.zeros((2, 3, 4), np.uint8))[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    """
    from matplotlib.image import imsave

    buffer = io.BytesIO()
    imsave(buffer, image, format="png", pil_kwargs={"compress_level": 1})
    return buffer.getvalue()


def image_png(image: np.ndarray, *, size: int = 144) -> bytes:
    """PNG bytes of a sample image, enlarged by a whole factor to about ``size`` pixels.

    A 2-D array is drawn in grey (dark for high values) over its own range; a 3-D one is RGB or
    RGBA, channels last or first, rescaled to [0, 1] when its values leave that range.

    >>> image_png(np.eye(4))[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    """
    from matplotlib.image import imsave

    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3 and image.shape[0] in (1, 3, 4) and image.shape[-1] not in (1, 3, 4):
        image = np.moveaxis(image, 0, -1)  # channels-first to channels-last
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    finite = image[np.isfinite(image)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if image.ndim == 3 and (low < 0.0 or high > 1.0):
        image = (image - low) / (high - low) if high > low else np.zeros_like(image)
    scale = max(1, size // max(image.shape[:2]))
    image = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
    buffer = io.BytesIO()
    if image.ndim == 2:
        imsave(buffer, image, cmap="gray_r", format="png", vmin=low, vmax=max(high, low + 1e-9))
    else:
        imsave(buffer, np.clip(image, 0.0, 1.0), format="png")
    return buffer.getvalue()
