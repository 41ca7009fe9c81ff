"""Training networks for the crossbar (DESIGN.md §5).

One loop (Adam, one-cycle schedule, optional small random affine augmentation) for
every method in :data:`METHODS`:

* ``float`` – ordinary training;
* ``gq`` – generalized-quantization QAT (seed 002): a learned per-layer codebook of L
  values (L = the device's levels), Lloyd-Max initialised, straight-through assignment;
* ``uq`` – uniform QAT, the baseline of seed 002's comparison: L equally spaced values
  with a learned scale;
* ``rq`` – relaxed quantization (seed 001 / Louizos et al.) of the weights, the inputs
  (DAC) and each row chunk's partial sums (ADC), Gumbel-softmax with the temperature
  annealed from ``temperature_start`` to ``temperature_end``;
* ``hwa`` – hardware-aware fine-tuning: forward through the mapped device levels with
  programming variation and read noise drawn anew each step.

The hardware (device, converters, tiles, noise) is a :class:`~explorer.crossbar.CrossbarConfig`
(``TrainConfig.hardware``), recorded in the checkpoint; :mod:`explorer.deploy` turns a
checkpoint back into a crossbar. The quantizers live in :mod:`explorer.quant` and
:mod:`explorer.qlayers`.

Training is deterministic for a seed: every random draw (initialisation, shuffling,
augmentation, relaxation and device noise) comes from explicit generators, and the
global RNG state is restored afterwards.
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import param
import torch
import torch.nn.functional as F
from torch import nn

from explorer import __version__
from explorer.crossbar import CrossbarConfig, trial_seed
from explorer.data import load_dataset
from explorer.deploy import hardware_spec
from explorer.errors import InputError
from explorer.jobs import JobCancelled
from explorer.models import MODELS, build_model, load_network, resolve_device
from explorer.qlayers import (
    METHODS,
    calibrate_model,
    codebooks,
    initialise_quantizers,
    prepare_model,
    quant_layers,
    set_bypass,
    to_plain,
)
from explorer.quant import annealed_temperature, set_noise
from explorer.settings import WorkloadSettings
from explorer.user_models import is_user_model, load_weights
from explorer.workload import prepare_images

ProgressCallback = Callable[[float, str], None]
AUTO_FUSE_MIN_STEPS = 50
"""Quantized steps from which ``fused_kernels=None`` compiles the rq kernels. Compiling
costs 2-4 s with torch's cache (~20 s without) against ~35 ms saved per LeNet5 step on a
quiet machine; but the unfused kernels' many small parallel loops slow down 10-20x when
other processes load the cores (measured: one 63-step epoch 4.3 s quiet, 60 s loaded;
fused 6.9 s including compiling), so all but the shortest runs compile."""
CALIBRATION_IMAGES = 256
"""Training images (the first ones, not augmented) that set the initial converter ranges."""


class Cancelled(JobCancelled):
    """Raised when a cancel event stops training (a :class:`~explorer.jobs.JobCancelled`, so
    the job runner reports the job as cancelled, not failed)."""


class TrainConfig(param.Parameterized):
    """What to train, on what, for how long."""

    model = param.String(default="lenet5", doc="Architecture (lenet5, vgg8, resnet20), "
                         "a pretrained name / checkpoint to fine-tune, FILE.py:FUNCTION or "
                         "FILE.pt2 (explorer.user_models).", label="Model")
    weights = param.String(default="", label="Weights",
                           doc=WorkloadSettings.param["weights"].doc)
    split_fraction = param.Number(default=None, allow_None=True, bounds=(0, 1),
                                  inclusive_bounds=(False, False), label="Split fraction",
                                  doc=WorkloadSettings.param["split_fraction"].doc)
    input_size = param.Integer(default=None, allow_None=True, bounds=(1, 4096),
                               label="Input size", doc=WorkloadSettings.param["input_size"].doc)
    mean = param.String(default="", label="Input mean", doc=WorkloadSettings.param["mean"].doc)
    std = param.String(default="", label="Input std", doc=WorkloadSettings.param["std"].doc)
    data = param.String(default="mnist-embedded", doc="Dataset name (train split is used).",
                        label="Dataset")
    method = param.Selector(default="float", objects=list(METHODS), label="Method",
                            doc="float; gq (generalized-quantization QAT); uq (uniform QAT); "
                                "rq (relaxed quantization of weights, DAC and ADC); hwa "
                                "(hardware-aware: mapped levels and injected noise).")
    hardware = param.ClassSelector(
        class_=CrossbarConfig, default=CrossbarConfig(), instantiate=True, label="Hardware",
        doc="The crossbar trained for: device levels (gq/uq/rq), DAC/ADC bits and tile rows "
            "(rq), device, mapping and noise (hwa). Recorded in the checkpoint.")
    quant_lr_scale = param.Number(
        default=10.0, bounds=(0.0, 1000.0), label="Quantizer learning-rate factor",
        doc="Learning rate of quantizer parameters (codebooks, log-ranges, log-σ) relative "
            "to the weights'.")
    hwa_ramp = param.Number(
        default=0.5, bounds=(0.0, 1.0), label="HWA ramp",
        doc="hwa: fraction of the training over which the device deviation is blended in "
            "linearly (0 = full deviation from the first step).")
    rq_relaxation = param.Selector(
        default="soft_round", objects=["soft_round", "gumbel"], label="rq relaxation",
        doc="rq: soft_round – logistic noise, then a tempered rounding continuous between "
            "grid points (unbiased gradient); gumbel – Louizos et al.'s Gumbel-softmax over "
            "the two grid points around the value (its gradient averages 0.4–0.6 of the "
            "slope).")
    fused_kernels = param.Boolean(
        default=None, allow_None=True, label="Fused rq kernels",
        doc="rq: run the relaxation in kernels compiled by torch.compile (explorer.relaxation; "
            "about 2.5x faster per step, but compiling costs 2-20 s once per process). "
            f"None: fuse when the run has at least {AUTO_FUSE_MIN_STEPS} quantized steps.")
    temperature_start = param.Number(
        default=1.0, bounds=(0.0, 100.0), inclusive_bounds=(False, True),
        label="Temperature (start)", doc="rq: Gumbel-softmax temperature at the first step.")
    temperature_end = param.Number(
        default=0.1, bounds=(0.0, 100.0), inclusive_bounds=(False, True),
        label="Temperature (end)", doc="rq: temperature at the last step (exponential decay).")
    epochs = param.Integer(default=40, bounds=(1, 10_000), doc="Passes over the training set.",
                           label="Epochs")
    warmup_epochs = param.Integer(
        default=None, allow_None=True, bounds=(0, 10_000), label="Float warm-up epochs",
        doc="Epochs trained in float before the quantizers switch on (they then start from "
            "the warmed-up weights and freshly calibrated ranges). None: a quarter of the "
            "epochs when a quantized method trains an architecture from scratch (its "
            "converters would otherwise clip the tiny early activations and logits), 0 "
            "when fine-tuning a trained network.")
    batch_size = param.Integer(default=128, bounds=(1, 65_536), doc="Images per step.",
                               label="Batch size")
    lr = param.Number(default=3e-3, bounds=(0.0, 10.0), inclusive_bounds=(False, True),
                      doc="Peak learning rate of the one-cycle schedule.", label="Learning rate")
    weight_decay = param.Number(default=1e-4, bounds=(0.0, 1.0), doc="Adam weight decay.",
                                label="Weight decay")
    augment = param.Boolean(default=True, doc="Small random affine augmentation "
                            "(±8° rotation, ±2 px shift, ±8 % scale).", label="Augment")
    seed = param.Integer(default=0, bounds=(0, 2**31 - 1), doc="Seed of every random draw.",
                         label="Seed")
    limit = param.Integer(default=None, allow_None=True, bounds=(1, None),
                          doc="Use only the first N training images (None = all).",
                          label="Limit")
    device = param.String(default="cpu", doc="torch device (cpu, cuda).", label="Device")


@dataclass
class TrainResult:
    """A trained model and how it got there."""

    model: nn.Module
    architecture: str | None
    """A built-in architecture, or None for a network the user brings (``model``)."""
    history: list[dict[str, float]] = field(default_factory=list)
    test_accuracy: float | None = None
    seconds: float = 0.0
    warmup_epochs: int = 0

    def metadata(self, cfg: TrainConfig) -> dict[str, Any]:
        """Plain-data description stored in the checkpoint next to the weights."""
        meta = {
            "architecture": self.architecture,
            "method": cfg.method,
            "data": cfg.data,
            "epochs": cfg.epochs,
            "seed": cfg.seed,
            "limit": cfg.limit,
            "warmup_epochs": self.warmup_epochs,
            "test_accuracy": self.test_accuracy,
            "explorer_version": __version__,
        }
        if self.architecture is None:
            meta["model"] = cfg.model  # the user's network: FILE.py:FUNCTION or FILE.pt2
        if cfg.method != "float":
            meta["hardware"] = hardware_spec(cfg.hardware)
            if cfg.method == "rq":
                meta["temperature"] = [cfg.temperature_start, cfg.temperature_end]
                meta["rq_relaxation"] = cfg.rq_relaxation
        return meta

    def quant_summary(self) -> dict[str, Any]:
        """What the simulator takes from training: per-layer codebooks and learned ranges."""
        ranges = {name: layer.learned_ranges() for name, layer in quant_layers(self.model)}
        return {"codebooks": codebooks(self.model),
                "ranges": {k: v for k, v in ranges.items() if any(x is not None
                                                                  for x in v.values())}}


def random_affine(images: torch.Tensor, generator: torch.Generator, degrees: float = 8.0,
                  shift_px: float = 2.0, scale: float = 0.08) -> torch.Tensor:
    """Random rotation/shift/scale of a batch [B, C, H, W] (one draw per image)."""
    b, _, h, _ = images.shape
    dev = images.device
    angle = (torch.rand(b, generator=generator) * 2 - 1) * math.radians(degrees)
    s = 1 + (torch.rand(b, generator=generator) * 2 - 1) * scale
    t = (torch.rand(b, 2, generator=generator) * 2 - 1) * (2 * shift_px / h)
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack([torch.stack([cos, -sin, t[:, 0]], 1),
                         torch.stack([sin, cos, t[:, 1]], 1)], 1).to(dev)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, align_corners=False, padding_mode="zeros")


@torch.no_grad()
def accuracy(model: nn.Module, dataset, batch_size: int = 500,
             device: str | torch.device = "cpu") -> float:
    """Top-1 accuracy (fraction in [0, 1]) of ``model`` on ``dataset``."""
    model.eval()
    correct = 0
    for images, labels in dataset.batches(batch_size):
        logits = model(images.to(device))
        correct += int((logits.argmax(1).cpu() == labels).sum())
    return correct / max(len(dataset), 1)


class _FloatImages:
    """Prepared float images and labels with :meth:`batches` as
    :class:`~explorer.data.ImageDataset` has it."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, batch_size: int) -> Any:
        for start in range(0, len(self.labels), batch_size):
            yield (self.images[start:start + batch_size],
                   self.labels[start:start + batch_size])


