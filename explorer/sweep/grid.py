"""Sweep grids: the parameters a sweep may vary, their values parsed from text (``--set``)
or a YAML/JSON grid file and checked against Param bounds, and :func:`make_grid`."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import param

from explorer.device import PRESETS, DeviceModel
from explorer.errors import InputError
from explorer.settings import CrossbarConfig, crossbar_knobs
from explorer.settings.base import checked_value, nearest

DEVICE_PARAMETERS = ("preset", "levels", "nonlinearity", "g_min", "g_max")
"""Device parameters a sweep may vary (``preset`` replaces the whole device)."""
CONFIG_PARAMETERS = tuple(name for name in crossbar_knobs() if name != "seed")
"""CrossbarConfig knobs a sweep may vary, in the settings' part order (the seed comes from
the grid point): a knob declared in a settings part can be swept at once."""
MAX_CELLS = 20_000
"""Largest grid accepted (grid points, before trials); split bigger sweeps."""
MAX_GRID_FILE_BYTES = 1_000_000
_IDEAL = ("ideal", "none", "null")
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def sweep_parameters() -> list[str]:
    """Names a sweep may vary: the CrossbarConfig parameters (but ``seed``), then the
    device's (``preset``, ``levels``, ``nonlinearity``, ``g_min``, ``g_max``)."""
    return [*CONFIG_PARAMETERS, *DEVICE_PARAMETERS]


def _parameter(name: str) -> param.Parameter:
    if name in CONFIG_PARAMETERS:
        return CrossbarConfig.param[name]
    if name in DEVICE_PARAMETERS and name != "preset":
        return DeviceModel.param[name]
    if name == "preset":
        return param.Selector(objects=list(PRESETS))
    raise InputError(f"sweep: unknown parameter {name!r}{nearest(name, sweep_parameters())}; "
                     f"valid names: {', '.join(sweep_parameters())}")


def _bad(name: str, raw: Any, allowed: str) -> InputError:
    return InputError(f"{name}: {raw!r} is not {allowed}")


def parse_value(name: str, raw: Any) -> Any:
    """The typed value of parameter ``name`` from text (``--set``) or a YAML/JSON scalar.

    Integers for Integer parameters (``ideal``/``none`` for None where allowed, e.g.
    ``adc_bits``), finite floats for Number parameters, ``true``/``false`` for Booleans,
    one of the choices for selectors. Raises :class:`InputError` naming the parameter.
    Bounds are checked by :func:`check_value`.
    """
    p = _parameter(name)
    text = raw.strip() if isinstance(raw, str) else raw
    if isinstance(text, str) and not text:
        raise InputError(f"{name}: empty value")
    if isinstance(p, param.Boolean):
        if isinstance(text, bool):
            return text
        if isinstance(text, str) and text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise _bad(name, raw, "true or false")
    if isinstance(p, param.Selector):
        choices = list(p.objects)
        if isinstance(text, str) and text in choices:
            return text
        raise _bad(name, raw, f"one of {choices}")
    if isinstance(p, param.Integer):
        if text is None or (isinstance(text, str) and text.lower() in _IDEAL):
            if p.allow_None:
                return None
            raise _bad(name, raw, "an integer (this parameter has no 'ideal' setting)")
        if isinstance(text, bool):
            raise _bad(name, raw, "an integer")
        if isinstance(text, str):
            try:
                return int(text)
            except ValueError:
                raise _bad(name, raw, "an integer" + (" or 'ideal'" if p.allow_None else "")
                           ) from None
        if isinstance(text, (int, np.integer)):
            return int(text)
        if isinstance(text, float) and text.is_integer():
            return int(text)
        raise _bad(name, raw, "an integer")
    if isinstance(p, param.Number):
        if isinstance(text, bool) or text is None:
            raise _bad(name, raw, "a number")
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise _bad(name, raw, "a number") from None
        if not math.isfinite(value):
            raise _bad(name, raw, "a finite number")
        return value
    raise InputError(f"{name}: cannot be swept")  # pragma: no cover - all kinds handled above


