"""evaluate(): Monte-Carlo trials, progress, cancel, bad input; the evaluate/bench commands."""

from __future__ import annotations

import json
import math
import re
import threading

import pytest
import torch
from torch import nn

from explorer.crossbar import CrossbarConfig
from explorer.data import load_dataset
from explorer.errors import InputError
from explorer.evaluate import Cancelled, EvaluationResult, evaluate
from explorer.jobs import JobCancelled
from explorer.models import build_model


@pytest.fixture(scope="module")
def digits():
    return load_dataset("mnist-embedded", "test", limit=300)


@pytest.fixture(scope="module")
def lenet():
    model = build_model("lenet5").eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return model


def _float_accuracy(model: nn.Module, dataset) -> float:
    with torch.no_grad():
        logits = model(dataset.images.float() / 255)
    return float((logits.argmax(1) == dataset.labels).float().mean())


def test_result_holds_trials_mean_std_float_accuracy_and_counters(lenet, digits):
    cfg = CrossbarConfig(prog_sigma=0.3, dac_bits=8, adc_bits=6, seed=2)
    result = evaluate(lenet, digits, cfg, trials=3, batch_size=128)
    assert isinstance(result, EvaluationResult)
    assert len(result.accuracies) == 3 and result.trials == 3 and result.images == 300
    assert result.accuracy_mean == pytest.approx(sum(result.accuracies) / 3)
    assert len(set(result.accuracies)) > 1  # each trial draws new variation
    assert result.accuracy_std > 0
    assert result.float_accuracy == pytest.approx(_float_accuracy(lenet, digits))
    assert result.counters["total"]["tiles"] == 9
    assert result.seconds >= result.setup_seconds > 0
    data = json.loads(json.dumps(result.to_dict()))
    assert data["config"]["adc_bits"] == 6 and data["config"]["device"]["levels"] == 16
    again = evaluate(lenet, digits, cfg, trials=3, batch_size=100)
    assert again.accuracies == result.accuracies  # same seed, same draws, batch-independent


def test_limit_and_tuple_datasets(lenet, digits):
    cfg = CrossbarConfig(dac_bits=None)
    images = digits.images.float() / 255
    result = evaluate(lenet, (images, digits.labels), cfg, limit=50)
    assert result.images == 50
    assert result.float_accuracy == pytest.approx(
        float((lenet(images[:50]).argmax(1) == digits.labels[:50]).float().mean()))


def test_progress_reaches_one_and_cancel_stops_within_a_batch(lenet, digits):
    cfg = CrossbarConfig(dac_bits=8)
    seen: list[float] = []
    evaluate(lenet, digits, cfg, trials=2, batch_size=100,
             progress=lambda fraction, message: seen.append(fraction))
    assert seen == sorted(seen) and seen[0] == 0.0 and seen[-1] == 1.0
    assert len(seen) == 3 * 3 + 1  # 3 batches × (float pass + 2 trials), then "done"

    cancel = threading.Event()
    calls: list[str] = []

    def progress(fraction: float, message: str) -> None:
        calls.append(message)
        if len(calls) == 4:  # first batch of trial 1
            cancel.set()

    with pytest.raises(Cancelled, match="trial 1/2"):
        evaluate(lenet, digits, cfg, trials=2, batch_size=100, progress=progress, cancel=cancel)
    assert len(calls) == 4  # no further batch ran
    assert issubclass(Cancelled, JobCancelled)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"trials": 0}, "trials"), ({"batch_size": 0}, "batch_size"), ({"limit": 301}, "limit"),
    ({"limit": 0}, "limit"),
])
def test_bad_arguments_name_the_field(lenet, digits, kwargs, field):
    with pytest.raises(InputError, match=field):
        evaluate(lenet, digits, CrossbarConfig(dac_bits=None), **kwargs)


# ----------------------------------------------------------------------------- commands


def test_evaluate_command_prints_json(cli, capsys):
    code, out, err = cli(capsys, "evaluate", "--model", "lenet5-mnist", "--limit", "200",
                         "--levels", "32", "--adc-bits", "6", "--dac-bits", "ideal",
                         "--prog-sigma", "0.05", "--trials", "2", "--seed", "1", "--json")
    assert code == 0, err
    data = json.loads(out)
    for key in ("accuracy_mean", "accuracy_std", "float_accuracy", "trials", "counters",
                "seconds"):
        assert key in data
    assert data["trials"] == 2 and data["images"] == 200
    assert data["config"]["dac_bits"] is None and data["config"]["adc_bits"] == 6
    assert data["calibration"] == "mnist-embedded train[:256]"
    assert 0.9 < data["accuracy_mean"] <= 1.0
    assert data["counters"]["total"]["tiles"] == 9


