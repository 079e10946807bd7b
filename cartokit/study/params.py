"""The parameters of a study: one schema, and where values come from.

A parameter is *declared* in one place only: the ``parameters`` cell of the notebook that takes
it, with its default and a comment (the nanoGPT habit; papermill injects new values there).
This module holds what a value must be, :data:`SCHEMA` (one constraint of
:mod:`cartokit._validation` per parameter name, shared by every notebook that takes the name),
and the rules that tie parameters together. :func:`validate_params` applies both, to:

* the notebooks' own values (notebooks 01-06 call it in their first cells),
* presets (:func:`load_preset`), config files (:func:`load_config`) and ``-p KEY=VALUE``
  overrides (:func:`parse_overrides`), merged over the notebooks' defaults by
  :func:`resolve_params` for ``cartokit run`` and each job of ``cartokit grid``.

Each mistake is one sentence that names the parameter and who took it::

    The 'epochs' parameter of notebook 01_train_and_record must be an int >= 2 (variability
    needs at least 2 checkpoints). Got 1 instead.

``tests/study/test_params.py`` checks that every notebook's parameters cell agrees with the
schema: every declared parameter has a constraint, every default passes it, and every
constraint belongs to a declared parameter. A new notebook parameter needs a line here.
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from cartokit._validation import (
    Boolean,
    Constraint,
    Interval,
    ListOf,
    Optional,
    Options,
    Satisfies,
    Text,
    check_params,
    did_you_mean,
    is_int,
    param_error,
)
from cartokit.data import DATASETS, HUB_DATASETS, dataset_source
from cartokit.data.files import TABLE_SUFFIXES
from cartokit.regions import REGIONS, Thresholds
from cartokit.selection import RANDOM, S2L, SELECTORS, parse_mixture
from cartokit.tracking import TRACKING_BACKENDS
from cartokit.train import MODES

__all__ = [
    "FOLDER_PARAMS",
    "FULL",
    "LIST_PARAMS",
    "NOTEBOOKS",
    "OWN_DATA_PARAMS",
    "PAPER_SUBSETS",
    "PRESETS_DIR",
    "SCHEMA",
    "STUDIES",
    "STUDY_MODELS",
    "SUBSET_SELECTORS",
    "TEXT_DATASETS",
    "find_notebooks",
    "load_config",
    "load_preset",
    "notebook_parameters",
    "parse_overrides",
    "preset_names",
    "read_parameters_cell",
    "read_yaml",
    "resolve_params",
    "study_of",
    "validate_params",
]

#: The notebooks of a study, in the order ``cartokit run`` runs them.
NOTEBOOKS = ("01_train_and_record", "02_map", "03_select", "04_retrain")

#: The studies ``cartokit run`` runs: name -> its notebooks, in order. A preset or config file
#: picks one with a ``study:`` key (default: ``classifier``, notebooks 01-04); the ``dialogue``
#: preset runs ``generative``, notebook 07 (a language model's map and small-to-large selection).
STUDIES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"classifier": NOTEBOOKS, "generative": ("07_generative",)}
)

#: The parameters that name the run folder (01-04 take ``run_dir``, 07 ``out_dir``):
#: ``cartokit run`` sets them from ``--out``.
FOLDER_PARAMS = ("run_dir", "out_dir")

#: The ``model`` parameter of notebooks 01-04: name -> what it trains (see
#: :func:`cartokit.study.model_kind` for the kind of :data:`cartokit.models.MODELS` it builds).
STUDY_MODELS: Mapping[str, str] = MappingProxyType(
    {
        "mlp": "a small multilayer perceptron (images)",
        "cnn": "a small convolutional network (images)",
        "minilm": (
            "all-MiniLM-L6-v2: a trained head on its frozen, cached embeddings, or fine-tuned"
        ),
    }
)

#: The selector name of the whole training set (the paper's "100 % train").
FULL = "full"

#: The seven subsets of the paper's Table 1 (at 33 % each, but the first).
PAPER_SUBSETS = (
    FULL,
    RANDOM,
    "high_confidence",
    "low_variability",
    "high_correctness",
    "low_correctness",
    "ambiguous",
)

#: Every name the ``selectors`` parameter takes (``s2l``: SmallToLarge, from the dynamics).
SUBSET_SELECTORS = (FULL, RANDOM, *SELECTORS, S2L)

#: Registered datasets whose inputs are text (they need ``model="minilm"``, as do
#: ``hf:<name>`` datasets and files read by ``text_column``).
TEXT_DATASETS = frozenset({"sentiment", *HUB_DATASETS})

#: Where the presets live: ``<name>.yaml``, parameter names to values.
PRESETS_DIR = Path(__file__).resolve().parents[1] / "presets"


# ---------------------------------------------------------------------------- the schema


def _explained(constraint: Constraint, why: str) -> Constraint:
    """``constraint``, whose sentence also says why: "an int >= 2 (variability needs ...)"."""
    constraint.description = f"{constraint.description} ({why})"
    return constraint


def _path(value: Any) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError
    text = os.fspath(value)
    if not text:
        raise ValueError
    return text


def _mixture(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError
    parts = parse_mixture(value)  # its ValueError says what is wrong with the text
    valid = (RANDOM, *SELECTORS)
    for part in parts:
        by, _, region = part.partition(" in ")
        by = by.strip()
        if by not in valid:
            raise ValueError(
                f"The part {part!r} of {value!r} names no selector. Selectors: {list(valid)}."
                f"{did_you_mean(by, valid)}"
            )
        if region and region.strip() not in REGIONS:
            raise ValueError(
                f"The part {part!r} of {value!r} names no region. Regions: {list(REGIONS)}."
            )
    return value


def _folds(value: Any) -> int:
    if not is_int(value):
        raise TypeError
    if value < 0 or value == 1:
        raise ValueError
    return int(value)


def _model_kind(value: Any) -> str:
    # the registry's module imports torch: look it up only when a value is checked
    from cartokit.models import MODELS

    kinds = ["auto", *MODELS]
    if not isinstance(value, str):
        raise TypeError
    if value not in kinds:
        raise ValueError(f"Kinds: {kinds}.{did_you_mean(value, kinds)}")
    return value


def _dataset(value: Any) -> str:
    return dataset_source(value)[1]  # its ValueError says what is wrong with the value


_DATASET = (
    f"one of {sorted(DATASETS)}, 'hf:<name>' (a Hugging Face hub dataset), or the path of a "
    ".csv, .tsv, .jsonl or .parquet file or of an image folder"
)


def _named_paths(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError("Write it as {name: path}, e.g. -p 'ood_data={tweets: tweets.csv}'.")
    return {_text_key(k): _path(v) for k, v in value.items()}


def _text_key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(f"Each name must be a non-empty str; got {key!r}.")
    return key


_FRACTION = Interval(float, 0, 1, closed="right")
_MODEL_KIND = Satisfies(_model_kind, "'auto' or a model kind of cartokit.models.MODELS")

#: What each study parameter must be, by name; a name means the same in every notebook.
SCHEMA: Mapping[str, Constraint] = MappingProxyType(
    {
        # where a notebook writes
        "run_dir": Satisfies(_path, "a path"),
        "out_dir": Satisfies(_path, "a path"),
        # 01_train_and_record (data and training are shared with 05 and 06)
        "dataset": Satisfies(_dataset, _DATASET),
        # 01: your own data (a file or image folder) and hf:<name> hub sets
        "text_column": Optional(Text()),
        "feature_columns": ListOf(Text()),
        "label_column": Text(),
        "id_column": Optional(Text()),
        "test_data": Optional(Satisfies(_path, "a path (a split name for hf: datasets)")),
        "test_size": Interval(float, 0, 1, closed="neither"),
        "ood_data": Satisfies(_named_paths, "a mapping of names to paths (or hf: split names)"),
        "model": Options(list(STUDY_MODELS)),
        "freeze_encoder": Boolean(),
        "epochs": _explained(Interval(int, 2, None), "variability needs at least 2 checkpoints"),
        "mode": Options(MODES),
        "seed": Interval(int, 0, None),
        "noise": Interval(float, 0, 1, closed="left"),
        "max_samples": Optional(Interval(int, 10, None)),
        "batch_size": Interval(int, 1, None),
        "lr": Interval(float, 0, None, closed="neither"),
        "tracking": ListOf(Options(list(TRACKING_BACKENDS))),  # where 01 logs the map
        # 02_map: the ranges of cartokit.Thresholds
        "ambiguous_variability": Interval(float, 0, 0.5),
        "easy_confidence": Interval(float, 0, 1),
        "hard_confidence": Interval(float, 0, 1),
        "num_examples": Interval(int, 1, None),
        # 03_select
        "selectors": ListOf(Options(SUBSET_SELECTORS)),
        "fractions": ListOf(_FRACTION),
        "curve_selector": Options([s for s in SUBSET_SELECTORS if s != FULL]),
        "curve_fractions": ListOf(_FRACTION),
        "mixtures": ListOf(Satisfies(_mixture, "a mixture such as '17% ambiguous + 10% easy'")),
        "balanced": Boolean(),
        "selection_seed": Interval(int, 0, None),
        # 04_retrain
        "seeds": ListOf(Interval(int, 0, None), empty=False),
        "retrain_epochs": Optional(Interval(int, 1, None)),
        # 05_mislabels
        "folds": Satisfies(_folds, "0 (no K-fold baseline) or an int >= 2"),
        "review_limit": Interval(int, 1, None),
        "auto_review": Interval(int, 0, None),
        # 06_transfer_and_distill
        "small_model": _MODEL_KIND,
        "large_model": _MODEL_KIND,
        "student_model": _MODEL_KIND,
        "fraction": _FRACTION,
        "temperature": Interval(float, 0, None, closed="neither"),
        "alpha": Interval(float, 0, 1),
        # 09_compression (methods: those of cartokit.compression.METHODS, which imports torch)
        "methods": ListOf(
            Options(["prune", "prune_structured", "quantize_dynamic", "quantize_static"]),
            empty=False,
        ),
        "sparsities": ListOf(Interval(float, 0, 1, closed="neither")),
        "finetune_epochs": Interval(int, 0, None),
        # 07_generative (the sizes: those of cartokit.study.generative.LM_SIZES, which imports
        # torch)
        "max_length": Interval(int, 6, None),
        "vocab_size": Interval(int, 8, None),
        "proxy_size": Options(["tiny", "small", "medium"]),
        "large_size": Options(["tiny", "small", "medium"]),
        "corrupt_fraction": Interval(float, 0, 1, closed="neither"),
        "budget_epochs": Interval(float, 0, None, closed="neither"),
        "n_clusters": Interval(int, 1, None),
        # 08_federated
        "num_clients": Interval(int, 2, None),
        "label_skew": Interval(float, 0, None, closed="neither"),
    }
)

#: Parameters that take a list: a grid passes them whole to each job (they are crossed inside
#: the job's notebooks), and a single value given for one becomes a one-item list.
LIST_PARAMS = frozenset(name for name, c in SCHEMA.items() if isinstance(c, ListOf))


def _as_lists(params: Mapping[str, Any]) -> dict[str, Any]:
    """Arrays and pandas objects given for list parameters, as lists."""
    array_like = (np.ndarray, pd.Index, pd.Series)
    return {
        k: list(v) if k in LIST_PARAMS and isinstance(v, array_like) else v
        for k, v in params.items()
    }


def validate_params(
    *, notebook: str | None = None, caller: str | None = None, **params: Any
) -> dict[str, Any]:
    """Check study parameters against :data:`SCHEMA` and the rules between them; return them
    normalised (ints as ints, a single value of a list parameter as a one-item list).

    Give any parameters of notebooks 01-06, by name. Errors name the caller: ``notebook``
    (e.g. ``"05_mislabels"``: "... of notebook 05_mislabels ...") or ``caller`` (e.g.
    ``"cartokit run"``), else ``validate_params``. Each notebook calls it on its own values in
    its first cells::

        study.validate_params(notebook="05_mislabels", dataset=dataset, folds=folds, ...)

    Raises
    ------
    ValueError
        An unknown parameter name, a value out of range or not among the choices (an unknown
        dataset, model or selector, a fraction of 0, epochs < 2), a text dataset with an image
        model (or the reverse), ``hard_confidence > easy_confidence``, or no subset to select.
    TypeError
        A value of the wrong type (e.g. ``epochs=2.5``).

    Examples
    --------
    >>> validate_params(epochs=5, fractions=0.1)
    {'epochs': 5, 'fractions': [0.1]}
    >>> validate_params(notebook="01_train_and_record", dataset="digts")
    Traceback (most recent call last):
    ...
    ValueError: The 'dataset' parameter of notebook 01_train_and_record must be one of [...], 'hf:<name>' (a Hugging Face hub dataset), or the path of a .csv, .tsv, .jsonl or .parquet file or of an image folder. Got 'digts' instead. Did you mean 'digits'?
    """  # noqa: E501
    who = f"notebook {notebook}" if notebook is not None else caller or "validate_params"
    out = check_params(_as_lists(params), SCHEMA, caller=who)
    _check_rules(out, who)
    _resolve_data_paths(out, who)
    return out


def _check_rules(params: Mapping[str, Any], caller: str) -> None:
    """The rules between parameters, for those among ``params``."""
    kind = _data_kind(params)
    model = params.get("model")
    if kind is not None and model is not None and model not in _MODELS_OF[kind[0]]:
        raise param_error("model", caller, f"{_MODELS_OF[kind[0]]} for {kind[1]}", model)
    if {"easy_confidence", "hard_confidence"} <= set(params):
        try:  # Thresholds owns the rule between the thresholds
            Thresholds(
                params.get("ambiguous_variability", Thresholds.ambiguous_variability),
                params["easy_confidence"],
                params["hard_confidence"],
            )
        except ValueError as err:
            raise ValueError(f"{caller}: {err}") from None
    if {"selectors", "curve_fractions", "mixtures"} <= set(params) and not (
        params["selectors"] or params["curve_fractions"] or params["mixtures"]
    ):
        raise ValueError(
            f"The 'selectors', 'curve_fractions' and 'mixtures' parameters of {caller} are all "
            "empty, so there is no subset to select. Give at least one selector, e.g. "
            "['ambiguous']."
        )
    pruning = [m for m in params.get("methods", []) if m.startswith("prune")]
    if "sparsities" in params and pruning and not params["sparsities"]:
        raise ValueError(
            f"The 'sparsities' parameter of {caller} is empty, but the methods {pruning} need "
            "a share to prune. Give at least one, e.g. [0.5]."
        )
    needs_fraction = [s for s in params.get("selectors", []) if s != FULL]
    if "fractions" in params and needs_fraction and not params["fractions"]:
        raise ValueError(
            f"The 'fractions' parameter of {caller} is empty, but the selectors {needs_fraction} "
            "need a fraction each. Give at least one, e.g. [0.33]."
        )


#: The parameters of notebook 01 that read your own data (a file or image folder) or an
#: ``hf:<name>`` hub set; a registered dataset ignores them (presets leave them out).
OWN_DATA_PARAMS = (
    "text_column",
    "feature_columns",
    "label_column",
    "id_column",
    "test_data",
    "test_size",
    "ood_data",
)

#: The study's models for each kind of data, as the sentence names them.
_MODELS_OF = {"text": "'minilm'", "image": "one of ['mlp', 'cnn']", "tabular": "'mlp'"}


def _data_kind(params: Mapping[str, Any]) -> tuple[str, str] | None:
    """The kind of data the dataset holds ("text", "image" or "tabular"), and how a sentence
    names the dataset; None when the parameters do not tell."""
    dataset = params.get("dataset")
    if dataset is None:
        return None
    if dataset in DATASETS:
        kind = "text" if dataset in TEXT_DATASETS else "image"
        return kind, f"the {kind} dataset {dataset!r}"
    if dataset.startswith("hf:"):
        return "text", f"the hub dataset {dataset!r}"
    if Path(dataset).is_dir():
        return "image", f"the image folder {dataset}"
    if "feature_columns" not in params:
        return None
    if params["feature_columns"]:
        return "tabular", f"the feature columns of {dataset}"
    return "text", f"the texts of {dataset} (give feature_columns for numeric features)"


def _resolve_data_paths(params: dict[str, Any], caller: str) -> None:
    """``test_data`` and ``ood_data`` of a file or image-folder dataset as absolute paths that
    exist and match it (a table file, or a folder); refused for a registered dataset."""
    dataset = params.get("dataset")
    given = {k: params[k] for k in ("test_data", "ood_data") if params.get(k)}
    if dataset is None or dataset.startswith("hf:") or not given:
        return
    if dataset in DATASETS:
        raise param_error(
            next(iter(given)),
            caller,
            "None for the registered dataset "
            f"{dataset!r}, which has its own splits (test_data and ood_data go with your own "
            "files or hf: datasets)",
            next(iter(given.values())),
        )
    folder = Path(dataset).is_dir()
    wanted = "an image folder" if folder else f"a {', '.join(TABLE_SUFFIXES)} file"

    def resolve(name: str, value: str) -> str:
        path = Path(value).expanduser().resolve()
        ok = path.is_dir() if folder else path.is_file() and path.suffix.lower() in TABLE_SUFFIXES
        if not ok:
            why = "nothing is there" if not path.exists() else f"{path} is not one"
            raise param_error(name, caller, f"{wanted}, like the dataset", value, hint=f" ({why})")
        return str(path)

    if "test_data" in given:
        params["test_data"] = resolve("test_data", given["test_data"])
    if "ood_data" in given:
        params["ood_data"] = {k: resolve("ood_data", v) for k, v in given["ood_data"].items()}


# ---------------------------------------------------------------------------- presets, configs


def _yaml() -> Any:
    try:
        import yaml
    except ImportError:
        raise ImportError(
            "Presets and config files are YAML: pip install pyyaml (or 'cartokit[notebooks]')."
        ) from None
    return yaml


def _coerce(value: Any) -> Any:
    """Numbers YAML 1.1 reads as text (``2e-5``) become floats, in lists too."""
    if isinstance(value, list):
        return [_coerce(v) for v in value]
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
        try:
            number = float(value)
        except ValueError:
            return value
        return number if np.isfinite(number) else value
    return value


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A YAML file of parameter names to values (a preset, a config or a grid file).

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If it is not YAML, or not a mapping.
    """
    yaml = _yaml()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No YAML file at {path}.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {' '.join(str(err).split())}") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ValueError(
            f"{path} must hold a mapping of parameter names to values, such as 'epochs: 10'. "
            f"Got a {type(data).__name__}."
        )
    return {str(k): _coerce(v) for k, v in data.items()}


