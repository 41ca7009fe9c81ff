"""Programming view: the spread one programming trial adds to the mapped weights.

For the current device, mapping and noise settings, every layer is mapped
(:func:`explorer.mapping.map_weights`, or bit-sliced) and its cells programmed once with
the trial's seed (:class:`explorer.nonideal.NonIdealities`: the programming model,
device-to-device spread and stuck-at faults). The histogram overlays the weight error of
the noise-free mapping and of the programmed cells (in units of each layer's w_max); the
table gives both RMSEs and the programming pulses per layer.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param
import torch
from bokeh.models import ColumnDataSource, DataTable, NumberFormatter, Range1d, TableColumn
from bokeh.plotting import figure

from explorer.crossbar import trial_seed
from explorer.device import DeviceModel
from explorer.errors import InputError
from explorer.mapping import map_weights
from explorer.nonideal import NonIdealities
from explorer.settings.noise import NoiseSettings
from explorer.ui.deferred import Deferred
from explorer.ui.mapping_view import histogram_frame, one_torch_thread, show_histograms
from explorer.ui.plot_legend import fixed_legend
from explorer.ui.widgets import lean_glyphs, show_table_data

KINDS = {"mapped": "#1f77b4", "programmed": "#ff7f0e"}
WATCHED = ["mapping", "scheme", "scale", "snap_codebook", "weight_slices", "bits_per_cell",
           "weight_bits", *NoiseSettings.knobs()]
DEVICE_WATCHED = ["g_min", "g_max", "levels", "nonlinearity", "source", "table", "points_g",
                  "points_pulses", "c2c_sigma", "level_std"]
TABLE_COLUMNS = [("layer", "layer"), ("rmse_mapped", "RMSE mapped / w_max"),
                 ("rmse_programmed", "RMSE programmed / w_max"), ("pulses", "pulses")]
NUMBER_FORMATS = {"rmse_mapped": "0.0000", "rmse_programmed": "0.0000",
                  "pulses": "0,0"}  # a count: 12,345, not 12345.0000


class ProgrammingView(pn.viewable.Viewer):
    """How far one programming trial moves the weights from their mapped values.

    ``settings`` is the :class:`~explorer.crossbar.CrossbarConfig` (mapping and noise
    knobs); ``weights`` maps layer names to weight tensors.
    """

    device = param.ClassSelector(class_=DeviceModel, instantiate=False, label="Device",
                                 doc="The device whose cells are programmed.")
    settings = param.ClassSelector(class_=param.Parameterized, instantiate=False,
                                   label="Settings", doc="Mapping and noise knobs.")
    weights = param.Dict(default={}, precedence=-1, label="Weights",
                         doc="Layer name -> weight tensor.")
    trial = param.Integer(default=0, bounds=(0, None), label="Trial",
                          doc="Monte-Carlo trial whose programming draw is shown.")
    bins = param.Integer(default=61, bounds=(8, 400), label="Histogram bins",
                         doc="Bins over ± the largest relative error.")
    histograms = param.DataFrame(default=None, precedence=-1, label="Histograms",
                                 doc="kind (mapped / programmed), left, right, count; error in "
                                     "units of each layer's w_max.")
    stats = param.DataFrame(default=None, precedence=-1, label="Statistics",
                            doc="layer, rmse_mapped, rmse_programmed (relative to w_max), "
                                "pulses (programming pulses of the layer's cells).")
    error = param.String(default="", label="Error", doc="Why the last update failed.")
    compute_ms = param.Number(default=0.0, bounds=(0, None), precedence=-1,
                              label="Compute time (ms)", doc="Wall time of the last update.")

    def __init__(self, device: DeviceModel, settings: param.Parameterized,
                 weights: dict[str, torch.Tensor], **params: Any) -> None:
        super().__init__(device=device, settings=settings, weights=dict(weights), **params)
        self._source = {kind: ColumnDataSource({"left": [], "right": [], "top": []},
                                               tags=["programming-histogram"])
                        for kind in KINDS}
        fig = figure(height=280, sizing_mode="stretch_width", title="Weight error, one trial",
                     x_axis_label="error / w_max", y_axis_label="weights",
                     toolbar_location=None,  # ranges set with the data (see MappingView)
                     x_range=Range1d(-1, 1), y_range=Range1d(0, 1))
        renderers = {kind: fig.quad(left="left", right="right", top="top", bottom=0,
                                    source=self._source[kind], fill_color=color,
                                    fill_alpha=0.45, line_color=None)
                     for kind, color in KINDS.items()}
        self._figure = lean_glyphs(fig)
        fixed_legend(fig, renderers)  # not redrawn with every new histogram
        self._table_source = ColumnDataSource({c: [] for c, _ in TABLE_COLUMNS})
        table = DataTable(source=self._table_source, index_position=None, height=200,
                          sizing_mode="stretch_width", css_classes=["programming-table"],
                          columns=[TableColumn(field=c, title=t, formatter=NumberFormatter(
                                       format=NUMBER_FORMATS[c])) if c in NUMBER_FORMATS
                                   else TableColumn(field=c, title=t)
                                   for c, t in TABLE_COLUMNS])
        self._table = table
        self._alert = pn.pane.Alert("", alert_type="danger", visible=False)
        self._layout = pn.Column(
            pn.pane.Markdown("### Programming spread", margin=(0, 10)),
            pn.widgets.IntInput.from_param(self.param.trial, width=120),
            self._alert, pn.pane.Bokeh(fig, sizing_mode="stretch_width"),
            pn.pane.Bokeh(table, sizing_mode="stretch_width"), sizing_mode="stretch_width")
        self.recompute()
        # after the mapping histograms: a settings change recomputes this view on the next
        # tick of a served page's loop (its patch then follows theirs)
        self._deferred = Deferred(self.recompute)
        watched = [name for name in WATCHED if name in settings.param]
        settings.param.watch(self._on_change, watched)
        device.param.watch(self._on_change, [n for n in DEVICE_WATCHED if n in device.param])

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    # -- computation -------------------------------------------------------------------
    def recompute(self) -> None:
        """Map and program every layer once; refresh the histograms and the table."""
        start = time.perf_counter()
        # all of it on one torch thread: the histogram's torch calls too (outside, on a
        # busy 2-core server they took 74 ms of a 6 ms update, threads waiting for a core)
        with one_torch_thread():
            try:
                errors, rows = self._program_all()
            except (InputError, ValueError, RuntimeError) as exc:
                self.error = f"Programming failed: {exc}"
                return
            span = max(float(e.abs().max()) for pair in errors.values() for e in pair) or 1e-3
            counts = {kind: torch.histc(torch.cat([pair[index] for pair in errors.values()]),
                                        bins=self.bins, min=-span, max=span).numpy()
                      for index, kind in enumerate(KINDS)}
        histograms = histogram_frame("kind", counts, np.linspace(-span, span, self.bins + 1))
        with pn.io.hold():
            self.param.update(histograms=histograms, stats=pd.DataFrame(rows), error="",
                              compute_ms=(time.perf_counter() - start) * 1e3)
            self._update_plots()

    def _program_all(self) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], list[dict]]:
        s = self.settings
        if hasattr(s, "validate"):
            s.validate()  # the crossbar's cross-parameter rules (slicing, measured σ, …)
        noise = NonIdealities(**{n: getattr(s, n) for n in NoiseSettings.knobs()})
        generator = torch.Generator().manual_seed(trial_seed(s.seed, self.trial, 0))
        errors, rows = {}, []
        for name, w in self.weights.items():
            m = self._map(w)
            pulses = 0
            if noise.draws_programming(self.device):
                g_pos, counts = noise.program_cells(m.g_pos.float(), self.device, generator,
                                                    _pulses(m.indices))
                pulses += 0 if counts is None else int(counts.sum())
                if m.neg_is_reference:
                    g_neg = m.g_neg
                else:
                    g_neg, counts = noise.program_cells(m.g_neg.float(), self.device,
                                                        generator, _pulses(m.indices_neg))
                    pulses += 0 if counts is None else int(counts.sum())
            else:
                g_pos, g_neg = m.g_pos, m.g_neg
            w_f = m.w.float()
            mapped = (m.error.reshape(-1) / m.w_max).float()
            programmed = ((m.to_weight(g_pos, g_neg) - w_f).reshape(-1) / m.w_max).float()
            errors[name] = (mapped, programmed)
            rows.append({"layer": name, "rmse_mapped": float(mapped.square().mean().sqrt()),
                         "rmse_programmed": float(programmed.square().mean().sqrt()),
                         "pulses": pulses})
        return errors, rows

    def _map(self, w: torch.Tensor) -> Any:
        s = self.settings
        if getattr(s, "weight_slices", 1) > 1:
            from explorer.slicing import slice_weights

            return slice_weights(w, self.device, s.weight_slices, s.bits_per_cell,
                                 s.weight_bits, method=s.mapping, scheme=s.scheme)
        return map_weights(w, self.device, method=s.mapping, scheme=s.scheme, scale=s.scale,
                           snap=bool(getattr(s, "snap_codebook", False))
                           and s.mapping == "generalized")

    # -- watchers ----------------------------------------------------------------------
    def _on_change(self, *_events: param.parameterized.Event) -> None:
        self._deferred()

    @param.depends("trial", "bins", "weights", watch=True)
    def _on_view_change(self) -> None:
        self.recompute()

    @param.depends("error", watch=True)
    def _show_error(self) -> None:
        self._alert.object = self.error
        self._alert.visible = bool(self.error)

    def _update_plots(self) -> None:
        with pn.io.hold():  # Bokeh models changed from a widget callback: one held patch
            show_histograms(self._figure, self._source, self.histograms, "kind")
            self._table_source = show_table_data(  # redrawn: same rows, new numbers
                self._table, {c: self.stats[c].to_numpy() for c, _ in TABLE_COLUMNS})

def _pulses(indices: torch.Tensor | None) -> torch.Tensor | None:
    return None if indices is None else indices.float()
