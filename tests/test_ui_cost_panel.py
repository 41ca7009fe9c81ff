"""Cost panel (explorer/ui/cost_panel.py): built once, updated by the crossbar settings."""

from __future__ import annotations

import pytest

pn = pytest.importorskip("panel")

from explorer.cost import COMPONENTS  # noqa: E402
from explorer.crossbar import CrossbarConfig  # noqa: E402
from explorer.ui.cost_panel import CostPanel  # noqa: E402


@pytest.fixture
def panel():
    return CostPanel(CrossbarConfig(dac_bits=8, adc_bits=4, tile_rows=128),
                     calibration_images=16)


def _stacked_total(panel) -> float:
    data = panel.source.data
    return sum(sum(data[k]) for k in COMPONENTS)


def test_plot_holds_every_layer_stacked_by_component(panel):
    report = panel.report
    assert panel.error == ""
    assert list(panel.source.data["layer"]) == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert list(panel.figure.x_range.factors) == list(panel.source.data["layer"])
    assert _stacked_total(panel) == pytest.approx(report.energy_pj_per_image)
    assert f"{report.energy_pj_per_image:,.1f} pJ per image" in panel.summary.object
    assert pn.panel(panel) is not None  # renders


def test_converters_tiles_and_node_update_the_panes(panel):
    plot, summary = panel.figure, panel.summary
    four_bit = panel.report
    panel.config.adc_bits = 8
    assert panel.report.energy_breakdown_pj["adc"] > four_bit.energy_breakdown_pj["adc"]
    assert _stacked_total(panel) == pytest.approx(panel.report.energy_pj_per_image)
    eight_bit = panel.report
    panel.config.tile_rows = 16  # more row chunks: more conversions
    assert panel.report.energy_breakdown_pj["adc"] > eight_bit.energy_breakdown_pj["adc"]
    area = panel.report.area_mm2
    panel.config.tech_node = 65
    assert panel.report.area_mm2 > area and "65 nm" in panel.summary.object
    panel.config.cols_per_adc = 4
    assert "4 columns per ADC" in panel.summary.object
    assert panel.figure is plot and panel.summary is summary  # built once, updated


def test_bad_constants_file_shows_one_line_and_keeps_the_last_plot(panel, tmp_path):
    before = dict(panel.source.data)
    missing = tmp_path / "none.json"
    panel.config.cost_constants = str(missing)
    assert "does not exist" in panel.error and "\n" not in panel.error
    assert "Cost not available" in panel.summary.object
    assert panel.source.data["layer"] == before["layer"]
    panel.config.cost_constants = ""
    assert panel.error == ""


def test_a_new_device_is_followed(panel):
    from explorer.device import DeviceModel

    before = panel.report.energy_breakdown_pj["array"]
    panel.config.device = DeviceModel(g_min=1e-6, g_max=2e-5, levels=16)
    doubled = panel.report.energy_breakdown_pj["array"]
    assert doubled > 1.5 * before  # higher conductances, more read energy
    panel.config.device.g_max = 1e-5  # a parameter of the new device
    assert panel.report.energy_breakdown_pj["array"] < doubled



TIMEOUT = 120  # seconds; only reached when something is broken


@pytest.fixture
def blocked_runner():
    """A job thread kept busy by another owner's job until the test sets the gate."""
    import threading

    from explorer.jobs import JobRunner

    runner = JobRunner()
    gate, started = threading.Event(), threading.Event()

    def blocker(progress, cancel):
        started.set()
        gate.wait(TIMEOUT)

    runner.submit(blocker, owner="another session")
    assert started.wait(TIMEOUT)
    yield runner, gate
    gate.set()
    runner.shutdown(timeout=TIMEOUT)


def _direct(config: CrossbarConfig, images: int = 16):
    """The cost of ``config`` computed here, as ``explorer cost`` does."""
    from explorer.cost import estimate
    from explorer.crossbar import to_crossbar
    from explorer.models import load_pretrained
    from explorer.workload import calibration_images

    network = load_pretrained("lenet5-mnist").eval()
    calibration, _ = calibration_images("mnist-embedded", images, download=False)
    return estimate(to_crossbar(network, config, calibration=calibration), config)


def test_with_a_runner_the_work_runs_on_it_and_a_newer_change_replaces_a_queued_one(
        blocked_runner):
    from explorer.jobs import CANCELLED, DONE, QUEUED

    runner, gate = blocked_runner
    config = CrossbarConfig(dac_bits=8, adc_bits=4, tile_rows=128)
    panel = CostPanel(config, runner=runner, calibration_images=16)
    first = panel.job
    assert panel.report is None and first.status == QUEUED  # nothing computed here
    config.adc_bits = 6
    second = panel.job
    config.adc_bits = 8
    last = panel.job
    assert first.status == CANCELLED and second.status == CANCELLED  # superseded
    assert last.status == QUEUED and panel.report is None
    gate.set()
    assert last.wait(TIMEOUT) == DONE, last.error
    expected = _direct(CrossbarConfig(dac_bits=8, adc_bits=8, tile_rows=128))
    assert panel.report.energy_breakdown_pj == pytest.approx(expected.energy_breakdown_pj)
    assert _stacked_total(panel) == pytest.approx(expected.energy_pj_per_image)
    assert f"{expected.energy_pj_per_image:,.1f} pJ per image" in panel.summary.object


def test_with_a_runner_a_bad_setting_shows_one_line(blocked_runner, tmp_path):
    from explorer.jobs import FAILED

    runner, gate = blocked_runner
    gate.set()
    config = CrossbarConfig()
    panel = CostPanel(config, runner=runner, calibration_images=16)
    config.cost_constants = str(tmp_path / "none.json")
    assert panel.job.wait(TIMEOUT) == FAILED
    assert "does not exist" in panel.error and "\n" not in panel.error
    assert not panel.error.startswith("InputError")
    assert "Cost not available" in panel.summary.object


def test_a_panel_not_live_submits_nothing_until_switched_on(blocked_runner):
    from explorer.jobs import DONE

    runner, gate = blocked_runner
    gate.set()
    config = CrossbarConfig(dac_bits=8, adc_bits=4, tile_rows=128)
    panel = CostPanel(config, runner=runner, calibration_images=16, live=False)
    config.adc_bits = 6
    config.tile_rows = 64
    assert panel.job is None and panel.report is None  # no job per change while hidden
    panel.live = True  # its section is opened: the current settings, once
    job = panel.job
    assert job is not None and job.wait(TIMEOUT) == DONE, job.error
    expected = _direct(CrossbarConfig(dac_bits=8, adc_bits=6, tile_rows=64))
    assert panel.report.energy_breakdown_pj == pytest.approx(expected.energy_breakdown_pj)
    panel.live = False
    panel.live = True  # nothing changed meanwhile: no new job
    assert panel.job is job
