"""What is evaluated: the trained network, its data, how many images and trials, and the
images that calibrate the converters (always from the training split)."""

from __future__ import annotations

import param

from explorer.errors import InputError
from explorer.settings.base import Part

MAX_TRIALS = 1000


class WorkloadSettings(Part):
    """The network, the dataset and the Monte-Carlo budget of an evaluation."""

    section = "workload"

    model = param.String(
        default="lenet5-mnist", label="Model",
        doc="Pretrained network name (lenet5-mnist, vgg8-cifar10, resnet20-cifar10), the "
            "path of a checkpoint written by `explorer train`, FILE.py:FUNCTION (a function "
            "returning an nn.Module; command line and notebooks only) or a torch.export "
            "program FILE.pt2.")
    weights = param.String(
        default="", label="Weights",
        doc="A state dict file (.pt) loaded into the network (torch.load weights_only); "
            "empty: the network's own weights.")
    data = param.String(
        default="", label="Dataset",
        doc="Dataset name (mnist-embedded, mnist, fashion-mnist, cifar10, idx:DIR, "
            "imagefolder:DIR, npz:FILE); empty: the one the network was trained on.")
    input_size = param.Integer(
        default=None, allow_None=True, bounds=(1, 4096), label="Input size",
        doc="Resize images to N x N pixels (bilinear), 1 … 4096; None: as stored.")
    mean = param.String(
        default="", label="Input mean",
        doc="Per-channel mean subtracted from the [0, 1] images, comma-separated (one value "
            "or one per channel, e.g. 0.485,0.456,0.406); empty: none.")
    std = param.String(
        default="", label="Input std",
        doc="Per-channel standard deviation the images are divided by, comma-separated, "
            "each > 0; empty: none.")
    split_fraction = param.Number(
        default=None, allow_None=True, bounds=(0, 1), inclusive_bounds=(False, False),
        label="Split fraction",
        doc="For a dataset file with one split: the fraction, in (0, 1), of its images "
            "(shuffled with a fixed seed) that forms the training split (calibration); the "
            "rest is scored. None: the file must hold both splits.")
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

    def check(self) -> None:
        for name in ("mean", "std"):
            channel_values(name, getattr(self, name))


def channel_values(name: str, text: str) -> tuple[float, ...]:
    """The numbers of a comma-separated per-channel option (``mean``/``std``); () if empty.
    InputError naming the option for text that is not finite numbers (std: each > 0)."""
    import math

    if not text.strip():
        return ()
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"--{name}: {text!r} is not comma-separated numbers "
                         "(e.g. 0.485,0.456,0.406)") from None
    if not all(math.isfinite(v) for v in values):
        raise InputError(f"--{name}: {text!r} holds a value that is not finite")
    if name == "std" and min(values) <= 0:
        raise InputError(f"--std: {text!r}: each standard deviation must be > 0")
    return values
