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
from cartokit.models import threads_for
from cartokit.train import FitResult, evaluate, fit
from cartokit.train.batches import resolve_device

if TYPE_CHECKING:
    from cartokit.data import Split

__all__ = ["budget_epochs", "distill", "distill_on_subsets", "kd_loss"]


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
) -> pd.DataFrame:
    """Distil a fresh student on each subset and compare them on the evaluation sets.

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

    Returns
    -------
    pandas.DataFrame
        Indexed by subset name: ``samples``, ``epochs``, ``steps``, ``sample_epochs``, the
        final ``<name>_accuracy`` of each evaluation set, and ``train_seconds``.
    """
    caller = "distill_on_subsets"
    if not isinstance(subsets, Mapping) or not subsets:
        raise TypeError(
            f"The 'subsets' parameter of {caller} must be a non-empty dict from names to sample "
            f"ids (or None for all the data). Got {type(subsets).__name__} instead."
        )
    check_model_maker(make_student, caller=caller, name="make_student")
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
            rows.append(row)
    return pd.DataFrame(rows).set_index("subset")
