"""Cost model (DESIGN.md §9): the counters behind it, the component formulas against
hand-computed values, data-dependent array energy, latency, sums, bad input."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from explorer.cli import main
from explorer.cost import adc_energy, adc_time, estimate
from explorer.cost_constants import load_constants
from explorer.crossbar import CrossbarConfig, to_crossbar
from explorer.errors import InputError
from explorer.tiles import TiledConv2d, TiledLinear, TileSettings


def _linear(inputs: int, outputs: int, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(inputs, outputs)


# ----------------------------------------------------------------------------- counters


def test_counters_of_a_hand_sized_linear_layer():
    # 20 inputs on 8-row tiles: balanced chunks 7 + 7 + 6; 3 outputs, one column tile.
    tiled = TiledLinear.from_layer(_linear(20, 3), TileSettings(tile_rows=8, dac_bits=4,
                                                                adc_bits=5))
    tiled.calibrate(torch.rand(4, 20))
    c = tiled.counters()
    assert c["used_rows"] == [7, 7, 6]
    assert c["reads"] == 1 and c["dac_cycles"] == 1
    assert c["row_activations"] == 20  # every word line once per image
    assert c["adc_conversions"] == 3 * 3  # 3 chunks × 3 columns
    assert c["adc_conversions_by_bits"] == {"5": 9}
    assert c["shift_adds"] == 9


def test_counters_of_a_hand_sized_layer_bit_serial_on_two_column_tiles():
    # 20 inputs, 3 outputs as differential pairs (6 columns) on 4-column tiles: 2 column
    # tiles; 3-bit bit-serial inputs: 3 reads per image.
    tiled = TiledLinear.from_layer(_linear(20, 3), TileSettings(
        tile_rows=8, tile_cols=4, dac_bits=3, adc_bits=4, bit_serial=True, cells_per_weight=2))
    tiled.calibrate(torch.rand(4, 20))
    c = tiled.counters()
    assert c["reads"] == 3
    assert c["row_activations"] == 20 * 2 * 3  # rows × column tiles × bit-planes
    assert c["adc_conversions"] == 3 * 3 * 3  # chunks × outputs × planes
    assert c["tiles"] == 3 * 2


def test_counters_of_a_small_conv():
    # 2 channels of 3×3 = 18 rows on 9-row tiles: one channel per chunk; 6×6 input,
    # padding 0: 4×4 = 16 positions; 5 outputs.
    torch.manual_seed(1)
    conv = nn.Conv2d(2, 5, 3)
    tiled = TiledConv2d.from_layer(conv, TileSettings(tile_rows=9, dac_bits=8, adc_bits=6))
    tiled.calibrate(torch.rand(3, 2, 6, 6))
    c = tiled.counters()
    assert c["used_rows"] == [9, 9]
    assert c["reads"] == 16
    assert c["row_activations"] == 18 * 16
    assert c["adc_conversions"] == 2 * 5 * 16


def test_conv_input_statistics_match_an_unfold_by_hand():
    # per word line (c, u, v): Σ over output positions of a = code / 255 under that kernel
    # position, per image; stride 2 and padding 1 so that borders count
    torch.manual_seed(4)
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
    tiled = TiledConv2d.from_layer(conv, TileSettings(tile_rows=9, dac_bits=8, adc_bits=6))
    x = torch.rand(5, 3, 7, 7)
    tiled.calibrate(x)
    codes = torch.round(x / (x.max() / 255)).clamp(0, 255) / 255
    cols = torch.nn.functional.unfold(codes, 3, padding=1, stride=2)  # [B, 27, L]
    assert torch.allclose(tiled.input_stats["act"], cols.sum(2).mean(0), rtol=1e-5)
    assert torch.allclose(tiled.input_stats["act_sq"], (cols ** 2).sum(2).mean(0), rtol=1e-5)
    assert torch.allclose(tiled.input_stats["active"], (cols > 0).float().sum(2).mean(0))


# ----------------------------------------------------------------------------- components

# DESIGN.md §9 (NeuroSim SarADC.cpp, LP): P = (a·b + c) µW for (b + 1) ns.
SAR = {22: (0.538, 4.3753, (32.6, 53.2, 78.1)), 32: (1.1294, 8.8998, (67.1, 109.7, 161.4))}
V_READ, T_READ = 0.5, 10e-9  # NeuroSim Param.cpp readVoltage, readPulseWidth


@pytest.mark.parametrize("node", [22, 32])
def test_sar_adc_energy_per_conversion_matches_the_published_numbers(node):
    a, c, published = SAR[node]
    constants = load_constants()
    for bits, fj in zip((4, 6, 8), published, strict=True):
        by_hand = (a * bits + c) * 1e-6 * (bits + 1) * 1e-9
        assert by_hand * 1e15 == pytest.approx(fj, rel=5e-3)
        assert adc_energy(bits, "sar", node, constants) == pytest.approx(by_hand, rel=5e-3)


def _small_model(outputs: int = 64) -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(40, outputs), nn.ReLU(), nn.Linear(outputs, 10))


def _analog(model: nn.Module, images: torch.Tensor, **knobs) -> object:
    cfg = CrossbarConfig(**{"dac_bits": 8, "adc_bits": 6, "tile_rows": 16, **knobs})
    return to_crossbar(model, cfg, calibration=images)


@pytest.mark.parametrize("adc_type", ["sar", "mlsa"])
def test_adc_energy_and_latency_grow_with_bits(adc_type):
    model, x = _small_model(), torch.rand(8, 40)
    reports = [estimate(_analog(model, x, adc_bits=b, adc_type=adc_type)) for b in (3, 5, 7)]
    energies = [r.energy_breakdown_pj["adc"] for r in reports]
    assert energies[0] < energies[1] < energies[2]
    constants = load_constants()
    times = [adc_time(b, adc_type, constants) for b in (3, 5, 7)]
    latencies = [r.adc_latency_ns_per_image for r in reports]
    if adc_type == "sar":
        assert times[0] < times[1] < times[2] and latencies[0] < latencies[1] < latencies[2]
    else:  # one sensing time whatever the bits (NeuroSim at <= 22 nm)
        assert times[0] == times[2] and latencies[0] == latencies[2]


def test_halving_columns_per_adc_halves_the_adc_limited_latency():
    model, x = _small_model(64), torch.rand(8, 40)
    wide = estimate(_analog(model, x, cols_per_adc=16))
    narrow = estimate(_analog(model, x, cols_per_adc=8))
    # first layer: 64 converted columns on one tile; second: 10 columns (fewer than 16)
    first_wide, first_narrow = wide.layers["0"], narrow.layers["0"]
    assert first_narrow.adc_latency_ns == pytest.approx(first_wide.adc_latency_ns / 2)
    t_adc = 7e-9  # 6-bit SAR: 7 cycles of 1 ns; 3 chunks of 40 rows, one read each
    assert first_narrow.adc_latency_ns == pytest.approx(1 * 8 * t_adc * 1e9)
    assert first_narrow.adcs == 2 * first_wide.adcs


def test_all_zero_inputs_cost_no_array_or_driver_energy():
    model = _small_model()
    report = estimate(_analog(model, torch.zeros(4, 40)))
    assert report.layers["0"].energy_pj["array"] == 0.0
    assert report.layers["0"].energy_pj["dac_wl"] == 0.0
    assert report.layers["0"].adc_column_term_pj == 0.0


@pytest.mark.parametrize("scheme", ["differential", "offset"])
def test_full_scale_inputs_cost_v_read_squared_g_t_read_over_every_cell(scheme):
    model = _small_model(12)
    analog = _analog(model, torch.ones(4, 40), scheme=scheme, tile_cols=8)
    layer = dict(analog.analog_layers())["0"]
    g_pos = layer.g_pos.double()
    if scheme == "differential":  # 24 columns: 3 column tiles, every cell read once
        conductance = float(g_pos.sum() + layer.g_neg.double().sum())
    else:  # 12 columns on 2 column tiles, each with its reference column of G_ref
        g_ref = float(layer.g_neg.double().mean())
        conductance = float(g_pos.sum()) + 2 * 40 * g_ref
    expected_pj = V_READ ** 2 * conductance * T_READ * 1e12
    report = estimate(analog)
    assert report.layers["0"].energy_pj["array"] == pytest.approx(expected_pj, rel=1e-6)


def test_bit_serial_full_scale_reads_every_bit_plane():
    model = _small_model(12)
    analog = _analog(model, torch.ones(4, 40), scheme="differential", dac_bits=4,
                     bit_serial=True)
    layer = dict(analog.analog_layers())["0"]
    conductance = float(layer.g_pos.double().sum() + layer.g_neg.double().sum())
    expected_pj = 4 * V_READ ** 2 * conductance * T_READ * 1e12  # code 15: four 1-bits
    assert estimate(analog).layers["0"].energy_pj["array"] == pytest.approx(expected_pj,
                                                                            rel=1e-6)


def test_per_layer_costs_add_up_to_the_network_total():
    report = estimate(_analog(_small_model(), torch.rand(8, 40), tech_node=45))
    layers = report.layers.values()
    assert sum(layer.energy_total_pj for layer in layers) == pytest.approx(
        report.energy_pj_per_image)
    for key, value in report.energy_breakdown_pj.items():
        assert sum(layer.energy_pj[key] for layer in layers) == pytest.approx(value)
    assert sum(layer.latency_ns for layer in layers) == pytest.approx(
        report.latency_ns_per_image)
    assert sum(sum(layer.area_mm2.values()) for layer in layers) == pytest.approx(
        report.area_mm2)
    assert report.tops_per_w == pytest.approx(
        report.ops_per_image / (report.energy_pj_per_image * 1e-12) / 1e12)


def test_smaller_node_costs_less_energy_and_area():
    model, x = _small_model(), torch.rand(8, 40)
    small = estimate(_analog(model, x, tech_node=22))
    large = estimate(_analog(model, x, tech_node=65))
    assert small.energy_breakdown_pj["adc"] < large.energy_breakdown_pj["adc"]
    assert small.area_breakdown_mm2["adc"] < large.area_breakdown_mm2["adc"]


# ----------------------------------------------------------------------------- bad input


def _run(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("argv, words", [
    (["--tech-node", "30"], ["--tech-node", "30"]),
    (["--adc-type", "flash"], ["--adc-type", "flash"]),
    (["--cols-per-adc", "0"], ["--cols-per-adc"]),
])
def test_unknown_node_or_adc_type_is_one_line_exit_2(argv, words, capsys):
    code, _, err = _run(["cost", *argv], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and all(w in err for w in words)


def _constants_file(tmp_path, edit) -> str:
    from explorer.cost_constants import bundled_path

    data = json.loads(bundled_path().read_text())
    edit(data)
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize("edit, words", [
    (lambda d: d.pop("read_pulse_s"), ["'read_pulse_s'", "missing"]),
    (lambda d: d["nodes"]["32"]["sar_power_offset_w"].update(value=-1e-6),
     ["'nodes.32.sar_power_offset_w'", "negative"]),
    (lambda d: d["nodes"]["22"].pop("vdd_v"), ["'nodes.22.vdd_v'", "missing"]),
])
def test_bad_constants_file_names_the_entry(tmp_path, edit, words, capsys):
    path = _constants_file(tmp_path, edit)
    with pytest.raises(InputError) as err:
        load_constants(path)
    assert all(w in str(err.value) for w in words)
    code, _, stderr = _run(["cost", "--cost-constants", path], capsys)
    assert code == 2 and len(stderr.strip().splitlines()) == 1
    assert all(w in stderr for w in words)


def test_a_users_constants_file_changes_the_result(tmp_path):
    path = _constants_file(tmp_path, lambda d: d["read_pulse_s"].update(value=20e-9))
    model, x = _small_model(), torch.ones(4, 40)
    bundled = estimate(_analog(model, x))
    mine = estimate(_analog(model, x, cost_constants=path))
    assert mine.energy_breakdown_pj["array"] == pytest.approx(
        2 * bundled.energy_breakdown_pj["array"])


def test_settings_file_rejects_an_unknown_node():
    from explorer.settings import Settings

    with pytest.raises(InputError, match=r"cost\.tech_node"):
        Settings.from_dict({"version": 1, "cost": {"tech_node": 30}})
    assert Settings.from_dict({"version": 1, "cost": {"tech_node": 45}}).crossbar.tech_node == 45


# ----------------------------------------------------------------------------- CLI


def test_cost_and_evaluate_json_carry_the_cost_keys(capsys):
    keys = {"energy_pj_per_image", "energy_breakdown_pj", "latency_ns_per_image", "area_mm2",
            "tops_per_w"}
    common = ["--adc-bits", "4", "--tile-rows", "16", "--calibration-images", "32", "--json"]
    code, out, _ = _run(["cost", *common], capsys)
    assert code == 0
    cost = json.loads(out)
    assert keys <= set(cost) and set(cost["energy_breakdown_pj"]) == {
        "adc", "dac_wl", "array", "shift_add"}
    code, out, _ = _run(["evaluate", *common, "--limit", "50"], capsys)
    assert code == 0
    evaluated = json.loads(out)
    assert keys <= set(evaluated)
    # same calibration images, same programmed cells: the same cost
    assert evaluated["energy_pj_per_image"] == pytest.approx(cost["energy_pj_per_image"])


# ----------------------------------------------------------------------------- sweep report


def test_pareto_front_of_accuracy_against_energy():
    import pandas as pd

    from explorer.sweep.report import accuracy_energy_points

    # point: (adc_bits, accuracies over two trials, energy pJ)
    table = {"a": (3, (0.70, 0.72), 800.0), "b": (4, (0.97, 0.99), 900.0),
             "c": (6, (0.95, 0.95), 1200.0),  # dominated by b: less accurate, costlier
             "d": (8, (0.99, 0.99), 1400.0), "e": (5, (0.97, 0.97), 900.0)}  # b beats e
    rows = [{"point": key, "trial": t, "adc_bits": bits, "accuracy": acc,
             "energy_pj_per_image": energy}
            for key, (bits, accs, energy) in table.items() for t, acc in enumerate(accs)]
    points = accuracy_energy_points(pd.DataFrame(rows), ["adc_bits"])
    front = set(points.loc[points["pareto"], "point"])
    assert front == {"a", "b", "d"}
    assert points.set_index("point").loc["b", "accuracy"] == pytest.approx(98.0)
    assert list(points["energy_pj_per_image"]) == sorted(points["energy_pj_per_image"])


def test_sweep_report_draws_accuracy_against_energy(tmp_path):
    import pandas as pd

    from explorer.sweep.report import save_plots

    rows = [{"point": f"p{i}", "trial": 0, "adc_bits": b, "accuracy": a,
             "energy_pj_per_image": e}
            for i, (b, a, e) in enumerate([(3, 0.7, 800.0), (4, 0.98, 900.0), (8, 0.99, 1400.0)])]
    written, note = save_plots(pd.DataFrame(rows), ["adc_bits"], tmp_path)
    assert note == "" and {"energy_html", "energy_png"} <= set(written)
    page = (tmp_path / "energy.html").read_text()
    assert "Pareto" in page and "900.00" in page
    # a table without energies (written before the cost model) draws no energy page
    old = pd.DataFrame(rows).drop(columns=["energy_pj_per_image"])
    (tmp_path / "old").mkdir()
    written, _ = save_plots(old, ["adc_bits"], tmp_path / "old")
    assert "energy_html" not in written and not (tmp_path / "old" / "energy.html").exists()


def test_cost_settings_change_no_sweep_seed():
    from explorer.sweep.points import cell_seed

    base = CrossbarConfig(adc_bits=4)
    other = CrossbarConfig(adc_bits=4, tech_node=65, adc_type="mlsa", cols_per_adc=2)
    assert cell_seed(base, 7) == cell_seed(other, 7)
    assert cell_seed(base, 7) != cell_seed(CrossbarConfig(adc_bits=5), 7)
