"""The elementwise kernels of relaxed quantization, fused by ``torch.compile`` when it can.

:class:`RelaxedSample` is the two-point relaxed quantization sample of Louizos et al.
(ICLR 2019) that :class:`explorer.quant.RelaxedQuantizer` draws in training. Its
forward and backward are pure elementwise functions of the input and a few scalars
(:func:`relaxed_forward`, :func:`relaxed_backward`); the logistic noise comes from a
counter-based generator (:func:`counter_uniform`: a hash of the element index and a
key drawn from the training's seeded generator), so a fused kernel computes it in its
own loop instead of reading a noise tensor.

Unfused, each of the ~25 elementwise steps is a pass over memory and the noise a
serial Mersenne-Twister draw; on a CPU that made a relaxed-quantization training epoch
5–6× a float one. Both functions are compiled once per process with ``torch.compile``
(one C++/OpenMP or Triton loop each, any size: tensors are flattened, sizes dynamic);
the plain functions — same formulas; the noise drawn by torch's generator instead,
seeded by the same key — serve when compiling is not possible (no C++ compiler, an
unsupported platform) or is switched off with the environment variable
``EXPLORER_COMPILE=0``. The first compilation takes
a few seconds (torch caches it on disk for later processes).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import Tensor

from explorer import fused as kernels
from explorer.fused import compile_enabled, compiled_kernel, counter_uniform, mark_failed

EDGE_LIMIT = 50.0
"""Cell-edge arguments are clipped to ±50 so that every factor below stays finite in
float32 (clipped values lie far outside the grid, where the sample is already 0 or 1)."""

def _uniform(noise: Tensor, x: Tensor) -> Tensor:
    """Uniform numbers for ``x``'s elements: from a key (:func:`counter_uniform`), or a
    given tensor clipped to [2^-24, 1 − 2^-24] (torch.rand can return 0, whose logit is
    infinite)."""
    if noise.dim() == 0:
        return counter_uniform(noise, x.numel(), x.device, x.dtype)
    return noise.to(x.dtype).clamp(_TINY, 1 - _TINY)


_TINY = 2.0 ** -24


def _cells(x: Tensor, step: Tensor, s: Tensor, origin: Tensor, kmin: Tensor,
           kmax: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Where ``x`` lies on the grid: ``f``, the grid point below ``u = x/step − origin``
    (clamped so that f and f + 1 are grid points), ``d = f − u`` (in (−1, 0] inside the
    grid), the cell edge ``a = (d − ½)·s`` in logistic units (clipped to ±EDGE_LIMIT)
    and ``E = e^a``."""
    u = torch.div(x, step).sub_(origin)
    f = torch.floor(u).clamp_(min=kmin, max=kmax - 1)
    d = u.neg_().add_(f)
    a = torch.sub(d, 0.5).mul_(s).clamp_(-EDGE_LIMIT, EDGE_LIMIT)
    return f, d, a, torch.exp(a)


