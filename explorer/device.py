"""ReRAM cell models: conductance-state curves, programmable levels, presets, non-idealities.

A cell is programmed by identical pulses p = 0 … P (P = levels − 1). The NeuroSim
nonlinear model gives (DESIGN.md §1)

    G(p) = B · (1 − exp(−p / A)) + Gmin,   B = (Gmax − Gmin) / (1 − exp(−P / A)),   A = a(NL) · P

with a(NL) solved from NeuroSim's definition of the nonlinearity label (the largest gap
between the normalised curve and the straight line, :data:`NL_GAP` · NL), which
reproduces NeuroSim's 0.01 … 9.00 table. Conventions decided here:

* NL = 0 is the linear limit G(p) = Gmin + (Gmax − Gmin) · p / P (the formula tends to it).
* Negative NL is the mirrored curve (NeuroSim's depression labels): small steps near
  Gmin, big steps near Gmax, G_NL<0(p) = Gmin + Gmax − G_|NL|(P − p).
* Below NeuroSim's table (|NL| < 0.01) the same definition gives a·NL → 1/(8·NL_GAP)
  = 1.263, smoothly towards linear. |NL| is bounded by ``NL_LIMIT`` = 9, the table's
  end (the gap is then 0.89 of the range: beyond it the curve is nearly a step and its
  top levels coincide in float64).

Other curve sources: a measured table (:meth:`DeviceModel.from_table`,
:meth:`DeviceModel.from_csv`; the table's distinct conductances *are* the levels, so
``levels`` is the number of distinct values and cannot be set separately) and a drawn
curve (:meth:`DeviceModel.from_points`, monotone PCHIP sampled at ``levels`` equally
spaced pulse numbers).

CSV format (``parse_device_csv``, in :mod:`explorer.device_csv`): UTF-8 text, a header
row, one value column named ``conductance`` (Siemens), ``conductance_uS`` (microsiemens)
or ``resistance_ohm`` (ohm, converted to 1/R), an optional ``pulse`` column (kept for
plotting), other columns ignored; comma, semicolon or tab separated; at most 1 MB and
100,000 data rows. Row numbers in messages are line numbers in the file (header = row 1).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import param

from explorer.device_csv import (  # noqa: F401  (re-exported: the CSV reader's public names)
    CSV_VALUE_COLUMNS,
    MAX_CSV_BYTES,
    MAX_CSV_ROWS,
    DeviceTable,
    parse_conductance_csv,
    parse_device_csv,
)
from explorer.errors import InputError
from explorer.paths import assets_dir

NL_LIMIT = 9.0
"""Largest |NL| accepted (parameter bounds); NeuroSim's table stops at 9.00."""
MIN_LEVELS, MAX_LEVELS = 2, 1024


# --------------------------------------------------------------------------------------
# Presets and the a(NL) table (data file in assets/)
# --------------------------------------------------------------------------------------
def _load_preset_file() -> dict[str, Any]:
    path = assets_dir() / "device_presets.json"
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


_PRESET_FILE = _load_preset_file()
PRESETS: dict[str, dict] = _PRESET_FILE["presets"]
"""Device presets by name: g_min, g_max (S), levels, nonlinearity (LTP/LTD), c2c_sigma, source."""
NL_TABLE: dict[str, Any] = _PRESET_FILE["nonlinearity_table"]
"""Check rows of NeuroSim's a(NL) table: ``nl`` and ``a`` lists (NeuroSim's printed
values) plus ``source``; :func:`a_of_nl` solves the relation instead of interpolating."""

NL_GAP = 0.07 * np.sqrt(2.0)
"""Largest vertical gap between the normalised curve and the straight line per unit NL:
NeuroSim's a(NL) table (NL 0.01 … 9.00, step 0.01) satisfies ``max_x (f(x) − x) =
NL_GAP · NL`` to its printed 6 decimals (found by fitting all 900 entries; largest
relative difference 2e-5, from the table's rounding)."""


