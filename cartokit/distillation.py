"""Knowledge distillation on data-map subsets: :func:`distill` and :func:`distill_on_subsets`.

:func:`distill` trains a student on a teacher's softened predictions with the loss of Hinton,
Vinyals and Dean (2015), "Distilling the Knowledge in a Neural Network", and records the
student's own training dynamics as :func:`~cartokit.fit` does. Its ``subset`` option trains on
part of the data, e.g. the teacher map's ambiguous third; :func:`distill_on_subsets` compares
such subsets at an equal training budget.

The module is named ``distillation`` so that no submodule shadows the function: ``ck.distill``
is :func:`distill` whatever has been imported.

Examples
--------
>>> import numpy as np
>>> from cartokit.data import load_dataset
>>> from cartokit.models import MLP
>>> from cartokit.train import fit
>>> bundle = load_dataset("digits")
>>> teacher = fit(MLP.from_split(bundle.train, seed=0), bundle.train, epochs=3,
...               progress=False).model
>>> student = MLP.from_split(bundle.train, hidden=(16,), seed=1)
>>> result = distill(teacher, student, bundle.train, epochs=3, subset=bundle.train.ids[:500])
>>> result.dynamics.num_samples, result.dynamics.num_epochs
(500, 3)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

import cartokit.train
from cartokit._deprecation import moved
from cartokit._validation import (
    Interval,
    check_int,
    check_model_maker,
    check_param,
    param_error,
    positions_of,
)
from cartokit.compression import PRUNING, Compression, compressions, keep_sparsity, model_size
from cartokit.compression import compress as compress_model
from cartokit.models import threads_for
from cartokit.train import FitResult, evaluate, fit
from cartokit.train.batches import resolve_device

if TYPE_CHECKING:
    from cartokit.data import Split

__all__ = ["budget_epochs", "compression_table", "distill", "distill_on_subsets", "kd_loss"]


__getattr__ = moved(__name__, {"predict_logits": "cartokit.train.predict_logits"})


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    temperature: float = 4.0,
    alpha: float = 0.9,
) -> torch.Tensor:
    r"""The knowledge-distillation loss of Hinton et al. (2015), averaged over the batch.

    .. math::

        \alpha\,T^2\,\mathrm{KL}\big(\mathrm{softmax}(t/T)\,\|\,\mathrm{softmax}(s/T)\big)
        + (1 - \alpha)\,\mathrm{CE}(s, y)

    with student logits ``s``, teacher logits ``t``, gold labels ``y`` and temperature ``T``;
    the ``T^2`` keeps the soft term's gradients on the scale of the hard term's as ``T`` varies.
    ``alpha = 1`` learns from the teacher alone, ``alpha = 0`` is plain cross-entropy.

    Examples
    --------
    >>> s = torch.tensor([[2.0, 0.0]]); y = torch.tensor([0])
    >>> float(kd_loss(s, s, y, alpha=1.0))  # the student already matches the teacher
    0.0
    """
    soft_teacher = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    soft_student = F.log_softmax(student_logits.float() / temperature, dim=1)
    soft = F.kl_div(soft_student, soft_teacher, log_target=True, reduction="batchmean")
    hard = F.cross_entropy(student_logits.float(), labels)
    return alpha * temperature**2 * soft + (1.0 - alpha) * hard


def _check_temperature(value: Any, *, caller: str) -> float:
    value = check_param(
        "temperature", value, Interval(float, 0, None, closed="neither"), caller=caller
    )
    if not math.isfinite(value):
        raise param_error("temperature", caller, "a finite float > 0", value)
    return value


def _subset_positions(split: Split, subset: Any, *, caller: str) -> np.ndarray:
    """Rows of ``split`` holding the ids of ``subset``: each id once, every one found."""
    ids = np.asarray(subset.to_numpy() if isinstance(subset, (pd.Index, pd.Series)) else subset)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError(
            f"The 'subset' parameter of {caller} must be a non-empty 1-D sequence of sample ids "
            f"of data, such as the output of select. Got shape {ids.shape} instead."
        )
    positions = positions_of(
        split.ids, ids, caller=caller, what=f"the sample ids of {split.name!r}"
    )
    if np.unique(positions).size != positions.size:
        raise ValueError(f"{caller}: subset repeats sample ids; give each once.")
    return positions


def distill(
    teacher: nn.Module | None,
    student: nn.Module,
    data: Split,
    *,
    temperature: float = 4.0,
    alpha: float = 0.9,
    subset: Sequence[Any] | np.ndarray | None = None,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    eval_data: Mapping[str, Any] | None = None,
    teacher_logits: Any = None,
    seed: int = 0,
    device: Any = None,
    progress: bool = False,
) -> FitResult:
    """Train ``student`` by knowledge distillation from ``teacher``, recording its dynamics.

    The teacher's logits are computed once, in eval mode, before training (pass
    ``teacher_logits`` to reuse them across students). Then :func:`~cartokit.fit` trains the
    student with :func:`kd_loss` as its ``loss_fn``: the same seeded shuffle (``seed + epoch``),
    an AdamW step per batch, the student's training-pass logits recorded against the *given*
    labels, so its data map is comparable with a map from :func:`~cartokit.fit`.

    Parameters
    ----------
    teacher : torch.nn.Module or None
        The trained teacher; ``None`` when ``teacher_logits`` are given.
    student : torch.nn.Module
        Trained in place; left in eval mode.
    data : Split
        The training split (the teacher's, or one with the same ids).
    temperature : float > 0, default 4.0
        Softens both distributions (``T`` in :func:`kd_loss`).
    alpha : float in [0, 1], default 0.9
        Weight of the soft (teacher) term; ``1 - alpha`` weighs cross-entropy on the labels.
    subset : sequence of sample ids, optional
        Train on these samples of ``data`` only (e.g. from :func:`~cartokit.select` on the
        teacher's map). The recorded dynamics then cover just them.
    epochs, batch_size, lr, weight_decay
        As in :func:`~cartokit.fit`.
    eval_data : dict of str to data, optional
        Evaluated after every epoch: ``<name>_loss``, ``<name>_accuracy``, ``<name>_macro_f1``
        columns of the history.
    teacher_logits : array-like of shape (len(data), C), optional
        The teacher's logits for every row of ``data`` (not only the subset).
    seed : int, default 0
    device : str or torch.device, optional
        Default: CUDA when available, else the CPU.
    progress : bool, default False
        Show fit's progress bars.

    Returns
    -------
    FitResult
        ``.model`` (the student), ``.history`` (``epoch``, ``step``, ``train_loss`` (the KD
        loss), ``train_accuracy`` and the evaluation columns), ``.recorder`` and ``.dynamics``.
    """
    from cartokit.data import Split

    caller = "distill"
    if not isinstance(data, Split):
        raise TypeError(
            f"The 'data' parameter of {caller} must be a cartokit Split. "
            f"Got {type(data).__name__} instead."
        )
    temperature = _check_temperature(temperature, caller=caller)
    alpha = check_param("alpha", alpha, Interval(float, 0, 1), caller=caller)
    epochs = check_int("epochs", epochs, caller=caller, minimum=1)
    batch_size = check_int("batch_size", batch_size, caller=caller, minimum=1)
    seed = check_int("seed", seed, caller=caller, minimum=0)
    device = resolve_device(device)
    if teacher_logits is None:
        if teacher is None:
            raise ValueError(f"{caller} needs a teacher model or its teacher_logits. Got neither.")
        teacher.to(device)
        teacher_logits = cartokit.train.predict_logits(teacher, data, device=device)
    targets = torch.as_tensor(np.asarray(teacher_logits, dtype=np.float32))
    if targets.shape != (len(data), data.num_classes):
        raise ValueError(
            f"The 'teacher_logits' parameter of {caller} must have shape ({len(data)}, "
            f"{data.num_classes}), one row per sample of data. Got {tuple(targets.shape)}."
        )
    train = data
    if subset is not None:
        positions = _subset_positions(data, subset, caller=caller)
        train = data.subset(positions, name=f"{data.name}[subset]")
        targets = targets[torch.from_numpy(positions)]
    targets = targets.to(device)

    def loss_fn(logits: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        # rows: the batch's positions in train, so the matching rows of the teacher's logits
        teacher_rows = targets[rows.to(device)]
        return kd_loss(logits, teacher_rows, labels, temperature=temperature, alpha=alpha)

    return fit(
        student, train, loss_fn=loss_fn, epochs=epochs, batch_size=batch_size, lr=lr,
        weight_decay=weight_decay, eval_data=eval_data, seed=seed, device=device,
        progress=progress,
    )  # fmt: skip


def budget_epochs(full_size: int, subset_size: int, epochs: int) -> int:
    """Epochs on a subset that match ``epochs`` on the full data in samples trained on.

    ``round(epochs * full_size / subset_size)``, at least 1: a third of the data trains three
    times as many epochs, so every run takes about the same number of optimizer steps.

    >>> budget_epochs(1000, 330, 10)
    30
    """
    caller = "budget_epochs"
    full_size = check_int("full_size", full_size, caller=caller, minimum=1)
    subset_size = check_int("subset_size", subset_size, caller=caller, minimum=1)
    epochs = check_int("epochs", epochs, caller=caller, minimum=1)
    return max(1, int(math.floor(epochs * full_size / subset_size + 0.5)))


def distill_on_subsets(
    teacher: nn.Module | None,
    make_student: Callable[[Split], nn.Module],
    data: Split,
    subsets: Mapping[str, Sequence[Any] | np.ndarray | None],
    *,
    teacher_logits: Any = None,
    epochs: int = 10,
    equal_budget: bool = True,
    temperature: float = 4.0,
    alpha: float = 0.9,
    eval_data: Mapping[str, Any] | None = None,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    compress: Any = None,
    finetune_epochs: int | None = None,
) -> pd.DataFrame:
    """Distil a fresh student on each subset and compare them on the evaluation sets.

    With ``compress``, each subset's student is also compressed (:func:`cartokit.compression.
    compress`), in each way given, and the compressed copies are evaluated beside it. A pruned
    copy is then distilled again on the same subset, its zeros held at zero
    (:func:`~cartokit.compression.keep_sparsity`), for ``finetune_epochs`` (at the same equal
    budget); a quantized copy is calibrated, for ``"quantize_static"``, on up to 2,048 rows of
    the subset, and evaluated on the CPU. So every model of a row learned from its subset only.

    Parameters
    ----------
    teacher : torch.nn.Module or None
        ``None`` when ``teacher_logits`` are given.
    make_student : callable
        ``make_student(split) -> torch.nn.Module``, a fresh student each call.
    data : Split
    subsets : dict of str to ids or None
        Name -> sample ids of ``data`` (``None``: all of it), e.g. ``{"full": None,
        "ambiguous 33%": select(teacher_metrics, "ambiguous", 0.33)}``.
    teacher_logits : array-like of shape (len(data), C), optional
        The teacher's logits for the rows of ``data``, e.g. from
        :func:`~cartokit.train.predict_logits` on the teacher's own inputs when they differ from
        the student's (texts and embeddings).
    epochs : int, default 10
        Epochs on the full data.
    equal_budget : bool, default True
        Train each subset for :func:`budget_epochs` epochs, so that every student is trained on
        about ``epochs * len(data)`` samples; else ``epochs`` each.
    temperature, alpha, batch_size, lr, seed
        As in :func:`distill`.
    eval_data : dict of str to data, optional
        E.g. ``{"test": bundle.test, "tweets": bundle.ood["tweets"]}``.
    compress : str, (str, float) or list of them, optional
        Methods of :func:`~cartokit.compression.compress`, with their amounts for pruning,
        e.g. ``[("prune", 0.5), ("prune", 0.8), "quantize_dynamic"]``.
    finetune_epochs : int >= 0, optional
        Epochs on the full data (scaled as ``epochs`` are) of distillation after pruning; 0
        keeps the pruned student as pruned. Default: half of ``epochs``, at least 2 (the
        pruned student's map needs 2 checkpoints).

    Returns
    -------
    pandas.DataFrame
        Indexed by subset name: ``samples``, ``epochs``, ``steps``, ``sample_epochs``, the
        final ``<name>_accuracy`` of each evaluation set, and ``train_seconds``. With
        ``compress``, indexed by ``(subset, compression)``, the uncompressed student first
        (compression ``"none"``), with also ``method``, ``amount``, ``finetune_epochs``,
        ``parameters``, ``nonzero_params``, ``size_bytes``, ``zipped_bytes``
        (:class:`~cartokit.compression.ModelSize`) and ``compress_seconds``;
        ``train_seconds`` counts the fine-tuning too.
    """
    caller = "distill_on_subsets"
    if not isinstance(subsets, Mapping) or not subsets:
        raise TypeError(
            f"The 'subsets' parameter of {caller} must be a non-empty dict from names to sample "
            f"ids (or None for all the data). Got {type(subsets).__name__} instead."
        )
    check_model_maker(make_student, caller=caller, name="make_student")
    plans = None if compress is None else compressions(compress, caller=caller)
    if finetune_epochs is None:
        finetune_epochs = max(2, check_int("epochs", epochs, caller=caller, minimum=1) // 2)
    finetune_epochs = check_int("finetune_epochs", finetune_epochs, caller=caller, minimum=0)
    if teacher_logits is None:
        if teacher is None:
            raise ValueError(f"{caller} needs a teacher model or its teacher_logits. Got neither.")
        # once, shared by every student
        teacher_logits = cartokit.train.predict_logits(teacher, data)
    logits = np.asarray(teacher_logits, dtype=np.float32)
    rows = []
    with threads_for(make_student):  # small students train fastest on one thread
        for name, ids in subsets.items():
            size = len(data) if ids is None else len(ids)
            run_epochs = budget_epochs(len(data), size, epochs) if equal_budget else epochs
            started = time.perf_counter()
            result = distill(
                None, make_student(data), data, teacher_logits=logits, subset=ids,
                temperature=temperature, alpha=alpha, epochs=run_epochs, batch_size=batch_size,
                lr=lr, seed=seed,
            )  # fmt: skip
            seconds = time.perf_counter() - started  # training only: evaluation comes after
            row = {
                "subset": name,
                "samples": size,
                "epochs": run_epochs,
                "steps": int(result.history["step"].iloc[-1]),
                "sample_epochs": size * run_epochs,
            }
            for key, split in (eval_data or {}).items():
                row[f"{key}_accuracy"] = evaluate(result.model, split).accuracy
            row["train_seconds"] = seconds
            if plans is None:
                rows.append(row)
                continue
            options = {
                "teacher_logits": logits,
                "subset": ids,
                "temperature": temperature,
                "alpha": alpha,
                "batch_size": batch_size,
                "lr": lr,
                "seed": seed,
            }
            ft_epochs = budget_epochs(len(data), size, finetune_epochs) if finetune_epochs else 0
            rows += _compressed_rows(
                result.model, row, plans, data, options, eval_data or {}, ft_epochs
            )
    if plans is None:
        return pd.DataFrame(rows).set_index("subset")
    return pd.DataFrame(rows).set_index(["subset", "compression"])


def _compressed_rows(
    student: nn.Module,
    row: dict[str, Any],
    plans: list[Compression],
    data: Split,
    options: dict[str, Any],
    eval_data: Mapping[str, Any],
    finetune_epochs: int,
) -> list[dict[str, Any]]:
    """The row of the uncompressed student, sized, then one row per compression of it."""
    accuracy = {k: v for k, v in row.items() if k.endswith("_accuracy")}
    first = {
        **row,
        "compression": "none",
        "method": "none",
        "amount": np.nan,
        "finetune_epochs": 0,
        **vars(model_size(student)),
        "compress_seconds": 0.0,
    }
    rows, ids, caller = [first], options["subset"], "distill_on_subsets"
    positions = np.arange(len(data)) if ids is None else _subset_positions(data, ids, caller=caller)
    if len(positions) > 2048:  # a sample of the subset calibrates as well, and faster
        positions = np.random.default_rng(options["seed"]).choice(positions, 2048, replace=False)
    for plan in plans:
        started = time.perf_counter()
        if plan.method in PRUNING:
            model, size = compress_model(student, method=plan.method, amount=plan.amount)
        elif plan.method == "quantize_static":  # quantized models run on the CPU
            calibration = data.subset(np.sort(positions))
            model, size = compress_model(student.cpu(), method=plan.method, calibration=calibration)
        else:
            model, size = compress_model(student.cpu(), method=plan.method)
        compress_seconds = time.perf_counter() - started
        out = {
            **row,
            "compression": plan.label,
            "method": plan.method,
            "amount": np.nan if plan.amount is None else plan.amount,
            "finetune_epochs": 0,
        }
        if plan.method in PRUNING and finetune_epochs:
            started = time.perf_counter()
            with keep_sparsity(model):
                tuned = distill(None, model, data, epochs=finetune_epochs, **options)
            out["train_seconds"] += time.perf_counter() - started
            out["steps"] += int(tuned.history["step"].iloc[-1])
            out["sample_epochs"] += row["samples"] * finetune_epochs
            out["finetune_epochs"] = finetune_epochs
            size = model_size(model)
        for key in accuracy:
            out[key] = evaluate(model, eval_data[key.removesuffix("_accuracy")]).accuracy
        out.update(vars(size), compress_seconds=compress_seconds)
        rows.append(out)
    return rows


#: The size columns of :func:`distill_on_subsets` with ``compress`` (those of ``ModelSize``).
_SIZE_COLUMNS = ("parameters", "nonzero_params", "size_bytes", "zipped_bytes")


def _check_compression_results(results: Any, *, caller: str) -> pd.DataFrame:
    """``results`` of :func:`distill_on_subsets` with ``compress``: indexed by ``(subset,
    compression)``, with the size columns and at least one ``<name>_accuracy`` column."""
    expected = "the output of distill_on_subsets(..., compress=...)"
    if not isinstance(results, pd.DataFrame):
        raise TypeError(
            f"The 'results' parameter of {caller} must be a pandas DataFrame, {expected}. "
            f"Got {type(results).__name__} instead."
        )
    missing = [c for c in _SIZE_COLUMNS if c not in results.columns]
    if list(results.index.names) != ["subset", "compression"] or missing:
        raise ValueError(
            f"{caller}: results must be {expected}, indexed by (subset, compression) with the "
            f"columns {list(_SIZE_COLUMNS)}. Got the index {list(results.index.names)} and the "
            f"columns {list(results.columns)}."
        )
    if not any(c.endswith("_accuracy") for c in results.columns):
        raise ValueError(
            f"{caller}: results hold no accuracy column; pass eval_data to distill_on_subsets."
        )
    return results


def compression_table(results: pd.DataFrame) -> pd.DataFrame:
    """Accuracy against size: one row per compression, its size, then the accuracy of each
    evaluation set on each subset.

    Parameters
    ----------
    results : pandas.DataFrame
        From :func:`distill_on_subsets` with ``compress`` and ``eval_data``.

    Returns
    -------
    pandas.DataFrame
        Indexed by compression, in the order of ``results``. Columns, two levels: ``("size",
        c)`` for the size columns (means over subsets: a subset changes only how many weights
        quantize to zero, and how well the file deflates), then ``("<name> accuracy", subset)``
        per evaluation set and subset.
    """
    results = _check_compression_results(results, caller="compression_table")
    subsets = list(dict.fromkeys(results.index.get_level_values("subset")))
    order = list(dict.fromkeys(results.index.get_level_values("compression")))
    sizes = results[list(_SIZE_COLUMNS)].groupby(level="compression").mean().round()
    parts = {"size": sizes.astype(np.int64).reindex(order)}
    for column in (c for c in results.columns if c.endswith("_accuracy")):
        by_subset = results[column].unstack("subset").reindex(index=order, columns=subsets)
        parts[f"{column.removesuffix('_accuracy')} accuracy"] = by_subset
    table = pd.concat(parts, axis=1)
    table.columns.names = [None, None]
    return table
