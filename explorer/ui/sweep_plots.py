"""HoloViews (Bokeh) plots of a sweep table (:func:`explorer.sweep.results_frame`) for the
dashboard's Sweep panel.

* :func:`accuracy_plots` – accuracy against each swept parameter: every row as a dot,
  the mean over trials and the other parameters as a line with ± one standard deviation.
* :func:`heatmap` – mean accuracy over two swept parameters (averaged over trials and
  any further parameters), the cells in grid order.

The numbers come from :mod:`explorer.sweep.report`, which also draws the files that
``explorer sweep`` writes (with Matplotlib, without HoloViews). Converter bits that are
None ("ideal") are shown as the category ``ideal``.
"""

from __future__ import annotations

from typing import Any

import holoviews as hv
import holoviews.plotting.bokeh  # the .opts() below use Bokeh option names
import pandas as pd

from explorer.sweep.report import IDEAL, accuracy_against, axis_labels, heatmap_cells

__all__ = ["IDEAL", "accuracy_plots", "axis_labels", "heatmap"]


def accuracy_plots(frame: pd.DataFrame, swept: list[str]) -> hv.Layout:
    """Accuracy (%) against each swept parameter: rows as dots, mean ± std as a line."""
    plots = []
    for name in swept:
        data, stats, _order, _numeric = accuracy_against(frame, name)
        others = [n for n in swept if n != name]
        over = "trials" + (f" and {', '.join(others)}" if others else "")
        dots = hv.Scatter(data, [name], ["accuracy"], label="evaluations")
        dots = dots.opts(color="#9aa5b1", alpha=0.6, size=5, tools=["hover"], backend="bokeh")
        line = hv.Curve(stats, name, "mean", label=f"mean over {over}")
        line = line.opts(color="#1f77b4", line_width=2, backend="bokeh")
        bars = hv.ErrorBars(stats, name, ["mean", "std"]).opts(color="#1f77b4")
        overlay = hv.Overlay([dots, bars, line]).opts(
            title=f"Accuracy against {name}",
            xlabel=name,
            ylabel="accuracy (%)",
            width=420,
            height=320,
            show_legend=True,
            backend="bokeh",
        )
        plots.append(overlay)
    return hv.Layout(plots).cols(2)


def heatmap(
    frame: pd.DataFrame,
    x: str,
    y: str,
    x_values: list[Any] | None = None,
    y_values: list[Any] | None = None,
) -> hv.Overlay:
    """Mean accuracy (%) over grid points (x, y), averaged over trials and other parameters,
    each cell labelled with its value. ``x_values``/``y_values``: the grid's values (axes
    fixed from the start, cells not yet done stay blank); default: those in ``frame``."""
    cells, x_order, y_order = heatmap_cells(frame, x, y, x_values, y_values)
    # cells at integer positions with tick labels: HoloViews sorts text categories as text
    # ("16" before "4") when it grids them, so the grid order is kept by the positions
    kdims = [hv.Dimension("xi", label=x), hv.Dimension("yi", label=y)]
    vdims = [hv.Dimension("accuracy", label="accuracy (%)", range=(0, 100))]
    plot = hv.HeatMap(cells, kdims, vdims).opts(
        title=f"Mean accuracy (%) over {x} × {y}",
        xticks=list(enumerate(x_order)),
        yticks=list(enumerate(y_order)),
        xlim=(-0.5, len(x_order) - 0.5),
        ylim=(-0.5, len(y_order) - 0.5),
    )
    plot = plot.opts(
        cmap="viridis", colorbar=True, tools=["hover"], width=520, height=400, backend="bokeh"
    )
    text = hv.Labels(
        cells.assign(text=cells["accuracy"].map(lambda a: f"{a:.1f}")), kdims, "text"
    ).opts(text_color="white", text_font_size="9pt")
    return plot * text
