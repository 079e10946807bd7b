"""The steps of notebook 07: data maps of a language-model fine-tune, and small-to-large selection.

A prompt→response corpus (:func:`~cartokit.data.datasets.load_moviedialog`) is tokenised word by
word (:func:`build_tokenizer`, :func:`encode_pairs`: the prompt masked with ``-100``), a GPT-2-style
proxy built from scratch (:func:`build_lm`) is fine-tuned on it by a readable loop that feeds a
:class:`~cartokit.SequenceRecorder` from the training forward pass (:func:`train_lm`), and the
map's regions are read as replies (:func:`region_replies`). :func:`corrupt_replies` plants
swapped and random replies for the map to find (:func:`corruption_detection`), and
:func:`small_to_large` trains a larger model on subsets chosen on the proxy's map
(:func:`~cartokit.study.build_subsets`: random, SmallToLarge, ambiguous, ...) at one equal
budget of steps, scored by held-out loss and perplexity (:func:`lm_loss`,
:func:`lm_results_table`).

Requires ``transformers`` (``pip install "cartokit[hf]"``) for the model and its tokenizers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from cartokit._validation import Interval, Options, check_param, check_seed, positions_of
from cartokit.data import Split
from cartokit.data.datasets import DIALOGUE_ARROW
from cartokit.selection import select
from cartokit.study.rundir import Subset

if TYPE_CHECKING:
    from cartokit.dynamics import TrainingDynamics
    from cartokit.sequence import SequenceRecorder

__all__ = [
    "LM_SIZES",
    "ONE_THREAD_BELOW",
    "SPECIAL_TOKENS",
    "TokenizedPairs",
    "build_lm",
    "build_tokenizer",
    "corrupt_replies",
    "corruption_detection",
    "encode_pairs",
    "lm_loss",
    "lm_results_markdown",
    "lm_results_table",
    "pair_metrics",
    "region_replies",
    "small_to_large",
    "train_lm",
]

#: GPT-2-style shapes, built from scratch: name -> (layers, width, attention heads).
LM_SIZES: Mapping[str, tuple[int, int, int]] = {
    "tiny": (2, 64, 2),
    "small": (4, 128, 4),
    "medium": (6, 256, 8),
}
#: The tokenizer's special tokens, with ids 0-3 in this order.
SPECIAL_TOKENS = ("<pad>", "<unk>", "<sep>", "<eos>")
_PAD, _UNK, _SEP, _EOS = range(4)
_IGNORE = -100
#: A model with fewer parameters trains and is scored on one torch thread (:func:`train_lm`,
#: :func:`lm_loss`): on 2 busy CPU cores, a training step of the tiny and small sizes (batch 32,
#: 32 tokens) took 8 and 6 times longer on two threads than on one.
ONE_THREAD_BELOW = 2_000_000


@contextmanager
def _threads(model: Any) -> Iterator[None]:
    before = torch.get_num_threads()
    if sum(p.numel() for p in model.parameters()) < ONE_THREAD_BELOW:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ============================================================================ data


def build_tokenizer(texts: Split | Sequence[str], *, vocab_size: int = 4000) -> Any:
    """A word-level tokenizer (Hugging Face ``tokenizers``) trained on ``texts``.

    Words and punctuation marks are tokens; the ``vocab_size - 4`` most frequent become the
    vocabulary (ties alphabetical), after :data:`SPECIAL_TOKENS`; others map to ``<unk>``.
    For a :class:`~cartokit.data.Split` of pairs, its prompts and responses.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    caller = "build_tokenizer"
    vocab_size = check_param("vocab_size", vocab_size, Interval(int, 8, None), caller=caller)
    if isinstance(texts, Split):
        texts = [*texts.frame["prompt"], *texts.frame["response"]]
    tokenizer = Tokenizer(models.WordLevel(unk_token=SPECIAL_TOKENS[_UNK]))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False
    )
    tokenizer.train_from_iterator(list(texts), trainer)
    return tokenizer


