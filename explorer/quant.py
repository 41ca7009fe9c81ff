"""Quantizers for crossbar-aware training (DESIGN.md §5).

Each is a small ``nn.Module`` whose forward maps a tensor to its quantized version with
gradients the training can use:

* :class:`CodebookQuantizer` – generalized quantization (seed 002, ``gq``): a per-layer
  codebook of L weight values, initialised by Lloyd-Max, nearest-value assignment with
  a straight-through gradient to the weights and the exact gradient to the codebook
  entries (each entry receives the summed gradient of the weights assigned to it).
  ``uniform=True`` is the uniform-QAT baseline (``uq``): L equally spaced values on
  ``[−a, a]`` with the scale ``a`` learned (log-parametrised, initialised at the
  least-squares scale).
* :class:`RelaxedQuantizer` – relaxed quantization (Louizos et al., ICLR 2019; ``rq``)
  on a uniform grid: the value is smoothed with logistic noise of scale σ, which gives a
  probability to each grid point; a relaxed sample at temperature ``temperature``
  (:data:`RELAXATIONS`: a tempered soft rounding of the noisy value, or the paper's
  Gumbel-softmax over the two points around the value) picks a soft mixture of them.
  Range and σ are learned. In eval mode it rounds deterministically to the nearest
  grid point (saturating), as the DAC and ADC of :mod:`explorer.tiles` do.
* :class:`DeviceNoiseQuantizer` – hardware-aware training (``hwa``): the forward pass
  uses the weights mapped onto the device's levels (:func:`explorer.mapping.map_weights`)
  with freshly drawn programming variation and read noise, the backward pass is
  straight-through. The training loop may ramp the deviation in (``blend`` 0 → 1 over
  the first part of training), so a float network adapts gradually to levels that
  would otherwise wreck it at the first step.

Random draws come from the ``generator`` attribute (a seeded ``torch.Generator`` set by
the training loop, see :func:`set_noise`); nothing touches the global RNG.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from explorer.device import DeviceModel
from explorer.errors import InputError
from explorer.mapping import lloyd_max, map_weights
from explorer.nonideal import NonIdealities
from explorer.relaxation import RelaxedSample, SoftRoundSample

RELAXATIONS = ("soft_round", "gumbel")
"""How :class:`RelaxedQuantizer` relaxes the rounding in training: ``soft_round`` – logistic
noise on the value, then a tempered sigmoid rounding that is continuous between grid
points (:class:`explorer.relaxation.SoftRoundSample`: unbiased pathwise gradient);
``gumbel`` – Louizos et al.'s two-point local grid with a Gumbel-softmax
(:class:`explorer.relaxation.RelaxedSample`: its sample jumps at grid points, so its
gradient averages 0.4–0.6 of the slope)."""

SIGMA_INIT = 1.0 / 3.0
"""Initial logistic-noise scale σ in grid steps (Louizos et al.: a third of the step)."""
_EPS = 1e-10


def least_squares_uniform_scale(w: Tensor, levels: int, candidates: int = 200) -> float:
    """Scale ``a`` of the L-value uniform grid ``a · linspace(−1, 1, L)`` with the least
    squared error on ``w`` (grid search over ``a ∈ (0, max |w|]``)."""
    flat = w.detach().reshape(-1).float()
    top = float(flat.abs().max()) if flat.numel() else 0.0
    if top == 0.0:
        return 1e-12
    scales = torch.linspace(top / candidates, top, candidates, device=flat.device)
    sample = flat if flat.numel() <= 65536 else flat[:: math.ceil(flat.numel() / 65536)]
    half = (levels - 1) / 2.0
    u = (sample[None, :] / scales[:, None] + 1.0) * half  # grid index coordinates
    q = (u.round().clamp(0, levels - 1) / half - 1.0) * scales[:, None]
    errors = (q - sample[None, :]).pow(2).sum(1)
    return float(scales[int(errors.argmin())])


class CodebookQuantizer(nn.Module):
    """Nearest-codebook-value weights with straight-through gradients (``gq``, ``uq``).

    ``gq``: ``codebook`` (L,) is a free parameter (in units of ``unit``, the initial
    max |value|), Lloyd-Max initialised on ``weight``. ``uq`` (``uniform=True``): the
    codebook is ``exp(log_scale) · linspace(−1, 1, L)`` with the scale learned.
    Forward: ``codebook[nearest] + (w − w.detach())`` — the value is the codebook
    entry, the weight gets the output gradient unchanged, each entry the sum of the
    gradients of its weights.
    """

    def __init__(self, weight: Tensor, levels: int, uniform: bool = False) -> None:
        super().__init__()
        if not isinstance(levels, int) or isinstance(levels, bool) or not 2 <= levels <= 1024:
            raise InputError(f"levels: must be an integer in 2 … 1024, got {levels!r}")
        self.levels = levels
        self.uniform = uniform
        device = weight.device
        if uniform:
            self.log_scale = nn.Parameter(torch.zeros((), device=device))
            self.register_buffer("grid", torch.linspace(-1.0, 1.0, levels, device=device))
        else:
            self.register_buffer("unit", torch.ones((), device=device))
            self.codebook = nn.Parameter(torch.zeros(levels, device=device))
        self.initialise(weight)

    @torch.no_grad()
    def initialise(self, weight: Tensor) -> None:
        """Start from ``weight``: the least-squares scale (uniform) or its Lloyd-Max
        codebook, the entries in units of its max |value| (so that the optimizer's step,
        ≈ the learning rate whatever the gradient's size, is relative to the weights)."""
        w = weight.detach().float()
        if self.uniform:
            self.log_scale.fill_(math.log(least_squares_uniform_scale(w, self.levels)))
        else:
            codebook = lloyd_max(w, self.levels)
            self.unit.fill_(max(float(codebook.abs().max()), 1e-12))
            self.codebook.copy_(codebook / self.unit)

    def values(self) -> Tensor:
        """The L weight values, ascending (differentiable)."""
        if self.uniform:
            return self.log_scale.exp() * self.grid
        return torch.sort(self.codebook).values * self.unit

    def forward(self, w: Tensor) -> Tensor:
        values = self.values()
        mids = ((values[1:] + values[:-1]) / 2).detach().contiguous()
        idx = torch.bucketize(w.detach(), mids)  # ties go down, as explorer.mapping does
        return values[idx] + (w - w.detach())


class RelaxedQuantizer(nn.Module):
    """Relaxed quantization onto a uniform grid with learned range and noise scale.

    The grid is ``(k + origin) · step`` for integer ``k`` in ``[kmin, kmax]``, with
    ``step = range / top`` and ``top = kmax + origin`` (the largest value in steps):

    * :meth:`for_dac` – unsigned inputs, codes 0 … 2^b − 1 (signed: ±(2^b − 1)), range =
      full-scale input (the DAC range of :mod:`explorer.tiles`);
    * :meth:`for_adc` – a symmetric ``bits``-bit ADC, codes ±(2^(b−1) − 1), range = R;
      1 bit: the comparator's ±R/2;
    * :meth:`for_weights` – L values evenly spaced on ``[−range, range]``.

    Training (``self.training``): Louizos et al.'s relaxation. With ``u = x / step −
    origin`` in grid units, grid point ``k`` gets probability ``Sig((k + ½ − u)/σ) −
    Sig((k − ½ − u)/σ)`` (the end cells open to ±∞). ``relaxation = "soft_round"``
    (default) samples it as a tempered, continuous rounding of ``u`` plus logistic noise
    (:class:`explorer.relaxation.SoftRoundSample`); ``"gumbel"`` as a Gumbel-softmax
    ``z`` over the two points around ``u``, ``(Σ z_k k + origin) · step``
    (:class:`explorer.relaxation.RelaxedSample`). σ (in steps) and the range are learned
    (log-parametrised). Eval: nearest grid
    point, saturating at the ends (round half to even, as ``torch.round``).
    """

    def __init__(self, kmin: int, kmax: int, origin: float, init_range: float) -> None:
        super().__init__()
        if kmax <= kmin:
            raise InputError(f"grid: needs at least two points, got k in [{kmin}, {kmax}]")
        self.kmin, self.kmax, self.origin = int(kmin), int(kmax), float(origin)
        self.log_range = nn.Parameter(torch.tensor(math.log(max(init_range, 1e-12))))
        self.log_sigma = nn.Parameter(torch.tensor(math.log(SIGMA_INIT)))
        self.temperature = 1.0
        self.generator: torch.Generator | None = None
        self.fused = True  # compiled elementwise kernels where available (explorer.relaxation)
        self.relaxation = "soft_round"  # or "gumbel": see RELAXATIONS

    # -- grids ----------------------------------------------------------------------------
    @classmethod
    def for_dac(cls, bits: int, init_range: float, signed: bool = False) -> RelaxedQuantizer:
        """Input DAC grid: codes 0 … 2^bits − 1 (−(2^bits − 1) … for signed inputs)."""
        top = (1 << bits) - 1
        return cls(-top if signed else 0, top, 0.0, init_range)

    @classmethod
    def for_adc(cls, bits: int, init_range: float) -> RelaxedQuantizer:
        """Symmetric ADC grid of :func:`explorer.tiles.adc_quantize` (range R = full scale)."""
        if bits == 1:
            return cls(0, 1, -0.5, init_range / 2)
        top = (1 << (bits - 1)) - 1
        return cls(-top, top, 0.0, init_range)

    @classmethod
    def for_weights(cls, levels: int, init_range: float) -> RelaxedQuantizer:
        """``levels`` weight values evenly spaced on ``[−range, range]``."""
        return cls(0, levels - 1, -(levels - 1) / 2.0, init_range)

    @property
    def top(self) -> float:
        """Largest grid value in steps."""
        return self.kmax + self.origin

    @property
    def signed(self) -> bool:
        """Whether the grid holds negative values."""
        return self.kmin + self.origin < 0

    def range(self) -> Tensor:
        """Largest grid value (the DAC/ADC full scale, the weights' max |value|)."""
        return self.log_range.exp()

    def step(self) -> Tensor:
        """Grid spacing (units of the quantized tensor)."""
        return self.range() / self.top

    def sigma(self) -> Tensor:
        """Logistic noise scale in grid steps."""
        return self.log_sigma.exp()

    def set_range(self, value: float) -> None:
        """Set the range (e.g. from a calibration batch); > 0."""
        with torch.no_grad():
            self.log_range.fill_(math.log(max(float(value), 1e-12)))

    def values(self) -> Tensor:
        """Every grid value, ascending."""
        k = torch.arange(self.kmin, self.kmax + 1, device=self.log_range.device,
                         dtype=torch.float32)
        return (k + self.origin) * self.step()

    # -- forward --------------------------------------------------------------------------
    def round(self, x: Tensor) -> Tensor:
        """Deterministic quantization: nearest grid point, saturating."""
        step = self.step()
        k = torch.round(x / step - self.origin).clamp_(self.kmin, self.kmax)
        return (k + self.origin) * step

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return self.round(x)
        return self.relaxed(x, self.temperature, self.generator)

    def relaxed(self, x: Tensor, temperature: float, generator: torch.Generator | None) -> Tensor:
        """A Gumbel-softmax sample of the relaxed quantizer (differentiable in ``x``, the
        range and σ); see :class:`explorer.relaxation.RelaxedSample`."""
        key = torch.randint(0, 1 << 32, (), generator=generator, dtype=torch.int64,
                            device=generator.device if generator is not None else x.device)
        sample = SoftRoundSample if self.relaxation == "soft_round" else RelaxedSample
        return sample.apply(x, key, self.step(), 1.0 / self.sigma(), float(temperature),
                            self.origin, self.kmin, self.kmax, self.fused)

    # grid definition travels with the state dict (load_state_dict restores it)
    def get_extra_state(self) -> dict[str, Any]:
        return {"kmin": self.kmin, "kmax": self.kmax, "origin": self.origin}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.kmin, self.kmax = int(state["kmin"]), int(state["kmax"])
        self.origin = float(state["origin"])

    def extra_repr(self) -> str:
        return f"k in [{self.kmin}, {self.kmax}], origin={self.origin:g}"


class DeviceNoiseQuantizer(nn.Module):
    """Weights as the crossbar realises them, with injected noise; straight-through.

    Forward: ``map_weights(w, device, mapping, scheme, scale)``; in training mode the
    conductances are programmed with variation/faults and read with read noise drawn
    anew from ``generator`` on every call; the result ``ŵ`` is returned as
    ``w + blend · (ŵ − w).detach()`` (``blend`` = 1 unless the loop ramps it). Eval
    mode: the noise-free mapped weights.
    """

    def __init__(self, device: DeviceModel, nonideal: NonIdealities, mapping: str = "min_error",
                 scheme: str = "offset", scale: str = "max") -> None:
        super().__init__()
        self.device_model = device
        self.nonideal = nonideal
        self.mapping, self.scheme, self.scale = mapping, scheme, scale
        self.generator: torch.Generator | None = None
        self.blend = 1.0  # training: w + blend·(ŵ − w); ramped 0 → 1 by the training loop

    def forward(self, w: Tensor) -> Tensor:
        with torch.no_grad():
            m = map_weights(w, self.device_model, method=self.mapping, scheme=self.scheme,
                            scale=self.scale)
            realised = m.w_hat
            if self.training and not self.nonideal.is_ideal:
                if self.generator is None:
                    raise RuntimeError("DeviceNoiseQuantizer: set a seeded generator first "
                                       "(explorer.quant.set_noise)")
                g_pos = self._noisy(m.g_pos)
                g_neg = m.g_neg if m.neg_is_reference else self._noisy(m.g_neg)
                realised = m.to_weight(g_pos, g_neg)
            shift = realised.to(w.dtype) - w
            if self.training and self.blend < 1.0:
                shift.mul_(self.blend)
        return w + shift

    def _noisy(self, g: Tensor) -> Tensor:
        g = self.nonideal.program(g, self.device_model, self.generator)  # type: ignore[arg-type]
        return self.nonideal.read(g, self.generator)


def set_noise(model: nn.Module, temperature: float | None = None,
              generator: torch.Generator | None = None, blend: float | None = None,
              fused: bool | None = None, relaxation: str | None = None) -> None:
    """Give every relaxed / noisy quantizer in ``model`` a temperature and a generator
    (the device quantizers their blend factor in [0, 1]; ``fused``: whether the relaxed
    quantizers use compiled kernels, see :mod:`explorer.relaxation`; ``relaxation``: one of
    :data:`RELAXATIONS`)."""
    for module in model.modules():
        if isinstance(module, RelaxedQuantizer):
            if temperature is not None:
                module.temperature = float(temperature)
            if generator is not None:
                module.generator = generator
            if fused is not None:
                module.fused = bool(fused)
            if relaxation is not None:
                if relaxation not in RELAXATIONS:
                    raise InputError(f"relaxation: must be one of {list(RELAXATIONS)}, got "
                                     f"{relaxation!r}")
                module.relaxation = relaxation
        elif isinstance(module, DeviceNoiseQuantizer):
            if generator is not None:
                module.generator = generator
            if blend is not None:
                module.blend = min(max(float(blend), 0.0), 1.0)


def annealed_temperature(progress: float, start: float, end: float) -> float:
    """Exponential annealing from ``start`` (progress 0) to ``end`` (progress 1)."""
    p = min(max(progress, 0.0), 1.0)
    return start * (end / start) ** p
