"""``explorer evaluate``/``sweep --model CHECKPOINT``: a trained checkpoint's hardware and
learned settings (codebooks → generalized mapping, learned ranges → DAC/ADC) are used;
typed options override them; plain weights and the pretrained name behave as before."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from explorer.crossbar import CrossbarConfig
from explorer.data import load_dataset
from explorer.deploy import (
    CheckpointBuilder,
    crossbar_config_from_checkpoint,
    to_crossbar_from_checkpoint,
)
from explorer.device import PRESETS, DeviceModel
from explorer.evaluate import evaluate
from explorer.models import load_pretrained, read_checkpoint
from explorer.training import TrainConfig, save_checkpoint, train

IMAGES = 200
HARDWARE = {
    "rq": {"device": DeviceModel(levels=8), "dac_bits": 6, "adc_bits": 4, "tile_rows": 16},
    "gq": {"device": DeviceModel(levels=4, nonlinearity=2.0), "dac_bits": None,
           "tile_rows": 16},
}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict:
    """Tiny rq and gq checkpoints (the bundled LeNet5 fine-tuned on 128 digits, one epoch)
    and a float one (64 digits from scratch)."""
    folder = tmp_path_factory.mktemp("ckpt")
    paths = {}
    for method, hardware in HARDWARE.items():
        cfg = TrainConfig(model="lenet5-mnist", method=method, epochs=1, limit=128,
                          batch_size=64, lr=1e-3, augment=False, seed=3,
                          hardware=CrossbarConfig(**hardware))
        paths[method] = save_checkpoint(folder / f"{method}.pt", train(cfg), cfg)
    cfg = TrainConfig(method="float", epochs=1, limit=64, augment=False, seed=3)
    paths["float"] = save_checkpoint(folder / "float.pt", train(cfg), cfg)
    return paths


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The evaluated test digits and the calibration images the CLI uses (train[:256])."""
    test = load_dataset("mnist-embedded", "test", limit=IMAGES)
    calibration = load_dataset("mnist-embedded", "train", limit=256).images.float() / 255
    return test.images.float() / 255, test.labels, calibration


