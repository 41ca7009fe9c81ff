"""Datasets: the embedded MNIST asset, the IDX and CIFAR-10 readers on files written in the
real on-disk formats, torchvision's download path against a local HTTP server, and the
messages for missing or malformed data."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import pickle
import re
import socket
import struct
import threading
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from explorer.data import (
    CIFAR10_CLASSES,
    DATASETS,
    ImageDataset,
    load_dataset,
    read_cifar_batch,
    read_idx,
)
from explorer.errors import DatasetMissingError, InputError
from explorer.paths import assets_dir

# --------------------------------------------------------------------------- helpers


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """An IDX file: 0x0000, type byte, number of dims, big-endian uint32 dims, data."""
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array).tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    data = idx_bytes(array.astype(np.uint8))
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def digits(n: int, seed: int, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, size, size), dtype=np.uint8),
            rng.integers(0, 10, n, dtype=np.uint8))


def write_mnist_folder(folder: Path, n_train: int = 30, n_test: int = 20, gz: bool = False
                       ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, prefix, n, seed in (("train", "train", n_train, 1), ("test", "t10k", n_test, 2)):
        images, labels = digits(n, seed)
        suffix = ".gz" if gz else ""
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images, gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gz)
        out[split] = (images, labels)
    return out


class _Py2Pickler(pickle._Pickler):  # type: ignore[misc] # pure-Python pickler, extensible
    """Pickles like Python 2's cPickle did for CIFAR-10: byte and text strings as py2 ``str``."""

    dispatch: ClassVar[dict] = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def _save_py2_str(self, obj: bytes | str) -> None:
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str


def py2_pickle(obj: object) -> bytes:
    """``obj`` as the original CIFAR-10 files store it (protocol 2, numpy 1.x module names)."""
    import io

    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")


def write_cifar_folder(root: Path, per_batch: int = 6, meta: bool = True
                       ) -> dict[str, tuple[np.ndarray, list[int]]]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    batches = {}
    for k, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        batch = {"batch_label": f"batch {k + 1} of 5", "labels": labels, "data": data,
                 "filenames": [f"img_{k}_{i}.png" for i in range(per_batch)]}
        (folder / name).write_bytes(py2_pickle(batch))
        batches[name] = (data, labels)
    if meta:
        names = ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
        (folder / "batches.meta").write_bytes(py2_pickle(
            {"num_cases_per_batch": per_batch, "label_names": names, "num_vis": 3072}))
    return batches


@pytest.fixture
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "explorer-data"
    monkeypatch.setenv("EXPLORER_DATA", str(home))
    return home


# --------------------------------------------------------------------------- embedded MNIST


def test_embedded_split_sizes_shapes_and_classes():
    train = load_dataset("mnist-embedded", "train")
    test = load_dataset("mnist-embedded", "test")
    assert (len(train), len(test)) == (4000, 1000)
    for ds, per_class in ((train, 400), (test, 100)):
        assert ds.images.dtype == torch.uint8 and ds.images.shape[1:] == (1, 28, 28)
        assert ds.labels.dtype == torch.int64
        assert ds.shape == (1, 28, 28) and ds.num_classes == 10 and ds.name == "mnist-embedded"
        assert torch.bincount(ds.labels, minlength=10).tolist() == [per_class] * 10
        # the split is shuffled: the first 100 samples already cover every class
        assert set(ds.labels[:100].tolist()) == set(range(10))


def test_embedded_is_deterministic_disjoint_and_real_digits():
    a, b = load_dataset("mnist-embedded", "test"), load_dataset("mnist-embedded", "test")
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    with np.load(assets_dir() / "mnist_embedded.npz") as stored:
        train_rows, test_rows = stored["index_train"], stored["index_test"]
    rows = np.concatenate([train_rows, test_rows])
    assert len(np.unique(rows)) == 5000 and rows.min() == 0 and rows.max() == 4999
    # real MNIST statistics: ~13 % mean ink, black borders, full 0..255 range
    mean = a.images.float().mean().item() / 255
    assert 0.10 < mean < 0.16
    assert a.images[:, :, 0, :].max() == 0 and a.images.max() == 255


def test_embedded_sha256_matches_assets_readme():
    text = (assets_dir() / "README.md").read_text(encoding="utf-8")
    section = text.split("## mnist_embedded.npz", 1)[1].split("\n## ", 1)[0]
    stated = re.search(r"\*\*sha256\*\* of `mnist_embedded\.npz`[^`]*`([0-9a-f]{64})`", section)
    assert stated, "assets/README.md states no sha256 for mnist_embedded.npz"
    digest = hashlib.sha256((assets_dir() / "mnist_embedded.npz").read_bytes()).hexdigest()
    assert digest == stated.group(1)


