"""The review loop: order, the append-and-fsync log, resume after a kill, the test guardrail,
apply_review, and the widget driven from Python (no frontend under pytest)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from cartokit import TrainingDynamics
from cartokit.data import DataBundle, Split, from_arrays
from cartokit.review import (
    LOG_COLUMNS,
    ReviewSession,
    apply_review,
    read_decisions,
)

CLASSES = ["cat", "dog", "eel"]


def make_split(name="toy/train", n=12, offset=100, kind="image"):
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 3
    if kind == "text":
        return Split(
            name=name, inputs=[f"text {i}" for i in range(n)], labels=labels,
            ids=np.arange(n) + offset, class_names=CLASSES, kind="text",
        )  # fmt: skip
    return from_arrays(
        rng.random((n, 16)), labels, ids=np.arange(n) + offset, class_names=CLASSES, name=name,
        image_shape=(4, 4),
    )  # fmt: skip


def make_dynamics(split):
    """5 epochs; sample k's gold probability falls with k; class (label + 1) % 3 takes over."""
    n = len(split)
    logits = np.zeros((5, n, 3))
    other = (split.labels + 1) % 3
    for e in range(5):
        logits[e, np.arange(n), split.labels] = 2.0 - 0.4 * np.arange(n) * e / 4
        logits[e, np.arange(n), other] = 0.3 * np.arange(n) * e / 4
    return TrainingDynamics.from_logits(
        logits, split.labels, ids=split.ids, class_names=CLASSES, store_probs=True
    )


@pytest.fixture()
def train():
    return make_split()


@pytest.fixture()
def scores(train):
    return pd.Series(np.linspace(0.0, 1.1, len(train)), index=train.ids)


def log_rows(path):
    return Path(path).read_text().splitlines()


# ------------------------------------------------------------------------------ order and log


def test_suspects_in_order_of_suspicion(train, tmp_path):
    scores = pd.Series([0.5, np.nan, 0.9, 0.5, 0.1], index=train.ids[:5])
    session = ReviewSession(scores, tmp_path / "log.csv", data=train)
    assert session.ids == [102, 100, 103, 104, 101]  # ties keep their order, NaN last
    assert session.current == 102 and isinstance(session.current, int)
    limited = ReviewSession(scores, tmp_path / "b.csv", data=train, limit=2)
    assert limited.ids == [102, 100] and len(limited) == 2
    listed = ReviewSession([104, 100], tmp_path / "c.csv", data=train)
    assert listed.ids == [104, 100] and np.isnan(listed.item().score)


