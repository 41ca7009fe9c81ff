"""Crossbar-aware training: gq, uq, rq, hwa – learning, gradients, determinism, checkpoints."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from explorer.crossbar import CrossbarConfig, to_crossbar
from explorer.data import load_dataset
from explorer.deploy import (
    crossbar_config_from_checkpoint,
    device_from_spec,
    device_spec,
    load_trained,
    to_crossbar_from_checkpoint,
)
from explorer.device import DeviceModel
from explorer.errors import InputError
from explorer.mapping import lloyd_max, map_weights
from explorer.models import build_model, load_pretrained, read_checkpoint
from explorer.qlayers import calibrate_model, prepare_model, quant_layers
from explorer.quant import CodebookQuantizer, RelaxedQuantizer, set_noise
from explorer.training import TrainConfig, Trainer, accuracy, save_checkpoint, train

RQ_HARDWARE = {"device": DeviceModel(levels=8), "dac_bits": 4, "adc_bits": 3, "tile_rows": 64}
HARDWARE = {
    "gq": {"device": DeviceModel(levels=4), "dac_bits": None},
    "uq": {"device": DeviceModel(levels=4), "dac_bits": None},
    "rq": RQ_HARDWARE,
    "hwa": {"device": DeviceModel(levels=16, nonlinearity=1.0), "prog_sigma": 0.05,
            "read_sigma": 0.02, "dac_bits": None},
}


def _cfg(method: str, **overrides) -> TrainConfig:
    """gq, uq, hwa from scratch; rq fine-tunes the bundled LeNet5 (through a 4-bit DAC and
    3-bit ADC relaxed quantization does not get going from random weights in 32 steps)."""
    settings = {"method": method, "hardware": CrossbarConfig(**HARDWARE.get(method, {})),
                "epochs": 4, "limit": 512, "batch_size": 64, "seed": 5, "augment": False}
    if method == "rq":
        settings.update(model="lenet5-mnist", lr=1e-3, epochs=2, limit=384)
    settings.update(overrides)
    return TrainConfig(**settings)


def _images(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    data = load_dataset("mnist-embedded", "train", limit=n)
    return data.images.float() / 255, data.labels


@pytest.fixture(scope="module")
def trained() -> dict:
    """One short training run per method on a few hundred digits (see _cfg)."""
    return {method: train(_cfg(method)) for method in HARDWARE}


@pytest.mark.parametrize("method", list(HARDWARE))
def test_each_method_lowers_the_loss(trained, method):
    losses = [h["loss"] for h in trained[method].history]
    assert losses[-1] < 0.75 * losses[0], losses  # measured: 2.30 -> 1.0 … 1.2; rq 1.5 -> 0.6
    assert trained[method].test_accuracy > 0.5  # chance is 0.1


def test_codebook_entries_receive_the_summed_gradient_of_their_weights():
    w = torch.randn(40, 30, generator=torch.Generator().manual_seed(0)).requires_grad_()
    quant = CodebookQuantizer(w, levels=8)
    out = quant(w)
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    out.backward(upstream)
    values = quant.values().detach()
    assert torch.equal(w.grad, upstream)  # straight-through to the weights
    nearest = (w.detach()[..., None] - values).abs().argmin(-1)
    expected = torch.zeros(8).index_add_(0, nearest.reshape(-1), upstream.reshape(-1))
    order = torch.argsort(quant.codebook.detach())
    # value_k = unit · (k-th smallest entry): each entry gets unit × its weights' gradient
    torch.testing.assert_close(quant.codebook.grad[order], expected * quant.unit)
    assert set(out.detach().unique().tolist()) <= set(values.tolist())


def test_uniform_qat_scale_gets_a_gradient_and_the_grid_is_symmetric():
    w = torch.randn(50, generator=torch.Generator().manual_seed(2)).requires_grad_()
    quant = CodebookQuantizer(w, levels=4, uniform=True)
    quant(w).pow(2).sum().backward()
    assert quant.log_scale.grad is not None and quant.log_scale.grad != 0
    values = quant.values().detach()
    torch.testing.assert_close(values, -values.flip(0))


def test_gradients_reach_codebooks_and_learned_ranges():
    images, labels = _images()
    for method in ("gq", "rq"):
        model = prepare_model(build_model("lenet5"), method, CrossbarConfig(**HARDWARE[method]))
        calibrate_model(model, images)
        set_noise(model, temperature=0.5, generator=torch.Generator().manual_seed(0))
        model.train()
        F.cross_entropy(model(images), labels).backward()
        for name, layer in quant_layers(model):
            if method == "gq":
                assert layer.weight_quant.codebook.grad.abs().sum() > 0, name
                continue
            for part in (layer.weight_quant, layer.input_quant, layer.adc_quant):
                assert part.log_range.grad is not None and part.log_range.grad != 0, name
                assert part.log_sigma.grad is not None and part.log_sigma.grad != 0, name
            assert layer.weight.grad.abs().sum() > 0, name


def test_relaxed_model_is_deterministic_at_inference_and_random_in_training():
    images, _ = _images(32)
    model = prepare_model(build_model("lenet5"), "rq", CrossbarConfig(**RQ_HARDWARE))
    calibrate_model(model, images)
    set_noise(model, temperature=1.0, generator=torch.Generator().manual_seed(0))
    model.eval()
    with torch.no_grad():
        first, second = model(images), model(images)
        model.train()
        noisy_a, noisy_b = model(images), model(images)
    assert torch.equal(first, second)
    assert not torch.equal(noisy_a, noisy_b)
    quant = RelaxedQuantizer.for_adc(4, 7.0)  # steps of 1, codes −7 … 7
    quant.eval()
    x = torch.tensor([-9.0, -0.4, 0.6, 2.4, 3.6, 6.9, 100.0])
    torch.testing.assert_close(quant(x).detach(), torch.tensor([-7.0, 0, 1, 2, 4, 7, 7]))


def test_gumbel_relaxation_samples_only_the_two_neighbouring_grid_points():
    quant = RelaxedQuantizer.for_dac(3, 7.0)  # grid 0 … 7, step 1
    quant.generator = torch.Generator().manual_seed(1)
    quant.relaxation = "gumbel"
    quant.temperature = 1e-3  # nearly one-hot samples
    x = torch.full((4000,), 2.3)
    with torch.no_grad():
        sample = quant(x)
    assert sample.min() >= 2.0 - 1e-4 and sample.max() <= 3.0 + 1e-4
    near_two = float((sample < 2.5).float().mean())
    sig = torch.sigmoid(torch.tensor([-2.4, 0.6, 3.6]))  # CDF at the edges 1.5, 2.5, 3.5 (σ = ⅓)
    expected = float((sig[1] - sig[0]) / (sig[2] - sig[0]))  # P(2 | {2, 3}) = 0.632
    assert near_two == pytest.approx(expected, abs=0.03)


def test_soft_round_relaxation_samples_every_cell_with_its_probability():
    """At a low temperature the soft-rounded noisy value is grid point k with the
    probability of k's cell under the logistic noise (Louizos et al.'s distribution)."""
    quant = RelaxedQuantizer.for_dac(3, 7.0)  # grid 0 … 7, step 1; default soft_round
    quant.generator = torch.Generator().manual_seed(1)
    quant.temperature = 1e-3
    x = torch.full((20000,), 2.3)
    with torch.no_grad():
        sample = quant(x)
    codes = sample.round()
    # all but the noisy values within ~T·ln(1000) of a cell edge (≈ 1.4 %) are hard
    assert float(((sample - codes).abs() < 1e-3).float().mean()) > 0.97
    for k in (1, 2, 3, 4):
        edges = torch.sigmoid(torch.tensor([k - 0.5 - 2.3, k + 0.5 - 2.3]) * 3)  # σ = ⅓
        expected = float(edges[1] - edges[0])
        assert float((codes == k).float().mean()) == pytest.approx(expected, abs=0.01), k


@pytest.mark.parametrize("method", list(HARDWARE))
def test_checkpoint_round_trip_reproduces_accuracy(trained, method, tmp_path):
    result = trained[method]
    cfg = _cfg(method)
    path = save_checkpoint(tmp_path / f"{method}.pt", result, cfg)
    ckpt = read_checkpoint(path)
    assert ckpt["method"] == method and ckpt["hardware"]["device"]["levels"] == \
        cfg.hardware.device.levels
    test_set = load_dataset("mnist-embedded", "test")
    assert accuracy(load_trained(path), test_set) == result.test_accuracy
    # the plain network (effective weights) loads like any checkpoint
    plain = load_pretrained(str(path))
    if method in ("gq", "uq", "rq"):
        books = ckpt["quant"]["codebooks"]
        for name, module in plain.named_modules():
            if name in books:
                assert set(module.weight.unique().tolist()) <= set(books[name].tolist()), name
    if method == "hwa":  # latent weights, mapped by the simulator as in training (no noise)
        noiseless = crossbar_config_from_checkpoint(path, prog_sigma=0.0, read_sigma=0.0)
        assert noiseless.device.nonlinearity == 1.0 and noiseless.mapping == "min_error"
        analog = to_crossbar_from_checkpoint(path, None, cfg=noiseless)
        assert accuracy(analog, test_set) == result.test_accuracy
        assert plain.fc1.weight.unique().numel() > 16  # latent weights, not the 16 levels


@pytest.mark.parametrize("method", ["gq", "rq"])
def test_checkpoint_on_its_crossbar_gives_the_trained_accuracy(trained, method, tmp_path):
    """Codebook → generalized mapping, learned ranges → ADC/DAC: the simulator on an
    ideal device reproduces the training network's own (deterministic) accuracy."""
    cfg = _cfg(method)
    path = save_checkpoint(tmp_path / "net.pt", trained[method], cfg)
    hardware = crossbar_config_from_checkpoint(path)
    assert hardware.mapping == "generalized"
    test_set = load_dataset("mnist-embedded", "test")
    calibration, _ = _images(256)
    analog = to_crossbar_from_checkpoint(path, calibration)
    images = test_set.images.float() / 255
    with torch.no_grad():
        simulated, trained_logits = analog(images), load_trained(path)(images)
    agree = float((simulated.argmax(1) == trained_logits.argmax(1)).float().mean())
    assert agree >= 0.997
    if method == "gq":  # no converters in the loop: the same numbers up to rounding
        torch.testing.assert_close(simulated, trained_logits, rtol=1e-4, atol=1e-4)
    else:  # ADC codes can flip where a partial sum sits on a decision edge (float order)
        close = ((simulated - trained_logits).abs() < 1e-3).all(1).float().mean()
        assert close >= 0.99
        layer = dict(analog.analog_layers())["conv2"]
        ranges = read_checkpoint(path)["quant"]["ranges"]["conv2"]
        assert float(layer.adc_range) == pytest.approx(ranges["adc_range"], rel=1e-6)
        # with the simulator's own max calibration instead, the ADC range differs
        recalibrated = to_crossbar_from_checkpoint(path, calibration, learned_ranges=False)
        assert float(dict(recalibrated.analog_layers())["conv2"].adc_range) != \
            pytest.approx(ranges["adc_range"], rel=1e-3)


