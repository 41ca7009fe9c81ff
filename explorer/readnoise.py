"""Per-read noise of a tiled layer (DESIGN.md §3): fresh draws for every read.

A *read* is one input vector (one image position, one bit plane, one signed pass)
applied to one row chunk; its column current goes to the converter. Every read gets
its own random numbers, so the noise is independent of the batch size, differs
between identical images of one batch and is redrawn for every bit plane.

Conductance read noise is Gaussian and relative, G·(1 + σ·N) per cell and read. For
one read of one column the partial sum ``s = Σ_r x_r · w_r`` then becomes, exactly in
distribution,

    s + sqrt(Σ_r x_r² · v_r) · N,     v_r = (σ · w_scale)² · (G⁺_r² + G⁻_r²)

(weight² units; both cells of a differential pair are read), one extra product of the
squared inputs with ``v`` per layer instead of a noisy copy of the weights per read.
The offset scheme's reference column is read too: its noise ``(σ·w_scale·G_ref)²``
per row enters every column of a column tile with the *same* draw (they subtract the
same reference current). Output noise (aihwkit's ``out_noise``) is added per
conversion, before the ADC, with σ = ``out_noise`` × the full-scale partial sum.

Unlike the old per-pass form, conductances are not clipped at 0 S for a read: with
σ ≤ 0.2 a negative conductance needs a 5σ draw, and the one-product form has no
per-cell value to clip.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


@dataclass
class ReadNoise:
    """The per-read noise of one tiled layer, in the layer's weight units.

    ``variance_pos`` / ``variance_neg``: per weight, the variance one read adds to the
    G⁺ / G⁻ column's partial sum per unit input² (weight², shaped like the weight;
    ``None`` for no conductance read noise; ``variance_neg`` None also for the offset
    scheme). ``reference_variance``: per row, the offset scheme's reference column
    (weight²; 0 for none). ``out_sigma``: output noise σ per conversion as a fraction
    of the full-scale partial sum. ``generator`` lives on the weights' device.
    """

    variance_pos: Tensor | None
    variance_neg: Tensor | None
    reference_variance: float
    out_sigma: float
    generator: torch.Generator
    cache: dict[Any, Tensor] = field(default_factory=dict, repr=False)
    slice_variance: Tensor | None = None  # bit slicing: per slice column, stacked [k·O, …]

    @property
    def active(self) -> bool:
        return self.variance_pos is not None or self.out_sigma > 0

    def variance(self) -> Tensor | None:
        """Variance of the (differential) weight per unit input²: G⁺ and G⁻ cells."""
        if self.variance_pos is None:
            return None
        if self.variance_neg is None:
            return self.variance_pos
        return self.variance_pos + self.variance_neg

    def normal(self, shape: tuple[int, ...], like: Tensor) -> Tensor:
        """Fresh standard normals on ``like``'s device from this layer's generator."""
        return torch.randn(shape, generator=self.generator, device=like.device, dtype=like.dtype)


def read_noise_for(sigma: float, out_sigma: float, w_scale: float, g_pos: Tensor,
                   g_neg: Tensor | None, g_reference: float | None,
                   generator: torch.Generator) -> ReadNoise | None:
    """The :class:`ReadNoise` of a layer whose cells hold ``g_pos`` / ``g_neg`` (S).

    ``g_neg`` None with ``g_reference`` (S) for the offset scheme. None when nothing is
    drawn (σ = 0 and no output noise).
    """
    if not sigma and not out_sigma:
        return None
    scale = (sigma * w_scale) ** 2
    var_pos = scale * g_pos.float().square() if sigma else None
    var_neg = scale * g_neg.float().square() if sigma and g_neg is not None else None
    ref = scale * float(g_reference) ** 2 if sigma and g_reference is not None else 0.0
    return ReadNoise(var_pos, var_neg, ref, float(out_sigma), generator)


def expand_shared(draws: Tensor, columns: int, tile_cols: int) -> Tensor:
    """Draws per column tile (last axis) repeated for each of its columns (last axis
    ``columns``): one reference column serves the ``tile_cols`` columns of its tile."""
    if draws.shape[-1] == 1:
        return draws
    return draws.repeat_interleave(tile_cols, dim=-1)[..., :columns]


def column_tiles(columns: int, tile_cols: int) -> int:
    return math.ceil(columns / tile_cols)


def squared_planes(codes: Tensor, bit_serial: bool) -> Tensor:
    """Σ_p c_p² · x_p² per input of the DAC codes (signed passes and bit planes read
    separately): the input factor of the summed per-read variance when all planes
    and chunks are added without an ADC in between."""
    if not bit_serial:
        return codes.square()
    ints = codes.abs().to(torch.int64)
    out = torch.zeros_like(codes)
    bits = int(ints.max()).bit_length() if ints.numel() else 0
    for b in range(bits):  # ≤ 16 bit planes, vectorised over everything else
        out += ((ints >> b) & 1).to(codes.dtype) * float(4 ** b)
    return out


def _conversions_per_output(layer: Any) -> float:
    """Σ_p c_p² over the input planes of one output: the factor of the summed output noise
    variance (bit plane p weighs 2^p; two signed passes each converted)."""
    s = layer.settings
    planes = (4 ** int(s.dac_bits) - 1) / 3 if s.bit_serial else 1.0
    return planes * (2 if layer.signed_input else 1)


def add_summed_noise(layer: Any, out: Tensor, codes: Tensor, noise: ReadNoise) -> Tensor:
    """The layer output ``out`` of an ideal ADC plus its per-read noise summed over the
    row chunks and input planes (independent Gaussians add up exactly).

    ``codes``: the DAC codes of the layer input (or the inputs for an ideal DAC).
    Returns a new tensor shaped like ``out``.
    """
    from explorer.read_kernels import add_read_noise

    s = layer.settings
    dac2 = layer._dac_step() ** 2
    q = squared_planes(codes, s.bit_serial)
    shared = s.cells_per_weight == 1  # offset scheme: one reference column per column tile
    per_column = s.adc_input == "per_column"
    conversions = _conversions_per_output(layer) * layer.plan.count
    if layer.slices is not None:  # each slice converted, weighted by its shift²
        conversions *= sum(shift ** 2 for shift in layer.slices.shifts)
    out_var = conversions * (noise.out_sigma * layer.full_scale) ** 2
    own_out = out_var * (2 if per_column and not shared else 1)
    shared_out = out_var if per_column and shared else 0.0
    variance = noise.variance()
    if noise.reference_variance or shared_out:
        ones = torch.full_like(layer.weight[:1], noise.reference_variance * dac2)
        ref = layer._full(q, ones, bias=False).add_(shared_out).sqrt_()  # [B, 1, …]
        shape = (ref.shape[0], column_tiles(layer.out_features, s.tile_cols), *ref.shape[2:])
        draw = (noise.normal(shape, ref) * ref).movedim(1, -1)
        out = out + expand_shared(draw, layer.out_features, s.tile_cols).movedim(-1, 1)
    own = layer._full(q, variance * dac2, bias=False) if variance is not None else None
    return add_read_noise(out, own, own_out, noise.generator)  # elementwise in logical order


def read_variance(layer: Any, variances: Callable[[], Tensor | None], noise: ReadNoise,
                   planes: Tensor, scale: float, n_planes: int, shape: torch.Size
                   ) -> Tensor | None:
    """Per-read conductance-noise variance (ADC steps²) of every converted column: the
    squared input planes (DAC codes) times the cells' variances, shaped ``shape`` like
    the partial sums. ``variances()`` gives the cells' per unit input² (weight²; None
    without conductance read noise), called only when the cache is cold; ``scale`` is
    DAC step / ADC step."""
    if noise.variance_pos is None and noise.slice_variance is None:
        return None
    key = ("variance", scale, n_planes)
    if key not in noise.cache:
        cells = variances()
        if cells is None:
            return None
        noise.cache.clear()
        noise.cache[key] = layer._grouped(cells * scale ** 2, n_planes)
    squared = planes if layer.settings.bit_serial else planes.square()
    return layer._psums(squared, noise.cache[key], n_planes).view(shape)


def add_chunk_noise(layer: Any, sums: Tensor, planes: Tensor, noise: ReadNoise,
                    quantize: bool) -> Tensor:
    """Every chunk partial sum ``sums`` ``[M, P, n, O]`` (ADC steps) plus one read's noise,
    before the ADC; ``planes`` the stacked input planes (DAC codes). With ``quantize``
    the result is also converted by the ideal signed ADC (rounded, saturated) in the
    same pass. Returns a new tensor (or ``sums`` itself, changed)."""
    from explorer.read_kernels import add_read_noise
    from explorer.tiles import adc_levels, adc_quantize_

    s = layer.settings
    rows, n_planes, chunks, columns = sums.shape

    def cells() -> Tensor | None:  # G⁺ and G⁻ cells, then the reference column's
        v = noise.variance()
        if v is not None and noise.reference_variance:
            v = torch.cat([v, torch.full_like(v[:1], noise.reference_variance)])
        return v

    var = read_variance(layer, cells, noise, planes, layer._dac_step() / layer._adc_step(),
                        n_planes, torch.Size((rows, n_planes, chunks, -1)))
    own: Tensor | None = None
    if var is not None:
        own = var[..., :columns].contiguous() if noise.reference_variance else var
        if noise.reference_variance:  # one draw per read for the column tile's reference
            tiles = column_tiles(columns, s.tile_cols)
            ref = var[..., columns:].sqrt() * noise.normal((rows, n_planes, chunks, tiles), sums)
            sums.add_(expand_shared(ref, columns, s.tile_cols))
    out_variance = (noise.out_sigma * layer.full_scale / layer._adc_step()) ** 2
    if own is None and not out_variance:
        return adc_quantize_(sums, int(s.adc_bits)) if quantize else sums
    top = float(adc_levels(int(s.adc_bits)))
    return add_read_noise(sums, own, out_variance, noise.generator,
                          (-top, top) if quantize else None)
