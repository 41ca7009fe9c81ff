"""Your network and your data (issue 17): FILE.py:FUNCTION, FILE.pt2, --weights,
imagefolder:/npz: data with --input-size/--mean/--std/--split-fraction, and one-line
errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from explorer.crossbar import CrossbarConfig, to_crossbar
from explorer.data import load_dataset
from explorer.errors import InputError
from explorer.models import LeNet5, load_network, load_pretrained
from explorer.settings import WorkloadSettings
from explorer.workload import load_workload, prepare_images

NET_PY = """
import torch.nn as nn
from explorer.models import LeNet5

def build():
    return LeNet5(num_classes=NUM)

def wide():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 12))

def not_a_module():
    return 42

def broken():
    raise RuntimeError("no GPU here")

class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x):
        return self.fc(x.flatten(1)) * SCALE

SCALE = 2.0

def tiny():
    return Tiny()
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("user")
    net = root / "net.py"
    net.write_text(NET_PY.replace("NUM", "10"))
    net12 = root / "net12.py"
    net12.write_text(NET_PY.replace("NUM", "12"))
    weights = root / "lenet.pt"
    torch.save(load_pretrained("lenet5-mnist").state_dict(), weights)
    return {"net": net, "net12": net12, "weights": weights, "root": root}


def _one_line(err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


# --------------------------------------------------------------------------- models


def test_code_model_with_weights_is_the_pretrained_network(files):
    model, ckpt = load_network(f"{files['net']}:build", str(files["weights"]), allow_code=True)
    reference = load_pretrained("lenet5-mnist")
    assert ckpt == {}
    for key, tensor in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], tensor)


def test_a_code_model_travels_to_another_process(files, tmp_path):
    """Dask workers unpickle the network without the user's file being importable."""
    import subprocess
    import sys

    dumps = pytest.importorskip("distributed.protocol.pickle").dumps
    model, _ = load_network(f"{files['net']}:tiny", allow_code=True)
    x = torch.rand(3, 1, 28, 28)
    (tmp_path / "model.pkl").write_bytes(dumps(model))
    torch.save(x, tmp_path / "x.pt")
    script = ("import pickle, sys, torch; m = pickle.loads(open(sys.argv[1], 'rb').read()); "
              "torch.save(m(torch.load(sys.argv[2])), sys.argv[3])")
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "model.pkl"),
                    str(tmp_path / "x.pt"), str(tmp_path / "y.pt")], check=True, timeout=120,
                   cwd=tmp_path)
    with torch.no_grad():
        assert torch.equal(torch.load(tmp_path / "y.pt"), model(x))


def test_code_models_need_allow_code(files):
    with pytest.raises(InputError, match="command line or a notebook"):
        load_network(f"{files['net']}:build")


def test_cli_evaluate_runs_a_code_model(files, cli, capsys):
    code, out, err = cli(capsys, "evaluate", "--model", f"{files['net']}:build", "--weights",
                         str(files["weights"]), "--data", "mnist-embedded", "--limit", "100",
                         "--json")
    assert code == 0, err
    result = json.loads(out)
    code, out, _ = cli(capsys, "evaluate", "--limit", "100", "--json")
    builtin = json.loads(out)
    assert result["accuracies"] == builtin["accuracies"]  # same weights, same crossbar
    assert result["digital_layers"] == [] and result["analog_weight_fraction"] < 1


@pytest.mark.parametrize("spec, needles", [
    ("{root}/missing.py:build", ["model file", "missing.py", "does not exist"]),
    ("{net}:nothing", ["no function 'nothing'", "build"]),
    ("{net}:not_a_module", ["returned a int", "not a torch.nn.Module"]),
    ("{net}:broken", ["broken() failed", "RuntimeError: no GPU here"]),
])
def test_bad_code_models_are_one_line_exit_2(files, cli, capsys, spec, needles):
    model = spec.format(root=files["root"], net=files["net"])
    code, _, err = cli(capsys, "evaluate", "--model", model, "--data", "mnist-embedded",
                       "--limit", "10")
    assert code == 2
    _one_line(err, *needles)


def test_weights_that_do_not_fit_name_the_first_tensor(files, cli, capsys):
    code, _, err = cli(capsys, "evaluate", "--model", f"{files['net12']}:build", "--weights",
                       str(files["weights"]), "--data", "mnist-embedded", "--limit", "10")
    assert code == 2
    _one_line(err, "'fc3.weight'", "(10, 84)", "(12, 84)")
    code, _, err = cli(capsys, "map", "--model", f"{files['net']}:wide", "--weights",
                       str(files["weights"]))
    assert code == 2
    _one_line(err, "no tensor '1.weight'")


