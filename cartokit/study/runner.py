"""Running studies: notebooks 01-04 with papermill into one run folder (:func:`run_study`, behind
``cartokit run``), and a grid of such studies collected into one table (:func:`run_grid`,
behind ``cartokit grid``).

A run checks its parameters (:func:`~cartokit.study.resolve_params`) and its output folder
(:func:`~cartokit.study.rundir.check_run_folder`) before the first notebook starts; the
notebooks write into a staging folder that replaces the run folder only when all succeed
(:mod:`cartokit.study.rundir`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from itertools import product
from pathlib import Path
from typing import Any

import pandas as pd

from cartokit._files import atomic_write, check_output_folder, write_marker
from cartokit.study.data import check_data
from cartokit.study.params import (
    FOLDER_PARAMS,
    LIST_PARAMS,
    STUDIES,
    find_notebooks,
    read_parameters_cell,
    read_yaml,
    resolve_params,
    study_of,
)
from cartokit.study.report import results_markdown, results_table, write_report
from cartokit.study.rundir import (
    Terminated,
    check_run_folder,
    clean_leftovers,
    is_legacy_grid,
    keep_failed,
    read_json,
    repoint_notebooks,
    sigterm_as_interrupt,
    stage,
    swap_in,
)
from cartokit.tracking import repoint_mlflow_store
from cartokit.train.progress import PROGRESS_ENV

__all__ = [
    "RunError",
    "default_kernel",
    "execute_notebook",
    "expand_grid",
    "run_grid",
    "run_study",
]


class RunError(RuntimeError):
    """A study's notebook failed; ``executed`` is its executed copy, which shows the error."""

    def __init__(self, message: str, *, notebook: str | None = None, executed: Path | None = None):
        super().__init__(message)
        self.notebook = notebook
        self.executed = executed


def _count(n: int, noun: str) -> str:
    """``"1 job"``, ``"2 jobs"``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def default_kernel() -> str:
    """The Jupyter kernel that runs the notebooks: ``cartokit`` when registered (``make install``
    registers it), else ``python3``."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager
    except ImportError:
        return "python3"
    return "cartokit" if "cartokit" in KernelSpecManager().find_kernel_specs() else "python3"


def execute_notebook(
    source: Path,
    target: Path,
    parameters: dict[str, Any],
    *,
    kernel: str,
    cwd: Path,
    progress: bool,
) -> None:
    """Execute the notebook ``source`` with papermill, with ``parameters`` injected after its
    ``parameters`` cell, into ``target``; a failing cell raises papermill's error.

    The kernel gets ``CARTOKIT_PROGRESS=log`` unless the variable is set: no frontend draws the
    notebook while it runs, so each progress bar prints one line, its final state, instead of
    a widget that the executed copy would show frozen at 0 %
    (:mod:`cartokit.train.progress`).
    """
    try:
        import papermill
    except ImportError:
        raise ImportError(
            "cartokit run executes the notebooks with papermill: pip install 'cartokit[notebooks]'"
        ) from None
    with _kernel_environment({PROGRESS_ENV: os.environ.get(PROGRESS_ENV) or "log"}):
        papermill.execute_notebook(
            str(source),
            str(target),
            parameters=parameters,
            kernel_name=kernel,
            cwd=str(cwd),
            progress_bar=progress,
            log_output=False,
            # the kernel app's own log (a notice that the local kernel talks over TCP without
            # encryption; an interrupt at shutdown) is noise here; the notebooks' errors still
            # surface
            extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
        )


