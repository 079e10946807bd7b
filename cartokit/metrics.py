"""Every training-dynamics formula, once.

Two layers:

* :func:`checkpoint_stats` turns one checkpoint's logits into the four numbers per sample that all
  metrics need (gold-label probability, margin, squared error to the one-hot label, predicted
  label). The recorder calls it on the logits' device; :func:`checkpoint_stats_numpy`, its twin
  for host arrays, serves the array constructors and the file readers without importing torch.
  Both compute the same formulas in float32, so a number means the same thing whichever way it
  was recorded (``tests/test_metrics.py`` holds them to each other).
* The per-sample metric functions (:func:`confidence`, :func:`variability`, ...) reduce those
  ``[epochs, samples]`` arrays over epochs; :func:`compute_metrics` assembles them into a table.

Arrays may hold NaN for a sample that was not seen at some checkpoint (an incomplete epoch); every
reduction then uses only the checkpoints where that sample was observed.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from cartokit._validation import Options, check_int, check_param, first_few

if TYPE_CHECKING:  # pandas is imported where a table is built: `cartokit metrics` never needs it
    import pandas as pd
    import torch

    from cartokit.dynamics import TrainingDynamics

__all__ = [
    "CHUNK_ROWS",
    "SEQUENCE_CLASS_NAMES",
    "SEQUENCE_EXTRA",
    "aleatoric",
    "area_under_margin",
    "checkpoint_stats",
    "checkpoint_stats_numpy",
    "compute_metrics",
    "confidence",
    "correctness",
    "el2n",
    "first_learned_epoch",
    "forgetting_and_learning",
    "metric_columns",
    "MissingInts",
    "perplexity",
    "threshold_closeness",
    "variability",
]

#: Rows per chunk when reducing a whole epoch of logits, to bound temporary memory.
CHUNK_ROWS = 1 << 16
#: Values (rows x classes) per chunk of :func:`checkpoint_stats_numpy`: 4 MiB of float32.
CHUNK_VALUES = 1 << 20
#: Up to this many classes, the numpy kernel takes the argmax one class at a time and sums in
#: float32, in the order torch adds them; beyond, numpy's argmax and a float64 sum.
_FEW_CLASSES = 32

#: A sequence record (:class:`~cartokit.SequenceRecorder`) is a two-class record: every sample's
#: label is 1, "reference" (the reference answer), and its prediction is 1 when the model's
#: argmax reproduces every scored token of that answer, else 0, "other".
SEQUENCE_CLASS_NAMES = ("other", "reference")
#: The extra statistic that marks a sequence record: its ``gold_prob`` is then the
#: geometric-mean token probability, and :func:`compute_metrics` adds :func:`perplexity`.
SEQUENCE_EXTRA = "token_accuracy"


def checkpoint_stats(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample statistics of one checkpoint, computed from logits.

    With ``p = softmax(logits)`` and gold label ``y``:

    * ``gold_prob = p[y]``, in [0, 1];
    * ``margin = logits[y] - max_{k != y} logits[k]`` (the AUM margin of Pleiss et al., 2020), any
      real; log-probabilities differ from logits by a per-row constant, so the same formula
      serves probabilities (pass ``log(p)`` as logits);
    * ``sq_error = ||p - onehot(y)||_2**2 = sum_{k != y} p[k]**2 + (1 - p[y])**2``, in [0, 2],
      the squared EL2N error; ``1 - p[y]`` is computed as ``-expm1(log p[y])`` so that confident
      samples keep their precision (an error of 1e-5 survives, where ``1 - 0.99999`` in float32
      would not);
    * ``pred = argmax_k logits[k]`` (first maximum on ties, like ``torch.argmax``).

    Parameters
    ----------
    logits : torch.Tensor of shape (n, C), C >= 2
        Any floating dtype; computed in float32.
    labels : torch.Tensor of shape (n,)
        Integer gold labels in ``[0, C)``.

    Returns
    -------
    gold_prob, margin, sq_error : torch.Tensor of shape (n,), float32
    pred : torch.Tensor of shape (n,), int64
    """
    import torch

    outs = [], [], [], []
    labels = labels.long()
    for start in range(0, logits.shape[0], CHUNK_ROWS):
        x = logits[start : start + CHUNK_ROWS].float()
        y = labels[start : start + CHUNK_ROWS, None]
        # A hand-written, max-shifted softmax rather than log_softmax/logsumexp: the same
        # numbers, several times faster on the CPU for few classes, and the exponentials
        # are shared by the log-normaliser and the probabilities.
        row_max = x.amax(dim=1, keepdim=True)
        e = (x - row_max).exp_()
        total = e.sum(dim=1, keepdim=True)
        lse = row_max + total.log()
        gold_x = x.gather(1, y)
        gold_logp = (gold_x - lse).squeeze(1)
        other_max = x.scatter(1, y, float("-inf")).amax(dim=1)
        outs[0].append(gold_logp.exp())
        outs[1].append(gold_x.squeeze(1) - other_max)
        others = e.div_(total).scatter_(1, y, 0.0).square_().sum(dim=1)
        outs[2].append(others + torch.expm1(gold_logp).square())
        outs[3].append(x.argmax(dim=1))
    if not outs[0]:
        empty = logits.new_empty((0,), dtype=torch.float32)
        return empty, empty.clone(), empty.clone(), empty.long()
    return tuple(torch.cat(o) if len(o) > 1 else o[0] for o in outs)  # type: ignore[return-value]


