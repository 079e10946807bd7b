"""The reference training loop, recording training dynamics: :func:`fit`, :func:`evaluate` and
:func:`predict_logits`.

:func:`fit` is a plain PyTorch loop meant to be read top to bottom: a seeded shuffle, a forward
pass, the loss (cross-entropy, or a ``loss_fn`` hook such as distillation's), a
:class:`~cartokit.DynamicsRecorder` update, a backward pass and an optimizer step; checkpoints
close the recorder's epochs and evaluate the held-out sets. It also runs unchanged under
``torchrun`` (DistributedDataParallel), and saves and resumes its state mid-epoch.

The package's files, in the order the loop uses them:

* ``loop.py``: :func:`fit` and :class:`FitResult`: set-up, epoch, step, checkpoint;
* ``batches.py``: data in any accepted form, samplers, loaders, the checks of data against the
  model, the device and the ranks;
* ``evaluation.py``: :func:`evaluate`, :func:`predict_logits`, :class:`Evaluation`;
* ``checkpoint.py``: saving and loading the loop's state, to resume a killed run.

Importing ``cartokit.train`` does not import torch: :data:`MODES` is defined here, and the rest
loads on first use.

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
>>> from cartokit.train import fit
>>> bundle = load_dataset("digits")
>>> result = fit(MLP.from_split(bundle.train, seed=0), bundle.train, epochs=3,
...              eval_data={"test": bundle.test}, progress=False)
>>> result.dynamics  # doctest: +ELLIPSIS
TrainingDynamics(num_samples=1437, num_epochs=3, num_classes=10, class_names=[...])
>>> list(result.history.columns)
['epoch', 'step', 'train_loss', 'train_accuracy', 'test_loss', 'test_accuracy', 'test_macro_f1']
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["MODES", "Evaluation", "FitResult", "evaluate", "fit", "predict_logits"]

#: Recording modes of :func:`fit`: where the recorded logits come from.
MODES = ("train_pass", "eval_pass")

# Loaded on first use: they import torch.
_LAZY = {
    "fit": "cartokit.train.loop",
    "FitResult": "cartokit.train.loop",
    "evaluate": "cartokit.train.evaluation",
    "predict_logits": "cartokit.train.evaluation",
    "Evaluation": "cartokit.train.evaluation",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cartokit.train' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
