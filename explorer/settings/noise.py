"""Programming error, device-to-device spread, read noise, stuck-at faults and the seed
(DESIGN.md §3).

:class:`NoiseSettings` declares the knobs; :class:`explorer.device.NonIdealities` adds
the draws (torch) to the same declarations.
"""

from __future__ import annotations

import param

from explorer.errors import InputError
from explorer.settings.base import Part

PROG_MODELS = ("gaussian", "c2c", "write_verify", "measured")


class NoiseSettings(Part):
    """Where the random numbers of the crossbar come from and how large they are."""

    section = "noise"

    prog_model = param.Selector(
        default="gaussian", objects=list(PROG_MODELS), label="Programming model",
        doc="gaussian: per-cell error prog_sigma (relative or absolute); c2c: NeuroSim's "
            "open-loop pulses, σ_c2c·(g_max−g_min)·√pulses·N clamped to [g_min, g_max] with "
            "the device's c2c_sigma (a preset's value); write_verify: pulses of σ_c2c until "
            "|G − target| <= wv_tolerance or wv_max_pulses (pulse counts in the counters); "
            "measured: σ(G) per level from the device's measured statistics (level_std).")
    prog_sigma = param.Number(
        default=0.0, bounds=(0, None), softbounds=(0, 0.3), label="Programming error σ",
        doc="Per-cell programming error σ of prog_model='gaussian' (not device-to-device: "
            "each cell's own write error): relative G·(1+σN) or absolute "
            "G + σ·(g_max−g_min)·N, see prog_sigma_mode; drawn once per trial; >= 0.")
    prog_sigma_mode = param.Selector(
        default="relative", objects=["relative", "absolute"], label="σ mode",
        doc="relative: σ is a fraction of G; absolute: a fraction of (g_max − g_min) (NeuroSim).")
    wv_tolerance = param.Number(
        default=0.01, bounds=(0, 1), inclusive_bounds=(False, True), softbounds=(0.001, 0.1),
        label="Write-verify tolerance",
        doc="Accepted |G − target| of write-verify as a fraction of (g_max − g_min), (0, 1].")
    wv_max_pulses = param.Integer(
        default=20, bounds=(1, 1000), label="Write-verify pulses",
        doc="Most verify-and-correct pulses per cell of write-verify, 1 … 1000.")
    d2d_nl_sigma = param.Number(
        default=0.0, bounds=(0, None), softbounds=(0, 2), label="D2D σ of NL",
        doc="Device-to-device spread: σ of each cell's nonlinearity label (absolute, NL "
            "units) around the device's, drawn per cell and trial (NeuroSim sigmaDtoD); "
            "model curves only; >= 0.")
    d2d_gmax_sigma = param.Number(
        default=0.0, bounds=(0, None), softbounds=(0, 0.3), label="D2D σ of G max",
        doc="Device-to-device spread: relative σ of each cell's g_max, per cell and trial; "
            ">= 0.")
    d2d_gmin_sigma = param.Number(
        default=0.0, bounds=(0, None), softbounds=(0, 0.3), label="D2D σ of G min",
        doc="Device-to-device spread: relative σ of each cell's g_min, per cell and trial; "
            ">= 0.")
    read_sigma = param.Number(
        default=0.0, bounds=(0, None), softbounds=(0, 0.2), label="Read σ",
        doc="Relative conductance read noise G·(1+σN), a fresh draw for every read (input "
            "vector, row chunk, bit plane); >= 0.")
    out_noise = param.Number(
        default=0.0, bounds=(0, None), softbounds=(0, 0.1), label="Output noise σ",
        doc="Output noise σ of every conversion (before the ADC) as a fraction of the "
            "full-scale partial sum (largest chunk's rows × max |weight| × full input), "
            "fresh per conversion; >= 0.")
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
