"""DataMapExplorer slider moves at large N, timed inside a real page: headless Chromium.

Set-up, as in ``tests/widgets/test_explorer_browser.py``: JupyterLab on 127.0.0.1 (a free port,
a token, private config folders) serves a temporary notebook that builds ``synthetic_metrics(N)``
(from ``bench/slider_latency.py``) and shows ``DataMapExplorer(metrics, **KWARGS)``; Playwright
drives Debian's Chromium with the test's flags, WebGL drawn in software by SwiftShader
(``--use-angle=swiftshader``). Once the map and the counts are shown and the page is quiet, each
move focuses the easy-confidence slider's handle and presses ArrowRight, then ArrowLeft, and so
on (one 0.01 step each, so the threshold stays near its default; a first, untimed move warms
the page up), and waits until the page is quiet again: the kernel idle, frames coming at their
normal pace, and no long task (over 50 ms) or long frame gap for ``--settle`` seconds.

Figures per move, in ms from the keydown event in the page (``performance.now()``):

* ``counts_dom_ms``: until the counts text (``.cartokit-counts-summary .cartokit-count``) has
  changed in the DOM (a MutationObserver);
* ``counts_ms``: until the next animation frame after that change (``requestAnimationFrame``),
  the frame that paints the new counts;
* ``main_thread_ms``: busy time of the renderer's main thread (CrRendererMain) for the move:
  the union of its top-level tasks in a Chrome trace, from the task that handles the key press
  to the end of the first frame after the last message from the kernel (on the WebSocket the
  update went out on; a frame that starts more than 50 ms later, held up by the GPU, is left
  out). It includes the frames' own work (style, layout, paint, the WebGL
  calls) and any wait of a synchronous WebGL call on the GPU process, but not the GPU's draw,
  during which the thread is free; ``busy_until_ms`` is when that frame ended;
* ``gc_ms``: the garbage collection inside those tasks (trace events MinorGC, MajorGC, V8.GC*);
  ``kernel_messages``: how many messages the kernel sent in that time;
* ``frame_ms``: until the first animation frame after ``busy_until_ms``, or, if frames stalled
  longer (a gap over 50 ms between animation frames: the GPU still drawing), until they
  resumed. With SwiftShader the scatter's draw dominates this figure; a hardware GPU draws the
  same points far faster, so read it as an upper bound, and ``counts_ms`` and
  ``main_thread_ms`` as the figures a user's machine would see (less its CPU's speed-up);
* ``python_ms``: the kernel's handling of the slider's update message (its ``set_state``,
  timed in the kernel: the explorer's recount, counts table and colour update).

``idle_main_thread_ms_per_s`` is the page's background load, part of ``main_thread_ms`` too:
the main thread's busy time per second, traced for 3 s after a key that moves nothing (Shift),
with the same probes running (JupyterLab's own polling, the probes' animation frames).

Then ``--profile-moves`` extra moves run under V8's sampling profiler (CDP ``Profiler``, a
sample every 100 us; not in the figures above, as sampling slows the page): ``top_functions_ms``
is the self time by function (name and script basename) in the moves' windows (as for
``main_thread_ms``) summed over those moves, the 8 largest, idle time left out ("(program)" is
native work outside JavaScript, e.g. layout, paint and WebGL calls).

Prints one JSON line (also written to ``--out``): per N the median and p95 of each figure, the
per-move values, the top functions, and the Chromium version, the kwargs and the load average
at start and end (the figures are only comparable on an otherwise idle machine).

    python bench/explorer_frames.py [--points 100000 1000000] [--moves 15] [--profile-moves 3]
        [--kwargs '{"density_above": null}'] [--settle 1.0] [--out FILE] [--source DIR]

``--source`` runs another tree's cartokit in the kernel, e.g. an older commit's, unpacked with
``git archive COMMIT cartokit | tar -x -C DIR`` (the widgets' JavaScript is bqplot's and
bqplot-gl's, from this environment).

Needs Chromium on PATH (``apt-get install -y chromium``), the ``widgets`` extra (JupyterLab,
bqplot-gl) and Playwright's Python package (``dev`` extra; its browser download is not used).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import NoReturn

import nbformat
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: As in tests/widgets/test_explorer_browser.py (tests/ is not a package, so not imported).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
    "--no-first-run",
]
SLIDER = ".cartokit-slider-easy_confidence .noUi-handle"
COUNTS = ".cartokit-counts-summary .cartokit-count"
TRACE_CATEGORIES = ["toplevel", "devtools.timeline", "blink.user_timing", "v8", "v8.gc"]
TASKS = {"ThreadControllerImpl::RunTask", "RunTask"}
FRAME_TASK = "ScheduledActionSendBeginMainFrame"  # the task that runs a frame's main-thread part
LONG_GAP_MS = 50.0
IDLE_S = 3.0

NOTEBOOK_CELL = """\
import importlib.util, json, time
spec = importlib.util.spec_from_file_location("slider_latency", {bench!r})
slider_latency = importlib.util.module_from_spec(spec)
spec.loader.exec_module(slider_latency)
from cartokit.widgets import DataMapExplorer

