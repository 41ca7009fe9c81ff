"""Small widget helpers shared by the components."""

from __future__ import annotations

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
    return pn.Row(slider, box, width=width)


def show_table_data(table: Any, data: dict[str, Any]) -> Any:
    """Give a Bokeh ``DataTable`` new rows through a new ``ColumnDataSource`` (returned).

    Not new data in the old source: BokehJS redraws a DataTable only when its rows'
    indices change, so new numbers in as many rows stayed unseen on the page (issue 18:
    dragging Levels 8 -> 80 left the 8-level RMSE shown). A new source changes the table
    model itself, which redraws it.
    """
    from bokeh.models import ColumnDataSource

    table.source = ColumnDataSource(data)
    return table.source
