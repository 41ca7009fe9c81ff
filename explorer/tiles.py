"""Tiled crossbar matrix–vector products: row chunks, DAC, ADC, digital accumulation.

This is the engine behind :mod:`explorer.crossbar` (DESIGN.md §4). It knows nothing
about devices or mapping: a layer gets an *effective analog weight* (weight units, the
realised ``w_scale · (G⁺ − G⁻)``) and computes what a tiled crossbar reads out.

* A layer is a matrix of ``in·kh·kw`` rows (word lines, im2col order) by ``out``
  columns. Rows are split into :class:`RowChunks` of at most ``tile_rows`` word lines
  read at once. Convolutions keep whole input channels in a chunk (kernel-unrolled, as
  NeuroSim maps them); when one channel's ``kh·kw`` rows do not fit a tile, its kernel
  positions are split (raster order) over several chunks. Chunks are *balanced*:
  ``n = ceil(C / floor(tile_rows / kh·kw))`` chunks of ``ceil(C / n)`` channels (the last
  may hold fewer), so the number of tiles is the least possible and each tile is used
  evenly. ``RowChunks.sizes`` records the word lines used in each chunk.
* All chunks are computed at once: one grouped convolution (``groups = chunks``, input
  in ``channels_last``) or one batched matmul; bit-planes and the two passes of signed
  inputs are stacked on the batch axis. No Python loop over chunks, planes or images.
* DAC: inputs quantised to ``dac_bits`` on ``[0, X]`` (unsigned, after ReLU) with ``X``
  calibrated per layer (max |x| of a calibration batch). Signed inputs (the first layer
  of the CIFAR nets) are split into two unsigned passes, ``x = x⁺ − x⁻``. Bit-serial
  inputs apply one bit-plane per cycle.
* ADC: each chunk's column partial sum (per plane) is quantised: ``adc_bits`` ≥ 2 is a
  symmetric mid-tread converter with ``2^b − 1`` codes ``k·R/(2^(b−1) − 1)``,
  ``|k| ≤ 2^(b−1) − 1``, saturating at ``±R``; ``adc_bits = 1`` is a comparator that reads
  ``±R/2`` (zero reads as positive). ``R`` per layer: ``max`` |partial sum| of the
  calibration batch, its ``percentile``, or ``fixed``: a fraction of the full-scale sum
  (all used rows of the largest chunk at full input and full weight).
  ``adc_bits = None`` is an ideal converter; chunking is then exact and skipped.
* Per-read noise (:mod:`explorer.readnoise`): a fresh draw for every partial sum before
  the ADC (with an ideal ADC, summed over chunks and planes in closed form).
  ``adc_input = "per_column"`` and bit slicing convert several physical columns per
  weight (:mod:`explorer.converters`).
* Partial sums are accumulated digitally (shift-add over bit-planes), bias added.

Columns are independent, so column tiles (``tile_cols``) only change the counters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from explorer.errors import InputError
from explorer.settings.converters import ADC_INPUTS, ADC_RANGES, MAX_BITS

_PERCENTILE_SAMPLE = 1 << 22  # partial sums used for a percentile (strided subsample above)
_NARROW_COLUMNS = 32  # up to this many columns, chunk sums are a matrix product


@dataclass(frozen=True)
class TileSettings:
    """Tile geometry and converters of a crossbar (bits, word lines, columns).

    ``cells_per_weight`` (1 for the offset scheme, 2 for differential pairs) only
    enters the counters.
    """

    tile_rows: int = 128
    tile_cols: int = 128
    dac_bits: int | None = None
    adc_bits: int | None = None
    adc_range: str = "max"
    adc_percentile: float = 99.99
    adc_fixed_range: float = 1.0
    bit_serial: bool = False
    cells_per_weight: int = 1
    adc_input: str = "differential"
    weight_slices: int = 1

    def __post_init__(self) -> None:
        _check_int("tile_rows", self.tile_rows, 1, None)
        _check_int("tile_cols", self.tile_cols, 1, None)
        if self.dac_bits is not None:
            _check_int("dac_bits", self.dac_bits, 1, MAX_BITS)
        if self.adc_bits is not None:
            _check_int("adc_bits", self.adc_bits, 1, MAX_BITS)
        if self.adc_range not in ADC_RANGES:
            raise InputError(f"adc_range: {self.adc_range!r} is not one of {list(ADC_RANGES)}")
        if not 0.0 < self.adc_percentile <= 100.0:
            raise InputError(f"adc_percentile: {self.adc_percentile} is outside (0, 100]")
        if not 0.0 < self.adc_fixed_range <= 1.0:
            raise InputError(f"adc_fixed_range: {self.adc_fixed_range} is outside (0, 1] "
                             "(fraction of the full-scale partial sum)")
        if self.bit_serial and self.dac_bits is None:
            raise InputError("bit_serial: bit-serial inputs need dac_bits (1 … 16), not None")
        _check_int("cells_per_weight", self.cells_per_weight, 1, 2)
        if self.adc_input not in ADC_INPUTS:
            raise InputError(f"adc_input: {self.adc_input!r} is not one of {list(ADC_INPUTS)}")


def _check_int(name: str, value: Any, low: int, high: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{name}: {value!r} is not an integer")
    if value < low or (high is not None and value > high):
        allowed = f"{low} … {high}" if high is not None else f">= {low}"
        raise InputError(f"{name}: {value} is outside the allowed range {allowed}")


@dataclass(frozen=True)
class RowChunks:
    """How a layer's ``in_channels · kh · kw`` rows are split into chunks read at once.

    ``channels_per_chunk`` whole channels per chunk (0 when one channel's kernel is
    split); ``kernel_splits`` sub-chunks per channel (1 unless ``kh·kw > tile_rows``);
    ``sizes`` the word lines used in each chunk; ``masks`` (kernel split only) which
    kernel positions (raster order) each sub-chunk holds.
    """

    in_channels: int
    kernel: int
    tile_rows: int
    channels_per_chunk: int
    kernel_splits: int
    sizes: tuple[int, ...]
    masks: tuple[tuple[bool, ...], ...] = field(default=())

    @property
    def count(self) -> int:
        """Number of row chunks (tiles down the rows)."""
        return len(self.sizes)

    @property
    def rows(self) -> int:
        """Total rows (word lines) of the layer."""
        return self.in_channels * self.kernel

    @property
    def input_width(self) -> int:
        """Input channels the grouped product takes: padded to equal chunks, or each
        channel repeated once per kernel split."""
        if self.kernel_splits > 1:
            return self.in_channels * self.kernel_splits
        return self.count * self.channels_per_chunk

    @property
    def padded_channels(self) -> int:
        """Input channels after zero padding to equal chunks (grouped convolution)."""
        if self.kernel_splits > 1:
            return self.in_channels
        return self.count * self.channels_per_chunk


def plan_rows(in_channels: int, kernel: int, tile_rows: int) -> RowChunks:
    """Balanced split of ``in_channels`` channels of ``kernel`` (kh·kw) rows into tiles.

    ``plan_rows(6, 25, 128)`` (LeNet5 conv2): 5 channels fit a tile, so 2 chunks of
    3 channels, ``sizes == (75, 75)``. ``plan_rows(400, 1, 128)`` (a Linear):
    4 chunks of 100 rows. ``plan_rows(1, 25, 9)``: the 5×5 kernel is split 9 + 8 + 8.
    """
    _check_int("in_channels", in_channels, 1, None)
    _check_int("kernel", kernel, 1, None)
    _check_int("tile_rows", tile_rows, 1, None)
    fit = tile_rows // kernel
    if fit >= 1:
        count = math.ceil(in_channels / fit)
        per_chunk = math.ceil(in_channels / count)
        count = math.ceil(in_channels / per_chunk)
        channels = [per_chunk] * (count - 1) + [in_channels - per_chunk * (count - 1)]
        return RowChunks(in_channels, kernel, tile_rows, per_chunk, 1,
                         tuple(c * kernel for c in channels))
    splits = math.ceil(kernel / tile_rows)
    base, extra = divmod(kernel, splits)
    parts = [base + 1] * extra + [base] * (splits - extra)
    masks, start = [], 0
    for size in parts:
        masks.append(tuple(start <= i < start + size for i in range(kernel)))
        start += size
    return RowChunks(in_channels, kernel, tile_rows, 0, splits,
                     tuple(parts) * in_channels, tuple(masks))


# ----------------------------------------------------------------------------- converters


def adc_levels(bits: int) -> int:
    """Largest code magnitude of a symmetric ``bits``-bit ADC (``2^(b−1) − 1``; 0 for 1 bit)."""
    return (1 << (bits - 1)) - 1


def adc_quantize_(codes: Tensor, bits: int) -> Tensor:
    """Quantise partial sums given in ADC steps, in place: round and saturate.

    ``codes = partial_sum / step`` with ``step = R / (2^(b−1) − 1)``; for ``bits = 1``
    ``step = R`` and the comparator returns ±0.5 steps.
    """
    if bits == 1:
        return codes.copy_(torch.where(codes >= 0, 0.5, -0.5))
    top = float(adc_levels(bits))
    return codes.round_().clamp_(-top, top)


def adc_step(full_range: float, bits: int) -> float:
    """ADC step (partial-sum units) for a symmetric range ``±full_range``."""
    if bits == 1:
        return full_range
    return full_range / adc_levels(bits)


def adc_quantize(partial_sums: Tensor, full_range: float, bits: int) -> Tensor:
    """Out-of-place ADC on partial sums in their own units (reference / tests)."""
    step = adc_step(full_range, bits)
    return adc_quantize_(partial_sums / step, bits) * step


def dac_max_code(bits: int) -> int:
    """Largest DAC code ``2^bits − 1`` (inputs are unsigned, code 0 … max)."""
    return (1 << bits) - 1


def channels_last(t: Tensor) -> Tensor:
    """``t`` (4-D) in channels_last memory, unambiguously so even with one channel.

    A one-channel tensor is both contiguous and channels_last, and convolutions then
    return NCHW outputs; explicit strides make them return channels_last ones.
    """
    if t.shape[1] == 1:
        t = t.contiguous()
        _, _, height, width = t.shape
        return t.as_strided(t.shape, (height * width, 1, width, 1))
    return t.contiguous(memory_format=torch.channels_last)


# ----------------------------------------------------------------------------- layers


class TiledLayer(nn.Module):
    """A Conv2d or Linear computed on tiles with DAC and ADC (see module docstring).

    ``weight`` (buffer) is the effective analog weight in weight units; install a new
    one with :meth:`set_weight`. Ranges come from :meth:`calibrate` (or a forward pass
    with ``calibrating = True``). Per-read noise (``read_noise``,
    :mod:`explorer.readnoise`) is added to every chunk's partial sums before the ADC;
    ``columns`` (per-column ADC input) and ``slices`` (bit slicing) hand the conversion
    to :mod:`explorer.converters`.
    """

    weight: Tensor
    bias: Tensor | None
    dac_range: Tensor
    adc_range: Tensor

    def __init__(self, weight: Tensor, bias: Tensor | None, settings: TileSettings,
                 plan: RowChunks, name: str = "") -> None:
        super().__init__()
        self.settings = settings
        self.plan = plan
        self.name = name
        self.register_buffer("weight", weight.detach().clone().float())
        self.register_buffer("bias", None if bias is None else bias.detach().clone().float())
        self.register_buffer("dac_range", torch.zeros((), device=weight.device))
        self.register_buffer("adc_range", torch.zeros((), device=weight.device))
        self.signed_input = False
        self.calibrated = False
        self.calibrating = False
        self.positions = 0  # output positions per image (H'·W'; 1 for Linear), from calibration
        self.full_scale = 0.0  # full-scale partial sum (weight × input units), from calibration
        self.read_noise: Any = None  # explorer.readnoise.ReadNoise: per-read noise, or None
        self.columns: Any = None  # explorer.converters.Columns: per_column ADC input
        self.adc_errors: Any = None  # explorer.converters.AdcErrors: this trial's converters
        self.slices: Any = None  # explorer.slicing.Slices: bit-sliced columns, or None
        self.input_stats: dict[str, Tensor] = {}  # per word line, from calibration (cost)
        self.output_scale: Tensor | None = None  # digital rescaling of ADC codes per column
        self._cache: dict[str, Any] = {}

    # -- weights and ranges ------------------------------------------------------------

    def set_weight(self, weight: Tensor) -> None:
        """Install a new effective analog weight (weight units, shaped like the layer's)."""
        if weight.shape != self.weight.shape:
            raise ValueError(f"{self.name}: weight shape {tuple(weight.shape)} is not "
                             f"{tuple(self.weight.shape)}")
        self.weight.copy_(weight.detach())
        self._cache.clear()

    def forward_weight(self) -> Tensor:
        """The weight used by one forward pass (the programmed weight; read noise is drawn
        per read on the partial sums, not on the weight)."""
        return self.weight

    def _input_width(self) -> int:
        """Inputs of the chunked product after padding (see :attr:`RowChunks.input_width`)."""
        return self.plan.input_width

    @property
    def needs_ranges(self) -> bool:
        """Whether DAC or ADC ranges must be calibrated before use."""
        return self.settings.dac_bits is not None or self.settings.adc_bits is not None

    @property
    def planes(self) -> int:
        """Input cycles per read: bit-planes (bit-serial) times 2 for signed inputs."""
        bits = self.settings.dac_bits if self.settings.bit_serial else 1
        return int(bits) * (2 if self.signed_input else 1)

    def _dac_step(self) -> float:
        bits = self.settings.dac_bits
        if bits is None:
            return 1.0
        full = float(self.dac_range)
        return (full if full > 0 else 1.0) / dac_max_code(bits)

    def _adc_step(self) -> float:
        full = float(self.adc_range)
        return adc_step(full if full > 0 else 1.0, int(self.settings.adc_bits))

    # -- DAC ---------------------------------------------------------------------------

    def _codes(self, x: Tensor, out: Tensor | None = None) -> Tensor:
        """DAC codes of ``x``: integers 0 … 2^bits − 1 (signed inputs: ± that), or ``x``
        itself for an ideal DAC; written into ``out`` if given, else a new tensor."""
        bits = self.settings.dac_bits
        if bits is None:
            return x if out is None else out.copy_(x)
        top = float(dac_max_code(bits))
        codes = torch.mul(x, 1.0 / self._dac_step(), out=out)
        return codes.round_().clamp_(-top if self.signed_input else 0.0, top)

    def _padded_codes(self, rows: Tensor) -> Tensor:
        """DAC codes of the rows (inputs last), zero-padded to equal chunks in one pass."""
        width = self._input_width()
        if rows.shape[-1] == width:
            return self._codes(rows)
        padded = rows.new_empty((*rows.shape[:-1], width))
        padded[..., rows.shape[-1]:].zero_()
        self._codes(rows, out=padded[..., :rows.shape[-1]])
        return padded

    def _planes(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Input planes applied to the word lines, stacked beside the input channels.

        ``x`` comes from :meth:`_prepare`. Returns ``(planes, coefficients)``: planes
        ``[B, P·C, H, W]`` (conv, channels_last) or ``[B, P·C]`` with plane ``p`` in
        channels ``p·C … (p+1)·C − 1``, and ``input = Σ_p coefficients[p] · plane_p``.
        Signed inputs give two passes ``x⁺, x⁻``; bit-serial inputs one bit-plane per bit.
        Planes share the batch with their image, so each image's bit-planes are read
        together (cache-friendly), and all of them go through one grouped product.
        """
        s = self.settings
        rows = self._memory_view(x)  # contiguous, inputs on the last axis
        codes = self._padded_codes(rows)
        signs = [1.0, -1.0] if self.signed_input else [1.0]
        if not s.bit_serial and not self.signed_input:
            planes = codes
        else:
            if self.signed_input:  # [..., 2, C]
                stacked = torch.stack([codes.clamp(min=0), codes.neg().clamp_(min=0)], dim=-2)
            else:
                stacked = codes.unsqueeze(-2)
            if s.bit_serial:
                bits = int(s.dac_bits)
                small = torch.uint8 if bits <= 8 else torch.int32
                shifts = torch.arange(bits, device=x.device, dtype=small).view(bits, 1)
                ints = stacked.to(small).unsqueeze(-2)  # [..., S, 1, C]
                stacked = torch.bitwise_right_shift(ints, shifts).bitwise_and_(1).to(x.dtype)
            planes = stacked.reshape(*codes.shape[:-1], -1)
        bits = int(s.dac_bits) if s.bit_serial else 1
        coeffs = torch.tensor([sign * (1 << b) for sign in signs for b in range(bits)],
                              dtype=x.dtype, device=x.device)
        return self._logical_view(planes), coeffs

    # -- forward -----------------------------------------------------------------------

    def forward(self, x: Tensor) -> Tensor:
        if self.calibrating:
            return self.calibrate(x)
        if self.needs_ranges and not self.calibrated:
            raise RuntimeError(f"{self.name}: DAC/ADC ranges are not calibrated; "
                               "build the model with to_crossbar(..., calibration=images)")
        if not self.positions:  # first pass without calibration: record the geometry
            self.positions = self._positions(x)
            self.signed_input = bool((x < 0).any())
        return self._run(x, self.forward_weight(), calibrate=False)

    @torch.no_grad()
    def calibrate(self, x: Tensor) -> Tensor:
        """Set the DAC range (max |x|, sign) and ADC range from a calibration batch.

        Returns the layer's output with the calibrated converters, so the next layer
        calibrates on realistic inputs. Uses the installed weight (the noise-free
        mapped weight when called by :func:`explorer.crossbar.to_crossbar`).
        """
        self.signed_input = bool((x < 0).any())
        self.dac_range.fill_(float(x.abs().max()) if x.numel() else 0.0)
        self.positions = self._positions(x)
        self._cache.clear()
        self.full_scale = self._full_scale(
            self.weight if self.slices is None else self.slices.stacked)
        self.input_stats = self._input_stats(x)
        out = self._run(x, self.weight, calibrate=True)
        self.calibrated = True
        return out

    def _input_stats(self, x: Tensor) -> dict[str, Tensor]:
        """Per word line (im2col order), per image: Σ over reads of the applied input ``a``
        (fraction of the full-scale read voltage: DAC code / max code, or one bit of a
        bit-serial plane), of ``a²`` and of reads with ``a ≠ 0`` – for the data-dependent
        array-read and driver energy (:mod:`explorer.cost`). Signed inputs: ``|a|`` (one of
        the two passes carries it). Batch reductions first, so it costs a few passes over
        ``x`` and one product of a single image."""
        codes = self._codes(x).abs()
        bits = self.settings.dac_bits
        if self.settings.bit_serial:
            ints = codes.to(torch.int64)
            count = torch.zeros_like(ints)
            for b in range(int(bits)):
                count += (ints >> b) & 1
            a = a2 = count.to(x.dtype)
            nonzero = a
        else:
            full = float(dac_max_code(bits)) if bits is not None else \
                (float(self.dac_range) or 1.0)
            scale = 1.0 / max(1, x.shape[0])
            stacked = torch.stack([codes.sum(0).mul_(scale / full),
                                   codes.square_().sum(0).mul_(scale / full ** 2),
                                   codes.count_nonzero(0).to(x.dtype).mul_(scale)])
            return dict(zip(("act", "act_sq", "active"), self._row_sums(stacked), strict=True))
        stacked = torch.stack([a.sum(0), a2.sum(0), nonzero.sum(0)]) / max(1, x.shape[0])
        sums = self._row_sums(stacked)
        return {"act": sums[0], "act_sq": sums[1], "active": sums[2]}

    def _row_sums(self, per_input: Tensor) -> Tensor:
        """``[S, rows]``: for each of ``S`` batch-reduced inputs, the sum over output
        positions of the value on each word line (Linear: the input itself)."""
        return per_input

    def partial_sums(self, x: Tensor, weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Each chunk's column partial sums before the ADC, for inspection and tests.

        Returns ``(sums, coefficients)``: ``sums`` ``[P, M, n, O]`` (planes, images ×
        output positions, row chunks, columns; a view) in weight × input units, without
        bias; the layer output before the bias is ``Σ_p coefficients[p] · Σ_n sums[p, :, n]``.
        """
        sums, coeffs = self._sums(x, self.weight if weight is None else weight, cached=False)
        return sums.permute(1, 0, 2, 3), coeffs

    def _sums(self, x: Tensor, weight: Tensor, cached: bool,
              planes: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """Partial sums ``[M, P, n, O]`` (contiguous): in ADC steps when ``cached`` (the
        calibrated, cached weight), else in weight × input units. ``planes``: the
        output of ``self._planes(self._prepare(x))`` if already computed."""
        planes, coeffs = planes if planes is not None else self._planes(self._prepare(x))
        n_planes = coeffs.numel()
        grouped = self._cached_grouped(weight, n_planes) if cached else \
            self._grouped(weight * self._dac_step(), n_planes)
        sums = self._psums(planes, grouped, n_planes)
        return sums.view(sums.shape[0], n_planes, self.plan.count, -1), coeffs

    def _noise(self) -> Any:
        noise = self.read_noise
        return noise if noise is not None and noise.active else None

    def _run(self, x: Tensor, weight: Tensor, calibrate: bool) -> Tensor:
        from explorer import converters, readnoise

        s = self.settings
        noise = None if calibrate else self._noise()
        converted = False  # converted by the ADC in the noise's pass
        if s.adc_bits is None:  # ideal ADC: chunks and planes add up exactly, skip them
            scaled = weight if s.dac_bits is None else weight * self._dac_step()
            codes = self._codes(x)
            out = self._full(codes, scaled)
            if noise is not None:
                out = readnoise.add_summed_noise(self, out, codes, noise)
            return out
        if s.adc_input == "per_column":
            return converters.per_column_run(self, x, calibrate, noise)
        if self.slices is not None:
            return converters.sliced_run(self, x, calibrate, noise)
        if calibrate:
            sums, coeffs = self._sums(x, weight, cached=False)
            self.adc_range.fill_(self._calibrated_adc_range(sums, weight))
            sums.div_(self._adc_step())
        elif noise is not None:  # an ideal ADC converts in the noise's pass
            planes = self._planes(self._prepare(x))
            sums, coeffs = self._sums(x, weight, cached=True, planes=planes)
            converted = self.adc_errors is None and int(s.adc_bits) > 1
            sums = readnoise.add_chunk_noise(self, sums, planes[0], noise, converted)
        else:
            sums, coeffs = self._sums(x, weight, cached=True)
        if self.adc_errors is not None and not calibrate:
            self.adc_errors.apply_(sums, int(s.adc_bits))
        elif not converted:
            adc_quantize_(sums, int(s.adc_bits))
        if self.output_scale is not None and not calibrate:  # digital, e.g. drift compensation
            sums.mul_(self.output_scale)
        return self._unrows(self._accumulate(sums, coeffs, self._adc_step()), x.shape[0], x)

    def _full_scale(self, weight: Tensor) -> float:
        """The full-scale partial sum (weight × input units): all used rows of the largest
        chunk at full input (one bit plane when bit-serial) and full |weight|."""
        s = self.settings
        if s.bit_serial:
            per_row = self._dac_step()
        elif s.dac_bits is None:
            per_row = float(self.dac_range)
        else:
            per_row = self._dac_step() * dac_max_code(int(s.dac_bits))
        return max(self.plan.sizes) * float(weight.abs().max()) * per_row

    def _accumulate(self, codes: Tensor, coeffs: Tensor, step: float) -> Tensor:
        """Digital accumulation ``step · Σ_p coeffs[p] Σ_n codes[:, p, n] + bias`` of ADC
        codes ``[M, P, n, O]``: shift-add over planes, sum over row chunks.

        Narrow layers do it in one matrix product against stacked (weighted) identities:
        a reduction over short middle axes is several times slower on CPU.
        """
        rows, n_planes, chunks, columns = codes.shape
        if n_planes == 1 and chunks == 1:
            out = codes[:, 0, 0]
            step *= float(coeffs[0])
            return torch.add(self.bias, out, alpha=step) if self.bias is not None \
                else out.mul_(step)
        if columns <= _NARROW_COLUMNS:
            key = ("stack", tuple(coeffs.tolist()), chunks, columns, codes.device, codes.dtype)
            if key not in self._cache:
                eye = torch.eye(columns, dtype=codes.dtype, device=codes.device)
                self._cache[key] = (coeffs.view(-1, 1, 1, 1) * eye).expand(
                    n_planes, chunks, columns, columns).reshape(-1, columns)
            flat = codes.view(rows, -1)
            bias = self.bias if self.bias is not None else codes.new_zeros(())
            return torch.addmm(bias, flat, self._cache[key],
                               beta=1 if self.bias is not None else 0, alpha=step)
        out = torch.einsum("mpno,p->mo", codes, coeffs) if n_planes > 1 else codes[:, 0].sum(1)
        return out.mul_(step).add_(self.bias) if self.bias is not None else out.mul_(step)

    def _cached_grouped(self, weight: Tensor, n_planes: int) -> Tensor:
        """Grouped weight in ADC steps per DAC code; cached unless the weight is per-read.

        The cache key holds both steps, so ranges edited in place (``adc_range.fill_``)
        never meet a stale weight; :meth:`set_weight` empties the cache.
        """
        scale = self._dac_step() / self._adc_step()
        if weight is not self.weight:
            return self._grouped(weight * scale, n_planes)
        key = ("grouped", scale, n_planes)
        if key not in self._cache:
            for old in [k for k in self._cache if k[0] == "grouped"]:
                del self._cache[old]
            self._cache[key] = self._grouped(self.weight * scale, n_planes)
        return self._cache[key]

    def _calibrated_adc_range(self, sums: Tensor, weight: Tensor) -> float:
        s = self.settings
        if s.adc_range == "fixed":
            return s.adc_fixed_range * self._full_scale(weight)
        flat = sums.reshape(-1).abs()
        if s.adc_range == "max" or flat.numel() == 0:
            return float(flat.max()) if flat.numel() else 0.0
        if flat.numel() > _PERCENTILE_SAMPLE:
            flat = flat[:: math.ceil(flat.numel() / _PERCENTILE_SAMPLE)]
        k = max(1, math.ceil(s.adc_percentile / 100.0 * flat.numel()))
        return float(flat.kthvalue(min(k, flat.numel())).values)

    # -- description -------------------------------------------------------------------

    def extra_repr(self) -> str:
        """The layer's shape, row chunks, tile and converters, e.g. ``in=400, out=120,
        chunks=4 × 100 rows, tile=128 × 128, dac=8 b, adc=6 b (max)`` (no tensor is read)."""
        s = self.settings
        parts = self._shape_repr()
        if self.bias is None:
            parts.append("bias=False")
        sizes = self.plan.sizes
        rows = f"{min(sizes)}" if min(sizes) == max(sizes) else f"{min(sizes)}–{max(sizes)}"
        chunks = f"chunks={len(sizes)} × {rows} rows"
        if self.plan.kernel_splits > 1:
            chunks += f" (kernels split in {self.plan.kernel_splits})"
        parts += [chunks, f"tile={s.tile_rows} × {s.tile_cols}"]
        dac = "ideal" if s.dac_bits is None else f"{s.dac_bits} b"
        parts.append(f"dac={dac}" + (" bit-serial" if s.bit_serial else "") +
                     (" signed" if self.signed_input else ""))
        if s.adc_bits is None:
            parts.append("adc=ideal")
        else:
            how = {"max": "max", "percentile": f"p{s.adc_percentile:g}",
                   "fixed": f"fixed {s.adc_fixed_range:g}"}[s.adc_range]
            parts.append(f"adc={s.adc_bits} b ({how})" +
                         (" per column" if s.adc_input == "per_column" else ""))
        if self.needs_ranges and not self.calibrated:
            parts.append("uncalibrated")
        return ", ".join(parts)

    def _shape_repr(self) -> list[str]:
        """The layer's geometry for :meth:`extra_repr`."""
        raise NotImplementedError

    # -- counters ----------------------------------------------------------------------

    @property
    def out_features(self) -> int:
        return int(self.weight.shape[0])

    def counters(self) -> dict[str, Any]:
        """Hardware counts of this layer; per-image counts need a calibration/forward pass.

        ``tiles`` = row chunks × column tiles; ``cells`` = rows × columns × cells per
        weight; ``adc_conversions`` = chunks × columns × output positions × input
        planes (also by ADC bits; per_column: G⁺ and G⁻ or reference columns each; bit
        slicing: every slice); ``dac_cycles`` = ``reads`` = input vectors applied per
        image (positions × planes; all tiles read at once); ``row_activations`` = word
        lines driven per image (rows × column tiles × reads); ``shift_adds`` = partial sums
        shifted and added into an accumulator (one per conversion).
        """
        s = self.settings
        columns = self.out_features * s.cells_per_weight * s.weight_slices
        col_tiles = math.ceil(columns / s.tile_cols)
        planes = self.planes
        converted = self.out_features * s.weight_slices  # differential: one per weight column
        if s.adc_input == "per_column":  # every G+ column, and G− or one reference per tile
            converted += self.out_features if s.cells_per_weight == 2 else \
                math.ceil(self.out_features / s.tile_cols)
        conversions = self.plan.count * converted * self.positions * planes
        return {
            "rows": self.plan.rows,
            "columns": columns,
            "row_chunks": self.plan.count,
            "column_tiles": col_tiles,
            "tiles": self.plan.count * col_tiles,
            "cells": self.plan.rows * columns,
            "used_rows": list(self.plan.sizes),
            "row_utilisation": sum(self.plan.sizes) / (self.plan.count * s.tile_rows),
            "planes": planes,
            "positions": self.positions,
            "adc_conversions": conversions,
            "adc_conversions_by_bits": {str(s.adc_bits or "ideal"): conversions},
            "dac_cycles": self.positions * planes,
            "reads": self.positions * planes,
            "row_activations": self.plan.rows * col_tiles * self.positions * planes,
            "shift_adds": conversions,
        }

    # -- geometry hooks (Conv2d / Linear) ----------------------------------------------

    def _positions(self, x: Tensor) -> int:
        raise NotImplementedError

    def _full(self, x: Tensor, weight: Tensor, bias: bool = True) -> Tensor:
        """The whole product at once (ideal ADC), with the bias unless ``bias`` is False."""
        raise NotImplementedError

    def _grouped(self, weight: Tensor, n_planes: int = 1) -> Tensor:
        """The weight as one group per row chunk, repeated for each input plane."""
        raise NotImplementedError

    def _prepare(self, x: Tensor) -> Tensor:
        """Inputs laid out for the chunked product (replication, memory format); the DAC
        pads them to equal chunks."""
        raise NotImplementedError

    def _memory_view(self, x: Tensor) -> Tensor:
        """A contiguous view of a prepared input (images first)."""
        raise NotImplementedError

    def _logical_view(self, rows: Tensor) -> Tensor:
        """Inverse of :meth:`_memory_view`."""
        raise NotImplementedError

    def _psums(self, planes: Tensor, grouped: Tensor, n_planes: int) -> Tensor:
        """All partial sums ``[M, P·n, O]`` in one grouped product."""
        raise NotImplementedError

    def _unrows(self, out: Tensor, batch: int, x: Tensor) -> Tensor:
        raise NotImplementedError


class TiledLinear(TiledLayer):
    """A Linear layer on crossbar tiles: ``in_features`` rows, ``out_features`` columns."""

    @classmethod
    def from_layer(cls, layer: nn.Linear, settings: TileSettings, weight: Tensor | None = None,
                   name: str = "") -> TiledLinear:
        """Tiled counterpart of ``layer`` (with ``weight`` instead of its own, if given)."""
        plan = plan_rows(layer.in_features, 1, settings.tile_rows)
        w = layer.weight if weight is None else weight
        return cls(w, layer.bias, settings, plan, name)

    def forward(self, x: Tensor) -> Tensor:
        """As ``nn.Linear``: inputs ``[..., in_features]``; leading axes after the first
        (e.g. sequence positions) count as output positions per image."""
        if x.dim() == 2:
            return super().forward(x)
        y = super().forward(x.reshape(-1, x.shape[-1]))
        self.positions = math.prod(x.shape[1:-1]) if x.dim() > 2 else 1
        return y.view(*x.shape[:-1], y.shape[-1])

    def _shape_repr(self) -> list[str]:
        return [f"in={self.weight.shape[1]}", f"out={self.out_features}"]

    def _positions(self, x: Tensor) -> int:
        return 1

    def _full(self, x: Tensor, weight: Tensor, bias: bool = True) -> Tensor:
        return F.linear(x, weight, self.bias if bias else None)

    def _grouped(self, weight: Tensor, n_planes: int = 1) -> Tensor:
        n, per = self.plan.count, self.plan.channels_per_chunk
        pad = n * per - weight.shape[1]
        if pad:
            weight = F.pad(weight, (0, pad))
        grouped = weight.reshape(weight.shape[0], n, per).permute(1, 2, 0)  # [n, r, O]
        return grouped.repeat(n_planes, 1, 1)  # [P·n, r, O]

    def _prepare(self, x: Tensor) -> Tensor:
        return x.contiguous()

    def _memory_view(self, x: Tensor) -> Tensor:
        return x

    def _logical_view(self, rows: Tensor) -> Tensor:
        return rows

    def _psums(self, planes: Tensor, grouped: Tensor, n_planes: int) -> Tensor:
        groups, per = n_planes * self.plan.count, self.plan.channels_per_chunk
        rows = planes.reshape(planes.shape[0], groups, per).transpose(0, 1)  # [P·n, B, r]
        return torch.bmm(rows, grouped).transpose(0, 1).contiguous()  # [B, P·n, O]

    def _unrows(self, out: Tensor, batch: int, x: Tensor) -> Tensor:
        return out.view(batch, -1)


class TiledConv2d(TiledLayer):
    """A Conv2d on crossbar tiles, kernel-unrolled: ``in·kh·kw`` rows, ``out`` columns.

    Grouped convolutions (``groups`` g > 1, depthwise included): each group is its own
    matrix of ``in/g·kh·kw`` rows by ``out/g`` columns, split into row chunks as above
    (``plan`` is one group's); an ADC reads each group's partial sums, never a sum over
    groups. Groups are packed block-diagonally into tiles (:meth:`counters`).
    """

    def __init__(self, weight: Tensor, bias: Tensor | None, settings: TileSettings,
                 plan: RowChunks, name: str = "", stride: tuple[int, int] = (1, 1),
                 padding: tuple[int, int] | str = (0, 0),
                 dilation: tuple[int, int] = (1, 1), groups: int = 1) -> None:
        super().__init__(weight, bias, settings, plan, name)
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.groups = groups

    @classmethod
    def from_layer(cls, layer: nn.Conv2d, settings: TileSettings, weight: Tensor | None = None,
                   name: str = "") -> TiledConv2d:
        """Tiled counterpart of ``layer`` (with ``weight`` instead of its own, if given)."""
        if layer.padding_mode != "zeros":
            raise InputError(f"{name or 'layer'}: padding_mode {layer.padding_mode!r} is not "
                             "supported (only 'zeros')")
        kh, kw = layer.kernel_size
        plan = plan_rows(layer.in_channels // layer.groups, kh * kw, settings.tile_rows)
        w = layer.weight if weight is None else weight
        return cls(w, layer.bias, settings, plan, name, tuple(layer.stride),
                   layer.padding if isinstance(layer.padding, str) else tuple(layer.padding),
                   tuple(layer.dilation), layer.groups)

    def _shape_repr(self) -> list[str]:
        out, channels, kh, kw = self.weight.shape
        parts = [f"in={channels * self.groups}", f"out={out}", f"kernel={kh} × {kw}"]
        if self.groups != 1:
            parts.append(f"groups={self.groups}")
        for key, value, default in (("stride", self.stride, (1, 1)),
                                    ("padding", self.padding, (0, 0)),
                                    ("dilation", self.dilation, (1, 1))):
            if value != default:
                parts.append(f"{key}={value}")
        return parts

    def _conv(self, x: Tensor, weight: Tensor, bias: Tensor | None, groups: int) -> Tensor:
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, groups)

    def _positions(self, x: Tensor) -> int:
        h_out, w_out = self._out_hw(x)
        return h_out * w_out

    def _full(self, x: Tensor, weight: Tensor, bias: bool = True) -> Tensor:
        return self._conv(x, weight, self.bias if bias else None, self.groups)

    def _input_width(self) -> int:
        return self.plan.input_width * self.groups

    def _grouped(self, weight: Tensor, n_planes: int = 1) -> Tensor:
        """One conv group per (row chunk, conv group), chunk-major: outputs ``[n, O]``."""
        plan, g = self.plan, self.groups
        out, channels, kh, kw = weight.shape
        if plan.kernel_splits > 1:
            masks = torch.tensor(plan.masks, dtype=weight.dtype, device=weight.device)
            split = weight.reshape(g, out // g, channels, 1, kh * kw) * masks  # [g, o, c, s, kk]
            grouped = split.permute(2, 3, 0, 1, 4).reshape(-1, 1, kh, kw)  # [c·s·O, 1, kh, kw]
        else:
            n, per = plan.count, plan.channels_per_chunk
            pad = n * per - channels
            if pad:
                weight = F.pad(weight, (0, 0, 0, 0, 0, pad))
            grouped = weight.reshape(g, out // g, n, per, kh, kw).permute(2, 0, 1, 3, 4, 5) \
                .reshape(n * out, per, kh, kw)
        return channels_last(grouped.repeat(n_planes, 1, 1, 1))

    def _prepare(self, x: Tensor) -> Tensor:
        """Inputs in the order of :meth:`_grouped`: chunk-major, then conv group (each
        group's channels zero-padded to equal chunks)."""
        plan, g = self.plan, self.groups
        batch, _, height, width = x.shape
        if plan.kernel_splits > 1:
            x = x.repeat_interleave(plan.kernel_splits, dim=1)
            if g > 1:
                x = x.view(batch, g, -1, height, width).transpose(1, 2)
                x = x.reshape(batch, -1, height, width)
            return channels_last(x)
        if g == 1:
            return channels_last(x)
        n, per = plan.count, plan.channels_per_chunk
        x = x.view(batch, g, -1, height, width)
        if n * per > x.shape[2]:
            x = F.pad(x, (0, 0, 0, 0, 0, n * per - x.shape[2]))
        x = x.reshape(batch, g, n, per, height, width).transpose(1, 2)
        return channels_last(x.reshape(batch, n * g * per, height, width))

    def _memory_view(self, x: Tensor) -> Tensor:
        return x.permute(0, 2, 3, 1)  # contiguous for a channels_last tensor

    def _logical_view(self, rows: Tensor) -> Tensor:
        return rows.permute(0, 3, 1, 2)  # channels_last

    def _psums(self, planes: Tensor, grouped: Tensor, n_planes: int) -> Tensor:
        groups = n_planes * self.plan.count
        y = self._conv(planes, grouped, None, groups * self.groups)  # [B, P·n·O, H', W']
        return y.permute(0, 2, 3, 1).reshape(-1, groups, y.shape[1] // groups)  # [B·H'·W', P·n, O]

    def _unrows(self, out: Tensor, batch: int, x: Tensor) -> Tensor:
        h_out, w_out = self._out_hw(x)
        return out.view(batch, h_out, w_out, -1).permute(0, 3, 1, 2)

    def _row_sums(self, per_input: Tensor) -> Tensor:
        # one-hot kernels: output channel c·kk + k sums x[c] under kernel position k
        channels, (kh, kw) = per_input.shape[1], self.weight.shape[2:]
        eye = torch.eye(kh * kw, dtype=per_input.dtype, device=per_input.device)
        kernel = eye.view(kh * kw, 1, kh, kw).repeat(channels, 1, 1, 1)
        out = self._conv(per_input.contiguous(), kernel, None, channels)
        return out.sum((2, 3))

    def _out_hw(self, x: Tensor) -> tuple[int, int]:
        key = ("hw", tuple(x.shape[2:]))
        if key not in self._cache:
            probe = torch.zeros((1, x.shape[1], *x.shape[2:]), device="meta")
            y = self._conv(probe, self.weight.to("meta"), None, self.groups)
            self._cache[key] = (int(y.shape[2]), int(y.shape[3]))
        return self._cache[key]

    def counters(self) -> dict[str, Any]:
        """As :meth:`TiledLayer.counters`; a grouped convolution's groups are packed
        block-diagonally: as many groups share a tile as fit its rows and columns
        (``groups_per_tile``). ``rows`` are all groups' word lines, ``cells`` the
        programmed cells (each group's rows × its columns), ``column_tiles`` the column
        tiles one word line spans (its group's), ``tiles`` the physical tiles."""
        out = super().counters()
        g = self.groups
        if g == 1:
            return out
        s = self.settings
        group_cols = (self.out_features // g) * s.cells_per_weight
        col_tiles = math.ceil(group_cols / s.tile_cols)
        per_tile = max(1, min(s.tile_rows // max(self.plan.sizes),
                              s.tile_cols // group_cols)) if col_tiles == 1 else 1
        tiles = self.plan.count * math.ceil(g / per_tile) * col_tiles
        rows = self.plan.rows * g
        out.update(rows=rows, groups=g, groups_per_tile=per_tile, column_tiles=col_tiles,
                   tiles=tiles, cells=self.plan.rows * out["columns"],
                   row_utilisation=g * sum(self.plan.sizes) / (tiles * s.tile_rows),
                   row_activations=rows * col_tiles * out["reads"])
        return out


class TiledConv1d(TiledConv2d):
    """A Conv1d on crossbar tiles: a Conv2d of kernel height 1 on ``[B, C, 1, L]`` inputs.

    ``weight`` is held as ``[out, in/groups, 1, k]``; weights of the Conv1d's shape
    ``[out, in/groups, k]`` are accepted wherever a weight is installed or passed.
    """

    @classmethod
    def from_layer(cls, layer: nn.Conv1d, settings: TileSettings,  # type: ignore[override]
                   weight: Tensor | None = None, name: str = "") -> TiledConv1d:
        """Tiled counterpart of ``layer`` (with ``weight`` instead of its own, if given)."""
        if layer.padding_mode != "zeros":
            raise InputError(f"{name or 'layer'}: padding_mode {layer.padding_mode!r} is not "
                             "supported (only 'zeros')")
        (k,) = layer.kernel_size
        plan = plan_rows(layer.in_channels // layer.groups, k, settings.tile_rows)
        w = (layer.weight if weight is None else weight).unsqueeze(2)
        padding = layer.padding if isinstance(layer.padding, str) else (0, layer.padding[0])
        return cls(w, layer.bias, settings, plan, name, (1, layer.stride[0]), padding,
                   (1, layer.dilation[0]), layer.groups)

    def _as_2d(self, weight: Tensor) -> Tensor:
        if weight.dim() == 3 and weight.numel() == self.weight.numel():
            return weight.unsqueeze(2)
        return weight

    def set_weight(self, weight: Tensor) -> None:
        super().set_weight(self._as_2d(weight))

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.unsqueeze(2)).squeeze(2)

    def calibrate(self, x: Tensor) -> Tensor:
        if x.dim() == 3:
            return super().calibrate(x.unsqueeze(2)).squeeze(2)
        return super().calibrate(x)

    def partial_sums(self, x: Tensor, weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return super().partial_sums(x.unsqueeze(2) if x.dim() == 3 else x,
                                    None if weight is None else self._as_2d(weight))

    def _run(self, x: Tensor, weight: Tensor, calibrate: bool) -> Tensor:
        return super()._run(x, self._as_2d(weight), calibrate)
