"""The whole experiment as one object and one versioned file.

:class:`Settings` = the crossbar (:class:`~explorer.settings.crossbar.CrossbarConfig`,
device included) + the workload (:class:`~explorer.settings.workload.WorkloadSettings`).
:meth:`Settings.to_dict` / :meth:`Settings.from_dict` are the one serialisation: the
dashboard's export/import and URL, checkpoints' hardware records, sweeps, ``explorer
config`` and ``--config FILE`` all use it. The file::

    {"schema": "crossbar-explorer/settings", "version": 1,
     "device": {...}, "mapping": {...}, "converters": {...}, "noise": {...},
     "workload": {...}}

Sections are the parts' ``section`` names; a missing key keeps its default; an unknown
key is an error naming the nearest valid one. Older versions are migrated
(:data:`MIGRATIONS`): version 0 is the dashboard's export before this module (``{"device":
…, "crossbar": {flat}}``) and the flat hardware record of older checkpoints.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import param

from explorer.device import PRESETS, DeviceModel
from explorer.errors import InputError
from explorer.settings.base import (
    Part,
    checked_section,
    checked_value,
    part_values,
    plain,
    unknown_key,
)
from explorer.settings.crossbar import CROSSBAR_PARTS, CrossbarConfig
from explorer.settings.workload import WorkloadSettings

SCHEMA = "crossbar-explorer/settings"
SCHEMA_VERSION = 1
MAX_SETTINGS_BYTES = 2_000_000
DEVICE_SECTION = "device"
DEVICE_ARRAYS = ("table", "table_pulses", "points_pulses", "points_g", "level_std")
"""Device parameters that hold curves (lists of numbers in the file)."""
DEVICE_KEYS = ("source", "preset", "levels", "levels_ltd", "nonlinearity", "nonlinearity_ltd",
               "g_min", "g_max", "c2c_sigma", *DEVICE_ARRAYS)
"""Keys of the file's ``device`` section: every DeviceModel parameter but its citation
(restored from the preset)."""


def parts() -> tuple[type[Part], ...]:
    """Every settings part, in file order: the crossbar's, then the workload."""
    return (*CROSSBAR_PARTS, WorkloadSettings)


# ----------------------------------------------------------------------------- device
def device_to_dict(dev: DeviceModel) -> dict[str, Any]:
    """Plain data that rebuilds ``dev`` exactly with :func:`device_from_dict` (a measured
    table, a drawn curve and its G min/G max rescale included)."""
    return part_values(dev, DEVICE_KEYS)


def device_from_dict(data: Any, where: str = DEVICE_SECTION) -> DeviceModel:
    """The :class:`DeviceModel` of a ``device`` section; InputError names the bad key."""
    if not isinstance(data, Mapping):
        raise InputError(f"{where}: expected an object of device settings, got "
                         f"{type(data).__name__}")
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in DEVICE_KEYS:
            raise unknown_key(where, str(key), DEVICE_KEYS)
        if key in DEVICE_ARRAYS:
            values[key] = None if value is None else _numbers(f"{where}.{key}", value)
        else:
            values[key] = checked_value(f"{where}.{key}", DeviceModel.param[key], value)
    preset = values.get("preset", "")
    if preset in PRESETS:
        values["citation"] = PRESETS[preset]["source"]
    if values.get("source") == "table" and values.get("table") is not None:
        values["table"] = np.unique(values["table"])
    try:
        return DeviceModel(**values)
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise InputError(f"{where}: {str(exc).splitlines()[0]}") from None


def _numbers(where: str, value: Any) -> np.ndarray:
    if not isinstance(value, (list, tuple)) or not value:
        raise InputError(f"{where}: expected a non-empty list of numbers")
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, (int, float)) or \
                not np.isfinite(item):
            raise InputError(f"{where}[{i}]: {item!r} is not a finite number")
    return np.asarray(value, dtype=np.float64)


