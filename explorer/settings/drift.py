"""Time after programming: conductance drift, retention and its compensation (DESIGN.md §7)."""

from __future__ import annotations

import param

from explorer.errors import InputError
from explorer.settings.base import Part

DRIFT_MODELS = ("none", "pcm", "reram", "measured")
COMPENSATIONS = ("none", "layer", "column")
ONE_YEAR_S = 365.25 * 24 * 3600


class DriftSettings(Part):
    """How programmed conductances change with the time since programming."""

    section = "drift"

    drift = param.Selector(
        default="none", objects=list(DRIFT_MODELS), label="Drift model",
        doc="none; pcm (aihwkit PCMLikeNoiseModel: power-law drift with ν per cell, 1/f noise "
            "growing with time); reram (aihwkit ReRamCMONoiseModel: mean shift and spread "
            "growing with ln t); measured (ν mean and σ against conductance from drift_csv).")
    drift_csv = param.String(
        default="", label="Drift table (CSV)",
        doc="Path of a CSV with columns conductance (S) or conductance_uS, nu_mean, nu_sigma "
            "(drift exponent mean and σ, >= 0); used when drift = measured.")
    time_s = param.Number(
        default=0.0, bounds=(0, None), softbounds=(1, 3.2e8), label="Time after programming (s)",
        doc="Seconds since the cells were programmed, >= 0 (1 day = 86400, 1 year ≈ 3.16e7).")
    drift_compensation = param.Selector(
        default="none", objects=list(COMPENSATIONS), label="Drift compensation",
        doc="Global drift compensation (aihwkit): a reference read after programming and at "
            "time_s; the digital outputs are rescaled by their ratio per layer or per column.")

    def check(self) -> None:
        if self.drift != "measured":
            return
        if not self.drift_csv:
            raise InputError("drift_csv: drift = 'measured' needs a CSV of nu_mean and nu_sigma "
                             "against conductance (--drift-csv PATH)")
        from explorer.drift_csv import read_drift_csv

        read_drift_csv(self.drift_csv)
