"""Dataset Cartography studies end to end: the steps behind notebooks 01-04 and ``cartokit run``.

A *study* follows Swayamdipta et al. (2020), "Dataset Cartography: Mapping and Diagnosing
Datasets with Training Dynamics", EMNLP: train a model while recording its training dynamics
(notebook 01), map the training set (02), select subsets by the map (03), and retrain fresh
models on each subset to compare them in and out of distribution, as in the paper's Table 1
(04). The notebooks stay thin: each step is one or two calls into this module, so the same code
runs in Jupyter, under papermill and in the tests.

* **Parameters.** :func:`validate_params` checks any of them with one sentence that names the
  parameter and its valid choices; :func:`load_preset` and :func:`load_config` read YAML
  presets (``digits``, ``sentiment``) and config files; :func:`resolve_params` merges them.
* **Steps.** :func:`load_data`, :func:`model_data`, :func:`build_model`, :func:`save_run`
  (01); :func:`load_run`, :func:`add_regions`, :func:`region_table`, :func:`show_examples`,
  :func:`human_agreement` (02); :func:`build_subsets`, :func:`save_subsets` (03);
  :func:`retrain`, :func:`results_table`, :func:`plot_results`, :func:`plot_fraction_curve`,
  :func:`write_report` (04).
* **Running.** :func:`run_study` executes the four notebooks with papermill into a run folder,
  atomically: the notebooks write into a temporary folder that replaces the run folder only
  when all four succeed. :func:`run_grid` runs a parameter grid as a queue of such studies and
  collects one results table.

The run folder
--------------
``params.json``, ``dynamics.npz``, ``metrics.csv``, ``history.csv``, ``model.pt`` (01);
``thresholds.json``, ``figures/data_map.png``, ``human_*.csv`` (02; ``metrics.csv`` gains a
``region`` column); ``subsets.csv`` (03); ``results.csv``, ``results.md``, ``figures/*.png``,
``report.md`` (04); ``notebooks/*.ipynb`` (the executed copies) and ``run.json`` (parameters
and timings, and the marker that lets a later run replace the folder), from ``cartokit run``.
"""

from __future__ import annotations

import ast
import difflib
import glob
import hashlib
import inspect
import json
import numbers
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cartokit._files import atomic_write, check_output_folder, marker_kind, write_marker
from cartokit.data import DATASETS, HUB_DATASETS, DataBundle, Split, load_dataset
from cartokit.data import subsample as _subsample
from cartokit.noise import inject_noise
from cartokit.regions import REGIONS, Thresholds, assign_regions, region_counts
from cartokit.selection import RANDOM, SELECTORS, parse_mixture, select, select_mixture

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from torch import nn

    from cartokit.dynamics import TrainingDynamics
    from cartokit.train import FitResult

__all__ = [
    "ABOVE_CHANCE_MARGIN",
    "FULL",
    "GITHUB_REPO",
    "INSTALL_SPEC",
    "MODELS",
    "MODES",
    "NOTEBOOKS",
    "PAPER_SUBSETS",
    "Run",
    "RunError",
    "SUBSET_SELECTORS",
    "Terminated",
    "Subset",
    "TEXT_DATASETS",
    "above_chance",
    "add_regions",
    "build_model",
    "build_subsets",
    "colab_badge",
    "colab_url",
    "default_kernel",
    "describe_bundle",
    "enable_colab_widgets",
    "expand_grid",
    "find_notebooks",
    "human_agreement",
    "load_config",
    "load_data",
    "load_preset",
    "load_run",
    "load_subsets",
    "metrics_table",
    "model_data",
    "notebook_parameters",
    "parse_overrides",
    "plot_fraction_curve",
    "plot_human_scores",
    "plot_results",
    "preset_names",
    "read_metrics",
    "read_parameters_cell",
    "region_table",
    "resolve_params",
    "results_markdown",
    "results_table",
    "retrain",
    "rotate_images",
    "run_grid",
    "run_study",
    "save_results",
    "save_run",
    "save_subsets",
    "show_examples",
    "small_model_threads",
    "subsets_summary",
    "top_ids",
    "validate_params",
    "write_report",
]

#: GitHub ``owner/name`` of the public repository. The notebooks' "Open in Colab" badges and
#: install cells point at it (``tests/test_notebooks.py`` checks that they agree): set it when
#: the repository is published, and update the notebooks' first cells to match.
GITHUB_REPO = "cartokit/cartokit"

#: What the notebooks' install cell installs where cartokit is missing (Colab).
INSTALL_SPEC = f"cartokit[hf,widgets,notebooks] @ git+https://github.com/{GITHUB_REPO}"

#: The notebooks of a study, in the order they run.
NOTEBOOKS = ("01_train_and_record", "02_map", "03_select", "04_retrain")

#: Model names of the ``model`` parameter.
MODELS = {
    "mlp": "a small multilayer perceptron (images)",
    "cnn": "a small convolutional network (images)",
    "minilm": "all-MiniLM-L6-v2: a trained head on its frozen, cached embeddings, or fine-tuned",
}

#: Recording modes of :func:`cartokit.train.fit` (repeated here so that validating parameters
#: does not import torch).
MODES = ("train_pass", "eval_pass")

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

#: Every name the ``selectors`` parameter takes.
SUBSET_SELECTORS = (FULL, RANDOM, *SELECTORS)

#: Datasets whose inputs are text (they need ``model="minilm"``).
TEXT_DATASETS = frozenset({"sentiment", *HUB_DATASETS})

PRESETS_DIR = Path(__file__).resolve().parent / "presets"

#: Accuracy on 100 % of the data must beat chance by this share of the way from chance to
#: perfect (digits: 0.4; two classes: 0.67) for :func:`above_chance`.
ABOVE_CHANCE_MARGIN = 1 / 3


