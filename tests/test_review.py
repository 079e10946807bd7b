"""The review loop: order, the append-and-fsync log, resume after a torn write, the test
guardrail and apply_review. The widget, and resuming after a killed kernel, are in
tests/widgets/test_review_widget.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from review_samples import make_dynamics, make_split

from cartokit.data import DataBundle
from cartokit.review import (
    LOG_COLUMNS,
    ReviewSession,
    apply_review,
    read_decisions,
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


def test_the_suggestion_says_what_its_support_is(train, scores, tmp_path):
    from cartokit import TrainingDynamics
    from cartokit.mislabel import suggest_labels

    dyn = make_dynamics(train)
    session = ReviewSession(scores, tmp_path / "log.csv", data=train, dynamics=dyn, limit=2)
    item = session.item()
    mean = float(dyn.probs[:, list(dyn.ids).index(item.id), item.suggested].mean())
    assert item.support == pytest.approx(mean)  # the suggested class's mean probability
    assert item.support_text == f"mean probability {mean:.2f} over 5 checkpoints"
    # Without recorded probabilities, the support is the share of checkpoints predicting it.
    votes = TrainingDynamics(
        ids=dyn.ids, labels=dyn.labels, gold_prob=dyn.gold_prob, margin=dyn.margin,
        sq_error=dyn.sq_error, pred=dyn.pred, num_classes=3, class_names=dyn.class_names,
    )  # fmt: skip
    item = ReviewSession(scores, tmp_path / "v.csv", data=train, dynamics=votes).item()
    share = float((dyn.pred[:, list(dyn.ids).index(item.id)] == item.suggested).mean())
    assert item.support == pytest.approx(share)
    assert item.support_text == f"predicted at {share:.0%} of checkpoints"
    given = suggest_labels(dyn)
    item = ReviewSession(scores, tmp_path / "g.csv", data=train, suggestions=given).item()
    assert item.support_text == f"support {item.support:.2f}"  # someone else's table: its name
    assert ReviewSession(scores, tmp_path / "n.csv", data=train).item().support_text is None


def test_apply_review_before_any_decision_returns_the_data_with_a_warning(train, scores, tmp_path):
    log = tmp_path / "review.csv"
    ReviewSession(scores, log, data=train)  # as explorer.review(...) opens it: no log yet
    with pytest.warns(UserWarning, match=r"^apply_review: no decisions to apply: the review log "
                      r".*review.csv does not exist yet \(a review writes it at its first "
                      r"decision\); the data is returned unchanged\.$"):  # fmt: skip
        cleaned = apply_review(train, log)
    assert cleaned.ids.tolist() == train.ids.tolist()
    assert cleaned.labels.tolist() == train.labels.tolist()
    bundle = DataBundle("toy", train=train, test=make_split("toy/test", offset=500))
    log.write_text("")
    with pytest.warns(UserWarning, match="the review log .* is empty"):
        same = apply_review(bundle, log)
    assert len(same.train) == len(train) and len(same.test) == 12
    assert not log.read_text()  # read, never written
    with pytest.raises(FileNotFoundError, match="No review log"):
        read_decisions(tmp_path / "missing.csv")  # the reader still says it is missing


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


def test_the_review_loop_imports_no_widget_toolkit():
    code = "import sys, cartokit.review; print(sorted({'ipywidgets', 'bqplot'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr
