"""Metrics tables as files: :func:`write_metrics_csv` and :func:`write_metrics_parquet` write
one, :func:`read_metrics_table` reads either back, checked.

A metrics table is what :func:`~cartokit.metrics.compute_metrics` returns: one row per sample,
indexed by ``id``. The file holds the ``id`` column first, then the metrics; ``cartokit
metrics`` writes it (CSV for small runs; Parquet, block by block, for any size), ``cartokit
select`` and a study's run folder read it.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cartokit._files import atomic_write
from cartokit._validation import param_error
from cartokit.regions import REGIONS

if TYPE_CHECKING:  # imported where used: `cartokit metrics` never loads pandas
    import pandas as pd

__all__ = [
    "read_metrics_table",
    "write_metric_columns_csv",
    "write_metrics_csv",
    "write_metrics_parquet",
]

#: The first bytes of a Parquet file.
PARQUET_MAGIC = b"PAR1"

#: Columns that a metrics table cannot do without: the id, the label and the map coordinates.
REQUIRED_COLUMNS = ("id", "label", "confidence", "variability")

#: Columns of a metrics table (compute_metrics) that hold numbers.
NUMERIC_COLUMNS = (
    "confidence",
    "variability",
    "correctness",
    "forgetting",
    "learned_events",
    "first_learned_epoch",
    "min_prob",
    "max_prob",
    "aum",
    "el2n",
    "aleatoric",
    "threshold_closeness",
    "predicted_label",
    "num_observed",
)

_REWRITE = "Write the table again with 'cartokit metrics'."


def write_metrics_csv(metrics: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a metrics table (with its id index) as CSV, quickly and atomically.

    Floats are written at float32 precision (the shortest text that reads back to the same
    float32, about 7 significant digits: the statistics behind them are float32), booleans as
    ``true``/``false``, missing values as empty fields. :func:`read_metrics_table` (or
    ``pandas.read_csv(path, index_col="id")``) reads it back. Uses pyarrow's writer (about 8x
    faster than ``DataFrame.to_csv`` on 500,000 rows), on slices of rows in parallel.

    Examples
    --------
    >>> import pandas as pd, tempfile, os
    >>> table = pd.DataFrame({"confidence": [0.25, 1.0]}, index=pd.Index(["a", "b"], name="id"))
    >>> path = write_metrics_csv(table, os.path.join(tempfile.mkdtemp(), "m.csv"))
    >>> pd.read_csv(path, index_col="id")["confidence"].tolist()
    [0.25, 1.0]
    """
    import pyarrow as pa

    table = pa.Table.from_pandas(metrics.reset_index(), preserve_index=False)
    return _write_csv(table, path)


def write_metric_columns_csv(
    ids: np.ndarray, columns: Mapping[str, Any], path: str | os.PathLike[str]
) -> Path:
    """Write the table of :func:`~cartokit.metrics.metric_columns` as CSV, without pandas.

    The same file, byte for byte, as :func:`write_metrics_csv` writes for
    ``compute_metrics(dyn)``: ``ids`` (``dyn.ids``) in the ``id`` column, then each column
    (a numpy array, or :class:`~cartokit.metrics.MissingInts` for a nullable one) in order.
    ``cartokit metrics`` writes its CSV this way, which spares it the import of pandas.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from cartokit.metrics import MissingInts
    >>> columns = {"confidence": np.array([0.25, 1.0]),
    ...            "first_learned_epoch": MissingInts(np.array([0, 0]), np.array([True, False]))}
    >>> path = write_metric_columns_csv(
    ...     np.array(["a", "b"], dtype=object), columns, os.path.join(tempfile.mkdtemp(), "m.csv")
    ... )
    >>> print(path.read_text(), end="")
    "id","confidence","first_learned_epoch"
    "a",0.25,
    "b",1,0
    """
    import pyarrow as pa

    from cartokit.io._arrow import column_of
    from cartokit.metrics import MissingInts

    names, arrays = ["id"], [column_of(ids)]
    for name, values in columns.items():
        names.append(name)
        if isinstance(values, MissingInts):
            arrays.append(column_of(values.values, values.missing))
        elif values.dtype == np.float64:  # float32 here: _write_csv's cast imports more
            arrays.append(column_of(values.astype(np.float32)))
        else:
            arrays.append(column_of(values))
    return _write_csv(pa.table(arrays, names=names), path)


