"""Select training subsets from the data map.

Swayamdipta et al. (2020), "Dataset Cartography", EMNLP, train on the 33% most *ambiguous*
samples (highest variability), the most *easy-to-learn* (highest confidence) or the most
*hard-to-learn* (lowest confidence), and on mixtures of ambiguous and easy-to-learn samples.
This module ranks samples by any metric, takes an exact number of them (optionally within a
region of the map, or keeping the class balance), and hands back their ids; :func:`subset`
then cuts a numpy array, pandas table, torch ``Dataset`` or Hugging Face ``Dataset`` down to
those ids.

Sizes are exact: a fraction ``f`` of a table of ``N`` samples selects ``floor(f * N + 0.5)``
samples, i.e. ``f * N`` rounded half up (not Python's ``round``, which rounds half to even),
computed in floating point. Ranking uses a stable sort, so ties keep table order, and NaN
values rank last whichever the direction.

Ranking by forgetting (``"high_forgetting"``, ``"low_forgetting"`` or the ``forgetting``
column) follows Toneva et al. (2019): a sample that was never learned counts as more
forgettable than every learned one, although it has no forgetting event to count. So
never-learned samples (the ``never_learned`` column) come first for ``high_forgetting``, in
table order, and last for ``low_forgetting``, after every learned sample. A table without a
``never_learned`` column is ranked by its ``forgetting`` values as they stand (a table written
by allenai's code already holds 1000 for never-learned samples).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cartokit._validation import (
    Boolean,
    Optional,
    check_metrics_frame,
    check_param,
    check_seed,
    did_you_mean,
    first_few,
    is_real,
    positions_of,
    show,
)
from cartokit.data.split import Split
from cartokit.regions import REGIONS, Thresholds, map_coordinates, region_codes

if TYPE_CHECKING:
    from cartokit.dynamics import TrainingDynamics

__all__ = [
    "RANDOM",
    "S2L",
    "SELECTORS",
    "parse_mixture",
    "select",
    "select_mixture",
    "selection_mask",
    "subset",
]

SELECTORS: dict[str, tuple[str, bool]] = {
    # name: (column of the metrics table, highest first)
    # the paper's three subsets (Swayamdipta et al., 2020): rankings of the whole table, not the
    # regions of the map (region=...); easy and hard are high_confidence and low_confidence
    "ambiguous": ("variability", True),
    "easy": ("confidence", True),
    "hard": ("confidence", False),
    "high_confidence": ("confidence", True),
    "low_confidence": ("confidence", False),
    "high_variability": ("variability", True),
    "low_variability": ("variability", False),
    "high_correctness": ("correctness", True),
    "low_correctness": ("correctness", False),
    # forgetting events (Toneva et al., 2019); never-learned samples rank as the most forgettable
    "high_forgetting": ("forgetting", True),
    "low_forgetting": ("forgetting", False),
    # area under the margin: low AUM flags likely mislabeled samples (Pleiss et al., 2020)
    "high_aum": ("aum", True),
    "low_aum": ("aum", False),
    # EL2N score: high means hard / important for training (Paul et al., 2021)
    "high_el2n": ("el2n", True),
    "low_el2n": ("el2n", False),
    "high_aleatoric": ("aleatoric", True),
    "low_aleatoric": ("aleatoric", False),
    "high_threshold_closeness": ("threshold_closeness", True),
    "low_threshold_closeness": ("threshold_closeness", False),
}
"""Named rankings: selector name -> (column, highest_first). ``"random"`` is handled apart."""

RANDOM = "random"
"""The selector name for a uniformly random subset (seeded by ``seed``)."""

S2L = "s2l"
"""The selector name for SmallToLarge (:func:`~cartokit.s2l.select_s2l`): not a ranking of the
metrics table but an even draw over the clusters of the loss trajectories, so it needs the
dynamics (``select(metrics, "s2l", fraction, dynamics=dyn)``)."""

_FORGETTING = "forgetting"
_NEVER_LEARNED = "never_learned"

_SELECTOR_NAMES = (*SELECTORS, RANDOM)


# --------------------------------------------------------------------------- validation


def _round_half_up(x: float) -> int:
    return int(np.floor(x + 0.5))


def _smallest_fraction(n: int) -> str:
    """The smallest short decimal fraction that selects at least one of ``n`` samples."""
    exact = 0.5 / n
    step = 10.0 ** (np.floor(np.log10(exact)) - 2)  # three significant digits
    text = f"{exact:.3g}"
    while _round_half_up(float(text) * n) < 1:
        text = f"{float(text) + step:.3g}"
    return text


def _check_fraction(fraction: Any, *, subject: str) -> float:
    expected = f"{subject} must be a float in the range (0, 1]."
    if not is_real(fraction):
        raise TypeError(
            f"{expected} Got {show(fraction)} of type {type(fraction).__name__} instead."
        )
    if not 0.0 < fraction <= 1.0:  # also rejects NaN
        raise ValueError(f"{expected} Got {show(fraction)} instead.")
    return float(fraction)


def _size(fraction: float, n: int, *, subject: str) -> int:
    """``round(fraction * n)`` rounded half up; raise if that selects nothing."""
    if n == 0:
        raise ValueError("The metrics table is empty; there is nothing to select.")
    k = _round_half_up(fraction * n)
    if k == 0:
        raise ValueError(
            f"{subject} is too small: {show(fraction)} of {n} samples rounds to 0. "
            f"Use a fraction of at least {_smallest_fraction(n)} to select one sample."
        )
    return k


def _numeric_columns(metrics: pd.DataFrame) -> list[str]:
    return [c for c in metrics.columns if pd.api.types.is_numeric_dtype(metrics[c].dtype)]


def _resolve_by(
    metrics: pd.DataFrame, by: Any, lowest: bool | None, *, subject: str
) -> tuple[np.ndarray | None, bool]:
    """Ranking values (``None`` for random) and direction (``True``: highest first)."""
    if not isinstance(by, str):
        raise TypeError(
            f"{subject} must be a selector name or a column name (str). "
            f"Got {type(by).__name__} instead."
        )
    if by == RANDOM:
        if lowest is not None:
            raise ValueError(
                "The 'lowest' parameter has no meaning with by='random'; leave it as None."
            )
        return None, True
    if by == S2L:
        raise ValueError(
            f"{subject} is 's2l', which draws from the clusters of the loss trajectories rather "
            "than ranking the table: use select(metrics, 's2l', fraction, dynamics=dyn) on its "
            "own, or cartokit.select_s2l(dyn, fraction)."
        )
    if by in SELECTORS:
        column, highest = SELECTORS[by]
        if column not in metrics.columns:
            raise ValueError(
                f"The selector {by!r} ranks by the {column!r} column, which the metrics table "
                f"lacks. Available columns: {list(metrics.columns)}."
            )
    elif by in metrics.columns:
        column, highest = by, True
    else:
        raise ValueError(
            f"{subject} must be a selector name or a numeric column of the metrics table. "
            f"Got {by!r} instead. Selectors: {list(_SELECTOR_NAMES)}; numeric columns: "
            f"{_numeric_columns(metrics)}."
            f"{did_you_mean(by, [*_SELECTOR_NAMES, *_numeric_columns(metrics)])}"
        )
    series = metrics[column]
    if not pd.api.types.is_numeric_dtype(series.dtype):
        raise ValueError(
            f"The column {column!r} cannot rank samples: its dtype {series.dtype} is not numeric. "
            f"Numeric columns: {_numeric_columns(metrics)}."
        )
    if lowest is not None:
        highest = not lowest
    return _ranking_values(metrics, column), highest


def _ranking_values(metrics: pd.DataFrame, column: str) -> np.ndarray:
    """The values that rank samples by ``column``, as float64 (NaN for missing)."""
    values = metrics[column].to_numpy(dtype=np.float64, na_value=np.nan)
    if column == _FORGETTING and _NEVER_LEARNED in metrics.columns:
        # A never-learned sample has no forgetting event, yet Toneva et al. rank it as the most
        # forgettable of all. +inf exists only in this private rank key, never in the table: it
        # sorts before every count when highest first and after every count (before NaN) when
        # lowest first, and the stable sort keeps such samples in table order.
        values = np.where(_never_learned(metrics), np.inf, values)
    return values


def _never_learned(metrics: pd.DataFrame) -> np.ndarray:
    """The ``never_learned`` column as a bool mask; one line naming the fix if it is not one."""
    series = metrics[_NEVER_LEARNED]
    usable = (
        pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_integer_dtype(series.dtype)
    ) and not series.isna().any()
    if usable and pd.api.types.is_integer_dtype(series.dtype):
        usable = bool(series.isin([0, 1]).all())
    if not usable:
        raise ValueError(
            f"The 'never_learned' column of the metrics table must hold True or False for every "
            f"sample to rank by forgetting. Got dtype {series.dtype} with values "
            f"{first_few(series.unique())} instead. Recompute it with compute_metrics, or drop "
            "the column to rank by the forgetting count alone."
        )
    return series.to_numpy(dtype=bool)


def _check_region(region: Any, *, subject: str) -> int | None:
    """Position of ``region`` in ``REGIONS`` (``None`` for no region)."""
    if region is None:
        return None
    if not isinstance(region, str) or region not in REGIONS:
        raise ValueError(
            f"{subject} must be one of {list(REGIONS)} or None. Got {show(region)} instead."
        )
    return REGIONS.index(region)


def _check_options(
    metrics: pd.DataFrame, thresholds: Any, balanced: Any, seed: Any, *, caller: str
) -> tuple[Thresholds | None, np.ndarray | None, np.random.Generator]:
    """What :func:`select` and :func:`select_mixture` share, checked: the thresholds, the class
    of each row when ``balanced`` (else ``None``), and the seeded generator."""
    if thresholds is not None:
        thresholds = Thresholds.coerce(thresholds, caller=caller)
    balanced = check_param("balanced", balanced, Boolean(), caller=caller)
    seed = check_seed(seed, caller=caller)
    _check_unique_index(metrics.index, caller=caller)
    labels = _label_codes(metrics, caller=caller) if balanced else None
    return thresholds, labels, np.random.default_rng(seed)


def _check_unique_index(index: pd.Index, *, caller: str) -> None:
    if not index.is_unique:
        duplicated = index[index.duplicated()].unique()[:5].tolist()
        raise ValueError(
            f"{caller} needs unique sample ids, but the index repeats {duplicated}. "
            "Each row of the metrics table must be one sample."
        )


def _label_codes(metrics: pd.DataFrame, *, caller: str) -> np.ndarray:
    if "label" not in metrics.columns:
        raise ValueError(
            f"{caller}(balanced=True) needs the 'label' column of the metrics table to keep "
            f"class proportions. Available columns: {list(metrics.columns)}."
        )
    codes, _ = pd.factorize(metrics["label"], sort=True, use_na_sentinel=False)
    return codes


def _region_code_array(
    metrics: pd.DataFrame, thresholds: Thresholds | None, caller: str
) -> np.ndarray:
    confidence, variability = map_coordinates(metrics, caller=caller)
    return region_codes(confidence, variability, thresholds or Thresholds())


# --------------------------------------------------------------------------- ranking


def _ranked(
    pool: np.ndarray, values: np.ndarray | None, highest: bool, rng: np.random.Generator
) -> np.ndarray:
    """Positions of ``pool`` in rank order: best first, ties in table order, NaN last."""
    if values is None:
        return rng.permutation(pool)
    key = values[pool]
    if highest:
        key = -key  # NaN stays NaN, and argsort puts NaN last
    return pool[np.argsort(key, kind="stable")]


def _quotas(k: int, class_counts: np.ndarray) -> np.ndarray:
    """Split ``k`` across classes in proportion to ``class_counts`` (largest remainder).

    Exact integer arithmetic; remainder ties go to the class that sorts first.
    """
    total = int(class_counts.sum())
    scaled = k * class_counts.astype(np.int64)
    quotas, remainders = np.divmod(scaled, total)
    short = k - int(quotas.sum())
    quotas[np.argsort(-remainders, kind="stable")[:short]] += 1
    return quotas


def _take(ranked: np.ndarray, k: int, labels: np.ndarray | None) -> np.ndarray:
    """The first ``k`` ranked positions, or with ``labels`` the best of each class by quota."""
    if labels is None:
        return ranked[:k]
    classes = labels[ranked]
    counts = np.bincount(classes)
    quotas = _quotas(k, counts)
    by_class = np.argsort(classes, kind="stable")
    starts = np.cumsum(counts) - counts
    rank_in_class = np.empty(len(ranked), dtype=np.int64)
    rank_in_class[by_class] = np.arange(len(ranked)) - np.repeat(starts, counts)
    return ranked[rank_in_class < quotas[classes]]


def _select_positions(
    pool: np.ndarray,
    values: np.ndarray | None,
    highest: bool,
    k: int,
    labels: np.ndarray | None,
    rng: np.random.Generator,
) -> np.ndarray:
    if values is not None and labels is None and k < len(pool):
        return _top_k(pool, values, highest, k)
    return _take(_ranked(pool, values, highest, rng), k, labels)


def _top_k(pool: np.ndarray, values: np.ndarray, highest: bool, k: int) -> np.ndarray:
    """Same as ``_ranked(pool, ...)[:k]``, but sorts only the samples that can make the cut.

    A full stable argsort dominates the cost on a million rows; partitioning finds the k-th
    key in linear time, and sorting everything at or before it (ties included, in table
    order) gives the identical stable top k.
    """
    key = values[pool]
    if highest:
        key = -key
    kth = np.partition(key, k - 1)[k - 1]
    if np.isnan(kth):  # the cut reaches into the NaNs, which must stay in table order
        near = np.arange(len(pool))
    else:
        near = np.flatnonzero(key <= kth)
    return pool[near[np.argsort(key[near], kind="stable")[:k]]]


def _select_s2l(
    metrics: pd.DataFrame,
    fraction: Any,
    dynamics: Any,
    lowest: Any,
    region: Any,
    balanced: Any,
    seed: Any,
) -> np.ndarray:
    """``select(by="s2l")``: :func:`~cartokit.s2l.select_s2l` on the table's samples."""
    from cartokit.dynamics import TrainingDynamics
    from cartokit.s2l import select_s2l

    if not isinstance(dynamics, TrainingDynamics):
        raise TypeError(
            "select(by='s2l') clusters each sample's loss trajectory, which the metrics table "
            "does not hold: pass dynamics= (the TrainingDynamics the table was computed from). "
            f"Got {type(dynamics).__name__} instead."
        )
    if lowest is not None or region is not None or balanced:
        raise ValueError(
            "select(by='s2l') draws evenly from the clusters of the loss trajectories; it takes "
            "no lowest, region or balanced. Leave them out."
        )
    if len(dynamics.ids) != len(metrics) or not metrics.index.isin(dynamics.ids).all():
        raise ValueError(
            f"select(by='s2l'): the metrics table ({len(metrics)} samples) and the dynamics "
            f"({dynamics.num_samples} samples) must hold the same sample ids. Compute the table "
            "from these dynamics."
        )
    return select_s2l(dynamics, fraction, seed=seed)


