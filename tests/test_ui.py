"""Dashboard components driven through their Param models and widgets, without a browser."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import param
import pytest
import torch

pn = pytest.importorskip("panel")

from explorer.crossbar import CrossbarConfig  # noqa: E402
from explorer.device import PRESETS, DeviceModel  # noqa: E402
from explorer.evaluate import evaluate  # noqa: E402
from explorer.jobs import CANCELLED, DONE, FAILED, JobRunner  # noqa: E402
from explorer.mapping import map_weights  # noqa: E402
from explorer.models import analog_layers, build_model  # noqa: E402
from explorer.ui import (  # noqa: E402
    AccuracyRunner,
    CrossbarControls,
    DeviceEditor,
    Explorer,
    MappingView,
    NonIdealityControls,
    build_app,
)
from explorer.ui.accuracy import WORKLOADS, evaluation_job  # noqa: E402

TIMEOUT = 120  # seconds; only reached when something is broken
PROJECT = Path(__file__).resolve().parents[1]
BAD_CSV = b"conductance\n1e-6\nabc\n3e-6\n"
GOOD_CSV = b"conductance_uS\n2\n1\n4\n8\n4\n"


@pytest.fixture(scope="module")
def weights():
    generator = torch.Generator().manual_seed(0)
    model = build_model("lenet5")
    with torch.no_grad():
        for _, module in analog_layers(model):
            module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * 0.05)
    return {name: module.weight.detach().clone() for name, module in analog_layers(model)}


@pytest.fixture
def runner():
    r = JobRunner()
    yield r
    r.shutdown(cancel=True, timeout=TIMEOUT)


def make_view(weights, **device):
    config = CrossbarConfig(device=DeviceModel.from_preset("AlOx/HfO2", levels=16, **device))
    editor = DeviceEditor(config.device)
    view = MappingView(config.device, config, weights)
    return config, editor, view


def widget(component, kind, name):
    """The widget of type ``kind`` labelled ``name`` inside a component's layout."""
    found = [w for w in component.__panel__().select(kind) if w.label == name]
    assert len(found) == 1, f"{len(found)} widgets {kind.__name__} named {name!r}"
    return found[0]


def release(slider, value):
    """What the browser sends when a slider handle is dropped (or a value typed)."""
    with param.edit_constant(slider):
        slider.param.update(value=value, value_throttled=value)


def expected_histogram(view, weights, device, method, scheme="offset"):
    """The counts the view should show for ``method``, computed directly from the core."""
    rel = torch.cat([
        (map_weights(w, device, method=method, scheme=scheme).error.reshape(-1)
         / map_weights(w, device, method=method, scheme=scheme).w_max)
        for w in weights.values()])
    frame = view.histograms[view.histograms["method"] == method]
    lo, hi = frame["left"].iloc[0], frame["right"].iloc[-1]
    return torch.histc(rel.float(), bins=len(frame), min=lo, max=hi).numpy().astype(np.int64)


# -- mapping view -------------------------------------------------------------------------------
def test_changing_levels_through_the_widget_changes_the_histogram_data(weights):
    config, editor, view = make_view(weights)
    before = view.histograms.copy()
    release(widget(editor, pn.widgets.IntSlider, "Levels"), 8)
    assert config.device.levels == 8
    after = view.histograms
    assert not before["count"].equals(after["count"])
    for method in ("linear", "min_error", "generalized"):
        np.testing.assert_array_equal(
            after[after["method"] == method]["count"].to_numpy(),
            expected_histogram(view, weights, config.device, method))
    assert after.groupby("method")["count"].sum().eq(sum(w.numel() for w in weights.values())).all()


def test_changing_nonlinearity_changes_histograms_and_statistics(weights):
    config, editor, view = make_view(weights)
    linear_rmse = view.stats.query("method == 'linear'")["rmse"].to_numpy()
    before = view.histograms.copy()
    release(widget(editor, pn.widgets.FloatSlider, "Nonlinearity (LTP)"), 0.0)
    assert config.device.nonlinearity == 0.0
    assert not before["count"].equals(view.histograms["count"])
    # NL = 0: linear mapping equals min-error substitution (DESIGN.md §2)
    stats = view.stats.set_index(["layer", "method"])["rmse"]
    for layer in weights:
        assert stats[(layer, "linear")] == pytest.approx(stats[(layer, "min_error")], rel=1e-6)
    assert (view.stats.query("method == 'linear'")["rmse"].to_numpy() < linear_rmse).all()