metrics = slider_latency.synthetic_metrics({points})
explorer = DataMapExplorer(metrics, **json.loads({kwargs!r}))
slider = explorer.sliders["easy_confidence"]
log = open({log!r}, "a")
def timed_set_state(state, inner=slider.set_state):
    start, t = time.time(), time.perf_counter()
    inner(state)
    log.write(json.dumps([start, (time.perf_counter() - t) * 1e3]) + "\\n")
    log.flush()
slider.set_state = timed_set_state  # the handler of the page's update messages
explorer"""

# Arms the in-page probes: a keydown listener starts a move's clock and a rAF loop, a
# MutationObserver notes the counts change, a PerformanceObserver notes long tasks.
PROBES = """([counts, slider]) => {
    const read = () => [...document.querySelectorAll(counts)].map(e => e.textContent).join('|');
    const st = window.__bench = {armed: false, t0: null, mut: null, countsFrame: null,
                                 rafs: [], longEnds: [], before: null, running: false};
    const tick = () => {
        st.rafs.push(performance.now());
        if (st.running) requestAnimationFrame(tick);
    };
    document.addEventListener('keydown', () => {
        if (!st.armed || st.t0 !== null) return;
        st.t0 = performance.mark('cartokit-move').startTime;
        st.running = true;
        requestAnimationFrame(tick);
    }, true);
    const target = document.querySelector(counts).closest('.jp-OutputArea-output') || document.body;
    new MutationObserver(() => {
        if (st.t0 === null || st.mut !== null || read() === st.before) return;
        st.mut = performance.now();
        requestAnimationFrame(() => { st.countsFrame = performance.now(); });
    }).observe(target, {subtree: true, childList: true, characterData: true});
    new PerformanceObserver(list => {
        for (const e of list.getEntries()) st.longEnds.push(e.startTime + e.duration);
    }).observe({type: 'longtask'});
    window.__benchArm = () => {
        Object.assign(st, {armed: true, t0: null, mut: null, countsFrame: null, rafs: [],
                           before: read(), running: false});
        document.querySelector(slider).focus({preventScroll: true});
    };
}"""

STATE = """(gap) => {
    const st = window.__bench, now = performance.now();
    const widget = window.jupyterapp.shell.currentWidget;
    const kernel = widget && widget.sessionContext.session && widget.sessionContext.session.kernel;
    let lastLong = Math.max(st.t0 ?? 0, ...st.longEnds);
    for (let i = 1; i < st.rafs.length; i++)
        if (st.rafs[i] - st.rafs[i - 1] > gap) lastLong = Math.max(lastLong, st.rafs[i]);
    return {now, t0: st.t0, mut: st.mut, countsFrame: st.countsFrame, lastLong,
            lastRaf: st.rafs.length ? st.rafs[st.rafs.length - 1] : null,
            kernel: kernel ? kernel.status : null};
}"""


def fail(message: str) -> NoReturn:
    raise SystemExit(f"explorer_frames: {message}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_lab(tmp: Path, source: Path) -> tuple[subprocess.Popen, str, str]:
    """JupyterLab on 127.0.0.1 with private config folders, its kernels importing cartokit
    from ``source``; returns (server, base url, token)."""
    home = tmp / "jupyter"
    (home / "config" / "labconfig").mkdir(parents=True)
    (home / "config" / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home / "config"))
    env.update(JUPYTER_DATA_DIR=str(home / "data"), JUPYTER_RUNTIME_DIR=str(home / "runtime"))
    env.update(IPYTHONDIR=str(home / "ipython"), PYTHONPATH=str(source))
    port, token = free_port(), uuid.uuid4().hex
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
        "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp / 'root'}",
        f"--LabApp.workspaces_dir={home / 'workspaces'}", "--LabApp.expose_app_in_browser=True",
    ]  # fmt: skip
    with (tmp / "jupyterlab.log").open("w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while server.poll() is None and time.monotonic() < deadline:
        try:
            request = urllib.request.Request(
                f"{base}/api/status", headers={"Authorization": f"token {token}"}
            )
            urllib.request.urlopen(request, timeout=5).close()
            return server, base, token
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    stop(server)
    log = (tmp / "jupyterlab.log").read_text()[-2000:]
    fail(f"JupyterLab did not answer on {base} within 90 s (exit {server.returncode}):\n{log}")


def stop(server: subprocess.Popen) -> None:
    server.terminate()  # by PID: only the server this script started
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=10)


def union_ms(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for lo, hi in sorted(intervals):
        if hi > end:
            total += hi - max(lo, end)
            end = hi
    return total


def is_gc(name: str) -> bool:
    return name in ("MinorGC", "MajorGC") or name.startswith("V8.GC")


def main_thread(trace: dict, until: float) -> dict[str, float]:
    """Busy and GC time of the renderer main thread for one move, ms from its keydown.

    The move's work: the top-level tasks from the keydown (the ``cartokit-move`` mark) to the
    end of the first frame after the last message the kernel's WebSocket brought within
    ``until`` ms (the socket the move's update went out on; the frame only if it starts within
    50 ms), or to ``until`` without one.
    """
    events = trace["traceEvents"]
    mark = next((e for e in events if e.get("name") == "cartokit-move"), None)
    if mark is None:
        fail("the trace has no 'cartokit-move' mark: the key press did not reach the page")
    pid = mark["pid"]
    tid = next(
        (e["tid"] for e in events
        if e.get("ph") == "M" and e.get("pid") == pid and e.get("name") == "thread_name"
        and e["args"].get("name") == "CrRendererMain"),
        None,
    )  # fmt: skip
    if tid is None:
        fail("the trace names no CrRendererMain thread in the page's renderer")
    t0, stop = mark["ts"] / 1e3, mark["ts"] / 1e3 + until
    mine = [e for e in events if e.get("pid") == pid and e.get("tid") == tid]
    tasks = [
        (e["ts"] / 1e3, (e["ts"] + e.get("dur", 0)) / 1e3, e.get("args", {}).get("src_func"))
        for e in mine
        if e.get("ph") == "X" and e["name"] in TASKS
    ]
    socket = [
        (e["name"], e["ts"] / 1e3, e["args"]["data"].get("identifier"))
        for e in mine
        if e["name"] in ("WebSocketSend", "WebSocketReceive") and t0 <= e["ts"] / 1e3 < stop
    ]
    sent = next((ident for name, _, ident in socket if name == "WebSocketSend"), None)
    received = [at for name, at, ident in socket if name == "WebSocketReceive" and ident == sent]
    end = stop
    if received:
        end = max((hi for lo, hi, _ in tasks if lo <= received[-1] <= hi), default=received[-1])
        # The frame that draws it, unless frames stalled (the GPU still drawing the last one).
        frames = [hi for lo, hi, src in tasks if src == FRAME_TASK and end <= lo < end + 50]
        end = min(frames, default=end)
    busy = [(lo, hi) for lo, hi, _ in tasks if hi > t0 and lo < end]
    end = max((hi for _, hi in busy), default=t0)
    gc = [
        (max(e["ts"] / 1e3, t0), min((e["ts"] + e["dur"]) / 1e3, end))
        for e in mine
        if e.get("ph") == "X" and is_gc(e["name"])
        and (e["ts"] + e["dur"]) / 1e3 > t0 and e["ts"] / 1e3 < end
    ]  # fmt: skip
    return {
        "t0_us": t0 * 1e3,
        "main_thread_ms": union_ms(busy),
        "busy_until_ms": end - t0,
        "gc_ms": union_ms(gc),
        "kernel_messages": len(received),
    }


def self_times(profile: dict, window: tuple[float, float], into: dict[str, float]) -> None:
    """Add a CPU profile's self time (ms) by 'function (script)' in ``window`` to ``into``.

    ``window`` is in trace time (us): V8's profile uses the same monotonic clock.
    """
    if not profile["startTime"] <= window[0] <= profile["endTime"]:
        fail(
            f"the CPU profile ({profile['startTime']}-{profile['endTime']} us) does not span the "
            f"key press at {window[0]} us: the profiler and the trace disagree on the clock"
        )
    label = {}
    for node in profile["nodes"]:
        frame = node["callFrame"]
        name = frame["functionName"] or "(anonymous)"
        # ".../lab/extensions/bqplot/static/568.js?v=..." -> "bqplot/568.js"
        parts = frame["url"].split("?")[0].split("/")
        script = "/".join(parts[-3::2]) if "extensions" in parts[:-3] else parts[-1]
        label[node["id"]] = f"{name} ({script})" if script else name
    samples, deltas = profile["samples"], profile["timeDeltas"]
    at = profile["startTime"] + np.cumsum(deltas)
    for i, node in enumerate(samples[:-1]):
        if label[node] != "(idle)" and window[0] <= at[i] < window[1]:
            into[label[node]] = into.get(label[node], 0.0) + deltas[i + 1] / 1e3


def wait_quiet(page, settle_ms: float, timeout: float, what: str) -> dict:
    """Poll the page until the move's counts changed and the page is quiet; its state then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.wait_for_timeout(200)
        state = page.evaluate(STATE, LONG_GAP_MS)
        if state["t0"] is None:
            continue
        since = state["now"] - state["lastLong"]
        ticking = state["lastRaf"] is not None and state["now"] - state["lastRaf"] < 100
        if state["countsFrame"] is not None and state["kernel"] == "idle" and ticking:
            if since >= settle_ms:
                return state
    fail(f"{what}: the page did not show new counts and settle within {timeout:.0f} s")