def _per_source(metrics: pd.DataFrame, choose: Any) -> np.ndarray:
    """``choose`` applied to each source's rows of a merged map's metrics, ids source after
    source (in the order of the categories, else of first appearance)."""
    if "source" not in metrics.columns:
        raise ValueError(
            "select(per_source=True) needs the 'source' column of a merged map's metrics "
            "(compute_metrics of cartokit.merge_dynamics). Available columns: "
            f"{list(metrics.columns)}."
        )
    sources = metrics["source"]
    order = sources.cat.categories if isinstance(sources.dtype, pd.CategoricalDtype) else None
    picked = []
    for name in pd.unique(sources.dropna()) if order is None else order:
        rows = (sources == name).to_numpy()
        if not rows.any():
            continue
        try:
            picked.append(choose(metrics[rows]))
        except ValueError as err:
            raise ValueError(f"select(per_source=True), source {name!r}: {err}") from None
    return np.concatenate(picked) if picked else metrics.index.to_numpy()[:0]


# --------------------------------------------------------------------------- public API


def select(
    metrics: pd.DataFrame,
    by: str = "ambiguous",
    fraction: float | None = 0.33,
    *,
    lowest: bool | None = None,
    region: str | None = None,
    thresholds: Thresholds | None = None,
    balanced: bool = False,
    seed: int | None = 0,
    dynamics: TrainingDynamics | None = None,
    per_source: bool = False,
) -> np.ndarray:
    """Select the ids of the top ``fraction`` of samples by a metric.

    Parameters
    ----------
    metrics : pandas.DataFrame
        The metrics table, one row per sample, indexed by sample id.
    by : str, default="ambiguous"
        A name in :data:`SELECTORS` (e.g. ``"ambiguous"``: highest variability, ``"easy"``:
        highest confidence, ``"hard"``: lowest confidence), ``"random"``, or any numeric
        column of ``metrics`` (ranked highest first), or ``"s2l"`` (SmallToLarge, with
        ``dynamics=``). Ranking by forgetting puts samples that
        were never learned (``never_learned`` is True) first for ``"high_forgetting"`` and
        last for ``"low_forgetting"``, whatever their count (Toneva et al., 2019, count them as
        the most forgettable); without a ``never_learned`` column the count ranks alone.
    fraction : float or None, default=0.33
        Share of the **whole table** to select, in ``(0, 1]``: exactly
        ``floor(fraction * len(metrics) + 0.5)`` samples (rounded half up). ``None`` is
        allowed only with ``region`` and selects the whole region.
    lowest : bool or None, default=None
        Rank lowest first (``True``) or highest first (``False``); overrides the direction of
        a named selector. ``None`` keeps the selector's direction (highest first for a column).
    region : {"easy", "ambiguous", "hard"} or None, default=None
        Select only among the samples of this region (see :func:`~cartokit.regions.assign_regions`).
    thresholds : Thresholds or None, default=None
        Cut points for ``region``; ``None`` means ``Thresholds()``. Unused without ``region``:
        the selectors ``"easy"``, ``"hard"`` and ``"ambiguous"`` rank by a metric.
    balanced : bool, default=False
        Keep the class proportions of the ``label`` column among the candidates: the size is
        split across classes by the largest-remainder method (so the total stays exact), and
        each class is ranked by the same criterion.
    seed : int or None, default=0
        Seed of ``numpy.random.default_rng`` for ``by="random"``; same seed, same subset.
    dynamics : TrainingDynamics or None, default=None
        With ``by="s2l"`` only, and needed there: the record the table was computed from.
        SmallToLarge (:func:`~cartokit.s2l.select_s2l`, Yang et al., 2024) clusters its loss
        trajectories and draws ``fraction`` of the samples evenly across the clusters; it takes
        no ``lowest``, ``region`` or ``balanced``.
    per_source : bool, default=False
        Select within each source of merged maps (the ``source`` column of the metrics of
        :func:`~cartokit.merge_dynamics`), with the same settings: ``fraction`` of each
        source's samples rather than of the whole table, so that every client gives the same
        share. The ids come source after source.

    Returns
    -------
    numpy.ndarray
        The selected ids (values of ``metrics.index``), best first. With ``balanced=True``
        they are still in overall rank order.

    Raises
    ------
    TypeError
        If an argument has the wrong type (e.g. a bool or str ``fraction``).
    ValueError
        If ``fraction`` is outside ``(0, 1]`` or selects no sample, ``by`` or ``region`` is
        unknown, the column is not numeric, or the region holds fewer samples than asked for.

    Examples
    --------
    >>> import pandas as pd
    >>> metrics = pd.DataFrame(
    ...     {"confidence": [0.9, 0.2, 0.6, 0.4], "variability": [0.05, 0.1, 0.3, 0.25]},
    ...     index=pd.Index(["a", "b", "c", "d"], name="id"),
    ... )
    >>> select(metrics, "ambiguous", 0.5).tolist()
    ['c', 'd']
    >>> select(metrics, "hard", 0.25).tolist()
    ['b']
    >>> select(metrics, "confidence", 0.5, lowest=True).tolist()
    ['b', 'd']

    A never-learned sample ('z') is the most forgettable, though it has no forgetting event:

    >>> forgetting = pd.DataFrame(
    ...     {"forgetting": [2, 0, 0], "never_learned": [False, False, True]},
    ...     index=pd.Index(["x", "y", "z"], name="id"),
    ... )
    >>> select(forgetting, "high_forgetting", 2 / 3).tolist()
    ['z', 'x']
    >>> select(forgetting, "low_forgetting", 2 / 3).tolist()
    ['y', 'x']
    """
    caller = "select"
    check_metrics_frame(metrics, caller=caller)
    if check_param("per_source", per_source, Boolean(), caller=caller):
        return _per_source(
            metrics,
            lambda part: select(
                part, by, fraction, lowest=lowest, region=region, thresholds=thresholds,
                balanced=balanced, seed=seed, dynamics=dynamics,
            ),
        )  # fmt: skip
    if by == S2L:
        return _select_s2l(metrics, fraction, dynamics, lowest, region, balanced, seed)
    lowest = check_param("lowest", lowest, Optional(Boolean()), caller=caller)
    values, highest = _resolve_by(metrics, by, lowest, subject=f"The 'by' parameter of {caller}")
    region_code = _check_region(region, subject=f"The 'region' parameter of {caller}")
    if fraction is None:
        if region_code is None:
            raise ValueError(
                "The 'fraction' parameter of select may be None only together with region=, "
                "where it selects the whole region. Pass a float in the range (0, 1]."
            )
    else:
        fraction = _check_fraction(fraction, subject=f"The 'fraction' parameter of {caller}")
    thresholds, labels, rng = _check_options(metrics, thresholds, balanced, seed, caller=caller)
    n = len(metrics)
    if region_code is None:
        pool = np.arange(n)
    else:
        regions = _region_code_array(metrics, thresholds, caller)
        pool = np.flatnonzero(regions == region_code)
    if fraction is None:
        k = len(pool)
        if k == 0:
            raise ValueError(
                f"The {region!r} region is empty under {thresholds or Thresholds()}; "
                "there is nothing to select. Change thresholds or pick another region."
            )
    else:
        k = _size(fraction, n, subject=f"The 'fraction' parameter of {caller}")
        if k > len(pool):
            raise ValueError(
                f"The {region!r} region holds {len(pool)} samples, fewer than the {k} that "
                f"fraction={show(fraction)} of {n} asks for. Lower fraction, pass "
                "fraction=None to take the whole region, or change thresholds."
            )
    positions = _select_positions(pool, values, highest, k, labels, rng)
    return metrics.index.to_numpy()[positions]


