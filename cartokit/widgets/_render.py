"""How the widgets look: the bqplot marks of the live map, the detail panel, and the HTML and
PNG of their panels.

* :class:`MapMarks`: the figure of :class:`~cartokit.widgets.DataMapExplorer`: the WebGL
  (bqplot-gl) or SVG (bqplot) scatter, or the density image (:mod:`._density`) when the window
  holds too many points; its scales and axes, the threshold guides, the hidden proxy that
  lassos and brushes act on, the invisible pick layer that carries hover and click for the
  WebGL scatter, and the pan-zoom that drills down. It draws what a
  :class:`~._columns.ColumnModel` holds.
* :class:`DetailPanel`: one sample (its description, text or image) and its trajectory.
* HTML for the counts table, the legend, a sample's description and its text or values; the
  PNG of a sample image (:func:`cartokit.plot._style.image_png`) and of the review widget's
  trajectory.
"""

from __future__ import annotations

import html
import importlib.util
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd

try:
    import bqplot
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "DataMapExplorer needs bqplot (and bqplot-gl for large maps). "
        "Install them with: pip install 'cartokit[widgets]'"
    ) from err

from cartokit._validation import Options, check_param
from cartokit.plot._style import (
    CONTINUOUS_COLORS,
    MISSING_COLOR,
    REGION_COLORS,
    category_colors,
    figure_png,
    image_png,
    png_size,
    rgba_png,
    value_range,
)
from cartokit.regions import REGIONS, Thresholds
from cartokit.widgets._columns import Column, ColumnModel, domain
from cartokit.widgets._density import (
    DENSITY_GRID,
    Window,
    density_rgba,
    in_window,
    window_cells,
)

__all__ = [
    "DENSITY_ABOVE",
    "GRID",
    "MAX_CLASS_ROWS",
    "MAX_UNSCROLLED_ROWS",
    "REGION_SCALE",
    "DetailPanel",
    "MapMarks",
    "brush_reports",
    "color_scale",
    "counts_table",
    "describe",
    "fmt",
    "legend",
    "resolve_backend",
    "sample_view",
    "status_html",
    "trajectory_png",
    "TRAJECTORY_SIZE",
    "png_image",
]

#: The colour scale of regions, in REGIONS order (the region codes 0, 1, 2), then missing (3).
REGION_SCALE = [*(REGION_COLORS[region] for region in REGIONS), MISSING_COLOR]
#: Default most points drawn as points in the map's window; with more, the density view.
DENSITY_ABOVE = 300_000
#: Columns and rows of the grid whose cells the lasso selects (about 6 pixels each).
GRID = (96, 72)
#: Per-class rows shown in the counts table (and categories in a legend); the rest are summed.
MAX_CLASS_ROWS = 30
#: Per-class rows shown without a scroll box; a longer table scrolls, and says so above it.
MAX_UNSCROLLED_ROWS = 12
#: Size in pixels of the review widget's trajectory chart, rendered and shown at exactly this.
TRAJECTORY_SIZE = (420, 260)
_TOOLTIP_METRICS = ("confidence", "variability", "correctness", "aum", "forgetting")
#: What noise injection (cartokit.noise) adds to a split's frame, shown with the label.
_SAMPLE_FLAGS = ("flipped", "clean_label")
_ERROR_RED, _OK_GREEN = "#b00020", "#1b5e20"


# ==================================================================== backends


def resolve_backend(backend: str, *, caller: str) -> str:
    """``"gl"`` or ``"svg"``: ``"auto"`` is ``"gl"`` when bqplot-gl is importable."""
    check_param("backend", backend, Options(("auto", "gl", "svg")), caller=caller)
    if backend == "svg":
        return "svg"
    try:
        import bqplot_gl  # noqa: F401
    except ImportError as err:
        if backend == "gl":
            raise ImportError(
                f"{caller}(backend='gl') needs bqplot-gl: pip install bqplot-gl "
                "(or pip install 'cartokit[widgets]'), or use backend='svg'."
            ) from err
        return "svg"
    return "gl"


def brush_reports() -> bool:
    """Whether bqplot's BrushSelector can report its rectangle in this environment.

    With bqplot-gl's JupyterLab extension installed next to bqplot's (bqplot 0.13.1, bqplot-gl
    0.1.1), the two share one copy of d3 whose events bqplot cannot read: the brush draws but
    never sends its rectangle. The lasso is not affected.
    """
    return importlib.util.find_spec("bqplot_gl") is None


# ==================================================================== the map