def check_value(name: str, value: Any) -> None:
    """Check one value against its Param bounds (the error names the parameter and range)."""
    if name in CONFIG_PARAMETERS:
        checked_value(name, CrossbarConfig.param[name], value, none_word="ideal")
        return
    try:
        if name == "g_min" and isinstance(value, float) and value > 0:
            DeviceModel(g_min=value, g_max=2 * value)  # bounds of g_min alone
        elif name == "g_max" and isinstance(value, float) and value > 0:
            DeviceModel(g_min=value / 2, g_max=value)
        elif name != "preset":
            DeviceModel(**{name: value})
    except InputError:
        raise
    except (ValueError, TypeError) as exc:
        raise InputError(f"{name}={value!r}: {exc}") from None


def parse_set_option(text: str) -> tuple[str, list[Any]]:
    """``"name=v1,v2,…"`` (a ``--set`` option) as ``(name, [typed values])``, checked."""
    name, sep, values = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not name:
        raise InputError(f"--set: expected NAME=V1,V2,… (e.g. levels=4,8,16), got {text!r}")
    _parameter(name)
    items = values.split(",")
    if not any(item.strip() for item in items):
        raise InputError(f"--set {name}: no values given; expected {name}=V1,V2,…")
    return name, [parse_value(name, item) for item in items]


def make_grid(axes: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> dict[str, list[Any]]:
    """A validated grid ``{name: [distinct typed values]}`` from names and value lists.

    Unknown names, repeated names, empty or repeated values, wrong types and
    out-of-bounds values raise :class:`InputError` naming the parameter.
    """
    pairs = list(axes.items()) if isinstance(axes, Mapping) else list(axes)
    grid: dict[str, list[Any]] = {}
    for raw_name, raw_values in pairs:
        if not isinstance(raw_name, str):
            raise InputError(f"sweep: parameter names must be text, got {raw_name!r}")
        name = raw_name.strip().replace("-", "_")
        _parameter(name)
        if name in grid:
            raise InputError(f"sweep: parameter {name!r} is given twice")
        if isinstance(raw_values, (list, tuple)):
            values = [v if isinstance(v, str) or v is None or isinstance(v, (bool, int, float))
                      else _not_scalar(name, v) for v in raw_values]
        elif raw_values is None or isinstance(raw_values, (str, bool, int, float)):
            values = [raw_values]
        else:
            raise InputError(f"{name}: expected a list of values, got {type(raw_values).__name__}")
        if not values:
            raise InputError(f"{name}: no values given")
        typed = [parse_value(name, v) for v in values]
        for value in typed:
            check_value(name, value)
        seen = [json.dumps(v) for v in typed]
        if len(set(seen)) != len(seen):
            raise InputError(f"{name}: values repeat ({typed}); give each value once")
        grid[name] = typed
    if not grid:
        raise InputError("sweep: no parameter to sweep; give --set NAME=V1,V2,… or --grid FILE")
    cells = math.prod(len(v) for v in grid.values())
    if cells > MAX_CELLS:
        raise InputError(f"sweep: the grid has {cells:,} points; at most {MAX_CELLS:,} are "
                         "accepted per sweep (split it into several sweeps)")
    return grid


def _not_scalar(name: str, value: Any) -> Any:
    raise InputError(f"{name}: {value!r} is not a single value (number, text, true/false)")


def read_grid_file(path: str | Path) -> dict[str, list[Any]]:
    """A grid from a YAML or JSON file: a mapping ``name: [values]`` (a scalar is one value).

    Parsed as data only (``yaml.safe_load`` / ``json``); at most 1 MB, UTF-8.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(f"grid file: {str(path)!r} does not exist")
    size = path.stat().st_size
    if size > MAX_GRID_FILE_BYTES:
        raise InputError(f"grid file: {path.name!r} has {size:,} bytes; at most 1 MB "
                         f"({MAX_GRID_FILE_BYTES:,} bytes) is accepted")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"grid file: {path.name!r} is not UTF-8 text (invalid byte at offset "
                         f"{exc.start})") from None
    if not text.strip():
        raise InputError(f"grid file: {path.name!r} is empty; expected a mapping such as "
                         "'levels: [4, 8, 16]'")
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"grid file: {path.name!r} is not valid "
                         f"{'JSON' if path.suffix.lower() == '.json' else 'YAML'} ({first})"
                         ) from None
    if not isinstance(data, dict):
        raise InputError(f"grid file: {path.name!r} must hold a mapping of parameter names to "
                         f"value lists, e.g. 'levels: [4, 8, 16]'; got {type(data).__name__}")
    return make_grid(data)