_NUMBER = r"(?P<number>\d+(?:\.\d*)?|\.\d+)"
_NAME = r"(?P<name>[A-Za-z_]\w*(?:\s+in\s+[A-Za-z_]\w*)?)"
_PIECE = re.compile(rf"{_NUMBER}\s*(?P<percent>%?)\s*{_NAME}")
_EXPECTED_PIECE = (
    "Each piece must read '<percent>% <selector>' or '<fraction> <selector>', optionally "
    "followed by 'in <region>', joined by '+', e.g. '17% ambiguous + 10% easy' or "
    "'0.17 ambiguous + 0.1 random in easy'."
)


def parse_mixture(text: str) -> dict[str, float]:
    """Parse a mixture such as ``"17% ambiguous + 10% easy"`` into fractions.

    Parameters
    ----------
    text : str
        Pieces joined by ``+``. Each piece is a percentage (``17%``) or a fraction
        (``0.17``) followed by a selector or column name, optionally followed by
        ``in <region>`` to select within that region (e.g. ``10% random in easy``).

    Returns
    -------
    dict of str to float
        Part name -> fraction in ``(0, 1]``, in the order written. A part name is the selector
        with single spaces, e.g. ``"random in easy"``.

    Raises
    ------
    TypeError
        If ``text`` is not a str.
    ValueError
        If a piece does not parse, has a fraction outside ``(0, 1]``, or a part repeats.

    Examples
    --------
    >>> parse_mixture("17% ambiguous + 10% easy")
    {'ambiguous': 0.17, 'easy': 0.1}
    >>> parse_mixture("0.2 low_aum + 0.05 random in hard")
    {'low_aum': 0.2, 'random in hard': 0.05}
    """
    if not isinstance(text, str):
        raise TypeError(
            f"The 'text' parameter of parse_mixture must be a str. Got {type(text).__name__} "
            "instead."
        )
    parts: dict[str, float] = {}
    for raw in text.split("+"):
        piece = raw.strip()
        match = _PIECE.fullmatch(piece)
        if match is None:
            raise ValueError(
                f"Could not parse the mixture piece {piece!r} of {text!r}. {_EXPECTED_PIECE}"
            )
        number = float(match["number"])
        fraction = number / 100 if match["percent"] else number
        if not 0.0 < fraction <= 1.0:
            hint = (
                f" For a percentage write '{match['number']}% {match['name']}'."
                if not match["percent"] and number > 1
                else ""
            )
            raise ValueError(
                f"The mixture piece {piece!r} must have a fraction in the range (0, 1]. "
                f"Got {show(fraction)} instead.{hint}"
            )
        name = " ".join(match["name"].split())
        if name in parts:
            raise ValueError(
                f"The mixture {text!r} names {name!r} twice; give each part once with its "
                "total share."
            )
        parts[name] = fraction
    return parts


