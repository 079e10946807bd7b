"""Send the data map to experiment trackers while a model trains: TensorBoard, MLflow, W&B.

At each checkpoint of the map (from the second on, since variability needs two), a tracker
gets, at the training step of that checkpoint:

- ``cartography/regions/<region>``: the number of samples in each region (scalars);
- ``cartography/confidence`` and ``cartography/variability``: their histograms (40 bins over
  [0, 1] and [0, 0.5]);
- ``cartography/data_map``: the data-map figure, as an image.

When training ends it also gets ``cartography/metrics``, the metrics table of
:func:`~cartokit.compute_metrics` with a ``region`` column. Each backend stores these in its
own way (the table of each backend's class says where), so that the map sits beside the loss
curves the user already logs:

- :func:`~cartokit.fit` takes ``tracking="tensorboard"`` (or ``"mlflow"``, ``"wandb"``, a list
  of them, or :class:`Tracker` objects);
- :class:`~cartokit.integrations.hf.CartographyTrainer` follows the Trainer's ``report_to``;
- :class:`~cartokit.integrations.lightning.CartographyCallback` uses the Trainer's loggers;
- ``cartokit run -p tracking=tensorboard`` logs notebook 01's training into the run folder.

Each backend is an optional extra: ``pip install "cartokit[tensorboard]"`` (or ``[mlflow]``,
``[wandb]``, or ``[tracking]`` for all three). The library is imported only when a tracker of
that kind is made.
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cartokit._validation import Options, Text, check_param, param_error
from cartokit.metrics import compute_metrics
from cartokit.regions import REGIONS, Thresholds, assign_regions, region_counts

if TYPE_CHECKING:
    from cartokit.dynamics import TrainingDynamics

__all__ = [
    "HISTOGRAM_BINS",
    "TRACKING_BACKENDS",
    "MLflowTracker",
    "MapSnapshot",
    "TensorBoardTracker",
    "Tracker",
    "Trackers",
    "WandbTracker",
    "check_tracking",
    "log_map",
    "make_trackers",
    "map_snapshot",
    "repoint_mlflow_store",
]

#: The backends a tracker can be made for by name, with the extra that installs each.
TRACKING_BACKENDS: Mapping[str, str] = MappingProxyType(
    {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}
)

#: Bin edges of the two histograms: fixed, so that checkpoints compare bin for bin.
HISTOGRAM_BINS: Mapping[str, np.ndarray] = MappingProxyType(
    {"confidence": np.linspace(0.0, 1.0, 41), "variability": np.linspace(0.0, 0.5, 41)}
)

_PREFIX = "cartography"
_TABLE_FILE = "cartography_metrics.csv"


def _require(module: str, extra: str, caller: str) -> Any:
    """Import an optional backend, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"{caller} needs {module.split('.')[0]}. Install it with: "
            f'pip install "cartokit[{extra}]"'
        ) from None


# ------------------------------------------------------------------------------ the snapshot


@dataclass(frozen=True)
class MapSnapshot:
    """The data map at one checkpoint, in the form every tracker logs it.

    Attributes
    ----------
    step : int
        The training step it belongs to (optimizer steps, as the trackers' other curves).
    num_checkpoints : int
        Checkpoints of the map so far.
    counts : dict of str to int
        Samples in each region, in the order of :data:`~cartokit.REGIONS`.
    histograms : dict of str to (numpy.ndarray, numpy.ndarray)
        ``"confidence"`` and ``"variability"``: their bin counts and bin edges
        (:data:`HISTOGRAM_BINS`), over the samples with a value.
    values : dict of str to numpy.ndarray
        The finite confidence and variability values the histograms count.
    image : numpy.ndarray
        The data-map figure as an ``(height, width, 3)`` array of ``uint8`` RGB.
    metrics : pandas.DataFrame or None
        The metrics table with a ``region`` column, at the end of training; else None.
    """

    step: int
    num_checkpoints: int
    counts: dict[str, int]
    histograms: dict[str, tuple[np.ndarray, np.ndarray]]
    values: dict[str, np.ndarray]
    image: np.ndarray
    metrics: pd.DataFrame | None = None

    def summary(self) -> pd.DataFrame:
        """Per region: samples, their share, and their mean confidence and variability."""
        if self.metrics is None:
            raise RuntimeError("MapSnapshot.summary needs the metrics table (final=True).")
        grouped = self.metrics.groupby("region", observed=False)
        out = pd.DataFrame(
            {
                "samples": grouped.size(),
                "confidence": grouped["confidence"].mean(),
                "variability": grouped["variability"].mean(),
            }
        ).reindex(list(REGIONS))
        out.insert(1, "share", out["samples"] / max(len(self.metrics), 1))
        return out


