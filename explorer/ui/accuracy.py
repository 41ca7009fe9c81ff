"""Accuracy runner: evaluate the crossbar model on a background worker, keep a history.

The work itself is :func:`explorer.jobtasks.evaluate_task` (the settings file's dict,
rebuilt on the worker), run by the process's job runner (:mod:`explorer.jobs`: Dask
worker processes when served, a thread in notebooks and tests). The Bokeh callback of the
*Evaluate* button only snapshots the settings and queues a job; progress and results come
back to the session through :class:`explorer.ui.job_view.JobView`.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import ColumnDataSource, DataRange1d, HoverTool, Span
from bokeh.plotting import figure

from explorer.errors import InputError
from explorer.jobs import CANCELLED, DONE, FAILED, Job, JobRunner
from explorer.jobtasks import evaluate_task
from explorer.ui.job_view import JobView
from explorer.ui.settings import settings_record
from explorer.ui.workload import DEFAULT_WORKLOAD, WORKLOADS, Workload, WorkloadSettings

__all__ = [  # the workload names were defined here first: importable from here still
    "DEFAULT_WORKLOAD",
    "WORKLOADS",
    "AccuracyRunner",
    "Workload",
    "evaluation_job",
]

log = logging.getLogger(__name__)


HISTORY_COLUMNS = [
    "run",
    "workload",
    "images",
    "trials",
    "accuracy_mean",
    "accuracy_std",
    "float_accuracy",
    "seconds",
]


evaluation_job = evaluate_task
"""The work of one evaluation (:func:`explorer.jobtasks.evaluate_task`: a settings file's
dict evaluated as ``explorer evaluate --config`` does; runs on a worker)."""


class AccuracyRunner(pn.viewable.Viewer, JobView, WorkloadSettings):
    """Evaluate button, progress, cancel, and the history of results of this session
    (``workload``, ``limit`` and ``trials``: :class:`~explorer.ui.workload.WorkloadSettings`)."""

    config = param.ClassSelector(
        class_=param.Parameterized,
        instantiate=False,
        label="Crossbar configuration",
        doc="The CrossbarConfig evaluated (snapshotted per run).",
    )
    run = param.Event(label="Evaluate", doc="Queue an evaluation with the current settings.")
    cancel = param.Event(
        label="Cancel", doc="Cancel this session's queued and running evaluations."
    )
    clear = param.Event(label="Clear history", doc="Forget the results table.")
    job = param.ClassSelector(
        class_=Job,
        default=None,
        allow_None=True,
        precedence=-1,
        label="Current job",
        doc="The latest evaluation job.",
    )
    history = param.DataFrame(
        default=None,
        precedence=-1,
        label="History",
        doc="One row per finished evaluation: settings and accuracies.",
    )
    status = param.String(
        default="", label="Status", doc="What the runner is doing, or why the last run stopped."
    )
    error = param.String(
        default="", label="Error", doc="The error of the last failed run; empty when fine."
    )

    def __init__(
        self,
        config: param.Parameterized,
        runner: JobRunner | None = None,
        evaluate_fn: Callable[..., dict[str, Any]] = evaluation_job,
        owner: str | None = None,
        **params: Any,
    ) -> None:
        params.setdefault("history", pd.DataFrame(columns=HISTORY_COLUMNS))
        super().__init__(config=config, **params)
        self._init_jobs(runner, owner, "view")
        self._evaluate_fn = evaluate_fn
        self._runs = 0
        self._meta: dict[int, dict[str, Any]] = {}  # job id -> settings of unfinished runs

        self._workload = pn.widgets.Select.from_param(self.param.workload)
        self._limit = pn.widgets.IntInput.from_param(
            self.param.limit, step=100, css_classes=["accuracy-limit"]
        )
        self._trials = pn.widgets.IntInput.from_param(
            self.param.trials, css_classes=["accuracy-trials"]
        )
        self._run_button = pn.widgets.Button.from_param(
            self.param.run, color="primary", css_classes=["accuracy-run"]
        )
        self._cancel_button = pn.widgets.Button.from_param(
            self.param.cancel, color="warning", disabled=True, css_classes=["accuracy-cancel"]
        )
        self._clear_button = pn.widgets.Button.from_param(self.param.clear, color="light")
        self._progress = pn.indicators.Progress(
            value=0, max=1000, sizing_mode="stretch_width", bar_color="primary", visible=False
        )
        self._status = pn.pane.Markdown("", margin=(0, 10))
        self._note = pn.pane.Alert("", alert_type="info", visible=False)
        self._alert = pn.pane.Alert("", alert_type="danger", visible=False)
        self._result = pn.pane.Markdown("", margin=(0, 10), styles={"font-size": "1.2em"})
        self._table = pn.pane.DataFrame(
            None, index=False, sizing_mode="stretch_width", max_height=300,
            css_classes=["accuracy-history"],
        )
        # the history plot enters the page with the first result (an empty figure is ~40
        # models that every new page would build, send and draw for nothing)
        self._plot = pn.pane.Bokeh(None, height=280, sizing_mode="stretch_width",
                                   visible=False)
        self._download = pn.widgets.FileDownload(
            callback=self.history_csv,
            filename="crossbar_accuracy_history.csv",
            label="Download history (CSV)",
            color="light",
        )
        self._on_workload()
        self._layout = pn.Column(
            pn.pane.Markdown("### Accuracy on the crossbar", margin=(0, 10)),
            pn.Row(self._workload, self._limit, self._trials),
            self._note,
            pn.Row(self._run_button, self._cancel_button, self._clear_button),
            self._progress,
            self._status,
            self._alert,
            self._result,
            self._plot,
            self._table,
            self._download,
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    # -- actions -----------------------------------------------------------------------------
    @param.depends("run", watch=True)
    def submit(self) -> Job | None:
        """Queue an evaluation of a snapshot of the current settings; returns its job."""
        self._runs += 1
        settings = settings_record(self.config)
        try:
            job = self.runner.submit(
                self._evaluate_fn,
                self.settings_dict(),
                label=f"run {self._runs}",
                owner=self.owner,
            )
        except InputError as exc:
            self.error = str(exc)
            return None
        self._meta[job.job_id] = {
            "run": self._runs,
            "workload": self.workload,
            "images": self.limit,
            "trials": self.trials,
            **settings,
        }
        self.param.update(job=job, error="", status=f"Run {self._runs} queued…")
        self.watch_job(job)
        return job

    def settings_dict(self) -> dict[str, Any]:
        """What an evaluation job gets: the settings file's form of the crossbar and this
        runner's workload (:meth:`explorer.settings.Settings.to_dict`)."""
        from explorer.settings import Settings

        return Settings(crossbar=self.config, workload=self.core()).to_dict()

    @param.depends("cancel", watch=True)
    def cancel_all(self) -> int:
        """Cancel this view's queued and running jobs; returns how many."""
        n = self.cancel_jobs()
        if n:
            self.status = f"Cancelling {n} run(s)…"
        return n

    @param.depends("clear", watch=True)
    def _clear(self) -> None:
        self.history = pd.DataFrame(columns=HISTORY_COLUMNS)

    def history_csv(self) -> io.StringIO:
        """The history table as CSV text (for the download button)."""
        buffer = io.StringIO()
        self.history.to_csv(buffer, index=False)
        buffer.seek(0)
        return buffer

    # -- job -> session ----------------------------------------------------------------------
    def show_job(self, job: Job) -> None:
        with pn.io.hold():
            pending = self.runner.pending(self.owner)
            self._cancel_button.disabled = not pending
            if job is not self.job and not job.finished:
                return
            if job.status in (DONE, CANCELLED, FAILED):
                self._finish(job)
            else:
                self._progress.param.update(visible=True, value=int(job.progress * 1000))
                label = job.label.capitalize()
                self.status = (
                    f"{label}: {job.message or job.status} ({job.progress:.0%})"
                    if job.status == "running"
                    else f"{label} queued…"
                )

    def _finish(self, job: Job) -> None:
        meta = self._meta.pop(job.job_id, None)
        if meta is None:
            return  # already shown
        busy = bool(self.runner.pending(self.owner))
        self._progress.visible = busy
        if job.status == DONE:
            row = self._history_row(meta, job.result)
            self.history = pd.DataFrame([*self.history.to_dict("records"), row])
            self.status = (
                f"Run {meta.get('run')} done in {row['seconds']:.1f} s: accuracy "
                f"{row['accuracy_mean']:.2%} ± {row['accuracy_std']:.2%} "
                f"(float {row['float_accuracy']:.2%})."
            )
            self.error = ""
        elif job.status == CANCELLED:
            self.status = f"Run {meta.get('run')} cancelled."
        else:
            self.error = f"Run {meta.get('run')} failed: {job.error}"
            self.status = ""

    @staticmethod
    def _history_row(meta: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
        settings = {
            k: ("ideal" if v is None and k.endswith("_bits") else v) for k, v in meta.items()
        }
        return {
            **settings,
            "accuracy_mean": float(result["accuracy_mean"]),
            "accuracy_std": float(result.get("accuracy_std", 0.0)),
            "float_accuracy": float(result.get("float_accuracy", np.nan)),
            "seconds": float(result.get("seconds", np.nan)),
        }

    # -- display -------------------------------------------------------------------------------
    @param.depends("workload", watch=True)
    def _on_workload(self) -> None:
        workload = self.selected_workload()
        missing = not workload.weights_present()
        self._note.param.update(
            object=(
                f"**{self.workload}**: no trained weights yet – {workload.how_to_get}."
                if missing
                else ""
            ),
            visible=missing,
        )
        self._run_button.disabled = missing

    @param.depends("status", watch=True)
    def _show_status(self) -> None:
        self._status.object = self.status

    @param.depends("error", watch=True)
    def _show_error(self) -> None:
        self._alert.param.update(object=self.error, visible=bool(self.error))

    @param.depends("history", watch=True)
    def _show_history(self) -> None:
        frame = self.history
        with pn.io.hold():
            shown = frame[[c for c in self._display_columns() if c in frame]].copy()
            for column in ("accuracy_mean", "accuracy_std", "float_accuracy"):
                shown[column] = shown[column].map(lambda v: f"{v:.2%}")
            shown["seconds"] = shown["seconds"].map(lambda v: f"{v:.1f}")
            self._table.object = shown
            self._plot.param.update(object=self.history_figure() if len(frame) else None,
                                    visible=bool(len(frame)))
            if len(frame):
                last = frame.iloc[-1]
                self._result.object = (
                    f"Accuracy **{last['accuracy_mean']:.2%}** "
                    f"± {last['accuracy_std']:.2%} "
                    f"(float network {last['float_accuracy']:.2%})"
                )
            else:
                self._result.object = ""

    def changed_parameter(self) -> str | None:
        """The one setting that differs between the runs in the history, if exactly one."""
        frame = self.history
        if len(frame) < 2:
            return None
        varying = [
            c
            for c in frame.columns
            if c not in HISTORY_COLUMNS and frame[c].astype(object).map(str).nunique() > 1
        ]
        return varying[0] if len(varying) == 1 else None

    def _display_columns(self) -> list[str]:
        frame = self.history
        settings = [c for c in frame.columns if c not in HISTORY_COLUMNS]
        varying = [c for c in settings if frame[c].astype(object).map(str).nunique() > 1]
        return ["run", *varying, "accuracy_mean", "accuracy_std", "float_accuracy", "seconds"]

    def history_figure(self) -> figure:
        """Accuracy (%) against the one setting that changed between runs (else the run
        number), ± one standard deviation, with the float network's accuracy dashed."""
        frame = self.history if self.history is not None else pd.DataFrame()
        x = self.changed_parameter() or "run"
        factors = None
        if len(frame):
            data = frame[list(dict.fromkeys([x, "accuracy_mean", "accuracy_std", "run"]))].copy()
            if x != "run" and not pd.api.types.is_numeric_dtype(data[x]):
                data[x] = data[x].astype(object).map(str)
                factors = list(dict.fromkeys(data[x]))
            else:
                data = data.sort_values(x)
            reference = float(frame["float_accuracy"].iloc[-1]) * 100
        else:
            data = pd.DataFrame({x: [], "accuracy_mean": [], "accuracy_std": [], "run": []})
            reference = np.nan
        mean = data["accuracy_mean"].to_numpy(dtype=np.float64) * 100
        std = data["accuracy_std"].to_numpy(dtype=np.float64) * 100
        source = ColumnDataSource(
            {
                "x": data[x].tolist(),
                "accuracy": mean,
                "low": mean - std,
                "high": mean + std,
                "run": data["run"].tolist(),
            }
        )
        fig = figure(
            title=f"Accuracy against {x}",
            x_axis_label=x,
            y_axis_label="accuracy (%)",
            x_range=factors if factors else DataRange1d(),
            height=280,
            sizing_mode="stretch_width",
            tools="pan,wheel_zoom,box_zoom,reset,save",
        )
        fig.line("x", "accuracy", source=source, color="#1f77b4", alpha=0.5)
        fig.segment("x", "low", "x", "high", source=source, color="#1f77b4")
        dots = fig.scatter("x", "accuracy", source=source, size=8, color="#1f77b4")
        fig.add_tools(
            HoverTool(
                renderers=[dots],
                tooltips=[("run", "@run"), (x, "@x"), ("accuracy", "@accuracy{0.00}%")],
            )
        )
        if np.isfinite(reference):
            fig.add_layout(
                Span(
                    location=reference,
                    dimension="width",
                    line_color="black",
                    line_dash="dashed",
                    name="float accuracy",
                )
            )
        return fig
