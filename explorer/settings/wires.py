"""IR drop along the word and bit lines of every tile (DESIGN.md §8)."""

from __future__ import annotations

import param

from explorer.errors import InputError
from explorer.settings.base import Part

IR_DROP_MODELS = ("none", "first_order", "solve")
MAX_SOLVE_CELLS = 512 * 513
"""Largest tile (cells, reference column included) the exact network solve accepts."""


class WireSettings(Part):
    """Wire resistance per segment and the model of the voltage it drops."""

    section = "wires"

    ir_drop = param.Selector(
        default="none", objects=list(IR_DROP_MODELS), label="IR drop",
        doc="Wire model: none (ideal wires), first_order (linearised, folded into one "
            "effective matrix per tile when it is programmed) or solve (the exact resistor "
            "network per tile; slow).")
    r_row = param.Number(
        default=2.1, bounds=(0, None), softbounds=(0, 20), label="Row wire Ω/segment",
        doc="Word-line (row) wire resistance per cell segment in ohm, >= 0 (NeuroSim 22 nm: "
            "2.1 Ω); used when ir_drop is not none.")
    r_col = param.Number(
        default=6.4, bounds=(0, None), softbounds=(0, 20), label="Column wire Ω/segment",
        doc="Bit-line (column) wire resistance per cell segment in ohm, >= 0 (NeuroSim 22 nm, "
            "1T1R: 6.4 Ω); used when ir_drop is not none.")
    v_read = param.Number(
        default=0.5, bounds=(0, 10), inclusive_bounds=(False, True), softbounds=(0.05, 1.0),
        label="Read voltage (V)",
        doc="Full-scale input voltage in volts, in (0, 10] (NeuroSim: 0.5 V): a DAC full-scale "
            "input drives its word line at v_read; sets the currents (amperes) reported for "
            "the wires (with linear cells the relative IR drop does not depend on it).")

    def check(self) -> None:
        if self.ir_drop == "none":
            return
        if getattr(self, "adc_input", "differential") == "per_column" or \
                getattr(self, "weight_slices", 1) > 1:
            raise InputError("ir_drop: the wires are folded into each tile's effective weight, "
                             "which per_column ADC input and bit-sliced weights do not read; "
                             "use adc_input='differential' and weight_slices=1 with IR drop")
        if self.ir_drop != "solve":
            return
        rows = getattr(self, "tile_rows", 0)
        cols = getattr(self, "tile_cols", 0) + 1
        if rows * cols > MAX_SOLVE_CELLS:
            raise InputError(f"ir_drop: 'solve' handles tiles up to {MAX_SOLVE_CELLS:,} cells; "
                             f"tile_rows × (tile_cols + 1) = {rows} × {cols} is larger – use "
                             "'first_order' or smaller tiles")
