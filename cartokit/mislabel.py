"""Find mislabeled training samples from one recorded run: score, cut, suggest, benchmark.

A sample whose given label is wrong behaves in a recognisable way while a model trains: the
model gives its label a low probability (low *confidence*), keeps preferring another class (a
negative *area under the margin*), is rarely right on it (low *correctness*), or learns it late
and forgets it again (*forgetting events*). :func:`score_mislabeled` turns any of these into one
suspicion score per sample, higher meaning more likely mislabeled; :func:`suggest_cutoff` says
where to cut the ranking; :func:`suggest_labels` proposes the label the model believes in.

:func:`benchmark_detection` measures how well each score finds labels that it flipped itself
(seeded symmetric and class-dependent noise), from a single recorded training run, against
cleanlab's confident learning on out-of-sample probabilities from K-fold cross-validation (the
way cleanlab's documentation recommends, at K trainings), and reports what each needed to train.
Its headline (:meth:`DetectionBenchmark.compare`) is one method named in advance, the combined
score by default, against the K-fold result; the full table keeps every method.

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
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cartokit._validation import check_int, first_few

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from torch import nn

    from cartokit.data import DataBundle, Split
    from cartokit.dynamics import TrainingDynamics

__all__ = [
    "CLEANLAB_HINT",
    "DYNAMICS_METHODS",
    "METHODS",
    "DetectionBenchmark",
    "benchmark_detection",
    "cross_val_probs",
    "evaluate_detection",
    "score_mislabeled",
    "suggest_cutoff",
    "suggest_labels",
]

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


def _has_cleanlab() -> bool:
    return importlib.util.find_spec("cleanlab") is not None


def _check_method(method: Any, *, caller: str) -> str:
    if method not in METHODS:
        raise ValueError(
            f"The 'method' parameter of {caller} must be one of {list(METHODS)}. "
            f"Got {method!r} instead."
        )
    return method


def _check_metrics(metrics: Any, method: str, *, caller: str) -> pd.DataFrame:
    if not isinstance(metrics, pd.DataFrame):
        raise TypeError(
            f"The 'metrics' parameter of {caller} must be a pandas DataFrame, such as the output "
            f"of compute_metrics. Got {type(metrics).__name__} instead."
        )
    missing = [c for c in _NEEDS[method] if c not in metrics.columns]
    if missing:
        raise ValueError(
            f"{caller}(method={method!r}) needs the columns {list(_NEEDS[method])} of the metrics "
            f"table; missing: {missing}. Compute the table with compute_metrics."
        )
    if not metrics.index.is_unique:
        raise ValueError(f"{caller}: the metrics index must hold unique sample ids.")
    return metrics


def _floats(metrics: pd.DataFrame, column: str) -> np.ndarray:
    return metrics[column].to_numpy(dtype=np.float64, na_value=np.nan)


def _positions(
    ids: np.ndarray | pd.Index, wanted: pd.Index, *, caller: str, what: str
) -> np.ndarray:
    """Positions in ``ids`` of every id of ``wanted``; raise naming the missing ones."""
    positions = pd.Index(ids).get_indexer(wanted)
    if (positions < 0).any():
        missing = wanted[positions < 0]
        raise ValueError(
            f"{caller}: {len(missing)} sample ids of the metrics table are not in {what}, e.g. "
            f"{first_few(list(missing))}. Pass the {what} of the same run."
        )
    return positions


def _mean_probs(dynamics: TrainingDynamics, wanted: pd.Index, *, caller: str) -> np.ndarray:
    if dynamics.probs is None:
        raise ValueError(
            f"{caller}(method='cleanlab') needs per-epoch probabilities, and these dynamics have "
            "none. Record with DynamicsRecorder(..., store_probs=True) (fit(..., recorder=...)), "
            "or pass pred_probs= (N, C) probabilities, e.g. from cross_val_probs."
        )
    probs = dynamics.probs[:, _positions(dynamics.ids, wanted, caller=caller, what="dynamics")]
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
        positions = _positions(dyn.ids, wanted, caller=caller, what="dyn.ids")
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


# ----------------------------------------------------------------------------------------------
# Detection quality


def _ranked_values(scores: np.ndarray) -> np.ndarray:
    """Scores with NaN moved below every real score (a never-observed sample ranks last)."""
    finite = scores[np.isfinite(scores)]
    floor = (finite.min() - 1.0) if finite.size else 0.0
    return np.where(np.isnan(scores), floor, scores)


def evaluate_detection(
    scores: Any, flipped: Any, *, k: int | None = None, cutoff: float | None = None
) -> dict[str, float]:
    """How well suspicion scores find the truly mislabeled samples.

    Parameters
    ----------
    scores : array-like or pandas.Series
        Higher = more suspicious; NaN ranks last.
    flipped : array-like of bool or pandas.Series
        Which samples are mislabeled. Two Series are aligned by index.
    k : int, optional
        For precision@k and recall@k: the top ``k`` by score (stable order on ties). Default:
        the number of mislabeled samples, where precision@k equals recall@k.
    cutoff : float, optional
        Also report the samples flagged by ``score >= cutoff``.

    Returns
    -------
    dict
        ``auroc`` and ``average_precision`` (scikit-learn's ``roc_auc_score`` and
        ``average_precision_score``), ``k``, ``precision_at_k``, ``recall_at_k``; with
        ``cutoff``: ``cutoff``, ``flagged``, ``precision_at_cutoff`` (NaN when nothing is
        flagged), ``recall_at_cutoff``.

    Examples
    --------
    >>> r = evaluate_detection([0.9, 0.8, 0.1, 0.2], [True, False, False, True])
    >>> r["auroc"], r["precision_at_k"]
    (0.75, 0.5)
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    caller = "evaluate_detection"
    if isinstance(scores, pd.Series) and isinstance(flipped, pd.Series):
        if not scores.index.equals(flipped.index):
            flipped = flipped.reindex(scores.index)
            if flipped.isna().any():
                raise ValueError(
                    f"{caller}: {int(flipped.isna().sum())} ids of scores are not in flipped."
                )
    values = np.asarray(scores, dtype=np.float64).ravel()
    truth = np.asarray(flipped).astype(bool).ravel()
    if values.shape != truth.shape:
        raise ValueError(
            f"{caller}: scores and flipped must have one value per sample. Got {values.size} "
            f"scores and {truth.size} flags."
        )
    positives = int(truth.sum())
    if positives == 0 or positives == truth.size:
        raise ValueError(
            f"{caller}: flipped must mark some samples but not all ({positives} of {truth.size} "
            "are marked); AUROC needs both kinds."
        )
    if k is None:
        k = positives
    k = check_int("k", k, caller=caller, minimum=1)
    if k > truth.size:
        raise ValueError(
            f"The 'k' parameter of {caller} must be an int in [1, {truth.size}]. Got {k} instead."
        )
    ranked = _ranked_values(values)
    top = np.argsort(-ranked, kind="stable")[:k]
    hits = int(truth[top].sum())
    result = {
        "auroc": float(roc_auc_score(truth, ranked)),
        "average_precision": float(average_precision_score(truth, ranked)),
        "k": k,
        "precision_at_k": hits / k,
        "recall_at_k": hits / positives,
    }
    if cutoff is not None:
        flagged = np.isfinite(values) & (values >= cutoff)
        count = int(flagged.sum())
        found = int((flagged & truth).sum())
        result.update(
            cutoff=float(cutoff),
            flagged=count,
            precision_at_cutoff=found / count if count else float("nan"),
            recall_at_cutoff=found / positives,
        )
    return result


