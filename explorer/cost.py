"""Energy, latency and area per image of a network on crossbars (DESIGN.md §9).

From each analog layer's counters (:meth:`explorer.tiles.TiledLayer.counters`), its
programmed conductances and the inputs it saw during calibration (per word line: Σ over
reads of the applied input, :attr:`~explorer.tiles.TiledLayer.input_stats`), with
component models from DNN+NeuroSim V1.3 and the constants of
``assets/cost_constants.json`` (each entry names its NeuroSim source):

* **ADC**, per conversion: SAR ``E = P·t``, ``P = a·b + c`` (W), ``t = (b + 1)`` cycles of
  1 ns; multilevel sense amplifier (current mode) ``P = m·(2^b − 1)``, ``t = 1 ns``; both
  plus NeuroSim's column term ``k / R_col`` (W), ``1/R_col`` the column conductance the
  converter sees (scaled by ``V_read / 0.5 V``) – summed here over conversions as
  ``Σ_reads Σ_i a_i·G_i`` (data-dependent, current-equivalent).
* **DAC and word-line drivers**, per row activation with a non-zero input: the row wire
  (``tile_cols × 12 F_cell × 0.2 fF/µm``) charged to ``a·V_read`` from ``V_read``, and one
  transmission gate per input bit switched at ``VDD``.
* **Array read**: ``Σ over reads of V²·G·t_read`` over every driven cell, ``V = a·V_read``
  (amplitude DAC: ``a`` = code / max code; bit-serial: ``a`` = the bit), the reference
  column of the offset scheme included.
* **Shift-add and accumulation**: per conversion one add and one register write of
  ``b + shift + log2(partial sums per output)`` bits (NeuroSim's adder and DFF energies
  with their switching activities).
* **Latency**: layer by layer, ``reads × (t_read + m·t_ADC)`` with ``m = min(cols_per_adc,
  columns converted per tile)`` columns sharing one ADC one after the other.
* **Area**: cells (1T1R, 4 F × 12 F of the array's feature size) of every tile, ADCs
  (``ceil(columns / cols_per_adc)`` per tile; NeuroSim's transistor counts), shift-add
  (adder + register per ADC), drivers (per tile row).

TOPS/W counts 2 operations per multiply-accumulate of the original layer.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from explorer.cost_constants import load_constants
from explorer.errors import InputError

COMPONENTS = ("adc", "dac_wl", "array", "shift_add")
"""Energy and area components (the keys of the breakdowns)."""


# ----------------------------------------------------------------------------- components
def _node(c: dict[str, float], node: int, key: str) -> float:
    return c[f"nodes.{node}.{key}"]


def adc_time(bits: int, adc_type: str, c: dict[str, float]) -> float:
    """Seconds per conversion: SAR ``(b + 1)`` cycles, MLSA one sensing time."""
    if adc_type == "sar":
        return (bits + 1) * c["sar_cycle_s"]
    return c["mlsa_time_s"]


def adc_power(bits: int, adc_type: str, node: int, c: dict[str, float]) -> float:
    """Watts while converting, without the column term: SAR ``a·b + c``, MLSA
    ``m·(2^b − 1)``."""
    if adc_type == "sar":
        return _node(c, node, "sar_power_per_bit_w") * bits + _node(c, node, "sar_power_offset_w")
    return _node(c, node, "mlsa_power_per_level_w") * ((1 << bits) - 1)


def adc_energy(bits: int, adc_type: str, node: int, c: dict[str, float],
               column_conductance: float = 0.0) -> float:
    """Joules of one conversion; ``column_conductance`` (S) adds NeuroSim's ``k / R_col``
    term (0: without it)."""
    k = _node(c, node, f"{adc_type}_column_term_v2")
    scale = c["read_voltage_v"] / c["column_term_read_voltage_v"]
    power = adc_power(bits, adc_type, node, c) + k * column_conductance * scale
    return power * adc_time(bits, adc_type, c)


def unit_gate_cap(node: int, c: dict[str, float]) -> float:
    """Input capacitance (F) of a minimum inverter: (capIdealGate + capFringe) × the
    NMOS and PMOS widths (``MIN_NMOS_SIZE·F``, PMOS ``pnSizeRatio`` times wider)."""
    per_m = _node(c, node, "cap_ideal_gate_f_per_m") + _node(c, node, "cap_fringe_f_per_m")
    width = c["min_nmos_width_f"] * node * 1e-9
    return per_m * width * (1 + _node(c, node, "pn_size_ratio"))


def digital_bit_energy(node: int, c: dict[str, float]) -> float:
    """Joules per bit of one add plus one register write (activities included)."""
    cv2 = unit_gate_cap(node, c) * _node(c, node, "vdd_v") ** 2
    return cv2 * (c["adder_caps_per_bit"] * c["adder_activity"]
                  + c["dff_caps_per_bit"] * c["dff_activity"])


def adc_area(bits: int, adc_type: str, node: int, c: dict[str, float]) -> float:
    """m² of one ADC."""
    f2 = (node * 1e-9) ** 2 * c["gate_area_f2"]
    if adc_type == "sar":
        count = (c["sar_nmos_base"] + c["sar_nmos_per_bit"] * (bits - 1)
                 + c["sar_pmos_base"] + c["sar_pmos_per_bit"] * (bits - 1))
    else:
        count = c["mlsa_transistors_per_level"] * ((1 << bits) - 1)
    return count * f2


# ----------------------------------------------------------------------------- results
@dataclass
class LayerCost:
    """One layer's cost per image: energies (pJ) and areas (mm²) by component."""

    energy_pj: dict[str, float]
    latency_ns: float
    adc_latency_ns: float
    area_mm2: dict[str, float]
    ops: float
    adcs: int
    adc_column_term_pj: float

    @property
    def energy_total_pj(self) -> float:
        return sum(self.energy_pj.values())


