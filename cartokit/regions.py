"""Split the data map into regions: easy-to-learn, ambiguous and hard-to-learn.

The data map of Swayamdipta et al. (2020), "Dataset Cartography: Mapping and Diagnosing
Datasets with Training Dynamics", EMNLP, plots each training sample by its *variability*
(x axis) and *confidence* (y axis). The paper names three regions of that map: easy-to-learn
(high confidence, low variability), ambiguous (high variability) and hard-to-learn (low
confidence, low variability). This module turns that picture into a rule with explicit,
editable cut points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from cartokit._validation import check_metrics_frame, is_real, show

if TYPE_CHECKING:  # imported where used: `cartokit metrics` never loads pandas
    import pandas as pd

__all__ = [
    "REGIONS",
    "Thresholds",
    "assign_regions",
    "map_coordinates",
    "region_codes",
    "region_counts",
]

REGIONS: tuple[str, str, str] = ("easy", "ambiguous", "hard")
"""Region names in their fixed order: easy-to-learn, ambiguous, hard-to-learn."""

# Category codes, matching the positions in REGIONS; -1 is pandas' code for a missing value.
_EASY, _AMBIGUOUS, _HARD, _MISSING = 0, 1, 2, -1
_REGION_COLUMNS = ("confidence", "variability")
# Upper end of each threshold's valid range; the lower end is 0 for all three. The population
# std of values in [0, 1] is at most 0.5, so a larger variability cut could never be reached.
_UPPER = {"ambiguous_variability": 0.5, "easy_confidence": 1.0, "hard_confidence": 1.0}


@dataclass
class Thresholds:
    """Cut points that split the data map into regions.

    The rule is applied in this order, to every sample:

    1. ``variability >= ambiguous_variability``: **ambiguous** (the model flip-flops);
    2. otherwise ``confidence >= easy_confidence``: **easy** (easy-to-learn);
    3. otherwise ``confidence <= hard_confidence``: **hard** (hard-to-learn);
    4. otherwise **ambiguous** too: low variability but middling confidence, i.e. the model
       is consistently unsure.

    When ``hard_confidence == easy_confidence`` a sample exactly at the cut is easy, because
    rule 2 comes first.

    Parameters
    ----------
    ambiguous_variability : float, default=0.2
        Variability (population std of the gold-label probability) at or above which a
        sample is ambiguous. In ``[0, 0.5]``.
    easy_confidence : float, default=0.7
        Confidence (mean gold-label probability) at or above which a steady sample is
        easy-to-learn. In ``[0, 1]``.
    hard_confidence : float, default=0.3
        Confidence at or below which a steady sample is hard-to-learn. In ``[0, 1]`` and
        not above ``easy_confidence``.

    Raises
    ------
    TypeError
        If a threshold is not a real number.
    ValueError
        If a threshold is out of its range, or ``hard_confidence > easy_confidence``.

    Notes
    -----
    The fields are editable (a slider may move them); edits are checked by :meth:`validate`,
    which :func:`assign_regions` calls every time.

    Examples
    --------
    >>> Thresholds()
    Thresholds(ambiguous_variability=0.2, easy_confidence=0.7, hard_confidence=0.3)
    >>> Thresholds(easy_confidence=1.5)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: The 'easy_confidence' threshold must be ... in the range [0, 1]. Got 1.5 instead.
    """

    ambiguous_variability: float = 0.2
    easy_confidence: float = 0.7
    hard_confidence: float = 0.3

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every threshold; raise ``TypeError`` or ``ValueError`` if one is invalid.

        Examples
        --------
        >>> t = Thresholds()
        >>> t.hard_confidence = 0.8
        >>> t.validate()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: hard_confidence (0.8) must not exceed easy_confidence (0.7); lower ...
        """
        for name, upper in _UPPER.items():
            value = getattr(self, name)
            expected = f"The {name!r} threshold must be a float in the range [0, {upper:g}]."
            if not is_real(value):
                raise TypeError(
                    f"{expected} Got {show(value)} of type {type(value).__name__} instead."
                )
            if not 0.0 <= value <= upper:  # also rejects NaN
                raise ValueError(f"{expected} Got {show(value)} instead.")
        if self.hard_confidence > self.easy_confidence:
            raise ValueError(
                f"hard_confidence ({show(self.hard_confidence)}) must not exceed "
                f"easy_confidence ({show(self.easy_confidence)}); lower hard_confidence or "
                "raise easy_confidence."
            )

    @classmethod
    def coerce(cls, thresholds: Thresholds | None, *, caller: str) -> Thresholds:
        """Valid thresholds from a parameter: the defaults for ``None``, else the argument
        checked by :meth:`validate`. Every function that takes ``thresholds=`` calls this.

        >>> Thresholds.coerce(None, caller="select")
        Thresholds(ambiguous_variability=0.2, easy_confidence=0.7, hard_confidence=0.3)
        >>> Thresholds.coerce(0.2, caller="select")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        TypeError: The 'thresholds' parameter of select must be a Thresholds instance or None...
        """
        if thresholds is None:
            return cls()
        if not isinstance(thresholds, Thresholds):
            raise TypeError(
                f"The 'thresholds' parameter of {caller} must be a Thresholds instance or None. "
                f"Got {type(thresholds).__name__} instead."
            )
        thresholds.validate()
        return thresholds


