"""What the ADC sees and how real converters err (DESIGN.md §4).

``adc_input = "differential"`` (in :mod:`explorer.tiles`): the column current minus the
reference (offset scheme) or G⁻ (differential pair) current is subtracted in analog
and one signed conversion per weight column is made.

``adc_input = "per_column"`` (here), as DNN+NeuroSim does: every physical column is
converted on its own by an unsigned ADC and the subtraction is digital. The G⁺ column
of each weight, and either its G⁻ column (differential schemes) or its tile's
reference column (offset scheme: one per column tile, shared by the tile's columns)
are converted; the ADC range spans the column currents including their common mode
(calibrated on the noise-free cells like the differential range). The unsigned
``b``-bit converter has codes ``0 … 2^b − 1`` with step ``R / (2^b − 1)``, rounding and
saturating.

Converter errors (:class:`AdcErrors`), drawn once per Monte-Carlo trial for every
converter (one per row chunk and converted column): offset (σ in LSB), gain error
(relative σ) and integral nonlinearity, a bow ``inl · (1 − u²)`` in LSB over the
input range (u = −1 … 1; zero at the ends, largest mid-scale), all applied to the
analog input before rounding, so the output stays an integer code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from explorer.read_kernels import add_read_noise
from explorer.readnoise import ReadNoise, expand_shared, read_variance


@dataclass
class Columns:
    """The physical columns of one layer for ``per_column`` conversion (weight units).

    ``pos``: w_scale · G⁺ per weight (shaped like the weight); ``neg``: w_scale · G⁻
    (differential schemes) or None; ``reference``: w_scale · G_ref per row of the offset
    scheme's reference column, else None.
    """

    pos: Tensor
    neg: Tensor | None
    reference: float | None
    cache: dict[Any, Tensor] = field(default_factory=dict, repr=False)

    @property
    def shared_reference(self) -> bool:
        return self.neg is None

    def stacked(self, layer: Any) -> Tensor:
        """The converted columns as one weight: G⁺ columns, then G⁻ columns or one
        reference column per column tile."""
        if self.neg is not None:
            return torch.cat([self.pos, self.neg])
        tiles = -(-layer.out_features // layer.settings.tile_cols)
        ref = torch.full_like(self.pos[:1], float(self.reference)).expand(
            tiles, *self.pos.shape[1:])
        return torch.cat([self.pos, ref])

    def variances(self, layer: Any, noise: ReadNoise) -> Tensor:
        """Per-read variance per unit input² of every converted column's cells."""
        pos = noise.variance_pos if noise.variance_pos is not None else \
            torch.zeros_like(self.pos)
        if self.neg is not None:
            neg = noise.variance_neg if noise.variance_neg is not None else \
                torch.zeros_like(self.neg)
            return torch.cat([pos, neg])
        tiles = -(-layer.out_features // layer.settings.tile_cols)
        return torch.cat([pos, torch.full_like(pos[:1], noise.reference_variance).expand(
            tiles, *pos.shape[1:])])


@dataclass
class AdcErrors:
    """This trial's converter errors, one value per row chunk and converted column.

    ``offset`` (LSB), ``gain`` (relative) and ``inl`` (LSB at mid-scale), each ``[n, C]``.
    """

    offset: Tensor
    gain: Tensor
    inl: Tensor

    @classmethod
    def draw(cls, chunks: int, columns: int, offset_sigma: float, gain_sigma: float,
             inl_sigma: float, generator: torch.Generator, where: torch.device) -> AdcErrors:
        def normal(sigma: float) -> Tensor:
            n = torch.randn((chunks, columns), generator=generator, device=where)
            return n * sigma

        return cls(normal(offset_sigma), normal(gain_sigma), normal(inl_sigma))

    def apply_(self, steps: Tensor, bits: int, unsigned: bool = False) -> Tensor:
        """Convert ``steps`` ``[M, P, n, C]`` (analog input in LSB) in place to the
        codes this trial's converters give: gain, offset and INL, round, saturate."""
        top = float((1 << bits) - 1 if unsigned else max((1 << (bits - 1)) - 1, 1))
        steps.mul_(1.0 + self.gain).add_(self.offset)
        if bool(self.inl.any()):
            u = (steps * (2.0 / top) - 1.0) if unsigned else steps / top
            steps.add_(self.inl * (1.0 - u.clamp(-1.0, 1.0).square()))
        if unsigned:
            return steps.round_().clamp_(0.0, top)
        if bits == 1:
            return steps.copy_(torch.where(steps >= 0, 0.5, -0.5))
        return steps.round_().clamp_(-top, top)


def unsigned_top(bits: int) -> int:
    """Largest code of an unsigned ``bits``-bit converter, 2^b − 1."""
    return (1 << bits) - 1


def per_column_run(layer: Any, x: Tensor, calibrate: bool, noise: ReadNoise | None) -> Tensor:
    """The layer's output with every column converted on its own (module docstring)."""
    s = layer.settings
    columns: Columns | None = layer.columns
    if columns is None:
        raise RuntimeError(f"{layer.name}: adc_input='per_column' needs the layer's columns "
                           "(set by explorer.crossbar.to_crossbar)")
    bits = int(s.adc_bits)
    planes, coeffs = layer._planes(layer._prepare(x))
    n_planes = coeffs.numel()
    out_features = layer.out_features
    dac = layer._dac_step()
    if calibrate:
        stacked = columns.stacked(layer)
        sums = layer._psums(planes, layer._grouped(stacked * dac, n_planes), n_planes)
        sums = sums.view(sums.shape[0], n_planes, layer.plan.count, -1)
        layer.adc_range.fill_(layer._calibrated_adc_range(sums, stacked))
    step = _step(layer, bits)
    if not calibrate:
        key = ("grouped", dac, step, n_planes)
        if key not in columns.cache:
            for old in [k for k in columns.cache if k[0] == "grouped"]:
                del columns.cache[old]
            columns.cache[key] = layer._grouped(columns.stacked(layer) * (dac / step), n_planes)
        sums = layer._psums(planes, columns.cache[key], n_planes)
        sums = sums.view(sums.shape[0], n_planes, layer.plan.count, -1)
    else:
        sums.div_(step)
    errors: AdcErrors | None = None if calibrate else layer.adc_errors
    top = float(unsigned_top(bits))
    if noise is not None:  # noise, and the conversion too when the converters are ideal
        variance = read_variance(layer, lambda: columns.variances(layer, noise), noise,
                                  planes, dac / step, n_planes, sums.shape)
        sums = add_read_noise(sums, variance, _out_variance(layer, noise, dac / step),
                              noise.generator, None if errors is not None else (0.0, top))
    if errors is not None:
        errors.apply_(sums, bits, unsigned=True)
    elif noise is None:
        sums.round_().clamp_(0.0, top)
    combine = _combine_matrix(layer, columns, coeffs, sums) if sums.shape[1:3].numel() > 1 \
        else None  # one plane and chunk: a subtraction is faster than a thin product
    if combine is not None:  # subtraction, shift-add and chunk sum in one product
        flat = sums.view(sums.shape[0], -1)
        out = torch.addmm(layer.bias, flat, combine, alpha=step) if layer.bias is not None \
            else torch.mm(flat, combine).mul_(step)
        return layer._unrows(out, x.shape[0], x)
    pos, other = sums[..., :out_features], sums[..., out_features:]
    if columns.neg is None:
        other = expand_shared(other, out_features, s.tile_cols)
    digital = pos - other
    return layer._unrows(layer._accumulate(digital, coeffs, step), x.shape[0], x)


_COMBINE_LIMIT = 1 << 22  # entries of the combination matrix (16 MB in float32)


def _combine_matrix(layer: Any, columns: Columns, coeffs: Tensor, sums: Tensor
                    ) -> Tensor | None:
    """``[P·n·C, O]``: output o = Σ_p c_p Σ_n (code of its G⁺ column − code of its G⁻ or
    reference column), as one matrix (cached per layer); None when it would be large."""
    _, n_planes, chunks, converted = sums.shape
    out_features = layer.out_features
    if n_planes * chunks * converted * out_features > _COMBINE_LIMIT:
        return None
    key = ("combine", tuple(coeffs.tolist()), chunks, converted, sums.device, sums.dtype)
    if key not in columns.cache:
        one = torch.zeros(converted, out_features, dtype=sums.dtype, device=sums.device)
        index = torch.arange(out_features, device=sums.device)
        one[index, index] = 1.0
        other = out_features + (index if columns.neg is not None
                                else index // layer.settings.tile_cols)
        one[other, index] = -1.0
        matrix = coeffs.to(sums.dtype).view(-1, 1, 1, 1) * one.expand(
            n_planes, chunks, converted, out_features)
        columns.cache[key] = matrix.reshape(-1, out_features).contiguous()
    return columns.cache[key]


def _step(layer: Any, bits: int) -> float:
    full = float(layer.adc_range)
    return (full if full > 0 else 1.0) / unsigned_top(bits)


def _out_variance(layer: Any, noise: ReadNoise, scale: float) -> float:
    """Output-noise variance per conversion in ADC steps² (σ = out_noise × full scale)."""
    return (noise.out_sigma * layer.full_scale * scale / layer._dac_step()) ** 2


def sliced_run(layer: Any, x: Tensor, calibrate: bool, noise: ReadNoise | None) -> Tensor:
    """The output of a bit-sliced layer (:mod:`explorer.slicing`): every slice's column
    converted on its own (one signed conversion of the G⁺ − G⁻ current each), the codes
    shift-added digitally, ``Σ_j 2^(b·j) · code_j``."""
    from explorer.tiles import adc_levels, adc_quantize_

    s = layer.settings
    slices = layer.slices
    bits = int(s.adc_bits)
    planes, coeffs = layer._planes(layer._prepare(x))
    n_planes = coeffs.numel()
    dac = layer._dac_step()
    count = len(slices.shifts)
    if calibrate:
        stacked = slices.stacked
        sums = layer._psums(planes, layer._grouped(stacked * dac, n_planes), n_planes)
        sums = sums.view(sums.shape[0], n_planes, layer.plan.count, -1)
        layer.adc_range.fill_(layer._calibrated_adc_range(sums, stacked))
        sums.div_(layer._adc_step())
    else:
        step = layer._adc_step()
        key = ("grouped", dac, step, n_planes)
        if key not in slices.cache:
            slices.cache.clear()
            slices.cache[key] = layer._grouped(slices.stacked * (dac / step), n_planes)
        sums = layer._psums(planes, slices.cache[key], n_planes)
        sums = sums.view(sums.shape[0], n_planes, layer.plan.count, -1)
    errors: AdcErrors | None = None if calibrate else layer.adc_errors
    if noise is not None:  # signed conversions; 1 bit is a comparator, converted below
        variance = read_variance(layer, lambda: noise.slice_variance, noise, planes,
                                  dac / step, n_planes, sums.shape)
        top = float(adc_levels(bits))
        ideal = errors is None and bits > 1
        sums = add_read_noise(sums, variance, _out_variance(layer, noise, dac / step),
                              noise.generator, (-top, top) if ideal else None)
    if errors is not None:
        errors.apply_(sums, bits)
    elif noise is None or bits == 1:
        adc_quantize_(sums, bits)
    rows, _, chunks, _ = sums.shape
    shifts = torch.tensor(slices.shifts, dtype=sums.dtype, device=sums.device).view(-1, 1)
    combined = (sums.view(rows, n_planes, chunks, count, -1) * shifts).sum(3)
    return layer._unrows(layer._accumulate(combined, coeffs, layer._adc_step()), x.shape[0], x)
