"""Record training dynamics inside the training loop: :class:`DynamicsRecorder`."""

from __future__ import annotations

import ctypes
import functools
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from cartokit._validation import check_ids, check_int, first_few
from cartokit.dynamics import TrainingDynamics, pred_dtype
from cartokit.metrics import CHUNK_ROWS, checkpoint_stats

__all__ = ["DynamicsRecorder"]

_INT_DTYPES = frozenset(
    {torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.uint16, torch.uint32}
)

#: Marks a sample not yet seen in the current epoch in the label buffer.
_UNSEEN = torch.iinfo(torch.int64).min

_STATE_VERSION = 1


def as_tensor(x: Any, name: str, caller: str = "DynamicsRecorder.update") -> torch.Tensor:
    """``x`` as a tensor (an array's data is shared, not copied); a one-line error names
    ``caller`` and ``name`` when it cannot be one."""
    if isinstance(x, torch.Tensor):
        return x
    try:
        return torch.as_tensor(np.ascontiguousarray(x))
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(
            f"{caller}: {name} must be a tensor or array. Got {type(x).__name__} ({err})."
        ) from None


def _finite_rows(logits: torch.Tensor) -> torch.Tensor:
    """Rows whose logits are all finite: a row sum is finite exactly then (barring overflow of
    absurd logits near 1e37), at a fraction of the cost of ``isfinite(x).all(dim=1)``."""
    return torch.isfinite(logits.sum(dim=1, dtype=torch.float32))


def _return_freed_memory() -> None:
    """Give the heap's free pages back to the operating system, where the C library allows.

    An epoch's arrays (a few MB each) come from the C heap, and glibc keeps freed chunks there
    unless they border its top: without this, consolidating the record would free every epoch's
    arrays and still hold their pages, so that for a moment the process held the record twice.
    A no-op where ``malloc_trim`` does not exist (macOS, musl and Windows return large blocks
    at once anyway).
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


def ranks_active(enabled: bool) -> bool:
    """Whether a recorder combines ranks: ``torch.distributed`` runs more than one process."""
    import torch.distributed as dist

    return enabled and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def collective_device() -> torch.device:
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


class _EpochBuffers:
    """One epoch's device buffers, as the ranks combine them: labels (``_UNSEEN`` where not
    seen), the logits or the per-batch statistics, the row count and the bad-id count."""

    def __init__(
        self,
        labels: torch.Tensor,
        logits: torch.Tensor | None,
        stats: list[torch.Tensor] | None,
        rows: int,
        bad_ids: torch.Tensor | None,
    ) -> None:
        self.labels, self.logits, self.stats, self.rows, self.bad_ids = (
            labels, logits, stats, rows, bad_ids
        )  # fmt: skip

    def combine_ranks(self) -> None:
        """Merge every rank's buffers into one, identical on all ranks (collectives).

        The owner of a sample is the lowest rank that saw it (``world``: nobody did); only the
        owner's row survives the sum, so the padding duplicates of a distributed sampler count
        once.
        """
        import torch.distributed as dist

        world, rank = dist.get_world_size(), dist.get_rank()
        owner = torch.where(self.labels != _UNSEEN, rank, world)
        dist.all_reduce(owner, op=dist.ReduceOp.MIN)
        mine = owner == rank
        labels = torch.where(mine, self.labels, 0)
        dist.all_reduce(labels)
        self.labels = torch.where(owner == world, _UNSEEN, labels)
        if self.logits is not None:
            self.logits = torch.where(mine[:, None], self.logits, 0)
            dist.all_reduce(self.logits)
        else:
            self.stats = [torch.where(mine, b, 0) for b in self.stats]  # type: ignore[union-attr]
            for buf in self.stats:
                dist.all_reduce(buf)
        counts = torch.tensor([self.rows], dtype=torch.int64, device=self.labels.device)
        dist.all_reduce(counts)
        self.rows = int(counts[0])
        if self.bad_ids is not None:
            dist.all_reduce(self.bad_ids)


class _HostRecord:
    """The finished epochs on the host: those consolidated by the last
    :attr:`DynamicsRecorder.dynamics` as read-only ``[E, N]`` arrays (shared with the
    TrainingDynamics it returned), then one dict of arrays per epoch finished since."""

    def __init__(self, epochs: list[dict[str, np.ndarray]] | None = None) -> None:
        self.stacked: dict[str, np.ndarray] = {}
        self.epochs: list[dict[str, np.ndarray]] = epochs or []

    def __len__(self) -> int:
        stacked = len(next(iter(self.stacked.values()))) if self.stacked else 0
        return stacked + len(self.epochs)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.stacked.values()) + sum(
            a.nbytes for e in self.epochs for a in e.values()
        )

    def consolidate(self) -> dict[str, np.ndarray]:
        """Every finished epoch as stacked ``[E, N]`` arrays, without holding the record twice.

        Key by key, each epoch's array is released (and its pages handed back) as soon as it
        is copied, so taking ``dynamics`` at the end of training costs one epoch's array more
        than the record, not a second record. The stacked arrays become the record, read-only
        because the returned dynamics shares them; later epochs go to fresh arrays, so a
        dynamics already returned never changes.
        """
        if not self.epochs:
            return self.stacked
        old = len(self) - len(self.epochs)
        keys = list(self.stacked or self.epochs[0])
        # Allocated first (address space only: pages are touched by the copies), so that a
        # failed allocation leaves the record as it was.
        stacked = {}
        for key in keys:
            first = self.epochs[0][key]
            stacked[key] = np.empty((len(self), *first.shape), dtype=first.dtype)
        for key in keys:
            if old:
                stacked[key][:old] = self.stacked.pop(key)
            for row, epoch in enumerate(self.epochs, start=old):
                stacked[key][row] = epoch.pop(key)
                _return_freed_memory()  # microseconds; keeps the peak to one epoch's array
            stacked[key].flags.writeable = False
            self.stacked[key] = stacked[key]
        self.epochs = []
        return self.stacked

    def per_epoch(self) -> list[dict[str, np.ndarray]]:
        """Every finished epoch's record, in order, as one dict per epoch (views, no copies)."""
        n_stacked = len(self) - len(self.epochs)
        stacked = [{k: a[e] for k, a in self.stacked.items()} for e in range(n_stacked)]
        return stacked + self.epochs


