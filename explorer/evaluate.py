"""Accuracy of a network on a crossbar: Monte-Carlo trials over programming draws.

:func:`evaluate` maps the model once (:func:`explorer.crossbar.to_crossbar`), then for
each trial redraws the programmed conductances (:meth:`CrossbarModel.reprogram`) and
classifies the images batch by batch (bounded memory: only one batch of activations
lives at a time). The float accuracy of the same images is measured once per call.

Cancelling: when the ``cancel`` event is set, evaluation stops before the next batch
and raises :class:`Cancelled` (a :class:`explorer.jobs.JobCancelled`, so the job runner
marks the job cancelled); nothing partial is returned.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from explorer.cost import estimate
from explorer.coverage import layer_inventory
from explorer.crossbar import CrossbarConfig, CrossbarModel, to_crossbar
from explorer.errors import InputError
from explorer.jobs import JobCancelled

ProgressCallback = Callable[[float, str], None]
AnalogBuilder = Callable[[nn.Module, CrossbarConfig, Tensor | None], CrossbarModel]
"""``(model, cfg, calibration) -> CrossbarModel``: how :func:`evaluate` builds the crossbar
(default :func:`~explorer.crossbar.to_crossbar`; a checkpoint's learned settings:
:class:`explorer.deploy.CheckpointBuilder`)."""
DEFAULT_BATCH_SIZE = 500
CALIBRATION_IMAGES = 256
"""Images used to calibrate the DAC/ADC ranges when no calibration batch is given."""
MAX_TRIALS = 1000


class Cancelled(JobCancelled):
    """The evaluation was cancelled through its ``cancel`` event (between two batches)."""


@dataclass
class EvaluationResult:
    """Accuracies (fractions in [0, 1]) of a network on a crossbar and what it cost.

    ``accuracies``: one per Monte-Carlo trial; ``accuracy_std`` is the sample standard
    deviation over trials (0 for one trial); ``counters``: hardware counts per layer
    (tiles, cells, ADC conversions and DAC cycles per image); ``seconds``: wall time of
    the whole call, ``setup_seconds`` of mapping and calibration.
    """

    accuracies: list[float]
    accuracy_mean: float
    accuracy_std: float
    float_accuracy: float
    trials: int
    images: int
    counters: dict[str, Any]
    seconds: float
    setup_seconds: float
    config: dict[str, Any] = field(default_factory=dict)
    calibration: str = ""
    """Where the DAC/ADC calibration images came from (e.g. ``mnist-embedded train[:256]``)."""
    workload: dict[str, Any] = field(default_factory=dict)
    """Network, dataset and image count, when evaluated from settings."""
    analog_layers: list[dict[str, Any]] = field(default_factory=list)
    """The layers on crossbars (:func:`explorer.coverage.layer_inventory`)."""
    digital_layers: list[dict[str, Any]] = field(default_factory=list)
    """The layers holding parameters that stay digital, with reasons."""
    analog_weight_fraction: float = 0.0
    """Weights in crossbar cells ÷ all parameters of the network."""
    cost: dict[str, Any] = field(default_factory=dict)
    """Energy, latency and area per image (:meth:`explorer.cost.CostReport.to_dict`), with
    the array energy from the calibration images' layer inputs."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready plain data."""
        return asdict(self)