def test_method_scheme_layer_and_overlay_choices(weights):
    config, _, view = make_view(weights)
    view.layer = "fc1"
    assert set(view.stats["layer"]) == {"fc1"}
    assert view.histograms.groupby("method")["count"].sum().eq(weights["fc1"].numel()).all()
    config.scheme = "differential"
    np.testing.assert_array_equal(
        view.histograms.query("method == 'min_error'")["count"].to_numpy(),
        expected_histogram(view, {"fc1": weights["fc1"]}, config.device, "min_error",
                           scheme="differential"))
    view.compare = ["linear"]
    config.mapping = "exact"
    assert view.methods_shown() == ["linear", "exact"]
    assert set(view.histograms["method"]) == {"linear", "exact"}
    exact = view.transfer.query("method == 'exact'")
    np.testing.assert_allclose(exact["w_hat"], exact["w"], atol=1e-6)
    assert view.stats.query("method == 'exact'")["max_abs"].max() < 1e-6
    assert view.error == ""


# -- device editor ------------------------------------------------------------------------------
def test_bad_csv_keeps_the_previous_curve_and_shows_a_message(weights):
    config, editor, view = make_view(weights)
    curve = config.device.conductances().copy()
    histograms = view.histograms.copy()
    upload = widget(editor, pn.widgets.FileInput, "Measured curve (CSV)")
    upload.filename = "bad.csv"
    upload.value = BAD_CSV
    assert "row 3" in editor.message and "'abc' is not a number" in editor.message
    assert "bad.csv" in editor.message and "previous curve is kept" in editor.message
    np.testing.assert_array_equal(config.device.conductances(), curve)
    assert config.device.source == "model"
    pd.testing.assert_frame_equal(view.histograms, histograms)
    alerts = [a for a in editor.__panel__().select(pn.pane.Alert) if a.visible]
    assert [a.object for a in alerts] == [editor.message]


def test_good_csv_becomes_the_levels_and_clears_the_message(weights):
    config, editor, view = make_view(weights)
    assert editor.load_csv(BAD_CSV) is False
    assert editor.load_csv(GOOD_CSV) is True
    assert editor.message == ""
    np.testing.assert_allclose(config.device.conductances(), [1e-6, 2e-6, 4e-6, 8e-6])
    assert (config.device.source, config.device.levels) == ("table", 4)
    assert (editor.g_min_us, editor.g_max_us) == pytest.approx((1.0, 8.0))
    # the levels slider is disabled: a table fixes the levels
    assert widget(editor, pn.widgets.IntSlider, "Levels").disabled
    stats = view.stats.query("method == 'min_error'")
    direct = [map_weights(w, config.device).stats()["rmse"] for w in weights.values()]
    np.testing.assert_allclose(stats["rmse"], direct, rtol=1e-6)


def test_drawn_points_define_the_curve_and_bad_points_are_rejected(weights):
    config, editor, _ = make_view(weights)
    config.device.levels = 8  # the crosses follow the curve
    points = editor.drawn_points()
    assert max(points["pulse"]) == 7
    np.testing.assert_allclose(points["conductance_uS"],
                               config.device.curve(np.array(points["pulse"])) * 1e6)
    editor.draw_source.data = {"pulse": [0, 5, 15], "conductance_uS": [10, 40, 60]}
    editor.param.trigger("use_drawn")
    assert config.device.source == "points" and editor.message == ""
    g = config.device.conductances()
    assert g[0] == pytest.approx(10e-6) and g[-1] == pytest.approx(60e-6)
    assert len(g) == 8 and np.all(np.diff(g) > 0)
    editor.draw_source.data = {"pulse": [0, 5, 15], "conductance_uS": [10, 70, 60]}
    editor.param.trigger("use_drawn")
    assert "must increase" in editor.message
    np.testing.assert_array_equal(config.device.conductances(), g)


