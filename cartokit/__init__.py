"""cartokit: Dataset Cartography for the classifiers you train.

Record each training sample's gold-label probability while a model trains, compute
confidence, variability, correctness and more, split the data map into easy-to-learn,
ambiguous and hard-to-learn regions, and select subsets to retrain on.
"""

from __future__ import annotations

from typing import Any

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
from cartokit.detection import benchmark_detection
from cartokit.dynamics import TrainingDynamics
from cartokit.metrics import compute_metrics
from cartokit.mislabel import score_mislabeled, suggest_labels
from cartokit.noise import add_label_noise, inject_noise
from cartokit.regions import REGIONS, Thresholds, assign_regions, region_counts
from cartokit.selection import SELECTORS, select, select_mixture, selection_mask, subset
from cartokit.transfer import map_agreement

__version__ = "0.1.0"

__all__ = [
    "ReviewSession",
    "ReviewWidget",
    "apply_review",
    "benchmark_detection",
    "distill",
    "map_agreement",
    "score_mislabeled",
    "suggest_labels",
    "CNN",
    "DataMapExplorer",
    "MLP",
    "TextClassifier",
    "fit",
    "evaluate",
    "FitResult",
    "DataBundle",
    "Split",
    "add_label_noise",
    "from_arrays",
    "from_dataframe",
    "from_hf",
    "from_torch",
    "inject_noise",
    "load_dataset",
    "make_bundle",
    "plot_data_map",
    "plot_data_map_by_class",
    "plot_trajectories",
    "REGIONS",
    "SELECTORS",
    "DynamicsRecorder",
    "Thresholds",
    "TrainingDynamics",
    "__version__",
    "assign_regions",
    "compute_metrics",
    "read_allenai",
    "read_dynamics",
    "read_trustai",
    "region_counts",
    "select",
    "select_mixture",
    "selection_mask",
    "subset",
    "write_allenai",
    "write_metrics_csv",
]

# Names whose modules import torch or pyarrow: loaded on first use, so that `import cartokit`
# (and `cartokit --help`) stays quick.
_LAZY = {
    "DynamicsRecorder": "cartokit.recorder",
    "DataMapExplorer": "cartokit.widgets",
    "apply_review": "cartokit.review",
    "ReviewSession": "cartokit.review",
    "ReviewWidget": "cartokit.widgets",
    "distill": "cartokit.distillation",
    "fit": "cartokit.train",
    "evaluate": "cartokit.train",
    "FitResult": "cartokit.train",
    "MLP": "cartokit.models",
    "CNN": "cartokit.models",
    "TextClassifier": "cartokit.models",
    "plot_data_map": "cartokit.plot",
    "plot_data_map_by_class": "cartokit.plot",
    "plot_trajectories": "cartokit.plot",
    "read_allenai": "cartokit.io",
    "read_dynamics": "cartokit.io",
    "read_trustai": "cartokit.io",
    "write_allenai": "cartokit.io",
    "write_metrics_csv": "cartokit.io",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cartokit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
