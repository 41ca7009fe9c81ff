"""The teaching notebooks: stored without outputs, no UI code of their own, and each runs
top to bottom (fast mode, ``EXPLORER_FAST=1``) without a cell error.

The kernel is this test run's own interpreter: a ``python3`` kernel spec written into a
temporary folder (argv = ``sys.executable -m ipykernel_launcher``), so the result does not
depend on which kernels the machine happens to have registered.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import AsyncKernelManager  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = [
    "01_conductance_curves",
    "02_mapping_error",
    "03_adc_and_word_lines",
    "04_generalized_quantization",
    "05_dashboard_in_a_notebook",
]
CELL_TIMEOUT_S = 600

# Building UI in a notebook: the widgets must be the dashboard's own classes.
UI_DEFINITIONS = [
    (re.compile(r"^\s*class\s+\w+", re.M), "defines a class"),
    (re.compile(r"\bpn\.(Column|Row|GridSpec|GridBox|Tabs|Card|FlexBox|WidgetBox)\s*\("),
     "builds a Panel layout"),
    (re.compile(r"\bpn\.(widgets|pane|indicators|viewable|layout|Param|interact|bind)\b"),
     "builds Panel widgets or panes"),
    (re.compile(r"\b(ipywidgets|param\.Parameterized)\b"), "builds its own widgets/models"),
    (re.compile(r"^\s*(import panel|from panel)\b.*\b(widgets|pane)\b", re.M),
     "imports Panel widgets"),
]


def _load(name: str):
    return nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)


def _code(nb) -> list[str]:
    return [cell.source for cell in nb.cells if cell.cell_type == "code"]


def test_the_five_notebooks_exist():
    found = sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb"))
    assert found == NOTEBOOKS


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_stored_without_outputs(name):
    nb = _load(name)
    nbformat.validate(nb)
    assert "widgets" not in nb.metadata, f"{name}: saved widget state"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert cell.outputs == [], f"{name}: cell {i} has stored outputs"
        assert cell.execution_count is None, f"{name}: cell {i} has an execution count"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_uses_the_dashboard_classes_only(name):
    nb = _load(name)
    for source in _code(nb):
        for pattern, what in UI_DEFINITIONS:
            match = pattern.search(source)
            assert match is None, f"{name} {what}: {match.group(0)!r} in\n{source}"
    text = "\n".join(_code(nb))
    assert re.search(r"^from explorer\.ui(\.\w+)? import", text, re.M), \
        f"{name} shows no live dashboard component"


def test_ui_check_catches_copied_ui_code():
    copied = ("import panel as pn\nclass MyViewer(pn.viewable.Viewer):\n"
              "    def __panel__(self):\n        return pn.Column(pn.widgets.FloatSlider())\n")
    hits = [what for pattern, what in UI_DEFINITIONS if pattern.search(copied)]
    assert "defines a class" in hits and "builds a Panel layout" in hits


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory) -> KernelSpecManager:
    """A ``python3`` kernel spec that runs this interpreter with the repository importable
    and the notebooks' fast mode on."""
    kernels = tmp_path_factory.mktemp("kernels")
    spec_dir = kernels / "python3"
    spec_dir.mkdir()
    pythonpath = str(ROOT)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (test interpreter)",
        "language": "python",
        "env": {"EXPLORER_FAST": "1", "PYTHONPATH": pythonpath, "MPLBACKEND": "Agg"},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    return KernelSpecManager(kernel_dirs=[str(kernels)])


def test_kernel_spec_is_this_interpreter(kernel_specs):
    spec = kernel_specs.get_kernel_spec("python3")
    assert spec.argv[0] == sys.executable
    assert spec.env["EXPLORER_FAST"] == "1"


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_top_to_bottom(name, kernel_specs):
    nb = _load(name)
    km = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=kernel_specs)
    client = nbclient.NotebookClient(
        nb, km=km, timeout=CELL_TIMEOUT_S, kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    start = time.perf_counter()
    # raises CellExecutionError (naming the cell, with the traceback) on any error;
    # cleanup_kc: shut our kernel down afterwards (nbclient leaves a passed-in one running)
    client.execute(cleanup_kc=True)
    seconds = time.perf_counter() - start
    errors = [out for cell in nb.cells if cell.cell_type == "code"
              for out in cell.outputs if out.output_type == "error"]
    assert errors == []
    executed = [cell.execution_count for cell in nb.cells if cell.cell_type == "code"]
    assert all(count is not None for count in executed), "a code cell did not run"
    print(f"{name}: {seconds:.1f} s in fast mode")
