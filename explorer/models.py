"""Networks used in crossbar papers and loading of their trained weights.

* ``lenet5`` – classic LeNet-5 (6-16-120-84-10, ReLU, max-pool) for 1×28×28 digits.
* ``vgg8`` – the VGG-8-style CIFAR-10 net used by NeuroSim (128-128-256-256-512-512 conv, 1024 fc).
* ``resnet20`` – He et al.'s CIFAR ResNet-20 (option-A identity shortcuts).

CIFAR models normalise their [0, 1] inputs internally (``InputNormalize``), so every
dataset in :mod:`explorer.data` feeds [0, 1] images to every model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from explorer.errors import CheckpointMismatchError, InputError
from explorer.paths import assets_dir

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class InputNormalize(nn.Module):
    """Per-channel ``(x - mean) / std``; digital pre-processing, never mapped to a crossbar."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class LeNet5(nn.Module):
    """LeNet-5 for 1×28×28 inputs in [0, 1]: conv5(6)-pool-conv5(16)-pool-fc120-fc84-fc10."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class VGG8(nn.Module):
    """VGG-8-style CIFAR-10 network (NeuroSim's): 6 conv layers, 2 fully connected."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.normalize = InputNormalize(CIFAR10_MEAN, CIFAR10_STD)

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                    nn.ReLU(inplace=True)]

        self.features = nn.Sequential(
            *block(3, 128), *block(128, 128), nn.MaxPool2d(2),
            *block(128, 256), *block(256, 256), nn.MaxPool2d(2),
            *block(256, 512), *block(512, 512), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(512 * 4 * 4, 1024), nn.ReLU(inplace=True),
            nn.Linear(1024, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalize(x)))


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.stride = stride
        self.pad = c_out - c_in

    def _shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1 and self.pad == 0:
            return x
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self._shortcut(x))


class ResNet20(nn.Module):
    """CIFAR ResNet-20 (3 stages × 3 basic blocks, 16/32/64 channels, option-A shortcuts)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.normalize = InputNormalize(CIFAR10_MEAN, CIFAR10_STD)
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers: list[nn.Module] = []
        c_in = 16
        for c_out, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(3):
                layers.append(_BasicBlock(c_in, c_out, stride if i == 0 else 1))
                c_in = c_out
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(self.normalize(x))))
        x = self.layers(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


@dataclass(frozen=True)
class ModelSpec:
    """A network family: how to build it, the input shape it expects, its default dataset."""

    name: str
    build: Callable[[], nn.Module]
    input_shape: tuple[int, int, int]
    dataset: str
    description: str


MODELS: dict[str, ModelSpec] = {
    "lenet5": ModelSpec("lenet5", LeNet5, (1, 28, 28), "mnist-embedded",
                        "LeNet-5, 61.7k weights, for 28×28 digits"),
    "vgg8": ModelSpec("vgg8", VGG8, (3, 32, 32), "cifar10",
                      "VGG-8-style CIFAR-10 net (NeuroSim), 12.9M weights"),
    "resnet20": ModelSpec("resnet20", ResNet20, (3, 32, 32), "cifar10",
                          "ResNet-20 for CIFAR-10, 0.27M weights"),
}

# Pretrained checkpoints: name -> (architecture, file in assets/).
PRETRAINED: dict[str, tuple[str, str]] = {
    "lenet5-mnist": ("lenet5", "lenet5_mnist.pt"),
    "vgg8-cifar10": ("vgg8", "vgg8_cifar10.pt"),
    "resnet20-cifar10": ("resnet20", "resnet20_cifar10.pt"),
}


def resolve_device(name: str | torch.device) -> torch.device:
    """A torch device this machine has (``cpu``, ``cuda``, ``cuda:1``), or a clear error."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise InputError(f"device: unknown torch device {str(name)!r}; use cpu or cuda") from None
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"device: {str(name)!r} is not supported; use cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device: cuda was asked for but no CUDA GPU is available; use cpu")
    return device


