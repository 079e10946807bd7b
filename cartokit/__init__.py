"""cartokit: Dataset Cartography for the models you train.

Record each training sample's gold-label probability while a model trains, compute
confidence, variability, correctness and more, split the data map into easy-to-learn,
ambiguous and hard-to-learn regions, and select subsets to retrain on.

This namespace holds the core: record, the dynamics, metrics, regions, selection, figures,
data, training and the mislabel scores. The rest lives in namespaces named for their job:
:mod:`cartokit.widgets` (the live explorer and the review panel), :mod:`cartokit.review` (the
decision log), :mod:`cartokit.detection` (the mislabel benchmark), :mod:`cartokit.transfer`
(small-to-large maps), :mod:`cartokit.distillation`, :mod:`cartokit.study` (the notebooks' steps
and ``cartokit run``), :mod:`cartokit.models`, :mod:`cartokit.io`, :mod:`cartokit.noise` and
:mod:`cartokit.integrations` (HF Trainer, Lightning). ``ARCHITECTURE.md`` maps them.
"""

from __future__ import annotations

import importlib
from typing import Any

from cartokit._deprecation import moved

__version__ = "0.1.0"

__all__ = [
    # record, and read what other tools recorded
    "DynamicsRecorder",
    "SequenceRecorder",
    "TrainingDynamics",
    "read_allenai",
    "read_dynamics",
    "read_trustai",
    "write_allenai",
    "write_metrics_csv",
    # records beyond memory, and merged maps
    "open_dynamics",
    "merge_dynamics",
    # metrics, regions, selection
    "compute_metrics",
    "REGIONS",
    "Thresholds",
    "assign_regions",
    "region_counts",
    "SELECTORS",
    "select",
    "select_mixture",
    "select_s2l",
    "selection_mask",
    "subset",
    # figures
    "plot_data_map",
    "plot_data_map_by_class",
    "plot_trajectories",
    # data
    "DataBundle",
    "Split",
    "from_arrays",
    "from_dataframe",
    "from_hf",
    "from_torch",
    "inject_noise",
    "load_dataset",
    "make_bundle",
    # training
    "CNN",
    "MLP",
    "TextClassifier",
    "FitResult",
    "evaluate",
    "fit",
    # mislabel scores
    "score_mislabeled",
    "suggest_labels",
    "__version__",
]

# Every public name loads its module on first use, so that `import cartokit` imports neither
# torch, matplotlib nor pandas, and `cartokit --help` and `cartokit metrics` stay quick.
_LAZY = {
    "DataBundle": "cartokit.data",
    "Split": "cartokit.data",
    "from_arrays": "cartokit.data",
    "from_dataframe": "cartokit.data",
    "from_hf": "cartokit.data",
    "from_torch": "cartokit.data",
    "load_dataset": "cartokit.data",
    "make_bundle": "cartokit.data",
    "TrainingDynamics": "cartokit.dynamics",
    "compute_metrics": "cartokit.metrics",
    "score_mislabeled": "cartokit.mislabel",
    "suggest_labels": "cartokit.mislabel",
    "inject_noise": "cartokit.noise",
    "REGIONS": "cartokit.regions",
    "Thresholds": "cartokit.regions",
    "assign_regions": "cartokit.regions",
    "region_counts": "cartokit.regions",
    "select_s2l": "cartokit.s2l",
    "SELECTORS": "cartokit.selection",
    "select": "cartokit.selection",
    "select_mixture": "cartokit.selection",
    "selection_mask": "cartokit.selection",
    "subset": "cartokit.selection",
    "DynamicsRecorder": "cartokit.recorder",
    "SequenceRecorder": "cartokit.sequence",
    "read_allenai": "cartokit.io",
    "read_dynamics": "cartokit.io",
    "read_trustai": "cartokit.io",
    "write_allenai": "cartokit.io",
    "write_metrics_csv": "cartokit.io",
    "open_dynamics": "cartokit.store",
    "merge_dynamics": "cartokit.merge",
    "plot_data_map": "cartokit.plot",
    "plot_data_map_by_class": "cartokit.plot",
    "plot_trajectories": "cartokit.plot",
    "CNN": "cartokit.models",
    "MLP": "cartokit.models",
    "TextClassifier": "cartokit.models",
    "FitResult": "cartokit.train",
    "evaluate": "cartokit.train",
    "fit": "cartokit.train",
}

# Names that left the core namespace in 0.1's redesign: they resolve, with a warning that
# names their home, for one release.
_moved = moved(
    "cartokit",
    {
        "DataMapExplorer": "cartokit.widgets.DataMapExplorer",
        "ReviewWidget": "cartokit.widgets.ReviewWidget",
        "ReviewSession": "cartokit.review.ReviewSession",
        "apply_review": "cartokit.review.apply_review",
        "benchmark_detection": "cartokit.detection.benchmark_detection",
        "distill": "cartokit.distillation.distill",
        "map_agreement": "cartokit.transfer.map_agreement",
        "add_label_noise": "cartokit.noise.inject_noise",
    },
)


# Submodules that `import cartokit` once imported eagerly: `cartokit.metrics` and the like still
# resolve after a bare `import cartokit`, importing the module on first use.
_SUBMODULES = frozenset(
    {"_files", "_validation", "data", "dynamics", "metrics", "mislabel", "noise", "regions"}
    | {"s2l", "selection"}
)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    return _moved(name)


def __dir__() -> list[str]:
    return sorted(__all__)