# ----------------------------------------------------------------------------------------------
# The benchmark


def cross_val_probs(
    make_model: Callable[[Split], nn.Module],
    data: Split,
    *,
    folds: int = 5,
    seed: int = 0,
    **fit_options: Any,
) -> tuple[np.ndarray, dict[str, float]]:
    """Out-of-sample predicted probabilities from stratified K-fold cross-validation.

    What cleanlab's documentation recommends feeding confident learning: each sample's
    probabilities come from a model that never trained on it. Costs ``folds`` trainings.

    Parameters
    ----------
    make_model : callable
        ``make_model(split) -> torch.nn.Module``, a fresh model for a training split.
    data : Split
    folds : int, default 5
    seed : int, default 0
        Seeds the fold split and each fold's :func:`~cartokit.fit`.
    **fit_options
        Passed to :func:`~cartokit.fit` (``epochs``, ``batch_size``, ``lr``, ...).

    Returns
    -------
    probs : numpy.ndarray of shape (N, C)
        In ``data``'s row order.
    cost : dict
        ``trainings``, ``train_seconds`` (wall time of the trainings and the held-out
        predictions), ``train_cpu_seconds`` (this process's CPU time, steadier on a shared
        machine) and ``sample_epochs`` (training samples times epochs, summed over folds).
    """
    import torch
    from sklearn.model_selection import StratifiedKFold

    from cartokit.distillation import predict_logits
    from cartokit.train import fit

    caller = "cross_val_probs"
    folds = check_int("folds", folds, caller=caller, minimum=2)
    seed = check_int("seed", seed, caller=caller, minimum=0)
    counts = np.bincount(data.labels, minlength=data.num_classes)
    if counts[counts > 0].min() < folds:
        raise ValueError(
            f"The 'folds' parameter of {caller} must be at most the size of the smallest class "
            f"({int(counts[counts > 0].min())}). Got {folds} instead."
        )
    epochs = fit_options.get("epochs", 10)
    probs = np.zeros((len(data), data.num_classes))
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    started, cpu = time.perf_counter(), time.process_time()
    sample_epochs = 0
    for train_rows, held_rows in splitter.split(np.zeros(len(data)), data.labels):
        part = data.subset(train_rows, name=f"{data.name}[fold]")
        options = {"progress": False, "record": False, "seed": seed, **fit_options}
        model = fit(make_model(part), part, **options).model
        logits = predict_logits(model, data.subset(held_rows))
        probs[held_rows] = torch.softmax(torch.as_tensor(logits, dtype=torch.float64), 1).numpy()
        sample_epochs += len(train_rows) * epochs
    cost = {
        "trainings": folds,
        "train_seconds": time.perf_counter() - started,
        "train_cpu_seconds": time.process_time() - cpu,
        "sample_epochs": sample_epochs,
    }
    return probs, cost


