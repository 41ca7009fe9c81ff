"""Conductance drift and retention after programming (DESIGN.md §7), in torch.

Every function maps programmed conductances (S) to conductances at ``t`` seconds after
programming, from standard normal draws made once per cell and Monte-Carlo trial
(:func:`draw`), so one programming draw evolves smoothly in time and the same seed gives
the same trajectory.

* ``pcm`` – aihwkit's ``PCMLikeNoiseModel`` (Nandakumar et al. 2019), with x = G/g_max:
  ν = |μ_ν + σ_ν·N₁| per cell from the *target* conductance, μ_ν = clip(−0.0155·ln x +
  0.0244, 0.049, 0.1), σ_ν = clip(−0.0125·ln x − 0.0059, 0.008, 0.045);
  G_drift = G_prog·((t + t0)/t0)^−ν for t > 0 (t0 = 20 s); accumulated 1/f noise
  G = G_drift + |G_drift|·Q·√ln((t + t0 + t_read)/(2·t_read))·N₂ with
  Q = min(0.0088 / max((G_prog/g_max)^0.65, 1e−3), 0.2), t_read = 250 ns; clipped at ≥ 0 S.
  (aihwkit counts the noise time from t0 as here; at t = 0 the noise of t0 is present.)
* ``reram`` – aihwkit's ``ReRamCMONoiseModel`` (CMO/HfOx, fitted in µS on a device with
  g_max = 88.19 µS; scaled here by the device's g_max / 88.19 µS): mean
  0.99848·G_prog − 0.089 µS·ln t, σ = (0.042·ln t + 0.412) µS, G = mean + σ·N₁, clamped to
  [g_min, g_max]; t = 0 leaves the cells unchanged and 0 < t < 1 s counts as 1 s (the fit's
  range starts at 1 s; σ must be >= 0).
* ``measured`` – ν = |μ(G) + σ(G)·N₁| with μ, σ interpolated from a table against the target
  conductance (aihwkit's ``CustomDriftPCMLikeNoiseModel``, without the PCM 1/f noise),
  G = G_prog·((t + t0)/t0)^−ν.

Compensation (aihwkit ``GlobalDriftCompensation`` / ``PerColumnDriftCompensation``) is in
:mod:`explorer.timewires`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from explorer.drift_csv import DriftTable
from explorer.errors import InputError

T0 = 20.0
"""Seconds: reference time of the power-law drift (aihwkit's t_0)."""
T_READ = 250e-9
"""Seconds: read duration of the 1/f noise fit (aihwkit's t_read)."""
CMO_G_MAX = 88.19e-6
"""Siemens: g_max of the device the ReRAM CMO relaxation was fitted on."""
CMO_MEAN_SLOPE = -0.08900206e-6
CMO_MEAN_GAIN = 49.92383444 / 50.0
CMO_SIGMA_SLOPE = 0.04201137e-6
CMO_SIGMA_OFFSET = 0.41183342e-6
DRAWS = 2
"""Standard normals drawn per cell and trial (ν or relaxation; 1/f noise)."""


def check_time(time_s: float) -> float:
    """``time_s`` as a float >= 0 (seconds), else InputError."""
    if isinstance(time_s, bool) or not isinstance(time_s, (int, float, np.number)) or \
            not math.isfinite(float(time_s)) or float(time_s) < 0:
        raise InputError(f"time_s: {time_s!r} is not allowed; expected seconds after "
                         "programming, a number >= 0")
    return float(time_s)


def draw(shape: torch.Size | tuple[int, ...], generator: torch.Generator,
         device: torch.device | str, dtype: torch.dtype = torch.float32) -> Tensor:
    """The per-cell standard normals of one trial: ``[DRAWS, *shape]``."""
    return torch.randn((DRAWS, *shape), generator=generator, device=device, dtype=dtype)


def pcm_nu(g_target: Tensor, g_max: float, normal: Tensor) -> Tensor:
    """PCM drift exponents ν (dimensionless) of target conductances ``g_target`` (S)."""
    x = (g_target.abs() / g_max).clamp_min(1e-7)
    mu = (-0.0155 * torch.log(x) + 0.0244).clamp(0.049, 0.1)
    sigma = (-0.0125 * torch.log(x) - 0.0059).clamp(0.008, 0.045)
    return (mu + sigma * normal).abs()


def pcm_noise_sigma(g_prog: Tensor, g_max: float, time_s: float) -> Tensor:
    """Relative σ of the accumulated 1/f noise at ``time_s`` (aihwkit's Q·√ln(...))."""
    q = (0.0088 / ((g_prog.abs() / g_max) ** 0.65).clamp_min(1e-3)).clamp_max(0.2)
    t = time_s + T0
    return q * math.sqrt(math.log((t + T_READ) / (2 * T_READ)))


def power_law(g_prog: Tensor, nu: Tensor, time_s: float) -> Tensor:
    """``G_prog · ((t + t0)/t0)^−ν`` (unchanged at t = 0)."""
    if time_s <= 0:
        return g_prog
    return g_prog * torch.exp(-nu * math.log((time_s + T0) / T0))


def measured_nu(g_target: Tensor, table: DriftTable, normal: Tensor) -> Tensor:
    """ν = |μ(G) + σ(G)·N| with μ, σ linearly interpolated from ``table`` (held at the ends)."""
    grid = torch.as_tensor(table.conductance, dtype=g_target.dtype, device=g_target.device)
    mean = torch.as_tensor(table.nu_mean, dtype=g_target.dtype, device=g_target.device)
    sigma = torch.as_tensor(table.nu_sigma, dtype=g_target.dtype, device=g_target.device)
    g = g_target.clamp(float(grid[0]), float(grid[-1]))
    hi = torch.searchsorted(grid, g.contiguous()).clamp(1, len(grid) - 1)
    lo = hi - 1
    w = (g - grid[lo]) / (grid[hi] - grid[lo])
    mu = mean[lo] + w * (mean[hi] - mean[lo])
    sd = sigma[lo] + w * (sigma[hi] - sigma[lo])
    return (mu + sd * normal).abs()


def drifted(model: str, g_prog: Tensor, g_target: Tensor, normals: Tensor, time_s: float,
            g_min: float, g_max: float, table: DriftTable | None = None) -> Tensor:
    """Conductances (S) at ``time_s`` seconds after programming under drift ``model``.

    ``g_prog`` the programmed and ``g_target`` the intended conductances, ``normals``
    ``[DRAWS, *g_prog.shape]`` from :func:`draw`; ``g_min``/``g_max`` the device range (S).
    """
    time_s = check_time(time_s)
    if model == "none":
        return g_prog
    if model == "pcm":
        g = power_law(g_prog, pcm_nu(g_target, g_max, normals[0]), time_s)
        return (g + g.abs() * pcm_noise_sigma(g_prog, g_max, time_s) * normals[1]).clamp_min(0)
    if model == "reram":
        if time_s <= 0:
            return g_prog
        log_t = math.log(max(time_s, 1.0))
        scale = g_max / CMO_G_MAX
        mean = CMO_MEAN_GAIN * g_prog + scale * CMO_MEAN_SLOPE * log_t
        sigma = scale * (CMO_SIGMA_SLOPE * log_t + CMO_SIGMA_OFFSET)
        return (mean + sigma * normals[0]).clamp(g_min, g_max)
    if model == "measured":
        if table is None:
            raise InputError("drift_csv: drift = 'measured' needs a drift table")
        return power_law(g_prog, measured_nu(g_target, table, normals[0]), time_s).clamp_min(0)
    raise InputError(f"drift: {model!r} is not one of ['none', 'pcm', 'reram', 'measured']")


__all__ = ["CMO_G_MAX", "DRAWS", "T0", "T_READ", "check_time", "draw",
           "drifted", "measured_nu", "pcm_noise_sigma", "pcm_nu", "power_law"]