def _check_shapes(
    ids: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> None:
    caller = "DynamicsRecorder.update"
    if logits.ndim != 2 or logits.shape[1] != num_classes:
        raise ValueError(
            f"{caller}: logits must have shape (batch, {num_classes}). Got "
            f"{tuple(logits.shape)}. Pass the classifier's logits (for Hugging Face models, "
            "outputs.logits), not the loss or a hidden state."
        )
    if not logits.dtype.is_floating_point:
        raise TypeError(f"{caller}: logits must be floating point. Got {logits.dtype}.")
    batch = logits.shape[0]
    for name, t in (("ids", ids), ("labels", labels)):
        if t.ndim != 1 or t.shape[0] != batch:
            raise ValueError(
                f"{caller}: {name} must have shape ({batch},) to match logits of shape "
                f"{tuple(logits.shape)}. Got {tuple(t.shape)}."
            )
        if t.dtype not in _INT_DTYPES:
            raise TypeError(f"{caller}: {name} must be integers. Got {t.dtype}.")


def _check_epoch(
    recorder: DynamicsRecorder,
    n_epoch: int,
    labels_np: np.ndarray,
    seen_np: np.ndarray,
    finite_np: np.ndarray,
    known_labels: np.ndarray,
) -> int:
    """Refuse an epoch with non-finite logits, labels out of range or labels that changed from
    ``known_labels`` (-1: not known yet); warn (or, with ``require_complete``, refuse) when
    samples were not seen. Returns how many were not seen."""
    if not finite_np.all():
        bad = recorder.sample_ids[~finite_np]
        raise ValueError(
            f"DynamicsRecorder: epoch {n_epoch} has NaN or inf logits for {bad.size} samples,"
            f" e.g. ids {first_few(bad)}; the epoch was discarded. The model has diverged: "
            "lower the learning rate or check the inputs."
        )
    bad_label = seen_np & ((labels_np < 0) | (labels_np >= recorder.num_classes))
    if bad_label.any():
        pos = np.flatnonzero(bad_label)
        raise ValueError(
            f"DynamicsRecorder: labels must be in [0, {recorder.num_classes}). Epoch {n_epoch} "
            f"got {first_few(labels_np[pos])} for ids {first_few(recorder.sample_ids[pos])}; "
            "the epoch was discarded. Check num_classes, or map ignore-index labels (-100) "
            "out of the training set."
        )
    known = seen_np & (known_labels >= 0)
    changed = known & (labels_np != known_labels)
    if changed.any():
        pos = np.flatnonzero(changed)
        raise ValueError(
            f"DynamicsRecorder: the labels of {pos.size} samples changed in epoch {n_epoch},"
            f" e.g. ids {first_few(recorder.sample_ids[pos])} from "
            f"{first_few(known_labels[pos])} to {first_few(labels_np[pos])}; the epoch was "
            "discarded. Ids must map to the same sample every epoch (shuffle the data, not "
            "the ids)."
        )
    n_missing = int(recorder.num_samples - seen_np.sum())
    if n_missing:
        missing_ids = recorder.sample_ids[~seen_np]
        message = (
            f"DynamicsRecorder: {n_missing} of {recorder.num_samples} samples were not seen in "
            f"epoch {n_epoch}, e.g. ids {first_few(missing_ids)}. A DataLoader with "
            "drop_last=True drops the last partial batch; use drop_last=False, or pass "
            "require_complete=True to make this an error."
        )
        if recorder.require_complete:
            raise ValueError(message + " The epoch was discarded.")
        warnings.warn(message + " They are recorded as missing.", UserWarning, stacklevel=4)
    return n_missing


def _raise_bad_ids(ids: torch.Tensor, num_samples: int) -> None:
    bad = ids[(ids < 0) | (ids >= num_samples)]
    raise ValueError(
        f"DynamicsRecorder.update: ids must be row positions in [0, {num_samples})."
        f" Got {first_few(bad.tolist())}. Pass the samples' row positions in the "
        "training set (return the index from Dataset.__getitem__), not their original "
        "ids; give those as sample_ids=."
    ) from None


def _check_state(recorder: DynamicsRecorder, state: dict[str, Any]) -> None:
    """Refuse a saved record of another size, from a newer cartokit, or kept elsewhere."""
    for key in ("num_samples", "num_classes"):
        if state.get(key) != getattr(recorder, key):
            raise ValueError(
                f"DynamicsRecorder.load_state_dict: the saved record has {key}="
                f"{state.get(key)}, this recorder {getattr(recorder, key)}. Create the recorder "
                "with the same dataset size and class count."
            )
    if state.get("version", 0) > _STATE_VERSION:
        raise ValueError(
            f"DynamicsRecorder.load_state_dict: state version {state['version']} is newer "
            "than this cartokit understands; upgrade cartokit."
        )
    if "store" in state and recorder._sink is None:
        raise ValueError(
            f"DynamicsRecorder.load_state_dict: the saved record is in the store "
            f"{state['store']}; create the recorder with store= to resume it."
        )


def _store_sink(recorder: DynamicsRecorder, store: Any, positions: bool) -> Any:
    from cartokit.recorder_store import StoreSink

    return StoreSink(
        recorder, store, positions=positions, check_epoch=_check_epoch, ranks_active=ranks_active
    )


class DynamicsRecorder:
    """Record each training sample's gold-label statistics, epoch by epoch.

    Call :meth:`update` with every batch's sample ids, logits and labels, inside the training
    forward pass, in any order and batch size; call :meth:`end_epoch` after each epoch (or at
    any sub-epoch checkpoint); read :attr:`dynamics` at the end.

    The recorder works on the logits' device and never synchronises with it per step: a batch
    costs two ``index_copy_`` calls (logits and labels, written by id into epoch buffers). The
    whole epoch is reduced to four numbers per sample in :meth:`end_epoch` and moved to the host
    once. When the ``N x C`` logits buffer would exceed ``buffer_bytes``, each batch is reduced
    as it arrives instead (a few more small operations per step, much less memory).

    Value checks that would need a device synchronisation (non-finite logits, label range, and
    on accelerators the id range) run once per epoch in :meth:`end_epoch`; on the CPU an id out
    of range fails at once in :meth:`update`. Shapes are always checked at once.

    A sample seen twice in one epoch (the padding of ``DistributedSampler``) is counted once:
    the last write wins, and :attr:`duplicates` says how many rows were repeats.

    Parameters
    ----------
    num_samples : int
        Size of the training set; ids passed to :meth:`update` are row positions in
        ``[0, num_samples)``.
    num_classes : int
        Number of classes, >= 2.
    sample_ids : sequence, optional
        The dataset's own ids (ints or strings) for positions ``0..num_samples-1``; used as the
        ids of the resulting dynamics. Defaults to the positions.
    class_names : sequence of str, optional
    store_probs : bool, default False
        Also keep full per-epoch probabilities (``4 x C`` bytes per sample-epoch; meant for small
        class counts).
    require_complete : bool, default False
        Raise in :meth:`end_epoch` when some samples were not seen in the epoch, instead of
        warning and recording them as missing.
    buffer_bytes : int, default 32 MiB
        Largest epoch logits buffer to keep; above it, batches are reduced as they arrive.
    distributed : bool, default True
        Under multi-process training (``torch.distributed`` initialised with more than one
        process: ``torchrun``, DDP, accelerate), combine the ranks in :meth:`end_epoch`, which
        every rank must then call. Each rank records its own batches; a sample seen by several
        ranks (the padding ``DistributedSampler`` adds) is taken from the lowest rank; every
        rank ends with the same, complete record.
    store : path-like, optional
        Write each epoch to this on-disk store at :meth:`end_epoch` (created, or continued
        when it holds a store of the same samples) instead of keeping the record in memory;
        :attr:`dynamics` then reads it back (:func:`cartokit.store.open_dynamics`). Under
        ``torch.distributed`` each rank writes the samples it saw and no rank holds the record
        (:mod:`cartokit.recorder_store`); ``buffer_bytes`` is unused.

    Examples
    --------
    >>> import torch
    >>> rec = DynamicsRecorder(num_samples=4, num_classes=2)
    >>> for epoch in range(3):
    ...     for ids in (torch.tensor([2, 0]), torch.tensor([3, 1])):
    ...         logits = torch.randn(2, 2)          # model(x) in a real loop
    ...         rec.update(ids, logits, labels=torch.tensor([1, 0]))
    ...     rec.end_epoch()
    >>> rec.dynamics
    TrainingDynamics(num_samples=4, num_epochs=3, num_classes=2)
    """

    def __init__(
        self,
        num_samples: int,
        num_classes: int,
        *,
        sample_ids: Sequence[Any] | np.ndarray | None = None,
        class_names: Sequence[str] | None = None,
        store_probs: bool = False,
        require_complete: bool = False,
        buffer_bytes: int = 32 * 2**20,
        distributed: bool = True,
        store: str | os.PathLike[str] | None = None,
    ) -> None:
        caller = "DynamicsRecorder"
        self.num_samples = check_int("num_samples", num_samples, caller=caller, minimum=1)
        self.num_classes = check_int("num_classes", num_classes, caller=caller, minimum=2)
        self.sample_ids = check_ids(sample_ids, self.num_samples, caller=caller)
        self.class_names = None if class_names is None else [str(c) for c in class_names]
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(
                f"{caller}: got {len(self.class_names)} class names for {self.num_classes} classes."
            )
        self.store_probs = bool(store_probs)
        self.require_complete = bool(require_complete)
        self.buffer_bytes = check_int("buffer_bytes", buffer_bytes, caller=caller, minimum=0)
        self.distributed = bool(distributed)
        # Per-batch reduction when the logits buffer would be too large, unless full
        # probabilities are wanted (they need the logits anyway).
        self.reduce_per_batch = (
            not self.store_probs and self.num_samples * self.num_classes * 4 > self.buffer_bytes
        )

        # Host-side record of the finished epochs.
        self._record = _HostRecord()
        self._labels = np.full(self.num_samples if store is None else 0, -1, dtype=np.int64)
        self.duplicates: list[int] = []
        self.missing: list[int] = []
        self._sink = None if store is None else _store_sink(self, store, sample_ids is None)

        # Device-side epoch buffers, allocated at the first update on the logits' device.
        self._device: torch.device | None = None
        self._logits_buf: torch.Tensor | None = None  # [N, C], buffer mode
        self._stat_bufs: list[torch.Tensor] | None = None  # gold, margin, sq_err, pred
        self._label_buf: torch.Tensor | None = None  # [N] int64, _UNSEEN where not seen
        self._bad_ids: torch.Tensor | None = None  # accelerators only: count of bad ids
        self._rows = 0
        self._resumed = False

    # ------------------------------------------------------------------ recording
    def _allocate(self, logits: torch.Tensor) -> None:
        dev = logits.device
        n, c = self.num_samples, self.num_classes
        self._device = dev
        self._label_buf = torch.full((n,), _UNSEEN, dtype=torch.int64, device=dev)
        if self.reduce_per_batch:
            self._stat_bufs = [
                torch.zeros(n, dtype=torch.float32, device=dev),
                torch.zeros(n, dtype=torch.float32, device=dev),
                torch.zeros(n, dtype=torch.float32, device=dev),
                torch.zeros(n, dtype=torch.int64, device=dev),
            ]
        else:
            dtype = logits.dtype if logits.dtype.is_floating_point else torch.float32
            self._logits_buf = torch.zeros((n, c), dtype=dtype, device=dev)
        if dev.type != "cpu":
            self._bad_ids = torch.zeros((), dtype=torch.int64, device=dev)

    def _move_buffers(self, device: torch.device) -> None:
        self._device = device
        self._label_buf = self._label_buf.to(device)  # type: ignore[union-attr]
        if self._logits_buf is not None:
            self._logits_buf = self._logits_buf.to(device)
        if self._stat_bufs is not None:
            self._stat_bufs = [b.to(device) for b in self._stat_bufs]
        self._bad_ids = (
            torch.zeros((), dtype=torch.int64, device=device) if device.type != "cpu" else None
        )

    def update(self, ids: Any, logits: Any, labels: Any) -> None:
        """Record one batch.

        Parameters
        ----------
        ids : int tensor or array of shape (batch,)
            Row positions of the samples in the training set, in ``[0, num_samples)``.
        logits : tensor or array of shape (batch, num_classes)
            The model's outputs for the batch (for Hugging Face models, ``outputs.logits``).
            Detached internally; recording never touches the autograd graph.
        labels : int tensor or array of shape (batch,)
            Gold labels in ``[0, num_classes)``.
        """
        tensor = torch.Tensor
        if not isinstance(ids, tensor):
            ids = as_tensor(ids, "ids")
        if not isinstance(logits, tensor):
            logits = as_tensor(logits, "logits")
        if not isinstance(labels, tensor):
            labels = as_tensor(labels, "labels")
        _check_shapes(ids, logits, labels, self.num_classes)
        if self._sink is not None:
            try:
                return self._sink.update(ids, logits, labels)
            except IndexError:
                _raise_bad_ids(ids, self.num_samples)
        if self._device is None or (self._rows == 0 and logits.device != self._device):
            self._allocate(logits)  # first batch, or the model moved between epochs
        elif self._resumed and logits.device != self._device:
            self._move_buffers(logits.device)  # mid-epoch state restored on another device
        self._resumed = False
        dev = self._device
        if logits.device != dev:
            raise ValueError(
                f"DynamicsRecorder.update: logits are on {logits.device}, but this epoch's "
                f"buffers are on {dev}. Keep the model on one device during an epoch."
            )
        if ids.device != dev:
            ids = ids.to(dev, non_blocking=True)
        if labels.device != dev:
            labels = labels.to(dev, non_blocking=True)
        if labels.dtype != torch.int64:
            labels = labels.long()
        if ids.dtype != torch.int64:
            ids = ids.long()
        logits = logits.detach()
        if self._bad_ids is not None:
            # On an accelerator an out-of-range index would be a fatal device assert, and
            # checking it here would synchronise: count bad ids on the device, clamp, and
            # report in end_epoch.
            bad = (ids < 0) | (ids >= self.num_samples)
            self._bad_ids += bad.sum()
            ids = ids.clamp(0, self.num_samples - 1)
        # On the CPU, index_copy_ itself rejects an id out of range (IndexError). It may have
        # written some rows by then, so the label buffer, which marks a sample as seen, is
        # written last: a rejected batch leaves no sample marked.
        try:
            if self._logits_buf is not None:
                if logits.dtype != self._logits_buf.dtype:
                    logits = logits.to(self._logits_buf.dtype)
                self._logits_buf.index_copy_(0, ids, logits)
            else:
                gold, *rest = checkpoint_stats(logits, labels.clamp(0, self.num_classes - 1))
                # NaN marks a row with non-finite logits, reported in end_epoch (a -inf logit
                # of another class would leave the gold probability itself finite).
                gold = torch.where(_finite_rows(logits), gold, float("nan"))
                for buf, value in zip(self._stat_bufs, (gold, *rest)):  # type: ignore[arg-type]
                    buf.index_copy_(0, ids, value)
            self._label_buf.index_copy_(0, ids, labels)  # type: ignore[union-attr]
        except IndexError:
            _raise_bad_ids(ids, self.num_samples)
        self._rows += ids.shape[0]

    # ------------------------------------------------------------------ epochs
    def end_epoch(self) -> None:
        """Close the current epoch (or sub-epoch checkpoint): reduce it and move it to the host.

        Raises
        ------
        RuntimeError
            If nothing was recorded since the last call.
        ValueError
            For non-finite logits, labels outside ``[0, num_classes)``, ids out of range (on
            accelerators), a sample's label changing between epochs, or, with
            ``require_complete=True``, samples not seen in the epoch. The epoch is then not
            recorded, and the recorder is ready for the next one.

        Warns
        -----
        UserWarning
            When some samples were not seen in the epoch (recorded as missing).
        """
        if self._sink is not None:
            return self._sink.end_epoch()
        rows = self._rows
        if ranks_active(self.distributed):
            # Collective: a rank that saw no batch this epoch (unevenly sharded data) still
            # takes part; only when no rank saw any does every rank raise.
            if self._label_buf is None:
                self._allocate(torch.empty((0, self.num_classes), device=collective_device()))
            total = torch.tensor([rows], dtype=torch.int64, device=self._device)
            torch.distributed.all_reduce(total)
            rows = int(total[0])
        if rows == 0 or self._label_buf is None:
            raise RuntimeError(
                "DynamicsRecorder.end_epoch() was called with no update() since the last "
                "epoch. Call update(ids, logits, labels) for each batch first."
            )
        try:
            record = self._reduce_epoch()
        finally:
            self._reset_epoch()
        self._record.epochs.append(record)

    def _reduce_epoch(self) -> dict[str, np.ndarray]:
        n_epoch = self.num_epochs
        if ranks_active(self.distributed):
            buffers = _EpochBuffers(
                self._label_buf, self._logits_buf, self._stat_bufs, self._rows, self._bad_ids
            )
            buffers.combine_ranks()
            self._label_buf, self._logits_buf, self._stat_bufs = (
                buffers.labels, buffers.logits, buffers.stats
            )  # fmt: skip
            self._rows, self._bad_ids = buffers.rows, buffers.bad_ids
        if self._bad_ids is not None and int(self._bad_ids) > 0:
            raise ValueError(
                f"DynamicsRecorder: epoch {n_epoch} received {int(self._bad_ids)} ids outside "
                f"[0, {self.num_samples}); the epoch was discarded. Pass dataset row positions."
            )
        # Reduce the epoch chunk by chunk straight into the host record: no full-size
        # temporaries, and the only device-to-host copies of the epoch happen here.
        n = self.num_samples
        labels_np = self._label_buf.cpu().numpy()  # type: ignore[union-attr]
        seen_np = labels_np != _UNSEEN
        record = {
            "gold_prob": np.empty(n, dtype=np.float32),
            "margin": np.empty(n, dtype=np.float32),
            "sq_error": np.empty(n, dtype=np.float32),
            "pred": np.empty(n, dtype=pred_dtype(self.num_classes)),
        }
        if self._logits_buf is not None:
            labels = self._label_buf.clamp(0, self.num_classes - 1)  # type: ignore[union-attr]
            finite_np = np.empty(n, dtype=bool)
            for start in range(0, n, CHUNK_ROWS):
                rows = slice(start, start + CHUNK_ROWS)
                chunk = self._logits_buf[rows]
                for key, value in zip(record, checkpoint_stats(chunk, labels[rows])):
                    record[key][rows] = value.cpu().numpy()
                finite_np[rows] = _finite_rows(chunk).cpu().numpy()
        else:
            for key, buf in zip(record, self._stat_bufs):  # type: ignore[arg-type]
                record[key][:] = buf.cpu().numpy()
            finite_np = np.isfinite(record["gold_prob"])
        finite_np |= ~seen_np
        n_missing = _check_epoch(self, n_epoch, labels_np, seen_np, finite_np, self._labels)
        new = seen_np & (self._labels < 0)
        self._labels[new] = labels_np[new]
        self.duplicates.append(self._rows - int(seen_np.sum()))
        self.missing.append(n_missing)
        if n_missing:
            for key in ("gold_prob", "margin", "sq_error"):
                record[key][~seen_np] = np.nan
            record["pred"][~seen_np] = -1
        if self.store_probs:
            probs = torch.softmax(self._logits_buf.float(), dim=1).cpu().numpy()  # type: ignore[union-attr]
            probs[~seen_np] = np.nan
            record["probs"] = probs
        return record

    def _reset_epoch(self) -> None:
        self._label_buf.fill_(_UNSEEN)  # type: ignore[union-attr]
        if self._bad_ids is not None:
            self._bad_ids.zero_()
        self._rows = 0

    # ------------------------------------------------------------------ results
    @property
    def num_epochs(self) -> int:
        """Number of finished epochs (checkpoints)."""
        return len(self._record) if self._sink is None else self._sink.num_epochs

    @property
    def dynamics(self) -> TrainingDynamics:
        """The record so far, as :class:`~cartokit.TrainingDynamics` (finished epochs only).

        Its per-checkpoint arrays are the recorder's own record, shared rather than copied, and
        therefore read-only (``dyn.select_epochs(slice(None))`` gives a writable copy). Epochs
        finished later go to new arrays: a dynamics once returned never changes.
        """
        if not self.num_epochs:
            raise RuntimeError(
                "DynamicsRecorder.dynamics: no epoch has been finished yet; call end_epoch() "
                "after each epoch."
            )
        if self._sink is not None:
            return self._sink.dynamics()
        stacked = self._record.consolidate()
        labels = self._labels.copy()
        never = labels < 0
        if never.any():
            # Never seen in any epoch: no label known. Keep them (NaN rows) under label 0 so
            # ids stay aligned with the dataset; num_observed is 0 in the metrics table.
            labels[never] = 0
        return TrainingDynamics(
            ids=self.sample_ids,
            labels=labels,
            num_classes=self.num_classes,
            class_names=self.class_names,
            **stacked,
        )

    def memory_bytes(self) -> int:
        """Bytes held by the recorder: the host record plus the device epoch buffers."""
        host = self._record.nbytes + self._labels.nbytes
        host += 0 if self._sink is None else self._sink.memory_bytes()
        bufs = [self._logits_buf, self._label_buf, *(self._stat_bufs or [])]
        return host + sum(b.numel() * b.element_size() for b in bufs if b is not None)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this record after a restart, mid-epoch included.

        Holds only tensors, numbers, strings and lists, so ``torch.save`` /
        ``torch.load(weights_only=True)`` handle it.
        """
        if self._sink is not None:
            return self._sink.state_dict()
        state: dict[str, Any] = {
            "version": _STATE_VERSION,
            "num_samples": self.num_samples,
            "num_classes": self.num_classes,
            "store_probs": self.store_probs,
            "labels": torch.from_numpy(self._labels.copy()),
            "duplicates": list(self.duplicates),
            "missing": list(self.missing),
            "epochs": [
                {k: torch.from_numpy(v.copy()) for k, v in e.items()}
                for e in self._record.per_epoch()
            ],
            "partial": None,
        }
        if self._rows:
            # Rows of an unfinished epoch: a checkpoint taken mid-epoch resumes mid-epoch.
            seen = self._label_buf != _UNSEEN  # type: ignore[operator]
            idx = torch.nonzero(seen).squeeze(1)
            partial = {"ids": idx.cpu(), "labels": self._label_buf[idx].cpu(), "rows": self._rows}
            if self._logits_buf is not None:
                partial["logits"] = self._logits_buf[idx].cpu()
            else:
                partial["stats"] = [b[idx].cpu() for b in self._stat_bufs]  # type: ignore[union-attr]
            state["partial"] = partial
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a record saved by :meth:`state_dict`; recording then continues from it."""
        _check_state(self, state)
        if self._sink is not None:
            return self._sink.load_state_dict(state)
        self._record = _HostRecord(
            [{k: v.numpy().copy() for k, v in e.items()} for e in state["epochs"]]
        )
        self._labels = state["labels"].numpy().copy()
        self.duplicates = list(state["duplicates"])
        self.missing = list(state["missing"])
        self._rows = 0
        if self._label_buf is not None:
            self._label_buf.fill_(_UNSEEN)
        partial = state.get("partial")
        if partial:
            if ("logits" in partial) == self.reduce_per_batch:
                raise ValueError(
                    "DynamicsRecorder.load_state_dict: the saved mid-epoch state was recorded "
                    f"with {'an epoch logits buffer' if 'logits' in partial else 'per-batch '}"
                    f"{'' if 'logits' in partial else 'reduction'}, this recorder uses the "
                    "other; create it with the same buffer_bytes and store_probs."
                )
            template = partial.get("logits")
            if template is None:
                template = partial["stats"][0][:, None].expand(-1, self.num_classes)
            if self._device is None:
                self._allocate(template)
            dev = self._device
            ids = partial["ids"].to(dev)
            self._label_buf.index_copy_(0, ids, partial["labels"].to(dev))  # type: ignore[union-attr]
            if self._logits_buf is not None:
                self._logits_buf.index_copy_(
                    0, ids, partial["logits"].to(dev, self._logits_buf.dtype)
                )
            else:
                for buf, value in zip(self._stat_bufs, partial["stats"]):  # type: ignore[arg-type]
                    buf.index_copy_(0, ids, value.to(dev))
            self._rows = int(partial["rows"])
            self._resumed = True
