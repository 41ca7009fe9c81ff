"""Design-space sweeps: a grid over crossbar and device parameters × Monte-Carlo trials.

A sweep is a :class:`SweepSpec`: a base :class:`~explorer.crossbar.CrossbarConfig`, a grid
``{name: [values]}`` over any of :func:`sweep_parameters` (every ``CrossbarConfig``
parameter but ``seed``, and the device's ``preset``, ``levels``, ``nonlinearity``,
``g_min``, ``g_max``), a number of trials and a base seed. Each grid point (*cell*) is
one :func:`explorer.evaluate.evaluate` call with ``trials`` Monte-Carlo trials and gives
one table row per trial.

* Validation first: names, types and Param bounds of every value, then every cell's full
  configuration (combinations such as g_min ≥ g_max), before any work starts.
* Seeds come from the grid point: a cell's seed is a hash of its full configuration (and
  the base seed), so its numbers do not depend on which worker runs it, in which order,
  or on which other parameters are swept. Trial ``t`` of a cell uses
  ``trial_seed(seed, t)`` exactly as ``explorer evaluate --seed SEED --trials T`` does.
* Resumable: with an output folder, every finished cell's rows are written atomically
  (temporary file + rename) to ``cells/<key>.json``; a rerun with the same output skips
  the cells whose file exists. The key hashes the configuration, seed, trials, network
  weights and images, so changed inputs are recomputed, never mixed up.
* Execution: in this process (:func:`run_sweep` without a client: the dashboard's job
  worker, tests) or on Dask distributed (``client=``; see :func:`connect`), each worker
  with one torch thread. The network and images travel once, as one Dask task the cells
  depend on (recomputed by Dask if the worker holding it dies).

Table columns (:data:`RESULT_COLUMNS` first, then every setting of the configuration):
``cell`` (key), ``trial``, ``seed``, the swept parameters, ``accuracy``,
``float_accuracy``, the counters ``tiles``, ``cells``, ``adc_conversions``, ``dac_cycles``
(per image), ``seconds`` (wall time of the cell's evaluation, all its trials), ``worker``
(host:pid), ``model``, ``data``, ``images``, ``trials``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import param
import torch
from torch import Tensor, nn

from explorer.crossbar import CrossbarConfig
from explorer.device import PRESETS, DeviceModel
from explorer.errors import InputError
from explorer.evaluate import DEFAULT_BATCH_SIZE, MAX_TRIALS, Cancelled, evaluate

ProgressCallback = Callable[[float, str], None]

DEVICE_PARAMETERS = ("preset", "levels", "nonlinearity", "g_min", "g_max")
"""Device parameters a sweep may vary (``preset`` replaces the whole device)."""
CONFIG_PARAMETERS = tuple(
    name for name in CrossbarConfig.param if name not in ("name", "device", "seed"))
"""CrossbarConfig parameters a sweep may vary (the seed comes from the grid point)."""
MAX_CELLS = 20_000
"""Largest grid accepted (grid points, before trials); split bigger sweeps."""
MAX_GRID_FILE_BYTES = 1_000_000
COUNTER_COLUMNS = ("tiles", "cells", "adc_conversions", "dac_cycles")
RESULT_COLUMNS = ("cell", "trial", "seed")
MEASURED_COLUMNS = ("accuracy", "float_accuracy", *COUNTER_COLUMNS, "seconds", "worker")
WORKLOAD_COLUMNS = ("model", "data", "images", "trials")
_IDEAL = ("ideal", "none", "null")
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def sweep_parameters() -> list[str]:
    """Names a sweep may vary: the CrossbarConfig parameters (but ``seed``), then the
    device's (``preset``, ``levels``, ``nonlinearity``, ``g_min``, ``g_max``)."""
    return [*CONFIG_PARAMETERS, *DEVICE_PARAMETERS]


# --------------------------------------------------------------------------------------
# Values: parsing and checking
# --------------------------------------------------------------------------------------
def _parameter(name: str) -> param.Parameter:
    if name in CONFIG_PARAMETERS:
        return CrossbarConfig.param[name]
    if name in DEVICE_PARAMETERS and name != "preset":
        return DeviceModel.param[name]
    if name == "preset":
        return param.Selector(objects=list(PRESETS))
    raise InputError(f"sweep: unknown parameter {name!r}; valid names: "
                     f"{', '.join(sweep_parameters())}")