def _curve_gap(a: np.ndarray) -> np.ndarray:
    """max over x ∈ [0, 1] of f(x) − x for the saturating curve f(x) = (1 − e^(−x/a)) /
    (1 − e^(−1/a)), in closed form (f'(x*) = 1 at x* = −a · ln(a · (1 − e^(−1/a))))."""
    den = -np.expm1(-1.0 / a)
    x_star = -a * np.log(a * den)
    return -np.expm1(-x_star / a) / den - x_star


def a_of_nl(nl: float | np.ndarray) -> np.ndarray:
    """NeuroSim's normalised time constant a(|NL|) (A = a · (levels − 1)); inf at NL = 0.

    Solves NeuroSim's definition ``max_x (f(x) − x) = NL_GAP · |NL|`` (see
    :data:`NL_GAP`) by bisection in log a; below |NL| = 1e-4 the series ``gap = 1/(8a)``
    (exact to 1e-8). Equals NeuroSim's getParamA table at every NL 0.01 … 9.00 within
    its 6 printed decimals. Vectorised over ``nl``.
    """
    x = np.abs(np.asarray(nl, dtype=np.float64))
    if np.any(x > NL_LIMIT) or not np.all(np.isfinite(x)):
        raise InputError(f"nonlinearity: |NL| must be finite and at most {NL_LIMIT}; got {nl}")
    target = NL_GAP * x
    lo = np.full(x.shape, np.log(1e-6))
    hi = np.full(x.shape, np.log(1e5))
    for _ in range(80):  # gap falls with a: bisection on log a to ~1e-16 relative
        mid = 0.5 * (lo + hi)
        above = _curve_gap(np.exp(mid)) > target
        lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
    with np.errstate(divide="ignore", over="ignore"):  # NL → 0: a → inf (the linear limit)
        series = 1.0 / (8.0 * target)
    out = np.where(x < 1e-4, series, np.exp(0.5 * (lo + hi)))
    return np.where(x == 0, np.inf, out)


@lru_cache(maxsize=4096)
def _a_of_one_nl(nl: float) -> float:
    """:func:`a_of_nl` of one NL, remembered: a dashboard change redraws every layer's
    curve with the same few NL values (80 bisection steps each, 0.5 ms)."""
    return float(a_of_nl(nl))


def normalized_curve(x: np.ndarray, nl: float) -> np.ndarray:
    """The curve's shape: (G − Gmin)/(Gmax − Gmin) at relative pulse x = p/P ∈ [0, 1].

    0 at x = 0, exactly 1 at x = 1, strictly increasing; linear for NL = 0, saturating
    for NL > 0, mirrored (convex) for NL < 0.
    """
    x = np.asarray(x, dtype=np.float64)
    if nl == 0:
        return x.copy()
    a = _a_of_one_nl(float(nl))
    if not a < 1e12:  # |NL| < ~1e-12: within 1e-13 of the linear limit (a = inf would give nan)
        return x.copy()
    if nl > 0:
        return np.expm1(-x / a) / np.expm1(-1.0 / a)
    return 1.0 - np.expm1(-(1.0 - x) / a) / np.expm1(-1.0 / a)


# --------------------------------------------------------------------------------------
# CSV of measured conductances
# --------------------------------------------------------------------------------------

