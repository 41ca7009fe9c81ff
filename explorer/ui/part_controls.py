"""Widgets generated from a settings part's declarations: a knob declared in
:mod:`explorer.settings` gets its control on the page without UI code.

:func:`knob_widget` picks the widget from the Param type: a selector of a few choices →
radio buttons (more → a select), a boolean → a checkbox, a number with soft bounds → a
slider beside a box (:func:`~explorer.ui.widgets.number_control`), an integer that may be
None (converter bits) → a select of "ideal" / "N bits" mirrored both ways, other numbers
→ a box. Labels, bounds and tooltips come from the declaration.
"""

from __future__ import annotations

import panel as pn
import param

from explorer.settings.base import Part
from explorer.ui.widgets import number_control

IDEAL = "ideal"


JS_MAX_INT = 2**53 - 1
"""Largest integer a browser number holds exactly (bounds beyond it are cut for widgets)."""


class NoneOrIntSelect:
    """A select of ``ideal`` (None) and ``N <unit>`` for an Integer knob that may be None,
    mirrored both ways with ``obj``'s parameter ``name`` (:attr:`select` is the widget;
    the watchers keep this object alive as long as the widget and ``obj``)."""

    def __init__(self, obj: param.Parameterized, name: str, unit: str = "bits",
                 width: int = 150, css_class: str | None = None) -> None:
        p = obj.param[name]
        low, high = p.bounds
        self._choices = {IDEAL: None, **{f"{n} {unit}": n for n in range(low, high + 1)}}
        self._labels = {v: k for k, v in self._choices.items()}
        self._obj, self._name = obj, name
        self.select = pn.widgets.Select(label=p.label, options=list(self._choices),
                                        value=self._labels[getattr(obj, name)],
                                        description=p.doc, width=width,
                                        css_classes=[css_class] if css_class else [])
        self.select.param.watch(self._push, "value")
        obj.param.watch(self._pull, name)

    def _push(self, event: param.parameterized.Event) -> None:
        setattr(self._obj, self._name, self._choices[event.new])

    def _pull(self, event: param.parameterized.Event) -> None:
        self.select.value = self._labels[event.new]


def knob_widget(obj: param.Parameterized, name: str,
                css_class: str | None = None) -> pn.viewable.Viewable:
    """The control of knob ``name`` of ``obj``, linked both ways."""
    p = obj.param[name]
    css = [css_class or name.replace("_", "-")]
    if isinstance(p, param.Boolean):
        return pn.widgets.Checkbox.from_param(p, css_classes=css)
    if isinstance(p, param.Selector):
        if len(p.objects) <= 4:
            return pn.widgets.RadioButtonGroup.from_param(p, css_classes=css)
        return pn.widgets.Select.from_param(p, css_classes=css)
    if isinstance(p, param.Integer) and p.allow_None and p.bounds and None not in p.bounds \
            and p.bounds[1] - p.bounds[0] <= 64:
        return NoneOrIntSelect(obj, name, css_class=css[0]).select
    if isinstance(p, param.Number) and not p.allow_None and p.softbounds is not None \
            and None not in p.softbounds:
        low, high = p.softbounds
        step = None if isinstance(p, param.Integer) else (high - low) / 100
        return number_control(p, low, high, step=step, css_class=css[0])
    if isinstance(p, param.Integer):
        low, high = p.bounds or (None, None)
        return pn.widgets.IntInput.from_param(
            p, css_classes=css, start=None if low is None else max(low, -JS_MAX_INT),
            end=None if high is None else min(high, JS_MAX_INT))
    if isinstance(p, param.Number):
        return pn.widgets.FloatInput.from_param(p, css_classes=css)
    return pn.widgets.TextInput.from_param(p, css_classes=css)


def part_widgets(obj: param.Parameterized, part: type[Part],
                 skip: tuple[str, ...] = (),
                 custom: dict[str, pn.viewable.Viewable] | None = None
                 ) -> list[pn.viewable.Viewable]:
    """One control per knob of ``part`` on ``obj`` (in declaration order); ``custom``
    replaces the generated control of some knobs, ``skip`` leaves some out."""
    custom = custom or {}
    return [custom.get(name) or knob_widget(obj, name) for name in part.knobs()
            if name not in skip]
