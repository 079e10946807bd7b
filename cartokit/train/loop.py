"""The reference training loop, :func:`fit`, read top to bottom.

:func:`fit` checks its options, sets up (data, device, recorder, optimizer, batches, a fresh
start or a resumed one), then runs epochs of steps; a step is a forward pass, the loss, a
recorder update, a backward pass and an optimizer step, and at a checkpoint the recorder closes
an epoch of the data map and the evaluation sets are scored. Each of these is one short function
below, in that order. What the recording modes cost is in :mod:`cartokit.train`'s docstring.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm.std import tqdm  # the type of progress_bar's bars

from cartokit._validation import Interval, Optional, Options, check_int, check_param
from cartokit.recorder import DynamicsRecorder
from cartokit.tracking import Tracker, Trackers, check_tracking
from cartokit.train import MODES
from cartokit.train.batches import (
    Data,
    EpochSampler,
    as_data,
    check_batch_labels,
    check_classes,
    check_length,
    checkpoint_steps,
    eval_sets,
    loader,
    logits_of,
    probe,
    resolve_device,
    to_device,
    world,
)
from cartokit.train.checkpoint import (
    CHECKPOINT_VERSION,
    checkpoint_path,
    load_checkpoint,
    save_checkpoint,
)
from cartokit.train.evaluation import evaluation_pass
from cartokit.train.progress import progress_bar

if TYPE_CHECKING:
    from cartokit.dynamics import TrainingDynamics

__all__ = ["FitResult", "fit"]

_CALLER = "fit"

#: ``loss_fn(logits, labels, positions) -> loss``: see ``loss_fn`` in :func:`fit`.
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


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
    loss_fn: LossFn | None = None,
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
    tracking: str | Tracker | Trackers | Sequence[str | Tracker] | None = None,
) -> FitResult:
    """Train ``model`` on ``train_data`` (with cross-entropy by default), recording its dynamics.

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
    loss_fn : callable, optional
        ``loss_fn(logits, labels, positions) -> scalar loss`` of a batch; ``positions`` (rows of
        the training set, on the CPU) address per-sample targets, as
        :func:`cartokit.distillation.distill` looks up a teacher's logits. Default:
        cross-entropy. The recorder records the logits against the given labels either way.
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
        Show progress bars on rank 0, over epochs and each epoch's steps (in a notebook that
        ``cartokit run`` executes, one line when training ends: see ``train/progress.py``).
    tracking : str, Tracker, Trackers or a list of them, optional
        Log each history row and the data map (region counts, histograms, the figure; the
        metrics table at the end) on rank 0: ``"tensorboard"``, ``"mlflow"``, ``"wandb"`` (a
        new run each, ended by fit) or trackers (see :mod:`cartokit.tracking`; not ended).

    Returns
    -------
    FitResult
        ``.model``, ``.history`` (one row per checkpoint), ``.recorder`` and ``.dynamics``.

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
    options = _check_options(
        epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
        max_grad_norm=max_grad_norm, loss_fn=loss_fn, mode=mode, eval_every=eval_every,
        eval_batch_size=eval_batch_size, seed=seed, checkpoint_dir=checkpoint_dir,
        checkpoint_every_steps=checkpoint_every_steps, resume=resume, num_workers=num_workers,
        progress=progress, optimizer=optimizer, recorder=recorder, tracking=tracking,
    )  # fmt: skip
    run = _set_up(model, train_data, eval_data, device, recorder, record, optimizer, options)
    return _train(run, options)


# ------------------------------------------------------------------------------ options


