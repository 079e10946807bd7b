"""The density view in a real browser: JupyterLab runs a notebook (written by the test) whose
explorer has more points than ``density_above``; headless Chromium (set up as in
test_explorer_browser.py) must show the density image over the plot, repaint it and the counts on
a slider move, and drill down to points when the *zoom* tool's mouse wheel zooms in.
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from test_explorer_browser import (
    CHROMIUM_ARGS,
    drag_slider,
    find_chromium,
    keep_screenshot,
    open_and_run,
    read_counts,
    start_lab,
    stop_lab,
)

SETUP = """\
import numpy as np
import pandas as pd
from cartokit.widgets import DataMapExplorer

rng = np.random.default_rng(0)
n = 3000
conf = rng.beta(2, 2, n)
metrics = pd.DataFrame(
    {"confidence": conf, "variability": rng.uniform(0, 0.45, n), "label": rng.integers(0, 3, n)},
    index=pd.Index(np.arange(n), name="id"),
)
explorer = DataMapExplorer(metrics, density_above=500)
explorer"""
NOTE = ".cartokit-counts"


def image_state(page) -> dict:
    """The density image of the map: its link, whether it shows, and its box and the plot's."""
    return page.evaluate(
        """() => {
            const image = document.querySelector('.cartokit-map image');
            if (!image) return null;
            const box = image.getBoundingClientRect();
            const plot = document.querySelector('.cartokit-map .plotarea_background, '
                + '.cartokit-map rect.plotarea_background');
            const mark = image.closest('g.mark, g');
            const style = getComputedStyle(mark || image);
            return {href: image.getAttribute('href') || image.getAttribute('xlink:href') || '',
                    shown: style.visibility !== 'hidden' && style.display !== 'none'
                        && (mark ? mark.style.visibility !== 'hidden' : true),
                    width: box.width, height: box.height,
                    plot: plot ? [plot.getBoundingClientRect().width,
                                  plot.getBoundingClientRect().height] : null};
        }"""
    )


def counts_note(page) -> str:
    return page.locator(NOTE).first.inner_text()


def wait_until(condition, what: str, timeout: float = 60.0):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    pytest.fail(f"Within {timeout:.0f} s, {what}.")


def test_density_view_repaints_and_drills_down_in_jupyterlab(tmp_path: Path) -> None:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip(
            "Chromium not found on PATH (looked for 'chromium' and 'chromium-browser'); "
            "install it with: apt-get install -y chromium"
        )
    from playwright.sync_api import sync_playwright

    notebook = tmp_path / "density.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SETUP)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(nb, notebook)
    server, base, token, _log = start_lab(tmp_path, notebook)
    screenshot = tmp_path / "density.png"
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"), executable_path=chromium, headless=True,
                args=CHROMIUM_ARGS, viewport={"width": 1500, "height": 1200},
            )  # fmt: skip
            page = context.pages[0] if context.pages else context.new_page()
            try:
                open_and_run(page, base, token, notebook.name)
                page.wait_for_selector(".cartokit-counts-summary", timeout=60_000)
                image = wait_until(
                    lambda: (state := image_state(page)) and state["href"] and state,
                    "the density image did not appear on the map",
                )
                assert image["shown"], image
                assert "density view" in counts_note(page)
                # the image spans the window: the plot area less the scales' padding
                if image["plot"]:
                    assert 0.9 < image["width"] / image["plot"][0] <= 1.0, image
                    assert 0.85 < image["height"] / image["plot"][1] <= 1.0, image
                page.screenshot(path=str(tmp_path / "density-whole.png"))
                keep_screenshot(tmp_path / "density-whole.png")
                before_counts, before_href = read_counts(page), image["href"]

                drag_slider(page)
                wait_until(
                    lambda: (
                        read_counts(page) != before_counts
                        and image_state(page)["href"] != before_href
                    ),
                    "a slider move changed neither the counts nor the density image",
                )

                page.locator(".cartokit-tools button", has_text="zoom").click()
                plot = page.locator(".cartokit-map").first.bounding_box()
                assert plot is not None
                page.mouse.move(plot["x"] + plot["width"] * 0.3, plot["y"] + plot["height"] * 0.4)

                def zoomed_to_points() -> bool:
                    page.mouse.wheel(0, -240)
                    time.sleep(0.5)
                    return "density view" not in counts_note(page)

                wait_until(zoomed_to_points, "zooming in never drew the points")
                wait_until(lambda: not image_state(page)["shown"], "the density image stayed shown")
                assert " drawn)" in counts_note(page)
                page.screenshot(path=str(screenshot))
                keep_screenshot(screenshot)
            finally:
                context.close()
    finally:
        stop_lab(server, base, token)
