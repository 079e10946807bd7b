"""Dataset Cartography studies end to end: the steps behind notebooks 01-04 and ``cartokit run``.

A *study* follows Swayamdipta et al. (2020), "Dataset Cartography: Mapping and Diagnosing
Datasets with Training Dynamics", EMNLP: train a model while recording its training dynamics
(notebook 01), map the training set (02), select subsets by the map (03), and retrain fresh
models on each subset to compare them in and out of distribution, as in the paper's Table 1
(04). The notebooks stay thin: each step is one or two calls into this package, so the same code
runs in Jupyter, under papermill and in the tests. Its files, in the order a study uses them:

* ``params.py``: the one schema of the notebooks' parameters (:func:`validate_params`), presets,
  config files and ``-p`` overrides (:func:`resolve_params`);
* ``data.py``: :func:`load_data`, :func:`model_data` (the embedding cache), :func:`metrics_table`;
* ``rundir.py``: the run folder: :func:`save_run`, :func:`load_run` (a :class:`Run`),
  :func:`save_subsets`, and how a run replaces one safely;
* ``steps.py``: :func:`model_kind`, :func:`add_regions`, :func:`region_table`,
  :func:`show_examples`, :func:`human_agreement`, :func:`build_subsets`, :func:`retrain`;
* ``report.py``: :func:`results_table`, :func:`results_markdown`, :func:`write_report`;
* ``runner.py``: :func:`run_study` (papermill, ``cartokit run``) and :func:`run_grid`
  (``cartokit grid``);
* ``colab.py``: the notebooks' Colab badges and widget manager.

The study's figures are in :mod:`cartokit.plot.study`.
"""

from cartokit.study.colab import (
    GITHUB_REPO,
    INSTALL_SPEC,
    colab_badge,
    colab_url,
    enable_colab_widgets,
)
from cartokit.study.data import (
    DATA_PARAMS,
    bundle_of,
    check_data,
    describe_bundle,
    load_data,
    metrics_table,
    model_data,
    rotate_images,
)
from cartokit.study.params import (
    FULL,
    NOTEBOOKS,
    PAPER_SUBSETS,
    SCHEMA,
    STUDIES,
    STUDY_MODELS,
    SUBSET_SELECTORS,
    TEXT_DATASETS,
    find_notebooks,
    load_config,
    load_preset,
    notebook_parameters,
    parse_overrides,
    preset_names,
    read_parameters_cell,
    resolve_params,
    study_of,
    validate_params,
)
from cartokit.study.report import (
    ABOVE_CHANCE_MARGIN,
    above_chance,
    results_markdown,
    results_table,
    save_results,
    write_report,
)
from cartokit.study.rundir import (
    Run,
    Subset,
    Terminated,
    load_run,
    load_subsets,
    save_run,
    save_subsets,
)
from cartokit.study.runner import (
    RunError,
    default_kernel,
    execute_notebook,
    expand_grid,
    run_grid,
    run_study,
)
from cartokit.study.steps import (
    add_regions,
    build_subsets,
    human_agreement,
    model_kind,
    region_table,
    retrain,
    show_examples,
    small_model_threads,
    subsets_summary,
    top_ids,
)

__all__ = [
    "ABOVE_CHANCE_MARGIN",
    "DATA_PARAMS",
    "FULL",
    "GITHUB_REPO",
    "INSTALL_SPEC",
    "NOTEBOOKS",
    "PAPER_SUBSETS",
    "Run",
    "RunError",
    "SCHEMA",
    "STUDIES",
    "STUDY_MODELS",
    "SUBSET_SELECTORS",
    "Subset",
    "TEXT_DATASETS",
    "Terminated",
    "above_chance",
    "add_regions",
    "build_subsets",
    "bundle_of",
    "check_data",
    "colab_badge",
    "colab_url",
    "default_kernel",
    "describe_bundle",
    "enable_colab_widgets",
    "execute_notebook",
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
    "model_kind",
    "notebook_parameters",
    "parse_overrides",
    "preset_names",
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
    "study_of",
    "subsets_summary",
    "top_ids",
    "validate_params",
    "write_report",
]