@pytest.mark.parametrize(("argv", "message"), [
    (["--adc-bits", "17"], "--adc-bits: 17 is not allowed"),
    (["--tile-rows", "0"], "--tile-rows: 0 is not allowed"),
    (["--prog-sigma", "-0.1"], "--prog-sigma: -0.1 is not allowed"),
    (["--levels", "1"], "--levels: 1 is not allowed"),
    (["--device-csv", "x.csv", "--levels", "8"], "--device-csv"),
    (["--preset", "Unobtainium"], "preset"),
    (["--trials", "0"], "--trials: 0 is not allowed"),
])
def test_evaluate_command_rejects_bad_input_in_one_line(cli, capsys, argv, message):
    code, _out, err = cli(capsys, "evaluate", "--limit", "20", *argv)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def _ratio_bounds(crossbar_ms: float, plain_ms: float, half_unit: float) -> tuple[float, float]:
    """The range of crossbar/plain allowed by two times each rounded to ±``half_unit``."""
    return (crossbar_ms - half_unit) / (plain_ms + half_unit), \
        (crossbar_ms + half_unit) / (plain_ms - half_unit)


def test_bench_command_reports_consistent_numbers(cli, capsys, monkeypatch):
    """One timed plain/crossbar pair (``--repeats 1``): the median ratio over pairs and the
    best/best ratio are then both that pair's crossbar time over its plain time, so each
    must equal ``crossbar_ms / plain_ms`` up to the rounding of the printed numbers (ms to
    2 decimals, ``ratio`` to 3, the others to 2). No timing thresholds: the machine may be
    busy."""
    from explorer.commands import bench

    code, out, err = cli(capsys, "bench", "--only", "lenet5", "--repeats", "1", "--json")
    assert code == 0, err
    data = json.loads(out)
    measured = ("ratio", "best_ratio", "cpu_ratio", "plain_ms", "crossbar_ms", "setup_ms",
                "crossbar_batch")
    assert set(data) == {"threads", "repeats", "lenet5_weights"} | \
        {f"lenet5_{name}" for name in measured}  # --only lenet5: no other measurement
    assert data["repeats"] == 1 and data["threads"] == torch.get_num_threads()
    assert data["lenet5_weights"] == "lenet5-mnist"  # the bundled weights are present
    assert data["lenet5_crossbar_batch"] == bench.LENET5_BATCH  # not bit-serial: one plane
    for name in measured:
        value = data[f"lenet5_{name}"]
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, name
    plain, crossbar = data["lenet5_plain_ms"], data["lenet5_crossbar_ms"]
    low, high = _ratio_bounds(crossbar, plain, 0.005)
    assert low - 0.0005 <= data["lenet5_ratio"] <= high + 0.0005, data
    assert low - 0.005 <= data["lenet5_best_ratio"] <= high + 0.005, data

    # the text report prints the same numbers (ms to 1 decimal, ratios to 2)
    monkeypatch.setattr(bench, "run_benchmarks", lambda repeats, only: data)
    code, out, err = cli(capsys, "bench", "--only", "lenet5", "--repeats", "1")
    assert code == 0, err
    found = re.fullmatch(r"lenet5 +plain +([\d.]+) ms +crossbar +([\d.]+) ms +ratio "
                         r"([\d.]+)× \(median of pairs; best/best ([\d.]+)×\)\n", out)
    assert found, out
    shown = [float(group) for group in found.groups()]
    assert shown[:2] == [round(plain, 1), round(crossbar, 1)]
    assert shown[2:] == [round(data["lenet5_ratio"], 2), round(data["lenet5_best_ratio"], 2)]
    low, high = _ratio_bounds(shown[1], shown[0], 0.05)
    assert low - 0.005 <= shown[2] <= high + 0.005, out


def test_bit_serial_crossbar_batches_are_divided_by_the_planes(lenet, digits):
    cfg = CrossbarConfig(dac_bits=4, adc_bits=8, bit_serial=True)
    seen: list[str] = []
    result = evaluate(lenet, digits, cfg, batch_size=100, limit=200,
                      progress=lambda fraction, message: seen.append(message))
    # float model: 2 batches of 100; crossbar: 4 bit-planes -> 8 batches of 25 images.
    assert seen.count("float model") == 2 and seen.count("trial 1/1") == 8
    plain = evaluate(lenet, digits, CrossbarConfig(dac_bits=4, adc_bits=8), batch_size=100,
                     limit=200)
    assert result.counters["layers"]["conv1"]["planes"] == 4
    assert plain.counters["layers"]["conv1"]["planes"] == 1
    assert abs(result.accuracy_mean - plain.accuracy_mean) < 0.05
