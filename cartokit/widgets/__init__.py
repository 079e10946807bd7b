"""Jupyter widgets: the live data-map explorer and the label-error review panel.

* :class:`DataMapExplorer` (:mod:`.explorer`): the data map with threshold sliders, axes,
  colour, filter, hover, click, selection and export; its data is a column model
  (:mod:`._columns`, pandas only) and its drawing the bqplot marks of :mod:`._render`.
* :class:`ReviewWidget` (:mod:`.review`): a :class:`~cartokit.review.ReviewSession` one
  suspect at a time, with keep / relabel / drop buttons.

They need ``pip install 'cartokit[widgets]'`` (ipywidgets, bqplot, bqplot-gl); each loads on
first use, so the review panel needs only ipywidgets, which this package checks for first.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

try:
    import ipywidgets  # noqa: F401
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "cartokit.widgets needs ipywidgets (and bqplot and bqplot-gl for the explorer). "
        "Install them with: pip install 'cartokit[widgets]'"
    ) from err

if TYPE_CHECKING:
    from cartokit.widgets.explorer import DataMapExplorer
    from cartokit.widgets.review import ReviewWidget

__all__ = ["DataMapExplorer", "ReviewWidget"]

_MODULES = {
    "DataMapExplorer": "cartokit.widgets.explorer",
    "ReviewWidget": "cartokit.widgets.review",
}


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return getattr(importlib.import_module(_MODULES[name]), name)
    raise AttributeError(f"module 'cartokit.widgets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
