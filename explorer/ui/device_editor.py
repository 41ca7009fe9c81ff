"""Device curve editor: preset, levels, nonlinearity, conductance range, drawn or measured curve."""

from __future__ import annotations

from typing import Any

import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, PointDrawTool
from bokeh.plotting import figure

from explorer.device import PRESETS, DeviceModel, parse_device_csv
from explorer.errors import InputError
from explorer.ui.plot_legend import fixed_legend
from explorer.ui.widgets import lean_glyphs, number_control

US = 1e-6  # Siemens per microsiemens
CURVE_SAMPLES = 200
DRAW_POINTS = 6
DEFAULT_PRESET = "AlOx/HfO2"
DEFAULT_LEVELS = 16
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
        self._summary = pn.pane.HTML("", margin=(0, 10))
        self._upload = pn.widgets.FileInput(
            accept=".csv,.txt",
            multiple=False,
            description=CSV_HELP,
            label="Measured curve (CSV)",
            css_classes=["device-csv"],
        )
        self._draw_button = pn.widgets.Button.from_param(self.param.use_drawn, color="default")
        self._alert = pn.pane.Alert("", alert_type="danger", visible=False, margin=(5, 10))

        # the plot: plain Bokeh, built once; a change of the device only replaces the data
        # of its sources. The red crosses are edited in the browser (PointDrawTool) and
        # their source's data come back to Python.
        self._sources = {
            name: ColumnDataSource({"pulse": [], "conductance_uS": []})
            for name in ("potentiation", "depression", "levels")
        }
        self.draw_source = ColumnDataSource(self._curve_samples())
        self._figure = self._curve_figure()
        self._plot = pn.pane.Bokeh(self._figure, sizing_mode="stretch_width", height=300)
        self._update_plot()

        dev.param.watch(
            self._on_device_change,
            [
                "g_min",
                "g_max",
                "levels",
                "source",
                "nonlinearity",
                "nonlinearity_ltd",
                "levels_ltd",
                "table",
                "points_g",
            ],
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
        data = self.draw_source.data
        return {k: [float(v) for v in data[k]] for k in ("pulse", "conductance_uS")}

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
        points = self.drawn_points()
        self.apply_points(points["pulse"], points["conductance_uS"])

    @param.depends("message", watch=True)
    def _show_message(self) -> None:
        self._alert.param.update(object=self.message, visible=bool(self.message))

    def _on_device_change(self, *_events: param.parameterized.Event) -> None:
        self._sync_units()
        self._update_controls()
        self._update_plot()

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
                f"Curve: <b>{sources[dev.source]}</b>, {dev.levels} levels, "
                f"on/off ratio <b>{dev.on_off_ratio:.3g}</b>"
                + (" (levels and range fixed by the table; pick a preset to edit)" if table else "")
            )

    def _curve_samples(self) -> dict[str, list[float]]:
        dev = self.device
        pulses = np.linspace(0, dev.levels - 1, DRAW_POINTS)
        return {"pulse": pulses.tolist(), "conductance_uS": (dev.curve(pulses) / US).tolist()}

    def _curve_figure(self) -> figure:
        fig = figure(
            title="Conductance-state curve",
            x_axis_label="pulse number",
            y_axis_label="G (µS)",
            tools="pan,wheel_zoom,box_zoom,reset,save",
            sizing_mode="stretch_width",
            height=300,
        )
        src = self._sources
        curves = {
            "potentiation": fig.line(
                "pulse",
                "conductance_uS",
                source=src["potentiation"],
                color="#1f77b4",
                line_width=2,
            ),
            "depression": fig.line(
                "pulse",
                "conductance_uS",
                source=src["depression"],
                color="#7f7f7f",
                line_dash="dashed",
            ),
            "levels": fig.scatter(
                "pulse",
                "conductance_uS",
                source=src["levels"],
                color="#ff7f0e",
                size=6,
            ),
        }
        lean_glyphs(fig)  # the curves and levels (the drawn points keep their own states)
        drawn = fig.scatter(
            "pulse",
            "conductance_uS",
            source=self.draw_source,
            marker="x",
            color="#d62728",
            size=11,
            line_width=2,
        )
        draw_tool = PointDrawTool(renderers=[drawn], add=True, drag=True, num_objects=64)
        fig.add_tools(draw_tool)
        fig.toolbar.active_tap = draw_tool
        fig.toolbar.active_drag = draw_tool
        # drawn with stand-ins: a legend on the curves themselves was redrawn on every change
        fixed_legend(fig, {**curves, "drawn": drawn}, location="bottom_right")
        return fig

    def _update_plot(self) -> None:
        dev = self.device
        pulses = np.linspace(0, dev.levels - 1, CURVE_SAMPLES)
        if dev.source == "model":
            last_ltd = (dev.levels_ltd or dev.levels) - 1
            q = np.linspace(0, last_ltd, CURVE_SAMPLES)
            ltd = {"pulse": q, "conductance_uS": dev.depression_curve(q) / US}
        else:
            ltd = {"pulse": np.zeros(0), "conductance_uS": np.zeros(0)}
        with pn.io.hold():
            self._sources["potentiation"].data = {
                "pulse": pulses,
                "conductance_uS": dev.curve(pulses) / US,
            }
            self._sources["depression"].data = ltd
            self._sources["levels"].data = {
                "pulse": np.arange(dev.levels, dtype=np.float64),
                "conductance_uS": dev.conductances() / US,
            }
            self.draw_source.data = self._curve_samples()  # the crosses follow the curve