def _split_part(name: str) -> tuple[str, str | None]:
    """``"random in easy"`` -> ``("random", "easy")``; ``"easy"`` -> ``("easy", None)``."""
    by, sep, region = name.partition(" in ")
    return (by.strip(), region.strip()) if sep else (name.strip(), None)


def select_mixture(
    metrics: pd.DataFrame,
    parts: Mapping[str, float] | str,
    *,
    thresholds: Thresholds | None = None,
    balanced: bool = False,
    seed: int | None = 0,
) -> np.ndarray:
    """Select a mixture of subsets, e.g. 17% most ambiguous plus 10% most easy-to-learn.

    Parts are taken in order and never overlap: a later part skips the ids already chosen
    and takes its next best instead. Each part ``name: f`` selects exactly
    ``floor(f * len(metrics) + 0.5)`` samples, as :func:`select` does.

    Parameters
    ----------
    metrics : pandas.DataFrame
        The metrics table, one row per sample, indexed by sample id.
    parts : mapping of str to float, or str
        Part name -> fraction of the whole table, e.g. ``{"ambiguous": 0.17, "easy": 0.1}``,
        or the same as text, ``"17% ambiguous + 10% easy"`` (see :func:`parse_mixture`). A
        name is anything :func:`select` takes as ``by``, optionally followed by
        ``" in <region>"`` to select within that region (e.g. ``"random in easy"``).
    thresholds : Thresholds or None, default=None
        Cut points for parts restricted to a region; ``None`` means ``Thresholds()``. Unused
        when no part names a region.
    balanced : bool, default=False
        Keep class proportions within each part, as in :func:`select`; the proportions are
        those of the samples not chosen by earlier parts.
    seed : int or None, default=0
        Seed of the one ``numpy.random.default_rng`` that all random parts draw from in order.

    Returns
    -------
    numpy.ndarray
        The selected ids: the first part's in rank order, then the second's, and so on.

    Raises
    ------
    TypeError
        If ``parts`` is neither a mapping nor a str, or another argument has the wrong type.
    ValueError
        If a part is invalid (as in :func:`select`), the fractions sum to more than 1, or a
        region runs out of samples.

    Examples
    --------
    The two most variable samples, then the most confident of the others:

    >>> import pandas as pd
    >>> metrics = pd.DataFrame({"confidence": [0.95, 0.1, 0.5, 0.7, 0.3],
    ...                         "variability": [0.02, 0.05, 0.35, 0.2, 0.1]})
    >>> select_mixture(metrics, "40% ambiguous + 20% easy").tolist()
    [2, 3, 0]
    """
    caller = "select_mixture"
    check_metrics_frame(metrics, caller=caller)
    if isinstance(parts, str):
        parts = parse_mixture(parts)
    elif not isinstance(parts, Mapping):
        raise TypeError(
            f"The 'parts' parameter of {caller} must be a mapping such as "
            "{'ambiguous': 0.17, 'easy': 0.1} or a str such as '17% ambiguous + 10% easy'. "
            f"Got {type(parts).__name__} instead."
        )
    if len(parts) == 0:
        raise ValueError(f"The 'parts' parameter of {caller} is empty; give at least one part.")
    resolved = []
    for name, fraction in parts.items():
        if not isinstance(name, str):
            raise TypeError(f"The part names of {caller} must be str. Got {show(name)} instead.")
        subject = f"The fraction of part {name!r} of {caller}"
        fraction = _check_fraction(fraction, subject=subject)
        by, region = _split_part(name)
        values, highest = _resolve_by(metrics, by, None, subject=f"The part {name!r} of {caller}")
        region_code = _check_region(region, subject=f"The region of part {name!r} of {caller}")
        resolved.append((name, fraction, values, highest, region_code))
    total = sum(part[1] for part in resolved)
    if total > 1.0 + 1e-9:
        shown = " + ".join(show(part[1]) for part in resolved)
        raise ValueError(
            f"The fractions of {caller} must sum to at most 1. Got {shown} = {total:.6g} instead."
        )
    uses_region = any(part[4] is not None for part in resolved)
    thresholds, labels, rng = _check_options(metrics, thresholds, balanced, seed, caller=caller)
    n = len(metrics)
    sizes = [_size(part[1], n, subject=f"The fraction of part {part[0]!r}") for part in resolved]
    if sum(sizes) > n:
        raise ValueError(
            f"The parts of {caller} round to {' + '.join(map(str, sizes))} = {sum(sizes)} "
            f"samples, more than the {n} in the table. Lower a fraction."
        )
    regions = _region_code_array(metrics, thresholds, caller) if uses_region else None
    available = np.ones(n, dtype=bool)
    chosen = []
    for (name, fraction, values, highest, region_code), k in zip(resolved, sizes, strict=True):
        mask = available if region_code is None else available & (regions == region_code)
        pool = np.flatnonzero(mask)
        if k > len(pool):
            where = (
                "left" if region_code is None else f"left in the {REGIONS[region_code]!r} region"
            )
            raise ValueError(
                f"The part {name!r} of {caller} asks for {k} samples ({show(fraction)} of {n}), "
                f"but only {len(pool)} are {where} after the earlier parts. Lower its fraction "
                "or change thresholds."
            )
        positions = _select_positions(pool, values, highest, k, labels, rng)
        available[positions] = False
        chosen.append(positions)
    return metrics.index.to_numpy()[np.concatenate(chosen)]