def test_rq_trains_on_the_simulators_row_chunks():
    """A 9-row tile splits LeNet5's 5×5 kernels; training sums equal the tile engine's."""
    images, _ = _images(16)
    hardware = CrossbarConfig(device=DeviceModel(levels=16), dac_bits=None, adc_bits=6,
                              tile_rows=9, mapping="exact")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = prepare_model(build_model("lenet5"), "rq", hardware)
    calibrate_model(model, images)
    model.eval()
    layers = dict(quant_layers(model))
    plain = build_model("lenet5")
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if k in
                           plain.state_dict()})
    for name, layer in layers.items():
        getattr(plain, name).weight.data = layer.effective_weight().detach()
    analog = to_crossbar(plain, hardware, calibration=images)
    for name, tiled in analog.analog_layers():
        tiled.adc_range.fill_(layers[name].learned_ranges()["adc_range"])
    analog.reprogram(0)
    assert dict(analog.analog_layers())["conv1"].plan.count == 3  # 25 rows -> 9 + 8 + 8
    with torch.no_grad():
        trained, simulated = model(images), analog(images)
    # equal up to float summation order; an ADC code may flip where a partial sum sits on
    # a decision edge, so most (not necessarily all) logits agree to 1e-4
    close = ((trained - simulated).abs() <= 1e-4 * (1 + simulated.abs())).float().mean()
    assert close >= 0.95
    assert torch.equal(trained.argmax(1), simulated.argmax(1))


