"""Shared fixtures; Param warnings are errors in the test-suite."""

from __future__ import annotations

import param
import pytest

param.parameterized.warnings_as_exceptions = True


@pytest.fixture
def cli():
    """Run the ``explorer`` CLI in-process; returns (exit status, stdout, stderr)."""
    from explorer.cli import main

    def run(capsys_: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse --help / usage errors
            code = int(exc.code or 0)
        out, err = capsys_.readouterr()
        return code, out, err

    return run