@dataclass(frozen=True)
class _Options:
    """fit's checked options (what the loop needs of them)."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    max_grad_norm: float | None
    loss_fn: LossFn | None
    mode: str
    eval_every: float
    eval_batch_size: int
    seed: int
    checkpoint_dir: Path | None
    checkpoint_every_steps: int | None
    resume: bool
    num_workers: int
    progress: bool
    tracking: tuple[str | Tracker, ...]


def _check_options(*, optimizer: Any, recorder: Any, checkpoint_dir: Any, **given: Any) -> _Options:
    caller = _CALLER
    given["tracking"] = check_tracking(given["tracking"], caller=caller)
    minimum = {"epochs": 1, "batch_size": 1, "eval_batch_size": 1, "seed": 0, "num_workers": 0}
    for name, least in minimum.items():
        given[name] = check_int(name, given[name], caller=caller, minimum=least)
    positive = Interval(float, 0, None, closed="neither")
    given["mode"] = check_param("mode", given["mode"], Options(list(MODES)), caller=caller)
    given["eval_every"] = check_param(
        "eval_every", given["eval_every"], Interval(float, 0, 1, closed="right"), caller=caller
    )
    every = given["checkpoint_every_steps"]
    if every is not None:
        every = check_int("checkpoint_every_steps", every, caller=caller, minimum=1)
        if checkpoint_dir is None:
            raise ValueError(
                f"{caller}: checkpoint_every_steps={every} needs a checkpoint_dir to save to. "
                "Pass checkpoint_dir=..."
            )
    if given["resume"] and checkpoint_dir is None:
        raise ValueError(
            f"{caller}: resume=True needs the checkpoint_dir of the interrupted run. "
            "Pass checkpoint_dir=..."
        )
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"The 'optimizer' parameter of {caller} must be a torch.optim.Optimizer. "
            f"Got {type(optimizer).__name__} instead."
        )
    if recorder is not None and not isinstance(recorder, DynamicsRecorder):
        raise TypeError(
            f"The 'recorder' parameter of {caller} must be a DynamicsRecorder. "
            f"Got {type(recorder).__name__} instead."
        )
    given["max_grad_norm"] = check_param(
        "max_grad_norm", given["max_grad_norm"], Optional(positive), caller=caller
    )
    if given["loss_fn"] is not None and not callable(given["loss_fn"]):
        raise TypeError(
            f"The 'loss_fn' parameter of {caller} must be a callable loss_fn(logits, labels, "
            f"positions) -> loss, or None. Got {type(given['loss_fn']).__name__} instead."
        )
    given["checkpoint_every_steps"] = every
    directory = None if checkpoint_dir is None else Path(checkpoint_dir)
    return _Options(checkpoint_dir=directory, **given)


# ------------------------------------------------------------------------------ set-up


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
        if all_ranks and world()[1] > 1:
            dist.all_reduce(sums)
        loss, correct, count = sums.tolist()
        return (loss / count, correct / count) if count else (math.nan, math.nan)


@dataclass
class _Run:
    """Everything the loop reads and updates, from set-up to the last step."""

    model: nn.Module
    train: Data
    evals: dict[str, Data]
    device: torch.device
    num_samples: int
    num_classes: int
    recorder: DynamicsRecorder | None
    optimizer: torch.optim.Optimizer
    params: list[torch.Tensor]  # the optimizer's, for gradient clipping
    rank: int
    world: int
    show: bool
    train_model: nn.Module | None = None  # the model, or its DistributedDataParallel wrapper
    sampler: EpochSampler | None = None
    batches: DataLoader | None = None
    record_batches: DataLoader | None = None  # the eval pass over the training set
    eval_batches: dict[str, DataLoader] = field(default_factory=dict)
    steps_per_epoch: int = 0
    closes: list[int] = field(default_factory=list)  # steps that close a checkpoint
    path: Path | None = None
    config: dict[str, Any] = field(default_factory=dict)
    running: _Running | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    trackers: Trackers | None = None  # rank 0's, when fit(tracking=...)
    epoch: int = 0  # where the loop starts: 0, or the interrupted run's position
    step: int = 0
    global_step: int = 0


def _set_up(
    model: nn.Module,
    train_data: Any,
    eval_data: Any,
    device: Any,
    recorder: DynamicsRecorder | None,
    record: bool,
    optimizer: torch.optim.Optimizer | None,
    options: _Options,
) -> _Run:
    """Data checked against the model, the recorder, the optimizer, the batches, and a fresh
    start (``torch.manual_seed(seed)``) or the state of an interrupted run."""
    train, num_samples, evals, device, num_classes = _check_data(
        model, train_data, eval_data, device
    )
    rank, world_size = world()
    optimizer = optimizer or _default_optimizer(model, options)
    run = _Run(
        model=model,
        train=train,
        evals=evals,
        device=device,
        num_samples=num_samples,
        num_classes=num_classes,
        recorder=_recorder_for(recorder, record, train, num_samples, num_classes),
        optimizer=optimizer,
        params=[p for group in optimizer.param_groups for p in group["params"]],
        rank=rank,
        world=world_size,
        show=options.progress and rank == 0,
    )
    _make_batches(run, options)
    _warn_about_the_map(run, options)
    _start_or_resume(run, options)
    if options.tracking and rank == 0:  # last: a tracker made by name starts a run
        run.trackers = Trackers(options.tracking, caller=_CALLER)
    run.train_model = model
    if run.world > 1:
        device_ids = [device] if device.type == "cuda" else None
        run.train_model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    run.train_model.train()
    return run


def _check_data(
    model: nn.Module, train_data: Any, eval_data: Any, device: Any
) -> tuple[Data, int, dict[str, Data], torch.device, int]:
    """The training set and its size, the evaluation sets, the device (the model moved there)
    and the model's number of classes, after a probe of the model on each set."""
    caller = _CALLER
    train = as_data(train_data, caller=caller, name="train_data")
    num_samples = len(train.dataset)  # before the probe: a dataset may change as it is read
    if num_samples == 0:
        raise ValueError(
            f"{caller}: train_data is empty; a data map needs training samples. Check the "
            "split or the filter that produced it."
        )
    evals = eval_sets(eval_data, caller)
    for name, ev in evals.items():
        if len(ev.dataset) == 0:
            raise ValueError(f"{caller}: eval_data[{name!r}] is empty. Drop it or fill it.")
    device = resolve_device(device)
    model.to(device)
    num_classes = probe(model, train.dataset, device, caller=caller)
    check_classes(train, num_classes, caller=caller, name="train_data")
    for name, ev in evals.items():
        probe(model, ev.dataset, device, caller=caller)
        check_classes(ev, num_classes, caller=caller, name=f"eval_data[{name!r}]")
    for ev in evals.values():
        ev.class_names = ev.class_names or train.class_names
    return train, num_samples, evals, device, num_classes


