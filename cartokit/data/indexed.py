"""Torch datasets that carry each sample's position, the id the recorder takes."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["IndexedDataset"]


class IndexedDataset(Dataset):
    """``(position, x, label)`` triples over array or text inputs.

    Array inputs become float32 tensors once, up front; text stays a string (the default
    collate function batches strings into a list).
    """

    def __init__(self, inputs: Any, labels: np.ndarray) -> None:
        self.text = isinstance(inputs, list)
        self.inputs = inputs if self.text else torch.as_tensor(np.asarray(inputs, np.float32))
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, position: int) -> tuple[int, Any, torch.Tensor]:
        return position, self.inputs[position], self.labels[position]
