"""Read and write training dynamics in other tools' file layouts, and metrics tables.

Three formats of training dynamics are understood:

* ``"allenai"`` (:mod:`.allenai`): the layout of allenai/cartography (Swayamdipta et al.,
  2020): a folder ``training_dynamics/`` holding ``dynamics_epoch_<e>.jsonl`` files, one JSON
  object per line, ``{"guid": ..., "logits_epoch_<e>": [C floats], "gold": <int>}``.
* ``"trustai"`` (:mod:`.trustai`): the training-signal file of TrustAI's data-map tutorial: one
  ``.jsonl`` file, one line per sample per recorded step,
  ``{'id': ..., 'label': ..., 'pred_label': ..., 'correct': ..., 'loss': ..., 'probs': [...],
  'label_probs': ...}``.
* ``"cartokit"``: the ``.npz`` file written by :meth:`TrainingDynamics.save`.
* ``"store"``: the folder of a store (:mod:`cartokit.store`), read lazily by
  :func:`~cartokit.store.open_dynamics`.

:func:`read_dynamics` reads any of them, telling them apart with :func:`detect_format`.
Metrics tables (:mod:`.tables`): :func:`write_metrics_csv` and :func:`read_metrics_table`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from cartokit.dynamics import TrainingDynamics
from cartokit.io import allenai, trustai
from cartokit.io._reading import check_regular
from cartokit.io.allenai import read_allenai, write_allenai
from cartokit.io.tables import read_metrics_table, write_metrics_csv, write_metrics_parquet
from cartokit.io.trustai import read_trustai
from cartokit.store import is_store, open_dynamics

__all__ = [
    "FORMATS",
    "detect_format",
    "read_allenai",
    "read_dynamics",
    "read_metrics_table",
    "read_trustai",
    "write_allenai",
    "write_metrics_csv",
    "write_metrics_parquet",
]

#: The formats :func:`read_dynamics` reads.
FORMATS = ("allenai", "trustai", "cartokit", "store")

_ZIP_MAGIC = b"PK\x03\x04"
_CARTOKIT_LAYOUT = "a .npz file written by TrainingDynamics.save"


def detect_format(path: str | os.PathLike[str]) -> str:
    """Tell which training-dynamics format ``path`` holds: "allenai", "trustai" or "cartokit".

    * ``"allenai"``: a folder with ``dynamics_epoch_<e>.jsonl`` files, directly or in
      ``training_dynamics/``;
    * ``"trustai"``: a ``.jsonl``/``.json`` file (or a folder with exactly one) whose first line
      has ``id``, ``label`` and ``probs``;
    * ``"cartokit"``: a file starting with the zip magic bytes (the ``.npz`` of
      :meth:`TrainingDynamics.save`);
    * ``"store"``: a folder with a store's ``store.json`` (:mod:`cartokit.store`).

    Detection reads at most the first 64 KiB of a file, whatever its size.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When the format is none of these (the message describes each), or when ``path`` is a
        device, pipe or socket rather than a file or folder.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> dyn = TrainingDynamics.from_logits(np.zeros((3, 2, 2)), [0, 1])
    >>> detect_format(dyn.save(os.path.join(tempfile.mkdtemp(), "dyn.npz")))
    'cartokit'
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"detect_format: {path} does not exist.")
    check_regular(path, "detect_format")
    if path.is_dir():
        if is_store(path):
            return "store"
        if allenai.find_epoch_files(path / allenai.DYNAMICS_DIR) or allenai.find_epoch_files(path):
            return "allenai"
        found = [p for p in path.iterdir() if p.is_file() and p.suffix in (".jsonl", ".json")]
        if len(found) == 1 and _looks_trustai(found[0]):
            return "trustai"
    else:
        with open(path, "rb") as fh:
            if fh.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC:
                return "cartokit"
        if allenai.EPOCH_FILE.fullmatch(path.name):
            raise ValueError(
                f"detect_format: {path} is one epoch file of the allenai layout; pass its folder "
                f"{path.parent} to read every epoch."
            )
        if _looks_trustai(path):
            return "trustai"
    raise ValueError(
        f"detect_format: cannot tell the format of {path}. cartokit reads 'allenai' "
        f"({allenai.LAYOUT}), 'trustai' ({trustai.LAYOUT}) and 'cartokit' ({_CARTOKIT_LAYOUT}). "
        "Convert the file to one of them, or pass format= if detection got it wrong."
    )


