"""Command-line options generated from the settings declarations.

Every knob of a part becomes ``--knob-name`` (dest ``knob_name``) with its Param doc and
default as help, its selector choices, and its bounds checked with a one-line message
naming the option and the allowed values. Every option defaults to None ("not typed"),
so a command can layer: declared defaults < a checkpoint's hardware < ``--config FILE``
< typed options (:func:`settings_from_args`). No torch is imported here.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import param

from explorer.errors import InputError
from explorer.settings.base import Part, checked_value
from explorer.settings.crossbar import CROSSBAR_PARTS, CrossbarConfig
from explorer.settings.document import DEVICE_ARRAYS, DEVICE_KEYS, Settings
from explorer.settings.workload import WorkloadSettings

NONE_WORDS = ("ideal", "none", "all")
"""What ``--adc-bits ideal`` / ``--limit all`` parse to: None (ideal, all) in the settings."""
DEVICE_OPTIONS = tuple(k for k in DEVICE_KEYS if k not in (*DEVICE_ARRAYS, "source", "preset"))
"""DeviceModel knobs with an option (``--levels``, ``--g-min`` …); ``--preset`` and
``--device-csv`` choose the curve itself."""


class _NoneValue:
    """Typed on the command line as ``ideal``/``none``/``all``: None in the settings (kept
    apart from None, which means the option was not given)."""

    def __repr__(self) -> str:
        return "NONE"


NONE = _NoneValue()


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _parser_type(name: str, p: param.Parameter) -> Any:
    """argparse ``type`` for one knob: text → typed value (bounds checked later)."""
    def parse(text: str) -> Any:
        word = text.strip().lower()
        if p.allow_None and word in NONE_WORDS:
            return NONE
        try:
            if isinstance(p, param.Integer):
                return int(text)
            if isinstance(p, param.Number):
                return float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {_allowed_words(p)}") from None
        return text
    parse.__name__ = f"{name} value"
    return parse


def _selector_type(p: param.Selector) -> Any:
    """argparse ``type`` of a selector: the choice whose text is typed (so selectors of
    numbers, e.g. ``--tech-node 22``, get the number)."""
    def parse(text: str) -> Any:
        for choice in p.objects:
            if str(choice) == text:
                return choice
        return text
    return parse


def _allowed_words(p: param.Parameter) -> str:
    from explorer.settings.base import allowed

    return allowed(p, none_word="'ideal'/'none'")


def add_part_arguments(parser: argparse.ArgumentParser, part: type[Part],
                       skip: Sequence[str] = ()) -> None:
    """One option per knob of ``part`` (an argument group named after its section)."""
    group = parser.add_argument_group(part.section)
    for name in part.knobs():
        if name in skip:
            continue
        p = part.param[name]
        doc = (p.doc or "").strip().rstrip(".")
        help_text = f"{doc} (default {_show(p.default)})".replace("%", "%%")
        if isinstance(p, param.Boolean):
            group.add_argument(_flag(name), dest=name, default=None,
                               action=argparse.BooleanOptionalAction, help=help_text)
        elif isinstance(p, param.Selector):
            group.add_argument(_flag(name), dest=name, default=None, choices=list(p.objects),
                               type=_selector_type(p), help=help_text)
        else:
            metavar = "N" if isinstance(p, param.Integer) else \
                "X" if isinstance(p, param.Number) else "TEXT"
            group.add_argument(_flag(name), dest=name, default=None, metavar=metavar,
                               type=_parser_type(name, p), help=help_text)


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """``--preset``, ``--device-csv`` and one option per scalar DeviceModel knob."""
    from explorer.device import PRESETS, DeviceModel

    group = parser.add_argument_group("device")
    group.add_argument("--preset", default=None, choices=list(PRESETS),
                       help="device preset (NeuroSim's device set); typed device options "
                            "change it")
    group.add_argument("--device-csv", default=None, metavar="PATH",
                       help="measured conductances (CSV with a 'conductance', "
                            "'conductance_uS' or 'resistance_ohm' column)")
    for name in DEVICE_OPTIONS:
        p = DeviceModel.param[name]
        doc = (p.doc or "").strip().rstrip(".")
        group.add_argument(_flag(name), dest=name, default=None,
                           metavar="N" if isinstance(p, param.Integer) else "X",
                           type=_parser_type(name, p),
                           help=f"{doc} (default {_show(p.default)})".replace("%", "%%"))


def add_settings_arguments(parser: argparse.ArgumentParser, workload: bool = True,
                           config_file: bool = True,
                           skip: Sequence[str] = ()) -> None:
    """The device, crossbar and (``workload``) workload options, and ``--config FILE``."""
    if config_file:
        parser.add_argument("--config", default=None, metavar="FILE",
                            help="settings file (JSON, e.g. exported from the dashboard or "
                                 "printed by `explorer config`); typed options override it")
    add_device_arguments(parser)
    for part in CROSSBAR_PARTS:
        add_part_arguments(parser, part, skip)
    if workload:
        add_part_arguments(parser, WorkloadSettings, skip)


def _typed(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    return {name: getattr(args, name) for name in names
            if getattr(args, name, None) is not None}


def typed_options(args: argparse.Namespace) -> list[str]:
    """The device and crossbar options given on the command line, as flags
    (``--adc-bits`` …): what overrides a checkpoint's hardware."""
    names = ("preset", "device_csv", *DEVICE_OPTIONS,
             *(n for part in CROSSBAR_PARTS for n in part.knobs()))
    return [_flag(name) for name in names if getattr(args, name, None) is not None]


