"""The recorder's store mode, ``DynamicsRecorder(..., store=DIR)``: no record in memory.

Each batch is reduced on the logits' device to the statistics of :func:`checkpoint_stats` and
copied, with a sort key ``position << 32 | row``, into a run buffer of at most :data:`RUN_ROWS`
rows. A full buffer is sorted on the host and written as one Parquet part of the epoch
(:func:`cartokit.store.write_part`); :meth:`StoreSink.end_epoch` writes the last run, checks the
epoch as the in-memory recorder does, and commits it (:class:`cartokit.store.StoreWriter`).

Under ``torch.distributed`` each rank writes the rows it saw, and no rank ever holds the record:
per sample, a rank keeps only its label as known from earlier epochs (1 byte below 128 classes)
and as seen in this epoch (4 bytes, combined across ranks at ``end_epoch`` to count the samples
not seen and to check the labels alike on every rank). Rank 0 owns the store's metadata and
commits each epoch once every rank has written its parts; reading merges them by position, a
padding duplicate counted once (:class:`cartokit.store.StoreReader`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cartokit.dynamics import pred_dtype
from cartokit.metrics import checkpoint_stats
from cartokit.recorder import collective_device
from cartokit.store import (
    ROW_GROUP_ROWS,
    StoreSpec,
    StoreWriter,
    open_dynamics,
    part_schema,
    remove_leftovers,
    remove_parts,
    write_part,
)

__all__ = ["RUN_ROWS", "StoreSink"]

#: Rows a rank buffers before it writes them as one sorted run (about 90 MB at 2 classes).
RUN_ROWS = 1 << 22
_MAX_SAMPLES = 2**31 - 1  # positions are stored as int32, and sort keys hold them in 32 bits
_LOW32 = np.uint64(0xFFFFFFFF)
_UNSEEN = torch.iinfo(torch.int32).min
_STATE_VERSION = 1


class StoreSink:
    """Where a :class:`~cartokit.DynamicsRecorder` created with ``store=`` sends its epochs.

    Parameters
    ----------
    recorder : DynamicsRecorder
        Its sizes, ids, class names, ``store_probs``, ``duplicates`` and ``missing``.
    store : path-like
        The store's folder: created, or continued when it holds a store of the same samples.
    positions : bool
        Whether the recorder's ids are its row positions (no ``sample_ids`` given).
    check_epoch : callable
        The recorder's epoch checks (labels, non-finite logits, samples not seen).
    ranks_active : callable
        Whether ranks are combined (``torch.distributed`` with more than one process).
    """

    def __init__(
        self,
        recorder: Any,
        store: str | Path,
        *,
        positions: bool,
        check_epoch: Callable[..., int],
        ranks_active: Callable[[bool], bool],
    ) -> None:
        caller = "DynamicsRecorder"
        if recorder.num_samples > _MAX_SAMPLES:
            raise ValueError(
                f"{caller}: store= records up to {_MAX_SAMPLES} samples per store. Got "
                f"{recorder.num_samples}; shard the data into several stores and merge them "
                "(cartokit.merge_dynamics)."
            )
        self.rec, self.root = recorder, Path(store)
        self._check_epoch, self._ranks_active = check_epoch, ranks_active
        import torch.distributed as dist

        distributed = ranks_active(recorder.distributed)
        self.rank = dist.get_rank() if distributed else 0
        self.world = dist.get_world_size() if distributed else 1
        kind = "str" if recorder.sample_ids.dtype == object else "int"
        kind = "position" if positions else kind
        spec = StoreSpec(
            recorder.num_samples, recorder.num_classes, recorder.class_names, kind, (),
            recorder.store_probs,
        )  # fmt: skip
        self.schema = part_schema(spec.num_classes, (), spec.probs)
        self.writer: StoreWriter | None = None
        opened: Any = None
        if self.rank == 0:
            try:
                self.writer = StoreWriter(
                    self.root, spec, None if positions else recorder.sample_ids, caller=caller
                )
                self.writer.clean_uncommitted(world=self.world)
                opened = (self.writer.num_epochs, self.writer.known_labels)
            except (OSError, ValueError) as err:
                opened = err
        opened = self._from_rank0(opened)
        if isinstance(opened, Exception):
            raise opened
        self.num_epochs, self.known = opened
        self._device: torch.device | None = None
        self._bufs: dict[str, torch.Tensor] = {}
        self._epoch_labels: torch.Tensor | None = None
        self._reset_epoch()
        self._cleaned = False

    def _from_rank0(self, value: Any) -> Any:
        """``value`` as rank 0 has it, on every rank (a collective under DDP)."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def _reset_epoch(self) -> None:
        self._fill = self._rows = self._nonfinite = 0
        self._runs: list[dict[str, Any]] = []
        self._error: str | None = None
        self._flags: np.ndarray | None = None  # 1 where this rank saw non-finite logits
        if self._epoch_labels is not None:
            self._epoch_labels.fill_(_UNSEEN)
        if "bad_ids" in self._bufs:
            self._bufs["bad_ids"].zero_()

    # -------------------------------------------------------------- recording
    def _allocate(self, device: torch.device) -> None:
        rows = min(RUN_ROWS, max(self.rec.num_samples, 1))
        pred = getattr(torch, np.dtype(pred_dtype(self.rec.num_classes)).name)
        self._bufs = {
            "key": torch.empty(rows, dtype=torch.int64, device=device),
            "gold_prob": torch.empty(rows, dtype=torch.float32, device=device),
            "margin": torch.empty(rows, dtype=torch.float32, device=device),
            "sq_error": torch.empty(rows, dtype=torch.float32, device=device),
            "pred": torch.empty(rows, dtype=pred, device=device),
        }
        if self.rec.store_probs:
            self._bufs["probs"] = torch.empty(
                (rows, self.rec.num_classes), dtype=torch.float32, device=device
            )
        if device.type != "cpu":
            self._bufs["bad_ids"] = torch.zeros((), dtype=torch.int64, device=device)
        if self._epoch_labels is None:
            self._epoch_labels = torch.full(
                (self.rec.num_samples,), _UNSEEN, dtype=torch.int32, device=device
            )
        else:
            self._epoch_labels = self._epoch_labels.to(device)
        self._device = device

    def update(self, ids: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Record one batch (shapes and dtypes checked by the recorder). On the CPU an id out of
        range raises IndexError before anything is kept."""
        if self._device is None or (self._fill == 0 and logits.device != self._device):
            self._allocate(logits.device)
        dev, n = self._device, self.rec.num_samples
        logits = logits.detach().to(dev)
        ids, labels = ids.to(dev).long(), labels.to(dev).long()
        if dev.type == "cpu":
            if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= n):
                raise IndexError("ids out of range")
        else:  # checking here would synchronise: count on the device, report in end_epoch
            self._bufs["bad_ids"] += ((ids < 0) | (ids >= n)).sum()
            ids = ids.clamp(0, n - 1)
        info = torch.iinfo(torch.int32)
        self._epoch_labels.index_copy_(  # type: ignore[union-attr]
            0, ids, labels.clamp(info.min + 1, info.max).to(torch.int32)
        )
        gold, margin, sq_err, pred = checkpoint_stats(
            logits, labels.clamp(0, self.rec.num_classes - 1)
        )
        # NaN marks a row with non-finite logits, reported in end_epoch
        finite = torch.isfinite(logits.sum(dim=1, dtype=torch.float32))
        values = {"gold_prob": torch.where(finite, gold, float("nan")), "margin": margin}
        values.update(sq_error=sq_err, pred=pred)
        if self.rec.store_probs:
            values["probs"] = torch.softmax(logits.float(), dim=1)
        done, batch = 0, ids.shape[0]
        while done < batch:
            if self._fill == len(self._bufs["key"]):
                self._flush()
            take = min(len(self._bufs["key"]) - self._fill, batch - done)
            rows, src = slice(self._fill, self._fill + take), slice(done, done + take)
            order = torch.arange(self._fill, self._fill + take, device=dev)
            self._bufs["key"][rows] = (ids[src] << 32) | order
            for name, value in values.items():
                self._bufs[name][rows] = value[src]
            self._fill += take
            done += take
        self._rows += batch

    def _flush(self) -> None:
        """Write the buffered rows as one sorted run of this rank's part of the epoch."""
        if not self._cleaned:
            remove_leftovers(self.root, self.num_epochs, self.rank, self._runs)
            self._cleaned = True
        k, self._fill = self._fill, 0
        if k == 0 or self._error is not None:
            return
        keys = self._bufs["key"][:k].cpu().numpy().view(np.uint64)
        columns = {name: self._bufs[name][:k].cpu().numpy() for name in self.schema.names[1:]}
        bad = np.flatnonzero(np.isnan(columns["gold_prob"]))
        if bad.size:
            if self._flags is None:
                self._flags = np.zeros(self.rec.num_samples, dtype=np.uint8)
            self._flags[(keys[bad] >> np.uint64(32)).astype(np.intp)] = 1
            self._nonfinite += bad.size
        if self._nonfinite:
            return  # the epoch will be discarded: nothing more to write
        keys.sort()  # in place: on the CPU, the run buffer itself
        try:
            part = write_part(
                self.root, self.num_epochs, self.rank, len(self._runs),
                _sorted_groups(keys, columns), self.schema,
            )  # fmt: skip
        except OSError as err:
            where = f"{err.filename}: " if err.filename else ""
            self._error = f"cannot write {where}{err.strerror or err}"
            return
        self._runs.append(part)

    # -------------------------------------------------------------- epochs
    def end_epoch(self) -> None:
        """Write the last run, check the epoch on every rank alike, and commit it."""
        self._flush()
        if self._epoch_labels is None:  # this rank saw no batch at all
            device = collective_device() if self.world > 1 else torch.device("cpu")
            self._allocate(device)
        bad_ids = int(self._bufs["bad_ids"]) if "bad_ids" in self._bufs else 0
        mine = {"rows": self._rows, "nonfinite": self._nonfinite, "bad_ids": bad_ids}
        mine.update(error=self._error, runs=self._runs)
        labels = self._epoch_labels
        statuses = [mine]
        if self.world > 1:
            import torch.distributed as dist

            statuses = [None] * self.world
            dist.all_gather_object(statuses, mine)
            labels = labels.to(collective_device())  # type: ignore[union-attr]
            dist.all_reduce(labels, op=dist.ReduceOp.MAX)
        try:
            n_missing, duplicates, known = self._check(statuses, labels)  # type: ignore[arg-type]
            self._commit(statuses, known, n_missing, duplicates)  # type: ignore[arg-type]
        except BaseException:
            remove_parts(self.root, self._runs)
            raise
        finally:
            self._reset_epoch()
            self._cleaned = False

    def _check(
        self, statuses: list[dict[str, Any]], labels: torch.Tensor
    ) -> tuple[int, int, np.ndarray | None]:
        n_epoch, rows = self.num_epochs, sum(s["rows"] for s in statuses)
        if rows == 0:
            raise RuntimeError(
                "DynamicsRecorder.end_epoch() was called with no update() since the last "
                "epoch. Call update(ids, logits, labels) for each batch first."
            )
        errors = [f"rank {r}: {s['error']}" for r, s in enumerate(statuses) if s["error"]]
        if errors:
            raise OSError(
                f"DynamicsRecorder: epoch {n_epoch} was not recorded, "
                f"{errors[0] if self.world > 1 else statuses[0]['error']}; the store "
                f"{self.root} keeps the {n_epoch} epochs before it. Free space (or move the "
                "store) and train the epoch again."
            )
        bad_ids = sum(s["bad_ids"] for s in statuses)
        if bad_ids:
            raise ValueError(
                f"DynamicsRecorder: epoch {n_epoch} received {bad_ids} ids outside "
                f"[0, {self.rec.num_samples}); the epoch was discarded. Pass dataset row "
                "positions."
            )
        labels_np = labels.cpu().numpy()
        seen = labels_np != _UNSEEN
        finite: np.ndarray = np.broadcast_to(np.True_, seen.shape)
        if any(s["nonfinite"] for s in statuses):
            flags = torch.from_numpy(
                self._flags if self._flags is not None else np.zeros(seen.shape, np.uint8)
            )
            if self.world > 1:
                import torch.distributed as dist

                flags = flags.to(labels.device)
                dist.all_reduce(flags, op=dist.ReduceOp.MAX)
            finite = flags.cpu().numpy() == 0
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            n_missing = self._check_epoch(self.rec, n_epoch, labels_np, seen, finite, self.known)
        for w in caught:  # said from here, so that it points at the caller of end_epoch
            warnings.warn(w.message, w.category, stacklevel=4)
        new = seen & (self.known < 0)
        known = np.where(new, labels_np, self.known).astype(self.known.dtype) if new.any() else None
        return n_missing, rows - int(seen.sum()), known

    def _commit(
        self,
        statuses: list[dict[str, Any]],
        known: np.ndarray | None,
        n_missing: int,
        duplicates: int,
    ) -> None:
        failure = None
        if self.writer is not None:
            parts = [part for s in statuses for part in s["runs"]]
            rows = sum(s["rows"] for s in statuses)
            try:
                self.writer.commit(
                    parts, known, rows=rows, duplicates=duplicates, missing=n_missing
                )
            except OSError as err:
                where = f"{err.filename}: " if err.filename else ""
                failure = f"cannot write {where}{err.strerror or err}"
        failure = self._from_rank0(failure)
        if failure is not None:
            raise OSError(
                f"DynamicsRecorder: epoch {self.num_epochs} was not recorded, {failure}; the "
                f"store {self.root} keeps the {self.num_epochs} epochs before it. Free space "
                "(or move the store) and train the epoch again."
            )
        if known is not None:
            self.known = known
        self.rec.duplicates.append(duplicates)
        self.rec.missing.append(n_missing)
        self.num_epochs += 1

    # -------------------------------------------------------------- results and state
    def dynamics(self) -> Any:
        """The committed epochs, read from the store."""
        return open_dynamics(self.root)

    def memory_bytes(self) -> int:
        """Bytes held: the run buffers, the labels of this epoch and the known labels."""
        held = sum(b.numel() * b.element_size() for b in self._bufs.values())
        if self._epoch_labels is not None:
            held += self._epoch_labels.numel() * 4
        return held + self.known.nbytes + (0 if self._flags is None else self._flags.nbytes)

    def state_dict(self) -> dict[str, Any]:
        """The committed epoch count and, mid-epoch, this rank's runs written so far (the
        buffered rows are written as one more run first) and the samples it saw."""
        state: dict[str, Any] = {
            "version": _STATE_VERSION,
            "num_samples": self.rec.num_samples,
            "num_classes": self.rec.num_classes,
            "store": str(self.root),
            "num_epochs": self.num_epochs,
            "duplicates": list(self.rec.duplicates),
            "missing": list(self.rec.missing),
            "partial": None,
        }
        if self._rows:
            self._flush()
            labels = self._epoch_labels.cpu()  # type: ignore[union-attr]
            seen = torch.nonzero(labels != _UNSEEN).squeeze(1)
            state["partial"] = {
                "runs": [dict(run) for run in self._runs],
                "ids": seen,
                "labels": labels[seen],
                "rows": self._rows,
                "error": self._error,
                "nonfinite": torch.from_numpy(
                    np.flatnonzero(self._flags) if self._flags is not None else np.empty(0)
                ),
            }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`: the store drops epochs committed after it."""
        if "store" not in state:
            raise ValueError(
                "DynamicsRecorder.load_state_dict: the saved record was kept in memory, and this "
                "recorder writes a store; create it without store= to resume that record."
            )
        saved = int(state["num_epochs"])
        if saved > self.num_epochs:
            raise ValueError(
                f"DynamicsRecorder.load_state_dict: the checkpoint has {saved} epochs, the store "
                f"{self.root} only {self.num_epochs}; it is not the store this run recorded into."
            )
        if saved < self.num_epochs:
            warnings.warn(
                f"DynamicsRecorder.load_state_dict: the store {self.root} holds "
                f"{self.num_epochs} epochs, the checkpoint {saved}; epochs {saved}-"
                f"{self.num_epochs - 1} are dropped, to be recorded again.",
                UserWarning,
                stacklevel=3,
            )
            if self.writer is not None:
                self.writer.truncate(saved)
            self.known = self._from_rank0(None if self.writer is None else self.writer.known_labels)
            self.num_epochs = saved
        self.rec.duplicates, self.rec.missing = list(state["duplicates"]), list(state["missing"])
        self._reset_epoch()
        partial = state.get("partial")
        if partial:
            self._runs = [dict(run) for run in partial["runs"]]
            missing = [r["file"] for r in self._runs if not (self.root / r["file"]).is_file()]
            if missing:
                raise ValueError(
                    f"DynamicsRecorder.load_state_dict: the checkpoint's runs {missing} are not "
                    f"in the store {self.root}; resume from the checkpoint of an epoch's end."
                )
            if self._epoch_labels is None:
                self._allocate(torch.device("cpu"))
            ids = partial["ids"].to(self._device)
            self._epoch_labels.index_copy_(0, ids, partial["labels"].to(self._device))  # type: ignore[union-attr]
            self._rows, self._error = int(partial["rows"]), partial["error"]
            if len(partial["nonfinite"]):
                self._flags = np.zeros(self.rec.num_samples, dtype=np.uint8)
                self._flags[partial["nonfinite"].numpy().astype(np.intp)] = 1
                self._nonfinite = len(partial["nonfinite"])


def _sorted_groups(keys: np.ndarray, columns: dict[str, np.ndarray]) -> Iterator[dict[str, Any]]:
    """The rows of a sorted run in row groups, by position; of rows with the same position (a
    sample seen twice by this rank) the last one written is kept, as the in-memory recorder's
    last write wins."""
    shift = np.uint64(32)
    for start in range(0, len(keys), ROW_GROUP_ROWS):
        chunk = keys[start : start + ROW_GROUP_ROWS]
        pos = chunk >> shift
        following = keys[start + 1 : start + ROW_GROUP_ROWS + 1] >> shift
        keep = np.ones(len(chunk), dtype=bool)
        keep[: len(following)] = pos[: len(following)] != following
        if not keep.all():
            chunk, pos = chunk[keep], pos[keep]
        rows = (chunk & _LOW32).astype(np.intp)
        group = {"pos": pos.astype(np.int32)}
        for name, values in columns.items():
            group[name] = values[rows]
        yield group
