"""What is evaluated: the trained network, its data, how many images and trials, and the
images that calibrate the converters (always from the training split)."""

from __future__ import annotations

import param

from explorer.settings.base import Part

MAX_TRIALS = 1000


class WorkloadSettings(Part):
    """The network, the dataset and the Monte-Carlo budget of an evaluation."""

    section = "workload"

    model = param.String(
        default="lenet5-mnist", label="Model",
        doc="Pretrained network name (lenet5-mnist, vgg8-cifar10, resnet20-cifar10) or the "
            "path of a checkpoint written by `explorer train`.")
    data = param.String(
        default="", label="Dataset",
        doc="Dataset name (mnist-embedded, mnist, fashion-mnist, cifar10, idx:DIR); empty: "
            "the one the network was trained on.")
    limit = param.Integer(
        default=None, allow_None=True, bounds=(1, None), label="Test images",
        doc="Score only the first N images of the test split (>= 1); None: all of them.")
    trials = param.Integer(
        default=1, bounds=(1, MAX_TRIALS), label="Trials",
        doc="Monte-Carlo trials, 1 … 1000: a new programming draw each.")
    calibration_images = param.Integer(
        default=256, bounds=(1, 100_000), label="Calibration images",
        doc="Images of the training split that set the DAC/ADC ranges (never the scored "
            "test images), 1 … 100000.")
    batch_size = param.Integer(
        default=500, bounds=(1, 1_000_000), label="Batch size",
        doc="Images per forward pass, >= 1 (bounds the memory).")
