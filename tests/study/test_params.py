"""cartokit.study.params: the one schema of the notebooks' parameters, its sentences, presets,
config files, -p overrides, and the notebooks' parameters cells."""

from __future__ import annotations

import ast
import json

import numpy as np
import pytest
from notebook_cells import NOTEBOOK_DIR, code_cells, load, source

from cartokit import SELECTORS, Thresholds, select, study
from cartokit._validation import Options
from cartokit.study import FULL, NOTEBOOKS, PAPER_SUBSETS, SCHEMA, validate_params
from cartokit.study.params import LIST_PARAMS, OWN_DATA_PARAMS

#: Every notebook whose parameters the schema checks: the study's four, then 05 and 06.
ALL_NOTEBOOKS = sorted(p.stem for p in NOTEBOOK_DIR.glob("0*.ipynb"))


# ------------------------------------------------------------------------------ the schema


def test_all_six_notebooks_are_checked():
    assert ALL_NOTEBOOKS[:4] == list(NOTEBOOKS)
    assert ALL_NOTEBOOKS[4:6] == ["05_mislabels", "06_transfer_and_distill"]
    assert "09_compression" in ALL_NOTEBOOKS


@pytest.mark.parametrize("name", ALL_NOTEBOOKS)
def test_each_notebooks_parameters_cell_agrees_with_the_schema(name):
    """Every parameter the cell declares has a constraint, and its default passes it."""
    declared = study.read_parameters_cell(NOTEBOOK_DIR / f"{name}.ipynb")
    assert declared, name
    assert sorted(set(declared) - set(SCHEMA)) == [], f"{name} declares parameters with no rule"
    checked = validate_params(notebook=name, **declared)
    assert set(checked) == set(declared)


def test_every_constraint_belongs_to_a_declared_parameter():
    declared = set()
    for name in ALL_NOTEBOOKS:
        declared |= set(study.read_parameters_cell(NOTEBOOK_DIR / f"{name}.ipynb"))
    assert sorted(set(SCHEMA) - declared) == [], "constraints of parameters no notebook declares"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_each_study_notebook_validates_every_parameter_it_declares(name):
    """The call in the cell after the install cell names the notebook and passes every declared
    parameter but the run folder, by its own name."""
    declared = set(study.read_parameters_cell(NOTEBOOK_DIR / f"{name}.ipynb")) - {"run_dir"}
    (call,) = [
        node
        for node in ast.walk(ast.parse(source(code_cells(load(name))[2])))
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "study.validate_params"
    ]
    keywords = {k.arg: ast.unparse(k.value) for k in call.keywords}
    assert keywords.pop("notebook") == repr(name)
    assert keywords == {p: p for p in declared}


def test_list_parameters_are_those_with_list_constraints():
    assert LIST_PARAMS == {
        "selectors", "fractions", "curve_fractions", "mixtures", "seeds", "tracking",
        "feature_columns", "methods", "sparsities",
    }  # fmt: skip


def test_the_threshold_ranges_are_those_of_thresholds():
    for name, upper in (
        ("ambiguous_variability", 0.5),
        ("easy_confidence", 1.0),
        ("hard_confidence", 1.0),
    ):
        validate_params(**{name: upper})
        Thresholds(
            **{name: upper, **({"easy_confidence": 1.0} if name == "hard_confidence" else {})}
        )
        with pytest.raises(ValueError, match=rf"'{name}' parameter of validate_params"):
            validate_params(**{name: upper + 0.01})
        with pytest.raises(ValueError, match=rf"'{name}' threshold must be"):
            Thresholds(**{name: upper + 0.01})