def checkpoint_stats_numpy(
    logits: np.ndarray, labels: np.ndarray, *, pred_from: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`checkpoint_stats` for host arrays, in numpy: the same formulas, without torch.

    Parameters
    ----------
    logits : array of shape (n, C), C >= 2
        Finite scores, any real or integer dtype; computed in float32.
    labels : array of shape (n,)
        Integer gold labels in ``[0, C)``.
    pred_from : array of shape (n, C), optional
        Scores whose argmax is the predicted label, when they are not ``logits`` themselves.
        Probabilities are compared as given: a float32 ``log`` can map neighbouring values to
        one number (torch's maps both 0.34000003 and 0.34 to -1.0788096), which would turn a
        clear winner into a tie.

    Returns
    -------
    gold_prob, margin, sq_error : ndarray of shape (n,), float32
    pred : ndarray of shape (n,), int64
        The first maximum on ties, like :func:`checkpoint_stats`.

    Notes
    -----
    Each chunk is transposed to ``(C, rows)``, so every reduction over classes runs along
    contiguous rows of samples, instead of a tiny reduction per sample. The results agree with
    :func:`checkpoint_stats` to float32 rounding, not bit for bit: numpy's and torch's ``exp``
    differ in the last bit of many values.

    Examples
    --------
    >>> gold, margin, sq_err, pred = checkpoint_stats_numpy(
    ...     np.array([[0.0, np.log(3.0)]]), np.array([1])
    ... )
    >>> [round(float(v[0]), 4) for v in (gold, margin, sq_err)], pred.tolist()
    ([0.75, 1.0986, 0.125], [1])
    """
    x = np.asarray(logits)
    y = np.asarray(labels).astype(np.intp, copy=False)
    n, c = x.shape
    gold = np.empty(n, dtype=np.float32)
    margin = np.empty(n, dtype=np.float32)
    sq_err = np.empty(n, dtype=np.float32)
    pred = np.empty(n, dtype=np.int64)
    step = max(1, CHUNK_VALUES // c)
    acc = np.float32 if c <= _FEW_CLASSES else np.float64
    for start in range(0, n, step):
        stop = min(n, start + step)
        rows = np.arange(stop - start)
        yy = y[start:stop]
        # astype(copy=True): the gold logit is overwritten below, and a one-row transpose is
        # already contiguous, so ascontiguousarray would hand back the caller's own array.
        xt = x[start:stop].T.astype(np.float32, order="C", copy=True)
        source = xt if pred_from is None else pred_from[start:stop].T
        pred[start:stop] = _first_argmax(source)
        row_max = xt.max(axis=0)
        e = np.exp(xt - row_max)
        total = e.sum(axis=0, dtype=acc).astype(np.float32, copy=False)
        gold_x = xt[yy, rows]
        gold_logp = gold_x - (row_max + np.log(total))
        xt[yy, rows] = -np.inf
        gold[start:stop] = np.exp(gold_logp)
        margin[start:stop] = gold_x - xt.max(axis=0)
        e /= total
        e[yy, rows] = 0.0
        others = np.square(e).sum(axis=0, dtype=acc)
        sq_err[start:stop] = others + np.square(np.expm1(gold_logp))
    return gold, margin, sq_err, pred


def _first_argmax(scores_t: np.ndarray) -> np.ndarray:
    """Argmax over axis 0 of a ``(C, rows)`` array, the first maximum on ties."""
    if scores_t.shape[0] > _FEW_CLASSES:
        return np.argmax(scores_t, axis=0).astype(np.int64, copy=False)
    # Few classes: one pass per class over contiguous samples, rather than a tiny argmax per row.
    best = scores_t[0].copy()
    index = np.zeros(scores_t.shape[1], dtype=np.int64)
    for k in range(1, scores_t.shape[0]):
        column = scores_t[k]
        index[column > best] = k  # strictly greater: a tie keeps the earlier class
        np.maximum(best, column, out=best)
    return index


# --------------------------------------------------------------------------------------------
# Reductions over epochs. Inputs are [E, N] arrays; ``observed`` is None when every sample was
# seen at every checkpoint (the fast path), else an [E, N] bool mask.


def _mean(values: np.ndarray, observed: np.ndarray | None) -> np.ndarray:
    if observed is None:
        return values.mean(axis=0, dtype=np.float64)
    total = np.where(observed, values, 0.0).sum(axis=0, dtype=np.float64)
    count = observed.sum(axis=0)
    return np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)


def confidence(gold_prob: np.ndarray, observed: np.ndarray | None = None) -> np.ndarray:
    r"""Mean gold-label probability across checkpoints.

    :math:`\hat\mu_i = \frac{1}{E}\sum_e p_e(y_i \mid x_i)`, in [0, 1]. Swayamdipta et al. (2020),
    "Dataset Cartography", Eq. 1.

    Examples
    --------
    >>> confidence(np.array([[0.2, 1.0], [0.6, 1.0]])).round(3).tolist()
    [0.4, 1.0]
    """
    return _mean(gold_prob, observed)


def variability(gold_prob: np.ndarray, observed: np.ndarray | None = None) -> np.ndarray:
    r"""Population standard deviation (ddof=0) of the gold-label probability across checkpoints.

    :math:`\hat\sigma_i = \sqrt{\frac{1}{E}\sum_e (p_e(y_i \mid x_i) - \hat\mu_i)^2}`, in
    [0, 0.5]. Swayamdipta et al. (2020), Eq. 2; ddof=0 as in their released code.

    Examples
    --------
    >>> variability(np.array([[0.2, 1.0], [0.6, 1.0]])).round(3).tolist()
    [0.2, 0.0]
    """
    mu = _mean(gold_prob, observed)
    return np.sqrt(_mean(np.square(gold_prob - mu.astype(gold_prob.dtype)), observed))


def correctness(correct: np.ndarray, observed: np.ndarray | None = None) -> np.ndarray:
    """Fraction of checkpoints at which ``argmax == gold``, in [0, 1]. Swayamdipta et al. (2020).

    Examples
    --------
    >>> correctness(np.array([[True, False], [True, True]])).tolist()
    [1.0, 0.5]
    """
    return _mean(correct, observed)


def forgetting_and_learning(
    correct: np.ndarray, observed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Count forgetting events and learning events per sample (Toneva et al., ICLR 2019).

    A *forgetting event* is a correct prediction followed, at the next observed checkpoint, by a
    wrong one. A *learning event* is a correct prediction whose previous observed checkpoint was
    wrong; the state before the first checkpoint counts as "not learned", so a sample correct at
    the first checkpoint has one learning event there. Both are >= 0 integers, and
    ``learned - forgotten`` is 1 if the last observed prediction is correct, else 0.

    Examples
    --------
    >>> f, l = forgetting_and_learning(np.array([[True], [False], [True], [False]]))
    >>> int(f[0]), int(l[0])
    (2, 2)
    """
    if observed is None:
        prev, cur = correct[:-1], correct[1:]
        forgotten = np.count_nonzero(prev > cur, axis=0)
        learned = np.count_nonzero(cur > prev, axis=0) + correct[0]
        return forgotten.astype(np.int64), learned.astype(np.int64)
    n_epochs = correct.shape[0]
    # Index of the last observed checkpoint strictly before each one (-1: none yet).
    last_seen = np.maximum.accumulate(np.where(observed, np.arange(n_epochs)[:, None], -1), axis=0)
    prev_idx = np.vstack([np.full((1, correct.shape[1]), -1), last_seen[:-1]])
    prev_correct = np.take_along_axis(correct, np.maximum(prev_idx, 0), axis=0) & (prev_idx >= 0)
    forgotten = np.count_nonzero(observed & prev_correct & ~correct, axis=0)
    learned = np.count_nonzero(observed & correct & ~prev_correct, axis=0)
    return forgotten.astype(np.int64), learned.astype(np.int64)


def first_learned_epoch(
    correct: np.ndarray, observed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """First checkpoint index (0-based) with a correct prediction, and whether there is one.

    Returns ``(index, learned)``; ``index`` is meaningless where ``learned`` is False. The table
    from :func:`compute_metrics` shows those as missing (``<NA>``), never as a sentinel number.

    Examples
    --------
    >>> idx, ok = first_learned_epoch(np.array([[False, False], [True, False]]))
    >>> idx.tolist(), ok.tolist()
    ([1, 0], [True, False])
    """
    hit = correct if observed is None else correct & observed
    return hit.argmax(axis=0).astype(np.int64), hit.any(axis=0)


def area_under_margin(margin: np.ndarray, observed: np.ndarray | None = None) -> np.ndarray:
    """AUM: mean over checkpoints of ``logit[y] - max_{k != y} logit[k]`` (Pleiss et al., 2020).

    Any real number; negative values flag samples the model keeps assigning to another class,
    the signature of a mislabeled example.

    Examples
    --------
    >>> area_under_margin(np.array([[-1.0], [3.0]])).tolist()
    [1.0]
    """
    return _mean(margin, observed)


def el2n(sq_error: np.ndarray, observed: np.ndarray | None = None) -> np.ndarray:
    """EL2N over one run: the mean over every checkpoint of ``||softmax(logits) - onehot(y)||_2``.

    In [0, sqrt(2)]. ``sq_error`` is the squared norm per checkpoint, as stored by
    :func:`checkpoint_stats`.

    This is a variant of Paul et al.'s score ("Deep Learning on a Data Diet", NeurIPS 2021),
    not their definition: they take the norm at *one early epoch* (epoch 20 of 200 in their
    CIFAR-10 runs) and average it over *several initialisations* (10 runs). Averaging over all
    checkpoints of one run smooths the score across training, as ``confidence`` does. For their
    variant, compute the metrics at one checkpoint per run, ``compute_metrics(dyn,
    epochs=[t])``, and average the ``el2n`` columns of runs with different seeds (see below).

    Examples
    --------
    >>> el2n(np.array([[0.5]])).round(4).tolist()  # p = (0.5, 0.5), y = 0: 0.25 + 0.25
    [0.7071]

    Paul et al.'s variant: epoch index 1 of two seeded runs (3 epochs, 2 samples, 2 classes):

    >>> import warnings
    >>> from cartokit import TrainingDynamics, compute_metrics
    >>> a = [[[1.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [0.0, 2.0]], [[3.0, 0.0], [1.0, 0.0]]]
    >>> b = [[[0.0, 1.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 3.0]], [[2.0, 0.0], [0.0, 1.0]]]
    >>> runs = [TrainingDynamics.from_logits(np.array(x), labels=[0, 1]) for x in (a, b)]
    >>> compute_metrics(runs[0])["el2n"].round(3).tolist()  # cartokit's: all checkpoints
    [0.205, 0.528]
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", UserWarning)  # one checkpoint: no variability
    ...     early = [compute_metrics(run, epochs=[1])["el2n"] for run in runs]
    >>> (sum(early) / len(early)).round(3).tolist()  # one epoch, averaged over the runs
    [0.274, 0.118]
    """
    return _mean(np.sqrt(sq_error), observed)


def aleatoric(gold_prob: np.ndarray, observed: np.ndarray | None = None) -> np.ndarray:
    """Aleatoric uncertainty: mean over checkpoints of ``p_y (1 - p_y)`` (Seedat et al., 2022).

    In [0, 0.25]; the Data-IQ measure.

    Examples
    --------
    >>> aleatoric(np.array([[0.5], [1.0]])).tolist()
    [0.125]
    """
    return _mean(gold_prob * (1.0 - gold_prob), observed)


def perplexity(gold_prob: np.ndarray, observed: np.ndarray | None = None) -> np.ndarray:
    r"""Perplexity of a sequence over the checkpoints, from its geometric-mean token probability.

    A sequence record's ``gold_prob`` at checkpoint :math:`e` is
    :math:`\bar p_e = \exp(\frac{1}{T}\sum_t \log p_e(y_t \mid y_{<t}, x))`, over its
    :math:`T` scored tokens (:class:`~cartokit.SequenceRecorder`). Then
    :math:`\mathrm{PPL} = \exp(-\frac{1}{E}\sum_e \log \bar p_e)`: the exponential of the
    mean token negative log-likelihood (the usual definition of perplexity, e.g. Jurafsky &
    Martin, *Speech and Language Processing*, ch. 3), averaged over checkpoints in the log
    domain, i.e. the geometric mean of the per-checkpoint perplexities. In
    :math:`[1, \infty)`; a ``gold_prob`` of 0 (a mean token log-probability below float32's
    smallest normal, about -87.3) counts as that smallest normal, so the value stays finite.

    Examples
    --------
    >>> perplexity(np.array([[0.5], [0.125]])).round(3).tolist()  # exp((log 2 + log 8) / 2)
    [4.0]
    """
    log_p = np.log(np.maximum(gold_prob, np.finfo(np.float32).tiny, dtype=np.float64))
    return np.exp(-_mean(log_p, observed))


def threshold_closeness(conf: np.ndarray) -> np.ndarray:
    """``confidence * (1 - confidence)``, in [0, 0.25]; largest for samples near 0.5 confidence.

    From the released code of Swayamdipta et al. (2020).

    Examples
    --------
    >>> threshold_closeness(np.array([0.5, 1.0])).tolist()
    [0.25, 0.0]
    """
    return conf * (1.0 - conf)


# --------------------------------------------------------------------------------------------


def compute_metrics(
    dyn: TrainingDynamics | str | os.PathLike[str],
    *,
    burn_in: int = 0,
    epochs: Sequence[int] | None = None,
    engine: str = "auto",
    output: str | os.PathLike[str] | None = None,
) -> pd.DataFrame | Path:
    """Compute every per-sample training-dynamics metric as one table.

    Parameters
    ----------
    dyn : TrainingDynamics or path-like
        The record, from :class:`~cartokit.DynamicsRecorder`, a constructor or a file reader;
        or a store's folder (:func:`~cartokit.store.open_dynamics`). A store, and maps merged
        by :func:`~cartokit.merge_dynamics`, are read block by block of samples
        (:mod:`cartokit.streaming`): the same table, in bounded memory.
    burn_in : int, default 0
        Leave out the first ``burn_in`` checkpoints (the first epochs of a fine-tune are often
        all near chance).
    epochs : sequence of int, optional
        Use only these checkpoint indices (0-based). Not combined with ``burn_in``.
    engine : {"auto", "dask"}, default "auto"
        ``"dask"`` computes the blocks as tasks on the current ``dask.distributed`` client
        (or Dask's default scheduler): identical numbers, on as many machines as the cluster
        has (``pip install "cartokit[dask]"``).
    output : path-like, optional
        Write the table to this Parquet file block by block, and return its path instead of
        the table: the table never has to fit in memory.

    Returns
    -------
    pandas.DataFrame or pathlib.Path
        Indexed by sample id, with columns ``label``, ``confidence``, ``variability``,
        ``correctness``, ``forgetting``, ``learned_events``, ``first_learned_epoch`` (nullable,
        ``<NA>`` when never learned), ``never_learned``, ``min_prob``, ``max_prob``, ``aum``,
        ``el2n``, ``aleatoric``, ``threshold_closeness``, ``predicted_label`` (nullable, at the
        last observed checkpoint), ``num_observed`` (checkpoints that saw the sample), and
        ``label_name`` / ``predicted_name`` when class names are known, and one column per extra
        statistic of the dynamics (``dyn.extras``, e.g. ``token_accuracy``): its mean over the
        checkpoints that saw the sample. A sequence record (one with ``token_accuracy``, from
        :class:`~cartokit.SequenceRecorder`) also gets ``perplexity`` (:func:`perplexity`).

    Warns
    -----
    UserWarning
        When fewer than 3 checkpoints are used: variability from 1 or 2 values says little.

    Examples
    --------
    >>> import numpy as np
    >>> from cartokit import TrainingDynamics
    >>> logits = np.array([[[2.0, 0.0]], [[0.0, 2.0]], [[3.0, 0.0]]])  # 3 epochs, 1 sample
    >>> m = compute_metrics(TrainingDynamics.from_logits(logits, labels=[0]))
    >>> m[["confidence", "correctness", "forgetting"]].round(3).to_dict("records")
    [{'confidence': 0.651, 'correctness': 0.667, 'forgetting': 1}]
    """
    caller = "compute_metrics"
    engine = check_param("engine", engine, Options(["auto", "dask"]), caller=caller)
    if isinstance(dyn, (str, os.PathLike)):
        from cartokit.store import open_dynamics

        dyn = open_dynamics(dyn)
    index, epoch_numbers = _chosen_checkpoints(dyn, burn_in, epochs, stacklevel=3)
    if hasattr(dyn, "blocks") or engine == "dask" or output is not None:
        from cartokit.streaming import stream_metrics

        return stream_metrics(dyn, epoch_numbers, engine=engine, output=output)
    return _metrics_frame(dyn.ids, _columns_of(dyn, index, epoch_numbers))


class MissingInts(NamedTuple):
    """An integer column with missing values, as :func:`metric_columns` returns it: ``values``
    (int64; any number where missing) and the boolean mask ``missing``. In the table of
    :func:`compute_metrics` it is a nullable ``Int64`` column."""

    values: np.ndarray
    missing: np.ndarray


def metric_columns(
    dyn: TrainingDynamics, *, burn_in: int = 0, epochs: Sequence[int] | None = None
) -> dict[str, Any]:
    """The columns of :func:`compute_metrics`'s table as plain arrays, without pandas.

    For a record held in memory (not a store): each column of the table, in its order, as a
    numpy array, except the nullable ``first_learned_epoch`` and ``predicted_label``, which are
    :class:`MissingInts`. The table's index is ``dyn.ids``. ``cartokit metrics`` writes its CSV
    from these, without importing pandas. Warns as :func:`compute_metrics` does.

    Examples
    --------
    >>> from cartokit.dynamics import TrainingDynamics
    >>> logits = np.array([[[2.0, 0.0]], [[0.0, 2.0]], [[3.0, 0.0]]])  # 3 epochs, 1 sample
    >>> columns = metric_columns(TrainingDynamics.from_logits(logits, labels=[0]))
    >>> round(float(columns["confidence"][0]), 3), columns["first_learned_epoch"].values.tolist()
    (0.651, [0])
    """
    if hasattr(dyn, "blocks"):
        raise TypeError(
            "metric_columns needs a record held in memory; for a store or merged maps use "
            "compute_metrics, which reads them block by block."
        )
    index, epoch_numbers = _chosen_checkpoints(dyn, burn_in, epochs, stacklevel=3)
    return _columns_of(dyn, index, epoch_numbers)


def _chosen_checkpoints(
    dyn: Any, burn_in: int, epochs: Sequence[int] | None, *, stacklevel: int
) -> tuple[list[int] | slice, np.ndarray]:
    """The checkpoints that the metrics use, and their numbers; warns when they are few."""
    index = _checkpoint_index(dyn.num_epochs, burn_in=burn_in, epochs=epochs)
    epoch_numbers = np.arange(dyn.num_epochs)[index]
    if len(epoch_numbers) < 3:
        warnings.warn(
            f"compute_metrics uses {len(epoch_numbers)} checkpoint(s); variability and "
            "forgetting need at least 3 to mean much. Record more epochs, or use sub-epoch "
            "checkpoints.",
            UserWarning,
            stacklevel=stacklevel,
        )
    return index, epoch_numbers


def _columns_of(
    dyn: TrainingDynamics, index: list[int] | slice, epoch_numbers: np.ndarray
) -> dict[str, Any]:
    # Without epochs=, index is a slice: views of the record, where a list of indices would
    # copy the whole record on every call.
    gold = dyn.gold_prob[index]
    margin = dyn.margin[index]
    sq_err = dyn.sq_error[index]
    pred = dyn.pred[index]
    extras = {name: values[index] for name, values in dyn.extras.items()}
    return _metric_columns(dyn, gold, margin, sq_err, pred, epoch_numbers, extras)


def _checkpoint_index(
    num_epochs: int, *, burn_in: int, epochs: Sequence[int] | None
) -> list[int] | slice:
    burn_in = check_int("burn_in", burn_in, caller="compute_metrics", minimum=0)
    if epochs is not None:
        if burn_in:
            raise ValueError(
                "compute_metrics takes either burn_in or epochs, not both. "
                f"Got burn_in={burn_in} and epochs={list(epochs)}; drop the early epochs "
                "from the epochs list instead."
            )
        chosen = [check_int("epochs", e, caller="compute_metrics") for e in epochs]
        bad = [e for e in chosen if not 0 <= e < num_epochs]
        if bad or not chosen:
            raise ValueError(
                f"The 'epochs' parameter of compute_metrics must list checkpoint indices in "
                f"[0, {num_epochs}). Got {first_few(chosen) if chosen else '[]'}."
            )
        if len(set(chosen)) != len(chosen):
            raise ValueError(f"compute_metrics: 'epochs' repeats an index: {chosen}.")
        return chosen
    if burn_in >= num_epochs:
        raise ValueError(
            f"The 'burn_in' parameter of compute_metrics must be smaller than the number of "
            f"recorded checkpoints ({num_epochs}). Got {burn_in} instead."
        )
    return slice(burn_in, num_epochs)


def _metrics_frame(ids: np.ndarray, columns: dict[str, Any]) -> pd.DataFrame:
    """The table of :func:`compute_metrics` from :func:`metric_columns`' arrays."""
    import pandas as pd

    table = {
        name: pd.arrays.IntegerArray(*values) if isinstance(values, MissingInts) else values
        for name, values in columns.items()
    }
    # copy=False: the columns are fresh arrays made here; consolidating them into 2-D blocks
    # would copy the whole table once more, into memory the process has never touched.
    return pd.DataFrame(table, index=pd.Index(ids, name="id"), copy=False)


def _metric_columns(
    dyn: TrainingDynamics,
    gold: np.ndarray,
    margin: np.ndarray,
    sq_err: np.ndarray,
    pred: np.ndarray,
    epoch_numbers: np.ndarray,
    extras: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    labels = dyn.labels
    observed: np.ndarray | None = ~np.isnan(gold)
    if observed.all():  # the fast path: every sample at every checkpoint
        observed = None
    correct = pred == labels[None, :]
    if observed is not None:
        correct &= observed

    conf = confidence(gold, observed)
    forgotten, learned = forgetting_and_learning(correct, observed)
    first_idx, ever = first_learned_epoch(correct, observed)
    if observed is None:
        min_prob, max_prob = gold.min(axis=0), gold.max(axis=0)
        last_pred = pred[-1]
        num_observed = np.full(labels.shape, gold.shape[0], dtype=np.int64)
    else:
        min_prob = np.where(observed, gold, np.inf).min(axis=0)
        max_prob = np.where(observed, gold, -np.inf).max(axis=0)
        num_observed = observed.sum(axis=0)
        unseen = num_observed == 0
        min_prob[unseen] = max_prob[unseen] = np.nan
        last_idx = gold.shape[0] - 1 - observed[::-1].argmax(axis=0)
        last_pred = np.take_along_axis(pred, last_idx[None, :], axis=0)[0]

    columns: dict[str, Any] = {
        "label": labels,
        "confidence": conf,
        "variability": variability(gold, observed),
        "correctness": correctness(correct, observed),
        "forgetting": forgotten,
        "learned_events": learned,
        "first_learned_epoch": MissingInts(epoch_numbers[first_idx], ~ever),
        "never_learned": ~ever,
        "min_prob": min_prob.astype(np.float64),
        "max_prob": max_prob.astype(np.float64),
        "aum": area_under_margin(margin, observed),
        "el2n": el2n(sq_err, observed),
        "aleatoric": aleatoric(gold, observed),
        "threshold_closeness": threshold_closeness(conf),
        "predicted_label": MissingInts(
            np.maximum(last_pred, 0).astype(np.int64), num_observed == 0
        ),
        "num_observed": num_observed,
    }
    for name, values in (extras or {}).items():
        if name in columns:
            raise ValueError(
                f"compute_metrics: the dynamics' extra statistic {name!r} has the name of a "
                "metric column; rename it."
            )
        columns[name] = _mean(values, observed)  # the mean over the checkpoints that saw it
    if extras and SEQUENCE_EXTRA in extras and "perplexity" not in columns:
        # a sequence record: gold_prob is the geometric-mean token probability
        columns["perplexity"] = perplexity(gold, observed)
    if dyn.class_names is not None:
        names = np.asarray(dyn.class_names, dtype=object)
        columns["label_name"] = names[labels]
        columns["predicted_name"] = np.where(num_observed > 0, names[last_pred], None)
    return columns
