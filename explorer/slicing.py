"""Bit slicing (DESIGN.md §4, NeuroSim's cellBit): a weight of B bits over k cells.

The magnitude of each weight is quantised to an integer ``q = round(|w|/w_max · (2^B − 1))``
and written as k digits of b bits (``q = Σ_j d_j · 2^(b·j)``, j = 0 the least significant),
digit j in slice j's cell pair (differential scheme: the sign picks G⁺ or G⁻, the other
cell stays at G_0). Digit d is written to level ``round(d · (L − 1)/(2^b − 1))`` of the
device, so on a nonlinear device each digit is realised as ``(2^b − 1) · d_level``. Each
slice's column is read and converted on its own and the slices are shift-added
digitally, ``y = Σ_j 2^(b·j) · ADC(Σ x · slice_j)``.

Only differential pairs are modelled (the offset scheme would need a reference column
per slice, which is not modelled here).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from explorer.device import DeviceModel
from explorer.errors import InputError
from explorer.mapping import MIN_SCALE, MappingResult
from explorer.readnoise import ReadNoise


@dataclass
class SlicedMapping(MappingResult):
    """A bit-sliced layer: ``g_pos`` / ``g_neg`` / ``indices`` have a leading slice axis
    ``[k, *w.shape]``; ``w_scale`` is one slice's unit (weight units per S)."""

    slices: int = 1
    bits_per_cell: int = 1
    weight_bits: int = 1

    def shifts(self, like: Tensor) -> Tensor:
        """2^(b·j) per slice, shaped to broadcast over ``[k, *w.shape]``."""
        values = [float(1 << (self.bits_per_cell * j)) for j in range(self.slices)]
        return torch.tensor(values, dtype=like.dtype, device=like.device).view(
            -1, *([1] * (like.dim() - 1)))

    def slice_values(self, g_pos: Tensor, g_neg: Tensor) -> Tensor:
        """Each slice's weight (weight units, ``[k, *w.shape]``), before its shift."""
        return self.w_scale * (g_pos - g_neg)

    def to_weight(self, g_pos: Tensor, g_neg: Tensor) -> Tensor:
        """The shift-added weight Σ_j 2^(b·j) · w_scale · (G⁺_j − G⁻_j)."""
        return (self.slice_values(g_pos, g_neg) * self.shifts(g_pos)).sum(0)

    def transfer_curve(self, points: int = 257) -> tuple[np.ndarray, np.ndarray]:
        raise InputError("transfer_curve: not available for bit-sliced weights")


@dataclass
class Slices:
    """A layer's slices for conversion: ``values`` ``[k, *w.shape]`` (weight units) and
    the shift of each, 2^(b·j)."""

    values: Tensor
    shifts: tuple[float, ...]
    cache: dict = field(default_factory=dict, repr=False)

    @property
    def stacked(self) -> Tensor:
        """The slices as one weight of k·O columns (slice j's columns j·O … (j+1)·O − 1)."""
        return self.values.reshape(-1, *self.values.shape[2:])


def check_slicing(slices: int, bits_per_cell: int, weight_bits: int,
                  levels: int | None = None) -> None:
    """InputError unless k slices of b bits hold B weight bits (and the cell 2^b levels)."""
    if slices * bits_per_cell < weight_bits:
        raise InputError(f"weight_slices: {slices} slice(s) × {bits_per_cell} bit(s) per cell "
                         f"= {slices * bits_per_cell} bits cannot hold weight_bits = "
                         f"{weight_bits}; use at least {-(-weight_bits // bits_per_cell)} "
                         "slices")
    if levels is not None and levels < (1 << bits_per_cell):
        raise InputError(f"bits_per_cell: {bits_per_cell} bits need {1 << bits_per_cell} "
                         f"levels per cell; the device has {levels}")


def slice_weights(w: Tensor, device: DeviceModel, slices: int, bits_per_cell: int,
                  weight_bits: int, method: str = "linear",
                  scheme: str = "differential") -> SlicedMapping:
    """Map ``w`` onto ``slices`` cell pairs of ``bits_per_cell`` bits each (module doc)."""
    check_slicing(slices, bits_per_cell, weight_bits, device.levels)
    wf = w.detach().float()
    if not torch.isfinite(wf).all():
        raise InputError("weights: contain NaN or inf")
    s = max(float(wf.abs().max()) if wf.numel() else 0.0, MIN_SCALE)
    top = (1 << weight_bits) - 1
    base = 1 << bits_per_cell
    q = torch.round(wf.abs() / s * top).clamp_(0, top).to(torch.int64)
    shifts = torch.arange(slices, device=wf.device).view(-1, *([1] * wf.dim())) * bits_per_cell
    digits = torch.bitwise_and(torch.bitwise_right_shift(q.unsqueeze(0), shifts), base - 1)
    levels = device.levels
    index = torch.round(digits.double() * (levels - 1) / (base - 1)).to(torch.int64)
    g = torch.as_tensor(device.conductances(), dtype=torch.float32, device=wf.device)
    zero = torch.zeros_like(index)
    positive = (wf >= 0).unsqueeze(0)
    idx_pos = torch.where(positive, index, zero)
    idx_neg = torch.where(positive, zero, index)
    g_pos, g_neg = g[idx_pos], g[idx_neg]
    span = float(g[-1] - g[0])
    w_scale = s * (base - 1) / (top * span)
    result = SlicedMapping(
        w=wf, w_hat=wf, error=wf, g_pos=g_pos, g_neg=g_neg, w_scale=w_scale,
        neg_is_reference=False, indices=idx_pos, codebook=None, w_max=s, method=method,
        scheme=scheme, indices_neg=idx_neg, device=device, slices=slices,
        bits_per_cell=bits_per_cell, weight_bits=weight_bits)
    result.w_hat = result.to_weight(g_pos, g_neg)
    result.error = result.w_hat - wf
    return result


def sliced_read_noise(m: SlicedMapping, sigma: float, out_sigma: float, g_pos: Tensor,
                      g_neg: Tensor, generator: torch.Generator) -> ReadNoise | None:
    """Per-read noise of a sliced layer: per slice column (for its own conversion) and,
    for an ideal ADC, summed over the slices with their shifts², Σ_j 4^(b·j) · v_j."""
    if not sigma and not out_sigma:
        return None
    per = (sigma * m.w_scale) ** 2 * (g_pos.float().square() + g_neg.float().square())
    effective = (per * m.shifts(per).square()).sum(0) if sigma else None
    noise = ReadNoise(effective, None, 0.0, float(out_sigma), generator)
    noise.slice_variance = per.reshape(-1, *per.shape[2:]) if sigma else None
    return noise
