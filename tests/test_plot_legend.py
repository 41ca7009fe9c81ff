"""Legends drawn by stand-ins (explorer/ui/plot_legend.py): nothing the legend reaches
changes with the data, the stand-ins draw nothing and read no column, a click on an
item is passed on to the real renderer (the browser half: tests/ui/test_page_input.py)."""

from __future__ import annotations

import math

from bokeh.core.validation import check_integrity
from bokeh.models import ColumnDataSource, Legend
from bokeh.plotting import figure

from explorer.ui.plot_legend import fixed_legend, show_renderer


def _plot():
    fig = figure()
    source = ColumnDataSource({"x": [1.0, 2.0], "y": [3.0, 4.0]})
    real = {"line": fig.line("x", "y", source=source),
            "dots": fig.scatter("x", "y", source=source, marker="x")}
    return fig, source, real, fixed_legend(fig, real, location="top_left",
                                           click_policy="hide")


def test_the_legend_reaches_no_data_that_changes():
    fig, source, real, stand_ins = _plot()
    (legend,) = [m for m in fig.center if isinstance(m, Legend)]
    assert [item.label.value for item in legend.items] == ["line", "dots"]
    assert legend.location == "top_left" and legend.click_policy == "hide"
    reached = legend.references()
    assert source not in reached and not set(real.values()) & reached
    assert set(stand_ins.values()) <= set(fig.renderers)


def test_stand_ins_draw_nothing_and_pass_clicks_on():
    fig, _source, real, stand_ins = _plot()
    assert check_integrity(fig.references()).error == []  # no missing column (E-1001)
    for name, stand_in in stand_ins.items():
        assert stand_in.data_source.data == {}
        coordinates = {k: v for k, v in stand_in.glyph.properties_with_values(
            include_defaults=False).items() if k in ("x", "y")}
        assert coordinates and all(math.isnan(v.value) for v in coordinates.values())
        (callback,) = stand_in.js_property_callbacks["change:visible"]
        assert real[name].id in callback.code and callback.args == {}
        show_renderer(real[name], stand_in, False)
        assert (real[name].visible, stand_in.visible) == (False, False)
