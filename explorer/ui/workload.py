"""What the dashboard evaluates: a trained network, its test images and Monte-Carlo trials.

:class:`WorkloadSettings` is the core :class:`explorer.settings.WorkloadSettings` (model,
data, limit, trials, calibration images, batch size: declared there once) plus the
dashboard's choice among the known networks (``workload``, which sets ``model`` and
``data``). The components that evaluate (:class:`~explorer.ui.accuracy.AccuracyRunner`,
:class:`~explorer.ui.sweep_panel.SweepPanel`) are WorkloadSettings; a component narrows
``limit`` and ``trials`` to its own bounds by re-declaring only those (Param inherits the
rest). :meth:`WorkloadSettings.core` is what an evaluation job gets.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import param

from explorer.models import PRETRAINED
from explorer.paths import assets_dir, data_dir
from explorer.settings import WorkloadSettings as CoreWorkloadSettings


@dataclass(frozen=True)
class Workload:
    """A trained network and the test set it is evaluated on."""

    model: str  # a name for explorer.models.load_pretrained
    dataset: str  # a name for explorer.data.load_dataset
    default_limit: int
    how_to_get: str

    def weights_present(self) -> bool:
        """True when the weights file (pretrained, or a trained checkpoint) is on disk."""
        if self.model in PRETRAINED:
            return (assets_dir() / PRETRAINED[self.model][1]).is_file()
        return Path(self.model).is_file()


WORKLOADS: dict[str, Workload] = {
    "LeNet5 · MNIST (embedded digits)": Workload(
        "lenet5-mnist",
        "mnist-embedded",
        1000,
        "the weights ship in assets/; if missing: `explorer train --model lenet5 "
        "--data mnist-embedded --out assets/lenet5_mnist.pt`",
    ),
    "VGG8 · CIFAR-10": Workload(
        "vgg8-cifar10",
        "cifar10",
        1000,
        "needs CIFAR-10 (downloaded into $EXPLORER_DATA by `explorer train --data cifar10`) "
        "and weights: `explorer train --model vgg8 --data cifar10 --out assets/vgg8_cifar10.pt`",
    ),
    "ResNet20 · CIFAR-10": Workload(
        "resnet20-cifar10",
        "cifar10",
        1000,
        "needs CIFAR-10 (downloaded into $EXPLORER_DATA by `explorer train --data cifar10`) "
        "and weights: `explorer train --model resnet20 --data cifar10 "
        "--out assets/resnet20_cifar10.pt`",
    ),
}
DEFAULT_WORKLOAD = "LeNet5 · MNIST (embedded digits)"
CHECKPOINTS_ENV = "EXPLORER_CHECKPOINTS"
"""Folder of the checkpoints trained from the page (default: ``checkpoints/`` in the data
folder, :func:`explorer.paths.data_dir`)."""
_workloads_lock = threading.Lock()


def checkpoints_dir() -> Path:
    """Where the page's training writes checkpoints (``$EXPLORER_CHECKPOINTS``)."""
    override = os.environ.get(CHECKPOINTS_ENV)
    return Path(override).expanduser() if override else data_dir() / "checkpoints"


def trained_workload_name(meta: dict) -> str:
    """The menu entry of a checkpoint trained from the page."""
    return (f"{meta['architecture']} · {meta['data']} · {meta['method']}, "
            f"{meta['epochs']} ep ({meta['stem']})")


def register_checkpoint(path: Path, meta: dict) -> str:
    """Offer a trained checkpoint as a workload (to every session from now on); returns
    its menu name."""
    name = trained_workload_name({**meta, "stem": Path(path).stem})
    with _workloads_lock:
        WORKLOADS[name] = Workload(str(path), str(meta["data"]), 1000,
                                   f"the checkpoint {path} was removed")
    return name


def refresh_trained_workloads() -> list[str]:
    """Add the checkpoints in :func:`checkpoints_dir` (each with its ``.json`` summary)
    not offered yet; returns every workload name."""
    folder = checkpoints_dir()
    if folder.is_dir():
        known = {w.model for w in WORKLOADS.values()}
        for summary in sorted(folder.glob("*.json")):
            checkpoint = summary.with_suffix(".pt")
            if str(checkpoint) in known or not checkpoint.is_file():
                continue
            try:
                register_checkpoint(checkpoint, json.loads(summary.read_text()))
            except (OSError, ValueError, KeyError):
                continue  # not one of ours
    return list(WORKLOADS)


class WorkloadSettings(CoreWorkloadSettings):
    """Which network on which test images, how many images and how many trials."""

    workload = param.Selector(
        default=DEFAULT_WORKLOAD,
        objects=list(WORKLOADS),
        label="Model and dataset",
        doc="Trained network and the test images it is evaluated on.",
    )
    model = param.String(default=WORKLOADS[DEFAULT_WORKLOAD].model, precedence=-1)
    data = param.String(default=WORKLOADS[DEFAULT_WORKLOAD].dataset, precedence=-1)
    limit = param.Integer(default=1000, bounds=(1, 10_000), allow_None=False)
    trials = param.Integer(default=3, bounds=(1, 100))

    def __init__(self, **params: object) -> None:
        self.param.workload.objects = refresh_trained_workloads()
        super().__init__(**params)
        self._follow_workload()
        self.param.watch(self._follow_workload, "workload")

    def _follow_workload(self, *_events: object) -> None:
        chosen = WORKLOADS[self.workload]
        self.param.update(model=chosen.model, data=chosen.dataset)

    def offer_workloads(self) -> None:
        """Show every known workload in this component's menu (after a training)."""
        self.param.workload.objects = list(WORKLOADS)

    def selected_workload(self) -> Workload:
        """The :class:`Workload` that ``workload`` names."""
        return WORKLOADS[self.workload]

    def core(self) -> CoreWorkloadSettings:
        """The plain :class:`explorer.settings.WorkloadSettings` of these values (what an
        evaluation job takes: no watchers, no GUI)."""
        return CoreWorkloadSettings(
            **{name: getattr(self, name) for name in CoreWorkloadSettings.knobs()})

    @classmethod
    def choice_of(cls, model: str, data: str) -> str:
        """The ``workload`` name of a (model, dataset) pair; InputError if the dashboard
        does not offer it."""
        from explorer.errors import InputError

        for name, known in WORKLOADS.items():
            if known.model == model and known.dataset in (data, ""):
                return name
        offered = [(w.model, w.dataset) for w in WORKLOADS.values()]
        raise InputError(f"workload.model: the dashboard evaluates {offered}, not "
                         f"({model!r}, {data!r}); use `explorer evaluate --config` for others")