@dataclass
class TokenizedPairs:
    """Prompt→response pairs as a causal LM takes them: ``input_ids``, ``attention_mask`` and
    ``labels`` of shape ``(N, max_length)``, labels ``-100`` on the prompt, the separator and
    the padding; ``ids`` are the split's sample ids, row by row."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    ids: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, ids: Any) -> TokenizedPairs:
        """The rows of these sample ids, in their order."""
        rows = torch.from_numpy(positions_of(pd.Index(self.ids), np.asarray(ids), caller="subset"))
        return TokenizedPairs(
            self.input_ids[rows], self.attention_mask[rows], self.labels[rows], self.ids[rows]
        )


def encode_pairs(split: Split, tokenizer: Any, *, max_length: int = 48) -> TokenizedPairs:
    """Tokenise a split of pairs (``frame`` columns ``prompt`` and ``response``) for SFT.

    Each row is ``prompt <sep> response <eos>``, right-padded with ``<pad>``. The response keeps
    at most ``max_length // 2 - 1`` tokens (cut at its end, and then without ``<eos>``) and the
    prompt what is left, cut at its start, so that its last words stay next to the reply. Only
    the response and its ``<eos>`` are scored: every other label is ``-100``.
    """
    caller = "encode_pairs"
    max_length = check_param("max_length", max_length, Interval(int, 6, None), caller=caller)
    missing = {"prompt", "response"} - set(split.frame.columns)
    if missing:
        raise ValueError(
            f"{caller}: the split {split.name!r} needs 'prompt' and 'response' columns in its "
            f"frame (load_moviedialog gives them). It has {list(split.frame.columns)}."
        )
    prompts = tokenizer.encode_batch(split.frame["prompt"].tolist())
    replies = tokenizer.encode_batch(split.frame["response"].tolist())
    n = len(split)
    input_ids = torch.full((n, max_length), _PAD, dtype=torch.int64)
    labels = torch.full((n, max_length), _IGNORE, dtype=torch.int64)
    mask = torch.zeros((n, max_length), dtype=torch.int64)
    reply_room = max_length // 2 - 1
    for row, (prompt, reply) in enumerate(zip(prompts, replies)):
        answer = (reply.ids + [_EOS])[:reply_room]
        question = prompt.ids[-(max_length - len(answer) - 1) :] + [_SEP]
        tokens = question + answer
        input_ids[row, : len(tokens)] = torch.tensor(tokens)
        labels[row, len(question) : len(tokens)] = torch.tensor(answer)
        mask[row, : len(tokens)] = 1
    return TokenizedPairs(input_ids, mask, labels, np.asarray(split.ids))


def corrupt_replies(split: Split, fraction: float, *, seed: int = 0) -> Split:
    """A copy of ``split`` with ``fraction`` of its replies corrupted, for the map to find.

    Half of the chosen pairs (rounded down) get the reply of another chosen pair (a random
    derangement: no pair keeps its own); the others a random reply of as many words, drawn
    uniformly from the words of all replies. ``frame`` gains ``clean_response``, ``corrupted``
    (bool) and ``corruption`` (``"swapped"``, ``"random"`` or ``"clean"``), and ``response`` and the
    text hold the corrupted replies.
    """
    caller = "corrupt_replies"
    fraction = check_param("fraction", fraction, Interval(float, 0, 1), caller=caller)
    seed = check_seed(seed, caller=caller, allow_none=False)
    rng = np.random.default_rng(seed)
    frame = split.frame.copy()
    replies = frame["response"].to_numpy(dtype=object).copy()
    chosen = rng.permutation(len(split))[: int(round(fraction * len(split)))]
    swapped, randomised = chosen[: len(chosen) // 2], chosen[len(chosen) // 2 :]
    if len(swapped) >= 2:  # a rotation of a shuffled list is a derangement
        replies[swapped] = replies[np.roll(swapped, 1)]
    else:  # one pair cannot swap with itself: make it random
        randomised = chosen
    words = np.array(sorted({w for r in frame["response"] for w in r.split()}), dtype=object)
    for row in randomised:
        count = max(1, len(frame["response"].iloc[row].split()))
        replies[row] = " ".join(rng.choice(words, size=count))
    kind = np.full(len(split), "clean", dtype=object)
    kind[randomised] = "random"
    kind[swapped if len(swapped) >= 2 else []] = "swapped"
    frame["clean_response"] = frame["response"]
    frame["response"] = replies
    frame["corrupted"] = kind != "clean"
    frame["corruption"] = kind
    texts = [f"{p}{DIALOGUE_ARROW}{r}" for p, r in zip(frame["prompt"], replies)]
    return Split(
        name=f"{split.name}+corrupted",
        inputs=texts,
        labels=split.labels.copy(),
        ids=split.ids.copy(),
        class_names=list(split.class_names),
        kind=split.kind,
        frame=frame.reset_index(drop=True),
    )


# ============================================================================ models, training


def build_lm(size: str, vocab_size: int, *, max_length: int = 48, seed: int = 0) -> Any:
    """A GPT-2-style causal LM of one of :data:`LM_SIZES`, randomly initialised by ``seed``.

    ``transformers.GPT2LMHeadModel`` from a ``GPT2Config`` (GPT-2's dropout, 0.1), for a
    vocabulary of ``vocab_size`` and sequences of up to ``max_length`` tokens. Any Hugging Face
    causal LM, pretrained ones loaded with ``AutoModelForCausalLM.from_pretrained(name)``, can
    take its place in :func:`train_lm`.
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    caller = "build_lm"
    size = check_param("size", size, Options(list(LM_SIZES)), caller=caller)
    layers, width, heads = LM_SIZES[size]
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=max_length,
        n_embd=width,
        n_layer=layers,
        n_head=heads,
        bos_token_id=_SEP,
        eos_token_id=_EOS,
        pad_token_id=_PAD,
    )
    torch.manual_seed(seed)
    return GPT2LMHeadModel(config)


