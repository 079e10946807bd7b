"""Input checks shared by the public functions, and the sentences they raise.

Every public function validates its input once, with the helpers here, and then hands plain
values to a private twin that assumes they are valid (the cleanlab habit). There is one
sentence for a bad parameter, built by :func:`param_error`::

    The 'fraction' parameter of select must be a float in the range (0, 1]. Got 1.5 instead.

and one engine that produces it (the scikit-learn habit): a *constraint* (:class:`Interval`,
:class:`Options`, :class:`Boolean`, :class:`Text`, :class:`InstanceOf`, :class:`Optional`,
:class:`ListOf`, :class:`Satisfies`) describes what a parameter takes, and :func:`check_param` /
:func:`check_params` apply it. Errors about data rather than a parameter read
``<caller>: <what is wrong>. <how to fix it>.``

Also here: how values are shown in messages (:func:`show`, :func:`first_few`), the checks that
many modules share (:func:`check_int`, :func:`check_seed`, :func:`check_labels`,
:func:`check_ids`, :func:`check_metrics_frame`) and the one id-to-row lookup,
:func:`positions_of`.
"""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # imported where used: `cartokit metrics` never loads pandas
    import pandas as pd

__all__ = [
    "Boolean",
    "Constraint",
    "InstanceOf",
    "Interval",
    "ListOf",
    "Optional",
    "Options",
    "Satisfies",
    "Text",
    "check_ids",
    "check_int",
    "check_labels",
    "check_metrics_frame",
    "check_model_maker",
    "check_param",
    "check_params",
    "check_seed",
    "did_you_mean",
    "first_few",
    "is_int",
    "is_real",
    "param_error",
    "positions_of",
    "show",
]


def first_few(values: Sequence[Any] | np.ndarray, k: int = 5) -> str:
    """Render at most ``k`` values for an error message, with an ellipsis when there are more."""
    values = list(values[: k + 1])
    shown = ", ".join(repr(v.item() if isinstance(v, np.generic) else v) for v in values[:k])
    return f"[{shown}{', ...' if len(values) > k else ''}]"


def check_int(name: str, value: Any, *, caller: str, minimum: int | None = None) -> int:
    """Return ``value`` as an int (>= ``minimum``), or raise the one sentence.

    >>> check_int("epochs", 0, caller="fit", minimum=1)
    Traceback (most recent call last):
    ...
    ValueError: The 'epochs' parameter of fit must be an int >= 1. Got 0 instead.
    """
    return check_param(name, value, Interval(int, minimum, None), caller=caller)


def check_seed(seed: Any, *, caller: str, allow_none: bool = True) -> int | None:
    """A seed for ``numpy.random.default_rng`` or ``torch.manual_seed``: an int >= 0."""
    constraint: Constraint = Interval(int, 0, None)
    if allow_none:
        constraint = Optional(constraint)
    return check_param("seed", seed, constraint, caller=caller)


