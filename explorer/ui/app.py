"""The Crossbar Explorer dashboard: all components on one page (``explorer.ui.Explorer``)."""

from __future__ import annotations

import io
import json
import logging
import traceback
import weakref
from collections.abc import Callable
from typing import Any

import panel as pn
import param
import torch

from explorer.crossbar import CrossbarConfig
from explorer.device import DeviceModel
from explorer.errors import InputError
from explorer.jobs import JobRunner
from explorer.models import analog_layers, build_model, load_pretrained
from explorer.settings import Settings, crossbar_knobs
from explorer.settings.options import DEVICE_OPTIONS
from explorer.ui.accuracy import AccuracyRunner
from explorer.ui.cli_command import CliCommand
from explorer.ui.controls import (
    CrossbarControls,
    NonIdealityControls,
    PartControls,
    further_parts,
)
from explorer.ui.cost_panel import CostPanel
from explorer.ui.deferred import Deferred
from explorer.ui.device_editor import DEFAULT_LEVELS, DEFAULT_PRESET, DeviceEditor
from explorer.ui.layers_view import LayersView
from explorer.ui.mapping_view import MappingView
from explorer.ui.programming_view import ProgrammingView
from explorer.ui.sections import LazySections, LazyTabs
from explorer.ui.session import job_runner, release_memory_soon, served_document
from explorer.ui.sweep_panel import SweepPanel
from explorer.ui.time_wires import TimeWiresView
from explorer.ui.train_panel import TrainPanel
from explorer.ui.url_state import url_proxy
from explorer.ui.workload import WORKLOADS

log = logging.getLogger(__name__)

INTRO = """\
## Crossbar Explorer
A trained network written into a ReRAM crossbar. **Left:** the cell – its conductance-state
curve and programmable levels (pick a preset, change levels and nonlinearity, draw your own
curve or upload a measured one); below it, groups that open on a click: the variation, the
crossbar's converters, wires, drift, the technology & cost model, the settings file and the
CLI command.
**Right, top:** how every weight lands on the nearest achievable conductance – the error
histograms of the mapping methods overlaid, the realised-vs-ideal transfer curve and the
error table, updated on every change. **Right, bottom:** tabs – *Accuracy* (*Evaluate* runs
the network on the simulated crossbar in the background and adds its accuracy to the
history), *Programming* (the spread one programming trial adds), *Cost*, *Time & wires*,
*Layers*, *Sweep* and *Train*."""

DEVICE_URL_PARAMS = list(DEVICE_OPTIONS)
"""Device knobs kept in the page's URL (generated from the settings declarations)."""
CONFIG_URL_PARAMS = crossbar_knobs()
"""CrossbarConfig knobs kept in the page's URL: every knob of every settings part."""
WORKLOAD_URL_PARAMS = ["workload", "limit", "trials", "calibration_images"]
"""The accuracy runner's workload knobs kept in the URL."""


@pn.cache(max_items=8)
def network_weights(model: str) -> tuple[dict[str, torch.Tensor], str]:
    """Weights of a pretrained network by layer, and a note ('' when they are trained).

    Without the weights file, LeNet5's freshly initialised weights stand in (with a note).
    """
    try:
        network = load_pretrained(model)
        note = ""
    except InputError as exc:
        network = build_model(model.split("-")[0])
        note = f"Showing untrained {model.split('-')[0]} weights: {exc}"
    weights = {name: module.weight.detach().clone() for name, module in analog_layers(network)}
    return weights, note


SETTINGS_SECTION = "Settings: export, import, CLI command"
"""The sidebar's last group."""
SECTIONS = ("Accuracy", "Programming", "Cost", "Time & wires", "Layers", "Sweep", "Train")
"""Titles of the main column's tabs, in order; the first is open when the page loads."""


