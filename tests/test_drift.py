"""Drift and retention (explorer.drift, explorer.timewires) against references written here.

The expectations are derived in the test from the published formulas (DESIGN.md §7,
aihwkit's PCMLikeNoiseModel and ReRamCMONoiseModel), by numerical integration over the
folded normal drift exponent – not from the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from explorer.crossbar import CrossbarConfig, to_crossbar
from explorer.device import DeviceModel
from explorer.drift_csv import parse_drift_csv
from explorer.errors import InputError
from explorer.settings import SCHEMA, SCHEMA_VERSION, Settings

YEAR = 365.25 * 24 * 3600
T0 = 20.0


def expected_pcm_factor(x: float, t: float) -> float:
    """E[((t + t0)/t0)^−ν] with ν = |μ + σ Z|, Z ~ N(0, 1) (folded), μ, σ of x = G/g_max."""
    mu = min(max(-0.0155 * math.log(x) + 0.0244, 0.049), 0.1)
    sigma = min(max(-0.0125 * math.log(x) - 0.0059, 0.008), 0.045)
    z = np.linspace(-12, 12, 200_001)
    pdf = np.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    nu = np.abs(mu + sigma * z)
    return float(np.trapezoid(np.exp(-nu * math.log((t + T0) / T0)) * pdf, z))


def _linear_crossbar(cfg: CrossbarConfig, inputs: int = 400, outputs: int = 300,
                     seed: int = 0) -> tuple[nn.Module, object]:
    torch.manual_seed(seed)
    layer = nn.Linear(inputs, outputs)
    return layer, to_crossbar(nn.Sequential(layer), cfg)


def test_pcm_mean_conductance_at_one_year_matches_power_law_expectation() -> None:
    dev = DeviceModel(levels=16, g_min=1e-6, g_max=1e-5)
    cfg = CrossbarConfig(device=dev, scheme="differential", drift="pcm", time_s=YEAR,
                         dac_bits=None, seed=3)
    _, analog = _linear_crossbar(cfg)
    (_, layer), = analog.analog_layers()
    targets = torch.cat([layer.mapping.g_pos.reshape(-1), layer.mapping.g_neg.reshape(-1)])
    drifted = torch.cat([layer.g_pos.reshape(-1), layer.g_neg.reshape(-1)]).double()
    values, counts = torch.unique(targets.double(), return_counts=True)
    expected = sum(float(g) * int(n) * expected_pcm_factor(float(g) / dev.g_max, YEAR)
                   for g, n in zip(values, counts, strict=True)) / targets.numel()
    assert float(drifted.mean()) == pytest.approx(expected, rel=0.02)
    # and the drift is real: the mean fell by far more than the tolerance
    assert float(drifted.mean()) < 0.7 * float(targets.double().mean())
    # per level, where there are many cells
    for g, n in zip(values, counts, strict=True):
        if n > 20_000:
            mean = float(drifted[targets.double() == g].mean())
            assert mean == pytest.approx(float(g) * expected_pcm_factor(float(g) / 1e-5, YEAR),
                                         rel=0.02)


def test_reram_mean_shift_grows_with_log_time() -> None:
    dev = DeviceModel(levels=16, g_min=1e-6, g_max=88.19e-6)  # the fit's own range
    cfg = CrossbarConfig(device=dev, scheme="differential", drift="reram", time_s=86400.0,
                         dac_bits=None, seed=1)
    _, analog = _linear_crossbar(cfg)
    (_, layer), = analog.analog_layers()
    target = layer.mapping.g_pos.double()
    middle = (target > 20e-6) & (target < 70e-6)  # far from the clamps
    assert int(middle.sum()) > 1000
    shift = float((layer.g_pos.double()[middle] - 49.92383444 / 50 * target[middle]).mean())
    assert shift == pytest.approx(-0.08900206e-6 * math.log(86400), rel=0.05)
    spread = float((layer.g_pos.double()[middle] - 49.92383444 / 50 * target[middle]).std())
    assert spread == pytest.approx((0.04201137 * math.log(86400) + 0.41183342) * 1e-6, rel=0.05)


def test_one_draw_per_trial_evolves_in_time_and_is_seeded() -> None:
    cfg = CrossbarConfig(device=DeviceModel(levels=16), drift="pcm", dac_bits=None, seed=5)
    _, analog = _linear_crossbar(cfg, 50, 20)
    (_, layer), = analog.analog_layers()
    analog.set_time(3600.0)
    first = layer.weight.clone()
    analog.set_time(YEAR)
    later = layer.weight.clone()
    analog.set_time(3600.0)
    assert torch.equal(layer.weight, first)  # same trial, same draws
    assert not torch.equal(later, first)
    _, again = _linear_crossbar(cfg, 50, 20)
    again.set_time(3600.0)
    assert torch.equal(again.analog_layers()[0][1].weight, first)  # same seed
    again.reprogram(1)
    again.set_time(3600.0)
    assert not torch.equal(again.analog_layers()[0][1].weight, first)  # a new trial


def test_drift_compensation_rescales_by_reference_readout() -> None:
    base = dict(device=DeviceModel(levels=16), scheme="differential", drift="pcm",
                time_s=YEAR, dac_bits=None, seed=2)
    _, plain = _linear_crossbar(CrossbarConfig(**base))
    _, layer_comp = _linear_crossbar(CrossbarConfig(**base, drift_compensation="layer"))
    _, col_comp = _linear_crossbar(CrossbarConfig(**base, drift_compensation="column"))
    w_t = plain.analog_layers()[0][1].weight
    w_0 = plain.analog_layers()[0][1].mapping.w_hat  # programmed (no variation here)
    alpha = w_0.abs().mean() / w_t.abs().mean()
    assert torch.allclose(layer_comp.analog_layers()[0][1].weight, w_t * alpha, rtol=1e-5)
    alpha_col = w_0.abs().mean(1) / w_t.abs().mean(1)
    assert torch.allclose(col_comp.analog_layers()[0][1].weight, w_t * alpha_col[:, None],
                          rtol=1e-5)


def test_compensation_restores_lenet5_accuracy_at_one_year() -> None:
    """Differential pairs: within 1 point of the 1 s accuracy (the offset scheme cannot:
    its shared reference cells drift independently of the weights' cells)."""
    from explorer.data import load_dataset
    from explorer.evaluate import evaluate
    from explorer.models import load_pretrained

    model = load_pretrained("lenet5-mnist")
    test = load_dataset("mnist-embedded", "test")  # all 1,000 embedded digits
    results = {}
    for comp in ("none", "column"):
        cfg = CrossbarConfig(device=DeviceModel(levels=16), scheme="differential",
                             drift="pcm", drift_compensation=comp, seed=0)
        out = evaluate(model, test, cfg, trials=3, times=[1.0, YEAR])
        results[comp] = [record["accuracy_mean"] for record in out.times]
    one_second, one_year = results["column"]
    assert one_year >= one_second - 0.01
    assert results["none"][1] < one_year - 0.01  # uncompensated drift costs accuracy


def test_measured_table_interpolates_nu() -> None:
    table = parse_drift_csv(b"conductance_uS,nu_mean,nu_sigma\n10,0.02,0\n1,0.1,0\n")
    assert table.conductance.tolist() == pytest.approx([1e-6, 1e-5])
    from explorer.drift import measured_nu

    g = torch.tensor([0.5e-6, 1e-6, 5.5e-6, 1e-5, 2e-5], dtype=torch.float64)
    nu = measured_nu(g, table, torch.zeros_like(g))
    assert nu.tolist() == pytest.approx([0.1, 0.1, 0.06, 0.02, 0.02])


@pytest.mark.parametrize("data, message", [
    (b"conductance_uS,nu_mean,nu_sigma\n1,0.05,0.01\n5,0.06,-0.02\n",
     "row 3, column 'nu_sigma': '-0.02' must be >= 0"),
    (b"conductance_uS,nu_mean\n1,0.05\n5,0.06\n", "found columns"),
    (b"conductance,nu_mean,nu_sigma\n1e-6,0.05,0.01\n", "at least 2"),
    (b"conductance,nu_mean,nu_sigma\n1e-6,0.05,0.01\n1e-6,0.05,0.01\n", "rows 2 and 3"),
    (b"conductance,nu_mean,nu_sigma\n0,0.05,0.01\n1e-6,x,0.01\n", "must be > 0"),
])
def test_bad_drift_csv(data: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        parse_drift_csv(data)


def test_settings_file_and_unknown_model() -> None:
    head = {"schema": SCHEMA, "version": SCHEMA_VERSION}
    settings = Settings.from_dict({**head, "drift": {"drift": "pcm", "time_s": 3600},
                                   "wires": {"ir_drop": "first_order"}})
    cfg = settings.crossbar
    assert (cfg.drift, cfg.time_s, cfg.ir_drop, cfg.r_row, cfg.r_col) == \
        ("pcm", 3600.0, "first_order", 2.1, 6.4)
    assert Settings.from_dict(settings.to_dict()).crossbar.time_s == 3600.0
    with pytest.raises(InputError, match=r"drift\.drift"):
        Settings.from_dict({**head, "drift": {"drift": "flash"}})
    with pytest.raises(InputError, match="time_s"):
        Settings.from_dict({**head, "drift": {"time_s": -1}})
    with pytest.raises(InputError, match="r_col"):
        Settings.from_dict({**head, "wires": {"r_col": -2}})


def test_sweeps_accept_time_s() -> None:
    from explorer.sweep import cell_config, parse_value, sweep_parameters

    assert "time_s" in sweep_parameters()
    value = parse_value("time_s", "3.2e7")
    cfg = cell_config(CrossbarConfig(drift="pcm"), {"time_s": value}, {})
    assert cfg.time_s == 3.2e7 and cfg.drift == "pcm"


@pytest.mark.parametrize("argv, message", [
    (["--r-row", "-1"], "--r-row: -1"),
    (["--time-s", "-5"], "--time-s: -5"),
    (["--drift", "flash"], "invalid choice: 'flash'"),
    (["--drift", "pcm", "--times", "1,-3"], "'-3' is not allowed"),
    (["--drift", "measured"], "drift_csv"),
])
def test_cli_bad_input_one_line(cli, capsys, argv, message) -> None:
    code, out, err = cli(capsys, "evaluate", "--limit", "20", *argv)
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not out


def test_cli_drift_csv_negative_sigma(cli, capsys, tmp_path) -> None:
    path = tmp_path / "drift.csv"
    path.write_text("conductance_uS,nu_mean,nu_sigma\n1,0.05,0.01\n5,0.06,-0.02\n")
    code, out, err = cli(capsys, "evaluate", "--limit", "20", "--drift", "measured",
                         "--drift-csv", str(path), "--json")
    assert code == 2 and "row 3, column 'nu_sigma'" in err and not out
    assert len(err.strip().splitlines()) == 1


def test_cli_solve_that_does_not_converge(cli, capsys, monkeypatch) -> None:
    import explorer.wires

    monkeypatch.setattr(explorer.wires, "MAX_ITERATIONS", 1)
    code, out, err = cli(capsys, "evaluate", "--limit", "20", "--ir-drop", "solve",
                         "--tile-rows", "32", "--json")
    assert code == 2 and "did not converge" in err and not out
    assert len(err.strip().splitlines()) == 1


def test_cli_times_json_list(cli, capsys) -> None:
    import json

    code, out, err = cli(capsys, "evaluate", "--limit", "50", "--drift", "pcm",
                         "--times", "1,86400,3.2e7", "--json")
    assert code == 0, err
    records = json.loads(out)
    assert [r["time_s"] for r in records] == [1.0, 86400.0, 3.2e7]
    assert all({"accuracy_mean", "accuracy_std"} <= set(r) for r in records)