def test_exported_program_becomes_layers_and_computes_the_same(tmp_path):
    reference = load_pretrained("lenet5-mnist")
    fixed = tmp_path / "fixed.pt2"
    torch.export.save(torch.export.export(reference, (torch.rand(2, 1, 28, 28),)), fixed)
    with pytest.raises(InputError, match="exactly 2 image"):
        load_network(str(fixed))
    program = torch.export.export(reference, (torch.rand(2, 1, 28, 28),),
                                  dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    path = tmp_path / "lenet.pt2"
    torch.export.save(program, path)
    model, _ = load_network(str(path))
    layers = {name: type(m) for name, m in model.named_modules()
              if isinstance(m, (nn.Conv2d, nn.Linear))}
    assert layers == {"conv1": nn.Conv2d, "conv2": nn.Conv2d, "fc1": nn.Linear,
                      "fc2": nn.Linear, "fc3": nn.Linear}
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(model(x), reference(x), atol=1e-6)
        analog = to_crossbar(model, CrossbarConfig(mapping="exact", dac_bits=None,
                                                   adc_bits=None))
        y, y_hat = reference(x), analog(x)
    assert float((y_hat - y).abs().max()) <= 1e-4 * float(y.abs().max())
    assert [name for name, _ in analog.analog_layers()] == list(layers)


def test_exported_program_file_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_network(str(tmp_path / "none.pt2"))
    bad = tmp_path / "bad.pt2"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError, match=r"not a readable torch\.export program"):
        load_network(str(bad))


# --------------------------------------------------------------------------- data


def test_npz_uint8_hwc_images_one_split_divided_without_overlap(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(40, 5, 6, 3), dtype=np.uint8)
    y = np.arange(40) % 4
    path = tmp_path / "d.npz"
    np.savez(path, x=x, y=y)
    train = load_dataset(f"npz:{path}", "train", split_fraction=0.25)
    test = load_dataset(f"npz:{path}", "test", split_fraction=0.25)
    assert (len(train), len(test)) == (10, 30)
    assert train.images.shape == (10, 3, 5, 6) and train.num_classes == 4
    seen = set()
    for ds in (train, test):  # every image, [N, H, W, C] -> [N, C, H, W], label kept
        for image, label in zip(ds.images.numpy(), ds.labels.numpy(), strict=True):
            match = [i for i in range(40) if np.array_equal(x[i].transpose(2, 0, 1), image)]
            assert len(match) == 1 and y[match[0]] == label
            seen.add(match[0])
    assert seen == set(range(40))


def test_npz_float_images_are_used_as_given(tmp_path):
    x = np.random.default_rng(2).normal(size=(6, 2, 3, 3)).astype(np.float32)
    path = tmp_path / "f.npz"
    np.savez(path, x_train=x[:2], y_train=[0, 1], x_test=x[2:], y_test=[1, 0, 1, 2])
    test = load_dataset(f"npz:{path}", "test")
    assert torch.equal(test.images, torch.from_numpy(x[2:]))
    batch, _ = next(test.batches(10))
    assert torch.equal(batch, torch.from_numpy(x[2:]))


@pytest.mark.parametrize("arrays, needle", [
    ({"images": np.zeros((2, 4, 4), np.uint8), "labels": np.zeros(2, np.int64)},
     "expected arrays 'x' (images) and 'y' (labels)"),
    ({"x": np.zeros((2, 4, 4), np.uint8), "y": np.array([0, -1])}, "labels must be >= 0"),
    ({"x": np.zeros((2, 4, 4), np.uint8), "y": np.array([0.5, 1.0])}, "integer labels"),
    ({"x": np.zeros((2, 4), np.float32), "y": np.array([0, 1])}, "float 'x' must be"),
])
def test_bad_npz_files_say_what_is_wrong(tmp_path, arrays, needle):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(InputError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        load_dataset(f"npz:{path}", "test", split_fraction=0.5)


def test_cli_npz_without_xy_and_labels_out_of_range_exit_2(tmp_path, cli, capsys):
    empty = tmp_path / "empty.npz"
    np.savez(empty, a=np.zeros(3))
    code, _, err = cli(capsys, "evaluate", "--data", f"npz:{empty}", "--split-fraction", "0.5")
    assert code == 2
    _one_line(err, "expected arrays 'x'")
    big = tmp_path / "labels.npz"
    np.savez(big, x=np.zeros((20, 28, 28), np.uint8), y=np.arange(20))
    code, _, err = cli(capsys, "evaluate", "--data", f"npz:{big}", "--split-fraction", "0.5")
    assert code == 2
    _one_line(err, "labels reach", "10 outputs", "out of range")
    code, _, err = cli(capsys, "evaluate", "--data", f"npz:{big}")
    assert code == 2
    _one_line(err, "one split only", "--split-fraction")


def _png(path: Path, value: int, size: tuple[int, int], mode: str = "L") -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode == "L" else (value, 0, 255 - value)).save(path)