# ------------------------------------------------------------------------------ sentences


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        (
            {"dataset": "digts"},
            ValueError,
            r"'dataset' parameter of validate_params must be one of .*'digits'.*"
            r"Did you mean 'digits'",
        ),
        (
            {"model": "resnet"},
            ValueError,
            r"'model' parameter of validate_params must be one of \['mlp', 'cnn', 'minilm'\]",
        ),
        (
            {"selectors": ["ambiguous", "ambigous"]},
            ValueError,
            r"'selectors' parameter of validate_params must be a list of values among .*"
            r"Got \['ambiguous', 'ambigous'\] instead. Did you mean 'ambiguous'",
        ),
        (
            {"fractions": [0.33, 0]},
            ValueError,
            r"'fractions' parameter of validate_params must be a list of floats in the range "
            r"\(0, 1\]. Got \[0.33, 0\] instead",
        ),
        (
            {"curve_fractions": 1.5},
            ValueError,
            r"'curve_fractions' parameter of validate_params must be a list of floats in the "
            r"range \(0, 1\]. Got 1.5",
        ),
        (
            {"epochs": 1},
            ValueError,
            r"'epochs' parameter of validate_params must be an int >= 2 "
            r"\(variability needs at least 2 checkpoints\). Got 1 instead",
        ),
        (
            {"epochs": 2.5},
            TypeError,
            r"'epochs' parameter of validate_params must be an int >= 2 .* Got 2.5 of type float",
        ),
        (
            {"mode": "train"},
            ValueError,
            r"'mode' parameter of validate_params must be one of \['train_pass', 'eval_pass'\]",
        ),
        (
            {"noise": 1.0},
            ValueError,
            r"'noise' parameter of validate_params must be a float in the range \[0, 1\)",
        ),
        ({"lr": 0}, ValueError, r"'lr' parameter of validate_params must be a float > 0"),
        (
            {"seeds": []},
            ValueError,
            r"'seeds' parameter of validate_params must be a non-empty list of ints >= 0. Got \[\]",
        ),
        (
            {"max_samples": 3},
            ValueError,
            r"'max_samples' parameter of validate_params must be an int >= 10, or None",
        ),
        (
            {"balanced": "yes"},
            TypeError,
            r"'balanced' parameter of validate_params must be a bool",
        ),
        (
            {"mixtures": ["17% ambiguos + 10% easy"]},
            ValueError,
            r"'mixtures' parameter of validate_params must be a list of mixtures such as .* "
            r"The part 'ambiguos' of .* names no selector.*Did you mean 'ambiguous'",
        ),
        (
            {"mixtures": ["17 % ambiguous +"]},
            ValueError,
            r"'mixtures' parameter of validate_params must be a list of mixtures .*"
            r"Got \['17 % ambiguous \+'\] instead. Could not parse",
        ),
        (
            {"mixtures": ["10% random in middle"]},
            ValueError,
            r"names no region. Regions: \['easy', 'ambiguous', 'hard'\]",
        ),
        (
            {"dataset": "sentiment", "model": "mlp"},
            ValueError,
            r"'model' parameter of validate_params must be 'minilm' for the text dataset "
            r"'sentiment'. Got 'mlp' instead",
        ),
        (
            {"dataset": "digits", "model": "minilm"},
            ValueError,
            r"must be one of \['mlp', 'cnn'\] for the image dataset 'digits'",
        ),
        (
            {"easy_confidence": 0.3, "hard_confidence": 0.6},
            ValueError,
            r"validate_params: hard_confidence \(0.6\) must not exceed easy_confidence \(0.3\)",
        ),
        (
            {"ambiguous_variability": 0.7},
            ValueError,
            r"'ambiguous_variability' parameter of validate_params must be a float in the range "
            r"\[0, 0.5\]",
        ),
        (
            {"selectors": [], "curve_fractions": [], "mixtures": []},
            ValueError,
            r"all empty, so there is no subset to select",
        ),
        (
            {"selectors": ["ambiguous"], "fractions": []},
            ValueError,
            r"'fractions' parameter of validate_params is empty, but the selectors "
            r"\['ambiguous'\]",
        ),
        (
            {"epoch": 3},
            ValueError,
            r"validate_params has no parameter 'epoch'. Did you mean 'epochs'\?",
        ),
        # notebooks 05 and 06
        (
            {"folds": 1},
            ValueError,
            r"'folds' parameter of validate_params must be 0 \(no K-fold baseline\) or an int "
            r">= 2. Got 1 instead",
        ),
        ({"folds": 2.0}, TypeError, r"'folds' parameter .* Got 2.0 of type float"),
        ({"review_limit": 0}, ValueError, r"'review_limit' parameter .* an int >= 1. Got 0"),
        ({"auto_review": -1}, ValueError, r"'auto_review' parameter .* an int >= 0. Got -1"),
        (
            {"small_model": "cnnn"},
            ValueError,
            r"'small_model' parameter of validate_params must be 'auto' or a model kind of "
            r"cartokit.models.MODELS. Got 'cnnn' instead. Kinds: \['auto', 'linear', .*"
            r"Did you mean 'cnn'",
        ),
        ({"fraction": 0}, ValueError, r"'fraction' parameter .* in the range \(0, 1\]"),
        ({"temperature": 0.0}, ValueError, r"'temperature' parameter .* a float > 0"),
        ({"alpha": 1.5}, ValueError, r"'alpha' parameter .* in the range \[0, 1\]"),
        ({"out_dir": ""}, ValueError, r"'out_dir' parameter of validate_params must be a path"),
    ],
)
def test_bad_parameters_raise_one_sentence_naming_them(params, error, match):
    with pytest.raises(error, match=match):
        validate_params(**params)