#: Bytes that format detection reads from a file. A TrustAI line is about 20 bytes per class, so
#: whole lines of up to ~3,000 classes fit; a longer first line is judged by its opening keys.
_SNIFF_BYTES = 64 * 1024
#: The start of a TrustAI line: a dict whose keys before the long probability list include
#: 'id' and 'label' (TrustAI writes id, label, pred_label, correct, loss, probs, label_probs).
_TRUSTAI_KEY = r"""[{,]\s*["']%s["']\s*:"""


def _read_head(file: Path, limit: int = _SNIFF_BYTES) -> bytes:
    """At most ``limit`` bytes from the start of ``file``: all that detection ever looks at."""
    with open(file, "rb") as fh:
        return fh.read(limit)


def _looks_trustai(file: Path) -> bool:
    head = _read_head(file)
    lines = head.split(b"\n")
    whole = len(lines) > 1 or len(head) < _SNIFF_BYTES  # the last piece may be cut at the limit
    for k, line in enumerate(lines):
        if not line.strip():
            continue
        text = line.decode("utf-8", errors="replace").strip()
        if k < len(lines) - 1 or whole:
            record = trustai.parse_line(text)
            return record is not None and {"id", "label", "probs"} <= record.keys()
        # One line longer than the sniff: judge by the keys written before the probabilities.
        return text.startswith("{") and all(
            re.search(_TRUSTAI_KEY % key, text) for key in ("id", "label", "probs")
        )
    return False


def read_dynamics(
    path: str | os.PathLike[str],
    *,
    format: str = "auto",
    class_names: list[str] | None = None,
) -> TrainingDynamics:
    """Read training dynamics from any supported format.

    Parameters
    ----------
    path : path-like
        An allenai run folder, a TrustAI signal file, a cartokit ``.npz``, or a store's folder
        (opened lazily, :func:`~cartokit.store.open_dynamics`).
    format : {"auto", "allenai", "trustai", "cartokit", "store"}, default "auto"
        "auto" uses :func:`detect_format`.
    class_names : list of str, optional
        Names of the classes (replacing any stored in a cartokit file).

    Returns
    -------
    TrainingDynamics

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> dyn = TrainingDynamics.from_logits(np.zeros((3, 2, 2)), [0, 1], store_probs=True)
    >>> run = write_allenai(dyn, tempfile.mkdtemp()).parent
    >>> read_dynamics(run, class_names=["neg", "pos"])
    TrainingDynamics(num_samples=2, num_epochs=3, num_classes=2, class_names=['neg', 'pos'])
    """
    if format not in ("auto", *FORMATS):
        raise ValueError(
            "The 'format' parameter of read_dynamics must be one of 'auto', 'allenai', "
            f"'trustai', 'cartokit', 'store'. Got {format!r} instead."
        )
    chosen = detect_format(path) if format == "auto" else format
    if chosen == "allenai":
        return read_allenai(path, class_names=class_names)
    if chosen == "trustai":
        return read_trustai(path, class_names=class_names)
    if chosen == "store":
        return open_dynamics(path, class_names=class_names)
    dyn = TrainingDynamics.load(path)
    if class_names is None:
        return dyn
    return TrainingDynamics(
        ids=dyn.ids,
        labels=dyn.labels,
        gold_prob=dyn.gold_prob,
        margin=dyn.margin,
        sq_error=dyn.sq_error,
        pred=dyn.pred,
        num_classes=dyn.num_classes,
        class_names=class_names,
        probs=dyn.probs,
    )