def test_each_decision_is_on_disk_before_decide_returns(train, scores, tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    log = tmp_path / "log.csv"
    session = ReviewSession(scores, log, data=train, limit=4)
    assert not log.exists()  # nothing written until the first decision
    session.decide("keep")
    assert log_rows(log)[0] == ",".join(LOG_COLUMNS)
    assert log_rows(log)[1].split(",")[1:] == ["111", "toy/train", "keep", "2", ""]
    file_syncs = len(synced)
    assert file_syncs >= 2  # the file, then the folder that now holds it
    session.decide("relabel", new_label="cat")
    assert log_rows(log)[2].split(",")[1:] == ["110", "toy/train", "relabel", "1", "0"]
    session.decide("drop")
    assert len(log_rows(log)) == 4 and len(synced) == file_syncs + 2  # one fsync per decision
    assert session.num_decided == 3 and session.current == 108


def test_reopening_resumes_at_the_first_undecided(train, scores, tmp_path):
    log = tmp_path / "log.csv"
    first = ReviewSession(scores, log, data=train, limit=5)
    first.decide("keep")
    first.skip()  # 110 stays undecided
    first.decide("drop")  # 109
    again = ReviewSession(scores, log, data=train, limit=5)
    assert again.current == 110 and again.num_decided == 2
    assert again.item(109).decision == "drop"
    again.decide("relabel", 0)
    assert again.current == 108
    assert read_decisions(log)["id"].tolist() == ["111", "109", "110"]


def test_back_and_go_to_change_a_decision(train, scores, tmp_path):
    log = tmp_path / "log.csv"
    session = ReviewSession(scores, log, data=train, limit=3)
    session.decide("drop")
    session.back()
    assert session.current == 111
    session.decide("keep")  # overrides the drop
    assert read_decisions(log).set_index("id").loc["111", "decision"] == "keep"
    assert len(read_decisions(log, latest=False)) == 2
    session.go_to(109)
    assert session.current == 109
    with pytest.raises(ValueError, match="is not one of the suspects"):
        session.go_to(5)


def test_done_and_accept_suggestions(train, scores, tmp_path):
    dyn = make_dynamics(train)
    session = ReviewSession(scores, tmp_path / "log.csv", data=train, dynamics=dyn, limit=4)
    item = session.item()
    assert item.suggested == (item.label + 1) % 3 and item.support > 0.5
    assert item.trajectory.shape == (5,) and item.suggested_trajectory.shape == (5,)
    assert session.accept_suggestions(2) == 2
    assert session.accept_suggestions() == 2 and session.done and session.current is None
    decisions = session.decisions.set_index("id")
    assert (decisions["decision"] == "relabel").all()
    assert (decisions["new_label"] == (decisions["label"] + 1) % 3).all()
    with pytest.raises(RuntimeError, match="the review is done"):
        session.decide("keep")
    with pytest.raises(RuntimeError, match="no current suspect"):
        session.item()


def test_decision_errors(train, scores, tmp_path):
    session = ReviewSession(scores, tmp_path / "log.csv", data=train)
    with pytest.raises(ValueError, match=r"The 'decision' parameter of ReviewSession.decide must"):
        session.decide("delete")
    with pytest.raises(ValueError, match=r"is the given label; decide 'keep' instead"):
        session.decide("relabel", 2)  # 111 is labelled 2
    with pytest.raises(ValueError, match=r"The 'new_label' parameter .* \[0, 3\) or a class name"):
        session.decide("relabel", "bird")
    with pytest.raises(ValueError, match="new_label goes with 'relabel' only"):
        session.decide("drop", 1)
    assert not (tmp_path / "log.csv").exists()  # rejected decisions write nothing
    with pytest.raises(ValueError, match=r"2 suspects are not in the data, e.g. \[1, 2\]"):
        ReviewSession([1, 2], tmp_path / "x.csv", data=train)
    with pytest.raises(ValueError, match="suspects repeat sample ids"):
        ReviewSession([100, 100], tmp_path / "x.csv", data=train)
    with pytest.raises(ValueError, match="The 'limit' parameter of ReviewSession"):
        ReviewSession(scores, tmp_path / "x.csv", data=train, limit=0)
    with pytest.raises(TypeError, match="must be a cartokit Split or DataBundle"):
        ReviewSession(scores, tmp_path / "x.csv", data=np.zeros(3))


# ------------------------------------------------------------------------------ kill and resume

CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np, pandas as pd
    from cartokit.data import from_arrays
    from cartokit.review import ReviewWidget

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


def test_a_torn_last_line_is_dropped_and_repaired(train, scores, tmp_path):
    log = tmp_path / "log.csv"
    session = ReviewSession(scores, log, data=train, limit=4)
    session.decide("keep")
    session.decide("drop")
    with open(log, "a") as fh:
        fh.write("2026-01-01T00:00:00+00:00,109,toy/tr")  # a kill in mid-write
    assert read_decisions(log)["id"].tolist() == ["111", "110"]
    with pytest.warns(UserWarning, match="ended in an incomplete line"):
        again = ReviewSession(scores, log, data=train, limit=4)
    assert again.current == 109
    again.decide("keep")
    assert log.read_text().splitlines()[-1].split(",")[1] == "109"
    assert len(read_decisions(log, latest=False)) == 3


def test_a_file_that_is_not_a_log(train, scores, tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="is not a cartokit review log"):
        ReviewSession(scores, path, data=train)
    with pytest.raises(FileNotFoundError, match="No review log"):
        read_decisions(tmp_path / "missing.csv")


# ------------------------------------------------------------------------------ test guardrail


def test_test_split_suspects_need_an_explicit_opt_in(tmp_path):
    test = make_split("toy/test")
    scores = pd.Series(np.arange(12.0), index=test.ids)
    with pytest.raises(
        ValueError, match=r"12 of the suspects are test samples \(split 'toy/test'\)"
    ):
        ReviewSession(scores, tmp_path / "log.csv", data=test)
    session = ReviewSession(scores, tmp_path / "log.csv", data=test, allow_test=True)
    session.decide("drop")
    with pytest.raises(ValueError, match="would drop or relabel test samples"):
        apply_review(test, tmp_path / "log.csv")
    assert len(apply_review(test, tmp_path / "log.csv", allow_test=True)) == 11
    assert len(session.apply()) == 11


def test_bundle_guardrail_and_apply(tmp_path):
    train, test = make_split("toy/train"), make_split("toy/test", offset=500)
    bundle = DataBundle("toy", train=train, test=test)
    mixed = pd.Series([0.9, 0.8], index=[100, 505])
    with pytest.raises(ValueError, match=r"1 of the suspects are test samples.*\[505\]"):
        ReviewSession(mixed, tmp_path / "log.csv", data=bundle)
    decisions = pd.DataFrame({"id": [100, 505, 101], "decision": ["drop", "keep", "relabel"],
                              "new_label": [None, None, 0]})  # fmt: skip
    cleaned = apply_review(bundle, decisions)  # keeping a test sample changes nothing: allowed
    assert len(cleaned.train) == 11 and len(cleaned.test) == 12
    assert cleaned.train.labels[0] == 0 and cleaned.train.frame["review"].iloc[0] == "relabel"
    decisions.loc[1, "decision"] = "drop"
    with pytest.raises(ValueError, match=r"1 decisions would drop or relabel test samples"):
        apply_review(bundle, decisions)
    assert len(apply_review(bundle, decisions, allow_test=True).test) == 11


# ------------------------------------------------------------------------------ apply_review


def test_apply_review(train, tmp_path):
    decisions = pd.DataFrame(
        {
            "id": [103, 104, 105, 104],
            "decision": ["keep", "drop", "relabel", "relabel"],
            "new_label": [None, None, 1, 2],
        }  # fmt: skip
    )
    cleaned = apply_review(train, decisions)
    assert len(cleaned) == 12  # 104's drop was overridden by a relabel
    frame = cleaned.frame.set_index(cleaned.ids)
    assert cleaned.labels[list(cleaned.ids).index(104)] == 2
    assert cleaned.labels[list(cleaned.ids).index(105)] == 1
    assert frame.loc[103, "review"] == "keep" and pd.isna(frame.loc[100, "review"])
    assert frame.loc[105, "given_label"] == 2
    assert train.labels[5] == 2  # the input is left as it was
    dropped = apply_review(train, decisions.iloc[:3])
    assert 104 not in dropped.ids and len(dropped) == 11 and dropped.name == train.name


def test_apply_review_errors(train):
    with pytest.raises(ValueError, match=r"1 decided ids are not in the data, e.g. \['7'\]"):
        apply_review(train, pd.DataFrame({"id": [7], "decision": ["drop"]}))
    with pytest.raises(ValueError, match=r"relabel decisions need a new_label in \[0, 3\)"):
        apply_review(train, pd.DataFrame({"id": [100], "decision": ["relabel"], "new_label": [5]}))
    with pytest.raises(ValueError, match="'decision' column .* must hold"):
        apply_review(train, pd.DataFrame({"id": [100], "decision": ["remove"]}))
    with pytest.raises(ValueError, match=r"needs the columns 'id' and 'decision'"):
        apply_review(train, pd.DataFrame({"id": [100]}))
    with pytest.raises(
        TypeError, match="must be a review log path, a DataFrame or a ReviewSession"
    ):
        apply_review(train, [("100", "drop")])
    with pytest.raises(TypeError, match="The 'data' parameter of apply_review"):
        apply_review(train.labels, pd.DataFrame({"id": [100], "decision": ["drop"]}))


# ------------------------------------------------------------------------------ the widget


def test_widget_buttons(train, scores, tmp_path):
    pytest.importorskip("ipywidgets")
    from cartokit.review import ReviewWidget

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


def test_widget_shows_text_and_works_from_an_explorer(tmp_path):
    pytest.importorskip("ipywidgets")
    from cartokit import compute_metrics
    from cartokit.review import ReviewWidget

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
