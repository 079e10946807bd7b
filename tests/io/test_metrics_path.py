"""``cartokit metrics`` on allenai and TrustAI files: no torch, and the same table as before.

Until issue 14 the readers built their records with torch (``checkpoint_stats``), which cost
about a second of import; now they use its numpy twin. These tests hold the new path to the
old one, rebuilt here with torch, on small random files of both formats.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dynamics_files import trustai_line

from cartokit.cli import main
from cartokit.dynamics import TrainingDynamics
from cartokit.io import write_allenai, write_metrics_csv
from cartokit.metrics import compute_metrics

INTEGER_COLUMNS = [
    "label",
    "correctness",  # a count over checkpoints: it changes only if an argmax does
    "forgetting",
    "learned_events",
    "first_learned_epoch",
    "never_learned",
    "predicted_label",
    "num_observed",
]


def _allenai(root: Path, rng: np.random.Generator) -> tuple[Path, np.ndarray, np.ndarray]:
    logits = rng.normal(scale=3.0, size=(5, 300, 4)).astype(np.float32)
    labels = rng.integers(0, 4, size=300)
    dyn = TrainingDynamics.from_logits(logits, labels, ids=[f"s{i}" for i in range(300)])
    return write_allenai(dyn, root, logits=logits).parent, logits, labels


def _trustai(root: Path, rng: np.random.Generator) -> tuple[Path, np.ndarray, np.ndarray]:
    probs = rng.dirichlet(np.ones(3) * 0.7, size=(6, 300)).astype(np.float32)
    labels = rng.integers(0, 3, size=300)
    path = root / "output_data.json"
    lines = [
        trustai_line(i, int(labels[i]), probs[e, i].tolist()) for e in range(6) for i in range(300)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path, probs, labels


def _old_torch_table(scores: np.ndarray, labels: np.ndarray, ids, kind: str) -> pd.DataFrame:
    """The table as cartokit computed it before issue 14: torch's kernel on float32 scores,
    probabilities through a float32 log."""
    import torch

    from cartokit.metrics import checkpoint_stats

    x = torch.as_tensor(np.ascontiguousarray(scores)).to(torch.float32)
    if kind == "probs":
        x = torch.log((x / x.sum(dim=2, keepdim=True)).clamp_min(np.finfo(np.float32).tiny))
    y = torch.from_numpy(labels)
    stats = [checkpoint_stats(x[e], y) for e in range(x.shape[0])]
    gold, margin, sq_err, pred = (torch.stack([s[k] for s in stats]).numpy() for k in range(4))
    dyn = TrainingDynamics(
        ids=ids,
        labels=labels,
        gold_prob=gold,
        margin=margin,
        sq_error=sq_err,
        pred=pred,
        num_classes=x.shape[2],
    )
    return compute_metrics(dyn)


@pytest.mark.parametrize("fmt", ["allenai", "trustai"])
def test_cartokit_metrics_writes_the_table_of_the_old_torch_path(tmp_path, fmt, capsys):
    rng = np.random.default_rng(14)
    if fmt == "allenai":
        source, scores, labels = _allenai(tmp_path, rng)
        ids, kind = [f"s{i}" for i in range(300)], "logits"
    else:
        source, scores, labels = _trustai(tmp_path, rng)
        ids, kind = list(range(300)), "probs"
    assert main(["metrics", str(source), "-o", str(tmp_path / "new.csv")]) == 0
    capsys.readouterr()
    write_metrics_csv(_old_torch_table(scores, labels, ids, kind), tmp_path / "old.csv")
    new, old = (pd.read_csv(tmp_path / f"{n}.csv", index_col="id") for n in ("new", "old"))
    assert new.columns.tolist() == old.columns.tolist()
    assert new.index.tolist() == old.index.tolist()
    pd.testing.assert_frame_equal(new[INTEGER_COLUMNS], old[INTEGER_COLUMNS])
    floats = [c for c in new.columns if c not in INTEGER_COLUMNS]
    # float32 rounding; torch's own exp is, in some processes, off by up to 1.5e-4 relative
    np.testing.assert_allclose(new[floats], old[floats], rtol=5e-4, atol=1e-6)
    # the numbers themselves: well within that, most columns to a few float32 ulps
    assert np.median(np.abs(new["confidence"] - old["confidence"])) < 1e-6


@pytest.mark.parametrize("fmt", ["allenai", "trustai"])
def test_cartokit_metrics_imports_neither_torch_nor_matplotlib(tmp_path, fmt):
    rng = np.random.default_rng(1)
    source = (_allenai if fmt == "allenai" else _trustai)(tmp_path, rng)[0]
    code = (
        "import sys\n"
        "from cartokit.cli import main\n"
        f"assert main(['metrics', {str(source)!r}, '-o', {str(tmp_path / 'm.csv')!r}]) == 0\n"
        "heavy = sorted(m for m in ('torch', 'matplotlib') if m in sys.modules)\n"
        "assert not heavy, f'imported {heavy}'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "m.csv").stat().st_size > 0
