"""Non-idealities drawn on programmed conductances: programming error (Gaussian,
NeuroSim cycle-to-cycle, write-verify), device-to-device spread, stuck-at faults.

The knobs are declared once in :class:`explorer.settings.noise.NoiseSettings`;
:class:`NonIdealities` adds the seeded torch draws.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from explorer.device import DeviceModel, _SelfValidating
from explorer.errors import InputError
from explorer.settings.noise import NoiseSettings


class NonIdealities(NoiseSettings, _SelfValidating):
    """Programming variation, read noise and stuck-at faults, drawn from seeded generators.

    :meth:`program` draws, per cell and per call, one standard normal (variation) and
    one uniform (faults) from the given generator, in that order, whatever the settings,
    so the same seed gives the same variation pattern with and without faults. An
    impossible change (SA0 + SA1 > 1) is undone and raises.
    """

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._validate()
        self.param.watch(self._revert_if_invalid, ["stuck_at_gmin", "stuck_at_gmax"])

    def _validate(self) -> None:
        self.check()

    @property
    def is_ideal(self) -> bool:
        """True when no programming error, spread, read noise or fault is set (the c2c,
        write-verify and measured models count as set: their σ lives on the device)."""
        programming = self.prog_sigma if self.prog_model == "gaussian" else True
        return not (programming or self.read_sigma or self.stuck_at_gmin
                    or self.stuck_at_gmax or self.spread)

    @property
    def spread(self) -> bool:
        """True when device-to-device spread is drawn."""
        return bool(self.d2d_nl_sigma or self.d2d_gmax_sigma or self.d2d_gmin_sigma)

    def draws_programming(self, device: DeviceModel) -> bool:
        """Whether programming draws anything for ``device`` (else the targets are exact)."""
        measured = device.level_std is not None and bool(np.any(device.level_std))
        model = {"gaussian": self.prog_sigma, "c2c": device.c2c_sigma,
                 "write_verify": device.c2c_sigma, "measured": measured}[self.prog_model]
        return bool(model or self.stuck_at_gmin or self.stuck_at_gmax or self.spread)

    def program(self, g: torch.Tensor, device: DeviceModel,
                generator: torch.Generator, pulses: torch.Tensor | None = None) -> torch.Tensor:
        """Programmed conductances (S) of targets ``g``; see :meth:`program_cells`."""
        return self.program_cells(g, device, generator, pulses)[0]

    def program_cells(self, g: torch.Tensor, device: DeviceModel, generator: torch.Generator,
                      pulses: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Programmed conductances (S) of targets ``g`` and the pulses each cell took.

        ``pulses``: identical pulses from g_min that reach each target on the device's
        curve (default: :func:`pulses_for`). Order of the draws per call: one normal
        (gaussian model) and one uniform (faults) per cell whatever the settings, then
        three normals per cell for device-to-device spread if set, then the c2c /
        write-verify pulses; so the same seed gives the same pattern with and without
        faults. Models (``prog_model``): ``gaussian`` (``prog_sigma``, clipped at ≥ 0 S),
        ``c2c`` (σ_c2c·(g_max−g_min)·√pulses·N, clamped to the cell's [g_min, g_max]) and
        ``write_verify`` (open-loop c2c, then corrective pulses of σ_c2c until within
        ``wv_tolerance`` or ``wv_max_pulses``) and ``measured`` (σ(G) of the target's
        level from ``device.level_std``, interpolated between levels, clipped at ≥ 0 S).
        Pulse counts: None for ``gaussian`` and ``measured``.
        ``generator`` must live on ``g``'s device.
        """
        if not isinstance(generator, torch.Generator):
            raise InputError("generator: program() needs a seeded torch.Generator "
                             "(torch.Generator(device).manual_seed(seed))")
        noise = torch.randn(g.shape, generator=generator, device=g.device, dtype=g.dtype)
        u = torch.rand(g.shape, generator=generator, device=g.device, dtype=g.dtype)
        if pulses is None and (self.prog_model != "gaussian" or self.d2d_nl_sigma):
            pulses = pulses_for(g, device)
        g_lo = torch.full_like(g, device.g_min)
        g_hi = torch.full_like(g, device.g_max)
        if self.spread:
            g, g_lo, g_hi = _spread(g, pulses, device, self, generator)
        span = device.g_max - device.g_min
        counts = None
        if self.prog_model == "measured":
            out = (g + level_sigma(g, device) * noise).clamp_min(0.0)
        elif self.prog_model == "gaussian":
            if self.prog_sigma_mode == "relative":
                out = g * (1.0 + self.prog_sigma * noise)
            else:
                out = g + (self.prog_sigma * span) * noise
            out = out.clamp_min(0.0)
        else:
            assert pulses is not None
            step = device.c2c_sigma * span
            first = torch.randn(g.shape, generator=generator, device=g.device, dtype=g.dtype)
            out = torch.minimum(torch.maximum(g + step * pulses.sqrt() * first, g_lo), g_hi)
            counts = pulses.round()
            if self.prog_model == "write_verify":
                out, extra = _write_verify(out, g, g_lo, g_hi, step, self.wv_tolerance * span,
                                           self.wv_max_pulses, generator)
                counts = counts + extra
        sa0, sa1 = self.stuck_at_gmin, self.stuck_at_gmax
        if sa0 or sa1:
            out = torch.where(u < sa0, torch.full_like(out, device.g_min), out)
            out = torch.where((u >= sa0) & (u < sa0 + sa1), torch.full_like(out, device.g_max),
                              out)
        return out, counts

    def read(self, g: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Conductances seen by one read of every cell (S): multiplicative read noise,
        clipped at ≥ 0 S. The crossbar draws read noise per read instead
        (:mod:`explorer.readnoise`); this is the cell-level form, for inspection.

        Returns ``g`` itself when ``read_sigma`` is 0. ``generator=None`` draws from
        torch's default generator (never seeded here).
        """
        if not self.read_sigma:
            return g
        noise = torch.randn(g.shape, generator=generator, device=g.device, dtype=g.dtype)
        return (g * (1.0 + self.read_sigma * noise)).clamp_min(0.0)


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator on ``device`` seeded with ``seed`` (int ≥ 0)."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed: must be an integer >= 0, got {seed!r}")
    return torch.Generator(device=device).manual_seed(int(seed))



def level_sigma(g: torch.Tensor, device: DeviceModel) -> torch.Tensor:
    """σ (S) of each target conductance ``g`` from the device's measured per-level σ
    (linear between levels, the end values beyond)."""
    if device.level_std is None:
        raise InputError("prog_model: 'measured' needs a device with measured per-level σ "
                         "(a CSV with a conductance_std column or repeated measurements "
                         "per level)")
    levels = torch.as_tensor(device.conductances(), dtype=torch.float64, device=g.device)
    std = torch.as_tensor(np.asarray(device.level_std), dtype=torch.float64, device=g.device)
    x = g.double().clamp(float(levels[0]), float(levels[-1]))
    hi = torch.searchsorted(levels, x).clamp(1, len(levels) - 1)
    lo = hi - 1
    frac = (x - levels[lo]) / (levels[hi] - levels[lo])
    return (std[lo] + frac * (std[hi] - std[lo])).to(g.dtype)


def pulses_for(g: torch.Tensor, device: DeviceModel) -> torch.Tensor:
    """Identical pulses from g_min that bring a cell to conductance ``g`` (S) on the
    device's potentiation curve (0 … levels − 1; fractional between levels, for
    continuous targets), clamped to the curve's range."""
    grid = np.linspace(0.0, device.levels - 1, 64 * (device.levels - 1) + 1)
    curve = device.curve(grid)
    curve_t = torch.as_tensor(curve, dtype=torch.float64, device=g.device)
    grid_t = torch.as_tensor(grid, dtype=torch.float64, device=g.device)
    x = g.double().clamp(float(curve[0]), float(curve[-1]))
    hi = torch.searchsorted(curve_t, x).clamp(1, len(grid) - 1)
    lo = hi - 1
    frac = (x - curve_t[lo]) / (curve_t[hi] - curve_t[lo])
    return (grid_t[lo] + frac * (grid_t[hi] - grid_t[lo])).to(g.dtype)


