"""Record the training dynamics of language models: :class:`SequenceRecorder`.

A prompt→response pair (an SFT or instruction-tuning example) is one sample; its reference answer
is the sequence of *scored* tokens, those whose label is not ``ignore_index`` (Hugging Face's
convention: ``-100`` marks the prompt and the padding). Per sample and checkpoint the recorder
keeps five numbers, reduced on the logits' device from the training forward pass
(:func:`sequence_stats`), 17 bytes per sample-epoch and never the logits themselves:

* the mean token log-probability :math:`\\ell = \\frac{1}{T}\\sum_t \\log p(y_t \\mid y_{<t}, x)`,
  kept as ``gold_prob`` :math:`= e^{\\ell}`, the geometric-mean token probability;
* ``token_accuracy``: the share of scored tokens that are argmax-correct;
* ``pred``: 1 when every scored token is argmax-correct (the greedy answer is the reference),
  else 0;
* ``margin``: the mean over tokens of the AUM margin :math:`z_{y_t} - \\max_{k \\ne y_t} z_k`
  (Pleiss et al., 2020, per token);
* ``sq_error``: the square of the mean over tokens of the per-token EL2N score
  :math:`\\lVert \\mathrm{softmax}(z_t) - \\mathrm{onehot}(y_t) \\rVert_2` (Paul et al., 2021), so
  that the ``el2n`` column is the mean over checkpoints of the mean per-token EL2N.

The result is a :class:`~cartokit.TrainingDynamics` of two classes
(:data:`~cartokit.metrics.SEQUENCE_CLASS_NAMES`: every label is 1, "reference"), with the extra
statistic ``token_accuracy``; :func:`~cartokit.compute_metrics` then gives ``confidence`` (mean
geometric-mean token probability over checkpoints, Swayamdipta et al.'s Eq. 1 with the sequence
probability normalised by length), ``variability``, ``correctness`` (share of checkpoints whose
greedy answer is the reference), ``aum``, ``el2n``, ``token_accuracy`` and ``perplexity``
(:func:`~cartokit.metrics.perplexity`), and everything else works unchanged.

A token is argmax-correct when its reference token's logit is strictly above every other
(``margin > 0``): a tie counts as wrong, where the classifier kernel's first-maximum rule would
favour low token ids.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from cartokit._validation import Boolean, check_ids, check_int, check_param, first_few
from cartokit.dynamics import TrainingDynamics
from cartokit.metrics import SEQUENCE_CLASS_NAMES, SEQUENCE_EXTRA
from cartokit.recorder import as_tensor, collective_device, ranks_active

__all__ = ["CHUNK_VALUES", "SequenceRecorder", "SequenceStats", "sequence_stats"]

#: Logit values (tokens x vocabulary) reduced at a time: the float32 workspace of one chunk, 4 MiB,
#: which stays in the CPU's cache and bounds the extra memory at any vocabulary size.
CHUNK_VALUES = 1 << 20

_INT_DTYPES = frozenset(
    {torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.uint16, torch.uint32}
)
#: Marks a sample not yet seen in the current epoch in the token-count buffer.
_UNSEEN = torch.iinfo(torch.int64).min
_STATE_VERSION = 1
_KIND = "sequence"
#: Rows of the epoch's statistics buffer.
_STATS = ("mean_log_prob", "token_accuracy", "exact", "margin", "el2n")


class SequenceStats(NamedTuple):
    """Per-sequence statistics of one batch (tensors of shape ``(batch,)``).

    ``tokens`` counts the scored tokens; the others are means over them, NaN where a sequence has
    none: ``mean_log_prob`` (<= 0), ``token_accuracy`` (in [0, 1]), ``exact`` (1.0 when every
    scored token is argmax-correct, else 0.0), ``margin`` (any real) and ``el2n`` (in
    [0, sqrt(2)]).
    """

    tokens: torch.Tensor
    mean_log_prob: torch.Tensor
    token_accuracy: torch.Tensor
    exact: torch.Tensor
    margin: torch.Tensor
    el2n: torch.Tensor


def _token_stats(
    x: torch.Tensor, y: torch.Tensor, work: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token log-probability, correctness, margin and EL2N of a ``(rows, time, vocab)`` chunk.

    Everything happens in the float32 workspace ``work``: ``x - max`` once, the gold entry set to
    -inf to find the best other token, then exponentiated in place. So the gold logit never has
    to be masked in a copy of ``x``, bf16/fp16 logits are promoted chunk by chunk, and
    ``sum_{k != y} p_k**2 + (1 - p_y)**2`` needs no subtraction that would cancel.
    """
    z = work[: x.numel()].view(x.shape)
    top = x.amax(dim=-1, keepdim=True).float()
    torch.sub(x, top, out=z)  # promotes half-precision logits to float32
    index = y.unsqueeze(-1)
    gold = z.gather(-1, index)  # z_y - max <= 0
    z.scatter_(-1, index, float("-inf"))
    other = z.amax(dim=-1, keepdim=True)  # max_{k != y} z_k - max
    z.exp_()
    others = z.sum(dim=-1, keepdim=True)
    others_sq = z.square_().sum(dim=-1, keepdim=True)
    total = others + gold.exp()  # >= 1: the largest logit contributes exp(0)
    log_p = gold - total.log()
    margin = gold - other
    sq_error = others_sq / total.square() + torch.expm1(log_p).square()
    return (
        log_p.squeeze(-1),
        (margin > 0).squeeze(-1),
        margin.squeeze(-1),
        sq_error.sqrt().squeeze(-1),
    )