def preset_names() -> list[str]:
    """Names of the presets shipped in ``cartokit/presets``.

    >>> preset_names()
    ['dialogue', 'digits', 'sentiment']
    """
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def _read_preset(name: str, caller: str) -> dict[str, Any]:
    """A preset's file as it is, its ``study`` key included."""
    names = preset_names()
    if not isinstance(name, str) or name not in names:
        hint = f"{did_you_mean(name, names)} Or pass a YAML file with --config."
        raise param_error("preset", caller, f"one of {names}", name, hint=hint)
    return read_yaml(PRESETS_DIR / f"{name}.yaml")


def _pop_study(data: dict[str, Any], source: str) -> str | None:
    """Take the ``study`` key out of a preset's or config file's values; None if it has none."""
    name = data.pop("study", None)
    if name is not None and name not in STUDIES:
        raise ValueError(
            f"The 'study' key of {source} must be one of {list(STUDIES)}. Got {name!r} instead."
            f"{did_you_mean(str(name), list(STUDIES))}"
        )
    return name


def load_preset(name: str, *, caller: str = "load_preset") -> dict[str, Any]:
    """The parameters of a preset, e.g. ``load_preset("digits")`` (without its ``study`` key:
    :func:`study_of`).

    Raises
    ------
    ValueError
        If there is no preset of that name; the message lists the presets.
    """
    data = _read_preset(name, caller)
    _pop_study(data, f"the preset {name!r}")
    return data


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parameters in a YAML config file; a ``preset: NAME`` key starts from that preset (a
    ``study`` key is :func:`study_of`'s)."""
    data = read_yaml(path)
    _pop_study(data, f"the config file {path}")
    base = data.pop("preset", None)
    preset = load_preset(base, caller=f"the config file {path}") if base is not None else {}
    return {**preset, **data}


def study_of(
    *,
    preset: str | None = None,
    config: str | os.PathLike[str] | None = None,
    caller: str = "study_of",
) -> str:
    """The study (a name of :data:`STUDIES`) that a preset or config file runs: its ``study:``
    key, else that of a config file's base preset, else ``classifier`` (notebooks 01-04).

    >>> study_of(preset="dialogue"), study_of(preset="digits"), study_of()
    ('generative', 'classifier', 'classifier')
    """
    if config is not None:
        data = read_yaml(config)
        named = _pop_study(data, f"the config file {config}")
        if named is not None:
            return named
        preset, caller = data.get("preset"), f"the config file {config}"
    if preset is None:
        return "classifier"
    return _pop_study(_read_preset(preset, caller), f"the preset {preset!r}") or "classifier"


def parse_overrides(items: Sequence[str] | None) -> dict[str, Any]:
    """``["epochs=5", "fractions=[0.1, 0.2]"]`` -> ``{"epochs": 5, "fractions": [0.1, 0.2]}``.

    Values are read as YAML: numbers, ``true``/``false``, ``null``, ``[lists]`` or text.

    >>> parse_overrides(["epochs=5", "lr=2e-5", "mixtures=[17% ambiguous + 10% easy]"])
    {'epochs': 5, 'lr': 2e-05, 'mixtures': ['17% ambiguous + 10% easy']}
    """
    yaml = _yaml()
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"-p takes KEY=VALUE, such as -p epochs=5. Got {item!r} instead.")
        try:
            parsed = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            parsed = value
        out[key.strip()] = _coerce(parsed)
    return out


