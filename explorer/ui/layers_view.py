"""Layers view: which layer hurts most, and why (:func:`explorer.inspect.inspect_network`).

A bar per crossbar layer shows the accuracy lost with only that layer on a crossbar (the
rest in float); the table beside it holds the numbers that explain it (mapping error,
ADC clipping, output SNR split into the cells' and the converters' share); for the
chosen layer, the partial-sum histogram against the ADC range ±R and the conductance
heatmap of its first tile. The panes are built once; :meth:`LayersView.show` updates
their data from a report.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, DataTable, LinearColorMapper, Span, TableColumn
from bokeh.plotting import figure

from explorer.errors import InputError
from explorer.jobs import CANCELLED, DONE, Job, JobRunner
from explorer.jobtasks import inspect_task
from explorer.settings import CrossbarConfig
from explorer.ui.session import call_in_session, job_runner, on_session_end, served_document
from explorer.ui.settings import snapshot

TABLE_COLUMNS = [("name", "layer"), ("tiles", "tiles"), ("rmse_rel", "RMSE / w_max"),
                 ("clip", "ADC clip %"), ("snr", "output SNR dB"), ("cells", "cells SNR dB"),
                 ("conv", "converters SNR dB"),
                 ("alone", "alone on crossbar %")]


def _db(value: float | None) -> float:
    return float("nan") if value is None else round(value, 2)


def answer(report: dict[str, Any]) -> str:
    """The one-paragraph answer to "which layer hurts most, and why" (Markdown)."""
    from explorer.coverage import digital_warning

    worst = report.get("worst")
    head = (f"Crossbar accuracy **{100 * report['accuracy']:.2f} %**, float "
            f"{100 * report['float_accuracy']:.2f} % ({report['images']} images, trial "
            f"{report['trial']}).")
    warning = digital_warning(report) if "digital_layers" in report else None
    if warning is not None:
        head += f"\n\n{warning[0].upper()}{warning[1:]}."
    if worst is None:
        return head + " Sensitivity was not computed."
    if worst["drop"] <= 0:
        return head + " No layer alone on a crossbar costs accuracy."
    return (f"{head}\n\n**{worst['layer']} hurts most**: alone on a crossbar "
            f"{100 * worst['accuracy']:.2f} % ({100 * worst['drop']:.2f} points below float, "
            f"± {100 * worst['stderr']:.2f}). Why: {worst['reason']}.")


class LayersView(pn.viewable.Viewer):
    """Per-layer inspection of the network on the crossbar ``config``."""

    config = param.ClassSelector(class_=CrossbarConfig, instantiate=False,
                                 label="Crossbar configuration",
                                 doc="The crossbar the network is inspected on.")
    model = param.String(default="lenet5-mnist", label="Network",
                         doc="Pretrained name or checkpoint (no code models here).")
    data = param.String(default="", label="Dataset", doc="Empty: the network's own.")
    limit = param.Integer(default=500, bounds=(1, 100_000), label="Test images",
                          doc="Images scored for the sensitivity, 1 … 100000.")
    layer = param.Selector(default=None, objects=[], allow_None=True, label="Layer",
                           doc="The layer whose partial sums and conductances are shown.")
    report = param.Dict(default=None, allow_None=True, precedence=-1, label="Report",
                        doc="The last inspect_network report (plain data).")
    error = param.String(default="", label="Error", doc="Why the last inspection failed.")

    def __init__(self, config: CrossbarConfig, runner: JobRunner | None = None,
                 **params: Any) -> None:
        super().__init__(config=config, **params)
        self._answer = pn.pane.Markdown("Press **Inspect** to look inside every layer.")
        self._alert = pn.pane.Alert("", alert_type="danger", visible=False)
        self._button = pn.widgets.Button(label="Inspect", color="primary",
                                         css_classes=["layers-inspect"])
        self._button.on_click(lambda _: self.submit())
        self._runner = runner
        self._doc = served_document()
        self._owner = f"layers-{id(self)}"
        self.job: Job | None = None
        on_session_end(lambda: self.runner.cancel_owner(self._owner))
        self._layer = pn.widgets.Select.from_param(self.param.layer)
        self._bars_source = ColumnDataSource({"name": [], "drop": [], "clip": [], "snr": []})
        self._bars = figure(x_range=[], height=260, title="Accuracy lost, only this layer "
                            "analog (points)", tools="hover", tooltips=[
                                ("layer", "@name"), ("drop", "@drop{0.00}"),
                                ("ADC clip %", "@clip{0.00}"), ("SNR dB", "@snr{0.0}")],
                            sizing_mode="stretch_width")
        self._bars.vbar(x="name", top="drop", width=0.7, source=self._bars_source)
        self._table_source = ColumnDataSource({c: [] for c, _ in TABLE_COLUMNS})
        self._table = DataTable(source=self._table_source, index_position=None, height=220,
                                columns=[TableColumn(field=c, title=t)
                                         for c, t in TABLE_COLUMNS],
                                sizing_mode="stretch_width")
        self._hist_source = ColumnDataSource({"left": [], "right": [], "count": []})
        self._hist = figure(height=260, title="Partial sums against the ADC range ±R",
                            x_axis_label="partial sum (weight × input)", y_axis_label="count",
                            sizing_mode="stretch_width")
        self._hist.quad(left="left", right="right", top="count", bottom=0,
                        source=self._hist_source, fill_alpha=0.6)
        self._spans = [Span(location=0, dimension="height", line_color="#d62728",
                            line_dash="dashed", visible=False) for _ in range(2)]
        for span in self._spans:
            self._hist.add_layout(span)
        self._heat_source = ColumnDataSource({"image": [], "dw": [], "dh": []})
        self._mapper = LinearColorMapper(palette="Viridis256")
        self._heat = figure(height=260, title="Programmed conductance G⁺ of the first tile "
                            "(S; rows: word lines, columns: weights)",
                            sizing_mode="stretch_width", x_range=(0, 1), y_range=(0, 1))
        self._heat.image(image="image", x=0, y=0, dw="dw", dh="dh", source=self._heat_source,
                         color_mapper=self._mapper)
        self._layout = pn.Column(
            pn.pane.Markdown("### Layers: which layer hurts most, and why", margin=(0, 10)),
            pn.Row(self._button, self._layer), self._alert, self._answer,
            pn.Row(pn.pane.Bokeh(self._bars, sizing_mode="stretch_width"),
                   pn.pane.Bokeh(self._table, sizing_mode="stretch_width")),
            pn.Row(pn.pane.Bokeh(self._hist, sizing_mode="stretch_width"),
                   pn.pane.Bokeh(self._heat, sizing_mode="stretch_width")),
            sizing_mode="stretch_width")
        self.param.watch(lambda _: self._held(self._show_layer), "layer")

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    @property
    def runner(self) -> JobRunner:
        """The job runner the Inspect button queues on (the page's shared one)."""
        if self._runner is None:
            self._runner = job_runner()
        return self._runner

    def submit(self) -> Job | None:
        """Queue an inspection of a snapshot of the settings on the job runner (the
        Inspect button: the server's thread only queues); the panes update when it ends."""
        self._button.disabled = True
        self._answer.object = "Inspecting every layer…"
        try:
            job = self.runner.submit(inspect_task, self._settings(), label="inspect",
                                     owner=self._owner)
        except InputError as exc:
            self._fail(str(exc))
            return None
        self.job = job
        job.param.watch(lambda _e: call_in_session(self._doc, partial(self._finish, job)),
                        ["status"])
        if job.finished:
            call_in_session(self._doc, partial(self._finish, job))
        return job

    def _settings(self) -> dict[str, Any]:
        """The network, images and a snapshot of the crossbar as a settings file's data."""
        from explorer.settings import Settings, WorkloadSettings

        work = WorkloadSettings(model=self.model, data=self.data, limit=self.limit)
        return Settings(crossbar=snapshot(self.config), workload=work).to_dict()

    def _finish(self, job: Job) -> None:
        if job is not self.job or not job.finished:
            return
        self._button.disabled = False
        if job.status == DONE:
            self.error = ""
            self._alert.visible = False
            self.show(job.result)
        elif job.status == CANCELLED:
            self._answer.object = "Inspection cancelled."
        else:
            self._fail(job.error)

    def _fail(self, message: str) -> None:
        self._button.disabled = False
        self.error = message
        self._alert.object, self._alert.visible = self.error, True

    def run(self) -> dict[str, Any] | None:
        """Inspect here and now (scripts, notebooks, tests) and show it; None on bad input."""
        try:
            report = inspect_task(self._settings(), progress=lambda *_: None, cancel=None)
        except InputError as exc:
            self._fail(str(exc))
            return None
        self.error = ""
        self._alert.visible = False
        self.show(report)
        return report

    @staticmethod
    def _held(fn: Any, *args: Any) -> None:
        with pn.io.hold():  # Bokeh models changed from a callback: as one held patch
            fn(*args)

    def show(self, report: dict[str, Any]) -> None:
        """Update every pane from an :func:`~explorer.inspect.inspect_network` report."""
        self._held(self._show, report)

    def _show(self, report: dict[str, Any]) -> None:
        self.report = report
        layers = report["layers"]
        names = [layer["name"] for layer in layers]
        self._answer.object = answer(report)
        drops = [100 * layer["sensitivity"]["drop"] if "sensitivity" in layer else 0.0
                 for layer in layers]
        self._bars.x_range.factors = names
        self._bars_source.data = {"name": names, "drop": drops,
                                  "clip": [100 * layer["clip_rate"] for layer in layers],
                                  "snr": [_db(layer["snr_db"]) for layer in layers]}
        self._table_source.data = {
            "name": names, "tiles": [layer["tiles"] for layer in layers],
            "rmse_rel": [round(layer["mapping"]["rmse_rel"], 4) for layer in layers],
            "clip": [round(100 * layer["clip_rate"], 3) for layer in layers],
            "snr": [_db(layer["snr_db"]) for layer in layers],
            "cells": [_db(layer["snr_cells_db"]) for layer in layers],
            "conv": [_db(layer["snr_converters_db"]) for layer in layers],
            "alone": [round(100 * layer["sensitivity"]["accuracy"], 2)
                      if "sensitivity" in layer else None for layer in layers]}
        worst = (report.get("worst") or {}).get("layer")
        self.param.layer.objects = names
        chosen = worst if worst in names else (names[0] if names else None)
        if self.layer == chosen:
            self._show_layer()
        else:
            self.layer = chosen

    def _show_layer(self) -> None:
        if self.report is None or self.layer is None:
            return
        layer = next(x for x in self.report["layers"] if x["name"] == self.layer)
        hist = layer["partial_sums"]
        edges = hist["edges"]
        self._hist_source.data = {"left": edges[:-1], "right": edges[1:],
                                  "count": hist["counts"]}
        adc = hist["adc_range"]
        for span, sign in zip(self._spans, (-1, 1), strict=True):
            span.visible = adc is not None
            span.location = sign * (adc or 0.0)
        if layer["heatmaps"]:
            tile = np.asarray(layer["heatmaps"][0]["g_pos"], dtype=float)
            rows, cols = tile.shape
            self._heat_source.data = {"image": [tile], "dw": [cols], "dh": [rows]}
            self._heat.x_range.end, self._heat.y_range.end = cols, rows
            self._mapper.low, self._mapper.high = float(tile.min()), float(tile.max())
