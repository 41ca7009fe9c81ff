"""Mapping view: weight-error histograms (methods overlaid), transfer curve, error table.

Everything shown is computed by :func:`explorer.mapping.map_weights` from the current
device and the mapping settings; the view only chooses what to display (layer, methods
to compare) and keeps the derived tables as parameters (``histograms``, ``stats``,
``transfer``), which the plots are bound to.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param
import torch

from explorer.device import DeviceModel
from explorer.errors import InputError
from explorer.mapping import METHODS, map_weights

ALL_LAYERS = "all layers"
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
        self._table = pn.pane.DataFrame(
            None, index=False, sizing_mode="stretch_width", max_height=260
        )
        self._hist_methods: list[str] = []
        self._hist_pane = pn.pane.HoloViews(None, height=300, sizing_mode="stretch_width")
        self.recompute()
        self._transfer_pane = pn.pane.HoloViews(
            hv.DynamicMap(pn.bind(self._transfer_plot, self.param.transfer)),
            height=300,
            sizing_mode="stretch_width",
        )
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
        """Map the shown layers with every shown method and refresh the derived tables."""
        start = time.perf_counter()
        try:
            with one_torch_thread():
                results = self._map_all()
                histograms = self._histogram_frame(results)
                stats = self._stats_frame(results)
                transfer = self._transfer_frame(results)
        except (InputError, ValueError, RuntimeError) as exc:
            self.error = f"Mapping failed: {exc}"
            return
        with pn.io.hold():
            self.param.update(
                histograms=histograms,
                stats=stats,
                transfer=transfer,
                error="",
                compute_ms=(time.perf_counter() - start) * 1e3,
            )
            if self.methods_shown() != self._hist_methods:
                # the overlay's members changed: give the pane a new plot
                self._hist_methods = self.methods_shown()
                self._hist_pane.object = self._histogram_map()

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
        edges = np.linspace(-span, span, self.bins + 1)
        rows = []
        for method, e in rel.items():
            counts = torch.histc(e, bins=self.bins, min=-span, max=span).cpu().numpy()
            rows.append(
                pd.DataFrame(
                    {
                        "method": method,
                        "left": edges[:-1],
                        "right": edges[1:],
                        "count": counts.astype(np.int64),
                    }
                )
            )
        return pd.concat(rows, ignore_index=True)

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
        rows = []
        for method in self.methods_shown():
            r = results.get((name, method))
            if r is None:
                continue
            w, w_hat = r.transfer_curve(TRANSFER_POINTS)
            rows.append(pd.DataFrame({"method": method, "w": w, "w_hat": w_hat}))
        return pd.concat(rows, ignore_index=True)

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
        frame = self.stats
        if frame is None:
            return
        shown = frame[["layer", "method", "rmse", "mean_abs", "max_abs", "rmse_rel"]].copy()
        shown.columns = ["layer", "method", "RMSE", "mean |err|", "max |err|", "RMSE / w_max"]
        for col in ["RMSE", "mean |err|", "max |err|", "RMSE / w_max"]:
            shown[col] = shown[col].map(lambda v: f"{v:.3g}")
        self._table.object = shown

    @param.depends("error", watch=True)
    def _show_error(self) -> None:
        self._alert.param.update(object=self.error, visible=bool(self.error))

    def _set_layer_options(self) -> None:
        options = [ALL_LAYERS, *self.weights]
        self.param.layer.objects = options
        if self.layer not in options:
            self.layer = ALL_LAYERS

    # -- plots ---------------------------------------------------------------------------------
    def _histogram_map(self) -> hv.DynamicMap:
        methods = self.methods_shown()
        return hv.DynamicMap(pn.bind(self._histogram_plot, self.param.histograms, methods=methods))

    def _histogram_plot(self, histograms: pd.DataFrame, methods: list[str]) -> hv.Overlay:
        layers = []
        for method in methods:
            part = histograms[histograms["method"] == method] if histograms is not None else None
            if part is None or part.empty:
                data = (np.zeros(2), np.zeros(1))
            else:
                data = (
                    np.append(part["left"].to_numpy(), part["right"].to_numpy()[-1]),
                    part["count"].to_numpy(),
                )
            layers.append(
                hv.Histogram(data, kdims=["error_rel"], vdims=["error_count"], label=method).opts(
                    color=METHOD_COLORS[method], alpha=0.45, line_alpha=0
                )
            )
        return hv.Overlay(layers).opts(
            title="Weight error (ŵ − w) / w_max",
            xlabel="error / w_max",
            ylabel="weights",
            legend_position="top_right",
            responsive=True,
            min_height=260,
        )

    def _transfer_plot(self, transfer: pd.DataFrame) -> hv.Overlay:
        name = self._transfer_layer()
        w_max = float(transfer["w"].abs().max()) if transfer is not None else 1.0
        ideal = hv.Curve(([-w_max, w_max], [-w_max, w_max]), "w", "w_hat", label="ideal").opts(
            color="black", line_dash="dotted"
        )
        curves = [ideal]
        for method in METHODS:
            part = transfer[transfer["method"] == method] if transfer is not None else None
            data = (
                (part["w"], part["w_hat"])
                if part is not None and not part.empty
                else (np.zeros(0), np.zeros(0))
            )
            curves.append(
                hv.Curve(data, "w", "w_hat", label=method).opts(
                    color=METHOD_COLORS[method], line_width=1.5
                )
            )
        return hv.Overlay(curves).opts(
            title=f"Transfer curve, {name}",
            xlabel="ideal weight w",
            ylabel="realised weight ŵ",
            legend_position="top_left",
            responsive=True,
            min_height=260,
        )
