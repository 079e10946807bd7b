"""The on-disk store of training dynamics, for records larger than memory.

A store is a folder of Parquet files, one or more per rank per epoch, committed epoch by epoch::

    STORE/
      store.json                      format, version, samples, classes, class names, extras
      ids.parquet                     the sample ids in position order (absent: ids are 0..N-1)
      manifest.json                   the committed epochs and their files: the commit point
      epochs/00000/r00000-0000.parquet   rank 0's first run of epoch 0, sorted by position
      epochs/00000/labels.parquet        every sample's label known after epoch 0 (-1: not seen)

Each part holds one rank's rows of one epoch (``pos``, the row position in the dataset, then
``gold_prob``, ``margin``, ``sq_error``, ``pred``, any ``extra__<name>`` and, when kept,
``probs``), sorted by position, in row groups whose ``pos`` statistics let a reader take one
range of samples without reading the rest. A recorder writes its rows in sorted *runs* of bounded
size, so that no rank ever holds a whole epoch; two ranks never write one file.

Every file appears by an atomic rename, and an epoch exists once ``manifest.json`` (replaced
atomically too) lists it: an epoch is either fully in the store or absent, whatever kills the
writer. Files no manifest lists are leftovers of an epoch that was not finished; a reader ignores
them, and the next writer removes them.

Reading merges the parts of an epoch by position: a sample written by several ranks (the padding
of a distributed sampler) is taken from the lowest rank, and within a rank from its last run,
as :class:`~cartokit.DynamicsRecorder` does in memory. :func:`open_dynamics` returns the store as
a :class:`~cartokit.TrainingDynamics` whose arrays load on first use, and which
:func:`~cartokit.compute_metrics` reads block by block of samples, in bounded memory.

Parquet, rather than Zarr: ``pyarrow`` is already a dependency; pandas, polars, DuckDB, Spark and
Arrow read the parts as they are; and one file per rank per epoch matches "each rank writes what
it saw" without two writers sharing a chunk. Readers take local paths or, through ``fsspec``, any
URL it knows (``s3://``, ``gs://``, ``memory://``); writers need a POSIX folder (local or a
shared file system), where a rename is atomic.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cartokit._files import atomic_write
from cartokit._validation import Interval, Optional, check_param, first_few
from cartokit.dynamics import TrainingDynamics, pred_dtype

__all__ = [
    "FORMAT",
    "VERSION",
    "StoreBlock",
    "StoreDynamics",
    "StoreWriter",
    "is_store",
    "open_dynamics",
    "remove_leftovers",
    "remove_parts",
    "write_part",
    "write_store",
]

FORMAT = "cartokit-store"
#: The store layout this cartokit writes; it reads this one and older ones.
VERSION = 1

META, MANIFEST, IDS, EPOCHS = "store.json", "manifest.json", "ids.parquet", "epochs"
LABELS = "labels.parquet"
#: Rows per row group of a part: a reader over-reads at most two row groups per part per block.
ROW_GROUP_ROWS = 1 << 15
#: Rows per row group of the dense files (ids, labels).
DENSE_GROUP_ROWS = 1 << 20
#: Samples per block when streaming, at most; fewer when there are many epochs (64 MiB of
#: per-checkpoint arrays per block).
BLOCK_SAMPLES = 1 << 21
_BLOCK_BYTES = 64 << 20
_COMPRESSION = "snappy"
_CORE = ("gold_prob", "margin", "sq_error", "pred")
_EXTRA = "extra__"


def is_store(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a local folder holding a store (its ``store.json``)."""
    p = Path(path)
    return p.is_dir() and (p / META).is_file()


