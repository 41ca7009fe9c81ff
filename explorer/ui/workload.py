"""What the dashboard evaluates: a trained network, its test images and Monte-Carlo trials.

:class:`WorkloadSettings` declares the ``workload``, ``limit`` and ``trials`` parameters
once for the components that evaluate (:class:`~explorer.ui.accuracy.AccuracyRunner`,
:class:`~explorer.ui.sweep_panel.SweepPanel`); a component narrows ``limit`` and
``trials`` to its own bounds by re-declaring only those (Param inherits the rest).
"""

from __future__ import annotations

from dataclasses import dataclass

import param

from explorer.models import PRETRAINED
from explorer.paths import assets_dir


@dataclass(frozen=True)
class Workload:
    """A trained network and the test set it is evaluated on."""

    model: str  # a name for explorer.models.load_pretrained
    dataset: str  # a name for explorer.data.load_dataset
    default_limit: int
    how_to_get: str

    def weights_present(self) -> bool:
        """True when the pretrained weights file is on disk."""
        return (assets_dir() / PRETRAINED[self.model][1]).is_file()


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


class WorkloadSettings(param.Parameterized):
    """Which network on which test images, how many images and how many trials."""

    workload = param.Selector(
        default=DEFAULT_WORKLOAD,
        objects=list(WORKLOADS),
        label="Model and dataset",
        doc="Trained network and the test images it is evaluated on.",
    )
    limit = param.Integer(
        default=1000,
        bounds=(1, 10_000),
        label="Test images",
        doc="Number of test images evaluated per trial (first N of the test split).",
    )
    trials = param.Integer(
        default=3,
        bounds=(1, 100),
        label="Trials",
        doc="Monte-Carlo trials: a new programming-variation draw each.",
    )

    def selected_workload(self) -> Workload:
        """The :class:`Workload` that ``workload`` names."""
        return WORKLOADS[self.workload]
