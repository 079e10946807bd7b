"""How well suspicion scores find mislabeled samples: evaluate, cross-validate, benchmark.

:func:`evaluate_detection` scores a ranking against the truly flipped labels (AUROC, average
precision, precision and recall at k). :func:`benchmark_detection` measures every score of
:func:`~cartokit.mislabel.score_mislabeled` on labels it flipped itself (seeded symmetric and
class-dependent noise), from a single recorded training run, against cleanlab's confident
learning on out-of-sample probabilities from K-fold cross-validation (:func:`cross_val_probs`,
the way cleanlab's documentation recommends, at K trainings), and reports what each needed to
train. Its headline (:meth:`DetectionBenchmark.compare`) is one method named in advance, the
combined score by default, against the K-fold result; the full table keeps every method.
:func:`retrain_comparison` trains the same model on labels before and after a review.

torch is imported only by the functions that train.

Examples
--------
>>> r = evaluate_detection([0.9, 0.8, 0.1, 0.2], [True, False, False, True])
>>> r["auroc"], r["precision_at_k"]
(0.75, 0.5)
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

from cartokit._validation import Interval, Options, check_int, check_model_maker, check_param
from cartokit.mislabel import CLEANLAB_HINT, METHODS, score_mislabeled, suggest_cutoff

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from torch import nn

    from cartokit.data import DataBundle, Split
    from cartokit.train import FitResult

__all__ = [
    "DetectionBenchmark",
    "benchmark_detection",
    "cross_val_probs",
    "detection_quality",
    "evaluate_detection",
    "recorded_run",
    "retrain_comparison",
]


def _has_cleanlab() -> bool:
    return importlib.util.find_spec("cleanlab") is not None


def _check_method(method: Any, *, caller: str) -> str:
    return check_param("method", method, Options(list(METHODS)), caller=caller)


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


def detection_quality(scores: pd.DataFrame, flipped: Any) -> pd.DataFrame:
    """:func:`evaluate_detection` of every column of ``scores``, at its suggested cut-off.

    Parameters
    ----------
    scores : pandas.DataFrame
        One column of suspicion scores per method, e.g. from
        :func:`~cartokit.mislabel.score_all`.
    flipped : array-like of bool or pandas.Series
        Which samples are mislabeled.

    Returns
    -------
    pandas.DataFrame
        One row per column of ``scores``, the columns of :func:`evaluate_detection` with the
        ``cutoff`` of :func:`~cartokit.mislabel.suggest_cutoff` (the method's own threshold when
        the column is named after a method).

    Examples
    --------
    >>> scores = pd.DataFrame({"aum": [2.0, -1.0, -3.0, 0.5]})
    >>> detection_quality(scores, [True, False, False, True]).loc["aum", ["auroc", "flagged"]]
    auroc      1.0
    flagged    2.0
    Name: aum, dtype: float64
    """
    if not isinstance(scores, pd.DataFrame):
        raise TypeError(
            "The 'scores' parameter of detection_quality must be a pandas DataFrame with one "
            f"column of scores per method. Got {type(scores).__name__} instead."
        )
    rows = {column: _quality(scores[column], column, flipped) for column in scores.columns}
    return pd.DataFrame.from_dict(rows, orient="index")


def _quality(scores: pd.Series, method: str, flipped: Any) -> dict[str, float]:
    cutoff = suggest_cutoff(scores.to_numpy(), method if method in METHODS else None)
    return evaluate_detection(scores, flipped, cutoff=cutoff)


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

    from cartokit.train import fit, predict_logits

    caller = "cross_val_probs"
    make_model = check_model_maker(make_model, caller=caller)
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
        """Precision-recall curves: one panel per noise setting, one line per method.

        A method has one colour and dash in every panel (K-fold baselines dashed and thicker);
        one legend below the panels names each method with its average precision per panel,
        left to right.
        """
        from matplotlib.lines import Line2D
        from sklearn.metrics import precision_recall_curve

        from cartokit.plot._style import (
            NotebookFigure,
            check_figure_path,
            line_style,
            save_figure,
        )

        target = check_figure_path(path, caller="DetectionBenchmark.plot")
        settings = list(self.scores)
        methods = list(
            dict.fromkeys(c for s in settings for c in self.scores[s].columns if c != "flipped")
        )
        kfold = set(self.table.loc[self.table["approach"] == "K-fold", "method"])
        styles = {
            m: {
                "color": line_style(i)[0],
                "ls": "--" if m in kfold else line_style(i)[1],
                "lw": 2.0 if m in kfold else 1.5,
            }
            for i, m in enumerate(methods)
        }
        fig = NotebookFigure(figsize=(4.2 * len(settings), 4.6), layout="constrained")
        axes = fig.subplots(1, len(settings), squeeze=False, sharey=True)[0]
        ap: dict[str, list[str]] = {m: [] for m in methods}
        for ax, setting in zip(axes, settings):
            frame = self.scores[setting]
            truth = frame["flipped"].to_numpy(dtype=bool)
            rows = self.table[self.table["setting"] == setting].set_index("method")
            for method in methods:
                if method not in frame.columns:
                    ap[method].append("–")
                    continue
                precision, recall, _ = precision_recall_curve(
                    truth, _ranked_values(frame[method].to_numpy(dtype=np.float64))
                )
                ax.plot(recall, precision, gid=f"pr:{method}", **styles[method])
                ap[method].append(f"{rows.loc[method, 'average_precision']:.2f}")
            ax.axhline(truth.mean(), color="#999999", lw=0.8, ls=":")
            ax.set_title(f"{setting}: {int(truth.sum())} flipped", fontsize=10)
            ax.set_xlabel("recall")
            ax.set_xlim(0, 1.01)
            ax.set_ylim(0, 1.02)
            ax.spines[["top", "right"]].set_visible(False)
        axes[0].set_ylabel("precision")
        handles = [Line2D([], [], **styles[m]) for m in methods]
        labels = [f"{m}   AP {' / '.join(ap[m])}" for m in methods]
        handles.append(Line2D([], [], color="#999999", lw=0.8, ls=":"))
        labels.append("share flipped (a random ranking)")
        fig.legend(
            handles, labels, loc="outside lower center", ncols=min(3, len(handles)),
            frameon=False, fontsize=8, title_fontsize=9,
            title="method, average precision per panel (left to right)",
        )  # fmt: skip
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
    if isinstance(noise, (int, float, np.floating)) and not isinstance(noise, bool):
        rate = check_param("noise", noise, Interval(float, 0, 1, closed="neither"), caller=caller)
        return {f"symmetric {rate * 100:g}%": {"rate": rate}}
    if not isinstance(noise, Mapping) or not noise:
        raise TypeError(
            f"The 'noise' parameter of {caller} must be a rate in (0, 1) for one symmetric "
            "setting, a non-empty dict from setting names to {'rate': float} or "
            "{'transition': (C, C) matrix}, or None for the default settings. "
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
    noise: float | Mapping[str, Mapping[str, Any]] | None = None,
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
    2. train one model with :func:`recorded_run`, recording its dynamics with per-epoch
       probabilities, and score the samples with every method of :func:`score_mislabeled`: one
       training for all of them;
    3. with ``folds``: cleanlab's recommended recipe, confident learning on out-of-sample
       probabilities from ``folds``-fold cross-validation (:func:`cross_val_probs`), at
       ``folds`` trainings;
    4. evaluate each score against the flipped labels (:func:`evaluate_detection`): AUROC,
       average precision, precision@k and recall@k with k the number of flipped labels, and
       the samples flagged by :func:`suggest_cutoff`.

    That is ``1 + folds`` trainings per noise setting, 15 at the defaults (3 settings, 5
    folds), after one untimed warm-up epoch. On digits (``load_dataset("digits")``, 1,437
    training images) the defaults ran in 5.2-6.0 s on 2 CPU cores, and one symmetric setting
    with a linear model, ``noise=0.1, folds=2, epochs=5``, in 1.3-1.4 s (3 runs each of
    ``benchmark_detection(bundle)`` and ``benchmark_detection(bundle,
    make_model=model_factory("linear"), noise=0.1, folds=2, epochs=5)``, timed around the
    call). Time grows with samples x epochs x trainings, and with the model: a model that is
    not a small kind of :func:`cartokit.models.model_factory` trains on all of torch's
    threads. For a quick look, lower ``epochs``, ``folds`` (or ``None``) and pass one
    ``noise`` rate.

    Parameters
    ----------
    data : Split or DataBundle
        The clean training split (a bundle's ``train``; its ``test`` is then scored too).
    make_model : callable, optional
        ``make_model(split) -> torch.nn.Module``, a fresh model each call, such as
        ``model_factory("linear")`` (not a model: each training starts anew). Default:
        ``model_factory("mlp", seed=seed)`` (array inputs only; for text, embed first, see
        :func:`cartokit.study.model_data`). Small models of :func:`cartokit.models.model_factory`
        train on one torch thread (:func:`cartokit.models.threads_for`).
    noise : float or dict, optional
        Setting name -> ``{"rate": r}`` (symmetric: ``round(r N)`` labels moved to another class
        uniformly) or ``{"transition": T}`` (class-dependent); a float ``r`` in (0, 1) is one
        symmetric setting, named ``"symmetric {100 r}%"``. Default: symmetric 10 % and 30 %,
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

    Examples
    --------
    A quick run: one noise setting, a linear model, 3 epochs, no K-fold baseline.

    >>> from cartokit import load_dataset
    >>> from cartokit.models import model_factory
    >>> bench = benchmark_detection(
    ...     load_dataset("digits"), make_model=model_factory("linear"), noise=0.1, folds=None,
    ...     epochs=3, methods=["aum", "combined"],
    ... )
    >>> print(bench.table[["setting", "method", "flipped", "trainings"]].to_string(index=False))
          setting   method  flipped  trainings
    symmetric 10%      aum      144          1
    symmetric 10% combined      144          1
    """
    from cartokit.models import threads_for

    caller = "benchmark_detection"
    data, test = _train_and_test(data, caller=caller)
    seed = check_int("seed", seed, caller=caller, minimum=0)
    make_model = _default_model(make_model, data, seed, caller=caller)
    epochs = check_int("epochs", epochs, caller=caller, minimum=2)
    settings = _check_noise(noise, data.num_classes, seed, caller=caller)
    methods = _check_methods(methods, caller=caller)
    folds = _check_folds(folds, caller=caller)
    fit_options = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed}
    with threads_for(make_model):
        _warm_up(make_model, data, fit_options)
        outcomes = [
            _benchmark_setting(
                name, data, spec, test, make_model, methods, folds, fit_options, progress
            )
            for name, spec in settings.items()
        ]
    return DetectionBenchmark(
        table=pd.DataFrame([row for _, rows, _ in outcomes for row in rows]),
        scores={run["setting"]: frame for run, _, frame in outcomes},
        runs=pd.DataFrame([run for run, _, _ in outcomes]).set_index("setting"),
        folds=folds or 0,
        settings=list(settings),
    )