def test_errors_name_the_notebook_or_the_caller():
    with pytest.raises(
        ValueError,
        match=r"^The 'epochs' parameter of notebook 01_train_and_record must be an int >= 2",
    ):
        validate_params(notebook="01_train_and_record", epochs=1)
    with pytest.raises(ValueError, match=r"^The 'folds' parameter of notebook 05_mislabels must"):
        validate_params(notebook="05_mislabels", folds=1)
    with pytest.raises(ValueError, match=r"^notebook 02_map: hard_confidence \(0.9\) must not"):
        validate_params(notebook="02_map", easy_confidence=0.5, hard_confidence=0.9)
    with pytest.raises(ValueError, match=r"^The 'lr' parameter of cartokit run must be"):
        validate_params(caller="cartokit run", lr=-1.0)


def test_validate_params_normalises_single_values_and_arrays_to_lists():
    assert validate_params(fractions=0.1, seeds=3, selectors="full") == {
        "fractions": [0.1],
        "seeds": [3],
        "selectors": ["full"],
    }
    assert validate_params(max_samples=None, retrain_epochs=None) == {
        "max_samples": None,
        "retrain_epochs": None,
    }
    assert validate_params(seeds=np.array([1, 2]), fractions=np.float64(0.5)) == {
        "seeds": [1, 2],
        "fractions": [0.5],
    }
    assert validate_params(folds=0, small_model="auto", fraction=1) == {
        "folds": 0,
        "small_model": "auto",
        "fraction": 1.0,
    }


def test_modes_match_the_training_loop():
    from cartokit.train import MODES

    assert isinstance(SCHEMA["mode"], Options) and SCHEMA["mode"].choices == list(MODES)


def test_every_selector_name_is_known_to_select():
    from cartokit import TrainingDynamics, compute_metrics

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 200, 3))
    dynamics = TrainingDynamics.from_logits(logits, rng.integers(0, 3, 200))
    metrics = compute_metrics(dynamics)
    for name in study.SUBSET_SELECTORS:
        if name != FULL:
            extra = {"dynamics": dynamics} if name == "s2l" else {}  # s2l clusters trajectories
            assert len(select(metrics, name, 0.1, **extra)) == 20


# ------------------------------------------------------------------------------ presets, -p


def test_parse_overrides_reads_yaml_values():
    assert study.parse_overrides(
        ["epochs=5", "lr=2e-5", "fractions=[0.1, 0.2]", "max_samples=null", "model=cnn", "x="]
    ) == {
        "epochs": 5,
        "lr": 2e-5,
        "fractions": [0.1, 0.2],
        "max_samples": None,
        "model": "cnn",
        "x": None,
    }
    with pytest.raises(ValueError, match=r"-p takes KEY=VALUE, such as -p epochs=5. Got 'epochs'"):
        study.parse_overrides(["epochs"])