def _as_ids(ids: Any, *, caller: str) -> np.ndarray:
    if isinstance(ids, (str, bytes)) or not hasattr(ids, "__len__"):
        raise TypeError(
            f"The 'ids' parameter of {caller} must be a 1-D sequence of sample ids, such as the "
            f"output of select. Got {type(ids).__name__} instead."
        )
    array = ids.to_numpy() if isinstance(ids, (pd.Index, pd.Series)) else np.asarray(ids)
    if array.ndim != 1:
        raise ValueError(
            f"The 'ids' parameter of {caller} must be 1-D. Got shape {array.shape} instead."
        )
    return array


def selection_mask(
    metrics_or_index: pd.DataFrame | pd.Series | pd.Index | Sequence[Any] | np.ndarray,
    ids: Sequence[Any] | np.ndarray,
) -> np.ndarray:
    """Boolean mask, in table order, of the rows whose id is in ``ids``.

    Parameters
    ----------
    metrics_or_index : pandas.DataFrame, pandas.Series, pandas.Index or array-like
        The metrics table (its index is used), a Series indexed by id, or the ids themselves.
    ids : array-like
        Selected sample ids, e.g. from :func:`select`. Order and repeats do not matter.

    Returns
    -------
    numpy.ndarray of bool
        ``mask[i]`` is True when row ``i`` is selected.

    Raises
    ------
    ValueError
        If an id is not in the index, or the index repeats an id.

    Examples
    --------
    >>> import pandas as pd
    >>> selection_mask(pd.Index(["a", "b", "c"]), ["c", "a"]).tolist()
    [True, False, True]
    """
    caller = "selection_mask"
    if isinstance(metrics_or_index, (pd.DataFrame, pd.Series)):
        index = metrics_or_index.index
    elif isinstance(metrics_or_index, pd.Index):
        index = metrics_or_index
    else:
        index = pd.Index(metrics_or_index)
    _check_unique_index(index, caller=caller)
    positions = positions_of(index, _as_ids(ids, caller=caller), caller=caller, what="the index")
    mask = np.zeros(len(index), dtype=bool)
    mask[positions] = True
    return mask


