"""Find mislabeled training samples from one recorded run: score, cut, suggest.

A sample whose given label is wrong behaves in a recognisable way while a model trains: the
model gives its label a low probability (low *confidence*), keeps preferring another class (a
negative *area under the margin*), is rarely right on it (low *correctness*), or learns it late
and forgets it again (*forgetting events*). :func:`score_mislabeled` turns any of these into one
suspicion score per sample, higher meaning more likely mislabeled; :func:`suggest_cutoff` says
where to cut the ranking; :func:`suggest_labels` proposes the label the model believes in.

Everything here works on a recorded run's metrics table and needs no torch and no training;
how well the scores find flipped labels, against cleanlab's K-fold recipe, is measured by
:mod:`cartokit.detection`.

Examples
--------
>>> import numpy as np, pandas as pd
>>> metrics = pd.DataFrame(
...     {"label": [0, 1, 1], "confidence": [0.95, 0.1, 0.6], "aum": [3.0, -2.0, 0.5],
...      "correctness": [1.0, 0.0, 0.8], "el2n": [0.1, 1.2, 0.5]},
...     index=pd.Index([10, 11, 12], name="id"),
... )
>>> score_mislabeled(metrics, "aum").tolist()
[-3.0, 2.0, -0.5]
>>> scores = score_mislabeled(metrics, "aum")
>>> scores.index[scores >= suggest_cutoff(scores)].tolist()  # AUM <= 0: another class wins
[11]
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cartokit._deprecation import moved
from cartokit._validation import (
    Options,
    check_int,
    check_metrics_frame,
    check_param,
    positions_of,
)

if TYPE_CHECKING:
    from cartokit.dynamics import TrainingDynamics

__all__ = [
    "CLEANLAB_HINT",
    "DYNAMICS_METHODS",
    "METHODS",
    "score_all",
    "score_mislabeled",
    "suggest_cutoff",
    "suggest_labels",
]

# Moved to cartokit.detection; the old paths are kept for one release.
__getattr__ = moved(
    __name__,
    {
        name: f"cartokit.detection.{name}"
        for name in (
            "DetectionBenchmark",
            "benchmark_detection",
            "cross_val_probs",
            "evaluate_detection",
        )
    },
)


#: Suspicion scores by name: what each ranks by (higher score = more likely mislabeled).
METHODS: dict[str, str] = {
    "low_confidence": "1 - confidence: the mean gold-label probability (Swayamdipta et al., 2020)",
    "aum": "-AUM: minus the mean margin logit[y] - max other logit (Pleiss et al., 2020)",
    "forgetting": "forgetting events per checkpoint; never-learned samples score 1 "
    "(Toneva et al., 2019)",
    "el2n": "EL2N: the mean norm of softmax - onehot(y) (Paul et al., 2021)",
    "aleatoric": "mean p_y (1 - p_y): Data-IQ's aleatoric uncertainty (Seedat et al., 2022); it "
    "ranks ambiguous samples first, not wrongly labelled ones",
    "low_correctness": "1 - correctness: the share of checkpoints predicting another class",
    "combined": "the mean percentile rank of low_confidence, aum, el2n and low_correctness",
    "cleanlab": "cleanlab's confident learning on the run's epoch-averaged probabilities: its "
    "label issues first, each group by 1 - self-confidence (Northcutt et al., 2021)",
}

#: The methods that need only the metrics table of a recorded run.
DYNAMICS_METHODS: tuple[str, ...] = tuple(m for m in METHODS if m != "cleanlab")

#: How to install the optional cleanlab dependency.
CLEANLAB_HINT = 'pip install "cartokit[cleanlab]" (or pip install "cleanlab>=2.6")'

_COMBINED = ("low_confidence", "aum", "el2n", "low_correctness")
_NEEDS: dict[str, tuple[str, ...]] = {
    "low_confidence": ("confidence",),
    "aum": ("aum",),
    "forgetting": ("forgetting", "never_learned", "num_observed"),
    "el2n": ("el2n",),
    "aleatoric": ("aleatoric",),
    "low_correctness": ("correctness",),
    "combined": ("confidence", "aum", "el2n", "correctness"),
    "cleanlab": ("label",),
}
#: Cut-offs with a meaning of their own (flag ``score >= cutoff``); the other methods get one
#: from a two-component Gaussian mixture fitted to their scores.
_NATURAL_CUTOFFS = {
    "aum": 0.0,  # the margin is <= 0 on average: another class wins
    "low_correctness": 0.5,  # wrong at half the checkpoints or more
    "cleanlab": 1.0,  # found by confident learning
}


def _cleanlab() -> Any:
    if importlib.util.find_spec("cleanlab") is None:
        raise ImportError(
            f"The 'cleanlab' method needs the optional cleanlab package: {CLEANLAB_HINT}."
        )
    import cleanlab.filter
    import cleanlab.rank

    return cleanlab


def _check_method(method: Any, *, caller: str) -> str:
    return check_param("method", method, Options(list(METHODS)), caller=caller)


def _check_metrics(metrics: Any, method: str, *, caller: str) -> pd.DataFrame:
    check_metrics_frame(metrics, caller=caller)
    check_metrics_frame(metrics, caller=f"{caller}(method={method!r})", columns=_NEEDS[method])
    if not metrics.index.is_unique:
        raise ValueError(f"{caller}: the metrics index must hold unique sample ids.")
    return metrics


def _floats(metrics: pd.DataFrame, column: str) -> np.ndarray:
    return metrics[column].to_numpy(dtype=np.float64, na_value=np.nan)


def _mean_probs(dynamics: TrainingDynamics, wanted: pd.Index, *, caller: str) -> np.ndarray:
    if dynamics.probs is None:
        raise ValueError(
            f"{caller}(method='cleanlab') needs per-epoch probabilities, and these dynamics have "
            "none. Record with DynamicsRecorder(..., store_probs=True) (fit(..., recorder=...)), "
            "or pass pred_probs= (N, C) probabilities, e.g. from cross_val_probs."
        )
    probs = dynamics.probs[:, positions_of(dynamics.ids, wanted, caller=caller, what="dynamics")]
    # epochs where a sample was unseen hold NaN: averaged over the epochs that saw it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(probs.astype(np.float64), axis=0)
    return mean


def _check_probs(pred_probs: Any, n: int, num_classes: int | None, *, caller: str) -> np.ndarray:
    probs = np.asarray(pred_probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] != n or probs.shape[1] < 2:
        raise ValueError(
            f"The 'pred_probs' parameter of {caller} must have shape (n_samples, n_classes) = "
            f"({n}, C) with C >= 2, rows in the metrics table's order. Got shape {probs.shape}."
        )
    if num_classes is not None and probs.shape[1] < num_classes:
        raise ValueError(
            f"{caller}: pred_probs has {probs.shape[1]} columns but labels go up to "
            f"{num_classes - 1}. Give one column per class."
        )
    if not np.isfinite(probs).all() or (probs < 0).any():
        raise ValueError(f"{caller}: pred_probs must be finite and non-negative.")
    total = probs.sum(axis=1, keepdims=True)
    if (total <= 0).any():
        raise ValueError(f"{caller}: every row of pred_probs must have a positive sum.")
    return probs / total


def _pct_rank(values: np.ndarray) -> np.ndarray:
    return pd.Series(values).rank(pct=True, method="average").to_numpy()


def _score(metrics: pd.DataFrame, method: str, probs: np.ndarray | None) -> np.ndarray:
    """The suspicion score of valid input (higher = more suspicious); NaN where unseen."""
    if method == "low_confidence":
        return 1.0 - _floats(metrics, "confidence")
    if method == "aum":
        return -_floats(metrics, "aum")
    if method == "el2n":
        return _floats(metrics, "el2n")
    if method == "aleatoric":
        return _floats(metrics, "aleatoric")
    if method == "low_correctness":
        return 1.0 - _floats(metrics, "correctness")
    if method == "forgetting":
        seen = _floats(metrics, "num_observed")
        never = metrics["never_learned"].to_numpy(dtype=bool)
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = _floats(metrics, "forgetting") / seen  # at most 1/2 for a learned sample
        return np.where(seen > 0, np.where(never, 1.0, rate), np.nan)
    if method == "combined":
        parts = [_score(metrics, m, None) for m in _COMBINED]
        ranks = np.column_stack([_pct_rank(p) for p in parts])
        return ranks.mean(axis=1)
    # cleanlab: label issues (confident learning) first, each group by 1 - self-confidence
    cleanlab = _cleanlab()
    labels = metrics["label"].to_numpy(dtype=np.int64)
    issues = cleanlab.filter.find_label_issues(labels, probs, n_jobs=1)
    quality = cleanlab.rank.get_label_quality_scores(labels, probs, method="self_confidence")
    return issues.astype(np.float64) + (1.0 - quality)


def score_mislabeled(
    metrics: pd.DataFrame,
    method: str = "combined",
    *,
    dynamics: TrainingDynamics | None = None,
    pred_probs: Any = None,
) -> pd.Series:
    """A suspicion score per sample, from one recorded run: higher means more likely mislabeled.

    Parameters
    ----------
    metrics : pandas.DataFrame
        The metrics table of the run (:func:`~cartokit.compute_metrics`), indexed by sample id.
    method : str, default "combined"
        One of :data:`METHODS`:

        * ``"low_confidence"``: ``1 - confidence``, in [0, 1] (Swayamdipta et al., 2020);
        * ``"aum"``: ``-AUM``, minus the mean margin ``logit[y] - max_{k != y} logit[k]``, any
          real (Pleiss et al., NeurIPS 2020);
        * ``"forgetting"``: forgetting events per observed checkpoint, in [0, 0.5] for a sample
          learned at some point; never-learned samples score 1 (Toneva et al., ICLR 2019, count
          them as forgotten infinitely often);
        * ``"el2n"``: the mean ``||softmax - onehot(y)||_2``, in [0, sqrt(2)] (Paul et al., 2021);
        * ``"aleatoric"``: the mean ``p_y (1 - p_y)``, in [0, 0.25] (Seedat et al., 2022). It is
          highest for samples near 0.5 confidence, so it finds *ambiguous* samples; a confidently
          contradicted label scores low;
        * ``"low_correctness"``: ``1 - correctness``, in [0, 1];
        * ``"combined"``: the mean percentile rank (in (0, 1]) of ``low_confidence``, ``aum``,
          ``el2n`` and ``low_correctness``;
        * ``"cleanlab"``: confident learning (Northcutt et al., JAIR 2021) through the optional
          cleanlab package, on the run's probabilities averaged over checkpoints (or on
          ``pred_probs``): ``issue + (1 - p_y)``, in [0, 2], so that the samples confident
          learning flags (``issue = 1``) rank first.
    dynamics : TrainingDynamics, optional
        For ``"cleanlab"`` without ``pred_probs``: the run's record, with per-epoch
        probabilities (``DynamicsRecorder(..., store_probs=True)``).
    pred_probs : array-like of shape (N, C), optional
        For ``"cleanlab"``: predicted probabilities in the metrics table's row order, e.g.
        out-of-sample ones from :func:`cross_val_probs`.

    Returns
    -------
    pandas.Series
        Float scores indexed like ``metrics``, named ``method``; NaN for a sample never observed.

    Raises
    ------
    ValueError
        For an unknown method, missing columns, or ``"cleanlab"`` without probabilities.
    ImportError
        For ``"cleanlab"`` when cleanlab is not installed.

    Examples
    --------
    >>> import pandas as pd
    >>> m = pd.DataFrame({"confidence": [0.9, 0.2]}, index=["a", "b"])
    >>> score_mislabeled(m, "low_confidence").round(2).to_dict()
    {'a': 0.1, 'b': 0.8}
    """
    caller = "score_mislabeled"
    method = _check_method(method, caller=caller)
    metrics = _check_metrics(metrics, method, caller=caller)
    probs = None
    if method == "cleanlab":
        _cleanlab()
        labels = metrics["label"].to_numpy()
        top = int(labels.max()) + 1 if labels.size else None
        if pred_probs is not None:
            probs = _check_probs(pred_probs, len(metrics), top, caller=caller)
        elif dynamics is not None:
            probs = _mean_probs(dynamics, metrics.index, caller=caller)
            if not np.isfinite(probs).all():
                raise ValueError(
                    f"{caller}(method='cleanlab'): some samples were never observed, so they "
                    "have no probabilities. Drop them from the metrics table first."
                )
        else:
            raise ValueError(
                f"{caller}(method='cleanlab') needs probabilities: pass dynamics= (recorded with "
                "store_probs=True) or pred_probs=."
            )
    elif pred_probs is not None:
        raise ValueError(
            f"{caller}: pred_probs is used only by method='cleanlab'; got method={method!r}."
        )
    return pd.Series(_score(metrics, method, probs), index=metrics.index, name=method)


def score_all(
    metrics: pd.DataFrame,
    *,
    dynamics: TrainingDynamics | None = None,
    methods: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Every method's suspicion scores side by side: one column per method of
    :func:`score_mislabeled`.

    Parameters
    ----------
    metrics : pandas.DataFrame
    dynamics : TrainingDynamics, optional
        The run's record, for ``"cleanlab"``.
    methods : sequence of str, optional
        Default: every method that can be scored here: :data:`DYNAMICS_METHODS`, and
        ``"cleanlab"`` when cleanlab is installed and ``dynamics`` holds probabilities.

    Returns
    -------
    pandas.DataFrame
        Indexed like ``metrics``.

    Examples
    --------
    >>> m = pd.DataFrame({"confidence": [0.9, 0.2], "aum": [1.0, -1.0]}, index=["a", "b"])
    >>> score_all(m, methods=["low_confidence", "aum"]).round(2).to_dict("list")
    {'low_confidence': [0.1, 0.8], 'aum': [-1.0, 1.0]}
    """
    if methods is None:
        probs = dynamics is not None and dynamics.probs is not None
        with_cleanlab = probs and importlib.util.find_spec("cleanlab") is not None
        methods = [*DYNAMICS_METHODS, *(["cleanlab"] if with_cleanlab else [])]
    columns = {m: score_mislabeled(metrics, m, dynamics=dynamics) for m in methods}
    return pd.DataFrame(columns, index=metrics.index)


