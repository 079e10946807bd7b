"""Map transfer: map_agreement, the model kinds, training on subsets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cartokit import Thresholds, assign_regions, load_dataset, select
from cartokit.data import subsample
from cartokit.transfer import MODEL_KINDS, map_agreement, model_factory, train_on_subsets


def metrics_table(n=200, seed=0, ids=None):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "confidence": rng.random(n),
            "variability": rng.random(n) * 0.4,
            "correctness": rng.random(n),
            "forgetting": rng.integers(0, 4, n),
            "aum": rng.normal(0, 2, n),
            "el2n": rng.random(n),
        },
        index=pd.Index(np.arange(n) * 2 + 1 if ids is None else ids, name="id"),
    )


def test_identical_maps_agree_completely():
    m = metrics_table()
    agreement = map_agreement(m, m.copy())
    np.testing.assert_allclose(agreement.spearman, 1.0)
    assert list(agreement.spearman.index) == list(m.columns)
    assert (agreement.jaccard == 1.0).all() and agreement.region_agreement == 1.0
    confusion = agreement.regions.to_numpy()
    assert (confusion == np.diag(np.diag(confusion))).all() and confusion.sum() == 200
    assert "Spearman: confidence 1.00" in repr(agreement)


def test_reversed_map():
    m = metrics_table()
    flipped = m.assign(confidence=1 - m["confidence"])
    agreement = map_agreement(m, flipped, columns=["confidence"], fraction=0.2)
    assert agreement.spearman["confidence"] == pytest.approx(-1.0)
    assert agreement.jaccard["easy"] == 0.0 and agreement.jaccard["hard"] == 0.0
    assert agreement.jaccard["ambiguous"] == 1.0  # variability unchanged


def test_oracle_against_literal_definitions():
    from scipy.stats import spearmanr

    a = metrics_table(seed=1)
    b = metrics_table(seed=2)
    b["confidence"] = 0.7 * a["confidence"] + 0.3 * b["confidence"]
    t = Thresholds(ambiguous_variability=0.25)
    agreement = map_agreement(a, b, thresholds=t, fraction=0.25)
    for column in a.columns:
        assert agreement.spearman[column] == pytest.approx(spearmanr(a[column], b[column])[0])
    for by in ("ambiguous", "easy", "hard"):
        x, y = set(select(a, by, 0.25)), set(select(b, by, 0.25))
        assert agreement.jaccard[by] == pytest.approx(len(x & y) / len(x | y))
    ra, rb = assign_regions(a, t), assign_regions(b, t)
    for r1 in ("easy", "ambiguous", "hard"):
        for r2 in ("easy", "ambiguous", "hard"):
            assert agreement.regions.loc[r1, r2] == ((ra == r1) & (rb == r2)).sum()
    assert agreement.region_agreement == pytest.approx((ra == rb).mean())


def test_only_shared_ids_are_compared():
    a = metrics_table(100, ids=np.arange(100))
    b = metrics_table(100, seed=4, ids=np.arange(50, 150))
    agreement = map_agreement(a, b)
    assert agreement.samples == 50 and agreement.regions.to_numpy().sum() == 50


def test_constant_metric_gives_nan():
    a = metrics_table()
    agreement = map_agreement(a, a.assign(forgetting=0))
    assert np.isnan(agreement.spearman["forgetting"])


def test_missing_confidence_gives_an_unassigned_region():
    a = metrics_table(20)
    b = a.copy()
    b.iloc[0, b.columns.get_loc("confidence")] = np.nan
    agreement = map_agreement(a, b)
    assert "unassigned" in agreement.regions.columns
    assert agreement.regions["unassigned"].sum() == 1


def test_map_agreement_errors():
    a = metrics_table()
    with pytest.raises(ValueError, match="share no sample id"):
        map_agreement(a, metrics_table(ids=np.arange(200) * 2))
    with pytest.raises(ValueError, match=r"The 'columns' parameter of map_agreement names \['x'\]"):
        map_agreement(a, a, columns=["x"])
    with pytest.raises(TypeError, match="The 'm2' parameter of map_agreement"):
        map_agreement(a, a.to_numpy())
    with pytest.raises(ValueError, match="The 'by' parameter of select"):
        map_agreement(a, a, selectors=["nonsense"])


# ------------------------------------------------------------------------------ models, subsets


@pytest.fixture(scope="module")
def digits():
    bundle = load_dataset("digits")
    return subsample(bundle.train, 300), subsample(bundle.test, 100)


def test_model_factory(digits):
    train, _ = digits
    assert model_factory("linear")(train).hidden == ()
    assert model_factory("mlp")(train).hidden == (128,)
    assert model_factory("deep_mlp", seed=3)(train).hidden == (512, 256)
    cnn = model_factory("cnn")(train)
    assert cnn.image_shape == (1, 8, 8)
    first = model_factory("mlp", seed=1)(train).net[0].weight
    assert (first == model_factory("mlp", seed=1)(train).net[0].weight).all()  # seeded
    assert set(MODEL_KINDS) >= {"linear", "mlp", "deep_mlp", "cnn", "minilm_finetune"}
    with pytest.raises(ValueError, match=r"The 'kind' parameter of model_factory must be one of"):
        model_factory("resnet")


def test_train_on_subsets(digits):
    train, test = digits
    ids = train.ids[:100]
    table = train_on_subsets(
        model_factory("linear"), train, {"full": None, "third": ids}, eval_data={"test": test},
        epochs=3, lr=0.01, equal_budget=True, map_seconds={"third": 1.5},
    )  # fmt: skip
    assert table.index.tolist() == ["full", "third"]
    assert table["samples"].tolist() == [300, 100]
    assert table["epochs"].tolist() == [3, 9]  # equal budget: 3 x the epochs on a third
    assert table["sample_epochs"].tolist() == [900, 900]
    assert table["test_accuracy"].between(0, 1).all()
    assert table.loc["full", "test_accuracy"] > 0.5
    assert table.loc["third", "total_seconds"] == pytest.approx(
        table.loc["third", "train_seconds"] + 1.5
    )
    assert table.loc["full", "map_seconds"] == 0.0


def test_train_on_subsets_errors(digits):
    train, _ = digits
    factory = model_factory("linear")
    with pytest.raises(ValueError, match=r"names subsets \['own'\] that are not in subsets"):
        train_on_subsets(factory, train, {"full": None}, map_seconds={"own": 1.0})
    with pytest.raises(ValueError, match="are not sample ids of"):
        train_on_subsets(factory, train, {"bad": [-5]})
    with pytest.raises(TypeError, match="The 'subsets' parameter of train_on_subsets"):
        train_on_subsets(factory, train, {})
