"""How weights become conductance levels (DESIGN.md §2): method, cell scheme, scale."""

from __future__ import annotations

import param

from explorer.errors import InputError
from explorer.settings.base import Part

METHODS = ("linear", "min_error", "generalized", "exact")
SCHEMES = ("offset", "differential", "differential_full")
SCALES = ("max", "optimal")


class MappingSettings(Part):
    """Weight → conductance mapping of every layer."""

    section = "mapping"

    mapping = param.Selector(
        default="min_error", objects=list(METHODS), label="Mapping",
        doc="Weight → level method: linear, min_error, generalized or exact (no quantization).")
    scheme = param.Selector(
        default="offset", objects=list(SCHEMES), label="Cell scheme",
        doc="offset: one cell and a reference column; differential: a G+/G− pair; "
            "differential_full: both cells of the pair programmable.")
    snap_codebook = param.Boolean(
        default=False, label="Snap codebook to levels",
        doc="generalized only: move each codebook value to the nearest value the device's "
            "levels realise (discrete levels, like min_error) instead of writing any "
            "conductance in [G_0, G_{L-1}] by write-verify.")
    weight_slices = param.Integer(
        default=1, bounds=(1, 16), label="Weight slices",
        doc="Bit slicing (NeuroSim's cellBit): cell pairs per weight, each holding "
            "bits_per_cell bits of a weight_bits-bit weight, read and converted on its own "
            "and shift-added; 1 = no slicing, 1 … 16 (differential schemes only).")
    bits_per_cell = param.Integer(
        default=4, bounds=(1, 10), label="Bits per cell",
        doc="Bits each sliced cell holds (the device needs 2^bits levels), 1 … 10.")
    weight_bits = param.Integer(
        default=8, bounds=(1, 32), label="Weight bits",
        doc="Weight precision in bits when sliced (sign by the pair), 1 … 32; "
            "weight_slices × bits_per_cell must hold it.")
    scale = param.Selector(
        default="max", objects=list(SCALES), label="Weight scale",
        doc="max: w_max = max |w|; optimal: least-squares w_max alternated with the levels.")

    def check(self) -> None:
        if self.weight_slices > 1 and \
                self.weight_slices * self.bits_per_cell < self.weight_bits:
            raise InputError(
                f"weight_slices: {self.weight_slices} slice(s) × {self.bits_per_cell} bit(s) "
                f"per cell = {self.weight_slices * self.bits_per_cell} bits cannot hold "
                f"weight_bits = {self.weight_bits}; use at least "
                f"{-(-self.weight_bits // self.bits_per_cell)} slices")
