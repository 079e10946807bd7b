"""The live data-map explorer for Jupyter: :class:`DataMapExplorer`.

An ipywidgets composite around a bqplot scatter of the data map. Threshold sliders recolour the
points by region and update the region counts at once; dropdowns pick the axes, the colour and a
filter; hover and click inspect single samples; brush and lasso selections fill
``selected_ids``, which buttons export. Every control is a traitlet, so a notebook can set them
from papermill parameters and read them back.

It draws with the WebGL scatter of ``bqplot-gl`` when that is importable, and otherwise with an
SVG scatter that shows a seeded sample of the points. Counts, selections and exports always use
every point.
"""

from __future__ import annotations

import html
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

try:
    import bqplot
    import ipywidgets as widgets
    import traitlets
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "cartokit.widgets needs ipywidgets and bqplot (and bqplot-gl for large maps). "
        "Install them with: pip install 'cartokit[widgets]'"
    ) from err

from cartokit._validation import check_metrics_frame
from cartokit.plot._style import CONTINUOUS_COLORS, MISSING_COLOR, REGION_COLORS, category_colors
from cartokit.regions import REGIONS, Thresholds, map_coordinates, region_codes

__all__ = ["DataMapExplorer"]

# The colour scale of regions, in REGIONS order (the region codes 0, 1, 2), then missing (3).
_REGION_SCALE = [*(REGION_COLORS[region] for region in REGIONS), MISSING_COLOR]
_THRESHOLDS = ("ambiguous_variability", "easy_confidence", "hard_confidence")
_UPPER = {"ambiguous_variability": 0.5, "easy_confidence": 1.0, "hard_confidence": 1.0}
_SLIDER_TEXT = {
    "ambiguous_variability": "ambiguous: variability ≥",
    "easy_confidence": "easy: confidence ≥",
    "hard_confidence": "hard: confidence ≤",
}
_EXPORTS = ("selection", *REGIONS)
#: Categorical columns with more distinct values than this are left out of the dropdowns.
_MAX_CATEGORIES = 50
#: Per-class rows shown in the counts table; the rest are summed into one row.
_MAX_CLASS_ROWS = 30
_JITTER = 0.3  # half-width of the spread of points on a categorical axis
#: Columns and rows of the grid whose cells the lasso selects (about 6 pixels each).
_GRID = (96, 72)
_TOOLTIP_METRICS = ("confidence", "variability", "correctness", "aum", "forgetting")


@dataclass
class _Column:
    """One plottable column: float values (NaN where missing) and, if categorical, the names of
    codes ``0..K-1``."""

    values: np.ndarray
    categories: list[str] | None = None


