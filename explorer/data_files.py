"""A user's own images: ``imagefolder:DIR`` and ``npz:FILE`` (see :mod:`explorer.data`).

* ``imagefolder:DIR`` – torchvision's ``ImageFolder`` layout, one sub-folder per class.
  ``DIR/train`` and ``DIR/test`` (or ``DIR/val``) hold the two splits when present; else
  ``DIR`` is one split and ``split_fraction`` divides it. Images are decoded to RGB (or L
  when every image is greyscale) uint8; ``input_size`` resizes them (bilinear) as they are
  read, otherwise they must all have one size.
* ``npz:FILE`` – ``x`` float [N, C, H, W] (used as given) or uint8 [N, H, W] / [N, H, W, C]
  (0…255), ``y`` integer [N] ≥ 0; one split, divided by ``split_fraction``. A file with
  ``x_train``/``y_train``/``x_test``/``y_test`` holds both splits.

One split is divided by a fixed-seed shuffle (:data:`SPLIT_SEED`): the first
``split_fraction`` of the shuffled images is the training split (calibration), the rest is
scored – the two never overlap.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from explorer.data import ImageDataset
from explorer.errors import InputError

SPLIT_SEED = 0
TEST_FOLDERS = ("test", "val")
MAX_CLASSES = 100_000


class FloatImageDataset(ImageDataset):
    """An :class:`ImageDataset` of float32 images used as given (not divided by 255)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, name: str,
                 classes: Sequence[str], split: str = "test") -> None:
        if not images.is_floating_point() or images.dim() != 4:
            raise InputError(f"{name}: float images must be [N, C, H, W], got {images.dtype} "
                             f"with shape {tuple(images.shape)}")
        super().__init__(torch.zeros((len(images), 1, 1, 1), dtype=torch.uint8), labels,
                         name=name, classes=classes, split=split)
        self.images = images.float()

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        i = operator.index(index)
        return self.images[i], int(self.labels[i])

    def batches(self, batch_size: int, device: str | torch.device | None = None
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Consecutive batches (float32 [B, C, H, W] as stored, int64 [B])."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        for start in range(0, len(self), batch_size):
            yield (self.images[start:start + batch_size].to(device),
                   self.labels[start:start + batch_size].to(device))


def split_indices(count: int, split: str, fraction: float | None, name: str) -> np.ndarray:
    """The indices of ``split`` in a one-split file of ``count`` items."""
    if fraction is None:
        raise InputError(f"{name}: holds one split only; give --split-fraction F (a fraction "
                         "F of its images calibrates the converters, the rest is scored)")
    if not 0.0 < fraction < 1.0:
        raise InputError(f"--split-fraction: {fraction} is outside (0, 1)")
    order = np.random.default_rng(SPLIT_SEED).permutation(count)
    cut = round(fraction * count)
    if cut < 1 or cut >= count:
        raise InputError(f"--split-fraction: {fraction} of {count} images leaves a split "
                         "empty")
    return np.sort(order[:cut] if split == "train" else order[cut:])


def _classes(labels: np.ndarray, name: str) -> list[str]:
    if labels.size and int(labels.min()) < 0:
        raise InputError(f"{name}: labels must be >= 0, found {int(labels.min())}")
    top = int(labels.max()) + 1 if labels.size else 1
    if top > MAX_CLASSES:
        raise InputError(f"{name}: labels reach {top - 1}; at most {MAX_CLASSES} classes")
    return [str(i) for i in range(top)]


# --------------------------------------------------------------------------- npz


def load_npz(name: str, split: str, split_fraction: float | None) -> ImageDataset:
    """``split`` of ``npz:FILE`` (see the module docstring)."""
    path = Path(name.partition(":")[2]).expanduser()
    if not path.is_file():
        raise InputError(f"{name}: the file {str(path)!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as stored:
            keys = set(stored.files)
            if {"x_train", "y_train", "x_test", "y_test"} <= keys:
                x, y = np.asarray(stored[f"x_{split}"]), np.asarray(stored[f"y_{split}"])
                pick = None
            elif {"x", "y"} <= keys:
                x, y = np.asarray(stored["x"]), np.asarray(stored["y"])
                pick = split_indices(len(y), split, split_fraction, name)
            else:
                raise InputError(f"{name}: expected arrays 'x' (images) and 'y' (labels), "
                                 f"found {sorted(keys) or 'none'}")
    except (OSError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{name}: not a readable .npz file ({exc})") from None
    images, labels = _npz_arrays(name, x, y)
    classes = _classes(labels, name)  # over the whole file, so both splits agree
    if pick is not None:
        images, labels = images[pick], labels[pick]
    if images.dtype == np.uint8:
        return ImageDataset(torch.from_numpy(np.ascontiguousarray(images)),
                            torch.from_numpy(labels), name=name, classes=classes, split=split)
    return FloatImageDataset(torch.from_numpy(np.ascontiguousarray(images)),
                             torch.from_numpy(labels), name=name, classes=classes, split=split)


def _npz_arrays(name: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise InputError(f"{name}: 'y' must be integer labels [N], got {y.dtype} with shape "
                         f"{list(y.shape)}")
    if x.dtype == np.uint8:
        if x.ndim == 3:
            x = x[:, None]
        elif x.ndim == 4 and x.shape[-1] in (1, 3, 4):
            x = x.transpose(0, 3, 1, 2)
        else:
            raise InputError(f"{name}: uint8 'x' must be [N, H, W] or [N, H, W, C] (C 1, 3 "
                             f"or 4), got shape {list(x.shape)}")
    elif np.issubdtype(x.dtype, np.floating):
        if x.ndim != 4:
            raise InputError(f"{name}: float 'x' must be [N, C, H, W], got shape "
                             f"{list(x.shape)}")
        if not np.isfinite(x).all():
            raise InputError(f"{name}: float 'x' holds NaN or infinite values")
        x = x.astype(np.float32, copy=False)
    else:
        raise InputError(f"{name}: 'x' must be float [N, C, H, W] or uint8 [N, H, W] / "
                         f"[N, H, W, C], got {x.dtype}")
    if len(x) != len(y):
        raise InputError(f"{name}: {len(x)} images in 'x' but {len(y)} labels in 'y'")
    if len(y) == 0:
        raise InputError(f"{name}: holds no images")
    return x, y.astype(np.int64)


# --------------------------------------------------------------------------- ImageFolder


def load_image_folder(name: str, split: str, split_fraction: float | None,
                      input_size: int | None) -> ImageDataset:
    """``split`` of ``imagefolder:DIR`` (see the module docstring)."""
    root = Path(name.partition(":")[2]).expanduser()
    if not root.is_dir():
        raise InputError(f"{name}: the folder {str(root)!r} does not exist")
    test_dir = next((root / t for t in TEST_FOLDERS if (root / t).is_dir()), None)
    if (root / "train").is_dir() and test_dir is not None:
        folder, pick = (root / "train" if split == "train" else test_dir), None
        samples, classes = _scan(folder, name)
    else:
        samples, classes = _scan(root, name)
        pick = split_indices(len(samples), split, split_fraction, name)
        samples = [samples[i] for i in pick]
    images, labels = _read_images(samples, name, input_size)
    return ImageDataset(images, labels, name=name, classes=classes, split=split)


def _scan(folder: Path, name: str) -> tuple[list[tuple[str, int]], list[str]]:
    from torchvision.datasets import ImageFolder

    try:
        found = ImageFolder(str(folder), loader=lambda path: path)
    except (FileNotFoundError, RuntimeError) as exc:
        raise InputError(f"{name}: no images in {str(folder)!r} (expected one sub-folder per "
                         f"class holding .png/.jpg files; {str(exc).splitlines()[0]})") from None
    if not found.samples:
        raise InputError(f"{name}: no images in {str(folder)!r}")
    return list(found.samples), list(found.classes)


def _read_images(samples: list[tuple[str, int]], name: str,
                 input_size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    from PIL import Image, UnidentifiedImageError

    pictures = []
    for path, _ in samples:
        try:
            with Image.open(path) as img:
                img.load()
                pictures.append(img.copy())
        except (OSError, UnidentifiedImageError) as exc:
            raise InputError(f"{name}: {path} is not a readable image ({exc})") from None
    mode = "L" if all(p.mode in ("L", "1", "I;16", "I") for p in pictures) else "RGB"
    arrays = []
    for picture in pictures:
        picture = picture.convert(mode)
        if input_size is not None:
            picture = picture.resize((input_size, input_size), Image.Resampling.BILINEAR)
        arrays.append(np.asarray(picture, dtype=np.uint8))
    sizes = {a.shape[:2] for a in arrays}
    if len(sizes) > 1:
        raise InputError(f"{name}: the images have {len(sizes)} different sizes (e.g. "
                         f"{sorted(sizes)[:2]}); give --input-size N to resize them")
    stack = np.stack(arrays)
    stack = stack[:, None] if stack.ndim == 3 else stack.transpose(0, 3, 1, 2)
    labels = torch.tensor([label for _, label in samples], dtype=torch.int64)
    return torch.from_numpy(np.ascontiguousarray(stack)), labels


__all__ = ["SPLIT_SEED", "FloatImageDataset", "load_image_folder", "load_npz", "split_indices"]