def build_model(name: str) -> nn.Module:
    """A freshly initialised network by architecture name (``lenet5``, ``vgg8``, ``resnet20``)."""
    if name not in MODELS:
        raise InputError(f"model: unknown architecture {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name].build()


def architecture_of(name: str) -> str:
    """The architecture behind a model name: a pretrained name, an architecture, or a path."""
    if name in PRETRAINED:
        return PRETRAINED[name][0]
    if name in MODELS:
        return name
    raise InputError(
        f"model: unknown model {name!r}; choose one of {sorted(PRETRAINED)} or {sorted(MODELS)}, "
        "or give a checkpoint path"
    )


def read_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint file safely (``weights_only=True``); returns a dict.

    A bare state dict is wrapped as ``{"state_dict": ...}``. Files written by
    ``explorer train`` also carry ``architecture`` and training metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"model: checkpoint file {str(path)!r} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, unsafe pickle
        raise CheckpointMismatchError(
            f"model: {str(path)!r} is not a readable torch checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200]})"
        ) from None
    if not isinstance(obj, dict):
        raise CheckpointMismatchError(f"model: {str(path)!r} holds a {type(obj).__name__}, "
                                      "not a state dict")
    if "state_dict" not in obj:
        obj = {"state_dict": obj}
    return obj


def load_state_checked(model: nn.Module, state_dict: dict, source: str = "checkpoint") -> None:
    """Load ``state_dict`` into ``model``; a mismatch raises one clear error naming it."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    wrong = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and hasattr(state_dict[k], "shape")
        and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append("shape mismatch: " + ", ".join(wrong[:3]))
        if missing:
            parts.append("missing: " + ", ".join(missing[:3]))
        if unexpected:
            parts.append("unexpected: " + ", ".join(unexpected[:3]))
        raise CheckpointMismatchError(
            f"model: {source} does not fit {type(model).__name__} (" + "; ".join(parts) + ")"
        )
    model.load_state_dict(state_dict)


def load_pretrained(name: str = "lenet5-mnist", device: str | torch.device = "cpu") -> nn.Module:
    """A trained network in eval mode.

    ``name`` is a pretrained name (``lenet5-mnist``; CIFAR-10 weights when present in
    ``assets/``) or the path of a checkpoint written by ``explorer train`` (or a bare
    state dict plus an architecture prefix ``ARCH:PATH``, e.g. ``lenet5:my.pt``).
    """
    ckpt, path = read_named_checkpoint(name)
    return network_from_checkpoint(ckpt, path).to(device).eval()


def read_named_checkpoint(name: str) -> tuple[dict, Path]:
    """The checkpoint (dict, see :func:`read_checkpoint`) behind a name as
    :func:`load_pretrained` takes it, and its path; the architecture a pretrained name or
    an ``ARCH:`` prefix gives is filled in where the file does not say it."""
    arch, path = _resolve_checkpoint(name)
    ckpt = read_checkpoint(path)
    if arch is not None:
        ckpt.setdefault("architecture", arch)
    return ckpt, path


def network_from_checkpoint(ckpt: dict, path: str | Path) -> nn.Module:
    """The network of a checkpoint read from ``path`` (its ``state_dict``), eval mode, CPU."""
    arch = ckpt.get("architecture")
    if arch is None and isinstance(ckpt.get("model"), str):
        raise InputError(
            f"model: checkpoint {str(path)!r} was trained from {ckpt['model']}; evaluate it "
            f"with --model {ckpt['model']} --weights {path}")
    if arch is None:
        raise InputError(
            f"model: checkpoint {str(path)!r} does not say its architecture; "
            f"give it as ARCH:PATH with ARCH one of {sorted(MODELS)}"
        )
    model = build_model(arch)
    load_state_checked(model, ckpt["state_dict"], source=f"checkpoint {Path(path).name!r}")
    return model.eval()


def _resolve_checkpoint(name: str) -> tuple[str | None, Path]:
    if name in PRETRAINED:
        arch, filename = PRETRAINED[name]
        path = assets_dir() / filename
        if not path.is_file():
            raise InputError(
                f"model: no weights for {name!r} in {assets_dir()}; train them with "
                f"`explorer train --model {arch} --data {MODELS[arch].dataset} --out {path}`"
            )
        return arch, path
    arch_prefix, sep, rest = name.partition(":")
    if sep and arch_prefix in MODELS:
        return arch_prefix, Path(rest)
    if Path(name).suffix in {".pt", ".pth"} or Path(name).exists():
        return None, Path(name)
    architecture_of(name)  # raises the "unknown model" message
    raise InputError(f"model: {name!r} is an architecture, not trained weights; "
                     f"pretrained: {sorted(PRETRAINED)}")


def analog_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The (name, module) pairs a crossbar holds: every Conv1d, Conv2d and Linear called as
    a layer (:func:`explorer.coverage.analog_children`), in order."""
    from explorer.coverage import analog_children

    return [(name, child) for name, _, _, child in analog_children(model)]


def load_network(name: str, weights: str = "", allow_code: bool = False
                 ) -> tuple[nn.Module, dict]:
    """The network ``name`` gives, eval mode, CPU, and its checkpoint (:func:`model_checkpoint`):
    a pretrained name, a checkpoint path, ``ARCH:PATH``, ``FILE.py:FUNCTION`` (runs user
    code: only with ``allow_code``) or a ``torch.export`` file ``FILE.pt2``
    (:mod:`explorer.user_models`). ``weights``: a state dict file loaded on top."""
    from explorer.user_models import (
        is_code_model,
        is_exported_model,
        load_code_model,
        load_exported_model,
        load_weights,
    )

    ckpt = None
    if is_code_model(name):
        model = load_code_model(name, allow_code=allow_code)
    elif is_exported_model(name):
        model = load_exported_model(name)
    else:
        ckpt, path = read_named_checkpoint(name)
        model = network_from_checkpoint(ckpt, path)
    if weights:
        load_weights(model, weights)
    return model.eval(), model_checkpoint(name, weights) if ckpt is None else ckpt


def model_checkpoint(name: str, weights: str = "") -> dict:
    """The checkpoint behind a model: a named checkpoint's; for a network the user brings,
    its ``--weights`` file when that is a checkpoint of ``explorer train`` (it records the
    crossbar trained for), else ``{}``."""
    from explorer.user_models import is_user_model, read_weights_file

    if not is_user_model(name):
        return read_named_checkpoint(name)[0]
    if weights:
        stored = read_weights_file(weights)
        if isinstance(stored.get("state_dict"), dict) and "method" in stored:
            return stored
    return {}
