"""Headless tests of DataMapExplorer: no browser, traits and handlers driven from Python.

Under pytest no frontend is attached, so what the page would do (move a slider, draw a lasso,
hover or click a point) is done here by setting the same widget values or calling the same
handlers the page's messages reach.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("bqplot")
traitlets = pytest.importorskip("traitlets")

from cartokit import REGIONS, Thresholds, TrainingDynamics, assign_regions, compute_metrics  # noqa: E402
from cartokit.data import Split  # noqa: E402
from cartokit.plot._style import png_size  # noqa: E402
from cartokit.regions import region_counts  # noqa: E402
from cartokit.widgets import DataMapExplorer  # noqa: E402
from cartokit.widgets._render import GRID  # noqa: E402

CLASSES = ["negative", "neutral", "positive"]
N = 600


@pytest.fixture(scope="module")
def record():
    """Seeded synthetic dynamics (numpy only), its metrics, and a text split with extras."""
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 3, N)
    flipped = rng.random(N) < 0.1
    skill = rng.normal(1.0, 2.0, N) - 4.0 * flipped
    logit = skill + np.linspace(-1.0, 2.0, 6)[:, None] + rng.normal(0, 1.2, (6, N))
    gold = 1 / (1 + np.exp(-logit))
    wrong = (labels + rng.integers(1, 3, (6, N))) % 3
    ids = np.arange(N) * 3 + 5  # not positions: catches id/position mix-ups
    dyn = TrainingDynamics(
        ids=ids,
        labels=labels,
        gold_prob=gold,
        margin=logit,
        sq_error=2 * (1 - gold) ** 2,
        pred=np.where(gold > 0.5, labels, wrong),
        num_classes=3,
        class_names=CLASSES,
    )
    metrics = compute_metrics(dyn)
    order = rng.permutation(N)  # the split lists samples in another order than the metrics
    split = Split(
        name="synthetic/train",
        inputs=[f"sentence number {ids[i]}" for i in order],
        labels=labels[order],
        ids=ids[order],
        class_names=CLASSES,
        kind="text",
        frame=pd.DataFrame({"flipped": flipped[order], "human_score": rng.random(N)[order]}),
    )
    return metrics, split, dyn


def make(record, **options) -> DataMapExplorer:
    metrics, split, dyn = record
    return DataMapExplorer(metrics, data=split, dynamics=dyn, **options)


def region_codes(metrics: pd.DataFrame, thresholds: Thresholds) -> np.ndarray:
    return assign_regions(metrics, thresholds).cat.codes.to_numpy()


BACKENDS = ["gl", "svg"]


# ------------------------------------------------------------------------ thresholds


@pytest.mark.parametrize("backend", BACKENDS)
def test_slider_recolours_recounts_and_exports_as_assign_regions_says(record, backend, tmp_path):
    metrics = record[0]
    explorer = make(record, backend=backend, max_points=250 if backend == "svg" else None)
    drawn = metrics.index.get_indexer(explorer.drawn_ids)
    before = np.asarray(explorer.scatter.color).copy()
    assert explorer.counts.equals(region_counts(metrics))

    explorer.sliders["easy_confidence"].value = 0.55  # what a slider move in the page does

    new = Thresholds(easy_confidence=0.55)
    assert explorer.easy_confidence == 0.55
    assert explorer.thresholds == new
    assert explorer.counts.equals(region_counts(metrics, new))
    by_class = region_counts(metrics, new, by="label")
    assert np.array_equal(explorer.class_counts.to_numpy(), by_class.to_numpy())
    codes = region_codes(metrics, new)
    after = np.asarray(explorer.scatter.color)
    assert after.dtype == np.uint8  # region codes go to the page as one byte a point
    assert np.array_equal(after, codes[drawn])
    changed = region_codes(metrics, Thresholds()) != codes
    assert np.array_equal(before != after, changed[drawn])
    assert changed.any()
    # the counts shown on the page
    for region, count in region_counts(metrics, new).items():
        assert f"data-region='{region}'><b>{region}</b> <span class='cartokit-count'>{count}<" in (
            explorer._controls.counts.value
        )
    # exports follow the new regions
    for code, region in enumerate(REGIONS):
        assert np.array_equal(explorer.ids_of(region), metrics.index[codes == code].to_numpy())
    path = explorer.export_ids(tmp_path / "easy.csv", "easy")
    assert pd.read_csv(path)["id"].tolist() == metrics.index[codes == 0].tolist()


def test_moving_hard_above_easy_pushes_easy_along(record):
    explorer = make(record, backend="svg")
    explorer.sliders["hard_confidence"].value = 0.8
    assert (explorer.hard_confidence, explorer.easy_confidence) == (0.8, 0.8)
    assert explorer.sliders["easy_confidence"].value == 0.8
    assert explorer.counts.equals(region_counts(record[0], explorer.thresholds))


def test_thresholds_read_and_written_from_python(record):
    metrics = record[0]
    explorer = make(record, backend="svg", thresholds=Thresholds(0.15, 0.8, 0.2))
    assert explorer.thresholds == Thresholds(0.15, 0.8, 0.2)
    assert explorer.sliders["ambiguous_variability"].value == 0.15
    explorer.thresholds = Thresholds(0.1, 0.95, 0.9)  # crosses the old cuts: set at once
    assert explorer.thresholds == Thresholds(0.1, 0.95, 0.9)
    assert explorer.sliders["hard_confidence"].value == 0.9
    assert explorer.regions.equals(assign_regions(metrics, Thresholds(0.1, 0.95, 0.9)))
    explorer.ambiguous_variability = 0.3
    assert explorer.counts.equals(region_counts(metrics, Thresholds(0.3, 0.95, 0.9)))


def test_invalid_thresholds_are_refused(record):
    explorer = make(record, backend="svg")
    with pytest.raises(
        traitlets.TraitError, match=r"'easy_confidence' threshold must be .*Got 1.5"
    ):
        explorer.easy_confidence = 1.5
    with pytest.raises(traitlets.TraitError, match="hard_confidence .* must not exceed"):
        explorer.hard_confidence = 0.9
    with pytest.raises(TypeError, match="must be set to a Thresholds instance"):
        explorer.thresholds = (0.2, 0.7, 0.3)
    assert explorer.thresholds == Thresholds()


# ------------------------------------------------------------------------ axes and colour


@pytest.mark.parametrize("backend", BACKENDS)
def test_default_axes_and_controls(record, backend):
    metrics = record[0]
    explorer = make(record, backend=backend)
    drawn = metrics.index.get_indexer(explorer.drawn_ids)
    assert (explorer.x_column, explorer.y_column, explorer.color_column) == (
        "variability",
        "confidence",
        "region",
    )
    assert explorer._controls.x_dropdown.value == "variability"
    assert explorer._controls.y_dropdown.value == "confidence"
    assert explorer._controls.filter_dropdown.value == ""  # "(no filter)"
    assert explorer._controls.class_dropdown.value == -1  # "all classes"
    assert np.array_equal(explorer.scatter.x, metrics["variability"].to_numpy(np.float32)[drawn])
    assert np.array_equal(explorer.scatter.y, metrics["confidence"].to_numpy(np.float32)[drawn])
    assert explorer.scatter.x.dtype == np.float32
    for scale in (explorer._marks.x_scale, explorer._marks.y_scale, explorer._marks.color_scale):
        assert scale.min is not None and scale.max is not None  # never auto-domain
    assert explorer.backend == backend
    assert type(explorer.scatter).__name__ == ("ScatterGL" if backend == "gl" else "Scatter")


def test_axes_take_metric_and_joined_columns(record):
    metrics, split = record[0], record[1]
    explorer = make(record, backend="gl")
    assert {"flipped", "human_score", "region", "label", "predicted_label"} <= set(explorer.columns)
    explorer._controls.x_dropdown.value = "aum"  # the dropdown in the page
    explorer.y_column = "human_score"  # or from Python
    drawn_ids = explorer.drawn_ids
    x = metrics["aum"].reindex(drawn_ids).to_numpy(np.float32)
    y = split.frame["human_score"].reindex(drawn_ids).to_numpy(np.float32)
    assert np.array_equal(explorer.scatter.x, x)
    assert np.array_equal(explorer.scatter.y, y)
    assert explorer._marks.x_axis.label == "aum" and explorer._marks.y_axis.label == "human_score"
    assert explorer._marks.x_scale.min <= x.min() and explorer._marks.x_scale.max >= x.max()
    assert explorer._marks.guides.visible is False  # threshold guides only on the data map axes


def test_categorical_axis_is_jittered_with_class_ticks(record):
    metrics = record[0]
    explorer = make(record, backend="gl")
    explorer.x_column = "label"
    offset = explorer.scatter.x - metrics["label"].reindex(explorer.drawn_ids).to_numpy()
    assert np.abs(offset).max() <= 0.3 + 1e-6
    assert explorer._marks.x_axis.tick_labels == {"0": "negative", "1": "neutral", "2": "positive"}
    assert (explorer._marks.x_scale.min, explorer._marks.x_scale.max) == (-0.5, 2.5)
    explorer.x_column = "region"  # the live region column moves with the thresholds
    codes_before = np.round(explorer.scatter.x).astype(int)
    explorer.easy_confidence = 0.5
    codes = region_codes(metrics, Thresholds(easy_confidence=0.5))
    assert np.array_equal(np.round(explorer.scatter.x).astype(int), codes)
    assert not np.array_equal(codes_before, codes)


def test_colour_by_boolean_and_continuous_columns(record):
    split = record[1]
    explorer = make(record, backend="svg")
    explorer._controls.color_dropdown.value = "flipped"
    flipped = split.frame["flipped"].reindex(explorer.drawn_ids).to_numpy(np.float32)
    assert np.array_equal(explorer.scatter.color, flipped)
    assert len(explorer._marks.color_scale.colors) == 3  # False, True, missing
    explorer.color_column = "confidence"
    assert explorer._marks.color_scale.min <= explorer.scatter.color.min()
    assert "confidence" in explorer._controls.legend.value


def test_static_map_and_explorer_share_one_palette(record):
    from matplotlib import colors as mcolors

    from cartokit.plot import plot_data_map

    metrics = record[0]
    explorer = make(record, backend="svg")

    def drawn(hue: str) -> dict:
        """Value of the hue column -> hex colour of its points in the static map."""
        fig = plot_data_map(metrics, hue=hue, marginals=False, max_points=None)
        (points,) = [c for c in fig.axes[0].collections if c.get_gid()]
        points.update_scalarmappable()
        values = assign_regions(metrics) if hue == "region" else metrics[hue]
        where = dict(zip(zip(metrics["variability"], metrics["confidence"]), values))
        return {
            where[(float(x), float(y))]: mcolors.to_hex(rgba).upper()
            for (x, y), rgba in zip(points.get_offsets(), points.get_facecolors())
        }

    explorer.color_column = "region"
    static = drawn("region")
    assert [static[region] for region in REGIONS] == explorer._marks.color_scale.colors[:3]
    assert static["ambiguous"] == "#E69F00"  # was green in the static map, orange here
    explorer.color_column = "label"
    static = drawn("label")
    assert [static[label] for label in range(3)] == explorer._marks.color_scale.colors[:3]
    # the colour of a missing value, and both ends of the numeric scale
    assert explorer._marks.color_scale.colors[3] == "#BBBBBB"
    fig = plot_data_map(metrics, hue="confidence", marginals=False)
    (points,) = [c for c in fig.axes[0].collections if c.get_gid()]
    assert mcolors.to_hex(points.cmap.get_bad()).upper() == "#BBBBBB"
    explorer.color_column = "confidence"
    ends = [mcolors.to_hex(points.cmap(v)).upper() for v in (0.0, 1.0)]
    assert ends == [explorer._marks.color_scale.colors[0], explorer._marks.color_scale.colors[-1]]


def test_correctness_has_the_static_maps_colours_and_range(record):
    """One colour map with one range: the explorer's colour scale for correctness is the static
    map's, stop for stop, over [0, 1] however the values fall (it ran from the smallest value
    shown to the largest, so 0.5 was drawn dark purple when no sample was below it)."""
    from matplotlib import colors as mcolors

    from cartokit.plot import plot_data_map
    from cartokit.plot._style import CONTINUOUS_COLORS

    metrics = record[0]
    upper = metrics[metrics["correctness"] >= 0.5]  # a table whose correctness starts at 0.5
    assert upper["correctness"].min() == 0.5
    explorer = DataMapExplorer(upper, backend="svg")
    explorer.color_column = "correctness"
    scale = explorer._marks.color_scale
    assert (scale.min, scale.max) == (0.0, 1.0)
    assert scale.colors == list(CONTINUOUS_COLORS)
    assert scale.colors[-1] == "#BDDF26"  # viridis at 0.9, not its pale yellow end (#FDE725)
    assert "<span>0</span>" in explorer._controls.legend.value  # the key says 0 to 1 too
    assert "<span>1</span>" in explorer._controls.legend.value

    fig = plot_data_map(upper, hue="correctness", marginals=False, max_points=None)
    (points,) = [c for c in fig.axes[0].collections if c.get_gid()]
    ends = [mcolors.to_hex(points.cmap(i)).upper() for i in (0, points.cmap.N - 1)]
    assert ends == [scale.colors[0], scale.colors[-1]]
    # every point: the static colour is where the explorer's linear scale puts its value
    points.update_scalarmappable()
    stops = np.array([mcolors.to_rgb(c) for c in scale.colors])
    where = np.linspace(scale.min, scale.max, len(stops))
    values = dict(zip(zip(upper["variability"], upper["confidence"]), upper["correctness"]))
    for (x, y), rgba in zip(points.get_offsets(), points.get_facecolors()):
        value = values[(float(x), float(y))]
        expected = [np.interp(value, where, stops[:, c]) for c in range(3)]
        np.testing.assert_allclose(rgba[:3], expected, atol=2 / 255)


def test_unknown_column_is_refused(record):
    explorer = make(record, backend="svg")
    with pytest.raises(traitlets.TraitError, match=r"'x_column' of DataMapExplorer must be one of"):
        explorer.x_column = "nope"


# ------------------------------------------------------------------------ filter


@pytest.mark.parametrize("backend", BACKENDS)
def test_filter_hides_points_but_counts_use_all(record, backend):
    metrics = record[0]
    explorer = make(record, backend=backend)
    explorer.filter_column = "confidence"
    explorer.filter_op = "<="
    explorer.filter_value = 0.4
    keep = metrics["confidence"] <= 0.4
    assert np.array_equal(explorer.drawn_ids, metrics.index[keep].to_numpy())
    explorer._controls.class_dropdown.value = 1
    assert explorer.filter_class == 1
    keep &= metrics["label"] == 1
    assert np.array_equal(explorer.shown_ids, metrics.index[keep].to_numpy())
    assert len(explorer.scatter.x) == keep.sum()
    assert explorer.counts.equals(region_counts(metrics))  # all points, filtered or not
    explorer.filter_class = "positive"  # a class name works too
    assert explorer.filter_class == 2
    explorer.filter_column = None
    explorer.filter_class = None
    assert len(explorer.drawn_ids) == len(metrics)
    with pytest.raises(traitlets.TraitError, match="'filter_class' of DataMapExplorer"):
        explorer.filter_class = "cat"


# ------------------------------------------------------------------------ selection


@pytest.mark.parametrize("backend", BACKENDS)
def test_selection_written_from_python(record, backend):
    metrics = record[0]
    explorer = make(record, backend=backend)
    chosen = metrics.index[[40, 3, 17]].to_numpy()
    explorer.selected_ids = chosen
    assert explorer.selected_ids.tolist() == sorted(chosen.tolist(), key=metrics.index.get_loc)
    drawn = explorer.drawn_ids.tolist()
    assert sorted(explorer.scatter.selected.tolist()) == sorted(drawn.index(i) for i in chosen)
    assert "selected <span class='cartokit-selected'>3</span>" in explorer._controls.counts.value
    assert np.array_equal(explorer.ids_of("selection"), explorer.selected_ids)
    explorer._controls.clear_selection(None)
    assert len(explorer.selected_ids) == 0 and explorer.scatter.selected is None
    with pytest.raises(traitlets.TraitError, match="1 of the 2 ids are not in the metrics table"):
        explorer.selected_ids = [chosen[0], -99]


@pytest.mark.parametrize("backend", BACKENDS)
def test_lasso_selects_every_shown_point_in_its_cells(record, backend):
    metrics = record[0]
    explorer = make(record, backend=backend, max_points=100 if backend == "svg" else None)
    explorer.tool = "lasso"
    assert explorer.figure.interaction is explorer._marks.lasso
    # The page's lasso selects proxy points: here, those left of variability 0.15.
    proxy_x = np.asarray(explorer._marks.proxy.x)
    explorer._marks.proxy.selected = np.flatnonzero(proxy_x < 0.15)
    # Oracle: the cell of every point, from the scale bounds, as documented.
    cols, rows = GRID
    x, y = metrics["variability"].to_numpy(), metrics["confidence"].to_numpy()
    x0, x1 = explorer._marks.x_scale.min, explorer._marks.x_scale.max
    y0, y1 = explorer._marks.y_scale.min, explorer._marks.y_scale.max
    cx = np.clip(((x - x0) / (x1 - x0) * cols).astype(int), 0, cols - 1)
    cy = np.clip(((y - y0) / (y1 - y0) * rows).astype(int), 0, rows - 1)
    centre = x0 + (cx + 0.5) * (x1 - x0) / cols
    expected = metrics.index[np.float32(centre) < 0.15].to_numpy()
    assert len(expected) > 0 and np.array_equal(explorer.selected_ids, expected)
    assert cy.min() >= 0
    if backend == "svg":  # the lasso reaches points the down-sampled scatter does not draw
        assert len(explorer.selected_ids) > len(explorer.scatter.selected)


def test_brush_rectangle_selects_shown_points(record):
    metrics = record[0]
    explorer = make(record, backend="svg", max_points=100)
    explorer.tool = "brush"
    explorer.filter_column = "correctness"
    explorer.filter_value = 0.5
    with explorer._marks.brush.hold_sync():  # what the page's brush sends
        explorer._marks.brush.selected_x = np.array([0.05, 0.2])
        explorer._marks.brush.selected_y = np.array([0.3, 0.9])
    v, c = metrics["variability"], metrics["confidence"]
    inside = v.between(0.05, 0.2) & c.between(0.3, 0.9) & (metrics["correctness"] >= 0.5)
    assert np.array_equal(explorer.selected_ids, metrics.index[inside].to_numpy())
    explorer._marks.brush.selected_x = None
    assert len(explorer.selected_ids) == 0


# ------------------------------------------------------------------------ inspecting points


@pytest.mark.parametrize("backend", BACKENDS)
def test_hover_and_click_show_the_sample_and_its_trajectory(record, backend):
    metrics, split, dyn = record
    explorer = make(record, backend=backend)
    mark = explorer._marks.pick if backend == "gl" else explorer.scatter
    positions = explorer._marks.pick_positions if backend == "gl" else explorer._model.drawn
    sample_id = metrics.index[positions[5]]
    explorer._on_hover(mark, {"event": "hover", "data": {"index": 5}})
    assert f"<b>id {sample_id}</b>" in explorer._marks.tooltip.value
    assert "confidence" in explorer._marks.tooltip.value
    explorer._on_click(mark, {"event": "element_click", "data": {"index": 5}})
    assert explorer.inspected_id == sample_id
    assert f"sentence number {sample_id}" in explorer._detail.sample_html.value
    column = list(dyn.ids).index(sample_id)
    assert np.allclose(explorer._detail.trajectory.y, dyn.gold_prob[:, column])
    assert str(sample_id) in explorer._detail.trajectory_figure.title


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_clicked_point_is_ringed_on_the_map(record, backend):
    metrics = record[0]
    explorer = make(record, backend=backend)
    ring = explorer.highlight
    assert ring.visible is False and ring in explorer.figure.marks
    marks = explorer.figure.marks
    if explorer._marks.pick is not None:  # under the pick layer, which takes the clicks
        assert marks.index(ring) < marks.index(explorer._marks.pick)
    mark = explorer._marks.pick if backend == "gl" else explorer.scatter
    positions = explorer._marks.pick_positions if backend == "gl" else explorer._model.drawn
    explorer._on_click(mark, {"event": "element_click", "data": {"index": 3}})
    sample_id = metrics.index[positions[3]]
    assert ring.visible is True
    assert ring.x.tolist() == [np.float32(metrics.loc[sample_id, "variability"])]
    assert ring.y.tolist() == [np.float32(metrics.loc[sample_id, "confidence"])]
    explorer.x_column = "aum"  # the ring follows the point to new axes
    assert ring.x.tolist() == [np.float32(metrics.loc[sample_id, "aum"])]
    explorer.filter_column, explorer.filter_op = "confidence", "<="
    explorer.filter_value = float(metrics.loc[sample_id, "confidence"]) - 1e-3
    assert ring.visible is False  # filtered out: no ring in an empty spot
    explorer.filter_column = None
    assert ring.visible is True
    explorer.inspected_id = None
    assert ring.visible is False


def test_the_detail_panel_shows_a_flipped_label(record):
    from cartokit.noise import inject_noise

    metrics, split, dyn = record
    noisy = inject_noise(split, 0.2, seed=0)  # frame: flipped, clean_label
    metrics = metrics.assign(label=pd.Series(noisy.labels, index=noisy.ids).reindex(metrics.index))
    explorer = DataMapExplorer(metrics, data=noisy, dynamics=dyn, backend="svg")
    frame = noisy.frame.set_index(noisy.ids)
    flipped_id = frame.index[frame["flipped"]][0]
    explorer.inspected_id = flipped_id
    given = CLASSES[metrics.loc[flipped_id, "label"]]
    was = CLASSES[frame.loc[flipped_id, "clean_label"]]
    info = explorer._detail.info.value
    assert f"label <b>{given}</b> (was {was})" in info and "flipped True" in info
    kept_id = frame.index[~frame["flipped"]][0]
    explorer.inspected_id = kept_id
    assert "(was" not in explorer._detail.info.value
    assert "flipped False" in explorer._detail.info.value


def test_image_samples_are_shown_as_png(record):
    metrics, split, dyn = record
    images = np.random.default_rng(0).random((N, 64)).astype(np.float32)
    image_split = Split(
        name="pixels",
        inputs=images,
        labels=split.labels,
        ids=split.ids,
        class_names=CLASSES,
        kind="image",
        image_shape=(8, 8),
    )
    explorer = DataMapExplorer(metrics, data=image_split, backend="svg")
    explorer.inspected_id = metrics.index[0]
    image = explorer._detail.sample_image
    assert image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert image.layout.display is None
    # shown at its own size (8 x 8 pixels enlarged 18 times), not stretched by the page
    assert png_size(image.value) == (144, 144)
    assert (image.layout.width, image.layout.height) == ("144px", "144px")
    assert "dynamics=" in explorer._detail.trajectory_figure.title


# ------------------------------------------------------------------------ export and scale


def test_export_buttons(record, tmp_path):
    metrics = record[0]
    explorer = make(record, backend="svg")
    explorer._controls.export_which.value = "hard"
    explorer._controls.export_path.value = str(tmp_path / "hard.csv")
    explorer._controls.export_csv(None)
    assert pd.read_csv(tmp_path / "hard.csv")["id"].tolist() == explorer.ids_of("hard").tolist()
    assert "Wrote" in explorer._controls.export_status.value
    explorer._controls.export_subset(None)
    subset = explorer.last_subset
    assert subset.ids.tolist() == explorer.ids_of("hard").tolist()
    assert subset.show(0) == f"sentence number {subset.ids[0]}"
    bare = DataMapExplorer(metrics, backend="svg")
    with pytest.raises(ValueError, match="needs the dataset: pass data="):
        bare.export_subset("easy")
    bare._controls.export_subset(None)
    assert "needs the dataset" in bare._controls.export_status.value


def test_the_export_box_names_the_file_an_empty_box_writes(record, tmp_path, monkeypatch):
    controls = make(record, backend="svg")._controls
    assert controls.export_path.placeholder == "selection_ids.csv"
    controls.export_which.value = "ambiguous"
    assert controls.export_path.placeholder == "ambiguous_ids.csv"
    monkeypatch.chdir(tmp_path)
    controls.export_csv(None)  # empty box: the file the placeholder names
    assert (tmp_path / "ambiguous_ids.csv").is_file()


def test_svg_draws_a_seeded_sample_but_counts_every_point(record):
    metrics = record[0]
    one = make(record, backend="svg", max_points=120, seed=3)
    two = make(record, backend="svg", max_points=120, seed=3)
    assert len(one.drawn_ids) == 120 and np.array_equal(one.drawn_ids, two.drawn_ids)
    assert not np.array_equal(one.drawn_ids, make(record, backend="svg", max_points=120).drawn_ids)
    before = set(one.drawn_ids.tolist())
    one.filter_column = "confidence"
    one.filter_value = 0.3
    still_shown = before & set(one.shown_ids.tolist())
    assert still_shown <= set(one.drawn_ids.tolist())  # narrowing keeps drawn points drawn
    assert one.counts.equals(region_counts(metrics))


def test_auto_backend_falls_back_to_svg_without_bqplot_gl(record, monkeypatch):
    monkeypatch.setitem(sys.modules, "bqplot_gl", None)  # import now raises ImportError
    explorer = make(record)
    assert explorer.backend == "svg" and explorer._max_points == 5000
    with pytest.raises(ImportError, match="needs bqplot-gl: pip install bqplot-gl"):
        make(record, backend="gl")


def test_bad_arguments(record):
    metrics, split, dyn = record
    with pytest.raises(ValueError, match="'backend' parameter of DataMapExplorer must be"):
        DataMapExplorer(metrics, backend="webgl")
    with pytest.raises(ValueError, match="'max_points' parameter of DataMapExplorer"):
        DataMapExplorer(metrics, max_points=0)
    with pytest.raises(ValueError, match="needs a 'label' column"):
        DataMapExplorer(metrics.drop(columns="label"))
    with pytest.raises(ValueError, match="missing: \\['variability'\\]"):
        DataMapExplorer(metrics.drop(columns="variability"))
    with pytest.raises(TypeError, match="must be a pandas DataFrame"):
        DataMapExplorer(metrics.to_numpy())
    with pytest.raises(ValueError, match="are not in data.ids"):
        DataMapExplorer(metrics, data=split.subset(np.arange(10)))
    # metrics keyed by row position (a recorder given no sample_ids) against the data's own ids
    by_position = metrics.set_axis(pd.RangeIndex(N, name="id"))
    with pytest.raises(
        ValueError,
        match=r"^DataMapExplorer: 401 of the 600 ids are not in data.ids, e.g. \[0, 1, 2, 3, 4, "
        r"\.\.\.\]\. The metrics ids are row positions 0..599, but data.ids run 5..1802 with "
        r"gaps \(600 ids\): record with the data's own ids, DynamicsRecorder\(\.\.\., "
        r"sample_ids=data.ids\), or pass the data the metrics were computed from\.$",
    ):
        DataMapExplorer(by_position, data=split)
    with pytest.raises(TypeError, match="'thresholds' parameter of DataMapExplorer"):
        DataMapExplorer(metrics, thresholds={"easy_confidence": 0.5})


def test_docstring_documents_colab():
    assert "output.enable_custom_widget_manager()" in DataMapExplorer.__doc__


# ------------------------------------------------------------------------ real data


def test_explorer_on_digits_shows_the_image_of_a_clicked_sample():
    from cartokit import MLP, fit, load_dataset

    bundle = load_dataset("digits")
    result = fit(MLP.from_split(bundle.train), bundle.train, epochs=3, progress=False)
    metrics = compute_metrics(result.dynamics)
    explorer = DataMapExplorer(metrics, data=bundle.train, dynamics=result.dynamics)
    assert int(explorer.counts.sum()) == len(bundle.train)
    explorer.inspected_id = metrics.index[0]
    assert explorer._detail.sample_image.value[:8] == b"\x89PNG\r\n\x1a\n"


def test_explorer_on_sentiment_shows_text_and_offers_the_human_score():
    from cartokit import load_dataset

    split = load_dataset("sentiment", max_samples=200).train
    rng = np.random.default_rng(0)
    gold = rng.random((4, len(split)))
    dyn = TrainingDynamics(
        ids=split.ids,
        labels=split.labels,
        gold_prob=gold,
        margin=np.log(gold / (1 - gold)),
        sq_error=2 * (1 - gold) ** 2,
        pred=np.where(gold > 0.5, split.labels, 1 - split.labels),
        num_classes=2,
        class_names=split.class_names,
    )
    metrics = compute_metrics(dyn)
    explorer = DataMapExplorer(metrics, data=split, dynamics=dyn)
    assert "human_score" in explorer.columns
    explorer.color_column = "human_score"
    sample_id = split.ids[7]
    explorer.inspected_id = sample_id
    text = split.frame.loc[sample_id, "text"]
    escaped = text[:30].replace("&", "&amp;").replace("<", "&lt;")[:20]
    assert escaped in explorer._detail.sample_html.value
