"""Copies and flat records of the settings (Param models) the dashboard edits."""

from __future__ import annotations

from typing import Any

import numpy as np
import param

SCALAR_TYPES = (bool, int, float, str, type(None), np.integer, np.floating)


def _own_values(obj: param.Parameterized) -> dict[str, Any]:
    return {k: v for k, v in obj.param.values().items() if k != "name"}


def snapshot(obj: param.Parameterized) -> param.Parameterized:
    """An independent copy of ``obj`` (nested Parameterized values copied too).

    Built from parameter values, not ``copy.deepcopy``: a deep copy would also copy the
    watchers, and with them the whole user interface watching ``obj``.
    """
    values = {}
    for key, value in _own_values(obj).items():
        if isinstance(value, param.Parameterized):
            value = snapshot(value)
        elif isinstance(value, np.ndarray):
            value = value.copy()
        values[key] = value
    return type(obj)(**values)


def settings_record(obj: param.Parameterized, prefix: str = "") -> dict[str, Any]:
    """Flat ``{name: value}`` of the user-visible scalar settings of ``obj`` and of its
    nested Param models (hidden parameters, arrays and names left out). A nested name that
    clashes with one already present gets its owner's parameter name as a prefix."""
    record: dict[str, Any] = {}
    nested = []
    for key, value in _own_values(obj).items():
        p = obj.param[key]
        if p.precedence is not None and p.precedence < 0:
            continue
        if isinstance(value, param.Parameterized):
            nested.append((key, value))
        elif isinstance(value, SCALAR_TYPES):
            record[prefix + key] = value.item() if isinstance(value, np.generic) else value
    for key, value in nested:
        for sub_key, sub_value in settings_record(value).items():
            name = sub_key if sub_key not in record else f"{key}.{sub_key}"
            record[prefix + name] = sub_value
    return record