def check_labels(
    labels: np.ndarray,
    num_classes: int,
    *,
    caller: str,
    what: str = "labels",
    hint: str = "Check num_classes or remap the labels.",
) -> np.ndarray:
    """Labels must be a 1-D integer array with values in ``[0, num_classes)``."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"{caller}: labels must be 1-D, one per sample. Got shape {labels.shape}.")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        if np.issubdtype(labels.dtype, np.floating) and np.all(np.mod(labels, 1) == 0):
            labels = labels.astype(np.int64)
        else:
            raise TypeError(
                f"{caller}: labels must be integer class indices. Got dtype {labels.dtype}; "
                "map class names to indices first (e.g. with pandas.factorize)."
            )
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        raise ValueError(
            f"{caller}: {what} must be in [0, {num_classes}) for {num_classes} classes. "
            f"{bad.size} are not, at positions {first_few(bad)} with values "
            f"{first_few(labels[bad])}. {hint}"
        )
    return labels.astype(np.int64, copy=False)


def check_ids(ids: Any, num_samples: int, *, caller: str) -> np.ndarray:
    """Sample ids: ``None`` means ``0..N-1``; otherwise N unique ints or strings."""
    if ids is None:
        return np.arange(num_samples, dtype=np.int64)
    arr = np.asarray(ids)
    if arr.ndim != 1 or arr.shape[0] != num_samples:
        raise ValueError(
            f"{caller}: ids must be a 1-D sequence of {num_samples} sample ids, one per sample. "
            f"Got shape {arr.shape}."
        )
    if np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.int64, copy=False)
    elif arr.dtype.kind in "UO":
        arr = np.array([str(v) for v in arr], dtype=object)
    else:
        raise TypeError(f"{caller}: ids must be integers or strings. Got dtype {arr.dtype}.")
    uniq, counts = np.unique(arr.astype(str) if arr.dtype == object else arr, return_counts=True)
    if uniq.shape[0] != num_samples:
        dup = uniq[counts > 1]
        raise ValueError(
            f"{caller}: ids must be unique. {dup.size} ids occur more than once, "
            f"for example {first_few(dup)}."
        )
    return arr


# ----------------------------------------------------------------------------------------------
# The constraint engine: one way to check a parameter, one sentence when it is wrong.
#
# A constraint says what a parameter takes, in words that complete "must be ..."; check_param
# returns the value (normalised: an int for an int, a list for a list) or raises
# ``The '<name>' parameter of <caller> must be <description>. Got <value> instead.``, a TypeError
# for a value of the wrong type and a ValueError for a value out of range.


def show(value: Any) -> str:
    """A user-supplied value for a message: ``1.5``, not ``np.float64(1.5)``."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def is_real(value: Any) -> bool:
    """Whether ``value`` is a real number; bools are not, although Python says they are ints."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer (Python or numpy); bools are not."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def did_you_mean(value: Any, choices: Sequence[str]) -> str:
    """`` Did you mean 'digits'?`` for a near miss among ``choices``, else ``""``."""
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, [str(c) for c in choices], n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def param_error(
    name: str, caller: str, expected: str, value: Any, *, type_error: bool = False, hint: str = ""
) -> Exception:
    """The one sentence for a bad parameter, as the exception to raise.

    >>> param_error("fraction", "select", "a float in the range (0, 1]", 1.5)
    ValueError("The 'fraction' parameter of select must be a float in the range (0, 1]. Got 1.5 instead.")
    """  # noqa: E501
    got = f"{show(value)} of type {type(value).__name__}" if type_error else show(value)
    message = f"The {name!r} parameter of {caller} must be {expected}. Got {got} instead.{hint}"
    return (TypeError if type_error else ValueError)(message)


class _Mismatch(Exception):
    """Raised inside a constraint: the value is of the wrong type (or out of range)."""

    def __init__(self, type_error: bool, hint: str = "") -> None:
        self.type_error, self.hint = type_error, hint


class Constraint:
    """What a parameter takes. ``description`` completes the sentence "must be ...";
    ``convert`` returns the normalised value or raises ``_Mismatch``."""

    description = "valid"

    def convert(self, value: Any) -> Any:  # pragma: no cover - overridden
        return value

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.description}>"


class Interval(Constraint):
    """A number in a range: ``Interval(int, 1, None)`` is an int >= 1; ``Interval(float, 0, 1,
    closed="right")`` a float in (0, 1]. A float interval accepts ints too (``lr=1``)."""

    def __init__(
        self, kind: type, low: float | None, high: float | None, *, closed: str = "both"
    ) -> None:
        if kind not in (int, float) or closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"Interval({kind!r}, closed={closed!r}) is not a valid constraint")
        self.kind, self.low, self.high, self.closed = kind, low, high, closed
        noun = "an int" if kind is int else "a float"
        if low is not None and high is not None:
            left = "[" if closed in ("both", "left") else "("
            right = "]" if closed in ("both", "right") else ")"
            self.description = f"{noun} in the range {left}{_num(low)}, {_num(high)}{right}"
        elif low is not None:
            self.description = f"{noun} {'>=' if closed in ('both', 'left') else '>'} {_num(low)}"
        elif high is not None:
            self.description = f"{noun} {'<=' if closed in ('both', 'right') else '<'} {_num(high)}"
        else:
            self.description = noun

    def convert(self, value: Any) -> Any:
        ok_type = is_int(value) if self.kind is int else is_real(value)
        if not ok_type:
            raise _Mismatch(type_error=True)
        value = int(value) if self.kind is int else float(value)
        if value != value:  # NaN is in no range
            raise _Mismatch(type_error=False)
        low_ok = self.low is None or (
            value >= self.low if self.closed in ("both", "left") else value > self.low
        )
        high_ok = self.high is None or (
            value <= self.high if self.closed in ("both", "right") else value < self.high
        )
        if not (low_ok and high_ok):
            raise _Mismatch(type_error=False)
        return value


class Options(Constraint):
    """One of a fixed set of values (strings, usually); a near miss gets "Did you mean ...?"."""

    def __init__(self, choices: Sequence[Any]) -> None:
        self.choices = list(choices)
        self.description = f"one of {self.choices}"

    def convert(self, value: Any) -> Any:
        try:
            if value in self.choices:
                return value
        except TypeError:  # unhashable, uncomparable
            pass
        raise _Mismatch(type_error=False, hint=did_you_mean(value, self.choices))


class Boolean(Constraint):
    """``True`` or ``False`` (numpy bools too; not 0/1)."""

    description = "a bool"

    def convert(self, value: Any) -> bool:
        if not isinstance(value, (bool, np.bool_)):
            raise _Mismatch(type_error=True)
        return bool(value)


class Text(Constraint):
    """A non-empty str."""

    description = "a non-empty str"

    def convert(self, value: Any) -> str:
        if not isinstance(value, str):
            raise _Mismatch(type_error=True)
        if not value:
            raise _Mismatch(type_error=False)
        return value


class InstanceOf(Constraint):
    """An instance of a class: ``InstanceOf(DynamicsRecorder, "a cartokit.DynamicsRecorder")``."""

    def __init__(self, kind: type | tuple[type, ...], description: str) -> None:
        self.kind, self.description = kind, description

    def convert(self, value: Any) -> Any:
        if not isinstance(value, self.kind):
            raise _Mismatch(type_error=True)
        return value


class Optional(Constraint):
    """``None``, or what ``inner`` takes."""

    def __init__(self, inner: Constraint) -> None:
        self.inner = inner
        self.description = f"{inner.description}, or None"

    def convert(self, value: Any) -> Any:
        return None if value is None else self.inner.convert(value)


class ListOf(Constraint):
    """A list of what ``item`` takes; a single item becomes a one-item list."""

    def __init__(self, item: Constraint, *, empty: bool = True) -> None:
        self.item, self.empty = item, empty
        self.description = f"{'a' if empty else 'a non-empty'} list of {_plural(item.description)}"

    def convert(self, value: Any) -> list[Any]:
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if not values and not self.empty:
            raise _Mismatch(type_error=False)
        return [self.item.convert(v) for v in values]


class Satisfies(Constraint):
    """Anything a function accepts: ``Satisfies(check, "a mixture such as '17% ambiguous'")``.
    ``check(value)`` returns the normalised value, or raises ValueError / TypeError with a hint."""

    def __init__(self, check: Callable[[Any], Any], description: str) -> None:
        self.check, self.description = check, description

    def convert(self, value: Any) -> Any:
        try:
            return self.check(value)
        except TypeError as err:
            raise _Mismatch(type_error=True, hint=_hint(err)) from None
        except ValueError as err:
            raise _Mismatch(type_error=False, hint=_hint(err)) from None


def _num(x: float) -> str:
    """``0.5``, ``1``, ``4294967295``: a bound as a person writes it."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else f"{x:g}"