def _checked(owner: type[param.Parameterized], values: dict[str, Any]) -> dict[str, Any]:
    return {name: checked_value(_flag(name), owner.param[name],
                                None if value is NONE else value, none_word="'ideal'")
            for name, value in values.items()}


def device_from_args(args: argparse.Namespace, base: Any = None,
                     default_preset: str | None = None) -> Any:
    """The DeviceModel the device options describe, on top of ``base`` (a DeviceModel,
    e.g. a checkpoint's or a settings file's); without ``base`` the preset
    ``default_preset``, else the declared default device.

    ``--device-csv`` alone defines the device; ``--preset`` starts from the preset.
    """
    from explorer.device import DeviceModel
    from explorer.settings.document import device_from_dict, device_to_dict

    typed = _checked(DeviceModel, _typed(args, DEVICE_OPTIONS))
    csv = getattr(args, "device_csv", None)
    preset = getattr(args, "preset", None)
    if csv is not None:
        given = (["--preset"] if preset else []) + [_flag(name) for name in typed]
        if given:
            raise InputError(f"--device-csv: the measured table defines the levels and the "
                             f"curve; do not combine it with {', '.join(given)}")
        return DeviceModel.from_csv(csv)
    if preset is None and base is None and default_preset is not None:
        preset = default_preset
    if preset is not None:
        levels = typed.pop("levels", None)
        return DeviceModel.from_preset(preset, levels=levels, **typed)
    if base is None:
        return DeviceModel(**typed)
    if not typed:
        return base
    spec = device_to_dict(base)
    if spec["source"] == "table" and typed:
        raise InputError(f"{', '.join(_flag(n) for n in typed)}: the device is a measured "
                         "table, which defines its levels and range; give --preset or "
                         "--device-csv to change the device")
    return device_from_dict({**spec, **typed})


def settings_from_args(args: argparse.Namespace, base: Settings | None = None,
                       default_preset: str | None = None) -> Settings:
    """The settings the options describe: ``base`` (default: the declared defaults), then
    ``--config FILE`` on top, then every typed option. Errors name the option or key."""
    settings = base.copy() if base is not None else Settings()
    config = getattr(args, "config", None)
    if config is not None:
        settings = Settings.from_dict(read_config(config), base=settings)
    device_base = settings.crossbar.device if (base is not None or config is not None) \
        else None
    device = device_from_args(args, base=device_base, default_preset=default_preset)
    cfg_values = _checked(CrossbarConfig, _typed(args, [n for part in CROSSBAR_PARTS
                                                        for n in part.knobs()]))
    work_values = _checked(WorkloadSettings, _typed(args, WorkloadSettings.knobs()))
    crossbar = settings.crossbar
    values = {k: v for k, v in crossbar.param.values().items() if k not in ("name", "device")}
    cfg = CrossbarConfig(device=device, **{**values, **cfg_values})
    cfg.validate()
    workload = WorkloadSettings(**{**{k: v for k, v in settings.workload.param.values().items()
                                      if k != "name"}, **work_values})
    return Settings(crossbar=cfg, workload=workload)


def read_config(path: str) -> dict[str, Any]:
    """The (migrated) plain data of a ``--config`` settings file; InputError if unreadable."""
    import json
    from pathlib import Path

    from explorer.settings.document import MAX_SETTINGS_BYTES, migrate

    file = Path(path)
    if not file.is_file():
        raise InputError(f"--config: settings file {path!r} does not exist")
    size = file.stat().st_size
    if size == 0 or size > MAX_SETTINGS_BYTES:
        raise InputError(f"--config: settings file {file.name!r} has {size:,} bytes; expected "
                         f"1 … {MAX_SETTINGS_BYTES:,}")
    try:
        return migrate(json.loads(file.read_bytes()))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"--config: {file.name!r} is not valid JSON ({exc})") from None