def test_hwa_forward_uses_the_mapped_levels_with_fresh_noise():
    hardware = CrossbarConfig(device=DeviceModel(levels=8, nonlinearity=3.0), prog_sigma=0.1)
    model = prepare_model(build_model("lenet5"), "hwa", hardware)
    layer = dict(quant_layers(model))["fc1"]
    set_noise(model, generator=torch.Generator().manual_seed(0))
    model.eval()
    mapped = map_weights(layer.weight.detach(), hardware.device, "min_error", "offset").w_hat
    torch.testing.assert_close(layer.effective_weight().detach(), mapped)
    model.train()
    first, second = layer.effective_weight(), layer.effective_weight()
    assert not torch.equal(first, second)
    first.sum().backward()
    assert torch.equal(layer.weight.grad, torch.ones_like(layer.weight))  # straight-through


def test_training_methods_are_deterministic_for_a_seed():
    first = train(_cfg("rq", epochs=1, limit=64)).model.state_dict()
    second = train(_cfg("rq", epochs=1, limit=64)).model.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first
               if isinstance(first[k], torch.Tensor))


def test_device_spec_round_trip_keeps_a_measured_table():
    device = DeviceModel.from_table([1e-6, 2e-6, 2.5e-6, 4e-6, 9e-6])
    again = device_from_spec(device_spec(device))
    assert again.source == "table"
    assert again.conductances().tolist() == device.conductances().tolist()


