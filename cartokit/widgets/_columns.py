"""The explorer's column model: what a data map can show, as plain arrays.

:class:`ColumnModel` is everything :class:`~cartokit.widgets.DataMapExplorer` shows that is not a
widget: the checked metrics table and the columns of ``data.frame`` joined to it by id; every
plottable column as float values (a categorical column as codes, with its categories); the region
of each sample under the current thresholds and the counts per class and region; which points
pass the filter, which of them are drawn (a seeded sample when there are too many) and which are
selected. It uses pandas and numpy only, so it is tested without a widget.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from cartokit import Thresholds
>>> metrics = pd.DataFrame(
...     {"confidence": [0.9, 0.5, 0.1], "variability": [0.05, 0.3, 0.02], "label": [0, 1, 1]},
...     index=pd.Index([10, 11, 12], name="id"),
... )
>>> model = ColumnModel(metrics)
>>> model.names
['region', 'confidence', 'variability', 'label']
>>> model.counts.tolist()
[1, 1, 1]
>>> model.set_thresholds(Thresholds(easy_confidence=0.95))
>>> model.regions.tolist()
['ambiguous', 'ambiguous', 'hard']
>>> model.set_filter(column="confidence", op=">=", value=0.5)
>>> model.shown_ids.tolist()
[10, 11]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cartokit._validation import (
    Interval,
    Optional,
    check_metrics_frame,
    check_param,
    check_seed,
    first_few,
    is_int,
    positions_of,
)
from cartokit.regions import REGIONS, Thresholds, map_coordinates, region_codes

__all__ = ["JITTER", "MAX_CATEGORIES", "Column", "ColumnModel", "check_limit", "domain"]

#: Categorical columns with more distinct values than this are not offered.
MAX_CATEGORIES = 50
#: Half-width of the spread of points on a categorical axis.
JITTER = 0.3
#: Metrics columns that are never plotted: ``region`` follows the sliders, names are shown
#: through the codes of ``label`` and ``predicted_label``.
_NOT_PLOTTED = ("region", "label_name", "predicted_name")


@dataclass
class Column:
    """One plottable column: float values (NaN where missing) and, if categorical, the names of
    codes ``0..K-1``."""

    values: np.ndarray
    categories: list[str] | None = None


class ColumnModel:
    """The data behind a live data map, checked once; the state of what is shown.

    Parameters
    ----------
    metrics : pandas.DataFrame
        Indexed by unique sample id, with at least ``confidence``, ``variability`` and integer
        ``label`` columns.
    data : cartokit.data.Split, optional
        Its ids must cover the metrics ids; its ``frame`` columns are joined by id and its class
        names used.
    dynamics : TrainingDynamics, optional
        Its ids must cover the metrics ids.
    thresholds : Thresholds, optional
        The initial cut points of the regions; ``None`` means ``Thresholds()``.
    seed : int, default 0
        Seed of the drawing priority (down-sampling) and of the categorical jitter.
    caller : str
        The name errors give.

    Attributes
    ----------
    ids : numpy.ndarray
        The sample ids, in table order; every position below indexes them.
    labels : numpy.ndarray
        Class index per sample.
    class_names : list of str
    extra : pandas.DataFrame
        The columns of ``data.frame`` that the metrics lack, in metrics order.
    data_pos, dyn_pos : numpy.ndarray or None
        Position of each sample in ``data`` and ``dynamics``.
    codes : numpy.ndarray
        Region code per sample (0 easy, 1 ambiguous, 2 hard, -1 none).
    xy : tuple of numpy.ndarray
        The values of the two axis columns (categorical ones jittered).
    visible : numpy.ndarray
        Which samples pass the filter (and have finite x and y).
    drawn : numpy.ndarray
        Positions of the drawn samples: the visible ones, or a seeded sample of them.
    selected : numpy.ndarray
        Which samples are selected.
    """

    def __init__(
        self,
        metrics: pd.DataFrame,
        *,
        data: Any = None,
        dynamics: Any = None,
        thresholds: Thresholds | None = None,
        seed: int = 0,
        caller: str = "DataMapExplorer",
    ) -> None:
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
        seed = check_seed(seed, caller=caller, allow_none=False)
        self.metrics = metrics
        self.index = metrics.index
        self.ids = metrics.index.to_numpy()
        self.data_pos = _source_positions(data, self.index, "data", caller)
        self.dyn_pos = _source_positions(dynamics, self.index, "dynamics", caller)
        self.labels = _check_labels(metrics["label"], caller)
        self.class_names = _class_names(metrics, data, dynamics, self.labels, caller)
        self.extra = _joined_frame(metrics, data)
        self._columns = _build_columns(metrics, self.extra, self.class_names)
        n = len(metrics)
        rng = np.random.default_rng(seed)
        self.priority = rng.permutation(n)  # lower draws first when down-sampling
        self.jitter = rng.uniform(-JITTER, JITTER, size=(2, n))
        self.thresholds = Thresholds.coerce(thresholds, caller=caller)
        self.codes = region_codes(self._conf, self._var, self.thresholds)
        self.class_counts = self._count()
        self.xy = (np.zeros(n), np.zeros(n))
        self.visible = np.ones(n, dtype=bool)
        self.drawn = np.arange(n)
        self.selected = np.zeros(n, dtype=bool)

    # ------------------------------------------------------------------ columns
    @property
    def names(self) -> list[str]:
        """Columns the axes, the colour and the filter can take: ``region`` first."""
        return ["region", *self._columns]

    def column(self, name: str) -> Column:
        """The values of a column of :attr:`names`; ``region`` under the current thresholds."""
        if name == "region":
            values = self.codes.astype(np.float64)
            values[self.codes < 0] = np.nan
            return Column(values, list(REGIONS))
        return self._columns[name]

    def set_axes(self, x: str, y: str) -> tuple[Column, Column]:
        """Put columns ``x`` and ``y`` on the axes (:attr:`xy`); return the two columns."""
        x_column, y_column = self.column(x), self.column(y)
        self.xy = (self._on_axis(x_column, 0), self._on_axis(y_column, 1))
        return x_column, y_column

    def _on_axis(self, column: Column, axis: int) -> np.ndarray:
        # Points of one category would sit on one line: spread them by a seeded jitter.
        return column.values if column.categories is None else column.values + self.jitter[axis]

    def color_values(self, name: str) -> np.ndarray:
        """The colour values of the drawn points: category codes as uint8 (one byte a point)
        while there are fewer than 255 categories, a missing category one past the last (the
        missing colour of the scale); otherwise float32."""
        column = self.column(name)
        values = column.values[self.drawn]
        if column.categories is not None:
            values = np.where(np.isnan(values), len(column.categories), values)
            if len(column.categories) < 255:
                return values.astype(np.uint8)
        return values.astype(np.float32)

    # ------------------------------------------------------------------ regions
    def set_thresholds(self, thresholds: Thresholds) -> None:
        """Reassign every sample's region and recount."""
        self.thresholds = thresholds
        self.codes = region_codes(self._conf, self._var, thresholds)
        self.class_counts = self._count()

    def _count(self) -> np.ndarray:
        # Column 0 counts samples without a region (code -1).
        flat = self.labels * 4 + (self.codes.astype(np.int64) + 1)
        counts = np.bincount(flat, minlength=4 * len(self.class_names))
        return counts.reshape(len(self.class_names), 4)

    @property
    def regions(self) -> pd.Series:
        """Region of every sample, as :func:`~cartokit.assign_regions` gives it."""
        categorical = pd.Categorical.from_codes(self.codes, categories=list(REGIONS))
        return pd.Series(categorical, index=self.index, name="region")

    @property
    def counts(self) -> pd.Series:
        """Samples per region (filtered or not), as :func:`~cartokit.region_counts` gives it."""
        totals = self.class_counts[:, 1:].sum(axis=0)
        return pd.Series(totals, index=pd.Index(REGIONS), name="count")

    @property
    def counts_by_class(self) -> pd.DataFrame:
        """Samples per class (rows, by class name) and region (columns)."""
        return pd.DataFrame(
            self.class_counts[:, 1:],
            index=pd.Index(self.class_names, name="label"),
            columns=pd.Index(REGIONS, name="region"),
        )

    def region_ids(self, region: str) -> np.ndarray:
        """Ids of every sample of ``region``, in table order."""
        return self.ids[self.codes == REGIONS.index(region)]

    # ------------------------------------------------------------------ what is shown
    def set_filter(
        self,
        *,
        column: str | None = None,
        op: str = ">=",
        value: float = 0.0,
        label: int | None = None,
        max_points: int | None = None,
    ) -> None:
        """Show the points with finite x and y whose ``column`` is ``op`` ``value`` and whose
        class is ``label`` (None: no condition); draw at most ``max_points`` of them."""
        x, y = self.xy
        visible = np.isfinite(x) & np.isfinite(y)
        if column is not None:
            values = self.column(column).values
            with np.errstate(invalid="ignore"):
                visible &= values >= value if op == ">=" else values <= value
        if label is not None:
            visible &= self.labels == label
        self.visible = visible
        self.drawn = self.sample(np.flatnonzero(visible), max_points)

    def sample(self, positions: np.ndarray, limit: int | None) -> np.ndarray:
        """At most ``limit`` of ``positions``, in order: those first in the seeded priority, so
        that a point drawn stays drawn as the filter narrows."""
        if limit is None or len(positions) <= limit:
            return positions
        keep = np.argpartition(self.priority[positions], limit - 1)
        return np.sort(positions[keep[:limit]])

    def pick_positions(self, limit: int) -> np.ndarray:
        """Points that hover and click reach: the shown selected ones, else the drawn ones (the
        shown ones when none is drawn: the density view)."""
        candidates = np.flatnonzero(self.visible & self.selected)
        if not len(candidates):
            candidates = self.drawn if len(self.drawn) else np.flatnonzero(self.visible)
        return self.sample(candidates, limit)

    @property
    def shown_ids(self) -> np.ndarray:
        """Ids of every point that passes the filter (drawn or not), in table order."""
        return self.ids[self.visible]

    @property
    def drawn_ids(self) -> np.ndarray:
        """Ids of the drawn points."""
        return self.ids[self.drawn]

    # ------------------------------------------------------------------ ids
    def positions(self, ids: Any, *, caller: str, what: str = "the metrics table") -> np.ndarray:
        """Table positions of ``ids``; every id must be in the table."""
        return positions_of(self.index, ids, caller=caller, what=what)

    def selection(self, value: Any, *, caller: str) -> np.ndarray:
        """Ids of the table to select, unique and in table order, from ``value`` (ids or None)."""
        if value is None:
            return self.ids[:0]
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
            raise TypeError(
                f"The 'selected_ids' of {caller} must be a sequence of sample ids. "
                f"Got {type(value).__name__} instead."
            )
        ids = value.to_numpy() if isinstance(value, (pd.Index, pd.Series)) else np.asarray(value)
        if len(ids) == 0:
            return self.ids[:0]
        positions = self.positions(ids.ravel(), caller=f"{caller}.selected_ids")
        return self.ids[np.unique(positions)]

    def select(self, ids: np.ndarray) -> None:
        """Mark exactly ``ids`` (ids of the table, as :meth:`selection` returns) as selected."""
        selected = np.zeros(len(self.ids), dtype=bool)
        selected[self.positions(ids, caller="ColumnModel.select")] = True
        self.selected = selected

    def class_index(self, value: Any, *, caller: str) -> int | None:
        """A class filter as an index: None, an index, or a class name."""
        if value is None:
            return None
        if isinstance(value, str) and value in self.class_names:
            return self.class_names.index(value)
        if is_int(value) and 0 <= value < len(self.class_names):
            return int(value)
        raise ValueError(
            f"The 'filter_class' of {caller} must be None, a class index in "
            f"[0, {len(self.class_names)}) or a class name of {self.class_names[:10]}. "
            f"Got {value!r} instead."
        )