def _fsync_dir(folder: Path) -> None:
    """Make the renames in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------- writing


def part_schema(num_classes: int, extras: Sequence[str], probs: bool) -> Any:
    """The Arrow schema of a part."""
    import pyarrow as pa

    fields = [("pos", pa.int32())]
    fields += [(name, pa.float32()) for name in _CORE[:3]]
    fields.append(("pred", pa.from_numpy_dtype(pred_dtype(num_classes))))
    fields += [(_EXTRA + name, pa.float32()) for name in extras]
    if probs:
        fields.append(("probs", pa.list_(pa.float32(), num_classes)))
    return pa.schema(fields)


def _arrow_table(columns: dict[str, np.ndarray], schema: Any) -> Any:
    import pyarrow as pa

    arrays = []
    for field in schema:
        values = columns[field.name]
        if field.name == "probs":
            flat = pa.array(np.ascontiguousarray(values, dtype=np.float32).ravel())
            arrays.append(pa.FixedSizeListArray.from_arrays(flat, values.shape[1]))
        else:
            arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def write_part(
    root: str | os.PathLike[str],
    epoch: int,
    rank: int,
    run: int,
    groups: Iterable[dict[str, np.ndarray]],
    schema: Any,
) -> dict[str, Any]:
    """Write one sorted run of a rank's rows as a part of ``epoch``; return its manifest entry.

    ``groups`` yields the row groups in position order, each a dict of columns named as in
    ``schema`` (``pos`` first). The file appears whole, by rename, or not at all.
    """
    import pyarrow.parquet as pq

    rel = f"{EPOCHS}/{epoch:05d}/r{rank:05d}-{run:04d}.parquet"
    path = Path(root) / rel
    rows = 0
    with atomic_write(path, "wb") as fh:
        writer = pq.ParquetWriter(
            fh, schema, compression=_COMPRESSION, use_dictionary=False, write_statistics=["pos"]
        )
        with writer:
            for columns in groups:
                writer.write_table(_arrow_table(columns, schema))
                rows += len(columns["pos"])
    return {"file": rel, "rank": rank, "run": run, "rows": rows, "bytes": path.stat().st_size}


def remove_parts(root: str | os.PathLike[str], parts: Iterable[dict[str, Any]]) -> None:
    """Delete the files of parts that will not be committed."""
    for part in parts:
        (Path(root) / part["file"]).unlink(missing_ok=True)


def remove_leftovers(
    root: str | os.PathLike[str], epoch: int, rank: int, keep: Iterable[dict[str, Any]]
) -> None:
    """Delete ``rank``'s files of the uncommitted ``epoch`` that are not in ``keep`` (what a
    killed run left), before the rank writes that epoch."""
    kept = {Path(part["file"]).name for part in keep}
    folder = Path(root) / EPOCHS / f"{epoch:05d}"
    if folder.is_dir():
        for path in folder.glob(f"r{rank:05d}-*.parquet"):
            if path.name not in kept:
                path.unlink(missing_ok=True)
        for path in folder.glob(f".r{rank:05d}-*.tmp"):  # atomic_write's, of a killed writer
            path.unlink(missing_ok=True)


def _write_dense(path: Path, name: str, values: np.ndarray) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    array_type = pa.string() if values.dtype == object else pa.from_numpy_dtype(values.dtype)
    schema = pa.schema([(name, array_type)])
    with atomic_write(path, "wb") as fh:
        with pq.ParquetWriter(fh, schema, compression=_COMPRESSION) as writer:
            for start in range(0, len(values), DENSE_GROUP_ROWS):
                chunk = pa.array(values[start : start + DENSE_GROUP_ROWS], type=array_type)
                writer.write_table(pa.Table.from_arrays([chunk], schema=schema))
    return path.stat().st_size


@dataclass(frozen=True)
class StoreSpec:
    """What a store records: the shape of its samples and columns, fixed at creation."""

    num_samples: int
    num_classes: int
    class_names: list[str] | None
    id_kind: str  # "position" (ids are 0..N-1), "int" or "str"
    extras: tuple[str, ...] = ()
    probs: bool = False

    def meta(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "num_samples": self.num_samples,
            "num_classes": self.num_classes,
            "class_names": self.class_names,
            "id_kind": self.id_kind,
            "extras": list(self.extras),
            "probs": self.probs,
        }


class StoreWriter:
    """The writer that owns a store's metadata (rank 0 under DDP): creates the store or checks
    that an existing one records the same thing, then commits epochs one by one.

    Parameters
    ----------
    root : path-like
        The store's folder; created when missing.
    spec : StoreSpec
    ids : array, optional
        The sample ids when ``spec.id_kind`` is not ``"position"``.
    caller : str
        Who writes, for the errors.
    """

    def __init__(
        self, root: str | os.PathLike[str], spec: StoreSpec, ids: np.ndarray | None, *, caller: str
    ) -> None:
        self.root, self.spec, self.caller = Path(root), spec, caller
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(f"{caller}: the store {self.root} is a file; give a folder.")
        if (self.root / META).is_file():
            reader = StoreReader(self.root, caller=caller)
            self._check_same(reader, ids)
            self.manifest = reader.manifest
            self.known_labels = (
                reader.labels(0, spec.num_samples, raw=True)
                if reader.num_epochs
                else np.full(spec.num_samples, -1, dtype=pred_dtype(spec.num_classes))
            )
        else:
            if self.root.is_dir() and any(self.root.iterdir()):
                raise ValueError(
                    f"{caller}: {self.root} is not empty and holds no cartokit store "
                    f"({META}); give a new or empty folder for the store."
                )
            self.root.mkdir(parents=True, exist_ok=True)
            if spec.id_kind != "position":
                _write_dense(self.root / IDS, "id", np.asarray(ids))
            self.manifest = {"format": FORMAT, "version": VERSION, "epochs": []}
            with atomic_write(self.root / META, "w") as fh:
                json.dump(spec.meta(), fh, indent=1)
            with atomic_write(self.root / MANIFEST, "w") as fh:
                json.dump(self.manifest, fh)
            _fsync_dir(self.root)
            self.known_labels = np.full(spec.num_samples, -1, dtype=pred_dtype(spec.num_classes))

    @property
    def num_epochs(self) -> int:
        """Committed epochs."""
        return len(self.manifest["epochs"])

    def _check_same(self, reader: StoreReader, ids: np.ndarray | None) -> None:
        spec = self.spec
        for name, theirs, ours in (
            ("num_samples", reader.num_samples, spec.num_samples),
            ("num_classes", reader.num_classes, spec.num_classes),
            ("class_names", reader.class_names, spec.class_names),
            ("extras", list(reader.extras), list(spec.extras)),
            ("store_probs", reader.has_probs, spec.probs),
        ):
            if theirs != ours:
                raise ValueError(
                    f"{self.caller}: the store {self.root} was recorded with {name}={theirs!r}, "
                    f"this recorder has {ours!r}; record into a new store, or give the same "
                    "settings to resume."
                )
        stored = reader.ids(0, reader.num_samples)
        same = (
            np.array_equal(stored, np.arange(spec.num_samples))
            if ids is None
            else (len(stored) == len(ids) and bool((stored == np.asarray(ids)).all()))
        )
        if not same:
            raise ValueError(
                f"{self.caller}: the store {self.root} was recorded with other sample ids "
                f"(it starts {first_few(stored)}); record into a new store, or pass the same "
                "sample_ids to resume."
            )

    def clean_uncommitted(self, *, world: int = 1) -> None:
        """Remove what unfinished epochs left: the folders after the next epoch's, and in the
        next epoch's folder the labels and the parts of ranks beyond ``world`` (each rank
        removes its own leftovers there before it writes, :func:`remove_leftovers`)."""
        for temporary in self.root.glob(f".{MANIFEST}.*.tmp"):
            temporary.unlink(missing_ok=True)
        folder = self.root / EPOCHS
        if not folder.is_dir():
            return
        for child in folder.iterdir():
            if child.is_dir() and child.name.isdigit() and int(child.name) > self.num_epochs:
                shutil.rmtree(child, ignore_errors=True)
        current = folder / f"{self.num_epochs:05d}"
        if current.is_dir():
            (current / LABELS).unlink(missing_ok=True)
            for temporary in current.glob(f".{LABELS}.*.tmp"):
                temporary.unlink(missing_ok=True)
            for part in current.glob("*r*-*"):
                rank = part.name.lstrip(".")[1:6]
                if rank.isdigit() and int(rank) >= world:
                    part.unlink(missing_ok=True)

    def commit(
        self,
        parts: list[dict[str, Any]],
        labels: np.ndarray | None,
        *,
        rows: int,
        duplicates: int,
        missing: int,
    ) -> None:
        """Commit the next epoch: its parts (already written, by every rank), and the labels
        known after it (``None``: unchanged since the last epoch). Atomic: on an error the
        store still holds the earlier epochs and nothing more."""
        epoch = self.num_epochs
        entry: dict[str, Any] = {
            "parts": sorted(parts, key=lambda p: (p["rank"], p["run"])),
            "rows": rows,
            "duplicates": duplicates,
            "missing": missing,
        }
        if labels is not None or epoch == 0:
            rel = f"{EPOCHS}/{epoch:05d}/{LABELS}"
            known = self.known_labels if labels is None else labels
            entry["labels"] = {"file": rel, "bytes": _write_dense(self.root / rel, "label", known)}
        else:
            entry["labels"] = self.manifest["epochs"][-1]["labels"]
        manifest = {**self.manifest, "epochs": [*self.manifest["epochs"], entry]}
        _fsync_dir(self.root / EPOCHS / f"{epoch:05d}")
        with atomic_write(self.root / MANIFEST, "w") as fh:
            json.dump(manifest, fh)
        _fsync_dir(self.root)
        self.manifest = manifest
        if labels is not None:
            self.known_labels = labels

    def truncate(self, num_epochs: int) -> None:
        """Keep only the first ``num_epochs`` committed epochs (a run resumed from an earlier
        checkpoint records the later ones again)."""
        kept = self.manifest["epochs"][:num_epochs]
        manifest = {**self.manifest, "epochs": kept}
        with atomic_write(self.root / MANIFEST, "w") as fh:
            json.dump(manifest, fh)
        self.manifest = manifest
        self.clean_uncommitted()
        self.known_labels = (
            StoreReader(self.root, caller=self.caller).labels(0, self.spec.num_samples, raw=True)
            if kept
            else np.full(self.spec.num_samples, -1, dtype=pred_dtype(self.spec.num_classes))
        )


# ---------------------------------------------------------------------------------- reading


class _Location:
    """Where a store is read from: a local folder, or any URL that fsspec knows."""

    def __init__(self, where: str | os.PathLike[str]) -> None:
        import pyarrow.fs as pafs

        text = os.fspath(where)
        self.shown = text
        if "://" in text and not text.startswith("file://"):
            try:
                import fsspec
            except ImportError:
                raise ImportError(
                    f"Reading the store {text} needs fsspec (and its filesystem for the URL): "
                    "pip install fsspec."
                ) from None
            fs, root = fsspec.core.url_to_fs(text)
            self.fs = pafs.PyFileSystem(pafs.FSSpecHandler(fs))
            self.root, self.local = root.rstrip("/"), False
        else:
            self.fs = pafs.LocalFileSystem()
            self.root, self.local = os.path.abspath(text.removeprefix("file://")), True

    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def size(self, rel: str) -> int | None:
        import pyarrow.fs as pafs

        info = self.fs.get_file_info(self.path(rel))
        return info.size if info.type == pafs.FileType.File else None

    def read_text(self, rel: str) -> str:
        with self.fs.open_input_stream(self.path(rel)) as fh:
            return fh.read().decode("utf-8")

    def parquet(self, rel: str, metadata: Any = None) -> Any:
        import pyarrow.parquet as pq

        if self.local:
            return pq.ParquetFile(self.path(rel), metadata=metadata, memory_map=True)
        return pq.ParquetFile(self.fs.open_input_file(self.path(rel)), metadata=metadata)


def _epoch_span(count: int) -> str:
    return "no epoch before it is" if count == 0 else f"epochs 0-{count - 1} are"


class StoreReader:
    """A store's metadata and manifest, checked, and reads of any range of samples.

    Raises one-line errors (``ValueError``, or ``FileNotFoundError`` when there is no store)
    naming the store: a newer format, a damaged manifest, an epoch whose files are missing or
    torn (the message says how to open the whole epochs before it).
    """

    def __init__(
        self, where: str | os.PathLike[str], *, caller: str, num_epochs: int | None = None
    ) -> None:
        self.loc = _Location(where)
        self.caller = caller
        shown = self.loc.shown
        if self.loc.size(META) is None:
            raise FileNotFoundError(
                f"{caller}: no dynamics store at {shown} (it has no {META}). A store is the "
                "folder given to DynamicsRecorder(store=...) or write_store."
            )
        meta = self._json(META)
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"{caller}: {shown}/{META} is not the metadata of a cartokit store.")
        version = meta.get("version")
        if not isinstance(version, int) or version < 1:
            raise ValueError(f"{caller}: {shown} has store version {version!r}, not an int >= 1.")
        if version > VERSION:
            raise ValueError(
                f"{caller}: {shown} was written by a newer cartokit (store version {version}; "
                f"this one reads up to {VERSION}); upgrade cartokit to read it."
            )
        try:
            self.num_samples = int(meta["num_samples"])
            self.num_classes = int(meta["num_classes"])
            self.class_names = meta.get("class_names")
            self.id_kind = str(meta["id_kind"])
            self.extras = tuple(meta.get("extras") or ())
            self.has_probs = bool(meta.get("probs", False))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{caller}: {shown}/{META} lacks or garbles {err}.") from None
        self.manifest = self._json(MANIFEST)
        epochs = self.manifest.get("epochs") if isinstance(self.manifest, dict) else None
        if not isinstance(epochs, list):
            raise ValueError(f"{caller}: {shown}/{MANIFEST} lists no epochs; it is damaged.")
        if num_epochs is not None:
            num_epochs = check_param(
                "num_epochs", num_epochs, Optional(Interval(int, 1, len(epochs))), caller=caller
            )
            epochs = epochs[:num_epochs]
        self.epochs = epochs
        self._check_files()
        self._footers: dict[str, tuple[Any, np.ndarray, np.ndarray]] = {}

    def _json(self, rel: str) -> Any:
        try:
            return json.loads(self.loc.read_text(rel))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(
                f"{self.caller}: {self.loc.shown}/{rel} is not readable ({err})."
            ) from None

    def _check_files(self) -> None:
        for e, entry in enumerate(self.epochs):
            files = [*entry.get("parts", []), entry.get("labels") or {}]
            for item in files:
                rel, expected = item.get("file"), item.get("bytes")
                actual = self.loc.size(rel) if isinstance(rel, str) else None
                if actual == expected:
                    continue
                what = (
                    "is missing"
                    if actual is None
                    else (f"holds {actual:,} bytes where {expected:,} were written (torn)")
                )
                raise ValueError(
                    f"{self.caller}: epoch {e} of the store {self.loc.shown} is damaged: {rel} "
                    f"{what}; {_epoch_span(e)} whole: open_dynamics({self.loc.shown!r}, "
                    f"num_epochs={e}) reads {'them' if e else 'nothing'}."
                )

    @property
    def num_epochs(self) -> int:
        return len(self.epochs)

    @property
    def token(self) -> str:
        """Names this state of the store: a reader cached under it is still valid."""
        last = json.dumps(self.epochs[-1:], sort_keys=True).encode("utf-8")
        return f"{self.num_epochs}-{hashlib.sha1(last).hexdigest()[:16]}"

    # ------------------------------------------------------------------ dense files
    def _dense(self, rel: str, column: str, start: int, stop: int) -> np.ndarray:
        pf = self.loc.parquet(rel)
        first = start // DENSE_GROUP_ROWS
        last = max(first, (stop - 1) // DENSE_GROUP_ROWS)
        groups = list(range(first, min(last + 1, pf.metadata.num_row_groups)))
        table = pf.read_row_groups(groups, columns=[column], use_threads=False)
        offset = first * DENSE_GROUP_ROWS
        array = table.column(column).slice(start - offset, stop - start)
        if array.type == "string" or str(array.type) == "large_string":
            return np.array(array.to_pylist(), dtype=object)
        return array.to_numpy()

    def ids(self, start: int, stop: int) -> np.ndarray:
        """The sample ids of positions ``start..stop-1``."""
        if self.id_kind == "position":
            return np.arange(start, stop, dtype=np.int64)
        ids = self._dense(IDS, "id", start, stop)
        return ids if ids.dtype == object else ids.astype(np.int64, copy=False)

    def labels(self, start: int, stop: int, *, raw: bool = False) -> np.ndarray:
        """The labels of positions ``start..stop-1`` (0 for a sample never seen; with
        ``raw``, -1 and the stored dtype)."""
        if not self.epochs:
            return np.full(stop - start, -1 if raw else 0, dtype=np.int64)
        labels = self._dense(self.epochs[-1]["labels"]["file"], "label", start, stop)
        if raw:
            return labels
        return np.maximum(labels, 0).astype(np.int64)

    # ------------------------------------------------------------------ parts
    def _footer(self, rel: str) -> tuple[Any, np.ndarray, np.ndarray]:
        """A part's metadata and each row group's smallest and largest position."""
        found = self._footers.get(rel)
        if found is None:
            md = self.loc.parquet(rel).metadata
            lo = np.empty(md.num_row_groups, dtype=np.int64)
            hi = np.empty(md.num_row_groups, dtype=np.int64)
            for g in range(md.num_row_groups):
                stats = md.row_group(g).column(0).statistics
                lo[g], hi[g] = stats.min, stats.max
            found = self._footers[rel] = (md, lo, hi)
        return found

    def read(
        self,
        start: int,
        stop: int,
        epochs: Sequence[int],
        columns: Sequence[str],
    ) -> dict[str, np.ndarray]:
        """The ``[len(epochs), stop - start]`` arrays of ``columns`` (``probs``:
        ``[E, n, C]``) for positions ``start..stop-1``: NaN (pred -1) where not seen."""
        shape = (len(epochs), stop - start)
        out: dict[str, np.ndarray] = {}
        for name in columns:
            if name == "pred":
                out[name] = np.full(shape, -1, dtype=pred_dtype(self.num_classes))
            elif name == "probs":
                out[name] = np.full((*shape, self.num_classes), np.nan, dtype=np.float32)
            else:
                out[name] = np.full(shape, np.nan, dtype=np.float32)
        for row, e in enumerate(epochs):
            # the lowest rank wins, and within a rank the last run: later writes override
            parts = sorted(self.epochs[e]["parts"], key=lambda p: (-p["rank"], p["run"]))
            for part in parts:
                md, lo, hi = self._footer(part["file"])
                groups = np.flatnonzero((hi >= start) & (lo < stop))
                if groups.size == 0:
                    continue
                table = self.loc.parquet(part["file"], md).read_row_groups(
                    groups.tolist(), columns=["pos", *columns], use_threads=False
                )
                pos = table.column("pos").to_numpy()
                a, b = np.searchsorted(pos, [start, stop])
                where = pos[a:b] - start
                for name in columns:
                    column = table.column(name).slice(a, b - a)
                    if name == "probs":
                        flat = column.combine_chunks().flatten().to_numpy()
                        out[name][row, where] = flat.reshape(-1, self.num_classes)
                    else:
                        out[name][row, where] = column.to_numpy()
        return out

    def dynamics(
        self,
        start: int,
        stop: int,
        epochs: Sequence[int] | None = None,
        *,
        probs: bool = False,
        extras: bool = True,
    ) -> TrainingDynamics:
        """Samples ``start..stop-1`` as an in-memory TrainingDynamics (checked as any is)."""
        epochs = range(self.num_epochs) if epochs is None else epochs
        columns = [*_CORE, *(_EXTRA + x for x in self.extras if extras)]
        if probs and self.has_probs:
            columns.append("probs")
        data = self.read(start, stop, epochs, columns)
        try:
            return TrainingDynamics(
                ids=self.ids(start, stop),
                labels=self.labels(start, stop),
                gold_prob=data["gold_prob"],
                margin=data["margin"],
                sq_error=data["sq_error"],
                pred=data["pred"],
                num_classes=self.num_classes,
                class_names=self.class_names,
                probs=data.get("probs"),
                extras={x: data[_EXTRA + x] for x in self.extras if extras},
            )
        except (TypeError, ValueError) as err:
            reason = str(err).removeprefix("TrainingDynamics: ")
            raise ValueError(
                f"{self.caller}: the store {self.loc.shown} holds inconsistent dynamics: {reason}"
            ) from None


@functools.lru_cache(maxsize=8)
def _cached_reader(where: str, num_epochs: int, token: str) -> StoreReader:
    # one reader per store state and process: a worker reading block after block opens the
    # manifest once (token changes when the store does)
    return StoreReader(where, caller="compute_metrics", num_epochs=num_epochs)


@dataclass(frozen=True)
class StoreBlock:
    """One range of samples of a store, for a worker to read (picklable: a location and a
    range, no data)."""

    where: str
    num_epochs: int
    token: str
    start: int
    stop: int

    def read(self, epochs: Sequence[int] | None = None) -> TrainingDynamics:
        """The block's samples as a record (at ``epochs`` only, when given)."""
        reader = _cached_reader(self.where, self.num_epochs, self.token)
        return reader.dynamics(self.start, self.stop, epochs)