def _clean_table(conductances: Any) -> np.ndarray:
    """Sorted distinct conductances (S) of a measured table, validated."""
    try:
        g = np.asarray(conductances, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("conductances: expected a 1-D sequence of numbers (Siemens)") from None
    if g.ndim != 1:
        raise InputError(f"conductances: expected a 1-D sequence, got shape {g.shape}")
    bad = np.flatnonzero(~np.isfinite(g) | (g <= 0))
    if bad.size:
        raise InputError(f"conductances: entry {int(bad[0])} is {float(g[bad[0]]):g}; every "
                         "conductance must be finite and > 0 S")
    g = np.unique(g)
    if not MIN_LEVELS <= g.size <= MAX_LEVELS:
        raise InputError(f"conductances: {g.size} distinct value(s); a table must define between "
                         f"{MIN_LEVELS} and {MAX_LEVELS} levels")
    return g


# --------------------------------------------------------------------------------------
# DeviceModel
# --------------------------------------------------------------------------------------
class _SelfValidating(param.Parameterized):
    """A Parameterized whose cross-parameter check (:meth:`_validate`) runs on every watched
    change; an invalid change is undone (no events fired) and its InputError raised."""

    def _validate(self) -> None:
        raise NotImplementedError

    def _revert_if_invalid(self, *events: param.parameterized.Event) -> None:
        try:
            self._validate()
        except InputError:
            with param.parameterized.discard_events(self):
                for event in events:
                    setattr(self, event.name, event.old)
            raise


class DeviceModel(_SelfValidating):
    """A ReRAM cell: its conductance-state curve and its L programmable levels (Siemens).

    ``source`` says where the curve comes from: ``"model"`` (NeuroSim formula with
    ``nonlinearity``), ``"table"`` (measured conductances; they fix ``levels``, ``g_min``
    and ``g_max``) or ``"points"`` (a drawn curve whose shape is rescaled to
    [``g_min``, ``g_max``]). Change several bounds together with
    ``dev.param.update(g_min=..., g_max=...)``; an inconsistent change is undone and raises.
    """

    g_min = param.Number(
        default=1e-6, bounds=(0, None), inclusive_bounds=(False, True), softbounds=(1e-9, 1e-3),
        label="G min (S)", doc="Lowest programmable conductance G_0, Siemens (> 0).")
    g_max = param.Number(
        default=1e-5, bounds=(0, None), inclusive_bounds=(False, True), softbounds=(1e-9, 1e-3),
        label="G max (S)", doc="Highest programmable conductance G_{L-1}, Siemens (> g_min).")
    levels = param.Integer(
        default=16, bounds=(MIN_LEVELS, MAX_LEVELS), label="Levels",
        doc="Number of programmable conductance levels L (pulses 0 … L−1), 2 … 1024.")
    nonlinearity = param.Number(
        default=0.0, bounds=(-NL_LIMIT, NL_LIMIT), softbounds=(-6.01, 6.01),
        label="Nonlinearity (LTP)",
        doc="Potentiation NL label of NeuroSim's model: 0 linear, > 0 saturating, "
            "< 0 mirrored; a(NL) from NeuroSim's definition (its table covers 0.01 … 9).")
    nonlinearity_ltd = param.Number(
        default=0.0, bounds=(-NL_LIMIT, NL_LIMIT), softbounds=(-6.01, 6.01),
        label="Nonlinearity (LTD)",
        doc="Depression NL label (NeuroSim sign convention); used by depression_curve() only.")
    levels_ltd = param.Integer(
        default=None, allow_None=True, bounds=(MIN_LEVELS, MAX_LEVELS), label="Levels (LTD)",
        doc="Depression pulse count + 1 for depression_curve(); None: same as levels.")
    c2c_sigma = param.Number(
        default=0.0, bounds=(0, None), softbounds=(0, 0.2), label="Cycle-to-cycle σ",
        doc="Cycle-to-cycle write variation σ per pulse as a fraction of (g_max − g_min), "
            "from the preset; drawn when prog_model is 'c2c' or 'write_verify'.")
    preset = param.String(
        default="", label="Preset", doc="Name of the preset this device started from ('' custom).")
    citation = param.String(
        default="", label="Source", precedence=-1, doc="Where the device numbers come from.")
    source = param.Selector(
        default="model", objects=["model", "table", "points"], label="Curve source",
        doc="model: NeuroSim formula; table: measured conductances; points: drawn PCHIP curve.")
    table = param.Array(
        default=None, precedence=-1, label="Measured levels (S)",
        doc="Sorted distinct measured conductances, Siemens (source='table').")
    level_std = param.Array(
        default=None, precedence=-1, label="Level σ (S)",
        doc="Measured σ of each level's conductance, Siemens, one per level in increasing "
            "order (a CSV's conductance_std column or repeated measurements per level); "
            "drives prog_model='measured'.")
    table_pulses = param.Array(
        default=None, precedence=-1, label="Measured pulses",
        doc="Pulse numbers of the measured CSV rows, if the file had them (plotting only).")
    points_pulses = param.Array(
        default=None, precedence=-1, label="Curve points: pulses",
        doc="Pulse numbers of the drawn curve's points, increasing (source='points').")
    points_g = param.Array(
        default=None, precedence=-1, label="Curve points: conductance (S)",
        doc="Conductances of the drawn curve's points, Siemens, increasing (source='points').")

    _checked = ("g_min", "g_max", "levels", "source", "table", "points_pulses", "points_g",
                "level_std")

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._validate()
        self.param.watch(self._revert_if_invalid, list(self._checked))

    # ---- validation -------------------------------------------------------------------
    def _validate(self) -> None:
        if self.g_max <= self.g_min:
            raise InputError(
                f"g_max: must be greater than g_min ({self.g_min:.4g} S), got {self.g_max:.4g} S; "
                "change both at once with dev.param.update(g_min=..., g_max=...)")
        if self.source == "table":
            if self.table is None:
                raise InputError("source: 'table' needs measured conductances; use "
                                 "DeviceModel.from_table/from_csv or dev.set_table(g)")
            n = len(self.table)
            if self.levels != n:
                raise InputError(
                    f"levels: a measured table defines the levels ({n} distinct conductances); "
                    f"got {self.levels}. Set source='model' to choose levels freely")
            if self.g_min != self.table[0] or self.g_max != self.table[-1]:
                raise InputError(
                    f"g_min/g_max: a measured table defines them ({self.table[0]:.4g} … "
                    f"{self.table[-1]:.4g} S); load another table to change them")
        if self.level_std is not None:
            std = np.asarray(self.level_std)
            if std.ndim != 1 or std.size != self.levels:
                raise InputError(f"level_std: {std.size} value(s) for {self.levels} levels; one "
                                 "σ per level is needed (in increasing level order)")
            if not (np.isfinite(std).all() and (std >= 0).all()):
                raise InputError("level_std: every σ must be finite and >= 0 S")
        if self.source == "points" and (self.points_pulses is None or self.points_g is None):
            raise InputError("source: 'points' needs curve points; use DeviceModel.from_points "
                             "or dev.set_points(pulses, conductances)")

    # ---- derived values ---------------------------------------------------------------
    @property
    def on_off_ratio(self) -> float:
        """g_max / g_min (dimensionless)."""
        return self.g_max / self.g_min

    def set_on_off_ratio(self, ratio: float) -> None:
        """Keep g_max, set g_min = g_max / ratio (ratio > 1)."""
        if not (np.isfinite(ratio) and ratio > 1):
            raise InputError(f"on_off_ratio: must be a finite number > 1, got {ratio}")
        self.g_min = self.g_max / float(ratio)

    def normalized_levels(self) -> np.ndarray:
        """d_k = (G_k − G_0)/(G_{L−1} − G_0) ∈ [0, 1], increasing, d_0 = 0, d_{L−1} = 1."""
        if self.source == "table":
            g = np.asarray(self.table, dtype=np.float64)
            d = (g - g[0]) / (g[-1] - g[0])
            d[-1] = 1.0
            return d
        x = np.arange(self.levels, dtype=np.float64) / (self.levels - 1)
        if self.source == "points":
            return self._points_shape(x)
        return normalized_curve(x, self.nonlinearity)

    def conductances(self) -> np.ndarray:
        """The L programmable conductances G_0 … G_{L−1}, increasing, Siemens (float64)."""
        if self.source == "table":
            return np.asarray(self.table, dtype=np.float64).copy()
        g = self.g_min + (self.g_max - self.g_min) * self.normalized_levels()
        g[0], g[-1] = self.g_min, self.g_max
        return g

    def curve(self, pulses: np.ndarray) -> np.ndarray:
        """Continuous potentiation curve G(p), Siemens, for pulse numbers p ∈ [0, levels − 1].

        Model: the NeuroSim formula; table: straight lines between consecutive levels;
        points: the PCHIP curve. G(k) equals ``conductances()[k]``.
        """
        p = np.asarray(pulses, dtype=np.float64)
        last = self.levels - 1
        if p.size and (np.nanmin(p) < 0 or np.nanmax(p) > last or np.isnan(p).any()):
            raise InputError(f"pulses: must lie in [0, {last}] (levels − 1)")
        if self.source == "table":
            return np.interp(p, np.arange(self.levels), self.conductances())
        x = p / last
        shape = self._points_shape(x) if self.source == "points" else normalized_curve(
            x, self.nonlinearity)
        return self.g_min + (self.g_max - self.g_min) * shape

    def depression_curve(self, pulses: np.ndarray) -> np.ndarray:
        """G after q depression pulses from g_max, Siemens, q ∈ [0, levels_ltd − 1].

        NeuroSim's depression curve with ``nonlinearity_ltd`` (state index P − q; a
        negative label gives the usual big-steps-first decrease). For every curve source.
        """
        q = np.asarray(pulses, dtype=np.float64)
        last = (self.levels_ltd or self.levels) - 1
        if q.size and (np.nanmin(q) < 0 or np.nanmax(q) > last or np.isnan(q).any()):
            raise InputError(f"pulses: must lie in [0, {last}] (levels_ltd − 1)")
        shape = normalized_curve((last - q) / last, self.nonlinearity_ltd)
        return self.g_min + (self.g_max - self.g_min) * shape

    def _points_shape(self, x: np.ndarray) -> np.ndarray:
        p, g = np.asarray(self.points_pulses), np.asarray(self.points_g)
        shape = _pchip(p.tobytes(), g.tobytes())(p[0] + np.asarray(x) * (p[-1] - p[0]))
        out = (shape - g[0]) / (g[-1] - g[0])
        return np.clip(out, 0.0, 1.0)  # PCHIP is monotone: this only trims float rounding

    # ---- alternative sources ----------------------------------------------------------
    def set_table(self, conductances: Any, pulses: Any = None,
                  level_std: Any = None) -> DeviceModel:
        """Use measured conductances (Siemens, any order, duplicates removed) as the levels;
        ``level_std``: their σ (S) in increasing conductance order, or None."""
        g = _clean_table(conductances)
        self.param.update(source="table", table=g, levels=int(g.size), g_min=float(g[0]),
                          g_max=float(g[-1]),
                          table_pulses=None if pulses is None else np.asarray(pulses, float),
                          level_std=None if level_std is None else np.asarray(level_std, float))
        return self

    def set_points(self, pulses: Any, conductances: Any) -> DeviceModel:
        """Use a drawn curve: points (pulse, G in S), G strictly increasing with pulse."""
        p, g = _clean_points(pulses, conductances)
        self.param.update(source="points", points_pulses=p, points_g=g, g_min=float(g[0]),
                          g_max=float(g[-1]))
        return self

    @classmethod
    def from_preset(cls, name: str, levels: int | None = None, **overrides: Any) -> DeviceModel:
        """A device from ``PRESETS`` (``"Ag:a-Si"``, ``"TaOx/HfOx"``, ``"AlOx/HfO2"``,
        ``"EpiRAM"``, ``"ideal"``); ``levels`` and other parameters may be overridden."""
        if name not in PRESETS:
            raise InputError(f"preset: unknown device {name!r}; choose one of {list(PRESETS)}")
        spec = dict(PRESETS[name])
        citation = spec.pop("source")
        if levels is not None:
            spec["levels"] = levels
        spec.update(overrides)
        return cls(preset=name, citation=citation, **spec)

    @classmethod
    def from_table(cls, conductances: Any, pulses: Any = None, **params: Any) -> DeviceModel:
        """A device whose levels are the distinct measured conductances (Siemens).

        The table defines the levels: ``levels`` becomes the number of distinct values,
        whatever a caller asked for, and g_min/g_max its smallest and largest value.
        """
        g = _clean_table(conductances)
        for name in ("levels", "g_min", "g_max", "source"):
            if name in params:
                raise InputError(f"{name}: a measured table defines it ({g.size} distinct "
                                 f"conductances, {g[0]:.4g} … {g[-1]:.4g} S); do not pass it")
        return cls(source="table", table=g, levels=int(g.size), g_min=float(g[0]),
                   g_max=float(g[-1]),
                   table_pulses=None if pulses is None else np.asarray(pulses, float), **params)

    @classmethod
    def from_csv(cls, path_or_bytes: str | Path | bytes, **params: Any) -> DeviceModel:
        """A device from a measured CSV (file path or the file's bytes); see the module doc."""
        if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
            data = bytes(path_or_bytes)
        else:
            path = Path(path_or_bytes)
            if not path.is_file():
                raise InputError(f"device CSV: file {str(path)!r} does not exist")
            size = path.stat().st_size
            if size > MAX_CSV_BYTES:
                raise InputError(f"device CSV: {path.name!r} has {size:,} bytes; at most 1 MB "
                                 f"({MAX_CSV_BYTES:,} bytes) is accepted")
            data = path.read_bytes()
        table = parse_device_csv(data)
        if table.std is not None:
            order = np.argsort(table.conductance, kind="stable")
            return cls.from_table(table.conductance[order], level_std=table.std[order],
                                  **params)
        return cls.from_table(table.conductance, pulses=table.pulse, **params)

    @classmethod
    def from_points(cls, pulses: Any, conductances: Any, levels: int = 16,
                    **params: Any) -> DeviceModel:
        """A drawn curve: monotone PCHIP through (pulse, G) points, sampled at ``levels``
        equally spaced pulse numbers from the first to the last point."""
        p, g = _clean_points(pulses, conductances)
        for name in ("g_min", "g_max", "source"):
            if name in params:
                raise InputError(f"{name}: the points define it; rescale later with "
                                 "dev.param.update(g_min=..., g_max=...)")
        return cls(source="points", points_pulses=p, points_g=g, levels=levels,
                   g_min=float(g[0]), g_max=float(g[-1]), **params)


def _clean_points(pulses: Any, conductances: Any) -> tuple[np.ndarray, np.ndarray]:
    try:
        p = np.asarray(pulses, dtype=np.float64)
        g = np.asarray(conductances, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("points: pulses and conductances must be sequences of numbers") from None
    if p.ndim != 1 or g.ndim != 1 or p.shape != g.shape:
        raise InputError(f"points: pulses and conductances must be 1-D and of equal length; "
                         f"got shapes {p.shape} and {g.shape}")
    if not 2 <= p.size <= MAX_LEVELS:
        raise InputError(f"points: need between 2 and {MAX_LEVELS} points, got {p.size}")
    if not (np.isfinite(p).all() and np.isfinite(g).all()):
        raise InputError("points: pulses and conductances must be finite")
    if (g <= 0).any():
        raise InputError(f"points: conductance {float(g[g <= 0][0]):g} must be > 0 S")
    order = np.argsort(p, kind="stable")
    p, g = p[order], g[order]
    if (np.diff(p) <= 0).any():
        raise InputError("points: pulse numbers must be distinct")
    if (np.diff(g) <= 0).any():
        i = int(np.flatnonzero(np.diff(g) <= 0)[0]) + 1
        raise InputError(f"points: conductance must increase with pulse number; point {i} "
                         f"(pulse {p[i]:g}, {g[i]:.4g} S) does not exceed the one before")
    return p, g


@lru_cache(maxsize=32)
def _pchip(p_bytes: bytes, g_bytes: bytes) -> Any:
    from scipy.interpolate import PchipInterpolator

    return PchipInterpolator(np.frombuffer(p_bytes), np.frombuffer(g_bytes), extrapolate=False)


# --------------------------------------------------------------------------------------
# Non-idealities
# --------------------------------------------------------------------------------------


def __getattr__(name: str) -> Any:
    """``NonIdealities`` and ``make_generator`` live in :mod:`explorer.nonideal` (torch);
    importing them from here still works without loading torch for the curve model."""
    if name in ("NonIdealities", "make_generator"):
        from explorer import nonideal

        return getattr(nonideal, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
