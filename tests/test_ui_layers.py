"""The Layers view (explorer/ui/layers_view.py) driven through its Param model, no browser."""

from __future__ import annotations

import pytest

pn = pytest.importorskip("panel")

from explorer.crossbar import CrossbarConfig  # noqa: E402
from explorer.ui.layers_view import LayersView  # noqa: E402


@pytest.fixture(scope="module")
def view_and_report():
    view = LayersView(CrossbarConfig(adc_bits=3, tile_rows=128), limit=200)
    report = view.run()
    return view, report


def test_inspect_fills_every_pane_from_the_report(view_and_report):
    view, report = view_and_report
    assert view.error == ""
    names = [layer["name"] for layer in report["layers"]]
    assert names == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert list(view._table_source.data["name"]) == names
    assert list(view._bars.x_range.factors) == names
    drops = [100 * layer["sensitivity"]["drop"] for layer in report["layers"]]
    assert list(view._bars_source.data["drop"]) == pytest.approx(drops)
    worst = max(report["layers"], key=lambda layer: layer["sensitivity"]["drop"])["name"]
    assert view.layer == worst  # the view opens on the layer that hurts most
    if report["worst"]["drop"] > 0:
        assert f"**{worst} hurts most**" in view._answer.object


def test_choosing_a_layer_shows_its_partial_sums_and_tile(view_and_report):
    view, report = view_and_report
    layer = report["layers"][1]
    view.layer = layer["name"]
    assert list(view._hist_source.data["count"]) == layer["partial_sums"]["counts"]
    assert view._spans[1].visible and view._spans[1].location == pytest.approx(
        layer["partial_sums"]["adc_range"])
    tile = view._heat_source.data["image"][0]
    assert tile.shape == (len(layer["heatmaps"][0]["g_pos"]),
                          len(layer["heatmaps"][0]["g_pos"][0]))


def test_a_code_model_is_refused_in_the_dashboard(tmp_path):
    code = tmp_path / "net.py"
    code.write_text("raise SystemExit('must not run')\n")
    view = LayersView(CrossbarConfig(), model=f"{code}:build")
    assert view.run() is None
    assert "command line or a notebook" in view.error


def test_the_answer_names_the_digital_layers():
    from explorer.ui.layers_view import answer

    report = {"accuracy": 0.9, "float_accuracy": 0.95, "images": 10, "trial": 0,
              "worst": {"layer": "fc", "accuracy": 0.9, "drop": 0.05, "stderr": 0.01,
                        "reason": "ADC clipping"},
              "digital_layers": [{"name": "attn", "type": "MultiheadAttention",
                                  "parameters": 816, "reason": "attention"}],
              "analog_weight_fraction": 0.5}
    text = answer(report)
    assert "**fc hurts most**" in text and "5.00 points below float" in text
    assert "MultiheadAttention" in text and "816 parameters" in text


def test_the_inspect_button_queues_a_job_and_the_panes_follow_its_report():
    from explorer.jobs import DONE, JobRunner

    runner = JobRunner()
    try:
        view = LayersView(CrossbarConfig(adc_bits=4), runner=runner, limit=100)
        view._button.clicks += 1  # what a press of the button sends
        job = view.job
        assert job is not None and job.wait(600) == DONE
        assert view.report is job.result and view.error == ""
        assert not view._button.disabled
        assert list(view._table_source.data["name"]) == [
            layer["name"] for layer in job.result["layers"]]
        # a job that fails shows its message and leaves the panes as they were
        view.model = "no-such-network"
        view._button.clicks += 1
        assert view.job.wait(600) == "failed"
        assert "no-such-network" in view.error and view.report is job.result
    finally:
        runner.shutdown(cancel=True, timeout=60)