def _train_and_test(data: Any, *, caller: str) -> tuple[Split, Split | None]:
    from cartokit.data import DataBundle, Split

    test = None
    if isinstance(data, DataBundle):
        data, test = data.train, data.test
    if not isinstance(data, Split):
        raise TypeError(
            f"The 'data' parameter of {caller} must be a cartokit Split or DataBundle. "
            f"Got {type(data).__name__} instead."
        )
    return data, test


def _check_methods(methods: Sequence[str] | None, *, caller: str) -> list[str]:
    if methods is None:
        return [m for m in METHODS if m != "cleanlab" or _has_cleanlab()]
    methods = [_check_method(m, caller=caller) for m in methods]
    if "cleanlab" in methods and not _has_cleanlab():
        raise ImportError(
            f"The 'cleanlab' method needs the optional cleanlab package: {CLEANLAB_HINT}."
        )
    return methods


def _check_folds(folds: int | None, *, caller: str) -> int | None:
    if folds is None:
        return None
    folds = check_int("folds", folds, caller=caller, minimum=2)
    if not _has_cleanlab():
        warnings.warn(
            f"{caller}: cleanlab is not installed, so the K-fold baseline is skipped. "
            f"Install it with {CLEANLAB_HINT}.",
            UserWarning,
            stacklevel=3,
        )
        return None
    return folds


