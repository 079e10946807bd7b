"""The reference training loop, recording training dynamics: :func:`fit` and :func:`evaluate`.

:func:`fit` is a plain PyTorch loop meant to be read top to bottom: a seeded shuffle, a forward
pass, cross-entropy, a :class:`~cartokit.DynamicsRecorder` update, a backward pass and an
optimizer step; checkpoints close the recorder's epochs and evaluate the held-out sets. It also
runs unchanged under ``torchrun`` (DistributedDataParallel), and saves and resumes its state
mid-epoch.

Recording modes
---------------
``mode="train_pass"`` (default; what the paper's code does)
    Records the logits of the training forward pass itself. Nearly free: the logits exist
    anyway, and recording a batch costs two ``index_copy_`` calls (measured below). Each
    sample's logits come from a model that has trained on the samples before it in the epoch,
    with dropout on.
``mode="eval_pass"``
    At each checkpoint, runs an extra no-grad pass over the whole training set with the model
    in eval mode: dropout off, all samples seen by the same weights. Cleaner statistics, at the
    cost of one inference pass (about a third of a training epoch) per checkpoint. It is also
    the only way to get sub-epoch checkpoints in the map (``eval_every < 1``).

What recording costs, as the time of an epoch with recording over the same loop without it,
measured by ``python bench/recording_overhead.py`` (2 shared CPU cores, one torch thread, medians
of interleaved runs; the same figures are in the README's Performance table):

* the small MLP on digits (1,437 samples, batch 64, 11.4 ms an epoch unrecorded), the worst
  case: train pass 1.09, eval pass 1.17;
* fine-tuning all-MiniLM-L6-v2 at batch 32 (2.9 s an epoch of 96 snippets unrecorded): train
  pass 0.97 (within the noise), eval pass 1.24.

Recording costs about 1 ms per epoch of 1,437 samples (0.09 x 11.4 ms) whatever the model, so
its share vanishes as the model grows; the eval pass costs a forward pass over the training set.

Examples
--------
>>> from cartokit.data import load_dataset
>>> from cartokit.models import MLP
>>> bundle = load_dataset("digits")
>>> result = fit(MLP.from_split(bundle.train, seed=0), bundle.train, epochs=3,
...              eval_data={"test": bundle.test}, progress=False)
>>> result.dynamics  # doctest: +ELLIPSIS
TrainingDynamics(num_samples=1437, num_epochs=3, num_classes=10, class_names=[...])
>>> list(result.history.columns)
['epoch', 'step', 'train_loss', 'train_accuracy', 'test_loss', 'test_accuracy', 'test_macro_f1']
"""

from __future__ import annotations

import itertools
import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    DistributedSampler,
    Sampler,
    SequentialSampler,
    default_collate,
)
from tqdm.auto import tqdm

from cartokit._files import atomic_write
from cartokit._validation import check_int, check_labels, first_few
from cartokit.data.indexed import IndexedDataset
from cartokit.recorder import DynamicsRecorder

if TYPE_CHECKING:
    from cartokit.dynamics import TrainingDynamics

__all__ = ["MODES", "Evaluation", "FitResult", "evaluate", "fit"]

#: Recording modes of :func:`fit`.
MODES = ("train_pass", "eval_pass")

_CHECKPOINT_VERSION = 1