def test_items_batches_and_dataloader_are_float_in_unit_range():
    ds = load_dataset("mnist-embedded", "test", limit=250)
    image, label = ds[3]
    assert image.dtype == torch.float32 and image.shape == (1, 28, 28)
    assert isinstance(label, int) and label == int(ds.labels[3])
    assert torch.equal(image, ds.images[3].float() / 255)
    batches = list(ds.batches(100))
    assert [len(y) for _, y in batches] == [100, 100, 50]
    x = torch.cat([b for b, _ in batches])
    assert x.dtype == torch.float32 and x.min() >= 0.0 and x.max() <= 1.0 and x.max() == 1.0
    assert torch.equal(x, ds.images.float() / 255)
    assert torch.equal(torch.cat([y for _, y in batches]), ds.labels)
    assert batches[0][1].dtype == torch.int64
    xb, yb = next(iter(torch.utils.data.DataLoader(ds, batch_size=8)))
    assert xb.shape == (8, 1, 28, 28) and torch.equal(yb, ds.labels[:8])


def test_limit_takes_the_first_samples():
    full = load_dataset("mnist-embedded", "train")
    part = load_dataset("mnist-embedded", "train", limit=37)
    assert len(part) == 37 and torch.equal(part.images, full.images[:37])
    assert torch.equal(part.labels, full.labels[:37])


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"name": "mnist-big"}, "mnist-embedded, mnist, fashion-mnist, cifar10, idx:DIR"),
    ({"name": "mnist-embedded", "split": "val"}, "split must be 'train' or 'test'"),
    ({"name": "mnist-embedded", "limit": 0}, "limit must be a positive integer"),
    ({"name": "mnist-embedded", "limit": -5}, "limit must be a positive integer"),
    ({"name": "mnist-embedded", "limit": 2.5}, "limit must be a positive integer"),
    ({"name": "mnist-embedded", "limit": True}, "limit must be a positive integer"),
    ({"name": "mnist-embedded", "limit": 1001}, "between 1 and 1000"),
    ({"name": "idx:"}, "needs a folder"),
])
def test_bad_arguments_name_the_field(kwargs, fragment):
    with pytest.raises(InputError, match=re.escape(fragment)):
        load_dataset(**kwargs)


def test_bad_batch_size_and_registry():
    ds = load_dataset("mnist-embedded", limit=5)
    for bad in (0, -1, 2.0):
        with pytest.raises(InputError, match="batch_size must be a positive integer"):
            next(ds.batches(bad))
    assert set(DATASETS) == {"mnist-embedded", "mnist", "fashion-mnist", "cifar10", "idx:DIR",
                             "imagefolder:DIR", "npz:FILE"}
    assert all(isinstance(v, str) and v for v in DATASETS.values())


def test_image_dataset_rejects_inconsistent_tensors():
    images = torch.zeros(4, 1, 2, 2, dtype=torch.uint8)
    with pytest.raises(InputError, match="uint8"):
        ImageDataset(images.float(), torch.zeros(4, dtype=torch.int64), name="x", classes="ab")
    with pytest.raises(InputError, match="4 images but 3 labels"):
        ImageDataset(images, torch.zeros(3, dtype=torch.int64), name="x", classes="ab")
    with pytest.raises(InputError, match=re.escape("0..1")):
        ImageDataset(images, torch.tensor([0, 1, 2, 0]), name="x", classes="ab")


# --------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path: Path, gz: bool):
    images, labels = digits(7, seed=5, size=9)
    assert np.array_equal(read_idx(write_idx(tmp_path / "im", images, gz)), images)
    assert np.array_equal(read_idx(write_idx(tmp_path / "lb", labels, gz)), labels)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_loads_both_splits(tmp_path: Path, gz: bool):
    written = write_mnist_folder(tmp_path / "digits", gz=gz)
    for split in ("train", "test"):
        ds = load_dataset(f"idx:{tmp_path / 'digits'}", split)
        images, labels = written[split]
        assert ds.images.shape == (len(images), 1, 28, 28) and ds.images.dtype == torch.uint8
        assert np.array_equal(ds.images[:, 0].numpy(), images)
        assert ds.labels.tolist() == labels.tolist() and ds.split == split


def test_idx_folder_accepts_dotted_names(tmp_path: Path):
    images, labels = digits(5, seed=9)
    write_idx(tmp_path / "t10k-images.idx3-ubyte", images)
    write_idx(tmp_path / "t10k-labels.idx1-ubyte.gz", labels, gz=True)
    assert load_dataset(f"idx:{tmp_path}").labels.tolist() == labels.tolist()


