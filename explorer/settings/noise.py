"""Programming variation, read noise, stuck-at faults and the seed (DESIGN.md §3).

:class:`NoiseSettings` declares the knobs; :class:`explorer.device.NonIdealities` adds
the draws (torch) to the same declarations.
"""

from __future__ import annotations

import param

from explorer.errors import InputError
from explorer.settings.base import Part


class NoiseSettings(Part):
    """Where the random numbers of the crossbar come from and how large they are."""

    section = "noise"

    prog_sigma = param.Number(
        default=0.0, bounds=(0, None), softbounds=(0, 0.3), label="Programming σ",
        doc="Programming error σ per cell: relative (G·(1+σN)) or absolute "
            "(G + σ·(g_max−g_min)·N), see prog_sigma_mode; drawn once per trial; >= 0.")
    prog_sigma_mode = param.Selector(
        default="relative", objects=["relative", "absolute"], label="σ mode",
        doc="relative: σ is a fraction of G; absolute: a fraction of (g_max − g_min) (NeuroSim).")
    read_sigma = param.Number(
        default=0.0, bounds=(0, None), softbounds=(0, 0.2), label="Read σ",
        doc="Relative read noise G·(1+σN), redrawn every forward pass; >= 0.")
    stuck_at_gmin = param.Number(
        default=0.0, bounds=(0, 1), softbounds=(0, 0.2), label="Stuck at G min",
        doc="Fraction of programmed cells stuck at g_min (SA0), 0 … 1; SA0 + SA1 <= 1.")
    stuck_at_gmax = param.Number(
        default=0.0, bounds=(0, 1), softbounds=(0, 0.2), label="Stuck at G max",
        doc="Fraction of programmed cells stuck at g_max (SA1), 0 … 1; SA0 + SA1 <= 1.")
    seed = param.Integer(
        default=0, bounds=(0, 2**63 - 1), label="Seed",
        doc="Seed of programming variation, faults and read noise (same seed, same numbers).")

    def check(self) -> None:
        total = self.stuck_at_gmin + self.stuck_at_gmax
        if total > 1:
            raise InputError(f"stuck_at_gmin + stuck_at_gmax: must be at most 1, got "
                             f"{self.stuck_at_gmin:g} + {self.stuck_at_gmax:g} = {total:g}")