def _spread(g: torch.Tensor, pulses: torch.Tensor | None, device: DeviceModel,
            ni: NonIdealities, generator: torch.Generator
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Device-to-device spread: each cell's own g_min, g_max (relative σ) and NL
    (absolute σ, model curves), drawn per cell; returns the conductance the cell
    reaches with the nominal pulses, and its own range. Drawn NL is clamped to
    ±NL_LIMIT and g_min_cell < g_max_cell is kept by clamping g_min to 0.99 g_max."""
    from explorer.device import NL_LIMIT, a_of_nl

    shape, where, dtype = g.shape, g.device, g.dtype
    n_nl, n_max, n_min = (torch.randn(shape, generator=generator, device=where, dtype=dtype)
                          for _ in range(3))
    g_hi = (device.g_max * (1.0 + ni.d2d_gmax_sigma * n_max)).clamp_min(0.0)
    g_lo = torch.minimum((device.g_min * (1.0 + ni.d2d_gmin_sigma * n_min)).clamp_min(0.0),
                         0.99 * g_hi)
    span = device.g_max - device.g_min
    shape_now = ((g - device.g_min) / span).clamp(0.0, 1.0)
    if ni.d2d_nl_sigma and device.source == "model":
        assert pulses is not None
        nl = (device.nonlinearity + ni.d2d_nl_sigma * n_nl).clamp(-NL_LIMIT, NL_LIMIT)
        nl_np = nl.detach().double().cpu().numpy()
        a = torch.as_tensor(np.minimum(a_of_nl(nl_np), 1e12), dtype=torch.float64,
                            device=where)
        x = (pulses.double() / (device.levels - 1)).clamp(0.0, 1.0)
        sat = torch.expm1(-x / a) / torch.expm1(-1.0 / a)
        mirrored = 1.0 - torch.expm1(-(1.0 - x) / a) / torch.expm1(-1.0 / a)
        nl64 = nl.double()
        shape_now = torch.where(nl64 > 0, sat, torch.where(nl64 < 0, mirrored, x)).to(dtype)
    return g_lo + (g_hi - g_lo) * shape_now, g_lo, g_hi


def _write_verify(g: torch.Tensor, target: torch.Tensor, g_lo: torch.Tensor,
                  g_hi: torch.Tensor, step: float, tolerance: float, max_pulses: int,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Verify every cell and give those outside ``tolerance`` (S) one corrective pulse
    (lands on the target with σ ``step``), up to ``max_pulses`` rounds; the loop runs
    over rounds, vectorised over cells. Returns the final conductances and the extra
    pulses per cell."""
    extra = torch.zeros_like(g)
    for _ in range(max_pulses):
        off = (g - target).abs() > tolerance
        if not bool(off.any()):
            break
        kick = torch.randn(g.shape, generator=generator, device=g.device, dtype=g.dtype)
        fixed = torch.minimum(torch.maximum(target + step * kick, g_lo), g_hi)
        g = torch.where(off, fixed, g)
        extra += off.to(g.dtype)
    return g, extra


def describe_programming(ni: NoiseSettings, device: DeviceModel) -> str:
    """One line saying which programming error is drawn, and whether the device's
    cycle-to-cycle σ is used (a preset's σ_c2c is drawn only by the c2c and write-verify
    models)."""
    model = ni.prog_model
    if model == "gaussian":
        text = (f"programming: gaussian σ {100 * ni.prog_sigma:g} % ({ni.prog_sigma_mode})"
                if ni.prog_sigma else "programming: exact (prog_sigma 0)")
        if device.c2c_sigma:
            text += (f"; the device's cycle-to-cycle σ {100 * device.c2c_sigma:g} % is not "
                     "drawn (prog_model c2c or write_verify draws it)")
        return text
    if model == "c2c":
        return (f"programming: c2c open loop, σ {100 * device.c2c_sigma:g} % of the range per "
                "pulse × √pulses")
    if model == "write_verify":
        return (f"programming: write-verify, σ {100 * device.c2c_sigma:g} % per pulse, "
                f"tolerance {100 * ni.wv_tolerance:g} % of the range, at most "
                f"{ni.wv_max_pulses} corrections")
    return "programming: measured σ per level"
