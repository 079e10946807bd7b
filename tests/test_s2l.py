"""Tests for cartokit.s2l (SmallToLarge selection) and its hooks in select and the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cartokit import TrainingDynamics, compute_metrics, select
from cartokit.cli import main
from cartokit.s2l import loss_trajectories, s2l_clusters, select_s2l
from cartokit.selection import select_mixture
from cartokit.sequence import SequenceRecorder
from cartokit.transfer import map_agreement


def dynamics_from_losses(losses: np.ndarray, ids=None) -> TrainingDynamics:
    """A record whose loss trajectories are ``losses`` (samples x checkpoints)."""
    gold = np.exp(-np.asarray(losses, dtype=np.float64)).T.astype(np.float32)
    zeros = np.where(np.isnan(gold), np.nan, 0.0)
    return TrainingDynamics(
        ids=ids,
        labels=np.zeros(gold.shape[1], dtype=np.int64),
        gold_prob=gold,
        margin=zeros,
        sq_error=zeros,
        pred=np.where(np.isnan(gold), -1, 0),
        num_classes=2,
    )


def three_groups(sizes=(5, 20, 75), seed=0) -> tuple[TrainingDynamics, np.ndarray]:
    """Three kinds of trajectories: learned at once, learned slowly, never learned."""
    rng = np.random.default_rng(seed)
    shapes = [[0.1, 0.1, 0.1, 0.1], [2.0, 1.0, 0.5, 0.2], [3.0, 3.0, 3.0, 3.0]]
    group = np.repeat(np.arange(3), sizes)
    order = rng.permutation(len(group))  # mixed, so that position says nothing
    group = group[order]
    losses = np.array([shapes[g] for g in group]) + rng.normal(scale=0.01, size=(len(group), 4))
    return dynamics_from_losses(losses), group


def random_dynamics(n: int, epochs: int = 4, seed: int = 0) -> TrainingDynamics:
    rng = np.random.default_rng(seed)
    return TrainingDynamics.from_logits(rng.normal(size=(epochs, n, 3)), rng.integers(0, 3, n))


def test_even_draw_across_clusters_smallest_first():
    dyn, group = three_groups()
    ids = select_s2l(dyn, 0.3, n_clusters=3)
    # budget 30 over clusters of 5, 20 and 75: the smallest gives all 5 (< 30 // 3), the next
    # min(20, 25 // 2) = 12, the largest the 13 left; proportional sampling would give 2/6/22
    counts = np.bincount(group[ids], minlength=3)
    assert counts.tolist() == [5, 12, 13]
    # smallest cluster first in the returned order
    assert set(group[ids[:5]].tolist()) == {0}


def test_clusters_follow_the_trajectories():
    dyn, group = three_groups()
    clusters = s2l_clusters(dyn, n_clusters=3)
    assert pd.crosstab(clusters, group).gt(0).sum(axis=1).eq(1).all()  # each cluster one kind


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 120), fraction=st.floats(0.01, 1.0), k=st.integers(1, 12))
def test_exact_size_unique_ids(n, fraction, k):
    dyn = random_dynamics(n, seed=n)
    budget = int(np.floor(fraction * n + 0.5))
    if budget == 0:
        with pytest.raises(ValueError, match=r"is too small: .* rounds to 0\. Use a fraction of"):
            select_s2l(dyn, fraction, n_clusters=k)
        return
    ids = select_s2l(dyn, fraction, n_clusters=k)
    assert len(ids) == budget == len(set(ids.tolist()))
    assert set(ids.tolist()) <= set(dyn.ids.tolist())


def test_deterministic_for_a_seed():
    dyn = random_dynamics(300)
    a = select_s2l(dyn, 0.2, n_clusters=10, seed=3)
    assert np.array_equal(a, select_s2l(dyn, 0.2, n_clusters=10, seed=3))
    assert not np.array_equal(np.sort(a), np.sort(select_s2l(dyn, 0.2, n_clusters=10, seed=4)))


def test_minibatch_kmeans_above_the_threshold(monkeypatch):
    import cartokit.s2l as s2l

    monkeypatch.setattr(s2l, "MINIBATCH_ABOVE", 50)
    dyn, group = three_groups()
    ids = select_s2l(dyn, 0.3, n_clusters=3)
    assert np.bincount(group[ids], minlength=3).tolist() == [5, 12, 13]


def test_unseen_checkpoints_take_the_sample_mean():
    losses = np.array([[1.0, np.nan, 3.0], [np.nan, np.nan, np.nan], [2.0, 2.0, 2.0]])
    got = loss_trajectories(dynamics_from_losses(losses))
    np.testing.assert_allclose(got[0], [1.0, 2.0, 3.0], rtol=1e-6)
    np.testing.assert_allclose(got[1], [1.5, 2.0, 2.5], rtol=1e-6)  # each checkpoint's mean


def test_a_sequence_record_selects():
    rng = np.random.default_rng(0)
    rec = SequenceRecorder(40)
    labels = torch.from_numpy(rng.integers(0, 7, size=(40, 5)))
    labels[:, :2] = -100
    for _ in range(3):
        rec.update(torch.arange(40), torch.randn(40, 5, 7), labels)
        rec.end_epoch()
    ids = select_s2l(rec.dynamics, 0.25, n_clusters=4)
    assert len(ids) == 10


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"fraction": 1.5}, ValueError, r"^The 'fraction' parameter of select_s2l must be a float "
         r"in the range \(0, 1\]\. Got 1\.5 instead\.$"),
        ({"fraction": 0.2, "n_clusters": 0}, ValueError, r"'n_clusters' parameter of select_s2l"),
        ({"fraction": 0.2, "seed": -1}, ValueError, r"'seed' parameter of select_s2l"),
    ],
)  # fmt: skip
def test_bad_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        select_s2l(random_dynamics(20), **kwargs)


def test_not_dynamics():
    with pytest.raises(TypeError, match=r"'dynamics' parameter of select_s2l must be a cartokit"):
        select_s2l(pd.DataFrame(), 0.3)


# ---------------------------------------------------------------------------- select, CLI


def test_select_by_s2l_is_select_s2l():
    dyn = random_dynamics(60)
    metrics = compute_metrics(dyn)
    got = select(metrics, "s2l", 0.25, dynamics=dyn, seed=2)
    assert np.array_equal(got, select_s2l(dyn, 0.25, seed=2))


def test_select_by_s2l_errors():
    dyn = random_dynamics(30)
    metrics = compute_metrics(dyn)
    with pytest.raises(TypeError, match=r"select\(by='s2l'\) .* pass dynamics="):
        select(metrics, "s2l", 0.3)
    with pytest.raises(ValueError, match=r"takes no lowest, region or balanced"):
        select(metrics, "s2l", 0.3, dynamics=dyn, region="easy")
    with pytest.raises(ValueError, match=r"must hold the same sample ids"):
        select(metrics.iloc[:10], "s2l", 0.3, dynamics=dyn)
    with pytest.raises(ValueError, match=r"is 's2l', which draws from the clusters"):
        select_mixture(metrics, "10% s2l + 10% easy")


def test_study_subsets_take_s2l_from_the_dynamics():
    from cartokit import study

    dyn = random_dynamics(40)
    metrics = compute_metrics(dyn)
    assert "s2l" in study.SUBSET_SELECTORS
    subsets = study.build_subsets(
        metrics, selectors=["full", "s2l"], fractions=[0.25], balanced=True, seed=3, dynamics=dyn
    )
    assert list(subsets) == ["full 100%", "s2l 25%"]  # balanced applies to the rankings only
    assert np.array_equal(subsets["s2l 25%"].ids, select_s2l(dyn, 0.25, seed=3))
    with pytest.raises(TypeError, match=r"pass dynamics="):
        study.build_subsets(metrics, selectors=["s2l"], fractions=[0.25])


def test_cli_select_by_s2l(tmp_path, capsys):
    dyn = random_dynamics(50)
    path = dyn.save(tmp_path / "dynamics.npz")
    out = tmp_path / "ids.txt"
    assert main(["select", str(path), "--by", "s2l", "--fraction", "0.3", "-o", str(out)]) == 0
    ids = [int(line) for line in out.read_text().split()]
    assert ids == select_s2l(dyn, 0.3).tolist()
    assert "selected 15 of 50 samples" in capsys.readouterr().err


def test_cli_select_by_s2l_refuses_a_metrics_table(tmp_path, capsys):
    csv = tmp_path / "metrics.csv"
    compute_metrics(random_dynamics(20)).to_csv(csv)
    assert main(["select", str(csv), "--by", "s2l", "-o", str(tmp_path / "ids.txt")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "error: --by s2l clusters each sample's loss trajectory, which the metrics table" in err
    assert not (tmp_path / "ids.txt").exists()


def test_map_agreement_between_sequence_maps():
    rng = np.random.default_rng(1)
    labels = torch.from_numpy(rng.integers(0, 9, size=(30, 6)))
    labels[:, :2] = -100
    maps = []
    for scale in (1.0, 3.0):  # a small and a large model: same samples, other logits
        rec = SequenceRecorder(30)
        for _ in range(3):
            rec.update(torch.arange(30), scale * torch.randn(30, 6, 9), labels)
            rec.end_epoch()
        maps.append(compute_metrics(rec.dynamics))
    agreement = map_agreement(*maps, columns=["confidence", "perplexity", "token_accuracy"])
    assert agreement.samples == 30
    assert list(agreement.spearman.index) == ["confidence", "perplexity", "token_accuracy"]
    assert agreement.spearman.notna().all()