class DataMapExplorer(widgets.VBox):
    """Explore a data map live: sliders, dropdowns, filter, hover, click, selection, export.

    The explorer shows every sample of a metrics table (from :func:`~cartokit.compute_metrics`)
    as a point, by default variability (x) against confidence (y), coloured by region.

    * **Thresholds.** Three sliders set :class:`~cartokit.Thresholds`; moving one recolours the
      points and updates the live counts per region and per class (on all points, whatever is
      filtered or drawn). The counts are an HTML table with class ``cartokit-counts`` whose
      cells carry ``data-region`` attributes.
    * **Axes and colour.** Dropdowns take any numeric metric column, ``region``, ``label``,
      ``predicted_label``, and the numeric or boolean columns of ``data.frame`` joined by id
      (e.g. ``flipped``, ``human_score``). Categorical columns are drawn with a seeded jitter.
    * **Filter.** One column ``>=`` or ``<=`` a value, and one class; other points are hidden
      (and cannot be selected).
    * **Inspecting.** In *inspect* mode, hovering a point shows its id, label and key metrics;
      clicking it shows the sample (its text or image, from ``data``) next to its per-epoch
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
        ``"gl"``: bqplot-gl's WebGL ``ScatterGL``, for up to about a million points.
        ``"svg"``: bqplot's SVG ``Scatter``, for frontends that cannot load bqplot-gl.
        ``"auto"``: ``"gl"`` when ``bqplot_gl`` is importable, else ``"svg"``.
    max_points : int, optional
        Most points drawn; when more are shown, a seeded random sample is drawn (the same
        points stay drawn as the filter narrows). Default: 5,000 for SVG, no limit for WebGL.
    max_pick_points : int, default 2000
        Most points that hover and click reach with the WebGL backend (see above).
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
    filter_op : {">=", "<="} traitlet
    filter_value : float traitlet
    filter_class : int or None traitlet
        Show only this class (an index; a class name is converted), or None for all.
    tool : {"inspect", "lasso", "brush"} traitlet
        What a drag on the map does (default ``"inspect"``).
    selected_ids : numpy.ndarray traitlet
        Ids of the selected samples, in table order. Writable: any ids of the table.
    inspected_id : traitlet
        Id of the sample shown in the detail panel, or None.
    figure : bqplot.Figure
    scatter : bqplot.Scatter or bqplot_gl.ScatterGL
        The mark of the drawn points; ``scatter.x[i]`` belongs to ``drawn_ids[i]``.
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

    The lasso selects the cells of a 96 x 72 grid over the plot (about 6 pixels each) that it
    encloses, then every shown point in them: bqplot-gl 0.1.1's ``ScatterGL`` ignores lassos,
    and an SVG scatter only knows the points it draws. With bqplot 0.13.1 and bqplot-gl 0.1.1
    both installed, bqplot's ``BrushSelector`` draws its rectangle but never reports it (the
    two JupyterLab extensions share one copy of d3), so the *brush* button is offered only
    when bqplot-gl is not installed; ``tool = "brush"`` and a brush's ``selected_x`` /
    ``selected_y`` are still handled, exactly, wherever a frontend sends them.

    Python handles one slider move in well under 50 ms at 100,000 points (see
    ``bench/slider_latency.py``); the browser's redraw is extra.

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
    tool = traitlets.Enum(("inspect", "brush", "lasso"), default_value="inspect")
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
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        caller = "DataMapExplorer"
        super().__init__(**kwargs)
        self._busy = True  # observers stay quiet until the widget is built
        check_metrics_frame(metrics, caller=caller)
        self._conf, self._var = map_coordinates(metrics, caller=caller)
        if "label" not in metrics.columns:
            raise ValueError(
                f"{caller} needs a 'label' column in the metrics table (as compute_metrics "
                f"writes). Available columns: {list(metrics.columns)}."
            )
        if not metrics.index.is_unique:
            raise ValueError(
                f"{caller} needs one row per sample, but the metrics index repeats ids, e.g. "
                f"{metrics.index[metrics.index.duplicated()][:5].tolist()}."
            )
        if len(metrics) == 0:
            raise ValueError(f"{caller} got an empty metrics table; a data map needs samples.")
        self.backend = _resolve_backend(backend)
        self._max_points = _check_limit("max_points", max_points, caller=caller)
        if self._max_points is None and self.backend == "svg":
            self._max_points = 5_000
        self._max_pick = _check_limit("max_pick_points", max_pick_points, caller=caller)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"The 'seed' parameter of {caller} must be an int. Got {seed!r}.")

        self.metrics = metrics
        self.data = data
        self.dynamics = dynamics
        self.last_subset: Any = None
        self._index = metrics.index
        self._ids = metrics.index.to_numpy()
        n = len(metrics)
        self._data_pos = (
            _positions_of(data, self._index, "data", caller) if data is not None else None
        )
        self._dyn_pos = (
            _positions_of(dynamics, self._index, "dynamics", caller)
            if dynamics is not None
            else None
        )
        labels = metrics["label"]
        if not pd.api.types.is_integer_dtype(labels.dtype) or labels.isna().any():
            raise TypeError(
                f"{caller} needs integer class indices in the 'label' column. Got dtype "
                f"{labels.dtype}{' with missing values' if labels.isna().any() else ''}."
            )
        self._labels = labels.to_numpy(dtype=np.int64, copy=True)
        if self._labels.min() < 0:
            raise ValueError(f"{caller}: labels must be >= 0. Got {int(self._labels.min())}.")
        self.class_names = _class_names(metrics, data, dynamics, self._labels)
        self._extra = _joined_frame(metrics, data)
        self._columns = _build_columns(metrics, self._extra, self.class_names)
        rng = np.random.default_rng(int(seed))
        self._priority = rng.permutation(n)  # lower draws first when down-sampling
        self._jitter = rng.uniform(-_JITTER, _JITTER, size=(2, n))
        self._codes = np.zeros(n, dtype=np.int8)
        self._class_counts = np.zeros((len(self.class_names), 4), dtype=np.int64)
        self._selected_mask = np.zeros(n, dtype=bool)
        self._xy = (np.zeros(n), np.zeros(n))
        self._visible = np.ones(n, dtype=bool)
        self._drawn = np.arange(n)
        self._pick_pos = np.zeros(0, dtype=np.int64)
        # True while Python resets the proxy or the brush, whose observers then stand still.
        self._quiet_frontend = False
        self._deferred: set[str] | None = None

        thresholds = Thresholds() if thresholds is None else thresholds
        if not isinstance(thresholds, Thresholds):
            raise TypeError(
                f"The 'thresholds' parameter of {caller} must be a Thresholds instance or None. "
                f"Got {type(thresholds).__name__} instead."
            )
        thresholds.validate()
        with self.hold_trait_notifications():
            for name in _THRESHOLDS:
                setattr(self, name, float(getattr(thresholds, name)))
        self.selected_ids = self._ids[:0]

        self._build_figure()
        self._build_controls()
        self._busy = False
        self._codes = region_codes(self._conf, self._var, self.thresholds)
        self._recount()
        self._refresh_axes()
        self._refresh_counts()
        self._show_detail()
        self.observe(self._on_thresholds, list(_THRESHOLDS))
        self.observe(self._on_axes, ["x_column", "y_column"])
        self.observe(self._on_color, "color_column")
        self.observe(
            self._on_filter, ["filter_column", "filter_op", "filter_value", "filter_class"]
        )
        self.observe(self._on_selected_ids, "selected_ids")
        self.observe(self._on_inspected, "inspected_id")
        self.observe(self._on_tool, "tool")
        self._on_tool()

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
        return ["region", *self._columns]

    @property
    def regions(self) -> pd.Series:
        """Region of every sample under the current thresholds, as :func:`assign_regions`."""
        categorical = pd.Categorical.from_codes(self._codes, categories=list(REGIONS))
        return pd.Series(categorical, index=self._index, name="region")

    @property
    def counts(self) -> pd.Series:
        """Samples per region (all samples, filtered or not), as :func:`region_counts`."""
        totals = self._class_counts[:, 1:].sum(axis=0)
        return pd.Series(totals, index=pd.Index(REGIONS), name="count")

    @property
    def class_counts(self) -> pd.DataFrame:
        """Samples per class (rows, by class name) and region (columns)."""
        return pd.DataFrame(
            self._class_counts[:, 1:],
            index=pd.Index(self.class_names, name="label"),
            columns=pd.Index(REGIONS, name="region"),
        )

    @property
    def drawn_ids(self) -> np.ndarray:
        """Ids of the drawn points, in the order of the scatter's arrays."""
        return self._ids[self._drawn]

    @property
    def shown_ids(self) -> np.ndarray:
        """Ids of every point that passes the filter (drawn or not), in table order."""
        return self._ids[self._visible]

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
        return self._ids[self._codes == REGIONS.index(which)]

    def export_ids(self, path: str | os.PathLike[str], which: str = "selection") -> Path:
        """Write the ids of the selection or of a region to a CSV file with one ``id`` column.

        Returns the path written. Read it back with ``pandas.read_csv(path)["id"]``.
        """
        from cartokit._files import atomic_write

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
        ids = self.ids_of(which)
        rows = self._index.get_indexer(ids)
        return self.data.subset(self._data_pos[rows], name=f"{self.data.name}[{which}]")

    def review(
        self,
        log_path: str | os.PathLike[str],
        *,
        method: str = "combined",
        scores: pd.Series | None = None,
        **options: Any,
    ) -> Any:
        """Review mode: walk through suspected label errors of this map, most suspicious first.

        Returns a :class:`~cartokit.review.ReviewWidget` over this explorer's metrics, data and
        dynamics (keep / relabel / drop, each decision appended to ``log_path`` at once;
        reopening resumes). ``options`` go to :class:`~cartokit.review.ReviewSession`.
        """
        from cartokit.review import ReviewWidget

        return ReviewWidget.from_explorer(self, log_path, method=method, scores=scores, **options)

    # ================================================================ building
    def _build_figure(self) -> None:
        self._x_scale = bqplot.LinearScale(min=0.0, max=1.0)
        self._y_scale = bqplot.LinearScale(min=0.0, max=1.0)
        self._color_scale = bqplot.ColorScale(min=0.0, max=3.0, colors=list(_REGION_SCALE))
        scales = {"x": self._x_scale, "y": self._y_scale, "color": self._color_scale}
        big = len(self._ids) > 20_000
        self._tooltip = widgets.HTML(layout=widgets.Layout(padding="2px 6px"))
        self._tooltip.add_class("cartokit-tooltip")
        common: dict[str, Any] = {
            "scales": scales,
            "default_size": 6 if big else 20,
            "opacities": [0.6 if big else 0.8],
            "unselected_style": {"opacity": 0.15},
            "stroke": None,
        }
        if self.backend == "gl":
            from bqplot_gl import ScatterGL

            self.scatter = ScatterGL(**common)
            # ScatterGL draws on a canvas without per-point events: an invisible SVG layer of a
            # few points carries the hover tooltip and the click.
            self._pick = bqplot.Scatter(
                scales={"x": self._x_scale, "y": self._y_scale},
                default_size=40,
                opacities=[0.0],
                colors=["black"],
                hovered_style={"opacity": 0.6},
                tooltip=self._tooltip,
                interactions={"hover": "tooltip"},
            )
            hover_marks = [self._pick]
        else:
            self.scatter = bqplot.Scatter(
                **common, tooltip=self._tooltip, interactions={"hover": "tooltip"}
            )
            self._pick = None
            hover_marks = [self.scatter]
        for mark in hover_marks:
            mark.on_hover(self._on_hover)
            mark.on_element_click(self._on_click)
        self._guides = bqplot.Lines(
            x=np.zeros((3, 2)),
            y=np.zeros((3, 2)),
            scales={"x": self._x_scale, "y": self._y_scale},
            colors=["#444444"],
            line_style="dashed",
            stroke_width=1,
            enable_hover=False,
        )
        self._x_axis = bqplot.Axis(scale=self._x_scale, label=self.x_column)
        self._y_axis = bqplot.Axis(scale=self._y_scale, side="left", label=self.y_column)
        # Selectors act on a hidden SVG proxy, one point per non-empty cell of a grid over the
        # plot: ScatterGL cannot take a lasso (bqplot-gl 0.1.1 selects nothing), and a down-
        # sampled SVG scatter would miss the points it does not draw. Python then selects every
        # shown point in the chosen cells.
        self._proxy = bqplot.Scatter(
            scales={"x": self._x_scale, "y": self._y_scale},
            visible=False,
            enable_hover=False,
            interactions={},
        )
        self._proxy.observe(self._on_proxy_selected, "selected")
        self._proxy_cells = np.zeros(0, dtype=np.int64)
        self._cells = np.full(len(self._ids), -1, dtype=np.int64)
        marks = [self.scatter, self._guides, self._proxy] + ([self._pick] if self._pick else [])
        self._brush = bqplot.interacts.BrushSelector(
            x_scale=self._x_scale, y_scale=self._y_scale, marks=[self._proxy], color="#555555"
        )
        self._brush.observe(self._on_brush, ["selected_x", "selected_y"])
        self._lasso = bqplot.interacts.LassoSelector(
            x_scale=self._x_scale, y_scale=self._y_scale, marks=[self._proxy]
        )
        self.figure = bqplot.Figure(
            marks=marks,
            axes=[self._x_axis, self._y_axis],
            animation_duration=0,
            fig_margin={"top": 16, "bottom": 48, "left": 56, "right": 16},
            layout=widgets.Layout(width="620px", height="460px"),
        )
        self.figure.add_class("cartokit-map")

    def _build_controls(self) -> None:
        self._sliders: dict[str, widgets.FloatSlider] = {}
        for name in _THRESHOLDS:
            slider = widgets.FloatSlider(
                value=getattr(self, name),
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
            slider.observe(self._on_slider, "value")
            self._sliders[name] = slider

        options = self.columns
        small = {"style": {"description_width": "56px"}, "layout": widgets.Layout(width="230px")}
        self._x_dropdown = widgets.Dropdown(options=options, description="x", **small)
        self._y_dropdown = widgets.Dropdown(options=options, description="y", **small)
        self._color_dropdown = widgets.Dropdown(options=options, description="colour", **small)
        # Links go from the trait to the control, so the control starts at the trait's value.
        widgets.link((self, "x_column"), (self._x_dropdown, "value"))
        widgets.link((self, "y_column"), (self._y_dropdown, "value"))
        widgets.link((self, "color_column"), (self._color_dropdown, "value"))
        tools = ["inspect", "lasso"] + (["brush"] if _brush_reports() else [])
        self._tool_buttons = widgets.ToggleButtons(
            options=tools, value=self.tool, style={"button_width": "76px"}
        )
        self._tool_buttons.observe(lambda change: setattr(self, "tool", change["new"]), "value")
        self._tool_buttons.add_class("cartokit-tools")

        # A Dropdown whose value is None shows nothing selected, so "none" is "" or -1 there.
        filter_options = [("(no filter)", "")] + [(c, c) for c in options]
        self._filter_dropdown = widgets.Dropdown(
            options=filter_options, description="filter", **small
        )
        self._op_buttons = widgets.ToggleButtons(
            options=[("≥", ">="), ("≤", "<=")], style={"button_width": "32px"}
        )
        self._value_box = widgets.FloatText(layout=widgets.Layout(width="90px"))
        self._class_dropdown = widgets.Dropdown(
            options=[("all classes", -1)] + [(c, k) for k, c in enumerate(self.class_names)],
            description="class",
            **small,
        )
        widgets.link(
            (self, "filter_column"),
            (self._filter_dropdown, "value"),
            transform=(_none_to(""), _to_none("")),
        )
        widgets.link((self, "filter_op"), (self._op_buttons, "value"))
        widgets.link((self, "filter_value"), (self._value_box, "value"))
        widgets.link(
            (self, "filter_class"),
            (self._class_dropdown, "value"),
            transform=(_none_to(-1), _to_none(-1)),
        )

        self._counts_html = widgets.HTML()
        self._counts_html.add_class("cartokit-counts")
        self._legend_html = widgets.HTML()
        self._legend_html.add_class("cartokit-legend")

        self._info_html = widgets.HTML()
        self._info_html.add_class("cartokit-detail")
        self._sample_html = widgets.HTML(layout=widgets.Layout(max_width="360px"))
        self._sample_image = widgets.Image(format="png", layout=widgets.Layout(width="144px"))
        self._build_trajectory()

        self._export_which = widgets.Dropdown(options=list(_EXPORTS), description="export", **small)
        self._export_path = widgets.Text(
            placeholder="<which>_ids.csv", layout=widgets.Layout(width="220px")
        )
        csv_button = widgets.Button(description="ids CSV", icon="download")
        subset_button = widgets.Button(
            description="dataset subset",
            icon="scissors",
            disabled=self.data is None,
            tooltip="Cut the ids out of data; kept in explorer.last_subset",
        )
        clear_button = widgets.Button(description="clear selection", icon="times")
        clear_button.on_click(self._on_clear)
        csv_button.on_click(self._on_export_csv)
        subset_button.on_click(self._on_export_subset)
        self._export_status = widgets.HTML()
        self._export_status.add_class("cartokit-export-status")

        self.children = [
            widgets.VBox(list(self._sliders.values())),
            widgets.HBox([self._x_dropdown, self._y_dropdown, self._color_dropdown]),
            widgets.HBox(
                [self._filter_dropdown, self._op_buttons, self._value_box, self._class_dropdown]
            ),
            widgets.HBox([widgets.HTML("<b>drag:</b>&nbsp;"), self._tool_buttons, clear_button]),
            widgets.HBox(
                [
                    self.figure,
                    widgets.VBox(
                        [self._counts_html, self._legend_html],
                        layout=widgets.Layout(padding="8px", max_width="440px"),
                    ),
                ]
            ),
            widgets.HBox(
                [
                    widgets.VBox(
                        [self._info_html, self._sample_html, self._sample_image],
                        layout=widgets.Layout(width="380px", padding="0 8px"),
                    ),
                    self._trajectory_figure,
                ]
            ),
            widgets.HBox([self._export_which, self._export_path, csv_button, subset_button]),
            self._export_status,
        ]

    def _build_trajectory(self) -> None:
        epochs = 1 if self.dynamics is None else max(self.dynamics.num_epochs - 1, 1)
        x_scale = bqplot.LinearScale(min=0.0, max=float(epochs))
        y_scale = bqplot.LinearScale(min=0.0, max=1.0)
        self._trajectory = bqplot.Lines(
            x=np.zeros(0, np.float32),
            y=np.zeros(0, np.float32),
            scales={"x": x_scale, "y": y_scale},
            colors=["#333333"],
            marker="circle",
            marker_size=24,
        )
        self._trajectory_figure = bqplot.Figure(
            marks=[self._trajectory],
            axes=[
                bqplot.Axis(scale=x_scale, label="epoch", tick_format="d"),
                bqplot.Axis(scale=y_scale, side="left", label="gold-label prob."),
            ],
            title="",
            animation_duration=0,
            fig_margin={"top": 36, "bottom": 44, "left": 56, "right": 16},
            layout=widgets.Layout(width="380px", height="240px"),
        )

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

    def _on_thresholds(self, change: dict[str, Any]) -> None:
        slider = self._sliders[change["name"]]
        if slider.value != change["new"]:
            slider.value = change["new"]
        self._refresh("regions")

    def _on_slider(self, change: dict[str, Any]) -> None:
        # A slider moved in the page: keep hard <= easy by pushing the other cut along.
        name = next(k for k, s in self._sliders.items() if s is change["owner"])
        value = float(change["new"])
        with self._batch(), self.hold_trait_notifications():
            setattr(self, name, value)
            if name == "hard_confidence" and value > self.easy_confidence:
                self.easy_confidence = value
            elif name == "easy_confidence" and value < self.hard_confidence:
                self.hard_confidence = value

    def _on_axes(self, change: dict[str, Any]) -> None:
        self._refresh("axes")

    def _on_color(self, change: dict[str, Any]) -> None:
        self._refresh("color")

    def _on_filter(self, change: dict[str, Any]) -> None:
        self._refresh("filter")

    def _on_tool(self, change: dict[str, Any] | None = None) -> None:
        if self.tool in self._tool_buttons.options:
            self._tool_buttons.value = self.tool
        self.figure.interaction = {"inspect": None, "brush": self._brush, "lasso": self._lasso}[
            self.tool
        ]

    def _on_selected_ids(self, change: dict[str, Any]) -> None:
        mask = np.zeros(len(self._ids), dtype=bool)
        mask[self._index.get_indexer(change["new"])] = True
        self._selected_mask = mask
        self._push_selection()
        self._refresh_pick()
        self._refresh_counts()

    def _on_proxy_selected(self, change: dict[str, Any]) -> None:
        # A lasso in the page selected grid cells of the proxy; select every shown point in
        # them. (A brush's exact rectangle is applied in _on_brush instead.)
        if self._quiet_frontend or self._busy or self.tool == "brush":
            return
        indices = change["new"]
        chosen = np.zeros(_GRID[0] * _GRID[1], dtype=bool)
        if indices is not None and len(indices):
            indices = np.asarray(indices, dtype=np.int64)
            chosen[self._proxy_cells[indices[indices < len(self._proxy_cells)]]] = True
        inside = self._visible & (self._cells >= 0) & chosen[np.maximum(self._cells, 0)]
        self._set_selection(np.flatnonzero(inside))

    def _on_brush(self, change: dict[str, Any]) -> None:
        if self._quiet_frontend or self._busy:
            return
        bx, by = self._brush.selected_x, self._brush.selected_y
        if bx is None or by is None or len(bx) < 2 or len(by) < 2:
            self._set_selection(np.zeros(0, np.int64))
            return
        x, y = self._xy
        inside = self._visible & (x >= min(bx)) & (x <= max(bx)) & (y >= min(by)) & (y <= max(by))
        self._set_selection(np.flatnonzero(inside))

    def _set_selection(self, positions: np.ndarray) -> None:
        self.selected_ids = self._ids[positions]

    def _on_hover(self, mark: Any, event: dict[str, Any]) -> None:
        position = self._position_of_event(mark, event)
        if position is not None:
            self._tooltip.value = self._describe(position, compact=True)

    def _on_click(self, mark: Any, event: dict[str, Any]) -> None:
        position = self._position_of_event(mark, event)
        if position is not None:
            self.inspected_id = self._ids[position]

    def _position_of_event(self, mark: Any, event: dict[str, Any]) -> int | None:
        index = (event.get("data") or {}).get("index")
        positions = self._pick_pos if mark is self._pick else self._drawn
        if index is None or not 0 <= int(index) < len(positions):
            return None
        return int(positions[int(index)])

    def _on_inspected(self, change: dict[str, Any]) -> None:
        self._show_detail()

    # ================================================================ validation
    @traitlets.validate("ambiguous_variability", "easy_confidence", "hard_confidence")
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

    @traitlets.validate("filter_class")
    def _valid_class(self, proposal: dict[str, Any]) -> int | None:
        value = proposal["value"]
        if value is None:
            return None
        if isinstance(value, str) and value in self.class_names:
            return self.class_names.index(value)
        if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
            if 0 <= value < len(self.class_names):
                return int(value)
        raise traitlets.TraitError(
            "The 'filter_class' of DataMapExplorer must be None, a class index in "
            f"[0, {len(self.class_names)}) or a class name of {self.class_names[:10]}. "
            f"Got {value!r} instead."
        )

    @traitlets.validate("selected_ids")
    def _valid_selection(self, proposal: dict[str, Any]) -> np.ndarray:
        value = proposal["value"]
        if value is None:
            return self._ids[:0]
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
            raise traitlets.TraitError(
                "The 'selected_ids' of DataMapExplorer must be a sequence of sample ids. "
                f"Got {type(value).__name__} instead."
            )
        ids = value.to_numpy() if isinstance(value, (pd.Index, pd.Series)) else np.asarray(value)
        if len(ids) == 0:
            return self._ids[:0]
        positions = self._index.get_indexer(ids.ravel())
        if (positions < 0).any():
            missing = ids.ravel()[positions < 0]
            raise traitlets.TraitError(
                f"The 'selected_ids' of DataMapExplorer got {len(missing)} ids that are not in "
                f"the metrics table, e.g. {missing[:5].tolist()}."
            )
        return self._ids[np.unique(positions)]

    # ================================================================ refreshing
    def _refresh_regions(self) -> None:
        self._codes = region_codes(self._conf, self._var, self.thresholds)
        self._recount()
        self._refresh_counts()
        if "region" in (self.x_column, self.y_column) or self.filter_column == "region":
            self._refresh_axes()
        elif self.color_column == "region":
            self._refresh_color()
        self._refresh_guides()

    def _recount(self) -> None:
        # Column 0 counts samples without a region (code -1).
        flat = self._labels * 4 + (self._codes.astype(np.int64) + 1)
        counts = np.bincount(flat, minlength=4 * len(self.class_names))
        self._class_counts = counts.reshape(len(self.class_names), 4)

    def _column(self, name: str) -> _Column:
        if name == "region":
            values = self._codes.astype(np.float64)
            values[self._codes < 0] = np.nan
            return _Column(values, list(REGIONS))
        return self._columns[name]

    def _axis_values(self, name: str, axis: int) -> tuple[np.ndarray, _Column]:
        column = self._column(name)
        if column.categories is None:
            return column.values, column
        return column.values + self._jitter[axis], column

    def _refresh_axes(self) -> None:
        x, x_col = self._axis_values(self.x_column, 0)
        y, y_col = self._axis_values(self.y_column, 1)
        self._xy = (x, y)
        with self._x_axis.hold_sync(), self._y_axis.hold_sync():
            for axis, scale, name, values, column in (
                (self._x_axis, self._x_scale, self.x_column, x, x_col),
                (self._y_axis, self._y_scale, self.y_column, y, y_col),
            ):
                low, high = _domain(values, column)
                with scale.hold_sync():
                    scale.min, scale.max = low, high
                axis.label = name
                if column.categories is None:
                    axis.tick_values, axis.tick_labels = None, None
                else:
                    codes = range(len(column.categories))
                    axis.tick_values = np.arange(len(column.categories), dtype=np.float64)
                    axis.tick_labels = {str(k): c for k, c in zip(codes, column.categories)}
        self._clear_brush()
        self._redraw()
        self._refresh_guides()

    def _redraw(self) -> None:
        """Recompute the shown and drawn points and send x, y, colour and selection."""
        x, y = self._xy
        visible = np.isfinite(x) & np.isfinite(y)
        if self.filter_column is not None:
            values = self._column(self.filter_column).values
            with np.errstate(invalid="ignore"):
                keep = (
                    values >= self.filter_value
                    if self.filter_op == ">="
                    else (values <= self.filter_value)
                )
            visible &= keep
        if self.filter_class is not None:
            visible &= self._labels == self.filter_class
        self._visible = visible
        shown = np.flatnonzero(visible)
        if self._max_points is not None and len(shown) > self._max_points:
            keep = np.argpartition(self._priority[shown], self._max_points - 1)
            shown = np.sort(shown[keep[: self._max_points]])
        self._drawn = shown
        color, _ = self._color_values()
        with self.scatter.hold_sync():
            self.scatter.x = x[shown].astype(np.float32)
            self.scatter.y = y[shown].astype(np.float32)
            self.scatter.color = color
            self._push_selection()
        self._refresh_color_scale()
        self._refresh_proxy()
        self._refresh_pick()
        self._refresh_counts()

    def _color_values(self) -> tuple[np.ndarray, _Column]:
        column = self._column(self.color_column)
        values = column.values[self._drawn]
        if column.categories is not None:
            # The missing colour sits one past the last category on the colour scale.
            values = np.where(np.isnan(values), len(column.categories), values)
        return values.astype(np.float32), column

    def _refresh_color(self) -> None:
        with self.scatter.hold_sync():
            self.scatter.color = self._color_values()[0]
        self._refresh_color_scale()

    def _refresh_color_scale(self) -> None:
        column = self._column(self.color_column)
        if column.categories is None:
            low, high = _domain(column.values, column, pad=0.0)
            colors = list(CONTINUOUS_COLORS)
        else:
            k = len(column.categories)
            low, high = 0.0, float(k)
            if self.color_column == "region":
                colors = list(_REGION_SCALE)
            else:
                colors = [*category_colors(k), MISSING_COLOR]
        scale = self._color_scale
        if scale.colors != colors or scale.min != low or scale.max != high:
            with scale.hold_sync():
                scale.colors = colors
                scale.min, scale.max = low, high
        self._legend_html.value = _legend(self.color_column, column, colors, low, high)

    def _push_selection(self) -> None:
        drawn_selected = np.flatnonzero(self._selected_mask[self._drawn])
        self.scatter.selected = drawn_selected.astype(np.int32) if len(drawn_selected) else None

    def _clear_brush(self) -> None:
        # A brush rectangle is in the old axes' units; drop it but keep the selected ids.
        self._quiet_frontend = True
        try:
            with self._brush.hold_sync():
                self._brush.selected_x = None
                self._brush.selected_y = None
        finally:
            self._quiet_frontend = False

    def _refresh_proxy(self) -> None:
        """Place one hidden proxy point at the centre of each grid cell holding a shown point."""
        x, y = self._xy
        cols, rows = _GRID
        x0, x1 = float(self._x_scale.min), float(self._x_scale.max)
        y0, y1 = float(self._y_scale.min), float(self._y_scale.max)
        with np.errstate(invalid="ignore"):
            cx = np.clip(((x - x0) / (x1 - x0) * cols).astype(np.int64), 0, cols - 1)
            cy = np.clip(((y - y0) / (y1 - y0) * rows).astype(np.int64), 0, rows - 1)
        self._cells = np.where(self._visible, cy * cols + cx, -1)
        self._proxy_cells = np.unique(self._cells[self._visible])
        centre_x = x0 + (self._proxy_cells % cols + 0.5) * (x1 - x0) / cols
        centre_y = y0 + (self._proxy_cells // cols + 0.5) * (y1 - y0) / rows
        self._quiet_frontend = True
        try:
            with self._proxy.hold_sync():
                self._proxy.x = centre_x.astype(np.float32)
                self._proxy.y = centre_y.astype(np.float32)
                self._proxy.selected = None
        finally:
            self._quiet_frontend = False

    def _refresh_pick(self) -> None:
        if self._pick is None:
            return
        candidates = np.flatnonzero(self._visible & self._selected_mask)
        if len(candidates) == 0:
            candidates = self._drawn
        if len(candidates) > self._max_pick:
            keep = np.argpartition(self._priority[candidates], self._max_pick - 1)
            candidates = np.sort(candidates[keep[: self._max_pick]])
        self._pick_pos = candidates
        x, y = self._xy
        with self._pick.hold_sync():
            self._pick.x = x[candidates].astype(np.float32)
            self._pick.y = y[candidates].astype(np.float32)

    def _refresh_guides(self) -> None:
        axes = (self.x_column, self.y_column)
        if set(axes) != {"variability", "confidence"}:
            self._guides.visible = False
            return
        t = self.thresholds
        x_low = float(self._x_scale.min if axes[0] == "variability" else self._y_scale.min)
        c_low = float(self._y_scale.min if axes[1] == "confidence" else self._x_scale.min)
        c_high = float(self._y_scale.max if axes[1] == "confidence" else self._x_scale.max)
        a = t.ambiguous_variability
        var = np.array([[a, a], [x_low, a], [x_low, a]])
        conf = np.array([[c_low, c_high], [t.easy_confidence] * 2, [t.hard_confidence] * 2])
        xs, ys = (var, conf) if axes[0] == "variability" else (conf, var)
        with self._guides.hold_sync():
            self._guides.x, self._guides.y = xs, ys
            self._guides.visible = True

    def _refresh_counts(self) -> None:
        self._counts_html.value = _counts_table(
            self._class_counts,
            self.class_names,
            shown=int(self._visible.sum()),
            drawn=len(self._drawn),
            total=len(self._ids),
            selected=int(self._selected_mask.sum()),
        )

    # ================================================================ detail panel
    def _describe(self, position: int, *, compact: bool) -> str:
        """HTML lines about one sample: id, label, prediction, region, key metrics, extras."""
        row = self.metrics.iloc[position]
        label = self.class_names[self._labels[position]]
        region = REGIONS[self._codes[position]] if self._codes[position] >= 0 else "none"
        parts = [
            f"<b>id {html.escape(str(self._ids[position]))}</b>",
            f"label <b>{html.escape(label)}</b>",
        ]
        predicted = row.get("predicted_label")
        if predicted is not None and not pd.isna(predicted):
            parts.append(f"predicted {html.escape(self.class_names[int(predicted)])}")
        parts.append(f"region <b>{region}</b>")
        for name in _TOOLTIP_METRICS:
            if name in row.index and not pd.isna(row[name]):
                parts.append(f"{name} {_fmt(row[name])}")
        for name in self._extra.columns:
            value = self._extra.iloc[position][name]
            if name == "text" or isinstance(value, str):
                text = str(value)
                if compact and len(text) > 80:
                    text = text[:77] + "…"
                if not compact and name == "text":
                    continue  # the full text is shown below
                parts.append(f"{html.escape(name)}: {html.escape(text)}")
            elif not pd.isna(value):
                parts.append(f"{html.escape(name)} {_fmt(value)}")
        sep = "<br>" if compact else " · "
        return f"<div style='font-size:12px;line-height:1.35'>{sep.join(parts)}</div>"

    def _show_detail(self) -> None:
        sample_id = self.inspected_id
        self._sample_image.layout.display = "none"
        self._sample_html.value = ""
        if sample_id is None:
            self._info_html.value = (
                "<i>Click a point (drag mode: inspect) to see the sample and its "
                "training trajectory.</i>"
            )
            self._trajectory.x, self._trajectory.y = np.zeros(0), np.zeros(0)
            self._trajectory_figure.title = ""
            return
        position = int(self._index.get_loc(sample_id))
        self._info_html.value = self._describe(position, compact=False)
        if self.data is None:
            self._sample_html.value = "<i>Pass data= to see the sample itself.</i>"
        else:
            sample = self.data.show(int(self._data_pos[position]))
            if isinstance(sample, str):
                self._sample_html.value = (
                    "<div class='cartokit-sample-text' style='white-space:pre-wrap;"
                    "max-height:200px;overflow:auto;border:1px solid #ddd;padding:4px'>"
                    f"{html.escape(sample)}</div>"
                )
            elif np.ndim(sample) in (2, 3):
                self._sample_image.value = _png(np.asarray(sample))
                self._sample_image.layout.display = None
            else:
                shown = ", ".join(_fmt(v) for v in np.ravel(sample)[:32])
                self._sample_html.value = f"<code>[{html.escape(shown)}]</code>"
        if self.dynamics is None:
            self._trajectory_figure.title = "pass dynamics= for the trajectory"
            return
        gold = np.asarray(self.dynamics.gold_prob[:, self._dyn_pos[position]], dtype=np.float32)
        epochs = np.arange(len(gold), dtype=np.float32)
        seen = np.isfinite(gold)
        with self._trajectory.hold_sync():
            self._trajectory.x, self._trajectory.y = epochs[seen], gold[seen]
        self._trajectory_figure.title = f"id {sample_id}: gold-label probability"

    def _on_clear(self, _button: Any) -> None:
        self.selected_ids = []
        if self.figure.interaction is not None:  # a fresh selector view drops drawn lassos
            interaction = self.figure.interaction
            self.figure.interaction = None
            self.figure.interaction = interaction

    # ================================================================ export buttons
    def _on_export_csv(self, _button: Any) -> None:
        which = self._export_which.value
        path = self._export_path.value.strip() or f"{which}_ids.csv"
        try:
            written = self.export_ids(path, which)
        except (OSError, ValueError) as err:
            self._status(f"Could not write {path}: {err}", error=True)
            return
        self._status(f"Wrote {len(self.ids_of(which))} {which} ids to {written.resolve()}.")

    def _on_export_subset(self, _button: Any) -> None:
        which = self._export_which.value
        try:
            self.last_subset = self.export_subset(which)
        except ValueError as err:
            self._status(str(err), error=True)
            return
        self._status(f"explorer.last_subset = {html.escape(repr(self.last_subset))}")

    def _status(self, text: str, *, error: bool = False) -> None:
        color = "#b00020" if error else "#1b5e20"
        self._export_status.value = f"<span style='color:{color}'>{html.escape(text)}</span>"


# ==================================================================== helpers
def _brush_reports() -> bool:
    """Whether bqplot's BrushSelector can report its rectangle in this environment.

    With bqplot-gl's JupyterLab extension installed next to bqplot's (bqplot 0.13.1, bqplot-gl
    0.1.1), the two share one copy of d3 whose events bqplot cannot read: the brush draws but
    never sends its rectangle. The lasso is not affected.
    """
    import importlib.util

    return importlib.util.find_spec("bqplot_gl") is None


def _none_to(sentinel: Any) -> Any:
    return lambda value: sentinel if value is None else value


def _to_none(sentinel: Any) -> Any:
    return lambda value: None if value == sentinel else value


def _resolve_backend(backend: str) -> str:
    if backend not in ("auto", "gl", "svg"):
        raise ValueError(
            "The 'backend' parameter of DataMapExplorer must be 'auto', 'gl' or 'svg'. "
            f"Got {backend!r} instead."
        )
    if backend == "svg":
        return "svg"
    try:
        import bqplot_gl  # noqa: F401
    except ImportError as err:
        if backend == "gl":
            raise ImportError(
                "DataMapExplorer(backend='gl') needs bqplot-gl: pip install bqplot-gl "
                "(or pip install 'cartokit[widgets]'), or use backend='svg'."
            ) from err
        return "svg"
    return "gl"


def _check_limit(name: str, value: int | None, *, caller: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(
            f"The '{name}' parameter of {caller} must be a positive int or None. "
            f"Got {value!r} instead."
        )
    return int(value)


def _positions_of(source: Any, index: pd.Index, what: str, caller: str) -> np.ndarray:
    """Position in ``source.ids`` of each metrics id; every id must be there."""
    ids = getattr(source, "ids", None)
    if ids is None:
        raise TypeError(
            f"The '{what}' parameter of {caller} must have sample ids (a cartokit Split or "
            f"TrainingDynamics). Got {type(source).__name__} instead."
        )
    positions = pd.Index(np.asarray(ids)).get_indexer(index)
    missing = positions < 0
    if missing.any():
        raise ValueError(
            f"{caller}: {int(missing.sum())} of the {len(index)} metrics ids are not in "
            f"{what}.ids, e.g. {index[missing][:5].tolist()}. Pass the {what} the metrics "
            "were computed from."
        )
    return positions


def _class_names(metrics: pd.DataFrame, data: Any, dynamics: Any, labels: np.ndarray) -> list[str]:
    for source in (data, dynamics):
        names = getattr(source, "class_names", None)
        if names:
            names = [str(c) for c in names]
            break
    else:
        names = None
    needed = int(labels.max()) + 1 if len(labels) else 1
    if names is None and "label_name" in metrics.columns:
        pairs = pd.DataFrame({"k": labels, "name": metrics["label_name"].to_numpy()})
        first = pairs.drop_duplicates("k").set_index("k")["name"]
        names = [str(first.get(k, k)) for k in range(needed)]
    if names is None:
        names = [str(k) for k in range(needed)]
    if len(names) < needed:
        raise ValueError(
            f"DataMapExplorer: labels go up to {needed - 1}, but only {len(names)} class names "
            f"were found: {names[:10]}."
        )
    return names


def _joined_frame(metrics: pd.DataFrame, data: Any) -> pd.DataFrame:
    """Columns of ``data.frame`` that the metrics table lacks, in metrics order."""
    frame = getattr(data, "frame", None)
    if frame is None or frame.empty:
        return pd.DataFrame(index=metrics.index)
    extra = [c for c in frame.columns if c not in metrics.columns]
    return frame[extra].reindex(metrics.index)


def _build_columns(
    metrics: pd.DataFrame, extra: pd.DataFrame, class_names: list[str]
) -> dict[str, _Column]:
    columns: dict[str, _Column] = {}
    for table in (metrics, extra):
        for name in table.columns:
            if name in ("region", "label_name", "predicted_name") or not isinstance(name, str):
                continue
            column = _as_column(table[name], name, class_names)
            if column is not None:
                columns[name] = column
    return columns


def _as_column(series: pd.Series, name: str, class_names: list[str]) -> _Column | None:
    dtype = series.dtype
    if name in ("label", "predicted_label"):
        return _Column(series.to_numpy(dtype=np.float64, na_value=np.nan), list(class_names))
    if pd.api.types.is_bool_dtype(dtype):
        values = series.astype("boolean").to_numpy(dtype=np.float64, na_value=np.nan)
        return _Column(values, ["False", "True"])
    if pd.api.types.is_numeric_dtype(dtype):
        return _Column(series.to_numpy(dtype=np.float64, na_value=np.nan))
    if (
        isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(dtype)
        or (pd.api.types.is_string_dtype(dtype))
    ):
        codes, uniques = pd.factorize(series, sort=True)
        if len(uniques) == 0 or len(uniques) > _MAX_CATEGORIES:
            return None
        values = codes.astype(np.float64)
        values[codes < 0] = np.nan
        return _Column(values, [str(u) for u in uniques])
    return None


def _domain(values: np.ndarray, column: _Column, *, pad: float = 0.04) -> tuple[float, float]:
    """Explicit scale bounds: ScatterGL with auto-domain scales fails at large N."""
    if column.categories is not None:
        return -0.5, len(column.categories) - 0.5
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return 0.0, 1.0
    low, high = float(finite.min()), float(finite.max())
    if high <= low:
        return low - 0.5, high + 0.5
    span = high - low
    return low - pad * span, high + pad * span


def _fmt(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    try:
        return f"{float(value):.3f}"
    except (TypeError, ValueError):
        return str(value)


def _counts_table(
    counts: np.ndarray,
    class_names: list[str],
    *,
    shown: int,
    drawn: int,
    total: int,
    selected: int,
) -> str:
    """The live counts: a summary line, then a per-class table (``data-region`` cells)."""
    totals = counts[:, 1:].sum(axis=0)
    summary = " · ".join(
        f"<span data-region='{r}'><b>{r}</b> <span class='cartokit-count'>{int(c)}</span></span>"
        for r, c in zip(REGIONS, totals)
    )
    head = "".join(f"<th style='text-align:right;padding:0 6px'>{r}</th>" for r in REGIONS)
    rows = []
    order = range(len(class_names))
    for k in list(order)[:_MAX_CLASS_ROWS]:
        cells = "".join(
            f"<td data-region='{r}' style='text-align:right;padding:0 6px'>{int(v)}</td>"
            for r, v in zip(REGIONS, counts[k, 1:])
        )
        rows.append(
            f"<tr data-class='{html.escape(class_names[k])}'>"
            f"<td>{html.escape(class_names[k])}</td>{cells}</tr>"
        )
    if len(class_names) > _MAX_CLASS_ROWS:
        rest = counts[_MAX_CLASS_ROWS:, 1:].sum(axis=0)
        cells = "".join(f"<td style='text-align:right;padding:0 6px'>{int(v)}</td>" for v in rest)
        rows.append(f"<tr><td>{len(class_names) - _MAX_CLASS_ROWS} more classes</td>{cells}</tr>")
    drawn_note = f" ({drawn:,} drawn)" if drawn < shown else ""
    missing = int(counts[:, 0].sum())
    missing_note = f" · {missing} without a region" if missing else ""
    return (
        f"<div class='cartokit-counts-summary' style='font-size:14px'>{summary}</div>"
        f"<div style='font-size:12px;color:#555'>shown {shown:,} of {total:,}{drawn_note} · "
        f"selected <span class='cartokit-selected'>{selected:,}</span>{missing_note}</div>"
        "<div style='max-height:260px;overflow:auto;margin-top:4px'>"
        "<table class='cartokit-class-counts' style='font-size:12px;border-collapse:collapse'>"
        f"<tr><th style='text-align:left'>class</th>{head}</tr>{''.join(rows)}</table></div>"
    )


def _legend(name: str, column: _Column, colors: list[str], low: float, high: float) -> str:
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
        for label, c in zip(column.categories[:_MAX_CLASS_ROWS], colors)
    )
    return f"<div style='font-size:12px'><b>{html.escape(name)}</b><br>{items}</div>"


def _png(image: np.ndarray) -> bytes:
    """PNG bytes of a 2-D (grey) or 3-D (RGB/RGBA) image, enlarged to about 144 pixels."""
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
    scale = max(1, 144 // max(image.shape[:2]))
    image = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
    buffer = io.BytesIO()
    if image.ndim == 2:
        imsave(buffer, image, cmap="gray_r", format="png", vmin=low, vmax=max(high, low + 1e-9))
    else:
        imsave(buffer, np.clip(image, 0.0, 1.0), format="png")
    return buffer.getvalue()
