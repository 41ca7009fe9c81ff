"""Programming models and device-to-device spread (DESIGN.md §3), against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from explorer.crossbar import CrossbarConfig, to_crossbar
from explorer.device import DeviceModel
from explorer.nonideal import NonIdealities, make_generator, pulses_for

CELLS = 40_000


def test_c2c_open_loop_spread_grows_with_the_square_root_of_the_pulses():
    """NeuroSim: σ_c2c·(Gmax − Gmin)·√pulses per cell, clamped to [Gmin, Gmax]."""
    dev = DeviceModel(g_min=1e-6, g_max=1e-5, levels=65, c2c_sigma=0.01)
    g = dev.conductances()
    ni = NonIdealities(prog_model="c2c")
    for level in (4, 16, 36):
        target = torch.full((CELLS,), float(g[level]), dtype=torch.float64)
        out, pulses = ni.program_cells(target, dev, make_generator(level),
                                       torch.full((CELLS,), float(level), dtype=torch.float64))
        expected = 0.01 * 9e-6 * math.sqrt(level)
        assert float(out.std()) == pytest.approx(expected, rel=0.03)
        assert float(pulses.mean()) == level
    # near the top the clamp cuts the spread: nothing above Gmax, nothing below Gmin
    top = torch.full((CELLS,), float(g[-1]), dtype=torch.float64)
    out, _ = ni.program_cells(top, dev, make_generator(9), None)
    assert float(out.max()) <= dev.g_max and float(out.min()) >= dev.g_min
    # a half-normal: P(G = Gmax) = 1/2
    assert float((out == dev.g_max).double().mean()) == pytest.approx(0.5, abs=0.01)


def test_cells_left_at_g_min_take_no_pulses_and_no_error():
    dev = DeviceModel(levels=16, c2c_sigma=0.05)
    target = torch.full((100,), dev.g_min, dtype=torch.float64)
    out, pulses = NonIdealities(prog_model="c2c").program_cells(target, dev, make_generator(0))
    assert torch.equal(out, target) and float(pulses.sum()) == 0


def test_write_verify_residual_and_pulse_count_match_the_geometric_law():
    """Open-loop c2c first; then each cell outside the tolerance gets a corrective pulse
    landing at target + σ·N. With p0 = P(|first error| > tol), q = P(|σN| > tol), the
    expected extra pulses are p0 / (1 − q) (geometric), every residual within tolerance."""
    dev = DeviceModel(g_min=1e-6, g_max=1e-5, levels=17, c2c_sigma=0.02)
    level = 9
    target = torch.full((CELLS,), float(dev.conductances()[level]), dtype=torch.float64)
    ni = NonIdealities(prog_model="write_verify", wv_tolerance=0.02, wv_max_pulses=200)
    out, pulses = ni.program_cells(target, dev, make_generator(3),
                                   torch.full((CELLS,), float(level), dtype=torch.float64))
    span = dev.g_max - dev.g_min
    assert float((out - target).abs().max()) <= 0.02 * span
    p0 = 2 * norm.sf(0.02 / (0.02 * math.sqrt(level)))
    q = 2 * norm.sf(1.0)
    extra = pulses - level
    assert float(extra.mean()) == pytest.approx(p0 / (1 - q), rel=0.05)
    # with a budget of one pulse, the cells still off after it keep their error
    short = NonIdealities(prog_model="write_verify", wv_tolerance=0.02, wv_max_pulses=1)
    out1, _ = short.program_cells(target, dev, make_generator(3),
                                  torch.full((CELLS,), float(level), dtype=torch.float64))
    off = float(((out1 - target).abs() > 0.02 * span).double().mean())
    assert off == pytest.approx(p0 * q, rel=0.1)


def test_device_to_device_spread_of_g_max_and_nl():
    dev = DeviceModel(g_min=1e-6, g_max=1e-5, levels=16, nonlinearity=2.0)
    top = torch.full((CELLS,), dev.g_max, dtype=torch.float64)
    ni = NonIdealities(d2d_gmax_sigma=0.05)
    out, _ = ni.program_cells(top, dev, make_generator(1), torch.full((CELLS,), 15.0,
                                                                   dtype=torch.float64))
    assert float(out.std()) == pytest.approx(0.05 * dev.g_max, rel=0.03)
    # NL spread: a cell at pulse 5 of 15 reaches G(5) on its own curve; reference: the
    # NeuroSim curve evaluated per drawn NL with numpy
    ni = NonIdealities(d2d_nl_sigma=0.5)
    mid = torch.full((2000,), float(dev.conductances()[5]), dtype=torch.float64)
    gen = make_generator(2)
    out, _ = ni.program_cells(mid, dev, gen, torch.full((2000,), 5.0, dtype=torch.float64))
    replay = make_generator(2)  # the draws before the spread: one normal, one uniform
    torch.randn(2000, generator=replay, dtype=torch.float64)
    torch.rand(2000, generator=replay, dtype=torch.float64)
    nl = 2.0 + 0.5 * torch.randn(2000, generator=replay, dtype=torch.float64).numpy()
    expected = [DeviceModel(levels=16, nonlinearity=float(v)).conductances()[5] for v in nl[:50]]
    np.testing.assert_allclose(out.numpy()[:50], expected, rtol=1e-9)


def test_pulses_for_inverts_the_curve():
    dev = DeviceModel(levels=32, nonlinearity=3.0)
    g = torch.as_tensor(dev.conductances())
    np.testing.assert_allclose(pulses_for(g, dev).numpy(), np.arange(32), atol=1e-3)


def test_a_preset_brings_its_cycle_to_cycle_sigma_with_prog_model_c2c():
    model = torch.nn.Sequential(torch.nn.Linear(16, 4))
    dev = DeviceModel.from_preset("AlOx/HfO2", levels=16)
    exact = to_crossbar(model, CrossbarConfig(device=dev, dac_bits=None))
    c2c = to_crossbar(model, CrossbarConfig(device=dev, dac_bits=None, prog_model="c2c"))
    layer_exact, layer_c2c = exact.analog_layers()[0][1], c2c.analog_layers()[0][1]
    assert torch.equal(layer_exact.g_pos, layer_exact.mapping.g_pos.float())
    assert not torch.equal(layer_c2c.g_pos, layer_c2c.mapping.g_pos.float())
    assert c2c.counters()["total"]["program_pulses"] == int(layer_c2c.mapping.indices.sum())


def test_evaluate_says_whether_the_presets_sigma_is_drawn(cli, capsys):
    code, out, _ = cli(capsys, "evaluate", "--limit", "20", "--preset", "AlOx/HfO2",
                       "--levels", "16")
    assert code == 0
    assert "cycle-to-cycle σ 5 % is not drawn" in out
    code, out, _ = cli(capsys, "evaluate", "--limit", "20", "--preset", "AlOx/HfO2",
                       "--levels", "16", "--prog-model", "c2c")
    assert code == 0 and "programming: c2c open loop, σ 5 %" in out
