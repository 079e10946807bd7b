"""Scoring a model on held-out data: :func:`evaluate`, :func:`predict_logits`, :class:`Evaluation`.

Both run the model in eval mode (dropout off) without gradients, and leave it in the mode it was
in. :func:`evaluation_pass` is the scored pass itself, which :func:`~cartokit.train.fit` also runs
on its evaluation sets at every checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from cartokit._validation import check_int
from cartokit.train.batches import (
    Data,
    as_data,
    check_batch_labels,
    check_classes,
    loader,
    logits_of,
    probe,
    to_device,
)
from cartokit.train.progress import progress_bar

__all__ = ["Evaluation", "evaluate", "evaluation_pass", "predict_logits"]


@dataclass
class Evaluation:
    """What :func:`evaluate` returns.

    Attributes
    ----------
    loss : float
        Mean cross-entropy.
    accuracy : float
    macro_f1 : float
        F1 averaged over the classes present in the labels or the predictions (as scikit-learn's
        ``f1_score(average="macro")``).
    per_class_accuracy : pandas.Series
        Accuracy (recall) of each class, indexed by class name; NaN for a class with no samples.
    predictions : numpy.ndarray
        Predicted class of each sample, in data order.
    """

    loss: float
    accuracy: float
    macro_f1: float
    per_class_accuracy: pd.Series
    predictions: np.ndarray

    def __repr__(self) -> str:
        return (
            f"Evaluation(loss={self.loss:.4f}, accuracy={self.accuracy:.4f}, "
            f"macro_f1={self.macro_f1:.4f})"
        )


def _scores(loss_sum: float, preds: np.ndarray, labels: np.ndarray, names: list[str]) -> Evaluation:
    num_classes = len(names)
    n_true = np.bincount(labels, minlength=num_classes)
    n_pred = np.bincount(preds, minlength=num_classes)
    hits = np.bincount(labels[preds == labels], minlength=num_classes)
    present = (n_true + n_pred) > 0
    f1 = 2 * hits[present] / (n_true + n_pred)[present]
    recall = np.full(num_classes, np.nan)
    np.divide(hits, n_true, out=recall, where=n_true > 0)
    return Evaluation(
        loss=loss_sum / len(labels),
        accuracy=float(hits.sum() / len(labels)),
        macro_f1=float(f1.mean()),
        per_class_accuracy=pd.Series(recall, index=pd.Index(names, name="class"), name="accuracy"),
        predictions=preds,
    )


@torch.no_grad()
def evaluation_pass(
    model: nn.Module,
    batches: DataLoader,
    data: Data,
    num_classes: int,
    device: torch.device,
    *,
    caller: str,
    desc: str,
    show: bool,
) -> Evaluation:
    """An eval-mode pass over ``batches``, scored. The labels of data whose labels were not
    known up front are checked batch by batch, before the loss sees them."""
    was_training = model.training
    model.eval()
    loss = torch.zeros((), dtype=torch.float64, device=device)
    preds, labels = [], []
    bar = progress_bar(batches, desc=desc, leave=False, disable=not show)
    for step, (_, x, y) in enumerate(bar):
        if data.labels is None:
            check_batch_labels(y, num_classes, caller=caller, step=step + 1)
        y = y.to(device)
        logits = logits_of(model(to_device(x, device)))
        loss += F.cross_entropy(logits.float(), y, reduction="sum")
        preds.append(logits.argmax(dim=1).cpu())
        labels.append(y.cpu())
    model.train(was_training)
    names = data.class_names or [str(c) for c in range(num_classes)]
    return _scores(float(loss), torch.cat(preds).numpy(), torch.cat(labels).numpy(), names)


def _model_device(model: nn.Module, device: Any) -> torch.device:
    """``device``, or by default the device of the model's parameters (the CPU if it has none)."""
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    return torch.device(device)


def evaluate(
    model: nn.Module,
    data: Any,
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> Evaluation:
    """Accuracy, macro-F1, cross-entropy and per-class accuracy of ``model`` on ``data``.

    The model runs in eval mode (dropout off) without gradients, and is left in the mode it
    was in.

    Parameters
    ----------
    model : torch.nn.Module
        Maps a batch of inputs to logits ``(batch, num_classes)`` (or an output with
        ``.logits``).
    data : Split, torch Dataset of ``(position, x, label)`` triples, or ``(inputs, labels)``
    batch_size : int, default 256
    device : str or torch.device, optional
        Default: the device of the model's parameters.
    progress : bool, default False
        Show a tqdm progress bar.

    Returns
    -------
    Evaluation

    Examples
    --------
    >>> import numpy as np, torch
    >>> model = torch.nn.Linear(2, 2)
    >>> evaluate(model, (np.eye(2, dtype="float32"), [0, 1])).per_class_accuracy.shape
    (2,)
    """
    caller = "evaluate"
    batch_size = check_int("batch_size", batch_size, caller=caller, minimum=1)
    prepared = as_data(data, caller=caller, name="data")
    if len(prepared.dataset) == 0:
        raise ValueError(f"{caller}: data is empty; evaluate needs at least one sample.")
    device = _model_device(model, device)
    num_classes = probe(model, prepared.dataset, device, caller=caller)
    check_classes(prepared, num_classes, caller=caller, name="data")
    batches = loader(prepared.dataset, batch_size)
    return evaluation_pass(
        model, batches, prepared, num_classes, device, caller=caller, desc="evaluate", show=progress
    )


@torch.no_grad()
def predict_logits(
    model: nn.Module, data: Any, *, batch_size: int = 256, device: Any = None
) -> np.ndarray:
    """The model's logits for every sample of ``data``, in data order, as float32 ``(N, C)``.

    The model runs in eval mode (dropout off) without gradients, and is left in the mode it was in.

    Parameters
    ----------
    model : torch.nn.Module
    data : Split, torch Dataset of ``(position, x, label)`` triples, or ``(inputs, labels)``
    batch_size : int, default 256
    device : str or torch.device, optional
        Default: the device of the model's parameters.

    Examples
    --------
    >>> import numpy as np, torch
    >>> predict_logits(torch.nn.Linear(3, 2), (np.zeros((4, 3), "float32"), [0, 1, 0, 1])).shape
    (4, 2)
    """
    caller = "predict_logits"
    batch_size = check_int("batch_size", batch_size, caller=caller, minimum=1)
    prepared = as_data(data, caller=caller, name="data")
    device = _model_device(model, device)
    was_training = model.training
    model.eval()
    chunks = [
        logits_of(model(to_device(x, device))).float().cpu()
        for _, x, _ in loader(prepared.dataset, batch_size)
    ]
    model.train(was_training)
    return torch.cat(chunks).numpy()
