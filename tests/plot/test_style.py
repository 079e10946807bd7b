"""The one PNG encoder of sample images, figure bytes, and the figure that holds an Axes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread

from cartokit.plot._style import figure_png, image_png, root_figure


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