class Explorer(pn.viewable.Viewer):
    """The whole dashboard: device editor, non-idealities, crossbar controls, mapping view
    and accuracy runner, all editing one :class:`~explorer.crossbar.CrossbarConfig`."""

    config = param.ClassSelector(
        class_=CrossbarConfig,
        instantiate=False,
        label="Crossbar configuration",
        doc="Device, mapping, tiles, converters and non-idealities.",
    )
    error = param.String(
        default="", label="Error", doc="The last unexpected error, shown at the top of the page."
    )

    def __init__(
        self,
        config: CrossbarConfig | None = None,
        runner: JobRunner | None = None,
        sync_url: bool = True,
        **params: Any,
    ) -> None:
        if config is None:
            device = DeviceModel.from_preset(DEFAULT_PRESET, levels=DEFAULT_LEVELS)
            config = CrossbarConfig(device=device)
        super().__init__(config=config, **params)
        self.device_editor = DeviceEditor(config.device)
        self.nonidealities = NonIdealityControls(config, heading=False)
        self.crossbar = CrossbarControls(config, heading=False)
        self.further = [PartControls(config, part, heading=False) for part in further_parts()]
        self.accuracy = AccuracyRunner(config, runner=runner)
        weights, note = network_weights(self.accuracy.selected_workload().model)
        self.mapping = MappingView(config.device, config, weights)
        self._runner = runner
        self._weights_note = pn.pane.Alert(note, alert_type="warning", visible=bool(note))
        self.accuracy.param.watch(self._on_workload, "workload")

        self._error = pn.pane.Alert("", alert_type="danger", visible=False)
        self._export = pn.widgets.FileDownload(
            callback=self._settings_file,
            filename="crossbar_settings.json",
            label="Export settings (JSON)",
            color="light",
        )
        self._import = pn.widgets.FileInput(
            accept=".json",
            label="Import settings (JSON)",
            description="A JSON file written by Export settings.",
        )
        self._import.param.watch(self._on_import, "value")
        self.cli = CliCommand(self._current_settings)
        device = config.device
        # the command text follows a change after its histograms have been sent
        refresh_cli = Deferred(self.cli.refresh)
        device.param.watch(refresh_cli, [p for p in device.param if p != "name"])
        config.param.watch(refresh_cli, crossbar_knobs())
        self.accuracy.param.watch(refresh_cli, WORKLOAD_URL_PARAMS)
        self._url_twins: list[param.Parameterized] = []
        if sync_url:
            self._sync_url()
        # Under the device editor (what the page is about), the sidebar's groups are
        # collapsible headers whose controls are made and sent only once opened
        # (explorer/ui/sections.py); the knobs themselves are parameters of the config,
        # so the URL, a settings import and the CLI command work with the groups closed.
        self.sidebar_sections = LazySections(
            [(controls.heading, controls)
             for controls in (self.nonidealities, self.crossbar, *self.further)]
            + [(SETTINGS_SECTION, pn.Column(self._export, self._import, self.cli,
                                            sizing_mode="stretch_width"))],
            sizing_mode="stretch_width",
            css_classes=["explorer-sidebar-sections"],
        )
        sidebar = pn.Column(self.device_editor, self.sidebar_sections, width=420)
        # The sections below the mapping view are tabs whose views are built, and whose
        # Bokeh models are made and sent, only once a tab is opened (or a view is asked
        # for: the properties below; explorer/ui/sections.py): with the sidebar's groups,
        # a new page has 344 models instead of 974. An opened section stays in the page.
        self.sections = LazyTabs(
            list(zip(SECTIONS, (self.accuracy, self._build_programming, self._build_cost,
                                self._build_time_wires, self._build_layers, self._build_sweep,
                                self._build_train), strict=True)),
            sizing_mode="stretch_width",
            css_classes=["explorer-sections"],
        )
        main = pn.Column(
            self._weights_note,
            self.mapping,
            self.sections,
            sizing_mode="stretch_width",
        )
        self._layout = pn.Column(
            pn.pane.Markdown(INTRO, sizing_mode="stretch_width"),
            self._error,
            pn.Row(sidebar, main, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    # -- the main column's sections, built when first opened ---------------------------------
    @property
    def programming(self) -> ProgrammingView:
        return self.sections.view("Programming")

    @property
    def cost(self) -> CostPanel:
        return self.sections.view("Cost")

    @property
    def time_wires(self) -> TimeWiresView:
        return self.sections.view("Time & wires")

    @property
    def layers(self) -> LayersView:
        return self.sections.view("Layers")

    @property
    def sweep(self) -> SweepPanel:
        return self.sections.view("Sweep")

    @property
    def train(self) -> TrainPanel:
        return self.sections.view("Train")

    def _build_programming(self) -> ProgrammingView:
        # one trial's programming of every layer: recomputed after each change once built
        return ProgrammingView(self.config.device, self.config, self.mapping.weights)

    def _build_cost(self) -> CostPanel:
        chosen = self.accuracy.selected_workload()
        runner = self._runner if self._runner is not None else job_runner()
        return CostPanel(self.config, runner=runner, model=chosen.model, data=chosen.dataset,
                         live=False)  # switched on when its tab is first opened

    def _build_time_wires(self) -> TimeWiresView:
        return TimeWiresView(self.config, runner=self._runner, workload=self.accuracy.core)

    def _build_layers(self) -> LayersView:
        return LayersView(self.config, runner=self._runner,
                          model=self.accuracy.selected_workload().model)

    def _build_sweep(self) -> SweepPanel:
        return SweepPanel(self.config, runner=self._runner)

    def _build_train(self) -> TrainPanel:
        return TrainPanel(self.config, runner=self._runner, on_checkpoint=self._offer_checkpoint)

    def open_section(self, title: str) -> None:
        """Show the main column's tab ``title`` (one of :data:`SECTIONS`)."""
        self.sections.active = SECTIONS.index(title)

    def open_sidebar_section(self, title: str) -> None:
        """Open the sidebar's group ``title`` (a title of ``sidebar_sections``)."""
        self.sidebar_sections.open(title)

    # -- errors ------------------------------------------------------------------------------
    def show_exception(self, exc: BaseException) -> None:
        """Show an unexpected error at the top of the page (the app keeps working)."""
        if isinstance(exc, InputError):
            self.error = str(exc)
        else:
            log.error("dashboard callback failed", exc_info=exc)
            self.error = f"{type(exc).__name__}: {exc}"

    @param.depends("error", watch=True)
    def _show_error(self) -> None:
        self._error.param.update(object=self.error, visible=bool(self.error))

    # -- settings as JSON and in the URL -----------------------------------------------------
    def settings(self) -> Settings:
        """The page's whole experiment: the crossbar (device included) and the accuracy
        runner's workload (a copy; :meth:`import_settings` changes the page)."""
        return Settings(crossbar=self.config, workload=self.accuracy.core()).copy()

    def _current_settings(self) -> Settings:
        # no copy: the CLI command only reads them
        return Settings(crossbar=self.config, workload=self.accuracy.core())

    def export_settings(self) -> dict[str, Any]:
        """The settings file's form (:meth:`explorer.settings.Settings.to_dict`): what
        ``explorer evaluate --config FILE`` takes."""
        return self.settings().to_dict()

    def import_settings(self, settings: dict[str, Any]) -> None:
        """Apply a settings file (any version; missing keys keep the page's values). Bad
        input raises InputError naming the key and changes nothing."""
        new = Settings.from_dict(settings, base=self.settings())
        work = new.workload
        choice = self.accuracy.choice_of(work.model, work.data)
        dev, trial_device = self.config.device, new.crossbar.device
        with pn.io.hold():
            if trial_device.source == "table":
                dev.set_table(trial_device.table, trial_device.table_pulses)
            elif trial_device.source == "points":
                dev.param.update(levels=trial_device.levels)
                dev.set_points(trial_device.points_pulses, trial_device.points_g)
                dev.param.update(g_min=trial_device.g_min, g_max=trial_device.g_max)
            else:
                curve = {k: getattr(trial_device, k) for k in ("preset", *DEVICE_OPTIONS)}
                dev.param.update(source="model", table=None, table_pulses=None,
                                 points_pulses=None, points_g=None, **curve)
            self.config.param.update(**{k: getattr(new.crossbar, k) for k in crossbar_knobs()})
            self.accuracy.param.update(
                workload=choice, **{k: getattr(work, k) for k in WORKLOAD_URL_PARAMS[1:]})

    def _settings_file(self) -> io.StringIO:
        return io.StringIO(json.dumps(self.export_settings(), indent=2))

    def _on_import(self, event: param.parameterized.Event) -> None:
        if event.new is None:
            return
        try:
            self.import_settings(json.loads(event.new))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            self.error = f"Settings file rejected: not JSON ({exc})"
        except InputError as exc:
            self.error = f"Settings file rejected: {exc}"
        else:
            self.error = ""

    def _sync_url(self) -> None:
        location = pn.state.location if served_document() is not None else None
        if location is None:
            return
        location.sync(self.device_editor, {"preset": "preset"})
        for obj, names in ((self.config.device, DEVICE_URL_PARAMS),
                           (self.config, CONFIG_URL_PARAMS),
                           (self.accuracy, WORKLOAD_URL_PARAMS)):
            self._url_twins.append(url_proxy(obj, names))
            location.sync(self._url_twins[-1], {k: k for k in names})

    # -- network -----------------------------------------------------------------------------
    def _offer_checkpoint(self, name: str) -> None:
        """A checkpoint trained on this page: in the menus at once, and selected."""
        with pn.io.hold():
            self.accuracy.offer_workloads()
            if self.sections.built("Sweep"):  # a sweep built later lists it anyway
                self.sweep.offer_workloads()
            self.accuracy.workload = name

    def _on_workload(self, event: param.parameterized.Event) -> None:
        weights, note = network_weights(WORKLOADS[event.new].model)
        with pn.io.hold():
            self._weights_note.param.update(object=note, visible=bool(note))
            self.mapping.weights = weights
            if self.sections.built("Programming"):
                self.programming.weights = weights
            chosen = WORKLOADS[event.new]  # views built later take it when built
            if self.sections.built("Cost"):
                self.cost.param.update(model=chosen.model, data=chosen.dataset)
            if self.sections.built("Layers"):
                self.layers.model = chosen.model


def _weak_handler(method: Callable[[BaseException], None]) -> Callable[[BaseException], None]:
    """``method`` called through a weak reference (nothing happens once its object is gone)."""
    ref = weakref.WeakMethod(method)

    def handle(exc: BaseException) -> None:
        target = ref()
        if target is not None:
            target(exc)

    return handle


def _serve_own_stylesheets(doc: Any) -> None:
    """Give a served session's document the address of Panel's files (its ``dist_url``)
    before any of its models exist.

    Panel sets it only while it writes a session's HTML page, and points the stylesheets
    of models made in a document without it at cdn.holoviz.org. Bokeh rebuilds a session
    that was discarded between its HTML and its websocket (no connection for the unused-
    session lifetime: a slow browser on a busy server) for the websocket alone, without
    the HTML: every model of that page, and of each tab opened later, then asked the CDN
    for its CSS (offline: failed requests, unstyled widgets). The address set here is the
    one Panel's HTML would set: this server's static files (the CDN in 'cdn' mode).
    """
    from panel.io.resources import get_dist_path

    doc._template_variables.setdefault("dist_url", get_dist_path())


def build_app() -> pn.viewable.Viewable:
    """Load Panel's extensions and build the dashboard for one session.

    An exception while building gives a page that says what went wrong, never a blank one.
    """
    # no browser-info model: nothing here reads it, and each page's browser sent its
    # seven fields (time zone, language, WebGL, …) as seven messages at load
    pn.extension(browser_info=False)
    doc = served_document()
    if doc is not None:
        _serve_own_stylesheets(doc)
    try:
        app = Explorer()
    except Exception as exc:  # show it: a blank page helps nobody
        log.exception("Crossbar Explorer failed to start")
        details = "".join(traceback.format_exception(exc))
        return pn.Column(
            pn.pane.Alert(
                f"**Crossbar Explorer could not start:** {type(exc).__name__}: {exc}",
                alert_type="danger",
            ),
            pn.pane.Markdown(f"```\n{details}\n```"),
        )
    if doc is not None:
        # this session only; Panel keeps it in a dict keyed weakly by the document, so
        # the handler must not hold the app (which holds the document) or the closed
        # session's document and views would stay alive for ever
        pn.config.exception_handler = _weak_handler(app.show_exception)
        # once the session's views are gone (its end-of-session hooks run before)
        doc.on_session_destroyed(lambda _context: release_memory_soon())
    return app
