"""The review panel (cartokit.widgets.ReviewWidget) driven from Python (no frontend under
pytest), and the log it writes surviving a killed kernel."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from review_samples import make_dynamics, make_split

from cartokit.data import from_arrays
from cartokit.review import ReviewSession, apply_review, read_decisions


@pytest.fixture()
def train():
    return make_split()


@pytest.fixture()
def scores(train):
    return pd.Series(np.linspace(0.0, 1.1, len(train)), index=train.ids)


# ------------------------------------------------------------------------------ kill and resume

CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np, pandas as pd
    from cartokit.data import from_arrays
    from cartokit.widgets import ReviewWidget

    folder = sys.argv[1]
    data = np.load(folder + "/data.npz")
    split = from_arrays(data["x"], data["y"], ids=data["ids"], name="toy/train")
    scores = pd.Series(data["scores"], index=split.ids)
    widget = ReviewWidget(scores, folder + "/review.csv", data=split)
    widget.keep_button.click()
    widget.relabel_to.value = 0
    widget.relabel_button.click()
    widget.drop_button.click()
    print("decided", widget.session.num_decided, flush=True)
    time.sleep(120)  # killed here: no clean shutdown, no close, no atexit
    """
)


def test_resume_after_the_kernel_is_killed(tmp_path):
    pytest.importorskip("ipywidgets")
    rng = np.random.default_rng(5)
    x, y, ids = rng.random((20, 4)), np.arange(20) % 3, np.arange(20) * 10
    scores = rng.random(20)
    np.savez(tmp_path / "data.npz", x=x, y=y, ids=ids, scores=scores)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = child.stdout.readline()
        assert line.strip() == "decided 3", child.stderr.read()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL

    split = from_arrays(x, y, ids=ids, name="toy/train")
    order = ids[np.argsort(-scores, kind="stable")]
    session = ReviewSession(pd.Series(scores, index=ids), tmp_path / "review.csv", data=split)
    decisions = session.decisions
    assert decisions["id"].tolist() == [str(i) for i in order[:3]]
    assert decisions["decision"].tolist() == ["keep", "relabel", "drop"]
    assert session.current == order[3] and session.num_decided == 3
    cleaned = apply_review(split, tmp_path / "review.csv")
    assert len(cleaned) == 19 and order[2] not in cleaned.ids
    assert cleaned.labels[list(cleaned.ids).index(order[1])] == 0


# ------------------------------------------------------------------------------ the widget


def test_widget_buttons(train, scores, tmp_path):
    pytest.importorskip("ipywidgets")
    from cartokit.widgets import ReviewWidget

    dyn = make_dynamics(train)
    log = tmp_path / "log.csv"
    widget = ReviewWidget(scores, log, data=train, dynamics=dyn, limit=3)
    assert "Suspect 1 of 3" in widget._header.value and "id 111" in widget._header.value
    assert widget.relabel_to.value == 0  # the suggestion: (2 + 1) % 3
    assert widget._sample_image.layout.display is None and widget._sample_image.value
    assert widget._trajectory.value[:4] == b"\x89PNG"
    widget.relabel_button.click()
    assert "Saved: id 111: relabel → 0" in widget._status.value
    widget.relabel_to.value = 1  # 110 is labelled 1: refused, shown, nothing written
    widget.relabel_button.click()
    assert "decide &#x27;keep&#x27; instead" in widget._status.value
    assert len(read_decisions(log)) == 1
    widget.keep_button.click()
    widget.back_button.click()
    assert "decided: <b>keep</b>" in widget._info.value
    widget.skip_button.click()
    widget.drop_button.click()
    assert "Review done" in widget._header.value and widget.keep_button.disabled
    assert widget._progress.value == 3
    assert read_decisions(log)["decision"].tolist() == ["relabel", "keep", "drop"]