def relaxed_forward(x: Tensor, noise: Tensor, step: Tensor, s: Tensor,
                    settings: Tensor) -> tuple[Tensor, Tensor]:
    """The relaxed sample ``(f + z + origin) · step`` and ``z`` (for the backward).

    ``noise``: uniform numbers p in (0, 1) shaped like ``x``, or a 0-d int64 key that
    gives them by :func:`counter_uniform` (computed inside a fused kernel's loop);
    ``settings`` = (1/T, origin, kmin, kmax); ``f``, ``d``, ``a`` as in :func:`_cells`,
    and ``c = a + 2s``. The log-odds of f + 1 against f are
    ``ℓ = s + softplus(a) − softplus(c)``; where f's cell is open to −∞ (f = kmin)
    softplus(a) becomes κ = log(1 − e^(−s)), where f + 1's is open to +∞
    (f + 1 = kmax) softplus(c) becomes c + κ. The sample is ``z = Sig((ℓ + L)/T)``
    with logistic noise ``L = log(p/(1 − p))``.

    Three transcendental functions per element: with ``E = e^a``, softplus(a) =
    log(1 + E) and softplus(c) = c + log(1 + e^(−2s)/E), so
    ``ℓ + L = −a − s + log(A·p / (C·(1 − p)))`` with ``A = 1 + E`` (open: 1 − e^(−s))
    and ``C = 1 + e^(−2s)/E`` (open: 1 − e^(−s)). In-place steps on fresh
    intermediates: cheap unfused, and ``torch.compile`` fuses them all the same.
    """
    inv_temperature, origin, kmin, kmax = settings.unbind()
    f, _, a, e = _cells(x, step, s, origin, kmin, kmax)
    open_cell = -torch.expm1(-s)  # 1 − e^(−s)
    lower = torch.add(e, 1).lerp_(open_cell.expand_as(e), torch.le(f, kmin).to(x.dtype))
    upper = e.reciprocal_().mul_(torch.exp(-2 * s)).add_(1)
    upper = upper.lerp_(open_cell.expand_as(upper), torch.ge(f, kmax - 1).to(x.dtype))
    p = _uniform(noise, x)
    odds = lower.mul_(p).div_(upper.mul_(p.neg_().add_(1)))
    z = odds.log_().sub_(a).sub_(s).mul_(inv_temperature).sigmoid_()
    out = torch.add(f, z).add_(origin).mul_(step)
    return out, z


