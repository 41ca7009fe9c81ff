"""Dashboard view of time and wires (issue 15): a log-scale time control, accuracy
against time, and the relative current loss of every tile.

:class:`TimeWiresView` takes the dashboard's :class:`~explorer.settings.CrossbarConfig`;
its time slider moves ``time_s`` on a log scale (1 s … 10 years) and follows it back. The
plots are built once and filled later: :meth:`TimeWiresView.add_time` adds one point of
accuracy against time (call it from a background job as each time finishes, or
:meth:`show_times` with ``EvaluationResult.times``); :meth:`show_losses` draws the relative
current loss per tile of a programmed :class:`~explorer.crossbar.CrossbarModel`.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import panel as pn
import param
from bokeh.models import ColumnDataSource, LinearColorMapper, Whisker
from bokeh.plotting import figure

from explorer.errors import InputError
from explorer.jobs import CANCELLED, DONE, Job, JobRunner
from explorer.ui.session import call_in_session, job_runner, on_session_end, served_document
from explorer.ui.settings import snapshot

YEAR = 365.25 * 24 * 3600
LOG_MIN, LOG_MAX = 0.0, math.log10(10 * YEAR)
"""Slider range in log10(seconds): 1 s … 10 years."""
_UNITS = ((YEAR, "years"), (86400.0, "days"), (3600.0, "h"), (60.0, "min"), (1.0, "s"))
TIMES_S = (1.0, 3600.0, 86400.0, 30 * 86400.0, YEAR, 10 * YEAR)
"""The times after programming the *Accuracy over time* job evaluates (1 s … 10 years)."""


def time_label(seconds: float) -> str:
    """``seconds`` in the largest unit that keeps it >= 1 (``2.5 days``, ``1 years``)."""
    if seconds <= 0:
        return "0 s (right after programming)"
    for size, unit in _UNITS:
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


class TimeWiresView(pn.viewable.Viewer):
    """Time control, accuracy-against-time plot and tile loss heatmap for ``config``."""

    config = param.Parameter(doc="The dashboard's CrossbarConfig (time_s is linked).")

    def __init__(self, config: Any, runner: JobRunner | None = None,
                 workload: Any = None, **params: Any) -> None:
        super().__init__(config=config, **params)
        self._runner = runner
        self._workload = workload  # () -> explorer.settings.WorkloadSettings (the page's)
        self._doc = served_document()
        self._owner = f"time-{id(self)}"
        self.job: Job | None = None
        self.button = pn.widgets.Button(label="Accuracy over time (1 s … 10 years)",
                                        color="primary", css_classes=["time-run"])
        self.button.on_click(lambda _e: self.submit())
        self.status = pn.pane.Markdown("", css_classes=["time-status"])
        on_session_end(lambda: self.runner.cancel_owner(self._owner))
        start = math.log10(config.time_s) if config.time_s >= 1 else LOG_MIN
        self.slider = pn.widgets.FloatSlider(
            label="Time after programming (log₁₀ s)", start=LOG_MIN, end=round(LOG_MAX, 3),
            step=0.01, value=min(start, LOG_MAX), css_classes=["time-log"],
            format="0.00")
        self.label = pn.pane.Markdown(self._label_text(), css_classes=["time-label"])
        self._syncing = False
        self.slider.param.watch(self._push_time, "value")
        config.param.watch(self._pull_time, "time_s")

        self.points = ColumnDataSource({"time_s": [], "accuracy": [], "low": [], "high": []})
        plot = figure(x_axis_type="log", width=420, height=280, title="Accuracy against time",
                      x_axis_label="time after programming (s)", y_axis_label="accuracy (%)",
                      tools="hover,save,reset", tooltips=[("t", "@time_s s"),
                                                          ("accuracy", "@accuracy{0.00} %")])
        plot.line("time_s", "accuracy", source=self.points, line_width=2)
        plot.scatter("time_s", "accuracy", source=self.points, size=6)
        plot.add_layout(Whisker(source=self.points, base="time_s", upper="high", lower="low"))
        self.accuracy_pane = pn.pane.Bokeh(plot)

        self.tiles = ColumnDataSource({"x": [], "y": [], "loss": [], "layer": [], "tile": []})
        heat = figure(width=420, height=280, title="Relative current loss per tile (IR drop)",
                      x_axis_label="column tile", y_axis_label="layer / row chunk",
                      tools="hover,save", tooltips=[("layer", "@layer"), ("tile", "@tile"),
                                                    ("loss", "@loss{0.00} %")])
        self.colors = LinearColorMapper(palette="Viridis256", low=0, high=1)
        heat.rect("x", "y", width=1, height=1, source=self.tiles,
                  fill_color={"field": "loss", "transform": self.colors}, line_color=None)
        self.loss_pane = pn.pane.Bokeh(heat)
        self.loss_note = pn.pane.Markdown("", css_classes=["loss-note"])

    # -- time -----------------------------------------------------------------------------

    def _label_text(self) -> str:
        return f"**t = {time_label(self.config.time_s)}**"

    def _push_time(self, event: param.parameterized.Event) -> None:
        if self._syncing:  # the slider follows the config: nothing to push back
            return
        seconds = float(f"{10 ** event.new:.6g}")  # no 86399.99999 from the log scale
        if not math.isclose(seconds, self.config.time_s, rel_tol=1e-9):
            self.config.time_s = seconds
        self.label.object = self._label_text()

    def _pull_time(self, event: param.parameterized.Event) -> None:
        value = math.log10(event.new) if event.new >= 1 else LOG_MIN
        value = min(value, self.slider.end)
        if abs(self.slider.value - value) > 1e-9:
            self._syncing = True
            try:
                self.slider.value = value
            finally:
                self._syncing = False
        self.label.object = self._label_text()

    # -- accuracy against time ----------------------------------------------------------------

    def clear_times(self) -> None:
        """Empty the accuracy-against-time plot (a new run begins)."""
        self.points.data = {"time_s": [], "accuracy": [], "low": [], "high": []}

    def add_time(self, time_s: float, accuracy_mean: float, accuracy_std: float = 0.0) -> None:
        """Add one point (accuracies as fractions) – e.g. from a job's progress callback."""
        mean, std = 100 * accuracy_mean, 100 * accuracy_std
        self.points.stream({"time_s": [max(time_s, 1e-3)], "accuracy": [mean],
                            "low": [mean - std], "high": [mean + std]})

    def show_times(self, records: list[dict[str, Any]]) -> None:
        """All points of ``EvaluationResult.times`` (``time_s``, ``accuracy_mean``, ``_std``)."""
        self.clear_times()
        for record in sorted(records, key=lambda r: r["time_s"]):
            self.add_time(record["time_s"], record["accuracy_mean"], record["accuracy_std"])

    # -- IR drop ----------------------------------------------------------------------------

    def show_losses(self, analog: Any) -> None:
        """Relative current loss (%) of every tile of ``analog`` at full-scale input."""
        from explorer.jobtasks import tile_losses

        self.show_loss_data(tile_losses(analog))

    def show_loss_data(self, data: dict[str, list[Any]]) -> None:
        """Draw :func:`tile_losses` data."""
        losses = data["loss"]
        self.tiles.data = data
        self.colors.high = max(losses, default=1.0) or 1.0
        self.loss_note.object = (f"largest loss {max(losses):.2f} % of the ideal current"
                                 if losses else "no IR drop modelled (ir_drop = none)")

    # -- the background job ---------------------------------------------------------------

    @property
    def runner(self) -> JobRunner:
        """The job runner the button queues on (the page's shared one)."""
        if self._runner is None:
            self._runner = job_runner()
        return self._runner

    def submit(self) -> Job | None:
        """Queue accuracy at :data:`TIMES_S` for a snapshot of the settings
        (:func:`explorer.jobtasks.time_task`); with the in-process runner the plot fills in as
        each time finishes, on Dask workers when the job ends (with the progress shown
        meanwhile); the tile-loss heatmap at the end."""
        from explorer.settings import Settings, WorkloadSettings

        if self.config.drift == "none" and self.config.ir_drop == "none":
            self.status.object = ("Choose a drift model (and/or IR drop) first: without them "
                                  "every time gives the same accuracy.")
            return None
        from explorer.jobtasks import time_task

        work = self._workload() if self._workload is not None else WorkloadSettings(limit=500)
        settings = Settings(crossbar=snapshot(self.config), workload=work).to_dict()
        self.clear_times()
        extra = {}
        if isinstance(self.runner, JobRunner):  # in this process: points as they finish
            extra["on_time"] = lambda r: call_in_session(self._doc, partial(self._add_record, r))
        try:
            job = self.runner.submit(time_task, settings, list(TIMES_S),
                                     label="accuracy over time", owner=self._owner, **extra)
        except InputError as exc:
            self.status.object = str(exc)
            return None
        self.job = job
        self.button.disabled = True
        self.status.object = "Queued…"
        job.param.watch(lambda _e: call_in_session(self._doc, partial(self._finish, job)),
                        ["status"])
        job.param.watch(lambda _e: call_in_session(self._doc, partial(self._progress, job)),
                        ["message"])
        if job.finished:
            call_in_session(self._doc, partial(self._finish, job))
        return job

    def _progress(self, job: Job) -> None:
        if job is self.job and not job.finished:
            self.status.object = f"{job.message} ({job.progress:.0%})"

    def _add_record(self, record: dict[str, Any]) -> None:
        self.add_time(record["time_s"], record["accuracy_mean"], record["accuracy_std"])
        self.status.object = f"t = {time_label(record['time_s'])} done…"

    def _finish(self, job: Job) -> None:
        if job is not self.job or not job.finished:
            return
        self.button.disabled = False
        if job.status == DONE:
            self.show_times(job.result["times"])
            self.show_loss_data(job.result["losses"])
            self.status.object = ""
        elif job.status == CANCELLED:
            self.status.object = "Cancelled."
        else:
            self.status.object = f"Failed: {job.error}"

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            pn.pane.Markdown("### Time and wires", margin=(0, 10)),
            pn.Row(self.slider, self.label),
            pn.Row(self.button, self.status),
            pn.Row(self.accuracy_pane, pn.Column(self.loss_pane, self.loss_note)),
            css_classes=["time-wires"])


__all__ = ["TIMES_S", "TimeWiresView", "time_label"]
