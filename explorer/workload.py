"""One way from settings to an accuracy, shared by the dashboard, the CLI, sweeps and
notebooks: the same network, the same scored test images, the same calibration images
(the first ``calibration_images`` of the *training* split – never the scored images).

:func:`load_workload` loads what :class:`~explorer.settings.WorkloadSettings` names;
:func:`evaluate_settings` evaluates a whole :class:`~explorer.settings.Settings`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from explorer.errors import DatasetMissingError, InputError
from explorer.settings import Settings, WorkloadSettings


@dataclass
class LoadedWorkload:
    """A network, its scored test images and its calibration images."""

    model: nn.Module
    images: Tensor
    labels: Tensor
    calibration: Tensor
    """Float images in [0, 1], [N, C, H, W], CPU."""
    calibration_source: str
    model_name: str
    data_name: str
    checkpoint: dict[str, Any]
    """The checkpoint the network was read from (a pretrained file or ``explorer train``'s)."""


def calibration_images(data: str, count: int, download: bool = True,
                       workload: WorkloadSettings | None = None) -> tuple[Tensor, str]:
    """The first ``count`` images of dataset ``data``'s training split as floats (in [0, 1]
    unless ``workload``'s mean/std normalise them; fewer if the split is smaller) and a
    description of where they come from. ``workload``: its split fraction, input size,
    mean and std apply."""
    from explorer.data import load_dataset

    extra = _dataset_options(workload)
    try:
        train = load_dataset(data, "train", limit=count, download=download, **extra)
    except DatasetMissingError as exc:
        raise InputError(f"calibration: the DAC/ADC ranges are calibrated on {data}'s training "
                         f"split, which is missing here ({exc})") from None
    except InputError as exc:  # a training split smaller than ``count``
        if "limit must be between" not in str(exc):
            raise
        train = load_dataset(data, "train", download=download, **extra)
    images = prepare_images(train.images[:count], workload)
    if images.dtype == torch.uint8:
        images = images.float().div_(255)
    return images, f"{data} train[:{len(images)}]"


def _dataset_options(workload: WorkloadSettings | None) -> dict[str, Any]:
    if workload is None:
        return {}
    return {"split_fraction": workload.split_fraction, "input_size": workload.input_size}


def prepare_images(images: Tensor, workload: WorkloadSettings | None) -> Tensor:
    """``images`` resized to ``workload.input_size`` and normalised by its mean/std (float);
    unchanged (uint8 stays uint8) when it sets neither."""
    import torch.nn.functional as F

    from explorer.settings.workload import channel_values

    if workload is None:
        return images
    size = workload.input_size
    mean, std = channel_values("mean", workload.mean), channel_values("std", workload.std)
    if size is None and not mean and not std:
        return images
    x = images.float().div_(255) if images.dtype == torch.uint8 else images.float()
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                          antialias=True)
    channels = x.shape[1]
    for name, values in (("mean", mean), ("std", std)):
        if values and len(values) not in (1, channels):
            raise InputError(f"--{name}: {len(values)} values for {channels}-channel images; "
                             f"give 1 or {channels}")
    if mean:
        x = x - torch.tensor(mean).view(1, -1, 1, 1)
    if std:
        x = x / torch.tensor(std).view(1, -1, 1, 1)
    return x


def default_dataset(model: nn.Module) -> str:
    """The dataset a built-in architecture was trained on."""
    from explorer.models import MODELS

    for spec in MODELS.values():
        if type(model) is spec.build:
            return spec.dataset
    raise InputError("data: name the dataset for this network (--data / workload.data)")


