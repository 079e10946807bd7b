"""End to end in a real browser: JupyterLab serves tests/e2e/explorer.ipynb, headless Chromium
(Debian's, driven by Playwright) runs it, checks that the per-class table shows all ten classes,
drags a threshold slider and checks the region counts shown on the page against
``region_counts`` at the slider values shown on the page; then it draws a lasso (the page
reports a selection) and clicks a point (the page shows the sample, at its own pixel size, and
its trajectory). Last, the review widget's chart and sample image must be shown at the size they
were drawn (not stretched by the page's CSS).

It needs Chromium at ``chromium`` on PATH (``apt-get install -y chromium``); Playwright's own
browser download is never used. Without Chromium the test is skipped with a message. The
screenshot goes to the test's tmp_path and, when ``CARTOKIT_SCREENSHOT_DIR`` is set, is copied
there too.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import nbformat
import pytest

from cartokit import REGIONS, Thresholds, region_counts

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "tests" / "e2e" / "explorer.ipynb"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--use-angle=swiftshader",  # software WebGL, so bqplot-gl's ScatterGL draws headless
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
    "--no-first-run",
]
SLIDER_OF = {
    name: f".cartokit-slider-{name}"
    for name in ("ambiguous_variability", "easy_confidence", "hard_confidence")
}
SLIDER = SLIDER_OF["easy_confidence"]
COUNT = ".cartokit-counts-summary [data-region='{}'] .cartokit-count"


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def api(base: str, token: str, path: str, method: str = "GET") -> object:
    request = urllib.request.Request(
        f"{base}{path}", method=method, headers={"Authorization": f"token {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else None


def wait_for_server(base: str, token: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"JupyterLab exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            api(base, token, "/api/status")
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    pytest.fail(f"JupyterLab did not answer within 60 s:\n{log.read_text()[-3000:]}")


def notebook_metrics():
    """The notebook's metrics table, rebuilt here by running its setup cells (no display)."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    namespace: dict[str, object] = {}
    for cell in nb.cells:
        if cell.cell_type == "code" and "explorer" not in cell.source:
            exec(compile(cell.source, str(NOTEBOOK), "exec"), namespace)
    return namespace["metrics"]


