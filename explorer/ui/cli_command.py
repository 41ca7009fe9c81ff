""""Copy CLI command": the ``explorer evaluate`` command line that reproduces the page's
evaluation, generated from the settings declarations (the option names of
:mod:`explorer.settings.options`, the values of :meth:`Settings.flat`).

A device from a preset or the NeuroSim model is typed out option by option (only the
values that differ from their defaults – all of them for a trained checkpoint, whose own
hardware record would otherwise fill the gaps). A measured table or a drawn curve has no
options: the command then reads the exported settings file (``--config``).
"""

from __future__ import annotations

import shlex
from typing import Any

import panel as pn
import param

from explorer.settings import CROSSBAR_PARTS, Settings, WorkloadSettings
from explorer.settings.options import DEVICE_OPTIONS

SETTINGS_FILE = "crossbar_settings.json"
"""The file name the page's *Export settings (JSON)* button suggests."""


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _word(p: param.Parameter, value: Any) -> str:
    if value is None:
        return "all" if p.name == "limit" else "ideal" if p.name.endswith("_bits") else "none"
    if isinstance(value, float):
        return repr(value)  # every digit: the command must give the same number back
    return shlex.quote(str(value))


def _options(owner: param.Parameterized, names: list[str], base: param.Parameterized | None
             ) -> list[str]:
    out = []
    for name in names:
        p, value = owner.param[name], getattr(owner, name)
        if base is not None and getattr(base, name) == value:
            continue
        if isinstance(p, param.Boolean):
            out.append(_flag(name) if value else f"--no-{name.replace('_', '-')}")
        else:
            out += [_flag(name), _word(p, value)]
    return out


def _trained_checkpoint(model: str) -> bool:
    from explorer.models import PRETRAINED

    return model not in PRETRAINED


def evaluate_command(settings: Settings, program: str = "explorer") -> str:
    """The ``explorer evaluate`` command line for ``settings`` (one line, shell-quoted)."""
    from explorer.device import DeviceModel

    device, crossbar, work = settings.crossbar.device, settings.crossbar, settings.workload
    words = [program, "evaluate"]
    if device.source != "model":
        words += ["--config", SETTINGS_FILE]
        work_base = None
    else:
        full = _trained_checkpoint(work.model)
        if device.preset:
            words += ["--preset", shlex.quote(device.preset)]
            dev_base = None if full else DeviceModel.from_preset(device.preset)
        else:
            dev_base = None if full else DeviceModel()
        words += _options(device, list(DEVICE_OPTIONS), dev_base)
        cfg_base = None if full else type(crossbar)()
        words += _options(crossbar, [n for part in CROSSBAR_PARTS for n in part.knobs()],
                          cfg_base)
        work_base = WorkloadSettings()
    words += _options(work, list(WorkloadSettings.knobs()), work_base)
    return " ".join(words)


class CliCommand(pn.viewable.Viewer):
    """A text box with the command and a *Copy CLI command* button (clipboard)."""

    command = param.String(default="", label="CLI command",
                           doc="explorer evaluate … reproducing the current evaluation.")

    def __init__(self, settings_fn: Any, **params: Any) -> None:
        super().__init__(**params)
        self._settings_fn = settings_fn
        self._text = pn.widgets.TextAreaInput(
            value="", rows=3, sizing_mode="stretch_width", css_classes=["cli-command"],
            label="Reproduce this evaluation on the command line")
        self._note = pn.pane.Markdown("", margin=(0, 10), css_classes=["cli-command-note"])
        self._copy = pn.widgets.Button(label="Copy CLI command", color="light",
                                       css_classes=["cli-copy"])
        self._copy.js_on_click(args={"text": self._text}, code=(
            "navigator.clipboard && navigator.clipboard.writeText(text.value);"))
        self.refresh()
        self._layout = pn.Column(self._copy, self._text, self._note,
                                 sizing_mode="stretch_width")

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    def refresh(self, *_events: Any) -> None:
        """Regenerate the command from the current settings."""
        try:
            settings = self._settings_fn()
            self.command = evaluate_command(settings)
        except Exception as exc:  # an impossible combination is shown elsewhere
            self.command = f"# no command: {exc}"
            return
        self._text.value = self.command
        self._note.object = (
            f"Save *Export settings (JSON)* as `{SETTINGS_FILE}` next to where you run it "
            "(the curve is a measured table or a drawn curve)."
            if "--config" in self.command else "")
