"""``cartokit explore`` end to end: the command serves a dynamics file as a Voilà page, headless
Chromium (Debian's, driven by Playwright) opens the printed address, drags a threshold slider
and checks the counts shown against ``region_counts`` at the slider values shown, lassoes
points, exports the selection to a file, hovers and clicks a point; then a SIGINT, as Ctrl-C
sends, must stop the server and its kernel, and the command exits 0.

Without Chromium the browser test skips with a message (a failure in CI, tests/conftest.py);
the Ctrl-C test needs no browser.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_explorer_browser import (
    CHROMIUM_ARGS,
    COUNT,
    SLIDER_OF,
    drag_slider,
    find_chromium,
    keep_screenshot,
    read_counts,
)

from cartokit import Thresholds, TrainingDynamics, compute_metrics, region_counts

psutil = pytest.importorskip("psutil", reason="psutil comes with ipykernel: cartokit[notebooks]")
pytest.importorskip("voila", reason="cartokit explore needs voila: pip install 'cartokit[widgets]'")

REPO = Path(__file__).resolve().parents[2]


def synthetic_dynamics(n_samples: int = 1500, epochs: int = 6, seed: int = 0) -> TrainingDynamics:
    """Gold-label probabilities that drift upwards with noise, 10% of them from flipped labels
    that stay hard (as tests/e2e/explorer.ipynb draws them)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n_samples)
    flipped = rng.random(n_samples) < 0.1
    skill = rng.normal(1.0, 2.0, n_samples) - 4.0 * flipped
    noise = rng.normal(0, 1.2, (epochs, n_samples))
    gold = 1 / (1 + np.exp(-(skill + np.linspace(-1.0, 2.0, epochs)[:, None] + noise)))
    probs = np.repeat(((1 - gold) / 3)[..., None], 4, axis=2)
    probs[:, np.arange(n_samples), labels] = gold
    return TrainingDynamics.from_probabilities(
        probs, labels, np.arange(n_samples) + 100, class_names=["a", "b", "c", "d"]
    )


class Explore:
    """``cartokit explore`` in a subprocess (a Ctrl-C reaches it as SIGINT, as in a terminal);
    its stderr lines in a queue."""

    def __init__(self, path: Path, cwd: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PYTHONPATH"] = str(REPO)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cartokit.cli", "explore", str(path), "--no-browser"],
            cwd=cwd, env=env, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stderr:  # type: ignore[union-attr]
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            self.seen.append(line)
            if found := re.search(pattern, line):
                return found
        pytest.fail(f"cartokit explore never printed {pattern!r}; it printed {self.seen}")

    def kernels(self) -> list[psutil.Process]:
        return [
            child
            for child in psutil.Process(self.process.pid).children(recursive=True)
            if "ipykernel_launcher" in " ".join(child.cmdline())
        ]

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            pytest.fail("cartokit explore was still running 30 s after Ctrl-C (SIGINT)")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def assert_stopped_cleanly(explore: Explore, kernels: list, port: int) -> None:
    """A Ctrl-C ends the command with 0, says so, and leaves no server and no kernel behind."""
    assert kernels, "the page started no kernel"
    assert explore.interrupt() == 0
    explore.wait_for(r"stopped: the server and its kernels are shut down", timeout=5)
    assert not answers(port), "the server still answers after Ctrl-C"
    gone, alive = psutil.wait_procs(kernels, timeout=10)
    assert not alive, f"kernels left running after Ctrl-C: {[p.pid for p in alive]}"


def test_ctrl_c_stops_the_server_and_its_kernel(tmp_path):
    """No browser needed: a page request starts the kernel, as a browser's would."""
    import urllib.request

    path = synthetic_dynamics(200).save(tmp_path / "dynamics.npz")
    explore = Explore(path, tmp_path)
    try:
        url = explore.wait_for(r"serving the data map at (http://127\.0\.0\.1:(\d+)/\?token=\S+)")
        address, port = url[1], int(url[2])
        with urllib.request.urlopen(address.split("?")[0], timeout=30) as response:
            assert "/login" in response.url, "the page must need the token"
        with urllib.request.urlopen(address, timeout=60) as response:
            assert "cartokit explore" in response.read().decode()
        assert_stopped_cleanly(explore, explore.kernels(), port)
    finally:
        explore.kill()