def _initial_model(cfg: TrainConfig) -> tuple[nn.Module, str | None]:
    """A fresh architecture, or pretrained weights / a checkpoint to fine-tune, or a
    network the user brings (architecture None; ``weights`` loaded when given)."""
    if is_user_model(cfg.model):
        return load_network(cfg.model, cfg.weights, allow_code=True)[0], None
    if cfg.model in MODELS:
        model = build_model(cfg.model)
        if cfg.weights:
            load_weights(model, cfg.weights)
        return model, cfg.model
    model = load_network(cfg.model, cfg.weights)[0]
    arch = next(name for name, spec in MODELS.items() if type(model) is spec.build)
    return model, arch


def _from_scratch(cfg: TrainConfig) -> bool:
    """Whether training starts from freshly initialised weights."""
    return (cfg.model in MODELS or is_user_model(cfg.model)) and not cfg.weights


def _inputs(cfg: TrainConfig) -> WorkloadSettings:
    """The input handling (size, mean, std) of ``cfg`` as workload settings."""
    work = WorkloadSettings(input_size=cfg.input_size, mean=cfg.mean, std=cfg.std)
    work.check()
    return work


def _split(cfg: TrainConfig, split: str, limit: int | None = None) -> tuple[Any, torch.Tensor]:
    """The dataset ``split`` of ``cfg.data`` and its images as the network takes them
    (float; resized and normalised as ``cfg`` says)."""
    dataset = load_dataset(cfg.data, split, limit=limit, split_fraction=cfg.split_fraction,
                           input_size=cfg.input_size)
    images = prepare_images(dataset.images, _inputs(cfg))
    return dataset, images.float().div_(255) if images.dtype == torch.uint8 else images