def _row_positions(n_rows: int, ids: np.ndarray, order: Any, *, caller: str) -> np.ndarray:
    """Row positions in ``data`` of ``ids`` (rows are ids themselves when ``order`` is None)."""
    if order is not None:
        order_index = order if isinstance(order, pd.Index) else pd.Index(order)
        if len(order_index) != n_rows:
            raise ValueError(
                f"The 'order' parameter of {caller} must give one sample id per row of data: "
                f"data has {n_rows} rows, but order has {len(order_index)} ids."
            )
        _check_unique_index(order_index, caller=caller)
        return positions_of(order_index, ids, caller=caller, what="the 'order' ids")
    if len(ids) == 0:
        return np.empty(0, dtype=np.intp)
    if not pd.api.types.is_integer_dtype(pd.Index(ids).dtype):
        raise ValueError(
            f"{caller}: the ids are of type {type(ids[0]).__name__}, but without order= they must "
            "be row positions of data (ints). Pass order=metrics.index (the sample id of each "
            "row of data) to find each id's row."
        )
    positions = ids.astype(np.intp)
    outside = (positions < 0) | (positions >= n_rows)
    if outside.any():
        raise ValueError(
            f"{caller}: {int(outside.sum())} of the {len(ids)} ids are not row positions of "
            f"data (0 to {n_rows - 1}), e.g. {first_few(ids[outside])}. If the ids are not row "
            "positions, pass order=metrics.index."
        )
    return positions