@dataclass
class DetectionBenchmark:
    """What :func:`benchmark_detection` returns.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per noise setting and method: ``setting``, ``method``, ``approach``
        (``"single run"`` or ``"K-fold"``), ``flipped``, ``auroc``, ``average_precision``,
        ``k``, ``precision_at_k``, ``recall_at_k`` (k = the number of flipped labels),
        ``cutoff``, ``flagged``, ``precision_at_cutoff``, ``recall_at_cutoff``, and the
        compute behind the scores: ``trainings``, ``train_seconds``, ``train_cpu_seconds``,
        ``sample_epochs``.
    scores : dict of str to pandas.DataFrame
        Per setting: every method's scores (columns), ``flipped``, indexed by sample id.
    runs : pandas.DataFrame
        Per setting: samples, flipped labels, the single run's last training accuracy on the
        noisy labels and, with test data, its test accuracy.
    """

    table: pd.DataFrame
    scores: dict[str, pd.DataFrame]
    runs: pd.DataFrame
    folds: int = 0
    settings: list[str] = field(default_factory=list)

    def compare(self, method: str = "combined", *, tolerance: float = 0.005) -> pd.DataFrame:
        """Per setting: one single-run method, named in advance, against cleanlab's K-fold result.

        The method is fixed before the results are seen, by default ``"combined"``
        (:func:`score_mislabeled`'s default, the ranking the review panel shows): the best of
        several methods, picked per setting and per measure after scoring them on the same data,
        would flatter the single run. :attr:`table` keeps every method's figures beside it.

        Columns: ``method``, its ``auroc`` and ``precision_at_k``, the K-fold ``kfold_auroc``
        and ``kfold_precision_at_k``, ``as_good`` (both at least the K-fold figures, less
        ``tolerance``), and the compute ratios single run / K-fold: ``trainings_ratio``,
        ``seconds_ratio``, ``cpu_seconds_ratio``, ``sample_epochs_ratio``. Empty without a
        K-fold baseline.

        Examples
        --------
        >>> import pandas as pd
        >>> cost = {"trainings": 1, "train_seconds": 1.0, "train_cpu_seconds": 1.0,
        ...         "sample_epochs": 10}
        >>> table = pd.DataFrame([
        ...     {"setting": "s", "method": "aum", "approach": "single run", "auroc": 0.99,
        ...      "precision_at_k": 0.9, **cost},
        ...     {"setting": "s", "method": "combined", "approach": "single run", "auroc": 0.95,
        ...      "precision_at_k": 0.8, **cost},
        ...     {"setting": "s", "method": "cleanlab (5-fold)", "approach": "K-fold",
        ...      "auroc": 0.97, "precision_at_k": 0.85, **{**cost, "trainings": 5}},
        ... ])
        >>> row = DetectionBenchmark(table, {}, pd.DataFrame()).compare().loc["s"]
        >>> row["method"], float(row["auroc"]), bool(row["as_good"])  # not aum, the best here
        ('combined', 0.95, False)
        """
        caller = "DetectionBenchmark.compare"
        method = _check_method(method, caller=caller)
        table = self.table
        if table.empty or not (table["approach"] == "K-fold").any():
            return pd.DataFrame()
        scored = set(table.loc[table["approach"] == "single run", "method"])
        if method not in scored:
            raise ValueError(
                f"{caller}: the method {method!r} was not scored in this benchmark; scored: "
                f"{sorted(scored)}. Pass one of them, or run benchmark_detection with it in "
                "methods=."
            )
        rows = []
        for setting, part in self.table.groupby("setting", sort=False):
            single = part[(part["approach"] == "single run") & (part["method"] == method)]
            kfold = part[part["approach"] == "K-fold"]
            if single.empty or kfold.empty:
                continue
            run, ref = single.iloc[0], kfold.iloc[0]
            rows.append(
                {
                    "setting": setting,
                    "method": method,
                    "auroc": run["auroc"],
                    "kfold_auroc": ref["auroc"],
                    "precision_at_k": run["precision_at_k"],
                    "kfold_precision_at_k": ref["precision_at_k"],
                    "as_good": bool(
                        run["auroc"] >= ref["auroc"] - tolerance
                        and run["precision_at_k"] >= ref["precision_at_k"] - tolerance
                    ),
                    "trainings_ratio": run["trainings"] / ref["trainings"],
                    "seconds_ratio": run["train_seconds"] / ref["train_seconds"],
                    "cpu_seconds_ratio": run["train_cpu_seconds"] / ref["train_cpu_seconds"],
                    "sample_epochs_ratio": run["sample_epochs"] / ref["sample_epochs"],
                }
            )
        return pd.DataFrame(rows).set_index("setting") if rows else pd.DataFrame()

    def plot(self, *, path: str | os.PathLike[str] | None = None) -> Figure:
        """Precision-recall curves: one panel per noise setting, one line per method."""
        from sklearn.metrics import precision_recall_curve

        from cartokit.plot._style import (
            CLASS_COLORS,
            NotebookFigure,
            check_figure_path,
            save_figure,
        )

        target = check_figure_path(path, caller="DetectionBenchmark.plot")
        settings = list(self.scores)
        fig = NotebookFigure(figsize=(4.2 * len(settings), 3.9), layout="constrained")
        axes = fig.subplots(1, len(settings), squeeze=False)[0]
        palette = CLASS_COLORS
        for ax, setting in zip(axes, settings):
            frame = self.scores[setting]
            truth = frame["flipped"].to_numpy(dtype=bool)
            rows = self.table[self.table["setting"] == setting].set_index("method")
            for i, column in enumerate(c for c in frame.columns if c != "flipped"):
                precision, recall, _ = precision_recall_curve(
                    truth, _ranked_values(frame[column].to_numpy(dtype=np.float64))
                )
                kfold = rows.loc[column, "approach"] == "K-fold"
                ax.plot(
                    recall, precision, lw=1.8 if kfold else 1.3, ls="--" if kfold else "-",
                    color=palette[i % len(palette)],
                    label=f"{column} (AP {rows.loc[column, 'average_precision']:.2f})",
                )  # fmt: skip
            ax.axhline(truth.mean(), color="#999999", lw=0.8, ls=":")
            ax.set_title(f"{setting}: {int(truth.sum())} flipped", fontsize=10)
            ax.set_xlabel("recall")
            ax.set_xlim(0, 1.01)
            ax.set_ylim(0, 1.02)
            ax.spines[["top", "right"]].set_visible(False)
            ax.legend(fontsize=7, frameon=False, loc="lower left")
        axes[0].set_ylabel("precision")
        save_figure(fig, target)
        return fig