@contextmanager
def _kernel_environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the kernels started inside the block (a kernel inherits
    the environment of the process that starts it), then put the old values back."""
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _failure_message(err: BaseException) -> str:
    ename, evalue = getattr(err, "ename", None), getattr(err, "evalue", None)
    if ename is not None:
        cell = getattr(err, "exec_count", None)
        where = f"in cell [{cell}]" if cell is not None else "in a cell"
        return f"{where} with {ename}: {' '.join(str(evalue).split())}"
    return f"with {type(err).__name__}: {' '.join(str(err).split())}"


# ============================================================================ one study


def run_study(
    out: str | os.PathLike[str],
    *,
    preset: str | None = None,
    config: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    notebooks_dir: str | os.PathLike[str] | None = None,
    kernel: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    caller: str = "run_study",
) -> Path:
    """Run notebooks 01-04 with papermill into the run folder ``out``; return the report's path.

    A preset or config file may name another study (:func:`~cartokit.study.study_of`): the
    ``dialogue`` preset runs notebook 07 (``generative``), the same way, with a report of its
    own. Parameters come from the study's notebooks' defaults, then ``preset`` or ``config``,
    then ``overrides`` (:func:`~cartokit.study.resolve_params`; errors name ``caller``, e.g.
    ``"cartokit run"``), and are checked before any notebook starts. Each notebook gets the
    parameters its ``parameters`` cell declares, and the run folder as its ``run_dir`` (07:
    ``out_dir``).

    ``out`` must be new, empty, or a run folder that cartokit wrote (its ``run.json`` says so);
    any other folder may hold other work and is refused before anything runs. The notebooks
    write into a hidden folder ``.<out>.partial-<pid>`` beside ``out``, which replaces ``out``
    only when all of them succeed, so a failed or interrupted run never overwrites an earlier run's
    outputs. A failed run's folder, or one stopped by Ctrl-C or SIGTERM, is kept as
    ``<out>.failed``, with the executed notebooks, until a run into ``out`` succeeds. The
    executed notebooks name the folder they end in (``out`` or ``<out>.failed``) as their
    ``run_dir``, so that a reopened copy reads its own run.

    A run killed by SIGKILL (``kill -9``, the out-of-memory killer) or a power cut can do none
    of this: ``out`` keeps the earlier run, no ``<out>.failed`` is written, and the killed run's
    outputs stay in ``.<out>.partial-<pid>`` until the next run into ``out`` removes that folder
    (and says so).

    Raises
    ------
    ValueError
        If ``out`` is a file, or a folder that cartokit did not write, or a parameter is bad.
    RunError
        If a notebook fails; the message names it, the cell and the error, and where its
        executed copy is.
    Terminated
        On SIGTERM (a KeyboardInterrupt, as is Ctrl-C), after moving the outputs to
        ``<out>.failed``.
    """
    say = log or _to_stderr
    out = Path(out).resolve()
    check_run_folder(out)
    params = resolve_params(
        preset=preset,
        config=config,
        overrides=overrides,
        notebooks_dir=notebooks_dir,
        caller=caller,
    )
    check_data(params)  # your own files: a bad one stops the run before the first notebook
    names = STUDIES[study_of(preset=preset, config=config, caller=caller)]
    sources = find_notebooks(notebooks_dir, names)
    declared = {name: read_parameters_cell(path) for name, path in sources.items()}
    kernel = kernel or default_kernel()
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(out, say)
    staged = stage(out)
    timings: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        with sigterm_as_interrupt():
            for name, source in sources.items():
                say(f"[{len(timings) + 1}/{len(names)}] {name}.ipynb")
                tick = time.perf_counter()
                wanted = {k: v for k, v in params.items() if k in declared[name]}
                target = staged / "notebooks" / f"{name}.ipynb"
                folder = next((k for k in FOLDER_PARAMS if k in declared[name]), "run_dir")
                parameters = {**wanted, folder: str(staged)}
                execute_notebook(
                    source, target, parameters, kernel=kernel, cwd=staged, progress=progress
                )
                timings.append({"name": name, "seconds": round(time.perf_counter() - tick, 1)})
                say(f"      done in {timings[-1]['seconds']:.1f} s")
            seconds = round(time.perf_counter() - started, 1)
            finished = time.strftime("%Y-%m-%d %H:%M:%S")
            info = {"params": params, "notebooks": timings, "seconds": seconds, "kernel": kernel}
            write_marker(staged, "cartokit run", **info, finished=finished)
            write_report(staged)
            repoint_notebooks(staged, staged, out)
            repoint_mlflow_store(staged, staged, out)  # cartokit run -p tracking=mlflow
    except BaseException as err:
        failing = names[min(len(timings), len(names) - 1)]
        error = _keep_failure(err, staged, out, failing, say)
        if error is None:  # KeyboardInterrupt, Terminated, SystemExit: as they are
            raise
        raise error from err
    swap_in(staged, out)
    say(f"Finished in {time.perf_counter() - started:.0f} s. Report: {out / 'report.md'}")
    return out / "report.md"


def _keep_failure(
    err: BaseException, staged: Path, out: Path, name: str, say: Callable[[str], None]
) -> RunError | None:
    """Keep a failed run's outputs in ``<out>.failed`` and say so; the :class:`RunError` to
    raise for an error in a notebook, ``None`` for an interruption."""
    failed = keep_failed(staged, out)
    with suppress(OSError):  # a disk too full to fix the copies must not hide the failure
        repoint_notebooks(failed, staged, failed)
        repoint_mlflow_store(failed, staged, failed)
    executed = failed / "notebooks" / f"{name}.ipynb"
    kept = f"{out} was left as it was" if out.exists() else f"nothing was written to {out}"
    if not isinstance(err, Exception):
        how = str(err) if isinstance(err, Terminated) else "interrupted"
        say(f"{how} during {name}.ipynb; partial outputs in {failed}; {kept}")
        return None
    where = f"its executed copy is {executed}" if executed.is_file() else f"see {failed}"
    return RunError(
        f"notebook {name}.ipynb failed {_failure_message(err)}. {where.capitalize()}; {kept}.",
        notebook=name,
        executed=executed if executed.is_file() else None,
    )


# ============================================================================ grids


def expand_grid(spec: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The jobs of a grid file: ``[(job name, overrides), ...]``.

    A grid file holds an optional ``preset``, optional fixed ``params``, and a ``grid`` mapping
    parameter names to lists of values. Parameters whose values are themselves lists
    (``selectors``, ``fractions``, ``seeds``, ``curve_fractions``, ``mixtures``) are passed
    whole to every job, whose notebooks cross them (each selector at each fraction, retrained
    with each seed) on one training run; every other parameter is a job axis.

    >>> jobs = expand_grid({"grid": {"model": ["mlp", "cnn"], "seed": [0, 1],
    ...                              "selectors": ["ambiguous", "random"]}})
    >>> [name for name, _ in jobs]
    ['model=mlp,seed=0', 'model=mlp,seed=1', 'model=cnn,seed=0', 'model=cnn,seed=1']
    >>> jobs[0][1]
    {'selectors': ['ambiguous', 'random'], 'model': 'mlp', 'seed': 0}
    """
    unknown = sorted(set(spec) - {"preset", "params", "grid", "out"})
    if unknown:
        raise ValueError(
            f"A grid file takes the keys ['preset', 'params', 'grid', 'out']. Got {unknown}; "
            "put parameters under 'params' (fixed) or 'grid' (lists of values)."
        )
    grid = spec.get("grid") or {}
    if not isinstance(grid, Mapping):
        raise ValueError("The 'grid' of a grid file must map parameter names to lists of values.")
    fixed = dict(spec.get("params") or {})
    axes: dict[str, list[Any]] = {}
    for key, values in grid.items():
        values = list(values) if isinstance(values, (list, tuple)) else [values]
        if key in LIST_PARAMS:
            fixed[key] = values
        elif not values:
            raise ValueError(f"The grid axis {key!r} is empty; give it at least one value.")
        else:
            axes[key] = values
    jobs = []
    for combo in product(*axes.values()) if axes else [()]:
        chosen = dict(zip(axes, combo))
        name = ",".join(f"{k}={v}" for k, v in chosen.items()) or "job"
        jobs.append((name.replace("/", "_").replace(" ", ""), {**fixed, **chosen}))
    return jobs


