"""The constants of the cost model: one JSON file, every entry with its source.

The bundled file is ``assets/cost_constants.json`` (DNN+NeuroSim V1.3's numbers, each
entry naming the NeuroSim source file and formula it comes from). A user's file
(``cost_constants`` / ``--cost-constants FILE``) must hold every entry of the bundled one
(``{"value": number}``; ``source`` optional), each a finite number >= 0; anything else
is an :class:`~explorer.errors.InputError` naming the entry. No torch here.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

from explorer.errors import InputError
from explorer.paths import assets_dir

BUNDLED = "cost_constants.json"
MAX_BYTES = 1 << 20


def bundled_path() -> Path:
    return assets_dir() / BUNDLED


def _leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b": entry}`` of every entry (an object with ``value``) below ``tree``."""
    out: dict[str, Any] = {}
    for key, item in tree.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict) and "value" in item:
            out[name] = item
        elif isinstance(item, dict):
            out.update(_leaves(item, name + "."))
    return out


def _read(path: Path, where: str) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"{where}: file {str(path)!r} does not exist")
    size = path.stat().st_size
    if not 0 < size <= MAX_BYTES:
        raise InputError(f"{where}: file {path.name!r} has {size:,} bytes; expected 1 … "
                         f"{MAX_BYTES:,}")
    try:
        data = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: {path.name!r} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{where}: {path.name!r} must hold a JSON object")
    return data


@lru_cache(maxsize=8)
def _load(path: str, mtime: float) -> dict[str, float]:
    bundled = _leaves(_read(bundled_path(), "cost constants (bundled)"))
    if not path:
        return {name: float(entry["value"]) for name, entry in bundled.items()}
    where = f"cost_constants {Path(path).name}"
    given = _read(Path(path), "cost_constants")
    values: dict[str, float] = {}
    for name in bundled:
        node: Any = given
        for part in name.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        value = node.get("value") if isinstance(node, dict) else node
        if node is None or value is None:
            raise InputError(f"{where}: entry {name!r} is missing")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not math.isfinite(value):
            raise InputError(f"{where}: entry {name!r} is {value!r}, not a finite number")
        if value < 0:
            raise InputError(f"{where}: entry {name!r} is negative ({value:g}); "
                             "constants must be >= 0")
        values[name] = float(value)
    return values


def load_constants(path: str = "") -> dict[str, float]:
    """Flat ``{"read_voltage_v": 0.5, "nodes.22.vdd_v": 0.85, …}`` of the bundled file or
    of the user's file ``path`` (checked: every entry present, finite, >= 0)."""
    mtime = Path(path).stat().st_mtime if path and Path(path).is_file() else 0.0
    return dict(_load(str(path), mtime))


def sources() -> dict[str, str]:
    """``{entry: source}`` of the bundled file."""
    tree = _read(bundled_path(), "cost constants (bundled)")
    return {name: str(entry.get("source", "")) for name, entry in _leaves(tree).items()}
