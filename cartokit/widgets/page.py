"""The live explorer as a page of its own, behind ``cartokit explore PATH``: no notebook to write.

* :func:`read_explorable`: what the explorer shows for a path: a metrics table (``.csv`` or
  ``.parquet``), a dynamics file (cartokit ``.npz``, a TrustAI ``.jsonl``), an allenai output
  folder, or a ``cartokit run`` folder (its metrics with their extra columns, and its dynamics);
* :func:`explorer_from_path`: a :class:`~cartokit.widgets.DataMapExplorer` of that;
* :func:`serve_explorer`: that explorer served by Voilà on 127.0.0.1, behind a token, until
  Ctrl-C or SIGTERM; Voilà then shuts its kernels down before it returns.

Voilà runs in this process, so a Ctrl-C reaches it directly (no child server to forward it to)
and its kernels are this process's children, which it shuts down on the way out.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import socket
import sys
import tempfile
import threading
import time
import webbrowser
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from cartokit._validation import check_int

if TYPE_CHECKING:
    from cartokit.dynamics import TrainingDynamics
    from cartokit.widgets.explorer import DataMapExplorer

__all__ = ["explorer_from_path", "read_explorable", "serve_explorer"]

#: What ``cartokit explore`` takes, for the errors.
EXPLORABLE = (
    "a metrics table (.csv or .parquet), a dynamics file (.npz, a TrustAI .jsonl), an allenai "
    "output folder or a cartokit run folder"
)
_KERNEL = "cartokit-explore"


def read_explorable(
    path: str | os.PathLike[str], *, caller: str = "read_explorable"
) -> tuple[pd.DataFrame, TrainingDynamics | None]:
    """The metrics table, and the dynamics when the path holds them, of what ``path`` holds.

    A table is read as it is (:func:`~cartokit.io.read_metrics_table`, CSV or Parquet);
    dynamics are reduced by :func:`~cartokit.compute_metrics`. A ``cartokit run`` folder gives its
    ``metrics.csv`` (with the split's columns, such as ``flipped``) and ``dynamics.npz``.

    Raises
    ------
    FileNotFoundError
        If nothing is at ``path``.
    ValueError
        If the file is none of the above, or is malformed (one line naming the file).
    """
    from cartokit.dynamics import TrainingDynamics
    from cartokit.io import read_dynamics, read_metrics_table
    from cartokit.metrics import compute_metrics

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{caller}: nothing at {p}. Give {EXPLORABLE}.")
    if p.is_dir() and (p / "metrics.csv").is_file() and (p / "dynamics.npz").is_file():
        metrics = read_metrics_table(p / "metrics.csv", caller=caller)
        return metrics, TrainingDynamics.load(p / "dynamics.npz")
    if p.is_file() and p.suffix.lower() in (".csv", ".parquet"):
        return read_metrics_table(p, caller=caller), None
    try:
        dynamics = read_dynamics(p)
    except ValueError as err:
        raise ValueError(f"{err} cartokit explore takes {EXPLORABLE}.") from None
    return compute_metrics(dynamics), dynamics


def explorer_from_path(path: str | os.PathLike[str], **options: Any) -> DataMapExplorer:
    """A :class:`~cartokit.widgets.DataMapExplorer` of what ``path`` holds
    (:func:`read_explorable`); ``options`` go to the explorer (``backend=``, ``thresholds=``)."""
    from cartokit.widgets.explorer import DataMapExplorer

    metrics, dynamics = read_explorable(path, caller="explorer_from_path")
    return DataMapExplorer(metrics, dynamics=dynamics, **options)


# ---------------------------------------------------------------------------- the page

_PAGE_CELL = """\
import os

from cartokit.widgets.page import explorer_from_path

os.chdir({export_dir!r})  # the explorer's exports land where cartokit explore was started
explorer_from_path({path!r})
"""


def _write_page(folder: Path, path: Path, export_dir: Path) -> Path:
    import nbformat

    heading = (
        f"### Data map of `{path.name}`\n\nDrag the sliders to move the thresholds; in "
        "*inspect* mode hover and click a point; *lasso* selects; the export row writes ids "
        f"to `{export_dir}`."
    )
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(heading),
        nbformat.v4.new_code_cell(_PAGE_CELL.format(path=str(path), export_dir=str(export_dir))),
    ]
    nb.metadata["kernelspec"] = {"name": _KERNEL, "display_name": "cartokit explore"}
    page = folder / "cartokit explore.ipynb"
    nbformat.write(nb, page)
    # The page's own kernel: this interpreter, which has cartokit (a registered "cartokit" or
    # "python3" kernel may be another environment's), without the kernel's notice about TCP
    # on every start.
    spec = folder / "kernels" / _KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": [*argv, "--IPKernelApp.log_level=CRITICAL"], "language": "python"}
    (spec / "kernel.json").write_text(json.dumps({**kernel, "display_name": "cartokit explore"}))
    return page


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as err:
            if err.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
        return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _announce_when_up(
    port: int, url: str, *, open_browser: bool, log: Callable[[str], None]
) -> threading.Thread:
    """Once the server answers on ``port``: say where, and open a browser if there is one."""

    def wait() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            return  # Voilà said why it did not start
        log(f"serving the data map at {url} (Ctrl-C stops it)")
        if not open_browser:
            return
        try:
            webbrowser.get()
        except webbrowser.Error:
            log("no browser found here: open the address above in one")
            return
        webbrowser.open(url)

    thread = threading.Thread(target=wait, name="cartokit-explore-announce", daemon=True)
    thread.start()
    return thread


def serve_explorer(
    path: str | os.PathLike[str],
    *,
    port: int = 0,
    open_browser: bool = True,
    export_dir: str | os.PathLike[str] | None = None,
    token: str | None = None,
    log: Callable[[str], None] = print,
) -> None:
    """Serve the explorer of ``path`` as a Voilà page on 127.0.0.1 until Ctrl-C or SIGTERM.

    The page needs the token in its address, which ``log`` receives once the server answers,
    with a browser opened on it when there is one. Exports from the page go to
    ``export_dir`` (default: the current folder). On Ctrl-C or SIGTERM, Voilà shuts down its
    kernels and the server, and this returns.

    Parameters
    ----------
    path : path-like
        What :func:`read_explorable` takes; it is read once here first, so a bad file is
        refused before any server starts.
    port : int, default 0
        0 picks a free port.
    open_browser : bool, default True
    export_dir : path-like, optional
    token : str, optional
        Default: a new random token.
    log : callable
        Receives each line to show the user.

    Raises
    ------
    ImportError
        Without Voilà (``pip install 'cartokit[widgets]'``).
    ValueError
        If ``path`` cannot be shown, ``port`` is taken, or ``export_dir`` is not a folder.
    """
    try:
        from voila.app import Voila
    except ImportError:
        raise ImportError(
            "cartokit explore serves the explorer with Voilà, which is not installed: "
            "pip install 'cartokit[widgets]'"
        ) from None
    source = Path(path).resolve()
    read_explorable(source, caller="cartokit explore")  # refuse a bad file before serving
    port = check_int("port", port, caller="serve_explorer", minimum=0)
    if port == 0:
        port = _free_port()
    elif not _port_free(port):
        raise ValueError(f"Port {port} on 127.0.0.1 is in use; pass another port, or 0 for any.")
    exports = Path.cwd() if export_dir is None else Path(export_dir).resolve()
    if not exports.is_dir():
        raise ValueError(f"The export folder {exports} is not a folder; create it first.")
    token = token or secrets.token_urlsafe(24)
    folder = Path(tempfile.mkdtemp(prefix="cartokit-explore-"))
    jupyter_path = os.environ.get("JUPYTER_PATH")
    try:
        page = _write_page(folder, source, exports)
        # where Voilà's kernel manager finds the page's kernel
        os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(folder), jupyter_path]))
        url = f"http://127.0.0.1:{port}/?token={token}"
        _announce_when_up(port, url, open_browser=open_browser, log=log)
        log(f"reading {source}; exports go to {exports}")
        Voila.launch_instance(
            argv=[
                str(page),
                "--no-browser",
                "--Voila.ip=127.0.0.1",
                f"--port={port}",
                "--Voila.port_retries=0",
                f"--token={token}",
                # not "this notebook is not trusted": it is ours
                "--Voila.log_level=ERROR",
                "--VoilaConfiguration.show_tracebacks=True",
            ]
        )
    finally:
        Voila.clear_instance()
        if jupyter_path is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = jupyter_path
        shutil.rmtree(folder, ignore_errors=True)
    log("stopped: the server and its kernels are shut down")