def _default_noise(num_classes: int, seed: int) -> dict[str, dict[str, Any]]:
    from cartokit.noise import class_dependent_transition

    return {
        "symmetric 10%": {"rate": 0.1},
        "symmetric 30%": {"rate": 0.3},
        "class-dependent 20%": {
            "transition": class_dependent_transition(num_classes, 0.2, seed=seed)
        },
    }


def _check_noise(noise: Any, num_classes: int, seed: int, *, caller: str) -> dict[str, dict]:
    if noise is None:
        return _default_noise(num_classes, seed)
    if not isinstance(noise, Mapping) or not noise:
        raise TypeError(
            f"The 'noise' parameter of {caller} must be a non-empty dict from setting names to "
            "{'rate': float} or {'transition': (C, C) matrix}, or None for the default settings. "
            f"Got {noise!r} instead."
        )
    for name, spec in noise.items():
        if not isinstance(spec, Mapping) or set(spec) not in ({"rate"}, {"transition"}):
            raise ValueError(
                f"The noise setting {name!r} of {caller} must be {{'rate': float}} or "
                f"{{'transition': matrix}}. Got {spec!r} instead."
            )
    return {str(k): dict(v) for k, v in noise.items()}


def benchmark_detection(
    data: Split | DataBundle,
    *,
    make_model: Callable[[Split], nn.Module] | None = None,
    noise: Mapping[str, Mapping[str, Any]] | None = None,
    methods: Sequence[str] | None = None,
    folds: int | None = 5,
    epochs: int = 20,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = False,
) -> DetectionBenchmark:
    """Inject seeded label noise, train once while recording, and score every detector.

    For each noise setting:

    1. flip labels of the training split with :func:`~cartokit.inject_noise` (seeded);
    2. train one model with :func:`~cartokit.fit`, recording its dynamics with per-epoch
       probabilities, and score the samples with every method of :func:`score_mislabeled`: one
       training for all of them;
    3. with ``folds``: cleanlab's recommended recipe, confident learning on out-of-sample
       probabilities from ``folds``-fold cross-validation (:func:`cross_val_probs`), at
       ``folds`` trainings;
    4. evaluate each score against the flipped labels (:func:`evaluate_detection`): AUROC,
       average precision, precision@k and recall@k with k the number of flipped labels, and
       the samples flagged by :func:`suggest_cutoff`.

    Parameters
    ----------
    data : Split or DataBundle
        The clean training split (a bundle's ``train``; its ``test`` is then scored too).
    make_model : callable, optional
        ``make_model(split) -> torch.nn.Module``, a fresh model each call. Default: a seeded
        :class:`~cartokit.MLP` (array inputs only; for text, embed first, see
        :func:`cartokit.pipeline.model_data`).
    noise : dict, optional
        Setting name -> ``{"rate": r}`` (symmetric: ``round(r N)`` labels moved to another class
        uniformly) or ``{"transition": T}`` (class-dependent). Default: symmetric 10 % and 30 %,
        and class-dependent 20 % from :func:`~cartokit.noise.class_dependent_transition`.
    methods : sequence of str, optional
        Single-run methods to score; default all of :data:`METHODS` (``"cleanlab"`` only when
        cleanlab is installed).
    folds : int or None, default 5
        Folds of the cleanlab baseline; ``None`` skips it. Skipped with a warning when cleanlab
        is not installed.
    epochs, batch_size, lr : training options of every training, single run and folds alike.
    seed : int, default 0
        Seeds the noise, the training and the folds.
    progress : bool, default False

    Returns
    -------
    DetectionBenchmark
        ``.table`` (every method), ``.scores``, ``.runs``, ``.compare()`` and ``.plot()``. The
        headline, ``.compare()``, reports one method named before the results are seen (by
        default ``"combined"``) against the K-fold baseline, not the best method found after
        the fact.
    """
    from cartokit.data import DataBundle, Split
    from cartokit.distillation import predict_logits
    from cartokit.metrics import compute_metrics
    from cartokit.models import MLP
    from cartokit.noise import inject_noise
    from cartokit.recorder import DynamicsRecorder
    from cartokit.train import fit

    caller = "benchmark_detection"
    test = None
    if isinstance(data, DataBundle):
        data, test = data.train, data.test
    if not isinstance(data, Split):
        raise TypeError(
            f"The 'data' parameter of {caller} must be a cartokit Split or DataBundle. "
            f"Got {type(data).__name__} instead."
        )
    seed = check_int("seed", seed, caller=caller, minimum=0)
    epochs = check_int("epochs", epochs, caller=caller, minimum=2)
    settings = _check_noise(noise, data.num_classes, seed, caller=caller)
    if methods is None:
        methods = [m for m in METHODS if m != "cleanlab" or _has_cleanlab()]
    methods = [_check_method(m, caller=caller) for m in methods]
    if "cleanlab" in methods:
        _cleanlab()
    if folds is not None:
        folds = check_int("folds", folds, caller=caller, minimum=2)
        if not _has_cleanlab():
            warnings.warn(
                f"{caller}: cleanlab is not installed, so the K-fold baseline is skipped. "
                f"Install it with {CLEANLAB_HINT}.",
                UserWarning,
                stacklevel=2,
            )
            folds = None
    if make_model is None:
        if data.kind == "text":
            raise ValueError(
                f"{caller}: the default model (an MLP) needs array inputs, and {data.name!r} "
                "holds text. Pass make_model=, or embed the texts first "
                "(cartokit.pipeline.model_data(bundle, model='minilm'))."
            )

        def make_model(split: Split) -> nn.Module:
            return MLP.from_split(split, seed=seed)

    fit_options = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed}
    # untimed warm-up: one-off start-up costs (allocator, kernels) must not land on one method
    fit(make_model(data), data, **{**fit_options, "epochs": 1, "record": False, "progress": False})
    rows: list[dict[str, Any]] = []
    all_scores: dict[str, pd.DataFrame] = {}
    runs = []
    for name, spec in settings.items():
        noisy = inject_noise(data, seed=seed, **spec)
        flipped = noisy.frame["flipped"].to_numpy(dtype=bool)
        if not flipped.any():
            raise ValueError(f"{caller}: the noise setting {name!r} flipped no label.")
        recorder = DynamicsRecorder(
            len(noisy),
            noisy.num_classes,
            sample_ids=noisy.ids,
            class_names=noisy.class_names,
            store_probs=True,
        )
        started, cpu = time.perf_counter(), time.process_time()
        result = fit(make_model(noisy), noisy, recorder=recorder, progress=progress, **fit_options)
        single_cost = {
            "trainings": 1,
            "train_seconds": time.perf_counter() - started,
            "train_cpu_seconds": time.process_time() - cpu,
            "sample_epochs": len(noisy) * epochs,
        }
        metrics = compute_metrics(result.dynamics)
        run = {
            "setting": name,
            "samples": len(noisy),
            "flipped": int(flipped.sum()),
            "train_accuracy": float(result.history["train_accuracy"].iloc[-1]),
        }
        if test is not None:
            predictions = predict_logits(result.model, test).argmax(axis=1)
            run["test_accuracy"] = float((predictions == test.labels).mean())
        runs.append(run)
        scores = {}
        for method in methods:
            scores[method] = score_mislabeled(metrics, method, dynamics=result.dynamics)
            rows.append(
                _row(name, method, method, "single run", scores[method], flipped, single_cost)
            )
        if folds is not None:
            probs, kfold_cost = cross_val_probs(make_model, noisy, folds=folds, **fit_options)
            column = f"cleanlab ({folds}-fold)"
            scores[column] = score_mislabeled(metrics, "cleanlab", pred_probs=probs)
            rows.append(
                _row(name, column, "cleanlab", "K-fold", scores[column], flipped, kfold_cost)
            )
        frame = pd.DataFrame({k: v.to_numpy() for k, v in scores.items()}, index=metrics.index)
        frame["flipped"] = flipped
        all_scores[name] = frame
    return DetectionBenchmark(
        table=pd.DataFrame(rows),
        scores=all_scores,
        runs=pd.DataFrame(runs).set_index("setting"),
        folds=folds or 0,
        settings=list(settings),
    )


def _row(
    setting: str,
    column: str,
    method: str,
    approach: str,
    scores: pd.Series,
    flipped: np.ndarray,
    cost: Mapping[str, float],
) -> dict[str, Any]:
    cutoff = suggest_cutoff(scores.to_numpy(), method)
    quality = evaluate_detection(scores.to_numpy(), flipped, cutoff=cutoff)
    return {
        "setting": setting,
        "method": column,
        "approach": approach,
        "flipped": int(flipped.sum()),
        **quality,
        **cost,
    }
