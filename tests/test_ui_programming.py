"""The programming-spread view: one trial's programmed weights against the mapped ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("panel")

from explorer.crossbar import CrossbarConfig
from explorer.device import DeviceModel
from explorer.ui.programming_view import ProgrammingView


@pytest.fixture
def view():
    gen = torch.Generator().manual_seed(0)
    weights = {"fc1": torch.randn(32, 64, generator=gen), "fc2": torch.randn(10, 32, generator=gen)}
    cfg = CrossbarConfig(device=DeviceModel.from_preset("AlOx/HfO2", levels=16), seed=3)
    return ProgrammingView(cfg.device, cfg, weights), cfg


def _counts(view, kind):
    frame = view.histograms
    return frame[frame["kind"] == kind]["count"].to_numpy()


def test_without_programming_error_the_programmed_weights_are_the_mapped_ones(view):
    v, _cfg = view
    np.testing.assert_array_equal(_counts(v, "mapped"), _counts(v, "programmed"))
    assert (v.stats["rmse_mapped"] == v.stats["rmse_programmed"]).all()
    assert (v.stats["pulses"] == 0).all()


def test_choosing_the_c2c_model_shows_the_presets_spread_and_pulses(view):
    v, cfg = view
    cfg.prog_model = "c2c"  # the preset's 5 % cycle-to-cycle σ per pulse
    assert (v.stats["rmse_programmed"] > 1.5 * v.stats["rmse_mapped"]).all()
    # pulse count: one per level step from G_min, i.e. the mapped level indices (offset)
    from explorer.mapping import map_weights

    expected = sum(int(map_weights(w, cfg.device).indices.sum()) for w in v.weights.values())
    assert int(v.stats["pulses"].sum()) == expected
    drawn = v._source["programmed"].data["top"]
    np.testing.assert_array_equal(drawn, _counts(v, "programmed"))
    assert not np.array_equal(_counts(v, "mapped"), _counts(v, "programmed"))


def test_an_impossible_choice_shows_a_message_and_keeps_the_last_result(view):
    v, cfg = view
    before = v.stats.copy()
    cfg.prog_model = "measured"  # this device has no measured per-level σ
    assert "needs a device with measured per-level σ" in v.error
    assert v._alert.visible
    assert v.stats.equals(before)
