"""cartokit.io: format detection and read_dynamics over the three formats."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from dynamics_files import base_rows, trustai_line, write_run

from cartokit.dynamics import TrainingDynamics
from cartokit.io import detect_format, read_dynamics, write_allenai

# ----------------------------------------------------------------------------- dispatch


def test_detect_and_read_all_three_formats(tmp_path: Path) -> None:
    rng = np.random.default_rng(15)
    logits = rng.normal(size=(3, 4, 2))
    dyn = TrainingDynamics.from_logits(logits, [0, 1, 1, 0], ids=[10, 11, 12, 13], store_probs=True)

    folder = write_allenai(dyn, tmp_path / "allenai")
    npz = dyn.save(tmp_path / "dyn.npz")
    trust = tmp_path / "trust" / "output_data.json"
    trust.parent.mkdir()
    trust.write_text(
        "\n".join(
            trustai_line(int(i), int(y), dyn.probs[e, n].tolist())
            for e in range(3)
            for n, (i, y) in enumerate(zip(dyn.ids, dyn.labels, strict=True))
        )
    )
    cases = {
        folder.parent: "allenai",
        folder: "allenai",
        trust: "trustai",
        trust.parent: "trustai",
        npz: "cartokit",
    }
    for path, fmt in cases.items():
        assert detect_format(path) == fmt, path
        back = read_dynamics(path)
        assert back.ids.tolist() == [10, 11, 12, 13]
        np.testing.assert_allclose(back.gold_prob, dyn.gold_prob, atol=1e-6)
        assert read_dynamics(path, format=fmt).num_epochs == 3
    named = read_dynamics(npz, class_names=["a", "b"])
    assert named.class_names == ["a", "b"]


def test_unknown_formats_and_bad_arguments(tmp_path: Path) -> None:
    csv = tmp_path / "metrics.csv"
    csv.write_text("id,confidence\n1,0.5\n")
    with pytest.raises(
        ValueError, match=r"cannot tell the format.*'allenai'.*'trustai'.*'cartokit'"
    ):
        read_dynamics(csv)
    with pytest.raises(ValueError, match="cannot tell the format"):
        detect_format(tmp_path)  # a folder with only a CSV in it
    with pytest.raises(FileNotFoundError, match="does not exist"):
        detect_format(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"The 'format' parameter of read_dynamics must be one of"):
        read_dynamics(csv, format="csv")
    run = write_run(tmp_path / "run", base_rows())
    with pytest.raises(ValueError, match="one epoch file of the allenai layout; pass its folder"):
        detect_format(run / "training_dynamics" / "dynamics_epoch_0.jsonl")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean run raises no warning
        assert read_dynamics(run, format="allenai").num_samples == 5
