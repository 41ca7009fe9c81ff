"""Bit slicing (NeuroSim's cellBit): k cells of b bits per weight, each slice converted on
its own and shift-added; references in numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from explorer.crossbar import CrossbarConfig, to_crossbar
from explorer.device import DeviceModel
from explorer.errors import InputError

GEN = torch.Generator().manual_seed(0)
W = torch.randn(5, 12, generator=GEN)
X = torch.rand(40, 12, generator=GEN)


def _model() -> nn.Module:
    layer = nn.Linear(12, 5, bias=False)
    with torch.no_grad():
        layer.weight.copy_(W)
    return nn.Sequential(layer)


def _cfg(**kw) -> CrossbarConfig:
    base = dict(device=DeviceModel(levels=16), scheme="differential", mapping="linear",
                weight_slices=2, bits_per_cell=4, weight_bits=8, dac_bits=None)
    return CrossbarConfig(**{**base, **kw})


def _digits() -> tuple[np.ndarray, np.ndarray, float]:
    """Signed slice digits (k = 2, 4 bits, LSB first) of the 8-bit weights, and w_max."""
    w = W.double().numpy()
    w_max = np.abs(w).max()
    q = np.round(np.abs(w) / w_max * 255).astype(np.int64)
    return np.sign(w) * (q & 15), np.sign(w) * (q >> 4), w_max


def test_a_bit_sliced_weight_reconstructs_exactly_with_ideal_converters():
    low, high, w_max = _digits()
    expected = (low + 16 * high) * w_max / 255  # the 8-bit weight, rebuilt from its slices
    analog = to_crossbar(_model(), _cfg(adc_bits=None))
    layer = analog.analog_layers()[0][1]
    np.testing.assert_allclose(layer.weight.double().numpy(), expected, rtol=1e-5, atol=1e-7)
    with torch.no_grad():
        y = analog(X).double().numpy()
    np.testing.assert_allclose(y, X.double().numpy() @ expected.T, rtol=1e-5, atol=1e-5)
    assert analog.counters()["layers"]["0"]["cells"] == 12 * 5 * 2 * 2  # pairs × slices


def test_each_slice_is_converted_on_its_own_and_shift_added():
    """4-bit ADC per slice column, range = max |slice partial sum| of the calibration batch
    (all slices share the converter design); y = step · Σ_j 16^j · code_j."""
    low, high, w_max = _digits()
    unit = w_max / 255
    cal = X[:20].double().numpy()
    sums_cal = np.stack([cal @ (low * unit).T, cal @ (high * unit).T])
    step = np.abs(sums_cal).max() / 7
    x = X[20:].double().numpy()
    codes = [np.clip(np.round(x @ (d * unit).T / step), -7, 7) for d in (low, high)]
    expected = step * (codes[0] + 16 * codes[1])
    analog = to_crossbar(_model(), _cfg(adc_bits=4), calibration=X[:20])
    with torch.no_grad():
        y = analog(X[20:]).double().numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6 * step)
    counters = analog.counters()["layers"]["0"]
    assert counters["adc_conversions"] == 2 * 5  # one per slice column
    # converting the shift-added sum instead (no slicing, same 4-bit ADC) differs
    plain = to_crossbar(_model(), _cfg(adc_bits=4, weight_slices=1), calibration=X[:20])
    with torch.no_grad():
        assert not np.allclose(plain(X[20:]).double().numpy(), expected)


def test_read_noise_on_slices_has_the_shift_weighted_variance():
    """Ideal ADC: variance Σ_j 4^(4j) Σ_r x² (σ w_scale)² (G⁺_j² + G⁻_j²)."""
    analog = to_crossbar(_model(), _cfg(adc_bits=None, read_sigma=0.05, seed=2))
    layer = analog.analog_layers()[0][1]
    x = X[:1].expand(2000, -1)
    with torch.no_grad():
        y = analog(x).double().numpy()
    g_pos, g_neg = layer.g_pos.double().numpy(), layer.g_neg.double().numpy()
    per = (0.05 * layer.mapping.w_scale) ** 2 * (g_pos ** 2 + g_neg ** 2)  # [2, 5, 12]
    expected = ((per[0] + 256 * per[1]) * X[0].double().numpy() ** 2).sum(1)
    np.testing.assert_allclose(y.var(0, ddof=1), expected, rtol=0.1)


@pytest.mark.parametrize(("kw", "message"), [
    (dict(weight_slices=2, bits_per_cell=2, weight_bits=8),
     r"weight_slices: 2 slice\(s\) × 2 bit\(s\) per cell = 4 bits cannot hold weight_bits = 8"),
    (dict(bits_per_cell=5), r"bits_per_cell: 5 bits need 32 levels per cell; the device has 16"),
    (dict(scheme="offset"), r"weight_slices: bit slicing is modelled for differential pairs"),
])
def test_slicing_that_cannot_hold_the_weight_is_refused(kw, message):
    with pytest.raises(InputError, match=message):
        to_crossbar(_model(), _cfg(**kw))


def test_cli_rejects_too_few_slice_bits_in_one_line(cli, capsys):
    code, _out, err = cli(capsys, "evaluate", "--limit", "20", "--scheme", "differential",
                          "--weight-slices", "2", "--bits-per-cell", "3", "--weight-bits", "8")
    assert code == 2 and "6 bits cannot hold weight_bits = 8" in err
    assert len(err.strip().splitlines()) == 1
