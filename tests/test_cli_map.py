"""``explorer map`` on the bundled LeNet5: per-layer statistics, JSON and text output,
bad-input messages."""

from __future__ import annotations

import json

import pytest

from explorer.device import PRESETS, DeviceModel
from explorer.mapping import map_model
from explorer.models import analog_layers, build_model, load_pretrained

LENET_LAYERS = ["conv1", "conv2", "fc1", "fc2", "fc3"]


@pytest.fixture
def checkpoint() -> str:
    """The bundled trained LeNet5 (assets/lenet5_mnist.pt), by its pretrained name."""
    return "lenet5-mnist"


def test_map_json_matches_library(cli, capsys, checkpoint):
    code, out, err = cli(capsys, "map", "--model", checkpoint, "--preset", "AlOx/HfO2",
                         "--levels", "8", "--method", "min_error", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert [layer["name"] for layer in report["layers"]] == LENET_LAYERS
    spec = PRESETS["AlOx/HfO2"]
    assert report["device"] == {"preset": "AlOx/HfO2", "source": "model", "g_min": spec["g_min"],
                                "g_max": spec["g_max"], "levels": 8,
                                "nonlinearity": spec["nonlinearity"]}
    expected = map_model(load_pretrained(checkpoint),
                         DeviceModel.from_preset("AlOx/HfO2", levels=8), "min_error")
    for layer in report["layers"]:
        stats = expected[layer["name"]].stats()
        for key in ("rmse", "mean_abs", "max_abs", "w_max", "n_weights"):
            assert layer[key] == pytest.approx(stats[key], rel=1e-9)
        assert sum(layer["histogram"]["counts"]) == layer["n_weights"]
        assert len(layer["histogram"]["edges"]) == 33
    total = sum(m.weight.numel() for _, m in analog_layers(build_model("lenet5")))
    assert report["overall"]["n_weights"] == total


def test_map_options_change_the_result(cli, capsys, checkpoint):
    def rmse(*extra: str) -> float:
        code, out, err = cli(capsys, "map", "--model", checkpoint, "--json", *extra)
        assert code == 0, err
        return json.loads(out)["overall"]["rmse"]

    base = rmse("--levels", "8", "--nonlinearity", "3", "--method", "linear")
    assert rmse("--levels", "8", "--nonlinearity", "3", "--method", "min_error") < base
    assert rmse("--levels", "8", "--nonlinearity", "3", "--method", "min_error",
                "--scale", "optimal", "--scheme", "differential_full") < base
    assert rmse("--method", "exact") < 1e-6


def test_map_text_output_and_device_csv(cli, capsys, checkpoint, tmp_path):
    csv = tmp_path / "cell.csv"
    csv.write_text("pulse,conductance_uS\n0,1\n1,3\n2,4\n3,4.5\n4,4.8\n")
    code, out, err = cli(capsys, "map", "--model", checkpoint, "--device-csv", str(csv))
    assert code == 0, err
    assert "5 levels" in out and "table" in out
    for name in [*LENET_LAYERS, "overall"]:
        assert any(line.startswith(name) for line in out.splitlines())


@pytest.mark.parametrize(("argv", "message"), [
    (["--levels", "2000"], r"--levels: 2000 is not allowed; expected an integer in \[2, 1024\]"),
    (["--levels", "1"], r"--levels: 1 is not allowed; expected an integer in \[2, 1024\]"),
    (["--nonlinearity", "12"],
     r"--nonlinearity: 12.0 is not allowed; expected a number in \[-9, 9\]"),
    (["--g-min", "1e-3"], r"g_max: must be greater than g_min"),
    (["--clip", "0"], r"clip: must be a percentile in \(0, 100\]"),
    (["--bins", "0"], r"--bins: must be at least 1, got 0"),
    (["--preset", "Graphene"], r"argument --preset: invalid choice: 'Graphene'"),
    (["--method", "round"], r"argument --method: invalid choice: 'round'"),
])
def test_map_bad_input(cli, capsys, checkpoint, argv, message):
    import re

    code, out, err = cli(capsys, "map", "--model", checkpoint, *argv)
    assert code == 2 and out == ""
    assert re.search(message, err), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_map_csv_conflicts_and_errors(cli, capsys, checkpoint, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("conductance\n1e-6\n-2e-6\n")
    code, _, err = cli(capsys, "map", "--model", checkpoint, "--device-csv", str(bad))
    assert code == 2 and "row 3, column 'conductance': '-2e-6' must be > 0" in err
    code, _, err = cli(capsys, "map", "--model", checkpoint, "--device-csv", str(bad),
                       "--levels", "8", "--preset", "EpiRAM")
    assert code == 2
    assert "do not combine it with --preset, --levels" in err
    code, _, err = cli(capsys, "map", "--model", str(tmp_path / "none.pt"))
    assert code == 2 and "does not exist" in err