def check_labels(model: nn.Module, images: Tensor, labels: Tensor, data: str) -> None:
    """InputError if the network fails on one image or has fewer outputs than ``labels``
    need (one line naming the shapes)."""
    x = images[:1]
    x = x.float().div(255) if x.dtype == torch.uint8 else x.float()
    try:
        with torch.no_grad():
            out = model.eval()(x)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise InputError(f"model: the network fails on {data}'s images of shape "
                         f"{list(x.shape[1:])} ({type(exc).__name__}: {first}); "
                         "--input-size may fit them") from None
    if not isinstance(out, Tensor) or out.dim() != 2:
        shape = list(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise InputError(f"model: the network must return class scores [N, classes], it "
                         f"returns {shape}")
    if len(labels) and int(labels.max()) >= out.shape[1]:
        raise InputError(f"data: {data}'s labels reach {int(labels.max())} but the network "
                         f"has {out.shape[1]} outputs (labels out of range)")


def load_workload(workload: WorkloadSettings, download: bool = True,
                  allow_code: bool = False) -> LoadedWorkload:
    """The network, test images (``limit``) and calibration images ``workload`` names.
    ``allow_code``: a ``FILE.py:FUNCTION`` model may run (command line, notebooks)."""
    from explorer.data import load_dataset
    from explorer.models import load_network

    workload.check()
    model, ckpt = load_network(workload.model, workload.weights, allow_code=allow_code)
    data = workload.data or default_dataset(model)
    test = load_dataset(data, "test", limit=workload.limit, download=download,
                        **_dataset_options(workload))
    images = prepare_images(test.images, workload)
    check_labels(model, images, test.labels, data)
    calibration, source = calibration_images(data, workload.calibration_images, download,
                                             workload)
    return LoadedWorkload(model, images, test.labels, calibration, source,
                          workload.model, data, ckpt)


def checkpoint_base(settings: Settings, ckpt: dict[str, Any],
                    ignore_checkpoint: bool = False) -> Settings:
    """``settings`` with the crossbar a checkpoint of ``explorer train`` was trained for
    (codebook methods get the ``generalized`` mapping); unchanged for other checkpoints."""
    from explorer.deploy import crossbar_config_from_checkpoint

    if ignore_checkpoint or ckpt.get("hardware") is None:
        return settings
    return Settings(crossbar=crossbar_config_from_checkpoint(ckpt), workload=settings.workload)


def analog_builder(ckpt: dict[str, Any], ignore_checkpoint: bool = False) -> Any:
    """The crossbar builder that applies a checkpoint's learned settings (codebooks, learned
    DAC/ADC ranges), or None for plain :func:`~explorer.crossbar.to_crossbar`."""
    from explorer.deploy import checkpoint_settings

    return None if ignore_checkpoint else checkpoint_settings(ckpt)


def evaluate_settings(settings: Settings, device: str | torch.device = "cpu",
                      progress: Any = None, cancel: threading.Event | None = None,
                      loaded: LoadedWorkload | None = None,
                      ignore_checkpoint: bool = False, download: bool = True,
                      allow_code: bool = False) -> Any:
    """:func:`explorer.evaluate.evaluate` of the whole ``settings`` (an
    :class:`~explorer.evaluate.EvaluationResult` with ``calibration`` and ``workload``
    set). ``loaded``: the workload already loaded (else :func:`load_workload`, which may
    ``download`` a missing dataset, and runs a code model only with ``allow_code``)."""
    from explorer.evaluate import evaluate

    work = settings.workload
    if loaded is None:
        loaded = load_workload(work, download=download, allow_code=allow_code)
    builder = analog_builder(loaded.checkpoint, ignore_checkpoint)
    if builder is not None:
        builder.check(loaded.model)
    result = evaluate(loaded.model, (loaded.images, loaded.labels), settings.crossbar,
                      trials=work.trials, batch_size=work.batch_size,
                      calibration=loaded.calibration, progress=progress, cancel=cancel,
                      device=device, analog_builder=builder)
    result.calibration = loaded.calibration_source
    result.workload = {"model": loaded.model_name, "data": loaded.data_name,
                       "images": len(loaded.images)}
    return result


__all__ = ["LoadedWorkload", "analog_builder", "calibration_images", "check_labels",
           "checkpoint_base", "default_dataset", "evaluate_settings", "load_workload",
           "prepare_images"]
