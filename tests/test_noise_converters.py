"""per_column ADC input and converter errors (DESIGN.md §4), against hand-computed values."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from explorer.converters import AdcErrors
from explorer.crossbar import CrossbarConfig, to_crossbar
from explorer.device import DeviceModel


def _one_column(weights: list[float]) -> nn.Module:
    layer = nn.Linear(len(weights), 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([weights]))
    return nn.Sequential(layer)


def test_per_column_4_bit_adc_offset_scheme_hand_computed():
    """Two levels 1 µS / 3 µS, offset scheme: reference 2 µS, w_scale = 2·w_max/(Gmax−Gmin)
    = 1e6 per S. Weights (1, −1, 1) → G⁺ = (3, 1, 3) µS, i.e. columns (3, 1, 3) and
    reference (2, 2, 2) in weight units. Calibration input (1, 1, 1): column 7, reference 6,
    so the range is 7 and the 4-bit step 7/15. Input (0.5, 1, 0): column 2.5 → code
    round(2.5·15/7) = round(5.36) = 5; reference 3 → round(6.43) = 6; output (5 − 6)·7/15."""
    dev = DeviceModel(g_min=1e-6, g_max=3e-6, levels=2)
    cfg = CrossbarConfig(device=dev, mapping="min_error", scheme="offset", dac_bits=None,
                         adc_bits=4, adc_input="per_column", tile_rows=3)
    analog = to_crossbar(_one_column([1.0, -1.0, 1.0]), cfg,
                         calibration=torch.ones(1, 3))
    with torch.no_grad():
        y = analog(torch.tensor([[0.5, 1.0, 0.0]]))
    assert float(y) == pytest.approx(-7 / 15, rel=1e-6)
    # input (0.5, 1, 0.2), true product −0.3: column 3.1 → round(6.64) = 7, reference 3.4 →
    # round(7.29) = 7: per-column conversion loses the difference (output 0) ...
    x2 = torch.tensor([[0.5, 1.0, 0.2]])
    with torch.no_grad():
        assert float(analog(x2)) == 0.0
    # ... which the analog subtraction keeps: range max |7 − 6| = 1, 4-bit signed step 1/7;
    # −0.3 → round(−2.1) = −2 → −2/7
    cfg.adc_input = "differential"
    diff = to_crossbar(_one_column([1.0, -1.0, 1.0]), cfg, calibration=torch.ones(1, 3))
    with torch.no_grad():
        assert float(diff(x2)) == pytest.approx(-2 / 7, rel=1e-6)


def test_per_column_differential_pair_hand_computed():
    """Differential pair, levels 1 and 3 µS: w_scale = w_max/(Gmax − Gmin) = 0.5e6 per S.
    Weights (1, −1): G⁺ = (3, 1) µS, G⁻ = (1, 3) µS → columns (1.5, 0.5) and (0.5, 1.5).
    Calibration (1, 1): both columns 2 → range 2, 3-bit step 2/7. Input (1, 0.2): G⁺ column
    1.6 → round(5.6) = 6; G⁻ column 0.8 → round(2.8) = 3; output (6 − 3)·2/7 = 6/7."""
    dev = DeviceModel(g_min=1e-6, g_max=3e-6, levels=2)
    cfg = CrossbarConfig(device=dev, scheme="differential", dac_bits=None, adc_bits=3,
                         adc_input="per_column")
    analog = to_crossbar(_one_column([1.0, -1.0]), cfg, calibration=torch.ones(1, 2))
    with torch.no_grad():
        y = analog(torch.tensor([[1.0, 0.2]]))
    assert float(y) == pytest.approx(6 / 7, rel=1e-6)
    counters = analog.counters()["layers"]["0"]
    assert counters["adc_conversions"] == 2  # the G⁺ and the G⁻ column


def test_converter_offset_gain_and_inl_hand_computed():
    """One 4-bit signed converter (codes −7 … 7): input 2.2 LSB, gain +10 %, offset
    +0.3 LSB → 2.72; INL 1 LSB mid-scale with u = 2.72/7: + (1 − u²) = +0.849 → 3.569 →
    code 4. Unsigned 4-bit (0 … 15): input 7.5, no gain/offset, INL −1: u = 0 → 6.5 → 6
    (round half to even)."""
    errors = AdcErrors(offset=torch.tensor([[0.3]]), gain=torch.tensor([[0.1]]),
                       inl=torch.tensor([[1.0]]))
    steps = torch.tensor([2.2]).view(1, 1, 1, 1)
    assert float(errors.apply_(steps, 4)) == 4.0
    flat = AdcErrors(offset=torch.zeros(1, 1), gain=torch.zeros(1, 1), inl=-torch.ones(1, 1))
    assert float(flat.apply_(torch.tensor([7.5]).view(1, 1, 1, 1), 4, unsigned=True)) == 6.0


def test_converter_errors_are_drawn_per_trial_and_change_the_result():
    model = _one_column([0.5, -0.25, 1.0, 0.75])
    x = torch.rand(64, 4, generator=torch.Generator().manual_seed(0))
    base = dict(device=DeviceModel(levels=16), dac_bits=8, adc_bits=5)
    ideal = to_crossbar(model, CrossbarConfig(**base), calibration=x)
    noisy = to_crossbar(model, CrossbarConfig(adc_offset_sigma=1.0, **base), calibration=x)
    with torch.no_grad():
        y0, y1 = ideal(x), noisy(x)
        noisy.reprogram(1)
        y2 = noisy(x)
        noisy.reprogram(0)
        again = noisy(x)
    assert not torch.equal(y0, y1) and not torch.equal(y1, y2)
    assert torch.equal(y1, again)  # same trial, same converters


@pytest.mark.parametrize(("argv", "message"), [
    (["--read-sigma", "-0.1"], "read_sigma"),
    (["--out-noise", "-0.01"], "out_noise"),
    (["--adc-offset-sigma", "-1"], "adc_offset_sigma"),
    (["--adc-gain-sigma", "-0.1"], "adc_gain_sigma"),
    (["--adc-inl-sigma", "-1"], "adc_inl_sigma"),
    (["--d2d-nl-sigma", "-0.5"], "d2d_nl_sigma"),
    (["--adc-input", "both"], "adc_input"),
    (["--prog-model", "magic"], "prog_model"),
    (["--wv-max-pulses", "0"], "wv_max_pulses"),
])
def test_bad_noise_and_converter_input_is_one_line_exit_2(cli, capsys, argv, message):
    code, _out, err = cli(capsys, "evaluate", "--limit", "20", *argv)
    assert code == 2
    assert message in err.replace("-", "_") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
