"""cartokit.data.adapters: your own data as splits, from arrays, DataFrames, torch datasets and
Hugging Face datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hf_data import datasets, needs_datasets, write_jsonl

from cartokit.data import (
    from_arrays,
    from_dataframe,
    from_hf,
    from_torch,
)

# ----------------------------------------------------------------------------------------------
# your own data


def test_from_arrays_defaults_kinds_and_string_labels() -> None:
    split = from_arrays(np.ones((5, 3), dtype=np.float64), [2, 0, 1, 2, 0])
    assert split.inputs.dtype == np.float32 and split.kind == "tabular"
    assert split.class_names == ["0", "1", "2"]
    np.testing.assert_array_equal(split.ids, np.arange(5))
    images = from_arrays(np.zeros((4, 6, 6)), [0, 1, 0, 1], ids=["a", "b", "c", "d"])
    assert images.kind == "image" and images.show(2).shape == (6, 6)
    assert images.frame.index.tolist() == ["a", "b", "c", "d"]
    named = from_arrays(np.zeros((3, 2)), ["b", "a", "b"], class_names=["b", "a"])
    assert named.labels.tolist() == [0, 1, 0]
    texts = from_arrays(["one", "two"], [0, 1])
    assert texts.kind == "text" and texts.show(1) == "two"
    flat = from_arrays(np.zeros((2, 4)), [0, 1], image_shape=(2, 2))
    assert flat.kind == "image" and flat.show(0).shape == (2, 2)


def test_from_arrays_errors() -> None:
    with pytest.raises(ValueError, match=r"Got shape \(3,\); for a single feature use X.reshape"):
        from_arrays(np.zeros(3), [0, 1, 0])
    with pytest.raises(ValueError, match=r"labels \['c'\] are not among class_names"):
        from_arrays(np.zeros((2, 1)), ["a", "c"], class_names=["a", "b"])
    with pytest.raises(ValueError, match="1 labels are missing"):
        from_arrays(np.zeros((2, 1)), ["a", None])


def test_from_dataframe_factorizes_labels_and_keeps_columns() -> None:
    df = pd.DataFrame(
        {
            "review": ["good", "bad", "fine", "awful"],
            "stars": ["pos", "neg", "pos", "neg"],
            "source": ["x", "y", "x", "y"],
        },
        index=[10, 11, 12, 13],
    )
    split = from_dataframe(df, text="review", label="stars")
    assert split.class_names == ["neg", "pos"] and split.labels.tolist() == [1, 0, 1, 0]
    assert split.ids.tolist() == [10, 11, 12, 13]
    assert split.frame.loc[11, "source"] == "y" and "stars" not in split.frame
    by_column = from_dataframe(df.assign(key=list("abcd")), text="review", label="stars", id="key")
    assert by_column.ids.tolist() == list("abcd") and "key" not in by_column.frame
    pairs = from_dataframe(df, text="review", text_pair="source", label="stars")
    assert pairs.show(0) == "good [SEP] x"


def test_from_dataframe_errors() -> None:
    df = pd.DataFrame({"text": ["a", None], "label": [0, 1]}, index=[0, 0])
    with pytest.raises(
        ValueError, match=r"no column 'sentence'. The columns are \['text', 'label'"
    ):
        from_dataframe(df, text="sentence")
    with pytest.raises(ValueError, match=r"index gives the sample ids.*reset_index\(drop=True\)"):
        from_dataframe(df)
    with pytest.raises(ValueError, match="column 'text' has 1 missing texts"):
        from_dataframe(df.reset_index(drop=True))
    with pytest.raises(TypeError, match="df must be a pandas DataFrame"):
        from_dataframe({"text": ["a"], "label": [0]})


def test_from_torch_materialises_tensor_text_and_image_datasets() -> None:
    x = torch.rand(6, 4)
    split = from_torch(torch.utils.data.TensorDataset(x, torch.tensor([0, 1, 2, 0, 1, 2])))
    np.testing.assert_allclose(split.inputs, x.numpy())
    assert split.labels.tolist() == [0, 1, 2, 0, 1, 2] and split.kind == "tabular"

    class Texts(torch.utils.data.Dataset):
        classes = ["ham", "spam"]

        def __len__(self) -> int:
            return 3

        def __getitem__(self, i: int) -> tuple[str, int]:
            return f"message {i}", i % 2

    texts = from_torch(Texts(), name="sms")
    assert texts.kind == "text" and texts.show(2) == "message 2"
    assert texts.class_names == ["ham", "spam"]

    chw = torch.randint(0, 256, (4, 3, 5, 7), dtype=torch.uint8)
    images = from_torch(torch.utils.data.TensorDataset(chw, torch.tensor([0, 1, 0, 1])))
    assert images.kind == "image" and images.inputs.max() <= 1.0
    np.testing.assert_allclose(images.show(1), chw[1].permute(1, 2, 0).numpy() / 255.0, rtol=1e-6)
    gray = from_torch(torch.utils.data.TensorDataset(torch.rand(2, 1, 5, 5), torch.tensor([0, 1])))
    assert gray.show(0).shape == (5, 5)

    round_trip = from_torch(split.to_torch())  # (position, x, y) triples
    np.testing.assert_allclose(round_trip.inputs, split.inputs)
    np.testing.assert_array_equal(round_trip.labels, split.labels)


def test_from_torch_errors() -> None:
    with pytest.raises(TypeError, match="must be map-style, with __len__"):
        from_torch(iter([(torch.zeros(2), 0)]))
    ragged = [(torch.zeros(2), 0), (torch.zeros(3), 1)]
    with pytest.raises(ValueError, match="samples have different shapes"):
        from_torch(ragged)
    with pytest.raises(TypeError, match=r"items must be \(x, y\) pairs.*Item 0 is a Tensor"):
        from_torch([torch.zeros(2)])


# ----------------------------------------------------------------------------------------------
# Hugging Face datasets


@needs_datasets
def test_from_hf_text_label_json_through_datasets(tmp_path: Path) -> None:
    rows = [{"text": f"review {i}", "label": i % 2} for i in range(12)]
    loaded = datasets.load_dataset(
        "json", data_files=write_jsonl(tmp_path / "a.jsonl", rows), cache_dir=str(tmp_path)
    )
    split = from_hf(loaded["train"], name="reviews/train")
    assert split.inputs == [r["text"] for r in rows]
    np.testing.assert_array_equal(split.labels, np.arange(12) % 2)
    assert split.class_names == ["0", "1"] and split.kind == "text"
    np.testing.assert_array_equal(split.ids, np.arange(12))
    assert split.frame["text"].tolist() == split.inputs
    assert len(from_hf(loaded["train"], max_samples=4, seed=1)) == 4
    with pytest.raises(TypeError, match=r"Pick one split first, e.g. dataset\['train'\]"):
        from_hf(loaded)


@needs_datasets
def test_from_hf_pairs_drop_snli_style_unlabelled_rows(tmp_path: Path) -> None:
    labels = [0, -1, 2, 1, -1, 0]
    rows = [{"premise": f"p{i}", "hypothesis": f"h{i}", "label": y} for i, y in enumerate(labels)]
    loaded = datasets.load_dataset(
        "json", data_files=write_jsonl(tmp_path / "nli.jsonl", rows), cache_dir=str(tmp_path)
    )
    split = from_hf(loaded["train"], class_names=["entailment", "neutral", "contradiction"])
    np.testing.assert_array_equal(split.ids, [0, 2, 3, 5])  # positions in the source
    np.testing.assert_array_equal(split.labels, [0, 2, 1, 0])
    assert split.show(1) == "p2 [SEP] h2"
    assert split.frame.loc[3, "hypothesis"] == "h3"
    kept_all = from_hf(loaded["train"].filter(lambda r: r["label"] >= 0), id=None)
    assert len(kept_all) == 4


@needs_datasets
def test_from_hf_class_names_from_features_and_string_labels() -> None:
    features = datasets.Features(
        {
            "sentence": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["negative", "positive"]),
            "idx": datasets.Value("int32"),
        }
    )
    ds = datasets.Dataset.from_dict(
        {"sentence": ["a", "b", "c"], "label": [1, 0, 1], "idx": [10, 11, 12]}, features=features
    )
    split = from_hf(ds, id="idx")
    assert split.class_names == ["negative", "positive"]
    np.testing.assert_array_equal(split.ids, [10, 11, 12])
    named = datasets.Dataset.from_dict({"text": ["x", "y", "z"], "topic": ["b", "a", "b"]})
    split = from_hf(named, label="topic")
    assert split.class_names == ["a", "b"] and split.labels.tolist() == [1, 0, 1]
    with pytest.raises(ValueError, match=r"found no text column among \['body', 'label'\]"):
        from_hf(datasets.Dataset.from_dict({"body": ["x"], "label": [0]}))
    with pytest.raises(ValueError, match=r"all 2 rows are labelled -1.*'validation'"):
        from_hf(datasets.Dataset.from_dict({"text": ["x", "y"], "label": [-1, -1]}))