@dataclass
class CostReport:
    """Energy (pJ), latency (ns) and area (mm²) per image, per layer and for the network."""

    layers: dict[str, LayerCost]
    energy_pj_per_image: float
    energy_breakdown_pj: dict[str, float]
    latency_ns_per_image: float
    adc_latency_ns_per_image: float
    area_mm2: float
    area_breakdown_mm2: dict[str, float]
    tops_per_w: float
    tops_per_mm2: float
    ops_per_image: float
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name, layer in self.layers.items():
            out["layers"][name]["energy_total_pj"] = layer.energy_total_pj
        return out

    def summary(self) -> dict[str, Any]:
        """The keys ``explorer evaluate --json`` / ``explorer cost --json`` print at the top."""
        return {"energy_pj_per_image": self.energy_pj_per_image,
                "energy_breakdown_pj": dict(self.energy_breakdown_pj),
                "latency_ns_per_image": self.latency_ns_per_image,
                "area_mm2": self.area_mm2, "tops_per_w": self.tops_per_w,
                "tops_per_mm2": self.tops_per_mm2}


# ----------------------------------------------------------------------------- estimate
def _row_conductance(layer: Any, column_tiles: int) -> torch.Tensor:
    """Σ over the physical columns of each word line's conductance (S), reference column
    of the offset scheme (one per column tile) included: ``[rows]``, float64, CPU. A
    grouped convolution's word line meets only its group's columns (``column_tiles``:
    those a word line spans)."""
    out, groups = layer.out_features, int(getattr(layer, "groups", 1))
    g_pos = layer.g_pos.detach().reshape(groups, out // groups, -1).double().cpu()
    g_neg = layer.g_neg.detach().reshape(groups, out // groups, -1).double().cpu()
    if layer.mapping.neg_is_reference:
        return (g_pos.sum(1) + column_tiles * g_neg.mean(1)).reshape(-1)
    return (g_pos.sum(1) + g_neg.sum(1)).reshape(-1)


def layer_cost(layer: Any, cfg: Any, c: dict[str, float]) -> tuple[LayerCost, list[str]]:
    """The cost per image of one analog layer (calibrated) under ``cfg``'s cost settings."""
    s = layer.settings
    stats = layer.input_stats
    if not stats:
        raise InputError(f"cost: layer {layer.name!r} has no input statistics; build the "
                         "crossbar with calibration images (to_crossbar(..., calibration=))")
    counts = layer.counters()
    node, kind = int(cfg.tech_node), str(cfg.adc_type)
    reads, tiles = counts["reads"], counts["tiles"]
    chunks, col_tiles = counts["row_chunks"], counts["column_tiles"]
    conversions, planes = counts["adc_conversions"], counts["planes"]
    notes: list[str] = []
    v_read, t_read = c["read_voltage_v"], c["read_pulse_s"]
    rows_g = _row_conductance(layer, col_tiles)
    act = stats["act"].double().cpu()
    act_sq = stats["act_sq"].double().cpu()
    active = stats["active"].double().cpu()

    array_j = v_read ** 2 * t_read * float((act_sq * rows_g).sum())
    seen_g = float((act * rows_g).sum())  # Σ over reads of Σ_i a_i·G_i (S)
    per_tile = math.ceil(layer.out_features / col_tiles)  # columns converted per tile
    mux = min(int(cfg.cols_per_adc), per_tile)
    adcs = chunks * col_tiles * math.ceil(per_tile / int(cfg.cols_per_adc))
    f2 = (node * 1e-9) ** 2
    bits = s.adc_bits
    if bits is None:
        adc_j = column_j = shift_j = 0.0
        t_conv = 0.0
        adc_m2 = shift_m2 = 0.0
        notes.append(f"{layer.name}: ideal ADC (adc_bits None): no ADC, shift-add energy, "
                     "latency or area counted")
    else:
        t_conv = adc_time(bits, kind, c)
        k = _node(c, node, f"{kind}_column_term_v2")
        column_j = k * seen_g * (v_read / c["column_term_read_voltage_v"]) * t_conv
        adc_j = conversions * adc_energy(bits, kind, node, c) + column_j
        shift = int(s.dac_bits) - 1 if s.bit_serial else 0
        width = bits + shift + math.ceil(math.log2(max(1, chunks * planes)))
        shift_j = conversions * width * digital_bit_energy(node, c)
        adc_m2 = adcs * adc_area(bits, kind, node, c)
        shift_m2 = adcs * width * (c["adder_area_f2_per_bit"] + c["dff_area_f2_per_bit"]) * f2

    switches = 1 if (s.bit_serial or s.dac_bits is None) else int(s.dac_bits)
    if s.dac_bits is None:
        notes.append(f"{layer.name}: analog inputs (dac_bits None): drivers counted as "
                     "one switch per row activation")
    cell_f = _node(c, node, "cell_feature_m")
    row_cap = s.tile_cols * c["cell_width_f"] * cell_f * c["wire_cap_f_per_m"]
    switch_j = c["driver_switch_caps"] * unit_gate_cap(node, c) * _node(c, node, "vdd_v") ** 2
    dac_j = col_tiles * (row_cap * v_read ** 2 * float(act.sum())
                         + switches * switch_j * float(active.sum()))

    cell_m2 = c["cell_width_f"] * c["cell_height_f"] * cell_f ** 2
    area = {"adc": adc_m2 * 1e6,
            "dac_wl": tiles * s.tile_rows * switches * c["driver_area_f2_per_row"] * f2 * 1e6,
            "array": tiles * s.tile_rows * s.tile_cols * cell_m2 * 1e6,
            "shift_add": shift_m2 * 1e6}
    energy = {"adc": adc_j * 1e12, "dac_wl": dac_j * 1e12, "array": array_j * 1e12,
              "shift_add": shift_j * 1e12}
    adc_latency = reads * mux * t_conv
    return LayerCost(
        energy_pj=energy, latency_ns=(reads * t_read + adc_latency) * 1e9,
        adc_latency_ns=adc_latency * 1e9, area_mm2=area,
        ops=2.0 * layer.out_features * layer.plan.rows * counts["positions"], adcs=adcs,
        adc_column_term_pj=column_j * 1e12), notes


def estimate(analog: Any, cfg: Any = None) -> CostReport:
    """Energy, latency and area per image of a calibrated :class:`~explorer.crossbar.
    CrossbarModel` under the cost settings of ``cfg`` (default: the model's config)."""
    cfg = analog.config if cfg is None else cfg
    c = load_constants(cfg.cost_constants)
    layers: dict[str, LayerCost] = {}
    notes: list[str] = []
    for name, layer in analog.analog_layers():
        layers[name], layer_notes = layer_cost(layer, cfg, c)
        notes.extend(layer_notes)
    energy = {k: sum(layer.energy_pj[k] for layer in layers.values()) for k in COMPONENTS}
    area = {k: sum(layer.area_mm2[k] for layer in layers.values()) for k in COMPONENTS}
    total_pj = sum(energy.values())
    latency = sum(layer.latency_ns for layer in layers.values())
    total_mm2 = sum(area.values())
    ops = sum(layer.ops for layer in layers.values())
    tops_w = ops / (total_pj * 1e-12) / 1e12 if total_pj > 0 else 0.0
    tops_mm2 = ops / (latency * 1e-9) / 1e12 / total_mm2 if latency > 0 and total_mm2 > 0 \
        else 0.0
    return CostReport(
        layers=layers, energy_pj_per_image=total_pj, energy_breakdown_pj=energy,
        latency_ns_per_image=latency,
        adc_latency_ns_per_image=sum(layer.adc_latency_ns for layer in layers.values()),
        area_mm2=total_mm2, area_breakdown_mm2=area, tops_per_w=tops_w,
        tops_per_mm2=tops_mm2, ops_per_image=ops,
        settings={"tech_node": int(cfg.tech_node), "adc_type": cfg.adc_type,
                  "cols_per_adc": int(cfg.cols_per_adc),
                  "cost_constants": cfg.cost_constants or "bundled"},
        notes=sorted(set(n.split(": ", 1)[1] for n in notes)))


__all__ = ["COMPONENTS", "CostReport", "LayerCost", "adc_area", "adc_energy", "adc_power",
           "adc_time", "digital_bit_energy", "estimate", "layer_cost", "unit_gate_cap"]