def test_going_back_to_an_old_value_after_a_preset_change_is_not_lost(weights):
    config, editor, _ = make_view(weights)
    slider = widget(editor, pn.widgets.IntSlider, "Levels")
    box = next(w for w in editor.__panel__().select(pn.widgets.IntInput)
               if "levels" in w.css_classes)
    epiram, taox = PRESETS["EpiRAM"]["levels"], PRESETS["TaOx/HfOx"]["levels"]
    assert 16 not in (epiram, taox)  # else going back to 16 would change nothing
    editor.preset = "EpiRAM"
    assert (slider.value, box.value) == (epiram, epiram)
    release(slider, 16)  # the value before the preset
    assert config.device.levels == 16
    editor.preset = "TaOx/HfOx"
    assert (slider.value, box.value) == (taox, taox)
    box.value = 16  # typed
    assert config.device.levels == 16 and slider.value == 16


def test_preset_and_conductance_range(weights):
    config, editor, _ = make_view(weights)
    editor.preset = "EpiRAM"
    spec = PRESETS["EpiRAM"]
    dev = config.device
    assert (dev.levels, dev.nonlinearity, dev.g_max) == (spec["levels"], spec["nonlinearity"],
                                                        spec["g_max"])
    assert editor.g_max_us == pytest.approx(spec["g_max"] * 1e6)
    editor.g_min_us = 100.0  # above g_max: rejected, nothing changes
    assert "g_max" in editor.message and "greater than g_min" in editor.message
    assert dev.g_min == spec["g_min"]
    assert editor.g_min_us == pytest.approx(spec["g_min"] * 1e6)
    editor.g_min_us = 1.0
    assert dev.g_min == pytest.approx(1e-6) and editor.message == ""


# -- controls -----------------------------------------------------------------------------------
def test_converter_bits_mirror_the_config_both_ways():
    config = CrossbarConfig()
    controls = CrossbarControls(config)
    dac = widget(controls, pn.widgets.Select, "DAC bits")
    adc = widget(controls, pn.widgets.Select, "ADC bits")
    assert (dac.value, adc.value) == ("8 bits", "ideal")
    adc.value = "4 bits"
    assert config.adc_bits == 4
    config.dac_bits = None
    assert dac.value == "ideal"


def test_every_knob_of_a_part_gets_a_control():
    from explorer.settings import ConverterSettings, NoiseSettings

    config = CrossbarConfig()
    for controls, part in ((CrossbarControls(config), ConverterSettings),
                           (NonIdealityControls(config), NoiseSettings)):
        labels = set()
        for w in controls.__panel__().select(pn.widgets.Widget):
            labels.add(w.label)
        for knob in part.knobs():
            assert part.param[knob].label in labels, knob


def test_impossible_combination_is_shown():
    config = CrossbarConfig()
    controls = NonIdealityControls(config)
    assert controls.problem == ""
    config.stuck_at_gmin = 0.7
    config.stuck_at_gmax = 0.6
    assert "stuck_at" in controls.problem and "at most 1" in controls.problem


# -- accuracy runner ----------------------------------------------------------------------------
def test_evaluation_runs_on_the_worker_and_adds_the_accuracy_to_the_history(runner):
    config = CrossbarConfig(device=DeviceModel.from_preset("AlOx/HfO2", levels=16))
    acc = AccuracyRunner(config, runner=runner, limit=200, trials=2)
    threads = []
    acc.param.watch(lambda _e: threads.append(threading.current_thread()), "history")
    acc.param.trigger("run")
    job = acc.job
    assert job.wait(TIMEOUT) == DONE
    assert len(acc.history) == 1
    row = acc.history.iloc[0]
    assert (row["images"], row["trials"], row["levels"]) == (200, 2, 16)
    assert threads == [runner.worker]  # no server session: delivered from the worker
    # the same numbers as the core's evaluate() with the same settings
    workload = WORKLOADS[acc.workload]
    from explorer.data import load_dataset
    from explorer.models import load_pretrained
    direct = evaluate(load_pretrained(workload.model),
                      load_dataset(workload.dataset, limit=200, download=False), config,
                      trials=2)
    assert row["accuracy_mean"] == pytest.approx(direct.accuracy_mean)
    assert row["float_accuracy"] == pytest.approx(direct.float_accuracy)
    assert f"{direct.accuracy_mean:.2%}" in acc.status
    csv = acc.history_csv().read()
    assert csv.splitlines()[0].startswith("run,workload,images,trials")
    assert len(csv.splitlines()) == 2


