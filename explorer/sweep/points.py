"""Grid points: the full configuration of each (:func:`cell_config`), its plain-data record
(:func:`config_record`), its seed and key, and :class:`SweepSpec` (what to sweep)."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import param

from explorer.crossbar import CrossbarConfig
from explorer.device import DeviceModel
from explorer.errors import InputError
from explorer.evaluate import MAX_TRIALS
from explorer.settings.cost import CostSettings
from explorer.sweep.grid import CONFIG_PARAMETERS, DEVICE_PARAMETERS, _parameter, make_grid


def _values_of(obj: param.Parameterized) -> dict[str, Any]:
    return {k: (v.copy() if isinstance(v, np.ndarray) else v)
            for k, v in obj.param.values().items() if k != "name"}


def cell_config(base: CrossbarConfig, values: Mapping[str, Any],
                device_overrides: Mapping[str, Any] | None = None) -> CrossbarConfig:
    """``base`` with a grid point's ``values`` applied (a new config; ``base`` unchanged).

    A swept ``preset`` replaces the device by the preset's (``device_overrides``, e.g.
    the ``--levels`` given on the command line, and swept device values applied on top);
    other device values change a copy of the base device. Raises ValueError/InputError
    for impossible values or combinations.
    """
    dev_values = {k: v for k, v in values.items() if k in DEVICE_PARAMETERS}
    cfg_values = {k: v for k, v in values.items() if k in CONFIG_PARAMETERS}
    unknown = set(values) - set(dev_values) - set(cfg_values)
    if unknown:
        _parameter(sorted(unknown)[0])
    preset = dev_values.pop("preset", None)
    if preset is not None:
        device = DeviceModel.from_preset(preset, **{**dict(device_overrides or {}), **dev_values})
    else:
        device = DeviceModel(**{**_values_of(base.device), **dev_values})
    own = {k: v for k, v in _values_of(base).items() if k != "device"}
    cfg = CrossbarConfig(device=device, **{**own, **cfg_values})
    cfg.validate()
    return cfg


def config_record(cfg: CrossbarConfig) -> dict[str, Any]:
    """Flat plain-data description of a configuration and its device (no seed), the
    columns of a sweep row; a measured table or drawn curve is named by its digest."""
    summary = cfg.summary()
    device = summary.pop("device")
    summary.pop("seed", None)
    record = {**summary, **device}
    dev = cfg.device
    if dev.source == "table":
        record["device_table"] = _digest([np.asarray(dev.table, np.float64).tobytes()])[:16]
    elif dev.source == "points":
        record["device_table"] = _digest([np.asarray(dev.points_pulses, np.float64).tobytes(),
                                          np.asarray(dev.points_g, np.float64).tobytes()])[:16]
    return {k: (float(v) if isinstance(v, (float, np.floating)) else
                int(v) if isinstance(v, np.integer) else v) for k, v in record.items()}


def _digest(chunks: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def cell_seed(cfg: CrossbarConfig, base_seed: int = 0) -> int:
    """The seed of a grid point: a hash of its full configuration and ``base_seed``,
    in [0, 2**63 − 1] (independent of worker, order and of which parameters are swept)."""
    return _seed_of(config_record(cfg), base_seed)


def _seed_of(record: dict[str, Any], base_seed: int) -> int:
    # the cost settings (node, ADC type …) change no random draw: not part of the seed
    record = {k: v for k, v in record.items() if k not in CostSettings.knobs()}
    digest = hashlib.sha256(_canonical({"config": record, "seed": int(base_seed)})).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@dataclass(frozen=True)
class GridPoint:
    """One grid point: its swept values, seed, key (file name of its finished rows)."""

    index: int
    values: dict[str, Any]
    seed: int
    key: str


class SweepSpec(param.Parameterized):
    """What to sweep: a base configuration, a grid over some of its parameters, trials."""

    base = param.ClassSelector(
        class_=CrossbarConfig, default=None, instantiate=False, label="Base configuration",
        doc="Values of every parameter the grid does not vary (its seed is not used).")
    grid = param.Dict(
        default={}, label="Grid", doc="{name: [values]} from make_grid(); the grid points are "
        "all combinations, the first name varying slowest.")
    trials = param.Integer(
        default=1, bounds=(1, MAX_TRIALS), label="Trials",
        doc="Monte-Carlo trials per grid point (a new programming draw each), one row each.")
    seed = param.Integer(
        default=0, bounds=(0, 2**63 - 1), label="Base seed",
        doc="Mixed into every grid point's seed; change it for an independent repetition.")
    device_overrides = param.Dict(
        default={}, label="Device overrides",
        doc="Device values applied on top of a swept preset (e.g. the command line's --levels).")

    def __init__(self, **params: Any) -> None:
        if params.get("base") is None:
            params["base"] = CrossbarConfig()
        super().__init__(**params)
        self.grid = make_grid(self.grid)

    def cells(self, workload_digest: str = "") -> list[GridPoint]:
        """Every grid point, validated (the first impossible one raises InputError), with
        its seed and key. The key (the file name of its finished rows) hashes the full
        configuration, seed, trials and ``workload_digest`` (:meth:`SweepData.digest`)."""
        names = list(self.grid)
        out = []
        for index, combo in enumerate(itertools.product(*(self.grid[n] for n in names))):
            values = dict(zip(names, combo, strict=True))
            record = config_record(self.config(values))
            seed = _seed_of(record, self.seed)
            key = _digest([_canonical({"config": record, "seed": seed, "trials": self.trials,
                                       "workload": workload_digest})])[:24]
            out.append(GridPoint(index, values, seed, key))
        return out

    def config(self, values: Mapping[str, Any]) -> CrossbarConfig:
        """The full configuration of a grid point (InputError naming it when impossible)."""
        try:
            return cell_config(self.base, values, self.device_overrides)
        except (ValueError, TypeError) as exc:
            point = ", ".join(f"{k}={v!r}" for k, v in values.items())
            raise InputError(f"grid point {point}: {exc}") from None