def _hint(err: Exception) -> str:
    text = " ".join(str(err).split())
    return f" {text}" if text else ""


def _plural(description: str) -> str:
    if description.startswith("one of "):
        return "values among " + description[len("one of ") :]
    for article in ("an ", "a "):
        if description.startswith(article):
            head, _, rest = description[len(article) :].partition(" ")
            return f"{head}s {rest}".rstrip()
    return description


def check_param(name: str, value: Any, constraint: Constraint, *, caller: str) -> Any:
    """Return ``value`` normalised if ``constraint`` takes it; else raise the one sentence.

    >>> check_param("epochs", 5, Interval(int, 2, None), caller="fit")
    5
    >>> check_param("epochs", 1, Interval(int, 2, None), caller="fit")
    Traceback (most recent call last):
    ...
    ValueError: The 'epochs' parameter of fit must be an int >= 2. Got 1 instead.
    """
    try:
        return constraint.convert(value)
    except _Mismatch as bad:
        shown = value
        if isinstance(constraint, ListOf) and isinstance(value, (list, tuple)):
            shown = value  # the whole list: short enough for a parameter
        raise param_error(
            name, caller, constraint.description, shown, type_error=bad.type_error, hint=bad.hint
        ) from None


def check_params(
    params: Mapping[str, Any], constraints: Mapping[str, Constraint], *, caller: str
) -> dict[str, Any]:
    """Check several parameters by name; an unknown name is an error that lists the known ones."""
    unknown = [name for name in params if name not in constraints]
    if unknown:
        raise ValueError(
            f"{caller} has no parameter {unknown[0]!r}."
            f"{did_you_mean(unknown[0], list(constraints))} Parameters: {list(constraints)}."
        )
    return {
        name: check_param(name, v, constraints[name], caller=caller) for name, v in params.items()
    }


