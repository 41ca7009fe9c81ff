"""Per-read noise (DESIGN.md §3): every read draws afresh, batch-size independent.

References are written here in numpy from the programmed conductances (state, not the
noise code): the variance of one output is Σ_reads Σ_rows x² (σ·w_scale)² (G⁺² + G⁻²)
(+ the offset scheme's reference column, shared by the columns of a column tile).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from explorer.crossbar import CrossbarConfig, to_crossbar
from explorer.device import DeviceModel

READS = 2000
SIGMA = 0.05


def _linear(in_features: int = 24, out_features: int = 6, seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    layer = nn.Linear(in_features, out_features, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(out_features, in_features, generator=gen))
    return nn.Sequential(layer)


def _reads(scheme: str, **cfg) -> tuple[np.ndarray, np.ndarray, object]:
    """2,000 reads of one input (one batch); the input, outputs and the analog layer."""
    model = _linear()
    x = torch.linspace(0.05, 1.0, 24).view(1, -1)
    config = CrossbarConfig(device=DeviceModel(levels=16, nonlinearity=1.0), scheme=scheme,
                            read_sigma=SIGMA, seed=3, **cfg)
    # the read input is in the calibration batch: its partial sums stay inside the ADC range
    calibration = torch.cat([x, torch.rand(64, 24, generator=torch.Generator().manual_seed(1))])
    analog = to_crossbar(model, config, calibration=calibration)
    with torch.no_grad():
        y = analog(x.expand(READS, -1)).double().numpy()
    layer = analog.analog_layers()[0][1]
    return x.double().numpy()[0], y, layer


def _analytic_variance(x: np.ndarray, layer, dac_step: float = 1.0) -> np.ndarray:
    m = layer.mapping
    s = float(m.w_scale)
    g_pos = layer.g_pos.double().numpy()
    g_neg = layer.g_neg.double().numpy()
    return (x ** 2 * dac_step ** 2 * (SIGMA * s) ** 2 * (g_pos ** 2 + g_neg ** 2)).sum(1)


def _dac(x: np.ndarray, layer) -> tuple[np.ndarray, float]:
    """The DAC's codes and step (numpy, from the calibrated range)."""
    bits = layer.settings.dac_bits
    step = float(layer.dac_range) / (2 ** bits - 1)
    return np.clip(np.round(x / step), 0, 2 ** bits - 1), step


@pytest.mark.parametrize("scheme", ["differential", "offset"])
def test_variance_of_one_output_over_2000_reads_matches_the_analytic_value(scheme):
    x, y, layer = _reads(scheme, dac_bits=None, adc_bits=None)
    expected = _analytic_variance(x, layer)
    measured = y.var(axis=0, ddof=1)
    np.testing.assert_allclose(measured, expected, rtol=0.10)
    # the mean is the noise-free product (within 4 standard errors)
    w = layer.weight.double().numpy()
    assert np.all(np.abs(y.mean(0) - w @ x) < 4 * np.sqrt(expected / READS))


def test_offset_reference_noise_is_shared_by_the_columns_of_a_tile():
    x, y, layer = _reads("offset", dac_bits=None, adc_bits=None, tile_cols=4)
    s = float(layer.mapping.w_scale)
    g_ref = float(layer.g_neg.reshape(-1)[0])
    shared = (x ** 2).sum() * (SIGMA * s * g_ref) ** 2
    cov = np.cov(y.T)
    # columns 0-3 share tile 0's reference column, 4-5 tile 1's: covariance = shared
    # variance inside a tile, 0 across tiles (within 4 standard errors of a covariance)
    err = 4 * np.sqrt(np.outer(np.diag(cov), np.diag(cov)) / READS)
    assert abs(cov[0, 3] - shared) < err[0, 3] and abs(cov[4, 5] - shared) < err[4, 5]
    assert abs(cov[0, 4]) < err[0, 4] and abs(cov[2, 5]) < err[2, 5]
    assert shared > 4 * err[0, 3]  # the shared part is measurable, so the test can fail


@pytest.mark.parametrize("bit_serial", [False, True])
def test_variance_with_row_chunks_adc_and_bit_planes(bit_serial):
    """Each chunk and each bit plane is one read; with a fine ADC the output variance is
    Σ_planes 4^b Σ_chunks Σ_rows bit_b(code)·v (bit-serial) or Σ code²·v."""
    x, y, layer = _reads("differential", dac_bits=6, adc_bits=14, tile_rows=5,
                         bit_serial=bit_serial)
    codes, step = _dac(x, layer)
    if bit_serial:
        bits = (codes.astype(np.int64)[:, None] >> np.arange(6)) & 1
        q = (bits * 4.0 ** np.arange(6)).sum(1)
    else:
        q = codes ** 2
    expected = _analytic_variance(np.sqrt(q), layer, step)
    np.testing.assert_allclose(y.var(axis=0, ddof=1), expected, rtol=0.10)