def _default_model(
    make_model: Callable[[Split], nn.Module] | None, data: Split, seed: int, *, caller: str
) -> Callable[[Split], nn.Module]:
    from cartokit.models import model_factory

    if make_model is not None:
        return check_model_maker(make_model, caller=caller, default=", or None for an MLP")
    if data.kind == "text":
        raise ValueError(
            f"{caller}: the default model (an MLP) needs array inputs, and {data.name!r} "
            "holds text. Pass make_model=, or embed the texts first "
            "(cartokit.study.model_data(bundle, model='minilm'))."
        )
    return model_factory("mlp", seed=seed)


def _warm_up(
    make_model: Callable[[Split], nn.Module], data: Split, fit_options: Mapping[str, Any]
) -> None:
    """An untimed epoch: one-off start-up costs (allocator, kernels) must not land on the
    first timed training."""
    from cartokit.train import fit

    fit(make_model(data), data, **{**fit_options, "epochs": 1, "record": False, "progress": False})


def _benchmark_setting(
    name: str,
    data: Split,
    spec: Mapping[str, Any],
    test: Split | None,
    make_model: Callable[[Split], nn.Module],
    methods: Sequence[str],
    folds: int | None,
    fit_options: Mapping[str, Any],
    progress: bool,
) -> tuple[dict[str, Any], list[dict[str, Any]], pd.DataFrame]:
    """One noise setting: flip, train once while recording, score; the K-fold baseline."""
    from cartokit.metrics import compute_metrics
    from cartokit.noise import inject_noise

    noisy = inject_noise(data, seed=fit_options["seed"], **spec)
    flipped = noisy.frame["flipped"].to_numpy(dtype=bool)
    if not flipped.any():
        raise ValueError(f"benchmark_detection: the noise setting {name!r} flipped no label.")
    started, cpu = time.perf_counter(), time.process_time()
    result = recorded_run(make_model, noisy, progress=progress, **fit_options)
    single_cost = {
        "trainings": 1,
        "train_seconds": time.perf_counter() - started,
        "train_cpu_seconds": time.process_time() - cpu,
        "sample_epochs": len(noisy) * fit_options["epochs"],
    }
    metrics = compute_metrics(result.dynamics)
    run = {
        "setting": name,
        "samples": len(noisy),
        "flipped": int(flipped.sum()),
        "train_accuracy": float(result.history["train_accuracy"].iloc[-1]),
    }
    if test is not None:
        run["test_accuracy"] = _accuracy(result.model, test)
    scores = {m: score_mislabeled(metrics, m, dynamics=result.dynamics) for m in methods}
    rows = [_row(name, m, m, "single run", scores[m], flipped, single_cost) for m in methods]
    if folds is not None:
        probs, kfold_cost = cross_val_probs(make_model, noisy, folds=folds, **fit_options)
        column = f"cleanlab ({folds}-fold)"
        scores[column] = score_mislabeled(metrics, "cleanlab", pred_probs=probs)
        rows.append(_row(name, column, "cleanlab", "K-fold", scores[column], flipped, kfold_cost))
    frame = pd.DataFrame({k: v.to_numpy() for k, v in scores.items()}, index=metrics.index)
    frame["flipped"] = flipped
    return run, rows, frame


