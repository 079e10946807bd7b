"""cartokit.data.files and .sources: your own files and image folders, ``hf:<name>`` through
the datasets library (on local data files, offline), and each refusal in one line naming the
file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hf_data import needs_datasets

from cartokit.data import (
    dataset_source,
    from_file,
    from_image_folder,
    load_files,
    load_source,
    read_table,
)
from cartokit.data.files import check_files

REVIEWS = pd.DataFrame(
    {
        "review_id": ["r1", "r2", "r3", "r4", "r5", "r6"],
        "review": ["great", "awful", "fine", "dull", "superb", "bad"],
        "stars": [5, 1, 5, 1, 5, 1],
        "helpful": [0.5, 0.1, 0.9, 0.3, 0.7, 0.2],
    }
)


def write(path: Path, table: pd.DataFrame) -> Path:
    """``table`` in the format its suffix names."""
    if path.suffix == ".csv":
        table.to_csv(path, index=False)
    elif path.suffix == ".tsv":
        table.to_csv(path, sep="\t", index=False)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in table.to_dict("records")))
    else:
        table.to_parquet(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_every_table_format_reads_the_same_split(tmp_path, suffix):
    path = write(tmp_path / f"reviews{suffix}", REVIEWS)
    split = from_file(path, text_column="review", label_column="stars", id_column="review_id")
    assert split.kind == "text" and split.inputs == REVIEWS["review"].tolist()
    assert split.class_names == ["1", "5"] and split.labels.tolist() == [1, 0, 1, 0, 1, 0]
    assert split.ids.tolist() == REVIEWS["review_id"].tolist()
    # the other columns stay in the frame, indexed by id, for the explorer and the metrics
    assert split.frame.loc["r3", "helpful"] == pytest.approx(0.9)
    assert "stars" not in split.frame and "review_id" not in split.frame


def test_numbers_sort_as_numbers_and_rows_are_the_default_ids(tmp_path):
    table = pd.DataFrame({"text": list("abcdef"), "label": [10, 2, 10, 2, 9, 9]})
    split = from_file(write(tmp_path / "t.csv", table))
    assert split.class_names == ["2", "9", "10"]  # not "10" < "2"
    assert split.labels.tolist() == [2, 0, 2, 0, 1, 1]
    assert split.ids.tolist() == list(range(6))


def test_feature_columns_give_a_tabular_split(tmp_path):
    table = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [1, 1, 0, 0], "label": list("abab")})
    split = from_file(write(tmp_path / "f.csv", table), feature_columns=["y", "x"])
    assert split.kind == "tabular" and split.inputs.dtype == np.float32
    np.testing.assert_array_equal(split.inputs, [[1, 0], [1, 1], [0, 2], [0, 3]])


def test_a_test_file_takes_the_training_classes_and_may_not_add_any(tmp_path):
    train = write(tmp_path / "train.csv", REVIEWS)
    test = write(tmp_path / "test.csv", REVIEWS.assign(stars=[1, 1, 1, 1, 1, 1]))
    columns = {"text_column": "review", "label_column": "stars"}
    bundle = load_files(train, test_data=test, ood_data={"other": test}, **columns)
    assert bundle.test.class_names == ["1", "5"] and set(bundle.test.labels) == {0}
    assert list(bundle.ood) == ["other"] and bundle.name == "train"
    extra = write(tmp_path / "extra.csv", REVIEWS.assign(stars=[1, 3, 1, 5, 4, 1]))
    with pytest.raises(
        ValueError,
        match=r"extra.csv has classes the training data lacks: \['3', '4'\]. The training "
        r"classes are \['1', '5'\]",
    ):
        load_files(train, test_data=extra, **columns)


def test_without_test_data_a_stratified_share_is_held_out(tmp_path):
    table = pd.DataFrame({"text": [f"t{i}" for i in range(20)], "label": [0, 1] * 10})
    bundle = load_files(write(tmp_path / "d.csv", table), test_size=0.25, seed=3)
    assert (len(bundle.train), len(bundle.test)) == (15, 5)
    assert sorted(np.bincount(bundle.test.labels)) == [2, 3]  # stratified
    again = load_files(tmp_path / "d.csv", test_size=0.25, seed=3)
    assert again.test.ids.tolist() == bundle.test.ids.tolist()  # seeded


# ------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("rows", "options", "match"),
    [
        (
            "review,stars\ngreat,5\n",
            {"text_column": "text", "label_column": "stars"},
            r"bad.csv has no column 'text' \(the text_column\). Its columns are "
            r"\['review', 'stars'\]; set text_column to one of them",
        ),
        (
            "review,stars\ngreat,5\n",
            {"text_column": "review"},
            r"bad.csv has no column 'label' \(the label_column\). Its columns are",
        ),
        (
            "review,stars\ngreat,5\nfine,5\n",
            {"text_column": "review", "label_column": "stars"},
            r"bad.csv: every label is '5', one class; a data map needs at least 2 classes",
        ),
        ("", {}, r"bad.csv is empty: a data map needs samples"),
        ("text,label\n", {}, r"bad.csv has a header but no rows"),
        (
            "id,text,label\n1,a,x\n2,b,y\n1,c,x\n",
            {"id_column": "id"},
            r"bad.csv: the id column 'id' repeats ids, e.g. \[1\]; each row must be one sample",
        ),
        (
            "text,label\na,x\nb,\nc,y\n",
            {},
            r"bad.csv: 1 labels are missing, at rows \[1\]",
        ),
        (
            "x,label\n1,a\nred,b\n",
            {"feature_columns": ["x"]},
            r"bad.csv: the feature column 'x' holds text, e.g. \['red'\]; feature_columns must "
            r"be numeric",
        ),
        ('text,label\n"a,x\n', {}, r"bad.csv is not a readable CSV file: "),
    ],
)
def test_bad_files_are_refused_in_one_line_naming_the_file(tmp_path, rows, options, match):
    path = tmp_path / "bad.csv"
    path.write_text(rows)
    with pytest.raises(ValueError, match=match) as caught:
        from_file(path, **options)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_unknown_suffixes_and_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No file at .*missing.csv"):
        read_table(tmp_path / "missing.csv")
    (tmp_path / "notes.txt").write_text("text,label\n")
    with pytest.raises(ValueError, match=r"notes.txt: cartokit reads tables from .csv, .tsv"):
        read_table(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match=r"There is no file or folder at .*/nope.csv"):
        dataset_source(str(tmp_path / "nope.csv"))
    with pytest.raises(ValueError, match=r"notes.txt is a .txt file; cartokit reads .csv"):
        dataset_source(str(tmp_path / "notes.txt"))
    with pytest.raises(ValueError, match=r"Did you mean 'digits'"):
        dataset_source("digts")


# ------------------------------------------------------------------------------ image folders


def image_folder(root: Path, classes: dict[str, int], *, mode: str = "L") -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            shape = (10, 12) if mode == "L" else (10, 12, 3)
            pixels = rng.integers(0, 256, shape, dtype=np.uint8)
            Image.fromarray(pixels, mode=mode).save(root / name / f"{i}.png")
    (root / next(iter(classes)) / "notes.txt").write_text("not an image, left alone")
    return root


def test_an_image_folder_is_a_split_with_one_class_per_subfolder(tmp_path):
    root = image_folder(tmp_path / "pets", {"cat": 3, "dog": 2})
    split = from_image_folder(root)
    assert split.kind == "image" and split.class_names == ["cat", "dog"]
    assert split.image_shape == (10, 12) and split.inputs.shape == (5, 120)
    assert split.ids.tolist() == ["cat/0.png", "cat/1.png", "cat/2.png", "dog/0.png", "dog/1.png"]
    assert split.labels.tolist() == [0, 0, 0, 1, 1]
    assert 0 <= split.inputs.min() and split.inputs.max() <= 1
    colour = from_image_folder(image_folder(tmp_path / "rgb", {"a": 1, "b": 1}, mode="RGB"))
    assert colour.image_shape == (3, 10, 12)  # channels first, as the CNN takes them
    assert colour.show(0).shape == (10, 12, 3)


def test_image_folder_refusals_name_the_file(tmp_path):
    root = image_folder(tmp_path / "pets", {"cat": 2, "dog": 2})
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match=r"dog/broken.png is not an image Pillow can read"):
        from_image_folder(root)
    with pytest.raises(ValueError, match=r"dog/broken.png is not an image Pillow can read"):
        check_files(root)  # what cartokit run checks before the first notebook
    one = image_folder(tmp_path / "one", {"cat": 2})
    with pytest.raises(ValueError, match=r"one has one class, 'cat'; a data map needs at least 2"):
        from_image_folder(one)
    with pytest.raises(ValueError, match=r"empty has no subfolder with images"):
        (tmp_path / "empty").mkdir()
        from_image_folder(tmp_path / "empty")
    test = image_folder(tmp_path / "test", {"cat": 1, "bird": 1})
    with pytest.raises(ValueError, match=r"test has classes the training data lacks: \['bird'\]"):
        from_image_folder(test, class_names=["cat", "dog"])


def test_image_folders_load_as_a_bundle_with_the_training_size(tmp_path):
    from PIL import Image

    train = image_folder(tmp_path / "train", {"cat": 4, "dog": 4})
    test = image_folder(tmp_path / "test", {"cat": 1, "dog": 1})
    Image.new("L", (30, 20)).save(test / "dog" / "big.png")  # resized to the training size
    bundle = load_source(str(train), test_data=str(test))
    assert len(bundle.test) == 3 and bundle.test.image_shape == (10, 12)


# ------------------------------------------------------------------------------ hf:<name>


@needs_datasets
def test_hf_datasets_load_through_the_datasets_library(tmp_path):
    """Offline: ``datasets.load_dataset`` reads a local folder of data files as it reads a hub
    repository; text columns are guessed, the labelled test split is found."""
    folder = tmp_path / "hubset"
    folder.mkdir()
    rows = [{"sentence": f"good {i}" if i % 2 else f"bad {i}", "label": i % 2} for i in range(20)]
    pd.DataFrame(rows).to_csv(folder / "train.csv", index=False)
    pd.DataFrame(rows[:6]).to_csv(folder / "test.csv", index=False)
    pd.DataFrame(rows[6:10]).to_csv(folder / "validation.csv", index=False)
    source, value = dataset_source(f"hf:{folder}")
    assert (source, value) == ("hub", f"hf:{folder.resolve()}")
    bundle = load_source(value, ood_data={"shifted": "validation"})
    assert bundle.train.kind == "text" and bundle.train.inputs[:2] == ["bad 0", "good 1"]
    assert len(bundle.train) == 20 and len(bundle.test) == 6
    assert list(bundle.ood) == ["shifted"] and len(bundle.ood["shifted"]) == 4
    other = tmp_path / "no_text"
    other.mkdir()
    pd.DataFrame({"words": ["a", "b"], "label": [0, 1]}).to_csv(other / "train.csv", index=False)
    with pytest.raises(ValueError, match=r"found no text column among \['words', 'label'\]"):
        load_source(f"hf:{other}")
    with pytest.raises(ValueError, match=r"datasets.load_dataset\('.*/missing'\) failed: "):
        load_source(f"hf:{tmp_path / 'missing'}")
