"""numpy arrays to and from pyarrow arrays through their buffers, without importing pandas.

``pyarrow.array(...)`` and ``Array.to_numpy()`` look for pandas objects first, and that look
imports pandas, which costs ``cartokit metrics`` more time than all its own work on a
100,000-sample folder. These helpers build and read the buffers themselves: the same arrays,
and the same CSV text when written, as ``pyarrow.Table.from_pandas`` gives for the same table.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["column_of", "numbers_of"]

#: pyarrow type names and the numpy dtype of their values.
_DTYPES = {
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "uint8": np.uint8,
    "uint16": np.uint16,
    "uint32": np.uint32,
    "uint64": np.uint64,
    "float": np.float32,
    "double": np.float64,
}


def numbers_of(array: Any) -> np.ndarray:
    """A pyarrow array of numbers without nulls as a read-only numpy view of its values.

    >>> import pyarrow as pa
    >>> numbers_of(pa.Array.from_buffers(pa.int64(), 3, [None, pa.py_buffer(np.arange(3))]))
    array([0, 1, 2])
    """
    name = str(array.type)
    if name not in _DTYPES or array.null_count:
        raise TypeError(
            f"numbers_of needs numbers without nulls. Got {name} with {array.null_count} null(s)."
        )
    dtype = np.dtype(_DTYPES[name])
    return np.frombuffer(
        array.buffers()[1], dtype=dtype, count=len(array), offset=array.offset * dtype.itemsize
    )


def column_of(values: np.ndarray, missing: np.ndarray | None = None) -> Any:
    """A numpy column as a pyarrow array, as ``pyarrow.Table.from_pandas`` would make it.

    Numbers keep their dtype, with a null where ``missing`` is True and, for floats, where the
    value is NaN (as ``from_pandas`` does); booleans are bit-packed; an object column of ``str``
    (and ``None`` for missing) becomes a string column. Anything else goes through
    ``pyarrow.array``.

    >>> column_of(np.array([1.5, np.nan])).to_pylist()
    [1.5, None]
    >>> column_of(np.array(["a", None], dtype=object)).to_pylist()
    ['a', None]
    """
    import pyarrow as pa

    values = np.asarray(values)
    n = len(values)
    absent = np.zeros(n, dtype=bool) if missing is None else np.asarray(missing, dtype=bool)
    kind = values.dtype.kind
    if kind == "f":
        absent = absent | np.isnan(values)
    if kind == "b":
        data = pa.py_buffer(np.packbits(values, bitorder="little"))
        kind_type = pa.bool_()
    elif kind in "iuf" and values.dtype.name in _NUMPY_NAMES:
        data = pa.py_buffer(np.ascontiguousarray(values))
        kind_type = pa.type_for_alias(_NUMPY_NAMES[values.dtype.name])
    elif kind == "O":
        items = values.tolist()
        if not all(v is None or isinstance(v, str) for v in items):
            return pa.array(values, mask=absent if absent.any() else None)
        absent = absent | np.fromiter((v is None for v in items), bool, n)
        encoded = [b"" if v is None else v.encode("utf-8") for v in items]
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, encoded), np.int64, n), out=offsets[1:])
        large = offsets[-1] > np.iinfo(np.int32).max
        kind_type = pa.large_string() if large else pa.string()
        text = pa.py_buffer(b"".join(encoded))
        bounds = pa.py_buffer(offsets if large else offsets.astype(np.int32))
        validity = _validity(absent)
        return pa.Array.from_buffers(
            kind_type, n, [validity, bounds, text], null_count=int(absent.sum())
        )
    else:
        return pa.array(values, mask=absent if absent.any() else None)
    return pa.Array.from_buffers(
        kind_type, n, [_validity(absent), data], null_count=int(absent.sum())
    )


_NUMPY_NAMES = {np.dtype(d).name: alias for alias, d in _DTYPES.items()}


def _validity(absent: np.ndarray) -> Any:
    """The validity bitmap of an array with nulls where ``absent``; None when it has none."""
    import pyarrow as pa

    if not absent.any():
        return None
    return pa.py_buffer(np.packbits(~absent, bitorder="little"))
