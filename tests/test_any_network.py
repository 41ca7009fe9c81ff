"""Any torch network on the crossbar (issue 17): torchvision models, 1-D convolutions,
grouped and depthwise convolutions, attention (digital, listed), and exact equality with
ideal converters."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from explorer.coverage import digital_warning, layer_inventory
from explorer.crossbar import CrossbarConfig, to_crossbar
from explorer.tiles import TiledConv1d, TiledConv2d, TileSettings, adc_quantize

torchvision = pytest.importorskip("torchvision")

EXACT = dict(mapping="exact", dac_bits=None, adc_bits=None)


def _assert_equal_rel(y_hat: torch.Tensor, y: torch.Tensor, rel: float = 1e-4) -> None:
    assert y_hat.shape == y.shape
    assert float((y_hat - y).abs().max()) <= rel * float(y.abs().max())


def _converted_equals_float(model: nn.Module, x: torch.Tensor) -> None:
    model.eval()
    with torch.no_grad():
        y = model(x)
        y_hat = to_crossbar(model, CrossbarConfig(**EXACT))(x)
    _assert_equal_rel(y_hat, y)


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "resnet18"])
def test_torchvision_models_convert_exactly_and_run_with_converters(name):
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None, num_classes=10).eval()
    x = torch.rand(2, 3, 40, 40)
    _converted_equals_float(model, x)
    analog = to_crossbar(model, CrossbarConfig(adc_bits=6, tile_rows=64),
                         calibration=torch.rand(4, 3, 40, 40))
    with torch.no_grad():
        y = analog(x)
    assert y.shape == (2, 10) and torch.isfinite(y).all()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    inventory = layer_inventory(model)
    assert len(inventory["analog_layers"]) == len(convs) + len(linears)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert [d["type"] for d in inventory["digital_layers"]] == ["BatchNorm2d"] * len(norms)
    on_cells = sum(m.weight.numel() for m in convs + linears)
    assert inventory["analog_weight_fraction"] == pytest.approx(
        on_cells / sum(p.numel() for p in model.parameters()))
    if name == "mobilenet_v3_small":  # depthwise layers are on the crossbar
        assert any(m.groups == m.in_channels > 1 for m in convs)
        counters = analog.counters()["layers"]
        depthwise = next(n for n, m in model.named_modules()
                         if isinstance(m, nn.Conv2d) and m.groups == m.in_channels > 1)
        assert counters[depthwise]["groups"] > 1


class SequenceNet(nn.Module):
    """A 1-D convolution net for [B, 4, 64] sequences."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv1d(4, 8, 5, padding=2)
        self.c2 = nn.Conv1d(8, 8, 3, stride=2, dilation=2, groups=4, padding=1)
        self.c3 = nn.Conv1d(8, 16, 3, padding="same", bias=False)
        self.fc = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.c1(x))
        x = F.relu(self.c2(x))
        x = F.relu(self.c3(x))
        return self.fc(x.mean(2))


def test_conv1d_net_on_random_sequences():
    torch.manual_seed(1)
    net = SequenceNet().eval()
    x = torch.randn(6, 4, 64)
    _converted_equals_float(net, x)
    analog = to_crossbar(net, CrossbarConfig(adc_bits=5, tile_rows=16),
                         calibration=torch.randn(8, 4, 64))
    assert [type(layer).__name__ for _, layer in analog.analog_layers()] == \
        ["AnalogConv1d"] * 3 + ["AnalogLinear"]
    with torch.no_grad():
        y = analog(x)
    assert y.shape == (6, 3) and torch.isfinite(y).all()
    assert layer_inventory(net)["digital_layers"] == []


def _reference_tiled_conv(x: torch.Tensor, conv: nn.Conv2d, tile_rows: int, bits: int,
                          adc_range: float) -> torch.Tensor:
    """Per group, per row chunk (whole channels, or a kernel split) the ADC of the partial
    sum, then the digital sum: written out with unfold, independently of explorer.tiles."""
    w = conv.weight.detach()
    out_ch, cg, kh, kw = w.shape
    g, k = conv.groups, kh * kw
    og = out_ch // g
    cols = F.unfold(x, (kh, kw), dilation=conv.dilation, padding=conv.padding,
                    stride=conv.stride)
    batch, _, positions = cols.shape
    fit = tile_rows // k
    if fit >= 1:
        n = math.ceil(cg / fit)
        per = math.ceil(cg / n)
        chunks = [list(range(c * k, min(c + per, cg) * k)) for c in range(0, cg, per)]
    else:
        s = math.ceil(k / tile_rows)
        base, extra = divmod(k, s)
        parts = [base + 1] * extra + [base] * (s - extra)
        chunks = []
        for c in range(cg):
            start = 0
            for size in parts:
                chunks.append([c * k + i for i in range(start, start + size)])
                start += size
    y = torch.zeros(batch, out_ch, positions)
    for gi in range(g):
        rows = cols[:, gi * cg * k:(gi + 1) * cg * k]
        wg = w[gi * og:(gi + 1) * og].reshape(og, cg * k)
        for chunk in chunks:
            partial = torch.einsum("or,brl->bol", wg[:, chunk], rows[:, chunk])
            y[:, gi * og:(gi + 1) * og] += adc_quantize(partial, adc_range, bits)
    y += conv.bias.detach().view(1, -1, 1)
    h = (x.shape[2] + 2 * conv.padding[0] - conv.dilation[0] * (kh - 1) - 1) \
        // conv.stride[0] + 1
    return y.view(batch, out_ch, h, -1)


