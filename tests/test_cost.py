"""Cost model (DESIGN.md §9): the counters behind it, the component formulas against
hand-computed values, data-dependent array energy, latency, sums, bad input."""

from __future__ import annotations

import torch
from torch import nn

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
