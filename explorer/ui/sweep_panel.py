"""Sweep panel: accuracy over a small grid of two parameters, the heatmap filling as the
grid points finish.

The work is :func:`explorer.sweep.run_sweep` (the same code as ``explorer sweep``), run
without Dask on the process's single job worker (:mod:`explorer.jobs`), one grid point
after another. The base configuration is a snapshot of the dashboard's settings at the
moment *Run sweep* is pressed; bad values are refused before anything is queued and the
previous results stay on screen.

HoloViews (the plots, :mod:`explorer.ui.sweep_plots`) is imported when the first sweep
is queued, not with the page: it took 0.7 s of the page's start-up.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import pandas as pd
import panel as pn
import param

from explorer.crossbar import CrossbarConfig
from explorer.errors import InputError
from explorer.jobs import CANCELLED, DONE, FAILED, Job, JobRunner
from explorer.sweep import (
    SweepSpec,
    load_sweep_data,
    make_grid,
    results_frame,
    run_sweep,
    sweep_parameters,
)
from explorer.ui.session import call_in_session, job_runner, on_session_end, served_document
from explorer.ui.settings import snapshot
from explorer.ui.workload import Workload, WorkloadSettings

log = logging.getLogger(__name__)

MAX_PANEL_POINTS = 64
"""Largest grid the dashboard runs (bigger sweeps: ``explorer sweep`` on Dask)."""
NO_SECOND = "(none)"


def sweep_job(
    spec: SweepSpec,
    workload: Workload,
    limit: int,
    *,
    progress: Callable[[float, str], None],
    cancel: threading.Event,
    on_rows: Callable[[list[dict[str, Any]]], None] | None = None,
) -> pd.DataFrame:
    """Load the network and images, run the grid here (runs on the job worker)."""
    progress(0.0, "loading model and data")
    data = load_sweep_data(workload.model, workload.dataset, limit, download=False)
    outcome = run_sweep(spec, data, progress=progress, cancel=cancel, on_rows=on_rows)
    if outcome.failed:
        error = next(iter(outcome.failed.values()))
        raise RuntimeError(f"{len(outcome.failed)} grid point(s) failed, e.g. {error}")
    return outcome.table


class SweepPanel(pn.viewable.Viewer, WorkloadSettings):
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
        self.runner = runner if runner is not None else job_runner()
        self._doc = served_document()
        self.owner = owner or (
            f"session-{self._doc.session_context.id}" if self._doc else f"sweep-{id(self)}"
        )
        self._axes: dict[str, list[Any]] = {}
        self._sweeps = 0  # number of the latest sweep: rows of older ones are ignored
        self._pending: list[dict[str, Any]] = []
        self._pending_lock = threading.Lock()
        on_session_end(self.close)

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
        with self._pending_lock:
            self._sweeps += 1
            self._pending = []
        try:
            job = self.runner.submit(
                sweep_job,
                spec,
                self.selected_workload(),
                self.limit,
                on_rows=partial(self._rows_arrived, self._sweeps),
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
        job.param.watch(partial(self._on_job_event, job), ["progress", "status"])
        self._schedule(job)
        return job

    @param.depends("cancel", watch=True)
    def cancel_all(self) -> int:
        """Cancel this view's queued and running sweeps; returns how many."""
        n = self.runner.cancel_owner(self.owner)
        if n:
            self.status = "Cancelling…"
        return n

    def close(self) -> None:
        """The session ended: cancel its sweeps."""
        self.runner.cancel_owner(self.owner)

    def results_csv(self) -> io.StringIO:
        """The results table as CSV text (for the download button)."""
        buffer = io.StringIO()
        self.frame.to_csv(buffer, index=False)
        buffer.seek(0)
        return buffer

    # -- job -> session ----------------------------------------------------------------------
    def _rows_arrived(self, sweep: int, rows: list[dict[str, Any]]) -> None:
        # worker thread: collect, then let the session add them to the table
        with self._pending_lock:
            if sweep != self._sweeps:
                return  # a sweep replaced since
            self._pending.extend(rows)
        job = self.job
        if job is not None:
            self._schedule(job)

    def _on_job_event(self, job: Job, *_events: Any) -> None:
        try:
            self._schedule(job)
        except Exception:  # a display problem must not fail the sweep
            log.exception("could not hand sweep job %s over to the session", job.job_id)

    def _schedule(self, job: Job) -> None:
        call_in_session(self._doc, partial(self._sync, job))

    def _sync(self, job: Job) -> None:
        if job is not self.job:
            return
        with self._pending_lock:
            rows, self._pending = self._pending, []
        with pn.io.hold():
            if rows:
                swept = list(self._axes)
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
