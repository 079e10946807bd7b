"""The steps of notebook 07 (cartokit.study.generative), on a few made-up dialogue pairs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from cartokit import SequenceRecorder
from cartokit.data import Split
from cartokit.data.datasets import DIALOGUE_ARROW
from cartokit.study import generative as gen

pytest.importorskip("transformers", reason='notebook 07 needs pip install "cartokit[hf]"')

PAIRS = [
    ("how are you?", "fine, thanks."),
    ("where is the car?", "in the garage, where it always is."),
    ("who called?", "your mother."),
    ("what time is it?", "nearly midnight."),
    ("are you coming?", "no."),
    ("did you see that?", "see what?"),
    ("can you help me?", "of course i can."),
    ("why not?", "because i said so."),
]


def pairs_split(n: int = len(PAIRS)) -> Split:
    rows = [PAIRS[i % len(PAIRS)] for i in range(n)]
    frame = pd.DataFrame(rows, columns=["prompt", "response"])
    return Split(
        name="pairs",
        inputs=[f"{p}{DIALOGUE_ARROW}{r}" for p, r in rows],
        labels=np.ones(n, dtype=np.int64),
        ids=np.arange(100, 100 + n),
        class_names=["other", "reference"],
        kind="text",
        frame=frame,
    )


def test_encode_pairs_scores_the_reply_and_its_eos_only():
    split = pairs_split()
    tokenizer = gen.build_tokenizer(split, vocab_size=200)
    data = gen.encode_pairs(split, tokenizer, max_length=12)
    assert data.input_ids.shape == data.labels.shape == (len(split), 12)
    assert list(data.ids) == list(split.ids)
    sep, eos, pad = (gen.SPECIAL_TOKENS.index(t) for t in ("<sep>", "<eos>", "<pad>"))
    for row in range(len(split)):
        ids, labels, mask = data.input_ids[row], data.labels[row], data.attention_mask[row]
        length = int(mask.sum())
        start = int((ids == sep).nonzero()[0, 0]) + 1  # the reply starts after <sep>
        assert (labels[:start] == -100).all() and (labels[length:] == -100).all()
        assert torch.equal(labels[start:length], ids[start:length])
        assert (ids[length:] == pad).all()
        reply = tokenizer.encode(split.frame["response"].iloc[row]).ids
        room = 12 // 2 - 1  # the reply keeps at most max_length // 2 - 1 tokens
        assert labels[start:length].tolist() == (reply + [eos])[:room]
    subset = data.subset([103, 100])
    assert list(subset.ids) == [103, 100] and torch.equal(subset.labels[1], data.labels[0])


def test_corrupt_replies_swaps_half_and_randomises_the_rest():
    split = pairs_split(40)
    out = gen.corrupt_replies(split, 0.5, seed=1)
    frame = out.frame
    assert frame["corrupted"].sum() == 20 and list(out.ids) == list(split.ids)
    kinds = frame["corruption"].value_counts().to_dict()
    assert kinds == {"clean": 20, "swapped": 10, "random": 10}
    clean = frame[~frame["corrupted"]]
    assert (clean["response"] == clean["clean_response"]).all()
    swapped = frame[frame["corruption"] == "swapped"]
    assert sorted(swapped["response"]) == sorted(swapped["clean_response"])  # a permutation
    assert not any(swapped.index.duplicated())
    assert all(t.endswith(r) for t, r in zip(out.inputs, frame["response"]))
    assert (split.frame["response"] == frame["clean_response"]).all()  # the input is untouched
    with pytest.raises(ValueError, match="'fraction' parameter of corrupt_replies"):
        gen.corrupt_replies(split, 1.5)


def test_train_lm_records_every_pair_each_epoch_and_learns():
    split = pairs_split(16)
    tokenizer = gen.build_tokenizer(split, vocab_size=200)
    data = gen.encode_pairs(split, tokenizer, max_length=16)
    model = gen.build_lm("tiny", tokenizer.get_vocab_size(), max_length=16, seed=0)
    recorder = SequenceRecorder(len(data), sample_ids=data.ids)
    before = gen.lm_loss(model, data)
    history = gen.train_lm(model, data, epochs=3, batch_size=8, lr=0.01, recorder=recorder)
    after = gen.lm_loss(model, data)
    assert len(history) == 3 and after["loss"] < before["loss"]
    assert after["perplexity"] == pytest.approx(np.exp(after["loss"]))
    metrics = gen.pair_metrics(recorder.dynamics, split)
    assert len(metrics) == 16 and metrics["num_observed"].eq(3).all()
    assert {"prompt", "response", "perplexity", "token_accuracy"} <= set(metrics.columns)
    table = gen.region_replies(metrics, num_examples=2)
    assert list(table["kind"]) == ["easiest"] * 2 + ["most ambiguous"] * 2 + ["hardest"] * 2
    with pytest.raises(ValueError, match="takes epochs or steps"):
        gen.train_lm(model, data, epochs=1, steps=1)
    with pytest.raises(ValueError, match="a recorder needs whole epochs"):
        gen.train_lm(model, data, steps=1, recorder=recorder)


def test_small_models_train_on_one_thread_and_the_setting_comes_back():
    model = gen.build_lm("tiny", 50, max_length=8)
    seen = []
    model.register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    data = gen.TokenizedPairs(
        torch.full((2, 8), 5), torch.ones(2, 8, dtype=torch.int64),
        torch.full((2, 8), 6), np.arange(2),
    )  # fmt: skip
    gen.train_lm(model, data, steps=1)
    gen.lm_loss(model, data)
    assert seen == [1, 1] and torch.get_num_threads() == before


def test_corruption_detection_and_the_results_table():
    n = 40
    corrupted = np.arange(n) < 10
    metrics = pd.DataFrame(
        {
            "confidence": np.where(corrupted, 0.1, 0.5) + np.linspace(0, 0.01, n),
            "aum": np.where(corrupted, -1.0, 1.0),
            "perplexity": np.where(corrupted, 50.0, 5.0),
            "token_accuracy": np.where(corrupted, 0.1, 0.6),
            "corrupted": corrupted,
            "corruption": np.where(
                corrupted, np.where(np.arange(n) < 5, "swapped", "random"), "clean"
            ),
        }
    )
    found = gen.corruption_detection(metrics)
    assert (found["auroc"] == 1.0).all() and (found["precision_at_k"] == 1.0).all()
    assert (found["k"] == 10).all() and (found["auroc (swapped)"] == 1.0).all()
    results = pd.DataFrame(
        {
            "subset": ["full 100%", "random 50%", "random 50%"],
            "selector": ["full", "random", "random"],
            "fraction": [1.0, 0.5, 0.5],
            "size": [40, 20, 20],
            "seed": [0, 0, 1],
            "steps": 5,
            "loss": [2.0, 3.0, 2.5],
            "perplexity": np.exp([2.0, 3.0, 2.5]),
        }
    )
    table = gen.lm_results_table(results)
    assert list(table.index) == ["full 100%", "random 50%"]
    assert table.loc["random 50%", "loss mean"] == pytest.approx(2.75)
    assert table.loc["full 100%", "perplexity vs full"] == 1.0
    text = gen.lm_results_markdown(table)
    assert "| full 100% | 40 | **2.000** |" in text and "2.750 ± 0.354" in text


def test_plot_subset_curves(tmp_path):
    from cartokit.plot.generative import plot_subset_curves

    results = pd.DataFrame(
        {
            "selector": ["full", "random", "random", "s2l", "s2l"],
            "fraction": [1.0, 0.25, 0.5, 0.25, 0.5],
            "loss": [2.0, 3.0, 2.5, 2.8, 2.4],
        }
    )
    results["perplexity"] = np.exp(results["loss"])
    fig = plot_subset_curves(results, path=tmp_path / "curve.png")
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["random", "s2l", "100 %"]
    assert ax.get_lines()[-1].get_ydata()[0] == pytest.approx(np.exp(2.0))
    assert (tmp_path / "curve.png").stat().st_size > 5_000
    with pytest.raises(ValueError, match="'metric' parameter of plot_subset_curves"):
        plot_subset_curves(results, metric="accuracy")
    with pytest.raises(ValueError, match=r"Missing: \['fraction'\]"):
        plot_subset_curves(results.drop(columns="fraction"))
