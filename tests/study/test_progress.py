"""cartokit.train.progress: bars that end in a clean state in executed notebooks (the study's
runner starts its kernels with CARTOKIT_PROGRESS=log)."""

from __future__ import annotations

import io

import pytest

from cartokit.train.progress import PROGRESS_ENV, progress_bar, progress_mode


def test_log_mode_prints_one_final_line_per_bar_that_stays(monkeypatch):
    monkeypatch.setenv(PROGRESS_ENV, "log")
    out = io.StringIO()
    bar = progress_bar(total=3, desc="fit", unit="epoch", file=out)
    for epoch in range(3):
        for _ in progress_bar(range(5), desc=f"epoch {epoch + 1}/3", leave=False, file=out):
            pass
        bar.set_postfix({"acc": "0.9"})  # tqdm redraws on this by default: nothing here
        bar.update()
    assert out.getvalue() == ""  # nothing while it runs, not even 0 %
    bar.close()
    (line,) = out.getvalue().splitlines()
    assert line.startswith("fit: 100%|") and " 3/3 [" in line and "acc=0.9" in line
    assert "\r" not in out.getvalue()


def test_disabled_and_off_bars_print_nothing(monkeypatch, capsys):
    for _ in progress_bar(range(3), desc="quiet", disable=True, mode="log"):
        pass
    monkeypatch.setenv(PROGRESS_ENV, "off")
    for _ in progress_bar(range(3), desc="off"):
        pass
    assert capsys.readouterr() == ("", "")


def test_auto_is_tqdm_own_bar(monkeypatch):
    from tqdm.auto import tqdm

    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    assert progress_mode() == "auto"
    assert type(progress_bar(range(1), disable=True)) is tqdm


def test_a_bad_mode_is_one_line(monkeypatch):
    monkeypatch.setenv(PROGRESS_ENV, "loud")
    with pytest.raises(
        ValueError,
        match=r"^The environment variable CARTOKIT_PROGRESS must be one of \['auto', 'log', "
        r"'off'\]. Got 'loud' instead.$",
    ):
        progress_bar(range(1))