def subset(data: Any, ids: Sequence[Any] | np.ndarray, *, order: Any = None) -> Any:
    """Cut ``data`` down to the rows of the selected ids, in the order of ``ids``.

    Parameters
    ----------
    data : Split, numpy array, pandas object, torch Dataset or Tensor, datasets.Dataset, list, tuple
        The training data, one row (item) per sample.
    ids : array-like
        Selected sample ids, e.g. from :func:`select`.
    order : array-like or None, default=None
        The sample id of each row of ``data``, e.g. ``metrics.index`` when the metrics table
        lists samples in data order. ``None`` means the ids are row positions
        (``range(len(data))``), except for a :class:`~cartokit.data.Split`, which knows its
        own ids (``split.ids``).

    Returns
    -------
    object
        Of the same kind as ``data``: ``data.subset(positions)`` for a Split,
        ``data[positions]`` for a numpy array or torch Tensor,
        ``data.iloc[positions]`` for pandas, ``torch.utils.data.Subset`` for a torch
        ``Dataset``, ``data.select(positions)`` for a Hugging Face ``datasets.Dataset`` (any
        object with ``select`` and ``column_names``), a list for a list, a tuple for a tuple.

    Raises
    ------
    TypeError
        If ``data`` is of an unsupported type.
    ValueError
        If an id is not found, the ids are not row positions and ``order`` is missing, or
        ``order`` does not match ``data``.

    Examples
    --------
    >>> import numpy as np
    >>> subset(np.array([10, 11, 12, 13]), [3, 1]).tolist()
    [13, 11]
    >>> subset(["x", "y", "z"], ["c", "a"], order=["a", "b", "c"])
    ['z', 'x']
    >>> from cartokit.data import from_arrays
    >>> split = from_arrays(np.eye(3), [0, 1, 0], ids=["a", "b", "c"])
    >>> subset(split, ["c", "a"]).ids.tolist()
    ['c', 'a']
    """
    caller = "subset"
    ids_array = _as_ids(ids, caller=caller)
    torch = sys.modules.get("torch")  # data can only be a torch object if torch is imported
    kind = None
    if isinstance(data, Split):
        kind = "split"
        order = data.ids if order is None else order
    elif isinstance(data, (pd.DataFrame, pd.Series)):
        kind = "pandas"
    elif isinstance(data, np.ndarray):
        kind = "numpy"
    elif torch is not None and isinstance(data, torch.Tensor):
        kind = "tensor"
    elif torch is not None and isinstance(data, torch.utils.data.IterableDataset):
        raise TypeError(
            f"{caller} cannot index a torch IterableDataset; it has no random access. "
            "Use a map-style torch Dataset instead."
        )
    elif torch is not None and isinstance(data, torch.utils.data.Dataset):
        kind = "torch"
    elif hasattr(data, "select") and hasattr(data, "column_names"):
        kind = "hf"
    elif isinstance(data, (list, tuple)):
        kind = "sequence"
    else:
        raise TypeError(
            f"The 'data' parameter of {caller} must be a cartokit Split, numpy array, pandas "
            "DataFrame or Series, torch Dataset or Tensor, Hugging Face datasets.Dataset, list or "
            "tuple. "
            f"Got {type(data).__name__} instead."
        )
    if kind == "torch" and not hasattr(data, "__len__"):
        raise TypeError(f"{caller} needs a torch Dataset with __len__ to check the ids.")
    positions = _row_positions(len(data), ids_array, order, caller=caller)
    if kind == "split":
        return data.subset(positions)
    if kind == "pandas":
        return data.iloc[positions]
    if kind == "numpy":
        return data[positions]
    if kind == "tensor":
        return data[torch.from_numpy(positions.astype(np.int64))]
    if kind == "torch":
        return torch.utils.data.Subset(data, positions.tolist())
    if kind == "hf":
        return data.select(positions.tolist())
    items = [data[i] for i in positions]
    return tuple(items) if isinstance(data, tuple) else items
