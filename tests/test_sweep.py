"""explorer sweep: grid parsing and validation, seeds from the grid point, resumable atomic
output, Dask (a killed worker, an existing scheduler, an unreachable one), the CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
from pathlib import Path

import pandas as pd
import psutil
import pytest
import torch

from explorer.crossbar import CrossbarConfig, trial_seed
from explorer.device import PRESETS, DeviceModel
from explorer.errors import InputError
from explorer.evaluate import Cancelled, evaluate
from explorer.sweep import (
    MAX_CELLS,
    SweepData,
    SweepSpec,
    SweepStore,
    atomic_write,
    cell_config,
    cell_seed,
    connect,
    load_sweep_data,
    make_grid,
    parse_set_option,
    read_grid_file,
    run_sweep,
    sweep_parameters,
)

LIMIT = 60
TIMEOUT = 180  # seconds; reached only when something is broken
GRID = {"levels": [4, 16], "adc_bits": [4, None]}


@pytest.fixture(scope="module")
def data() -> SweepData:
    return load_sweep_data("lenet5-mnist", limit=LIMIT)


@pytest.fixture(scope="module")
def reference(data):
    """The 2 × 2 grid × 2 trials evaluated in this process, in memory."""
    return run_sweep(SweepSpec(grid=GRID, trials=2), data).table


@pytest.fixture(scope="module")
def dask_client():
    client, cluster = connect(workers=2)
    yield client
    client.close()
    cluster.close()


def _one_line(err: str, *needles: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


def _measured(table: pd.DataFrame) -> pd.DataFrame:
    """The columns that must not depend on where and when a row was computed."""
    return table.drop(columns=["seconds", "worker"]).reset_index(drop=True)


# ----------------------------------------------------------------------------- grid input


def test_set_options_are_typed_by_their_parameter():
    assert parse_set_option("adc_bits=4,ideal") == ("adc_bits", [4, None])
    assert parse_set_option("tile-rows=9, 64") == ("tile_rows", [9, 64])
    assert parse_set_option("bit_serial=true,false") == ("bit_serial", [True, False])
    assert parse_set_option("mapping=linear,min_error") == ("mapping", ["linear", "min_error"])
    assert parse_set_option("prog_sigma=0,0.05") == ("prog_sigma", [0.0, 0.05])
    assert parse_set_option("preset=EpiRAM,AlOx/HfO2") == ("preset", ["EpiRAM", "AlOx/HfO2"])
    assert "seed" not in sweep_parameters() and "levels" in sweep_parameters()


def test_unknown_name_lists_the_valid_names():
    with pytest.raises(InputError, match=r"unknown parameter 'levls' \(did you mean "
                                         r"'levels'\?\); valid names: .*levels"):
        parse_set_option("levls=4,8")


@pytest.mark.parametrize(("option", "message"), [
    ("levels=0", r"DeviceModel.levels' must be at least 2, not 0"),
    ("levels=1", r"DeviceModel.levels' must be at least 2, not 1"),
    ("levels=100000", r"DeviceModel.levels' must be at most 1024, not 100000"),
    ("prog_sigma=-0.1", r"prog_sigma: -0.1 is not allowed; expected a number >= 0"),
    ("read_sigma=0.1,-1", r"read_sigma: -1.0 is not allowed; expected a number >= 0"),
    ("adc_bits=0", r"adc_bits: 0 is not allowed; expected an integer in \[1, 16\] or ideal"),
    ("adc_bits=17", r"adc_bits: 17 is not allowed; expected an integer in \[1, 16\]"),
    ("dac_bits=0", r"dac_bits: 0 is not allowed; expected an integer in \[1, 16\]"),
    ("tile_rows=0", r"tile_rows: 0 is not allowed; expected an integer in \[1, 65536\]"),
    ("tile_cols=70000", r"tile_cols: 70000 is not allowed; expected an integer in \[1, 65536\]"),
    ("nonlinearity=11", r"DeviceModel.nonlinearity' must be at most 9"),
    ("g_min=-1e-6", r"DeviceModel.g_min' must be greater than 0"),
    ("levels=4.5", r"levels: 4.5 is not an integer|levels: '4.5' is not an integer"),
    ("levels=ideal", r"levels: 'ideal' is not an integer \(this parameter has no 'ideal'"),
    ("prog_sigma=nan", r"prog_sigma: 'nan' is not a finite number"),
    ("prog_sigma=inf", r"prog_sigma: 'inf' is not a finite number"),
    ("mapping=round", r"mapping: 'round' is not one of \['linear', 'min_error'"),
    ("bit_serial=maybe", r"bit_serial: 'maybe' is not true or false"),
    ("preset=Unobtainium", r"preset: 'Unobtainium' is not one of \[.*EpiRAM"),
    ("levels=", r"--set levels: no values given"),
    ("levels=4,,8", r"levels: empty value"),
    ("levels", r"--set: expected NAME=V1,V2"),
    ("levels=4,4", r"levels: values repeat"),
])
def test_bad_values_are_refused_naming_the_parameter(option, message):
    with pytest.raises(InputError, match=message):
        make_grid([parse_set_option(option)])


def test_impossible_combinations_are_found_before_any_work():
    spec = SweepSpec(grid={"g_min": [1e-6, 2e-5]})  # the base device has g_max = 1e-5
    with pytest.raises(InputError, match=r"grid point g_min=2e-05: .*g_max: must be greater"):
        spec.cells()
    spec = SweepSpec(base=CrossbarConfig(stuck_at_gmax=0.6), grid={"stuck_at_gmin": [0.1, 0.7]})
    with pytest.raises(InputError, match=r"grid point stuck_at_gmin=0.7: stuck_at_gmin \+ "):
        spec.cells()
    spec = SweepSpec(base=CrossbarConfig(dac_bits=None), grid={"bit_serial": [False, True]})
    with pytest.raises(InputError, match=r"grid point bit_serial=True: .*bit_serial"):
        spec.cells()
    with pytest.raises(InputError, match=r"at most 20,000"):
        make_grid({"tile_rows": list(range(1, 1001)), "tile_cols": list(range(1, 22))})
    assert MAX_CELLS == 20_000


@pytest.mark.parametrize(("name", "content", "message"), [
    ("g.yaml", b"levels: [4, 8]\nlevls: [1]\n",
     r"unknown parameter 'levls' \(did you mean 'levels'\?\); valid names:"),
    ("g.json", b'{"levels": [4, 8], "adc": [4]}', r"unknown parameter 'adc'.*; valid names:"),
    ("g.yaml", b"- levels\n- 4\n", r"must hold a mapping of parameter names .* got list"),
    ("g.yaml", b"levels: [4, 8\n", r"is not valid YAML"),
    ("g.json", b"{levels: 4}", r"is not valid JSON"),
    ("g.yaml", b"", r"is empty"),
    ("g.yaml", b"levels: [4, \xff]\n", r"is not UTF-8 text \(invalid byte at offset 12\)"),
    ("g.yaml", b"levels: {a: 1}\n", r"levels: expected a list of values, got dict"),
    ("g.yaml", b"levels: [[4, 8]]\n", r"levels: \[4, 8\] is not a single value"),
    ("g.yaml", b"levels: []\n", r"levels: no values given"),
    # parsed as data only: a Python object tag is refused, never constructed
    ("g.yaml", b"levels: !!python/object/apply:os.system ['touch HACKED']\n",
     r"is not valid YAML"),
])
def test_bad_grid_files(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_grid_file(path)
    assert not (tmp_path / "HACKED").exists() and not Path("HACKED").exists()


def test_grid_files_yaml_and_json_and_size_limit(tmp_path):
    (tmp_path / "g.yaml").write_text("levels: [4, 8]\nadc_bits: [4, ideal]\nscheme: offset\n")
    assert read_grid_file(tmp_path / "g.yaml") == {
        "levels": [4, 8], "adc_bits": [4, None], "scheme": ["offset"]}
    (tmp_path / "g.json").write_text('{"prog_sigma": [0, 0.05], "dac_bits": [8, null]}')
    assert read_grid_file(tmp_path / "g.json") == {"prog_sigma": [0.0, 0.05],
                                                   "dac_bits": [8, None]}
    (tmp_path / "big.yaml").write_bytes(b"levels: [4]\n" + b"#" * 1_000_001)
    with pytest.raises(InputError, match=r"has 1,000,013 bytes; at most 1 MB"):
        read_grid_file(tmp_path / "big.yaml")


# ----------------------------------------------------------------------------- seeds


def test_seed_comes_from_the_grid_point_not_from_the_grid():
    a = {c.values["levels"]: c for c in SweepSpec(grid={"levels": [4, 16]}).cells()}
    b = {c.values["levels"]: c for c in SweepSpec(grid={"levels": [16, 32]}).cells()}
    assert a[16].seed == b[16].seed and a[16].key == b[16].key
    assert len({a[4].seed, a[16].seed, b[32].seed}) == 3
    # the same point swept along another axis, or not swept at all, has the same seed
    base = CrossbarConfig(device=DeviceModel(levels=16))
    c = SweepSpec(base=base, grid={"adc_bits": [None]})
    assert c.cells()[0].seed == a[16].seed == cell_seed(base)
    # the base seed and the trials give independent repetitions / other keys
    other = SweepSpec(grid={"levels": [16]}, seed=1).cells()[0]
    assert other.seed != a[16].seed
    assert SweepSpec(grid={"levels": [16]}, trials=3).cells()[0].key != a[16].key
    assert a[16].key != SweepSpec(grid={"levels": [16]}).cells("other weights")[0].key


def test_a_swept_preset_replaces_the_device_and_keeps_fixed_overrides():
    base = CrossbarConfig(device=DeviceModel(levels=8, nonlinearity=2.0), adc_bits=5)
    cfg = cell_config(base, {"preset": "EpiRAM"}, {"levels": 32})
    assert (cfg.device.preset, cfg.device.levels, cfg.adc_bits) == ("EpiRAM", 32, 5)
    assert cfg.device.g_max == PRESETS["EpiRAM"]["g_max"]
    cfg = cell_config(base, {"g_max": 2e-5, "tile_rows": 9})
    assert (cfg.device.levels, cfg.device.nonlinearity, cfg.device.g_max) == (8, 2.0, 2e-5)
    assert (cfg.tile_rows, base.tile_rows, base.device.g_max) == (9, 128, 1e-5)


# ----------------------------------------------------------------------------- running


def test_rows_reproduce_through_evaluate_with_their_seed(data, reference):
    table = reference
    assert len(table) == 8 and table["point"].nunique() == 4
    assert list(table.columns[:5]) == ["point", "trial", "seed", "levels", "adc_bits"]
    assert "cell" not in table  # the grid point's key is `point`; `cells` counts ReRAM cells
    for column in ("accuracy", "float_accuracy", "tiles", "cells", "adc_conversions",
                   "dac_cycles", "seconds", "worker", "model", "data", "images", "mapping",
                   "scheme", "tile_rows", "dac_bits", "prog_sigma", "g_min", "g_max",
                   "nonlinearity", "preset"):
        assert column in table, column
    assert set(table["images"]) == {LIMIT} and set(table["model"]) == {"lenet5-mnist"}
    assert table["accuracy"].between(0, 1).all()
    # a grid point with a 4-bit ADC and 4 levels is measurably worse than 16 levels, ideal ADC
    assert table.query("levels == 16 and adc_bits.isna()")["accuracy"].mean() > \
        table.query("levels == 4 and adc_bits == 4")["accuracy"].mean()
    # every row equals evaluate() of its configuration with the row's seed
    row = table.query("levels == 16 and adc_bits == 4").iloc[1]
    cfg = CrossbarConfig(device=DeviceModel(levels=16), adc_bits=4, seed=int(row["seed"]))
    direct = evaluate(data.model, (data.images, data.labels), cfg, trials=2,
                      calibration=data.calibration)
    assert row["trial"] == 1 and row["accuracy"] == direct.accuracies[1]
    assert row["float_accuracy"] == direct.float_accuracy
    assert row["tiles"] == direct.counters["total"]["tiles"]
    assert trial_seed(int(row["seed"]), 1) != trial_seed(int(row["seed"]), 0)


def test_output_is_resumable_after_an_interruption(data, reference, tmp_path):
    spec = SweepSpec(grid=GRID, trials=2)
    cancel = threading.Event()
    seen = []

    def progress(fraction, message):
        seen.append(fraction)
        if fraction >= 0.5:
            cancel.set()  # interrupt after two of the four grid points

    with pytest.raises(Cancelled):
        run_sweep(spec, data, out=tmp_path, progress=progress, cancel=cancel)
    files = sorted((tmp_path / "points").glob("*.json"))
    assert len(files) == 2
    partial = pd.read_csv(tmp_path / "results.csv")
    assert len(partial) == 4  # the finished rows are in the table already
    stamps = {f.name: f.stat().st_mtime_ns for f in files}

    outcome = run_sweep(spec, data, out=tmp_path)
    assert (outcome.skipped, outcome.computed, outcome.failed) == (2, 2, {})
    assert outcome.complete and outcome.rows_computed == 4
    assert {f.name: f.stat().st_mtime_ns for f in files} == stamps  # not recomputed
    pd.testing.assert_frame_equal(_measured(outcome.table), _measured(reference))
    csv = pd.read_csv(tmp_path / "results.csv")
    parquet = pd.read_parquet(tmp_path / "results.parquet")
    assert len(csv) == len(parquet) == 8
    assert csv.groupby(["point", "trial"]).size().eq(1).all()  # every row exactly once
    assert list(parquet["accuracy"]) == list(reference["accuracy"])
    assert str(parquet["adc_bits"].dtype) == "Int64" and parquet["adc_bits"].isna().sum() == 4
    spec_file = json.loads((tmp_path / "sweep.json").read_text())
    assert spec_file["grid"] == {"levels": [4, 16], "adc_bits": [4, None]}
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]  # no temp files

    # a damaged grid point file counts as not done and is recomputed
    files[0].write_text('[{"point": "')
    again = run_sweep(spec, data, out=tmp_path)
    assert (again.skipped, again.computed) == (3, 1)
    assert json.loads(files[0].read_text())[0]["point"] == files[0].stem


def test_a_folder_from_before_the_points_rename_is_recomputed(data, tmp_path):
    spec = SweepSpec(grid={"levels": [4]})
    first = run_sweep(spec, data, out=tmp_path)
    # the layout written before the rename: cells/<key>.json with a `cell` column
    (tmp_path / "points").rename(tmp_path / "cells")
    for path in (tmp_path / "cells").glob("*.json"):
        rows = json.loads(path.read_text())
        path.write_text(json.dumps([{"cell": r.pop("point"), **r} for r in rows]))
    again = run_sweep(spec, data, out=tmp_path)
    assert (again.skipped, again.computed) == (0, 1)
    assert list(again.table["accuracy"]) == list(first.table["accuracy"])
    assert len(list((tmp_path / "points").glob("*.json"))) == 1


def test_writes_are_atomic(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("old\n")

    def crash(tmp):
        tmp.write_text("half a ta")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, crash)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_a_failing_grid_point_is_reported_and_the_others_kept(data, tmp_path):
    broken = SweepData(data.model, torch.zeros(4, 3, 32, 32, dtype=torch.uint8),
                       torch.zeros(4, dtype=torch.int64), data.calibration, "lenet5-mnist",
                       "wrong-shape", "test")
    outcome = run_sweep(SweepSpec(grid={"levels": [4, 8]}), broken, out=tmp_path)
    assert len(outcome.failed) == 2 and not outcome.complete and len(outcome.table) == 0
    assert all("RuntimeError" in e or "InputError" in e for e in outcome.failed.values())
    assert list((tmp_path / "points").glob("*.json")) == []
    assert SweepStore(tmp_path).finished(SweepSpec(grid={"levels": [4, 8]}).cells()) == {}


# ----------------------------------------------------------------------------- Dask


def test_existing_scheduler_gives_the_same_rows(cli, capsys, dask_client, reference, tmp_path):
    address = dask_client.scheduler.address
    code, out, err = cli(capsys, "sweep", "--set", "levels=4,16", "--set", "adc_bits=4,ideal",
                         "--trials", "2", "--limit", str(LIMIT), "--scheduler", address,
                         "--out", str(tmp_path), "--no-plots", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["points"], summary["computed"], summary["rows"]) == (4, 4, 8)
    table = pd.read_parquet(tmp_path / "results.parquet")
    workers = set(dask_client.run(os.getpid).values())
    assert {int(w.rsplit(":", 1)[1]) for w in table["worker"]} <= workers
    pd.testing.assert_frame_equal(_measured(table), _measured(reference), check_dtype=False)


def test_killed_worker_mid_sweep_every_row_exactly_once(dask_client, data, reference, tmp_path):
    dask_client.wait_for_workers(2, timeout=TIMEOUT)
    killed: list[int] = []

    def progress(fraction, message):
        if killed or fraction == 0:
            return
        busy = [addr for addr, keys in dask_client.processing().items() if keys]
        pids = dask_client.run(os.getpid)
        assert busy, "no worker busy: the sweep finished too fast to test a kill"
        killed.append(pids[busy[0]])
        os.kill(pids[busy[0]], signal.SIGKILL)

    outcome = run_sweep(SweepSpec(grid=GRID, trials=2), data, out=tmp_path, client=dask_client,
                        progress=progress)
    assert killed and (not psutil.pid_exists(killed[0])
                       or psutil.Process(killed[0]).status() == psutil.STATUS_ZOMBIE)
    assert outcome.complete and outcome.failed == {}
    table = pd.read_parquet(tmp_path / "results.parquet")
    assert len(table) == 8 and not table.duplicated(["point", "trial"]).any()
    assert sorted(p.stem for p in (tmp_path / "points").glob("*.json")) == \
        sorted(table["point"].unique())
    pd.testing.assert_frame_equal(_measured(table), _measured(reference), check_dtype=False)
    dask_client.wait_for_workers(2, timeout=TIMEOUT)  # the nanny restarted it


def test_unreachable_scheduler_exits_2_and_writes_nothing(cli, capsys, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    out = tmp_path / "out"
    code, _, err = cli(capsys, "sweep", "--set", "levels=4,8", "--limit", "20", "--scheduler",
                       f"tcp://127.0.0.1:{port}", "--timeout", "2", "--out", str(out))
    assert code == 2
    _one_line(err, "--scheduler: cannot reach the Dask scheduler at tcp://127.0.0.1:", "2 s")
    assert not out.exists()
    code, _, err = cli(capsys, "sweep", "--set", "levels=4", "--scheduler", "localhost",
                       "--out", str(out))
    assert code == 2
    _one_line(err, "--scheduler: expected an address such as tcp://HOST:8786")


def test_a_service_that_is_not_the_scheduler_is_refused(dask_client):
    with socket.socket() as server:  # answers every connection with an HTTP error
        server.bind(("127.0.0.1", 0))
        server.listen()

        def answer():
            for _ in range(3):
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                with conn:
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" * 8)

        threading.Thread(target=answer, daemon=True).start()
        address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        with pytest.raises(InputError, match=r"cannot reach the Dask scheduler at tcp://127"):
            connect(address, timeout=2)
    worker = next(iter(dask_client.scheduler_info()["workers"]))
    with pytest.raises(InputError, match=r"answers, but is a Dask Worker, not the scheduler"):
        connect(worker, timeout=5)


# ----------------------------------------------------------------------------- plots


def test_plot_numbers_keep_grid_order_and_ideal_last(tmp_path):
    from explorer.sweep.report import accuracy_against, heatmap_cells, save_plots

    frame = pd.DataFrame({
        "levels": [16, 4, 16, 4, 16, 4],
        "adc_bits": pd.array([None, 4, 4, None, 4, 4], dtype="Int64"),
        "mapping": ["linear", "min_error", "min_error", "linear", "linear", "linear"],
        "accuracy": [0.9, 0.5, 0.8, 0.7, 0.6, 0.3],
    })
    _, stats, order, numeric = accuracy_against(frame, "levels")
    assert (order, numeric) == (["4", "16"], True)
    assert list(stats["mean"].round(6)) == [50.0, 76.666667]
    assert list(stats["count"]) == [3, 3]
    _, stats, order, numeric = accuracy_against(frame, "adc_bits")
    assert (order, numeric, list(stats["adc_bits"])) == (["4", "ideal"], False, ["4", "ideal"])
    cells, x_order, y_order = heatmap_cells(frame, "levels", "adc_bits")
    assert (x_order, y_order) == (["4", "16"], ["4", "ideal"])  # "16" after "4", not as text
    got = {(int(r.xi), int(r.yi)): round(r.accuracy, 6) for r in cells.itertuples()}
    assert got == {(1, 1): 90.0, (0, 0): 40.0, (1, 0): 70.0, (0, 1): 70.0}
    cells, x_order, _ = heatmap_cells(frame.iloc[:0], "levels", "adc_bits", [4, 16, 32],
                                      [4, None])
    assert x_order == ["4", "16", "32"] and cells.empty  # axes fixed before any row

    files, note = save_plots(frame, ["levels", "adc_bits", "mapping"], tmp_path)
    assert note == "" and sorted(files) == ["accuracy_html", "accuracy_png", "heatmap_html",
                                            "heatmap_png"]
    page = (tmp_path / "heatmap.html").read_text(encoding="utf-8")
    assert "<svg" in page and "40.00" in page and "90.00" in page
    assert "76.67" in (tmp_path / "accuracy.html").read_text(encoding="utf-8")
    assert (tmp_path / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files


# ----------------------------------------------------------------------------- command line


def test_cli_in_process_writes_table_and_plots_then_resumes(cli, capsys, tmp_path, reference):
    argv = ["sweep", "--set", "levels=4,16", "--set", "adc_bits=4,ideal", "--trials", "2",
            "--limit", str(LIMIT), "--in-process", "--out", str(tmp_path), "--json"]
    code, out, err = cli(capsys, *argv)
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["computed"], summary["skipped"], summary["rows"]) == (4, 0, 8)
    assert summary["evaluations_per_minute"] > 0 and summary["plot_note"] == ""
    files = summary["files"]
    for kind in ("accuracy_html", "heatmap_html"):
        text = Path(files[kind]).read_text(encoding="utf-8")
        assert "<svg" in text and "<table" in text  # the figure inline, then its numbers
        assert "<script" not in text and 'src="' not in text  # nothing to load: opens offline
    for kind in ("accuracy_png", "heatmap_png"):
        assert Path(files[kind]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = pd.read_parquet(files["parquet"])
    pd.testing.assert_frame_equal(_measured(table), _measured(reference), check_dtype=False)
    csv = pd.read_csv(files["csv"])
    assert list(csv["accuracy"]) == list(reference["accuracy"])
    assert list(csv.columns) == list(reference.columns)
    code, out, err = cli(capsys, *argv)
    assert code == 0, err
    assert (json.loads(out)["computed"], json.loads(out)["skipped"]) == (0, 4)


@pytest.mark.parametrize(("argv", "message"), [
    (["--set", "levls=4"],
     "unknown parameter 'levls' (did you mean 'levels'?); valid names: mapping, scheme"),
    (["--set", "levels=0,4"], "DeviceModel.levels' must be at least 2, not 0"),
    (["--set", "levels=4", "--grid", "{grid}"], "sweep: parameter 'levels' is given twice"),
    (["--set", "adc_bits=4", "--trials", "0"], "--trials: 0 is not allowed"),
    (["--set", "adc_bits=4", "--trials", "1001"],
     "--trials: 1001 is not allowed; expected an integer in [1, 1000]"),
    (["--set", "adc_bits=4", "--limit", "0"], "limit"),
    (["--set", "adc_bits=4", "--batch-size", "0"], "--batch-size: 0 is not allowed"),
    (["--set", "adc_bits=4", "--workers", "0"], "--workers: must be an integer 1 … 512"),
    (["--set", "adc_bits=4", "--timeout", "0"], "--timeout: must be in (0, 600]"),
    (["--set", "adc_bits=4", "--seed", "-1"], "seed"),
    (["--set", "adc_bits=4", "--levels", "100000"],
     "--levels: 100000 is not allowed; expected an integer in [2, 1024]"),
    (["--set", "levels=4", "--prog-sigma", "-1"], "--prog-sigma: -1.0 is not allowed"),
    (["--set", "levels=4", "--in-process", "--workers", "2"], "--in-process: runs without Dask"),
    (["--set", "levels=4", "--device-csv", "{csv}"], "--device-csv: a measured table defines"),
    ([], "no parameter to sweep; give --set NAME=V1,V2"),
])
def test_cli_bad_input_exits_2_before_writing(cli, capsys, tmp_path, argv, message):
    (tmp_path / "grid.yaml").write_text("levels: [8]\n")
    (tmp_path / "cell.csv").write_text("conductance\n1e-6\n2e-6\n4e-6\n")
    argv = [a.format(grid=tmp_path / "grid.yaml", csv=tmp_path / "cell.csv") for a in argv]
    out = tmp_path / "out"
    code, stdout, err = cli(capsys, "sweep", *argv, "--out", str(out))
    assert code == 2 and stdout == ""
    _one_line(err, message)
    assert not out.exists()


def test_checkpoints_of_another_model_or_truncated_exit_2(cli, capsys, tmp_path):
    from explorer.models import build_model

    other = tmp_path / "resnet.pt"
    torch.save({"architecture": "lenet5", "state_dict": build_model("resnet20").state_dict()},
               other)
    cut = tmp_path / "cut.pt"
    torch.save({"architecture": "lenet5", "state_dict": build_model("lenet5").state_dict()}, cut)
    cut.write_bytes(cut.read_bytes()[:700])
    for path, message in ((other, "does not fit LeNet5"),
                          (cut, "is not a readable torch checkpoint")):
        out = tmp_path / f"out-{path.stem}"
        code, _, err = cli(capsys, "sweep", "--set", "levels=4,8", "--model", str(path),
                           "--in-process", "--out", str(out))
        assert code == 2
        _one_line(err, message)
        assert not out.exists()
