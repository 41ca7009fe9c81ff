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


def calibration_images(data: str, count: int, download: bool = True) -> tuple[Tensor, str]:
    """The first ``count`` images of dataset ``data``'s training split as floats in [0, 1]
    (fewer if the split is smaller) and a description of where they come from."""
    from explorer.data import load_dataset

    try:
        train = load_dataset(data, "train", limit=count, download=download)
    except DatasetMissingError as exc:
        raise InputError(f"calibration: the DAC/ADC ranges are calibrated on {data}'s training "
                         f"split, which is missing here ({exc})") from None
    except InputError:  # a training split smaller than ``count``
        train = load_dataset(data, "train", download=download)
    images = train.images[:count]
    return images.float().div_(255), f"{data} train[:{len(images)}]"


def default_dataset(model: nn.Module) -> str:
    """The dataset a built-in architecture was trained on."""
    from explorer.models import MODELS

    for spec in MODELS.values():
        if type(model) is spec.build:
            return spec.dataset
    raise InputError("data: name the dataset for this network (--data / workload.data)")


def load_workload(workload: WorkloadSettings, download: bool = True) -> LoadedWorkload:
    """The network, test images (``limit``) and calibration images ``workload`` names."""
    from explorer.data import load_dataset
    from explorer.models import network_from_checkpoint, read_named_checkpoint

    ckpt, path = read_named_checkpoint(workload.model)
    model = network_from_checkpoint(ckpt, path)
    data = workload.data or default_dataset(model)
    test = load_dataset(data, "test", limit=workload.limit, download=download)
    calibration, source = calibration_images(data, workload.calibration_images, download)
    return LoadedWorkload(model, test.images, test.labels, calibration, source,
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
                      times: Any = None) -> Any:
    """:func:`explorer.evaluate.evaluate` of the whole ``settings`` (an
    :class:`~explorer.evaluate.EvaluationResult` with ``calibration`` and ``workload``
    set). ``loaded``: the workload already loaded (else :func:`load_workload`, which may
    ``download`` a missing dataset); ``times``: seconds after programming to evaluate at
    (see :func:`~explorer.evaluate.evaluate`)."""
    from explorer.evaluate import evaluate

    work = settings.workload
    if loaded is None:
        loaded = load_workload(work, download=download)
    builder = analog_builder(loaded.checkpoint, ignore_checkpoint)
    if builder is not None:
        builder.check(loaded.model)
    result = evaluate(loaded.model, (loaded.images, loaded.labels), settings.crossbar,
                      trials=work.trials, batch_size=work.batch_size,
                      calibration=loaded.calibration, progress=progress, cancel=cancel,
                      device=device, analog_builder=builder, times=times)
    result.calibration = loaded.calibration_source
    result.workload = {"model": loaded.model_name, "data": loaded.data_name,
                       "images": len(loaded.images)}
    return result


__all__ = ["LoadedWorkload", "analog_builder", "calibration_images", "checkpoint_base",
           "default_dataset", "evaluate_settings", "load_workload"]