def _recorder_for(
    recorder: DynamicsRecorder | None, record: bool, train: Data, n: int, num_classes: int
) -> DynamicsRecorder | None:
    """The given recorder, checked against the data; else a new one (or none)."""
    if recorder is not None:
        if (recorder.num_samples, recorder.num_classes) != (n, num_classes):
            raise ValueError(
                f"{_CALLER}: the recorder was made for {recorder.num_samples} samples and "
                f"{recorder.num_classes} classes; the training set has {n} samples and the "
                f"model {num_classes} classes. Create it as DynamicsRecorder({n}, {num_classes})"
                " or let fit create it."
            )
        return recorder
    if not record:
        return None
    return DynamicsRecorder(
        n, num_classes, sample_ids=train.sample_ids, class_names=train.class_names
    )


def _default_optimizer(model: nn.Module, options: _Options) -> torch.optim.Optimizer:
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError(
            f"{_CALLER}: the model has no trainable parameters (all have requires_grad=False). "
            "Unfreeze at least a head."
        )
    return torch.optim.AdamW(trainable, lr=options.lr, weight_decay=options.weight_decay)


def _make_batches(run: _Run, options: _Options) -> None:
    """A seeded shuffle, split across ranks under torchrun; the steps that close checkpoints."""
    dataset, workers = run.train.dataset, options.num_workers
    run.sampler = EpochSampler(
        dataset, world=run.world, rank=run.rank, seed=options.seed, shuffle=True
    )
    run.batches = loader(dataset, options.batch_size, sampler=run.sampler, num_workers=workers)
    run.steps_per_epoch = math.ceil(run.sampler.num_samples / options.batch_size)
    run.closes = checkpoint_steps(run.steps_per_epoch, options.eval_every)
    if run.recorder is not None and options.mode == "eval_pass":
        in_order = EpochSampler(dataset, world=run.world, rank=run.rank, seed=0, shuffle=False)
        run.record_batches = loader(
            dataset, options.eval_batch_size, sampler=in_order, num_workers=workers
        )
    run.eval_batches = {
        name: loader(ev.dataset, options.eval_batch_size, num_workers=workers)
        for name, ev in run.evals.items()
    }


def _warn_about_the_map(run: _Run, options: _Options) -> None:
    if run.recorder is None:
        return
    mode, eval_every, epochs = options.mode, options.eval_every, options.epochs
    if eval_every < 1 and mode == "train_pass":
        warnings.warn(
            f"{_CALLER}: eval_every={eval_every} adds history rows within each epoch, but the "
            "data map keeps one checkpoint per epoch with mode='train_pass', since each sample "
            "is trained on once per epoch. Use mode='eval_pass' for sub-epoch map checkpoints.",
            UserWarning,
            stacklevel=4,
        )
    map_checkpoints = epochs * (len(run.closes) if mode == "eval_pass" else 1)
    if map_checkpoints < 2:
        warnings.warn(
            f"{_CALLER}: the data map will have {map_checkpoints} checkpoint (epochs={epochs}, "
            f"mode={mode!r}, eval_every={eval_every}); variability needs at least 2, and maps "
            "are clearer with 5 or more. Train more epochs, or use mode='eval_pass' with "
            "eval_every=0.25 for sub-epoch checkpoints.",
            UserWarning,
            stacklevel=4,
        )


