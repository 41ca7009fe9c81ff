"""Lint inside the test session: ``ruff check .`` over the repository with the rules of
pyproject.toml's ``[tool.ruff]``, so the README's test command (and ``.ci/run``) covers it.
ruff is in the ``test`` extras."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("ruff", reason="ruff is not installed (pip install -e '.[test]')")


def _ruff(*args: str, source: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache",
                           "--output-format", "concise", *args], cwd=ROOT, input=source,
                          capture_output=True, text=True, timeout=300, check=False)


def test_ruff_reports_nothing():
    done = _ruff(".")
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_uses_the_project_rules():
    """The check above can fail: a file breaking a selected rule (F401, unused import) and
    an over-long line (E501 at the project's 100 columns) are reported."""
    probe = "import os\n\nx = " + "1 + " * 30 + "1\n"
    done = _ruff("--stdin-filename", "tests/lint_probe.py", "-", source=probe)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "F401" in done.stdout and "E501" in done.stdout, done.stdout