def _malformed(tmp_path: Path, kind: str) -> tuple[Path, str]:
    images, _ = digits(4, seed=4)
    good = idx_bytes(images)
    path = tmp_path / "t10k-images-idx3-ubyte"
    if kind == "bad magic":
        path.write_bytes(b"\x1f\x00" + good[2:])
        return path, "not an IDX file"
    if kind == "png":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + good)
        return path, "magic number 0x89504e47"
    if kind == "truncated data":
        path.write_bytes(good[:-10])
        return path, "truncated IDX file"
    if kind == "truncated header":
        path.write_bytes(good[:9])
        return path, "truncated IDX file: the header needs 16 bytes"
    if kind == "trailing bytes":
        path.write_bytes(good + b"\x00\x01")
        return path, "2 bytes follow"
    if kind == "float type":
        path.write_bytes(idx_bytes(images.astype(np.float32), type_code=0x0D))
        return path, "0x0d (float) is not supported"
    if kind == "bad gzip":
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(good)[:-20])
        return path, "damaged gzip file"
    if kind == "labels as images":
        path.write_bytes(idx_bytes(np.zeros(4, np.uint8)))
        return path, "has 3 dimensions"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["bad magic", "png", "truncated data", "truncated header",
                                  "trailing bytes", "float type", "bad gzip",
                                  "labels as images"])
def test_malformed_idx_names_the_file(tmp_path: Path, kind: str):
    path, fragment = _malformed(tmp_path, kind)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(InputError, match=re.escape(fragment)) as info:
        load_dataset(f"idx:{tmp_path}")
    assert str(path) in str(info.value)


def test_idx_count_mismatch_names_both_files(tmp_path: Path):
    images, labels = digits(6, seed=6)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels[:5])
    with pytest.raises(InputError, match="t10k-images-idx3-ubyte holds 6 images but "
                                         "t10k-labels-idx1-ubyte holds 5 labels"):
        load_dataset(f"idx:{tmp_path}")


def test_idx_missing_folder_and_missing_files(tmp_path: Path):
    with pytest.raises(InputError, match="does not exist"):
        load_dataset(f"idx:{tmp_path / 'nowhere'}")
    write_idx(tmp_path / "t10k-images-idx3-ubyte", digits(3, seed=1)[0])
    with pytest.raises(DatasetMissingError, match="no t10k-labels-idx1-ubyte") as info:
        load_dataset(f"idx:{tmp_path}")
    assert "images" not in str(info.value).split("has no", 1)[1]
    with pytest.raises(DatasetMissingError, match="train-images-idx3-ubyte and no "
                                                  "train-labels-idx1-ubyte"):
        load_dataset(f"idx:{tmp_path}", "train")


# --------------------------------------------------------------------------- torchvision layouts


@pytest.mark.parametrize(("name", "folder", "first_class"), [
    ("mnist", "MNIST", "0"),
    ("fashion-mnist", "FashionMNIST", "T-shirt/top"),
])
def test_mnist_formats_read_from_torchvision_layout(data_home: Path, name, folder, first_class):
    written = write_mnist_folder(data_home / folder / "raw", gz=True)
    ds = load_dataset(name, "train", download=False)
    assert np.array_equal(ds.images[:, 0].numpy(), written["train"][0])
    assert ds.classes[0] == first_class and ds.num_classes == 10 and ds.name == name


def test_cifar10_reads_python2_pickled_batches(data_home: Path):
    batches = write_cifar_folder(data_home)
    train = load_dataset("cifar10", "train", download=False)
    test = load_dataset("cifar10", "test", download=False)
    assert (len(train), len(test)) == (30, 6) and train.shape == (3, 32, 32)
    data, labels = batches["data_batch_3"]
    n = 2
    img = train.images[2 * 6 + n]  # batches concatenated in order 1..5
    # row layout: 1024 red, 1024 green, 1024 blue, each row-major 32x32
    assert int(img[0, 0, 0]) == data[n, 0]
    assert int(img[1, 0, 5]) == data[n, 1024 + 5]
    assert int(img[2, 31, 31]) == data[n, 3071]
    assert int(img[2, 3, 7]) == data[n, 2048 + 3 * 32 + 7]
    assert train.labels[12:18].tolist() == labels
    assert test.labels.tolist() == batches["test_batch"][1]
    assert train.classes[:2] == ["plane", "car"]  # from batches.meta
    x, _ = next(train.batches(30))
    assert x.shape == (30, 3, 32, 32) and x.min() >= 0 and x.max() <= 1


def test_cifar10_without_meta_uses_standard_names(tmp_path: Path):
    write_cifar_folder(tmp_path, meta=False)
    assert load_dataset("cifar10", root=tmp_path, download=False).classes == list(CIFAR10_CLASSES)


