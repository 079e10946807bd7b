"""Record training dynamics with the Hugging Face ``transformers.Trainer``.

:class:`CartographyTrainer` is a ``Trainer`` that feeds a :class:`~cartokit.DynamicsRecorder`
from the training forward pass itself (no extra pass over the data), or, with
``record="eval_pass"``, from a no-grad pass over the training set at each epoch end.

How it works, and why:

- A ``TrainerCallback`` never sees the model's outputs, so the trainer overrides
  ``compute_loss``: it takes the id column out of the batch, calls the parent's
  ``compute_loss(..., return_outputs=True)`` and records ``(ids, outputs.logits, labels)``.
  Evaluation during training goes through ``compute_loss`` too; only calls made from
  ``training_step`` are recorded.
- The id column (``"idx"`` by default; added to a ``datasets.Dataset`` that lacks it) holds each
  row's position in the training set. It survives ``remove_unused_columns=True``: the trainer
  keeps it for the training set only, and drops it before every forward call.
- A causal or seq2seq language model (its class is one of ``AutoModelForCausalLM``'s or
  ``AutoModelForSeq2SeqLM``'s, or its batches carry 2-D labels, ``-100`` where not scored) is
  recorded by a :class:`~cartokit.SequenceRecorder` from the same training forward pass: one
  map point per prompt→response pair, from the tokens its labels score (the prompt masked with
  ``-100`` is not). Causal LMs are scored shifted (position t predicts token t+1), seq2seq
  decoders as they are.
- Under ``torchrun``/DDP/accelerate every process records its own micro-batches and the
  recorder combines the processes at each epoch end (collectively), counting the padding a
  distributed sampler adds once. Nothing is gathered per step.
- Each checkpoint folder gets ``cartokit_recorder.pt`` (``cartokit_recorder_<rank>.pt`` per
  process under multi-process training: a mid-epoch checkpoint holds each process's own
  unfinished epoch) and ``dynamics.npz`` (the finished epochs).
  ``train(resume_from_checkpoint=...)`` restores the record, so a resumed run gives the same
  dynamics as an uninterrupted one and no epoch is counted twice.
  ``dynamics.npz`` is written to ``output_dir`` when training ends.

Requires ``transformers>=5,<6``: ``pip install "cartokit[hf]"``.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

try:
    import transformers
    from transformers import Trainer, TrainerCallback
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "cartokit.integrations.hf needs transformers (>=5,<6). Install it with: "
        'pip install "cartokit[hf]"'
    ) from err

if int(transformers.__version__.split(".")[0]) != 5:  # pragma: no cover
    raise ImportError(
        "cartokit.integrations.hf supports transformers>=5,<6 (it overrides Trainer methods "
        f"whose signatures changed in 5.0). Found transformers {transformers.__version__}. "
        'Install a supported version with: pip install "cartokit[hf]"'
    )

from cartokit._files import atomic_write
from cartokit._validation import (
    InstanceOf,
    Optional,
    Options,
    Text,
    check_int,
    check_param,
    check_params,
    first_few,
)
from cartokit.dynamics import TrainingDynamics
from cartokit.recorder import DynamicsRecorder
from cartokit.sequence import SequenceRecorder
from cartokit.tracking import MLflowTracker, TensorBoardTracker, Tracker, WandbTracker, log_map

__all__ = [
    "DYNAMICS_FILE",
    "RECORDER_FILE",
    "CartographyTrainer",
    "add_id_column",
    "language_model_kind",
    "report_trackers",
]

#: Recorder state written into each checkpoint folder (single process).
RECORDER_FILE = "cartokit_recorder.pt"
#: Finished epochs, written into each checkpoint folder and into ``output_dir`` at the end.
DYNAMICS_FILE = "dynamics.npz"

_PAYLOAD_FORMAT = "cartokit.hf.recorder"
_PAYLOAD_VERSION = 1
_RECORD_MODES = ("train", "eval_pass")


def _is_hf_dataset(dataset: Any) -> bool:
    return type(dataset).__module__.startswith("datasets.") and hasattr(dataset, "column_names")


def add_id_column(dataset: Any, name: str = "idx", *, overwrite: bool = False) -> Any:
    """Return ``dataset`` with a column ``name`` holding each row's position ``0..N-1``.

    Parameters
    ----------
    dataset : datasets.Dataset
        The training set, after any filtering, shuffling or selection (positions are taken
        from the dataset as it will be trained on).
    name : str, default "idx"
        Column name; :class:`CartographyTrainer` reads it through its ``id_column`` option.
    overwrite : bool, default False
        Replace an existing column of that name. Without it an existing column is an error,
        since it may hold the dataset's own ids (GLUE's ``idx``, for example).

    Returns
    -------
    datasets.Dataset

    Examples
    --------
    >>> import datasets
    >>> ds = datasets.Dataset.from_dict({"text": ["a", "b", "c"], "label": [0, 1, 0]})
    >>> add_id_column(ds)["idx"][:]
    [0, 1, 2]
    """
    caller = "add_id_column"
    name = check_param("name", name, Text(), caller=caller)
    if not _is_hf_dataset(dataset):
        raise TypeError(
            f"The 'dataset' parameter of {caller} must be a datasets.Dataset. Got "
            f"{type(dataset).__name__} instead. For a torch Dataset, return the row position "
            f"under the key {name!r} from __getitem__."
        )
    if name in dataset.column_names:
        if not overwrite:
            raise ValueError(
                f"add_id_column: the dataset already has a column {name!r}. Pass "
                f"overwrite=True to replace it, or choose another name (e.g. name="
                f"'cartokit_idx') and give it to CartographyTrainer as id_column=."
            )
        dataset = dataset.remove_columns(name)
    return dataset.add_column(name, np.arange(len(dataset), dtype=np.int64))


def _check_id_column(dataset: Any, column: str, caller: str) -> None:
    """The id column of a ``datasets.Dataset`` must hold the positions ``0..N-1``, in any order."""
    values = np.asarray(dataset[column])
    n = len(dataset)
    ok = values.ndim == 1 and np.issubdtype(values.dtype, np.integer)
    if ok:
        ok = bool(np.array_equal(np.sort(values), np.arange(n)))
    if not ok:
        raise ValueError(
            f"{caller}: the id column {column!r} must hold each row's position, the integers "
            f"0..{n - 1} in any order. Got values like {first_few(values.ravel())}. Add "
            "positions with dataset = add_id_column(dataset, name='cartokit_idx') and pass "
            "id_column='cartokit_idx'; to keep the original ids in the dynamics, pass "
            f"recorder=DynamicsRecorder(len(dataset), num_classes, sample_ids=dataset[{column!r}])."
        )


def _base_model(model: Any) -> Any:
    """The model inside a wrapper: DDP's ``.module``, PEFT's ``get_base_model()``."""
    model = getattr(model, "module", model)
    getter = getattr(model, "get_base_model", None)
    return getter() if callable(getter) else model


def language_model_kind(model: Any) -> str | None:
    """``"causal"`` or ``"seq2seq"`` when ``model`` is a Hugging Face language model, else None.

    Known by its class: one that ``AutoModelForCausalLM`` (``GPT2LMHeadModel``, ``…ForCausalLM``)
    or ``AutoModelForSeq2SeqLM`` (``T5ForConditionalGeneration``, ...) builds.
    """
    from transformers.models.auto import modeling_auto

    name = type(_base_model(model)).__name__
    for kind, mapping in (
        ("causal", modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES),
        ("seq2seq", modeling_auto.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES),
    ):
        for value in mapping.values():
            if name == value or (isinstance(value, tuple) and name in value):
                return kind
    return None


def _sequence_recorder(model: Any, num_samples: int) -> SequenceRecorder:
    # seq2seq decoders take labels as they are (shifted right into decoder inputs), so their
    # logits align with the labels; causal LMs shift inside their loss
    seq2seq = bool(getattr(getattr(_base_model(model), "config", None), "is_encoder_decoder", 0))
    return SequenceRecorder(num_samples, shift=not seq2seq)


def _logits_of(outputs: Any, caller: str) -> torch.Tensor:
    if isinstance(outputs, dict) and "logits" in outputs:
        return outputs["logits"]
    logits = getattr(outputs, "logits", None)
    if logits is None:
        raise TypeError(
            f"{caller}: the model's outputs have no 'logits'. Got {type(outputs).__name__}"
            f"{' with keys ' + str(list(outputs)) if isinstance(outputs, dict) else ''}. Use a "
            "sequence classification model (…ForSequenceClassification) or a language model "
            "(…ForCausalLM), or return a ModelOutput/dict with a 'logits' entry."
        )
    return logits


def report_trackers(trainer: Trainer) -> list[Tracker]:
    """Trackers on the runs a ``Trainer`` reports to: those of its ``report_to`` callbacks.

    TensorBoard: the ``TensorBoardCallback``'s writer; MLflow: the active run that
    ``MLflowCallback`` started; W&B: the run ``WandbCallback`` started. None is ended here.
    Other ``report_to`` backends get no map.
    """
    from transformers.integrations import MLflowCallback, TensorBoardCallback, WandbCallback

    found: list[Tracker] = []
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback) and callback.tb_writer is not None:
            found.append(TensorBoardTracker(writer=callback.tb_writer))
        elif isinstance(callback, MLflowCallback):
            import mlflow

            if mlflow.active_run() is not None:
                run_id = mlflow.active_run().info.run_id
                found.append(MLflowTracker(client=mlflow.MlflowClient(), run_id=run_id))
        elif isinstance(callback, WandbCallback):
            import wandb

            if wandb.run is not None:
                found.append(WandbTracker(run=wandb.run))
    return found


class _RecordingCallback(TrainerCallback):
    """Closes epochs (and optional sub-epoch passes), logs the map to the ``report_to``
    trackers, and writes the final dynamics.

    It runs before the Trainer's other callbacks, so that at the end of training the map
    reaches TensorBoard and MLflow before their callbacks close the writer and end the run.
    """

    def __init__(self, trainer: CartographyTrainer) -> None:
        self.trainer = trainer
        self.trackers: list[Tracker] | None = None  # found at the first map

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.trainer._maybe_sub_epoch_pass():
            self._log_map(state)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.trainer._close_epoch()
        if state.global_step < state.max_steps:  # the last map goes with the table, at the end
            self._log_map(state)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._log_map(state, final=True)
        self.trainer._write_dynamics(Path(args.output_dir))

    def _log_map(self, state: Any, *, final: bool = False) -> None:
        recorder = self.trainer.recorder
        if recorder is None or not state.is_world_process_zero:
            return
        if self.trackers is None:
            self.trackers = report_trackers(self.trainer)
        log_map(self.trackers, recorder.dynamics, state.global_step, final=final)
        if final:
            for tracker in self.trackers:
                tracker.close()  # flushes: the Trainer's callbacks own the runs
            self.trackers = None


class CartographyTrainer(Trainer):
    """A ``transformers.Trainer`` that records training dynamics for Dataset Cartography.

    Takes every argument of ``transformers.Trainer``, plus the keyword-only options below.
    Train as usual, then read :attr:`dynamics` (also written to
    ``output_dir/dynamics.npz``).

    Parameters
    ----------
    *args, **kwargs
        Passed to ``transformers.Trainer``.
    recorder : DynamicsRecorder or SequenceRecorder, optional
        The recorder to feed. By default one is built as soon as the trainer has a
        ``train_dataset``, with ``num_samples=len(train_dataset)``: for a language model
        (:func:`language_model_kind`, or labels of shape ``(batch, T)`` in the first batch) a
        :class:`~cartokit.SequenceRecorder`, shifted unless the model is an encoder-decoder;
        else a classifier's, with ``num_classes=model.config.num_labels`` and the class names of
        ``model.config.id2label``. Pass your own for options such as ``sample_ids=`` (the
        dataset's own ids) or ``store_probs=True``.
    id_column : str, default "idx"
        The batch key holding each sample's row position in the training set. A
        ``datasets.Dataset`` without this column gets it (see :func:`add_id_column`; the
        trainer's ``train_dataset`` is then the extended copy); one with it must hold the
        positions ``0..N-1`` in any order, and its values become the dynamics' ids. A torch
        ``Dataset`` must return it from ``__getitem__``, and the data collator must keep it.
    record : {"train", "eval_pass"}, default "train"
        ``"train"`` records the logits of the training forward pass itself, at no extra cost
        (as in Swayamdipta et al., 2020; with dropout on, and with the weights changing
        during the epoch). ``"eval_pass"`` runs a no-grad pass over the training set at each
        epoch end instead, with the model in eval mode (dropout off), so every sample is
        scored by the same weights; it costs one extra forward pass per epoch.
    eval_passes_per_epoch : int, default 1
        With ``record="eval_pass"``, the number of evenly spaced passes per epoch (sub-epoch
        checkpoints; the last one at the epoch end). Each pass counts as one recorded epoch.

    Attributes
    ----------
    recorder : DynamicsRecorder or None
        ``None`` until the trainer has a ``train_dataset``, when none was given.

    Notes
    -----
    Recording works with ``remove_unused_columns`` on or off, gradient accumulation (every
    micro-batch is recorded once), mixed precision (``bf16``/``fp16``: the logits are
    recorded as the model returns them) and evaluation during training (never recorded).

    Under multi-process training every process records its own batches and all processes
    close each epoch together; do not gather anything yourself.

    The map goes where the Trainer's curves go: with ``report_to`` naming ``"tensorboard"``,
    ``"mlflow"`` or ``"wandb"``, each map checkpoint logs the region counts, the histograms of
    confidence and variability and the data-map figure into that run, and the end of training
    the metrics table (see :mod:`cartokit.tracking`; :func:`report_trackers` finds the runs).

    Resuming: a checkpoint taken at an epoch end or in the middle of an epoch continues the
    record exactly; with ``ignore_data_skip=True`` the interrupted epoch is recorded again
    from its start. A checkpoint without a cartokit record (saved by a plain ``Trainer``)
    resumes with a warning, and the dynamics then lack the epochs before it.

    Examples
    --------
    A sketch (not run here)::

        from cartokit.integrations.hf import CartographyTrainer

        trainer = CartographyTrainer(model=model, args=training_args, train_dataset=train_ds)
        trainer.train()
        dynamics = trainer.dynamics          # also in training_args.output_dir/dynamics.npz
    """

    def __init__(
        self,
        *args: Any,
        recorder: DynamicsRecorder | None = None,
        id_column: str = "idx",
        record: str = "train",
        eval_passes_per_epoch: int = 1,
        **kwargs: Any,
    ) -> None:
        caller = "CartographyTrainer"
        check_params(
            {"recorder": recorder, "id_column": id_column, "record": record},
            {
                "recorder": Optional(
                    InstanceOf(
                        (DynamicsRecorder, SequenceRecorder),
                        "a cartokit.DynamicsRecorder or cartokit.SequenceRecorder",
                    )
                ),
                "id_column": Text(),
                "record": Options(_RECORD_MODES),
            },
            caller=caller,
        )
        eval_passes_per_epoch = check_int(
            "eval_passes_per_epoch", eval_passes_per_epoch, caller=caller, minimum=1
        )
        if eval_passes_per_epoch > 1 and record != "eval_pass":
            raise ValueError(
                f"{caller}: eval_passes_per_epoch={eval_passes_per_epoch} needs "
                "record='eval_pass'. The training pass sees each sample once per epoch, so it "
                "has no sub-epoch checkpoints."
            )
        super().__init__(*args, **kwargs)
        self.recorder = recorder
        self.id_column = id_column
        self.record = record
        self.eval_passes_per_epoch = eval_passes_per_epoch
        self._in_training_step = False
        self._updates = 0  # update() calls on this process since the last end_epoch()
        self._passes_done = 0  # sub-epoch eval passes done in the current epoch
        self._prepared_for: Any = None  # the train_dataset the recorder was checked against
        self._default_recorder = recorder is None  # built here: may turn into a sequence one
        # first, so that the map is logged before the report_to callbacks end their runs
        self.callback_handler.callbacks.insert(0, _RecordingCallback(self))
        if self.train_dataset is not None:
            self._prepare_record()

    # ------------------------------------------------------------------ results
    @property
    def dynamics(self) -> TrainingDynamics:
        """The record so far (finished epochs), as :class:`~cartokit.TrainingDynamics`."""
        if self.recorder is None:
            raise RuntimeError(
                "CartographyTrainer.dynamics: nothing was recorded yet; call train() first."
            )
        return self.recorder.dynamics

    # ------------------------------------------------------------------ setup
    def _label_key(self) -> str:
        names = list(self.label_names or [])
        return names[0] if len(names) == 1 else "labels"

    def _prepare_record(self) -> None:
        """Check the training set and build or check the recorder (once per training set)."""
        caller = "CartographyTrainer"
        dataset = self.train_dataset
        if dataset is None:
            raise ValueError(f"{caller}: training needs a train_dataset to record.")
        if dataset is self._prepared_for:
            return
        if isinstance(dataset, torch.utils.data.IterableDataset) or not hasattr(dataset, "__len__"):
            raise TypeError(
                f"{caller}: the train_dataset must have a length (a map-style dataset), since "
                f"the record holds one row per sample. Got {type(dataset).__name__}."
            )
        if _is_hf_dataset(dataset):
            if self.id_column in dataset.column_names:
                _check_id_column(dataset, self.id_column, caller)
            else:
                dataset = add_id_column(dataset, self.id_column)
                self.train_dataset = dataset
        num_samples = len(dataset)
        config = getattr(self.model, "config", None)
        if self.recorder is None and language_model_kind(self.model):
            self.recorder = _sequence_recorder(self.model, num_samples)
        elif self.recorder is None:
            num_classes = getattr(config, "num_labels", None)
            problem = getattr(config, "problem_type", None)
            not_single_label = problem in ("regression", "multi_label_classification")
            if num_classes is None or num_classes < 2 or not_single_label:
                raise ValueError(
                    f"{caller}: Dataset Cartography needs a single-label classifier with at "
                    f"least 2 classes. The model has num_labels={num_classes} and problem_type="
                    f"{problem!r}. Build the model with num_labels=<classes>, or pass "
                    "recorder=DynamicsRecorder(num_samples, num_classes)."
                )
            id2label = getattr(config, "id2label", None) or {}
            names = [id2label.get(i) for i in range(num_classes)]
            self.recorder = DynamicsRecorder(
                num_samples,
                num_classes,
                class_names=None if None in names else [str(n) for n in names],
            )
        elif self.recorder.num_samples != num_samples:
            raise ValueError(
                f"{caller}: the recorder is for {self.recorder.num_samples} samples, the "
                f"train_dataset has {num_samples}. Create it with "
                "DynamicsRecorder(len(train_dataset), num_classes)."
            )
        self._prepared_for = dataset

    @contextlib.contextmanager
    def _keep_id_column(self) -> Iterator[None]:
        """Let the id column through ``remove_unused_columns`` while building a dataloader."""
        if not self.args.remove_unused_columns:
            yield
            return
        self._set_signature_columns_if_needed()
        saved = self._signature_columns
        self._signature_columns = [*saved, self.id_column]
        try:
            yield
        finally:
            self._signature_columns = saved

    def get_train_dataloader(self) -> torch.utils.data.DataLoader:
        """The parent's training dataloader, with the id column kept in every batch."""
        self._prepare_record()
        with self._keep_id_column():
            return super().get_train_dataloader()

    # ------------------------------------------------------------------ recording
    def training_step(self, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        """The parent's training step; its ``compute_loss`` call is the one recorded."""
        self._in_training_step = True
        try:
            return super().training_step(model, inputs, *args, **kwargs)
        finally:
            self._in_training_step = False

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        """The parent's loss; in a training step, also record the batch's logits by id."""
        caller = "CartographyTrainer.compute_loss"
        ids = inputs.get(self.id_column)
        inputs = {k: v for k, v in inputs.items() if k != self.id_column}
        if not (self._in_training_step and self.record == "train"):
            return super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
        if ids is None:
            raise KeyError(
                f"{caller}: the training batch has no {self.id_column!r} entry (it has "
                f"{sorted(inputs)}). Give the train_dataset an id column (add_id_column), or "
                f"make a custom data collator keep the {self.id_column!r} key."
            )
        # Read the labels first: with label smoothing the parent pops them from the inputs.
        labels = inputs.get(self._label_key())
        if labels is None:
            raise KeyError(
                f"{caller}: the training batch has no {self._label_key()!r} entry (it has "
                f"{sorted(inputs)}); the record needs each sample's gold label."
            )
        loss, outputs = super().compute_loss(
            model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
        )
        self._record(ids, _logits_of(outputs, caller), labels)
        return (loss, outputs) if return_outputs else loss

    def _record(self, ids: Any, logits: Any, labels: Any) -> None:
        if (
            self._default_recorder
            and isinstance(self.recorder, DynamicsRecorder)
            and (logits.ndim, labels.ndim) == (3, 2)
            and not (self.recorder.num_epochs or self._updates)
        ):
            # a label per position: a language model of a class transformers does not map
            self.recorder = _sequence_recorder(self.model, self.recorder.num_samples)
        self.recorder.update(ids, logits, labels)  # type: ignore[union-attr]
        self._updates += 1

    def prediction_step(self, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        """The parent's prediction step, without the id column (the model does not take it)."""
        inputs = {k: v for k, v in inputs.items() if k != self.id_column}
        return super().prediction_step(model, inputs, *args, **kwargs)

    def _eval_pass(self) -> None:
        """Score the whole training set without gradients and feed the recorder."""
        caller = "CartographyTrainer (eval pass)"
        with self._keep_id_column():
            loader = self.get_test_dataloader(self.train_dataset)
        model = self.model
        was_training = model.training
        label_key = self._label_key()
        # Eval mode: dropout off, so probabilities are comparable across epochs.
        model.eval()
        try:
            with torch.no_grad():
                for batch in loader:
                    inputs = dict(self._prepare_inputs(batch))
                    ids = inputs.pop(self.id_column, None)
                    labels = inputs.pop(label_key, None)
                    if ids is None or labels is None:
                        raise KeyError(
                            f"{caller}: a batch of the training set lacks "
                            f"{self.id_column!r} or {label_key!r} (it has {sorted(inputs)})."
                        )
                    with self.compute_loss_context_manager():
                        outputs = model(**inputs)
                    self._record(ids, _logits_of(outputs, caller), labels)
        finally:
            model.train(was_training)

    def _end_epoch(self) -> None:
        if self._updates:
            self.recorder.end_epoch()  # type: ignore[union-attr]
        self._updates = 0

    def _close_epoch(self) -> None:
        if self.record == "eval_pass":
            self._eval_pass()
        self._end_epoch()
        self._passes_done = 0

    def _maybe_sub_epoch_pass(self) -> bool:
        """Run a sub-epoch eval pass when one is due; whether one ran."""
        k = self.eval_passes_per_epoch
        if k == 1:
            return False
        epoch = float(self.state.epoch or 0.0)
        frac = epoch - math.floor(epoch)
        if frac == 0.0:
            return False  # the epoch end: on_epoch_end runs that pass
        mark = math.floor(frac * k + 1e-9)
        if mark <= self._passes_done:
            return False
        self._eval_pass()
        self._end_epoch()
        self._passes_done = mark
        return True

    # ------------------------------------------------------------------ checkpoints
    def _recorder_file(self, rank: int | None = None) -> str:
        if self.args.world_size <= 1:
            return RECORDER_FILE
        rank = self.args.process_index if rank is None else rank
        return f"cartokit_recorder_{rank}.pt"

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        super()._save_checkpoint(model, trial)
        folder = Path(self._get_output_dir(trial=trial)) / (
            f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        )
        self._save_record(folder)

    def _save_record(self, folder: Path) -> None:
        if self.recorder is None:
            return
        payload = {
            "format": _PAYLOAD_FORMAT,
            "version": _PAYLOAD_VERSION,
            "recorder": self.recorder.state_dict(),
            "epoch": float(self.state.epoch or 0.0),
            "global_step": int(self.state.global_step),
            "updates": self._updates,
            "world_size": int(self.args.world_size),
            "record": self.record,
        }
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(folder / self._recorder_file(), "wb") as fh:
            torch.save(payload, fh)
        self._write_dynamics(folder)

    def _write_dynamics(self, folder: Path) -> None:
        # Every process holds the same finished epochs; one writes them.
        if self.recorder is not None and self.recorder.num_epochs and self.args.should_save:
            self.recorder.dynamics.save(folder / DYNAMICS_FILE)

    def _load_record(self, checkpoint: str | os.PathLike[str]) -> None:
        caller = "CartographyTrainer.train"
        folder = Path(checkpoint)
        names = [self._recorder_file(), RECORDER_FILE, self._recorder_file(0)]
        path = next((folder / n for n in dict.fromkeys(names) if (folder / n).is_file()), None)
        if path is None:
            warnings.warn(
                f"{caller}: the checkpoint {str(folder)!r} holds no cartokit record "
                f"({RECORDER_FILE}); recording starts afresh at the resumed epoch, so the "
                "dynamics lack the epochs before it.",
                UserWarning,
                stacklevel=3,
            )
            return
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != _PAYLOAD_FORMAT:
            raise ValueError(f"{caller}: {str(path)!r} is not a cartokit recorder checkpoint.")
        if payload.get("version", 0) > _PAYLOAD_VERSION:
            raise ValueError(
                f"{caller}: {str(path)!r} was written by a newer cartokit (format version "
                f"{payload['version']}); upgrade cartokit."
            )
        state = dict(payload["recorder"])
        epoch = float(payload["epoch"])
        at_epoch_end = epoch.is_integer()
        if state.get("partial") and not at_epoch_end:
            if self.args.ignore_data_skip:
                # The Trainer replays the interrupted epoch from its start.
                state["partial"] = None
            elif payload.get("world_size") != self.args.world_size:
                warnings.warn(
                    f"{caller}: the checkpoint was taken mid-epoch by {payload.get('world_size')}"
                    f" processes and is resumed by {self.args.world_size}; the samples the "
                    "other processes saw in that epoch before the checkpoint are recorded as "
                    "missing.",
                    UserWarning,
                    stacklevel=3,
                )
        if state.get("kind") == "sequence" and self._default_recorder:
            self.recorder = SequenceRecorder(
                state["num_samples"], shift=state["shift"], ignore_index=state["ignore_index"]
            )
        self.recorder.load_state_dict(state)  # type: ignore[union-attr]
        self._updates = 1 if state.get("partial") else 0
        self._passes_done = (
            0
            if at_epoch_end
            else math.floor((epoch - math.floor(epoch)) * self.eval_passes_per_epoch + 1e-9)
        )
        if state.get("partial") and at_epoch_end:
            # Saved after the epoch's last step but before its end: the Trainer starts the next
            # epoch, so close this one now (all processes do, as end_epoch requires).
            self._end_epoch()

    def train(
        self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any
    ) -> Any:
        """Train as ``transformers.Trainer.train`` does, recording the dynamics.

        With ``resume_from_checkpoint`` the record saved in that checkpoint is restored first,
        and recording continues from it.
        """
        self._prepare_record()
        checkpoint = resume_from_checkpoint
        if checkpoint is True:
            checkpoint = get_last_checkpoint(self.args.output_dir)
        if checkpoint:
            self._load_record(checkpoint)
        elif self.recorder is not None and (self.recorder.num_epochs or self._updates):
            warnings.warn(
                f"CartographyTrainer.train: the recorder already holds "
                f"{self.recorder.num_epochs} epochs; this run's epochs are added after them. "
                "Create a new trainer (or pass a new recorder=) for a separate record.",
                UserWarning,
                stacklevel=2,
            )
        return super().train(resume_from_checkpoint, *args, **kwargs)