def _figure_rgb(figure: Any) -> np.ndarray:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def map_snapshot(
    dynamics: TrainingDynamics,
    step: int,
    *,
    thresholds: Thresholds | None = None,
    final: bool = False,
) -> MapSnapshot:
    """The data map of ``dynamics`` as the trackers log it: counts, histograms, figure, table.

    Parameters
    ----------
    dynamics : TrainingDynamics
        The record so far.
    step : int
        The training step to log it at.
    thresholds : Thresholds, optional
        The regions' cut points (default ``Thresholds()``).
    final : bool, default False
        Include the metrics table (with a ``region`` column).

    Returns
    -------
    MapSnapshot
    """
    from cartokit.plot import plot_data_map

    with warnings.catch_warnings():
        # fit warns once about a short record; a map in progress repeats nothing new
        warnings.filterwarnings("ignore", message="compute_metrics uses", category=UserWarning)
        metrics = compute_metrics(dynamics)
    regions = assign_regions(metrics, thresholds)
    counts = {str(k): int(v) for k, v in region_counts(regions).items()}
    values, histograms = {}, {}
    for column, edges in HISTOGRAM_BINS.items():
        finite = metrics[column].to_numpy(dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        values[column] = finite
        histograms[column] = (np.histogram(finite, bins=edges)[0], edges)
    title = f"Data map after {dynamics.num_epochs} checkpoints (step {step})"
    figure = plot_data_map(metrics, thresholds=thresholds, title=title)
    return MapSnapshot(
        step=int(step),
        num_checkpoints=dynamics.num_epochs,
        counts=counts,
        histograms=histograms,
        values=values,
        image=_figure_rgb(figure),
        metrics=metrics.assign(region=regions) if final else None,
    )


# ------------------------------------------------------------------------------ trackers


class Tracker:
    """Where the map goes: a backend's run. Subclasses write each record their backend's way.

    A tracker made here (from a log folder, a tracking URI or a project) is *owned*: its
    :meth:`close` ends the run. One made around a handle the user's framework already holds
    (``writer=``, ``run_id=``, ``run=``) only flushes, and the framework ends the run.
    """

    #: The backend's name, as in :data:`TRACKING_BACKENDS`.
    backend = ""

    def __init__(self, *, owned: bool) -> None:
        self.owned = owned

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        """Log named numbers (e.g. a history row of :func:`~cartokit.fit`) at ``step``."""
        raise NotImplementedError

    def log_map(self, snapshot: MapSnapshot) -> None:
        """Log a :class:`MapSnapshot` at its step."""
        raise NotImplementedError

    def close(self) -> None:
        """Flush; end the run when the tracker owns it."""

    def location(self) -> str:
        """Where the records are (a folder or a URI), for a message."""
        return ""


class TensorBoardTracker(Tracker):
    """Log to TensorBoard event files, through ``torch.utils.tensorboard.SummaryWriter``.

    Region counts are scalars, the histograms are TensorBoard histograms, the map an image.
    The metrics table goes to ``<log_dir>/cartography_metrics.csv`` (TensorBoard shows no
    tables), with a per-region summary as a text record (``cartography/metrics``).

    Parameters
    ----------
    log_dir : path, optional
        The event-file folder (``SummaryWriter``'s default, ``runs/<date>_<host>``, when None).
    writer : SummaryWriter, optional
        Log through this writer instead (the HF Trainer's or Lightning's); not closed here.
    """

    backend = "tensorboard"

    def __init__(
        self, log_dir: str | os.PathLike[str] | None = None, *, writer: Any = None
    ) -> None:
        super().__init__(owned=writer is None)
        if writer is None:
            summary = _require("torch.utils.tensorboard", "tensorboard", "TensorBoardTracker")
            writer = summary.SummaryWriter(log_dir=None if log_dir is None else str(log_dir))
        self.writer = writer
        self.log_dir = Path(writer.get_logdir())

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        """Each value as a scalar record named by its key."""
        for key, value in values.items():
            self.writer.add_scalar(key, float(value), step)
        self.writer.flush()

    def log_map(self, snapshot: MapSnapshot) -> None:
        """Scalars, histograms and an image at ``snapshot.step``; the table at the end."""
        step, writer = snapshot.step, self.writer
        for region, count in snapshot.counts.items():
            writer.add_scalar(f"{_PREFIX}/regions/{region}", count, step)
        for column, (counts, edges) in snapshot.histograms.items():
            values = snapshot.values[column]
            if values.size == 0:
                continue
            writer.add_histogram_raw(
                f"{_PREFIX}/{column}",
                min=float(values.min()),
                max=float(values.max()),
                num=int(values.size),
                sum=float(values.sum()),
                sum_squares=float(np.square(values).sum()),
                bucket_limits=edges[1:].tolist(),
                bucket_counts=counts.tolist(),
                global_step=step,
            )
        writer.add_image(f"{_PREFIX}/data_map", snapshot.image, step, dataformats="HWC")
        if snapshot.metrics is not None:
            from cartokit.io import write_metrics_csv

            path = write_metrics_csv(snapshot.metrics, self.log_dir / _TABLE_FILE)
            text = _markdown(snapshot.summary())
            writer.add_text(f"{_PREFIX}/metrics", f"{text}\n\nThe whole table: {path}", step)
        writer.flush()

    def close(self) -> None:
        """Flush, and close the writer when it was made here."""
        self.writer.flush()
        if self.owned:
            self.writer.close()

    def location(self) -> str:
        """The event-file folder."""
        return str(self.log_dir)


def _markdown(table: pd.DataFrame) -> str:
    """A small table as Markdown, which TensorBoard's text tab renders."""
    head = [table.index.name or "", *map(str, table.columns)]
    rows = [
        [str(i), *(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row)]
        for i, row in zip(table.index, table.itertuples(index=False))
    ]
    lines = [head, ["---"] * len(head), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


class MLflowTracker(Tracker):
    """Log to an MLflow run, through ``mlflow.MlflowClient``.

    Region counts are metrics, the map an image with a step (``client.log_image(key=...)``),
    each histogram a JSON artifact (``cartography/<column>_histogram/step_<step>.json``, bin
    edges and counts: MLflow has no histogram record), the metrics table an MLflow table
    (``cartography/metrics.json``; ``mlflow.load_table`` reads it).

    Parameters
    ----------
    tracking_uri : str, optional
        The tracking store. Default: MLflow's own (``MLFLOW_TRACKING_URI``, else a local
        SQLite file ``mlflow.db`` in the working folder, MLflow 3's replacement of ``./mlruns``).
    experiment : str, default "cartokit"
        The experiment to add a run to (created when missing).
    run_name : str, optional
        The new run's name.
    artifact_location : path, optional
        Where a new experiment keeps its artifacts (MLflow's default when None).
    client : mlflow.MlflowClient, optional
        With ``run_id``: log into that run (Lightning's ``MLFlowLogger``, the HF Trainer's
        active run); the run is not ended here.
    run_id : str, optional
        See ``client``.
    """

    backend = "mlflow"

    def __init__(
        self,
        tracking_uri: str | None = None,
        *,
        experiment: str = "cartokit",
        run_name: str | None = None,
        artifact_location: str | os.PathLike[str] | None = None,
        client: Any = None,
        run_id: str | None = None,
    ) -> None:
        caller = "MLflowTracker"
        super().__init__(owned=run_id is None)
        tracking = _require("mlflow.tracking", "mlflow", caller)
        check_param("experiment", experiment, Text(), caller=caller)
        if client is None:
            client = _mlflow_client(tracking, tracking_uri, caller)
        if run_id is None:
            found = client.get_experiment_by_name(experiment)
            if found is not None:
                experiment_id = found.experiment_id
            else:
                location = None if artifact_location is None else Path(artifact_location).resolve()
                experiment_id = client.create_experiment(
                    experiment, artifact_location=None if location is None else location.as_uri()
                )
            run_id = client.create_run(experiment_id, run_name=run_name).info.run_id
        self.client, self.run_id = client, run_id

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        """Each value as a metric named by its key."""
        from mlflow.entities import Metric

        now = _millis()
        metrics = [Metric(key, float(v), now, int(step)) for key, v in values.items()]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def log_map(self, snapshot: MapSnapshot) -> None:
        """Metrics, an image and histogram artifacts at ``snapshot.step``; the table at the end."""
        step = snapshot.step
        counts = {f"{_PREFIX}/regions/{r}": n for r, n in snapshot.counts.items()}
        self.log_scalars(counts, step)
        for column, (counts_, edges) in snapshot.histograms.items():
            self.client.log_dict(
                self.run_id,
                {"bin_edges": edges.tolist(), "counts": counts_.tolist(), "step": step},
                f"{_PREFIX}/{column}_histogram/step_{step:08d}.json",
            )
        self.client.log_image(self.run_id, snapshot.image, key=f"{_PREFIX}/data_map", step=step)
        if snapshot.metrics is not None:
            table = _plain_table(snapshot.metrics)
            self.client.log_table(self.run_id, data=table, artifact_file=f"{_PREFIX}/metrics.json")

    def close(self) -> None:
        """End the run when it was made here."""
        if self.owned:
            self.client.set_terminated(self.run_id)

    def location(self) -> str:
        """The tracking URI and the run id."""
        return f"{self.client.tracking_uri} (run {self.run_id})"


def _millis() -> int:
    import time

    return int(time.time() * 1000)


def _mlflow_client(tracking: Any, tracking_uri: str | None, caller: str) -> Any:
    """A client for ``tracking_uri``; MLflow's refusals as one sentence."""
    from mlflow.exceptions import MlflowException

    try:
        return tracking.MlflowClient(tracking_uri)
    except MlflowException as err:
        uri = tracking_uri or tracking.get_tracking_uri()
        message = str(err.message if hasattr(err, "message") else err)
        if "filesystem tracking backend" in message:
            raise ValueError(
                f"{caller}: MLflow 3 opens its old file store ({uri}) only with "
                "MLFLOW_ALLOW_FILE_STORE=true. Use a local SQLite file instead, e.g. "
                "tracking_uri='sqlite:///mlflow.db', or set MLFLOW_ALLOW_FILE_STORE=true."
            ) from None
        first = " ".join(message.split(". ")[0].split())
        reason = f"{caller}: MLflow cannot open the tracking store {uri}: {first}."
        raise ValueError(reason) from None


def _plain_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """The metrics table with its id as a column and plain Python values (None for missing),
    as JSON-based tables (MLflow's, W&B's) take it."""
    table = metrics.reset_index()
    for column in table.columns:
        series = table[column]
        if isinstance(series.dtype, pd.CategoricalDtype) or series.dtype.kind not in "fb":
            table[column] = series.astype(object).where(series.notna(), None)
    return table


class WandbTracker(Tracker):
    """Log to a Weights & Biases run; ``WANDB_MODE=offline`` writes it to a local folder.

    Each checkpoint is one ``run.log`` row: region counts, ``wandb.Histogram`` objects and a
    ``wandb.Image``, with the step under ``global_step`` (never as W&B's own ``step=``, which
    the framework that owns the run advances). The metrics table is a ``wandb.Table`` up to
    ``wandb.Table.MAX_ROWS`` rows (W&B cuts longer ones); a longer one goes whole to
    ``cartography_metrics.csv`` in the run's files, which ``wandb sync`` uploads.

    Parameters
    ----------
    project : str, default "cartokit"
        The project of a new run.
    run : wandb.Run, optional
        Log into this run (the HF Trainer's or Lightning's); not finished here.
    name : str, optional
        The new run's name.
    dir : path, optional
        The folder that gets the run's ``wandb/`` folder (the working folder when None).
    mode : {"online", "offline", "disabled"}, optional
        W&B's mode (``WANDB_MODE`` or W&B's default when None).
    """

    backend = "wandb"

    def __init__(
        self,
        project: str = "cartokit",
        *,
        run: Any = None,
        name: str | None = None,
        dir: str | os.PathLike[str] | None = None,  # noqa: A002 - wandb.init's own name
        mode: str | None = None,
    ) -> None:
        caller = "WandbTracker"
        super().__init__(owned=run is None)
        self._wandb = _require("wandb", "wandb", caller)
        if run is None:
            check_param("project", project, Text(), caller=caller)
            if dir is not None:
                Path(dir).mkdir(parents=True, exist_ok=True)
            try:
                run = self._wandb.init(
                    project=project,
                    name=name,
                    dir=None if dir is None else str(dir),
                    mode=mode,
                    reinit="create_new",
                )
            except Exception as err:  # W&B raises its own types, with multi-line messages
                first = " ".join(str(err).split("\n")[0].split())
                raise RuntimeError(
                    f"{caller}: wandb.init failed: {first}. Log in with `wandb login`, or set "
                    "WANDB_MODE=offline to write the run to a local folder (`wandb sync` "
                    "uploads it later)."
                ) from None
        self.run = run

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        """One row of the values, with ``global_step``."""
        self.run.log({**{k: float(v) for k, v in values.items()}, "global_step": int(step)})

    def log_map(self, snapshot: MapSnapshot) -> None:
        """One row: counts, histograms and the image; the table at the end."""
        wandb = self._wandb
        row: dict[str, Any] = {"global_step": snapshot.step}
        row.update({f"{_PREFIX}/regions/{r}": n for r, n in snapshot.counts.items()})
        for column, (counts, edges) in snapshot.histograms.items():
            row[f"{_PREFIX}/{column}"] = wandb.Histogram(np_histogram=(counts, edges))
        row[f"{_PREFIX}/data_map"] = wandb.Image(snapshot.image)
        if snapshot.metrics is not None:
            if len(snapshot.metrics) <= wandb.Table.MAX_ROWS:
                row[f"{_PREFIX}/metrics"] = wandb.Table(dataframe=_plain_table(snapshot.metrics))
            else:
                from cartokit.io import write_metrics_csv

                path = write_metrics_csv(snapshot.metrics, Path(self.run.dir) / _TABLE_FILE)
                self.run.save(str(path), base_path=self.run.dir, policy="now")
        self.run.log(row)

    def close(self) -> None:
        """Finish the run when it was made here."""
        if self.owned:
            self.run.finish()

    def location(self) -> str:
        """The run's folder."""
        return str(Path(self.run.dir).parent)


# ------------------------------------------------------------------------------ groups


def check_tracking(tracking: Any, *, caller: str) -> tuple[str | Tracker, ...]:
    """``tracking`` as a tuple of backend names and trackers, checked; nothing is made.

    >>> check_tracking("tensorboard", caller="fit")
    ('tensorboard',)
    >>> check_tracking(["tensorbord"], caller="fit")
    Traceback (most recent call last):
    ...
    ValueError: The 'tracking' parameter of fit must be one of ['tensorboard', 'mlflow', 'wandb']. Got 'tensorbord' instead. Did you mean 'tensorboard'?
    """  # noqa: E501
    if tracking is None:
        return ()
    if isinstance(tracking, Trackers):
        return tuple(tracking.trackers)
    items = list(tracking) if isinstance(tracking, (list, tuple)) else [tracking]
    for item in items:
        if isinstance(item, str):
            check_param("tracking", item, Options(list(TRACKING_BACKENDS)), caller=caller)
        elif not isinstance(item, Tracker):
            expected = (
                f"a backend name among {list(TRACKING_BACKENDS)}, a cartokit.tracking.Tracker, "
                "or a list of them"
            )
            raise param_error("tracking", caller, expected, item, type_error=True)
    return tuple(items)


def make_trackers(
    backends: str | Sequence[str],
    *,
    directory: str | os.PathLike[str] | None = None,
    run_name: str | None = None,
    caller: str = "make_trackers",
) -> list[Tracker]:
    """Make a tracker for each backend name, each with a new run.

    Parameters
    ----------
    backends : str or sequence of str
        Names among :data:`TRACKING_BACKENDS`: ``"tensorboard"``, ``"mlflow"``, ``"wandb"``.
    directory : path, optional
        Keep everything under this folder (a study's run folder): TensorBoard's events in
        ``directory/tensorboard``; MLflow's store in ``directory/mlflow.db`` and its artifacts
        in ``directory/mlartifacts``, unless ``MLFLOW_TRACKING_URI`` names another store; W&B's
        run in ``directory/wandb``. Default: each library's own default place.
    run_name : str, optional
        The runs' name (MLflow, W&B).
    caller : str, default "make_trackers"
        Who asks, for the error message.

    Returns
    -------
    list of Tracker

    Raises
    ------
    ValueError
        An unknown backend name.
    ImportError
        A backend that is not installed, with the extra that installs it.
    """
    names = [backends] if isinstance(backends, str) else list(backends)
    for name in names:
        check_param("tracking", name, Options(list(TRACKING_BACKENDS)), caller=caller)
    folder = None if directory is None else Path(directory)
    made: list[Tracker] = []
    try:
        for name in dict.fromkeys(names):
            if name == "tensorboard":
                made.append(TensorBoardTracker(None if folder is None else folder / "tensorboard"))
            elif name == "mlflow":
                uri = None
                if folder is not None and not os.environ.get("MLFLOW_TRACKING_URI"):
                    folder.mkdir(parents=True, exist_ok=True)
                    uri = f"sqlite:///{(folder / 'mlflow.db').resolve()}"
                artifacts = None if uri is None else folder / "mlartifacts"  # type: ignore[operator]
                made.append(
                    MLflowTracker(uri, run_name=run_name, artifact_location=artifacts)
                )  # fmt: skip
            else:
                made.append(WandbTracker(name=run_name, dir=folder))
    except BaseException:
        for tracker in made:
            tracker.close()
        raise
    return made


def repoint_mlflow_store(
    folder: str | os.PathLike[str], old: str | os.PathLike[str], new: str | os.PathLike[str]
) -> int:
    """Make the MLflow store in ``folder`` (``mlflow.db``) name its artifacts under ``new``.

    :func:`make_trackers` keeps MLflow's artifacts in ``directory/mlartifacts``, and MLflow
    records their place as an absolute URI. A run folder that moves (``cartokit run`` writes
    into a staging folder, then renames it) would leave its images and tables behind a dead
    URI; this rewrites the experiments' and runs' artifact URIs from ``old`` to ``new`` with
    the standard library's ``sqlite3`` (MLflow need not be installed). No store: nothing to do.

    Parameters
    ----------
    folder : path
        The folder that holds ``mlflow.db`` now.
    old, new : path
        The folder's former and present places.

    Returns
    -------
    int
        The artifact URIs rewritten.
    """
    import sqlite3

    store = Path(folder) / "mlflow.db"
    if not store.is_file():
        return 0
    before, after = Path(old).resolve().as_uri(), Path(new).resolve().as_uri()
    changed = 0
    with closing(sqlite3.connect(store)) as db, db:  # commits, then closes
        for table, column in (("experiments", "artifact_location"), ("runs", "artifact_uri")):
            # the old folder itself, or below it: .x.partial-12 is no prefix of .x.partial-123
            changed += db.execute(
                f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                f"WHERE {column} = ? OR substr({column}, 1, ?) = ?",
                (after, len(before) + 1, before, len(before) + 1, before + "/"),
            ).rowcount
    return changed


class Trackers:
    """The trackers of one training run: log to all of them, close the ones made for it.

    A context manager: ``with Trackers(["tensorboard"], directory="runs/a") as trackers:``
    closes them at the end of the block, and :func:`~cartokit.fit` takes it as ``tracking=``.

    Parameters
    ----------
    tracking : str, Tracker, or a sequence of them, optional
        Backend names (each gets a new run, see :func:`make_trackers`) and trackers (logged to,
        then only flushed: their owner closes them).
    directory : path, optional
        Where the trackers made by name keep their records (see :func:`make_trackers`).
    thresholds : Thresholds, optional
        The regions' cut points.
    caller : str, default "Trackers"
        Who asks, for error messages.
    """

    def __init__(
        self,
        tracking: str | Tracker | Sequence[str | Tracker] | None,
        *,
        directory: str | os.PathLike[str] | None = None,
        thresholds: Thresholds | None = None,
        caller: str = "Trackers",
    ) -> None:
        items = check_tracking(tracking, caller=caller)
        given = [t for t in items if isinstance(t, Tracker)]
        names = [t for t in items if isinstance(t, str)]
        self.made = make_trackers(names, directory=directory, caller=caller) if names else []
        self.trackers: list[Tracker] = [*given, *self.made]
        self.thresholds = thresholds

    def __bool__(self) -> bool:
        return bool(self.trackers)

    def log_scalars(self, values: Mapping[str, float], step: int) -> None:
        """Log ``values`` to every tracker."""
        for tracker in self.trackers:
            tracker.log_scalars(values, step)

    def log_map(self, dynamics: TrainingDynamics, step: int, *, final: bool = False) -> None:
        """Log the map of ``dynamics`` to every tracker (see :func:`log_map`)."""
        log_map(self.trackers, dynamics, step, final=final, thresholds=self.thresholds)

    def close(self) -> None:
        """Close every tracker (those made here end their runs; the others only flush)."""
        for tracker in self.trackers:
            tracker.close()

    def __enter__(self) -> Trackers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = ", ".join(f"{t.backend}: {t.location()}" for t in self.trackers)
        return f"Trackers({where})"


def log_map(
    trackers: Sequence[Tracker],
    dynamics: TrainingDynamics,
    step: int,
    *,
    final: bool = False,
    thresholds: Thresholds | None = None,
) -> MapSnapshot | None:
    """Log the data map of ``dynamics`` to each tracker, at ``step``.

    A record of fewer than 2 checkpoints is skipped during training (variability needs 2);
    with ``final=True`` it is logged whenever it has a checkpoint, with the metrics table.

    Parameters
    ----------
    trackers : sequence of Tracker
    dynamics : TrainingDynamics
        The record so far.
    step : int
        The training step (the x axis of the trackers' other curves).
    final : bool, default False
        Training has ended: also log the metrics table.
    thresholds : Thresholds, optional
        The regions' cut points.

    Returns
    -------
    MapSnapshot or None
        What was logged (None when nothing was).
    """
    if not trackers or dynamics.num_epochs < (1 if final else 2):
        return None
    snapshot = map_snapshot(dynamics, step, thresholds=thresholds, final=final)
    for tracker in trackers:
        tracker.log_map(snapshot)
    return snapshot
