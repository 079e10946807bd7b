"""Names that moved: a module keeps its old names for one release, each with a warning.

A module whose public names moved elsewhere sets ``__getattr__ = moved(__name__, {...})``. The
old name then resolves to the new object, with a :class:`DeprecationWarning` that names the new
path (``cartokit.mislabel.benchmark_detection is deprecated; use
cartokit.detection.benchmark_detection``); any other unknown name raises AttributeError as usual.
The new module is imported only when an old name is used, so an alias adds no import edge.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Moved", "moved"]


@dataclass(frozen=True)
class Moved:
    """Where an old name went: ``target`` is the dotted path of the new object.

    ``use`` replaces the target in the warning when the new call differs in shape, and
    ``adapter`` (then) is what the old name returns: a function with the old signature.
    """

    target: str
    use: str | None = None
    adapter: Callable[..., Any] | None = None


def moved(module: str, names: Mapping[str, str | Moved]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that forwards each old name of ``names`` to its new home.

    Examples
    --------
    >>> getattr_ = moved("cartokit.old", {"select": "cartokit.selection.select"})
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     function = getattr_("select")
    >>> function.__name__, str(caught[0].message)
    ('select', 'cartokit.old.select is deprecated; use cartokit.selection.select')
    """
    table = {old: new if isinstance(new, Moved) else Moved(new) for old, new in names.items()}

    def __getattr__(name: str) -> Any:
        where = table.get(name)
        if where is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warnings.warn(
            f"{module}.{name} is deprecated; use {where.use or where.target}",
            DeprecationWarning,
            stacklevel=2,
        )
        if where.adapter is not None:
            return where.adapter
        path, _, attribute = where.target.rpartition(".")
        return getattr(importlib.import_module(path), attribute)

    return __getattr__