def test_presets_are_valid_and_complete():
    assert study.preset_names() == ["dialogue", "digits", "sentiment"]
    declared = set()
    for params in study.notebook_parameters().values():
        declared |= set(params)
    for name in ("digits", "sentiment"):  # the classifier study's (dialogue: test_dialogue_run)
        assert study.study_of(preset=name) == "classifier"
        preset = study.load_preset(name)
        # a preset names a registered dataset: the own-data parameters keep their defaults
        assert set(preset) == declared - {"run_dir", *OWN_DATA_PARAMS} - (
            {"freeze_encoder"} if name == "digits" else set()
        )
        validate_params(caller=f"the preset {name!r}", **preset)
        params = study.resolve_params(preset=name)
        assert set(PAPER_SUBSETS) <= set(params["selectors"])
        assert {"low_forgetting", "high_forgetting", "low_confidence"} <= set(params["selectors"])
        # no two selectors rank alike: each would give the report the same row twice
        rankings = [SELECTORS.get(s, s) for s in params["selectors"]]
        assert len(set(rankings)) == len(rankings), params["selectors"]
        assert params["mixtures"] == ["17% ambiguous + 10% easy"]
    assert study.load_preset("sentiment")["model"] == "minilm"


def test_unknown_preset_names_the_choices():
    with pytest.raises(
        ValueError,
        match=r"'preset' parameter of load_preset must be one of \['dialogue', 'digits', "
        r"'sentiment'\]. "
        r"Got 'digit' instead. Did you mean 'digits'\? Or pass a YAML file with --config",
    ):
        study.load_preset("digit")


def test_config_files_start_from_a_preset_and_overrides_win(tmp_path):
    config = tmp_path / "study.yaml"
    config.write_text("preset: digits\nepochs: 7\nlr: 2e-3\nseeds: [4]\n")
    params = study.resolve_params(config=config, overrides={"epochs": 9})
    assert (params["epochs"], params["lr"], params["seeds"], params["model"]) == (
        9,
        0.002,
        [4],
        "mlp",
    )
    assert params["curve_fractions"] == study.load_preset("digits")["curve_fractions"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("epochs: [1\n", r"is not valid YAML"),
        ("- 1\n- 2\n", r"must hold a mapping of parameter names to values"),
        (
            "epochs: 3\nepoch: 3\n",
            r"the config file .*bad.yaml sets 'epoch', which no notebook of the study takes. "
            r"Did you mean 'epochs'",
        ),
        ("run_dir: x\n", r"'run_dir' parameter is set by --out"),
        ("epochs: 1\n", r"'epochs' parameter of the config file .*bad.yaml must be an int >= 2"),
        ("preset: digit\n", r"'preset' parameter of the config file .*bad.yaml must be one of"),
    ],
)
def test_bad_config_files_fail_before_anything_runs(tmp_path, text, match):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    with pytest.raises(ValueError, match=match):
        study.resolve_params(config=config)


def test_each_source_of_a_bad_value_is_named():
    with pytest.raises(ValueError, match=r"^The 'epochs' parameter of cartokit run must be"):
        study.resolve_params(preset="digits", overrides={"epochs": 1}, caller="cartokit run")
    with pytest.raises(ValueError, match=r"^cartokit run sets 'folds', which no notebook of the"):
        study.resolve_params(overrides={"folds": 3}, caller="cartokit run")  # 05's, not a study's
    # a rule between the preset's dataset and an override's model: the merged set's caller
    with pytest.raises(ValueError, match=r"of cartokit run must be 'minilm' for the text dataset"):
        study.resolve_params(preset="sentiment", overrides={"model": "mlp"}, caller="cartokit run")


def test_missing_config_file():
    with pytest.raises(FileNotFoundError, match=r"No YAML file at"):
        study.load_config("no/such/file.yaml")


# ------------------------------------------------------------------------------ notebooks


def test_parameters_cell_must_hold_literals(tmp_path):
    cell = {
        "cell_type": "code",
        "metadata": {"tags": ["parameters"]},
        "source": ["x = 1  # ok\n", "y = f(2)\n"],
    }
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"cells": [cell]}))
    with pytest.raises(ValueError, match=r"line 2 of the parameters cell is not 'name = literal'"):
        study.read_parameters_cell(path)
    path.write_text(json.dumps({"cells": []}))
    with pytest.raises(ValueError, match=r"must have one cell tagged 'parameters'. It has 0"):
        study.read_parameters_cell(path)


def test_find_notebooks_says_how_to_point_at_them(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Pass --notebooks DIR"):
        study.find_notebooks(tmp_path)
    assert list(study.find_notebooks()) == list(NOTEBOOKS)