def relaxed_backward(grad: Tensor, x: Tensor, z: Tensor, step: Tensor, s: Tensor,
                     settings: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of the loss with respect to ``x``, ``step`` and ``s`` from the output's
    gradient ``grad``, the input ``x`` and the forward's ``z``.

    ``dz/dℓ = z(1 − z)/T``; ``dℓ/du = s·(Sig(c) − Sig(a))`` with Sig(a) = E/(1 + E)
    (0 at an open lower end) and Sig(c) = 1/(1 + e^(−2s)/E) (1 at an open upper end);
    ``dℓ/ds = 1 + Sig(a)(d − ½) − Sig(c)(d + 1½) + (low − high)/(e^s − 1)``; the output
    is ``(f + z + origin)·step`` with ``x/step = f − d + origin``.
    """
    inv_temperature, origin, kmin, kmax = settings.unbind()
    f, d, _, e = _cells(x, step, s, origin, kmin, kmax)
    low = torch.le(f, kmin).to(f.dtype)
    high = torch.ge(f, kmax - 1).to(f.dtype)
    dz = torch.sub(1, z).mul_(z).mul_(grad).mul_(inv_temperature)  # dLoss/dℓ ÷ step
    sig_a = torch.add(e, 1).reciprocal_().mul_(e).mul_(1 - low)
    sig_c = e.reciprocal_().mul_(torch.exp(-2 * s)).add_(1).reciprocal_()
    sig_c = sig_c.lerp_(torch.ones_like(sig_c), high)
    grad_x = torch.sub(sig_c, sig_a).mul_(dz).mul_(s)
    value = torch.add(f, z).add_(origin)  # out / step
    position = torch.sub(f, d).add_(origin)  # x / step
    grad_step = value.mul_(grad).sub_(position.mul_(grad_x)).sum()
    slope = torch.sub(d, 0.5).mul_(sig_a).sub_(torch.add(d, 1.5).mul_(sig_c))
    slope = slope.add_(low.sub_(high).mul_(1 / torch.expm1(s))).add_(1.0)
    grad_s = step * slope.mul_(dz).sum()
    return grad_x, grad_step, grad_s


def _soft_round(x: Tensor, noise: Tensor, step: Tensor, s: Tensor, inv_temperature: Tensor,
                origin: Tensor, kmin: Tensor, kmax: Tensor) -> tuple[Tensor, ...]:
    """Soft rounding of the noisy value: ``ũ = u + L/s`` (``u = x/step − origin``,
    logistic noise L of scale σ = 1/s), clamped to the grid; with ``f`` the grid point
    below it and ``r = ũ − f``, ``q = (Sig((r − ½)/T) − Sig(−1/2T)) / (Sig(1/2T) −
    Sig(−1/2T))`` maps [0, 1] onto [0, 1], continuous and increasing, so the sample
    ``f + q`` is continuous in u. Returns ``(x/step, f + q + origin, dq/du, L)``."""
    u = torch.div(x, step).sub_(origin)
    p = _uniform(noise, x)
    logistic = p.div(p.neg().add_(1)).log_()
    noisy = torch.div(logistic, s).add_(u)
    inside = torch.gt(noisy, kmin).logical_and_(torch.lt(noisy, kmax)).to(x.dtype)
    noisy = noisy.clamp_(min=kmin, max=kmax)
    f = torch.floor(noisy).clamp_(min=kmin, max=kmax - 1)
    edge = torch.sigmoid(-0.5 * inv_temperature)  # Sig(−1/2T): q's offset
    norm = 1 - 2 * edge
    sig = noisy.sub_(f).sub_(0.5).mul_(inv_temperature).sigmoid_()
    slope = torch.sub(1, sig).mul_(sig).mul_(inv_temperature / norm).mul_(inside)
    value = sig.sub_(edge).div_(norm).add_(f).add_(origin)
    return u.add_(origin), value, slope, logistic


def soft_round_forward(x: Tensor, noise: Tensor, step: Tensor, s: Tensor,
                       settings: Tensor) -> Tensor:
    """The soft-rounded noisy value ``(f + q + origin)·step`` (see :func:`_soft_round`);
    ``noise`` and ``settings`` as in :func:`relaxed_forward`."""
    inv_temperature, origin, kmin, kmax = settings.unbind()
    _, value, _, _ = _soft_round(x, noise, step, s, inv_temperature, origin, kmin, kmax)
    return value.mul_(step)


def soft_round_backward(grad: Tensor, x: Tensor, noise: Tensor, step: Tensor, s: Tensor,
                        settings: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients with respect to ``x``, ``step`` and ``s`` (the forward recomputed from
    ``x`` and the same noise): ``d out/dx = dq/du``; ``d out/d step = value −
    (dq/du)·x/step``; ``d out/ds = −step·(dq/du)·L/s²``."""
    inv_temperature, origin, kmin, kmax = settings.unbind()
    position, value, slope, logistic = _soft_round(x, noise, step, s, inv_temperature,
                                                   origin, kmin, kmax)
    grad_x = slope.mul_(grad)
    grad_step = value.mul_(grad).sub_(position.mul_(grad_x)).sum()
    grad_s = -step / (s * s) * logistic.mul_(grad_x).sum()
    return grad_x, grad_step, grad_s


_KERNELS = ("forward", "backward", "soft_forward", "soft_backward")


def _run(name: str, function: Callable[..., Any], fused: bool, *args: Tensor,
         plain: Callable[[tuple[Tensor, ...]], tuple[Tensor, ...]] | None = None) -> Any:
    """``function(*args)``, compiled when ``fused`` and possible; ``plain`` adapts the
    arguments for the uncompiled function."""
    # flat, detached, not views: the compiled kernel's guards then hold for every call
    args = tuple(a.reshape(-1).detach() if a.dim() else a.detach() for a in args)
    try:
        kernel = compiled_kernel(name, function) if fused else None
        if kernel is not None:
            return kernel(*args)
    except Exception as exc:  # any compiler failure: use the plain kernel
        mark_failed(name, "relaxed quantization", exc)
    return function(*(plain(args) if plain is not None else args))


def fused_active() -> bool:
    """True while the relaxation's compiled kernels are used (none failed, compiling on)."""
    return kernels.fused_active(_KERNELS)


class RelaxedSample(torch.autograd.Function):
    """A relaxed quantization sample, differentiable in ``x``, ``step`` and ``s``.

    ``apply(x, key, step, s, temperature, origin, kmin, kmax, fused)``: ``x`` any
    shape; ``key`` a 0-d int64 tensor in [0, 2^32) that selects the noise
    (:func:`counter_uniform` in the fused kernels, a draw of torch's generator seeded
    with it otherwise); ``step`` (grid spacing) and ``s`` (1/σ, σ the logistic
    noise scale in steps) 0-d tensors; the grid is ``(k + origin)·step`` for integers k
    in [kmin, kmax]; ``fused``: use the compiled kernels when available. The grid point
    below ``u = x/step − origin`` and the one above it get the cell probabilities of
    logistic noise of scale σ (Louizos et al.); their log-odds plus logistic noise,
    over the temperature, give the two-way Gumbel-softmax weight of the upper point.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, key: Tensor, step: Tensor, s: Tensor,
                temperature: float, origin: float, kmin: int, kmax: int,
                fused: bool = True) -> Tensor:
        settings = _settings(x, temperature, origin, kmin, kmax)
        out, z = _run("forward", relaxed_forward, fused, x, key.to(x.device), step, s,
                      settings, plain=_drawn_noise)
        ctx.save_for_backward(x, z, step, s, settings)
        ctx.fused = fused
        ctx.shape = x.shape
        return out.view(x.shape)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        grads = _run("backward", relaxed_backward, ctx.fused, grad, *ctx.saved_tensors)
        return _input_grads(ctx, ctx.shape, *grads)


class SoftRoundSample(torch.autograd.Function):
    """Soft rounding of a noisy value, differentiable in ``x``, ``step`` and ``s``: the
    value gets logistic noise of scale σ = 1/s (in steps), and a sigmoid of temperature
    T, rescaled to run from one grid point exactly to the next, rounds it
    (:func:`_soft_round`). As T → 0 the sample takes grid point k with the probability
    of k's cell under the noise — Louizos et al.'s distribution, all grid points
    included — and, unlike the two-point Gumbel-softmax of :class:`RelaxedSample`, it is
    continuous in x, so its pathwise gradient is unbiased (mean slope 1 across a cell).
    ``apply`` takes the arguments of :class:`RelaxedSample`.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, key: Tensor, step: Tensor, s: Tensor,
                temperature: float, origin: float, kmin: int, kmax: int,
                fused: bool = True) -> Tensor:
        settings = _settings(x, temperature, origin, kmin, kmax)
        key = key.to(x.device)
        out = _run("soft_forward", soft_round_forward, fused, x, key, step, s, settings,
                   plain=_drawn_noise)
        ctx.save_for_backward(x, key, step, s, settings)
        ctx.fused = fused
        return out.view(x.shape)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        grads = _run("soft_backward", soft_round_backward, ctx.fused, grad,
                     *ctx.saved_tensors, plain=partial(_drawn_noise, at=2))
        return _input_grads(ctx, ctx.saved_tensors[0].shape, *grads)