def _bad(name: str, raw: Any, allowed: str) -> InputError:
    return InputError(f"{name}: {raw!r} is not {allowed}")


def parse_value(name: str, raw: Any) -> Any:
    """The typed value of parameter ``name`` from text (``--set``) or a YAML/JSON scalar.

    Integers for Integer parameters (``ideal``/``none`` for None where allowed, e.g.
    ``adc_bits``), finite floats for Number parameters, ``true``/``false`` for Booleans,
    one of the choices for selectors. Raises :class:`InputError` naming the parameter.
    Bounds are checked by :func:`check_value`.
    """
    p = _parameter(name)
    text = raw.strip() if isinstance(raw, str) else raw
    if isinstance(text, str) and not text:
        raise InputError(f"{name}: empty value")
    if isinstance(p, param.Boolean):
        if isinstance(text, bool):
            return text
        if isinstance(text, str) and text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise _bad(name, raw, "true or false")
    if isinstance(p, param.Selector):
        choices = list(p.objects)
        if isinstance(text, str) and text in choices:
            return text
        raise _bad(name, raw, f"one of {choices}")
    if isinstance(p, param.Integer):
        if text is None or (isinstance(text, str) and text.lower() in _IDEAL):
            if p.allow_None:
                return None
            raise _bad(name, raw, "an integer (this parameter has no 'ideal' setting)")
        if isinstance(text, bool):
            raise _bad(name, raw, "an integer")
        if isinstance(text, str):
            try:
                return int(text)
            except ValueError:
                raise _bad(name, raw, "an integer" + (" or 'ideal'" if p.allow_None else "")
                           ) from None
        if isinstance(text, (int, np.integer)):
            return int(text)
        if isinstance(text, float) and text.is_integer():
            return int(text)
        raise _bad(name, raw, "an integer")
    if isinstance(p, param.Number):
        if isinstance(text, bool) or text is None:
            raise _bad(name, raw, "a number")
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise _bad(name, raw, "a number") from None
        if not math.isfinite(value):
            raise _bad(name, raw, "a finite number")
        return value
    raise InputError(f"{name}: cannot be swept")  # pragma: no cover - all kinds handled above


def check_value(name: str, value: Any) -> None:
    """Check one value against its Param bounds (the error names the parameter and range)."""
    try:
        if name in CONFIG_PARAMETERS:
            CrossbarConfig(**{name: value})
        elif name == "g_min" and isinstance(value, float) and value > 0:
            DeviceModel(g_min=value, g_max=2 * value)  # bounds of g_min alone
        elif name == "g_max" and isinstance(value, float) and value > 0:
            DeviceModel(g_min=value / 2, g_max=value)
        elif name != "preset":
            DeviceModel(**{name: value})
    except InputError:
        raise
    except (ValueError, TypeError) as exc:
        raise InputError(f"{name}={value!r}: {exc}") from None


def parse_set_option(text: str) -> tuple[str, list[Any]]:
    """``"name=v1,v2,…"`` (a ``--set`` option) as ``(name, [typed values])``, checked."""
    name, sep, values = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not name:
        raise InputError(f"--set: expected NAME=V1,V2,… (e.g. levels=4,8,16), got {text!r}")
    _parameter(name)
    items = values.split(",")
    if not any(item.strip() for item in items):
        raise InputError(f"--set {name}: no values given; expected {name}=V1,V2,…")
    return name, [parse_value(name, item) for item in items]