# ----------------------------------------------------------------------------------------------
# Cut-offs and suggested labels


def _gmm_cutoff(values: np.ndarray, seed: int) -> float:
    """Where a two-component 1-D Gaussian mixture gives the higher component half the posterior
    (the small-loss split of DivideMix, Li et al., 2020); ``inf`` when the scores do not split."""
    from sklearn.mixture import GaussianMixture

    finite = values[np.isfinite(values)]
    grid = np.unique(finite)
    if grid.size < 2:
        return float("inf")
    mixture = GaussianMixture(2, random_state=seed, reg_covar=1e-6).fit(finite[:, None])
    means = mixture.means_[:, 0]
    high, low = int(np.argmax(means)), int(np.argmin(means))
    posterior = mixture.predict_proba(grid[:, None])[:, high]
    # a wide low component can win again far out in the upper tail: cut once, above its mean
    above = (posterior >= 0.5) & (grid > means[low])
    return float(grid[above].min()) if above.any() else float("inf")


def suggest_cutoff(scores: Any, method: str | None = None, *, seed: int = 0) -> float:
    """A suggested cut-off for suspicion scores: flag the samples with ``score >= cutoff``.

    Methods with a threshold of their own use it: ``aum`` 0 (another class has the larger mean
    logit), ``low_correctness`` 0.5 (wrong at half the checkpoints or more), ``cleanlab`` 1
    (flagged by confident learning). Other scores are split by a two-component Gaussian
    mixture: the cut-off is the lowest score above the lower component's mean that the
    higher-mean component explains with posterior >= 0.5, as DivideMix (Li et al., ICLR 2020)
    splits losses. (Confidence has no such threshold: it averages the early checkpoints too,
    where clean samples are still below 0.5.)

    Parameters
    ----------
    scores : array-like or pandas.Series
        Suspicion scores, e.g. from :func:`score_mislabeled`.
    method : str, optional
        The method that made them; default the Series' name when it is a method name.
    seed : int, default 0
        Seed of the mixture's initialisation.

    Returns
    -------
    float
        ``inf`` when the scores do not split (e.g. all equal): nothing is flagged.

    Examples
    --------
    >>> import numpy as np
    >>> scores = np.r_[np.linspace(0.0, 0.2, 90), np.linspace(0.8, 1.0, 10)]
    >>> 0.2 < suggest_cutoff(scores) <= 0.8
    True
    """
    caller = "suggest_cutoff"
    if method is None and isinstance(scores, pd.Series) and scores.name in METHODS:
        method = str(scores.name)
    if method is not None:
        _check_method(method, caller=caller)
    seed = check_int("seed", seed, caller=caller, minimum=0)
    values = np.asarray(scores, dtype=np.float64).ravel()
    if method in _NATURAL_CUTOFFS:
        return _NATURAL_CUTOFFS[method]
    if values.size == 0:
        raise ValueError(f"{caller}: scores is empty.")
    return _gmm_cutoff(values, seed)