@pytest.mark.parametrize("c_in, c_out, groups, kernel, stride, padding, dilation, rows", [
    (6, 12, 3, 3, 2, 1, 1, 8),     # grouped, 2 chunks per group
    (8, 8, 8, 3, 1, 1, 2, 128),    # depthwise, dilated
    (8, 8, 8, 3, 1, 1, 1, 4),      # depthwise with the 3x3 kernel split over 3 chunks
    (4, 8, 4, 5, 3, 2, 2, 7),      # depthwise-like, 5x5 kernel split, stride 3
    (6, 4, 1, 3, 2, 0, 1, 10),     # plain conv, stride 2
])
def test_grouped_conv_with_adc_matches_an_unfold_reference(c_in, c_out, groups, kernel,
                                                           stride, padding, dilation, rows):
    torch.manual_seed(2)
    conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation,
                     groups=groups)
    x = torch.rand(3, c_in, 11, 11)
    layer = TiledConv2d.from_layer(conv, TileSettings(tile_rows=rows, adc_bits=5,
                                                      adc_range="fixed", adc_fixed_range=0.5))
    layer.calibrate(x)
    with torch.no_grad():
        expected = _reference_tiled_conv(x, conv, rows, 5, float(layer.adc_range))
        assert torch.allclose(layer(x), expected, atol=1e-5)
        assert not torch.allclose(layer(x), conv(x), atol=1e-3)  # the ADC does something


def test_conv1d_with_adc_is_the_conv2d_of_height_one():
    torch.manual_seed(3)
    conv1d = nn.Conv1d(6, 4, 5, stride=2, padding=2, dilation=1, groups=2)
    conv2d = nn.Conv2d(6, 4, (1, 5), stride=(1, 2), padding=(0, 2), groups=2)
    with torch.no_grad():
        conv2d.weight.copy_(conv1d.weight.unsqueeze(2))
        conv2d.bias.copy_(conv1d.bias)
    x = torch.rand(2, 6, 30)
    settings = TileSettings(tile_rows=6, adc_bits=4, adc_range="fixed")
    layer = TiledConv1d.from_layer(conv1d, settings)
    layer.calibrate(x)
    with torch.no_grad():
        expected = _reference_tiled_conv(x.unsqueeze(2), conv2d, 6, 4, float(layer.adc_range))
        assert torch.allclose(layer(x), expected.squeeze(2), atol=1e-5)


class AttentionNet(nn.Module):
    def __init__(self, embed: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.embed = nn.Conv2d(1, embed, 4, stride=4)
        self.attn = nn.MultiheadAttention(embed, heads, batch_first=True)
        self.norm = nn.LayerNorm(embed)
        self.mlp = nn.Linear(embed, embed)
        self.head = nn.Linear(embed, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.embed(x).flatten(2).transpose(1, 2)  # [B, T, E]
        a, _ = self.attn(t, t, t, need_weights=False)
        t = self.norm(t + a)
        t = t + F.relu(self.mlp(t))  # a Linear on [B, T, E]
        return self.head(t.mean(1))


def test_attention_projections_stay_digital_with_their_parameter_counts():
    torch.manual_seed(4)
    e = 16
    net = AttentionNet(e).eval()
    inventory = layer_inventory(net)
    digital = {d["name"]: d for d in inventory["digital_layers"]}
    assert digital["attn"]["type"] == "MultiheadAttention"
    assert digital["attn"]["parameters"] == 3 * e * e + 3 * e  # in_proj weight and bias
    assert digital["attn.out_proj"]["parameters"] == e * e + e
    assert "reads this layer's weight directly" in digital["attn.out_proj"]["reason"]
    assert digital["norm"]["parameters"] == 2 * e
    assert [a["name"] for a in inventory["analog_layers"]] == ["embed", "mlp", "head"]
    on_cells = 16 * 16 + e * e + 5 * e
    assert inventory["analog_weight_fraction"] == pytest.approx(
        on_cells / sum(p.numel() for p in net.parameters()))
    warning = digital_warning(inventory)
    assert warning is not None and "3 layer(s)" in warning and "MultiheadAttention" in warning
    x = torch.rand(3, 1, 16, 16)
    _converted_equals_float(net, x)
    analog = to_crossbar(net, CrossbarConfig(adc_bits=6), calibration=torch.rand(4, 1, 16, 16))
    assert isinstance(analog.network.attn.out_proj, nn.Linear)  # untouched, digital
    with torch.no_grad():
        assert torch.isfinite(analog(x)).all()
    assert analog.counters()["layers"]["mlp"]["positions"] == 16  # 4x4 tokens per image


def test_layers_that_cannot_be_mapped_are_listed_with_reasons():
    net = nn.Sequential(nn.Embedding(10, 4), nn.LSTM(4, 3), nn.Conv2d(1, 2, 3,
                        padding=1, padding_mode="reflect"), nn.ConvTranspose2d(2, 2, 2))
    digital = {d["name"]: d["reason"] for d in layer_inventory(net)["digital_layers"]}
    assert "lookup table" in digital["0"] and "recurrent" in digital["1"]
    assert "padding_mode 'reflect'" in digital["2"] and "transposed" in digital["3"]
    assert layer_inventory(net)["analog_weight_fraction"] == 0.0
