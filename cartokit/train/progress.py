"""Progress bars that end in a clean state wherever they are shown: :func:`progress_bar`.

In a live Jupyter notebook or a terminal, a bar is tqdm's own (``tqdm.auto``: a widget in
Jupyter, text in a terminal). A notebook executed without a frontend, as ``cartokit run``
executes notebooks 01-04 with papermill, is different: a widget bar's final state is never
drawn, so the saved copy shows every bar frozen at "0%" (61 of them for notebook 01 of the
digits preset: the epochs, each epoch's steps, and each evaluation). There, each bar that
would stay on screen prints one line when it closes, its final state ("fit: 100%|...| 20/20
..."), and bars that would vanish print nothing.

The environment variable ``CARTOKIT_PROGRESS`` chooses (``cartokit run`` sets it to ``log`` for
the kernels it starts):

* ``auto`` (or unset): tqdm's bars;
* ``log``: one line per finished bar, on stdout;
* ``off``: no bars.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

from tqdm.std import tqdm as std_tqdm

__all__ = ["PROGRESS_ENV", "PROGRESS_MODES", "progress_bar", "progress_mode"]

#: The environment variable that chooses how bars are shown.
PROGRESS_ENV = "CARTOKIT_PROGRESS"

#: Its values.
PROGRESS_MODES = ("auto", "log", "off")


class _FinalLine(std_tqdm):
    """A bar that draws nothing while it runs and, when it closes, one line: its final state."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # an infinite delay: tqdm draws nothing, neither at the start nor on any update
        kwargs.update(delay=float("inf"), file=kwargs.get("file") or sys.stdout)
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        return True  # set_description and set_postfix redraw through here: nothing to draw

    def close(self) -> None:
        stays = self.leave if self.leave is not None else self.pos == 0
        if not self.disable and stays:
            self._ema_dt = lambda: None  # the rate over the whole run, as tqdm's last line has
            self.fp.write(self.format_meter(**self.format_dict) + "\n")
            self.fp.flush()
        super().close()


def progress_mode() -> str:
    """How bars are shown now: ``$CARTOKIT_PROGRESS``, ``"auto"`` when it is unset.

    Raises
    ------
    ValueError
        If the variable holds another value.
    """
    mode = os.environ.get(PROGRESS_ENV, "").strip().lower() or "auto"
    if mode not in PROGRESS_MODES:
        raise ValueError(
            f"The environment variable {PROGRESS_ENV} must be one of {list(PROGRESS_MODES)}. "
            f"Got {os.environ[PROGRESS_ENV]!r} instead."
        )
    return mode


def progress_bar(
    iterable: Iterable[Any] | None = None, *, mode: str | None = None, **kwargs: Any
) -> std_tqdm:
    """A progress bar over ``iterable``, shown as ``mode`` says (``None``: :func:`progress_mode`).

    ``kwargs`` are tqdm's (``total``, ``desc``, ``leave``, ``disable``, ...).

    >>> total = sum(progress_bar(range(4), desc="counting", mode="log"))  # doctest: +ELLIPSIS
    counting: 100%|...| 4/4 [...]
    """
    mode = progress_mode() if mode is None else mode
    if mode not in PROGRESS_MODES:
        raise ValueError(
            f"The 'mode' parameter of progress_bar must be one of {list(PROGRESS_MODES)} or "
            f"None. Got {mode!r} instead."
        )
    if mode == "off":
        kwargs["disable"] = True
    if mode == "log":
        return _FinalLine(iterable, **kwargs)
    from tqdm.auto import tqdm

    return tqdm(iterable, **kwargs)