def _accuracy(model: nn.Module, test: Split) -> float:
    from cartokit.train import predict_logits

    predictions = predict_logits(model, test).argmax(axis=1)
    return float((predictions == test.labels).mean())


def _row(
    setting: str,
    column: str,
    method: str,
    approach: str,
    scores: pd.Series,
    flipped: np.ndarray,
    cost: Mapping[str, float],
) -> dict[str, Any]:
    quality = _quality(pd.Series(scores.to_numpy()), method, flipped)
    return {
        "setting": setting,
        "method": column,
        "approach": approach,
        "flipped": int(flipped.sum()),
        **quality,
        **cost,
    }


# ----------------------------------------------------------------------------------------------
# Training for detection


def recorded_run(
    make_model: Callable[[Split], nn.Module],
    train: Split,
    *,
    eval_data: Mapping[str, Any] | None = None,
    epochs: int = 20,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = False,
) -> FitResult:
    """Train one fresh model on ``train`` while recording, per-epoch probabilities included.

    The one training that every single-run score of :func:`~cartokit.mislabel.score_mislabeled`
    needs: the recorder keeps each sample's full probability vector at every epoch
    (``store_probs=True``), which the ``"cleanlab"`` method averages. Small models of the
    registry train on one torch thread (:func:`cartokit.models.threads_for`).

    Parameters
    ----------
    make_model : callable
        ``make_model(split) -> torch.nn.Module``, e.g. :func:`cartokit.models.model_factory`.
    train : Split
    eval_data : dict of str to data, optional
        As in :func:`~cartokit.fit`.
    epochs, batch_size, lr, seed, progress
        As in :func:`~cartokit.fit`.

    Returns
    -------
    FitResult
    """
    from cartokit.models import threads_for
    from cartokit.recorder import DynamicsRecorder
    from cartokit.train import fit

    make_model = check_model_maker(make_model, caller="recorded_run")
    recorder = DynamicsRecorder(
        len(train),
        train.num_classes,
        sample_ids=train.ids,
        class_names=train.class_names,
        store_probs=True,
    )
    with threads_for(make_model):
        return fit(
            make_model(train), train, recorder=recorder, eval_data=eval_data, epochs=epochs,
            batch_size=batch_size, lr=lr, seed=seed, progress=progress,
        )  # fmt: skip


