"""Training trajectories, drawn with matplotlib: :func:`plot_trajectories`, the gold-label
probability of chosen samples against the checkpoint (epoch), on an Axes labelled
``"trajectories"``.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterable

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from cartokit._validation import InstanceOf, Optional, check_param, first_few, positions_of
from cartokit.dynamics import TrainingDynamics
from cartokit.plot._style import (
    NotebookFigure,
    category_colors,
    check_figure_path,
    root_figure,
    save_figure,
)

__all__ = ["plot_trajectories"]


def plot_trajectories(
    dyn: TrainingDynamics,
    ids: Hashable | Iterable[Hashable],
    *,
    ax: Axes | None = None,
    title: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Plot the gold-label probability of chosen samples against the checkpoint (epoch).

    One line per sample, labelled with its id and label (class name when known). Checkpoints
    at which a sample was not seen (NaN) are gaps in its line.

    Parameters
    ----------
    dyn : TrainingDynamics
        The recorded run.
    ids : sample id or iterable of sample ids
        Ids as in ``dyn.ids`` (the index of the metrics table); repeats are drawn once.
    ax : matplotlib Axes, optional
        Draw into this Axes; otherwise a new figure is made.
    title : str, optional
        Axes title.
    path : str or path-like, optional
        Also save the figure here (``.png``, ``.svg`` or ``.pdf``), atomically.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If no id is given, an id is not a sample id of ``dyn``, or ``path`` has an unsupported
        suffix.

    Examples
    --------
    >>> import numpy as np
    >>> dyn = TrainingDynamics.from_logits(np.zeros((3, 2, 2)), labels=[0, 1], ids=[7, 9])
    >>> fig = plot_trajectories(dyn, [9])
    >>> [line.get_label() for line in fig.axes[0].lines]
    ['id 9, label 1']
    """
    caller = "plot_trajectories"
    if not isinstance(dyn, TrainingDynamics):
        raise TypeError(
            f"The 'dyn' parameter of {caller} must be a TrainingDynamics. "
            f"Got {type(dyn).__name__} instead."
        )
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        ids = [ids]
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        raise ValueError(f"{caller} needs at least one sample id in 'ids'. Got none.")
    positions = positions_of(
        dyn.ids,
        pd.Index(wanted, dtype=object),
        caller=caller,
        what="dyn.ids",
        hint=f"Known ids look like {first_few(dyn.ids)}; pass ids from dyn.ids or the index "
        "of the metrics table.",
    )
    check_param("ax", ax, Optional(InstanceOf(Axes, "a matplotlib Axes")), caller=caller)
    target = check_figure_path(path, caller=caller)

    if ax is None:
        fig = NotebookFigure(figsize=(7.0, 4.2), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = root_figure(ax)
    ax.set_label("trajectories")
    palette = category_colors(len(wanted))
    epochs = np.arange(dyn.num_epochs)
    for k, (sample_id, pos) in enumerate(zip(wanted, positions)):
        label = int(dyn.labels[pos])
        name = dyn.class_names[label] if dyn.class_names is not None else str(label)
        ax.plot(
            epochs, dyn.gold_prob[:, pos], color=palette[k], lw=1.4,
            marker="o", ms=3, label=f"id {sample_id}, label {name}",
        )  # fmt: skip
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(-0.3, max(dyn.num_epochs - 1, 1) + 0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("checkpoint (from 0, as first_learned_epoch counts)")
    ax.set_ylabel("gold-label probability")
    ax.spines[["top", "right"]].set_visible(False)
    if title is not None:
        ax.set_title(title, fontsize=11)
    ax.legend(
        loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False,
        fontsize=8, ncols=1 if len(wanted) <= 16 else 2,
    )  # fmt: skip
    save_figure(fig, target)
    return fig
