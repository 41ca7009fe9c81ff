"""The ``explorer`` command: help, info, and one-line errors with exit status 2."""

from __future__ import annotations

import gzip
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

import explorer.commands
from explorer.device import PRESETS
from explorer.models import build_model

COMMANDS_DIR = Path(explorer.commands.__file__).parent


def _command_modules() -> list[ModuleType]:
    """The sub-command modules, found from the files on disk (not through the CLI's own
    discovery, which is what the tests below check)."""
    names = sorted(p.stem for p in COMMANDS_DIR.glob("*.py") if not p.stem.startswith("_"))
    return [importlib.import_module(f"explorer.commands.{name}") for name in names]


def test_the_commands_folder_holds_the_documented_commands():
    names = {module.NAME for module in _command_modules()}
    assert {"bench", "evaluate", "info", "map", "sweep", "train"} <= names


def test_help_lists_every_command_with_its_help_line(cli, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # argparse wraps at the terminal width
    code, out, _ = cli(capsys, "--help")
    assert code == 0
    listed = re.findall(r"^ {4}(\S+) +(\S.*)$", out, re.M)  # "    NAME   HELP" rows
    expected = [(m.NAME, m.HELP) for m in sorted(_command_modules(), key=lambda m: m.NAME)]
    assert listed == expected, out


def test_unknown_command_exits_2_naming_the_commands(cli, capsys):
    code, out, err = cli(capsys, "nonsense")
    assert code == 2 and out == ""
    _one_error_line(err, "invalid choice: 'nonsense'")
    for module in _command_modules():
        assert repr(module.NAME) in err


def test_info_json_lists_presets_models_datasets(cli, capsys):
    code, out, _ = cli(capsys, "info", "--json")
    info = json.loads(out)
    assert code == 0
    assert set(info["presets"]) == set(PRESETS)
    assert set(info["models"]) == {"lenet5", "vgg8", "resnet20"}
    assert info["pretrained"]["lenet5-mnist"]["available"] is True
    assert "mnist-embedded" in info["datasets"]
    assert info["versions"]["torch"] == torch.__version__.split("+")[0]


def test_info_text(cli, capsys):
    code, out, _ = cli(capsys, "info")
    assert code == 0 and "EpiRAM" in out and "lenet5-mnist" in out


def _one_error_line(err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_unknown_model_exits_2(cli, capsys, tmp_path):
    code, _, err = cli(capsys, "train", "--model", "alexnet", "--out", str(tmp_path / "x.pt"))
    assert code == 2
    _one_error_line(err, "unknown model 'alexnet'", "lenet5")


def test_unknown_dataset_exits_2(cli, capsys, tmp_path):
    code, _, err = cli(capsys, "train", "--data", "imagenet", "--out", str(tmp_path / "x.pt"))
    assert code == 2
    _one_error_line(err, "imagenet", "mnist-embedded")


def test_missing_idx_folder_exits_2(cli, capsys, tmp_path):
    missing = tmp_path / "nowhere"
    code, _, err = cli(capsys, "train", "--data", f"idx:{missing}", "--out", str(tmp_path / "x.pt"))
    assert code == 2
    _one_error_line(err, str(missing))


def test_malformed_idx_file_exits_2(cli, capsys, tmp_path):
    folder = tmp_path / "idx"
    folder.mkdir()
    for stem in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
        (folder / stem).write_bytes(b"\x00\x00\x08\x03" + b"\x00\x00\x00\x02")  # truncated
    for stem in ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"):
        labels = b"\x00\x00\x08\x01\x00\x00\x00\x02\x01\x02"
        (folder / f"{stem}.gz").write_bytes(gzip.compress(labels))
    code, _, err = cli(capsys, "train", "--data", f"idx:{folder}", "--out", str(tmp_path / "x.pt"))
    assert code == 2
    _one_error_line(err, "images-idx3-ubyte")


def test_mismatched_checkpoint_exits_2(cli, capsys, tmp_path):
    path = tmp_path / "resnet.pt"
    torch.save({"architecture": "lenet5", "state_dict": build_model("resnet20").state_dict()}, path)
    code, _, err = cli(capsys, "train", "--model", str(path), "--out", str(tmp_path / "x.pt"))
    assert code == 2
    _one_error_line(err, "does not fit LeNet5")
    assert not (tmp_path / "x.pt").exists()


def test_bad_option_value_exits_2(cli, capsys, tmp_path):
    code, _, err = cli(capsys, "train", "--epochs", "0", "--out", str(tmp_path / "x.pt"))
    assert code == 2
    _one_error_line(err, "epochs")


@pytest.mark.parametrize("argv", [["--help"], ["info", "--json"]])
def test_console_script_runs_as_a_process(argv):
    done = subprocess.run([sys.executable, "-m", "explorer.cli", *argv], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
