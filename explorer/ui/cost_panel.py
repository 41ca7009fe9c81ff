"""Cost panel: energy per image stacked by component, latency, area and TOPS/W of the
current crossbar (:mod:`explorer.cost`), beside the accuracy.

No evaluation, but on every change of the crossbar settings (converters, tiles, bit
slicing, node, ADC type …) or the device the network is mapped and calibrated on a few
training images (``calibration_images``; the same path as ``explorer cost``): with a job
runner (the page's) that work is :func:`explorer.jobtasks.cost_task` on a worker, the
server's thread only snapshots the settings; a newer change cancels a queued older one.
Without a runner (scripts, notebooks) it is computed here and now. The panes are built
once; a result only replaces the plot's data and the summary's text.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import panel as pn
import param
from bokeh.models import ColumnDataSource, HoverTool
from bokeh.plotting import figure

from explorer.cost import COMPONENTS, CostReport
from explorer.crossbar import CrossbarConfig
from explorer.errors import InputError
from explorer.jobs import DONE, FINISHED, Job
from explorer.jobtasks import cost_task
from explorer.ui.session import call_in_session, on_session_end, served_document

log = logging.getLogger(__name__)

COMPONENT_COLORS = {"adc": "#d62728", "dac_wl": "#ff7f0e", "array": "#1f77b4",
                    "shift_add": "#2ca02c"}
COMPONENT_LABELS = {"adc": "ADC", "dac_wl": "DAC + word-line drivers", "array": "array read",
                    "shift_add": "shift-add + accumulation"}


class CostPanel(pn.viewable.Viewer):
    """Energy (pJ per image, stacked by component, per layer), latency, area of ``config``
    with ``model``'s network; recomputed whenever ``config`` or its device changes."""

    config = param.ClassSelector(class_=CrossbarConfig, doc="The crossbar whose cost is shown.")
    model = param.String(default="lenet5-mnist", doc="Network name or checkpoint path.")
    data = param.String(default="", doc="Dataset of the calibration images ('' = the network's).")
    calibration_images = param.Integer(
        default=64, bounds=(1, 10000),
        doc="Training images whose layer inputs give the data-dependent energies.")
    report = param.Parameter(default=None, doc="The last CostReport (None until computed).")
    error = param.String(default="", doc="Why the last update failed ('' when it did not).")
    job = param.ClassSelector(class_=Job, default=None, allow_None=True, precedence=-1,
                              doc="The latest cost job (None without a runner).")
    live = param.Boolean(default=True, precedence=-1,
                         doc="Recompute on every change. Off (a section nobody has opened "
                             "yet): changes only mark the figure stale, and switching it "
                             "on computes the current settings once.")

    def __init__(self, config: CrossbarConfig | None = None, runner: Any = None,
                 **params: Any) -> None:
        super().__init__(config=config if config is not None else CrossbarConfig(), **params)
        self.runner = runner
        self._doc = served_document()
        self._owner = f"cost-{id(self)}"
        if runner is not None:
            on_session_end(lambda: runner.cancel_owner(self._owner))
        self.source = ColumnDataSource({"layer": [], **{k: [] for k in COMPONENTS}})
        self.figure = self._figure()
        self.summary = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.config.param.watch(self._changed, [p for p in self.config.param if p != "name"])
        self.config.device.param.watch(self._changed, [p for p in self.config.device.param
                                                       if p != "name"])
        self.param.watch(self._changed, ["model", "data", "calibration_images"])
        self._stale = False
        self._refresh()

    def _figure(self) -> Any:
        fig = figure(x_range=[], height=260, sizing_mode="stretch_width",
                     title="Energy per image by component (pJ)", toolbar_location=None,
                     y_axis_label="pJ per image")
        renderers = fig.vbar_stack(list(COMPONENTS), x="layer", width=0.7, source=self.source,
                                   color=[COMPONENT_COLORS[k] for k in COMPONENTS],
                                   legend_label=[COMPONENT_LABELS[k] for k in COMPONENTS])
        fig.add_tools(HoverTool(renderers=renderers, tooltips=[
            ("layer", "@layer"), *[(COMPONENT_LABELS[k], f"@{k}{{0,0.0}} pJ")
                                   for k in COMPONENTS]]))
        fig.legend.location = "top_right"
        fig.legend.label_text_font_size = "8pt"
        fig.xgrid.grid_line_color = None
        return fig

    def _changed(self, *events: Any) -> None:
        for event in events:  # a new device object: watch its parameters instead
            if event.name == "device" and event.obj is self.config:
                event.new.param.watch(self._changed, [p for p in event.new.param
                                                      if p != "name"])
        self._refresh()

    def _refresh(self) -> None:
        if self.live:
            self.update()
        else:  # nobody looks: no job for every change of every session
            self._stale = True

    @param.depends("live", watch=True)
    def _on_live(self) -> None:
        if self.live and self._stale:
            self._stale = False
            self.update()

    def settings_dict(self) -> dict[str, Any]:
        """What a cost job gets: the crossbar and the network as a settings file's data."""
        from explorer.settings import Settings, WorkloadSettings

        work = WorkloadSettings(model=self.model, data=self.data,
                                calibration_images=self.calibration_images)
        return Settings(crossbar=self.config, workload=work).to_dict()

    def compute(self) -> CostReport:
        """The cost of the current settings, here and now (maps and calibrates the network)."""
        return cost_task(self.settings_dict(), progress=lambda *_: None, cancel=None)

    def update(self) -> None:
        """Recompute and show (on the runner when there is one); a bad setting shows its
        one-line message instead."""
        if self.runner is None:
            try:
                report = self.compute()
            except (InputError, ValueError) as exc:
                self._fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                return
            self.show(report)
            return
        try:
            settings = self.settings_dict()
        except (InputError, ValueError) as exc:
            self._fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return
        if self.job is not None and not self.job.finished:
            self.job.cancel()  # superseded: only the newest settings are worth costing
        try:
            job = self.runner.submit(cost_task, settings, label="cost", owner=self._owner)
        except InputError as exc:
            self._fail(str(exc))
            return
        self.job = job
        job.param.watch(lambda _e: call_in_session(self._doc, partial(self._finish, job)),
                        ["status"])
        if job.finished:
            call_in_session(self._doc, partial(self._finish, job))

    def _finish(self, job: Job) -> None:
        if job is not self.job or job.status not in FINISHED:
            return  # a newer job replaced it
        if job.status == DONE:
            self.show(job.result)
        elif job.error:
            kind, _, message = job.error.partition(": ")
            self._fail(message if kind in ("InputError", "ValueError") and message
                       else job.error)

    def _fail(self, message: str) -> None:
        self.error = message
        self.summary.object = f"**Cost not available:** {self.error}"

    def show(self, report: CostReport) -> None:
        """Show ``report`` in the plot and the summary."""
        self.error = ""
        self.report = report
        names = list(report.layers)
        with pn.io.hold():  # Bokeh models changed from a widget callback: as one held patch
            self.figure.x_range.factors = names
            self.source.data = {"layer": names,
                                **{k: [report.layers[n].energy_pj[k] for n in names]
                                   for k in COMPONENTS}}
            self.summary.object = self._text(report)

    @staticmethod
    def _text(report: CostReport) -> str:
        s = report.settings
        parts = " · ".join(f"{COMPONENT_LABELS[k]} {v:,.1f}"
                           for k, v in report.energy_breakdown_pj.items())
        notes = "".join(f"\n\n*{note}*" for note in report.notes)
        return (f"**{report.energy_pj_per_image:,.1f} pJ per image** ({parts}) · "
                f"latency **{report.latency_ns_per_image / 1e3:,.2f} µs** · "
                f"area **{report.area_mm2:.4f} mm²** · **{report.tops_per_w:,.1f} TOPS/W** · "
                f"{report.tops_per_mm2:,.2f} TOPS/mm²  \n"
                f"{s['tech_node']} nm, {s['adc_type'].upper()} ADC, {s['cols_per_adc']} "
                "columns per ADC; DNN+NeuroSim V1.3 component models (buffers, interconnect "
                f"and leakage not counted; see docs/cost.md){notes}")

    def __panel__(self) -> Any:
        return pn.Column("### Cost per image", self.summary,
                         pn.pane.Bokeh(self.figure, sizing_mode="stretch_width"),
                         sizing_mode="stretch_width")


__all__ = ["CostPanel"]
