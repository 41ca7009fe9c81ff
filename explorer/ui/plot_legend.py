"""Plot legends that the browser does not redraw when a plot's data change.

A Bokeh legend listens to every model it reaches through its items – the renderers and
their data sources too – and redraws itself (measuring every label, making a canvas per
glyph icon) on each change of any of them: with the dashboard's three legends that was
~8 legend redraws per change of the levels, ~10 ms of the browser's thread in a change's
~100 ms. :func:`fixed_legend` draws each item with a stand-in: a copy of the real
renderer's glyph, reading no column, on a shared empty source (nothing drawn). A
click on an item hides or shows the stand-in, and a small script without references (it
finds the real renderer by id in the page's document) passes that on to the real
renderer; :func:`show_renderer` sets both from Python.

The cost panel's stacked bars keep Bokeh's own legend (their coordinates are expressions
over several columns: not tried with stand-ins).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from bokeh.core.property.vectorization import Field
from bokeh.models import CDSView, ColumnDataSource, CustomJS, GlyphRenderer, Legend, LegendItem

PASS_ON_VISIBILITY = """
const real = cb_obj.document == null ? null : cb_obj.document.get_model_by_id(%s);
if (real != null && real.visible !== cb_obj.visible) real.visible = cb_obj.visible;
"""
"""Browser code run when a stand-in's visibility changes (the real renderer's id in %s)."""


def fixed_legend(fig: Any, renderers: Mapping[str, GlyphRenderer], **legend: Any
                 ) -> dict[str, GlyphRenderer]:
    """Add to ``fig`` a legend with an item per ``label: renderer`` (in order), drawn by
    stand-ins; ``legend`` sets the Legend's properties (location, click_policy, …).
    Returns the stand-ins by label (``fig.renderers`` holds them after the real ones)."""
    empty = ColumnDataSource(data={})
    view = CDSView()
    stand_ins: dict[str, GlyphRenderer] = {}
    for label, real in renderers.items():
        stand_in = GlyphRenderer(data_source=empty, view=view, glyph=_without_columns(real.glyph),
                                 nonselection_glyph="auto", muted_glyph="auto",
                                 visible=real.visible)
        stand_in.js_on_change("visible", CustomJS(code=PASS_ON_VISIBILITY % json.dumps(real.id)))
        stand_ins[label] = stand_in
    fig.renderers.extend(stand_ins.values())
    fig.add_layout(Legend(items=[LegendItem(label=label, renderers=[stand_in])
                                 for label, stand_in in stand_ins.items()], **legend))
    return stand_ins


def _without_columns(glyph: Any) -> Any:
    """A copy of ``glyph`` whose coordinates read no column (each NaN): a stand-in
    draws only its legend icon, and Bokeh's validation would flag columns its empty
    source lacks (an empty column instead makes BokehJS skip the icon)."""
    copy = glyph.clone()
    for name, spec in glyph.properties_with_values(include_defaults=False).items():
        if name in glyph.dataspecs() and isinstance(spec, Field):
            setattr(copy, name, math.nan)
    return copy


def show_renderer(real: GlyphRenderer, stand_in: GlyphRenderer | None, visible: bool) -> None:
    """Show or hide ``real`` and its legend item's stand-in (greyed when hidden)."""
    real.visible = visible
    if stand_in is not None:
        stand_in.visible = visible