def _accuracy(analog: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return int((analog(images).argmax(1) == labels).sum()) / len(labels)


def _evaluate_json(cli, capsys, path, *argv: str) -> dict:
    code, out, err = cli(capsys, "evaluate", "--model", str(path), "--limit", str(IMAGES),
                         *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def test_evaluate_builds_the_crossbar_once_with_the_given_builder(digits):
    """``analog_builder`` replaces to_crossbar; the trials reprogram what it built, with the
    same seeds as the default path."""
    from explorer.crossbar import to_crossbar

    images, labels, calibration = digits
    model = load_pretrained("lenet5-mnist")
    cfg = CrossbarConfig(device=DeviceModel(levels=8), adc_bits=5, prog_sigma=0.1, seed=4)
    calls = []

    def builder(net, config, cal):
        calls.append((config, cal.shape))
        return to_crossbar(net, config, calibration=cal)

    built = evaluate(model, (images, labels), cfg, trials=3, calibration=calibration,
                     analog_builder=builder)
    plain = evaluate(model, (images, labels), cfg, trials=3, calibration=calibration)
    assert calls == [(cfg, calibration.shape)]
    assert built.accuracies == plain.accuracies and len(set(plain.accuracies)) > 1


@pytest.mark.parametrize("method", ["rq", "gq"])
def test_evaluate_uses_the_checkpoints_hardware_and_learned_settings(cli, capsys, checkpoints,
                                                                    digits, method):
    path = checkpoints[method]
    images, labels, calibration = digits
    ckpt = read_checkpoint(path)
    # typed noise on top of the checkpoint's crossbar: two Monte-Carlo trials, same seeds
    out = _evaluate_json(cli, capsys, path, "--prog-sigma", "0.05", "--trials", "2")
    expected = crossbar_config_from_checkpoint(path, prog_sigma=0.05)
    assert out["config"] == json.loads(json.dumps(expected.summary()))
    assert out["config"]["mapping"] == "generalized"
    assert out["config"]["tile_rows"] == 16
    assert out["config"]["device"]["levels"] == HARDWARE[method]["device"].levels
    assert out["config"]["device"]["nonlinearity"] == HARDWARE[method]["device"].nonlinearity
    books, ranges = ckpt["quant"]["codebooks"], ckpt["quant"]["ranges"]
    assert out["checkpoint"] == {"method": method, "used": True, "overridden": ["--prog-sigma"],
                                 "codebooks": len(books), "learned_ranges": len(ranges)}
    assert len(books) == 5 and len(ranges) == (5 if method == "rq" else 0)
    library = [_accuracy(to_crossbar_from_checkpoint(path, calibration, cfg=expected, trial=t),
                         images, labels) for t in range(2)]
    assert out["accuracies"] == library  # exactly, trial by trial
    assert library[0] != library[1] or out["accuracy_std"] == 0.0


def test_ignoring_the_checkpoint_gives_the_old_plain_evaluation(cli, capsys, checkpoints,
                                                               digits):
    path = checkpoints["rq"]
    images, labels, calibration = digits
    used = _evaluate_json(cli, capsys, path)
    ignored = _evaluate_json(cli, capsys, path, "--ignore-checkpoint")
    assert ignored["checkpoint"] == {"method": "rq", "used": False, "overridden": [],
                                     "codebooks": 0, "learned_ranges": 0}
    assert ignored["config"] == json.loads(json.dumps(CrossbarConfig().summary()))
    assert used["config"] != ignored["config"]
    assert (used["config"]["adc_bits"], ignored["config"]["adc_bits"]) == (4, None)
    plain = evaluate(load_pretrained(str(path)), (images, labels), CrossbarConfig(),
                     calibration=calibration)
    assert ignored["accuracies"] == plain.accuracies
    # the same weights on the checkpoint's crossbar without its learned settings differ
    # from the learned ones in the converter ranges the simulator uses
    learned = to_crossbar_from_checkpoint(path, calibration)
    calibrated = to_crossbar_from_checkpoint(path, calibration, learned_ranges=False)
    assert used["accuracies"] == [_accuracy(learned, images, labels)]
    adc = [float(layer.adc_range) for _, layer in learned.analog_layers()]
    assert adc != [float(layer.adc_range) for _, layer in calibrated.analog_layers()]
    print(f"rq checkpoint: with its settings {used['accuracy_mean']:.4f}, without learned "
          f"ranges {_accuracy(calibrated, images, labels):.4f}, ignored "
          f"{ignored['accuracy_mean']:.4f}")


def test_typed_options_override_only_themselves(cli, capsys, checkpoints, digits):
    path = checkpoints["rq"]
    images, labels, calibration = digits
    out = _evaluate_json(cli, capsys, path, "--adc-bits", "6")
    assert out["config"]["adc_bits"] == 6  # the checkpoint says 4
    assert (out["config"]["dac_bits"], out["config"]["tile_rows"]) == (6, 16)
    assert out["config"]["mapping"] == "generalized"
    assert out["checkpoint"]["overridden"] == ["--adc-bits"]
    cfg = crossbar_config_from_checkpoint(path, adc_bits=6)
    assert out["accuracies"] == [_accuracy(to_crossbar_from_checkpoint(path, calibration, cfg),
                                           images, labels)]
    # an ideal ADC keeps only the learned DAC ranges; another mapping drops the codebooks
    out = _evaluate_json(cli, capsys, path, "--adc-bits", "ideal", "--mapping", "min_error",
                         "--levels", "16")
    assert out["config"]["adc_bits"] is None and out["config"]["mapping"] == "min_error"
    assert out["config"]["device"]["levels"] == 16 and out["config"]["dac_bits"] == 6
    assert out["checkpoint"]["codebooks"] == 0 and out["checkpoint"]["learned_ranges"] == 5
    assert out["checkpoint"]["overridden"] == ["--levels", "--mapping", "--adc-bits"]


def test_gq_device_options_change_the_checkpoints_device(cli, capsys, checkpoints):
    path = checkpoints["gq"]
    out = _evaluate_json(cli, capsys, path, "--levels", "8")
    assert out["config"]["device"]["levels"] == 8
    assert out["config"]["device"]["nonlinearity"] == 2.0  # kept from the checkpoint
    out = _evaluate_json(cli, capsys, path, "--preset", "EpiRAM")
    assert out["config"]["device"]["preset"] == "EpiRAM"  # a typed preset replaces it
    assert out["config"]["device"]["levels"] == PRESETS["EpiRAM"]["levels"]


def test_text_output_names_the_checkpoint_settings(cli, capsys, checkpoints):
    code, out, err = cli(capsys, "evaluate", "--model", str(checkpoints["rq"]), "--limit", "50",
                         "--adc-bits", "6")
    assert code == 0, err
    assert ("checkpoint (rq): crossbar settings from the checkpoint except --adc-bits; "
            "codebooks in 5 layer(s) (generalized mapping); learned DAC/ADC ranges in 5 "
            "layer(s)") in out
    code, out, err = cli(capsys, "evaluate", "--model", str(checkpoints["gq"]), "--limit", "50",
                         "--ignore-checkpoint")
    assert code == 0, err
    assert "checkpoint (gq): its settings ignored (--ignore-checkpoint)" in out
    code, out, err = cli(capsys, "evaluate", "--limit", "50")
    assert code == 0, err
    assert "checkpoint" not in out


@pytest.mark.parametrize("model", ["float", "lenet5-mnist"])
def test_plain_weights_evaluate_as_before(cli, capsys, checkpoints, digits, model):
    name = str(checkpoints["float"]) if model == "float" else model
    images, labels, calibration = digits
    out = _evaluate_json(cli, capsys, name, "--adc-bits", "6", "--levels", "8")
    assert out["checkpoint"] is None
    cfg = CrossbarConfig(device=DeviceModel(levels=8), adc_bits=6)
    assert out["config"] == json.loads(json.dumps(cfg.summary()))
    direct = evaluate(load_pretrained(name), (images, labels), cfg, calibration=calibration)
    assert out["accuracies"] == direct.accuracies


@pytest.mark.parametrize(("change", "needle"), [
    (lambda c: c.update(hardware="fast"), "hardware record is malformed"),
    (lambda c: c["hardware"].pop("device"), "hardware record is malformed"),
    (lambda c: c["hardware"]["converters"].update(tile_rows="many"), "tile_rows"),
    (lambda c: c["hardware"]["device"].update(levels=1), "levels"),
    (lambda c: c["hardware"]["device"].pop("g_max"), "missing 'g_max'"),
    (lambda c: c["hardware"].update(colour="blue"), "unknown key 'colour'"),
    (lambda c: c["quant"]["codebooks"].update(fc9=[0.1, 0.2]), "layers the network does not"),
    (lambda c: c["quant"]["ranges"]["fc1"].update(adc_range=-1.0), "adc_range of layer 'fc1'"),
])
def test_malformed_checkpoint_settings_exit_2_in_one_line(cli, capsys, checkpoints, tmp_path,
                                                          change, needle):
    ckpt = read_checkpoint(checkpoints["rq"])
    change(ckpt)
    path = tmp_path / "bad.pt"
    torch.save(ckpt, path)
    for command in ("evaluate", "sweep"):
        extra = ["--set", "adc_bits=4,6", "--in-process", "--out", str(tmp_path / "o")] \
            if command == "sweep" else []
        code, out, err = cli(capsys, command, "--model", str(path), "--limit", "20", *extra)
        assert code == 2 and out == "", err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()
    # its weights alone still evaluate
    code, _, err = cli(capsys, "evaluate", "--model", str(path), "--limit", "20",
                       "--ignore-checkpoint")
    assert code == 0, err


def test_sweep_uses_the_checkpoints_settings_on_every_grid_point(cli, capsys, checkpoints,
                                                                digits, tmp_path):
    import pandas as pd

    path = checkpoints["rq"]
    images, labels, calibration = digits
    out = tmp_path / "sweep"
    code, stdout, err = cli(capsys, "sweep", "--model", str(path), "--set", "adc_bits=4,6",
                            "--limit", str(IMAGES), "--in-process", "--no-plots",
                            "--out", str(out), "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["checkpoint"]["method"] == "rq" and summary["checkpoint"]["used"]
    rows = pd.read_csv(out / "results.csv").to_dict("records")
    assert sorted(r["adc_bits"] for r in rows) == [4, 6]
    for row in rows:
        assert (row["tile_rows"], row["levels"], row["mapping"]) == (16, 8, "generalized")
        cfg = crossbar_config_from_checkpoint(path, adc_bits=row["adc_bits"], seed=row["seed"])
        analog = to_crossbar_from_checkpoint(path, calibration, cfg)
        assert row["accuracy"] == _accuracy(analog, images, labels)
    # ignoring it: the default crossbar, plain mapping (other cell keys, no mix-up)
    code, stdout, err = cli(capsys, "sweep", "--model", str(path), "--set", "adc_bits=4",
                            "--limit", str(IMAGES), "--in-process", "--no-plots",
                            "--out", str(out), "--json", "--ignore-checkpoint")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["checkpoint"]["used"] is False and summary["computed"] == 1


# ----------------------------------------------------------------------------- options


def _parse(command: str, *argv: str) -> argparse.Namespace:
    from explorer.cli import build_parser

    extra = {"train": ["--out", "x.pt"], "sweep": ["--out", "x", "--set", "levels=4"]}
    return build_parser(only=command).parse_args([command, *extra.get(command, []), *argv])


@pytest.mark.parametrize("command", ["evaluate", "train", "sweep"])
def test_untyped_options_are_the_documented_defaults(command):
    from explorer.commands._options import config_from_args, typed_options

    args = _parse(command)
    assert typed_options(args) == []
    cfg = config_from_args(args)
    assert cfg.summary() == CrossbarConfig(device=DeviceModel(levels=16)).summary()
    base = CrossbarConfig(device=DeviceModel(levels=4, nonlinearity=1.0), tile_rows=9,
                          adc_bits=3, dac_bits=None, bit_serial=False, seed=7)
    args = _parse(command, "--dac-bits", "4", "--bit-serial", "--adc-bits", "ideal")
    cfg = config_from_args(args, base=base)
    assert (cfg.dac_bits, cfg.adc_bits, cfg.bit_serial) == (4, None, True)
    assert (cfg.tile_rows, cfg.seed, cfg.device.levels, cfg.device.nonlinearity) == \
        (9, 7, 4, 1.0)
    serial = CrossbarConfig(bit_serial=True)
    assert config_from_args(_parse(command, "--no-bit-serial"), base=serial).bit_serial is False


def test_map_and_evaluate_share_the_device_helper_with_their_own_defaults():
    from explorer.commands import map as map_command
    from explorer.commands._options import device_from_args

    args = _parse("map")
    assert map_command.device_from_args(args).preset == "AlOx/HfO2"
    plain = device_from_args(_parse("evaluate"))
    assert (plain.preset, plain.levels, plain.nonlinearity) == ("", 16, 0.0)
    args = _parse("map", "--levels", "8", "--g-max", "1e-4")
    dev = map_command.device_from_args(args)
    assert (dev.preset, dev.levels, dev.g_max) == ("AlOx/HfO2", 8, 1e-4)


def test_train_records_the_typed_seed_and_defaults(cli, capsys, tmp_path):
    out = tmp_path / "f.pt"
    code, stdout, err = cli(capsys, "train", "--epochs", "1", "--limit", "32", "--method", "gq",
                            "--levels", "4", "--seed", "5", "--out", str(out), "--json")
    assert code == 0, err
    assert json.loads(stdout)["out"] == str(out)
    ckpt = read_checkpoint(out)
    assert ckpt["seed"] == 5 and ckpt["hardware"]["noise"]["seed"] == 5
    converters = ckpt["hardware"]["converters"]
    assert (converters["tile_rows"], converters["dac_bits"]) == (128, 8)
    assert ckpt["hardware"]["device"]["levels"] == 4
    assert isinstance(CheckpointBuilder.from_checkpoint(ckpt).codebooks["fc1"], torch.Tensor)