def _settings(x: Tensor, temperature: float, origin: float, kmin: int, kmax: int) -> Tensor:
    """(1/T, origin, kmin, kmax) as one tensor on ``x``'s device: tensors, not Python
    numbers, so the compiled kernels serve every temperature and grid unchanged."""
    return torch.tensor([1.0 / temperature, origin, kmin, kmax], dtype=x.dtype,
                        device=x.device)


def _input_grads(ctx: Any, shape: torch.Size, grad_x: Tensor, grad_step: Tensor,
                 grad_s: Tensor) -> tuple[Tensor | None, ...]:
    """The gradients of ``apply``'s nine arguments (x, key, step, s, then constants)."""
    return (grad_x.view(shape), None, grad_step if ctx.needs_input_grad[2] else None,
            grad_s if ctx.needs_input_grad[3] else None, None, None, None, None, None)


def _drawn_noise(args: tuple[Tensor, ...], at: int = 1) -> tuple[Tensor, ...]:
    """Arguments for an uncompiled kernel: the key at position ``at`` seeds one draw of
    torch's own generator, shaped like the tensor before it (fast unfused; the
    counter-based hash costs ~20 passes there). Same distribution as the fused kernels'
    noise, other numbers; the same key gives the same draw again (for the backward)."""
    like, key = args[at - 1], args[at]
    generator = torch.Generator(device=like.device).manual_seed(int(key))
    noise = torch.rand(like.shape, generator=generator, device=like.device, dtype=like.dtype)
    return (*args[:at], noise, *args[at + 1:])


__all__ = ["RelaxedSample", "SoftRoundSample", "compile_enabled", "counter_uniform",
           "fused_active", "relaxed_backward", "relaxed_forward", "soft_round_backward",
           "soft_round_forward"]