def _warmup_epochs(cfg: TrainConfig) -> int:
    """Float warm-up epochs: the configured number, else a quarter of the epochs for a
    quantized method on a fresh architecture, 0 otherwise (float, fine-tuning)."""
    if cfg.method == "float":
        return 0
    if cfg.warmup_epochs is None:
        return cfg.epochs // 4 if _from_scratch(cfg) else 0
    if cfg.warmup_epochs >= cfg.epochs:
        raise InputError(f"warmup_epochs: must be below epochs ({cfg.epochs}) so that "
                         f"{cfg.method} trains quantized at all, got {cfg.warmup_epochs}")
    return cfg.warmup_epochs


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam; weight decay on the network's weights; quantizer parameters (codebooks,
    log-ranges, log-σ) without decay and at ``quant_lr_scale`` × the learning rate."""
    quant = [p for n, p in model.named_parameters() if "_quant." in n]
    ids = {id(p) for p in quant}
    net = [p for p in model.parameters() if id(p) not in ids]
    groups: list[dict[str, Any]] = [{"params": net}]
    if quant:
        groups.append({"params": quant, "weight_decay": 0.0,
                       "lr": cfg.lr * cfg.quant_lr_scale})
    return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


class Trainer:
    """One training run, prepared: data, network with the method's quantizers (ranges
    calibrated), optimizer and schedule. :meth:`run_epoch` runs one pass; :func:`train`
    runs them all (the benchmark times single epochs)."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        resolve_device(cfg.device)
        train_set, images = _split(cfg, "train", cfg.limit)
        self.size = len(train_set)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)  # parameter initialisation only; global state restored
            model, self.architecture = _initial_model(cfg)
        self.warmup_epochs = _warmup_epochs(cfg)
        self.model = prepare_model(model, cfg.method, cfg.hardware).to(cfg.device)
        self.generator = torch.Generator().manual_seed(cfg.seed)  # shuffling, augmentation
        self.images = images
        self.labels = train_set.labels
        calibrate_model(self.model, self.calibration_images())
        set_bypass(self.model, self.warmup_epochs > 0)
        noise = torch.Generator(device=cfg.device).manual_seed(trial_seed(cfg.seed, 0, 2))
        self.steps_per_epoch = math.ceil(self.size / cfg.batch_size)
        self.total_steps = cfg.epochs * self.steps_per_epoch
        quantized_steps = (cfg.epochs - self.warmup_epochs) * self.steps_per_epoch
        fused = cfg.fused_kernels if cfg.fused_kernels is not None else \
            quantized_steps >= AUTO_FUSE_MIN_STEPS
        set_noise(self.model, temperature=cfg.temperature_start, generator=noise,
                  relaxation=cfg.rq_relaxation, fused=fused)
        self.optimizer = _optimizer(self.model, cfg)
        self.schedule = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=[group["lr"] for group in self.optimizer.param_groups],
            total_steps=self.total_steps)

    def calibration_images(self) -> torch.Tensor:
        """The first training images (not augmented) that set the converter ranges."""
        return self.images[:CALIBRATION_IMAGES].to(self.cfg.device)

    @property
    def quantizing(self) -> bool:
        """False during the float warm-up."""
        return not any(layer.bypass for _, layer in quant_layers(self.model))

    def run_epoch(self, epoch: int, progress: ProgressCallback | None = None,
                  cancel: threading.Event | None = None) -> dict[str, float]:
        """One pass over the training images (``epoch`` counts from 0); returns the
        epoch's mean loss and training accuracy."""
        cfg, model = self.cfg, self.model
        if epoch >= self.warmup_epochs and not self.quantizing:
            initialise_quantizers(model, self.calibration_images())
            set_bypass(model, False)
        model.train()
        order = torch.randperm(self.size, generator=self.generator)
        loss_sum, correct = 0.0, 0
        first = self.warmup_epochs * self.steps_per_epoch  # first quantized step
        for step in range(self.steps_per_epoch):
            if cancel is not None and cancel.is_set():
                raise Cancelled("training cancelled")
            done = epoch * self.steps_per_epoch + step
            fraction = max(done - first, 0) / max(self.total_steps - first - 1, 1)
            if cfg.method == "rq":
                set_noise(model, temperature=annealed_temperature(
                    fraction, cfg.temperature_start, cfg.temperature_end))
            elif cfg.method == "hwa":
                set_noise(model, blend=fraction / cfg.hwa_ramp if cfg.hwa_ramp else 1.0)
            idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            images, labels = self.images[idx], self.labels[idx]
            if cfg.augment:
                images = random_affine(images, self.generator)
            images, labels = images.to(cfg.device), labels.to(cfg.device)
            logits = model(images)
            loss = F.cross_entropy(logits, labels)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if done < self.total_steps:
                self.schedule.step()
            loss_value = float(loss.detach())
            loss_sum += loss_value * len(idx)
            correct += int((logits.argmax(1) == labels).sum())
            if progress is not None:
                seen = min((step + 1) * cfg.batch_size, self.size)
                phase = "" if self.quantizing else " (float warm-up)"
                progress((done + 1) / self.total_steps,
                         f"epoch {epoch + 1}/{cfg.epochs}{phase} loss {loss_value:.3f} "
                         f"train acc {100 * correct / seen:.1f} %")
        return {"epoch": epoch + 1, "loss": loss_sum / self.size,
                "train_accuracy": correct / self.size}