# ==================================================================== helpers


def check_limit(name: str, value: Any, *, caller: str, allow_none: bool = True) -> int | None:
    """A most-points parameter: an int >= 1 (or None, for no limit, where allowed)."""
    constraint = Interval(int, 1, None)
    return check_param(
        name, value, Optional(constraint) if allow_none else constraint, caller=caller
    )


def domain(values: np.ndarray, column: Column, *, pad: float = 0.04) -> tuple[float, float]:
    """Explicit bounds of a scale for ``values``: a category per unit step, else the finite
    range padded by ``pad`` of its span (bqplot-gl's ScatterGL fails with auto-domain scales at
    large N).

    >>> domain(np.array([0.0, 1.0, np.nan]), Column(np.zeros(3)))
    (-0.04, 1.04)
    >>> domain(np.zeros(2), Column(np.zeros(2), ["a", "b", "c"]))
    (-0.5, 2.5)
    """
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


def _source_positions(source: Any, index: pd.Index, what: str, caller: str) -> np.ndarray | None:
    """Position in ``source.ids`` of each metrics id (None without a source)."""
    if source is None:
        return None
    ids = getattr(source, "ids", None)
    if ids is None:
        raise TypeError(
            f"The '{what}' parameter of {caller} must have sample ids (a cartokit Split or "
            f"TrainingDynamics). Got {type(source).__name__} instead."
        )
    return positions_of(
        ids, index, caller=caller, what=f"{what}.ids", hint=_ids_hint(index, ids, what)
    )