# ----------------------------------------------------------------------------- settings
class Settings(param.Parameterized):
    """One experiment: the crossbar hardware (device included) and the workload."""

    crossbar = param.ClassSelector(
        class_=CrossbarConfig, default=CrossbarConfig(), instantiate=True,
        label="Crossbar", doc="Device, mapping, converters and noise.")
    workload = param.ClassSelector(
        class_=WorkloadSettings, default=WorkloadSettings(), instantiate=True,
        label="Workload", doc="Network, data, images, trials, calibration.")

    # ---- file form ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The versioned plain-data form (JSON-ready) of every setting."""
        out: dict[str, Any] = {"schema": SCHEMA, "version": SCHEMA_VERSION,
                               DEVICE_SECTION: device_to_dict(self.crossbar.device)}
        for part in parts():
            owner = self.workload if part is WorkloadSettings else self.crossbar
            out[part.section] = part_values(owner, part.knobs())
        return out

    @classmethod
    def from_dict(cls, data: Any, base: Settings | None = None) -> Settings:
        """Settings from :meth:`to_dict`'s form (any older version migrated); missing keys
        keep their defaults, or ``base``'s values. Raises :class:`InputError` naming the
        first bad key; ``base`` is never changed."""
        data = migrate(data)
        sections = {part.section: part for part in parts()}
        known = ("schema", "version", DEVICE_SECTION, *sections)
        for key in data:
            if key not in known:
                raise unknown_key("settings", str(key), known)
        start = base.to_dict() if base is not None else {}
        values = {name: {**start.get(name, {}),
                         **checked_section(name, part, part.knobs(), data.get(name, {}))}
                  for name, part in sections.items()}
        if DEVICE_SECTION in data:
            device = device_from_dict(data[DEVICE_SECTION])
        else:
            device = device_from_dict(start[DEVICE_SECTION]) if base is not None \
                else DeviceModel()
        workload = values.pop(WorkloadSettings.section)
        crossbar = CrossbarConfig(device=device, **{k: v for section in values.values()
                                                    for k, v in section.items()})
        crossbar.validate()
        return cls(crossbar=crossbar, workload=WorkloadSettings(**workload))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "settings") -> Settings:
        """Settings from JSON text; not JSON, or bad values: InputError (one line)."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{where}: not valid JSON ({exc})") from None
        return cls.from_dict(data)

    @classmethod
    def from_file(cls, path: str | Path) -> Settings:
        """Settings from a JSON file (e.g. exported from the dashboard)."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"--config: settings file {str(path)!r} does not exist")
        size = path.stat().st_size
        if size == 0:
            raise InputError(f"--config: settings file {path.name!r} is empty")
        if size > MAX_SETTINGS_BYTES:
            raise InputError(f"--config: settings file {path.name!r} has {size:,} bytes; at "
                             f"most {MAX_SETTINGS_BYTES:,} are accepted")
        return cls.from_json(path.read_bytes(), where=f"--config {path.name}")

    # ---- flat names (URL, sweeps, CLI options) -----------------------------------------
    def flat(self) -> dict[str, Any]:
        """Every scalar knob by its flat name (``adc_bits``, ``levels``, ``trials`` …)."""
        record = {k: plain(v) for k, v in device_to_dict(self.crossbar.device).items()
                  if k not in DEVICE_ARRAYS}
        for part in parts():
            owner = self.workload if part is WorkloadSettings else self.crossbar
            record.update(part_values(owner, part.knobs()))
        return record

    def copy(self) -> Settings:
        """An independent copy (through the file form)."""
        return Settings.from_dict(self.to_dict())


def flat_names() -> dict[str, str]:
    """``{flat name: section}`` of every scalar knob; the names are unique (checked)."""
    names: dict[str, str] = {k: DEVICE_SECTION for k in DEVICE_KEYS if k not in DEVICE_ARRAYS}
    for part in parts():
        for name in part.knobs():
            if name in names:
                raise RuntimeError(f"settings: knob {name!r} is declared in both "
                                   f"{names[name]!r} and {part.section!r}")
            names[name] = part.section
    return names


# ----------------------------------------------------------------------------- versions
def _from_version_0(data: dict[str, Any]) -> dict[str, Any]:
    """The dashboard export ``{"device", "crossbar": {flat}}`` and the flat checkpoint
    hardware record ``{flat…, "device": {...}}`` before versioned settings."""
    flat = dict(data.get("crossbar", {})) if "crossbar" in data else \
        {k: v for k, v in data.items() if k != "device"}
    out: dict[str, Any] = {"schema": SCHEMA, "version": 1}
    if "device" in data:
        device = dict(data["device"])
        out["device"] = {k: v for k, v in device.items() if k in DEVICE_KEYS}
    sections = {name: section for name, section in flat_names().items()}
    for key, value in flat.items():
        section = sections.get(key)
        if section is None or section == DEVICE_SECTION:
            raise unknown_key("settings (version 0) crossbar", str(key),
                              [k for k, s in sections.items() if s != DEVICE_SECTION])
        out.setdefault(section, {})[key] = value
    return out


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {0: _from_version_0}
"""``{version: function}`` turning a file of that version into the next version's."""


def migrate(data: Any) -> dict[str, Any]:
    """``data`` brought to :data:`SCHEMA_VERSION` (a file without ``version`` is 0)."""
    if not isinstance(data, Mapping):
        raise InputError(f"settings: expected a JSON object, got {type(data).__name__}")
    data = dict(data)
    if "schema" in data and data["schema"] != SCHEMA:
        raise InputError(f"settings: schema {data['schema']!r} is not {SCHEMA!r}")
    version = data.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise InputError(f"settings.version: {version!r} is not a version number")
    if version > SCHEMA_VERSION:
        raise InputError(f"settings.version: {version} was written by a newer Crossbar "
                         f"Explorer (this one reads up to {SCHEMA_VERSION}); update it")
    while version < SCHEMA_VERSION:
        data = MIGRATIONS[version](data)
        version = data["version"]
    return data