def test_explore_serves_the_explorer_in_a_real_browser(tmp_path):
    chromium = find_chromium()
    if chromium is None:
        pytest.skip(
            "Chromium not found on PATH (looked for 'chromium' and 'chromium-browser'); "
            "install it with: apt-get install -y chromium"
        )
    from playwright.sync_api import sync_playwright

    started = time.monotonic()
    dynamics = synthetic_dynamics()
    metrics = compute_metrics(dynamics)
    path = dynamics.save(tmp_path / "dynamics.npz")
    exports = tmp_path / "exports"
    exports.mkdir()
    explore = Explore(path, exports)
    screenshot = tmp_path / "explore.png"
    try:
        url = explore.wait_for(r"serving the data map at (http://127\.0\.0\.1:(\d+)/\?token=\S+)")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium, headless=True, args=CHROMIUM_ARGS
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            try:
                page.goto(url[1])
                page.wait_for_selector(COUNT.format("easy"), timeout=60_000)
                before = read_counts(page)
                assert before == region_counts(metrics).to_dict()

                drag_slider(page)
                deadline = time.monotonic() + 30
                while True:
                    cuts = {
                        name: float(page.locator(f"{SLIDER_OF[name]} .widget-readout").inner_text())
                        for name in SLIDER_OF
                    }
                    expected = region_counts(metrics, Thresholds(**cuts)).to_dict()
                    shown = read_counts(page)
                    if shown == expected and shown != before:
                        break
                    if time.monotonic() > deadline:
                        pytest.fail(
                            f"After dragging the slider to {cuts}, the page shows {shown}; "
                            f"assign_regions says {expected} (before the drag: {before})."
                        )
                    page.wait_for_timeout(250)
                assert cuts["easy_confidence"] < 0.7

                # lasso the middle of the map, then export the selection as an ids CSV
                page.locator(".cartokit-tools button", has_text="lasso").click()
                page.wait_for_selector(".cartokit-map .lassoselector", timeout=15_000)
                plot = page.locator(".cartokit-map").bounding_box()
                assert plot is not None, "the data map figure is not on the page"
                corners = [(0.3, 0.25), (0.65, 0.25), (0.65, 0.75), (0.3, 0.75), (0.3, 0.26)]
                page.mouse.move(plot["x"] + 0.3 * plot["width"], plot["y"] + 0.25 * plot["height"])
                page.mouse.down()
                for fx, fy in corners[1:]:
                    page.mouse.move(
                        plot["x"] + fx * plot["width"], plot["y"] + fy * plot["height"], steps=5
                    )
                page.mouse.up()
                page.wait_for_function(
                    "() => Number(document.querySelector('.cartokit-selected').textContent"
                    ".replace(/,/g, '')) > 0",
                    timeout=30_000,
                )
                selected = int(page.locator(".cartokit-selected").inner_text().replace(",", ""))
                page.locator("button", has_text="ids CSV").click()
                page.wait_for_function(
                    "() => (document.querySelector('.cartokit-export-status') || {})"
                    ".textContent?.includes('Wrote')",
                    timeout=15_000,
                )
                written = pd.read_csv(exports / "selection_ids.csv")
                assert len(written) == selected
                assert set(written.iloc[:, 0]) <= set(metrics.index)

                # inspect: hover shows the sample's numbers, a click its trajectory
                page.locator(".cartokit-tools button", has_text="inspect").click()
                page.wait_for_selector(".cartokit-map .lassoselector", state="detached")
                point = page.locator(".cartokit-map .dot:visible").first
                point.hover(force=True)
                page.wait_for_function(
                    "() => (document.querySelector('.cartokit-tooltip') || {}).textContent"
                    "?.includes('confidence')",
                    timeout=15_000,
                )
                point.click(force=True)
                page.wait_for_function(
                    "() => document.querySelector('.cartokit-detail').textContent.includes('id ')",
                    timeout=15_000,
                )
                page.wait_for_timeout(1000)  # let the WebGL canvas repaint
                page.screenshot(path=str(screenshot))
            except Exception:
                screenshot = tmp_path / "explore-failure.png"
                page.screenshot(path=str(screenshot))
                keep_screenshot(screenshot)
                raise
            finally:
                kernels = explore.kernels()
                browser.close()
        assert_stopped_cleanly(explore, kernels, int(url[2]))
    finally:
        explore.kill()
    keep_screenshot(screenshot)
    print(f"explore browser test took {time.monotonic() - started:.1f} s; screenshot {screenshot}")