# ---------------------------------------------------------------------------- notebooks


def find_notebooks(
    notebooks_dir: str | os.PathLike[str] | None = None, names: Sequence[str] = NOTEBOOKS
) -> dict[str, Path]:
    """Paths of the notebooks ``names`` (default: 01-04, a study's; :data:`STUDIES`): in
    ``notebooks_dir``, ``$CARTOKIT_NOTEBOOKS``, the checkout's ``notebooks/``, or the installed
    package's ``cartokit/notebooks/`` (a wheel carries them: setup.py copies them in at build
    time).

    Raises
    ------
    FileNotFoundError
        If a notebook is missing.
    """
    if notebooks_dir is not None:
        candidates = [Path(notebooks_dir)]
    elif os.environ.get("CARTOKIT_NOTEBOOKS"):
        candidates = [Path(os.environ["CARTOKIT_NOTEBOOKS"])]
    else:
        package = Path(__file__).resolve().parents[1]
        candidates = [package.parent / "notebooks", package / "notebooks"]
    for folder in candidates:
        paths = {name: folder / f"{name}.ipynb" for name in names}
        if all(p.is_file() for p in paths.values()):
            return paths
    raise FileNotFoundError(
        f"Could not find the notebooks {[f'{n}.ipynb' for n in names]} in "
        f"{[str(c) for c in candidates]}. Pass --notebooks DIR (the notebooks/ folder of a "
        "cartokit checkout) or set CARTOKIT_NOTEBOOKS."
    )


