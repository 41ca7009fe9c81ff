"""How weights become conductance levels (DESIGN.md §2): method, cell scheme, scale."""

from __future__ import annotations

import param

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
    scale = param.Selector(
        default="max", objects=list(SCALES), label="Weight scale",
        doc="max: w_max = max |w|; optimal: least-squares w_max alternated with the levels.")
