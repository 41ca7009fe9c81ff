"""Serialise a page's Bokeh models without computing the values that are not sent.

Bokeh 3's ``HasProps.query_properties_with_values(include_defaults=False)`` (what turns
every model into JSON for a new page or a patch) reads the value of *every* property —
building each unset property's default, and for each colour or number spec a new
property type — and only then drops those that were never set (its own comment: "this
should happen before get_value()"). On the dashboard's page of 344 models that made
serialising the page 78 ms of the server's one thread per visitor; skipping the unsent
values first gives the same JSON in 15 ms.

:func:`skip_unsent_defaults` is applied once by the server entry (``apps/explorer.py``);
notebooks and other programs keep Bokeh as it is. The JSON is compared with Bokeh's own
for the whole page in ``tests/test_bokeh_speedups.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bokeh
from bokeh.core.has_props import HasProps
from bokeh.core.property.descriptors import PropertyDescriptor, UnsetValueError
from bokeh.core.property.singletons import Undefined
from bokeh.core.property.wrappers import PropertyValueContainer

_BOKEH_QUERY = HasProps.query_properties_with_values


def _query_sent_values(
    self: HasProps,
    query: Callable[[PropertyDescriptor[Any]], bool],
    *,
    include_defaults: bool = True,
    include_undefined: bool = False,
) -> dict[str, Any]:
    """Bokeh's query, but values are read only for the properties it would return."""
    if include_defaults:
        return _BOKEH_QUERY(
            self, query, include_defaults=True, include_undefined=include_undefined)
    themed = self.themed_values() or {}
    selected = set(self._property_values) | set(self._unstable_default_values) | set(themed)
    result: dict[str, Any] = {}
    for key in self.properties(_with_props=True):
        descriptor = self.lookup(key)
        if key not in selected:
            # Bokeh reads it anyway, which raises for a required property never set:
            # keep that error (the only effect an unselected property can have)
            if not include_undefined and descriptor.property._default is Undefined \
                    and query(descriptor):
                descriptor.get_value(self)
            continue
        if not query(descriptor):
            continue
        try:
            value = descriptor.get_value(self)
        except UnsetValueError:
            if not include_undefined:
                raise
            value = Undefined
        if (key not in themed and isinstance(value, PropertyValueContainer)
                and key in self._unstable_default_values):
            continue  # an unchanged default container, dropped as Bokeh does
        result[key] = value
    return result


def skip_unsent_defaults() -> bool:
    """Install the faster query on Bokeh 3 (once; idempotent). Returns whether it is
    installed."""
    if not bokeh.__version__.startswith("3."):
        return False
    HasProps.query_properties_with_values = _query_sent_values  # type: ignore[method-assign]
    return True


def restore_bokeh_query() -> None:
    """Put Bokeh's own query back (tests compare the two)."""
    HasProps.query_properties_with_values = _BOKEH_QUERY  # type: ignore[method-assign]