def _batch(data: TokenizedPairs, rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The rows, cut to the longest of them: padding beyond it costs compute and changes
    nothing (causal attention never looks right)."""
    mask = data.attention_mask[rows]
    width = int(mask.sum(dim=1).max())
    return data.input_ids[rows, :width], mask[:, :width], data.labels[rows, :width]


def train_lm(
    model: Any,
    data: TokenizedPairs,
    *,
    epochs: int | None = None,
    steps: int | None = None,
    batch_size: int = 32,
    lr: float = 3e-3,
    seed: int = 0,
    recorder: SequenceRecorder | None = None,
) -> list[float]:
    """Fine-tune a causal LM on ``data`` with AdamW, for ``epochs`` or exactly ``steps`` steps.

    Each epoch shuffles the rows with a generator seeded by ``seed + epoch``. With a
    ``recorder`` (``SequenceRecorder(len(data))``; ids are row positions), every batch's logits
    from the training forward pass are recorded, and each epoch closed: no extra pass. A model
    of fewer than :data:`ONE_THREAD_BELOW` parameters trains on one torch thread.

    Returns
    -------
    list of float
        The mean training loss of each epoch (the last one partial with ``steps``).
    """
    caller = "train_lm"
    if (epochs is None) == (steps is None):
        raise ValueError(f"{caller} takes epochs or steps, one of the two. Got both or neither.")
    if epochs is not None:
        epochs = check_param("epochs", epochs, Interval(int, 1, None), caller=caller)
    else:
        steps = check_param("steps", steps, Interval(int, 1, None), caller=caller)
    if recorder is not None and steps is not None:
        raise ValueError(f"{caller}: a recorder needs whole epochs; pass epochs=, not steps=.")
    batch_size = check_param("batch_size", batch_size, Interval(int, 1, None), caller=caller)
    total = steps if steps is not None else epochs * math.ceil(len(data) / batch_size)  # type: ignore[operator]
    with _threads(model):
        return _train(model, data, total, batch_size, lr, seed, recorder)


def _train(
    model: Any,
    data: TokenizedPairs,
    total: int,
    batch_size: int,
    lr: float,
    seed: int,
    recorder: SequenceRecorder | None,
) -> list[float]:
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    n = len(data)
    history, step, epoch = [], 0, 0
    model.train()
    while step < total:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))
        losses = []
        for rows in order.split(batch_size):
            if step == total:
                break
            input_ids, mask, labels = _batch(data, rows)
            out = model(input_ids=input_ids, attention_mask=mask, labels=labels)
            if recorder is not None:
                recorder.update(rows, out.logits, labels)
            out.loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(out.loss.detach())
            step += 1
        if recorder is not None:
            recorder.end_epoch()
        history.append(float(torch.stack(losses).mean()))
        epoch += 1
    return history


@torch.no_grad()
def lm_loss(model: Any, data: TokenizedPairs, *, batch_size: int = 256) -> dict[str, float]:
    """Held-out loss: the mean negative log-likelihood per scored token, over all of ``data``,
    and its perplexity ``exp(loss)``; in eval mode (dropout off)."""
    was_training = model.training
    model.eval()
    try:
        with _threads(model):
            total, count = _held_out_sums(model, data, batch_size)
    finally:
        model.train(was_training)
    loss = total / count
    return {"loss": loss, "perplexity": math.exp(loss)}


def _held_out_sums(model: Any, data: TokenizedPairs, batch_size: int) -> tuple[float, int]:
    total, count = 0.0, 0
    for rows in torch.arange(len(data)).split(batch_size):
        input_ids, mask, labels = _batch(data, rows)
        logits = model(input_ids=input_ids, attention_mask=mask).logits
        target = labels[:, 1:]
        total += float(
            torch.nn.functional.cross_entropy(
                logits[:, :-1].flatten(0, 1).float(), target.flatten(), reduction="sum"
            )
        )
        count += int((target != _IGNORE).sum())
    return total, count


# ============================================================================ the map


def pair_metrics(dynamics: TrainingDynamics, split: Split) -> pd.DataFrame:
    """The sequence map of ``split`` (:func:`~cartokit.compute_metrics`), with the split's frame
    joined by id: ``prompt`` and ``response``, and ``corrupted`` and ``corruption`` after
    :func:`corrupt_replies`."""
    from cartokit.metrics import compute_metrics

    metrics = compute_metrics(dynamics)
    extra = [c for c in split.frame.columns if c not in metrics.columns]
    return metrics.join(split.frame[extra])


def region_replies(metrics: pd.DataFrame, *, num_examples: int = 5) -> pd.DataFrame:
    """The easiest (highest confidence), most ambiguous (highest variability) and hardest (lowest
    confidence) pairs of a map, ``num_examples`` each, with their prompt and response.

    ``metrics`` is a sequence map joined with the split's frame (``prompt``, ``response``).
    """
    rows = []
    for title, by in (("easiest", "easy"), ("most ambiguous", "ambiguous"), ("hardest", "hard")):
        ids = select(metrics, by, min(1.0, num_examples / len(metrics)))[:num_examples]
        part = metrics.loc[ids, ["prompt", "response", "confidence", "variability"]]
        rows.append(part.assign(kind=title))
    table = pd.concat(rows)
    columns = ["kind", "prompt", "response", "confidence", "variability"]
    return table[columns + [c for c in ("corruption",) if c in metrics]].round(3)


def corruption_detection(metrics: pd.DataFrame, *, k: int | None = None) -> pd.DataFrame:
    """How well each score of the map finds the corrupted replies (``metrics["corrupted"]``).

    Scores, higher = more suspicious: ``1 - confidence``, ``-aum`` (the AUM-style mean token
    margin, Pleiss et al. 2020), ``perplexity`` and ``1 - token_accuracy``. One row per score:
    AUROC, average precision and precision@k (``k``: the number of corrupted pairs), from
    :func:`~cartokit.detection.evaluate_detection`; and a row per kind of corruption for AUROC
    against the clean pairs alone.
    """
    from cartokit.detection import evaluate_detection

    scores = {
        "low confidence": 1 - metrics["confidence"],
        "low margin (AUM)": -metrics["aum"],
        "high perplexity": metrics["perplexity"],
        "low token accuracy": 1 - metrics["token_accuracy"],
    }
    corrupted = metrics["corrupted"].astype(bool)
    kinds = [c for c in ("swapped", "random") if (metrics.get("corruption") == c).any()]
    rows = {}
    for name, score in scores.items():
        found = evaluate_detection(score, corrupted, k=k)
        row = {"auroc": found["auroc"], "average_precision": found["average_precision"]}
        row.update({"k": found["k"], "precision_at_k": found["precision_at_k"]})
        for kind in kinds:
            keep = (metrics["corruption"] == kind) | ~corrupted
            row[f"auroc ({kind})"] = evaluate_detection(score[keep], corrupted[keep])["auroc"]
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("score")


# ============================================================================ small to large


def small_to_large(
    train: TokenizedPairs,
    test: TokenizedPairs,
    subsets: Mapping[str, Subset],
    *,
    size: str,
    vocab_size: int,
    budget_epochs: float,
    batch_size: int = 32,
    lr: float = 3e-3,
    seeds: Sequence[int] = (0,),
    max_length: int = 48,
) -> pd.DataFrame:
    """Train a fresh model of ``size`` on each subset, at one equal budget, and score it on
    ``test``.

    The budget is ``ceil(budget_epochs * len(train) / batch_size)`` optimizer steps for every
    subset, the full set included: a subset is seen for more epochs, at the same compute. One
    row per subset and seed: ``subset``, ``selector``, ``fraction``, ``size`` (samples),
    ``seed``, ``steps``, held-out ``loss`` and ``perplexity`` (:func:`lm_loss`).
    """
    steps = math.ceil(budget_epochs * len(train) / batch_size)
    rows = []
    for subset in subsets.values():
        part = train.subset(subset.ids)
        for seed in seeds:
            model = build_lm(size, vocab_size, max_length=max_length, seed=seed)
            train_lm(model, part, steps=steps, batch_size=batch_size, lr=lr, seed=seed)
            scores = lm_loss(model, test)
            rows.append(
                {"subset": subset.name, "selector": subset.selector, "fraction": subset.fraction,
                 "size": len(subset), "seed": seed, "steps": steps, **scores}
            )  # fmt: skip
    return pd.DataFrame(rows)


def lm_results_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per subset (in order): its size, and the mean and std over seeds of the held-out loss
    and perplexity, with the perplexity's change against ``full 100%`` when it was trained."""
    order = list(pd.unique(results["subset"]))
    stats = results.groupby("subset", sort=False)[["loss", "perplexity"]].agg(["mean", "std"])
    table = pd.DataFrame(index=pd.Index(order, name="subset"))
    table["size"] = results.groupby("subset", sort=False)["size"].first()
    for metric in ("loss", "perplexity"):
        table[f"{metric} mean"] = stats[(metric, "mean")]
        table[f"{metric} std"] = stats[(metric, "std")]
    if "full 100%" in table.index:
        table["perplexity vs full"] = (
            table["perplexity mean"] / table.loc["full 100%", "perplexity mean"]
        )
    return table


def lm_results_markdown(table: pd.DataFrame) -> str:
    """:func:`lm_results_table` as markdown: mean ± std over seeds, the lowest of each in bold."""
    head = ["subset", "size", "held-out loss", "perplexity"]
    lines = ["| " + " | ".join(head) + " |", "|---|---:|---:|---:|"]
    best = {m: table[f"{m} mean"].min() for m in ("loss", "perplexity")}
    for name, row in table.iterrows():
        cells = [str(name), str(int(row["size"]))]
        for metric in ("loss", "perplexity"):
            mean, std = row[f"{metric} mean"], row[f"{metric} std"]
            text = f"{mean:.3f}" + ("" if pd.isna(std) else f" ± {std:.3f}")
            cells.append(f"**{text}**" if np.isclose(mean, best[metric]) else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
