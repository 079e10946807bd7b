"""Run folders: what notebooks 01-04 write and read, and how ``cartokit run`` replaces one
without ever losing an earlier run or someone else's files.

The files of a run folder
-------------------------
``params.json``, ``dynamics.npz``, ``metrics.csv``, ``history.csv``, ``model.pt`` (01,
:func:`save_run`); ``thresholds.json``, ``figures/data_map.png``, ``human_*.csv`` (02;
``metrics.csv`` gains a ``region`` column); ``subsets.csv`` (03, :func:`save_subsets`);
``results.csv``, ``results.md``, ``figures/*.png``, ``report.md`` (04); ``notebooks/*.ipynb``
(the executed copies) and ``run.json`` (parameters and timings, and the marker that lets a later
run replace the folder), from ``cartokit run``. :func:`load_run` reads them back as a
:class:`Run`.

Replacing a run folder
----------------------
A run writes into a hidden staging folder beside its output (:func:`stage`), which replaces the
output only when every notebook succeeded (:func:`swap_in`); a failed or interrupted run keeps
its outputs in ``<out>.failed`` (:func:`keep_failed`); either way the executed notebooks are
made to name their final folder (:func:`repoint_notebooks`). :func:`check_run_folder` refuses,
before any work, an output folder whose replacement could lose someone's files, and
:func:`clean_leftovers` tidies up what runs killed by ``kill -9`` left behind.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cartokit._files import atomic_write, check_output_folder, marker_kind, write_marker
from cartokit.regions import Thresholds
from cartokit.study.data import bundle_of, metrics_table
from cartokit.study.params import NOTEBOOKS

if TYPE_CHECKING:
    from cartokit.data import DataBundle
    from cartokit.dynamics import TrainingDynamics
    from cartokit.train import FitResult

__all__ = [
    "Run",
    "Subset",
    "Terminated",
    "check_run_folder",
    "clean_leftovers",
    "is_legacy_grid",
    "is_run_leftover",
    "keep_failed",
    "load_run",
    "load_subsets",
    "read_json",
    "repoint_notebooks",
    "save_run",
    "save_subsets",
    "sigterm_as_interrupt",
    "stage",
    "swap_in",
    "write_json",
]


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_write(path, "w") as fh:
        json.dump(data, fh, indent=2, default=str)
        fh.write("\n")
    return path


def read_json(path: Path, default: Any = None) -> Any:
    """The JSON in ``path``, or ``default`` when there is no such file."""
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else default


# ============================================================================ what a run holds


@dataclass
class Subset:
    """A selected subset of the training set: its name, how it was chosen, and its ids."""

    name: str
    selector: str
    fraction: float
    ids: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Run:
    """What notebooks 01-03 wrote to a run folder (see :func:`load_run`)."""

    path: Path
    params: dict[str, Any]
    metrics: pd.DataFrame
    dynamics: TrainingDynamics
    thresholds: Thresholds
    subsets: dict[str, Subset] | None = None
    _bundle: DataBundle | None = field(default=None, repr=False)

    @property
    def bundle(self) -> DataBundle:
        """The study's data (reloaded from the parameters: the same split and noise)."""
        if self._bundle is None:
            self._bundle = bundle_of(self.params)
        return self._bundle

    @property
    def title(self) -> str:
        p = self.params
        noise = f", {p['noise']:.0%} labels flipped" if p.get("noise") else ""
        return f"{p['dataset']}, {p['model']}, {p['epochs']} epochs{noise}"

    def figure(self, name: str) -> Path:
        """The path of a figure in the run folder's ``figures/``."""
        folder = self.path / "figures"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name


def save_run(
    run_dir: str | os.PathLike[str],
    result: FitResult,
    bundle: DataBundle,
    params: Mapping[str, Any],
) -> dict[str, Path]:
    """Write notebook 01's outputs to the run folder; return their paths.

    ``params.json`` (``params``), ``dynamics.npz``, ``metrics.csv``
    (:func:`~cartokit.study.data.metrics_table`), ``history.csv`` and ``model.pt`` (the state
    dict and ``params``).
    """
    import torch

    from cartokit.io import write_metrics_csv

    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    paths = {"params": write_json(run / "params.json", dict(params))}
    dynamics = result.dynamics
    paths["dynamics"] = dynamics.save(run / "dynamics.npz")
    paths["metrics"] = write_metrics_csv(metrics_table(dynamics, bundle.train), run / "metrics.csv")
    with atomic_write(run / "history.csv", "w") as fh:
        result.history.to_csv(fh, index=False)
    paths["history"] = run / "history.csv"
    with atomic_write(run / "model.pt", "wb") as fh:
        torch.save({"state_dict": result.model.state_dict(), "params": dict(params)}, fh)
    paths["model"] = run / "model.pt"
    return paths