def make_grid(axes: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> dict[str, list[Any]]:
    """A validated grid ``{name: [distinct typed values]}`` from names and value lists.

    Unknown names, repeated names, empty or repeated values, wrong types and
    out-of-bounds values raise :class:`InputError` naming the parameter.
    """
    pairs = list(axes.items()) if isinstance(axes, Mapping) else list(axes)
    grid: dict[str, list[Any]] = {}
    for raw_name, raw_values in pairs:
        if not isinstance(raw_name, str):
            raise InputError(f"sweep: parameter names must be text, got {raw_name!r}")
        name = raw_name.strip().replace("-", "_")
        _parameter(name)
        if name in grid:
            raise InputError(f"sweep: parameter {name!r} is given twice")
        if isinstance(raw_values, (list, tuple)):
            values = [v if isinstance(v, str) or v is None or isinstance(v, (bool, int, float))
                      else _not_scalar(name, v) for v in raw_values]
        elif raw_values is None or isinstance(raw_values, (str, bool, int, float)):
            values = [raw_values]
        else:
            raise InputError(f"{name}: expected a list of values, got {type(raw_values).__name__}")
        if not values:
            raise InputError(f"{name}: no values given")
        typed = [parse_value(name, v) for v in values]
        for value in typed:
            check_value(name, value)
        seen = [json.dumps(v) for v in typed]
        if len(set(seen)) != len(seen):
            raise InputError(f"{name}: values repeat ({typed}); give each value once")
        grid[name] = typed
    if not grid:
        raise InputError("sweep: no parameter to sweep; give --set NAME=V1,V2,… or --grid FILE")
    cells = math.prod(len(v) for v in grid.values())
    if cells > MAX_CELLS:
        raise InputError(f"sweep: the grid has {cells:,} points; at most {MAX_CELLS:,} are "
                         "accepted per sweep (split it into several sweeps)")
    return grid


def _not_scalar(name: str, value: Any) -> Any:
    raise InputError(f"{name}: {value!r} is not a single value (number, text, true/false)")


def read_grid_file(path: str | Path) -> dict[str, list[Any]]:
    """A grid from a YAML or JSON file: a mapping ``name: [values]`` (a scalar is one value).

    Parsed as data only (``yaml.safe_load`` / ``json``); at most 1 MB, UTF-8.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(f"grid file: {str(path)!r} does not exist")
    size = path.stat().st_size
    if size > MAX_GRID_FILE_BYTES:
        raise InputError(f"grid file: {path.name!r} has {size:,} bytes; at most 1 MB "
                         f"({MAX_GRID_FILE_BYTES:,} bytes) is accepted")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"grid file: {path.name!r} is not UTF-8 text (invalid byte at offset "
                         f"{exc.start})") from None
    if not text.strip():
        raise InputError(f"grid file: {path.name!r} is empty; expected a mapping such as "
                         "'levels: [4, 8, 16]'")
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"grid file: {path.name!r} is not valid "
                         f"{'JSON' if path.suffix.lower() == '.json' else 'YAML'} ({first})"
                         ) from None
    if not isinstance(data, dict):
        raise InputError(f"grid file: {path.name!r} must hold a mapping of parameter names to "
                         f"value lists, e.g. 'levels: [4, 8, 16]'; got {type(data).__name__}")
    return make_grid(data)


# --------------------------------------------------------------------------------------
# Configurations of the grid points, seeds and keys
# --------------------------------------------------------------------------------------
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
    digest = hashlib.sha256(_canonical({"config": record, "seed": int(base_seed)})).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@dataclass(frozen=True)
class Cell:
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

    def cells(self, workload_digest: str = "") -> list[Cell]:
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
            out.append(Cell(index, values, seed, key))
        return out

    def config(self, values: Mapping[str, Any]) -> CrossbarConfig:
        """The full configuration of a grid point (InputError naming it when impossible)."""
        try:
            return cell_config(self.base, values, self.device_overrides)
        except (ValueError, TypeError) as exc:
            point = ", ".join(f"{k}={v!r}" for k, v in values.items())
            raise InputError(f"grid point {point}: {exc}") from None


# --------------------------------------------------------------------------------------
# Network and images
# --------------------------------------------------------------------------------------
@dataclass
class SweepData:
    """The network and the images every grid point is evaluated on."""

    model: nn.Module
    images: Tensor
    labels: Tensor
    calibration: Tensor
    model_name: str
    data_name: str
    calibration_source: str
    batch_size: int = DEFAULT_BATCH_SIZE
    analog_builder: Any = None
    """How a grid point's crossbar is built (None: ``to_crossbar``; a checkpoint's learned
    settings: :class:`explorer.deploy.CheckpointBuilder`)."""
    _digest: str = field(default="", repr=False)

    def digest(self) -> str:
        """sha256 of the weights, images, labels and calibration images (hex), and of the
        checkpoint's learned settings when they are used."""
        if not self._digest:
            tensors = [t.detach().cpu().contiguous() for t in self.model.state_dict().values()]
            tensors += [self.images.cpu().contiguous(), self.labels.cpu().contiguous(),
                        self.calibration.cpu().contiguous()]
            chunks = [t.numpy().tobytes() for t in tensors]
            if self.analog_builder is not None:
                chunks.append(self.analog_builder.fingerprint().encode())
            self._digest = _digest(chunks)
        return self._digest