def check_model_maker(
    maker: Any, *, caller: str, name: str = "make_model", default: str = ""
) -> Callable[..., Any]:
    """A maker of fresh models (``maker(split) -> nn.Module``), checked: a model itself would
    be trained again and again rather than anew, and anything else is not callable.

    >>> check_model_maker(..., caller="train_on_subsets")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: The 'make_model' parameter of train_on_subsets must be a callable that returns ...
    """
    expected = (
        "a callable that returns a fresh model for a split, such as "
        f"cartokit.models.model_factory('linear'){default}"
    )
    if hasattr(maker, "parameters") and hasattr(maker, "forward"):  # a torch module
        raise TypeError(
            f"The {name!r} parameter of {caller} must be {expected}. Got a model, "
            f"{type(maker).__name__}, instead; every training needs a fresh one."
        )
    if not callable(maker):
        raise param_error(name, caller, expected, maker, type_error=True)
    return maker


def check_metrics_frame(metrics: Any, *, caller: str, columns: Sequence[str] = ()) -> pd.DataFrame:
    """The metrics table (a DataFrame, one row per sample), with the given columns present."""
    import pandas as pd

    if not isinstance(metrics, pd.DataFrame):
        raise TypeError(
            f"The 'metrics' parameter of {caller} must be a pandas DataFrame, such as the "
            f"output of compute_metrics. Got {type(metrics).__name__} instead."
        )
    missing = [c for c in columns if c not in metrics.columns]
    if missing:
        raise ValueError(
            f"{caller} needs the columns {list(columns)} of the metrics table; missing: "
            f"{missing}. Available columns: {list(metrics.columns)}."
        )
    return metrics


def positions_of(
    index: pd.Index | Sequence[Any] | np.ndarray,
    ids: Sequence[Any] | np.ndarray | pd.Index,
    *,
    caller: str,
    what: str = "the data",
    hint: str = "",
) -> np.ndarray:
    """Row positions, in ``index`` (the id of each row), of ``ids``, in the order of ``ids``.

    The one id-to-row lookup of the package. ``index`` must not repeat an id; every id must be
    found, else one sentence says how many are missing from ``what``, with examples, and, when
    the ids and the index differ in kind (ints against strings), says that too; ``hint`` (how
    to fix it) ends the message.

    >>> positions_of(["a", "b", "c"], ["c", "a"], caller="subset").tolist()
    [2, 0]
    >>> positions_of([10, 11], [11, 12], caller="subset", what="data.ids")
    Traceback (most recent call last):
    ...
    ValueError: subset: 1 of the 2 ids are not in data.ids, e.g. [12].
    """
    import pandas as pd

    index = index if isinstance(index, pd.Index) else pd.Index(np.asarray(index))
    wanted = ids.to_numpy() if isinstance(ids, (pd.Index, pd.Series)) else np.asarray(ids)
    if wanted.ndim != 1:
        raise ValueError(f"{caller}: ids must be 1-D. Got shape {wanted.shape}.")
    if len(wanted) == 0:
        return np.empty(0, dtype=np.intp)
    if not index.is_unique:
        repeated = index[index.duplicated()].unique()
        raise ValueError(
            f"{caller}: {what} repeats sample ids, e.g. {first_few(repeated)}; each row must be "
            "one sample."
        )
    positions = index.get_indexer(wanted)
    missing = positions < 0
    if missing.any():
        kinds = f" {what} holds {_id_kind(index)} ids, the ids given are {_id_kind(wanted)}."
        same_kind = _id_kind(index) == _id_kind(wanted)
        fix = f" {hint}" if hint else ""
        raise ValueError(
            f"{caller}: {int(missing.sum())} of the {len(wanted)} ids are not in {what}, e.g. "
            f"{first_few(wanted[missing])}.{'' if same_kind else kinds}{fix}"
        )
    return positions


def _id_kind(values: Any) -> str:
    import pandas as pd

    dtype = values.dtype if hasattr(values, "dtype") else np.asarray(values).dtype
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    return "text"
