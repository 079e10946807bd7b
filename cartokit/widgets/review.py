"""The review loop as an ipywidgets panel: :class:`ReviewWidget`.

A :class:`~cartokit.review.ReviewSession` (the suspects, the decision log on disk) shown one
suspect at a time, with buttons for its decisions. The session does the work; this module only
draws it.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets
import numpy as np
import pandas as pd

from cartokit.review import ReviewItem, ReviewSession
from cartokit.widgets._render import png_image, sample_view, status_html, trajectory_png

if TYPE_CHECKING:
    from cartokit.data import Split

__all__ = ["ReviewWidget"]


class ReviewWidget(widgets.VBox):
    """The review loop as an ipywidgets panel: one suspect at a time, most suspicious first.

    Shows the sample (its text or image), its gold-label probability per epoch (and the
    suggested class's, when probabilities were recorded), its given and suggested labels and
    the latest decision, with buttons *keep*, *relabel* (to the class in the drop-down, the
    suggestion by default), *drop*, *back* and *skip*. Every decision is in the log on disk
    before the next suspect shows.

    Parameters
    ----------
    session : ReviewSession, or the suspects
        A session, or the ``suspects`` argument of :class:`~cartokit.review.ReviewSession`;
        then ``log_path`` and ``**options`` (``data``, ``dynamics``, ``suggestions``,
        ``limit``, ``allow_test``) build one.

    Attributes
    ----------
    session : ReviewSession
    keep_button, relabel_button, drop_button, back_button, skip_button : ipywidgets.Button
    relabel_to : ipywidgets.Dropdown
        The class a *relabel* assigns.
    """

    def __init__(
        self,
        session: ReviewSession | pd.Series | Sequence[Any],
        log_path: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> None:
        if not isinstance(session, ReviewSession):
            if log_path is None:
                raise ValueError(
                    "ReviewWidget needs a log_path for the decisions when it is given suspects "
                    "rather than a ReviewSession."
                )
            session = ReviewSession(session, log_path, **options)
        elif log_path is not None or options:
            raise ValueError(
                "ReviewWidget: pass either a ReviewSession or its arguments, not both."
            )
        self.session = session
        w = widgets
        self._header = w.HTML()
        self._progress = w.IntProgress(min=0, max=len(session), description="decided")
        # Both images are shown at their own pixel size (png_image): the chart is drawn at the
        # size it is shown, and the sample enlarged by a whole factor to about 160 px.
        self._sample_image = w.Image(format="png", layout=w.Layout(display="none"))
        self._sample_image.add_class("cartokit-review-image")
        self._sample_html = w.HTML(layout=w.Layout(width="380px"))
        self._trajectory = w.Image(format="png", layout=w.Layout(display="none"))
        self._trajectory.add_class("cartokit-review-chart")
        self._info = w.HTML()
        self._status = w.HTML()
        names = list(self._splits()[0].class_names)
        self.relabel_to = w.Dropdown(
            options=[(f"{i}: {n}", i) for i, n in enumerate(names)],
            description="relabel to",
            layout=w.Layout(width="240px"),
        )
        self.keep_button = w.Button(description="keep", button_style="success", icon="check")
        self.relabel_button = w.Button(description="relabel", button_style="warning", icon="edit")
        self.drop_button = w.Button(description="drop", button_style="danger", icon="trash")
        self.back_button = w.Button(description="back", icon="arrow-left")
        self.skip_button = w.Button(description="skip", icon="arrow-right")
        self.keep_button.on_click(lambda _: self._decide("keep"))
        self.relabel_button.on_click(lambda _: self._decide("relabel", self.relabel_to.value))
        self.drop_button.on_click(lambda _: self._decide("drop"))
        self.back_button.on_click(lambda _: self._move(session.back))
        self.skip_button.on_click(lambda _: self._move(session.skip))
        super().__init__(
            children=[
                self._header,
                self._progress,
                w.HBox(
                    [w.VBox([self._sample_image, self._sample_html]), self._trajectory],
                    layout=w.Layout(align_items="flex-start"),
                ),
                self._info,
                w.HBox([self.keep_button, self.relabel_to, self.relabel_button, self.drop_button]),
                w.HBox([self.back_button, self.skip_button]),
                self._status,
            ]
        )
        self.add_class("cartokit-review")
        self._update()

    @classmethod
    def from_explorer(
        cls,
        explorer: Any,
        log_path: str | os.PathLike[str],
        *,
        scores: pd.Series | None = None,
        method: str = "combined",
        **options: Any,
    ) -> ReviewWidget:
        """A review of the explorer's samples: its metrics scored by ``method`` (or ``scores``),
        its ``data`` and ``dynamics``; ``options`` as in :class:`~cartokit.review.ReviewSession`.
        """
        from cartokit.mislabel import score_mislabeled

        if getattr(explorer, "data", None) is None:
            raise ValueError(
                "ReviewWidget.from_explorer: the explorer has no data; build it with "
                "DataMapExplorer(metrics, data=split, dynamics=dyn) to review its samples."
            )
        if scores is None:
            scores = score_mislabeled(explorer.metrics, method, dynamics=explorer.dynamics)
        options.setdefault("dynamics", explorer.dynamics)
        return cls(scores, log_path, data=explorer.data, **options)

    def refresh(self) -> None:
        """Show the session's current state, e.g. after decisions made in code
        (``widget.session.accept_suggestions(10)``)."""
        self._update()

    # ------------------------------------------------------------------ handlers
    def _splits(self) -> list[Split]:
        data = self.session.data
        return list(data.splits.values()) if hasattr(data, "splits") else [data]

    def _decide(self, decision: str, new_label: int | None = None) -> None:
        current = self.session.current
        try:
            self.session.decide(decision, new_label)
        except (ValueError, RuntimeError) as err:
            self._status.value = status_html(str(err), error=True)
            return
        what = decision if new_label is None else f"{decision} → {new_label}"
        self._update(f"Saved: id {html.escape(str(current))}: {html.escape(what)}.")

    def _move(self, step: Any) -> None:
        step()
        self._update()

    def _update(self, status: str = "") -> None:
        """Show the current suspect (or the end of the review), with ``status`` (HTML) below."""
        session = self.session
        self._progress.value = session.num_decided
        self._status.value = status
        done = session.current is None
        for button in (self.keep_button, self.relabel_button, self.drop_button, self.skip_button):
            button.disabled = done
        if done:
            self._header.value = (
                f"<b>Review done</b>: {session.num_decided} of {len(session)} suspects decided. "
                f"Log: <code>{html.escape(str(session.log_path))}</code>. "
                "apply_review(data, log) returns the cleaned data."
            )
            self._sample_image.layout.display = "none"
            self._trajectory.layout.display = "none"
            self._sample_html.value = self._info.value = ""
            return
        item = session.item()
        score = "" if np.isnan(item.score) else f" · score {item.score:.3f}"
        self._header.value = (
            f"<b>Suspect {item.rank} of {item.total}</b> · id {html.escape(str(item.id))} · "
            f"{html.escape(item.split)}{score} · {session.num_decided} decided"
        )
        text, png = sample_view(
            item.sample, css_class="cartokit-review-text", max_height=220, image_size=160,
            max_values=24,
        )  # fmt: skip
        self._sample_html.value = text
        if png is not None:
            png_image(self._sample_image, png)
        else:
            self._sample_image.layout.display = "none"
        if item.trajectory is not None:
            changed = item.suggested_trajectory is not None and item.suggested != item.label
            chart = trajectory_png(
                item.trajectory,
                label_name=_class_text(item.label, item.label_name),
                suggested=item.suggested_trajectory if changed else None,
                suggested_name=None
                if item.suggested is None
                else _class_text(item.suggested, item.suggested_name),
            )
            png_image(self._trajectory, chart)
        else:
            self._trajectory.layout.display = "none"
        self._show_labels(item)

    def _show_labels(self, item: ReviewItem) -> None:
        suggestion = "none (pass dynamics=)"
        if item.suggested is not None:
            support = "" if item.support_text is None else f" ({html.escape(item.support_text)})"
            name = _class_text(item.suggested, item.suggested_name)
            suggestion = f"<b>{html.escape(name)}</b>{support}"
        if item.suggested is not None and item.suggested != item.label:
            self.relabel_to.value = item.suggested
        elif self.relabel_to.value == item.label:  # relabelling to the given label means nothing
            self.relabel_to.value = (item.label + 1) % len(self.relabel_to.options)
        previous = ""
        if item.decision is not None:
            to = "" if item.new_label is None else f" → {item.new_label}"
            previous = f" · decided: <b>{item.decision}{to}</b>"
        label = html.escape(_class_text(item.label, item.label_name))
        self._info.value = f"label in the data: <b>{label}</b> · suggested: {suggestion}{previous}"


def _class_text(index: int, name: str | None) -> str:
    """A class as the panel names it: ``"9"`` when its name is its index (digits), else
    ``"dog (1)"``."""
    return str(index) if name is None or name == str(index) else f"{name} ({index})"