def test_bad_method_settings_name_the_field():
    with pytest.raises(ValueError, match="method"):
        TrainConfig(method="lsq")
    with pytest.raises(ValueError, match="temperature_end"):
        TrainConfig(temperature_end=0.0)
    with pytest.raises(InputError, match="bit_serial"):
        prepare_model(build_model("lenet5"), "rq", CrossbarConfig(bit_serial=True, dac_bits=8))


def test_cli_trains_rq_and_records_the_hardware(cli, capsys, tmp_path):
    out = tmp_path / "rq.pt"
    code, stdout, stderr = cli(capsys, "train", "--method", "rq", "--epochs", "1", "--limit",
                               "32", "--levels", "8", "--adc-bits", "5", "--tile-rows", "32",
                               "--out", str(out), "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["out"] == str(out)
    ckpt = read_checkpoint(out)
    assert ckpt["method"] == "rq" and ckpt["hardware"]["converters"]["adc_bits"] == 5
    assert ckpt["hardware"]["converters"]["tile_rows"] == 32
    assert ckpt["hardware"]["device"]["levels"] == 8
    assert set(ckpt["quant"]["ranges"]["fc1"]) == {"dac_range", "adc_range"}
    assert all(len(book) == 8 for book in ckpt["quant"]["codebooks"].values())
    code, _, stderr = cli(capsys, "train", "--method", "rq", "--adc-bits", "17", "--out",
                          str(tmp_path / "x.pt"))
    assert code == 2 and "--adc-bits: 17 is not allowed" in stderr
    assert not (tmp_path / "x.pt").exists()


def test_float_warm_up_then_quantizers_start_from_the_warmed_up_weights():
    settings = {"epochs": 2, "warmup_epochs": 1, "limit": 256, "batch_size": 64}
    quantized = Trainer(_cfg("gq", **settings))
    plain = Trainer(_cfg("float", **settings))
    initial = quantized.model.conv1.weight_quant.values().detach().clone()
    assert not quantized.quantizing
    quantized.run_epoch(0)
    plain.run_epoch(0)
    weight = quantized.model.conv1.weight.detach()
    torch.testing.assert_close(weight, plain.model.conv1.weight.detach())  # float epoch
    torch.testing.assert_close(quantized.model.conv1.weight_quant.values().detach(), initial)
    quantized.run_epoch(1)
    assert quantized.quantizing
    # the codebook restarted from the warmed-up weights (Lloyd-Max), then trained one epoch
    restarted = lloyd_max(weight, 4)
    now = quantized.model.conv1.weight_quant.values().detach()
    assert (now - restarted).abs().max() < (initial - restarted).abs().max()


def test_warm_up_length_defaults_and_bounds():
    assert Trainer(_cfg("gq", epochs=8, limit=64)).warmup_epochs == 2  # from scratch
    assert Trainer(_cfg("rq", epochs=8, limit=64)).warmup_epochs == 0  # fine-tuning
    assert Trainer(_cfg("float", epochs=8, limit=64)).warmup_epochs == 0
    with pytest.raises(InputError, match="warmup_epochs"):
        Trainer(_cfg("gq", epochs=2, warmup_epochs=2, limit=64))


def test_rq_compiles_its_kernels_only_for_runs_long_enough_to_gain():
    def fused(trainer):
        flags = {m.fused for m in trainer.model.modules() if isinstance(m, RelaxedQuantizer)}
        assert len(flags) == 1
        return flags.pop()

    assert not fused(Trainer(_cfg("rq", epochs=2, limit=64)))  # 2 steps: compiling costs more
    assert fused(Trainer(_cfg("rq", epochs=4, limit=64, batch_size=1)))  # 256 steps
    forced = Trainer(_cfg("rq", epochs=1, limit=128, fused_kernels=True))
    assert fused(forced)
    assert math.isfinite(forced.run_epoch(0)["loss"])
