"""Plot legends that the browser does not redraw when a plot's data change.

A Bokeh legend listens to every model it reaches through its items – the renderers and
their data sources too – and redraws itself (measuring every label, making a canvas per
glyph icon) on each change of any of them: with the dashboard's three legends that was
~8 legend redraws per change of the levels, ~10 ms of the browser's thread in a change's
~100 ms. :func:`fixed_legend` draws each item with a stand-in: a copy of the real
renderer's glyph on one shared, empty data source. A click on an item hides or shows the
stand-in, and a small script without references (it finds the real renderer by id in the
page's document) passes that on to the real renderer; :func:`show_renderer` sets both
from Python.

The stand-ins' source has no columns at all: with empty columns BokehJS draws no icon,
and a glyph whose coordinates are expressions over several columns (a stacked bar's)
fails without them – so the cost panel's stacked bars keep Bokeh's own legend.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

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
        stand_in = GlyphRenderer(data_source=empty, view=view, glyph=real.glyph.clone(),
                                 nonselection_glyph="auto", muted_glyph="auto",
                                 visible=real.visible)
        stand_in.js_on_change("visible", CustomJS(code=PASS_ON_VISIBILITY % json.dumps(real.id)))
        stand_ins[label] = stand_in
    fig.renderers.extend(stand_ins.values())
    fig.add_layout(Legend(items=[LegendItem(label=label, renderers=[stand_in])
                                 for label, stand_in in stand_ins.items()], **legend))
    return stand_ins


def show_renderer(real: GlyphRenderer, stand_in: GlyphRenderer | None, visible: bool) -> None:
    """Show or hide ``real`` and its legend item's stand-in (greyed when hidden)."""
    real.visible = visible
    if stand_in is not None:
        stand_in.visible = visible