# ------------------------------------------------------------------------------ results


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes
    ----------
    model : torch.nn.Module
        The trained model (the one passed in, trained in place; never the DDP wrapper), left
        in eval mode.
    history : pandas.DataFrame
        One row per checkpoint: ``epoch`` (fractional with ``eval_every < 1``), ``step`` (optimizer
        steps so far), ``train_loss`` and ``train_accuracy`` (of the training passes since the
        previous checkpoint), then ``<name>_loss``, ``<name>_accuracy`` and ``<name>_macro_f1``
        for each evaluation set.
    recorder : DynamicsRecorder or None
        The recorder (``None`` with ``record=False``).
    """

    model: nn.Module
    history: pd.DataFrame
    recorder: DynamicsRecorder | None

    @property
    def dynamics(self) -> TrainingDynamics:
        """The recorded :class:`~cartokit.TrainingDynamics`."""
        if self.recorder is None:
            raise RuntimeError(
                "FitResult.dynamics: fit was run with record=False, so nothing was recorded. "
                "Run fit with record=True (the default)."
            )
        return self.recorder.dynamics


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


# ------------------------------------------------------------------------------ data


@dataclass
class _Data:
    """A dataset of ``(position, x, label)`` triples and what is known about it up front."""

    dataset: Dataset
    labels: np.ndarray | None  # None: not known before iterating, checked batch by batch
    sample_ids: np.ndarray | None
    class_names: list[str] | None


def _as_data(data: Any, *, caller: str, name: str) -> _Data:
    from cartokit.data import Split

    if isinstance(data, Split):
        return _Data(data.to_torch(), data.labels, data.ids, list(data.class_names))
    if isinstance(data, tuple) and len(data) == 2 and not isinstance(data, Dataset):
        inputs, labels = data
        inputs = list(inputs) if isinstance(inputs, tuple) else inputs
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(inputs) != labels.shape[0]:
            raise ValueError(
                f"{caller}: {name} as arrays must be (inputs, labels) with one label per input. "
                f"Got {len(inputs)} inputs and labels of shape {labels.shape}."
            )
        if labels.size and not np.issubdtype(labels.dtype, np.integer):
            raise TypeError(
                f"{caller}: {name} labels must be integer class indices. Got dtype "
                f"{labels.dtype}; map class names to indices first (e.g. pandas.factorize)."
            )
        if not isinstance(inputs, list):
            inputs = np.asarray(inputs, dtype=np.float32)
        return _Data(IndexedDataset(inputs, labels), labels.astype(np.int64), None, None)
    if isinstance(data, IndexedDataset):
        return _Data(data, data.labels.numpy(), None, None)
    if isinstance(data, Dataset) and hasattr(data, "__len__"):
        return _Data(data, None, None, None)
    raise TypeError(
        f"{caller}: {name} must be a cartokit Split, a torch Dataset of (position, x, label) "
        f"triples, or a tuple (inputs, labels). Got {type(data).__name__}."
    )


def _eval_sets(eval_data: Any, caller: str) -> dict[str, _Data]:
    if eval_data is None:
        return {}
    if not isinstance(eval_data, Mapping):
        raise TypeError(
            f"The 'eval_data' parameter of {caller} must be a dict from names to data, e.g. "
            f"{{'test': bundle.test}}. Got {type(eval_data).__name__}."
        )
    return {
        str(k): _as_data(v, caller=caller, name=f"eval_data[{k!r}]") for k, v in eval_data.items()
    }


def _check_batch_labels(y: torch.Tensor, num_classes: int, *, caller: str, step: int) -> None:
    """Labels of a dataset not known up front: checked as they arrive, before the loss sees them."""
    if y.dtype.is_floating_point or y.dtype == torch.bool or y.ndim != 1:
        raise TypeError(
            f"{caller}: labels must be one integer class index per sample. Batch {step} has "
            f"labels of dtype {y.dtype} and shape {tuple(y.shape)}."
        )
    bad = y[(y < 0) | (y >= num_classes)]
    if bad.numel():
        raise ValueError(
            f"{caller}: labels must be in [0, {num_classes}), the model's {num_classes} classes. "
            f"Batch {step} has {first_few(bad.tolist())}. Remap the labels, or build the model "
            "with the data's number of classes."
        )


class _EpochSampler(DistributedSampler):
    """``DistributedSampler`` (a seeded shuffle per epoch, split across ranks, padded to equal
    shares) that can start part-way into an epoch, for resuming."""

    def __init__(self, dataset: Dataset, *, world: int, rank: int, seed: int, shuffle: bool):
        super().__init__(
            dataset, num_replicas=world, rank=rank, shuffle=shuffle, seed=seed, drop_last=False
        )
        self.start = 0

    def __iter__(self):  # type: ignore[override]
        return itertools.islice(super().__iter__(), self.start, None)

    def __len__(self) -> int:
        return self.num_samples - self.start


class _InMemoryBatches(Dataset):
    """A batch of in-memory samples in one indexing operation. Fetching and collating sample by
    sample is most of an epoch's time for a small model; the batches are the same."""

    def __init__(self, data: IndexedDataset) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, positions: list[int]) -> tuple[torch.Tensor, Any, torch.Tensor]:
        idx = torch.as_tensor(positions)
        inputs = self.data.inputs
        x = [inputs[i] for i in positions] if self.data.text else inputs[idx]
        return idx, x, self.data.labels[idx]


def _loader(
    dataset: Dataset,
    batch_size: int,
    *,
    sampler: Sampler[int] | None = None,
    num_workers: int = 0,
) -> DataLoader:
    """Batches of ``(positions, x, labels)``, in ``sampler``'s order (default: data order)."""
    sampler = SequentialSampler(dataset) if sampler is None else sampler
    # A private generator: creating an iterator must not draw from the global RNG, which
    # drives dropout and is saved in checkpoints.
    options = {"num_workers": num_workers, "generator": torch.Generator()}
    if isinstance(dataset, IndexedDataset):
        batches = BatchSampler(sampler, batch_size, drop_last=False)
        return DataLoader(_InMemoryBatches(dataset), sampler=batches, batch_size=None, **options)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, **options)