def load_sweep_data(model: str = "lenet5-mnist", data: str | None = None,
                    limit: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                    download: bool = True, learned_settings: bool = False,
                    workload: Any = None, allow_code: bool = False) -> SweepData:
    """Load a trained network and its test images, as ``explorer evaluate`` does
    (:func:`explorer.workload.load_workload`: calibration on the training split).

    ``data`` defaults to the network's dataset. ``workload``: a
    :class:`~explorer.settings.WorkloadSettings` whose other knobs (weights, input size,
    mean/std, split fraction, calibration images) apply; ``allow_code``: a
    ``FILE.py:FUNCTION`` model may run. ``learned_settings``: a checkpoint's codebooks and
    learned DAC/ADC ranges are applied on every grid point, as ``explorer evaluate`` does
    (:class:`explorer.deploy.CheckpointBuilder`). Bad names, checkpoints or limits raise
    :class:`InputError`.
    """
    from explorer.deploy import checkpoint_settings
    from explorer.settings import WorkloadSettings
    from explorer.workload import load_workload

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size: must be an integer >= 1, got {batch_size!r}")
    values = {} if workload is None else \
        {k: v for k, v in workload.param.values().items() if k != "name"}
    work = WorkloadSettings(**{**values, "model": model, "data": data or "", "limit": limit})
    loaded = load_workload(work, download=download, allow_code=allow_code)
    builder = checkpoint_settings(loaded.checkpoint) if learned_settings else None
    if builder is not None:
        builder.check(loaded.model)  # before any grid point runs
    return SweepData(loaded.model, loaded.images, loaded.labels, loaded.calibration, model,
                     loaded.data_name, loaded.calibration_source, batch_size, builder)


# --------------------------------------------------------------------------------------
# One grid point (runs on a worker)
# --------------------------------------------------------------------------------------
def evaluate_cell(spec_values: dict[str, Any], data: SweepData,
                  torch_threads: int | None = None,
                  cancel: threading.Event | None = None) -> list[dict[str, Any]]:
    """Evaluate one grid point: its rows (one per trial). ``spec_values`` holds ``base``,
    ``values``, ``device_overrides``, ``seed``, ``key``, ``trials``, ``swept`` (names).

    ``torch_threads``: set torch's intra-op threads first (Dask workers use 1).
    """
    if torch_threads is not None and torch.get_num_threads() != torch_threads:
        torch.set_num_threads(torch_threads)
    values = spec_values["values"]
    cfg = cell_config(spec_values["base"], values, spec_values["device_overrides"])
    cfg.seed = spec_values["seed"]
    result = evaluate(data.model, (data.images, data.labels), cfg, trials=spec_values["trials"],
                      batch_size=data.batch_size, calibration=data.calibration, cancel=cancel,
                      analog_builder=data.analog_builder)
    total = result.counters["total"]
    record = config_record(cfg)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    rows = []
    for trial, accuracy in enumerate(result.accuracies):
        row: dict[str, Any] = {"cell": spec_values["key"], "trial": trial, "seed": cfg.seed}
        row.update({name: values[name] for name in spec_values["swept"]})
        row.update(accuracy=accuracy, float_accuracy=result.float_accuracy,
                   **{k: int(total[k]) for k in COUNTER_COLUMNS}, seconds=result.seconds,
                   worker=worker, model=data.model_name, data=data.data_name,
                   images=result.images, trials=result.trials)
        row.update({k: v for k, v in record.items() if k not in row})
        rows.append(row)
    return rows


def _return(data: SweepData) -> SweepData:
    """Identity: a Dask task whose result is the network and images (see run_sweep)."""
    return data