def _write_csv(table: Any, path: str | os.PathLike[str]) -> Path:
    """A metrics table as pyarrow holds it, written as CSV (floats at float32 precision)."""
    import pyarrow as pa

    columns = []
    for column in table.columns:
        if pa.types.is_float64(column.type):
            column = column.cast(pa.float32())
        elif pa.types.is_dictionary(column.type):  # pandas categoricals, e.g. a region column
            column = column.cast(column.type.value_type)
        columns.append(column)
    table = pa.table(columns, names=table.column_names)
    path = Path(path)
    with atomic_write(path, "wb") as fh:
        for text in _csv_slices(table):
            fh.write(text)
    return path


def write_metrics_parquet(metrics: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a metrics table (with its id index) as Parquet, atomically.

    Numbers keep their precision (float64) and dtypes (nullable ints, a categorical
    ``source``); :func:`read_metrics_table` or ``pandas.read_parquet(path).set_index("id")``
    read it back. For a table too large for memory, ``compute_metrics(..., output=path)``
    writes the same file block by block.

    Examples
    --------
    >>> import pandas as pd, tempfile, os
    >>> table = pd.DataFrame({"confidence": [0.25, 1.0]}, index=pd.Index(["a", "b"], name="id"))
    >>> path = write_metrics_parquet(table, os.path.join(tempfile.mkdtemp(), "m.parquet"))
    >>> pd.read_parquet(path).set_index("id")["confidence"].tolist()
    [0.25, 1.0]
    """
    from cartokit.streaming import metrics_parquet

    with metrics_parquet(path) as write:
        write(metrics)
    return Path(path)


#: Rows below which a metrics CSV is written by one thread.
_PARALLEL_ROWS = 50_000


def _csv_slices(table: Any) -> Iterator[bytes]:
    """The CSV text of ``table`` in row slices, written by parallel threads (pyarrow's writer
    releases the GIL): on 200,000 rows and two cores, in about half the time of one thread."""
    import pyarrow.csv as pacsv

    workers = min(4, os.cpu_count() or 1, max(1, table.num_rows // _PARALLEL_ROWS))
    step = -(-table.num_rows // workers)

    def text(k: int) -> bytes:
        out = io.BytesIO()
        options = pacsv.WriteOptions(include_header=k == 0)
        pacsv.write_csv(table.slice(k * step, step), out, write_options=options)
        return out.getvalue()

    if workers == 1:
        yield text(0)
        return
    with ThreadPoolExecutor(workers) as pool:
        yield from pool.map(text, range(workers))


def read_metrics_table(
    path: str | os.PathLike[str], *, caller: str, fix: str | None = None
) -> pd.DataFrame:
    """Read a metrics table, CSV or Parquet (as :func:`write_metrics_csv` and
    :func:`write_metrics_parquet` write them; told apart by content), indexed by ``id``.

    The file is checked before anything uses it: it must be a CSV with the columns
    :data:`REQUIRED_COLUMNS`, every row must have as many fields as the header (a file cut
    short mid-row is refused, not padded with missing values), and the metric columns must
    hold numbers (an empty field is a missing value). A ``region`` column comes back as a
    categorical over :data:`~cartokit.regions.REGIONS`.

    Parameters
    ----------
    path : path-like
    caller : str
        Who reads, for the errors (e.g. ``"select"``).
    fix : str, optional
        The sentence that ends each error and says how to get a good table. Default: write
        it again with ``cartokit metrics``.

    Raises
    ------
    FileNotFoundError
        When there is no file at ``path``.
    ValueError
        When the file is not a readable CSV, lacks a required column, has a row with too few
        or too many fields, or a non-number in a metric column. One line naming the file, and
        the line where one is to blame.

    Examples
    --------
    >>> import pandas as pd, tempfile, os
    >>> table = pd.DataFrame(
    ...     {"label": [0, 1], "confidence": [0.25, 1.0], "variability": [0.1, 0.0]},
    ...     index=pd.Index(["a", "b"], name="id"),
    ... )
    >>> path = write_metrics_csv(table, os.path.join(tempfile.mkdtemp(), "m.csv"))
    >>> read_metrics_table(path, caller="select")["confidence"].tolist()
    [0.25, 1.0]
    >>> _ = path.write_text("id,label,confidence,variability\\na,0,high,0.1\\n")
    >>> read_metrics_table(path, caller="select")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: select: .../m.csv line 2: the 'confidence' column holds 'high', which is not a number. Write the table again with 'cartokit metrics'.
    """  # noqa: E501
    import pandas as pd

    if not isinstance(path, (str, os.PathLike)):
        raise param_error("path", caller, "a str or os.PathLike", path, type_error=True)
    p = Path(path)
    if not p.is_file():
        hint = fix or f"Write one with 'cartokit metrics INPUT -o {p}'."
        raise FileNotFoundError(f"{caller}: no metrics file at {p}. {hint}")
    fix = fix or _REWRITE
    if _is_parquet(p):
        return _read_parquet(p, caller=caller, fix=fix)
    table = _read_csv(p, caller=caller, fix=fix)
    missing = sorted(set(REQUIRED_COLUMNS) - set(table.columns))
    if missing:
        raise ValueError(
            f"{caller}: {p} lacks the column(s) {missing} of a cartokit metrics table. {fix}"
        )
    # pandas fills the fields missing from a short row (a file cut mid-row) with NaN, so only
    # a NaN in the last column calls for reading the rows again to find one
    if len(table) and table.iloc[:, -1].isna().any():
        _check_complete_rows(p, len(table.columns), caller=caller, fix=fix)
    _check_numbers(p, table, caller=caller, fix=fix)
    table = table.set_index("id")
    if "region" in table.columns:
        table["region"] = pd.Categorical(table["region"], categories=list(REGIONS))
    return table


def _is_parquet(p: Path) -> bool:
    with open(p, "rb") as fh:
        return fh.read(len(PARQUET_MAGIC)) == PARQUET_MAGIC


def _read_parquet(p: Path, *, caller: str, fix: str) -> pd.DataFrame:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(p).to_pandas()
    except (pa.ArrowException, OSError, ValueError) as err:
        reason = " ".join(str(err).split()).rstrip(".")
        raise ValueError(f"{caller}: {p} is not a readable Parquet file: {reason}. {fix}") from None
    missing = sorted(set(REQUIRED_COLUMNS) - set(table.columns))
    if missing:
        raise ValueError(
            f"{caller}: {p} lacks the column(s) {missing} of a cartokit metrics table. {fix}"
        )
    for column in NUMERIC_COLUMNS:
        if column in table.columns and not pd.api.types.is_numeric_dtype(table[column]):
            raise ValueError(
                f"{caller}: {p}: the {column!r} column holds {table[column].dtype} values, not "
                f"numbers. {fix}"
            )
    table = table.set_index("id")
    if "region" in table.columns:
        table["region"] = pd.Categorical(table["region"], categories=list(REGIONS))
    return table


def _read_csv(p: Path, *, caller: str, fix: str) -> pd.DataFrame:
    import pandas as pd

    try:
        return pd.read_csv(p)
    except pd.errors.ParserError as err:  # a row with too many fields: say which, plainly
        with open(p, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), [])
        _check_complete_rows(p, len(header), caller=caller, fix=fix)
        reason = " ".join(str(err).split())
    except (pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        reason = str(err)
    raise ValueError(
        f"{caller}: {p} is not a readable CSV file: {reason.rstrip('.')}. {fix}"
    ) from None


def _csv_rows(p: Path) -> Iterator[tuple[int, list[str]]]:
    """The data rows of a CSV file as pandas reads them (blank lines skipped), with the line each
    ends on."""
    with open(p, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        next(reader, None)  # the header
        for row in reader:
            if row:
                yield reader.line_num, row


def _check_complete_rows(p: Path, num_fields: int, *, caller: str, fix: str) -> None:
    for line, row in _csv_rows(p):
        if len(row) != num_fields:
            raise ValueError(
                f"{caller}: {p} line {line} has {len(row)} field{'s' if len(row) != 1 else ''} "
                f"where its header has {num_fields}; the file is incomplete (cut short?). {fix}"
            )


def _check_numbers(p: Path, table: pd.DataFrame, *, caller: str, fix: str) -> None:
    import pandas as pd

    for column in NUMERIC_COLUMNS:
        if column in table.columns and not pd.api.types.is_numeric_dtype(table[column]):
            numbers = pd.to_numeric(table[column], errors="coerce")
            position = int((numbers.isna() & table[column].notna()).to_numpy().argmax())
            index = table.columns.get_loc(column)
            line, row = next(item for i, item in enumerate(_csv_rows(p)) if i == position)
            raise ValueError(
                f"{caller}: {p} line {line}: the {column!r} column holds {row[index]!r}, which is "
                f"not a number. {fix}"
            )
