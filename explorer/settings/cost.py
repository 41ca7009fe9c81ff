"""What the hardware costs (DESIGN.md §9): technology node, ADC type and sharing, and the
file of component constants (:mod:`explorer.cost` reads it)."""

from __future__ import annotations

import param

from explorer.settings.base import Part

TECH_NODES = (22, 32, 45, 65)
ADC_TYPES = ("sar", "mlsa")


class CostSettings(Part):
    """Technology and converter choices behind energy, latency and area per image."""

    section = "cost"
    title = "Technology & cost model"  # the page's "Cost" tab shows the figures

    tech_node = param.Selector(
        default=22, objects=list(TECH_NODES), label="Technology node (nm)",
        doc="CMOS technology node of the periphery in nm (22, 32, 45 or 65; low-power "
            "devices, DNN+NeuroSim V1.3's numbers).")
    adc_type = param.Selector(
        default="sar", objects=list(ADC_TYPES), label="ADC type",
        doc="sar: successive-approximation ADC, (bits + 1) cycles of 1 ns per conversion; "
            "mlsa: multilevel current sense amplifier, 2^bits − 1 comparators, 1 ns.")
    cols_per_adc = param.Integer(
        default=8, bounds=(1, 1024), softbounds=(1, 128), label="Columns per ADC",
        doc="Bit lines sharing one ADC through a multiplexer (NeuroSim's numColMuxed, "
            "default 8): converted one after the other, so it sets the read latency; "
            "1 … 1024.")
    cost_constants = param.String(
        default="", label="Cost constants file",
        doc="JSON file of component constants (energies in J, areas in F², times in s) "
            "replacing the bundled assets/cost_constants.json; empty = the bundled one.")

    def check(self) -> None:
        from explorer.cost_constants import load_constants

        load_constants(self.cost_constants)