def start_lab(tmp_path: Path, notebook: Path = NOTEBOOK) -> tuple[subprocess.Popen, str, str, Path]:
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(notebook, root / notebook.name)  # the page autosaves: keep the repo copy clean
    home = tmp_path / "jupyter"
    labconfig = home / "config" / "labconfig"
    labconfig.mkdir(parents=True)
    # No "get Jupyter news?" toast over the page.
    disabled = {"@jupyterlab/apputils-extension:announcements": True}
    (labconfig / "page_config.json").write_text(json.dumps({"disabledExtensions": disabled}))
    env = dict(os.environ)
    env.update(
        # Private config, data and runtime folders: no user settings, workspaces or kernelspecs
        # leak in, so "python3" is this interpreter's own kernel (which imports cartokit).
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        IPYTHONDIR=str(home / "ipython"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    )
    port, token = free_port(), uuid.uuid4().hex
    log = tmp_path / "jupyterlab.log"
    command = [
        sys.executable, "-m", "jupyter", "lab",
        "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.workspaces_dir={home / 'workspaces'}",
        "--LabApp.expose_app_in_browser=True",
    ]  # fmt: skip
    with log.open("w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root)
    base = f"http://127.0.0.1:{port}"
    wait_for_server(base, token, server, log)
    return server, base, token, log


def stop_lab(server: subprocess.Popen, base: str, token: str) -> None:
    try:
        for kernel in api(base, token, "/api/kernels") or []:  # type: ignore[union-attr]
            api(base, token, f"/api/kernels/{kernel['id']}", method="DELETE")
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        pass  # the server is going away anyway
    finally:
        server.terminate()  # by PID: only the server this test started
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def wait_for_idle_kernel(page, timeout: float = 60.0) -> None:
    """Wait until the open notebook's kernel is idle, accepting a "Select Kernel" dialog.

    JupyterLab sometimes asks for the kernel when the notebook opens before the kernelspecs
    have loaded; its default choice is this interpreter's python3 kernel.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        accept = page.locator(".jp-Dialog .jp-mod-accept")
        if accept.count() and accept.first.is_visible():
            accept.first.click()
        status = page.evaluate(
            """() => {
                const widget = window.jupyterapp.shell.currentWidget;
                const session = widget && widget.sessionContext && widget.sessionContext.session;
                return session && session.kernel ? session.kernel.status : null;
            }"""
        )
        if status == "idle":
            return
        page.wait_for_timeout(250)
    pytest.fail(f"The notebook's kernel was not idle within {timeout:.0f} s.")


def open_and_run(page, base: str, token: str, name: str) -> None:
    """Open notebook ``name`` in a fresh JupyterLab workspace and run all its cells."""
    workspace = f"cartokit-{uuid.uuid4().hex[:8]}"
    page.goto(f"{base}/lab/workspaces/{workspace}/tree/{name}?reset&token={token}")
    page.wait_for_function(
        "() => window.jupyterapp && document.querySelector('.jp-Notebook .jp-Cell')",
        timeout=60_000,
    )
    wait_for_idle_kernel(page)
    # Fire and forget: the command's promise settles only when every cell has run.
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")


def drag_slider(page, selector: str = SLIDER, dx: float = -25) -> None:
    """Drag the handle of the slider at ``selector`` by ``dx`` pixels, as a user would."""
    handle = page.locator(f"{selector} .noUi-handle")
    handle.scroll_into_view_if_needed()
    box = handle.bounding_box()
    assert box is not None, f"the slider handle {selector} is not on the page"
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y, steps=8)
    page.mouse.up()


def keep_screenshot(path: Path) -> None:
    """Copy a screenshot to $CARTOKIT_SCREENSHOT_DIR, when set, for CI artifacts."""
    target = os.environ.get("CARTOKIT_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


def read_counts(page) -> dict[str, int]:
    return {r: int(page.locator(COUNT.format(r)).inner_text()) for r in REGIONS}


def class_rows_in_view(page) -> dict[str, object]:
    """The per-class rows of the counts table, and which of them its box shows."""
    return page.evaluate(
        """() => {
            const rows = [...document.querySelectorAll('.cartokit-class-counts tr[data-class]')];
            const table = rows[0].closest('.cartokit-class-counts');
            const box = table.parentElement.getBoundingClientRect();
            const shown = rows.filter(row => {
                const r = row.getBoundingClientRect();
                return r.height > 0 && r.top >= box.top - 1 && r.bottom <= box.bottom + 1;
            });
            return {
                classes: rows.map(row => row.dataset.class),
                shown: shown.map(row => row.dataset.class),
                note: (document.querySelector('.cartokit-class-note') || {}).textContent || null,
            };
        }"""
    )


def image_sizes(page, selector: str) -> dict[str, list[float]]:
    """Pixel size of an image's PNG and the size the page shows it at, once it has loaded."""
    page.wait_for_function(
        f"() => {{ const img = document.querySelector('{selector}');"
        " return img && img.complete && img.naturalWidth > 0 && img.offsetWidth > 0; }",
        timeout=15_000,
    )
    return page.evaluate(
        f"""() => {{
            const img = document.querySelector('{selector}');
            const box = img.getBoundingClientRect();
            return {{natural: [img.naturalWidth, img.naturalHeight],
                     shown: [box.width, box.height]}};
        }}"""
    )


def assert_not_stretched(page, selector: str) -> list[float]:
    sizes = image_sizes(page, selector)
    (nw, nh), (w, h) = sizes["natural"], sizes["shown"]
    assert abs(nw - w) <= 2 and abs(nh - h) <= 2, (
        f"{selector}: a {nw} x {nh} px image is shown at {w:.0f} x {h:.0f} px (stretched)"
    )
    return sizes["natural"]


def test_explorer_end_to_end_in_jupyterlab(tmp_path: Path) -> None:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip(
            "Chromium not found on PATH (looked for 'chromium' and 'chromium-browser'); "
            "install it with: apt-get install -y chromium"
        )
    from playwright.sync_api import sync_playwright

    metrics = notebook_metrics()
    started = time.monotonic()
    server, base, token, log = start_lab(tmp_path)
    screenshot = tmp_path / "explorer.png"
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"),  # a fresh profile
                executable_path=chromium,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1500, "height": 1500},
            )
            page = context.pages[0] if context.pages else context.new_page()
            try:
                open_and_run(page, base, token, NOTEBOOK.name)
                page.wait_for_selector(COUNT.format("easy"), timeout=60_000)
                before = read_counts(page)
                assert before == region_counts(metrics).to_dict()
                # All ten classes in view (it showed 0-7 in a box that hid its scroll bar), or
                # a note that says how many there are and that the box scrolls.
                table = class_rows_in_view(page)
                assert table["classes"] == [str(k) for k in range(10)]
                assert table["shown"] == table["classes"] or table["note"] == (
                    "10 classes, scroll for all"
                ), f"the class table shows {table['shown']} of {table['classes']}, no note"

                drag_slider(page)

                deadline = time.monotonic() + 30
                while True:
                    cuts = {
                        name: float(page.locator(f"{SLIDER_OF[name]} .widget-readout").inner_text())
                        for name in SLIDER_OF
                    }
                    value = cuts["easy_confidence"]
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
                assert value < 0.7

                # A lasso around the middle of the map selects points through the kernel.
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
                selected = page.locator(".cartokit-selected")
                page.wait_for_function(
                    "() => Number(document.querySelector('.cartokit-selected').textContent"
                    ".replace(/,/g, '')) > 0",
                    timeout=30_000,
                )
                assert int(selected.inner_text().replace(",", "")) > 0
                assert read_counts(page) == shown  # selecting does not change the regions

                # Inspect: clicking a point shows the sample and its trajectory.
                page.locator(".cartokit-tools button", has_text="inspect").click()
                page.wait_for_selector(".cartokit-map .lassoselector", state="detached")
                point = page.locator(".cartokit-map .dot:visible").first
                point.hover(force=True)  # pick points overlap: the topmost one answers
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
                assert assert_not_stretched(page, "img.cartokit-detail-image") == [144, 144]

                # The review widget: its chart and the 8 x 8 sample at the size they were drawn.
                review = page.locator(".cartokit-review")
                review.scroll_into_view_if_needed()
                assert "Suspect 1 of 10" in review.inner_text()
                assert "mean probability" in review.inner_text()
                assert assert_not_stretched(page, "img.cartokit-review-chart") == [420, 260]
                assert assert_not_stretched(page, "img.cartokit-review-image") == [160, 160]
                page.evaluate(
                    "() => document.querySelector('.cartokit-threshold')"
                    ".scrollIntoView({block: 'start'})"
                )
                page.wait_for_timeout(1500)  # let the WebGL canvas repaint
                page.screenshot(path=str(screenshot))
            except Exception:
                screenshot = tmp_path / "explorer-failure.png"
                page.screenshot(path=str(screenshot))
                keep_screenshot(screenshot)
                raise
            finally:
                context.close()
    finally:
        stop_lab(server, base, token)
    assert server.poll() is not None
    keep_screenshot(screenshot)
    print(f"browser test took {time.monotonic() - started:.1f} s; screenshot {screenshot}")
