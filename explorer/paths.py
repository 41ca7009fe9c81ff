"""Where bundled assets and downloaded data live (never relative to the working directory)."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def assets_dir() -> Path:
    """The folder of bundled assets: the source tree's ``assets/`` or the wheel's copy."""
    source_tree = _PACKAGE_DIR.parent / "assets"
    if source_tree.is_dir():
        return source_tree
    return _PACKAGE_DIR / "_assets"


def data_dir() -> Path:
    """Cache folder for downloaded datasets: ``$EXPLORER_DATA`` or
    ``~/.cache/crossbar-explorer``."""
    override = os.environ.get("EXPLORER_DATA")
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "crossbar-explorer"
