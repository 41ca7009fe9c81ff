"""Train panel: train a network for the crossbar on the page (a background job on a
worker: :func:`explorer.jobtasks.train_task`, the code of ``explorer train``), with a time
estimate measured on a worker before it starts, progress and cancel. The checkpoint is
written by the server, atomically, into :func:`explorer.ui.workload.checkpoints_dir` with
a ``.json`` summary, and offered as a workload at once. *Get CIFAR-10* downloads the
dataset through torchvision (a machine offline gets :mod:`explorer.data`'s message).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import panel as pn
import param

from explorer.errors import InputError
from explorer.jobs import CANCELLED, DONE, FAILED, Job
from explorer.jobtasks import download_task, estimate_task, train_task
from explorer.qlayers import METHODS
from explorer.ui.job_view import JobView
from explorer.ui.workload import checkpoints_dir, register_checkpoint

ARCHITECTURES = ("lenet5", "vgg8", "resnet20")
DATASETS = ("mnist-embedded", "mnist", "fashion-mnist", "cifar10")
PAGE_METHODS = tuple(m for m in ("float", "rq", "gq", "hwa") if m in METHODS)


def _first_up(text: str) -> str:
    return text[:1].upper() + text[1:]


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class TrainPanel(pn.viewable.Viewer, JobView):
    """Method, architecture, dataset, epochs, images; Estimate, Train, Cancel, Get CIFAR-10."""

    method = param.Selector(default="float", objects=list(PAGE_METHODS), label="Method",
                            doc="float; rq (relaxed quantization: weights, DAC, ADC); gq "
                                "(generalized-quantization QAT); hwa (hardware-aware).")
    architecture = param.Selector(default="lenet5", objects=list(ARCHITECTURES),
                                  label="Network", doc="Architecture trained from scratch.")
    dataset = param.Selector(default="mnist-embedded", objects=list(DATASETS),
                             label="Dataset", doc="Its training split is used.")
    epochs = param.Integer(default=2, label="Epochs",
                           doc="Passes over the training images (1 … 1000).")
    limit = param.Integer(default=2000, allow_None=True, label="Training images",
                          doc="First N training images (empty: all).")
    status = param.String(default="", label="Status", doc="What training is doing.")
    error = param.String(default="", label="Error", doc="Why the last request failed.")

    def __init__(self, config: Any, runner: Any = None, owner: str | None = None,
                 on_checkpoint: Callable[[str], None] | None = None, **params: Any) -> None:
        super().__init__(**params)
        self.config = config
        self._init_jobs(runner, owner, "train")
        self._on_checkpoint = on_checkpoint
        self._shown: set[int] = set()  # ids of finished jobs already shown
        self.job: Job | None = None
        self._kind = ""
        self.checkpoint: Path | None = None
        widgets = {
            "method": pn.widgets.Select.from_param(self.param.method, width=110),
            "architecture": pn.widgets.Select.from_param(self.param.architecture, width=110),
            "dataset": pn.widgets.Select.from_param(self.param.dataset, width=140),
            "epochs": pn.widgets.IntInput.from_param(self.param.epochs, width=90,
                                                     css_classes=["train-epochs"]),
            "limit": pn.widgets.IntInput.from_param(self.param.limit, width=120,
                                                    css_classes=["train-limit"]),
        }
        self._estimate = pn.widgets.Button(label="Estimate time", color="light",
                                           css_classes=["train-estimate"])
        self._train = pn.widgets.Button(label="Train", color="primary",
                                        css_classes=["train-run"])
        self._cancel = pn.widgets.Button(label="Cancel", color="warning", disabled=True,
                                         css_classes=["train-cancel"])
        self._cifar = pn.widgets.Button(label="Get CIFAR-10", color="light",
                                        css_classes=["train-get-cifar"])
        self._estimate.on_click(lambda _e: self.submit("estimate"))
        self._train.on_click(lambda _e: self.submit("train"))
        self._cancel.on_click(lambda _e: self.cancel_jobs())
        self._cifar.on_click(lambda _e: self.submit("download"))
        self._progress = pn.indicators.Progress(value=0, max=1000, visible=False,
                                                sizing_mode="stretch_width")
        self._status = pn.pane.Markdown("", margin=(0, 10), css_classes=["train-status"])
        self._alert = pn.pane.Alert("", alert_type="danger", visible=False,
                                    css_classes=["train-error"])
        self._layout = pn.Column(
            pn.pane.Markdown("### Train a network for this crossbar\nThe crossbar on the "
                             "left is what rq/gq/hwa train for; the checkpoint appears in "
                             "the workload menus when done.", margin=(0, 10)),
            pn.Row(*widgets.values()),
            pn.Row(self._estimate, self._train, self._cancel, self._cifar),
            self._progress, self._status, self._alert,
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    # -- requests --------------------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        """The training request (checked): InputError naming the field otherwise."""
        from explorer.settings import Settings
        from explorer.settings.base import checked_value
        from explorer.training import TrainConfig

        checked_value("Epochs", TrainConfig.param.epochs, self.epochs)
        if self.epochs > 1000:
            raise InputError(f"Epochs: {self.epochs} is not allowed; expected 1 … 1000")
        checked_value("Training images", TrainConfig.param.limit, self.limit)
        return {"model": self.architecture, "data": self.dataset, "method": self.method,
                "epochs": self.epochs, "limit": self.limit,
                "settings": Settings(crossbar=self.config).to_dict()}

    def submit(self, kind: str) -> Job | None:
        """Queue ``estimate``, ``train`` or ``download`` (CIFAR-10); bad input sets
        ``error`` and queues nothing."""
        try:
            if kind == "download":
                fn, args, label = download_task, ("cifar10",), "download of CIFAR-10"
            else:
                spec = self.spec()
                fn, args = (estimate_task if kind == "estimate" else train_task), (spec,)
                label = ("time estimate" if kind == "estimate" else
                         f"training {spec['model']} {spec['method']} on {spec['data']}")
            job = self.runner.submit(fn, *args, label=label, owner=self.owner)
        except InputError as exc:
            self.error = str(exc)
            return None
        self.job, self._kind = job, kind
        self.param.update(error="", status=f"{_first_up(label)} queued…")
        self.watch_job(job)
        return job

    # -- job -> session --------------------------------------------------------------------
    def show_job(self, job: Job) -> None:
        if job is not self.job:
            return
        with pn.io.hold():
            self._cancel.disabled = job.finished
            self._progress.param.update(visible=not job.finished,
                                        value=int(job.progress * 1000))
            if job.status == DONE:
                self._done(job)
            elif job.status == CANCELLED:
                self.status = f"{_first_up(job.label)} cancelled; nothing was written."
            elif job.status == FAILED:
                self.param.update(status="", error=f"{_first_up(job.label)} failed: "
                                                   f"{job.error}")
            else:
                self.status = (f"{_first_up(job.label)}: {job.message or job.status} "
                               f"({job.progress:.0%})")

    def _done(self, job: Job) -> None:
        if job.job_id in self._shown:  # a finished job is shown (and saved) once
            return
        self._shown.add(job.job_id)
        result = job.result
        if self._kind == "estimate":
            self.status = (
                f"Estimated training time on this machine: about {result['seconds']:.0f} s "
                f"({result['steps']} steps of {result['seconds_per_step'] * 1e3:.0f} ms, "
                f"timed on a worker; {result['images']} training images).")
        elif self._kind == "download":
            self.status = (f"CIFAR-10 is here: {result['train']} training and "
                           f"{result['test']} test images.")
        else:
            self._save(result)

    def _save(self, result: dict[str, Any]) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        stem = f"{result['architecture']}-{result['data']}-{result['method']}-{stamp}"
        path = checkpoints_dir() / f"{stem}.pt"
        meta = {k: result[k] for k in ("architecture", "data", "method", "epochs",
                                       "seconds", "test_accuracy")}
        try:
            write_atomically(path, result["checkpoint"])
            write_atomically(path.with_suffix(".json"), json.dumps(meta).encode())
        except OSError as exc:
            self.error = f"Training done, but the checkpoint could not be written: {exc}"
            return
        self.checkpoint = path
        name = register_checkpoint(path, meta)
        accuracy = result.get("test_accuracy")
        self.status = (f"Trained in {result['seconds']:.0f} s"
                       + (f", test accuracy {accuracy:.2%}" if accuracy is not None else "")
                       + f": **{name}** is now in the workload menus.")
        if self._on_checkpoint is not None:
            self._on_checkpoint(name)

    @param.depends("status", watch=True)
    def _show_status(self) -> None:
        self._status.object = self.status

    @param.depends("error", watch=True)
    def _show_error(self) -> None:
        self._alert.param.update(object=self.error, visible=bool(self.error))
