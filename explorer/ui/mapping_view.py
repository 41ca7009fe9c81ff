"""Mapping view: weight-error histograms (methods overlaid), transfer curve, error table.

Everything shown is computed by :func:`explorer.mapping.map_weights` from the current
device and the mapping settings; the view only chooses what to display (layer, methods
to compare) and keeps the derived tables as parameters (``histograms``, ``stats``,
``transfer``), which the plots are bound to.
"""

from __future__ import annotations

import html
import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param
import torch
from bokeh.models import (
    ColumnDataSource,
    DataRange1d,
    GlyphRenderer,
    Range1d,
)
from bokeh.plotting import figure

from explorer.device import DeviceModel
from explorer.errors import InputError
from explorer.mapping import METHODS, map_weights
from explorer.ui.deferred import Deferred
from explorer.ui.plot_legend import fixed_legend, show_renderer
from explorer.ui.widgets import lean_glyphs

ALL_LAYERS = "all layers"
LegendEntries = dict[str, tuple[GlyphRenderer, GlyphRenderer]]
"""A plot's renderers by name, each with its legend item's stand-in (plot_legend.py)."""
DEFAULT_COMPARE = ["linear", "min_error", "generalized"]
METHOD_COLORS = {
    "linear": "#d62728",
    "min_error": "#1f77b4",
    "generalized": "#2ca02c",
    "exact": "#7f7f7f",
}
DEVICE_PARAMS = [
    "g_min",
    "g_max",
    "levels",
    "nonlinearity",
    "source",
    "table",
    "points_pulses",
    "points_g",
]
MAPPING_PARAMS = ["mapping", "scheme", "scale"]
TRANSFER_POINTS = 257
TABLE_CSS = """
.scroll { max-height: 240px; overflow-y: auto; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th { position: sticky; top: 0; background: #fff; text-align: left; font-weight: normal;
     border-bottom: 1px solid #ddd; padding: 4px 6px; }
td { padding: 3px 6px; border-bottom: 1px solid #f0f0f0; }
tbody tr:nth-child(even) { background: #f7f7f7; }
"""
"""The error table's look (close to the DataTable it replaced)."""
TABLE_COLUMNS = [
    ("layer", "layer"),
    ("method", "method"),
    ("rmse", "RMSE"),
    ("mean_abs", "mean |error|"),
    ("max_abs", "max |error|"),
    ("rmse_rel", "RMSE / w_max"),
]


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread in the calling thread only (OpenMP's setting is per thread).

    The mapping of a few hundred thousand weights gains nothing from a second thread, and
    on a busy 2-core machine intra-op threads fighting the evaluation worker cost 10-40×.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class MappingView(pn.viewable.Viewer):
    """How the weights of each layer land on the device's levels, updated on every change.

    ``settings`` is any Parameterized with ``mapping`` (method), ``scheme`` and ``scale``
    parameters – the :class:`~explorer.crossbar.CrossbarConfig` in the app.
    """

    device = param.ClassSelector(
        class_=DeviceModel,
        instantiate=False,
        label="Device",
        doc="The device whose levels the weights are mapped onto.",
    )
    settings = param.ClassSelector(
        class_=param.Parameterized,
        instantiate=False,
        label="Mapping settings",
        doc="Holds mapping (method), scheme and scale.",
    )
    weights = param.Dict(
        default={},
        precedence=-1,
        label="Weights",
        doc="Layer name -> weight tensor of the network being mapped.",
    )
    layer = param.Selector(
        default=ALL_LAYERS,
        objects=[ALL_LAYERS],
        label="Layer",
        doc="Show one layer, or all layers pooled (errors in units of each layer's w_max).",
    )
    compare = param.ListSelector(
        default=list(DEFAULT_COMPARE),
        objects=list(METHODS),
        label="Compare methods",
        doc="Mapping methods whose error histograms are overlaid "
        "(the selected method is always included).",
    )
    bins = param.Integer(
        default=61,
        bounds=(8, 400),
        label="Histogram bins",
        doc="Number of histogram bins over ± the largest relative error.",
    )
    histograms = param.DataFrame(
        default=None,
        precedence=-1,
        label="Histograms",
        doc="method, left, right, count: error histogram per method; "
        "error in units of the layer's w_max.",
    )
    stats = param.DataFrame(
        default=None,
        precedence=-1,
        label="Statistics",
        doc="layer, method, rmse, mean_abs, max_abs (weight units), rmse_rel (RMSE / w_max).",
    )
    transfer = param.DataFrame(
        default=None,
        precedence=-1,
        label="Transfer curve",
        doc="method, w, w_hat: realised against ideal weight "
        "(weight units) on [−w_max, w_max] for the shown layer.",
    )
    error = param.String(
        default="", label="Error", doc="Why the last mapping failed; empty when it worked."
    )
    compute_ms = param.Number(
        default=0.0,
        bounds=(0, None),
        precedence=-1,
        label="Compute time (ms)",
        doc="Wall time of the last recompute, milliseconds.",
    )

    def __init__(
        self,
        device: DeviceModel,
        settings: param.Parameterized,
        weights: dict[str, torch.Tensor],
        **params: Any,
    ) -> None:
        super().__init__(device=device, settings=settings, weights=dict(weights), **params)
        self._set_layer_options()
        self._method = pn.widgets.RadioButtonGroup.from_param(settings.param.mapping)
        self._scheme = pn.widgets.RadioButtonGroup.from_param(settings.param.scheme)
        self._scale = pn.widgets.RadioButtonGroup.from_param(settings.param.scale)
        self._layer = pn.widgets.Select.from_param(self.param.layer)
        self._compare = pn.widgets.CheckButtonGroup.from_param(self.param.compare)
        self._alert = pn.pane.Alert("", alert_type="danger", visible=False)
        # a plain HTML table: a DataTable (SlickGrid) re-laid out its grid and measured
        # its columns on every change (~9 ms of the browser's thread a change)
        self._table = pn.pane.HTML(
            "", sizing_mode="stretch_width", css_classes=["mapping-table"],
            stylesheets=[TABLE_CSS], margin=(5, 10))
        self._hist_figure, self._hist_sources, self._hist_items = self._histogram_figure()
        (self._transfer_figure, self._transfer_sources,
         self._transfer_items) = self._transfer_figure_()
        self._hist_figure.css_classes = ["mapping-histograms"]
        self._hist_pane = pn.pane.Bokeh(self._hist_figure, height=300, sizing_mode="stretch_width")
        self._transfer_pane = pn.pane.Bokeh(
            self._transfer_figure, height=300, sizing_mode="stretch_width"
        )
        self._results: dict | None = None
        self._finish_later = Deferred(self._finish)
        self.recompute()
        device.param.watch(self._on_change, DEVICE_PARAMS)
        settings.param.watch(self._on_change, MAPPING_PARAMS)
        self._layout = pn.Column(
            pn.pane.Markdown("### Weight → conductance mapping", margin=(0, 10)),
            pn.Row(
                pn.Column("Method", self._method),
                pn.Column("Cell scheme", self._scheme),
                pn.Column("Scale", self._scale),
            ),
            pn.Row(self._layer, pn.Column("Overlay", self._compare)),
            self._alert,
            pn.Row(self._hist_pane, self._transfer_pane, sizing_mode="stretch_width"),
            self._table,
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    # -- computation -------------------------------------------------------------------------
    def methods_shown(self) -> list[str]:
        """Compared methods plus the selected one, in METHODS order."""
        chosen = set(self.compare) | {self.settings.mapping}
        return [m for m in METHODS if m in chosen]

    def layers_shown(self) -> list[str]:
        """Layer names included in the histograms and table."""
        return list(self.weights) if self.layer == ALL_LAYERS else [self.layer]

    def recompute(self) -> None:
        """Map the shown layers with every shown method and refresh the derived tables.

        The histograms go first; the error table and the transfer curve follow just after
        (in a served page, once the histograms' patch has been written: explorer.ui.
        deferred), from the same mapping.
        """
        start = time.perf_counter()
        try:
            with one_torch_thread():
                results = self._map_all()
                histograms = self._histogram_frame(results)
        except (InputError, ValueError, RuntimeError) as exc:
            self.error = f"Mapping failed: {exc}"
            return
        self._results = results
        with pn.io.hold():
            self.param.update(histograms=histograms, error="",
                              compute_ms=(time.perf_counter() - start) * 1e3)
            self._update_histogram_plot()
        self._finish_later()

    def _finish(self) -> None:
        """The error table and transfer curve of the latest mapping (see recompute)."""
        results, self._results = self._results, None  # mapped weights: not kept after
        if results is None:
            return
        start = time.perf_counter()
        with one_torch_thread():
            stats = self._stats_frame(results)
            transfer = self._transfer_frame(results)
        with pn.io.hold():
            self.param.update(stats=stats, transfer=transfer,
                              compute_ms=self.compute_ms + (time.perf_counter() - start) * 1e3)
            self._update_transfer_plot()

    def _map_all(self) -> dict:
        return {
            (name, method): map_weights(
                self.weights[name],
                self.device,
                method=method,
                scheme=self.settings.scheme,
                scale=self.settings.scale,
            )
            for name in self.layers_shown()
            for method in self.methods_shown()
        }

    def _histogram_frame(self, results: dict) -> pd.DataFrame:
        rel = {}
        for method in self.methods_shown():
            rel[method] = torch.cat(
                [
                    (r.error.reshape(-1) / r.w_max).float()
                    for (_, m), r in results.items()
                    if m == method
                ]
            )
        span = max(float(e.abs().max()) for e in rel.values())
        span = span if span > 0 else 1e-3
        counts = {method: torch.histc(e, bins=self.bins, min=-span, max=span).numpy()
                  for method, e in rel.items()}
        return histogram_frame("method", counts, np.linspace(-span, span, self.bins + 1))

    def _stats_frame(self, results: dict) -> pd.DataFrame:
        rows = [
            {"layer": name, "method": method, **r.stats()} for (name, method), r in results.items()
        ]
        frame = pd.DataFrame(rows)
        return frame[
            ["layer", "method", "rmse", "mean_abs", "max_abs", "rmse_rel", "w_max", "n_weights"]
        ]

    def _transfer_frame(self, results: dict) -> pd.DataFrame:
        name = self._transfer_layer()
        curves = {}
        for method in self.methods_shown():
            r = results.get((name, method))
            if r is not None:
                curves[method] = r.transfer_curve(TRANSFER_POINTS)
        return pd.DataFrame({
            "method": np.repeat(list(curves), [len(w) for w, _ in curves.values()]),
            "w": np.concatenate([np.asarray(w) for w, _ in curves.values()]),
            "w_hat": np.concatenate([np.asarray(w_hat) for _, w_hat in curves.values()]),
        })

    def _transfer_layer(self) -> str:
        if self.layer != ALL_LAYERS:
            return self.layer
        return max(self.weights, key=lambda n: self.weights[n].numel())

    # -- watchers ----------------------------------------------------------------------------
    def _on_change(self, *_events: param.parameterized.Event) -> None:
        self.recompute()

    @param.depends("layer", "bins", "compare", watch=True)
    def _on_view_change(self) -> None:
        self.recompute()

    @param.depends("weights", watch=True)
    def _on_weights_change(self) -> None:
        self._set_layer_options()
        self.recompute()

    @param.depends("stats", watch=True)
    def _show_table(self) -> None:
        if self.stats is not None:
            self._table.object = stats_table_html(self.stats)

    @param.depends("error", watch=True)
    def _show_error(self) -> None:
        self._alert.param.update(object=self.error, visible=bool(self.error))

    def _set_layer_options(self) -> None:
        options = [ALL_LAYERS, *self.weights]
        self.param.layer.objects = options
        if self.layer not in options:
            self.layer = ALL_LAYERS

    # -- plots ---------------------------------------------------------------------------------
    # Plain Bokeh figures built once; an update only replaces their data sources (a few
    # hundred numbers), which keeps a change of the controls well under a frame budget.
    @staticmethod
    def _histogram_figure() -> tuple[figure, dict[str, ColumnDataSource], LegendEntries]:
        fig = figure(
            title="Weight error (ŵ − w) / w_max",
            x_axis_label="error / w_max",
            y_axis_label="weights",
            tools="pan,wheel_zoom,box_zoom,reset,save",
            # both ranges set from here with the data: a DataRange1d is computed in the
            # browser, which then sends it back (a message per change for the server)
            x_range=Range1d(-1, 1),
            y_range=Range1d(0, 1),
            sizing_mode="stretch_width",
            height=300,
        )
        sources, renderers = {}, {}
        for method in METHODS:
            sources[method] = ColumnDataSource({"left": [], "right": [], "top": []})
            renderers[method] = fig.quad(
                left="left",
                right="right",
                top="top",
                bottom=0,
                source=sources[method],
                fill_color=METHOD_COLORS[method],
                fill_alpha=0.45,
                line_alpha=0,
            )
        lean_glyphs(fig)
        stand_ins = fixed_legend(fig, renderers, location="top_right", click_policy="hide")
        return fig, sources, {m: (renderers[m], stand_ins[m]) for m in renderers}

    @staticmethod
    def _transfer_figure_() -> tuple[figure, dict[str, ColumnDataSource], LegendEntries]:
        fig = figure(
            title="Transfer curve",
            x_axis_label="ideal weight w",
            y_axis_label="realised weight ŵ",
            tools="pan,wheel_zoom,box_zoom,reset,save",
            x_range=DataRange1d(only_visible=True),
            y_range=DataRange1d(only_visible=True),
            sizing_mode="stretch_width",
            height=300,
        )
        sources = {"ideal": ColumnDataSource({"w": [], "w_hat": []})}
        renderers = {"ideal": fig.line(
            "w",
            "w_hat",
            source=sources["ideal"],
            color="black",
            line_dash="dotted",
        )}
        for method in METHODS:
            sources[method] = ColumnDataSource({"w": [], "w_hat": []})
            renderers[method] = fig.line(
                "w",
                "w_hat",
                source=sources[method],
                color=METHOD_COLORS[method],
                line_width=1.5,
            )
        lean_glyphs(fig)
        stand_ins = fixed_legend(fig, renderers, location="top_left", click_policy="hide")
        return fig, sources, {m: (renderers[m], stand_ins[m]) for m in renderers}

    def _update_histogram_plot(self) -> None:
        show_histograms(self._hist_figure, self._hist_sources, self.histograms, "method")
        self._show_methods(self._hist_items)

    def _update_transfer_plot(self) -> None:
        transfer = self.transfer
        transfer_rows = _rows_by(transfer["method"].to_numpy())
        w, w_hat = transfer["w"].to_numpy(), transfer["w_hat"].to_numpy()
        empty = slice(0, 0)
        for method, source in self._transfer_sources.items():
            if method == "ideal":
                w_max = float(np.abs(w).max())
                source.data = {"w": [-w_max, w_max], "w_hat": [-w_max, w_max]}
                continue
            rows = transfer_rows.get(method, empty)
            source.data = {"w": w[rows], "w_hat": w_hat[rows]}
        self._show_methods(self._transfer_items)
        self._transfer_figure.title.text = f"Transfer curve, {self._transfer_layer()}"

    def _show_methods(self, entries: LegendEntries) -> None:
        shown = self.methods_shown()
        for name, (renderer, stand_in) in entries.items():
            show_renderer(renderer, stand_in, name == "ideal" or name in shown)


def table_number(value: float) -> str:
    """A table's number: 3 to 5 decimals (``0.100``, ``0.04178``), like the error table's
    earlier ``0.000[00]`` format."""
    if not np.isfinite(value):
        return str(value)
    whole, _, decimals = f"{value:.5f}".partition(".")
    return f"{whole}.{decimals.rstrip('0').ljust(3, '0')}"


def stats_table_html(frame: pd.DataFrame) -> str:
    """The error table (:data:`TABLE_COLUMNS` of ``frame``) as HTML, names escaped."""
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title in TABLE_COLUMNS)
    rows = []
    for record in frame.to_dict("records"):
        cells = [f"<td>{html.escape(str(record[c]))}</td>" if c in ("layer", "method")
                 else f'<td class="number">{table_number(float(record[c]))}</td>'
                 for c, _ in TABLE_COLUMNS]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def histogram_frame(key: str, counts: dict[str, np.ndarray], edges: np.ndarray
                    ) -> pd.DataFrame:
    """``key``, left, right, count: the histograms ``counts`` (one per name, on the bin
    ``edges``) as one frame built from whole columns, name after name (a frame per name
    and a concat cost three times as much)."""
    return pd.DataFrame({
        key: np.repeat(list(counts), len(edges) - 1),
        "left": np.tile(edges[:-1], len(counts)),
        "right": np.tile(edges[1:], len(counts)),
        "count": np.concatenate(list(counts.values())).astype(np.int64),
    })


def show_histograms(fig: figure, sources: dict[str, ColumnDataSource], frame: pd.DataFrame,
                    key: str) -> None:
    """Each name's rows of a :func:`histogram_frame` into its source, and the figure's
    ranges set from the data (a DataRange1d is computed in the browser, which then sends
    it back: a message per change for the server)."""
    rows = _rows_by(frame[key].to_numpy())
    left, right = frame["left"].to_numpy(), frame["right"].to_numpy()
    count = frame["count"].to_numpy().astype(np.float64)
    empty = slice(0, 0)
    for name, source in sources.items():
        part = rows.get(name, empty)
        source.data = {"left": left[part], "right": right[part], "top": count[part]}
    span = float(max(np.abs(left).max(), np.abs(right).max())) if left.size else 1.0
    fig.x_range.update(start=-1.05 * span, end=1.05 * span)
    tallest = float(count.max()) if count.size else 0.0
    fig.y_range.update(start=0, end=1.05 * tallest if tallest > 0 else 1)


def _rows_by(keys: np.ndarray) -> dict[str, slice]:
    """Rows of each key in a column where every key's rows are contiguous (the frames
    above are built method after method)."""
    if len(keys) == 0:
        return {}
    bounds = [0, *(np.flatnonzero(keys[1:] != keys[:-1]) + 1).tolist(), len(keys)]
    return {str(keys[a]): slice(a, b) for a, b in itertools.pairwise(bounds)}
