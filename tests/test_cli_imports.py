"""The command line stays light: in a fresh Python process, ``explorer --help``, ``explorer
sweep`` (with its plot files) and ``explorer evaluate`` never import the dashboard's
libraries (Panel, Bokeh, HoloViews), and ``explorer --help`` should not import torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PROJECT = Path(__file__).resolve().parents[1]
TIMEOUT = 300  # seconds; reached only when something is broken
DASHBOARD = ["bokeh", "holoviews", "panel"]
WATCHED = [*DASHBOARD, "torch"]

# runs the CLI as the console script does, then reports which watched packages it loaded
WRAPPER = f"""
import json, sys
from explorer.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
loaded = sorted({{name.split(".")[0] for name in sys.modules}} & set({WATCHED!r}))
print("IMPORTS " + json.dumps({{"code": code, "loaded": loaded}}))
"""


def _fresh_process(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(PROJECT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          cwd=PROJECT, timeout=TIMEOUT, check=False)


def _explorer(*argv: str) -> dict[str, Any]:
    """Run ``explorer ARGV`` in a fresh process: its exit code and the watched packages
    it imported."""
    done = _fresh_process("-c", WRAPPER, *argv)
    lines = [line for line in done.stdout.splitlines() if line.startswith("IMPORTS ")]
    assert lines, f"no report from explorer {' '.join(argv)}:\n{done.stdout}\n{done.stderr}"
    report = json.loads(lines[-1].removeprefix("IMPORTS "))
    report["stderr"] = done.stderr
    return report


@pytest.fixture(scope="module")
def help_run() -> dict[str, Any]:
    return _explorer("--help")


def test_help_does_not_import_the_dashboard(help_run):
    assert help_run["code"] == 0, help_run["stderr"]
    assert not set(help_run["loaded"]) & set(DASHBOARD), help_run["loaded"]


def test_help_does_not_import_torch(help_run):
    assert help_run["code"] == 0, help_run["stderr"]
    assert "torch" not in help_run["loaded"]


def test_sweep_with_its_plot_files_does_not_import_the_dashboard(tmp_path):
    out = tmp_path / "sweep"
    run = _explorer("sweep", "--in-process", "--limit", "20", "--set", "adc_bits=4,6",
                    "--out", str(out))
    assert run["code"] == 0, run["stderr"]
    assert (out / "accuracy.png").read_bytes()[:4] == b"\x89PNG"  # the plots were drawn
    assert "<svg" in (out / "accuracy.html").read_text(encoding="utf-8")
    assert not set(run["loaded"]) & set(DASHBOARD), run["loaded"]


def test_evaluate_does_not_import_the_dashboard():
    run = _explorer("evaluate", "--limit", "20")
    assert run["code"] == 0, run["stderr"]
    assert not set(run["loaded"]) & set(DASHBOARD), run["loaded"]


def test_the_sweep_grid_names_load_without_the_evaluation_code():
    """``explorer sweep --help`` needs only the grid's parameter names: importing them must
    not load the sweep's evaluation, Dask or plotting modules."""
    code = ("import sys\n"
            "from explorer.sweep import sweep_parameters\n"
            "assert 'levels' in sweep_parameters()\n"
            "print(sorted(m for m in ('explorer.sweep.run', 'explorer.sweep.cluster',\n"
            "    'explorer.sweep.report', 'explorer.evaluate', 'distributed', 'matplotlib')\n"
            "    if m in sys.modules))\n")
    done = _fresh_process("-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_every_public_sweep_name_is_importable():
    import explorer.sweep

    assert sorted(explorer.sweep.__all__) == sorted(explorer.sweep._HOME)
    for name in explorer.sweep.__all__:
        assert getattr(explorer.sweep, name) is not None, name