def _ids_hint(index: pd.Index, ids: Any, what: str) -> str:
    """How to fix metrics ids not found in ``source.ids``; names the common mix-up, metrics
    keyed by row position (a recorder given no ``sample_ids``) against data keyed by its own
    ids.

    >>> _ids_hint(pd.RangeIndex(3), np.array([0, 2, 5, 7]), "data")[:58]
    'The metrics ids are row positions 0..2, but data.ids run 0'
    """
    fallback = f"Pass the {what} the metrics were computed from."
    source = pd.Index(np.asarray(ids))
    n = len(index)
    if not (
        pd.api.types.is_integer_dtype(index.dtype)
        and pd.api.types.is_integer_dtype(source.dtype)
        and n
        and index.min() == 0
        and index.max() == n - 1
        and index.is_unique
    ):
        return fallback
    if source.min() == 0 and source.max() == len(source) - 1:
        return fallback  # the source is keyed by position too: another mix-up
    low, high = int(source.min()), int(source.max())
    gaps = " with gaps" if high - low + 1 > len(source) else ""
    fix = (
        "record with the data's own ids, DynamicsRecorder(..., sample_ids=data.ids), or pass "
        "the data the metrics were computed from."
        if what == "data"
        else "compute the metrics from this record, compute_metrics(dynamics)."
    )
    return (
        f"The metrics ids are row positions 0..{n - 1}, but {what}.ids run {low}..{high}{gaps} "
        f"({len(source)} ids): {fix}"
    )