def _start_or_resume(run: _Run, options: _Options) -> None:
    run.config = {
        "num_samples": run.num_samples,
        "num_classes": run.num_classes,
        "batch_size": options.batch_size,
        "seed": options.seed,
        "mode": options.mode,
        "eval_every": float(options.eval_every),
        "world_size": run.world,
        "record": run.recorder is not None,
        "eval_sets": sorted(run.evals),
    }
    directory = options.checkpoint_dir
    run.path = None if directory is None else checkpoint_path(directory, run.rank, run.world)
    run.running = _Running(run.device)
    if options.resume and run.path is not None and run.path.exists():
        _restore(run, load_checkpoint(run.path, run.config, caller=_CALLER))
    else:
        torch.manual_seed(options.seed)
    if options.resume and run.world > 1:
        # Ranks save separately: a kill while saving can leave them at different steps.
        steps = torch.tensor([run.global_step, -run.global_step], device=run.device)
        dist.all_reduce(steps, op=dist.ReduceOp.MAX)
        if steps[0] != -steps[1]:
            raise RuntimeError(
                f"{_CALLER}(resume=True): the ranks' checkpoints in {directory} are at "
                f"different steps ({int(-steps[1])} to {int(steps[0])}), probably from a kill "
                "while saving. Delete them and restart, or restore a consistent set."
            )


# ------------------------------------------------------------------------------ the loop


def _train(run: _Run, options: _Options) -> FitResult:
    """The epochs, then the whole map to the trackers; those made by name end their runs."""
    epoch_bar = progress_bar(
        total=options.epochs, initial=run.epoch, desc="fit", unit="epoch", disable=not run.show
    )
    try:
        for epoch in range(run.epoch, options.epochs):
            _train_epoch(run, options, epoch, epoch_bar)
            epoch_bar.update()
        epoch_bar.close()
        if run.trackers and run.recorder is not None:
            run.trackers.log_map(run.recorder.dynamics, run.global_step, final=True)
    finally:
        if run.trackers:
            run.trackers.close()
    run.model.eval()
    return FitResult(model=run.model, history=pd.DataFrame(run.history), recorder=run.recorder)


def _train_epoch(run: _Run, options: _Options, epoch: int, epoch_bar: tqdm) -> None:
    """One epoch of steps, from ``run.step`` (0, or where an interrupted run stopped)."""
    check_length(run.train.dataset, run.num_samples, epoch, caller=_CALLER)
    run.sampler.set_epoch(epoch)
    run.sampler.start = run.step * options.batch_size  # resuming mid-epoch: skip the steps done
    steps = run.steps_per_epoch
    step_bar = progress_bar(
        run.batches,
        total=steps,
        initial=run.step,
        desc=f"epoch {epoch + 1}/{options.epochs}",
        leave=False,
        disable=not run.show,
    )
    for step, (positions, x, y) in enumerate(step_bar, start=run.step + 1):
        _train_step(run, options, step, positions, x, y)
        if run.show and (step % 10 == 0 or step == steps):
            loss, acc = run.running.values()  # reads the device: not every step
            step_bar.set_postfix(loss=f"{loss:.4f}", acc=f"{acc:.3f}", refresh=False)
        if step in run.closes:
            row = _close_checkpoint(run, options, epoch, step)
            epoch_bar.set_postfix(
                {k: f"{v:.3f}" for k, v in row.items() if k.endswith(("loss", "accuracy"))},
                refresh=False,
            )
        every = options.checkpoint_every_steps
        if run.path is not None and (step == steps or (every and run.global_step % every == 0)):
            _save(run, epoch, step)
    step_bar.close()
    run.step = 0


def _train_step(
    run: _Run, options: _Options, step: int, positions: Any, x: Any, y: torch.Tensor
) -> None:
    """Forward, loss, record, backward, optimizer step."""
    if run.train.labels is None:
        check_batch_labels(y, run.num_classes, caller=_CALLER, step=step)
    x, y = to_device(x, run.device), y.to(run.device, non_blocking=True)
    logits = logits_of(run.train_model(x))
    if options.loss_fn is None:
        loss = F.cross_entropy(logits, y)
    else:
        loss = _custom_loss(options.loss_fn, logits, y, positions)
    if run.recorder is not None and options.mode == "train_pass":
        run.recorder.update(positions, logits, y)  # the training pass's own logits: free
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if options.max_grad_norm is not None:
        nn.utils.clip_grad_norm_(run.params, options.max_grad_norm)
    run.optimizer.step()
    run.running.add(loss, logits, y)
    run.global_step += 1


