"""Small-to-large data selection: :func:`select_s2l`.

SmallToLarge (S2L; Yang, Mishra, Chiang & Mirzasoleiman, "SmallToLarge (S2L): Scalable Data
Selection for Fine-tuning Large Language Models by Summarizing Training Trajectories of Small
Models", NeurIPS 2024) chooses the training set of a large model from the training dynamics of a
small proxy: record each example's loss at every checkpoint of the proxy's training, cluster the
loss trajectories with K-means, and fill the budget evenly across the clusters, smallest first,
sampling at random within each (their Algorithm 1). Examples with alike trajectories are alike
for training, so an even draw over the clusters keeps every kind of example while it thins out
the common ones; with 11 % of MathInstruct it matched training on the full set.

Here the loss of a sample at a checkpoint is ``-log(gold_prob)``: the cross-entropy of a
classifier's gold label, and for a sequence record (:class:`~cartokit.SequenceRecorder`) the
mean token negative log-likelihood, the loss an SFT run minimises. Any
:class:`~cartokit.TrainingDynamics` works.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from cartokit._validation import Interval, check_param, check_seed, show

if TYPE_CHECKING:
    from cartokit.dynamics import TrainingDynamics

__all__ = ["MINIBATCH_ABOVE", "loss_trajectories", "s2l_clusters", "select_s2l"]

#: Above this many samples, clustering uses MiniBatchKMeans rather than KMeans.
MINIBATCH_ABOVE = 20_000


def _check_dynamics(dynamics: Any, caller: str) -> TrainingDynamics:
    from cartokit.dynamics import TrainingDynamics

    if not isinstance(dynamics, TrainingDynamics):
        raise TypeError(
            f"The 'dynamics' parameter of {caller} must be a cartokit TrainingDynamics (from a "
            "recorder, TrainingDynamics.load or cartokit.io.read_dynamics). Got "
            f"{type(dynamics).__name__} instead."
        )
    return dynamics


def loss_trajectories(dynamics: TrainingDynamics) -> np.ndarray:
    """Each sample's loss at each checkpoint, ``-log(gold_prob)``, as an ``(N, E)`` float64 array.

    A checkpoint that did not see a sample takes that sample's mean loss over the checkpoints
    that did; a sample never seen takes each checkpoint's mean over all samples. A probability of
    0 counts as float32's smallest normal (a loss of about 87.3).

    Examples
    --------
    >>> from cartokit import TrainingDynamics
    >>> dyn = TrainingDynamics.from_probabilities(
    ...     np.array([[[0.5, 0.5]], [[0.25, 0.75]]]), labels=[1])
    >>> loss_trajectories(dyn).round(3).tolist()
    [[0.693, 0.288]]
    """
    dynamics = _check_dynamics(dynamics, "loss_trajectories")
    gold = np.asarray(dynamics.gold_prob, dtype=np.float64).T
    loss = -np.log(np.maximum(gold, np.finfo(np.float32).tiny))
    unseen = np.isnan(loss)
    if unseen.any():
        seen = ~unseen
        count = seen.sum(axis=1, keepdims=True)
        own = np.where(seen, loss, 0.0).sum(axis=1, keepdims=True) / np.maximum(count, 1)
        column = np.nanmean(np.where(count > 0, loss, np.nan), axis=0, keepdims=True)
        column = np.where(np.isnan(column), 0.0, column)  # no sample seen at that checkpoint
        fill = np.where(count > 0, own, column)
        loss = np.where(unseen, fill, loss)
    return loss


def s2l_clusters(
    dynamics: TrainingDynamics, *, n_clusters: int = 100, seed: int | None = 0
) -> np.ndarray:
    """The K-means cluster of each sample's loss trajectory, as S2L forms them.

    scikit-learn's ``KMeans`` (``MiniBatchKMeans`` above :data:`MINIBATCH_ABOVE` samples) on
    :func:`loss_trajectories`, seeded by ``seed``. ``n_clusters`` is capped at the number of
    distinct trajectories.

    Returns
    -------
    numpy.ndarray of int, shape (N,)
        Cluster numbers ``0..K-1``.
    """
    caller = "s2l_clusters"
    n_clusters = check_param("n_clusters", n_clusters, Interval(int, 1, None), caller=caller)
    seed = check_seed(seed, caller=caller)
    return _clusters(loss_trajectories(dynamics), n_clusters, seed)


def _clusters(trajectories: np.ndarray, n_clusters: int, seed: int | None) -> np.ndarray:
    from sklearn.cluster import KMeans, MiniBatchKMeans

    distinct = len(np.unique(trajectories, axis=0))
    k = min(n_clusters, distinct)
    if k == 1:
        return np.zeros(len(trajectories), dtype=np.int64)
    if len(trajectories) > MINIBATCH_ABOVE:
        model = MiniBatchKMeans(k, random_state=seed, n_init=3, batch_size=4096)
    else:
        model = KMeans(k, random_state=seed, n_init=3)
    with warnings.catch_warnings():
        # near-duplicate trajectories can leave a cluster empty; the draw skips it
        warnings.filterwarnings("ignore", message="Number of distinct clusters")
        return model.fit_predict(trajectories.astype(np.float64)).astype(np.int64)


def _even_draw(clusters: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    """S2L's Algorithm 1: clusters by size, smallest first; each gets an equal share of what is
    left of the budget, or all of itself when smaller; drawn at random within the cluster."""
    members = [np.flatnonzero(clusters == c) for c in np.unique(clusters)]
    members.sort(key=len)  # stable: equal sizes keep cluster order
    chosen = []
    left = budget
    for k, group in enumerate(members):
        take = min(len(group), left // (len(members) - k))
        chosen.append(rng.choice(group, size=take, replace=False))
        left -= take
    picked = np.concatenate(chosen)
    if left:  # the integer shares fell short: top up from what is left, at random
        rest = np.setdiff1d(np.arange(len(clusters)), picked)
        picked = np.concatenate([picked, rng.choice(rest, size=left, replace=False)])
    return picked


def _smallest_fraction(n: int) -> float:
    """The smallest fraction of three significant digits that selects one of ``n`` samples."""
    step = 10.0 ** (np.floor(np.log10(0.5 / n)) - 2)
    value = np.ceil(0.5 / n / step) * step
    while np.floor(value * n + 0.5) < 1:
        value += step
    return float(f"{value:.3g}")


def select_s2l(
    dynamics: TrainingDynamics,
    fraction: float,
    *,
    n_clusters: int = 100,
    seed: int | None = 0,
) -> np.ndarray:
    """Select ``fraction`` of the samples by SmallToLarge (Yang et al., NeurIPS 2024).

    Clusters the loss trajectories of a small proxy model (:func:`s2l_clusters`) and fills the
    budget evenly across the clusters, smallest first, at random within each.

    Parameters
    ----------
    dynamics : TrainingDynamics
        The proxy's record (classifier or :class:`~cartokit.SequenceRecorder`), ideally over
        several checkpoints: a trajectory of one point clusters by loss alone.
    fraction : float in (0, 1]
        Share of the samples to select: exactly ``floor(fraction * N + 0.5)`` of them (rounded
        half up, as :func:`~cartokit.select` does).
    n_clusters : int, default 100
        K of K-means (the paper's setting), capped at the number of distinct trajectories.
    seed : int or None, default 0
        Seeds the clustering and the draw: same seed, same subset.

    Returns
    -------
    numpy.ndarray
        The selected ids (values of ``dynamics.ids``), cluster by cluster, smallest cluster first.

    Examples
    --------
    >>> from cartokit import TrainingDynamics
    >>> rng = np.random.default_rng(0)
    >>> dyn = TrainingDynamics.from_logits(rng.normal(size=(4, 50, 3)), rng.integers(0, 3, 50))
    >>> ids = select_s2l(dyn, 0.2, n_clusters=5)
    >>> len(ids), len(set(ids.tolist()))
    (10, 10)
    """
    caller = "select_s2l"
    dynamics = _check_dynamics(dynamics, caller)
    fraction = check_param(
        "fraction", fraction, Interval(float, 0, 1, closed="right"), caller=caller
    )
    n_clusters = check_param("n_clusters", n_clusters, Interval(int, 1, None), caller=caller)
    seed = check_seed(seed, caller=caller)
    n = dynamics.num_samples
    budget = int(np.floor(fraction * n + 0.5))
    if budget == 0:
        raise ValueError(
            f"The 'fraction' parameter of {caller} is too small: {show(fraction)} of {n} samples "
            f"rounds to 0. Use a fraction of at least {_smallest_fraction(n):g}."
        )
    clusters = _clusters(loss_trajectories(dynamics), n_clusters, seed)
    positions = _even_draw(clusters, budget, np.random.default_rng(seed))
    return dynamics.ids[positions]
