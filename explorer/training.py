"""Training networks for the crossbar.

``float`` training lives here (Adam with a one-cycle schedule and optional small random
affine augmentation). Crossbar-aware methods (``rq``, ``gq``, ``hwa``) plug in through
:data:`METHODS` as they arrive. Training is deterministic for a seed: every random
draw (initialisation, shuffling, augmentation) comes from explicit generators, and the
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
from explorer.data import load_dataset
from explorer.models import MODELS, build_model, load_pretrained

ProgressCallback = Callable[[float, str], None]


class Cancelled(RuntimeError):
    """Raised when a cancel event stops training or evaluation."""


class TrainConfig(param.Parameterized):
    """What to train, on what, for how long."""

    model = param.String(default="lenet5", doc="Architecture (lenet5, vgg8, resnet20) "
                         "or a pretrained name / checkpoint to fine-tune.", label="Model")
    data = param.String(default="mnist-embedded", doc="Dataset name (train split is used).",
                        label="Dataset")
    method = param.Selector(default="float", objects=["float"], doc="Training method.",
                            label="Method")
    epochs = param.Integer(default=40, bounds=(1, 10_000), doc="Passes over the training set.",
                           label="Epochs")
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
    architecture: str
    history: list[dict[str, float]] = field(default_factory=list)
    test_accuracy: float | None = None
    seconds: float = 0.0

    def metadata(self, cfg: TrainConfig) -> dict[str, Any]:
        """Plain-data description stored in the checkpoint next to the weights."""
        return {
            "architecture": self.architecture,
            "method": cfg.method,
            "data": cfg.data,
            "epochs": cfg.epochs,
            "seed": cfg.seed,
            "limit": cfg.limit,
            "test_accuracy": self.test_accuracy,
            "explorer_version": __version__,
        }


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


def _initial_model(cfg: TrainConfig) -> tuple[nn.Module, str]:
    """A fresh architecture, or pretrained weights / a checkpoint to fine-tune."""
    if cfg.model in MODELS:
        return build_model(cfg.model), cfg.model
    model = load_pretrained(cfg.model)
    arch = next(name for name, spec in MODELS.items() if type(model) is spec.build)
    return model, arch


def train(cfg: TrainConfig, progress: ProgressCallback | None = None,
          cancel: threading.Event | None = None) -> TrainResult:
    """Train ``cfg.model`` on the train split of ``cfg.data``; evaluate on its test split."""
    start = time.perf_counter()
    train_set = load_dataset(cfg.data, "train", limit=cfg.limit)
    test_set = load_dataset(cfg.data, "test")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)  # parameter initialisation only; global state restored
        model, arch = _initial_model(cfg)
    model = model.to(cfg.device)
    gen = torch.Generator().manual_seed(cfg.seed)
    steps_per_epoch = math.ceil(len(train_set) / cfg.batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch)
    images_all = train_set.images.float().div_(255)
    labels_all = train_set.labels
    result = TrainResult(model=model, architecture=arch)
    total = cfg.epochs * steps_per_epoch
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(train_set), generator=gen)
        loss_sum, correct = 0.0, 0
        for step in range(steps_per_epoch):
            if cancel is not None and cancel.is_set():
                raise Cancelled("training cancelled")
            idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            images, labels = images_all[idx], labels_all[idx]
            if cfg.augment:
                images = random_affine(images, gen)
            images, labels = images.to(cfg.device), labels.to(cfg.device)
            logits = model(images)
            loss = F.cross_entropy(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_value = float(loss.detach())
            loss_sum += loss_value * len(idx)
            correct += int((logits.argmax(1) == labels).sum())
            if progress is not None:
                done = epoch * steps_per_epoch + step + 1
                progress(done / total, f"epoch {epoch + 1}/{cfg.epochs} loss {loss_value:.3f}")
        result.history.append({"epoch": epoch + 1, "loss": loss_sum / len(train_set),
                               "train_accuracy": correct / len(train_set)})
    result.test_accuracy = accuracy(model, test_set, device=cfg.device)
    result.seconds = time.perf_counter() - start
    return result


def save_checkpoint(path: str | Path, result: TrainResult, cfg: TrainConfig) -> Path:
    """Write weights + metadata atomically (temporary file, then rename): never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
    payload = {**result.metadata(cfg), "state_dict": state}
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
