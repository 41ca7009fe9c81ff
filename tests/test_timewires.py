"""IR drop inside the crossbar: the folded layer against tiles solved cell by cell here."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from explorer.crossbar import CrossbarConfig, to_crossbar
from explorer.device import DeviceModel
from explorer.tile_layout import TileLayout
from explorer.tiles import plan_rows
from explorer.wires import column_currents


@pytest.mark.parametrize("method", ["solve", "first_order"])
@pytest.mark.parametrize("scheme", ["offset", "differential"])
def test_linear_layer_output_equals_its_tile_network(method: str, scheme: str) -> None:
    torch.manual_seed(0)
    layer = nn.Linear(20, 6)
    cfg = CrossbarConfig(device=DeviceModel(levels=16, g_min=2e-6, g_max=2e-5), scheme=scheme,
                         tile_rows=32, tile_cols=32, dac_bits=None, ir_drop=method, r_row=5.0,
                         r_col=15.0, v_read=0.3)
    analog = to_crossbar(nn.Sequential(layer), cfg)
    (_, a), = analog.analog_layers()
    m = a.mapping
    # the tile written out by hand: G⁺ (and G⁻) columns, then the reference column
    if scheme == "offset":
        tile = torch.cat([m.g_pos.T, m.g_neg[:1].T], dim=1).double()  # [20, 7]
    else:
        tile = torch.stack([m.g_pos.T, m.g_neg.T], dim=2).reshape(20, 12).double()
    x = torch.rand(9, 20, dtype=torch.float64)
    currents = column_currents(tile, x * cfg.v_read, cfg.r_row, cfg.r_col, method)
    if scheme == "offset":
        diff = currents[:, :6] - currents[:, 6:]
    else:
        diff = currents[:, 0::2] - currents[:, 1::2]
    expected = m.w_scale * diff / cfg.v_read + layer.bias.detach().double()
    got = analog(x.float()).double()
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))
    ideal = x @ m.w_hat.T.double() + layer.bias.detach().double()
    assert not torch.allclose(got, ideal, rtol=1e-3)  # the wires did change something


def test_layout_round_trip_conv_kernel_split_and_column_tiles() -> None:
    plan = plan_rows(3, 25, 9)  # 5×5 kernels split 9 + 8 + 8 over 3 channels: 9 chunks
    out = 5
    layout = TileLayout.build(plan, out, tile_cols=4, differential=True)
    assert layout.shape == (9, 3, 9, 4)  # 10 columns in tiles of 4
    g_pos = torch.rand(out, 3, 5, 5)
    g_neg = torch.rand(out, 3, 5, 5)
    tiles = layout.gather(g_pos, g_neg)
    assert int(layout.mask.sum()) == 2 * g_pos.numel()  # every cell once
    back_pos, back_neg = layout.scatter(tiles, g_pos)
    assert torch.equal(back_pos, g_pos) and torch.equal(back_neg, g_neg)
    # used rows sit at the bottom of each tile (next to the sense amplifiers)
    assert bool(layout.mask[1, 0, 0].logical_not().all()) and bool(layout.mask[1, 0, -1].any())


def test_offset_reference_is_one_cell_per_tile_row() -> None:
    plan = plan_rows(10, 1, 4)  # a Linear of 10 inputs in chunks of 4, 4, 2 … (balanced)
    layout = TileLayout.build(plan, 7, tile_cols=3, differential=False)
    # 7 outputs in tiles of 3: 3 tiles, each 3 data columns + 1 reference column
    assert layout.shape[1:] == (3, 4, 4)
    ref = layout.neg_index.reshape(7, 10)
    assert torch.equal(ref[0], ref[2]) and not torch.equal(ref[2], ref[3])  # shared per tile


def test_tile_losses_report() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(100, 40))
    cfg = CrossbarConfig(device=DeviceModel(levels=16), dac_bits=None, ir_drop="first_order",
                         tile_rows=64, tile_cols=32)
    analog = to_crossbar(model, cfg)
    (_, layer), = analog.analog_layers()
    losses = layer.physics.tile_losses()
    assert losses.shape == (2, 2)  # 2 row chunks of 50, 41 columns in tiles of 32
    assert bool((losses > 0).all()) and bool((losses < 0.5).all())
    values = {k: v for k, v in cfg.param.values().items() if k != "name"}
    exact = to_crossbar(model, CrossbarConfig(**{**values, "ir_drop": "solve"}))
    solved = exact.analog_layers()[0][1].physics.tile_losses()
    assert bool((solved < losses).all())  # first order overestimates the loss
    assert torch.allclose(solved, losses, rtol=0.25)