def test_cancel_stops_a_running_evaluation(runner):
    config = CrossbarConfig(device=DeviceModel.from_preset("AlOx/HfO2", levels=16))
    acc = AccuracyRunner(config, runner=runner, limit=100, trials=100)
    started = threading.Event()
    acc.param.trigger("run")
    job = acc.job
    job.param.watch(lambda e: started.set() if e.new > 0 else None, "progress")
    if job.progress > 0:
        started.set()
    assert started.wait(TIMEOUT)
    assert acc.cancel_all() == 1
    assert job.wait(TIMEOUT) == CANCELLED
    assert len(acc.history) == 0
    assert "cancelled" in acc.status
    assert runner.pending() == []
    # the worker is free again: the next run completes
    acc.trials = 1
    acc.param.trigger("run")
    assert acc.job.wait(TIMEOUT) == DONE and len(acc.history) == 1


def test_a_failing_run_shows_its_error_and_the_runner_keeps_working(runner):
    def broken(*args, progress, cancel, **settings):
        raise RuntimeError("ADC exploded")

    config = CrossbarConfig()
    acc = AccuracyRunner(config, runner=runner, evaluate_fn=broken)
    acc.param.trigger("run")
    assert acc.job.wait(TIMEOUT) == FAILED
    assert acc.error == "Run 1 failed: RuntimeError: ADC exploded"
    assert any(a.visible and "ADC exploded" in a.object
               for a in acc.__panel__().select(pn.pane.Alert))
    acc._evaluate_fn = evaluation_job
    acc.param.update(limit=100, trials=1)
    acc.param.trigger("run")
    assert acc.job.wait(TIMEOUT) == DONE and acc.error == ""


def test_closing_the_session_cancels_its_jobs_only(runner):
    gate = threading.Event()

    def blocked(*args, progress, cancel, **settings):
        progress(0.1, "waiting")
        while not gate.is_set():
            if cancel.wait(0.01):
                return None
        return {"accuracy_mean": 1.0}

    mine = AccuracyRunner(CrossbarConfig(), runner=runner, evaluate_fn=blocked)
    other = AccuracyRunner(CrossbarConfig(), runner=runner, evaluate_fn=blocked)
    mine.param.trigger("run")
    other.param.trigger("run")
    mine.close()
    assert mine.job.wait(TIMEOUT) == CANCELLED
    gate.set()
    assert other.job.wait(TIMEOUT) == DONE


def test_history_plot_is_against_the_one_changed_setting(runner):
    config = CrossbarConfig(device=DeviceModel.from_preset("AlOx/HfO2", levels=16))
    acc = AccuracyRunner(config, runner=runner, limit=100, trials=1)
    for bits in (None, 4):
        config.adc_bits = bits
        acc.param.trigger("run")
        assert acc.job.wait(TIMEOUT) == DONE
    assert acc.changed_parameter() == "adc_bits"
    assert list(acc.history["adc_bits"]) == ["ideal", 4]
    fig = acc.history_figure()
    assert fig.xaxis[0].axis_label == "adc_bits"
    assert list(fig.x_range.factors) == ["ideal", "4"]
    span = next(r for r in fig.center if r.name == "float accuracy")
    assert span.location == pytest.approx(acc.history["float_accuracy"].iloc[-1] * 100)
    shown = acc.__panel__().select(pn.pane.Bokeh)[0].object
    assert shown.xaxis[0].axis_label == "adc_bits"


# -- app ----------------------------------------------------------------------------------------
def test_the_app_builds_and_renders(runner):
    app = build_app()
    assert isinstance(app, Explorer)
    model = app.__panel__().get_root()
    assert model is not None
    assert app.mapping.error == "" and len(app.mapping.histograms) > 0
    assert app.accuracy.workload in WORKLOADS