# --------------------------------------------------------------------------------------
# Output folder: finished cells, table, atomic writes
# --------------------------------------------------------------------------------------
def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` through a temporary file in the same folder and a rename: readers see
    the old file or the whole new one, never half of it (also after a crash)."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-{threading.get_ident()}.tmp{path.suffix}")
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class SweepStore:
    """A sweep's output folder: ``cells/<key>.json`` per finished grid point,
    ``results.csv`` and ``results.parquet`` (the tidy table), ``sweep.json`` (the spec)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise InputError(f"--out: {str(self.folder)!r} exists and is not a folder")
        self.cells_dir = self.folder / "cells"

    def create(self) -> None:
        """Create the folder (nothing is written before the sweep is validated)."""
        self.cells_dir.mkdir(parents=True, exist_ok=True)

    def finished(self, cells: Sequence[Cell]) -> dict[str, list[dict[str, Any]]]:
        """Rows of the cells already done, by key (unreadable files count as not done)."""
        done = {}
        for cell in cells:
            path = self.cells_dir / f"{cell.key}.json"
            if path.is_file():
                try:
                    rows = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue
                if isinstance(rows, list) and rows and all(r.get("cell") == cell.key
                                                          for r in rows):
                    done[cell.key] = rows
        return done

    def write_cell(self, key: str, rows: list[dict[str, Any]]) -> None:
        atomic_write(self.cells_dir / f"{key}.json",
                     lambda p: p.write_text(json.dumps(rows), encoding="utf-8"))

    def write_table(self, table: Any) -> None:
        atomic_write(self.folder / "results.csv", lambda p: table.to_csv(p, index=False))
        atomic_write(self.folder / "results.parquet",
                     lambda p: table.to_parquet(p, index=False, engine="pyarrow"))

    def write_spec(self, spec: dict[str, Any]) -> None:
        atomic_write(self.folder / "sweep.json",
                     lambda p: p.write_text(json.dumps(spec, indent=2, default=str),
                                            encoding="utf-8"))


def results_frame(rows: Iterable[dict[str, Any]], swept: Sequence[str]) -> Any:
    """The tidy table (pandas DataFrame): rows sorted by grid point and trial, the key and
    swept columns first; converter bits as nullable integers (empty = ideal)."""
    import pandas as pd

    frame = pd.DataFrame(list(rows))
    if frame.empty:
        return pd.DataFrame(columns=[*RESULT_COLUMNS, *swept, *MEASURED_COLUMNS])
    first = [*RESULT_COLUMNS, *swept, *MEASURED_COLUMNS, *WORKLOAD_COLUMNS]
    order = [c for c in first if c in frame] + [c for c in frame if c not in first]
    frame = frame[order]
    for name in ("dac_bits", "adc_bits"):
        if name in frame:
            frame[name] = frame[name].astype("Int64")
    return frame


# --------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------
@dataclass
class SweepOutcome:
    """What a sweep did: the table (all finished rows of this grid), grid points skipped
    (done before) and computed, failures by key, wall time (s), rows computed."""

    table: Any
    cells: int
    skipped: int
    computed: int
    failed: dict[str, str]
    seconds: float
    folder: Path | None = None
    rows_computed: int = 0

    @property
    def complete(self) -> bool:
        """True when every grid point has its rows."""
        return self.skipped + self.computed == self.cells

    @property
    def evaluations_per_minute(self) -> float:
        """Rows (grid point × trial) computed by this run per minute of wall time."""
        return 60.0 * self.rows_computed / self.seconds if self.seconds > 0 else 0.0


def run_sweep(spec: SweepSpec, data: SweepData, out: str | Path | None = None,
              client: Any = None, progress: ProgressCallback | None = None,
              cancel: threading.Event | None = None,
              on_rows: Callable[[list[dict[str, Any]]], None] | None = None,
              flush_seconds: float = 30.0, cells: Sequence[Cell] | None = None) -> SweepOutcome:
    """Evaluate every grid point of ``spec`` on ``data``; returns the table.

    ``out``: the output folder (resumable; None keeps everything in memory). ``client``:
    a ``distributed.Client`` (None: evaluate here, one cell after another).
    ``progress(fraction, message)`` after every cell; ``cancel`` stops before the next
    cell (in this process: within one batch) and raises
    :class:`~explorer.evaluate.Cancelled` after saving the finished rows; ``on_rows(rows)``
    receives each cell's rows as they arrive (finished ones first). A failing cell is
    recorded in ``failed`` (its rows missing: a rerun retries it); the others go on.
    ``cells``: ``spec.cells(data.digest())`` if already computed (validation is the same).
    Nothing is written before every grid point has been validated.
    """
    start = time.perf_counter()
    cells = list(cells) if cells is not None else spec.cells(data.digest())
    swept = list(spec.grid)
    store = SweepStore(out) if out is not None else None
    done: dict[str, list[dict[str, Any]]] = {}
    if store is not None:
        store.create()
        store.write_spec(_spec_record(spec, data, len(cells)))
        done = store.finished(cells)
    rows_by_key = dict(done)
    failed: dict[str, str] = {}
    todo = [c for c in cells if c.key not in done]
    if on_rows is not None and done:
        on_rows([row for c in cells if c.key in done for row in done[c.key]])
    last_flush = time.monotonic()

    def table() -> Any:
        return results_frame((row for c in cells if c.key in rows_by_key
                              for row in rows_by_key[c.key]), swept)

    def finished(key: str, rows: list[dict[str, Any]] | None, error: str = "") -> None:
        nonlocal last_flush
        if rows is None:
            failed[key] = error
        elif key not in rows_by_key:  # every cell's rows exactly once
            rows_by_key[key] = rows
            if store is not None:
                store.write_cell(key, rows)
            if on_rows is not None:
                on_rows(rows)
        if progress is not None:
            n = len(rows_by_key) + len(failed)
            progress(n / len(cells), f"{n} of {len(cells)} grid points")
        if store is not None and time.monotonic() - last_flush > flush_seconds:
            store.write_table(table())
            last_flush = time.monotonic()

    if progress is not None:
        progress(len(done) / len(cells), f"{len(done)} of {len(cells)} grid points done before")
    tasks = [{"base": spec.base, "values": c.values, "device_overrides": spec.device_overrides,
              "seed": c.seed, "key": c.key, "trials": spec.trials, "swept": swept}
             for c in todo]
    try:
        if client is None:
            _run_here(tasks, data, finished, cancel)
        else:
            _run_dask(tasks, data, client, finished, cancel)
    finally:
        frame = table()
        if store is not None:
            store.write_table(frame)
    computed = [key for key in rows_by_key if key not in done]
    return SweepOutcome(frame, len(cells), len(done), len(computed), failed,
                        time.perf_counter() - start, store.folder if store else None,
                        sum(len(rows_by_key[key]) for key in computed))


def _run_here(tasks: list[dict[str, Any]], data: SweepData,
              finished: Callable[..., None], cancel: threading.Event | None) -> None:
    for task in tasks:
        if cancel is not None and cancel.is_set():
            raise Cancelled("sweep cancelled")
        try:
            rows = evaluate_cell(task, data, cancel=cancel)
        except Cancelled:
            raise
        except Exception as exc:  # a failing grid point is recorded; the sweep goes on
            finished(task["key"], None, f"{type(exc).__name__}: {exc}")
        else:
            finished(task["key"], rows)


def _run_dask(tasks: list[dict[str, Any]], data: SweepData, client: Any,
              finished: Callable[..., None], cancel: threading.Event | None) -> None:
    import dask
    from distributed import as_completed

    if not tasks:
        return
    # the network and images: one task all cells depend on (Dask copies its result to the
    # workers that need it, and recomputes it if the worker holding it dies)
    with dask.config.set({"distributed.admin.large-graph-warning-threshold": "2GB"}):
        shared = client.submit(_return, data, pure=False)
    submitted = client.map(evaluate_cell, tasks, data=shared, torch_threads=1, pure=False)
    futures = {future: task["key"] for future, task in zip(submitted, tasks, strict=True)}
    try:
        for future in as_completed(futures, loop=client.loop):
            key = futures[future]
            if future.status == "error":
                exc = future.exception()
                finished(key, None, f"{type(exc).__name__}: {exc}")
            else:
                finished(key, future.result())
            future.release()
            if cancel is not None and cancel.is_set():
                raise Cancelled("sweep cancelled")
    finally:
        pending = [f for f in futures if not f.done()]
        if pending:
            client.cancel(pending)
        shared.release()


def _spec_record(spec: SweepSpec, data: SweepData, cells: int) -> dict[str, Any]:
    return {"grid": spec.grid, "trials": spec.trials, "seed": spec.seed, "cells": cells,
            "device_overrides": spec.device_overrides, "base": config_record(spec.base),
            "model": data.model_name, "data": data.data_name, "images": len(data.images),
            "calibration": data.calibration_source, "workload_digest": data.digest()}


# --------------------------------------------------------------------------------------
# Dask
# --------------------------------------------------------------------------------------
def _probe_scheduler(address: str, timeout: float) -> None:
    """Raise InputError unless a Dask scheduler answers at ``address`` within ``timeout`` s.

    Asks for its identity on a private event loop in a helper thread, so that a closed
    port, an unknown host or a service that is not Dask (whatever it sends back) gives
    one clear message in seconds, not a hang or a traceback."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from distributed.core import rpc

    async def identity() -> Any:
        remote = rpc(address, timeout=timeout)
        try:
            return await remote.identity()
        finally:
            await remote.close_rpc()

    def ask() -> Any:
        return asyncio.run(asyncio.wait_for(identity(), timeout))

    pool = ThreadPoolExecutor(1, thread_name_prefix="explorer-probe")
    try:
        info = pool.submit(ask).result(timeout + 5)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise InputError(f"--scheduler: cannot reach the Dask scheduler at {address} within "
                         f"{timeout:g} s ({reason[:120]}); is `dask scheduler` running there "
                         "and the port open?") from None
    finally:
        pool.shutdown(wait=False)
    if not isinstance(info, dict) or info.get("type") != "Scheduler":
        kind = info.get("type") if isinstance(info, dict) else type(info).__name__
        raise InputError(f"--scheduler: {address} answers, but is a Dask {kind}, not the "
                         "scheduler (its port is usually 8786)")


NO_MALLOC_TRIM = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"
"""Dask config key unset for our workers (see :func:`connect`); for ``dask worker`` on
other machines set it to null in a Dask config file (docs/scaling.md)."""


def default_workers() -> int:
    """Cores this process may use (one Dask worker process per core)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def connect(scheduler: str | None = None, workers: int | None = None,
            timeout: float = 3.0) -> tuple[Any, Any]:
    """A Dask ``(client, cluster)``: an existing scheduler (``tcp://HOST:8786``; cluster
    None) or a new ``LocalCluster`` of ``workers`` processes (default: one per core), one
    thread each. An unreachable scheduler raises InputError within ``timeout`` seconds."""
    import logging

    import dask
    from distributed import Client, LocalCluster

    if scheduler is not None:
        if not isinstance(scheduler, str) or "://" not in scheduler or \
                not scheduler.rsplit(":", 1)[-1].isdigit():
            raise InputError(f"--scheduler: expected an address such as tcp://HOST:8786, got "
                             f"{scheduler!r}")
        _probe_scheduler(scheduler, timeout)
        try:
            client = Client(scheduler, timeout=f"{timeout}s", set_as_default=False)
        except Exception as exc:  # it answered the probe, then went away
            raise InputError(f"--scheduler: could not connect to the Dask scheduler at "
                             f"{scheduler} ({type(exc).__name__}: {exc})") from None
        return client, None
    n = default_workers() if workers is None else workers
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 512:
        raise InputError(f"--workers: must be an integer 1 … 512, got {workers!r}")
    # Dask sets MALLOC_TRIM_THRESHOLD_ for its workers; any value turns off glibc's dynamic
    # mmap threshold, so every large torch buffer is mmapped and zero-filled anew: measured
    # here, it makes an evaluation about twice as slow. Workers start without it.
    with dask.config.set({NO_MALLOC_TRIM: None}):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
    return Client(cluster, set_as_default=False), cluster


__all__ = ["CONFIG_PARAMETERS", "DEVICE_PARAMETERS", "MAX_CELLS", "Cell", "SweepData",
           "SweepOutcome", "SweepSpec", "SweepStore", "atomic_write", "cell_config",
           "cell_seed", "check_value", "config_record", "connect", "default_workers",
           "evaluate_cell", "load_sweep_data", "make_grid", "parse_set_option", "parse_value",
           "read_grid_file", "results_frame", "run_sweep", "sweep_parameters"]
