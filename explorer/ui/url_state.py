"""The page's URL as a view of the settings: every synced knob travels as text.

Panel's ``Location.sync`` leaves None out of the query string, so an "ideal" converter
(``adc_bits=None``) would not survive a shared link. :func:`url_proxy` gives each knob a
text twin (``none``, ``true``/``false``, numbers written exactly) linked both ways; the
location syncs the twins. A bad value typed into the URL is refused (the knob keeps its
value, the twin is reset) – never applied half-way.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import param

from explorer.errors import InputError
from explorer.settings.base import checked_value

log = logging.getLogger(__name__)
NONE_TEXT = "none"


def to_text(value: Any) -> str:
    """A knob's value as URL text (the inverse of :func:`from_text`)."""
    if value is None:
        return NONE_TEXT
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def from_text(p: param.Parameter, text: str, where: str) -> Any:
    """The value of knob ``p`` written as ``text``; InputError naming ``where`` if bad."""
    value: Any = text
    if p.allow_None and text.strip().lower() in (NONE_TEXT, "ideal", "null"):
        value = None
    elif isinstance(p, param.Boolean):
        value = {"true": True, "false": False}.get(text.strip().lower(), text)
    elif isinstance(p, param.Selector):  # choices that are numbers (tech_node) by their text
        value = next((c for c in p.objects if to_text(c) == text.strip()), text)
    elif isinstance(p, (param.Integer, param.Number)):
        with contextlib.suppress(ValueError):  # not a number: refused by checked_value
            value = int(text) if isinstance(p, param.Integer) else float(text)
    return checked_value(where, p, value)


class TextTwin(param.Parameter):
    """A knob's URL text. Panel's query parser turns "8" into 8 and "true" into True; the
    twin takes them back as text before Panel compares them with its value – Panel's
    comparison hashes an int as its bytes, so 48 equalled "0" and ``?seed=48`` was
    ignored by a page whose seed read "0" (any value 48-57 against one digit)."""

    @classmethod
    def deserialize(cls, value: Any) -> Any:
        return value if isinstance(value, str) else to_text(value)


def url_proxy(obj: param.Parameterized, names: Sequence[str]) -> param.Parameterized:
    """A Parameterized of text twins of ``obj``'s knobs ``names``, linked both ways."""
    twins = {name: TextTwin(default=to_text(getattr(obj, name))) for name in names}
    proxy = type(f"{type(obj).__name__}Url", (param.Parameterized,), twins)()
    busy = False

    def push(*events: param.parameterized.Event) -> None:
        nonlocal busy
        if busy:
            return
        busy = True
        try:
            values = {}
            for event in events:
                try:
                    values[event.name] = from_text(obj.param[event.name], str(event.new),
                                                   f"URL {event.name}")
                except InputError as exc:
                    log.warning("%s", exc)
                    setattr(proxy, event.name, to_text(getattr(obj, event.name)))
            if values:
                obj.param.update(**values)
        finally:
            busy = False

    def pull(*events: param.parameterized.Event) -> None:
        nonlocal busy
        if busy:
            return
        busy = True
        try:
            proxy.param.update(**{e.name: to_text(e.new) for e in events})
        finally:
            busy = False

    proxy.param.watch(push, list(names))
    obj.param.watch(pull, list(names))
    return proxy