def retrain_comparison(
    make_model: Callable[[Split], nn.Module],
    trainings: Mapping[str, Split],
    test: Split,
    *,
    epochs: int = 20,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
) -> pd.DataFrame:
    """Train the same fresh model on each training set (e.g. the labels before and after a
    review) and score it on ``test``.

    Parameters
    ----------
    make_model : callable
        ``make_model(split) -> torch.nn.Module``, a fresh model each call.
    trainings : dict of str to Split
        Name -> training split, e.g. ``{"noisy labels": train, "after review":
        apply_review(train, log)}``.
    test : Split
    epochs, batch_size, lr, seed
        As in :func:`~cartokit.fit`, the same for every training.

    Returns
    -------
    pandas.DataFrame
        Indexed by name: ``samples``; ``wrong labels``, the labels that differ from the
        frame's ``clean_label`` (when the split has one, as after
        :func:`~cartokit.inject_noise`); and ``test accuracy``.
    """
    from cartokit.models import threads_for
    from cartokit.train import evaluate, fit

    caller = "retrain_comparison"
    make_model = check_model_maker(make_model, caller=caller)
    if not isinstance(trainings, Mapping) or not trainings:
        raise TypeError(
            f"The 'trainings' parameter of {caller} must be a non-empty dict from names to "
            f"training splits. Got {type(trainings).__name__} instead."
        )
    rows = {}
    with threads_for(make_model):
        for name, train in trainings.items():
            model = fit(
                make_model(train), train, epochs=epochs, batch_size=batch_size, lr=lr,
                seed=seed, record=False, progress=False,
            ).model  # fmt: skip
            row: dict[str, Any] = {"samples": len(train)}
            if "clean_label" in train.frame.columns:
                clean = train.frame["clean_label"].to_numpy()
                row["wrong labels"] = int((train.labels != clean).sum())
            row["test accuracy"] = evaluate(model, test).accuracy
            rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")
