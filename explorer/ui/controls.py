"""Controls for the non-idealities, the converters and any further part of a CrossbarConfig,
generated from the settings declarations (:mod:`explorer.ui.part_controls`)."""

from __future__ import annotations

from typing import Any, ClassVar

import panel as pn
import param

from explorer.crossbar import CrossbarConfig
from explorer.errors import InputError
from explorer.settings import CROSSBAR_PARTS, ConverterSettings, NoiseSettings
from explorer.settings.base import Part
from explorer.settings.mapping import MappingSettings
from explorer.ui.part_controls import part_widgets


class PartControls(pn.viewable.Viewer):
    """Widgets for every knob of one settings part of a :class:`CrossbarConfig`, plus a
    note when the combination is impossible (checked with ``config.validate()``)."""

    config = param.ClassSelector(
        class_=CrossbarConfig,
        instantiate=False,
        label="Crossbar configuration",
        doc="The configuration these controls edit in place.",
    )
    problem = param.String(
        default="",
        label="Problem",
        doc="Why the current combination cannot be simulated; empty if fine.",
    )

    part: ClassVar[type[Part]] = NoiseSettings
    title: ClassVar[str] = ""

    def __init__(self, config: CrossbarConfig, part: type[Part] | None = None,
                 heading: bool = True, **params: Any) -> None:
        """``heading=False`` leaves out the title (shown by a collapsible header instead).

        The widgets are made when the controls are first shown (:meth:`__panel__`): in
        the dashboard they sit in closed groups, and a new page need not build them (a
        third of a session's build); ``problem`` is kept up to date from the start."""
        super().__init__(config=config, **params)
        if part is not None:
            self.part = part
        self._heading = heading
        self._alert = pn.pane.Alert("", alert_type="warning", visible=False)
        self._layout: pn.Column | None = None
        config.param.watch(self._check, self.part.knobs())
        self._check()

    @property
    def heading(self) -> str:
        """The section's title on the page."""
        return (self.title or self.part.title
                or self.part.section.replace("_", " ").capitalize())

    def __panel__(self) -> pn.viewable.Viewable:
        if self._layout is None:
            title = ([pn.pane.Markdown(f"### {self.heading}", margin=(0, 10))]
                     if self._heading else [])
            self._layout = pn.Column(
                *title,
                *self._build_widgets(self.config),
                self._alert,
                sizing_mode="stretch_width",
                css_classes=[f"controls-{self.part.section}"],
            )
        return self._layout

    def _build_widgets(self, config: CrossbarConfig) -> list[pn.viewable.Viewable]:
        return part_widgets(config, self.part)

    def _check(self, *_events: param.parameterized.Event) -> None:
        try:
            self.config.validate()
        except InputError as exc:
            self.problem = str(exc)
        else:
            self.problem = ""
        self._alert.param.update(object=self.problem, visible=bool(self.problem))


class NonIdealityControls(PartControls):
    """Programming variation, read noise, stuck-at faults and the random seed."""

    part = NoiseSettings
    title = "Non-idealities"


class CrossbarControls(PartControls):
    """Tile size, DAC and ADC resolution, ADC range calibration, bit-serial inputs; the
    percentile and fixed-range boxes show only for the ADC range they apply to."""

    part = ConverterSettings
    title = "Crossbar & converters"

    def _build_widgets(self, config: CrossbarConfig) -> list[pn.viewable.Viewable]:
        widgets = part_widgets(config, self.part)
        by_name = dict(zip(self.part.knobs(), widgets, strict=True))
        self._percentile = by_name["adc_percentile"]
        self._fixed = by_name["adc_fixed_range"]
        self._show_range_option()
        config.param.watch(self._show_range_option, "adc_range")
        return widgets

    def _show_range_option(self, *_events: param.parameterized.Event) -> None:
        self._percentile.visible = self.config.adc_range == "percentile"
        self._fixed.visible = self.config.adc_range == "fixed"


SHOWN_ELSEWHERE = (MappingSettings,)
"""Parts whose controls live in another component (the mapping view)."""


def further_parts() -> list[type[Part]]:
    """CrossbarConfig parts without a dedicated component: each gets a generated
    :class:`PartControls` section on the page (a new part shows up by itself)."""
    dedicated = (*SHOWN_ELSEWHERE, NonIdealityControls.part, CrossbarControls.part)
    return [part for part in CROSSBAR_PARTS if part not in dedicated]