def sequence_stats(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    shift: bool = True,
    ignore_index: int = -100,
    chunk_values: int = CHUNK_VALUES,
) -> SequenceStats:
    """Per-sequence statistics of a batch of language-model logits: the recorder's kernel.

    Parameters
    ----------
    logits : torch.Tensor of shape (batch, T, vocab)
        Any floating dtype (bf16 and fp16 are promoted chunk by chunk).
    labels : torch.Tensor of shape (batch, T)
        Token ids in ``[0, vocab)``, or ``ignore_index`` for a position that is not scored.
    shift : bool, default True
        Score ``logits[:, :-1]`` against ``labels[:, 1:]``, as Hugging Face causal LMs do;
        ``False`` for a seq2seq decoder, whose logits already align with its labels.
    ignore_index : int, default -100
    chunk_values : int
        Logit values reduced at a time (tokens x vocabulary); bounds the float32 workspace.

    Returns
    -------
    SequenceStats
        On the logits' device; computed without a host synchronisation.

    Examples
    --------
    >>> logits = torch.tensor([[[2.0, 0.0], [0.0, 2.0], [0.0, 0.0]]])
    >>> s = sequence_stats(logits, torch.tensor([[-100, 0, 0]]))  # the prompt is -100
    >>> s.tokens.tolist(), round(s.token_accuracy.item(), 2), s.exact.tolist()
    ([2], 0.5, [0.0])
    """
    if shift:
        logits, labels = logits[:, :-1], labels[:, 1:]
    batch, steps, vocab = logits.shape
    scored = labels != ignore_index
    # Unscored positions (and any label the caller has not range-checked) must still index the
    # vocabulary; their values are masked out below.
    targets = labels.clamp(0, vocab - 1)
    sums = torch.zeros((4, batch), dtype=torch.float32, device=logits.device)
    per_chunk = max(1, chunk_values // vocab)
    if steps <= per_chunk:
        row_step, time_step = max(1, per_chunk // max(steps, 1)), max(steps, 1)
    else:
        row_step, time_step = 1, per_chunk
    work = torch.empty(
        min(batch, row_step) * min(steps, time_step) * vocab,
        dtype=torch.float32,
        device=logits.device,
    )
    for r0 in range(0, batch if steps else 0, row_step):
        rows = slice(r0, r0 + row_step)
        for t0 in range(0, steps, time_step):
            cols = slice(t0, t0 + time_step)
            mask = scored[rows, cols]
            values = _token_stats(logits[rows, cols], targets[rows, cols], work)
            for i, value in enumerate(values):
                # where(), not a product: NaN logits at unscored positions must not leak in
                sums[i, rows] += torch.where(mask, value, 0.0).sum(dim=1)
    tokens = scored.sum(dim=1)
    means = sums / tokens.to(torch.float32)  # NaN for a sequence with no scored token
    exact = (sums[1] == tokens).to(torch.float32)
    return SequenceStats(tokens, means[0], means[1], exact, means[2], means[3])


def _check_shapes(
    ids: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, shift: bool
) -> None:
    caller = "SequenceRecorder.update"
    if logits.ndim != 3:
        raise ValueError(
            f"{caller}: logits must have shape (batch, T, vocab). Got {tuple(logits.shape)}. "
            "Pass the language model's logits (outputs.logits), not the loss; for a "
            "classifier use DynamicsRecorder."
        )
    if not logits.dtype.is_floating_point:
        raise TypeError(f"{caller}: logits must be floating point. Got {logits.dtype}.")
    batch, steps, vocab = logits.shape
    if vocab < 2:
        raise ValueError(f"{caller}: logits need a vocabulary of at least 2. Got {vocab}.")
    if tuple(labels.shape) != (batch, steps):
        raise ValueError(
            f"{caller}: labels must have shape ({batch}, {steps}) to match logits of shape "
            f"{tuple(logits.shape)}. Got {tuple(labels.shape)}. Pad labels with -100 to the "
            "logits' length."
        )
    if shift and steps < 2:
        raise ValueError(
            f"{caller}: with shift=True the logits need at least 2 positions (position t "
            f"predicts token t+1). Got T={steps}."
        )
    if ids.ndim != 1 or ids.shape[0] != batch:
        raise ValueError(
            f"{caller}: ids must have shape ({batch},) to match logits of shape "
            f"{tuple(logits.shape)}. Got {tuple(ids.shape)}."
        )
    for name, t in (("ids", ids), ("labels", labels)):
        if t.dtype not in _INT_DTYPES:
            raise TypeError(f"{caller}: {name} must be integers. Got {t.dtype}.")


class SequenceRecorder:
    """Record each training sequence's token statistics, epoch by epoch (see the module notes).

    Call :meth:`update` with every batch's sample ids, logits and labels inside the training
    forward pass, in any order and batch size; call :meth:`end_epoch` after each epoch (or at any
    sub-epoch checkpoint); read :attr:`dynamics` at the end.

    A batch is reduced to five numbers per sequence at once, on the logits' device, in chunks of
    ``chunk_values`` logits (a few MiB of float32 at any vocabulary size), and written by id into
    epoch buffers with one ``index_copy_``; nothing is synchronised with the host until
    :meth:`end_epoch`. Checks that would need a synchronisation (non-finite logits, and on
    accelerators ids and token ids out of range) run there, once per epoch; on the CPU, ids and
    token ids out of range fail at once.

    Parameters
    ----------
    num_samples : int
        Size of the training set; ids are row positions in ``[0, num_samples)``.
    shift : bool, default True
        Score ``logits[:, :-1]`` against ``labels[:, 1:]``, as Hugging Face causal LMs do;
        ``False`` for seq2seq decoders (T5, BART), whose logits align with their labels.
    ignore_index : int, default -100
        The label of a position that is not scored (the prompt, the padding).
    sample_ids : sequence, optional
        The dataset's own ids for positions ``0..num_samples-1``. Defaults to the positions.
    distributed : bool, default True
        Under multi-process training, combine the ranks in :meth:`end_epoch` (every rank must
        call it), as :class:`~cartokit.DynamicsRecorder` does: a sample seen by several ranks
        (a distributed sampler's padding) is taken from the lowest rank.
    chunk_values : int, default 2**20
        Logit values reduced at a time.

    Examples
    --------
    >>> rec = SequenceRecorder(num_samples=2)
    >>> labels = torch.tensor([[-100, 3, 1], [-100, -100, 2]])  # the prompt is -100
    >>> for epoch in range(3):
    ...     rec.update(torch.tensor([0, 1]), torch.randn(2, 3, 5), labels)
    ...     rec.end_epoch()
    >>> rec.dynamics
    TrainingDynamics(num_samples=2, num_epochs=3, num_classes=2, class_names=['other', 'reference'])
    """

    def __init__(
        self,
        num_samples: int,
        *,
        shift: bool = True,
        ignore_index: int = -100,
        sample_ids: Sequence[Any] | np.ndarray | None = None,
        distributed: bool = True,
        chunk_values: int = CHUNK_VALUES,
    ) -> None:
        caller = "SequenceRecorder"
        self.num_samples = check_int("num_samples", num_samples, caller=caller, minimum=1)
        self.shift = check_param("shift", shift, Boolean(), caller=caller)
        self.ignore_index = check_int("ignore_index", ignore_index, caller=caller)
        self.sample_ids = check_ids(sample_ids, self.num_samples, caller=caller)
        self.distributed = check_param("distributed", distributed, Boolean(), caller=caller)
        self.chunk_values = check_int("chunk_values", chunk_values, caller=caller, minimum=1)
        self._epochs: list[dict[str, np.ndarray]] = []
        self.duplicates: list[int] = []
        self.missing: list[int] = []
        self.empty: list[int] = []
        # device buffers of the current epoch, allocated at the first update
        self._device: torch.device | None = None
        self._tokens: torch.Tensor | None = None  # [N] int64, _UNSEEN where not seen
        self._stats: torch.Tensor | None = None  # [5, N] float32, rows as in _STATS
        self._bad: torch.Tensor | None = None  # accelerators: [2] counts of bad ids, bad tokens
        self._rows = 0
        self._resumed = False

    # ------------------------------------------------------------------ recording
    def _allocate(self, device: torch.device) -> None:
        n = self.num_samples
        self._device = device
        self._tokens = torch.full((n,), _UNSEEN, dtype=torch.int64, device=device)
        self._stats = torch.zeros((len(_STATS), n), dtype=torch.float32, device=device)
        self._bad = (
            torch.zeros(2, dtype=torch.int64, device=device) if device.type != "cpu" else None
        )

    def _move(self, device: torch.device) -> None:
        tokens, stats = self._tokens, self._stats
        self._allocate(device)
        self._tokens.copy_(tokens)  # type: ignore[union-attr]
        self._stats.copy_(stats)  # type: ignore[union-attr]

    def update(self, ids: Any, logits: Any, labels: Any) -> None:
        """Record one batch.

        Parameters
        ----------
        ids : int tensor or array of shape (batch,)
            Row positions of the sequences in the training set.
        logits : tensor of shape (batch, T, vocab)
            The model's outputs (``outputs.logits``), any floating dtype; detached internally.
        labels : int tensor of shape (batch, T)
            Token ids, ``ignore_index`` where not scored (``-100``: the prompt, the padding).
        """
        ids, logits, labels = (
            x if isinstance(x, torch.Tensor) else as_tensor(x, name, "SequenceRecorder.update")
            for x, name in ((ids, "ids"), (logits, "logits"), (labels, "labels"))
        )
        _check_shapes(ids, logits, labels, self.shift)
        dev = logits.device
        if self._device is None or (self._rows == 0 and dev != self._device):
            self._allocate(dev)
        elif self._resumed and dev != self._device:
            self._move(dev)  # a mid-epoch state restored on another device
        self._resumed = False
        if dev != self._device:
            raise ValueError(
                f"SequenceRecorder.update: logits are on {dev}, but this epoch's buffers are on "
                f"{self._device}. Keep the model on one device during an epoch."
            )
        ids = ids.to(dev, torch.int64, non_blocking=True)
        labels = labels.to(dev, non_blocking=True)
        vocab = logits.shape[2]
        bad_token = (labels != self.ignore_index) & ((labels < 0) | (labels >= vocab))
        if self._bad is None:  # the CPU: checks cost no device synchronisation
            if bool(bad_token.any()):
                self._raise_bad_tokens(labels[bad_token], vocab)
        else:
            bad_id = (ids < 0) | (ids >= self.num_samples)
            self._bad += torch.stack([bad_id.sum(), bad_token.sum()])
            ids = ids.clamp(0, self.num_samples - 1)
            labels = torch.where(bad_token, self.ignore_index, labels)
        stats = sequence_stats(
            logits.detach(),
            labels,
            shift=self.shift,
            ignore_index=self.ignore_index,
            chunk_values=self.chunk_values,
        )
        # The token counts mark a sample as seen: written last, so that a batch rejected for
        # its ids leaves no sample marked.
        try:
            self._stats.index_copy_(1, ids, torch.stack(stats[1:]))  # type: ignore[union-attr]
            self._tokens.index_copy_(0, ids, stats.tokens)  # type: ignore[union-attr]
        except IndexError:
            bad = ids[(ids < 0) | (ids >= self.num_samples)]
            raise ValueError(
                f"SequenceRecorder.update: ids must be row positions in [0, {self.num_samples})."
                f" Got {first_few(bad.tolist())}. Pass the samples' row positions in the "
                "training set, not their original ids; give those as sample_ids=."
            ) from None
        self._rows += ids.shape[0]

    def _raise_bad_tokens(self, bad: torch.Tensor, vocab: int) -> None:
        raise ValueError(
            f"SequenceRecorder.update: labels must be token ids in [0, {vocab}) or "
            f"ignore_index={self.ignore_index}. Got {first_few(bad.tolist())}. Check that the "
            "tokenizer matches the model's vocabulary and that padding is labelled "
            f"{self.ignore_index}."
        )

    # ------------------------------------------------------------------ epochs
    def end_epoch(self) -> None:
        """Close the current epoch (or sub-epoch checkpoint) and move it to the host.

        Raises
        ------
        RuntimeError
            If nothing was recorded since the last call.
        ValueError
            For NaN or inf logits, or (on accelerators) ids or token ids out of range; the epoch
            is then not recorded, and the recorder is ready for the next one.

        Warns
        -----
        UserWarning
            When some samples were not seen in the epoch, or had no scored token; both are
            recorded as missing.
        """
        rows = self._rows
        if ranks_active(self.distributed):
            if self._tokens is None:  # a rank without batches still takes part
                self._allocate(collective_device())
            total = torch.tensor([rows], dtype=torch.int64, device=self._device)
            torch.distributed.all_reduce(total)
            rows = int(total[0])
        if rows == 0 or self._tokens is None:
            raise RuntimeError(
                "SequenceRecorder.end_epoch() was called with no update() since the last epoch. "
                "Call update(ids, logits, labels) for each batch first."
            )
        try:
            record = self._reduce_epoch()
        finally:
            self._tokens.fill_(_UNSEEN)
            if self._bad is not None:
                self._bad.zero_()
            self._rows = 0
        self._epochs.append(record)

    def _combine_ranks(self) -> None:
        """Merge every rank's buffers (collectives): each sample from the lowest rank that saw it,
        so a distributed sampler's padding counts once; every rank ends with the same buffers."""
        import torch.distributed as dist

        world, rank = dist.get_world_size(), dist.get_rank()
        tokens, stats = self._tokens, self._stats
        owner = torch.where(tokens != _UNSEEN, rank, world)  # type: ignore[operator]
        dist.all_reduce(owner, op=dist.ReduceOp.MIN)
        mine = owner == rank
        summed = torch.where(mine, tokens, 0)  # type: ignore[arg-type]
        dist.all_reduce(summed)
        self._tokens = torch.where(owner == world, _UNSEEN, summed)
        self._stats = torch.where(mine, stats, 0.0)  # type: ignore[arg-type]
        dist.all_reduce(self._stats)
        counts = torch.tensor([self._rows], dtype=torch.int64, device=self._device)
        dist.all_reduce(counts)
        self._rows = int(counts[0])
        if self._bad is not None:
            dist.all_reduce(self._bad)

    def _reduce_epoch(self) -> dict[str, np.ndarray]:
        n_epoch, caller = len(self._epochs), "SequenceRecorder"
        if ranks_active(self.distributed):
            self._combine_ranks()
        if self._bad is not None:
            bad_ids, bad_tokens = self._bad.tolist()
            if bad_ids or bad_tokens:
                what = f"{bad_ids} ids outside [0, {self.num_samples})" if bad_ids else ""
                what += " and " if bad_ids and bad_tokens else ""
                what += f"{bad_tokens} token ids outside the vocabulary" if bad_tokens else ""
                raise ValueError(
                    f"{caller}: epoch {n_epoch} received {what}; the epoch was discarded. Pass "
                    "dataset row positions as ids and labels from the model's own tokenizer."
                )
        tokens = self._tokens.cpu().numpy()  # type: ignore[union-attr]
        stats = self._stats.cpu().numpy()  # type: ignore[union-attr]
        seen = tokens != _UNSEEN
        scored = seen & (tokens > 0)
        finite = np.isfinite(stats[0]) & np.isfinite(stats[3])
        if not finite[scored].all():
            bad = self.sample_ids[scored & ~finite]
            raise ValueError(
                f"{caller}: epoch {n_epoch} has NaN or inf logits at scored tokens of {bad.size} "
                f"sequences, e.g. ids {first_few(bad)}; the epoch was discarded. The model has "
                "diverged: lower the learning rate or check the inputs."
            )
        empty = seen & ~scored
        if empty.any():
            warnings.warn(
                f"{caller}: {int(empty.sum())} sequences of epoch {n_epoch} have no scored token"
                f" (every label is {self.ignore_index}), e.g. ids "
                f"{first_few(self.sample_ids[empty])}; they are recorded as missing. Check the "
                "prompt masking, and truncation that cuts the whole response off.",
                UserWarning,
                stacklevel=3,
            )
        n_missing = int(self.num_samples - seen.sum())
        if n_missing:
            warnings.warn(
                f"{caller}: {n_missing} of {self.num_samples} samples were not seen in epoch "
                f"{n_epoch}, e.g. ids {first_few(self.sample_ids[~seen])}; they are recorded as "
                "missing. A DataLoader with drop_last=True drops the last partial batch; use "
                "drop_last=False.",
                UserWarning,
                stacklevel=3,
            )
        self.duplicates.append(self._rows - int(seen.sum()))
        self.missing.append(n_missing)
        self.empty.append(int(empty.sum()))
        unseen = ~scored
        with np.errstate(invalid="ignore", over="ignore"):
            record = {
                "gold_prob": np.exp(stats[0]).astype(np.float32),
                "margin": stats[3].astype(np.float32),
                "sq_error": np.clip(np.square(stats[4]), 0.0, 2.0).astype(np.float32),
                "pred": np.where(stats[2] > 0.5, 1, 0).astype(np.int8),
                SEQUENCE_EXTRA: np.clip(stats[1], 0.0, 1.0).astype(np.float32),
            }
        for key, values in record.items():
            values[unseen] = -1 if key == "pred" else np.nan
        return record

    # ------------------------------------------------------------------ results
    @property
    def num_epochs(self) -> int:
        """Number of finished epochs (checkpoints)."""
        return len(self._epochs)

    @property
    def dynamics(self) -> TrainingDynamics:
        """The record so far (finished epochs) as :class:`~cartokit.TrainingDynamics`."""
        if not self._epochs:
            raise RuntimeError(
                "SequenceRecorder.dynamics: no epoch has been finished yet; call end_epoch() "
                "after each epoch."
            )
        stacked = {k: np.stack([e[k] for e in self._epochs]) for k in self._epochs[0]}
        extra = stacked.pop(SEQUENCE_EXTRA)
        return TrainingDynamics(
            ids=self.sample_ids,
            labels=np.ones(self.num_samples, dtype=np.int64),
            num_classes=len(SEQUENCE_CLASS_NAMES),
            class_names=list(SEQUENCE_CLASS_NAMES),
            extras={SEQUENCE_EXTRA: extra},
            **stacked,
        )

    def memory_bytes(self) -> int:
        """Bytes held by the recorder: the host record plus the device epoch buffers."""
        host = sum(a.nbytes for e in self._epochs for a in e.values())
        bufs = [b for b in (self._tokens, self._stats, self._bad) if b is not None]
        return host + sum(b.numel() * b.element_size() for b in bufs)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this record after a restart, mid-epoch included.

        Holds only tensors, numbers, strings and lists (``torch.load(weights_only=True)``).
        """
        state: dict[str, Any] = {
            "version": _STATE_VERSION,
            "kind": _KIND,
            "num_samples": self.num_samples,
            "shift": self.shift,
            "ignore_index": self.ignore_index,
            "duplicates": list(self.duplicates),
            "missing": list(self.missing),
            "empty": list(self.empty),
            "epochs": [{k: torch.from_numpy(v.copy()) for k, v in e.items()} for e in self._epochs],
            "partial": None,
        }
        if self._rows:
            idx = torch.nonzero(self._tokens != _UNSEEN).squeeze(1)  # type: ignore[operator]
            state["partial"] = {
                "ids": idx.cpu(),
                "tokens": self._tokens[idx].cpu(),  # type: ignore[index]
                "stats": self._stats[:, idx].cpu(),  # type: ignore[index]
                "rows": self._rows,
            }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a record saved by :meth:`state_dict`; recording then continues from it."""
        caller = "SequenceRecorder.load_state_dict"
        if state.get("kind") != _KIND:
            raise ValueError(
                f"{caller}: the saved state is not a SequenceRecorder's (a DynamicsRecorder's "
                "state has no kind='sequence'); load it into the recorder that saved it."
            )
        if state.get("version", 0) > _STATE_VERSION:
            raise ValueError(
                f"{caller}: state version {state['version']} is newer than this cartokit "
                "understands; upgrade cartokit."
            )
        for key in ("num_samples", "shift", "ignore_index"):
            if state.get(key) != getattr(self, key):
                raise ValueError(
                    f"{caller}: the saved record has {key}={state.get(key)!r}, this recorder "
                    f"{getattr(self, key)!r}. Create the recorder with the same settings."
                )
        self._epochs = [{k: v.numpy().copy() for k, v in e.items()} for e in state["epochs"]]
        self.duplicates = list(state["duplicates"])
        self.missing = list(state["missing"])
        self.empty = list(state["empty"])
        self._rows = 0
        if self._tokens is not None:
            self._tokens.fill_(_UNSEEN)
        partial = state.get("partial")
        if partial:
            if self._device is None:
                self._allocate(torch.device("cpu"))
            ids = partial["ids"].to(self._device)
            self._tokens.index_copy_(0, ids, partial["tokens"].to(self._device))  # type: ignore[union-attr]
            self._stats.index_copy_(1, ids, partial["stats"].to(self._device))  # type: ignore[union-attr]
            self._rows = int(partial["rows"])
            self._resumed = True
