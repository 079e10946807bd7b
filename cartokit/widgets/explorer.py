"""The live data-map explorer for Jupyter: :class:`DataMapExplorer`.

An ipywidgets composite around a bqplot scatter of the data map. Threshold sliders recolour the
points by region and update the region counts at once; dropdowns pick the axes, the colour and a
filter; hover and click inspect single samples; brush and lasso selections fill
``selected_ids``, which buttons export. Every control is a traitlet, so a notebook can set them
from papermill parameters and read them back.

It draws with the WebGL scatter of ``bqplot-gl`` when that is importable, and otherwise with an
SVG scatter that shows a seeded sample of the points. A window holding more points than
``density_above`` is drawn as a density image instead (binned in Python); zooming in drills down
to the points. Counts, selections and exports always use every point.

The class holds the traitlets, the controls and their layout, and the observers that tie them
together; what the map holds is a :class:`~cartokit.widgets._columns.ColumnModel` (pandas and
numpy only) and how it is drawn is :mod:`cartokit.widgets._render`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import numpy as np
import pandas as pd
import traitlets

from cartokit._files import atomic_write
from cartokit.regions import REGIONS, Thresholds
from cartokit.widgets._columns import ColumnModel, check_limit
from cartokit.widgets._render import (
    DENSITY_ABOVE,
    DetailPanel,
    MapMarks,
    brush_reports,
    color_scale,
    counts_table,
    describe,
    legend,
    resolve_backend,
    status_html,
)

__all__ = ["DataMapExplorer"]

_THRESHOLDS = ("ambiguous_variability", "easy_confidence", "hard_confidence")
_UPPER = {"ambiguous_variability": 0.5, "easy_confidence": 1.0, "hard_confidence": 1.0}
_SLIDER_TEXT = {
    "ambiguous_variability": "ambiguous: variability ≥",
    "easy_confidence": "easy: confidence ≥",
    "hard_confidence": "hard: confidence ≤",
}
_EXPORTS = ("selection", *REGIONS)
#: What each change of traits recomputes (see DataMapExplorer._refresh).
_REFRESHED_BY = {
    "regions": list(_THRESHOLDS),
    "axes": ["x_column", "y_column"],
    "color": ["color_column"],
    "filter": ["filter_column", "filter_op", "filter_value", "filter_class"],
}


class DataMapExplorer(widgets.VBox):
    """Explore a data map live: sliders, dropdowns, filter, hover, click, selection, export.

    The explorer shows every sample of a metrics table (from :func:`~cartokit.compute_metrics`)
    as a point, by default variability (x) against confidence (y), coloured by region.

    * **Thresholds.** Three sliders set :class:`~cartokit.Thresholds`; moving one recolours the
      points and updates the live counts per region and per class (on all points, whatever is
      filtered or drawn).
    * **Axes and colour.** Dropdowns take any numeric metric column, ``region``, ``label``,
      ``predicted_label``, and the numeric or boolean columns of ``data.frame`` joined by id
      (e.g. ``flipped``, ``human_score``). Categorical columns are drawn with a seeded jitter.
    * **Filter.** One column ``>=`` or ``<=`` a value, and one class; other points are hidden
      (and cannot be selected).
    * **Inspecting.** In *inspect* mode, hovering a point shows its id, label and key metrics;
      clicking it rings it on the map (:attr:`highlight`) and shows the sample (its text or
      image, from ``data``; a flipped label as "label 9 (was 6)") next to its per-epoch
      gold-label probability (from ``dynamics``). With the WebGL backend, hover and click reach
      up to ``max_pick_points`` points: a seeded sample of the shown points, or, once a
      selection exists, the selected ones, so lassoing a small area makes each point in it
      inspectable. :attr:`inspected_id` can also be set from Python.
    * **Selection and export.** *lasso* (and *brush*, where it works: see Notes) fill
      :attr:`selected_ids` with every shown point inside, drawn or not; *clear selection*
      empties it. The export row writes the selection or a region (all its samples) as an ids
      CSV, or cuts it out of ``data`` as a :class:`~cartokit.data.Split` (kept in
      :attr:`last_subset`); see :meth:`export_ids` and :meth:`export_subset`.

    Parameters
    ----------
    metrics : pandas.DataFrame
        Indexed by unique sample id, with at least ``confidence``, ``variability`` and
        ``label``. A ``region`` column, if any, is ignored: regions follow the sliders.
    data : cartokit.data.Split, optional
        The split the metrics describe; its ids must cover the metrics ids. Used to show
        samples, to join ``data.frame`` columns and to export subsets.
    dynamics : TrainingDynamics, optional
        The record the metrics came from; its ids must cover the metrics ids. Used for the
        gold-label-probability trajectory of a clicked point.
    thresholds : Thresholds, optional
        Initial cut points; ``None`` means ``Thresholds()``.
    backend : {"auto", "gl", "svg"}, default "auto"
        ``"gl"``: bqplot-gl's WebGL ``ScatterGL`` (frame times by point count: the README).
        ``"svg"``: bqplot's SVG ``Scatter``, for frontends that cannot load bqplot-gl.
        ``"auto"``: ``"gl"`` when ``bqplot_gl`` is importable, else ``"svg"``.
    max_points : int, optional
        Most points drawn; when more are shown, a seeded random sample is drawn (the same
        points stay drawn as the filter narrows). Default: 5,000 for SVG, no limit for WebGL.
    max_pick_points : int, default 2000
        Most points that hover and click reach with the WebGL backend (see above).
    density_above : int or None, default 300,000
        Most shown points the window draws as points. With more, the map is a density view:
        the points binned on a 274 x 198 grid over the window, each cell coloured by the colour
        column (its most frequent category, or its mean) and more opaque where it holds more
        points, cells with a selected point darker. Zoom in (the *zoom* tool, or
        :meth:`zoom_to`) until the window holds at most this many, and those points are drawn.
        A threshold move then repaints one small image instead of recolouring every point (the
        README gives the frame times measured in the page). None: always draw points.
    seed : int, default 0
        Seed of the down-sampling, of the pick sample and of the categorical jitter.

    Attributes
    ----------
    ambiguous_variability, easy_confidence, hard_confidence : float traitlets
        The thresholds; :attr:`thresholds` reads or writes all three at once.
    x_column, y_column, color_column : str traitlets
        Axis and colour columns, any of :attr:`columns`.
    filter_column : str or None traitlet
        Column of the filter, or None for no value filter.
    filter_op, filter_value : {">=", "<="} and float traitlets
    filter_class : int or None traitlet
        Show only this class (an index; a class name is converted), or None for all.
    tool : {"inspect", "lasso", "brush", "zoom"} traitlet
        What a drag on the map does (default ``"inspect"``); *zoom* pans, and the mouse wheel
        zooms. The *whole map* button (:meth:`reset_zoom`) shows everything again.
    selected_ids : numpy.ndarray traitlet
        Ids of the selected samples, in table order. Writable: any ids of the table.
    inspected_id : traitlet
        Id of the sample shown in the detail panel, or None.
    figure : bqplot.Figure
    sliders : dict of str to ipywidgets.FloatSlider
        The threshold sliders, by threshold name; a move sets the traits (see above).
    scatter : bqplot.Scatter or bqplot_gl.ScatterGL
        The mark of the drawn points; ``scatter.x[i]`` belongs to ``drawn_ids[i]``.
    highlight : bqplot.Scatter
        The ring around the inspected point; hidden when nothing is inspected or the filter
        hides the point.
    backend : str
        ``"gl"`` or ``"svg"``, as resolved.
    last_subset : Split or None
        The last subset cut by the *dataset subset* button.

    Notes
    -----
    Runs in JupyterLab 4 and Notebook 7 with ipywidgets 8, and on Binder (bqplot and
    bqplot-gl ship prebuilt extensions). On **Google Colab**, third-party widgets need the
    custom widget manager; run this once per session before creating the explorer::

        from google.colab import output
        output.enable_custom_widget_manager()

    Colab then loads the widgets' JavaScript from a public CDN. If the WebGL scatter does not
    appear there, use ``backend="svg"``.

    The lasso selects every shown point in the cells of a 96 x 72 grid (about 6 pixels each)
    that it encloses: bqplot-gl 0.1.1's ``ScatterGL`` ignores lassos. With bqplot-gl installed,
    bqplot 0.13.1's ``BrushSelector`` never reports its rectangle (the two extensions share one
    d3), so *brush* is offered only without bqplot-gl. A slider move takes well under 50 ms of
    Python at 100,000 points (``bench/slider_latency.py``); the browser's redraw is extra.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> metrics = pd.DataFrame(
    ...     {"confidence": rng.random(200), "variability": rng.random(200) / 2,
    ...      "label": rng.integers(0, 3, 200)},
    ...     index=pd.Index(np.arange(200), name="id"),
    ... )
    >>> from cartokit import Thresholds, region_counts
    >>> explorer = DataMapExplorer(metrics, backend="svg")
    >>> explorer.easy_confidence = 0.9
    >>> explorer.counts.equals(region_counts(metrics, Thresholds(easy_confidence=0.9)))
    True
    >>> explorer.selected_ids = [3, 1]
    >>> explorer.selected_ids.tolist()
    [1, 3]
    """

    ambiguous_variability = traitlets.Float(0.2)
    easy_confidence = traitlets.Float(0.7)
    hard_confidence = traitlets.Float(0.3)
    x_column = traitlets.Unicode("variability")
    y_column = traitlets.Unicode("confidence")
    color_column = traitlets.Unicode("region")
    filter_column = traitlets.Unicode(None, allow_none=True)
    filter_op = traitlets.Enum((">=", "<="), default_value=">=")
    filter_value = traitlets.Float(0.0)
    filter_class = traitlets.Any(None)
    tool = traitlets.Enum(("inspect", "brush", "lasso", "zoom"), default_value="inspect")
    selected_ids = traitlets.Any()
    inspected_id = traitlets.Any(None)

    def __init__(
        self,
        metrics: pd.DataFrame,
        *,
        data: Any = None,
        dynamics: Any = None,
        thresholds: Thresholds | None = None,
        backend: str = "auto",
        max_points: int | None = None,
        max_pick_points: int = 2000,
        density_above: int | None = DENSITY_ABOVE,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        caller = "DataMapExplorer"
        super().__init__(**kwargs)
        self._model = model = ColumnModel(
            metrics, data=data, dynamics=dynamics, thresholds=thresholds, seed=seed, caller=caller
        )
        self.backend = resolve_backend(backend, caller=caller)
        self._max_points = check_limit("max_points", max_points, caller=caller)
        if self._max_points is None and self.backend == "svg":
            self._max_points = 5_000
        self._max_pick = check_limit(
            "max_pick_points", max_pick_points, caller=caller, allow_none=False
        )
        density_above = check_limit("density_above", density_above, caller=caller)
        self.metrics, self.data, self.dynamics = metrics, data, dynamics
        self.class_names = model.class_names
        self.last_subset: Any = None
        self._deferred: set[str] | None = None
        with self.hold_trait_notifications():
            for name in _THRESHOLDS:
                setattr(self, name, float(getattr(model.thresholds, name)))
        self.selected_ids = model.ids[:0]

        self._marks = MapMarks(
            model, self.backend, on_hover=self._on_hover, on_click=self._on_click,
            on_select=self._set_selection, on_window=self._on_window,
            density_above=density_above, max_points=self._max_points,
        )  # fmt: skip
        self.figure, self.scatter = self._marks.figure, self._marks.scatter
        self.highlight = self._marks.highlight
        self._detail = DetailPanel(1 if dynamics is None else max(dynamics.num_epochs - 1, 1))
        self._controls = _Controls(
            self, on_slider=self._on_slider, on_clear=self._marks.clear_lasso
        )
        self.children = self._controls.layout(self.figure, self._detail.widget())
        self.sliders = self._controls.sliders
        self._refresh_axes()
        self._refresh_counts()
        self._show_detail()
        self._marks.set_tool(self.tool)
        for step, names in _REFRESHED_BY.items():
            self.observe(lambda _, step=step: self._refresh(step), names)
        self.observe(self._on_selected_ids, "selected_ids")
        self.observe(lambda _: self._show_detail(), "inspected_id")
        self.observe(lambda change: self._marks.set_tool(change["new"]), "tool")

    # ================================================================ public API
    @property
    def thresholds(self) -> Thresholds:
        """The current cut points, as a :class:`~cartokit.Thresholds`; assign one to set all."""
        return Thresholds(self.ambiguous_variability, self.easy_confidence, self.hard_confidence)

    @thresholds.setter
    def thresholds(self, value: Thresholds) -> None:
        if not isinstance(value, Thresholds):
            raise TypeError(
                "DataMapExplorer.thresholds must be set to a Thresholds instance. "
                f"Got {type(value).__name__} instead."
            )
        value.validate()
        with self._batch(), self.hold_trait_notifications():
            for name in _THRESHOLDS:
                setattr(self, name, float(getattr(value, name)))

    @property
    def columns(self) -> list[str]:
        """Names that the axis, colour and filter traits accept."""
        return self._model.names

    @property
    def regions(self) -> pd.Series:
        """Region of every sample under the current thresholds, as :func:`assign_regions`."""
        return self._model.regions

    @property
    def counts(self) -> pd.Series:
        """Samples per region (all samples, filtered or not), as :func:`region_counts`."""
        return self._model.counts

    @property
    def class_counts(self) -> pd.DataFrame:
        """Samples per class (rows, by class name) and region (columns)."""
        return self._model.counts_by_class

    @property
    def drawn_ids(self) -> np.ndarray:
        """Ids of the drawn points, in the order of the scatter's arrays (none in the density
        view)."""
        return self._model.drawn_ids

    @property
    def view(self) -> str:
        """What the map draws now: ``"points"``, or ``"density"`` when the window holds more
        shown points than ``density_above``."""
        return self._marks.view

    def zoom_to(
        self, x: tuple[float, float] | None = None, y: tuple[float, float] | None = None
    ) -> None:
        """Show only ``x`` (from, to) and ``y`` on the map, as the *zoom* tool does in the page;
        an axis left None keeps its bounds. Once the window holds at most ``density_above``
        shown points, they are drawn as points."""
        x0, x1, y0, y1 = self._marks.window()
        (x0, x1), (y0, y1) = x or (x0, x1), y or (y0, y1)
        for name, (low, high) in (("x", (x0, x1)), ("y", (y0, y1))):
            if not (np.isfinite(low) and np.isfinite(high) and low < high):
                raise ValueError(
                    f"DataMapExplorer.zoom_to needs {name}=(from, to) with finite from < to. "
                    f"Got {(low, high)!r} instead."
                )
        self._marks.zoom((float(x0), float(x1), float(y0), float(y1)))

    def reset_zoom(self) -> None:
        """Show the whole map again (the *whole map* button)."""
        self._marks.zoom(None)

    @property
    def shown_ids(self) -> np.ndarray:
        """Ids of every point that passes the filter (drawn or not), in table order."""
        return self._model.shown_ids

    def ids_of(self, which: str = "selection") -> np.ndarray:
        """Ids of the selection or of a region (all samples of it), in table order.

        Parameters
        ----------
        which : {"selection", "easy", "ambiguous", "hard"}
        """
        if which == "selection":
            return np.asarray(self.selected_ids)
        if which not in REGIONS:
            raise ValueError(
                f"The 'which' parameter of DataMapExplorer.ids_of must be one of "
                f"{list(_EXPORTS)}. Got {which!r} instead."
            )
        return self._model.region_ids(which)

    def export_ids(self, path: str | os.PathLike[str], which: str = "selection") -> Path:
        """Write the ids of the selection or of a region to a CSV file with one ``id`` column.

        Returns the path written. Read it back with ``pandas.read_csv(path)["id"]``.
        """
        ids = self.ids_of(which)
        path = Path(path)
        with atomic_write(path, "w") as fh:
            pd.DataFrame({"id": ids}).to_csv(fh, index=False)
        return path

    def export_subset(self, which: str = "selection") -> Any:
        """The selection or a region cut out of ``data``, as a new :class:`~cartokit.data.Split`.

        Raises
        ------
        ValueError
            If the explorer was built without ``data``.
        """
        if self.data is None:
            raise ValueError(
                "DataMapExplorer.export_subset needs the dataset: pass data=<the Split the "
                "metrics describe> to DataMapExplorer, or use export_ids."
            )
        rows = self._model.positions(self.ids_of(which), caller="DataMapExplorer.export_subset")
        return self.data.subset(self._model.data_pos[rows], name=f"{self.data.name}[{which}]")

    def review(
        self,
        log_path: str | os.PathLike[str],
        *,
        method: str = "combined",
        scores: pd.Series | None = None,
        **options: Any,
    ) -> Any:
        """Review mode: walk through suspected label errors of this map, most suspicious first.

        Returns a :class:`~cartokit.widgets.ReviewWidget` over this explorer's metrics, data
        and dynamics (keep / relabel / drop, each decision appended to ``log_path`` at once;
        reopening resumes). ``options`` go to :class:`~cartokit.review.ReviewSession`.
        """
        from cartokit.widgets.review import ReviewWidget

        return ReviewWidget.from_explorer(self, log_path, method=method, scores=scores, **options)

    # ================================================================ observers
    @contextmanager
    def _batch(self) -> Iterator[None]:
        """Collect refreshes inside the block and run each once at its end."""
        if self._deferred is not None:  # nested: the outer block refreshes
            yield
            return
        self._deferred = set()
        try:
            yield
        finally:
            todo, self._deferred = self._deferred, None
            for step in ("regions", "axes", "filter", "color"):
                if step in todo:
                    self._refresh(step)

    def _refresh(self, step: str) -> None:
        if self._deferred is not None:
            self._deferred.add(step)
            return
        refresh = {
            "regions": self._refresh_regions,
            "axes": self._refresh_axes,
            "filter": self._redraw,
            "color": self._refresh_color,
        }
        refresh[step]()

    def _on_slider(self, change: dict[str, Any]) -> None:
        # A slider moved in the page: keep hard <= easy by pushing the other cut along.
        name = next(k for k, s in self._controls.sliders.items() if s is change["owner"])
        value = float(change["new"])
        with self._batch(), self.hold_trait_notifications():
            setattr(self, name, value)
            if name == "hard_confidence" and value > self.easy_confidence:
                self.easy_confidence = value
            elif name == "easy_confidence" and value < self.hard_confidence:
                self.hard_confidence = value

    def _on_selected_ids(self, change: dict[str, Any]) -> None:
        self._model.select(change["new"])
        self._marks.show_selection(self.color_column)
        self._marks.place_pick(self._max_pick)
        self._refresh_counts()

    def _set_selection(self, positions: np.ndarray) -> None:
        self.selected_ids = self._model.ids[positions]

    def _on_hover(self, mark: Any, event: dict[str, Any]) -> None:
        position = self._marks.position_of(mark, event)
        if position is not None:
            self._marks.tooltip.value = describe(self._model, position, compact=True)

    def _on_click(self, mark: Any, event: dict[str, Any]) -> None:
        position = self._marks.position_of(mark, event)
        if position is not None:
            self.inspected_id = self._model.ids[position]

    # ================================================================ validation
    @traitlets.validate(*_THRESHOLDS)
    def _valid_threshold(self, proposal: dict[str, Any]) -> float:
        name, value = proposal["trait"].name, float(proposal["value"])
        if not 0.0 <= value <= _UPPER[name]:
            raise traitlets.TraitError(
                f"The {name!r} threshold must be a float in the range [0, {_UPPER[name]:g}]. "
                f"Got {value!r} instead."
            )
        easy = value if name == "easy_confidence" else self.easy_confidence
        hard = value if name == "hard_confidence" else self.hard_confidence
        if hard > easy:
            raise traitlets.TraitError(
                f"hard_confidence ({hard!r}) must not exceed easy_confidence ({easy!r}); lower "
                "hard_confidence or raise easy_confidence (set both at once with "
                "explorer.thresholds = Thresholds(...))."
            )
        return value

    @traitlets.validate("x_column", "y_column", "color_column", "filter_column")
    def _valid_column(self, proposal: dict[str, Any]) -> str | None:
        name, value = proposal["trait"].name, proposal["value"]
        if value is None and name == "filter_column":
            return None
        if value not in self.columns:
            raise traitlets.TraitError(
                f"The '{name}' of DataMapExplorer must be one of {self.columns}. "
                f"Got {value!r} instead."
            )
        return value

    @traitlets.validate("filter_class", "inspected_id", "selected_ids")
    def _valid_by_model(self, proposal: dict[str, Any]) -> Any:
        name, value, model = proposal["trait"].name, proposal["value"], self._model
        try:
            if name == "filter_class":
                return model.class_index(value, caller="DataMapExplorer")
            if name == "selected_ids":
                return model.selection(value, caller="DataMapExplorer")
            if value is not None:  # inspected_id: one id of the table
                model.positions([value], caller="DataMapExplorer.inspected_id")
            return value
        except (TypeError, ValueError) as err:
            raise traitlets.TraitError(str(err)) from None

    # ================================================================ refreshing
    def _refresh_regions(self) -> None:
        self._model.set_thresholds(self.thresholds)
        self._refresh_counts()
        if "region" in (self.x_column, self.y_column) or self.filter_column == "region":
            self._refresh_axes()
        elif self.color_column == "region":
            self._refresh_color()
        self._marks.show_guides(self.thresholds, self.x_column, self.y_column)

    def _refresh_axes(self) -> None:
        names = (self.x_column, self.y_column)
        self._marks.show_axes(names, self._model.set_axes(*names))
        self._redraw()
        self._marks.show_guides(self.thresholds, *names)

    def _redraw(self) -> None:
        """Recompute the shown and drawn points and send x, y, colour and selection."""
        self._model.set_filter(
            column=self.filter_column, op=self.filter_op, value=self.filter_value,
            label=self.filter_class, max_points=self._max_points,
        )  # fmt: skip
        self._draw()

    def _on_window(self) -> None:
        # A pan or zoom: a large map draws what the new window holds; the lasso's grid follows.
        if self._marks.follows_window:
            self._draw()
        else:
            self._marks.place_proxy()

    def _draw(self) -> None:
        self._refresh_color_scale()
        self._marks.draw(self.color_column)
        self._marks.place_proxy()
        self._marks.place_pick(self._max_pick)
        self._marks.show_highlight(self._marks.highlighted)  # it follows the axes and filter
        self._refresh_counts()

    def _refresh_color(self) -> None:
        self._refresh_color_scale()
        self._marks.recolor(self.color_column)

    def _refresh_color_scale(self) -> None:
        column = self._model.column(self.color_column)
        colors, low, high = color_scale(self.color_column, column)
        self._marks.set_color_scale(colors, low, high)
        self._controls.legend.value = legend(self.color_column, column, colors, low, high)

    def _refresh_counts(self) -> None:
        self._controls.counts.value = counts_table(self._model, density=self.view == "density")

    def _show_detail(self) -> None:
        sample_id, caller = self.inspected_id, "DataMapExplorer.inspected_id"
        position = (
            None if sample_id is None else self._model.positions([sample_id], caller=caller)[0]
        )
        self._detail.show(self._model, position, data=self.data, dynamics=self.dynamics)
        self._marks.show_highlight(position)


class _Controls:
    """The explorer's controls, linked to its traits, and the layout of the page.

    Sliders (thresholds), dropdowns (axes, colour, filter, class), the drag tool, the counts
    and the legend, and the export row with its status line.
    """

    def __init__(
        self,
        explorer: DataMapExplorer,
        *,
        on_slider: Callable[[dict[str, Any]], None],
        on_clear: Callable[[], None],
    ) -> None:
        self._explorer = explorer
        self._on_clear = on_clear
        self.sliders = {name: _threshold_slider(explorer, name, on_slider) for name in _THRESHOLDS}
        explorer.observe(self._follow_threshold, list(_THRESHOLDS))
        columns = explorer.columns
        small = {"style": {"description_width": "56px"}, "layout": {"width": "230px"}}
        dropdowns = {}
        for trait, text in (("x_column", "x"), ("y_column", "y"), ("color_column", "colour")):
            dropdowns[trait] = widgets.Dropdown(options=columns, description=text, **small)
            # Links go from the trait to the control, so the control starts at the trait's value.
            widgets.link((explorer, trait), (dropdowns[trait], "value"))
        self.x_dropdown, self.y_dropdown, self.color_dropdown = dropdowns.values()
        tools = ["inspect", "lasso"] + (["brush"] if brush_reports() else []) + ["zoom"]
        self.tool_buttons = widgets.ToggleButtons(
            options=tools, value=explorer.tool, style={"button_width": "76px"}
        )
        self.tool_buttons.observe(lambda change: setattr(explorer, "tool", change["new"]), "value")
        explorer.observe(self._follow_tool, "tool")
        self.tool_buttons.add_class("cartokit-tools")
        # A Dropdown whose value is None shows nothing selected, so "none" is "" or -1 there.
        self.filter_dropdown = widgets.Dropdown(
            options=[("(no filter)", "")] + [(c, c) for c in columns], description="filter",
            **small,
        )  # fmt: skip
        self.op_buttons = widgets.ToggleButtons(
            options=[("≥", ">="), ("≤", "<=")], style={"button_width": "32px"}
        )
        self.value_box = widgets.FloatText(layout=widgets.Layout(width="90px"))
        self.class_dropdown = widgets.Dropdown(
            options=[("all classes", -1)] + [(c, k) for k, c in enumerate(explorer.class_names)],
            description="class",
            **small,
        )
        link = widgets.link
        link((explorer, "filter_column"), (self.filter_dropdown, "value"), transform=_none(""))
        link((explorer, "filter_op"), (self.op_buttons, "value"))
        link((explorer, "filter_value"), (self.value_box, "value"))
        link((explorer, "filter_class"), (self.class_dropdown, "value"), transform=_none(-1))
        self.counts = _html("cartokit-counts")
        self.legend = _html("cartokit-legend")
        self.export_which = widgets.Dropdown(options=list(_EXPORTS), description="export", **small)
        # The placeholder is the file an empty box writes: it follows the export choice.
        self.export_path = widgets.Text(
            placeholder=_export_file(self.export_which.value),
            layout=widgets.Layout(width="220px"),
        )
        self.export_which.observe(self._on_export_which, "value")
        self.export_status = _html("cartokit-export-status")

    def layout(self, figure: widgets.DOMWidget, detail: widgets.Widget) -> list[widgets.Widget]:
        """The rows of the page, top to bottom."""
        box, row = widgets.VBox, widgets.HBox
        side = box([self.counts, self.legend], layout={"padding": "8px", "max_width": "440px"})
        subset = _button(
            "dataset subset", "scissors", self.export_subset,
            disabled=self._explorer.data is None,
            tooltip="Cut the ids out of data; kept in explorer.last_subset",
        )  # fmt: skip
        return [
            box(list(self.sliders.values())),
            row([self.x_dropdown, self.y_dropdown, self.color_dropdown]),
            row([self.filter_dropdown, self.op_buttons, self.value_box, self.class_dropdown]),
            row(
                [
                    widgets.HTML("<b>drag:</b>&nbsp;"),
                    self.tool_buttons,
                    _button("clear selection", "times", self.clear_selection),
                    _button("whole map", "expand", lambda _: self._explorer.reset_zoom()),
                ]
            ),
            row([figure, side]),
            detail,
            row(
                [
                    self.export_which,
                    self.export_path,
                    _button("ids CSV", "download", self.export_csv),
                    subset,
                ]
            ),
            self.export_status,
        ]

    # ------------------------------------------------------------------ traits to controls
    def _follow_threshold(self, change: dict[str, Any]) -> None:
        slider = self.sliders[change["name"]]
        if slider.value != change["new"]:
            slider.value = change["new"]

    def _follow_tool(self, change: dict[str, Any]) -> None:
        # "brush" may be a value of the trait without a button (see brush_reports)
        if change["new"] in self.tool_buttons.options:
            self.tool_buttons.value = change["new"]

    # ------------------------------------------------------------------ buttons
    def clear_selection(self, _button: Any) -> None:
        self._explorer.selected_ids = []
        self._on_clear()

    def _on_export_which(self, change: dict[str, Any]) -> None:
        self.export_path.placeholder = _export_file(change["new"])

    def export_csv(self, _button: Any) -> None:
        which = self.export_which.value
        path = self.export_path.value.strip() or _export_file(which)
        try:
            written = self._explorer.export_ids(path, which)
        except (OSError, ValueError) as err:
            self.export_status.value = status_html(f"Could not write {path}: {err}", error=True)
            return
        count = len(self._explorer.ids_of(which))
        text = f"Wrote {count} {which} ids to {written.resolve()}."
        self.export_status.value = status_html(text)

    def export_subset(self, _button: Any) -> None:
        explorer = self._explorer
        try:
            explorer.last_subset = explorer.export_subset(self.export_which.value)
        except ValueError as err:
            self.export_status.value = status_html(str(err), error=True)
            return
        text = f"explorer.last_subset = {explorer.last_subset!r}"
        self.export_status.value = status_html(text)


def _threshold_slider(
    explorer: DataMapExplorer, name: str, on_slider: Callable[[dict[str, Any]], None]
) -> widgets.FloatSlider:
    slider = widgets.FloatSlider(
        value=getattr(explorer, name),
        min=0.0,
        max=_UPPER[name],
        step=0.005 if name == "ambiguous_variability" else 0.01,
        readout_format=".3f",
        description=_SLIDER_TEXT[name],
        continuous_update=True,
        style={"description_width": "170px"},
        layout=widgets.Layout(width="420px"),
    )
    slider.add_class("cartokit-threshold")
    slider.add_class(f"cartokit-slider-{name}")
    slider.observe(on_slider, "value")
    return slider


def _html(css_class: str) -> widgets.HTML:
    html = widgets.HTML()
    html.add_class(css_class)
    return html


def _none(sentinel: Any) -> tuple[Any, Any]:
    """The transforms of a link between a trait that may be None and a control that shows
    ``sentinel`` for None."""
    return (
        lambda value: sentinel if value is None else value,
        lambda value: None if value == sentinel else value,
    )


def _button(text: str, icon: str, on_click: Any, **options: Any) -> widgets.Button:
    button = widgets.Button(description=text, icon=icon, **options)
    button.on_click(on_click)
    return button


def _export_file(which: str) -> str:
    """The file an export writes when no path is given, e.g. ``selection_ids.csv``."""
    return f"{which}_ids.csv"
