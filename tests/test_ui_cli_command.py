"""'Copy CLI command': the generated ``explorer evaluate`` line, parsed by the real CLI
parser, gives back exactly the page's settings (to_dict equal)."""

from __future__ import annotations

import argparse
import json
import shlex

import numpy as np
import pytest

from explorer.crossbar import CrossbarConfig
from explorer.device import DeviceModel
from explorer.settings import Settings, WorkloadSettings
from explorer.ui.cli_command import SETTINGS_FILE, evaluate_command


def parsed(command: str) -> Settings:
    from explorer.commands.evaluate import add_arguments, resolve_settings

    words = shlex.split(command)
    assert words[:2] == ["explorer", "evaluate"]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    settings, _ckpt, _report = resolve_settings(parser.parse_args(words[2:]))
    return settings


def odd_settings() -> Settings:
    device = DeviceModel.from_preset("AlOx/HfO2", levels=23, nonlinearity=2.345678901234)
    cfg = CrossbarConfig(device=device, adc_bits=6, dac_bits=4, bit_serial=True,
                         prog_sigma=0.0123456789012345, tile_rows=64, mapping="generalized",
                         seed=7)
    return Settings(crossbar=cfg, workload=WorkloadSettings(limit=None, trials=4,
                                                            calibration_images=100))


@pytest.mark.parametrize("settings", [Settings(), odd_settings()], ids=["defaults", "odd"])
def test_the_typed_command_gives_back_the_same_settings(settings):
    command = evaluate_command(settings)
    assert "--config" not in command
    assert parsed(command).to_dict() == settings.to_dict()


def test_only_changed_values_are_typed():
    command = evaluate_command(odd_settings())
    assert "--levels 23" in command and "--adc-bits 6" in command
    assert "--dac-bits 4" in command and "--bit-serial" in command
    assert "--limit" not in command  # None (all images) is the declared default
    assert "--tile-cols" not in command  # left at its default


def test_a_drawn_curve_is_reproduced_through_the_exported_settings_file(tmp_path, monkeypatch):
    device = DeviceModel.from_preset("AlOx/HfO2", levels=12)
    device.set_points(np.array([0.0, 5.0, 11.0]), np.array([1e-6, 6e-6, 9e-6]))
    settings = Settings(crossbar=CrossbarConfig(device=device, adc_bits=5),
                        workload=WorkloadSettings(limit=300))
    command = evaluate_command(settings)
    assert f"--config {SETTINGS_FILE}" in command
    monkeypatch.chdir(tmp_path)
    (tmp_path / SETTINGS_FILE).write_text(json.dumps(settings.to_dict()))
    assert parsed(command).to_dict() == settings.to_dict()


def test_the_page_shows_the_command_of_its_current_settings():
    from explorer.jobs import JobRunner
    from explorer.ui.app import Explorer

    runner = JobRunner()
    try:
        app = Explorer(runner=runner)
        app.config.device.levels = 31
        app.config.adc_bits = 7
        app.accuracy.trials = 5
        assert app.cli._text.value == app.cli.command
        assert parsed(app.cli.command).to_dict() == app.export_settings()
    finally:
        runner.shutdown(timeout=30)
