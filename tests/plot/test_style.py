"""The one PNG encoder of sample images, figure bytes, and the figure that holds an Axes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.image import imread

from cartokit.plot._style import (
    LINE_COLORS,
    figure_png,
    image_png,
    line_style,
    png_size,
    root_figure,
    value_range,
)


def decoded(png: bytes) -> np.ndarray:
    return imread(io.BytesIO(png), format="png")


def test_image_png_enlarges_by_a_whole_factor():
    assert decoded(image_png(np.eye(8))).shape[:2] == (144, 144)
    assert decoded(image_png(np.eye(4), size=160)).shape[:2] == (160, 160)
    assert decoded(image_png(np.zeros((200, 100)))).shape[:2] == (200, 100)  # never shrunk


def test_image_png_grey_is_dark_for_high_values():
    grey = decoded(image_png(np.array([[0.0, 10.0]]), size=2))
    assert grey[0, 0, 0] == pytest.approx(1.0) and grey[0, 1, 0] == pytest.approx(0.0)


def test_image_png_takes_channels_first_and_rescales_rgb():
    rgb = np.zeros((3, 2, 2))
    rgb[0] = 255.0  # red, in 0..255
    image = decoded(image_png(rgb, size=2))
    assert image.shape[:2] == (2, 2)
    np.testing.assert_allclose(image[0, 0, :3], [1.0, 0.0, 0.0])


def test_figure_png_and_root_figure():
    fig = Figure()
    sub = fig.subfigures(1, 2)[1]
    ax = sub.add_subplot()
    assert root_figure(ax) is fig
    assert figure_png(fig).startswith(b"\x89PNG\r\n\x1a\n")


def test_value_range_spans_unit_columns_whole():
    # one range for the static map and the explorer (tests/widgets/test_explorer.py pins both)
    assert value_range("correctness", np.array([0.5, 0.75])) == (0.0, 1.0)
    assert value_range("confidence", np.array([0.2, 0.4])) == (0.0, 1.0)
    assert value_range("variability", np.array([0.1, 0.3])) == (0.0, 0.3)
    assert value_range("aum", np.array([-2.0, 3.0])) == (-2.0, 3.0)
    assert value_range("aum", np.array([])) == (0.0, 1.0)


def test_line_styles_are_distinct_and_none_is_pale():
    looks = [line_style(i) for i in range(len(LINE_COLORS) * 2)]
    assert len(set(map(str, looks))) == len(looks)
    for color in LINE_COLORS:  # relative luminance: pale lines vanish on white
        rgb = np.array(to_rgb(color))
        linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
        assert linear @ [0.2126, 0.7152, 0.0722] < 0.45, color
    assert "#F0E442" not in LINE_COLORS and "#88CCEE" not in LINE_COLORS


def test_png_size_reads_the_header():
    assert png_size(image_png(np.zeros((3, 5)), size=10)) == (10, 6)
    with pytest.raises(ValueError, match="not PNG bytes"):
        png_size(b"GIF89a" + bytes(30))
