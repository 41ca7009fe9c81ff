"""What every settings part shares: a section name, value checks from the Param
declarations, and error messages that name the key and the allowed values.

No torch, no Panel: the CLI builds its ``--help`` from these declarations without
loading the simulator.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import numpy as np
import param

from explorer.errors import InputError


class Part(param.Parameterized):
    """One part of the settings (a section of the settings file: ``mapping``,
    ``converters``, ``noise`` …). Subclasses declare each knob once, with bounds, label
    and ``doc`` (units in the doc); :meth:`check` holds cross-parameter rules."""

    section: ClassVar[str] = ""
    title: ClassVar[str] = ""
    """The part's heading on the page ('' = the section name, capitalised)."""

    def check(self) -> None:
        """Raise :class:`InputError` if a combination of this part's values is impossible."""

    @classmethod
    def knobs(cls) -> list[str]:
        """The parameters this part declares itself (not inherited from another part),
        user-visible ones only (precedence ≥ 0), in declaration order."""
        own = []
        for name, p in cls.param.objects("existing").items():
            hidden = name == "name" or (p.precedence is not None and p.precedence < 0)
            if not hidden and p.owner is cls:
                own.append(name)
        return own


def nearest(name: str, valid: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest valid name, or '' when none is close."""
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_key(where: str, key: str, valid: Iterable[str]) -> InputError:
    valid = list(valid)
    return InputError(f"{where}: unknown key {key!r}{nearest(key, valid)}; valid keys: "
                      f"{', '.join(valid)}")


def _num(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _bound_text(p: param.Parameter) -> str:
    low, high = p.bounds if p.bounds is not None else (None, None)
    inc_low, inc_high = getattr(p, "inclusive_bounds", (True, True))
    if low is not None and high is not None:
        left, right = "[" if inc_low else "(", "]" if inc_high else ")"
        return f"in {left}{_num(low)}, {_num(high)}{right}"
    if low is not None:
        return f"{'>=' if inc_low else '>'} {_num(low)}"
    if high is not None:
        return f"{'<=' if inc_high else '<'} {_num(high)}"
    return ""


def allowed(p: param.Parameter, none_word: str = "null") -> str:
    """The allowed values of a declared parameter, in words (for error messages);
    ``none_word``: how None is written where it is allowed (``null`` in JSON)."""
    none = f" or {none_word}" if p.allow_None else ""
    if isinstance(p, param.Boolean):
        return "true or false"
    if isinstance(p, param.Selector):
        return f"one of {list(p.objects)}{none}"
    if isinstance(p, param.Integer):
        bounds = _bound_text(p)
        return f"an integer{' ' + bounds if bounds else ''}{none}"
    if isinstance(p, param.Number):
        bounds = _bound_text(p)
        return f"a number{' ' + bounds if bounds else ''}{none}"
    if isinstance(p, param.String):
        return f"text{none}"
    return f"a {type(p).__name__} value{none}"


def checked_value(where: str, p: param.Parameter, value: Any, none_word: str = "null") -> Any:
    """``value`` as the type ``p`` declares, within its bounds; else an InputError naming
    ``where`` (e.g. ``noise.prog_sigma``) and the allowed values. JSON-like input:
    integral floats are accepted as integers, never booleans as numbers."""
    raw = value

    def bad() -> InputError:
        shown = none_word if raw is None else repr(raw)
        return InputError(f"{where}: {shown} is not allowed; expected {allowed(p, none_word)}")

    if value is None:
        if p.allow_None:
            return None
        raise bad()
    if isinstance(p, param.Boolean):
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        raise bad()
    if isinstance(p, param.Selector):
        if isinstance(value, (str, int)) and not isinstance(value, bool) and \
                any(value == choice and type(value) is type(choice) for choice in p.objects):
            return value
        raise bad()
    if isinstance(p, param.Integer):
        if isinstance(value, (bool, np.bool_)):
            raise bad()
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            value = int(value)
        if not isinstance(value, (int, np.integer)):
            raise bad()
        value = int(value)
    elif isinstance(p, param.Number):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
            raise bad()
        value = float(value)
        if not math.isfinite(value):
            raise bad()
    elif isinstance(p, param.String) and not isinstance(value, str):
        raise bad()
    try:
        p._validate(value)
    except (ValueError, TypeError):
        raise bad() from None
    return value


def part_values(obj: param.Parameterized, names: Iterable[str]) -> dict[str, Any]:
    """``{name: value}`` of ``names`` on ``obj`` as plain JSON-ready data."""
    return {name: plain(getattr(obj, name)) for name in names}


def plain(value: Any) -> Any:
    """numpy scalars and arrays as Python numbers and lists (JSON-ready)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def checked_section(where: str, cls: type[param.Parameterized], names: list[str],
                    data: Any) -> dict[str, Any]:
    """The values of one settings section (a JSON object), each checked against ``cls``'s
    declaration; unknown keys are errors naming the nearest valid one."""
    if not isinstance(data, Mapping):
        raise InputError(f"{where}: expected an object of settings, got "
                         f"{type(data).__name__}")
    out = {}
    for key, value in data.items():
        if key not in names:
            raise unknown_key(where, str(key), names)
        out[key] = checked_value(f"{where}.{key}", cls.param[key], value)
    return out
