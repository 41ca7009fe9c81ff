"""Small widget helpers shared by the components."""

from __future__ import annotations

import itertools
from typing import Any

import panel as pn
import param


def number_control(
    parameter: param.Parameter,
    start: float,
    end: float,
    step: float | None = None,
    css_class: str | None = None,
    width: int = 400,
) -> pn.Row:
    """A slider (recomputes when the handle is released) beside a number box (on Enter),
    both linked to ``parameter``.

    Two plain widgets rather than Panel's EditableSlider: in Panel 1.9 its inner box and
    slider keep a stale ``value_throttled`` after the value is set from Python (a preset,
    say), so typing or dragging back to that old number is silently lost.
    """
    integer = isinstance(parameter, param.Integer)
    slider_type = pn.widgets.IntSlider if integer else pn.widgets.FloatSlider
    input_type = pn.widgets.IntInput if integer else pn.widgets.FloatInput
    options: dict[str, Any] = {"start": start, "end": end}
    if step is not None:
        options["step"] = step
    slider = slider_type.from_param(
        parameter, throttled=True, show_value=False, width=width - 110,
        css_classes=[f"{css_class}-slider"] if css_class else [], **options
    )
    box_options: dict[str, Any] = {"width": 90, "label": "", "align": "end"}
    if step is not None:
        box_options["step"] = step
    if css_class:
        box_options["css_classes"] = [css_class]
    box = input_type.from_param(parameter, **box_options)
    for widget in (slider, box):
        undelayed(widget)
    return pn.Row(slider, box, width=width)


def undelayed(widget: pn.widgets.Widget) -> pn.widgets.Widget:
    """Process the widget's changes from the browser at once and as one patch.

    At once: without Panel's 50 ms wait for more (``Syncable._debounce``, meant for
    streams of keystrokes); a box that sends on Enter or a slider that sends on release
    makes one change per user action. 1 ms rather than 0: Bokeh acknowledges the browser's
    message on the same websocket just after handing the change to Panel, and a change
    processed at 0 ms ran while that acknowledgement held the socket's write lock, so
    Panel wrote the answer on its next 10 ms retry; after 1 ms the lock was mostly free
    and the answer left at once (measured on the served page: 2 changes of 3).

    As one patch: every view that the change updates (histograms, curve, table, URL) goes
    out in one held message, rather than one message per view (six for a change of
    levels), each of which the server serialises and the browser applies separately.
    """
    widget._debounce = 1
    process = widget._process_events

    def process_held(events: dict[str, Any]) -> None:
        with pn.io.hold():
            process(events)

    widget._process_events = process_held
    return widget


def lean_glyphs(fig: Any) -> Any:
    """Drop the copies of each glyph that Bokeh's figure methods make for the non-selected
    and muted states ("auto": BokehJS derives them from the glyph when needed, the same
    look). A plot without selection or muting needs neither: two models fewer per
    renderer to build, send and take apart with every patch. Returns ``fig``."""
    for renderer in fig.renderers:
        renderer.nonselection_glyph = "auto"
        renderer.muted_glyph = "auto"
    return fig


def show_table_data(table: Any, data: dict[str, Any]) -> Any:
    """Give a Bokeh ``DataTable`` new rows, and make the page redraw them; returns its source.

    New data alone is not enough: BokehJS refreshes a DataTable's grid when its ``CDSView``
    changes, and the view's indices change only with the number of rows, so new numbers in
    as many rows stayed unseen on the page (issue 18: dragging Levels 8 -> 80 left the
    8-level RMSE shown). A revision number in the view's ``tags`` makes BokehJS refresh
    the grid's cells (``updateGrid``). (Not the table's own tags: any change of the table
    model rebuilds its whole SlickGrid, 60-130 ms of the browser's time per table per
    change; not a new source: a new model in a table shown in several notebook outputs
    fails.)
    """
    table.source.data = data
    view = table.view
    kept = [t for t in view.tags if not str(t).startswith(_REVISION)]
    view.tags = [*kept, f"{_REVISION}{next(_revisions)}"]
    return table.source


_REVISION = "table-revision-"
_revisions = itertools.count(1)