def _to_device(x: Any, device: torch.device) -> Any:
    if torch.is_tensor(x):
        return x.to(device, non_blocking=True)
    if isinstance(x, Mapping):
        return {k: _to_device(v, device) for k, v in x.items()}
    return x  # text: a list of strings, which the model tokenizes


def _logits_of(output: Any) -> Any:
    # Hugging Face models return an output object holding the logits.
    return output.logits if hasattr(output, "logits") else output


# ------------------------------------------------------------------------------ checks


def _probe(model: nn.Module, dataset: Dataset, device: torch.device, *, caller: str) -> int:
    """Run the model on a few samples in eval mode; return its number of classes."""
    item = dataset[0]
    if not (isinstance(item, (tuple, list)) and len(item) == 3):
        got = f"a {len(item)}-tuple" if isinstance(item, (tuple, list)) else type(item).__name__
        raise TypeError(
            f"{caller}: the training dataset must yield (position, x, label) triples, the "
            f"position being the sample's row (what the recorder takes as its id). Got {got}. "
            "Pass a cartokit Split, or (inputs, labels) arrays."
        )
    size = min(len(dataset), 4)
    _, x, _ = default_collate([dataset[i] for i in range(size)])
    was_training = model.training
    model.eval()
    with torch.no_grad():
        logits = _logits_of(model(_to_device(x, device)))
    model.train(was_training)
    shape = tuple(logits.shape) if torch.is_tensor(logits) else type(logits).__name__
    if not (
        torch.is_tensor(logits)
        and logits.ndim == 2
        and logits.shape[0] == size
        and logits.shape[1] >= 2
        and logits.dtype.is_floating_point
    ):
        raise ValueError(
            f"{caller}: the model must return float logits of shape (batch, num_classes) with "
            f"num_classes >= 2. For a batch of {size} samples it returned {shape}. Return the "
            "classifier's raw scores (no softmax, no argmax, no squeeze)."
        )
    return int(logits.shape[1])


def _check_classes(data: _Data, num_classes: int, *, caller: str, name: str) -> None:
    if data.class_names is not None and len(data.class_names) != num_classes:
        raise ValueError(
            f"{caller}: the model returns {num_classes} logits per sample, but {name} has "
            f"{len(data.class_names)} classes {first_few(data.class_names)}. Build the model "
            f"with num_classes={len(data.class_names)}."
        )
    if data.labels is not None:
        check_labels(
            data.labels,
            num_classes,
            caller=caller,
            what=f"{name} labels",
            hint="Remap the labels, or build the model with the data's number of classes.",
        )


def _check_length(dataset: Dataset, expected: int, epoch: int, *, caller: str) -> None:
    if len(dataset) != expected:
        raise ValueError(
            f"{caller}: the training set had {expected} samples when training started and has "
            f"{len(dataset)} at the start of epoch {epoch}. Positions must address the same "
            "samples in every epoch: keep the dataset fixed while training (filter or augment "
            "inside __getitem__, not by changing its length)."
        )