def train(cfg: TrainConfig, progress: ProgressCallback | None = None,
          cancel: threading.Event | None = None) -> TrainResult:
    """Train ``cfg.model`` with ``cfg.method`` on the train split of ``cfg.data``;
    evaluate on its test split (for quantized methods: the deterministic eval-mode network).

    ``progress(fraction, message)`` after every step; setting ``cancel`` raises
    :class:`Cancelled` before the next step.
    """
    start = time.perf_counter()
    trainer = Trainer(cfg)
    result = TrainResult(model=trainer.model, architecture=trainer.architecture,
                         warmup_epochs=trainer.warmup_epochs)
    for epoch in range(cfg.epochs):
        result.history.append(trainer.run_epoch(epoch, progress, cancel))
    test, images = _split(cfg, "test")
    result.test_accuracy = accuracy(trainer.model, _FloatImages(images, test.labels),
                                    device=cfg.device)
    result.seconds = time.perf_counter() - start
    return result


def _cpu_state(model: nn.Module) -> dict[str, Any]:
    return {k: (v.detach().cpu() if isinstance(v, torch.Tensor) else v)
            for k, v in model.state_dict().items()}


def save_checkpoint(path: str | Path, result: TrainResult, cfg: TrainConfig) -> Path:
    """Write weights + metadata atomically (temporary file, then rename): never half-written.

    ``state_dict`` holds the plain network with the effective weights (loadable by
    :func:`explorer.models.load_pretrained`); quantized methods add ``train_state``
    (latent weights and quantizer parameters), ``quant`` (codebooks, learned ranges)
    and ``hardware`` (see :mod:`explorer.deploy`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = result.model
    payload = {**result.metadata(cfg), "history": result.history}
    if quant_layers(model):
        payload["train_state"] = _cpu_state(model)
        payload["quant"] = result.quant_summary()
        model = to_plain(model)
    payload["state_dict"] = _cpu_state(model)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a checkpoint is an ordinary file
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