def block_samples(num_epochs: int, bytes_per_value: int = 13) -> int:
    """Samples per streamed block: its per-checkpoint arrays take about 64 MiB."""
    fit = _BLOCK_BYTES // max(1, num_epochs * bytes_per_value)
    return int(max(1 << 12, min(BLOCK_SAMPLES, fit)))


class StoreDynamics(TrainingDynamics):
    """A :class:`~cartokit.TrainingDynamics` backed by a store (:func:`open_dynamics`).

    Nothing is read when it opens but the metadata. Each array (``gold_prob``, ``labels``,
    ...) loads from the store the first time it is used, and stays; :meth:`read` and
    :meth:`blocks` give ranges of samples without loading the rest, which is how
    :func:`~cartokit.compute_metrics` streams over a store larger than memory.
    """

    def __init__(self, reader: StoreReader) -> None:
        self._reader = reader
        self.num_classes = reader.num_classes
        self.class_names = reader.class_names
        self._arrays: dict[str, Any] = {}

    @property
    def location(self) -> str:
        """Where the store is (the path or URL given to :func:`open_dynamics`)."""
        return self._reader.loc.shown

    @property
    def num_epochs(self) -> int:
        return self._reader.num_epochs

    @property
    def num_samples(self) -> int:
        return self._reader.num_samples

    @property
    def extra_names(self) -> list[str]:
        """The names of the extra statistics, from the metadata (``extras`` loads them)."""
        return list(self._reader.extras)

    def __repr__(self) -> str:
        return (
            f"StoreDynamics({self.location!r}, num_samples={self.num_samples}, "
            f"num_epochs={self.num_epochs}, num_classes={self.num_classes})"
        )

    def _full(self) -> TrainingDynamics:
        """The whole record in memory, read on the first use of an array."""
        if "all" not in self._arrays:
            self._arrays["all"] = self._reader.dynamics(0, self.num_samples, probs=True)
        return self._arrays["all"]

    # Each array loads the whole record on first use: functions that take dynamics index them
    # freely, and a store small enough for them fits in memory.
    ids = property(lambda self: self._reader_ids(), doc="The sample ids (read on first use).")
    labels = property(lambda self: self._full().labels, doc="The gold labels.")
    gold_prob = property(lambda self: self._full().gold_prob, doc="``[E, N]``, loads the record.")
    margin = property(lambda self: self._full().margin, doc="``[E, N]``, loads the record.")
    sq_error = property(lambda self: self._full().sq_error, doc="``[E, N]``, loads the record.")
    pred = property(lambda self: self._full().pred, doc="``[E, N]``, loads the record.")
    probs = property(lambda self: self._full().probs, doc="``[E, N, C]`` or None.")
    extras = property(lambda self: self._full().extras, doc="Name -> ``[E, N]``.")

    def _reader_ids(self) -> np.ndarray:
        if "all" in self._arrays:
            return self._arrays["all"].ids
        if "ids" not in self._arrays:
            self._arrays["ids"] = self._reader.ids(0, self.num_samples)
        return self._arrays["ids"]

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays loaded so far (0 until one is used)."""
        held = self._arrays.get("all")
        return 0 if held is None else held.nbytes

    def read(
        self, start: int = 0, stop: int | None = None, epochs: Sequence[int] | None = None
    ) -> TrainingDynamics:
        """Samples ``start..stop-1`` (positions), at ``epochs`` (indices; default all), as an
        in-memory :class:`~cartokit.TrainingDynamics`."""
        stop = self.num_samples if stop is None else stop
        if not (0 <= start < stop <= self.num_samples):
            raise ValueError(
                f"StoreDynamics.read: the range must be within [0, {self.num_samples}) and not "
                f"empty. Got start={start}, stop={stop}."
            )
        return self._reader.dynamics(start, stop, epochs, probs=True)

    def blocks(self, size: int | None = None) -> list[StoreBlock]:
        """The store as ranges of ``size`` samples (default: about 64 MiB of arrays each)."""
        size = block_samples(self.num_epochs) if size is None else size
        r = self._reader
        return [
            StoreBlock(self.location, r.num_epochs, r.token, a, min(a + size, r.num_samples))
            for a in range(0, r.num_samples, size)
        ]


def open_dynamics(
    path: str | os.PathLike[str],
    *,
    num_epochs: int | None = None,
    class_names: Sequence[str] | None = None,
) -> StoreDynamics:
    """Open a store written by ``DynamicsRecorder(store=...)`` or :func:`write_store`.

    Parameters
    ----------
    path : str or path-like
        The store's folder, or a URL that fsspec reads (``s3://bucket/run/store``).
    num_epochs : int, optional
        Read only the first ``num_epochs`` committed epochs (e.g. the whole ones before a
        damaged one). Default: all of them.
    class_names : sequence of str, optional
        Names of the classes, replacing those stored.

    Returns
    -------
    StoreDynamics
        A :class:`~cartokit.TrainingDynamics`: every function that takes one accepts it.
        Its arrays load on first use; :func:`~cartokit.compute_metrics` streams over it.

    Raises
    ------
    FileNotFoundError
        When there is no store at ``path``.
    ValueError
        When the store is from a newer cartokit, holds no committed epoch, or an epoch's files
        are missing or torn (the message says which, and how to read the epochs before it).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> dyn = TrainingDynamics.from_logits(np.zeros((3, 4, 2)), labels=[0, 1, 1, 0])
    >>> path = write_store(dyn, os.path.join(tempfile.mkdtemp(), "store"))
    >>> opened = open_dynamics(path)
    >>> opened.num_epochs, opened.gold_prob[0].tolist()
    (3, [0.5, 0.5, 0.5, 0.5])
    """
    reader = StoreReader(path, caller="open_dynamics", num_epochs=num_epochs)
    if reader.num_epochs == 0:
        raise ValueError(
            f"open_dynamics: the store {reader.loc.shown} holds no finished epoch yet; a "
            "recorder commits one at each end_epoch()."
        )
    if class_names is not None:
        names = [str(c) for c in class_names]
        if len(names) != reader.num_classes:
            raise ValueError(
                f"open_dynamics: got {len(names)} class names for the {reader.num_classes} "
                f"classes of the store {reader.loc.shown}."
            )
        reader.class_names = names
    return StoreDynamics(reader)


def _position_groups(
    dyn: TrainingDynamics, epoch: int, columns: list[str]
) -> Iterator[dict[str, np.ndarray]]:
    for start in range(0, dyn.num_samples, ROW_GROUP_ROWS):
        rows = slice(start, start + ROW_GROUP_ROWS)
        seen = ~np.isnan(dyn.gold_prob[epoch, rows])
        group = {"pos": np.flatnonzero(seen).astype(np.int32) + start}
        for name in columns:
            if name == "probs":
                group[name] = dyn.probs[epoch, rows][seen]
            elif name.startswith(_EXTRA):
                group[name] = dyn.extras[name.removeprefix(_EXTRA)][epoch, rows][seen]
            else:
                group[name] = getattr(dyn, name)[epoch, rows][seen]
        yield group


def write_store(dyn: TrainingDynamics, path: str | os.PathLike[str]) -> Path:
    """Write training dynamics as a new store (one part per epoch), e.g. to stream its metrics
    or merge it with others without loading them. Returns the path.

    Raises
    ------
    ValueError
        When ``path`` is a file, or a folder that is not empty.
    """
    if not isinstance(dyn, TrainingDynamics):
        raise TypeError(
            "The 'dyn' parameter of write_store must be a TrainingDynamics. "
            f"Got {type(dyn).__name__} instead."
        )
    path = Path(path)
    if is_store(path) or (path.is_dir() and any(path.iterdir())):
        raise ValueError(f"write_store: {path} is not empty; give a new or empty folder.")
    positions = dyn.ids.dtype != object and np.array_equal(dyn.ids, np.arange(dyn.num_samples))
    kind = "position" if positions else ("str" if dyn.ids.dtype == object else "int")
    spec = StoreSpec(
        dyn.num_samples, dyn.num_classes, dyn.class_names, kind,
        tuple(sorted(dyn.extras)), dyn.probs is not None,
    )  # fmt: skip
    writer = StoreWriter(path, spec, None if positions else dyn.ids, caller="write_store")
    schema = part_schema(spec.num_classes, spec.extras, spec.probs)
    columns = [f.name for f in schema][1:]
    labels = dyn.labels.astype(pred_dtype(dyn.num_classes))
    for e in range(dyn.num_epochs):
        part = write_part(path, e, 0, 0, _position_groups(dyn, e, columns), schema)
        seen = int(part["rows"])
        writer.commit(
            [part], labels if e == 0 else None, rows=seen, duplicates=0,
            missing=dyn.num_samples - seen,
        )  # fmt: skip
    return path
