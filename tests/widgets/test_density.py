"""The explorer's density view and drill-down (headless), and the binning behind it."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("bqplot")

from cartokit import REGIONS, Thresholds, assign_regions, region_counts  # noqa: E402
from cartokit.plot._style import CONTINUOUS_COLORS, MISSING_COLOR, REGION_COLORS  # noqa: E402
from cartokit.widgets import DataMapExplorer, _density  # noqa: E402
from cartokit.widgets._density import density_rgba, window_cells  # noqa: E402
from cartokit.widgets._render import REGION_SCALE  # noqa: E402

N = 5000
LIMIT = 1000


@pytest.fixture(scope="module")
def metrics() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    conf = rng.beta(2, 2, N)
    return pd.DataFrame(
        {
            "confidence": conf,
            "variability": rng.uniform(0, 0.45, N),
            "correctness": np.clip(conf + rng.normal(0, 0.1, N), 0, 1),
            "label": rng.integers(0, 4, N),
        },
        index=pd.Index(np.arange(N) * 7 + 2, name="id"),  # ids are not positions
    )


def rgb(color: str) -> list[int]:
    return [int(color[i : i + 2], 16) for i in (1, 3, 5)]


def png_pixels(png: bytes) -> np.ndarray:
    from matplotlib.image import imread

    return np.round(imread(io.BytesIO(png)) * 255).astype(np.uint8)


# ------------------------------------------------------------------------ binning


def test_cells_take_the_majority_category_and_grow_opaque_with_their_count():
    # cell 0 (top left): codes 1, 1, 0; cell 3 (bottom right): code 2 once; a missing code.
    cells = np.array([0, 0, 0, 3, 1])
    codes = np.array([1.0, 1.0, 0.0, 2.0, np.nan])
    image = density_rgba(
        cells, (2, 2), codes, categories=3, colors=list(REGION_SCALE), low=0.0, high=3.0
    )
    assert image.shape == (2, 2, 4) and image.dtype == np.uint8
    assert image[0, 0, :3].tolist() == rgb(REGION_COLORS["ambiguous"])
    assert image[1, 1, :3].tolist() == rgb(REGION_COLORS["hard"])
    assert image[0, 1, :3].tolist() == rgb(MISSING_COLOR)  # only a missing value
    assert image[1, 0, 3] == 0  # empty
    assert image[0, 0, 3] == 255 and 0 < image[1, 1, 3] < image[0, 0, 3]


def test_numeric_cells_take_the_colour_of_their_mean_and_selection_darkens():
    cells = np.array([0, 0, 1, 1])
    values = np.array([0.0, 0.0, 1.0, np.nan])
    selected = np.array([False, False, True, False])
    image = density_rgba(
        cells, (2, 1), values, categories=None, colors=list(CONTINUOUS_COLORS), low=0.0,
        high=1.0, selected=selected,
    )  # fmt: skip
    assert image[0, 0, :3].tolist() == rgb(CONTINUOUS_COLORS[0])
    darker = np.round(np.array(rgb(CONTINUOUS_COLORS[-1])) / 255 * 0.45 * 255)
    assert image[0, 1, :3].tolist() == darker.tolist()  # mean of the finite values: 1.0
    assert image[0, 1, 3] == 255


def test_many_categories_count_pairs_with_the_same_majority(monkeypatch):
    rng = np.random.default_rng(0)
    cells = rng.integers(0, 50, 4000)
    codes = rng.integers(0, 90, 4000)
    dense = _density._majority(cells, codes, 50, 91)  # 91 > the dense limit: pairs
    monkeypatch.setattr(_density, "_DENSE_CATEGORIES", 1000)
    assert np.array_equal(_density._majority(cells, codes, 50, 91), dense)


def test_window_cells_leave_out_hidden_and_outside_points():
    x = np.array([0.1, 0.9, 0.5, np.nan, 0.5])
    y = np.array([0.9, 0.1, 0.5, 0.5, 0.5])
    shown = np.array([True, True, True, True, False])
    cells = window_cells(x, y, shown, (0.0, 1.0, 0.0, 1.0), (4, 4))
    assert cells.tolist() == [0, 15, 10, -1, -1]


# ------------------------------------------------------------------------ the explorer


def test_a_large_map_is_a_density_view_with_counts_on_every_sample(metrics):
    explorer = DataMapExplorer(metrics, density_above=LIMIT)
    assert explorer.view == "density"
    assert len(explorer.drawn_ids) == 0 and len(explorer.scatter.x) == 0
    density = explorer._marks.density
    assert density.visible and density.image.value[:4] == b"\x89PNG"
    assert list(density.x) == [explorer._marks.x_scale.min, explorer._marks.x_scale.max]
    assert explorer.counts.equals(region_counts(metrics))
    assert "density view" in explorer._controls.counts.value
    # the image's cells: what the points in them say
    pixels = png_pixels(density.image.value)
    x, y = metrics["variability"].to_numpy(), metrics["confidence"].to_numpy()
    cells = window_cells(x, y, np.ones(N, bool), explorer._marks.window(), _density.DENSITY_GRID)
    filled = np.bincount(cells[cells >= 0], minlength=pixels.shape[0] * pixels.shape[1]) > 0
    assert np.array_equal(pixels[..., 3].ravel() > 0, filled)

    before = density.image.value
    explorer.easy_confidence = 0.5
    assert explorer.counts.equals(region_counts(metrics, Thresholds(easy_confidence=0.5)))
    assert density.image.value != before  # cells turned easy
    codes = assign_regions(metrics, Thresholds(easy_confidence=0.5)).cat.codes.to_numpy()
    assert np.array_equal(explorer.ids_of("easy"), metrics.index[codes == 0].to_numpy())


def test_zooming_in_drills_down_to_the_points_of_the_window(metrics):
    explorer = DataMapExplorer(metrics, density_above=LIMIT, max_pick_points=50)
    explorer.zoom_to(x=(0.0, 0.1), y=(0.5, 1.0))
    assert explorer.view == "points"
    x, y = metrics["variability"], metrics["confidence"]
    inside = metrics.index[(x >= 0) & (x <= 0.1) & (y >= 0.5) & (y <= 1.0)].to_numpy()
    assert 0 < len(inside) <= LIMIT
    assert np.array_equal(explorer.drawn_ids, inside)
    assert not explorer._marks.density.visible
    assert len(explorer._marks.pick.x) == 50

    explorer.reset_zoom()
    assert explorer.view == "density" and len(explorer.drawn_ids) == 0
    assert explorer._marks.density.visible
    assert explorer._marks.pick is None or len(explorer._marks.pick.x) == 50  # hover still works

    # a pan or zoom in the page sets the scales' bounds; the map follows
    scale = explorer._marks.x_scale
    with scale.hold_trait_notifications():
        scale.min, scale.max = 0.0, 0.1
    explorer._marks.y_scale.min = 0.5
    assert explorer.view == "points"
    assert np.array_equal(explorer.drawn_ids, inside)


def test_a_filter_that_leaves_few_points_draws_them_all(metrics):
    explorer = DataMapExplorer(metrics, density_above=LIMIT)
    explorer.filter_column, explorer.filter_value = "confidence", 0.9
    assert explorer.view == "points"
    assert len(explorer.drawn_ids) == (metrics["confidence"] >= 0.9).sum()


def test_selection_shows_as_darker_cells(metrics):
    explorer = DataMapExplorer(metrics, density_above=LIMIT)
    before = png_pixels(explorer._marks.density.image.value)
    explorer.selected_ids = metrics.index[:20]
    after = png_pixels(explorer._marks.density.image.value)
    darker = after[..., :3].astype(int).sum(axis=2) < before[..., :3].astype(int).sum(axis=2)
    assert 0 < darker.sum() <= 20


def test_a_threshold_move_sends_the_colours_alone_and_only_when_they_change(metrics):
    explorer = DataMapExplorer(metrics, density_above=None)
    sent = []  # the keys of each state message the scatter sends to the page
    explorer.scatter.send_state = lambda key=None: sent.append(key)
    conf = np.sort(metrics["confidence"].to_numpy())
    gap = conf[np.searchsorted(conf, 0.7)]  # the first confidence at or above 0.7
    assert gap > 0.7
    explorer.easy_confidence = float(np.nextafter(0.7, 1.0))
    assert sent == []  # no point crossed the cut: nothing sent
    explorer.easy_confidence = 0.5
    assert sent == ["color"]
    assert explorer.scatter.color.dtype == np.uint8  # one byte a point


@pytest.mark.parametrize(
    ("options", "message"),
    [({"density_above": 0}, "density_above"), ({"density_above": 2.5}, "density_above")],
)
def test_bad_density_limits_are_named(metrics, options, message):
    with pytest.raises((TypeError, ValueError), match=message):
        DataMapExplorer(metrics, **options)


@pytest.mark.parametrize("bad", [(0.5, 0.5), (0.4, 0.1), (0.0, np.inf), (np.nan, 1.0)])
def test_zoom_to_needs_a_finite_increasing_range(metrics, bad):
    explorer = DataMapExplorer(metrics.iloc[:100])
    with pytest.raises(ValueError, match=r"zoom_to needs x=\(from, to\)"):
        explorer.zoom_to(x=bad)


def test_small_maps_stay_points_and_ignore_the_window(metrics):
    explorer = DataMapExplorer(metrics)  # 5,000 points: under the default limit
    assert explorer.view == "points" and len(explorer.drawn_ids) == N
    explorer.zoom_to(x=(0.0, 0.1))
    assert len(explorer.drawn_ids) == N  # all stay drawn; the page clips
    assert all(region in explorer._controls.counts.value for region in REGIONS)
