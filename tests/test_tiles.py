"""The tile engine: row-chunk plans, DAC/ADC quantisers, chunked products, bit-planes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from explorer.errors import InputError
from explorer.tiles import (
    TiledConv2d,
    TiledLinear,
    TileSettings,
    adc_quantize,
    plan_rows,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


def _seeded(layer: nn.Module, seed: int) -> nn.Module:
    """``layer`` with weights and bias drawn from a seeded generator (no global RNG)."""
    gen = _gen(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return layer


# ----------------------------------------------------------------------------- plans


@pytest.mark.parametrize(("channels", "kernel", "tile_rows", "sizes", "per_chunk"), [
    (6, 25, 128, (75, 75), 3),            # LeNet5 conv2: 5 channels fit, balanced 3 + 3
    (1, 25, 128, (25,), 1),               # LeNet5 conv1
    (400, 1, 128, (100, 100, 100, 100), 100),  # LeNet5 fc1
    (16, 9, 128, (72, 72), 8),            # ResNet-20 stage 1: 14 fit, 8 + 8
    (32, 9, 128, (99, 99, 90), 11),       # 14 fit -> 3 chunks of <= 11 channels
    (16, 9, 9, (9,) * 16, 1),             # seed 001's ReConv: one 3x3 kernel per read
    (84, 1, 128, (84,), 84),
])
def test_row_chunks_hold_whole_channels_balanced(channels, kernel, tile_rows, sizes, per_chunk):
    plan = plan_rows(channels, kernel, tile_rows)
    assert plan.sizes == sizes
    assert plan.channels_per_chunk == per_chunk
    assert plan.kernel_splits == 1
    assert sum(plan.sizes) == channels * kernel
    assert max(plan.sizes) <= tile_rows


def test_a_kernel_larger_than_a_tile_is_split_in_raster_order():
    plan = plan_rows(2, 25, 9)  # 5x5 kernels on 9-row tiles: 9 + 8 + 8 per channel
    assert plan.kernel_splits == 3
    assert plan.sizes == (9, 8, 8, 9, 8, 8)
    masks = torch.tensor(plan.masks)
    assert masks.sum(1).tolist() == [9, 8, 8]
    assert masks.sum(0).tolist() == [1] * 25  # every kernel position in exactly one chunk
    assert masks[0, :9].all() and masks[1, 9:17].all() and masks[2, 17:].all()


def test_bad_tile_settings_name_the_field():
    with pytest.raises(InputError, match="tile_rows"):
        TileSettings(tile_rows=0)
    with pytest.raises(InputError, match="adc_bits"):
        TileSettings(adc_bits=17)
    with pytest.raises(InputError, match="bit_serial"):
        TileSettings(bit_serial=True, dac_bits=None)
    with pytest.raises(InputError, match="adc_range"):
        TileSettings(adc_range="median")


# ----------------------------------------------------------------------------- converters


def test_adc_hand_computed_example():
    sums = torch.tensor([0.1, -0.26, 0.74, 2.0, -5.0])
    # 3 bits, range 1: codes -3 … 3, step 1/3; 2.0 and -5.0 saturate.
    assert torch.allclose(adc_quantize(sums, 1.0, 3),
                          torch.tensor([0.0, -1 / 3, 2 / 3, 1.0, -1.0]))
    # 1 bit is a comparator reading ±R/2.
    assert adc_quantize(sums, 1.0, 1).tolist() == [0.5, -0.5, 0.5, 0.5, -0.5]
    # 8 bits: step 1/127.
    assert torch.allclose(adc_quantize(torch.tensor([0.5]), 1.0, 8), torch.tensor([64 / 127]))


def test_dac_hand_computed_example():
    layer = nn.Linear(4, 4, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(4))
    tiled = TiledLinear.from_layer(layer, TileSettings(dac_bits=2))
    tiled.calibrate(torch.tensor([[0.0, 0.0, 0.0, 3.0]]))  # range 3: codes 0 … 3, step 1
    out = tiled(torch.tensor([[0.4, 1.6, 2.7, 5.0]]))
    assert out.tolist() == [[0.0, 2.0, 3.0, 3.0]]


# ----------------------------------------------------------------------------- chunked MVM


def test_row_chunk_split_hand_computed_linear():
    layer = nn.Linear(5, 1, bias=True)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]]))
        layer.bias.fill_(0.5)
    settings = TileSettings(tile_rows=2, dac_bits=None, adc_bits=3)
    tiled = TiledLinear.from_layer(layer, settings)
    assert tiled.plan.sizes == (2, 2, 1)
    x = torch.ones(1, 5)
    sums, coeffs = tiled.partial_sums(x)
    assert sums.shape == (1, 1, 3, 1)
    assert sums.flatten().tolist() == [3.0, 7.0, 5.0]  # rows {1,2}, {3,4}, {5}
    assert coeffs.tolist() == [1.0]
    tiled.calibrate(x)  # ADC range = max |partial sum| = 7, 3 bits: step 7/3
    assert float(tiled.adc_range) == 7.0
    # codes round(3/(7/3)) = 1, round(3) = 3, round(15/7) = 2 -> (1 + 3 + 2) * 7/3 + 0.5
    assert tiled(x).item() == pytest.approx(14.5, abs=1e-5)


def test_row_chunk_split_hand_computed_conv():
    conv = nn.Conv2d(2, 1, 2, bias=False)  # 2 channels × 2×2 kernel: 8 rows
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[-1.0, 0.5], [2.0, -3.0]]]]))
    x = torch.tensor([[[[1.0, 0.0], [2.0, 1.0]], [[1.0, 1.0], [0.0, 2.0]]]])
    tiled = TiledConv2d.from_layer(conv, TileSettings(tile_rows=4, adc_bits=None))
    assert tiled.plan.sizes == (4, 4)  # one channel per chunk
    sums, _ = tiled.partial_sums(x)
    # channel 0: 1·1 + 2·0 + 3·2 + 4·1 = 11; channel 1: −1 + 0.5 + 0 − 6 = −6.5
    assert sums.flatten().tolist() == [11.0, -6.5]
    assert tiled(x).item() == pytest.approx(4.5)
    split = TiledConv2d.from_layer(conv, TileSettings(tile_rows=3, adc_bits=None))
    assert split.plan.sizes == (2, 2, 2, 2)  # a 4-row kernel on 3-row tiles: 2 + 2
    sums, _ = split.partial_sums(x)
    assert sums.flatten().tolist() == [1.0, 10.0, -0.5, -6.0]


CONV_CASES = [
    (nn.Conv2d(6, 16, 5), (3, 6, 14, 14)),
    (nn.Conv2d(16, 8, 3, padding=1), (2, 16, 8, 8)),
    (nn.Conv2d(3, 8, 3, padding=1, stride=2), (2, 3, 9, 9)),
    (nn.Conv2d(5, 4, 5, padding=2, dilation=2), (2, 5, 11, 11)),
]


@pytest.mark.parametrize("case", range(len(CONV_CASES)))
@pytest.mark.parametrize("tile_rows", [1, 9, 16, 64, 128, 4096])
def test_chunk_partial_sums_add_up_to_the_float_product(case, tile_rows):
    conv, shape = CONV_CASES[case]
    conv = _seeded(conv, case)
    x = torch.rand(shape, generator=_gen(case))
    tiled = TiledConv2d.from_layer(conv, TileSettings(tile_rows=tile_rows))
    sums, coeffs = tiled.partial_sums(x)
    total = torch.einsum("p,pmno->mo", coeffs, sums)
    ref = F.conv2d(x, conv.weight, None, conv.stride, conv.padding, conv.dilation)
    got = total.view(shape[0], *ref.shape[2:], -1).permute(0, 3, 1, 2)
    assert sums.shape[2] == tiled.plan.count
    assert torch.allclose(got, ref, rtol=1e-4, atol=1e-5)
    assert torch.allclose(tiled(x), conv(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("tile_rows", [7, 100, 128, 1000])
def test_linear_partial_sums_add_up(tile_rows):
    layer = _seeded(nn.Linear(400, 30), 1)
    x = torch.rand(4, 400, generator=_gen(1))
    tiled = TiledLinear.from_layer(layer, TileSettings(tile_rows=tile_rows))
    sums, coeffs = tiled.partial_sums(x)
    assert torch.allclose(torch.einsum("p,pmno->mo", coeffs, sums) + layer.bias, layer(x),
                          rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("tile_rows", [9, 64, 128])
@pytest.mark.parametrize("bit_serial", [False, True])
def test_fine_adc_approaches_the_float_product(tile_rows, bit_serial):
    conv = _seeded(nn.Conv2d(16, 8, 3, padding=1), 2)
    x = torch.rand(2, 16, 8, 8, generator=_gen(2))
    settings = TileSettings(tile_rows=tile_rows, dac_bits=16, adc_bits=16, bit_serial=bit_serial)
    tiled = TiledConv2d.from_layer(conv, settings)
    tiled.calibrate(x)
    err = (tiled(x) - conv(x)).abs().max()
    coarse = TiledConv2d.from_layer(conv, TileSettings(tile_rows=tile_rows, dac_bits=16,
                                                       adc_bits=4, bit_serial=bit_serial))
    coarse.calibrate(x)
    assert err < 1e-3
    assert (coarse(x) - conv(x)).abs().max() > 10 * err


@pytest.mark.parametrize("columns", [5, 40])  # narrow and wide digital accumulation
def test_adc_acts_on_each_chunk_and_plane(columns):
    """The output is Σ_p c_p Σ_n ADC(partial sum) + bias, with the calibrated step."""
    conv = _seeded(nn.Conv2d(12, columns, 3, padding=1), 3)
    x = torch.rand(2, 12, 6, 6, generator=_gen(3))
    settings = TileSettings(tile_rows=27, dac_bits=4, adc_bits=3, bit_serial=True)
    tiled = TiledConv2d.from_layer(conv, settings)
    tiled.calibrate(x)
    sums, coeffs = tiled.partial_sums(x)
    assert sums.shape[0] == 4 and tiled.plan.count == 4  # 4 bit-planes, 3 channels per chunk
    assert coeffs.tolist() == [1.0, 2.0, 4.0, 8.0]
    full = float(sums.abs().max())
    assert float(tiled.adc_range) == pytest.approx(full)
    expected = torch.einsum("p,pmno->mo", coeffs, adc_quantize(sums, full, 3)) + conv.bias
    expected = expected.view(2, 6, 6, columns).permute(0, 3, 1, 2)
    assert torch.allclose(tiled(x), expected, atol=1e-4)
    ideal_adc = torch.einsum("p,pmno->mo", coeffs, sums) + conv.bias
    assert not torch.allclose(expected, ideal_adc.view(2, 6, 6, columns).permute(0, 3, 1, 2),
                              atol=1e-2)


@pytest.mark.parametrize("columns", [4, 40])  # narrow and wide digital accumulation
def test_signed_inputs_take_two_passes(columns):
    conv = _seeded(nn.Conv2d(3, columns, 3, padding=1), 4)
    x = torch.randn(2, 3, 8, 8, generator=_gen(4))
    tiled = TiledConv2d.from_layer(conv, TileSettings(dac_bits=8, adc_bits=5))
    tiled.calibrate(x)
    assert tiled.signed_input and tiled.planes == 2
    _sums, coeffs = tiled.partial_sums(x)
    assert coeffs.tolist() == [1.0, -1.0]
    step = tiled._dac_step()
    x_pos = (x.clamp(min=0) / step).round().clamp(max=255) * step
    x_neg = ((-x).clamp(min=0) / step).round().clamp(max=255) * step
    pos = F.conv2d(x_pos, conv.weight, None, padding=1)
    neg = F.conv2d(x_neg, conv.weight, None, padding=1)
    full = float(tiled.adc_range)
    assert full == pytest.approx(float(torch.maximum(pos.abs().max(), neg.abs().max())), rel=1e-5)
    expected = adc_quantize(pos, full, 5) - adc_quantize(neg, full, 5) + conv.bias.view(1, -1, 1, 1)
    assert torch.allclose(tiled(x), expected, atol=1e-4)


def test_uncalibrated_converters_refuse_to_run():
    tiled = TiledLinear.from_layer(nn.Linear(3, 2), TileSettings(dac_bits=8))
    with pytest.raises(RuntimeError, match="not calibrated"):
        tiled(torch.rand(1, 3))


def test_counters_count_tiles_cells_conversions():
    conv = _seeded(nn.Conv2d(6, 16, 5), 5)
    tiled = TiledConv2d.from_layer(conv, TileSettings(tile_rows=128, tile_cols=8,
                                                      cells_per_weight=2, dac_bits=4,
                                                      adc_bits=6, bit_serial=True))
    tiled.calibrate(torch.rand(2, 6, 14, 14, generator=_gen(5)))
    c = tiled.counters()
    assert c["row_chunks"] == 2 and c["column_tiles"] == 4  # 32 columns on 8-column tiles
    assert c["tiles"] == 8
    assert c["cells"] == 150 * 32
    assert c["positions"] == 100
    assert c["planes"] == 4
    assert c["adc_conversions"] == 2 * 16 * 100 * 4
    assert c["dac_cycles"] == 400


def test_repr_gives_shape_chunks_tile_and_converters():
    settings = TileSettings(tile_rows=20, dac_bits=4, adc_bits=3, adc_range="percentile",
                            adc_percentile=99.5)
    conv = TiledConv2d.from_layer(nn.Conv2d(5, 4, 3, stride=2, bias=False), settings)
    # 9 rows per channel, 2 channels per 20-row tile: chunks of 2, 2 and 1 channels
    assert conv.extra_repr() == ("in=5, out=4, kernel=3 × 3, stride=(2, 2), bias=False, "
                                 "chunks=3 × 9–18 rows, tile=20 × 128, dac=4 b, "
                                 "adc=3 b (p99.5), uncalibrated")
    conv.calibrate(torch.randn(2, 5, 7, 7, generator=_gen()))  # signed inputs
    assert conv.extra_repr().endswith("dac=4 b signed, adc=3 b (p99.5)")
    split = TiledConv2d.from_layer(nn.Conv2d(1, 2, 5), TileSettings(tile_rows=9))
    assert "chunks=3 × 8–9 rows (kernels split in 3)" in split.extra_repr()
    serial = TileSettings(dac_bits=8, bit_serial=True, adc_bits=6, adc_range="fixed",
                          adc_fixed_range=0.25)
    linear = TiledLinear.from_layer(nn.Linear(400, 120), serial)
    assert linear.extra_repr() == ("in=400, out=120, chunks=4 × 100 rows, tile=128 × 128, "
                                   "dac=8 b bit-serial, adc=6 b (fixed 0.25), uncalibrated")


def test_editing_a_range_in_place_takes_effect_at_the_next_pass():
    conv = _seeded(nn.Conv2d(16, 16, 3, padding=1, bias=False), 6)
    x = torch.rand(2, 16, 6, 6, generator=_gen(6))
    tiled = TiledConv2d.from_layer(conv, TileSettings(dac_bits=8, adc_bits=4))
    tiled.calibrate(x)
    before = tiled(x)
    full = float(tiled.adc_range)
    tiled.adc_range.fill_(full / 4)  # a narrower range: finer steps, more saturation
    sums, coeffs = tiled.partial_sums(x)
    expected = torch.einsum("p,pmno->mo", coeffs, adc_quantize(sums, full / 4, 4))
    after = tiled(x)
    assert torch.allclose(after, expected.view(2, 6, 6, 16).permute(0, 3, 1, 2), atol=1e-5)
    assert not torch.allclose(after, before, atol=1e-3)
