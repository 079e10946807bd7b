"""What :func:`~cartokit.train.fit` and :func:`~cartokit.train.evaluate` feed the model.

Data in any accepted form (a :class:`~cartokit.data.Split`, ``(inputs, labels)`` arrays, a torch
``Dataset`` of ``(position, x, label)`` triples) becomes a :class:`Data`; loaders cut it into
batches of ``(positions, x, labels)``; the checks here stop data that does not fit the model
before the first step, in one line, not a traceback from inside torch. Also here: the device
and the ranks of a ``torchrun`` job.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
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

from cartokit._validation import check_labels, first_few
from cartokit.data.indexed import IndexedDataset

__all__ = [
    "Data",
    "EpochSampler",
    "InMemoryBatches",
    "as_data",
    "check_batch_labels",
    "check_classes",
    "check_length",
    "checkpoint_steps",
    "eval_sets",
    "loader",
    "logits_of",
    "probe",
    "resolve_device",
    "to_device",
    "world",
]


# ------------------------------------------------------------------------------ data


@dataclass
class Data:
    """A dataset of ``(position, x, label)`` triples and what is known about it up front."""

    dataset: Dataset
    labels: np.ndarray | None  # None: not known before iterating, checked batch by batch
    sample_ids: np.ndarray | None
    class_names: list[str] | None


def as_data(data: Any, *, caller: str, name: str) -> Data:
    """``data`` in any form that fit and evaluate take, as a :class:`Data`."""
    from cartokit.data import Split

    if isinstance(data, Split):
        return Data(data.to_torch(), data.labels, data.ids, list(data.class_names))
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
        return Data(IndexedDataset(inputs, labels), labels.astype(np.int64), None, None)
    if isinstance(data, IndexedDataset):
        return Data(data, data.labels.numpy(), None, None)
    if isinstance(data, Dataset) and hasattr(data, "__len__"):
        return Data(data, None, None, None)
    raise TypeError(
        f"{caller}: {name} must be a cartokit Split, a torch Dataset of (position, x, label) "
        f"triples, or a tuple (inputs, labels). Got {type(data).__name__}."
    )


def eval_sets(eval_data: Any, caller: str) -> dict[str, Data]:
    """The named evaluation sets of ``eval_data`` (``None``: none)."""
    if eval_data is None:
        return {}
    if not isinstance(eval_data, Mapping):
        raise TypeError(
            f"The 'eval_data' parameter of {caller} must be a dict from names to data, e.g. "
            f"{{'test': bundle.test}}. Got {type(eval_data).__name__}."
        )
    return {
        str(k): as_data(v, caller=caller, name=f"eval_data[{k!r}]") for k, v in eval_data.items()
    }


# ------------------------------------------------------------------------------ batches


class EpochSampler(DistributedSampler):
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


class InMemoryBatches(Dataset):
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


def loader(
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
        return DataLoader(InMemoryBatches(dataset), sampler=batches, batch_size=None, **options)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, **options)


def checkpoint_steps(steps_per_epoch: int, eval_every: float) -> list[int]:
    """Steps (1-based, within an epoch) after which a checkpoint closes.

    The epoch is cut into ``k = ceil(1 / eval_every)`` runs of steps, as equal as possible;
    each run ends at step ``ceil(j * S / k)``, ``j = 1..k``, so the last is always step ``S``.
    With fewer steps than runs, each step closes one checkpoint.

    >>> checkpoint_steps(10, 0.25)
    [3, 5, 8, 10]
    """
    k = math.ceil(1 / eval_every - 1e-9)
    return sorted({-(-j * steps_per_epoch // k) for j in range(1, k + 1)})


def to_device(x: Any, device: torch.device) -> Any:
    """A batch's inputs on ``device``: tensors (and dicts of them) moved, text left as it is."""
    if torch.is_tensor(x):
        return x.to(device, non_blocking=True)
    if isinstance(x, Mapping):
        return {k: to_device(v, device) for k, v in x.items()}
    return x  # text: a list of strings, which the model tokenizes


def logits_of(output: Any) -> Any:
    """The logits of a model's output (Hugging Face models return an object holding them)."""
    return output.logits if hasattr(output, "logits") else output


# ------------------------------------------------------------------------------ device, ranks


def resolve_device(device: Any) -> torch.device:
    """``device``, or by default CUDA when available (``cuda:LOCAL_RANK`` under torchrun), else
    the CPU."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process: ``(0, 1)`` outside ``torch.distributed``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


# ------------------------------------------------------------------------------ checks


def probe(model: nn.Module, dataset: Dataset, device: torch.device, *, caller: str) -> int:
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
        logits = logits_of(model(to_device(x, device)))
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


def check_classes(data: Data, num_classes: int, *, caller: str, name: str) -> None:
    """The data's class names and labels must fit a model with ``num_classes`` logits."""
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


def check_batch_labels(y: torch.Tensor, num_classes: int, *, caller: str, step: int) -> None:
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


def check_length(dataset: Dataset, expected: int, epoch: int, *, caller: str) -> None:
    """The training set must keep its length: positions address the same samples every epoch."""
    if len(dataset) != expected:
        raise ValueError(
            f"{caller}: the training set had {expected} samples when training started and has "
            f"{len(dataset)} at the start of epoch {epoch}. Positions must address the same "
            "samples in every epoch: keep the dataset fixed while training (filter or augment "
            "inside __getitem__, not by changing its length)."
        )