def _custom_loss(loss_fn: LossFn, logits: torch.Tensor, y: torch.Tensor, positions: Any) -> Any:
    loss = loss_fn(logits, y, positions)
    if not (torch.is_tensor(loss) and loss.ndim == 0 and loss.requires_grad):
        got = f"shape {tuple(loss.shape)}" if torch.is_tensor(loss) else type(loss).__name__
        raise ValueError(
            f"{_CALLER}: loss_fn must return the batch's loss as a scalar tensor computed from "
            f"the logits (so that it has a gradient). It returned {got}"
            f"{'' if not torch.is_tensor(loss) or loss.requires_grad else ' without a gradient'}."
        )
    return loss


def _close_checkpoint(run: _Run, options: _Options, epoch: int, step: int) -> dict[str, float]:
    """A checkpoint: a history row, an epoch of the data map, the evaluation sets."""
    train_loss, train_acc = run.running.values(all_ranks=True)
    run.running.sums.zero_()
    row = {
        "epoch": round(epoch + step / run.steps_per_epoch, 6),
        "step": run.global_step,
        "train_loss": train_loss,
        "train_accuracy": train_acc,
    }
    recorder, eval_pass = run.recorder, options.mode == "eval_pass"
    if recorder is not None and eval_pass:
        _record_pass(run.model, run.record_batches, recorder, run.device, show=run.show)
    closes_map = recorder is not None and (eval_pass or step == run.steps_per_epoch)
    if closes_map:
        recorder.end_epoch()
    for name, batches in run.eval_batches.items():
        scores = evaluation_pass(
            run.model, batches, run.evals[name], run.num_classes, run.device,
            caller=_CALLER, desc=name, show=run.show,
        )  # fmt: skip
        row[f"{name}_loss"] = scores.loss
        row[f"{name}_accuracy"] = scores.accuracy
        row[f"{name}_macro_f1"] = scores.macro_f1
    run.history.append(row)
    if run.trackers:
        run.trackers.log_scalars({k: v for k, v in row.items() if k != "step"}, run.global_step)
        last = epoch == options.epochs - 1 and step == run.steps_per_epoch  # _train logs it
        if closes_map and not last:
            run.trackers.log_map(recorder.dynamics, run.global_step)
    return row


@torch.no_grad()
def _record_pass(
    model: nn.Module,
    batches: DataLoader,
    recorder: DynamicsRecorder,
    device: torch.device,
    *,
    show: bool,
) -> None:
    """The eval pass over the training set: dropout off and weights fixed, so that every
    sample's probabilities come from the same model and compare across checkpoints."""
    model.eval()
    bar = progress_bar(batches, desc="recording pass", leave=False, disable=not show)
    for positions, x, y in bar:
        recorder.update(positions, logits_of(model(to_device(x, device))), y)
    model.train()


# ------------------------------------------------------------------------------ checkpoints


def _save(run: _Run, epoch: int, step: int) -> None:
    """Save the loop's state after ``step`` of ``epoch``, to resume from the step after it."""
    done = step == run.steps_per_epoch
    save_checkpoint(
        run.path,
        {
            "version": CHECKPOINT_VERSION,
            "config": run.config,
            "epoch": epoch + 1 if done else epoch,
            "step": 0 if done else step,
            "global_step": run.global_step,
            "model": run.model.state_dict(),
            "optimizer": run.optimizer.state_dict(),
            "recorder": None if run.recorder is None else run.recorder.state_dict(),
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if run.device.type == "cuda" else [],
            "running": run.running.sums.cpu(),
            "history": run.history,
        },
    )


def _restore(run: _Run, state: dict[str, Any]) -> None:
    """Put the saved state back: model, optimizer, recorder, RNG, running sums, position."""
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    if run.recorder is not None:
        run.recorder.load_state_dict(state["recorder"])
    torch.set_rng_state(state["rng"])
    if run.device.type == "cuda" and state["cuda_rng"]:
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    run.running.sums.copy_(state["running"])
    run.history = list(state["history"])
    run.epoch, run.step, run.global_step = state["epoch"], state["step"], state["global_step"]