def wait_idle(page, settle_s: float, timeout: float) -> None:
    """Wait for the notebook's kernel to be idle and frames to come at their pace for settle_s."""
    deadline = time.monotonic() + timeout
    calm = None
    while time.monotonic() < deadline:
        accept = page.locator(".jp-Dialog .jp-mod-accept")  # "Select Kernel", when it asks
        if accept.count() and accept.first.is_visible():
            accept.first.click()
        frame = page.evaluate(
            """() => new Promise(done => { const t = performance.now();
                 requestAnimationFrame(() => requestAnimationFrame(() => done({
                   ms: performance.now() - t,
                   kernel: window.jupyterapp.shell.currentWidget.sessionContext.session
                     ?.kernel?.status ?? null})));})"""
        )
        if frame["kernel"] == "idle" and frame["ms"] < 100:
            calm = calm or time.monotonic()
            if time.monotonic() - calm >= settle_s:
                return
        else:
            calm = None
        page.wait_for_timeout(200)
    fail(f"the page did not settle (kernel idle, frames flowing) within {timeout:.0f} s")


def summary(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p95": None}
    return {
        "median": round(statistics.median(values), 1),
        "p95": round(float(np.percentile(values, 95)), 1),
    }


def run_points(playwright, chromium: str, points: int, args: argparse.Namespace) -> dict:
    scale = max(1.0, points / 100_000)  # the old code's redraw grows with N under SwiftShader
    with tempfile.TemporaryDirectory(prefix="cartokit-frames-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "root").mkdir()
        log = tmp / "python_moves.jsonl"
        log.touch()
        cell = NOTEBOOK_CELL.format(
            bench=str(ROOT / "bench" / "slider_latency.py"),
            points=points,
            kwargs=json.dumps(args.kwargs),
            log=str(log),
        )
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)])
        nbformat.write(nb, tmp / "root" / "frames.ipynb")
        server, base, token = start_lab(tmp, args.source)
        browser = None
        try:
            browser = playwright.chromium.launch(
                executable_path=chromium, headless=True, args=CHROMIUM_ARGS
            )
            page = browser.new_page(viewport={"width": 1500, "height": 1500})
            workspace = f"frames-{uuid.uuid4().hex[:8]}"
            page.goto(f"{base}/lab/workspaces/{workspace}/tree/frames.ipynb?reset&token={token}")
            page.wait_for_function(
                "() => window.jupyterapp && document.querySelector('.jp-Notebook .jp-Cell')",
                timeout=90_000,
            )
            wait_idle(page, 0.5, 90)
            started = time.monotonic()
            page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
            shown = page.wait_for_function(
                """([counts, error]) => {
                    const e = [...document.querySelectorAll(error)].find(
                        o => o.textContent.includes('Traceback (most recent call last)'));
                    if (e) return e.textContent.trim().split('\\n').pop();
                    return !!(document.querySelector(counts)
                              && document.querySelector('.cartokit-map'));
                }""",
                arg=[COUNTS, "[data-mime-type='application/vnd.jupyter.stderr']"],
                timeout=int(120_000 * scale),
            ).json_value()
            if shown is not True:
                fail(f"the notebook's cell failed at {points} points: {shown}")
            page.evaluate(
                "() => document.querySelector('.cartokit-map').scrollIntoView({block: 'center'})"
            )
            wait_idle(page, args.settle, 60 * scale)
            shown_s = time.monotonic() - started
            page.evaluate(PROBES, [COUNTS, SLIDER])
            cdp = page.context.new_cdp_session(page)
            moves, presses, top = [], [], {}
            for i in range(1 + args.moves + args.profile_moves):  # move 0: a warm-up
                timed, profiled = 1 <= i <= args.moves, i > args.moves
                page.evaluate("() => window.__benchArm()")
                if profiled:
                    cdp.send("Profiler.enable")
                    cdp.send("Profiler.setSamplingInterval", {"interval": 100})
                    cdp.send("Profiler.start")
                if timed or profiled:
                    browser.start_tracing(page=page, categories=TRACE_CATEGORIES)
                presses.append(time.time())
                page.keyboard.press("ArrowRight" if i % 2 == 0 else "ArrowLeft")
                state = wait_quiet(page, args.settle * 1e3, 60 * scale + 60, f"move {i}")
                rafs = page.evaluate("() => { window.__bench.running = false; "
                                     "return window.__bench.rafs; }")  # fmt: skip
                if not (timed or profiled):
                    continue
                until = state["now"] - state["t0"]  # the kernel's messages come before quiet
                busy = main_thread(json.loads(browser.stop_tracing()), until)
                t0_us = busy.pop("t0_us")
                if profiled:
                    profile = cdp.send("Profiler.stop")["profile"]
                    self_times(profile, (t0_us, t0_us + busy["busy_until_ms"] * 1e3), top)
                    continue
                after = [t - state["t0"] for t in rafs if t - state["t0"] >= busy["busy_until_ms"]]
                gaps = [b for a, b in zip(rafs, rafs[1:]) if b - a > LONG_GAP_MS]
                frame = max([after[0] if after else busy["busy_until_ms"]] +
                            [g - state["t0"] for g in gaps])  # fmt: skip
                moves.append(
                    {
                        "counts_dom_ms": state["mut"] - state["t0"],
                        "counts_ms": state["countsFrame"] - state["t0"],
                        "frame_ms": frame,
                        **busy,
                    }
                )
            presses.append(time.time())
            # The floor: the same probes and trace for IDLE_S s after a key that moves nothing.
            page.evaluate("() => window.__benchArm()")
            browser.start_tracing(page=page, categories=TRACE_CATEGORIES)
            page.keyboard.press("Shift")
            page.wait_for_timeout(IDLE_S * 1e3)
            page.evaluate("() => { window.__bench.running = false; }")
            idle = main_thread(json.loads(browser.stop_tracing()), IDLE_S * 1e3)
            if idle["kernel_messages"]:
                fail("the kernel answered a key that moves nothing: the idle floor is not idle")
        finally:
            if browser is not None:
                browser.close()
            stop(server)
        calls = [json.loads(line) for line in log.read_text().splitlines()]
    python = [
        sum(ms for start, ms in calls if lo <= start < hi)
        for lo, hi in zip(presses[1 : args.moves + 1], presses[2 : args.moves + 2])
    ]
    keys = ["counts_dom_ms", "counts_ms", "main_thread_ms", "gc_ms", "busy_until_ms", "frame_ms"]
    keys.append("kernel_messages")
    result: dict = {"points": points, "shown_s": round(shown_s, 1)}
    result.update({k: summary([m[k] for m in moves]) for k in keys})
    result["python_ms"] = summary(python)
    result["per_move"] = {k: [round(m[k], 1) for m in moves] for k in keys}
    result["per_move"]["python_ms"] = [round(v, 1) for v in python]
    ranked = sorted(top.items(), key=lambda kv: -kv[1])[:8]
    result["top_functions_ms"] = {name: round(ms, 1) for name, ms in ranked}
    result["profiled_moves"] = args.profile_moves
    result["idle_main_thread_ms_per_s"] = round(idle["main_thread_ms"] / IDLE_S, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--moves", type=int, default=15)
    parser.add_argument("--profile-moves", type=int, default=3)
    parser.add_argument("--kwargs", type=json.loads, default={}, help="DataMapExplorer kwargs")
    parser.add_argument("--settle", type=float, default=1.0, help="quiet seconds after a move")
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--source", type=Path, default=ROOT, help="the tree whose cartokit the kernel imports"
    )
    args = parser.parse_args()
    if not isinstance(args.kwargs, dict):
        fail(f"--kwargs must be a JSON object of DataMapExplorer arguments; got {args.kwargs!r}")
    if not (args.source / "cartokit" / "__init__.py").is_file():
        fail(f"--source must be a tree holding cartokit/__init__.py; got {args.source}")
    args.source = args.source.resolve()
    if args.moves < 1 or min(args.points) < 1:
        fail(f"--moves and --points must be positive; got {args.moves} and {args.points}")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        fail("Chromium not found on PATH (looked for 'chromium', 'chromium-browser'); "
             "install it with: apt-get install -y chromium")  # fmt: skip
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        fail("Playwright's Python package is missing; install it with: pip install playwright")

    load_start = os.getloadavg()
    with sync_playwright() as playwright:
        version = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        chromium_version = version.version
        version.close()
        results = [run_points(playwright, chromium, n, args) for n in args.points]
    out = {
        "bench": "explorer_frames",
        "kwargs": args.kwargs,
        "source": str(args.source),
        "moves": args.moves,
        "settle_s": args.settle,
        "chromium": chromium_version,
        "webgl": "SwiftShader (software)",
        "cpus": os.cpu_count(),
        "load_start": [round(v, 2) for v in load_start],
        "load_end": [round(v, 2) for v in os.getloadavg()],
        "results": results,
    }
    line = json.dumps(out)
    if args.out:
        args.out.write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