def suggest_labels(
    dyn: TrainingDynamics, *, ids: Sequence[Any] | np.ndarray | None = None, burn_in: int = 0
) -> pd.DataFrame:
    """Propose a label per sample: the class the model believed in while it trained.

    With per-epoch probabilities (``store_probs=True``) the suggestion is the argmax of the
    probabilities averaged over checkpoints, and ``support`` its mean probability; without them,
    the class predicted at most checkpoints (ties: the one predicted last), and ``support`` the
    share of checkpoints predicting it.

    Parameters
    ----------
    dyn : TrainingDynamics
    ids : sequence of sample ids, optional
        The suspects to suggest for, in the order wanted; default every sample.
    burn_in : int, default 0
        Leave out the first checkpoints (early epochs predict near chance).

    Returns
    -------
    pandas.DataFrame
        Indexed by sample id, with ``label`` (given), ``suggested_label``, ``support`` and
        ``changed`` (suggestion differs from the given label), plus ``label_name`` and
        ``suggested_name`` when class names are known.

    Examples
    --------
    >>> import numpy as np
    >>> from cartokit import TrainingDynamics
    >>> logits = np.array([[[0.0, 2.0]], [[0.0, 3.0]], [[1.0, 0.0]]])  # label 0, mostly class 1
    >>> int(suggest_labels(TrainingDynamics.from_logits(logits, [0])).loc[0, "suggested_label"])
    1
    """
    from cartokit.dynamics import TrainingDynamics

    caller = "suggest_labels"
    if not isinstance(dyn, TrainingDynamics):
        raise TypeError(
            f"The 'dyn' parameter of {caller} must be a TrainingDynamics. "
            f"Got {type(dyn).__name__} instead."
        )
    burn_in = check_int("burn_in", burn_in, caller=caller, minimum=0)
    if burn_in >= dyn.num_epochs:
        raise ValueError(
            f"The 'burn_in' parameter of {caller} must be smaller than the number of "
            f"checkpoints ({dyn.num_epochs}). Got {burn_in} instead."
        )
    if ids is None:
        positions = np.arange(dyn.num_samples)
    else:
        wanted = pd.Index(list(ids) if not isinstance(ids, np.ndarray) else ids)
        positions = positions_of(dyn.ids, wanted, caller=caller, what="dyn.ids")
    if dyn.probs is not None:
        probs = dyn.probs[burn_in:, positions].astype(np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(probs, axis=0)
        mean = np.nan_to_num(mean, nan=0.0)
        suggested = mean.argmax(axis=1)
        support = mean[np.arange(len(positions)), suggested]
    else:
        pred = dyn.pred[burn_in:, positions].astype(np.int64)
        epochs = pred.shape[0]
        counts = np.zeros((len(positions), dyn.num_classes), dtype=np.int64)
        # the last checkpoint's vote gets a tie-break bonus below one vote
        last = np.full(len(positions), -1)
        for e in range(epochs):
            seen = pred[e] >= 0
            np.add.at(counts, (np.flatnonzero(seen), pred[e][seen]), 1)
            last = np.where(seen, pred[e], last)
        tie_break = np.zeros(counts.shape)
        has_last = last >= 0
        tie_break[np.flatnonzero(has_last), last[has_last]] = 0.5
        suggested = (counts + tie_break).argmax(axis=1)
        seen_count = counts.sum(axis=1)
        chosen = counts[np.arange(len(positions)), suggested]
        support = np.divide(
            chosen, seen_count, out=np.full(len(positions), np.nan), where=seen_count > 0
        )
    labels = dyn.labels[positions]
    table = pd.DataFrame(
        {
            "label": labels,
            "suggested_label": suggested.astype(np.int64),
            "support": support.astype(np.float64),
            "changed": suggested != labels,
        },
        index=pd.Index(dyn.ids[positions], name="id"),
    )
    if dyn.class_names is not None:
        names = np.asarray(dyn.class_names, dtype=object)
        table["label_name"] = names[labels]
        table["suggested_name"] = names[suggested]
    return table
