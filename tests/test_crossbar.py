"""CrossbarConfig and to_crossbar: exactness, tile invariance, counters, noise, bounds."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from explorer.crossbar import CrossbarConfig, CrossbarModel, to_crossbar, trial_seed
from explorer.device import DeviceModel
from explorer.errors import InputError
from explorer.models import MODELS, analog_layers, build_model


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


def _network(arch: str, seed: int = 0) -> nn.Module:
    """A randomly initialised network (seeded generator) with non-trivial BatchNorm stats."""
    model = build_model(arch).eval()
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            fan_in = module.weight[0].numel()
            module.weight.copy_(torch.randn(module.weight.shape, generator=gen) / fan_in ** 0.5)
            if module.bias is not None:
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=gen))
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.copy_(0.1 * torch.randn(module.num_features, generator=gen))
            module.running_var.copy_(torch.rand(module.num_features, generator=gen) + 0.5)
    return model


def _images(arch: str, n: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, *MODELS[arch].input_shape, generator=torch.Generator().manual_seed(seed))


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


# ----------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("arch", ["lenet5", "vgg8", "resnet20"])
def test_exact_mapping_with_ideal_converters_equals_the_float_model(arch):
    model = _network(arch)
    x = _images(arch, 4 if arch == "vgg8" else 8)
    cfg = CrossbarConfig(mapping="exact", dac_bits=None, adc_bits=None)
    analog = to_crossbar(model, cfg)
    assert isinstance(analog, CrossbarModel)
    assert not any(isinstance(m, (nn.Conv2d, nn.Linear)) for m in analog.modules())
    assert _relative_error(analog(x), model(x)) < 1e-4


@pytest.mark.parametrize("arch", ["lenet5", "resnet20"])
def test_exact_mapping_through_fine_converters_is_close_for_every_tile_size(arch):
    model = _network(arch)
    x = _images(arch, 2)
    ref = model(x)
    for tile_rows in (9, 128):
        cfg = CrossbarConfig(mapping="exact", dac_bits=16, adc_bits=16, tile_rows=tile_rows)
        analog = to_crossbar(model, cfg, calibration=x)
        assert _relative_error(analog(x), ref) < 2e-3, tile_rows


def test_tile_size_does_not_change_ideal_results():
    model = _network("lenet5")
    x = _images("lenet5", 16)
    outputs = []
    for tile_rows, tile_cols in ((9, 8), (64, 64), (128, 128), (1024, 512)):
        cfg = CrossbarConfig(device=DeviceModel(levels=8, nonlinearity=2.0), mapping="min_error",
                             dac_bits=8, adc_bits=None, tile_rows=tile_rows, tile_cols=tile_cols)
        analog = to_crossbar(model, cfg, calibration=x)
        for _, layer in analog.analog_layers():  # the chunked path, ADC bypassed
            sums, _coeffs = layer.partial_sums(_layer_input(analog, layer, x))
            assert sums.shape[2] == layer.plan.count
        outputs.append(analog(x))
    for out in outputs[1:]:
        assert torch.allclose(out, outputs[0], rtol=1e-5, atol=1e-5)
    assert _relative_error(outputs[0], model(x)) > 1e-3  # 8 levels do change the logits


def _layer_input(analog: CrossbarModel, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    seen = []
    handle = layer.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    try:
        analog(x)
    finally:
        handle.remove()
    return seen[0]


def test_the_original_model_is_left_unchanged():
    model = _network("lenet5")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    to_crossbar(model, CrossbarConfig(prog_sigma=0.1, dac_bits=None))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert len(analog_layers(model)) == 5


# ----------------------------------------------------------------------------- counters


def test_lenet5_counters_match_a_hand_count():
    model = _network("lenet5")
    cfg = CrossbarConfig(dac_bits=8, adc_bits=6, tile_rows=128, tile_cols=128, scheme="offset")
    analog = to_crossbar(model, cfg, calibration=_images("lenet5", 8))
    layers = analog.counters()["layers"]
    # conv1: 1·5·5 = 25 rows, 6 columns, 28·28 outputs; conv2: 6·25 = 150 rows in two
    # tiles of 3 channels (75 rows), 10·10 outputs; fc1 400 rows = 4 × 100; fc2, fc3 one tile.
    hand = {
        "conv1": dict(tiles=1, cells=150, used_rows=[25], adc_conversions=6 * 784,
                      dac_cycles=784),
        "conv2": dict(tiles=2, cells=2400, used_rows=[75, 75], adc_conversions=2 * 16 * 100,
                      dac_cycles=100),
        "fc1": dict(tiles=4, cells=48000, used_rows=[100] * 4, adc_conversions=4 * 120,
                    dac_cycles=1),
        "fc2": dict(tiles=1, cells=10080, used_rows=[120], adc_conversions=84, dac_cycles=1),
        "fc3": dict(tiles=1, cells=840, used_rows=[84], adc_conversions=10, dac_cycles=1),
    }
    for name, expected in hand.items():
        for key, value in expected.items():
            assert layers[name][key] == value, (name, key)
    total = analog.counters()["total"]
    conversions = 4704 + 3200 + 480 + 94
    rows = 25 * 784 + 150 * 100 + 400 + 120 + 84  # word lines × reads (one column tile each)
    assert total == {"tiles": 9, "cells": 61470, "adc_conversions": conversions,
                     "dac_cycles": 887, "row_activations": rows, "shift_adds": conversions,
                     "program_pulses": 0}
    # per_column ADC input: one more conversion per row chunk and column tile (the
    # reference column of each 128-column tile; every layer has at most 120 columns)
    per_column = to_crossbar(model, CrossbarConfig(dac_bits=8, adc_bits=6,
                                                   adc_input="per_column"),
                             calibration=_images("lenet5", 8))
    extra = {"conv1": 1 * 784, "conv2": 2 * 100, "fc1": 4, "fc2": 1, "fc3": 1}
    for name, n in extra.items():
        assert per_column.counters()["layers"][name]["adc_conversions"] == \
            hand[name]["adc_conversions"] + n, name


def test_differential_pairs_and_bit_serial_inputs_change_the_counts():
    model = _network("lenet5")
    cfg = CrossbarConfig(dac_bits=4, adc_bits=6, scheme="differential", bit_serial=True)
    analog = to_crossbar(model, cfg, calibration=_images("lenet5", 4))
    fc1 = analog.counters()["layers"]["fc1"]
    assert fc1["columns"] == 240 and fc1["column_tiles"] == 2 and fc1["tiles"] == 8
    assert fc1["cells"] == 96000
    assert fc1["adc_conversions"] == 4 * 120 * 4  # chunks × columns × bit-planes
    assert analog.counters()["layers"]["conv1"]["dac_cycles"] == 784 * 4


def test_signed_first_layer_of_cifar_nets_takes_two_passes():
    model = _network("resnet20")
    cfg = CrossbarConfig(dac_bits=8, adc_bits=8)
    analog = to_crossbar(model, cfg, calibration=_images("resnet20", 4))
    layers = analog.counters()["layers"]
    assert layers["conv1"]["planes"] == 2  # normalised inputs are signed
    assert layers["layers.0.conv1"]["planes"] == 1  # after ReLU: unsigned


# ----------------------------------------------------------------------------- noise


def test_programming_variation_is_seeded_and_redrawn_per_trial():
    model = _network("lenet5")
    x = _images("lenet5", 8)
    cfg = CrossbarConfig(prog_sigma=0.1, dac_bits=None, seed=3)
    a, b = to_crossbar(model, cfg), to_crossbar(model, cfg)
    assert torch.equal(a(x), b(x))  # same seed, same numbers
    first = a(x)
    a.reprogram(1)
    second = a(x)
    assert not torch.allclose(first, second)
    a.reprogram(0)
    assert torch.equal(a(x), first)
    other = to_crossbar(model, CrossbarConfig(prog_sigma=0.1, dac_bits=None, seed=4))
    assert not torch.allclose(other(x), first)
    ideal = to_crossbar(model, CrossbarConfig(dac_bits=None))
    assert not torch.allclose(ideal(x), first)


def test_offset_reference_is_not_programmed():
    model = _network("lenet5")
    analog = to_crossbar(model, CrossbarConfig(prog_sigma=0.2, dac_bits=None, scheme="offset"))
    for _, layer in analog.analog_layers():
        assert torch.equal(layer.g_neg, layer.mapping.g_neg)
        assert not torch.equal(layer.g_pos, layer.mapping.g_pos)
    diff = to_crossbar(model, CrossbarConfig(prog_sigma=0.2, dac_bits=None,
                                             scheme="differential"))
    _, fc1 = diff.analog_layers()[2]
    assert not torch.equal(fc1.g_neg, fc1.mapping.g_neg)


def test_stuck_at_faults_pin_cells():
    model = _network("lenet5")
    dev = DeviceModel(g_min=1e-6, g_max=1e-5, levels=16)
    analog = to_crossbar(model, CrossbarConfig(device=dev, stuck_at_gmax=0.3, dac_bits=None))
    _, fc1 = analog.analog_layers()[2]
    share = float((fc1.g_pos == 1e-5).float().mean())
    target_share = float((fc1.mapping.g_pos == 1e-5).float().mean())
    assert 0.25 < share - target_share * 0.7 < 0.35


def test_read_noise_changes_every_pass_reproducibly():
    model = _network("lenet5")
    x = _images("lenet5", 4)
    cfg = CrossbarConfig(read_sigma=0.05, dac_bits=None, seed=1)
    a, b = to_crossbar(model, cfg), to_crossbar(model, cfg)
    first, second = a(x), a(x)
    assert not torch.allclose(first, second)
    assert torch.equal(b(x), first) and torch.equal(b(x), second)
    quiet = to_crossbar(model, CrossbarConfig(dac_bits=None, seed=1))
    assert torch.equal(quiet(x), quiet(x))


def test_trial_seeds_are_distinct_and_stable():
    seeds = {trial_seed(0, t) for t in range(100)} | {trial_seed(1, t) for t in range(100)}
    assert len(seeds) == 200
    assert trial_seed(5, 2) == trial_seed(5, 2)
    assert trial_seed(5, 2, 0) != trial_seed(5, 2, 1)


# ----------------------------------------------------------------------------- layers


def test_repr_of_a_converted_lenet5_says_what_each_layer_is():
    model = _network("lenet5")
    cfg = CrossbarConfig(dac_bits=8, adc_bits=6, tile_rows=128, tile_cols=128, seed=2)
    text = repr(to_crossbar(model, cfg, calibration=_images("lenet5", 4)))
    assert "trial=0, seed=2" in text
    # 400 rows in tiles of 128 word lines: 4 balanced chunks of 100 rows
    assert ("(fc1): AnalogLinear(in=400, out=120, chunks=4 × 100 rows, tile=128 × 128, "
            "dac=8 b, adc=6 b (max), mapping=min_error/offset, levels=16)") in text
    # 6 channels of 5×5: 5 fit a tile, so 2 chunks of 3 channels (75 rows)
    assert ("(conv2): AnalogConv2d(in=6, out=16, kernel=5 × 5, chunks=2 × 75 rows, "
            "tile=128 × 128, dac=8 b, adc=6 b (max), mapping=min_error/offset, levels=16)") in text
    assert "padding=(2, 2)" in text  # conv1 only
    exact = to_crossbar(model, CrossbarConfig(mapping="exact", dac_bits=None))
    assert "dac=ideal, adc=ideal, mapping=exact/offset)" in repr(exact)


def test_programmed_conductances_are_buffers_saved_and_loaded_with_the_model():
    model = _network("lenet5")
    x = _images("lenet5", 4)
    cfg = CrossbarConfig(prog_sigma=0.1, dac_bits=None, scheme="differential", seed=5)
    source = to_crossbar(model, cfg, trial=3)
    buffers = dict(source.named_buffers())
    for name, layer in source.analog_layers():
        assert buffers[f"network.{name}.g_pos"] is layer.g_pos
        assert buffers[f"network.{name}.g_neg"] is layer.g_neg
    target = to_crossbar(model, cfg, trial=0)
    assert not torch.equal(target(x), source(x))
    target.load_state_dict(source.state_dict())
    assert torch.equal(target(x), source(x))
    for (_, a), (_, b) in zip(source.analog_layers(), target.analog_layers(), strict=True):
        assert torch.equal(a.g_pos, b.g_pos) and torch.equal(a.g_neg, b.g_neg)


def test_loading_conductances_leaves_the_noise_free_mapping_alone():
    model = _network("lenet5")
    analog = to_crossbar(model, CrossbarConfig(dac_bits=None))  # programmed = mapped cells
    targets = {name: layer.mapping.g_pos.clone() for name, layer in analog.analog_layers()}
    state = analog.state_dict()
    analog.load_state_dict({k: v * 0.5 if k.endswith(".g_pos") else v for k, v in state.items()})
    for name, layer in analog.analog_layers():
        assert torch.equal(layer.mapping.g_pos, targets[name])
        assert torch.equal(layer.g_pos, targets[name] * 0.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_moving_the_model_moves_the_cells_and_keeps_the_trial():
    model = _network("lenet5")
    cfg = CrossbarConfig(prog_sigma=0.1, dac_bits=None, seed=5)
    analog = to_crossbar(model, cfg, trial=2)
    before = {name: layer.g_pos.clone() for name, layer in analog.analog_layers()}
    analog.to("cuda")
    assert analog.trial == 2
    # trial 2 drawn again on the GPU: its generator, seeded as on the CPU, layer after layer
    gen = torch.Generator(device="cuda").manual_seed(trial_seed(5, 2, 0))
    for name, layer in analog.analog_layers():
        expected = cfg.nonidealities().program(layer.mapping.g_pos.cuda(), cfg.device, gen)
        assert layer.g_pos.is_cuda and layer.g_neg.is_cuda
        assert torch.equal(layer.g_pos, expected), name
    analog.to("cpu")
    for name, layer in analog.analog_layers():
        assert torch.equal(layer.g_pos, before[name]), name


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("name", "value"), [
    ("adc_bits", 17), ("adc_bits", 0), ("dac_bits", 20), ("tile_rows", 0), ("tile_cols", -1),
    ("prog_sigma", -0.1), ("read_sigma", -1.0), ("stuck_at_gmin", 1.5), ("adc_percentile", 0),
    ("adc_fixed_range", 1.5), ("mapping", "nearest"), ("scheme", "twin"), ("seed", -1),
])
def test_out_of_range_values_raise_naming_the_parameter(name, value):
    with pytest.raises(ValueError, match=name):
        CrossbarConfig(**{name: value})


def test_inconsistent_combinations_raise_input_errors():
    with pytest.raises(InputError, match="bit_serial"):
        CrossbarConfig(bit_serial=True, dac_bits=None).validate()
    with pytest.raises(InputError, match="stuck_at"):
        CrossbarConfig(stuck_at_gmin=0.7, stuck_at_gmax=0.6).validate()
    with pytest.raises(InputError, match="calibration"):
        to_crossbar(_network("lenet5"), CrossbarConfig(dac_bits=8))
    with pytest.raises(InputError, match="trial"):
        to_crossbar(_network("lenet5"), CrossbarConfig(dac_bits=None)).reprogram(-1)


def test_given_codebooks_are_what_the_generalized_mapping_writes():
    model = build_model("lenet5").eval()
    book = torch.tensor([-0.2, -0.05, 0.0, 0.05, 0.2])
    cfg = CrossbarConfig(device=DeviceModel(levels=5), mapping="generalized", dac_bits=None,
                         adc_bits=None)
    analog = to_crossbar(model, cfg, codebooks={"fc1": book})
    layers = dict(analog.analog_layers())
    written = torch.unique(layers["fc1"].mapping.w_hat)
    assert all(bool(torch.isclose(book, v, atol=1e-6).any()) for v in written)
    own = torch.unique(layers["fc2"].mapping.w_hat)  # no codebook given: Lloyd-Max's own
    assert not all(bool(torch.isclose(book, v, atol=1e-6).any()) for v in own)
    other = CrossbarConfig(device=DeviceModel(levels=5), mapping="min_error", dac_bits=None,
                           adc_bits=None)
    plain = to_crossbar(model, other, codebooks={"fc1": book})
    assert not all(bool(torch.isclose(book, v, atol=1e-6).any())
                   for v in torch.unique(dict(plain.analog_layers())["fc1"].mapping.w_hat))