def test_the_first_render_does_without_holoviews_and_matplotlib():
    """They are for the sweep plots (imported when a sweep is queued); in a fresh process,
    building and rendering the page must not import them (0.7 s of a served page's start)."""
    code = (
        "import sys, panel as pn\n"
        "from explorer.ui import build_app\n"
        "build_app().__panel__().get_root()\n"
        "print(sorted(m for m in ('holoviews', 'matplotlib') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=PROJECT, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_workload_settings_are_shared_within_each_components_bounds(runner):
    from explorer.ui import SweepPanel
    from explorer.ui.workload import WorkloadSettings

    labels = {"workload": "Model and dataset", "limit": "Test images", "trials": "Trials"}
    for cls in (AccuracyRunner, SweepPanel):
        assert issubclass(cls, WorkloadSettings)
        assert {name: cls.param[name].label for name in labels} == labels
    accuracy = AccuracyRunner(CrossbarConfig(), runner=runner, limit=10_000, trials=100)
    sweep = SweepPanel(CrossbarConfig(), runner=runner, limit=1000, trials=10)
    assert accuracy.selected_workload() is sweep.selected_workload() is WORKLOADS[sweep.workload]
    with pytest.raises(ValueError, match=r"SweepPanel\.limit' must be at least 10"):
        sweep.limit = 5
    with pytest.raises(ValueError, match=r"SweepPanel\.trials' must be at most 10"):
        sweep.trials = 11
    with pytest.raises(ValueError, match=r"AccuracyRunner\.trials' must be at most 100"):
        accuracy.trials = 101


def test_an_exception_while_building_gives_an_error_page(monkeypatch):
    import explorer.ui.app as app_module

    def broken(*args, **kwargs):
        raise RuntimeError("no weights today")

    monkeypatch.setattr(app_module, "Explorer", broken)
    page = app_module.build_app()
    alerts = page.select(pn.pane.Alert)
    assert alerts and "no weights today" in alerts[0].object
    page.get_root()  # it renders


def test_unexpected_errors_are_shown_on_the_page(runner):
    from explorer.errors import InputError

    app = Explorer(runner=runner)
    alert = app.__panel__().select(pn.pane.Alert)
    app.show_exception(RuntimeError("tile exploded"))
    assert app.error == "RuntimeError: tile exploded"
    assert any(a.visible and a.object == app.error for a in alert)
    app.show_exception(InputError("levels: must be 2 … 1024"))
    assert app.error == "levels: must be 2 … 1024"


def test_settings_export_import_round_trip(runner):
    app = Explorer(runner=runner)
    app.config.device.param.update(levels=32, nonlinearity=3.0)
    app.config.param.update(adc_bits=5, scheme="differential", prog_sigma=0.05)
    exported = json.loads(json.dumps(app.export_settings()))
    other = Explorer(runner=runner)
    other.import_settings(exported)
    assert other.export_settings() == exported
    np.testing.assert_array_equal(other.config.device.conductances(),
                                  app.config.device.conductances())
    app.device_editor.load_csv(GOOD_CSV)
    other.import_settings(json.loads(json.dumps(app.export_settings())))
    assert other.config.device.source == "table" and other.config.device.levels == 4
    before = other.export_settings()
    from explorer.errors import InputError

    with pytest.raises(InputError, match="levels"):
        other.import_settings({"device": {"levels": 1}, "crossbar": {}})
    with pytest.raises(InputError, match=r"unknown key 'adc_bitz' \(did you mean 'adc_bits'"):
        other.import_settings({"device": {}, "crossbar": {"adc_bitz": 3}})
    with pytest.raises(InputError, match=r"converters.adc_bits: 40 is not allowed"):
        other.import_settings({"version": 1, "converters": {"adc_bits": 40}})
    with pytest.raises(InputError, match=r"workload.model: the dashboard evaluates"):
        other.import_settings({"version": 1, "workload": {"model": "my.pt"}})
    assert other.export_settings() == before


def test_exported_settings_include_the_workload_and_drawn_curve_rescale(runner):
    app = Explorer(runner=runner)
    app.accuracy.param.update(limit=300, trials=2)
    app.config.device.set_points([0, 5, 10], [1e-6, 4e-6, 5e-6])
    app.config.device.param.update(g_min=2e-6, g_max=8e-6)  # rescale the drawn curve
    exported = json.loads(json.dumps(app.export_settings()))
    assert (exported["workload"]["limit"], exported["workload"]["trials"]) == (300, 2)
    assert (exported["device"]["g_min"], exported["device"]["g_max"]) == (2e-6, 8e-6)
    other = Explorer(runner=runner)
    other.import_settings(exported)
    assert (other.accuracy.limit, other.accuracy.trials) == (300, 2)
    np.testing.assert_allclose(other.config.device.conductances(),
                               app.config.device.conductances(), rtol=0, atol=0)
