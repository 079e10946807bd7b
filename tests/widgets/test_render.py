"""The HTML and PNG the widgets show: a sample, the counts table, the legend, status lines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("bqplot")

from cartokit.plot._style import png_size  # noqa: E402
from cartokit.widgets._columns import Column, ColumnModel  # noqa: E402
from cartokit.widgets._render import (  # noqa: E402
    MAX_CLASS_ROWS,
    MAX_UNSCROLLED_ROWS,
    TRAJECTORY_SIZE,
    counts_table,
    describe,
    legend,
    sample_view,
    status_html,
    trajectory_png,
)

PNG = b"\x89PNG\r\n\x1a\n"


def test_sample_view_of_text_image_and_vector():
    text, png = sample_view("a <b> & c", css_class="k", max_height=99)
    assert png is None
    assert "class='k'" in text and "max-height:99px" in text and "a &lt;b&gt; &amp; c" in text
    text, png = sample_view(np.eye(8), css_class="k", max_height=99, image_size=160)
    assert text == "" and png.startswith(PNG)
    text, png = sample_view(np.arange(5), css_class="k", max_height=99, max_values=3)
    assert png is None and text == "<code>[0, 1, 2, …]</code>"  # cut: says so
    text, _ = sample_view(np.array([0.5, 2.0]), css_class="k", max_height=99)
    assert text == "<code>[0.500, 2.000]</code>"


def test_counts_table_sums_the_classes_past_the_row_limit():
    k = MAX_CLASS_ROWS + 3  # one easy sample per class, and two without a region
    metrics = pd.DataFrame(
        {
            "confidence": [0.9] * k + [np.nan, np.nan],
            "variability": 0.0,
            "label": [*range(k), 0, 1],
        }
    )
    model = ColumnModel(metrics)
    model.set_axes("variability", "confidence")
    model.set_filter(column="label", op="<=", value=8, max_points=5)
    model.select(metrics.index[[0, 1, 2, 34]])
    html = counts_table(model)
    assert f"<span class='cartokit-count'>{k}</span>" in html  # easy, over all classes
    assert html.count("<tr data-class=") == MAX_CLASS_ROWS
    assert "<tr><td>3 more classes</td><td style='text-align:right;padding:0 6px'>3</td>" in html
    assert "shown 9 of 35 (5 drawn)" in html and "2 without a region" in html
    assert "<span class='cartokit-selected'>4</span>" in html


def test_legend_of_categories_and_of_a_number():
    categorical = legend("kind", Column(np.zeros(2), ["a", "<b>"]), ["#111111", "#222222"], 0, 2)
    assert "background:#111111'></span> a" in categorical and "&lt;b&gt;" in categorical
    numeric = legend("aum", Column(np.zeros(2)), ["#000000", "#ffffff"], -1.5, 2.25)
    assert "linear-gradient(to right, #000000, #ffffff)" in numeric
    assert "<span>-1.5</span>" in numeric and "<span>2.25</span>" in numeric


def test_status_is_escaped_and_red_for_errors():
    assert status_html("<x>", error=True) == "<span style='color:#b00020'>&lt;x&gt;</span>"
    assert "#1b5e20" in status_html("ok")


def test_trajectory_png_is_drawn_at_the_size_it_is_shown():
    gold = np.linspace(0.2, 0.9, 5)
    assert trajectory_png(gold, label_name="cat").startswith(PNG)
    both = trajectory_png(gold, label_name="cat", suggested=1 - gold, suggested_name="dog")
    assert both.startswith(PNG) and both != trajectory_png(gold, label_name="cat")
    # it was 304 x 184 px at 80 dpi, then stretched by the page to about 300 x 380
    assert png_size(both) == TRAJECTORY_SIZE == (420, 260)
    assert png_size(trajectory_png(gold, label_name="cat", size=(300, 200))) == (300, 200)


def class_table(k: int) -> ColumnModel:
    metrics = pd.DataFrame({"confidence": 0.9, "variability": 0.0, "label": np.arange(2 * k) % k})
    model = ColumnModel(metrics)
    model.set_axes("variability", "confidence")
    model.set_filter()
    return model


def test_counts_table_shows_all_ten_digit_classes_without_a_scroll_box():
    html = counts_table(class_table(10))
    assert [f"<tr data-class='{k}'>" in html for k in range(10)] == [True] * 10
    # The box was 260 px high with scrolling, and JupyterLab's 28 px widget line height let it
    # show classes 0-7 only, with no visible scroll bar; now no box limits the rows.
    assert "max-height" not in html and "overflow" not in html
    assert "line-height:16px" in html and "scroll" not in html


def test_a_long_counts_table_scrolls_and_says_so():
    k = MAX_UNSCROLLED_ROWS + 8
    html = counts_table(class_table(k))
    assert html.count("<tr data-class=") == k
    assert "<div class='cartokit-class-note'" in html and f"{k} classes, scroll for all" in html
    assert "overflow-y:scroll" in html  # a scroll bar that shows


def test_describe_shows_a_flipped_label_as_the_static_figure_does():
    metrics = pd.DataFrame(
        {
            "confidence": [0.9, 0.1, 0.5],
            "variability": [0.0, 0.1, 0.2],
            "label": [1, 2, 0],
            "flipped": [False, True, False],
            "clean_label": [1, 0, 0],
        },
        index=pd.Index([10, 11, 12], name="id"),
    )
    model = ColumnModel(metrics)
    flipped = describe(model, 1, compact=False)
    assert "label <b>2</b> (was 0)" in flipped and "flipped True" in flipped  # "label 9 (was 6)"
    assert "clean_label" not in flipped
    kept = describe(model, 0, compact=True)
    assert "label <b>1</b><br>" in kept and "was" not in kept and "flipped False" in kept