def _check_labels(labels: pd.Series, caller: str) -> np.ndarray:
    if not pd.api.types.is_integer_dtype(labels.dtype) or labels.isna().any():
        raise TypeError(
            f"{caller} needs integer class indices in the 'label' column. Got dtype "
            f"{labels.dtype}{' with missing values' if labels.isna().any() else ''}."
        )
    values = labels.to_numpy(dtype=np.int64, copy=True)
    if values.min() < 0:
        raise ValueError(f"{caller}: labels must be >= 0. Got {int(values.min())}.")
    return values


def _class_names(
    metrics: pd.DataFrame, data: Any, dynamics: Any, labels: np.ndarray, caller: str
) -> list[str]:
    """Class names from ``data``, else ``dynamics``, else the ``label_name`` column, else the
    indices as text."""
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
            f"{caller}: labels go up to {needed - 1}, but only {len(names)} class names "
            f"were found: {first_few(names, 10)}."
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
) -> dict[str, Column]:
    columns: dict[str, Column] = {}
    for table in (metrics, extra):
        for name in table.columns:
            if name in _NOT_PLOTTED or not isinstance(name, str):
                continue
            column = _as_column(table[name], name, class_names)
            if column is not None:
                columns[name] = column
    return columns


def _as_column(series: pd.Series, name: str, class_names: list[str]) -> Column | None:
    """A column as floats: class indices and bools as categories, numbers as they are, text
    with at most :data:`MAX_CATEGORIES` values as sorted categories; anything else is None."""
    dtype = series.dtype
    if name in ("label", "predicted_label"):
        return Column(series.to_numpy(dtype=np.float64, na_value=np.nan), list(class_names))
    if pd.api.types.is_bool_dtype(dtype):
        values = series.astype("boolean").to_numpy(dtype=np.float64, na_value=np.nan)
        return Column(values, ["False", "True"])
    if pd.api.types.is_numeric_dtype(dtype):
        return Column(series.to_numpy(dtype=np.float64, na_value=np.nan))
    if (
        isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
    ):
        codes, uniques = pd.factorize(series, sort=True)
        if len(uniques) == 0 or len(uniques) > MAX_CATEGORIES:
            return None
        values = codes.astype(np.float64)
        values[codes < 0] = np.nan
        return Column(values, [str(u) for u in uniques])
    return None
