"""Sections put into the page only when first opened: tabs (``LazyTabs``) and a vertical
list of collapsible headers (``LazySections``, the sidebar's lower groups).

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


def _is_factory(view: Any) -> bool:
    """A section given as a function that builds its view (called when first needed)."""
    return callable(view) and not isinstance(
        view, (pn.viewable.Viewable, pn.viewable.Viewer, param.Parameterized))


class LazyTabs(pn.viewable.Viewer):
    """``(title, view)`` sections as tabs; a view enters the page when its tab is first
    opened (the first tab: at once). A view may be given as a function that builds it:
    it is then built when its tab is first opened or :meth:`view` first asks for it."""

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

    def built(self, title: str) -> bool:
        """Whether the view of section ``title`` exists (built, or given built)."""
        return not _is_factory(self._views[self.titles.index(title)])

    def view(self, title: str) -> Any:
        """The view of section ``title``, built now if it was given as a function."""
        index = self.titles.index(title)
        if _is_factory(self._views[index]):
            self._views[index] = self._views[index]()
        return self._views[index]

    @param.depends("active", watch=True)
    def _open(self) -> None:
        self._put_in(self.active)

    def _put_in(self, index: int) -> None:
        _put_in(self._holders[index], self.view(self.titles[index]))

    def __panel__(self) -> pn.viewable.Viewable:
        return self.tabs


def _put_in(holder: pn.Column, view: Any) -> None:
    """Put ``view`` into its (empty) ``holder``, once; a view with a ``live`` parameter
    is switched on then."""
    if not holder.objects:
        holder.objects = [view]
        if isinstance(view, param.Parameterized) and "live" in view.param:
            view.live = True  # a view that waited for its first showing catches up


CLOSED, OPEN = "\u25b8", "\u25be"  # ▸ ▾
HEADER_CSS = ":host .bk-btn { text-align: left; font-weight: 600; }"


def slug(title: str) -> str:
    """``"Crossbar & converters"`` → ``"crossbar-converters"`` (for css classes)."""
    words = "".join(c if c.isalnum() else " " for c in title.lower()).split()
    return "-".join(words)


class LazySections(pn.viewable.Viewer):
    """``(title, view)`` sections as a vertical list of headers (toggle buttons, ▸ / ▾
    and the title; focusable, Enter or Space opens) each followed by its view, which
    enters the page when the header is first opened. Closing hides the view; it stays in
    the document (see the module docstring).

    A view with a ``problem`` parameter (:class:`~explorer.ui.controls.PartControls`: an
    impossible combination) shows it in its own alert once opened; the problems of the
    closed sections (not already shown by an open one) are shown in one alert above the
    headers, so a problem is never hidden behind a closed header.
    """

    def __init__(self, sections: Sequence[tuple[str, Any]], **params: Any) -> None:
        layout = {k: params.pop(k) for k in ("sizing_mode", "css_classes", "width")
                  if k in params}
        super().__init__(**params)
        self.titles = [title for title, _ in sections]
        self._views = [view for _, view in sections]
        self._holders = [pn.Column(visible=False, sizing_mode="stretch_width",
                                   css_classes=[f"lazy-section-{slug(t)}"])
                         for t in self.titles]
        self._headers = [pn.widgets.Toggle(label=f"{CLOSED} {t}", value=False,
                                           color="light", sizing_mode="stretch_width",
                                           css_classes=[f"lazy-header-{slug(t)}"],
                                           stylesheets=[HEADER_CSS], margin=(2, 10))
                         for t in self.titles]
        for index, header in enumerate(self._headers):
            header.param.watch(lambda e, i=index: self._show(i, e.new), "value")
        self.problems = pn.pane.Alert("", alert_type="warning", visible=False,
                                      css_classes=["lazy-sections-problems"])
        for view in self._views:
            if isinstance(view, param.Parameterized) and "problem" in view.param:
                view.param.watch(self._show_problems, "problem")
        self._show_problems()
        rows = [row for pair in zip(self._headers, self._holders, strict=True) for row in pair]
        self._layout = pn.Column(self.problems, *rows, **layout)

    @property
    def opened(self) -> list[str]:
        """Titles of the sections in the page so far (open now or not)."""
        return [t for t, h in zip(self.titles, self._holders, strict=True) if h.objects]

    @property
    def shown(self) -> list[str]:
        """Titles of the sections open now."""
        return [t for t, h in zip(self.titles, self._headers, strict=True) if h.value]

    def open(self, title: str) -> None:
        """Open section ``title`` (as a click on its header does)."""
        self._headers[self.titles.index(title)].value = True

    def close(self, title: str) -> None:
        """Close section ``title`` (its view stays in the page, hidden)."""
        self._headers[self.titles.index(title)].value = False

    def _show(self, index: int, show: bool) -> None:
        holder, title = self._holders[index], self.titles[index]
        with pn.io.hold():
            if show:
                _put_in(holder, self._views[index])
            holder.visible = show
            self._headers[index].label = f"{OPEN if show else CLOSED} {title}"
            self._show_problems()

    def _show_problems(self, *_events: param.parameterized.Event) -> None:
        def problems(shown: bool) -> list[str]:
            return [getattr(view, "problem", "") for view, header
                    in zip(self._views, self._headers, strict=True) if header.value == shown]

        seen = set(problems(shown=True))
        hidden = list(dict.fromkeys(p for p in problems(shown=False) if p and p not in seen))
        self.problems.param.update(object="\n\n".join(hidden), visible=bool(hidden))

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


__all__ = ["LazySections", "LazyTabs"]
