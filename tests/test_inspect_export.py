"""explorer inspect (per-layer numbers against hand computations) and explorer export /
evaluate --programmed (exact round trip, tampered manifests refused naming the tile)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from explorer.crossbar import CrossbarConfig, to_crossbar
from explorer.data import load_dataset
from explorer.inspect import inspect_network, layer_report
from explorer.models import load_pretrained
from explorer.tiles import adc_quantize

# --------------------------------------------------------------------------- inspect


def test_layer_report_against_a_hand_computed_tiled_linear():
    torch.manual_seed(0)
    fc = nn.Linear(120, 7)
    net = nn.Sequential(fc)
    x = torch.rand(50, 120)
    cfg = CrossbarConfig(tile_rows=64, dac_bits=6, adc_bits=3, adc_range="percentile",
                         adc_percentile=90.0, prog_sigma=0.05)
    analog = to_crossbar(net, cfg, calibration=torch.rand(30, 120))
    layer = analog.network[0]
    report = layer_report("0", layer, fc, x, bins=21, heatmap_tiles=2, heatmap_size=10)
    # reference: DAC codes, two chunks of 60 rows, programmed weights, ADC per chunk
    step = float(layer.dac_range) / 63
    xq = (x / step).round().clamp(0, 63) * step
    w = (layer.mapping.w_scale * (layer.g_pos - layer.g_neg)).double()
    sums = [xq.double()[:, rows] @ w[:, rows].T for rows in (slice(0, 60), slice(60, 120))]
    r = float(layer.adc_range)
    clipped = sum(int((s.abs() > r).sum()) for s in sums) / (2 * 50 * 7)
    assert report["clip_rate"] == pytest.approx(clipped)
    assert 0.0 < report["clip_rate"] < 0.5  # the 90th percentile range clips some sums
    assert sum(report["partial_sums"]["counts"]) == 2 * 50 * 7
    assert report["partial_sums"]["adc_range"] == pytest.approx(r)
    y_hat = sum(adc_quantize(s.float(), r, 3) for s in sums) + fc.bias.detach()
    y = fc(x).detach()
    snr = 10 * math.log10(float((y.double() ** 2).sum()) / float(((y_hat - y).double() ** 2)
                                                                 .sum()))
    assert report["snr_db"] == pytest.approx(snr, abs=1e-3)
    y_cells = x.double() @ w.T + fc.bias.detach().double()  # the cells' weights, no converters
    power = float((y.double() ** 2).sum())
    assert report["snr_cells_db"] == pytest.approx(
        10 * math.log10(power / float(((y_cells - y) ** 2).sum())), abs=1e-3)
    assert report["snr_converters_db"] == pytest.approx(
        10 * math.log10(power / float(((y_hat - y_cells) ** 2).sum())), abs=1e-3)
    w_float = fc.weight.detach().double()
    weight_snr = 10 * math.log10(float((w_float ** 2).sum()) / float(((w - w_float) ** 2)
                                                                     .sum()))
    assert report["weight_snr_db"] == pytest.approx(weight_snr, abs=1e-3)
    first = report["heatmaps"][0]
    assert first["rows"] == [0, 60] and first["columns"] == [0, 7] and first["averaged"]
    assert np.asarray(first["g_pos"]).shape == (10, 7)  # 6-row blocks averaged
    assert np.mean(first["g_pos"]) == pytest.approx(float(layer.g_pos[:, :60].mean()),
                                                    rel=1e-5)


@pytest.fixture(scope="module")
def lenet_data():
    test = load_dataset("mnist-embedded", "test", limit=200)
    train = load_dataset("mnist-embedded", "train", limit=64)
    return load_pretrained("lenet5-mnist"), test, train.images.float() / 255


def test_sensitivity_is_float_accuracy_when_the_crossbar_is_exact(lenet_data):
    model, test, calibration = lenet_data
    report = inspect_network(model, test.images, test.labels,
                             CrossbarConfig(mapping="exact", dac_bits=None, adc_bits=None),
                             calibration, stats_images=32, heatmap_tiles=0)
    assert report["accuracy"] == report["float_accuracy"]
    for layer in report["layers"]:
        assert layer["sensitivity"]["accuracy"] == report["float_accuracy"]
        assert layer["clip_rate"] == 0.0 and (layer["snr_db"] is None or layer["snr_db"] > 60)


def test_inspect_cli_names_the_layer_that_hurts_most(cli, capsys):
    code, out, err = cli(capsys, "inspect", "--adc-bits", "2", "--limit", "200",
                         "--stats-images", "32", "--heatmap-tiles", "1", "--json")
    assert code == 0, err
    report = json.loads(out)
    drops = {layer["name"]: layer["sensitivity"]["drop"] for layer in report["layers"]}
    assert list(drops) == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert report["worst"]["layer"] == max(drops, key=drops.get)
    assert report["worst"]["drop"] > 0  # a 2-bit ADC costs accuracy somewhere
    assert report["digital_layers"] == [] and report["settings"]["converters"]["adc_bits"] == 2
    code, out, _ = cli(capsys, "inspect", "--adc-bits", "2", "--limit", "100",
                       "--no-sensitivity", "--heatmap-tiles", "0")
    assert code == 0 and "conv1" in out and "crossbar accuracy" in out


# --------------------------------------------------------------------------- export

EXPORT_OPTIONS = ("--adc-bits", "4", "--prog-sigma", "0.1", "--read-sigma", "0.05",
                  "--limit", "200", "--scheme", "differential")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from explorer.cli import main

    out = tmp_path_factory.mktemp("export") / "trial1"
    assert main(["export", *EXPORT_OPTIONS, "--trial", "1", "--out", str(out), "--csv",
                 "--json"]) == 0
    return out


def test_programmed_round_trip_gives_exactly_the_exported_accuracy(exported, cli, capsys):
    manifest = json.loads((exported / "manifest.json").read_text())
    code, out, err = cli(capsys, "evaluate", "--programmed", str(exported), "--json")
    assert code == 0, err
    again = json.loads(out)
    assert again["accuracies"] == [manifest["accuracy"]]
    code, out, _ = cli(capsys, "evaluate", *EXPORT_OPTIONS, "--trials", "2", "--json")
    assert json.loads(out)["accuracies"][1] == manifest["accuracy"]  # its trial 1
    assert manifest["trial"] == 1 and manifest["settings"]["mapping"]["scheme"] == \
        "differential"
    assert manifest["project_version"] and manifest["device"]["levels"] == 16


def test_tiles_hold_the_weights_at_the_places_the_manifest_says(tmp_path, cli, capsys):
    out = tmp_path / "exact"
    code, _, err = cli(capsys, "export", "--mapping", "exact", "--limit", "20", "--out",
                       str(out), "--tile-rows", "64", "--tile-cols", "32")
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    model = load_pretrained("lenet5-mnist")
    modules = dict(model.named_modules())
    for layer in manifest["layers"]:
        w = modules[layer["name"]].weight.detach().reshape(layer["columns"], -1).numpy()
        covered = np.zeros(w.shape, dtype=int)
        for tile in layer["tiles"]:
            with np.load(out / tile["file"]) as stored:
                realised = layer["w_scale"] * (stored["g_pos"] - stored["g_neg"])
            (r0, r1), (c0, c1) = tile["rows"], tile["columns"]
            assert r1 - r0 <= 64 and c1 - c0 <= 32
            assert np.allclose(realised, w[c0:c1, r0:r1].T, atol=1e-5 * np.abs(w).max())
            covered[c0:c1, r0:r1] += 1
        assert (covered == 1).all()  # every weight in exactly one tile
        assert layer["reference_conductance"] > 0  # offset scheme: the reference column


def test_csv_tiles_equal_the_npz_tiles(exported):
    manifest = json.loads((exported / "manifest.json").read_text())
    tile = manifest["layers"][1]["tiles"][0]
    with np.load(exported / tile["file"]) as stored:
        for path, part in zip(tile["csv"], ("g_pos", "g_neg"), strict=True):
            text = np.loadtxt(exported / path, delimiter=",", ndmin=2)
            assert np.array_equal(text.astype(np.float32), stored[part])


def _tampered(exported: Path, tmp_path: Path, change) -> Path:
    copy = tmp_path / "tampered"
    shutil.copytree(exported, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    change(manifest, copy)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


def _drop_tile(manifest, _):
    manifest["layers"][1]["tiles"].pop(1)


def _wrong_shape(manifest, _):
    manifest["layers"][2]["tiles"][0]["shape"] = [99, 120]


def _delete_file(manifest, folder):
    (folder / manifest["layers"][0]["tiles"][0]["file"]).unlink()


def _swap_arrays(manifest, folder):
    tile = manifest["layers"][3]["tiles"][0]
    np.savez(folder / tile["file"], g_pos=np.zeros((3, 3), np.float32),
             g_neg=np.zeros((3, 3), np.float32))


@pytest.mark.parametrize("change, needles", [
    (_drop_tile, ["tile conv2 g0_r1_c0", "missing from the manifest"]),
    (_wrong_shape, ["tile fc1 g0_r0_c0", "shape [99, 120]"]),
    (_delete_file, ["tile conv1 g0_r0_c0", "is missing"]),
    (_swap_arrays, ["tile fc2 g0_r0_c0", "g_pos", "[3, 3]"]),
])
def test_a_tampered_manifest_is_refused_naming_the_tile(exported, tmp_path, cli, capsys,
                                                        change, needles):
    folder = _tampered(exported, tmp_path, change)
    code, _, err = cli(capsys, "evaluate", "--programmed", str(folder))
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_export_refuses_a_used_folder_and_programmed_refuses_crossbar_options(
        exported, cli, capsys):
    code, _, err = cli(capsys, "export", "--limit", "10", "--out", str(exported))
    assert code == 2 and "not an empty folder" in err
    code, _, err = cli(capsys, "evaluate", "--programmed", str(exported), "--adc-bits", "6")
    assert code == 2 and "do not combine it with --adc-bits" in err


def test_grouped_and_1d_layers_round_trip_through_the_tile_files(tmp_path):
    from explorer.programmed import install_programmed, read_manifest, write_programmed

    torch.manual_seed(5)
    net = nn.Sequential(nn.Conv1d(4, 8, 5, padding=2, groups=2), nn.ReLU(),
                        nn.Conv1d(8, 8, 3, groups=8), nn.ReLU(), nn.Flatten(),
                        nn.Linear(8 * 30, 6)).eval()
    cfg = CrossbarConfig(adc_bits=5, tile_rows=8, tile_cols=4, prog_sigma=0.2,
                         scheme="differential")
    calibration, x = torch.randn(16, 4, 32), torch.randn(5, 4, 32)
    exported = to_crossbar(net, cfg, calibration, trial=3)
    write_programmed(exported, tmp_path / "p", {"trial": 3})
    fresh = to_crossbar(net, cfg, calibration, trial=0)  # other programming draws
    with torch.no_grad():
        assert not torch.equal(fresh(x), exported(x))
        install_programmed(fresh, tmp_path / "p")
        assert torch.equal(fresh(x), exported(x))
    depthwise = read_manifest(tmp_path / "p")["layers"][1]
    assert depthwise["groups"] == 8 and len(depthwise["tiles"]) == 8
    assert {tuple(t["columns"]) for t in depthwise["tiles"]} == {(c, c + 1) for c in range(8)}
    assert all(t["rows"] == [0, 3] for t in depthwise["tiles"])
