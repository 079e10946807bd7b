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
from cartokit.data import (
    DataBundle,
    Split,
    from_arrays,
    from_dataframe,
    from_hf,
    from_torch,
    load_dataset,
    make_bundle,
)
from cartokit.dynamics import TrainingDynamics
from cartokit.metrics import compute_metrics
from cartokit.mislabel import score_mislabeled, suggest_labels
from cartokit.noise import inject_noise
from cartokit.regions import REGIONS, Thresholds, assign_regions, region_counts
from cartokit.s2l import select_s2l
from cartokit.selection import SELECTORS, select, select_mixture, selection_mask, subset

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

# Names whose modules import torch, pyarrow or matplotlib: loaded on first use, so that
# `import cartokit` (and `cartokit --help`) stays quick.
_LAZY = {
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


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    return _moved(name)


def __dir__() -> list[str]:
    return sorted(__all__)
