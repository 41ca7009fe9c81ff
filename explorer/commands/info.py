"""``explorer info``: the settings (every knob with its section, default, allowed values and
doc, from the declarations), device presets, models, datasets and library versions."""

from __future__ import annotations

import argparse
import platform
from importlib import metadata
from typing import Any

from explorer import __version__
from explorer.cli import print_json

NAME = "info"
HELP = ("List the settings (knobs, defaults, ranges), device presets, models, datasets and "
        "versions.")

_PACKAGES = ("torch", "torchvision", "numpy", "param", "panel", "holoviews", "bokeh")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print as JSON")


def settings_table() -> dict[str, dict[str, Any]]:
    """Every knob of the settings by section: default, allowed values, unit-bearing doc."""
    from explorer.device import DeviceModel
    from explorer.settings import parts
    from explorer.settings.base import allowed
    from explorer.settings.options import DEVICE_OPTIONS

    table: dict[str, dict[str, Any]] = {"device": {}}
    for name in DEVICE_OPTIONS:
        p = DeviceModel.param[name]
        table["device"][name] = {"default": p.default, "allowed": allowed(p), "doc": p.doc}
    for part in parts():
        section = table.setdefault(part.section, {})
        for name in part.knobs():
            p = part.param[name]
            section[name] = {"default": p.default, "allowed": allowed(p), "doc": p.doc}
    return table


def collect() -> dict[str, Any]:
    """Everything ``explorer info`` reports, as plain data."""
    from explorer.data import DATASETS
    from explorer.device import PRESETS
    from explorer.models import MODELS, PRETRAINED
    from explorer.paths import assets_dir

    versions = {"explorer": __version__, "python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "settings": settings_table(),
        "presets": {name: dict(values) for name, values in PRESETS.items()},
        "models": {name: spec.description for name, spec in MODELS.items()},
        "pretrained": {name: {"architecture": arch,
                              "available": (assets_dir() / filename).is_file()}
                       for name, (arch, filename) in PRETRAINED.items()},
        "datasets": dict(DATASETS),
        "versions": versions,
    }


def run(args: argparse.Namespace) -> int:
    info = collect()
    if args.json:
        print_json(info)
        return 0
    print("Settings (explorer config prints them as a file; options --name-with-dashes):")
    for section, knobs in info["settings"].items():
        print(f"  [{section}]")
        for name, item in knobs.items():
            print(f"    {name:20s} default {item['default']!s:14s} {item['allowed']}")
    print("Device presets:")
    for name, values in info["presets"].items():
        print(f"  {name:12s} " + ", ".join(f"{k}={v}" for k, v in values.items()
                                           if not isinstance(v, (dict, list))))
    print("Models:")
    for name, text in info["models"].items():
        print(f"  {name:12s} {text}")
    print("Pretrained weights:")
    for name, item in info["pretrained"].items():
        state = "available" if item["available"] else "not in assets/"
        print(f"  {name:18s} {item['architecture']:10s} {state}")
    print("Datasets:")
    for name, text in info["datasets"].items():
        print(f"  {name:16s} {text}")
    print("Versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    return 0