def _show(value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _did_you_mean(value: Any, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(value), list(choices), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


# ============================================================================ Colab and Binder


def colab_url(notebook: str) -> str:
    """The "Open in Colab" address of a notebook of this repository (see :data:`GITHUB_REPO`).

    >>> colab_url("02_map")
    'https://colab.research.google.com/github/cartokit/cartokit/blob/main/notebooks/02_map.ipynb'
    """
    return (
        f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/main/notebooks/"
        f"{notebook}.ipynb"
    )


def colab_badge(notebook: str) -> str:
    """The markdown of a notebook's "Open in Colab" badge."""
    return (
        "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"({colab_url(notebook)})"
    )


def enable_colab_widgets() -> bool:
    """On Google Colab, turn on the custom widget manager that bqplot needs; elsewhere, nothing.

    Colab then loads the widgets' JavaScript from a public CDN. Returns whether it ran.
    """
    if "google.colab" not in sys.modules:
        return False
    from google.colab import output  # type: ignore[import-not-found]

    output.enable_custom_widget_manager()
    return True


# ============================================================================ parameters


def _fail(name: str, expected: str, value: Any, *, error: type[Exception] = ValueError) -> None:
    got = _show(value)
    if error is TypeError:
        got += f" of type {type(value).__name__}"
    raise error(f"The {name!r} parameter must be {expected}. Got {got} instead.")


def _choice(choices: Sequence[str]) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise ValueError(
                f"The {name!r} parameter must be one of {list(choices)}. Got {_show(value)} "
                f"instead.{_did_you_mean(value, choices)}"
            )
        return value

    return check


def _integer(minimum: int, why: str = "", *, optional: bool = False) -> Callable[[str, Any], Any]:
    expected = f"an int >= {minimum}{' or None' if optional else ''}{why}"

    def check(name: str, value: Any) -> int | None:
        if value is None and optional:
            return None
        if not _is_int(value):
            _fail(name, expected, value, error=TypeError)
        if value < minimum:
            _fail(name, expected, value)
        return int(value)

    return check


def _real(
    low: float, high: float, *, low_open: bool, high_open: bool
) -> Callable[[str, Any], float]:
    expected = (
        f"a float in the range {'(' if low_open else '['}{low:g}, "
        f"{'inf' if high == np.inf else f'{high:g}'}{')' if high_open else ']'}"
    )

    def check(name: str, value: Any) -> float:
        if not _is_real(value):
            _fail(name, expected, value, error=TypeError)
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        if not (above and below):  # also rejects NaN
            _fail(name, expected, value)
        return float(value)

    return check


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        _fail(name, "True or False", value, error=TypeError)
    return bool(value)


def _text(name: str, value: Any) -> str:
    if not isinstance(value, (str, os.PathLike)):
        _fail(name, "a str", value, error=TypeError)
    return os.fspath(value)


def _as_list(value: Any) -> list[Any]:
    """A list parameter given as one value (``-p fractions=0.1``) becomes a list of it."""
    if isinstance(value, (list, tuple, np.ndarray, pd.Index, pd.Series)):
        return list(value)
    return [value]


def _list_of(item: Callable[[str, Any], Any], *, empty: bool = True) -> Callable[[str, Any], list]:
    def check(name: str, value: Any) -> list[Any]:
        values = _as_list(value)
        if not values and not empty:
            raise ValueError(f"The {name!r} parameter must hold at least one value. Got [].")
        out = []
        for v in values:
            try:
                out.append(item(name, v))
            except (TypeError, ValueError) as err:
                message = str(err).replace(
                    " parameter must be ", " parameter must be a list, each "
                )
                raise type(err)(message) from None
        return out

    return check


def _fraction(name: str, value: Any) -> float:
    return _real(0.0, 1.0, low_open=True, high_open=False)(name, value)


def _mixture(name: str, value: Any) -> str:
    if not isinstance(value, str):
        _fail(name, "a list of mixtures such as '17% ambiguous + 10% easy'", value, error=TypeError)
    try:
        parts = parse_mixture(value)
    except ValueError as err:
        raise ValueError(f"The {name!r} parameter holds a bad mixture: {err}") from None
    valid = (RANDOM, *SELECTORS)
    for part in parts:
        by, _, region = part.partition(" in ")
        by = by.strip()
        if by not in valid:
            raise ValueError(
                f"The {name!r} parameter holds the mixture {value!r}, whose part {part!r} names "
                f"no selector. Selectors: {list(valid)}.{_did_you_mean(by, valid)}"
            )
        if region and region.strip() not in REGIONS:
            raise ValueError(
                f"The {name!r} parameter holds the mixture {value!r}, whose part {part!r} names "
                f"no region. Regions: {list(REGIONS)}."
            )
    return value


_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "run_dir": _text,
    # 01_train_and_record
    "dataset": _choice(sorted(DATASETS)),
    "model": _choice(list(MODELS)),
    "freeze_encoder": _flag,
    "epochs": _integer(2, " (variability needs at least 2 checkpoints)"),
    "mode": _choice(MODES),
    "seed": _integer(0),
    "noise": _real(0.0, 1.0, low_open=False, high_open=True),
    "max_samples": _integer(10, optional=True),
    "batch_size": _integer(1),
    "lr": _real(0.0, np.inf, low_open=True, high_open=True),
    # 02_map
    "ambiguous_variability": _real(0.0, 0.5, low_open=False, high_open=False),
    "easy_confidence": _real(0.0, 1.0, low_open=False, high_open=False),
    "hard_confidence": _real(0.0, 1.0, low_open=False, high_open=False),
    "num_examples": _integer(1),
    # 03_select
    "selectors": _list_of(_choice(SUBSET_SELECTORS)),
    "fractions": _list_of(_fraction),
    "curve_selector": _choice([s for s in SUBSET_SELECTORS if s != FULL]),
    "curve_fractions": _list_of(_fraction),
    "mixtures": _list_of(_mixture),
    "balanced": _flag,
    "selection_seed": _integer(0),
    # 04_retrain
    "seeds": _list_of(_integer(0), empty=False),
    "retrain_epochs": _integer(1, optional=True),
}


def validate_params(**params: Any) -> dict[str, Any]:
    """Check study parameters; return them normalised (a single value of a list becomes a list).

    Call it with any subset of the parameters of notebooks 01-04, by name. Each mistake raises
    one sentence that names the parameter, what it takes and what it got.

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
    >>> validate_params(dataset="digts")
    Traceback (most recent call last):
    ...
    ValueError: The 'dataset' parameter must be one of [...]. Got 'digts' instead. Did you mean 'digits'?
    """  # noqa: E501
    unknown = [name for name in params if name not in _CHECKS]
    if unknown:
        raise ValueError(
            f"Unknown parameter {unknown[0]!r}.{_did_you_mean(unknown[0], list(_CHECKS))} "
            f"Parameters: {list(_CHECKS)}."
        )
    out = {name: _CHECKS[name](name, value) for name, value in params.items()}
    dataset, model = out.get("dataset"), out.get("model")
    if dataset is not None and model is not None:
        if dataset in TEXT_DATASETS and model != "minilm":
            _fail("model", f"'minilm' for the text dataset {dataset!r}", model)
        if dataset not in TEXT_DATASETS and model == "minilm":
            _fail("model", f"one of ['mlp', 'cnn'] for the image dataset {dataset!r}", model)
    if {"easy_confidence", "hard_confidence"} <= set(out):
        Thresholds(
            out.get("ambiguous_variability", 0.2), out["easy_confidence"], out["hard_confidence"]
        )
    if {"selectors", "curve_fractions", "mixtures"} <= set(out) and not (
        out["selectors"] or out["curve_fractions"] or out["mixtures"]
    ):
        raise ValueError(
            "The 'selectors', 'curve_fractions' and 'mixtures' parameters are all empty, so "
            "there is no subset to select. Give at least one selector, e.g. ['ambiguous']."
        )
    needs_fraction = [s for s in out.get("selectors", []) if s != FULL]
    if "fractions" in out and needs_fraction and not out["fractions"]:
        raise ValueError(
            f"The 'fractions' parameter is empty, but the selectors {needs_fraction} need a "
            "fraction each. Give at least one, e.g. [0.33]."
        )
    return out


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


def _read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
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
    ['digits', 'sentiment']
    """
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_preset(name: str) -> dict[str, Any]:
    """The parameters of a preset, e.g. ``load_preset("digits")``.

    Raises
    ------
    ValueError
        If there is no preset of that name; the message lists the presets.
    """
    names = preset_names()
    if not isinstance(name, str) or name not in names:
        raise ValueError(
            f"The 'preset' parameter must be one of {names}. Got {_show(name)} instead."
            f"{_did_you_mean(name, names)} Or pass a YAML file with --config."
        )
    return _read_yaml(PRESETS_DIR / f"{name}.yaml")


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parameters in a YAML config file; a ``preset: NAME`` key starts from that preset."""
    data = _read_yaml(path)
    base = data.pop("preset", None)
    return {**(load_preset(base) if base is not None else {}), **data}


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


def find_notebooks(notebooks_dir: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Paths of notebooks 01-04: in ``notebooks_dir``, ``$CARTOKIT_NOTEBOOKS``, or the checkout.

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
        here = Path(__file__).resolve().parent
        candidates = [here.parent / "notebooks", here / "notebooks"]
    for folder in candidates:
        paths = {name: folder / f"{name}.ipynb" for name in NOTEBOOKS}
        if all(p.is_file() for p in paths.values()):
            return paths
    raise FileNotFoundError(
        f"Could not find the notebooks {[f'{n}.ipynb' for n in NOTEBOOKS]} in "
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
    source = "".join(cells[0]["source"])
    out: dict[str, Any] = {}
    for node in ast.parse(source).body:
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
    notebooks_dir: str | os.PathLike[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Each notebook's parameters and their defaults: ``{"01_train_and_record": {...}, ...}``."""
    return {name: read_parameters_cell(p) for name, p in find_notebooks(notebooks_dir).items()}


def resolve_params(
    *,
    preset: str | None = None,
    config: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    notebooks_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """The parameters of a study: the notebooks' defaults, then a preset or a config file, then
    ``overrides``; validated.

    ``run_dir`` is left out: :func:`run_study` sets it.
    """
    defaults: dict[str, Any] = {}
    for declared in notebook_parameters(notebooks_dir).values():
        defaults.update(declared)
    defaults.pop("run_dir", None)
    given: dict[str, Any] = {}
    if preset is not None:
        given.update(load_preset(preset))
    if config is not None:
        given.update(load_config(config))
    given.update(overrides or {})
    if "run_dir" in given:
        raise ValueError(
            "The 'run_dir' parameter is set by --out (the run folder); leave it out of presets, "
            "config files and -p."
        )
    unknown = [k for k in given if k not in defaults]
    if unknown:
        raise ValueError(
            f"Unknown parameter {unknown[0]!r}.{_did_you_mean(unknown[0], list(defaults))} The "
            f"notebooks take: {sorted(defaults)}."
        )
    return validate_params(**{**defaults, **given})


# ============================================================================ 01: data and models


def rotate_images(
    split: Split, *, degrees: tuple[float, float] = (10.0, 20.0), seed: int = 0
) -> Split:
    """An out-of-distribution copy of an image split: each image rotated by a random angle
    between ``degrees[0]`` and ``degrees[1]``, clockwise or not (seeded), as in rotated-MNIST
    benchmarks of distribution shift.

    For image datasets without a natural out-of-distribution set, such as digits: the MLP of
    the ``digits`` preset drops from about 97 % to about 60 % accuracy on it.

    >>> from cartokit.data import load_digits
    >>> rotated = rotate_images(load_digits().test)
    >>> rotated.name, rotated.show(0).shape
    ('digits/rotated', (8, 8))
    """
    from scipy.ndimage import rotate

    if split.kind != "image":
        raise TypeError(f"rotate_images: {split.name!r} holds {split.kind} data, not images.")
    inputs = np.asarray(split.inputs, dtype=np.float32)
    shape = split.image_shape or inputs.shape[1:]
    images = inputs.reshape(len(inputs), *shape)
    rng = np.random.default_rng(seed)
    angles = rng.uniform(*degrees, size=len(images)) * rng.choice([-1.0, 1.0], size=len(images))
    low, high = float(inputs.min()), float(inputs.max())
    rotated = np.stack(
        [
            rotate(image, angle, axes=(-1, -2), reshape=False, order=1)
            for image, angle in zip(images, angles)
        ]
    )
    return Split(
        name=f"{split.name.split('/')[0]}/rotated",
        inputs=np.clip(rotated, low, high).reshape(inputs.shape).astype(np.float32),
        labels=split.labels,
        ids=split.ids,
        class_names=list(split.class_names),
        kind="image",
        frame=split.frame.copy(),
        image_shape=split.image_shape,
    )


def _accepts(function: Callable[..., Any], name: str) -> bool:
    params = inspect.signature(function).parameters
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def load_data(
    dataset: str, *, noise: float = 0.0, max_samples: int | None = None, seed: int = 0
) -> DataBundle:
    """A dataset by name, ready for a study.

    * ``max_samples`` caps each split (stratified, seeded), for CI-sized runs;
    * an image dataset without out-of-distribution splits gets one, ``rotated``
      (:func:`rotate_images` of the test split), so retraining has an OOD column;
    * ``noise`` flips that share of the training labels at random (seeded), so the map has
      mislabelled samples to find; the frame then has ``flipped`` and ``clean_label``.

    >>> bundle = load_data("digits", noise=0.1, max_samples=500)
    >>> len(bundle.train), list(bundle.ood), int(bundle.train.frame["flipped"].sum())
    (500, ['rotated'], 50)
    """
    params = validate_params(dataset=dataset, noise=noise, max_samples=max_samples, seed=seed)
    loader = DATASETS[dataset]
    options: dict[str, Any] = {}
    if _accepts(loader, "seed"):
        options["seed"] = seed
    capped_by_loader = max_samples is not None and _accepts(loader, "max_samples")
    if capped_by_loader:
        options["max_samples"] = max_samples
    bundle = load_dataset(dataset, **options)
    if max_samples is not None and not capped_by_loader:
        cap = params["max_samples"]
        bundle = DataBundle(
            bundle.name,
            train=_subsample(bundle.train, cap, seed=seed),
            test=_subsample(bundle.test, cap, seed=seed),
            ood={k: _subsample(s, cap, seed=seed) for k, s in bundle.ood.items()},
        )
    if not bundle.ood and bundle.train.kind == "image":
        bundle.ood["rotated"] = rotate_images(bundle.test, seed=seed)
    if noise > 0:
        bundle.train = inject_noise(bundle.train, noise, seed=seed)
    return bundle


def describe_bundle(bundle: DataBundle) -> pd.DataFrame:
    """One row per split: its role (train, in-distribution test, out-of-distribution), size,
    classes and kind."""
    rows = []
    for key, split in bundle.splits.items():
        role = {"train": "train", "test": "test (in-distribution)"}.get(key, "out-of-distribution")
        flipped = int(split.frame["flipped"].sum()) if "flipped" in split.frame else 0
        rows.append(
            {
                "split": key,
                "name": split.name,
                "role": role,
                "samples": len(split),
                "classes": split.num_classes,
                "kind": split.kind,
                "flipped labels": flipped,
            }
        )
    return pd.DataFrame(rows).set_index("split")


def _cache_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("CARTOKIT_CACHE", Path.home() / ".cache" / "cartokit"))


def model_data(
    bundle: DataBundle,
    *,
    model: str,
    freeze_encoder: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> DataBundle:
    """The bundle as the model takes it.

    With ``model="minilm"`` and ``freeze_encoder=True``, every text becomes its all-MiniLM-L6-v2
    sentence embedding (mean-pooled, as :class:`~cartokit.TextClassifier` computes it), and the
    model is a linear head on them (:func:`build_model`): the encoder runs once per text, ever,
    since embeddings are cached on disk in ``cache_dir`` (default ``$CARTOKIT_CACHE`` or
    ``~/.cache/cartokit``), keyed by the model and the texts. Splits keep their ids, labels and
    frame. Otherwise the bundle is returned as it is.
    """
    params = validate_params(model=model, freeze_encoder=freeze_encoder)
    if params["model"] != "minilm" or not params["freeze_encoder"]:
        return bundle
    if bundle.train.kind != "text":
        raise TypeError(f"model_data: model='minilm' needs text, but {bundle.name!r} is not text.")
    folder = _cache_dir(cache_dir) / "embeddings"
    encoder: list[Any] = []  # loaded on the first cache miss

    def embed(split: Split) -> Split:
        texts = [str(t) for t in split.inputs]
        key = hashlib.sha256("\x00".join(["minilm-mean-128", *texts]).encode()).hexdigest()[:24]
        path = folder / f"{key}.npy"
        if path.is_file():
            vectors = np.load(path)
        else:
            vectors = _embed_texts(texts, encoder, desc=f"embedding {split.name}", show=progress)
            with atomic_write(path, "wb") as fh:
                np.save(fh, vectors)
        return Split(
            name=split.name,
            inputs=vectors,
            labels=split.labels,
            ids=split.ids,
            class_names=list(split.class_names),
            kind="tabular",
            frame=split.frame.copy(),
        )

    return DataBundle(
        bundle.name,
        train=embed(bundle.train),
        test=embed(bundle.test),
        ood={key: embed(split) for key, split in bundle.ood.items()},
    )


def _embed_texts(texts: list[str], encoder: list[Any], *, desc: str, show: bool) -> np.ndarray:
    from tqdm.auto import tqdm

    from cartokit.models import TextClassifier

    if not encoder:
        encoder.append(TextClassifier(2, freeze_encoder=True))
    model = encoder[0]
    chunk = 256
    parts = []
    for start in tqdm(range(0, len(texts), chunk), desc=desc, disable=not show):
        parts.append(model.embed(texts[start : start + chunk]).cpu().numpy())
        model.clear_cache()  # the disk cache keeps them; memory stays flat
    return np.concatenate(parts).astype(np.float32)


def build_model(
    model: str, split: Split, *, seed: int = 0, freeze_encoder: bool = True
) -> nn.Module:
    """A fresh, seeded model for ``split``.

    ``"mlp"``: :class:`~cartokit.MLP` (one hidden layer of 128); ``"cnn"``:
    :class:`~cartokit.CNN`; ``"minilm"``: on embeddings from :func:`model_data`, a linear head
    (what a frozen encoder trains); on text, :class:`~cartokit.TextClassifier`, fine-tuned
    unless ``freeze_encoder``.
    """
    from cartokit.models import CNN, MLP, TextClassifier

    validate_params(model=model, seed=seed, freeze_encoder=freeze_encoder)
    if model == "mlp":
        return MLP.from_split(split, seed=seed)
    if model == "cnn":
        return CNN.from_split(split, seed=seed)
    if split.kind == "text":
        return TextClassifier.from_split(split, freeze_encoder=freeze_encoder, seed=seed)
    return MLP(int(np.prod(split.inputs.shape[1:])), split.num_classes, hidden=(), seed=seed)


@contextmanager
def small_model_threads(model: str, split: Split) -> Iterator[int]:
    """Train small models on one torch thread: inside the ``with`` block, torch uses one thread
    for ``"mlp"`` and for the linear head of a frozen encoder, and its own setting otherwise.

    Their steps take about a millisecond, too short to share across cores: on 2 busy CPU
    cores, one thread trained the digits MLP about 10 times faster than two. Yields the number
    of threads in use; the previous setting comes back after the block.
    """
    import torch

    before = torch.get_num_threads()
    small = model == "mlp" or (model == "minilm" and split.kind != "text")
    if small:
        torch.set_num_threads(1)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def metrics_table(dynamics: TrainingDynamics, split: Split) -> pd.DataFrame:
    """:func:`~cartokit.compute_metrics`, with the split's numeric and boolean frame columns
    (``flipped``, ``clean_label``, ``human_score``, ...) joined by id."""
    from cartokit.metrics import compute_metrics

    metrics = compute_metrics(dynamics)
    frame = split.frame
    extra = [
        c
        for c in frame.columns
        if c not in metrics.columns
        and (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))
    ]
    return metrics.join(frame[extra]) if extra else metrics


def _write_json(path: Path, data: Any) -> Path:
    with atomic_write(path, "w") as fh:
        json.dump(data, fh, indent=2, default=str)
        fh.write("\n")
    return path


def _read_json(path: Path, default: Any = None) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else default


def save_run(
    run_dir: str | os.PathLike[str],
    result: FitResult,
    bundle: DataBundle,
    params: Mapping[str, Any],
) -> dict[str, Path]:
    """Write notebook 01's outputs to the run folder; return their paths.

    ``params.json`` (``params``), ``dynamics.npz``, ``metrics.csv``
    (:func:`metrics_table`), ``history.csv`` and ``model.pt`` (the state dict and ``params``).
    """
    import torch

    from cartokit.io import write_metrics_csv

    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    paths = {"params": _write_json(run / "params.json", dict(params))}
    dynamics = result.dynamics
    paths["dynamics"] = dynamics.save(run / "dynamics.npz")
    paths["metrics"] = write_metrics_csv(metrics_table(dynamics, bundle.train), run / "metrics.csv")
    with atomic_write(run / "history.csv", "w") as fh:
        result.history.to_csv(fh, index=False)
    paths["history"] = run / "history.csv"
    with atomic_write(run / "model.pt", "wb") as fh:
        torch.save({"state_dict": result.model.state_dict(), "params": dict(params)}, fh)
    paths["model"] = run / "model.pt"
    return paths


# ============================================================================ 02: the map


@dataclass
class Subset:
    """A selected subset of the training set: its name, how it was chosen, and its ids."""

    name: str
    selector: str
    fraction: float
    ids: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Run:
    """What notebooks 01-03 wrote to a run folder (see :func:`load_run`)."""

    path: Path
    params: dict[str, Any]
    metrics: pd.DataFrame
    dynamics: TrainingDynamics
    thresholds: Thresholds
    subsets: dict[str, Subset] | None = None
    _bundle: DataBundle | None = field(default=None, repr=False)

    @property
    def bundle(self) -> DataBundle:
        """The study's data (reloaded from the parameters: the same split and noise)."""
        if self._bundle is None:
            p = self.params
            self._bundle = load_data(
                p["dataset"], noise=p["noise"], max_samples=p["max_samples"], seed=p["seed"]
            )
        return self._bundle

    @property
    def title(self) -> str:
        p = self.params
        noise = f", {p['noise']:.0%} labels flipped" if p.get("noise") else ""
        return f"{p['dataset']}, {p['model']}, {p['epochs']} epochs{noise}"

    def figure(self, name: str) -> Path:
        """The path of a figure in the run folder's ``figures/``."""
        folder = self.path / "figures"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name


def read_metrics(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A metrics CSV written by a study, indexed by id; ``region`` back as a categorical."""
    metrics = pd.read_csv(path, index_col="id")
    if "region" in metrics.columns:
        metrics["region"] = pd.Categorical(metrics["region"], categories=list(REGIONS))
    return metrics


def load_run(run_dir: str | os.PathLike[str]) -> Run:
    """Read a run folder: the parameters, dynamics and metrics of notebook 01, the thresholds of
    02 (defaults until 02 ran) and the subsets of 03 (``None`` until 03 ran).

    Raises
    ------
    FileNotFoundError
        If notebook 01 has not written to ``run_dir``.
    """
    from cartokit.dynamics import TrainingDynamics

    run = Path(run_dir)
    missing = [f for f in ("params.json", "dynamics.npz", "metrics.csv") if not (run / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"The run folder {str(run)!r} has no {', '.join(missing)}. Run notebook "
            f"01_train_and_record with run_dir={str(run_dir)!r} first (on Colab, in the same "
            "session or with run_dir on a mounted drive)."
        )
    thresholds = _read_json(run / "thresholds.json")
    return Run(
        path=run,
        params=_read_json(run / "params.json"),
        metrics=read_metrics(run / "metrics.csv"),
        dynamics=TrainingDynamics.load(run / "dynamics.npz"),
        thresholds=Thresholds(**thresholds) if thresholds else Thresholds(),
        subsets=load_subsets(run) if (run / "subsets.csv").is_file() else None,
    )


def add_regions(run: Run, thresholds: Thresholds) -> pd.DataFrame:
    """Assign regions with ``thresholds``; save them (``thresholds.json``, a ``region`` column
    in ``metrics.csv``) for notebooks 03-04; return the metrics table."""
    from cartokit.io import write_metrics_csv

    thresholds.validate()
    metrics = run.metrics.copy()
    metrics["region"] = assign_regions(metrics, thresholds)
    write_metrics_csv(metrics, run.path / "metrics.csv")
    _write_json(run.path / "thresholds.json", vars(thresholds))
    run.metrics, run.thresholds = metrics, thresholds
    return metrics


def region_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Samples per region (and their share); with a ``flipped`` column, the flipped labels per
    region; with ``human_score``, the median magnitude of the human score per region."""
    regions = metrics["region"] if "region" in metrics else assign_regions(metrics)
    counts = region_counts(regions)
    table = pd.DataFrame({"samples": counts, "share": (counts / counts.sum()).round(3)})
    if "flipped" in metrics:
        flipped = metrics["flipped"].astype(bool)
        table["flipped labels"] = flipped.groupby(regions, observed=False).sum().astype(int)
    if "human_score" in metrics:
        magnitude = metrics["human_score"].abs()
        table["median |human score|"] = magnitude.groupby(regions, observed=False).median().round(2)
    table.index.name = "region"
    return table


def top_ids(metrics: pd.DataFrame, by: str, k: int) -> np.ndarray:
    """The ids of the ``k`` samples ranked first by a selector (e.g. ``"ambiguous"``: highest
    variability; ``"hard"``: lowest confidence), or by a column (highest first).

    >>> m = pd.DataFrame({"confidence": [0.9, 0.1, 0.5], "variability": [0.0, 0.1, 0.3]})
    >>> top_ids(m, "hard", 2).tolist(), top_ids(m, "ambiguous", 1).tolist()
    ([1, 2], [2])
    """
    column, highest = SELECTORS.get(by, (by, True))
    if column not in metrics.columns:
        raise ValueError(
            f"top_ids: {by!r} is neither a selector ({list(SELECTORS)}) nor a column of the "
            f"metrics table ({list(metrics.columns)})."
        )
    ranked = metrics[column].dropna().sort_values(ascending=not highest, kind="stable")
    return ranked.index.to_numpy()[:k]


def _positions(split: Split, ids: Sequence[Any] | np.ndarray) -> np.ndarray:
    positions = pd.Index(split.ids).get_indexer(np.asarray(ids))
    if (positions < 0).any():
        raise ValueError(
            f"{int((positions < 0).sum())} ids are not in {split.name!r}, e.g. "
            f"{np.asarray(ids)[positions < 0][:3].tolist()}: the run folder and the data differ."
        )
    return positions


_EXAMPLE_TITLES = {
    "ambiguous": "most ambiguous samples (highest variability)",
    "hard": "hardest samples (lowest confidence)",
    "easy": "easiest samples (highest confidence)",
}


def show_examples(
    metrics: pd.DataFrame, split: Split, *, by: str = "ambiguous", k: int = 8
) -> Figure | pd.DataFrame:
    """The ``k`` samples ranked first by ``by``, with their labels: a figure of images for image
    data, else a table (with the text for text data). Flipped labels show their clean label."""
    ids = top_ids(metrics, by, k)
    rows = metrics.loc[ids]
    positions = _positions(split, ids)
    names = split.class_names
    clean = split.frame["clean_label"].to_numpy() if "clean_label" in split.frame else None
    if split.kind == "image":
        from cartokit.plot._style import NotebookFigure

        cols = min(len(ids), 8)
        nrows = -(-len(ids) // cols) if len(ids) else 1
        fig = NotebookFigure(figsize=(1.6 * cols, 1.9 * nrows), layout="constrained")
        for i, (sample_id, pos) in enumerate(zip(ids, positions)):
            ax = fig.add_subplot(nrows, cols, i + 1)
            ax.imshow(split.show(int(pos)), cmap="gray_r")
            label = f"label {names[split.labels[pos]]}"
            if clean is not None and clean[pos] != split.labels[pos]:
                label += f" (was {names[clean[pos]]})"
            ax.set_title(f"id {sample_id}\n{label}", fontsize=8)
            ax.set_axis_off()
        fig.suptitle(
            f"The {len(ids)} {_EXAMPLE_TITLES[by]}"
            if by in _EXAMPLE_TITLES
            else f"Top {len(ids)} by {by!r}"
        )
        return fig
    table = pd.DataFrame(index=pd.Index(ids, name="id"))
    if "text" in split.frame:
        table["text"] = split.frame["text"].to_numpy()[positions]
    elif split.kind == "text":
        table["text"] = [split.show(int(p)) for p in positions]
    table["label"] = [names[y] for y in split.labels[positions]]
    if clean is not None:
        table["clean label"] = [names[y] for y in clean[positions]]
    for column in ("human_score", "confidence", "variability", "correctness"):
        if column in rows:
            table[column] = rows[column].round(3).to_numpy()
    return table


_AGREEMENT_METRICS = (
    "confidence",
    "variability",
    "correctness",
    "forgetting",
    "aum",
    "el2n",
    "threshold_closeness",
)


def human_agreement(
    metrics: pd.DataFrame, *, run_dir: str | os.PathLike[str] | None = None
) -> pd.DataFrame | None:
    """Do the map's metrics match human judgement? Spearman's rank correlation of each metric
    with the magnitude of the human score (``|human_score|``: 0 is neutral, 4 is clear-cut).

    Ambiguous samples should sit near 0: a positive correlation for confidence and a negative
    one for variability say the map agrees with the humans. Returns ``None`` (with a note) when
    the table has no ``human_score`` column; with ``run_dir``, also writes
    ``human_agreement.csv`` and, when regions are known, ``human_by_region.csv``.

    >>> m = pd.DataFrame({"confidence": [0.9, 0.6, 0.2], "variability": [0.1, 0.3, 0.2],
    ...                   "human_score": [3.0, -1.0, 0.6]})
    >>> human_agreement(m)["spearman"].to_dict()
    {'confidence': 1.0, 'variability': -0.5}
    """
    if "human_score" not in metrics:
        print(
            "This dataset has no human scores (the VADER sentiment sets have), so there is no "
            "comparison with human judgement."
        )
        return None
    magnitude = metrics["human_score"].abs()
    rows = []
    for column in _AGREEMENT_METRICS:
        if column not in metrics:
            continue
        pair = pd.concat([metrics[column].astype(float), magnitude], axis=1).dropna()
        rho = pair.iloc[:, 0].rank().corr(pair.iloc[:, 1].rank())  # Spearman = Pearson of ranks
        rows.append({"metric": column, "spearman": round(float(rho), 3), "samples": len(pair)})
    table = pd.DataFrame(rows).set_index("metric")
    if run_dir is not None:
        run = Path(run_dir)
        with atomic_write(run / "human_agreement.csv", "w") as fh:
            table.to_csv(fh)
        if "region" in metrics:
            by_region = magnitude.groupby(metrics["region"], observed=False).describe()
            with atomic_write(run / "human_by_region.csv", "w") as fh:
                by_region.round(3).to_csv(fh)
    return table


def plot_human_scores(
    metrics: pd.DataFrame,
    *,
    thresholds: Thresholds | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Figure | None:
    """The human score's distribution per region: its magnitude as box plots, and the signed
    score as overlaid histograms. ``None`` without a ``human_score`` column."""
    if "human_score" not in metrics:
        return None
    from cartokit.plot._style import REGION_COLORS, NotebookFigure, check_figure_path, save_figure

    target = check_figure_path(path, caller="plot_human_scores")
    regions = metrics["region"] if "region" in metrics else assign_regions(metrics, thresholds)
    score = metrics["human_score"].astype(float)
    fig = NotebookFigure(figsize=(10, 3.8), layout="constrained")
    box_ax, hist_ax = fig.subplots(1, 2)
    groups = [score[regions == r].abs().dropna().to_numpy() for r in REGIONS]
    shown = [i for i, g in enumerate(groups) if len(g)]
    boxes = box_ax.boxplot(
        [groups[i] for i in shown],
        tick_labels=[f"{REGIONS[i]}\n(n={len(groups[i])})" for i in shown],
        patch_artist=True,
        showfliers=False,
    )
    for patch, i in zip(boxes["boxes"], shown):
        patch.set_facecolor(REGION_COLORS[REGIONS[i]])
        patch.set_alpha(0.6)
    box_ax.set_ylabel("|human score|  (0 neutral, 4 clear-cut)")
    box_ax.set_title("Human score magnitude per region")
    bins = np.linspace(-4, 4, 33)
    for i in shown:
        hist_ax.hist(
            score[regions == REGIONS[i]].dropna(),
            bins=bins,
            density=True,
            histtype="step",
            linewidth=1.8,
            color=REGION_COLORS[REGIONS[i]],
            label=REGIONS[i],
        )
    hist_ax.set_xlabel("human score")
    hist_ax.set_ylabel("density")
    hist_ax.set_title("Human score per region")
    hist_ax.legend(frameon=False)
    save_figure(fig, target)
    return fig


# ============================================================================ 03: subsets


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.3g}%"


def _subset_name(selector: str, fraction: float) -> str:
    return f"{selector} {_percent(fraction)}"


def build_subsets(
    metrics: pd.DataFrame,
    *,
    selectors: Sequence[str] = PAPER_SUBSETS,
    fractions: Sequence[float] = (0.33,),
    curve_selector: str = "ambiguous",
    curve_fractions: Sequence[float] = (),
    mixtures: Sequence[str] = (),
    thresholds: Thresholds | None = None,
    balanced: bool = False,
    seed: int = 0,
) -> dict[str, Subset]:
    """Select the subsets to retrain on, by name (e.g. ``"ambiguous 33%"``), in this order:

    1. each of ``selectors`` at each of ``fractions`` (``"full"`` is the whole set, once);
    2. ``curve_selector`` at each of ``curve_fractions`` (the line plot's points), skipping
       names already there;
    3. each mixture, e.g. ``"17% ambiguous + 10% easy"`` (:func:`~cartokit.select_mixture`).

    Fractions are shares of the whole training set; each selector is ranked as in
    :func:`~cartokit.select` (random subsets draw from ``seed``).

    >>> m = pd.DataFrame({"confidence": np.linspace(0, 1, 10), "variability": np.zeros(10),
    ...                   "label": [0, 1] * 5})
    >>> {k: len(v) for k, v in build_subsets(m, selectors=["full", "hard"], fractions=[0.3],
    ...                                        mixtures=["20% easy + 10% random"]).items()}
    {'full 100%': 10, 'hard 30%': 3, '20% easy + 10% random': 3}
    """
    p = validate_params(
        selectors=selectors,
        fractions=fractions,
        curve_selector=curve_selector,
        curve_fractions=curve_fractions,
        mixtures=mixtures,
        balanced=balanced,
        selection_seed=seed,
    )
    wanted: list[tuple[str, str, float]] = []  # name, selector, fraction
    for selector in p["selectors"]:
        if selector == FULL:
            wanted.append((_subset_name(FULL, 1.0), FULL, 1.0))
        else:
            wanted += [(_subset_name(selector, f), selector, f) for f in p["fractions"]]
    wanted += [
        (_subset_name(p["curve_selector"], f), p["curve_selector"], f) for f in p["curve_fractions"]
    ]
    subsets: dict[str, Subset] = {}
    for name, selector, fraction in wanted:
        if name in subsets:
            continue
        if selector == FULL:
            ids = metrics.index.to_numpy()
        else:
            ids = select(metrics, selector, fraction, balanced=balanced, seed=seed)
        subsets[name] = Subset(name, selector, fraction, ids)
    for mixture in p["mixtures"]:
        parts = parse_mixture(mixture)
        name = " + ".join(f"{_percent(f)} {part}" for part, f in parts.items())
        ids = select_mixture(metrics, parts, thresholds=thresholds, balanced=balanced, seed=seed)
        subsets[name] = Subset(name, name, round(sum(parts.values()), 6), ids)
    return subsets


def save_subsets(run_dir: str | os.PathLike[str], subsets: Mapping[str, Subset]) -> Path:
    """Write ``subsets.csv``: one row per selected sample (subset, selector, fraction, id)."""
    frames = [
        pd.DataFrame(
            {"subset": s.name, "selector": s.selector, "fraction": s.fraction, "id": s.ids}
        )
        for s in subsets.values()
    ]
    path = Path(run_dir) / "subsets.csv"
    with atomic_write(path, "w") as fh:
        pd.concat(frames, ignore_index=True).to_csv(fh, index=False)
    return path


def load_subsets(run_dir: str | os.PathLike[str]) -> dict[str, Subset]:
    """The subsets written by :func:`save_subsets`, in their order."""
    table = pd.read_csv(Path(run_dir) / "subsets.csv")
    out = {}
    for name in pd.unique(table["subset"]):
        rows = table[table["subset"] == name]
        out[name] = Subset(
            str(name),
            str(rows["selector"].iloc[0]),
            float(rows["fraction"].iloc[0]),
            rows["id"].to_numpy(),
        )
    return out


def subsets_summary(subsets: Mapping[str, Subset], metrics: pd.DataFrame) -> pd.DataFrame:
    """Per subset: its size and share, mean confidence and variability, its share of each
    region, and its flipped labels when known."""
    rows = []
    for subset in subsets.values():
        part = metrics.loc[subset.ids]
        row: dict[str, Any] = {
            "subset": subset.name,
            "samples": len(subset),
            "share": round(len(subset) / len(metrics), 3),
            "mean confidence": round(float(part["confidence"].mean()), 3),
            "mean variability": round(float(part["variability"].mean()), 3),
        }
        if "region" in part:
            shares = part["region"].value_counts(normalize=True)
            for region in REGIONS:
                row[f"{region} share"] = round(float(shares.get(region, 0.0)), 3)
        if "flipped" in part:
            row["flipped labels"] = int(part["flipped"].astype(bool).sum())
        rows.append(row)
    return pd.DataFrame(rows).set_index("subset")


# ============================================================================ 04: retraining


def retrain(
    data: DataBundle,
    subsets: Mapping[str, Subset] | None,
    *,
    model: str,
    seeds: Sequence[int],
    epochs: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    freeze_encoder: bool = True,
    progress: bool = True,
) -> pd.DataFrame:
    """Train a fresh model on each subset with each seed; evaluate it on every held-out split.

    ``data`` is :func:`model_data`'s bundle. Returns one row per subset, seed and evaluation
    split (``test`` in distribution, the others out of it): ``subset``, ``selector``,
    ``fraction``, ``size``, ``seed``, ``split``, ``accuracy``, ``macro_f1``.
    """
    from tqdm.auto import tqdm

    from cartokit.train import evaluate, fit

    if subsets is None:
        raise ValueError(
            "retrain: there are no subsets; run notebook 03_select on this run folder first."
        )
    p = validate_params(seeds=seeds, retrain_epochs=epochs, batch_size=batch_size, lr=lr)
    train = data.train
    evals = {"test": data.test, **data.ood}
    jobs = [(subset, seed) for subset in subsets.values() for seed in p["seeds"]]
    rows = []
    with small_model_threads(model, train):
        for subset, seed in tqdm(jobs, desc="retraining", disable=not progress):
            part = train.subset(_positions(train, subset.ids), name=f"{train.name}[{subset.name}]")
            net = build_model(model, part, seed=seed, freeze_encoder=freeze_encoder)
            fit(
                net,
                part,
                epochs=epochs,
                batch_size=batch_size,
                lr=lr,
                seed=seed,
                record=False,
                progress=False,
            )
            for split_name, split in evals.items():
                scores = evaluate(net, split)
                rows.append(
                    {
                        "subset": subset.name,
                        "selector": subset.selector,
                        "fraction": subset.fraction,
                        "size": len(part),
                        "seed": seed,
                        "split": split_name,
                        "accuracy": scores.accuracy,
                        "macro_f1": scores.macro_f1,
                    }
                )
    return pd.DataFrame(rows)


def save_results(run_dir: str | os.PathLike[str], results: pd.DataFrame) -> Path:
    """Write ``results.csv`` (the rows of :func:`retrain`) and ``results.md`` (the table)."""
    run = Path(run_dir)
    with atomic_write(run / "results.csv", "w") as fh:
        results.to_csv(fh, index=False)
    with atomic_write(run / "results.md", "w") as fh:
        fh.write(results_markdown(results_table(results)) + "\n")
    return run / "results.csv"


def results_table(results: pd.DataFrame, *, metric: str = "accuracy") -> pd.DataFrame:
    """One row per subset (in their order): its size, number of seeds, and the mean and standard
    deviation over seeds of ``metric`` on each split (columns ``<split> mean``, ``<split> std``).

    >>> rows = pd.DataFrame({"subset": ["a", "a", "b", "b"], "size": 5, "seed": [0, 1, 0, 1],
    ...                      "split": "test", "accuracy": [0.8, 0.9, 0.6, 0.6]})
    >>> results_table(rows).round(3).to_dict("index")["a"]
    {'size': 5, 'seeds': 2, 'test mean': 0.85, 'test std': 0.071}
    """
    order = list(pd.unique(results["subset"]))
    splits = list(pd.unique(results["split"]))
    stats = results.groupby(["subset", "split"], sort=False)[metric].agg(["mean", "std"])
    table = pd.DataFrame(index=pd.Index(order, name="subset"))
    first = results.groupby("subset", sort=False)
    table["size"] = first["size"].first().reindex(order)
    table["seeds"] = first["seed"].nunique().reindex(order)
    for split in splits:
        part = stats.xs(split, level="split").reindex(order)
        table[f"{split} mean"] = part["mean"]
        table[f"{split} std"] = part["std"]
    return table


def results_markdown(table: pd.DataFrame, *, in_distribution: str = "test") -> str:
    """A :func:`results_table` as markdown, like the paper's Table 1: accuracy in percent as
    mean ± std over seeds, the best mean of each column in bold."""
    splits = [c[: -len(" mean")] for c in table.columns if c.endswith(" mean")]
    head = ["subset", "size"] + [f"{s} ({'ID' if s == in_distribution else 'OOD'})" for s in splits]
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|",
    ]
    best = {s: table[f"{s} mean"].max() for s in splits}
    for name, row in table.iterrows():
        cells = [_md_cell(name), str(int(row["size"]))]
        for s in splits:
            mean, std = row[f"{s} mean"], row[f"{s} std"]
            text = f"{100 * mean:.1f}" + ("" if pd.isna(std) else f" ± {100 * std:.1f}")
            cells.append(f"**{text}**" if np.isclose(mean, best[s]) else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_results(
    results: pd.DataFrame,
    *,
    metric: str = "accuracy",
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Bars of ``metric`` per subset, one per evaluation split, with the std over seeds."""
    from cartokit.plot._style import CLASS_COLORS, NotebookFigure, check_figure_path, save_figure

    target = check_figure_path(path, caller="plot_results")
    table = results_table(results, metric=metric)
    splits = [c[: -len(" mean")] for c in table.columns if c.endswith(" mean")]
    fig = NotebookFigure(figsize=(max(6.0, 0.75 * len(table) + 2), 4.2), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(table))
    width = 0.8 / len(splits)
    for i, split in enumerate(splits):
        ax.bar(
            x + (i - (len(splits) - 1) / 2) * width,
            100 * table[f"{split} mean"],
            width,
            yerr=100 * table[f"{split} std"].fillna(0),
            capsize=2,
            color=CLASS_COLORS[i % len(CLASS_COLORS)],
            label=f"{split} ({'ID' if split == 'test' else 'OOD'})",
        )
    ax.set_xticks(x, table.index, rotation=35, ha="right")
    ax.set_ylabel(f"{metric} (%)")
    low = 100 * np.nanmin([table[f"{s} mean"].min() for s in splits])
    ax.set_ylim(max(0.0, low - 10), 100)
    ax.set_title(f"Retrained on each subset: {metric}, mean ± std over seeds", loc="left")
    ax.legend(frameon=False, ncols=len(splits), loc="lower right", bbox_to_anchor=(1.0, 1.0))
    save_figure(fig, target)
    return fig


def plot_fraction_curve(
    results: pd.DataFrame,
    *,
    selector: str | None = None,
    metric: str = "accuracy",
    path: str | os.PathLike[str] | None = None,
) -> Figure | None:
    """``metric`` against the share of the training set that ``selector`` chose, one line per
    evaluation split (mean ± std over seeds), with 100 % of the data as dashed lines.

    ``selector`` defaults to the one retrained at the most fractions (``"ambiguous"`` on a
    tie). ``None`` (with a note) when ``selector`` has no subsets in ``results``.
    """
    from cartokit.plot._style import CLASS_COLORS, NotebookFigure, check_figure_path, save_figure

    target = check_figure_path(path, caller="plot_fraction_curve")
    if selector is None:
        named = results[results["selector"].isin(SUBSET_SELECTORS) & (results["selector"] != FULL)]
        counts = named.groupby("selector")["fraction"].nunique()
        counts = counts.sort_values(ascending=False, kind="stable")
        top = counts[counts == counts.max()].index if len(counts) else []
        selector = "ambiguous" if "ambiguous" in top or not len(top) else str(top[0])
    chosen = results[results["selector"] == selector]
    if chosen.empty:
        print(f"No {selector!r} subsets were retrained, so there is no curve to draw.")
        return None
    full = results[results["selector"] == FULL]
    fig = NotebookFigure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for i, split in enumerate(pd.unique(results["split"])):
        color = CLASS_COLORS[i % len(CLASS_COLORS)]
        stats = (
            chosen[chosen["split"] == split]
            .groupby("fraction")[metric]
            .agg(["mean", "std"])
            .sort_index()
        )
        x, mean, std = (
            100 * stats.index.to_numpy(),
            100 * stats["mean"],
            100 * stats["std"].fillna(0),
        )
        label = f"{split} ({'ID' if split == 'test' else 'OOD'})"
        ax.plot(x, mean, marker="o", color=color, label=label)
        ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)
        reference = full.loc[full["split"] == split, metric]
        if len(reference):
            ax.axhline(100 * reference.mean(), color=color, linestyle="--", linewidth=1)
    ax.set_xlabel(f"share of the training set chosen by {selector!r} (%)")
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title(f"{metric} against the {selector} fraction (dashed: 100 % of the data)")
    ax.legend(frameon=False)
    save_figure(fig, target)
    return fig


def above_chance(
    results: pd.DataFrame, num_classes: int, *, margin: float = ABOVE_CHANCE_MARGIN
) -> bool | None:
    """Whether the model retrained on 100 % of the data beats chance on the test split by a wide
    margin: accuracy >= chance + ``margin`` * (1 - chance). ``None`` without a ``full`` subset.

    >>> rows = pd.DataFrame({"selector": ["full"], "split": ["test"], "accuracy": [0.9]})
    >>> above_chance(rows, 10), above_chance(rows.assign(accuracy=0.3), 10)
    (True, False)
    """
    full = results[(results["selector"] == FULL) & (results["split"] == "test")]
    if full.empty:
        return None
    chance = 1 / num_classes
    return bool(full["accuracy"].mean() >= chance + margin * (1 - chance))


# ============================================================================ the report


def _md_cell(value: Any) -> str:
    return "" if pd.isna(value) else str(value).replace("|", "\\|")


def _md_table(frame: pd.DataFrame, *, index: bool = True) -> str:
    frame = frame.reset_index() if index else frame
    head = [_md_cell(c) for c in frame.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
    return "\n".join(lines)


def _human_sentence(agreement: pd.DataFrame, by_region: pd.DataFrame | None) -> str:
    """Plain words for the agreement table: each correlation's direction and strength."""
    rho = agreement["spearman"]
    # sign of the correlation with |human score| if the map agrees with the humans
    expected = {"confidence": 1, "variability": -1, "correctness": 1, "forgetting": -1}
    parts = []
    for metric, sign in expected.items():
        if metric not in rho or pd.isna(rho[metric]):
            continue
        value = float(rho[metric])
        if abs(value) < 0.1:
            verdict = "barely related to it"
        elif np.sign(value) == sign:
            verdict = "as agreement with the humans would have it"
        else:
            verdict = "the opposite of agreement with the humans"
        parts.append(f"{metric} ρ = {value:.2f} ({verdict})")
    text = ""
    if parts:
        text = (
            "Against the human score's magnitude (high: clear-cut, low: near neutral): "
            + "; ".join(parts)
            + "."
        )
    if by_region is not None and "50%" in by_region:
        medians = by_region["50%"].reindex(list(REGIONS)).dropna()
        text += " Median |human score| per region: " + ", ".join(
            f"{region} {value:.2f}" for region, value in medians.items()
        )
        if {"easy", "ambiguous", "hard"} <= set(medians.index):
            lower = medians["ambiguous"] < medians["easy"] and medians["hard"] < medians["easy"]
            text += (
                ": the humans, too, find the ambiguous and hard-to-learn samples less clear-cut "
                "than the easy-to-learn ones."
                if lower
                else ": the humans do not rate the easy-to-learn samples as the most clear-cut."
            )
        else:
            text += "."
    return text.strip()


def write_report(run_dir: str | os.PathLike[str]) -> Path:
    """Write ``report.md`` in the run folder from what the notebooks wrote there: parameters,
    the data map and region counts, the retraining table and figures, the comparison with human
    judgement (when the data has human scores), timings and the list of files."""
    run = Path(run_dir)
    info = _read_json(run / "run.json", {})
    params = {**_read_json(run / "params.json", {}), **info.get("params", {})}
    title = ", ".join(str(params[k]) for k in ("dataset", "model") if k in params) or run.name
    out = [f"# Dataset Cartography study: {title}", ""]
    if params:
        out += [
            f"{params.get('epochs', '?')} epochs of training recorded ({params.get('mode', '')}), "
            f"seed {params.get('seed', 0)}"
            + (
                f", {params['noise']:.0%} of the training labels flipped"
                if params.get("noise")
                else ""
            )
            + ".",
            "",
        ]
    metrics = read_metrics(run / "metrics.csv") if (run / "metrics.csv").is_file() else None
    out += ["## Data map", ""]
    if (run / "figures" / "data_map.png").is_file():
        out += ["![data map](figures/data_map.png)", ""]
    if metrics is not None:
        thresholds = _read_json(run / "thresholds.json") or vars(Thresholds())
        out += [
            f"{len(metrics)} training samples. Thresholds: "
            + ", ".join(f"{k} = {v:g}" for k, v in thresholds.items())
            + ".",
            "",
            _md_table(
                region_table(
                    metrics
                    if "region" in metrics
                    else metrics.assign(region=assign_regions(metrics, Thresholds(**thresholds)))
                )
            ),
            "",
        ]
    history = run / "history.csv"
    if history.is_file():
        last = pd.read_csv(history).iloc[-1]
        scores = ", ".join(
            f"{c[: -len('_accuracy')]} {100 * last[c]:.1f} %"
            for c in last.index
            if c.endswith("_accuracy")
        )
        out += [f"Accuracy of the recorded model after the last epoch: {scores}.", ""]
    if (run / "results.csv").is_file():
        results = pd.read_csv(run / "results.csv")
        seeds = results["seed"].nunique()
        out += [
            "## Retraining on subsets",
            "",
            f"A fresh model trained on each subset with {seeds} seed(s); accuracy (%) as mean ± "
            "std over seeds, the best of each column in bold (cf. Swayamdipta et al., 2020, "
            "Table 1).",
            "",
            results_markdown(results_table(results)),
            "",
        ]
        for name, alt in (
            ("results_bars.png", "accuracy per subset"),
            ("fraction_curve.png", "accuracy against the fraction"),
        ):
            if (run / "figures" / name).is_file():
                out += [f"![{alt}](figures/{name})", ""]
    if (run / "human_agreement.csv").is_file():
        agreement = pd.read_csv(run / "human_agreement.csv", index_col="metric")
        by_region = (
            pd.read_csv(run / "human_by_region.csv", index_col=0)
            if (run / "human_by_region.csv").is_file()
            else None
        )
        out += [
            "## Do the map's regions match human judgement?",
            "",
            "Each snippet carries the mean of about 20 human ratings (-4..+4; Hutto & Gilbert, "
            "2014). Spearman's ρ of each metric with the rating's magnitude |score|:",
            "",
            _md_table(agreement),
            "",
            _human_sentence(agreement, by_region),
            "",
        ]
        if (run / "figures" / "human_scores.png").is_file():
            out += ["![human scores per region](figures/human_scores.png)", ""]
    if info.get("notebooks"):
        out += (
            ["## Run", ""]
            + [
                f"- `notebooks/{nb['name']}.ipynb`: {nb['seconds']:.1f} s"
                for nb in info["notebooks"]
            ]
            + [f"- total: {info.get('seconds', 0):.1f} s", ""]
        )
    files = sorted(
        str(p.relative_to(run))
        for p in run.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.name != "report.md"
    )
    out += ["## Files", "", *[f"- `{f}`" for f in files], ""]
    path = run / "report.md"
    with atomic_write(path, "w") as fh:
        fh.write("\n".join(out))
    return path


# ============================================================================ running studies


class RunError(RuntimeError):
    """A study's notebook failed; ``executed`` is its executed copy, which shows the error."""

    def __init__(self, message: str, *, notebook: str | None = None, executed: Path | None = None):
        super().__init__(message)
        self.notebook = notebook
        self.executed = executed


def default_kernel() -> str:
    """The Jupyter kernel that runs the notebooks: ``cartokit`` when registered (``make install``
    registers it), else ``python3``."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager
    except ImportError:
        return "python3"
    return "cartokit" if "cartokit" in KernelSpecManager().find_kernel_specs() else "python3"


def _execute_notebook(
    source: Path,
    target: Path,
    parameters: dict[str, Any],
    *,
    kernel: str,
    cwd: Path,
    progress: bool,
) -> None:
    try:
        import papermill
    except ImportError:
        raise ImportError(
            "cartokit run executes the notebooks with papermill: pip install 'cartokit[notebooks]'"
        ) from None
    papermill.execute_notebook(
        str(source),
        str(target),
        parameters=parameters,
        kernel_name=kernel,
        cwd=str(cwd),
        progress_bar=progress,
        log_output=False,
        # the kernel app's own log (a notice that the local kernel talks over TCP without
        # encryption; an interrupt at shutdown) is noise here; the notebooks' errors still surface
        extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
    )


def _failure_message(err: BaseException) -> str:
    ename, evalue = getattr(err, "ename", None), getattr(err, "evalue", None)
    if ename is not None:
        cell = getattr(err, "exec_count", None)
        where = f"in cell [{cell}]" if cell is not None else "in a cell"
        return f"{where} with {ename}: {' '.join(str(evalue).split())}"
    return f"with {type(err).__name__}: {' '.join(str(err).split())}"


class Terminated(KeyboardInterrupt):
    """A run stopped by SIGTERM: handled like Ctrl-C, so its outputs go to ``<out>.failed``."""

    def __init__(self, signum: int = signal.SIGTERM):
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


def _in_main_thread() -> bool:
    # Python runs signal handlers in the main thread only, and only it may install them
    return threading.current_thread() is threading.main_thread()


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While a run is in progress, SIGTERM raises :class:`Terminated` (a KeyboardInterrupt)."""
    if not _in_main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back for a few renames, then deliver them."""
    if not _in_main_thread():
        yield
        return
    pending: list[int] = []
    names = (signal.SIGINT, signal.SIGTERM)
    saved = {sig: signal.signal(sig, lambda signum, frame: pending.append(signum)) for sig in names}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        if pending:
            signal.raise_signal(pending[0])


def _swap_in(staged: Path, out: Path) -> None:
    """Replace ``out`` by ``staged`` with renames (same folder): ``out`` is never half written.

    ``out`` must be empty or a cartokit run folder (:func:`_check_run_folder`). Ctrl-C or SIGTERM
    between the two renames waits for the second; a kill -9 there leaves the earlier run in
    ``.<out>.old-<pid>``, which the next run into ``out`` moves back (:func:`_clean_leftovers`).
    """
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        with _signals_deferred():
            out.rename(old)
            staged.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staged.rename(out)


def _is_run_leftover(folder: Path) -> bool:
    """Whether ``folder`` (named as a failed, partial or moved-aside run) is a run's: it has the
    run marker, or (a run from before the marker) nothing but a run's executed notebooks in
    ``notebooks/``, or no files at all."""
    if not folder.is_dir():
        return False
    if marker_kind(folder) == "cartokit run":
        return True
    executed = folder / "notebooks"
    copies = {f"{name}.ipynb" for name in NOTEBOOKS}
    if executed.is_dir() and {p.name for p in executed.iterdir()} <= copies:
        return any(executed.iterdir()) or not any(p.is_file() for p in folder.rglob("*"))
    return False


def _check_run_folder(out: Path, *, option: str = "--out") -> None:
    """Refuse, before any work, a run folder whose replacement could lose someone's files."""
    cwd = Path.cwd().resolve()
    if out == cwd or out in cwd.parents:
        raise ValueError(
            f"cartokit run replaces its output folder, and {out} holds the working directory; "
            f"choose another {option}."
        )
    check_output_folder(out, written_by="cartokit run", option=option)
    failed = out.with_name(f"{out.name}.failed")
    if failed.exists() and not _is_run_leftover(failed):
        raise ValueError(
            f"cartokit run keeps a failed run's outputs in {failed}, which exists and was not "
            f"written by cartokit run; move it away or choose another {option}."
        )


def _is_legacy_grid(folder: Path) -> bool:
    """A grid folder from before grids wrote a marker: only a grid's tables and its jobs' runs."""
    if not folder.is_dir() or marker_kind(folder) is not None:
        return False
    entries = {p.name for p in folder.iterdir()}
    jobs = folder / "jobs"
    return (
        "jobs.csv" in entries
        and entries <= {"jobs", "jobs.csv", "results.csv", "summary.md"}
        and (not jobs.exists() or all(_is_run_leftover(job) for job in jobs.iterdir()))
    )


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def _clean_leftovers(out: Path, say: Callable[[str], None]) -> None:
    """Tidy up after earlier runs into ``out`` that were killed (kill -9, a power cut).

    Their ``.<out>.partial-<pid>`` folders are removed, and an earlier run that ``_swap_in`` had
    moved aside to ``.<out>.old-<pid>`` is put back when ``out`` is missing; only for processes
    that are gone, and only folders that hold what a run writes.
    """
    removed, restored = [], None
    for kind in ("partial", "old"):
        for path in sorted(out.parent.glob(f".{glob.escape(out.name)}.{kind}-*")):
            pid = path.name.rsplit("-", 1)[1]
            if not pid.isdigit() or int(pid) <= 0 or int(pid) == os.getpid():
                continue
            if not _process_gone(int(pid)) or not _is_run_leftover(path):
                continue
            if kind == "old" and not out.exists() and marker_kind(path) == "cartokit run":
                path.rename(out)
                restored = path.name
            else:
                shutil.rmtree(path)
                removed.append(path.name)
    if restored:
        say(f"restored the earlier run {out} from {restored}, left by a killed run")
    if removed:
        say(
            f"removed {len(removed)} folder(s) left in {out.parent} by killed runs into "
            f"{out.name}: {', '.join(removed)}"
        )


def run_study(
    out: str | os.PathLike[str],
    *,
    preset: str | None = None,
    config: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    notebooks_dir: str | os.PathLike[str] | None = None,
    kernel: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Run notebooks 01-04 with papermill into the run folder ``out``; return the report's path.

    Parameters come from the notebooks' defaults, then ``preset`` or ``config``, then
    ``overrides`` (:func:`resolve_params`), and are checked before any notebook starts. Each
    notebook gets the parameters its ``parameters`` cell declares, and ``run_dir``.

    ``out`` must be new, empty, or a run folder that cartokit wrote (its ``run.json`` says so);
    any other folder may hold other work and is refused before anything runs. The notebooks
    write into a hidden folder ``.<out>.partial-<pid>`` beside ``out``, which replaces ``out``
    only when all four succeed, so a failed or interrupted run never overwrites an earlier run's
    outputs. A failed run's folder, or one stopped by Ctrl-C or SIGTERM, is kept as
    ``<out>.failed``, with the executed notebooks, until a run into ``out`` succeeds.

    A run killed by SIGKILL (``kill -9``, the out-of-memory killer) or a power cut can do none
    of this: ``out`` keeps the earlier run, no ``<out>.failed`` is written, and the killed run's
    outputs stay in ``.<out>.partial-<pid>`` until the next run into ``out`` removes that folder
    (and says so).

    Raises
    ------
    ValueError
        If ``out`` is a file, or a folder that cartokit did not write, or a parameter is bad.
    RunError
        If a notebook fails; the message names it, the cell and the error, and where its
        executed copy is.
    Terminated
        On SIGTERM (a KeyboardInterrupt, as is Ctrl-C), after moving the outputs to
        ``<out>.failed``.
    """
    say = log or (lambda message: print(message, file=sys.stderr, flush=True))
    out = Path(out).resolve()
    _check_run_folder(out)
    params = resolve_params(
        preset=preset, config=config, overrides=overrides, notebooks_dir=notebooks_dir
    )
    sources = find_notebooks(notebooks_dir)
    declared = {name: read_parameters_cell(path) for name, path in sources.items()}
    kernel = kernel or default_kernel()
    out.parent.mkdir(parents=True, exist_ok=True)
    _clean_leftovers(out, say)
    staged = out.with_name(f".{out.name}.partial-{os.getpid()}")
    if staged.exists():
        shutil.rmtree(staged)
    (staged / "notebooks").mkdir(parents=True)
    # marked from the start, so that what a killed run leaves is known to be a run's
    write_marker(staged, "cartokit run", finished=None)
    timings: list[dict[str, Any]] = []
    started = time.perf_counter()
    name = NOTEBOOKS[0]
    try:
        with _sigterm_as_interrupt():
            for step, name in enumerate(NOTEBOOKS, 1):
                wanted = {k: v for k, v in params.items() if k in declared[name]}
                wanted["run_dir"] = str(staged)
                say(f"[{step}/{len(NOTEBOOKS)}] {name}.ipynb")
                tick = time.perf_counter()
                _execute_notebook(
                    sources[name],
                    staged / "notebooks" / f"{name}.ipynb",
                    wanted,
                    kernel=kernel,
                    cwd=staged,
                    progress=progress,
                )
                timings.append({"name": name, "seconds": round(time.perf_counter() - tick, 1)})
                say(f"      done in {timings[-1]['seconds']:.1f} s")
            write_marker(
                staged,
                "cartokit run",
                params=params,
                notebooks=timings,
                seconds=round(time.perf_counter() - started, 1),
                kernel=kernel,
                finished=time.strftime("%Y-%m-%d %H:%M:%S"),
            )
            write_report(staged)
    except BaseException as err:
        failed = out.with_name(f"{out.name}.failed")
        if failed.exists():
            shutil.rmtree(failed)
        staged.rename(failed)
        executed = failed / "notebooks" / f"{name}.ipynb"
        kept = f"{out} was left as it was" if out.exists() else f"nothing was written to {out}"
        if not isinstance(err, Exception):  # KeyboardInterrupt, Terminated, SystemExit
            how = str(err) if isinstance(err, Terminated) else "interrupted"
            say(f"{how} during {name}.ipynb; partial outputs in {failed}; {kept}")
            raise
        where = f"its executed copy is {executed}" if executed.is_file() else f"see {failed}"
        raise RunError(
            f"notebook {name}.ipynb failed {_failure_message(err)}. {where.capitalize()}; {kept}.",
            notebook=name,
            executed=executed if executed.is_file() else None,
        ) from err
    _swap_in(staged, out)
    # this success supersedes an earlier failure's leftovers
    shutil.rmtree(out.with_name(f"{out.name}.failed"), ignore_errors=True)
    say(f"Finished in {time.perf_counter() - started:.0f} s. Report: {out / 'report.md'}")
    return out / "report.md"


# ============================================================================ grids


def expand_grid(spec: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The jobs of a grid file: ``[(job name, overrides), ...]``.

    A grid file holds an optional ``preset``, optional fixed ``params``, and a ``grid`` mapping
    parameter names to lists of values. Parameters whose values are themselves lists
    (``selectors``, ``fractions``, ``seeds``, ``curve_fractions``, ``mixtures``) are passed
    whole to every job, whose notebooks cross them (each selector at each fraction, retrained
    with each seed) on one training run; every other parameter is a job axis.

    >>> jobs = expand_grid({"grid": {"model": ["mlp", "cnn"], "seed": [0, 1],
    ...                              "selectors": ["ambiguous", "random"]}})
    >>> [name for name, _ in jobs]
    ['model=mlp,seed=0', 'model=mlp,seed=1', 'model=cnn,seed=0', 'model=cnn,seed=1']
    >>> jobs[0][1]
    {'selectors': ['ambiguous', 'random'], 'model': 'mlp', 'seed': 0}
    """
    unknown = sorted(set(spec) - {"preset", "params", "grid", "out"})
    if unknown:
        raise ValueError(
            f"A grid file takes the keys ['preset', 'params', 'grid', 'out']. Got {unknown}; "
            "put parameters under 'params' (fixed) or 'grid' (lists of values)."
        )
    grid = spec.get("grid") or {}
    if not isinstance(grid, Mapping):
        raise ValueError("The 'grid' of a grid file must map parameter names to lists of values.")
    fixed = dict(spec.get("params") or {})
    axes: dict[str, list[Any]] = {}
    for key, values in grid.items():
        if key in _LIST_PARAMS:
            fixed[key] = _as_list(values)
        else:
            axes[key] = _as_list(values)
            if not axes[key]:
                raise ValueError(f"The grid axis {key!r} is empty; give it at least one value.")
    jobs = []
    for combo in product(*axes.values()) if axes else [()]:
        chosen = dict(zip(axes, combo))
        name = ",".join(f"{k}={v}" for k, v in chosen.items()) or "job"
        jobs.append((name.replace("/", "_").replace(" ", ""), {**fixed, **chosen}))
    return jobs


_LIST_PARAMS = frozenset({"selectors", "fractions", "curve_fractions", "mixtures", "seeds"})


def run_grid(
    path: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    force: bool = False,
    notebooks_dir: str | os.PathLike[str] | None = None,
    kernel: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Run a parameter grid (a YAML file, see :func:`expand_grid`) as a queue of studies and
    collect one results table.

    Each job is a :func:`run_study` in ``<out>/jobs/<job name>``; ``out`` defaults to the file's
    ``out`` key, else ``runs/<file stem>``. Jobs that already finished with the same parameters
    are skipped (so an interrupted grid resumes) unless ``force``; a failed job does not stop
    the others. Writes ``<out>/results.csv`` (every job's rows of :func:`retrain`, with the job's
    axes as columns), ``<out>/jobs.csv`` (status, seconds, error per job) and
    ``<out>/summary.md``; returns the results.

    ``out`` must be new, empty, or a grid folder that cartokit wrote (its ``run.json`` says
    so), and each job's folder new, empty or a cartokit run folder; anything else is refused
    before the first job starts. SIGTERM stops the grid as Ctrl-C does (:func:`run_study`).

    Raises
    ------
    ValueError
        If ``out`` or a job's folder may hold other work, or a job's parameters are bad.
    RunError
        After the queue, if any job failed (the tables are written first).
    """
    say = log or (lambda message: print(message, file=sys.stderr, flush=True))
    spec = _read_yaml(path)
    jobs = expand_grid(spec)
    grid_axes = list(spec.get("grid") or {})
    base = spec.get("preset")
    folder = Path(out or spec.get("out") or Path("runs") / Path(path).stem)
    # check every job's parameters before the first one starts
    resolved = {
        name: resolve_params(preset=base, overrides=overrides, notebooks_dir=notebooks_dir)
        for name, overrides in jobs
    }
    # and every folder it would write, so that a refusal comes before hours of work
    if not _is_legacy_grid(folder):
        check_output_folder(folder, written_by="cartokit grid")
    for name, _ in jobs:
        _check_run_folder((folder / "jobs" / name).resolve())
    folder.mkdir(parents=True, exist_ok=True)
    write_marker(folder, "cartokit grid", grid=str(Path(path).resolve()))
    status, tables = [], []
    with _sigterm_as_interrupt():  # Ctrl-C and SIGTERM stop the queue alike
        for i, (name, overrides) in enumerate(jobs, 1):
            job_dir = folder / "jobs" / name
            done = _read_json(job_dir / "run.json", {})
            say(f"=== job {i}/{len(jobs)}: {name}")
            tick = time.perf_counter()
            state, error = "done", ""
            if (
                not force
                and done.get("params") == json.loads(json.dumps(resolved[name], default=str))
                and (job_dir / "results.csv").is_file()
            ):
                state = "skipped (already done)"
                say("    already done; skipped (use --force to run it again)")
            else:
                try:
                    run_study(
                        job_dir,
                        preset=base,
                        overrides=overrides,
                        notebooks_dir=notebooks_dir,
                        kernel=kernel,
                        progress=progress,
                        log=say,
                    )
                except RunError as err:
                    state, error = "failed", str(err)
                    say(f"    failed: {err}")
            status.append(
                {
                    "job": name,
                    "status": state,
                    "seconds": round(time.perf_counter() - tick, 1),
                    "error": error,
                    **overrides,
                }
            )
            if state != "failed":
                table = pd.read_csv(job_dir / "results.csv")
                # the job's axes (and always the dataset and model) as leading columns
                job_columns = ["dataset", "model", *(k for k in grid_axes if k not in _LIST_PARAMS)]
                leading = {
                    "job": name,
                    **{k: resolved[name][k] for k in dict.fromkeys(job_columns)},
                }
                for position, (key, value) in enumerate(leading.items()):
                    table.insert(position, key, value)
                tables.append(table)
    results = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    with atomic_write(folder / "results.csv", "w") as fh:
        results.to_csv(fh, index=False)
    with atomic_write(folder / "jobs.csv", "w") as fh:
        pd.DataFrame(status).to_csv(fh, index=False)
    summary = [f"# Grid {Path(path).name}: {len(jobs)} jobs", ""]
    for job in status:
        summary.append(f"## {job['job']} ({job['status']})")
        summary.append("")
        part = results[results["job"] == job["job"]] if len(results) else results
        summary += [results_markdown(results_table(part)) if len(part) else job["error"], ""]
    with atomic_write(folder / "summary.md", "w") as fh:
        fh.write("\n".join(summary))
    failed = [s["job"] for s in status if s["status"] == "failed"]
    say(
        f"Grid results: {folder / 'results.csv'} ({len(results)} rows); "
        f"summary: {folder / 'summary.md'}"
    )
    if failed:
        raise RunError(
            f"{len(failed)} of {len(jobs)} grid jobs failed: {failed}. See {folder / 'jobs.csv'} "
            "and each job's .failed folder; run the grid again to retry them."
        )
    return results