def load_run(run_dir: str | os.PathLike[str]) -> Run:
    """Read a run folder: the parameters, dynamics and metrics of notebook 01, the thresholds of
    02 (defaults until 02 ran) and the subsets of 03 (``None`` until 03 ran).

    Raises
    ------
    FileNotFoundError
        If notebook 01 has not written to ``run_dir``.
    """
    from cartokit.dynamics import TrainingDynamics
    from cartokit.io import read_metrics_table

    run = Path(run_dir)
    missing = [f for f in ("params.json", "dynamics.npz", "metrics.csv") if not (run / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"The run folder {str(run)!r} has no {', '.join(missing)}. Run notebook "
            f"01_train_and_record with run_dir={str(run_dir)!r} first (on Colab, in the same "
            "session or with run_dir on a mounted drive)."
        )
    thresholds = read_json(run / "thresholds.json")
    return Run(
        path=run,
        params=read_json(run / "params.json"),
        metrics=read_metrics_table(run / "metrics.csv", caller="load_run"),
        dynamics=TrainingDynamics.load(run / "dynamics.npz"),
        thresholds=Thresholds(**thresholds) if thresholds else Thresholds(),
        subsets=load_subsets(run) if (run / "subsets.csv").is_file() else None,
    )


def save_subsets(run_dir: str | os.PathLike[str], subsets: Mapping[str, Subset]) -> Path:
    """Write ``subsets.csv``: one row per selected sample (subset, selector, fraction, id)."""
    frames = [
        pd.DataFrame(
            {"subset": s.name, "selector": s.selector, "fraction": s.fraction, "id": s.ids}
        )
        for s in subsets.values()
    ]
    path = Path(run_dir) / "subsets.csv"
    with atomic_write(path, "w") as fh:
        pd.concat(frames, ignore_index=True).to_csv(fh, index=False)
    return path


def load_subsets(run_dir: str | os.PathLike[str]) -> dict[str, Subset]:
    """The subsets written by :func:`save_subsets`, in their order."""
    table = pd.read_csv(Path(run_dir) / "subsets.csv")
    out = {}
    for name in pd.unique(table["subset"]):
        rows = table[table["subset"] == name]
        out[name] = Subset(
            str(name),
            str(rows["selector"].iloc[0]),
            float(rows["fraction"].iloc[0]),
            rows["id"].to_numpy(),
        )
    return out


# ============================================================================ signals


class Terminated(KeyboardInterrupt):
    """A run stopped by SIGTERM: handled like Ctrl-C, so its outputs go to ``<out>.failed``."""

    def __init__(self, signum: int = signal.SIGTERM):
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


def _in_main_thread() -> bool:
    # Python runs signal handlers in the main thread only, and only it may install them
    return threading.current_thread() is threading.main_thread()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While a run is in progress, SIGTERM raises :class:`Terminated` (a KeyboardInterrupt)."""
    if not _in_main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back for a few renames, then deliver them."""
    if not _in_main_thread():
        yield
        return
    pending: list[int] = []
    names = (signal.SIGINT, signal.SIGTERM)
    saved = {sig: signal.signal(sig, lambda signum, frame: pending.append(signum)) for sig in names}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        if pending:
            signal.raise_signal(pending[0])


# ============================================================================ replacing a run


def stage(out: Path) -> Path:
    """A fresh staging folder ``.<out>.partial-<pid>`` beside ``out``, with a ``notebooks/``
    folder, marked from the start, so that what a killed run leaves is known to be a run's."""
    staged = out.with_name(f".{out.name}.partial-{os.getpid()}")
    if staged.exists():
        shutil.rmtree(staged)
    (staged / "notebooks").mkdir(parents=True)
    write_marker(staged, "cartokit run", finished=None)
    return staged


def swap_in(staged: Path, out: Path) -> None:
    """Replace ``out`` by ``staged`` with renames (same folder): ``out`` is never half written.

    ``out`` must be empty or a cartokit run folder (:func:`check_run_folder`). Ctrl-C or SIGTERM
    between the two renames waits for the second; a kill -9 there leaves the earlier run in
    ``.<out>.old-<pid>``, which the next run into ``out`` moves back (:func:`clean_leftovers`).
    A failure's leftovers in ``<out>.failed`` go, superseded by this success.
    """
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        with _signals_deferred():
            out.rename(old)
            staged.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staged.rename(out)
    shutil.rmtree(out.with_name(f"{out.name}.failed"), ignore_errors=True)


def keep_failed(staged: Path, out: Path) -> Path:
    """Move a failed run's staging folder to ``<out>.failed`` (replacing an older failure)."""
    failed = out.with_name(f"{out.name}.failed")
    if failed.exists():
        shutil.rmtree(failed)
    staged.rename(failed)
    return failed


def _replaced(value: Any, pattern: re.Pattern[str], new: str) -> Any:
    """``value`` (a notebook's JSON) with ``pattern`` replaced by ``new`` in every string."""
    if isinstance(value, str):
        return pattern.sub(lambda _: new, value)
    if isinstance(value, list):
        return [_replaced(v, pattern, new) for v in value]
    if isinstance(value, dict):
        return {k: _replaced(v, pattern, new) for k, v in value.items()}
    return value


def repoint_notebooks(folder: Path, old: Path, new: Path) -> None:
    """Make the executed notebooks in ``folder/notebooks`` name ``new`` where they name ``old``.

    The notebooks ran in the staging folder ``old``, so their injected ``run_dir``, papermill's
    metadata and any printed path name it; once the folder becomes ``new`` (the run folder, or
    ``<out>.failed``), a reopened notebook must read ``new``. A notebook that cannot be read (a
    copy papermill did not finish writing) is left as it is.
    """
    # the path as text and as a Python string literal (backslashes doubled), not followed by
    # more of a name: .x.partial-12 is not a prefix of .x.partial-123
    forms = {str(old): str(new)}
    forms[str(old).replace("\\", "\\\\")] = str(new).replace("\\", "\\\\")
    for path in sorted((folder / "notebooks").glob("*.ipynb")):
        try:
            notebook = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        fixed = notebook
        for before, after in forms.items():
            fixed = _replaced(fixed, re.compile(re.escape(before) + r"(?!\w)"), after)
        if fixed != notebook:
            with atomic_write(path, "w") as fh:  # as nbformat writes a notebook
                fh.write(json.dumps(fixed, sort_keys=True, indent=1, ensure_ascii=False) + "\n")


def is_run_leftover(folder: Path) -> bool:
    """Whether ``folder`` (named as a failed, partial or moved-aside run) is a run's: it has the
    run marker, or (a run from before the marker) nothing but a run's executed notebooks in
    ``notebooks/``, or no files at all."""
    if not folder.is_dir():
        return False
    if marker_kind(folder) == "cartokit run":
        return True
    executed = folder / "notebooks"
    copies = {f"{name}.ipynb" for name in NOTEBOOKS}
    if executed.is_dir() and {p.name for p in executed.iterdir()} <= copies:
        return any(executed.iterdir()) or not any(p.is_file() for p in folder.rglob("*"))
    return False


def check_run_folder(out: Path, *, option: str = "--out") -> None:
    """Refuse, before any work, a run folder whose replacement could lose someone's files."""
    cwd = Path.cwd().resolve()
    if out == cwd or out in cwd.parents:
        raise ValueError(
            f"cartokit run replaces its output folder, and {out} holds the working directory; "
            f"choose another {option}."
        )
    check_output_folder(out, written_by="cartokit run", option=option)
    failed = out.with_name(f"{out.name}.failed")
    if failed.exists() and not is_run_leftover(failed):
        raise ValueError(
            f"cartokit run keeps a failed run's outputs in {failed}, which exists and was not "
            f"written by cartokit run; move it away or choose another {option}."
        )


def is_legacy_grid(folder: Path) -> bool:
    """A grid folder from before grids wrote a marker: only a grid's tables and its jobs' runs."""
    if not folder.is_dir() or marker_kind(folder) is not None:
        return False
    entries = {p.name for p in folder.iterdir()}
    jobs = folder / "jobs"
    return (
        "jobs.csv" in entries
        and entries <= {"jobs", "jobs.csv", "results.csv", "summary.md"}
        and (not jobs.exists() or all(is_run_leftover(job) for job in jobs.iterdir()))
    )


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def clean_leftovers(out: Path, say: Callable[[str], None]) -> None:
    """Tidy up after earlier runs into ``out`` that were killed (kill -9, a power cut).

    Their ``.<out>.partial-<pid>`` folders are removed, and an earlier run that :func:`swap_in`
    had moved aside to ``.<out>.old-<pid>`` is put back when ``out`` is missing; only for
    processes that are gone, and only folders that hold what a run writes.
    """
    removed, restored = [], None
    for kind in ("partial", "old"):
        for path in sorted(out.parent.glob(f".{glob.escape(out.name)}.{kind}-*")):
            pid = path.name.rsplit("-", 1)[1]
            if not pid.isdigit() or int(pid) <= 0 or int(pid) == os.getpid():
                continue
            if not _process_gone(int(pid)) or not is_run_leftover(path):
                continue
            if kind == "old" and not out.exists() and marker_kind(path) == "cartokit run":
                path.rename(out)
                restored = path.name
            else:
                shutil.rmtree(path)
                removed.append(path.name)
    if restored:
        say(f"restored the earlier run {out} from {restored}, left by a killed run")
    if removed:
        say(
            f"removed {len(removed)} folder(s) left in {out.parent} by killed runs into "
            f"{out.name}: {', '.join(removed)}"
        )