def run_grid(
    path: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    force: bool = False,
    notebooks_dir: str | os.PathLike[str] | None = None,
    kernel: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Run a parameter grid (a YAML file, see :func:`expand_grid`) as a queue of studies and
    collect one results table.

    Each job is a :func:`run_study` in ``<out>/jobs/<job name>``; ``out`` defaults to the file's
    ``out`` key, else ``runs/<file stem>``. Jobs that already finished with the same parameters
    are skipped (so an interrupted grid resumes) unless ``force``; a failed job does not stop
    the others. Writes ``<out>/results.csv`` (every job's rows of
    :func:`~cartokit.study.retrain`, with the job's axes as columns; an axis named like a
    column of those rows, such as ``seed``, is ``job_<name>``), ``<out>/jobs.csv``
    (status, seconds, error per job) and ``<out>/summary.md``; returns the results.

    ``out`` must be new, empty, or a grid folder that cartokit wrote (its ``run.json`` says
    so), and each job's folder new, empty or a cartokit run folder; anything else is refused
    before the first job starts. SIGTERM stops the grid as Ctrl-C does (:func:`run_study`).

    Raises
    ------
    ValueError
        If ``out`` or a job's folder may hold other work, or a job's parameters are bad (the
        message names the job: "The 'model' parameter of job model=resnet of grid.yaml ...").
    RunError
        After the queue, if any job failed (the tables are written first).
    """
    say = log or _to_stderr
    spec = read_yaml(path)
    jobs = expand_grid(spec)
    kind = study_of(preset=spec.get("preset"), caller=f"the grid file {path}")
    if kind != "classifier":
        raise ValueError(
            f"The grid file {path} starts from the preset {spec['preset']!r}, which runs the "
            f"{kind} study ({', '.join(STUDIES[kind])}); a grid runs notebooks 01-04 only. Run "
            f"it with cartokit run --preset {spec['preset']}, once per setting."
        )
    folder = Path(out or spec.get("out") or Path("runs") / Path(path).stem)
    callers = {name: f"job {name} of {Path(path).name}" for name, _ in jobs}
    # check every job's parameters before the first one starts
    resolved = {
        name: resolve_params(
            preset=spec.get("preset"),
            overrides=overrides,
            notebooks_dir=notebooks_dir,
            caller=callers[name],
        )
        for name, overrides in jobs
    }
    for params in resolved.values():
        check_data(params)
    # and every folder it would write, so that a refusal comes before hours of work
    if not is_legacy_grid(folder):
        check_output_folder(folder, written_by="cartokit grid")
    for name, _ in jobs:
        check_run_folder((folder / "jobs" / name).resolve())
    folder.mkdir(parents=True, exist_ok=True)
    write_marker(folder, "cartokit grid", grid=str(Path(path).resolve()))
    job_columns = ["dataset", "model", *(k for k in spec.get("grid") or {} if k not in LIST_PARAMS)]
    status, tables = [], []
    with sigterm_as_interrupt():  # Ctrl-C and SIGTERM stop the queue alike
        for i, (name, overrides) in enumerate(jobs, 1):
            say(f"=== job {i}/{len(jobs)}: {name}")
            job_dir = folder / "jobs" / name
            tick = time.perf_counter()
            state, error = _run_job(
                job_dir,
                resolved[name],
                force=force,
                preset=spec.get("preset"),
                overrides=overrides,
                notebooks_dir=notebooks_dir,
                kernel=kernel,
                progress=progress,
                log=say,
                caller=callers[name],
            )
            seconds = round(time.perf_counter() - tick, 1)
            status.append(
                {"job": name, "status": state, "seconds": seconds, "error": error, **overrides}
            )
            if state != "failed":
                # the job's axes (and always the dataset and model) as leading columns
                leading = {k: resolved[name][k] for k in dict.fromkeys(job_columns)}
                tables.append(_job_results(job_dir, {"job": name, **leading}))
    results = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    _write_grid_tables(folder, Path(path).name, results, status, say)
    failed = [s["job"] for s in status if s["status"] == "failed"]
    if failed:
        raise RunError(
            f"{len(failed)} of {_count(len(jobs), 'grid job')} failed: {failed}. See "
            f"{folder / 'jobs.csv'} and each job's .failed folder; run the grid again to retry "
            f"{'it' if len(failed) == 1 else 'them'}."
        )
    return results


def _run_job(
    job_dir: Path, params: Mapping[str, Any], *, force: bool, **study: Any
) -> tuple[str, str]:
    """Run one job of a grid (:func:`run_study` with ``study``) unless it already finished with
    the same parameters; its status and error."""
    done = read_json(job_dir / "run.json", {})
    same = done.get("params") == json.loads(json.dumps(params, default=str))
    if not force and same and (job_dir / "results.csv").is_file():
        study["log"]("    already done; skipped (use --force to run it again)")
        return "skipped (already done)", ""
    try:
        run_study(job_dir, **study)
    except RunError as err:
        study["log"](f"    failed: {err}")
        return "failed", str(err)
    return "done", ""


def _job_results(job_dir: Path, leading: Mapping[str, Any]) -> pd.DataFrame:
    """A finished job's ``results.csv``, with ``leading`` as its first columns.

    A job axis named like a column of the results keeps the results' column as it is and
    becomes ``job_<name>``: a grid over ``seed`` (the seed of notebook 01's training) gets
    ``job_seed``, beside ``seed``, the seed of each retraining.
    """
    table = pd.read_csv(job_dir / "results.csv")
    for position, (key, value) in enumerate(leading.items()):
        table.insert(position, f"job_{key}" if key in table.columns else key, value)
    return table


def _write_grid_tables(
    folder: Path,
    grid_name: str,
    results: pd.DataFrame,
    status: list[dict[str, Any]],
    say: Callable[[str], None],
) -> None:
    """``results.csv``, ``jobs.csv`` and ``summary.md`` of a grid."""
    with atomic_write(folder / "results.csv", "w") as fh:
        results.to_csv(fh, index=False)
    with atomic_write(folder / "jobs.csv", "w") as fh:
        pd.DataFrame(status).to_csv(fh, index=False)
    summary = [f"# Grid {grid_name}: {_count(len(status), 'job')}", ""]
    for job in status:
        summary.append(f"## {job['job']} ({job['status']})")
        summary.append("")
        part = results[results["job"] == job["job"]] if len(results) else results
        summary += [results_markdown(results_table(part)) if len(part) else job["error"], ""]
    with atomic_write(folder / "summary.md", "w") as fh:
        fh.write("\n".join(summary))
    say(
        f"Grid results: {folder / 'results.csv'} ({len(results)} rows); "
        f"summary: {folder / 'summary.md'}"
    )