def test_image_folder_splits_classes_and_resizes(tmp_path):
    for split, count in (("train", 3), ("test", 2)):
        for label, name in enumerate(("cat", "dog")):
            for i in range(count):
                _png(tmp_path / split / name / f"{i}.png", 40 * label + i, (6, 4 + i))
    with pytest.raises(InputError, match="different sizes"):
        load_dataset(f"imagefolder:{tmp_path}", "test")
    test = load_dataset(f"imagefolder:{tmp_path}", "test", input_size=5)
    assert test.classes == ["cat", "dog"] and test.images.shape == (4, 1, 5, 5)
    assert test.labels.tolist() == [0, 0, 1, 1]
    assert test.images[2].unique().tolist() == [40]  # a flat image stays flat when resized
    train = load_dataset(f"imagefolder:{tmp_path}", "train", input_size=5)
    assert len(train) == 6


def test_empty_image_folder_is_one_line_exit_2(tmp_path, cli, capsys):
    (tmp_path / "a").mkdir()
    code, _, err = cli(capsys, "evaluate", "--data", f"imagefolder:{tmp_path}",
                       "--split-fraction", "0.5")
    assert code == 2
    _one_line(err, "no images")


def test_input_size_mean_std_against_a_hand_computation():
    images = torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).view(2, 3, 4, 4)
    work = WorkloadSettings(mean="0.5,0.25,0", std="2,4,0.5")
    out = prepare_images(images, work)
    expected = (images.numpy() / 255.0 - np.array([0.5, 0.25, 0]).reshape(1, 3, 1, 1)) \
        / np.array([2, 4, 0.5]).reshape(1, 3, 1, 1)
    assert np.allclose(out.numpy(), expected, atol=1e-6)
    flat = torch.full((1, 1, 6, 6), 51, dtype=torch.uint8)
    resized = prepare_images(flat, WorkloadSettings(input_size=3))
    assert resized.shape == (1, 1, 3, 3) and torch.allclose(resized, torch.tensor(0.2))
    with pytest.raises(InputError, match="2 values for 3-channel"):
        prepare_images(images, WorkloadSettings(mean="0.1,0.2"))
    with pytest.raises(InputError, match="--std"):
        WorkloadSettings(std="1,0").check()


def test_workload_with_normalisation_and_split_runs_a_user_network(tmp_path, files):
    path = tmp_path / "digits.npz"
    train = load_dataset("mnist-embedded", "test", limit=60)
    np.savez(path, x=train.images[:, 0].numpy(), y=train.labels.numpy())
    work = WorkloadSettings(model=f"{files['net']}:build", weights=str(files["weights"]),
                            data=f"npz:{path}", split_fraction=0.5, mean="0.1", std="0.5",
                            calibration_images=10)
    loaded = load_workload(work, allow_code=True)
    assert loaded.images.dtype == torch.float32 and len(loaded.images) == 30
    assert float(loaded.images.min()) == pytest.approx(-0.2)
    assert loaded.calibration.shape == (10, 1, 28, 28)
    assert isinstance(loaded.model, LeNet5)


def test_train_fine_tunes_a_code_model_and_points_evaluate_to_it(files, tmp_path, cli, capsys):
    out = tmp_path / "tuned.pt"
    code, _, err = cli(capsys, "train", "--model", f"{files['net']}:build", "--weights",
                       str(files["weights"]), "--data", "mnist-embedded", "--epochs", "1",
                       "--limit", "128", "--lr", "1e-6", "--no-augment", "--out", str(out))
    assert code == 0, err
    stored = torch.load(out, weights_only=True)
    assert stored["architecture"] is None and stored["model"] == f"{files['net']}:build"
    before = load_pretrained("lenet5-mnist").state_dict()
    moved = max(float((stored["state_dict"][k] - v).abs().max()) for k, v in before.items())
    assert 0 < moved < 1e-3  # fine-tuned from the given weights, at a tiny learning rate
    code, _, err = cli(capsys, "evaluate", "--model", str(out), "--limit", "10")
    assert code == 2
    _one_line(err, f"--model {files['net']}:build --weights {out}")