def test_identical_images_in_one_batch_get_different_noise_and_the_seed_repeats():
    _, y, _ = _reads("differential", dac_bits=8, adc_bits=None, tile_rows=8)
    assert len(np.unique(y[:, 0])) == READS  # continuous noise: every read its own value
    _, quantized, _ = _reads("differential", dac_bits=8, adc_bits=10, tile_rows=8)
    assert len(np.unique(quantized[:, 0])) > 50  # still many ADC codes apart
    _, again, _ = _reads("differential", dac_bits=8, adc_bits=10, tile_rows=8)
    np.testing.assert_array_equal(quantized, again)  # same seed, same numbers


def test_output_noise_per_conversion():
    """out_noise: σ = out_noise × full-scale partial sum per conversion, added to each
    chunk's partial sum: variance = chunks × (out_noise · FS)² with no read noise."""
    model = _linear()
    x = torch.linspace(0.05, 1.0, 24).view(1, -1)
    cfg = CrossbarConfig(device=DeviceModel(levels=16), out_noise=0.01, dac_bits=None,
                         adc_bits=None, tile_rows=8, seed=1)
    calibration = torch.rand(64, 24, generator=torch.Generator().manual_seed(1))
    analog = to_crossbar(model, cfg, calibration=calibration)
    layer = analog.analog_layers()[0][1]
    with torch.no_grad():
        y = analog(x.expand(READS, -1)).double().numpy()
    full_scale = 8 * float(layer.mapping.w_hat.abs().max()) * float(calibration.abs().max())
    expected = 3 * (0.01 * full_scale) ** 2  # 24 rows in 3 chunks of 8
    np.testing.assert_allclose(y.var(axis=0, ddof=1), expected, rtol=0.10)


def test_accuracy_with_read_noise_does_not_depend_on_the_batch_size():
    from explorer.data import load_dataset
    from explorer.evaluate import evaluate
    from explorer.models import load_pretrained

    model = load_pretrained("lenet5-mnist")
    test = load_dataset("mnist-embedded", "test", limit=100)
    calibration = load_dataset("mnist-embedded", "train", limit=128).images.float() / 255
    cfg = CrossbarConfig(device=DeviceModel(levels=16, nonlinearity=1.0), dac_bits=8,
                         adc_bits=6, read_sigma=0.3, seed=5)
    acc = {b: evaluate(model, test, cfg, calibration=calibration, batch_size=b).accuracy_mean
           for b in (1, 500)}
    # two binomial estimates of one accuracy p over 100 images: |difference| within 3 σ
    p = (acc[1] + acc[500]) / 2
    assert abs(acc[1] - acc[500]) <= 3 * np.sqrt(2 * p * (1 - p) / 100) + 1e-9, acc
    assert p < 0.97  # σ = 0.3 per read does cost accuracy (the noise is really there)


@pytest.mark.parametrize("scheme", ["differential", "offset"])
def test_per_column_conversion_carries_the_same_read_noise(scheme):
    """Each column (and the G⁻ / reference column) read and converted on its own with a
    fine ADC whose range leaves headroom: the output variance is the same Σ x²·v as with
    analog subtraction."""
    x, y, layer = _reads(scheme, dac_bits=None, adc_bits=16, adc_input="per_column",
                         tile_rows=8, adc_range="fixed")  # full-scale range: no saturation
    np.testing.assert_allclose(y.var(axis=0, ddof=1), _analytic_variance(x, layer), rtol=0.10)


@pytest.mark.parametrize("kind", ["conv1d", "grouped"])
def test_read_noise_on_conv1d_and_grouped_convolutions(kind):
    """One output position: variance Σ x² (σ w_scale)² (G⁺² + G_ref²) per output channel
    (offset scheme; a grouped convolution's reference read is drawn per column)."""
    gen = torch.Generator().manual_seed(0)
    if kind == "conv1d":
        layer, x = nn.Conv1d(4, 3, 5, bias=False), torch.rand(1, 4, 5, generator=gen)
    else:
        layer, x = nn.Conv2d(4, 6, 2, groups=2, bias=False), torch.rand(1, 4, 2, 2, generator=gen)
    cfg = CrossbarConfig(device=DeviceModel(levels=16), read_sigma=SIGMA, dac_bits=None,
                         adc_bits=None, seed=4)
    analog = to_crossbar(nn.Sequential(layer), cfg)
    with torch.no_grad():
        y = analog(x.expand(READS, *x.shape[1:])).double().reshape(READS, -1).numpy()
    cells = analog.analog_layers()[0][1]
    s = float(cells.mapping.w_scale)
    g_pos = cells.g_pos.double().numpy().reshape(y.shape[1], -1)
    g_ref = float(cells.g_neg.reshape(-1)[0])
    groups = 2 if kind == "grouped" else 1
    rows = x.double().numpy().reshape(groups, -1)  # each group's inputs
    x_rows = np.repeat(rows, y.shape[1] // groups, axis=0)  # the inputs each column sees
    expected = ((x_rows ** 2) * (SIGMA * s) ** 2 * (g_pos ** 2 + g_ref ** 2)).sum(1)
    np.testing.assert_allclose(y.var(axis=0, ddof=1), expected, rtol=0.10)
