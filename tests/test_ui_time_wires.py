"""The time-and-wires dashboard view: log time control linked to the config, plots filled."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

pytest.importorskip("panel")

from explorer.crossbar import CrossbarConfig, to_crossbar
from explorer.device import DeviceModel
from explorer.ui.time_wires import TimeWiresView, time_label


def test_log_time_control_is_linked_both_ways() -> None:
    cfg = CrossbarConfig(drift="pcm", time_s=3600.0)
    view = TimeWiresView(cfg)
    assert view.slider.value == pytest.approx(math.log10(3600))
    view.slider.value = math.log10(86400)
    assert cfg.time_s == pytest.approx(86400)
    assert "1 days" in view.label.object
    cfg.time_s = 3.2e7
    assert view.slider.value == pytest.approx(math.log10(3.2e7))
    cfg.time_s = 0.0
    assert view.slider.value == 0.0 and "right after programming" in view.label.object
    assert time_label(90.0) == "1.5 min"
    view.__panel__()


def test_accuracy_points_and_tile_losses_fill_in() -> None:
    cfg = CrossbarConfig(device=DeviceModel(levels=16), dac_bits=None, ir_drop="first_order",
                         tile_rows=32)
    view = TimeWiresView(cfg)
    view.add_time(1.0, 0.98, 0.01)
    view.add_time(3600.0, 0.97)
    assert view.points.data["accuracy"] == pytest.approx([98.0, 97.0])
    view.show_times([{"time_s": 86400.0, "accuracy_mean": 0.9, "accuracy_std": 0.0}])
    assert list(view.points.data["time_s"]) == [86400.0]
    torch.manual_seed(0)
    analog = to_crossbar(nn.Sequential(nn.Linear(64, 10)), cfg)
    view.show_losses(analog)
    assert len(view.tiles.data["loss"]) == 2  # 2 row chunks × 1 column tile
    assert all(0 < loss < 100 for loss in view.tiles.data["loss"])
    assert "largest loss" in view.loss_note.object
