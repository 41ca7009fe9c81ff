"""Tabs whose sections are put into the page only when first opened (``LazyTabs``).

A section that nobody has opened costs its page nothing: no Bokeh models are made, sent
or drawn for it, and a view with a ``live`` parameter (the cost panel, whose figure is a
worker job per change) is switched on only then. Once opened, a section stays in the
page (the browser hides it while another tab is shown) and is updated like any other view.

Why not ``pn.Tabs(dynamic=True)``: that takes a hidden tab's models out of the document.
A pane updated while out (a status line when a job ends, a cost recomputed after a
change) then renders its stylesheets for no document, which Panel (1.9) points at
cdn.holoviz.org (``panel/pane/markup.py`` and ``pane/base.py``: ``_get_properties(
model.document)`` with ``document`` None); on reopening, the page asked the CDN for its
CSS (offline: failed requests, unstyled widgets).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import panel as pn
import param


class LazyTabs(pn.viewable.Viewer):
    """``(title, view)`` sections as tabs; a view enters the page when its tab is first
    opened (the first tab: at once)."""

    active = param.Integer(default=0, bounds=(0, None), doc="Index of the tab shown.")

    def __init__(self, sections: Sequence[tuple[str, Any]], **params: Any) -> None:
        layout = {k: params.pop(k) for k in ("sizing_mode", "css_classes") if k in params}
        super().__init__(**params)
        self.param.active.bounds = (0, len(sections) - 1)
        self.titles = [title for title, _ in sections]
        self._views = [view for _, view in sections]
        # an empty column stands in for each section until its tab is opened
        self._holders = [pn.Column(sizing_mode="stretch_width") for _ in sections]
        self.tabs = pn.Tabs(*zip(self.titles, self._holders, strict=True),
                            active=self.active, **layout)
        self.tabs.link(self, active="active", bidirectional=True)
        self._put_in(self.active)

    @property
    def opened(self) -> list[str]:
        """Titles of the sections in the page so far."""
        return [t for t, h in zip(self.titles, self._holders, strict=True) if h.objects]

    @param.depends("active", watch=True)
    def _open(self) -> None:
        self._put_in(self.active)

    def _put_in(self, index: int) -> None:
        holder = self._holders[index]
        if not holder.objects:
            view = self._views[index]
            holder.objects = [view]
            if isinstance(view, param.Parameterized) and "live" in view.param:
                view.live = True  # a view that waited for its first showing catches up

    def __panel__(self) -> pn.viewable.Viewable:
        return self.tabs


__all__ = ["LazyTabs"]
