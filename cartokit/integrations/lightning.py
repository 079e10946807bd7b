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

from cartokit._validation import Boolean, InstanceOf, Optional, Text, check_param, check_params
from cartokit.dynamics import TrainingDynamics
from cartokit.recorder import DynamicsRecorder
from cartokit.sequence import SequenceRecorder
from cartokit.tracking import (
    MapSnapshot,
    MLflowTracker,
    TensorBoardTracker,
    Tracker,
    WandbTracker,
    log_map,
)

__all__ = ["CartographyCallback", "logger_trackers"]


class _LoggerTracker(Tracker):
    """Any other Lightning logger (CSV, ...): the region counts, through ``log_metrics``."""

    def __init__(self, logger: Any) -> None:
        super().__init__(owned=False)
        self.logger = logger

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        self.logger.log_metrics(dict(values), step=step)

    def log_map(self, snapshot: MapSnapshot) -> None:
        counts = {f"cartography/regions/{r}": n for r, n in snapshot.counts.items()}
        self.log_scalars(counts, snapshot.step)


def logger_trackers(trainer: Any) -> list[Tracker]:
    """Trackers on a Lightning ``Trainer``'s loggers (none is closed here).

    ``TensorBoardLogger``: its ``SummaryWriter``; ``MLFlowLogger``: its client and run;
    ``WandbLogger``: its run; any other logger gets the region counts as metrics.
    """
    loggers = pl.loggers
    found: list[Tracker] = []
    for logger in trainer.loggers:
        if isinstance(logger, loggers.TensorBoardLogger):
            found.append(TensorBoardTracker(writer=logger.experiment))
        elif isinstance(logger, loggers.MLFlowLogger):
            found.append(MLflowTracker(client=logger.experiment, run_id=logger.run_id))
        elif isinstance(logger, loggers.WandbLogger):
            found.append(WandbTracker(run=logger.experiment))
        else:
            found.append(_LoggerTracker(logger))
    return found


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

    A language model returns its logits of shape ``(batch, T, vocab)`` and its labels of shape
    ``(batch, T)``, ``-100`` where a token is not scored (the prompt, the padding), as Hugging
    Face models take them; a :class:`~cartokit.SequenceRecorder` then records one point per
    prompt→response pair.

    Parameters
    ----------
    recorder : DynamicsRecorder or SequenceRecorder, optional
        The recorder to feed. By default one is built at the first batch, for
        ``len(trainer.train_dataloader.dataset)`` samples: a ``SequenceRecorder`` when the
        logits are 3-D, else a ``DynamicsRecorder`` with as many classes as the logits have
        columns. Pass your own for options such as ``sample_ids=`` or ``class_names=``, or
        when the training set has no length.
    shift : bool, default True
        For a default ``SequenceRecorder``: score ``logits[:, :-1]`` against ``labels[:, 1:]``
        (causal LMs); ``False`` for a seq2seq decoder, whose logits align with its labels.
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

    The map goes to the Trainer's loggers (:func:`logger_trackers`): at each epoch end the
    region counts, the histograms of confidence and variability and the data-map figure, and
    when training ends the metrics table too (see :mod:`cartokit.tracking`).

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
        shift: bool = True,
    ) -> None:
        caller = "CartographyCallback"
        check_params(
            {"recorder": recorder, "id_key": id_key, "logits_key": logits_key},
            {
                "recorder": Optional(
                    InstanceOf(
                        (DynamicsRecorder, SequenceRecorder),
                        "a cartokit.DynamicsRecorder or cartokit.SequenceRecorder",
                    )
                ),
                "id_key": Text(),
                "logits_key": Text(),
            },
            caller=caller,
        )
        check_param("labels_key", labels_key, Text(), caller=caller)
        self.shift = check_param("shift", shift, Boolean(), caller=caller)
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

    def _build_recorder(self, trainer: Any, logits: Any) -> DynamicsRecorder | SequenceRecorder:
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
        if logits.ndim == 3:  # (batch, T, vocab): a language model
            return SequenceRecorder(num_samples, shift=self.shift)
        return DynamicsRecorder(num_samples, int(logits.shape[-1]))

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
            self.recorder = self._build_recorder(trainer, logits)
        self.recorder.update(ids, logits, labels)
        self._updates += 1
        self._epoch = trainer.current_epoch

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._close_stale_epoch(trainer)
        self._end_epoch()
        self._log_map(trainer)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._log_map(trainer, final=True)
        if self.save_path is not None and self.recorder is not None and self.recorder.num_epochs:
            if trainer.is_global_zero:
                self.recorder.dynamics.save(self.save_path)

    def _log_map(self, trainer: Any, *, final: bool = False) -> None:
        if self.recorder is None or not getattr(trainer, "loggers", None):
            return
        if not trainer.is_global_zero:
            return
        max_epochs, max_steps = trainer.max_epochs, trainer.max_steps
        last = (max_epochs is not None and trainer.current_epoch + 1 >= max_epochs) or (
            max_steps is not None and 0 <= max_steps <= trainer.global_step
        )
        if last and not final:
            return  # the last map goes with the table, when training ends
        trackers = logger_trackers(trainer)
        log_map(trackers, self.recorder.dynamics, trainer.global_step, final=final)
        for tracker in trackers:
            tracker.close()  # flushes: the loggers own their runs

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
        if self.recorder is None and saved.get("kind") == "sequence":
            self.recorder = SequenceRecorder(
                int(saved["num_samples"]), shift=saved["shift"], ignore_index=saved["ignore_index"]
            )
        elif self.recorder is None:
            self.recorder = DynamicsRecorder(
                int(saved["num_samples"]),
                int(saved["num_classes"]),
                store_probs=bool(saved.get("store_probs", False)),
            )
        self.recorder.load_state_dict(saved)
        self._updates = int(state_dict["updates"]) if saved.get("partial") else 0
        self._epoch = state_dict["epoch"] if self._updates else None
