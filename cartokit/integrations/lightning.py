"""Record training dynamics in a Lightning training loop: :class:`CartographyCallback`.

``Callback.on_train_batch_end`` sees what ``training_step`` returned, so recording needs no
extra pass: return the batch's logits (and, unless the batch is a dict holding them, the ids
and labels) from ``training_step``, and add the callback to the ``Trainer``.

Requires Lightning: ``pip install "cartokit[lightning]"``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

try:
    import lightning.pytorch as pl
except ImportError:  # pragma: no cover - the older package name
    try:
        import pytorch_lightning as pl
    except ImportError as err:
        raise ImportError(
            "cartokit.integrations.lightning needs Lightning. Install it with: "
            'pip install "cartokit[lightning]"'
        ) from err

from cartokit._validation import InstanceOf, Optional, Text, check_param, check_params
from cartokit.dynamics import TrainingDynamics
from cartokit.recorder import DynamicsRecorder

__all__ = ["CartographyCallback"]


class CartographyCallback(pl.Callback):
    """A Lightning callback that records each training sample's dynamics, epoch by epoch.

    The contract: ``training_step`` returns a dict with the loss (as Lightning requires, under
    ``"loss"``) and the batch's logits under ``logits_key``. The sample ids (row positions in
    the training set, ``0..N-1``) and gold labels are looked up under ``id_key`` and
    ``labels_key``, first in that dict, then in the batch when the batch is a dict::

        def training_step(self, batch, batch_idx):
            idx, x, y = batch
            logits = self(x)
            loss = F.cross_entropy(logits, y)
            return {"loss": loss, "logits": logits, "idx": idx, "labels": y}

    A ``training_step`` that returns ``None`` (Lightning's way to skip a batch) records
    nothing; those samples then count as missing in that epoch.

    Parameters
    ----------
    recorder : DynamicsRecorder, optional
        The recorder to feed. By default one is built at the first batch, for
        ``len(trainer.train_dataloader.dataset)`` samples and as many classes as the logits
        have columns. Pass your own for options such as ``sample_ids=`` or ``class_names=``,
        or when the training set has no length.
    id_key, logits_key, labels_key : str
        Keys of the ids, logits and labels (defaults ``"idx"``, ``"logits"``, ``"labels"``).
    save_path : str or path, optional
        Write the dynamics here (:meth:`TrainingDynamics.save`, a ``.npz`` file) when training
        ends, from global rank 0.

    Notes
    -----
    Each batch is recorded in ``on_train_batch_end`` (with gradient accumulation, every
    micro-batch once) and each epoch is closed in ``on_train_epoch_end``. Under multi-process
    training (DDP) every process records its own batches and all close each epoch together;
    the recorder combines them and counts the sampler's padding once. Do not gather yourself.

    The record is part of Lightning checkpoints (:meth:`state_dict`), so ``fit(ckpt_path=...)``
    continues it: from a checkpoint taken at an epoch end, or after an epoch's last batch, the
    resumed run gives the same dynamics as an uninterrupted one, and no epoch is counted
    twice. A checkpoint taken in the middle of an epoch resumes exactly only with a resumable
    dataloader (Lightning warns otherwise), and under DDP it holds the unfinished epoch of
    rank 0 only, since Lightning writes checkpoints from rank 0.

    Examples
    --------
    A sketch (not run here)::

        from cartokit.integrations.lightning import CartographyCallback

        carto = CartographyCallback(save_path="runs/dynamics.npz")
        trainer = lightning.Trainer(max_epochs=5, callbacks=[carto])
        trainer.fit(module, train_loader)
        carto.dynamics
    """

    def __init__(
        self,
        recorder: DynamicsRecorder | None = None,
        *,
        id_key: str = "idx",
        logits_key: str = "logits",
        labels_key: str = "labels",
        save_path: str | os.PathLike[str] | None = None,
    ) -> None:
        caller = "CartographyCallback"
        check_params(
            {"recorder": recorder, "id_key": id_key, "logits_key": logits_key},
            {
                "recorder": Optional(InstanceOf(DynamicsRecorder, "a cartokit.DynamicsRecorder")),
                "id_key": Text(),
                "logits_key": Text(),
            },
            caller=caller,
        )
        check_param("labels_key", labels_key, Text(), caller=caller)
        self.recorder = recorder
        self.id_key = id_key
        self.logits_key = logits_key
        self.labels_key = labels_key
        self.save_path = None if save_path is None else Path(save_path)
        self._updates = 0  # update() calls on this process since the last end_epoch()
        self._epoch: int | None = None  # the trainer epoch those updates belong to

    @property
    def state_key(self) -> str:
        return self._generate_state_key(
            id_key=self.id_key, logits_key=self.logits_key, labels_key=self.labels_key
        )

    @property
    def dynamics(self) -> TrainingDynamics:
        """The record so far (finished epochs), as :class:`~cartokit.TrainingDynamics`."""
        if self.recorder is None:
            raise RuntimeError(
                "CartographyCallback.dynamics: nothing was recorded yet; add the callback to "
                "a Trainer and call fit() first."
            )
        return self.recorder.dynamics

    # ------------------------------------------------------------------ recording
    def _lookup(self, option: str, outputs: Mapping, batch: Any) -> Any:
        key = getattr(self, option)
        if key in outputs:
            return outputs[key]
        if isinstance(batch, Mapping) and key in batch:
            return batch[key]
        where = f"the dict training_step returned (keys {sorted(map(str, outputs))})"
        if isinstance(batch, Mapping):
            where += f" or in the batch (keys {sorted(map(str, batch))})"
        raise KeyError(
            f"CartographyCallback: found no {key!r} in {where}. Return it from training_step, "
            f"e.g. {{'loss': loss, '{self.logits_key}': logits, '{self.id_key}': idx, "
            f"'{self.labels_key}': y}}, or name its key with {option}=."
        )

    def _build_recorder(self, trainer: Any, num_classes: int) -> DynamicsRecorder:
        loader = getattr(trainer, "train_dataloader", None)
        dataset = getattr(loader, "dataset", None)
        try:
            num_samples = len(dataset)  # type: ignore[arg-type]
        except TypeError:
            raise ValueError(
                "CartographyCallback: cannot tell the training set's size from "
                f"trainer.train_dataloader ({type(loader).__name__}). Pass "
                "recorder=DynamicsRecorder(num_samples, num_classes)."
            ) from None
        return DynamicsRecorder(num_samples, num_classes)

    def _close_stale_epoch(self, trainer: Any) -> None:
        # Resumed from a checkpoint taken after an epoch's last batch but before its end: the
        # trainer goes on with the next epoch (without on_train_epoch_end for this one), so
        # close it here, on every process.
        if self._updates and self._epoch is not None and self._epoch != trainer.current_epoch:
            self._end_epoch()

    def _end_epoch(self) -> None:
        if self._updates:
            self.recorder.end_epoch()  # type: ignore[union-attr]
        self._updates = 0
        self._epoch = None

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._close_stale_epoch(trainer)

    def on_train_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        self._close_stale_epoch(trainer)

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if outputs is None:
            return  # training_step skipped this batch
        if not isinstance(outputs, Mapping):
            raise TypeError(
                "CartographyCallback: training_step must return a dict with the loss and the "
                f"batch's logits, e.g. {{'loss': loss, '{self.logits_key}': logits, "
                f"'{self.id_key}': idx, '{self.labels_key}': y}}. Got "
                f"{type(outputs).__name__}."
            )
        logits = self._lookup("logits_key", outputs, batch)
        ids = self._lookup("id_key", outputs, batch)
        labels = self._lookup("labels_key", outputs, batch)
        if self.recorder is None:
            self.recorder = self._build_recorder(trainer, int(logits.shape[-1]))
        self.recorder.update(ids, logits, labels)
        self._updates += 1
        self._epoch = trainer.current_epoch

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._close_stale_epoch(trainer)
        self._end_epoch()

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self.save_path is not None and self.recorder is not None and self.recorder.num_epochs:
            if trainer.is_global_zero:
                self.recorder.dynamics.save(self.save_path)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The recorder's state (mid-epoch included), saved in Lightning checkpoints."""
        if self.recorder is None:
            return {}
        return {
            "recorder": self.recorder.state_dict(),
            "updates": self._updates,
            "epoch": self._epoch,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the record from a checkpoint; recording then continues from it."""
        if not state_dict:
            return
        saved = state_dict["recorder"]
        if self.recorder is None:
            self.recorder = DynamicsRecorder(
                int(saved["num_samples"]),
                int(saved["num_classes"]),
                store_probs=bool(saved.get("store_probs", False)),
            )
        self.recorder.load_state_dict(saved)
        self._updates = int(state_dict["updates"]) if saved.get("partial") else 0
        self._epoch = state_dict["epoch"] if self._updates else None