def _checkpoint_steps(steps_per_epoch: int, eval_every: float) -> list[int]:
    """Steps (1-based, within an epoch) after which a checkpoint closes.

    The epoch is cut into ``k = ceil(1 / eval_every)`` runs of steps, as equal as possible;
    each run ends at step ``ceil(j * S / k)``, ``j = 1..k``, so the last is always step ``S``.
    With fewer steps than runs, each step closes one checkpoint.
    """
    k = math.ceil(1 / eval_every - 1e-9)
    return sorted({-(-j * steps_per_epoch // k) for j in range(1, k + 1)})


def _resolve_device(device: Any) -> torch.device:
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


# ------------------------------------------------------------------------------ running stats


class _Running:
    """Training loss and accuracy since the last checkpoint, summed on the device, so that a
    step never waits for an accelerator; read (and summed over ranks) only when shown."""

    def __init__(self, device: torch.device) -> None:
        dtype = torch.float32 if device.type == "mps" else torch.float64
        self.sums = torch.zeros(3, dtype=dtype, device=device)  # loss sum, correct, count

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        with torch.no_grad():
            n = y.shape[0]
            self.sums[0] += loss.detach() * n
            self.sums[1] += (logits.argmax(dim=1) == y).sum()
            self.sums[2] += n

    def values(self, *, all_ranks: bool = False) -> tuple[float, float]:
        sums = self.sums.clone()
        if all_ranks and _world()[1] > 1:
            dist.all_reduce(sums)
        loss, correct, count = sums.tolist()
        return (loss / count, correct / count) if count else (math.nan, math.nan)


# ------------------------------------------------------------------------------ evaluation


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
def _evaluate(
    model: nn.Module,
    loader: DataLoader,
    data: _Data,
    num_classes: int,
    device: torch.device,
    *,
    caller: str,
    desc: str,
    show: bool,
) -> Evaluation:
    """An eval-mode pass over ``loader``, scored. The labels of data whose labels were not
    known up front are checked batch by batch, before the loss sees them."""
    was_training = model.training
    model.eval()
    loss = torch.zeros((), dtype=torch.float64, device=device)
    preds, labels = [], []
    for step, (_, x, y) in enumerate(tqdm(loader, desc=desc, leave=False, disable=not show)):
        if data.labels is None:
            _check_batch_labels(y, num_classes, caller=caller, step=step + 1)
        y = y.to(device)
        logits = _logits_of(model(_to_device(x, device)))
        loss += F.cross_entropy(logits.float(), y, reduction="sum")
        preds.append(logits.argmax(dim=1).cpu())
        labels.append(y.cpu())
    model.train(was_training)
    names = data.class_names or [str(c) for c in range(num_classes)]
    return _scores(float(loss), torch.cat(preds).numpy(), torch.cat(labels).numpy(), names)


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
    prepared = _as_data(data, caller=caller, name="data")
    if len(prepared.dataset) == 0:
        raise ValueError(f"{caller}: data is empty; evaluate needs at least one sample.")
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)
    num_classes = _probe(model, prepared.dataset, device, caller=caller)
    _check_classes(prepared, num_classes, caller=caller, name="data")
    loader = _loader(prepared.dataset, batch_size)
    return _evaluate(
        model, loader, prepared, num_classes, device, caller=caller, desc="evaluate", show=progress
    )


@torch.no_grad()
def _record_pass(
    model: nn.Module,
    loader: DataLoader,
    recorder: DynamicsRecorder,
    device: torch.device,
    *,
    show: bool,
) -> None:
    """The eval pass over the training set: dropout off and weights fixed, so that every
    sample's probabilities come from the same model and compare across checkpoints."""
    model.eval()
    for ids, x, y in tqdm(loader, desc="recording pass", leave=False, disable=not show):
        recorder.update(ids, _logits_of(model(_to_device(x, device))), y)
    model.train()


# ------------------------------------------------------------------------------ checkpoints


def _checkpoint_path(directory: Path, rank: int, world: int) -> Path:
    # Under DDP every rank saves its own file: a mid-epoch recorder state is per rank.
    return directory / ("checkpoint.pt" if world == 1 else f"checkpoint-rank{rank}.pt")


def _save(path: Path, state: dict[str, Any]) -> None:
    with atomic_write(path) as fh:  # a kill while saving leaves the previous checkpoint
        torch.save(state, fh)


def _load(path: Path, config: dict[str, Any], *, caller: str) -> dict[str, Any]:
    """The state saved by :func:`_save`, or one line saying why ``path`` is not one.

    Only ``weights_only`` loading is ever used: a checkpoint holds tensors, numbers, strings and
    containers, and a file holding anything else is refused, not retried unsafely.
    """
    not_ours = f"{caller}(resume=True): {path} is not a cartokit checkpoint"
    fix = "Delete it, or give another checkpoint_dir, to start afresh."
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a damaged file fails in any of a dozen ways, none worth a traceback
        # torch's own message suggests weights_only=False, which would run code from the file:
        # never pass that on.
        if "Weights only load failed" in str(err):
            raise ValueError(
                f"{not_ours}: it holds Python objects that fit never saves, and loading them "
                f"could run code; it was not loaded. {fix}"
            ) from None
        reason = str(err).strip().split("\n")[0].split(". ")[0][:100]
        raise ValueError(
            f"{not_ours}: it is truncated or corrupt ({type(err).__name__}"
            f"{': ' + reason if reason else ''}). {fix}"
        ) from None
    kinds = {
        "version": int,
        "config": dict,
        "epoch": int,
        "step": int,
        "global_step": int,
        "model": dict,
        "optimizer": dict,
        "rng": torch.Tensor,
        "cuda_rng": list,
        "running": torch.Tensor,
        "history": list,
    }
    if not isinstance(state, dict):
        raise ValueError(f"{not_ours}: it holds a {type(state).__name__}, not a dict. {fix}")
    # The version first: a newer cartokit may save other entries.
    version = state.get("version")
    if isinstance(version, int) and version > _CHECKPOINT_VERSION:
        raise ValueError(
            f"{caller}: the checkpoint {path} has version {version}, newer than this "
            "cartokit understands; upgrade cartokit."
        )
    wrong = [k for k, kind in kinds.items() if not isinstance(state.get(k), kind)]
    if "recorder" not in state or not isinstance(state["recorder"], (dict, type(None))):
        wrong.append("recorder")
    if wrong:
        raise ValueError(f"{not_ours}: its entries {wrong} are missing or of the wrong type. {fix}")
    for key, value in config.items():
        if state["config"].get(key) != value:
            raise ValueError(
                f"{caller}(resume=True): the checkpoint {path} was written with {key}="
                f"{state['config'].get(key)!r}, this call has {key}={value!r}. Resume with the "
                "settings of the interrupted run, or give another checkpoint_dir."
            )
    return state


# ------------------------------------------------------------------------------ fit


def fit(
    model: nn.Module,
    train_data: Any,
    *,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    optimizer: torch.optim.Optimizer | None = None,
    max_grad_norm: float | None = None,
    record: bool = True,
    recorder: DynamicsRecorder | None = None,
    mode: str = "train_pass",
    eval_every: float = 1.0,
    eval_data: Mapping[str, Any] | None = None,
    eval_batch_size: int = 256,
    device: str | torch.device | None = None,
    seed: int = 0,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_every_steps: int | None = None,
    resume: bool = False,
    num_workers: int = 0,
    progress: bool = True,
) -> FitResult:
    """Train ``model`` on ``train_data`` with cross-entropy, recording its training dynamics.

    The training set is shuffled each epoch with a generator seeded by ``seed + epoch`` and
    cut into batches of ``batch_size`` (the last one partial, so every sample is seen once per
    epoch). Before the first step, one small batch is run through the model to check that it
    returns ``(batch, num_classes)`` logits that match the data.

    Under ``torchrun`` (``torch.distributed`` initialised with several processes) every rank
    calls ``fit`` with the whole training set: a ``DistributedSampler`` gives each rank its
    share (``batch_size`` is per rank), the model is wrapped in ``DistributedDataParallel``,
    and the recorder gathers the ranks' records, counting the sampler's padding duplicates
    once. Every rank returns the same dynamics and history; each evaluates the evaluation
    sets in full.

    Parameters
    ----------
    model : torch.nn.Module
        Maps a batch of inputs (a float tensor, or a list of strings for text) to logits of
        shape ``(batch, num_classes)``, or to an output with ``.logits``. Moved to ``device``
        and trained in place.
    train_data : Split, torch Dataset or tuple
        A :class:`~cartokit.data.Split`; a torch ``Dataset`` yielding ``(position, x, label)``
        triples, position being the row ``0..N-1`` (``Split.to_torch()`` makes one); or a tuple
        ``(inputs, labels)`` of an array (or list of strings) and integer labels.
    epochs : int, default 10
    batch_size : int, default 64
    lr : float, default 1e-3
        Learning rate of the default optimizer (use about 2e-5 to fine-tune a transformer).
    weight_decay : float, default 0.0
        Weight decay of the default optimizer.
    optimizer : torch.optim.Optimizer, optional
        Default: ``AdamW(trainable parameters, lr, weight_decay)``; ``lr`` and
        ``weight_decay`` are ignored when an optimizer is given.
    max_grad_norm : float, optional
        Clip the gradient norm to this value before each step.
    record : bool, default True
        Record training dynamics. ``False`` trains without a recorder (the baseline of the
        recording overhead benchmark).
    recorder : DynamicsRecorder, optional
        Record into this recorder. Default: a new one for the training set, with its ids and
        class names when it is a Split.
    mode : {"train_pass", "eval_pass"}, default "train_pass"
        Where the recorded logits come from: the training forward pass itself (free; dropout
        on, the model changing within the epoch), or an extra no-grad eval-mode pass over the
        training set at each checkpoint (dropout off, weights fixed; costs an inference pass).
    eval_every : float in (0, 1], default 1.0
        Fraction of an epoch between checkpoints: each epoch is cut into
        ``ceil(1 / eval_every)`` runs of steps as equal as possible (0.25: four checkpoints per
        epoch), and each run ends with a checkpoint: a history row and the evaluation sets.
        With ``mode="eval_pass"``, each checkpoint is also a checkpoint of the data map, so a
        1-3 epoch fine-tune still gets a map of 4-12 checkpoints. With ``mode="train_pass"``,
        the map keeps one checkpoint per epoch, since each sample is trained on once per epoch.
    eval_data : dict of str to data, optional
        Evaluation sets, e.g. ``{"test": bundle.test}``, evaluated at each checkpoint. Same
        forms as ``train_data``.
    eval_batch_size : int, default 256
        Batch size of evaluation and eval-pass recording.
    device : str or torch.device, optional
        Default: CUDA when available (``cuda:LOCAL_RANK`` under torchrun), else the CPU.
    seed : int, default 0
        Seeds the shuffle and torch's global RNG (dropout). On the CPU, two runs with the same
        seed and the same initial model give identical dynamics. Seed the model's
        initialisation yourself (``MLP(..., seed=0)``).
    checkpoint_dir : path, optional
        Save the loop's state (model, optimizer, RNG, recorder, position, history) to
        ``checkpoint_dir/checkpoint.pt`` at the end of every epoch, atomically (a kill while
        saving keeps the previous file). Under DDP each rank writes ``checkpoint-rank<r>.pt``.
        The file holds the model's full state dict, so saving a large model often costs time.
    checkpoint_every_steps : int, optional
        Also save every this many optimizer steps, mid-epoch included.
    resume : bool, default False
        Continue from the checkpoint in ``checkpoint_dir`` when there is one (else start
        afresh): the model, optimizer, RNG and recorder are restored, and the loop carries on
        from the step after the saved one, with no sample counted twice. The result equals an
        uninterrupted run's. ``epochs`` may be larger than the interrupted run's; the other
        settings must match.
    num_workers : int, default 0
        DataLoader worker processes.
    progress : bool, default True
        Show tqdm progress bars (on rank 0): one over epochs, one over each epoch's steps with
        the running loss and accuracy.

    Returns
    -------
    FitResult
        ``.model``, ``.history`` (a DataFrame, one row per checkpoint), ``.recorder`` and
        ``.dynamics``.

    Raises
    ------
    ValueError
        Before training: an empty training set, a model that does not return
        ``(batch, num_classes)`` logits, class counts or labels that do not match the model,
        bad options, a checkpoint written with other settings. While training: a training set
        whose length changed between epochs.
    TypeError
        A dataset that does not yield ``(position, x, label)`` triples, a bad option type.

    Warns
    -----
    UserWarning
        When the data map would have fewer than 2 checkpoints (variability needs several), and
        when ``eval_every < 1`` with ``mode="train_pass"`` (the map stays one per epoch).
    """
    caller = "fit"
    # ---- options
    epochs = check_int("epochs", epochs, caller=caller, minimum=1)
    batch_size = check_int("batch_size", batch_size, caller=caller, minimum=1)
    eval_batch_size = check_int("eval_batch_size", eval_batch_size, caller=caller, minimum=1)
    seed = check_int("seed", seed, caller=caller, minimum=0)
    num_workers = check_int("num_workers", num_workers, caller=caller, minimum=0)
    if mode not in MODES:
        raise ValueError(
            f"The 'mode' parameter of {caller} must be one of {list(MODES)}. Got {mode!r} instead."
        )
    if isinstance(eval_every, bool) or not isinstance(eval_every, (int, float)):
        raise TypeError(
            f"The 'eval_every' parameter of {caller} must be a float in (0, 1]. "
            f"Got {eval_every!r} of type {type(eval_every).__name__} instead."
        )
    if not 0 < eval_every <= 1:
        raise ValueError(
            f"The 'eval_every' parameter of {caller} must be a float in (0, 1], the fraction of "
            f"an epoch between checkpoints. Got {eval_every!r} instead."
        )
    if checkpoint_every_steps is not None:
        checkpoint_every_steps = check_int(
            "checkpoint_every_steps", checkpoint_every_steps, caller=caller, minimum=1
        )
        if checkpoint_dir is None:
            raise ValueError(
                f"{caller}: checkpoint_every_steps={checkpoint_every_steps} needs a "
                "checkpoint_dir to save to. Pass checkpoint_dir=..."
            )
    if resume and checkpoint_dir is None:
        raise ValueError(
            f"{caller}: resume=True needs the checkpoint_dir of the interrupted run. "
            "Pass checkpoint_dir=..."
        )
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"The 'optimizer' parameter of {caller} must be a torch.optim.Optimizer. "
            f"Got {type(optimizer).__name__} instead."
        )
    if max_grad_norm is not None and not max_grad_norm > 0:
        raise ValueError(
            f"The 'max_grad_norm' parameter of {caller} must be a float > 0 or None. "
            f"Got {max_grad_norm!r} instead."
        )

    # ---- data, device and model
    train = _as_data(train_data, caller=caller, name="train_data")
    n = len(train.dataset)
    if n == 0:
        raise ValueError(
            f"{caller}: train_data is empty; a data map needs training samples. Check the "
            "split or the filter that produced it."
        )
    evals = _eval_sets(eval_data, caller)
    for name, ev in evals.items():
        if len(ev.dataset) == 0:
            raise ValueError(f"{caller}: eval_data[{name!r}] is empty. Drop it or fill it.")
    device = _resolve_device(device)
    model.to(device)
    num_classes = _probe(model, train.dataset, device, caller=caller)
    _check_classes(train, num_classes, caller=caller, name="train_data")
    for name, ev in evals.items():
        _probe(model, ev.dataset, device, caller=caller)
        _check_classes(ev, num_classes, caller=caller, name=f"eval_data[{name!r}]")
    for ev in evals.values():
        ev.class_names = ev.class_names or train.class_names

    # ---- recorder and optimizer
    if recorder is not None:
        if not isinstance(recorder, DynamicsRecorder):
            raise TypeError(
                f"The 'recorder' parameter of {caller} must be a DynamicsRecorder. "
                f"Got {type(recorder).__name__} instead."
            )
        if (recorder.num_samples, recorder.num_classes) != (n, num_classes):
            raise ValueError(
                f"{caller}: the recorder was made for {recorder.num_samples} samples and "
                f"{recorder.num_classes} classes; the training set has {n} samples and the "
                f"model {num_classes} classes. Create it as DynamicsRecorder({n}, {num_classes})"
                " or let fit create it."
            )
    elif record:
        recorder = DynamicsRecorder(
            n, num_classes, sample_ids=train.sample_ids, class_names=train.class_names
        )
    if optimizer is None:
        trainable = [p for p in model.parameters() if p.requires_grad]
        if not trainable:
            raise ValueError(
                f"{caller}: the model has no trainable parameters (all have requires_grad="
                "False). Unfreeze at least a head."
            )
        optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay)
    params = [p for group in optimizer.param_groups for p in group["params"]]

    # ---- batches: a seeded shuffle, split across ranks under torchrun
    rank, world = _world()
    show = progress and rank == 0
    sampler = _EpochSampler(train.dataset, world=world, rank=rank, seed=seed, shuffle=True)
    loader = _loader(train.dataset, batch_size, sampler=sampler, num_workers=num_workers)
    steps_per_epoch = math.ceil(sampler.num_samples / batch_size)
    closes = _checkpoint_steps(steps_per_epoch, eval_every)
    if recorder is not None and mode == "eval_pass":
        record_sampler = _EpochSampler(train.dataset, world=world, rank=rank, seed=0, shuffle=False)
        record_loader = _loader(
            train.dataset, eval_batch_size, sampler=record_sampler, num_workers=num_workers
        )
    eval_loaders = {
        name: _loader(ev.dataset, eval_batch_size, num_workers=num_workers)
        for name, ev in evals.items()
    }
    map_checkpoints = epochs * (len(closes) if mode == "eval_pass" else 1)
    if recorder is not None and eval_every < 1 and mode == "train_pass":
        warnings.warn(
            f"{caller}: eval_every={eval_every} adds history rows within each epoch, but the "
            "data map keeps one checkpoint per epoch with mode='train_pass', since each sample "
            "is trained on once per epoch. Use mode='eval_pass' for sub-epoch map checkpoints.",
            UserWarning,
            stacklevel=2,
        )
    if recorder is not None and map_checkpoints < 2:
        warnings.warn(
            f"{caller}: the data map will have {map_checkpoints} checkpoint (epochs={epochs}, "
            f"mode={mode!r}, eval_every={eval_every}); variability needs at least 2, and maps "
            "are clearer with 5 or more. Train more epochs, or use mode='eval_pass' with "
            "eval_every=0.25 for sub-epoch checkpoints.",
            UserWarning,
            stacklevel=2,
        )

    # ---- a fresh start, or the state of an interrupted run
    config = {
        "num_samples": n,
        "num_classes": num_classes,
        "batch_size": batch_size,
        "seed": seed,
        "mode": mode,
        "eval_every": float(eval_every),
        "world_size": world,
        "record": recorder is not None,
        "eval_sets": sorted(evals),
    }
    path = None if checkpoint_dir is None else _checkpoint_path(Path(checkpoint_dir), rank, world)
    running = _Running(device)
    history: list[dict[str, float]] = []
    start_epoch, start_step, global_step = 0, 0, 0
    if resume and path is not None and path.exists():
        state = _load(path, config, caller=caller)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if recorder is not None:
            recorder.load_state_dict(state["recorder"])
        torch.set_rng_state(state["rng"])
        if device.type == "cuda" and state["cuda_rng"]:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        running.sums.copy_(state["running"])
        history = list(state["history"])
        start_epoch, start_step, global_step = state["epoch"], state["step"], state["global_step"]
    else:
        torch.manual_seed(seed)
    if resume and world > 1:
        # Ranks save separately: a kill while saving can leave them at different steps.
        steps = torch.tensor([global_step, -global_step], device=device)
        dist.all_reduce(steps, op=dist.ReduceOp.MAX)
        if steps[0] != -steps[1]:
            raise RuntimeError(
                f"{caller}(resume=True): the ranks' checkpoints in {checkpoint_dir} are at "
                f"different steps ({int(-steps[1])} to {int(steps[0])}), probably from a kill "
                "while saving. Delete them and restart, or restore a consistent set."
            )
    train_model = model
    if world > 1:
        device_ids = [device] if device.type == "cuda" else None
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    # ---- the loop
    train_model.train()
    epoch_bar = tqdm(total=epochs, initial=start_epoch, desc="fit", unit="epoch", disable=not show)
    for epoch in range(start_epoch, epochs):
        _check_length(train.dataset, n, epoch, caller=caller)
        sampler.set_epoch(epoch)
        sampler.start = start_step * batch_size  # resuming mid-epoch: skip the steps done
        step_bar = tqdm(
            loader,
            total=steps_per_epoch,
            initial=start_step,
            desc=f"epoch {epoch + 1}/{epochs}",
            leave=False,
            disable=not show,
        )
        for step, (ids, x, y) in enumerate(step_bar, start=start_step + 1):
            if train.labels is None:
                _check_batch_labels(y, num_classes, caller=caller, step=step)
            x, y = _to_device(x, device), y.to(device, non_blocking=True)
            logits = _logits_of(train_model(x))
            loss = F.cross_entropy(logits, y)
            if recorder is not None and mode == "train_pass":
                recorder.update(ids, logits, y)  # the training pass's own logits: free
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if max_grad_norm is not None:
                nn.utils.clip_grad_norm_(params, max_grad_norm)
            optimizer.step()
            running.add(loss, logits, y)
            global_step += 1
            if show and (step % 10 == 0 or step == steps_per_epoch):
                loss_value, acc = running.values()  # reads the device: not every step
                step_bar.set_postfix(loss=f"{loss_value:.4f}", acc=f"{acc:.3f}", refresh=False)

            if step in closes:  # a checkpoint: history row, data map, evaluation sets
                train_loss, train_acc = running.values(all_ranks=True)
                running.sums.zero_()
                row = {
                    "epoch": round(epoch + step / steps_per_epoch, 6),
                    "step": global_step,
                    "train_loss": train_loss,
                    "train_accuracy": train_acc,
                }
                if recorder is not None and mode == "eval_pass":
                    _record_pass(model, record_loader, recorder, device, show=show)
                if recorder is not None and (mode == "eval_pass" or step == steps_per_epoch):
                    recorder.end_epoch()
                for name, eval_loader in eval_loaders.items():
                    scores = _evaluate(
                        model,
                        eval_loader,
                        evals[name],
                        num_classes,
                        device,
                        caller=caller,
                        desc=name,
                        show=show,
                    )
                    row[f"{name}_loss"] = scores.loss
                    row[f"{name}_accuracy"] = scores.accuracy
                    row[f"{name}_macro_f1"] = scores.macro_f1
                history.append(row)
                epoch_bar.set_postfix(
                    {k: f"{v:.3f}" for k, v in row.items() if k.endswith(("loss", "accuracy"))},
                    refresh=False,
                )

            if path is not None and (
                step == steps_per_epoch
                or (checkpoint_every_steps and global_step % checkpoint_every_steps == 0)
            ):
                done = step == steps_per_epoch
                _save(
                    path,
                    {
                        "version": _CHECKPOINT_VERSION,
                        "config": config,
                        "epoch": epoch + 1 if done else epoch,
                        "step": 0 if done else step,
                        "global_step": global_step,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "recorder": None if recorder is None else recorder.state_dict(),
                        "rng": torch.get_rng_state(),
                        "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
                        "running": running.sums.cpu(),
                        "history": history,
                    },
                )
        step_bar.close()
        epoch_bar.update()
        start_step = 0
    epoch_bar.close()
    model.eval()
    return FitResult(model=model, history=pd.DataFrame(history), recorder=recorder)