def test_widget_images_are_shown_at_their_own_size_and_the_labels_in_words(train, scores, tmp_path):
    pytest.importorskip("ipywidgets")
    from cartokit.plot._style import png_size
    from cartokit.widgets import ReviewWidget

    dyn = make_dynamics(train)
    widget = ReviewWidget(scores, tmp_path / "log.csv", data=train, dynamics=dyn, limit=3)
    chart, image = widget._trajectory, widget._sample_image
    # The chart was 304 x 184 px at 80 dpi, stretched by the page to about 300 x 380; the
    # 4 x 4 sample was blown up to the 380 px width of its column.
    assert png_size(chart.value) == (420, 260)
    assert (chart.layout.width, chart.layout.height) == ("420px", "260px")
    assert png_size(image.value) == (160, 160)  # 4 x 4 pixels, each 40 x 40
    assert (image.layout.width, image.layout.height) == ("160px", "160px")
    assert "cartokit-review-chart" in chart._dom_classes
    item = widget.session.item()
    # "given label 2: eel · suggested 0: cat (0.60)" said neither what 0.60 is nor which is which
    assert widget._info.value == (
        "label in the data: <b>eel (2)</b> · suggested: <b>cat (0)</b> "
        f"(mean probability {item.support:.2f} over 5 checkpoints)"
    )


def test_widget_shows_text_and_works_from_an_explorer(tmp_path):
    pytest.importorskip("ipywidgets")
    from cartokit import compute_metrics
    from cartokit.widgets import ReviewWidget

    text = make_split(kind="text")
    dyn = make_dynamics(text)
    explorer = SimpleNamespace(metrics=compute_metrics(dyn), data=text, dynamics=dyn)
    widget = ReviewWidget.from_explorer(explorer, tmp_path / "log.csv", method="aum", limit=2)
    assert "text 11" in widget._sample_html.value  # the most suspicious snippet
    assert widget._sample_image.layout.display == "none"
    with pytest.raises(ValueError, match="the explorer has no data"):
        ReviewWidget.from_explorer(SimpleNamespace(data=None), tmp_path / "x.csv")
    with pytest.raises(ValueError, match="needs a log_path"):
        ReviewWidget(pd.Series([1.0], index=[100]), data=text)


def test_explorer_review_mode_walks_the_suspects_of_its_map(tmp_path):
    pytest.importorskip("bqplot")
    from cartokit import MLP, compute_metrics, fit, load_dataset, score_mislabeled
    from cartokit.widgets import DataMapExplorer

    bundle = load_dataset("digits")
    result = fit(MLP.from_split(bundle.train), bundle.train, epochs=3, progress=False)
    metrics = compute_metrics(result.dynamics)
    explorer = DataMapExplorer(metrics, data=bundle.train, dynamics=result.dynamics)
    widget = explorer.review(tmp_path / "review.csv", method="aum", limit=5)
    first = score_mislabeled(metrics, "aum").sort_values(ascending=False, kind="stable").index[0]
    assert widget.session.current == first


def test_the_old_path_warns_and_gives_the_same_widget():
    pytest.importorskip("ipywidgets")
    import cartokit.review
    from cartokit.widgets import ReviewWidget

    with pytest.warns(DeprecationWarning, match="use cartokit.widgets.ReviewWidget"):
        old = cartokit.review.ReviewWidget
    assert old is ReviewWidget
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        cartokit.review.Nope  # noqa: B018


def test_the_review_panel_needs_no_bqplot():
    pytest.importorskip("ipywidgets")
    code = (
        "import sys\n"
        "sys.modules['bqplot'] = sys.modules['bqplot_gl'] = None  # import now fails\n"
        "from cartokit.widgets import ReviewWidget\n"
        "from cartokit.widgets import DataMapExplorer\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 1, out.stderr
    # the review panel imported; the explorer says, in one line, what to install
    assert out.stderr.strip().splitlines()[-1] == (
        "ImportError: DataMapExplorer needs bqplot (and bqplot-gl for large maps). "
        "Install them with: pip install 'cartokit[widgets]'"
    )
