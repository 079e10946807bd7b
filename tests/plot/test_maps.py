"""cartokit.plot.maps: colour order, regions from thresholds, marginals, sampling, saving."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib import colors as mcolors
from matplotlib.axes import Axes
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure

from cartokit import REGIONS, Thresholds, assign_regions
from cartokit.plot import plot_data_map, plot_data_map_by_class
from cartokit.plot._style import MISSING_COLOR, REGION_COLORS

MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-", "svg": b"<?xml"}


def make_metrics(n: int = 300, *, seed: int = 0, epochs: int = 4, classes: int = 3):
    """A small metrics table shaped like compute_metrics output, with class names."""
    rng = np.random.default_rng(seed)
    conf = rng.random(n)
    names = np.array(["cat", "dog", "eel", "fox", "gnu"][:classes], dtype=object)
    labels = rng.integers(0, classes, n)
    return pd.DataFrame(
        {
            "label": labels,
            "confidence": conf,
            "variability": rng.random(n) * np.sqrt(conf * (1 - conf)),
            "correctness": rng.integers(0, epochs + 1, n) / epochs,
            "forgetting": rng.integers(0, 3, n),
            "label_name": names[labels],
        },
        index=pd.Index(np.arange(1000, 1000 + n), name="id"),
    )


def axes_by_label(fig: Figure) -> dict[str, Axes]:
    return {ax.get_label(): ax for ax in fig.axes}


def points_of(fig: Figure) -> PathCollection:
    (points,) = [c for c in axes_by_label(fig)["data-map"].collections if c.get_gid()]
    return points


def color_by_x(points: PathCollection) -> dict[float, tuple[float, ...]]:
    """RGBA of each drawn point, keyed by its x coordinate (unique per row in these tables)."""
    points.update_scalarmappable()
    rgba = points.get_facecolors()
    x = points.get_offsets()[:, 0]
    return {float(a): tuple(np.round(c, 6)) for a, c in zip(x, rgba)}


# ------------------------------------------------------------------------------------- hue


def test_correctness_colours_follow_the_value_not_row_order():
    values = np.array([0.0, 0.5, 1.0] * 4)
    base = pd.DataFrame(
        {"variability": np.arange(12) / 100, "confidence": np.linspace(0.1, 0.9, 12)}
    ).assign(correctness=values)
    # two row orders whose first appearances differ: 1.0 first, then 0.0 first
    order_a = base.iloc[np.argsort(-values, kind="stable")]
    order_b = base.sample(frac=1.0, random_state=3)
    order_b = order_b.iloc[np.argsort(order_b["correctness"].to_numpy(), kind="stable")]
    seen_a = color_by_x(points_of(plot_data_map(order_a, marginals=False)))
    seen_b = color_by_x(points_of(plot_data_map(order_b, marginals=False)))
    assert seen_a == seen_b

    points = points_of(plot_data_map(order_a, marginals=False))
    by_value = {}
    for x, rgba in color_by_x(points).items():
        by_value.setdefault(float(base.set_index("variability").loc[x, "correctness"]), set()).add(
            rgba
        )
    assert all(len(v) == 1 for v in by_value.values())  # one colour per value
    # the colours sit on the colour scale in the order of the values
    scale = np.array([points.cmap(i / (points.cmap.N - 1)) for i in range(points.cmap.N)])[:, :3]
    position = {
        v: int(np.argmin(np.abs(scale - np.array(next(iter(c)))[:3]).sum(axis=1)))
        for v, c in by_value.items()
    }
    assert position[0.0] < position[0.5] < position[1.0]
    assert points.norm(0.0) < points.norm(0.5) < points.norm(1.0)


def test_correctness_gets_one_colour_step_per_epoch_fraction():
    fig = plot_data_map(make_metrics(epochs=4))
    points = points_of(fig)
    assert isinstance(points.norm, mcolors.BoundaryNorm)
    assert points.norm.Ncmap == points.cmap.N == 5  # 0, 1/4, 2/4, 3/4, 1
    bars = axes_by_label(fig)["marginal:hue"].patches
    assert [round(b.get_x() + b.get_width() / 2, 6) for b in bars] == [0, 0.25, 0.5, 0.75, 1]


def region_colors_drawn(fig: Figure, metrics: pd.DataFrame) -> dict[str, set[str]]:
    """Region -> the colours its points were drawn in, read back from the figure."""
    points = points_of(fig)
    points.update_scalarmappable()
    where = {
        (v, c): r
        for v, c, r in zip(metrics["variability"], metrics["confidence"], assign_regions(metrics))
    }
    drawn: dict[str, set[str]] = {}
    for (x, y), rgba in zip(points.get_offsets(), points.get_facecolors()):
        drawn.setdefault(where[(float(x), float(y))], set()).add(mcolors.to_hex(rgba).upper())
    return drawn


def test_region_colours_come_from_the_one_palette():
    metrics = make_metrics(300, seed=3)
    drawn = region_colors_drawn(plot_data_map(metrics, hue="region", marginals=False), metrics)
    assert set(drawn) == set(REGIONS)
    assert drawn == {region: {REGION_COLORS[region]} for region in REGIONS}


def _lab(rgb_linear: np.ndarray) -> np.ndarray:
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    t = (xyz @ rgb_linear) / np.array([0.95047, 1.0, 1.08883])
    f = np.where(t > 216 / 24389, np.cbrt(t), (24389 / 27 * t + 16) / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_region_colours_stay_apart_under_colour_blindness():
    # Machado, Oliveira & Fernandes (2009), severity 1: protanopia, deuteranopia, tritanopia
    simulations = {
        "normal": np.eye(3),
        "protanopia": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                       [-0.003882, -0.048116, 1.051998]],
        "deuteranopia": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                         [-0.011820, 0.042940, 0.968881]],
        "tritanopia": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                       [0.004733, 0.691367, 0.303900]],
    }  # fmt: skip
    srgb = np.array([mcolors.to_rgb(REGION_COLORS[r]) for r in REGIONS])
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    for name, matrix in simulations.items():
        lab = [_lab(np.clip(np.asarray(matrix) @ rgb, 0, 1)) for rgb in linear]
        closest = min(np.linalg.norm(lab[i] - lab[j]) for i in range(3) for j in range(i + 1, 3))
        # 28 for the palette; Tol's bright blue/green/red, the static map's old one, gave 13
        assert closest > 25, (name, closest)


def test_categorical_hue_has_a_fixed_order():
    metrics = make_metrics(60, seed=1)
    fig = plot_data_map(metrics, hue="region", marginals=False)
    legend = axes_by_label(fig)["data-map"].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [
        "easy-to-learn",
        "ambiguous",
        "hard-to-learn",
    ]
    # region colours are the same whichever region appears first
    reversed_rows = metrics.sort_values("confidence")
    a = color_by_x(points_of(fig))
    b = color_by_x(points_of(plot_data_map(reversed_rows, hue="region", marginals=False)))
    assert a == b
    # labels: sorted class index, shown by class name
    backwards = metrics.sort_values("label", ascending=False)  # first appearance: 2, 1, 0
    legend = axes_by_label(plot_data_map(backwards, hue="label")).get("data-map").get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["cat", "dog", "eel"]


def test_int_column_with_values_0_and_1_is_not_taken_for_bool():
    metrics = make_metrics(40).assign(label=lambda m: m["label"] % 2)
    legend = axes_by_label(plot_data_map(metrics.drop(columns="label_name"), hue="label"))
    texts = [t.get_text() for t in legend["data-map"].get_legend().get_texts()]
    assert texts == ["0", "1"]


# --------------------------------------------------------------------------------- regions


def region_artists(ax: Axes):
    lines = {ln.get_gid(): ln for ln in ax.lines if str(ln.get_gid()).startswith("region-")}
    texts = {t.get_gid(): t for t in ax.texts if str(t.get_gid()).startswith("region-")}
    return lines, texts


@pytest.mark.parametrize("t", [Thresholds(), Thresholds(0.1, 0.85, 0.15)])
def test_region_boundaries_and_labels_follow_the_thresholds(t):
    fig = plot_data_map(make_metrics(), thresholds=t)
    lines, texts = region_artists(axes_by_label(fig)["data-map"])
    a = t.ambiguous_variability
    np.testing.assert_allclose(lines["region-boundary:ambiguous_variability"].get_xdata(), [a, a])
    np.testing.assert_allclose(
        lines["region-boundary:easy_confidence"].get_ydata(), [t.easy_confidence] * 2
    )
    np.testing.assert_allclose(
        lines["region-boundary:hard_confidence"].get_ydata(), [t.hard_confidence] * 2
    )
    np.testing.assert_allclose(lines["region-boundary:easy_confidence"].get_xdata(), [0, a])
    easy = texts["region-label:easy"].get_position()
    hard = texts["region-label:hard"].get_position()
    ambiguous = texts["region-label:ambiguous"].get_position()
    assert easy[0] < a and hard[0] < a < ambiguous[0]
    assert t.easy_confidence < easy[1] < 1 and 0 < hard[1] < t.hard_confidence


def test_region_labels_report_the_share_under_these_thresholds():
    metrics = make_metrics()
    t = Thresholds(0.15, 0.6, 0.2)
    from cartokit import region_counts

    share = region_counts(metrics, t) / len(metrics)
    _, texts = region_artists(axes_by_label(plot_data_map(metrics, thresholds=t))["data-map"])
    for region in ("easy", "ambiguous", "hard"):
        assert texts[f"region-label:{region}"].get_text().endswith(f"{share[region]:.0%}")


def test_no_regions_on_other_axes():
    fig = plot_data_map(make_metrics(), x="forgetting", y="confidence")
    lines, texts = region_artists(axes_by_label(fig)["data-map"])
    assert not lines and not texts


# ------------------------------------------------------------------------------- marginals


def test_marginals_exist_and_count_the_plotted_samples():
    metrics = make_metrics(500)
    metrics.iloc[:7, metrics.columns.get_loc("variability")] = np.nan  # not plotted
    fig = plot_data_map(metrics, max_points=200)
    panels = axes_by_label(fig)
    for label in ("marginal:y", "marginal:x", "marginal:hue"):
        assert sum(p.get_height() for p in panels[label].patches) == 200
    assert panels["marginal:y"].get_xlabel() == "confidence"
    assert panels["marginal:x"].get_xlabel() == "variability"
    assert panels["marginal:hue"].get_xlabel() == "correctness"
    # the text says what is shown, and what was left out
    note = [t.get_text() for t in panels["data-map"].texts if t.get_gid() == "sample-note"][0]
    assert "200 of 493 samples shown" in note and "7 without finite variability/confidence" in note


def test_given_ax_gets_only_the_scatter():
    fig = Figure()
    ax, other = fig.subplots(1, 2)
    assert plot_data_map(make_metrics(), ax=ax, title="mine") is fig
    labels = [a.get_label() for a in fig.axes]
    assert not [lab for lab in labels if lab.startswith("marginal")]
    assert ax.get_title() == "mine" and len(other.collections) == 0


def test_marginals_can_be_turned_off():
    fig = plot_data_map(make_metrics(), marginals=False, legend=False)
    assert [a.get_label() for a in fig.axes] == ["data-map"]


# ------------------------------------------------------------------------------ sampling


def test_down_sampling_is_seeded_and_stated():
    metrics = make_metrics(2_000)
    draw = lambda seed: points_of(plot_data_map(metrics, max_points=150, seed=seed)).get_offsets()  # noqa: E731
    np.testing.assert_array_equal(draw(1), draw(1))
    assert len(draw(1)) == 150
    assert not np.array_equal(np.sort(draw(1)[:, 0]), np.sort(draw(2)[:, 0]))
    fig = plot_data_map(metrics, max_points=150)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any("150 of 2,000" in t for t in texts)
    # all drawn points are real rows
    offsets = draw(3)
    rows = set(zip(metrics["variability"], metrics["confidence"]))
    assert set(map(tuple, offsets)) <= rows


def test_small_table_is_drawn_whole():
    metrics = make_metrics(80)
    fig = plot_data_map(metrics, max_points=None)
    assert len(points_of(fig).get_offsets()) == 80
    assert any(t.get_text() == "80 samples" for t in fig.axes[0].texts)


# --------------------------------------------------------------------------------- saving


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
def test_saves_each_format(tmp_path, fmt):
    path = tmp_path / "sub" / f"map.{fmt.upper() if fmt == 'pdf' else fmt}"
    plot_data_map(make_metrics(100), path=path)
    assert path.read_bytes().startswith(MAGIC[fmt])
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_bad_suffix_raises_and_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"must end in \.png, \.svg or \.pdf .*'\.jpg'"):
        plot_data_map(make_metrics(), path=tmp_path / "map.jpg")
    assert list(tmp_path.iterdir()) == []


def test_failed_save_keeps_the_earlier_file(tmp_path, monkeypatch):
    path = tmp_path / "map.png"
    path.write_bytes(b"earlier")

    def broken(self, fh, **kwargs):
        fh.write(b"half a png")
        raise RuntimeError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        plot_data_map(make_metrics(), path=path)
    assert path.read_bytes() == b"earlier"
    assert [p.name for p in tmp_path.iterdir()] == ["map.png"]


# ------------------------------------------------------------------------------ per class


def test_per_class_grid_has_one_titled_panel_per_class(tmp_path):
    metrics = make_metrics(400, classes=5)
    fig = plot_data_map(metrics, per_class=True, path=tmp_path / "grid.png")
    panels = [a for a in fig.axes if a.get_label().startswith("data-map:")]
    assert [a.get_title() for a in panels] == ["cat", "dog", "eel", "fox", "gnu"]
    assert len(fig.axes) == 5 + 1  # five panels and one shared colour bar
    # shared axes and one colour scale
    assert all(a.get_xlim() == panels[0].get_xlim() for a in panels)
    norms = {id(points.norm) for a in panels for points in a.collections if points.get_gid()}
    assert len(norms) == 1
    drawn = sum(len(c.get_offsets()) for a in panels for c in a.collections)
    assert drawn == 400 and (tmp_path / "grid.png").exists()


def test_per_class_without_names_and_with_a_panel_limit():
    metrics = make_metrics(300, classes=4).drop(columns="label_name")
    fig = plot_data_map_by_class(metrics, ncols=3, max_points=100)
    panels = [a for a in fig.axes if a.get_label().startswith("data-map:")]
    assert [a.get_title() for a in panels] == ["label 0", "label 1", "label 2", "label 3"]
    assert sum(len(c.get_offsets()) for a in panels for c in a.collections) == 100
    assert "100 of 300 samples shown" in fig.get_suptitle()


# --------------------------------------------------------------------------------- errors


def test_error_messages():
    metrics = make_metrics(20)
    with pytest.raises(ValueError, match=r"missing: \['varx'\]. Available columns: \['label'"):
        plot_data_map(metrics, x="varx")
    with pytest.raises(ValueError, match=r"'hue' parameter .* Got 'nope' instead. Available"):
        plot_data_map(metrics, hue="nope")
    with pytest.raises(ValueError, match="empty metrics table"):
        plot_data_map(metrics.iloc[:0])
    with pytest.raises(ValueError, match=r"'y' parameter .* numeric column. Got 'label_name'"):
        plot_data_map(metrics, y="label_name")
    with pytest.raises(ValueError, match="no row of the metrics table has finite"):
        plot_data_map(metrics.assign(confidence=np.nan))
    with pytest.raises(TypeError, match="must be a pandas DataFrame"):
        plot_data_map(metrics.to_numpy())
    with pytest.raises(
        ValueError, match="'max_points' parameter of plot_data_map must be an int >= 1"
    ):
        plot_data_map(metrics, max_points=0)
    with pytest.raises(ValueError, match="cannot draw into one given Axes"):
        plot_data_map(metrics, per_class=True, ax=Figure().add_subplot())
    with pytest.raises(ValueError, match=r"'by' parameter .* Got 'kind' instead"):
        plot_data_map_by_class(metrics, by="kind")
    with pytest.raises(ValueError, match="'cmap' parameter .* Got 'no-such-map'"):
        plot_data_map(metrics, cmap="no-such-map")


def test_region_hue_is_derived_when_missing_and_nan_hue_is_grey():
    metrics = make_metrics(50)
    assert "region" not in metrics
    fig = plot_data_map(metrics, hue="region")
    assert [t.get_text() for t in axes_by_label(fig)["marginal:hue"].get_xticklabels()] == [
        "easy", "ambiguous", "hard",
    ]  # fmt: skip
    metrics.loc[metrics.index[:3], "correctness"] = np.nan
    points = points_of(plot_data_map(metrics, marginals=False))
    assert len(points.get_offsets()) == 50  # NaN hue is still drawn, in the "bad" colour
    grey = mcolors.to_rgba(MISSING_COLOR)[:3]
    points.update_scalarmappable()
    assert sum(np.allclose(c[:3], grey) for c in points.get_facecolors()) == 3


def test_figures_display_in_notebooks_without_pyplot():
    fig = plot_data_map(make_metrics(30))
    assert fig._repr_png_().startswith(MAGIC["png"])


def test_region_names_sit_where_the_fewest_points_are():
    # Every easy sample sits at the centre of the easy region, where a centred name would
    # cover them; the name must move to an empty spot of the same region.
    rng = np.random.default_rng(0)
    n = 400
    metrics = pd.DataFrame(
        {
            "confidence": np.r_[rng.normal(0.85, 0.01, n), rng.uniform(0.0, 1.0, n)],
            "variability": np.r_[rng.normal(0.1, 0.005, n), rng.uniform(0.25, 0.45, n)],
            "correctness": rng.uniform(0, 1, 2 * n),
        }
    )
    fig = plot_data_map(metrics, marginals=False)
    _, texts = region_artists(axes_by_label(fig)["data-map"])
    x, y = texts["region-label:easy"].get_position()
    assert 0 < x < 0.2 and 0.7 < y < 1.0  # still inside the easy region
    near = lambda px, py: int(  # noqa: E731
        (
            (abs(metrics["variability"] - px) < 0.04) & (abs(metrics["confidence"] - py) < 0.036)
        ).sum()
    )
    assert near(0.1, 0.85) > 300 and near(x, y) == 0
