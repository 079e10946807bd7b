"""Map transfer: map_agreement, the model kinds, training on subsets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cartokit import Thresholds, assign_regions, load_dataset, select
from cartokit.data import subsample
from cartokit.models import MODELS, model_factory
from cartokit.transfer import (
    choose_models,
    map_agreement,
    record_maps,
    train_on_subsets,
)


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


def test_the_old_model_registry_names_warn_and_forward():
    import cartokit.transfer as transfer
    from cartokit import models

    with pytest.warns(DeprecationWarning, match=r"cartokit.transfer.MODEL_KINDS is deprecated; "
                      r"use cartokit.models.MODELS"):  # fmt: skip
        assert transfer.MODEL_KINDS is models.MODELS
    with pytest.warns(DeprecationWarning, match=r"use cartokit.models.model_factory"):
        assert transfer.model_factory is models.model_factory
    with pytest.raises(AttributeError, match="has no attribute 'MODELS'"):
        transfer.MODELS  # noqa: B018


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
    with pytest.raises(ValueError, match="are not in the sample ids of"):
        train_on_subsets(factory, train, {"bad": [-5]})
    with pytest.raises(TypeError, match="The 'subsets' parameter of train_on_subsets"):
        train_on_subsets(factory, train, {})


# ------------------------------------------------------------------------------ roles and maps


def embedded(bundle, width=6):
    """A stand-in for sentence embeddings: the same samples as tabular features."""
    from cartokit.data import DataBundle, Split

    def embed(split):
        rng = np.random.default_rng(len(split))
        return Split(split.name, rng.random((len(split), width), dtype=np.float32), split.labels,
                     split.ids, list(split.class_names), "tabular", split.frame.copy())  # fmt: skip

    return DataBundle(bundle.name, train=embed(bundle.train), test=embed(bundle.test))


@pytest.fixture(scope="module")
def digits_bundle(digits):
    from cartokit.data import DataBundle

    train, test = digits
    return DataBundle("digits", train=train, test=test)


def test_choose_models_auto_and_named(digits_bundle):
    choice = choose_models(digits_bundle, digits_bundle)
    assert choice.kinds == {"small": "mlp", "large": "cnn", "student": "mlp"}
    assert all(bundle is digits_bundle for bundle in choice.data.values())
    assert choice.table.loc["large", "model"] == MODELS["cnn"]
    features = embedded(digits_bundle)
    text_like = choose_models(digits_bundle, features, large="minilm_frozen", student="deep_mlp")
    assert text_like.kinds == {"small": "linear", "large": "minilm_frozen", "student": "deep_mlp"}
    assert text_like.data["large"] is digits_bundle  # the MiniLM kinds take the raw data
    assert text_like.data["small"] is features and text_like.data["student"] is features


def test_choose_models_errors(digits_bundle):
    match = r"The 'large' parameter of choose_models must be one of \['auto', 'linear'.*Got 'cnnn'"
    with pytest.raises(ValueError, match=match + r" instead. Did you mean 'cnn'\?"):
        choose_models(digits_bundle, digits_bundle, large="cnnn")
    from cartokit.data import DataBundle

    train, test = digits_bundle.train, digits_bundle.test
    shuffled = DataBundle("d", train=train.subset(np.arange(len(train))[::-1]), test=test)
    with pytest.raises(ValueError, match="raw and features must hold the same samples"):
        choose_models(digits_bundle, shuffled)


def test_record_maps_times_each_role_after_a_warm_up(digits_bundle, monkeypatch):
    import torch

    import cartokit.train

    calls = []
    real = cartokit.train.fit

    def spy(model, train, **options):
        calls.append((options.get("epochs"), options.get("record", True), torch.get_num_threads()))
        return real(model, train, **options)

    monkeypatch.setattr(cartokit.train, "fit", spy)
    choice = choose_models(digits_bundle, digits_bundle, large="linear")
    runs = record_maps(choice, epochs=3, lr=0.01, seed=2)
    assert calls == [(1, False, 1), (3, True, 1), (3, True, 1)]  # warm-up, small, large
    assert list(runs.metrics) == ["small", "large"] == list(runs.seconds.index)
    assert runs.seconds.name == "training seconds" and (runs.seconds > 0).all()
    assert len(runs.metrics["large"]) == 300 and runs.models["large"].hidden == ()
    again = record_maps(choice, roles=["large"], epochs=3, lr=0.01, seed=2)
    pd.testing.assert_frame_equal(again.metrics["large"], runs.metrics["large"])  # seeded
    with pytest.raises(ValueError, match=r"The 'roles' parameter of record_maps must be a "
                       r"non-empty list"):  # fmt: skip
        record_maps(choice, roles=["teacher"])


def test_subset_trainers_refuse_a_model_maker_that_is_not_one(digits):
    from cartokit.distillation import distill_on_subsets

    train = digits[0]
    with pytest.raises(TypeError, match=r"The 'make_model' parameter of train_on_subsets must be"):
        train_on_subsets(..., train, {"full": None})
    student = model_factory("linear")(train)  # a model, where a maker of models is wanted
    with pytest.raises(TypeError, match=r"'make_student' parameter of distill_on_subsets .*model"):
        distill_on_subsets(None, student, train, {"full": None},
                           teacher_logits=np.zeros((len(train), 10)))  # fmt: skip