def test_cifar_reader_refuses_foreign_pickles(tmp_path: Path):
    evil = tmp_path / "evil"
    evil.write_bytes(pickle.dumps({"data": functools.partial(print, "pwned")}, protocol=2))
    with pytest.raises(InputError, match=r"not a CIFAR-10 pickled batch.*functools\.partial"):
        read_cifar_batch(evil)
    shapes = tmp_path / "shapes"
    shapes.write_bytes(py2_pickle({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}))
    with pytest.raises(InputError, match=r"uint8 \[N, 3072\], got uint8 \[2, 100\]"):
        read_cifar_batch(shapes)
    count = tmp_path / "count"
    count.write_bytes(py2_pickle({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}))
    with pytest.raises(InputError, match="2 images but 1 labels"):
        read_cifar_batch(count)
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x00\x01not a pickle")
    with pytest.raises(InputError, match=str(garbage)):
        read_cifar_batch(garbage)


# --------------------------------------------------------------------------- missing data


@pytest.mark.parametrize(("name", "folder", "what"), [
    ("mnist", "MNIST/raw", "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz from "
                           "https://ossci-datasets.s3.amazonaws.com/mnist/"),
    ("fashion-mnist", "FashionMNIST/raw", "t10k-images-idx3-ubyte.gz and "
                                          "t10k-labels-idx1-ubyte.gz from http"),
    ("cifar10", "cifar-10-batches-py", "Download https://www.cs.toronto.edu/~kriz/"
                                       "cifar-10-python.tar.gz and extract it in"),
])
def test_missing_dataset_says_what_to_download_and_where(data_home: Path, name, folder, what):
    with pytest.raises(DatasetMissingError) as info:
        load_dataset(name, download=False)
    message = str(info.value)
    assert what in message and str(data_home / folder) in message
    assert "downloading is off" in message and "EXPLORER_DATA" in message
    assert "\n" not in message


def test_partial_cifar_train_split_lists_missing_batches(tmp_path: Path):
    write_cifar_folder(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(DatasetMissingError, match="missing data_batch_4"):
        load_dataset("cifar10", "train", root=tmp_path, download=False)
    assert len(load_dataset("cifar10", "test", root=tmp_path, download=False)) == 6


# --------------------------------------------------------------------------- downloading


@pytest.fixture
def local_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An HTTP server on 127.0.0.1 serving ``tmp_path/www``; yields (url, folder)."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    www = tmp_path / "www"
    www.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(www)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", www
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_download_through_torchvision_from_a_mirror(local_server, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch):
    import torchvision.datasets

    url, www = local_server
    written = write_mnist_folder(www, gz=True)
    resources = [(p.name, hashlib.md5(p.read_bytes()).hexdigest()) for p in sorted(www.iterdir())]
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", [url])
    monkeypatch.setattr(torchvision.datasets.MNIST, "resources", resources)
    root = tmp_path / "cache"
    ds = load_dataset("mnist", "test", root=root)
    assert np.array_equal(ds.images[:, 0].numpy(), written["test"][0])
    assert (root / "MNIST" / "raw" / "t10k-images-idx3-ubyte").is_file()


def test_failed_download_becomes_one_clear_message(local_server, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch):
    import torchvision.datasets

    url, www = local_server  # reachable, serves files whose md5 is not MNIST's
    write_mnist_folder(www, gz=True)
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", [url])
    with pytest.raises(DatasetMissingError, match=r"could not be downloaded \(RuntimeError: "
                                                  r"Error downloading train-images") as info:
        load_dataset("mnist", "train", root=tmp_path)
    assert f"from {url}" in str(info.value) and "\n" not in str(info.value)
    # the rejected file is on disk, but a failed download is never read
    assert (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").is_file()


def test_unreachable_host_fails_fast_without_torchvision_download(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import torchvision.datasets

    with socket.socket() as sock:  # a port with nobody listening: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "url", f"http://127.0.0.1:{port}/c.tar.gz")
    with pytest.raises(DatasetMissingError, match=f"no connection: 127.0.0.1:{port}"):
        load_dataset("cifar10", root=tmp_path)
    assert not (tmp_path / "cifar-10-python.tar.gz").exists()


def test_a_stalled_download_times_out_with_a_message(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch):
    """A server that accepts the connection and then sends nothing: the download gives up
    after DOWNLOAD_STALL_TIMEOUT_S instead of hanging."""
    import torchvision.datasets

    import explorer.data

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # the kernel accepts connections; nobody ever answers them
    port = listener.getsockname()[1]
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setattr(explorer.data, "DOWNLOAD_STALL_TIMEOUT_S", 0.5)
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", [f"http://127.0.0.1:{port}/"])
    try:
        with pytest.raises(DatasetMissingError, match="could not be downloaded") as info:
            load_dataset("mnist", "test", root=tmp_path)
    finally:
        listener.close()
    assert "timed out" in str(info.value).lower()
    assert socket.getdefaulttimeout() is None  # restored
