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


def test_the_time_button_runs_a_job_that_fills_the_plot_point_by_point() -> None:
    from explorer.jobs import DONE, JobRunner
    from explorer.settings import WorkloadSettings
    from explorer.ui.time_wires import TIMES_S

    config = CrossbarConfig(drift="pcm", ir_drop="first_order", scheme="differential")
    runner = JobRunner()
    seen: list[int] = []
    try:
        view = TimeWiresView(config, runner=runner,
                             workload=lambda: WorkloadSettings(limit=100, trials=1))
        add_time = view.add_time

        def counting(*args: float) -> None:  # the points arrive one by one, as times finish
            add_time(*args)
            seen.append(len(view.points.data["time_s"]))

        view.add_time = counting  # type: ignore[method-assign]
        view.button.clicks += 1
        assert view.job is not None and view.job.wait(600) == DONE
        records = view.job.result["times"]
        assert [r["time_s"] for r in records] == list(TIMES_S)
        assert seen[:len(TIMES_S)] == list(range(1, len(TIMES_S) + 1))
        assert list(view.points.data["time_s"]) == list(TIMES_S)
        assert list(view.points.data["accuracy"]) == [100 * r["accuracy_mean"] for r in records]
        assert max(view.tiles.data["loss"]) > 0  # the IR drop heatmap is drawn
        assert not view.button.disabled and view.status.object == ""
        # without drift or IR drop nothing is queued, and the page says why
        plain = TimeWiresView(CrossbarConfig(), runner=runner)
        assert plain.submit() is None and "drift model" in plain.status.object
    finally:
        runner.shutdown(cancel=True, timeout=60)