def map_coordinates(metrics: pd.DataFrame, *, caller: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``confidence`` and ``variability`` columns of a metrics table as float64 arrays (NaN
    where missing), checked: the coordinates of every sample on the data map."""
    import pandas as pd

    check_metrics_frame(metrics, caller=caller, columns=_REGION_COLUMNS)
    arrays = []
    for column in _REGION_COLUMNS:
        series = metrics[column]
        if not pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(
            series.dtype
        ):
            raise TypeError(
                f"{caller} needs a numeric {column!r} column. Got dtype {series.dtype} instead."
            )
        arrays.append(series.to_numpy(dtype=np.float64, na_value=np.nan))
    return arrays[0], arrays[1]


def region_codes(
    confidence: np.ndarray, variability: np.ndarray, thresholds: Thresholds
) -> np.ndarray:
    """Region code per sample: its position in ``REGIONS`` (0 easy, 1 ambiguous, 2 hard), -1
    where an input is NaN. The rule of :class:`Thresholds`, on plain arrays (already checked):
    the fast path of the live explorer, which recolours on every slider move.

    >>> region_codes(np.array([0.9, 0.5, 0.1]), np.array([0.0, 0.3, 0.0]), Thresholds()).tolist()
    [0, 1, 2]
    """
    codes = np.full(confidence.shape, _AMBIGUOUS, dtype=np.int8)
    steady = variability < thresholds.ambiguous_variability
    # hard first, then easy over it, so that easy wins when the two cuts coincide
    codes[steady & (confidence <= thresholds.hard_confidence)] = _HARD
    codes[steady & (confidence >= thresholds.easy_confidence)] = _EASY
    codes[np.isnan(confidence) | np.isnan(variability)] = _MISSING
    return codes


def _as_region_series(codes: np.ndarray, index: pd.Index) -> pd.Series:
    import pandas as pd

    categorical = pd.Categorical.from_codes(codes, categories=list(REGIONS))
    return pd.Series(categorical, index=index, name="region", copy=False)


def assign_regions(metrics: pd.DataFrame, thresholds: Thresholds | None = None) -> pd.Series:
    """Assign every sample to a region of the data map.

    Parameters
    ----------
    metrics : pandas.DataFrame
        The metrics table (one row per sample), with float columns ``confidence`` and
        ``variability``; other columns are ignored.
    thresholds : Thresholds or None, default=None
        The cut points; ``None`` means ``Thresholds()``. See :class:`Thresholds` for the rule.

    Returns
    -------
    pandas.Series
        Categorical with categories ``REGIONS`` (in that order, unordered), indexed like
        ``metrics`` and named ``"region"``. A sample whose confidence or variability is NaN
        (never observed) gets ``<NA>``.

    Raises
    ------
    TypeError
        If ``metrics`` is not a DataFrame, a column is not numeric, or ``thresholds`` is not
        a :class:`Thresholds`.
    ValueError
        If a required column is missing or a threshold is invalid.

    Examples
    --------
    >>> import pandas as pd
    >>> metrics = pd.DataFrame(
    ...     {"confidence": [0.9, 0.5, 0.1, 0.5], "variability": [0.05, 0.3, 0.05, 0.05]},
    ...     index=pd.Index([10, 11, 12, 13], name="id"),
    ... )
    >>> assign_regions(metrics).tolist()
    ['easy', 'ambiguous', 'hard', 'ambiguous']
    >>> assign_regions(metrics, Thresholds(easy_confidence=0.5)).tolist()
    ['easy', 'ambiguous', 'hard', 'easy']
    """
    thresholds = Thresholds.coerce(thresholds, caller="assign_regions")
    confidence, variability = map_coordinates(metrics, caller="assign_regions")
    return _as_region_series(region_codes(confidence, variability, thresholds), metrics.index)


def _codes_of_region_series(regions: pd.Series) -> np.ndarray:
    """Region codes of a Series of region names (categorical or plain strings)."""
    import pandas as pd

    dtype = regions.dtype
    if isinstance(dtype, pd.CategoricalDtype) and list(dtype.categories) == list(REGIONS):
        return regions.cat.codes.to_numpy()
    unknown = pd.unique(regions[~(regions.isin(REGIONS) | regions.isna())])
    if len(unknown):
        shown = ", ".join(show(v) for v in unknown[:5])
        raise ValueError(
            f"region_counts got region names [{shown}] that are not in REGIONS "
            f"{list(REGIONS)}. Pass the output of assign_regions, or the metrics table."
        )
    codes = pd.Categorical(regions, categories=list(REGIONS)).codes
    return np.asarray(codes)


def region_counts(
    regions_or_metrics: pd.Series | pd.DataFrame,
    thresholds: Thresholds | None = None,
    *,
    by: str | None = None,
) -> pd.Series | pd.DataFrame:
    """Count the samples in each region.

    Parameters
    ----------
    regions_or_metrics : pandas.Series or pandas.DataFrame
        Either the output of :func:`assign_regions`, or the metrics table, which is then
        split with ``thresholds``.
    thresholds : Thresholds or None, default=None
        Cut points used when a metrics table is passed; ``None`` means ``Thresholds()``.
        Must be ``None`` when a region Series is passed (it is already split).
    by : str or None, default=None
        A column of the metrics table, e.g. ``"label"``, to count regions per value of.
        Needs the metrics table.

    Returns
    -------
    pandas.Series or pandas.DataFrame
        Without ``by``: an int Series indexed by ``REGIONS`` (in order, zeros included), named
        ``"count"``. With ``by``: an int DataFrame with one row per value of that column
        (sorted) and one column per region. Samples without a region (NaN inputs) are not
        counted, so the total is ``N`` minus those.

    Raises
    ------
    TypeError
        If the input is neither a Series nor a DataFrame.
    ValueError
        If ``thresholds`` or ``by`` come with a region Series, ``by`` is not a column, or the
        Series holds names outside ``REGIONS``.

    Examples
    --------
    >>> import pandas as pd
    >>> metrics = pd.DataFrame(
    ...     {
    ...         "confidence": [0.9, 0.8, 0.1, 0.5],
    ...         "variability": [0.05, 0.3, 0.05, 0.05],
    ...         "label": [0, 1, 1, 0],
    ...     }
    ... )
    >>> region_counts(metrics).to_dict()
    {'easy': 1, 'ambiguous': 2, 'hard': 1}
    >>> region_counts(metrics, by="label")  # doctest: +NORMALIZE_WHITESPACE
    region  easy  ambiguous  hard
    label
    0          1          1     0
    1          0          1     1
    """
    import pandas as pd

    if isinstance(regions_or_metrics, pd.DataFrame):
        metrics = regions_or_metrics
        thresholds = Thresholds.coerce(thresholds, caller="region_counts")
        if by is not None and by not in metrics.columns:
            raise ValueError(
                f"The 'by' parameter of region_counts must be a column of the metrics table. "
                f"Got {show(by)} instead. Available columns: {list(metrics.columns)}."
            )
        confidence, variability = map_coordinates(metrics, caller="region_counts")
        codes = region_codes(confidence, variability, thresholds)
        groups = None if by is None else metrics[by]
    elif isinstance(regions_or_metrics, pd.Series):
        if thresholds is not None:
            raise ValueError(
                "region_counts got a region Series together with thresholds, which only apply "
                "to a metrics table. Pass the metrics table to split it with these thresholds, "
                "or drop thresholds to count the given regions."
            )
        if by is not None:
            raise ValueError(
                f"region_counts(by={by!r}) needs the metrics table, which holds that column; "
                "got a region Series instead."
            )
        codes = _codes_of_region_series(regions_or_metrics)
        groups = None
    else:
        raise TypeError(
            "The 'regions_or_metrics' parameter of region_counts must be a pandas Series "
            "(from assign_regions) or the metrics DataFrame. "
            f"Got {type(regions_or_metrics).__name__} instead."
        )
    regions_index = pd.Index(list(REGIONS), name="region")
    if groups is None:
        counts = np.bincount(codes[codes != _MISSING], minlength=len(REGIONS))
        return pd.Series(counts.astype(np.int64), index=regions_index, name="count")
    return _counts_by(codes, groups, regions_index)


def _counts_by(codes: np.ndarray, groups: pd.Series, regions_index: pd.Index) -> pd.DataFrame:
    import pandas as pd

    group_codes, group_values = pd.factorize(groups, sort=True)
    keep = (codes != _MISSING) & (group_codes >= 0)
    n_regions = len(REGIONS)
    flat = group_codes[keep].astype(np.int64) * n_regions + codes[keep]
    table = np.bincount(flat, minlength=len(group_values) * n_regions)
    return pd.DataFrame(
        table.reshape(len(group_values), n_regions).astype(np.int64),
        index=pd.Index(group_values, name=groups.name),
        columns=regions_index,
    )