def _check_positive_int(name: str, value: Any, upper: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or \
            (upper is not None and value > upper):
        allowed = f"1 … {upper}" if upper is not None else ">= 1"
        raise InputError(f"{name}: must be an integer {allowed}, got {value!r}")
    return value


def _images_labels(dataset: Any, limit: int | None) -> tuple[Tensor, Tensor]:
    """The dataset's images (uint8 or float) and labels, the first ``limit`` of them."""
    if isinstance(dataset, tuple) and len(dataset) == 2:
        images, labels = dataset
    elif hasattr(dataset, "images") and hasattr(dataset, "labels"):
        images, labels = dataset.images, dataset.labels
    else:
        raise InputError("dataset: expected an ImageDataset (explorer.data.load_dataset) or a "
                         "tuple (images [N, C, H, W], labels [N])")
    if len(images) != len(labels):
        raise InputError(f"dataset: {len(images)} images but {len(labels)} labels")
    if len(images) == 0:
        raise InputError("dataset: holds no images")
    if limit is not None:
        _check_positive_int("limit", limit, len(images))
        images, labels = images[:limit], labels[:limit]
    return images, labels


def _as_float(images: Tensor, where: torch.device) -> Tensor:
    images = images.to(where)
    return images.float().div_(255) if images.dtype == torch.uint8 else images.float()


def _batches(images: Tensor, labels: Tensor, batch_size: int,
             where: torch.device) -> Iterator[tuple[Tensor, Tensor]]:
    for start in range(0, len(images), batch_size):
        yield (_as_float(images[start:start + batch_size], where),
               labels[start:start + batch_size].to(where))


def _model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


@torch.no_grad()
def _correct(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int,
             where: torch.device, tick: Callable[[], None]) -> int:
    correct = 0
    for x, y in _batches(images, labels, batch_size, where):
        tick()
        correct += int((model(x).argmax(1) == y).sum())
    return correct


def analog_batch_size(analog: CrossbarModel, batch_size: int) -> int:
    """Images per crossbar batch: ``batch_size`` divided by the input planes (bit-serial
    inputs stack one plane per bit on the batch axis), so activations stay bounded."""
    return max(1, batch_size // analog.input_planes)


def calibration_images(data: str, fallback: Any = None, device: str | torch.device = "cpu",
                       count: int = CALIBRATION_IMAGES) -> tuple[Tensor, str]:
    """Float calibration images for the DAC/ADC ranges and where they come from: the first
    ``count`` of dataset ``data``'s *training* split (:func:`explorer.workload.
    calibration_images`; never the scored test images). ``fallback`` is not used (kept for
    callers of the earlier signature)."""
    from explorer.workload import calibration_images as train_images

    images, source = train_images(data, count)
    return images.to(device), source


def evaluate(model: nn.Module, dataset: Any, cfg: CrossbarConfig, trials: int = 1,
             batch_size: int = DEFAULT_BATCH_SIZE, limit: int | None = None,
             calibration: Tensor | None = None, progress: ProgressCallback | None = None,
             cancel: threading.Event | None = None,
             device: str | torch.device | None = None,
             analog_builder: AnalogBuilder | None = None) -> EvaluationResult:
    """Top-1 accuracy of ``model`` written into the crossbar ``cfg``, over Monte-Carlo trials.

    ``dataset``: an :class:`~explorer.data.ImageDataset` or ``(images, labels)``
    (uint8 0…255 or float [0, 1] images); ``limit``: only its first images.
    ``calibration``: float images for the DAC/ADC ranges (default: the first
    :data:`CALIBRATION_IMAGES` images of the *training* split when ``dataset`` is an
    :class:`~explorer.data.ImageDataset` – as the CLI, sweeps and the dashboard do – and
    the first images of a plain ``(images, labels)`` tuple, which has no training split;
    the result's ``calibration`` says which).
    ``batch_size``: images per batch of the float model; the crossbar takes
    :func:`analog_batch_size` (divided by its input planes: bit-serial, signed passes).
    ``progress(fraction, message)`` is called before every batch; setting ``cancel``
    raises :class:`Cancelled` before the next batch. ``device``: where to compute
    (default: the model's). Trial ``t`` uses programming seed
    ``trial_seed(cfg.seed, t)``: same seed, same accuracies.
    ``analog_builder(model, cfg, calibration)`` builds the crossbar once (default
    :func:`~explorer.crossbar.to_crossbar`; a trained checkpoint's codebooks and learned
    ranges: :class:`explorer.deploy.CheckpointBuilder`); the trials reprogram it.
    """
    start = time.perf_counter()
    if not isinstance(cfg, CrossbarConfig):
        raise InputError(f"cfg: expected a CrossbarConfig, got {type(cfg).__name__}")
    _check_positive_int("trials", trials, MAX_TRIALS)
    _check_positive_int("batch_size", batch_size)
    images, labels = _images_labels(dataset, limit)
    where = torch.device(device) if device is not None else _model_device(model)
    model = model.to(where).eval()

    if calibration is not None:
        calibration_source = "given"
    elif hasattr(dataset, "name") and getattr(dataset, "split", "") == "test":
        calibration, calibration_source = calibration_images(dataset.name, device=where)
    else:
        calibration = _as_float(images[:CALIBRATION_IMAGES], where)
        calibration_source = f"scored images[:{len(calibration)}] (no training split given)"
    if cancel is not None and cancel.is_set():
        raise Cancelled("evaluation cancelled before mapping")
    setup_start = time.perf_counter()
    build = to_crossbar if analog_builder is None else analog_builder
    analog: CrossbarModel = build(model, cfg, calibration.to(where))
    setup_seconds = time.perf_counter() - setup_start

    analog_batch = analog_batch_size(analog, batch_size)
    total = math.ceil(len(images) / batch_size) + trials * math.ceil(len(images) / analog_batch)
    done = 0
    phase = "float model"

    def tick() -> None:
        nonlocal done
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"evaluation cancelled ({phase}, {done} of {total} batches done)")
        if progress is not None:
            progress(done / total, phase)
        done += 1

    float_correct = _correct(model, images, labels, batch_size, where, tick)
    accuracies = []
    for trial in range(trials):
        phase = f"trial {trial + 1}/{trials}"
        if trial:
            analog.reprogram(trial)
        accuracies.append(_correct(analog, images, labels, analog_batch, where, tick)
                          / len(images))
    if progress is not None:
        progress(1.0, "done")
    mean = sum(accuracies) / trials
    std = math.sqrt(sum((a - mean) ** 2 for a in accuracies) / (trials - 1)) if trials > 1 else 0.0
    return EvaluationResult(
        **layer_inventory(model),
        accuracies=accuracies, accuracy_mean=mean, accuracy_std=std,
        float_accuracy=float_correct / len(images), trials=trials, images=len(images),
        counters=analog.counters(), seconds=time.perf_counter() - start,
        setup_seconds=setup_seconds, config=cfg.summary(), calibration=calibration_source,
        cost=estimate(analog, cfg).to_dict())
