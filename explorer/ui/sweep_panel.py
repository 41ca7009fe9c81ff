"""Sweep panel: accuracy over a small grid of two parameters, the heatmap filling as the
grid points finish.

The work is :func:`explorer.sweep.run_sweep` (the same code as ``explorer sweep``) in
:func:`explorer.jobtasks.sweep_task`, run as one job of the process's job runner
(:mod:`explorer.jobs`: a Dask worker when served), one grid point after another; the
finished rows come back as the job's partial results. The base configuration is the
dashboard's settings at the moment *Run sweep* is pressed; bad values are refused before
anything is queued and the previous results stay on screen.

HoloViews (the plots, :mod:`explorer.ui.sweep_plots`) is imported when the first sweep
is queued, not with the page: it took 0.7 s of the page's start-up.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import panel as pn
import param

from explorer.crossbar import CrossbarConfig
from explorer.errors import InputError
from explorer.jobs import CANCELLED, DONE, FAILED, Job, JobRunner
from explorer.jobtasks import sweep_task
from explorer.sweep import (
    SweepSpec,
    make_grid,
    results_frame,
    sweep_parameters,
)
from explorer.ui.job_view import JobView
from explorer.ui.settings import snapshot
from explorer.ui.workload import WorkloadSettings

log = logging.getLogger(__name__)

MAX_PANEL_POINTS = 64
"""Largest grid the dashboard runs (bigger sweeps: ``explorer sweep`` on Dask)."""
NO_SECOND = "(none)"


sweep_job = sweep_task
"""The work of one sweep (:func:`explorer.jobtasks.sweep_task`; runs on a worker)."""


class SweepPanel(pn.viewable.Viewer, JobView, WorkloadSettings):
    """Run a grid of one or two parameters on the crossbar; heatmap and table of results
    (``workload``, ``limit`` and ``trials``: :class:`~explorer.ui.workload.WorkloadSettings`,
    per grid point and within smaller bounds)."""

    config = param.ClassSelector(
        class_=CrossbarConfig,
        instantiate=False,
        label="Crossbar configuration",
        doc="The dashboard's configuration: the values the grid does not vary (snapshotted).",
    )
    x = param.Selector(
        default="levels",
        objects=sweep_parameters(),
        label="First parameter",
        doc="Parameter varied along the heatmap's x axis.",
    )
    x_values = param.String(
        default="4, 8, 16, 32",
        label="First parameter's values",
        doc="Comma-separated values ('ideal' for ideal converter bits).",
    )
    y = param.Selector(
        default="nonlinearity",
        objects=[NO_SECOND, *sweep_parameters()],
        label="Second parameter",
        doc="Parameter varied along the heatmap's y axis, or (none) for a 1-D sweep.",
    )
    y_values = param.String(
        default="0, 1, 3, 6",
        label="Second parameter's values",
        doc="Comma-separated values of the second parameter.",
    )
    limit = param.Integer(
        default=200,
        bounds=(10, 1000),
        doc="Test images evaluated per grid point and trial (first N of the test split).",
    )
    trials = param.Integer(
        default=1,
        bounds=(1, 10),
        doc="Monte-Carlo trials per grid point (a new programming draw each, one row each).",
    )
    run = param.Event(label="Run sweep", doc="Queue the sweep with the current settings.")
    cancel = param.Event(label="Cancel", doc="Stop this session's sweep.")
    frame = param.DataFrame(
        default=None,
        precedence=-1,
        label="Results",
        doc="One row per finished evaluation (grid point × trial), as explorer sweep writes.",
    )
    job = param.ClassSelector(
        class_=Job,
        default=None,
        allow_None=True,
        precedence=-1,
        label="Current job",
        doc="The latest sweep job.",
    )
    status = param.String(default="", label="Status", doc="What the sweep is doing.")
    error = param.String(
        default="", label="Error", doc="Why the last request was refused or failed; empty if fine."
    )

    def __init__(
        self,
        config: CrossbarConfig,
        runner: JobRunner | None = None,
        owner: str | None = None,
        **params: Any,
    ) -> None:
        params.setdefault("frame", results_frame([], []))
        super().__init__(config=config, **params)
        self._init_jobs(runner, owner, "sweep")
        self._axes: dict[str, list[Any]] = {}
        self._sweeps = 0  # number of the latest sweep

        self._run_button = pn.widgets.Button.from_param(
            self.param.run, color="primary", css_classes=["sweep-run"]
        )
        self._cancel_button = pn.widgets.Button.from_param(
            self.param.cancel, color="warning", disabled=True
        )
        self._progress = pn.indicators.Progress(
            value=0, max=1000, sizing_mode="stretch_width", visible=False
        )
        self._status = pn.pane.Markdown("", margin=(0, 10))
        self._alert = pn.pane.Alert("", alert_type="danger", visible=False)
        # the HoloViews pane (it imports HoloViews) joins this slot with the first figure
        self._plot: pn.pane.HoloViews | None = None
        self._plot_slot = pn.Column(sizing_mode="stretch_width")
        self._table = pn.pane.DataFrame(
            None, index=False, sizing_mode="stretch_width", max_height=300
        )
        self._download = pn.widgets.FileDownload(
            callback=self.results_csv,
            filename="crossbar_sweep.csv",
            label="Download results (CSV)",
            color="light",
        )
        self._layout = pn.Column(
            pn.pane.Markdown(
                "### Sweep\nAccuracy over a grid of up to "
                f"{MAX_PANEL_POINTS} points of one or two parameters (all other settings as "
                "on the left). Larger sweeps: `explorer sweep` on a Dask cluster.",
                margin=(0, 10),
            ),
            pn.Row(
                pn.widgets.Select.from_param(self.param.x),
                pn.widgets.TextInput.from_param(
                    self.param.x_values, css_classes=["sweep-x-values"]
                ),
            ),
            pn.Row(
                pn.widgets.Select.from_param(self.param.y),
                pn.widgets.TextInput.from_param(
                    self.param.y_values, css_classes=["sweep-y-values"]
                ),
            ),
            pn.Row(
                pn.widgets.Select.from_param(self.param.workload),
                pn.widgets.IntInput.from_param(
                    self.param.limit, step=50, css_classes=["sweep-limit"]
                ),
                pn.widgets.IntInput.from_param(self.param.trials),
            ),
            pn.Row(self._run_button, self._cancel_button),
            self._progress,
            self._status,
            self._alert,
            self._plot_slot,
            self._table,
            self._download,
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    # -- actions -----------------------------------------------------------------------------
    def grid(self) -> dict[str, list[Any]]:
        """The grid the current settings describe (InputError when they are bad)."""
        axes = [(self.x, self.x_values.split(","))]
        if self.y != NO_SECOND:
            if self.y == self.x:
                raise InputError(f"sweep: choose two different parameters (both are {self.x})")
            axes.append((self.y, self.y_values.split(",")))
        grid = make_grid(axes)
        points = 1
        for values in grid.values():
            points *= len(values)
        if points > MAX_PANEL_POINTS:
            raise InputError(
                f"sweep: {points} grid points; the dashboard runs at most {MAX_PANEL_POINTS} "
                "(use `explorer sweep` for more)"
            )
        return grid

    @param.depends("run", watch=True)
    def submit(self) -> Job | None:
        """Validate the grid on a snapshot of the settings and queue it; returns the job.

        Bad values or combinations set ``error`` and leave the previous results shown."""
        try:
            spec = SweepSpec(base=snapshot(self.config), grid=self.grid(), trials=self.trials)
            spec.cells()  # every grid point checked now, not on the worker
        except (InputError, ValueError) as exc:
            self.error = str(exc)
            return None
        from explorer.settings import Settings

        self._sweeps += 1
        try:
            job = self.runner.submit(
                sweep_job,
                Settings(crossbar=self.config, workload=self.core()).to_dict(),
                dict(spec.grid),
                self.trials,
                label=f"sweep {self._sweeps}",
                owner=self.owner,
            )
        except InputError as exc:  # too many jobs waiting
            self.error = str(exc)
            return None
        self._axes = dict(spec.grid)
        self.param.update(
            job=job, error="", status="Sweep queued…", frame=results_frame([], list(spec.grid))
        )
        self.watch_job(job)
        return job

    @param.depends("cancel", watch=True)
    def cancel_all(self) -> int:
        """Cancel this view's queued and running sweeps; returns how many."""
        n = self.cancel_jobs()
        if n:
            self.status = "Cancelling…"
        return n

    def results_csv(self) -> io.StringIO:
        """The results table as CSV text (for the download button)."""
        buffer = io.StringIO()
        self.frame.to_csv(buffer, index=False)
        buffer.seek(0)
        return buffer

    # -- job -> session ----------------------------------------------------------------------
    def show_job(self, job: Job) -> None:
        if job is not self.job:
            return
        rows = [row for batch in job.take_extras() for row in batch]
        swept = list(self._axes)
        with pn.io.hold():
            if job.status == DONE and job.result is not None:
                self.frame = results_frame(job.result.to_dict("records"), swept)
            elif rows:
                self.frame = results_frame([*self.frame.to_dict("records"), *rows], swept)
            self._cancel_button.disabled = job.finished
            if job.status == DONE:
                self._progress.visible = False
                self.status = f"Sweep done: {len(self.frame)} evaluations."
            elif job.status == CANCELLED:
                self._progress.visible = False
                self.status = f"Sweep cancelled after {len(self.frame)} evaluations."
            elif job.status == FAILED:
                self._progress.visible = False
                self.error = f"Sweep failed: {job.error}"
                self.status = ""
            else:
                self._progress.param.update(visible=True, value=int(job.progress * 1000))
                self.status = (
                    f"Sweep: {job.message or job.status} ({job.progress:.0%})"
                    if job.status == "running"
                    else "Sweep queued…"
                )

    # -- display -------------------------------------------------------------------------------
    @param.depends("status", watch=True)
    def _show_status(self) -> None:
        self._status.object = self.status

    @param.depends("error", watch=True)
    def _show_error(self) -> None:
        self._alert.param.update(object=self.error, visible=bool(self.error))

    @param.depends("frame", watch=True)
    def _show_frame(self) -> None:
        frame = self.frame
        swept = list(self._axes)
        with pn.io.hold():
            self._show_figure(self.figure())
            columns = ["trial", *swept, "accuracy", "float_accuracy", "seconds"]
            self._table.object = frame[[c for c in columns if c in frame]] if len(frame) else None

    def _show_figure(self, figure: Any) -> None:
        if self._plot is not None:
            self._plot.object = figure
        elif figure is not None:
            self._plot = pn.pane.HoloViews(
                figure, backend="bokeh", sizing_mode="stretch_width", min_height=360
            )
            self._plot_slot.append(self._plot)

    def figure(self) -> Any:
        """The heatmap of the two swept parameters (their full grid, blank where not done),
        or the accuracy curve of a one-parameter sweep; None before the first sweep."""
        from explorer.ui.sweep_plots import accuracy_plots, heatmap  # HoloViews: not at start

        swept = list(self._axes)
        if len(swept) >= 2:
            x, y = swept[0], swept[1]
            return heatmap(self.frame, x, y, self._axes[x], self._axes[y])
        if swept and len(self.frame):
            return accuracy_plots(self.frame, swept)
        return None
