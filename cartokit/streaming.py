"""Metrics over records larger than memory: block by block of samples, in this process or as
tasks on a Dask cluster, into one table or straight into a Parquet file.

:func:`~cartokit.compute_metrics` comes here when its dynamics come in blocks (a store opened by
:func:`~cartokit.store.open_dynamics`, or maps merged by :func:`~cartokit.merge_dynamics`), or
when asked for ``engine="dask"`` or ``output=``. Every metric is a reduction over the
checkpoints of one sample, so a block's rows are exactly the rows the whole record gives: each
block is a small in-memory :class:`~cartokit.TrainingDynamics` passed to ``compute_metrics``
itself. Blocks are computed in order and written as they come, so memory holds a few blocks,
whatever the number of samples.
"""

from __future__ import annotations

import os
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cartokit._files import atomic_write
from cartokit.dynamics import TrainingDynamics

__all__ = ["ENGINES", "MemoryBlock", "blocks_of", "metrics_parquet", "stream_metrics"]

#: What ``compute_metrics(engine=...)`` takes: "auto" computes in this process (block by block
#: when the dynamics come in blocks); "dask" sends the blocks to Dask as tasks.
ENGINES = ("auto", "dask")


@dataclass(frozen=True)
class MemoryBlock:
    """A range of samples of an in-memory record (picklable: the slice travels with it)."""

    dyn: TrainingDynamics
    start: int
    stop: int

    def read(self, epochs: Sequence[int] | None = None) -> TrainingDynamics:
        """The block's samples as a record (at ``epochs`` only, when given)."""
        d, rows = self.dyn, slice(self.start, self.stop)
        idx = slice(None) if epochs is None else list(epochs)
        return TrainingDynamics(
            ids=d.ids[rows],
            labels=d.labels[rows],
            gold_prob=d.gold_prob[idx, rows],
            margin=d.margin[idx, rows],
            sq_error=d.sq_error[idx, rows],
            pred=d.pred[idx, rows],
            num_classes=d.num_classes,
            class_names=d.class_names,
            extras={name: values[idx, rows] for name, values in d.extras.items()},
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # send only this block's samples to a worker, not the whole record
        return (MemoryBlock, (self.read(), 0, self.stop - self.start))


def blocks_of(dyn: TrainingDynamics, size: int | None = None) -> list[Any]:
    """The blocks ``dyn`` is read in: its own (a store, merged maps), else ranges of an
    in-memory record."""
    if hasattr(dyn, "blocks"):
        return dyn.blocks(size)
    size = dyn.num_samples if size is None else size
    return [MemoryBlock(dyn, a, min(a + size, dyn.num_samples)) for a in range(0, len(dyn), size)]


def _renumber(table: pd.DataFrame, epochs: Sequence[int]) -> pd.DataFrame:
    """first_learned_epoch counts the block's own checkpoints; give it the record's numbers."""
    if list(epochs) == list(range(len(epochs))):
        return table
    column = table["first_learned_epoch"]
    known = column.notna().to_numpy()
    numbers = np.asarray(epochs, dtype=np.int64)[column.fillna(0).to_numpy(dtype=np.int64)]
    table["first_learned_epoch"] = pd.arrays.IntegerArray(numbers, ~known)
    return table


def block_metrics(
    block: Any, epochs: Sequence[int], sources: Sequence[str] | None = None
) -> pd.DataFrame:
    """The metrics table of one block (what a Dask task runs). ``sources``: the names of every
    source of a merge, the categories of its ``source`` column."""
    from cartokit.metrics import compute_metrics

    dyn = block.read(epochs)
    with warnings.catch_warnings():
        # the caller has warned once about few checkpoints; each block would say it again
        warnings.simplefilter("ignore", UserWarning)
        table = _renumber(compute_metrics(dyn), epochs)
    source = getattr(block, "source", None)
    if sources is not None:
        table["source"] = pd.Categorical.from_codes(
            np.full(len(table), list(sources).index(source), dtype=np.int32), categories=sources
        )
    return table


def _tables_here(blocks: list[Any], epochs: list[int], sources: Any) -> Iterator[pd.DataFrame]:
    for block in blocks:
        yield block_metrics(block, epochs, sources)


def _tables_on_dask(blocks: list[Any], epochs: list[int], sources: Any) -> Iterator[pd.DataFrame]:
    """The blocks' tables in order, computed by Dask: on the current ``distributed`` client if
    there is one (a few blocks in flight at a time, so results never pile up), else on Dask's
    default scheduler, a few blocks at a time."""
    try:
        import dask
    except ImportError:
        raise ImportError(
            "compute_metrics(engine='dask') needs Dask: pip install \"cartokit[dask]\"."
        ) from None
    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):  # ValueError: no client started
        client = None
    if client is None:
        window = 2 * (os.cpu_count() or 1)
        for start in range(0, len(blocks), window):
            tasks = [
                dask.delayed(block_metrics)(b, epochs, sources)
                for b in blocks[start : start + window]
            ]
            yield from dask.compute(*tasks)
        return
    window = max(2, 2 * sum(client.nthreads().values()))
    waiting = iter(blocks)
    running: deque[Any] = deque()
    for block in waiting:
        running.append(client.submit(block_metrics, block, epochs, sources, pure=False))
        if len(running) >= window:
            break
    while running:
        future = running.popleft()
        table = future.result()
        future.release()
        following = next(waiting, None)
        if following is not None:
            running.append(client.submit(block_metrics, following, epochs, sources, pure=False))
        yield table


@contextmanager
def metrics_parquet(path: str | os.PathLike[str]) -> Iterator[Callable[[pd.DataFrame], None]]:
    """Write a metrics table to one Parquet file, block by block, atomically: the file appears
    whole when the ``with`` block ends, or not at all (an error inside leaves no file).

    Yields the function that writes one block. The ``id`` index becomes the first column;
    floats stay float64, so the file holds exactly the numbers of the table.
    :func:`cartokit.io.read_metrics_table` reads it back.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    with atomic_write(path, "wb") as fh:
        writers: list[Any] = []

        def write(table: pd.DataFrame) -> None:
            arrow = pa.Table.from_pandas(table.reset_index(), preserve_index=False)
            if not writers:
                # a column all missing in the first block (predicted_name) would be typed null
                schema = pa.schema(
                    [f.with_type(pa.string()) if pa.types.is_null(f.type) else f
                     for f in arrow.schema],
                    metadata=arrow.schema.metadata,
                )  # fmt: skip
                writers.append(pq.ParquetWriter(fh, schema, compression="snappy"))
            writers[0].write_table(arrow.cast(writers[0].schema))

        try:
            yield write
        except BaseException:
            for writer in writers:  # into the temporary file, which atomic_write removes
                with suppress(Exception):
                    writer.close()
            raise
        for writer in writers:
            writer.close()


def stream_metrics(
    dyn: TrainingDynamics,
    epochs: Sequence[int],
    *,
    engine: str = "auto",
    output: str | os.PathLike[str] | None = None,
) -> pd.DataFrame | Path:
    """``compute_metrics`` block by block (its arguments checked already): the table, or the
    Parquet file ``output`` written block by block."""
    epochs = [int(e) for e in epochs]
    blocks = blocks_of(dyn)
    sources = getattr(dyn, "source_names", None)
    run = _tables_on_dask if engine == "dask" else _tables_here
    tables = run(blocks, epochs, sources)
    if output is None:
        return pd.concat(list(tables))
    with metrics_parquet(output) as write:
        for table in tables:
            write(table)
    return Path(output)
