"""Deprecated: the study moved to :mod:`cartokit.study`, its figures to :mod:`cartokit.plot.study`.

Every public name of the old ``cartokit.pipeline`` still resolves here for one release, with a
:class:`DeprecationWarning` that names its new path, e.g. ``cartokit.pipeline.load_run`` warns
"cartokit.pipeline.load_run is deprecated; use cartokit.study.load_run". Two functions changed
shape and are forwarded through a thin adapter: ``build_model`` (now the registry's
:func:`cartokit.models.build_model` of :func:`cartokit.study.model_kind`) and ``read_metrics``
(now :func:`cartokit.io.read_metrics_table`).
"""

from __future__ import annotations

from typing import Any

from cartokit._deprecation import Moved, moved

__all__: list[str] = []

_STUDY = (
    "ABOVE_CHANCE_MARGIN FULL GITHUB_REPO INSTALL_SPEC NOTEBOOKS PAPER_SUBSETS Run RunError "
    "SUBSET_SELECTORS Terminated Subset TEXT_DATASETS above_chance add_regions build_subsets "
    "colab_badge colab_url default_kernel describe_bundle enable_colab_widgets expand_grid "
    "find_notebooks human_agreement load_config load_data load_preset load_run load_subsets "
    "metrics_table model_data notebook_parameters parse_overrides preset_names "
    "read_parameters_cell region_table resolve_params results_markdown results_table retrain "
    "rotate_images run_grid run_study save_results save_run save_subsets show_examples "
    "small_model_threads subsets_summary top_ids validate_params write_report"
).split()


def _build_model(model: str, split: Any, *, seed: int = 0, freeze_encoder: bool = True) -> Any:
    from cartokit.models import build_model
    from cartokit.study import model_kind

    return build_model(model_kind(model, split, freeze_encoder=freeze_encoder), split, seed=seed)


def _read_metrics(path: Any) -> Any:
    from cartokit.io import read_metrics_table

    return read_metrics_table(path, caller="read_metrics")


__getattr__ = moved(
    __name__,
    {
        **{name: f"cartokit.study.{name}" for name in _STUDY},
        "MODELS": "cartokit.study.STUDY_MODELS",
        "MODES": "cartokit.train.MODES",
        "PRESETS_DIR": "cartokit.study.params.PRESETS_DIR",
        "plot_fraction_curve": "cartokit.plot.study.plot_fraction_curve",
        "plot_human_scores": "cartokit.plot.study.plot_human_scores",
        "plot_results": "cartokit.plot.study.plot_results",
        "build_model": Moved(
            "cartokit.models.build_model",
            use="cartokit.models.build_model(cartokit.study.model_kind(model, split), split)",
            adapter=_build_model,
        ),
        "read_metrics": Moved(
            "cartokit.io.read_metrics_table",
            use="cartokit.io.read_metrics_table",
            adapter=_read_metrics,
        ),
    },
)
