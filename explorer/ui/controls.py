"""Controls for the non-idealities and the crossbar hardware of a CrossbarConfig."""

from __future__ import annotations

from typing import Any

import panel as pn
import param

from explorer.crossbar import CrossbarConfig
from explorer.errors import InputError
from explorer.tiles import MAX_BITS
from explorer.ui.widgets import number_control

BIT_CHOICES = {"ideal": None, **{f"{b} bits": b for b in range(1, MAX_BITS + 1)}}


class _ConfigControls(pn.viewable.Viewer):
    """Widgets bound to a :class:`CrossbarConfig`, plus a note when the combination is
    impossible (checked with ``config.validate()``)."""

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

    _title = ""
    _watched: tuple[str, ...] = ()

    def __init__(self, config: CrossbarConfig, **params: Any) -> None:
        super().__init__(config=config, **params)
        self._alert = pn.pane.Alert("", alert_type="warning", visible=False)
        self._widgets = self._build_widgets(config)
        config.param.watch(self._check, list(self._watched))
        self._check()
        self._layout = pn.Column(
            pn.pane.Markdown(f"### {self._title}", margin=(0, 10)),
            *self._widgets,
            self._alert,
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    def _build_widgets(self, config: CrossbarConfig) -> list[pn.viewable.Viewable]:
        raise NotImplementedError

    def _check(self, *_events: param.parameterized.Event) -> None:
        try:
            self.config.validate()
        except InputError as exc:
            self.problem = str(exc)
        else:
            self.problem = ""
        self._alert.param.update(object=self.problem, visible=bool(self.problem))


class NonIdealityControls(_ConfigControls):
    """Programming variation, read noise, stuck-at faults and the random seed."""

    _title = "Non-idealities"
    _watched = (
        "prog_sigma",
        "prog_sigma_mode",
        "read_sigma",
        "stuck_at_gmin",
        "stuck_at_gmax",
        "seed",
    )

    def _build_widgets(self, config: CrossbarConfig) -> list[pn.viewable.Viewable]:
        p = config.param
        return [
            number_control(p.prog_sigma, 0, 0.3, step=0.005, css_class="prog-sigma"),
            pn.widgets.RadioButtonGroup.from_param(p.prog_sigma_mode),
            number_control(p.read_sigma, 0, 0.2, step=0.005, css_class="read-sigma"),
            number_control(p.stuck_at_gmin, 0, 0.2, step=0.001, css_class="stuck-gmin"),
            number_control(p.stuck_at_gmax, 0, 0.2, step=0.001, css_class="stuck-gmax"),
            pn.widgets.IntInput.from_param(p.seed, start=0, end=2**31 - 1),
        ]


class CrossbarControls(_ConfigControls):
    """Tile size, DAC and ADC resolution, ADC range calibration, bit-serial inputs.

    The converter bits are shown as choices ("ideal", "1 bits" … "16 bits") because the
    config's ``None`` (ideal) cannot be a select widget's value; they mirror
    ``config.dac_bits`` / ``config.adc_bits`` both ways.
    """

    dac_choice = param.Selector(
        default="8 bits",
        objects=list(BIT_CHOICES),
        label="DAC bits",
        doc="Input DAC resolution in bits; ideal = analog inputs.",
    )
    adc_choice = param.Selector(
        default="ideal",
        objects=list(BIT_CHOICES),
        label="ADC bits",
        doc="ADC resolution of each row chunk's partial sum in bits; ideal = no ADC.",
    )

    _title = "Crossbar"
    _watched = (
        "tile_rows",
        "tile_cols",
        "dac_bits",
        "adc_bits",
        "adc_range",
        "adc_percentile",
        "adc_fixed_range",
        "bit_serial",
        "scheme",
    )

    def _build_widgets(self, config: CrossbarConfig) -> list[pn.viewable.Viewable]:
        p = config.param
        self._pulling = False
        self._pull_bits()
        config.param.watch(self._pull_bits, ["dac_bits", "adc_bits"])
        self._percentile = pn.widgets.FloatInput.from_param(p.adc_percentile, step=0.01)
        self._fixed = pn.widgets.FloatInput.from_param(p.adc_fixed_range, step=0.05)
        self._show_range_option()
        config.param.watch(self._show_range_option, "adc_range")
        return [
            pn.Row(
                pn.widgets.IntInput.from_param(p.tile_rows, start=1, end=65536, width=150),
                pn.widgets.IntInput.from_param(p.tile_cols, start=1, end=65536, width=150),
            ),
            pn.Row(
                pn.widgets.Select.from_param(self.param.dac_choice, width=150),
                pn.widgets.Select.from_param(self.param.adc_choice, width=150),
            ),
            pn.widgets.RadioButtonGroup.from_param(p.adc_range),
            self._percentile,
            self._fixed,
            pn.widgets.Checkbox.from_param(p.bit_serial),
        ]

    @param.depends("dac_choice", "adc_choice", watch=True)
    def _push_bits(self) -> None:
        if self._pulling:
            return
        self.config.param.update(
            dac_bits=BIT_CHOICES[self.dac_choice], adc_bits=BIT_CHOICES[self.adc_choice]
        )

    def _pull_bits(self, *_events: param.parameterized.Event) -> None:
        labels = {bits: label for label, bits in BIT_CHOICES.items()}
        self._pulling = True
        try:
            self.param.update(
                dac_choice=labels[self.config.dac_bits], adc_choice=labels[self.config.adc_bits]
            )
        finally:
            self._pulling = False

    def _show_range_option(self, *_events: param.parameterized.Event) -> None:
        self._percentile.visible = self.config.adc_range == "percentile"
        self._fixed.visible = self.config.adc_range == "fixed"