def read_parameters_cell(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The defaults in a notebook's cell tagged ``parameters``, which holds only literals.

    Raises
    ------
    ValueError
        If the notebook has no such cell, several, or a line that is not ``name = literal``.
    """
    path = Path(path)
    cells = [
        c
        for c in json.loads(path.read_text(encoding="utf-8"))["cells"]
        if "parameters" in c.get("metadata", {}).get("tags", [])
    ]
    if len(cells) != 1:
        raise ValueError(f"{path} must have one cell tagged 'parameters'. It has {len(cells)}.")
    out: dict[str, Any] = {}
    for node in ast.parse("".join(cells[0]["source"])).body:
        target = (
            node.target
            if isinstance(node, ast.AnnAssign) and node.value is not None
            else node.targets[0]
            if isinstance(node, ast.Assign) and len(node.targets) == 1
            else None
        )
        try:
            if not isinstance(target, ast.Name):
                raise ValueError
            out[target.id] = ast.literal_eval(node.value)  # type: ignore[union-attr]
        except ValueError:
            raise ValueError(
                f"{path}: line {node.lineno} of the parameters cell is not 'name = literal'."
            ) from None
    return out


def notebook_parameters(
    notebooks_dir: str | os.PathLike[str] | None = None, names: Sequence[str] = NOTEBOOKS
) -> dict[str, dict[str, Any]]:
    """Each notebook's parameters and their defaults: ``{"01_train_and_record": {...}, ...}``
    (the notebooks ``names``: default 01-04)."""
    paths = find_notebooks(notebooks_dir, names)
    return {name: read_parameters_cell(p) for name, p in paths.items()}


def resolve_params(
    *,
    preset: str | None = None,
    config: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    notebooks_dir: str | os.PathLike[str] | None = None,
    caller: str = "resolve_params",
) -> dict[str, Any]:
    """The parameters of a study: the defaults of its notebooks (those of the preset's or config
    file's study, :func:`study_of`: 01-04 unless it says otherwise), then a preset or a config
    file, then ``overrides``; validated.

    Each source is checked on its own first, so that an error names it (the preset, the config
    file, or ``caller`` for ``overrides``), then all of them together (the rules between
    parameters, e.g. a text dataset needs ``model="minilm"``). The run folder's parameters
    (:data:`FOLDER_PARAMS`) are left out: :func:`cartokit.study.run_study` sets them.
    """
    names = STUDIES[study_of(preset=preset, config=config, caller=caller)]
    defaults: dict[str, Any] = {}
    for declared in notebook_parameters(notebooks_dir, names).values():
        defaults.update(declared)
    for folder in FOLDER_PARAMS:
        defaults.pop(folder, None)
    sources: list[tuple[str, Mapping[str, Any]]] = []
    if preset is not None:
        sources.append((f"the preset {preset!r}", load_preset(preset, caller=caller)))
    if config is not None:
        sources.append((f"the config file {config}", load_config(config)))
    sources.append((caller, overrides or {}))
    given: dict[str, Any] = {}
    for source, values in sources:
        for folder in FOLDER_PARAMS:
            if folder in values:
                raise ValueError(
                    f"The {folder!r} parameter is set by --out (the run folder); leave it out "
                    f"of {source}: presets, config files and -p do not take it."
                )
        unknown = [k for k in values if k not in defaults]
        if unknown:
            raise ValueError(
                f"{source} sets {unknown[0]!r}, which no notebook of the study takes."
                f"{did_you_mean(unknown[0], list(defaults))} The notebooks take: "
                f"{sorted(defaults)}."
            )
        given.update(validate_params(caller=source, **values))
    return validate_params(caller=caller, **{**defaults, **given})