class MapMarks:
    """The figure of the live map, drawing what ``model`` holds.

    Parameters
    ----------
    model : ColumnModel
    backend : {"gl", "svg"}
    on_hover, on_click : callable
        ``handler(mark, event)`` for a hover or a click on a point of :attr:`scatter` (SVG) or
        :attr:`pick` (WebGL).
    on_select : callable
        ``handler(positions)`` with the table positions a lasso or a brush in the page chose.
    on_window : callable
        ``handler()`` after a pan or zoom in the page moved the window (the scales' bounds).
    density_above : int or None
        Most points drawn as points in the window: with more, the density image is drawn
        (None: always points).
    max_points : int or None
        Most points drawn when the window holds a part of a large map (a seeded sample).

    Attributes
    ----------
    view : {"points", "density"}
        What the map draws now.
    """

    def __init__(
        self,
        model: ColumnModel,
        backend: str,
        *,
        on_hover: Callable[[Any, dict[str, Any]], None],
        on_click: Callable[[Any, dict[str, Any]], None],
        on_select: Callable[[np.ndarray], None],
        on_window: Callable[[], None] = lambda: None,
        density_above: int | None = None,
        max_points: int | None = None,
    ) -> None:
        self._model = model
        self._on_select = on_select
        self._on_window = on_window
        self._density_above, self._max_points = density_above, max_points
        self.tool = "inspect"
        self.view = "points"
        # True while Python resets the proxy, the brush or the scales, whose observers then
        # stand still.
        self._quiet = False
        # The density image the page holds, and each point's cell in it.
        self._sent_png = b""
        self._density_pos = self._density_cells = np.zeros(0, dtype=np.int64)
        self._scale: tuple[list[str], float, float] = (list(REGION_SCALE), 0.0, 3.0)
        self._home: Window = (0.0, 1.0, 0.0, 1.0)
        self._last_window: Window | None = None
        self.x_scale = bqplot.LinearScale(min=0.0, max=1.0)
        self.y_scale = bqplot.LinearScale(min=0.0, max=1.0)
        self.color_scale = bqplot.ColorScale(min=0.0, max=3.0, colors=list(REGION_SCALE))
        xy = {"x": self.x_scale, "y": self.y_scale}
        big = len(model.ids) > 20_000
        self.tooltip = widgets.HTML(layout=widgets.Layout(padding="2px 6px"))
        self.tooltip.add_class("cartokit-tooltip")
        common: dict[str, Any] = {
            "scales": {**xy, "color": self.color_scale},
            "default_size": 6 if big else 20,
            "opacities": [0.6 if big else 0.8],
            "unselected_style": {"opacity": 0.15},
            "stroke": None,
        }
        hover: dict[str, Any] = {"tooltip": self.tooltip, "interactions": {"hover": "tooltip"}}
        self.pick: Any = None
        if backend == "gl":
            from bqplot_gl import ScatterGL

            # Fixed domains and one name: on a colour change bqplot's scatter model then
            # neither recomputes the scales' domains nor builds a name string per point.
            self.scatter = ScatterGL(
                **common, names=[""], display_names=False,
                preserve_domain={"x": True, "y": True, "color": True},
            )  # fmt: skip
            # ScatterGL draws on a canvas without per-point events: an invisible SVG layer of a
            # few points carries the hover tooltip and the click.
            self.pick = bqplot.Scatter(
                scales=xy, default_size=40, opacities=[0.0], colors=["black"],
                hovered_style={"opacity": 0.6}, **hover,
            )  # fmt: skip
        else:
            self.scatter = bqplot.Scatter(**common, **hover)
        self.pick_positions = np.zeros(0, dtype=np.int64)
        hover_mark = self.scatter if self.pick is None else self.pick
        hover_mark.on_hover(on_hover)
        hover_mark.on_element_click(on_click)
        self.guides = bqplot.Lines(
            x=np.zeros((3, 2)), y=np.zeros((3, 2)), scales=xy, colors=["#444444"],
            line_style="dashed", stroke_width=1, enable_hover=False,
        )  # fmt: skip
        # A ring around the inspected point, so that the sample in the detail panel is found on
        # the map (drawn under the pick layer, which must stay on top to take clicks).
        self.highlight = bqplot.Scatter(
            x=np.zeros(0, np.float32), y=np.zeros(0, np.float32), scales=xy, marker="circle",
            default_size=260, fill=False, stroke="#000000", stroke_width=2.5,
            colors=["#000000"], enable_hover=False, interactions={}, visible=False,
        )  # fmt: skip
        self.highlighted: int | None = None
        self.x_axis = bqplot.Axis(scale=self.x_scale)
        self.y_axis = bqplot.Axis(scale=self.y_scale, side="left")
        # Selectors act on a hidden SVG proxy, one point per non-empty cell of a grid over the
        # plot: ScatterGL cannot take a lasso (bqplot-gl 0.1.1 selects nothing), and a down-
        # sampled SVG scatter would miss the points it does not draw. Python then selects every
        # shown point in the chosen cells.
        self.proxy = bqplot.Scatter(scales=xy, visible=False, enable_hover=False, interactions={})
        self.proxy.observe(self._on_proxy_selected, "selected")
        self._proxy_cells = np.zeros(0, dtype=np.int64)
        self._cells = np.full(len(model.ids), -1, dtype=np.int64)
        self.brush = bqplot.interacts.BrushSelector(
            x_scale=self.x_scale, y_scale=self.y_scale, marks=[self.proxy], color="#555555"
        )
        self.brush.observe(self._on_brush, ["selected_x", "selected_y"])
        self.lasso = bqplot.interacts.LassoSelector(
            x_scale=self.x_scale, y_scale=self.y_scale, marks=[self.proxy]
        )
        self.panzoom = bqplot.interacts.PanZoom(scales={"x": [self.x_scale], "y": [self.y_scale]})
        for scale in (self.x_scale, self.y_scale):
            scale.observe(self._on_scale, ["min", "max"])
        # The density view: one image over the window, drawn instead of the points.
        self._spare_image = widgets.Image(format="png")
        self.density = bqplot.Image(
            image=widgets.Image(format="png"), scales=xy, x=[0.0, 1.0], y=[0.0, 1.0],
            pixelated=True, visible=False, enable_hover=False, interactions={},
        )  # fmt: skip
        self.figure = bqplot.Figure(
            marks=[self.density, self.scatter, self.guides, self.highlight, self.proxy]
            + ([self.pick] if self.pick else []),
            axes=[self.x_axis, self.y_axis],
            animation_duration=0,
            fig_margin={"top": 16, "bottom": 48, "left": 56, "right": 16},
            layout=widgets.Layout(width="620px", height="460px"),
        )
        self.figure.add_class("cartokit-map")

    # ------------------------------------------------------------------ drawing
    def show_axes(self, names: tuple[str, str], columns: tuple[Column, Column]) -> None:
        """Bounds, labels and category ticks of both axes, for the model's ``xy``."""
        with self.x_axis.hold_sync(), self.y_axis.hold_sync():
            for axis, scale, name, values, column in zip(
                (self.x_axis, self.y_axis), (self.x_scale, self.y_scale), names,
                self._model.xy, columns,
            ):  # fmt: skip
                low, high = domain(values, column)
                self._set_bounds(scale, low, high)
                axis.label = name
                if column.categories is None:
                    axis.tick_values, axis.tick_labels = None, None
                else:
                    axis.tick_values = np.arange(len(column.categories), dtype=np.float64)
                    axis.tick_labels = {str(k): c for k, c in enumerate(column.categories)}
        self._home = self.window()
        self.clear_brush()

    def window(self) -> Window:
        """The plot's window: the bounds of the x and y scales."""
        xs, ys = self.x_scale, self.y_scale
        return float(xs.min), float(xs.max), float(ys.min), float(ys.max)

    def zoom(self, window: Window | None) -> None:
        """Show ``window`` (None: the whole map, as the axes set it), then redraw for it."""
        x0, x1, y0, y1 = self._home if window is None else window
        self._set_bounds(self.x_scale, x0, x1)
        self._set_bounds(self.y_scale, y0, y1)
        self._on_window()

    @property
    def follows_window(self) -> bool:
        """Whether what is drawn depends on the window: more shown points than
        ``density_above``, so that the window shows a density image or a part of the map."""
        limit = self._density_above
        return limit is not None and int(self._model.visible.sum()) > limit

    def draw(self, color_name: str) -> None:
        """Draw the shown points in the window: the model's drawn points, with colour and
        selection, or the density image when the window holds more than ``density_above``."""
        model = self._model
        self.view = "points"
        if self.follows_window:
            x, y = model.xy
            window = self.window()
            inside = model.visible & in_window(x, y, window)
            if int(inside.sum()) > self._density_above:  # type: ignore[operator]
                self.view = "density"
                cells = window_cells(x, y, model.visible, window, DENSITY_GRID)
                self._density_pos = np.flatnonzero(cells >= 0)  # the points in the image
                self._density_cells = cells[self._density_pos]
                model.drawn = np.zeros(0, dtype=np.int64)
            else:
                model.drawn = model.sample(np.flatnonzero(inside), self._max_points)
        x, y = model.xy
        color = model.color_values(color_name)
        with self.scatter.hold_sync():
            self.scatter.x = x[model.drawn].astype(np.float32)
            self.scatter.y = y[model.drawn].astype(np.float32)
            self.scatter.color = color
            self.show_selection(color_name)

    def recolor(self, color_name: str) -> None:
        """Recolour by ``color_name``: the scatter's colour array alone (sent only when it
        differs from the page's: the trait compares arrays), or the density image."""
        if self.view == "density":
            self._paint_density(color_name)
            return
        self.scatter.color = self._model.color_values(color_name)

    def set_color_scale(self, colors: list[str], low: float, high: float) -> None:
        self._scale = (colors, low, high)
        scale = self.color_scale
        if scale.colors != colors or scale.min != low or scale.max != high:
            with scale.hold_sync():
                scale.colors = colors
                scale.min, scale.max = low, high

    def show_selection(self, color_name: str) -> None:
        """Highlight the model's selected points among the drawn ones (in the density view,
        darken the cells that hold them)."""
        drawn_selected = np.flatnonzero(self._model.selected[self._model.drawn])
        self.scatter.selected = drawn_selected.astype(np.int32) if len(drawn_selected) else None
        if self.view == "density":
            self._paint_density(color_name)
        elif self.density.visible:
            self.density.visible = False

    def _paint_density(self, color_name: str) -> None:
        column = self._model.column(color_name)
        colors, low, high = self._scale
        pos = self._density_pos
        rgba = density_rgba(
            self._density_cells, DENSITY_GRID, column.values[pos],
            categories=None if column.categories is None else len(column.categories),
            colors=colors, low=low, high=high, selected=self._model.selected[pos],
        )  # fmt: skip
        png = rgba_png(rgba)
        x0, x1, y0, y1 = self.window()
        with self.density.hold_sync():
            if png != self._sent_png:
                # bqplot's image mark redraws when its image widget is replaced, not when that
                # widget's value changes: fill the spare widget, then swap the two.
                spare, self._spare_image = self._spare_image, self.density.image
                spare.value = self._sent_png = png
                self.density.image = spare
            if list(self.density.x) != [x0, x1] or list(self.density.y) != [y0, y1]:
                self.density.x, self.density.y = [x0, x1], [y0, y1]
            self.density.visible = True

    def _set_bounds(self, scale: Any, low: float, high: float) -> None:
        self._quiet = True
        try:
            with scale.hold_sync():
                scale.min, scale.max = low, high
        finally:
            self._quiet = False
        self._last_window = self.window()

    def _on_scale(self, change: dict[str, Any]) -> None:
        # A pan or zoom in the page moved a scale; both bounds arrive in one message, whose
        # changes are announced after both are set, so the second announcement finds nothing new.
        if self._quiet or self.window() == self._last_window:
            return
        self._last_window = self.window()
        self._on_window()

    def show_highlight(self, position: int | None) -> None:
        """Ring the point at table ``position`` (the inspected sample); None, or a point the
        filter hides, shows no ring."""
        self.highlighted = position
        x, y = self._model.xy
        shown = (
            position is not None
            and bool(self._model.visible[position])
            and bool(np.isfinite(x[position]) and np.isfinite(y[position]))
        )
        with self.highlight.hold_sync():
            if shown:
                self.highlight.x = x[[position]].astype(np.float32)
                self.highlight.y = y[[position]].astype(np.float32)
            self.highlight.visible = shown

    def place_pick(self, limit: int) -> None:
        """Put the pick layer (WebGL only) on at most ``limit`` shown points."""
        if self.pick is None:
            return
        self.pick_positions = positions = self._model.pick_positions(limit)
        x, y = self._model.xy
        with self.pick.hold_sync():
            self.pick.x = x[positions].astype(np.float32)
            self.pick.y = y[positions].astype(np.float32)

    def place_proxy(self) -> None:
        """Place one hidden proxy point at the centre of each grid cell holding a shown point."""
        (x, y), visible = self._model.xy, self._model.visible
        cols, rows = GRID
        x0, x1 = float(self.x_scale.min), float(self.x_scale.max)
        y0, y1 = float(self.y_scale.min), float(self.y_scale.max)
        with np.errstate(invalid="ignore"):
            cx = np.clip(((x - x0) / (x1 - x0) * cols).astype(np.int64), 0, cols - 1)
            cy = np.clip(((y - y0) / (y1 - y0) * rows).astype(np.int64), 0, rows - 1)
        self._cells = np.where(visible, cy * cols + cx, -1)
        self._proxy_cells = np.unique(self._cells[visible])
        centre_x = x0 + (self._proxy_cells % cols + 0.5) * (x1 - x0) / cols
        centre_y = y0 + (self._proxy_cells // cols + 0.5) * (y1 - y0) / rows
        self._quiet = True
        try:
            with self.proxy.hold_sync():
                self.proxy.x = centre_x.astype(np.float32)
                self.proxy.y = centre_y.astype(np.float32)
                self.proxy.selected = None
        finally:
            self._quiet = False

    def show_guides(self, thresholds: Thresholds, x: str, y: str) -> None:
        """The threshold lines, on a variability/confidence map only."""
        if {x, y} != {"variability", "confidence"}:
            self.guides.visible = False
            return
        t = thresholds
        x_low = float(self.x_scale.min if x == "variability" else self.y_scale.min)
        c_low = float(self.y_scale.min if y == "confidence" else self.x_scale.min)
        c_high = float(self.y_scale.max if y == "confidence" else self.x_scale.max)
        a = t.ambiguous_variability
        var = np.array([[a, a], [x_low, a], [x_low, a]])
        conf = np.array([[c_low, c_high], [t.easy_confidence] * 2, [t.hard_confidence] * 2])
        xs, ys = (var, conf) if x == "variability" else (conf, var)
        with self.guides.hold_sync():
            self.guides.x, self.guides.y = xs, ys
            self.guides.visible = True

    def position_of(self, mark: Any, event: dict[str, Any]) -> int | None:
        """The table position of the point a hover or click ``event`` on ``mark`` names."""
        index = (event.get("data") or {}).get("index")
        positions = self.pick_positions if mark is self.pick else self._model.drawn
        if index is None or not 0 <= int(index) < len(positions):
            return None
        return int(positions[int(index)])

    # ------------------------------------------------------------------ selectors
    def set_tool(self, tool: str) -> None:
        """What a drag does: ``"inspect"`` (nothing), ``"lasso"`` or ``"brush"``."""
        self.tool = tool
        self.figure.interaction = {
            "inspect": None,
            "brush": self.brush,
            "lasso": self.lasso,
            "zoom": self.panzoom,
        }[tool]

    def clear_lasso(self) -> None:
        if self.figure.interaction is not None:  # a fresh selector view drops drawn lassos
            interaction = self.figure.interaction
            self.figure.interaction = None
            self.figure.interaction = interaction

    def clear_brush(self) -> None:
        # A brush rectangle is in the old axes' units; drop it but keep the selected ids.
        self._quiet = True
        try:
            with self.brush.hold_sync():
                self.brush.selected_x = None
                self.brush.selected_y = None
        finally:
            self._quiet = False

    def _on_proxy_selected(self, change: dict[str, Any]) -> None:
        # A lasso in the page selected grid cells of the proxy; select every shown point in
        # them. (A brush's exact rectangle is applied in _on_brush instead.)
        if self._quiet or self.tool == "brush":
            return
        indices = change["new"]
        chosen = np.zeros(GRID[0] * GRID[1], dtype=bool)
        if indices is not None and len(indices):
            indices = np.asarray(indices, dtype=np.int64)
            chosen[self._proxy_cells[indices[indices < len(self._proxy_cells)]]] = True
        cells = self._cells
        inside = self._model.visible & (cells >= 0) & chosen[np.maximum(cells, 0)]
        self._on_select(np.flatnonzero(inside))

    def _on_brush(self, change: dict[str, Any]) -> None:
        if self._quiet:
            return
        bx, by = self.brush.selected_x, self.brush.selected_y
        if bx is None or by is None or len(bx) < 2 or len(by) < 2:
            self._on_select(np.zeros(0, np.int64))
            return
        x, y = self._model.xy
        inside = (x >= min(bx)) & (x <= max(bx)) & (y >= min(by)) & (y <= max(by))
        self._on_select(np.flatnonzero(self._model.visible & inside))


def color_scale(name: str, column: Column) -> tuple[list[str], float, float]:
    """Colours and bounds of the colour scale of a column: the region colours, the category
    colours then the missing colour, or the continuous scale over
    :func:`~cartokit.plot._style.value_range` (as in the static map)."""
    if column.categories is None:
        # the static map's range too (plot_data_map): correctness spans [0, 1] however the
        # shown values fall, so one colour means one value in both
        low, high = value_range(name, column.values[np.isfinite(column.values)])
        return list(CONTINUOUS_COLORS), low, high
    k = len(column.categories)
    colors = list(REGION_SCALE) if name == "region" else [*category_colors(k), MISSING_COLOR]
    return colors, 0.0, float(k)


# ==================================================================== the detail panel


class DetailPanel:
    """The inspected sample: its description, its text or image, and its gold-label
    probability per epoch (a bqplot line)."""

    def __init__(self, epochs: int) -> None:
        self.info = widgets.HTML()
        self.info.add_class("cartokit-detail")
        self.sample_html = widgets.HTML(layout=widgets.Layout(max_width="360px"))
        self.sample_image = widgets.Image(format="png")
        self.sample_image.add_class("cartokit-detail-image")
        x_scale = bqplot.LinearScale(min=0.0, max=float(epochs))
        y_scale = bqplot.LinearScale(min=0.0, max=1.0)
        self.trajectory = bqplot.Lines(
            x=np.zeros(0, np.float32), y=np.zeros(0, np.float32),
            scales={"x": x_scale, "y": y_scale}, colors=["#333333"], marker="circle",
            marker_size=24,
        )  # fmt: skip
        self.trajectory_figure = bqplot.Figure(
            marks=[self.trajectory],
            axes=[
                bqplot.Axis(scale=x_scale, label="checkpoint (from 0)", tick_format="d"),
                bqplot.Axis(scale=y_scale, side="left", label="gold-label prob."),
            ],
            title="",
            animation_duration=0,
            fig_margin={"top": 36, "bottom": 44, "left": 56, "right": 16},
            layout=widgets.Layout(width="380px", height="240px"),
        )

    def widget(self) -> widgets.HBox:
        return widgets.HBox(
            [
                widgets.VBox(
                    [self.info, self.sample_html, self.sample_image],
                    layout=widgets.Layout(width="380px", padding="0 8px"),
                ),
                self.trajectory_figure,
            ]
        )

    def show(self, model: ColumnModel, position: int | None, *, data: Any, dynamics: Any) -> None:
        """Show the sample at table ``position`` (None: the hint to click a point)."""
        self.sample_image.layout.display = "none"
        self.sample_html.value = ""
        if position is None:
            self.info.value = (
                "<i>Click a point (drag mode: inspect) to see the sample and its "
                "training trajectory.</i>"
            )
            self.trajectory.x, self.trajectory.y = np.zeros(0), np.zeros(0)
            self.trajectory_figure.title = ""
            return
        self.info.value = describe(model, position, compact=False)
        if data is None:
            self.sample_html.value = "<i>Pass data= to see the sample itself.</i>"
        else:
            sample = data.show(int(model.data_pos[position]))
            text, png = sample_view(sample, css_class="cartokit-sample-text", max_height=200)
            self.sample_html.value = text
            if png is not None:
                png_image(self.sample_image, png)
        if dynamics is None:
            self.trajectory_figure.title = "pass dynamics= for the trajectory"
            return
        gold = np.asarray(dynamics.gold_prob[:, model.dyn_pos[position]], dtype=np.float32)
        epochs = np.arange(len(gold), dtype=np.float32)
        seen = np.isfinite(gold)
        with self.trajectory.hold_sync():
            self.trajectory.x, self.trajectory.y = epochs[seen], gold[seen]
        self.trajectory_figure.title = f"id {model.ids[position]}: gold-label probability"


# ==================================================================== HTML and PNG


def fmt(value: Any) -> str:
    """A value as a panel shows it: ints and bools as they are, numbers to 3 decimals.

    >>> fmt(True), fmt(3), fmt(0.12345), fmt("x")
    ('True', '3', '0.123', 'x')
    """
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    try:
        return f"{float(value):.3f}"
    except (TypeError, ValueError):
        return str(value)


def describe(model: ColumnModel, position: int, *, compact: bool) -> str:
    """HTML lines about one sample: id, label (and the label a flip replaced, in the words of
    :func:`~cartokit.plot.study.plot_examples`: "label 9 (was 6)"), prediction, region, key
    metrics, whether its label was flipped, and the ``data.frame`` extras."""
    row = model.metrics.iloc[position]
    extra = model.extra.iloc[position]
    code = model.codes[position]
    label = model.labels[position]
    names = model.class_names
    label_text = f"label <b>{html.escape(names[label])}</b>"
    clean = _sample_value(row, extra, "clean_label")
    if clean is not None and _is_class(clean, len(names)) and int(clean) != label:
        label_text += f" (was {html.escape(names[int(clean)])})"
    parts = [f"<b>id {html.escape(str(model.ids[position]))}</b>", label_text]
    predicted = row.get("predicted_label")
    if predicted is not None and not pd.isna(predicted):
        parts.append(f"predicted {html.escape(names[int(predicted)])}")
    parts.append(f"region <b>{REGIONS[code] if code >= 0 else 'none'}</b>")
    for name in _TOOLTIP_METRICS:
        if name in row.index and not pd.isna(row[name]):
            parts.append(f"{name} {fmt(row[name])}")
    flipped = _sample_value(row, extra, "flipped")
    if flipped is not None:
        parts.append(f"flipped {fmt(bool(flipped))}")
    for name in model.extra.columns:
        if name in _SAMPLE_FLAGS:
            continue  # shown above
        value = extra[name]
        if name == "text" or isinstance(value, str):
            text = str(value)
            if compact and len(text) > 80:
                text = text[:77] + "…"
            if not compact and name == "text":
                continue  # the full text is shown below
            parts.append(f"{html.escape(name)}: {html.escape(text)}")
        elif not pd.isna(value):
            parts.append(f"{html.escape(name)} {fmt(value)}")
    sep = "<br>" if compact else " · "
    return f"<div style='font-size:12px;line-height:1.35'>{sep.join(parts)}</div>"


def _sample_value(row: pd.Series, extra: pd.Series, name: str) -> Any:
    """A sample's ``name`` from its metrics row, else from the joined ``data.frame``; None when
    neither has it (or it is missing)."""
    for source in (row, extra):
        if name in source.index and not pd.isna(source[name]):
            return source[name]
    return None


def _is_class(value: Any, num_classes: int) -> bool:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return number.is_integer() and 0 <= number < num_classes


def sample_view(
    sample: Any, *, css_class: str, max_height: int, image_size: int = 144, max_values: int = 32
) -> tuple[str, bytes | None]:
    """A sample (from ``Split.show``) for a panel: ``(html, None)`` for a text (in a scrolling
    box of class ``css_class``) or a vector (its first ``max_values`` values), ``("", png)``
    for a 2-D or 3-D image."""
    if isinstance(sample, str):
        return (
            f"<div class='{css_class}' style='white-space:pre-wrap;max-height:{max_height}px;"
            f"overflow:auto;border:1px solid #ddd;padding:4px'>{html.escape(sample)}</div>",
            None,
        )
    if np.ndim(sample) in (2, 3):
        return "", image_png(np.asarray(sample), size=image_size)
    values = np.ravel(sample)
    shown = ", ".join(fmt(v) for v in values[:max_values])
    more = ", …" if len(values) > max_values else ""
    return f"<code>[{html.escape(shown)}{more}]</code>", None


def counts_table(model: ColumnModel, *, density: bool = False) -> str:
    """The live counts: a summary line, then a per-class table (``data-region`` cells);
    ``density`` says that the map shows the density view."""
    counts, class_names = model.class_counts, model.class_names
    shown, drawn, total = int(model.visible.sum()), len(model.drawn), len(model.ids)
    selected = int(model.selected.sum())
    totals = counts[:, 1:].sum(axis=0)
    summary = " · ".join(
        f"<span data-region='{r}'><b>{r}</b> <span class='cartokit-count'>{int(c)}</span></span>"
        for r, c in zip(REGIONS, totals)
    )
    head = "".join(f"<th style='text-align:right;padding:0 6px'>{r}</th>" for r in REGIONS)
    rows = []
    for k in range(min(len(class_names), MAX_CLASS_ROWS)):
        cells = "".join(
            f"<td data-region='{r}' style='text-align:right;padding:0 6px'>{int(v)}</td>"
            for r, v in zip(REGIONS, counts[k, 1:])
        )
        rows.append(
            f"<tr data-class='{html.escape(class_names[k])}'>"
            f"<td>{html.escape(class_names[k])}</td>{cells}</tr>"
        )
    if len(class_names) > MAX_CLASS_ROWS:
        rest = counts[MAX_CLASS_ROWS:, 1:].sum(axis=0)
        cells = "".join(f"<td style='text-align:right;padding:0 6px'>{int(v)}</td>" for v in rest)
        rows.append(f"<tr><td>{len(class_names) - MAX_CLASS_ROWS} more classes</td>{cells}</tr>")
    drawn_note = f" ({drawn:,} drawn)" if drawn < shown else ""
    if density:
        drawn_note = " (density view: zoom in to draw points)"
    missing = int(counts[:, 0].sum())
    missing_note = f" · {missing} without a region" if missing else ""
    # The widget's HTML sets a 28 px line height, which made a 260 px box show 8 classes of
    # 10 with no sign of the rest: rows get their own line height, and every class shows
    # unless there are many; then the box scrolls (with a scroll bar) and says so.
    scrolled = len(rows) > MAX_UNSCROLLED_ROWS
    box = (
        f"<div class='cartokit-class-scroll' style='max-height:{(MAX_UNSCROLLED_ROWS + 1) * 18}px;"
        "overflow-y:scroll;margin-top:2px'>"
        if scrolled
        else "<div style='margin-top:4px'>"
    )
    note = (
        f"<div class='cartokit-class-note' style='font-size:12px;color:#555;margin-top:4px'>"
        f"{len(class_names)} classes, scroll for all</div>"
        if scrolled
        else ""
    )
    return (
        f"<div class='cartokit-counts-summary' style='font-size:14px'>{summary}</div>"
        f"<div style='font-size:12px;color:#555'>shown {shown:,} of {total:,}{drawn_note} · "
        f"selected <span class='cartokit-selected'>{selected:,}</span>{missing_note}</div>"
        f"{note}{box}<table class='cartokit-class-counts' "
        "style='font-size:12px;line-height:16px;border-collapse:collapse'>"
        f"<tr><th style='text-align:left'>class</th>{head}</tr>{''.join(rows)}</table></div>"
    )


def legend(name: str, column: Column, colors: list[str], low: float, high: float) -> str:
    """The key of the colour column: a gradient with its bounds, or one dot per category."""
    if column.categories is None:
        gradient = ", ".join(colors)
        return (
            f"<div style='font-size:12px'><b>{html.escape(name)}</b><br>"
            f"<span>{low:.3g}</span> <span style='display:inline-block;width:140px;height:10px;"
            f"background:linear-gradient(to right, {gradient})'></span> "
            f"<span>{high:.3g}</span></div>"
        )
    items = "".join(
        f"<span style='white-space:nowrap;margin-right:8px'><span style='display:inline-block;"
        f"width:10px;height:10px;border-radius:5px;background:{c}'></span> "
        f"{html.escape(str(label))}</span> "
        for label, c in zip(column.categories[:MAX_CLASS_ROWS], colors)
    )
    return f"<div style='font-size:12px'><b>{html.escape(name)}</b><br>{items}</div>"


def status_html(text: str, *, error: bool = False) -> str:
    """A one-line status message, red for an error, green otherwise (``text`` is escaped)."""
    return f"<span style='color:{_ERROR_RED if error else _OK_GREEN}'>{html.escape(text)}</span>"


def png_image(image: widgets.Image, png: bytes) -> None:
    """Show ``png`` in ``image`` at its own size in pixels, never stretched by the page's CSS
    (a flex box stretches an image without a fixed width and height)."""
    width, height = png_size(png)
    with image.hold_sync():
        image.value = png
        image.layout.width, image.layout.height = f"{width}px", f"{height}px"
        image.layout.align_self = "flex-start"
        image.layout.display = None


def trajectory_png(
    gold: np.ndarray,
    *,
    label_name: str,
    suggested: np.ndarray | None = None,
    suggested_name: str | None = None,
    size: tuple[int, int] = TRAJECTORY_SIZE,
) -> bytes:
    """PNG of a sample's probability per epoch of its label in the data and, when given, of the
    suggested label (the review widget's chart), exactly ``size`` (width, height) pixels, to be
    shown at that size (:func:`png_image`)."""
    from matplotlib.figure import Figure

    dpi = 100  # 9-point text is 12.5 px: readable at 1:1
    fig = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    epochs = np.arange(len(gold))
    line = {"marker": "o", "ms": 4}
    ax.plot(epochs, gold, color="#CC3311", label=f"label in the data: {label_name}", **line)
    if suggested is not None:
        ax.plot(epochs, suggested, color="#0072B2", label=f"suggested: {suggested_name}", **line)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("checkpoint (from 0)", fontsize=9)
    ax.set_ylabel("probability", fontsize=9)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return figure_png(fig, dpi=dpi)
