"""Device curve editor: preset, levels, nonlinearity, conductance range, drawn or measured curve."""

from __future__ import annotations

from typing import Any

import holoviews as hv
import numpy as np
import panel as pn
import param

from explorer.device import PRESETS, DeviceModel, parse_device_csv
from explorer.errors import InputError
from explorer.ui.widgets import number_control

US = 1e-6  # Siemens per microsiemens
CURVE_SAMPLES = 200
DRAW_POINTS = 6
DEFAULT_PRESET = "AlOx/HfO2"
DEFAULT_LEVELS = 16
PULSE = hv.Dimension("pulse", label="pulse number")
CONDUCTANCE = hv.Dimension("conductance_uS", label="G", unit="µS")
LEVELS_SLIDER_END = 256
CSV_HELP = (
    "CSV with a header row and one value column: `conductance` (S), `conductance_uS` or "
    "`resistance_ohm`; optional `pulse` column; ≤ 1 MB, ≤ 100,000 rows. The distinct "
    "values become the levels."
)


class DeviceEditor(pn.viewable.Viewer):
    """Edits a :class:`~explorer.device.DeviceModel` in place: the editor holds no curve of
    its own, only the unit conversion (µS) and the last rejection message."""

    device = param.ClassSelector(
        class_=DeviceModel,
        instantiate=False,
        doc="The device being edited (changed in place).",
        label="Device",
    )
    preset = param.Selector(
        default=DEFAULT_PRESET,
        objects=list(PRESETS),
        label="Preset",
        doc="Load a published device (NeuroSim's set) or the ideal linear "
        "cell; replaces the curve, levels and conductance range.",
    )
    g_min_us = param.Number(
        default=1.0,
        bounds=(0, None),
        inclusive_bounds=(False, True),
        softbounds=(0.001, 1000),
        label="G min (µS)",
        doc="Lowest programmable conductance G_0 in microsiemens (> 0, < G max).",
    )
    g_max_us = param.Number(
        default=10.0,
        bounds=(0, None),
        inclusive_bounds=(False, True),
        softbounds=(0.001, 1000),
        label="G max (µS)",
        doc="Highest programmable conductance G_{L-1} in microsiemens (> G min).",
    )
    use_drawn = param.Event(
        label="Use drawn curve",
        doc="Replace the curve by a monotone PCHIP curve through the "
        "drawn points (drag/add points on the plot first).",
    )
    message = param.String(
        default="",
        label="Message",
        doc="Why the last upload or edit was rejected; empty when fine.",
    )

    def __init__(self, device: DeviceModel | None = None, **params: Any) -> None:
        if device is None:
            device = DeviceModel.from_preset(
                params.get("preset", DEFAULT_PRESET), levels=DEFAULT_LEVELS
            )
        super().__init__(device=device, **params)
        if device.preset in PRESETS:
            with param.parameterized.discard_events(self):
                self.preset = device.preset
        self._syncing = False
        self._sync_units()

        dev = self.device
        self._preset_select = pn.widgets.Select.from_param(self.param.preset)
        self._levels = number_control(dev.param.levels, 2, LEVELS_SLIDER_END, css_class="levels")
        self._nl = number_control(
            dev.param.nonlinearity, -6.01, 6.01, step=0.01, css_class="nonlinearity"
        )
        self._nl_ltd = number_control(
            dev.param.nonlinearity_ltd, -6.01, 6.01, step=0.01, css_class="nonlinearity-ltd"
        )
        self._g_min = pn.widgets.FloatInput.from_param(
            self.param.g_min_us, format="0.[0000]", width=180
        )
        self._g_max = pn.widgets.FloatInput.from_param(
            self.param.g_max_us, format="0.[0000]", width=180
        )
        self._summary = pn.pane.Markdown("", margin=(0, 10))
        self._upload = pn.widgets.FileInput(
            accept=".csv,.txt",
            multiple=False,
            description=CSV_HELP,
            label="Measured curve (CSV)",
            css_classes=["device-csv"],
        )
        self._draw_button = pn.widgets.Button.from_param(self.param.use_drawn, color="default")
        self._alert = pn.pane.Alert("", alert_type="danger", visible=False, margin=(5, 10))

        # the red crosses: a DynamicMap fed by a Pipe, so they can follow the curve when the
        # device changes; PointDraw reports the user's edits
        self._drawn = self._curve_samples()
        self._draw_pipe = hv.streams.Pipe(data=dict(self._drawn))
        draw = hv.DynamicMap(self._draw_layer, streams=[self._draw_pipe])
        self.draw_stream = hv.streams.PointDraw(source=draw, add=True, drag=True, num_objects=64)
        self.draw_stream.add_subscriber(self._on_draw)
        curve = hv.DynamicMap(
            self._curve_plot,
            streams=[
                hv.streams.Params(
                    dev,
                    parameters=[
                        "levels",
                        "nonlinearity",
                        "nonlinearity_ltd",
                        "levels_ltd",
                        "g_min",
                        "g_max",
                        "source",
                        "table",
                        "points_pulses",
                        "points_g",
                    ],
                )
            ],
        )
        self._plot = pn.pane.HoloViews(
            curve * draw, sizing_mode="stretch_width", height=300, linked_axes=False
        )

        dev.param.watch(
            self._on_device_change,
            ["g_min", "g_max", "levels", "source", "nonlinearity", "table", "points_g"],
        )
        self._upload.param.watch(self._on_upload, "value")
        self._update_controls()
        self._layout = pn.Column(
            pn.pane.Markdown("### Device", margin=(0, 10)),
            self._preset_select,
            self._levels,
            self._nl,
            self._nl_ltd,
            pn.Row(self._g_min, self._g_max, width=400),
            self._summary,
            self._plot,
            pn.pane.Markdown(
                "Red crosses: drag them, or tap to add, then **Use drawn curve**. "
                "Or upload a measured curve.",
                margin=(0, 10),
            ),
            self._draw_button,
            self._upload,
            self._alert,
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    # -- public actions ----------------------------------------------------------------------
    def load_csv(self, data: bytes, filename: str = "") -> bool:
        """Use a measured CSV (the file's bytes) as the device's levels.

        A rejected file leaves the current curve untouched and sets ``message``; returns
        whether the file was accepted.
        """
        name = f" {filename!r}" if filename else ""
        try:
            table = parse_device_csv(data)
            self.device.set_table(table.conductance, pulses=table.pulse)
        except InputError as exc:
            self.message = f"Rejected{name}: {exc}. The previous curve is kept."
            return False
        self.message = ""
        return True

    def apply_points(self, pulses: Any, conductances_us: Any) -> bool:
        """Use a drawn curve: points (pulse number, G in µS). Rejected points set ``message``
        and keep the current curve; returns whether they were accepted."""
        try:
            g = np.asarray(conductances_us, dtype=np.float64) * US
            self.device.set_points(np.asarray(pulses, dtype=np.float64), g)
        except (InputError, ValueError, TypeError) as exc:
            self.message = f"Drawn curve rejected: {exc}. The previous curve is kept."
            return False
        self.message = ""
        return True

    def drawn_points(self) -> dict[str, list[float]]:
        """The red crosses as the user left them: pulse numbers and conductances (µS)."""
        return {k: list(v) for k, v in self._drawn.items()}

    # -- watchers ----------------------------------------------------------------------------
    @param.depends("preset", watch=True)
    def _load_preset(self) -> None:
        spec = {k: v for k, v in PRESETS[self.preset].items() if k != "source"}
        spec.setdefault("levels_ltd", None)
        try:
            self.device.param.update(
                source="model",
                table=None,
                table_pulses=None,
                points_pulses=None,
                points_g=None,
                preset=self.preset,
                citation=PRESETS[self.preset].get("source", ""),
                **spec,
            )
        except InputError as exc:  # not expected for the shipped presets
            self.message = f"Preset {self.preset!r} rejected: {exc}"
        else:
            self.message = ""

    @param.depends("g_min_us", "g_max_us", watch=True)
    def _push_units(self) -> None:
        if self._syncing:
            return
        try:
            self.device.param.update(g_min=self.g_min_us * US, g_max=self.g_max_us * US)
        except InputError as exc:
            self.message = f"{exc}"
            self._sync_units()
        else:
            self.message = ""

    @param.depends("use_drawn", watch=True)
    def _apply_drawn(self) -> None:
        self.apply_points(self._drawn["pulse"], self._drawn["conductance_uS"])

    @param.depends("message", watch=True)
    def _show_message(self) -> None:
        self._alert.param.update(object=self.message, visible=bool(self.message))

    def _on_device_change(self, *_events: param.parameterized.Event) -> None:
        self._sync_units()
        self._update_controls()
        self._drawn = self._curve_samples()  # the crosses follow the new curve
        self._draw_pipe.send(dict(self._drawn))

    def _on_draw(self, data: dict[str, Any] | None = None, **_: Any) -> None:
        if data:
            self._drawn = {
                "pulse": list(data.get("pulse", [])),
                "conductance_uS": list(data.get("conductance_uS", [])),
            }

    def _on_upload(self, event: param.parameterized.Event) -> None:
        if event.new is not None:
            self.load_csv(event.new, self._upload.filename or "")

    # -- helpers -----------------------------------------------------------------------------
    def _sync_units(self) -> None:
        self._syncing = True
        try:
            self.param.update(g_min_us=self.device.g_min / US, g_max_us=self.device.g_max / US)
        finally:
            self._syncing = False

    def _update_controls(self) -> None:
        dev = self.device
        table = dev.source == "table"
        with pn.io.hold():
            for control in (*self._levels, self._g_min, self._g_max):
                control.disabled = table
            for control in self._nl:
                control.disabled = dev.source != "model"
            sources = {
                "model": "NeuroSim model",
                "table": "measured table",
                "points": "drawn curve",
            }
            self._summary.object = (
                f"Curve: **{sources[dev.source]}**, {dev.levels} levels, "
                f"on/off ratio **{dev.on_off_ratio:.3g}**"
                + (" (levels and range fixed by the table; pick a preset to edit)" if table else "")
            )

    def _curve_samples(self) -> dict[str, list[float]]:
        dev = self.device
        pulses = np.linspace(0, dev.levels - 1, DRAW_POINTS)
        return {"pulse": pulses.tolist(), "conductance_uS": (dev.curve(pulses) / US).tolist()}

    @staticmethod
    def _draw_layer(data: dict[str, Any]) -> hv.Points:
        return hv.Points(data, kdims=[PULSE, CONDUCTANCE], label="drawn").opts(
            size=9, color="#d62728", marker="x", tools=["hover"], line_width=2
        )

    def _curve_plot(self, **_params: Any) -> hv.Overlay:
        dev = self.device
        last = dev.levels - 1
        pulses = np.linspace(0, last, CURVE_SAMPLES)
        ltp = hv.Curve(
            (pulses, dev.curve(pulses) / US), PULSE, CONDUCTANCE, label="potentiation"
        ).opts(color="#1f77b4", line_width=2)
        if dev.source == "model":
            last_ltd = (dev.levels_ltd or dev.levels) - 1
            q = np.linspace(0, last_ltd, CURVE_SAMPLES)
            ltd_data = (q, dev.depression_curve(q) / US)
        else:
            ltd_data = (np.zeros(0), np.zeros(0))
        ltd = hv.Curve(ltd_data, PULSE, CONDUCTANCE, label="depression").opts(
            color="#7f7f7f", line_dash="dashed"
        )
        levels = hv.Scatter(
            (np.arange(dev.levels), dev.conductances() / US),
            PULSE,
            CONDUCTANCE,
            label="levels",
        ).opts(color="#ff7f0e", size=5)
        return (ltp * ltd * levels).opts(
            title="Conductance-state curve",
            legend_position="bottom_right",
            xlabel="pulse number",
            ylabel="G (µS)",
            responsive=True,
            min_height=260,
        )
