"""Per-read noise added to column partial sums before the ADC, in one fused pass.

For every converted column of every read, the partial sum ``s`` (in ADC steps) gets
``√(v + v_out) · N``: ``v`` the conductance read-noise variance of that read (the
product of the squared inputs with the cells' variances, :mod:`explorer.readnoise`),
``v_out`` the output noise variance per conversion, ``N`` a fresh standard normal; the
ADC then rounds and saturates. Compiled (:mod:`explorer.fused`), this is one parallel
loop that computes each ``N`` from a counter (the element's index and a key drawn from
the layer's read generator) instead of four passes over memory and a serial draw of
torch's generator – the draw alone cost more than the layer's matrix product.
Uncompiled, the same steps run as plain torch operations with torch's generator.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from explorer import fused

_CHECK_SIZE = 4099  # elements of the one-off comparison of a compiled kernel with plain torch


def _noisy(sums: Tensor, variance: Tensor, key: Tensor, settings: Tensor) -> Tensor:
    """``sums + √(variance + settings[0]) · N`` with counter normals (flat tensors)."""
    index = torch.arange(sums.numel(), device=sums.device, dtype=torch.int32)
    return sums + torch.sqrt(variance + settings[0]) * fused.counter_normal(key, index,
                                                                           sums.dtype)


def _noisy_codes(sums: Tensor, variance: Tensor, key: Tensor, settings: Tensor) -> Tensor:
    """:func:`_noisy`, rounded to the nearest code and saturated to
    ``[settings[1], settings[2]]`` (the ADC)."""
    noisy = torch.round(_noisy(sums, variance, key, settings))
    return torch.minimum(torch.maximum(noisy, settings[1]), settings[2])


_KERNELS = {"read_noise": _noisy, "read_noise_codes": _noisy_codes}
_checked: set[str] = set()


def _compiled(name: str, device: torch.device) -> Callable[..., Tensor] | None:
    """The compiled kernel ``name``, checked once against plain torch on the same
    counter numbers (a miscompiled kernel is dropped, not trusted)."""
    kernel = fused.compiled_kernel(name, _KERNELS[name])
    if kernel is None or name in _checked:
        return kernel
    gen = torch.Generator(device=device).manual_seed(7)
    sums = torch.randn(_CHECK_SIZE, generator=gen, device=device) * 20
    variance = torch.rand(_CHECK_SIZE, generator=gen, device=device)
    key = torch.tensor(123456789, device=device, dtype=torch.int32)
    settings = torch.tensor([0.25, -31.0, 31.0], device=device)
    got, want = kernel(sums, variance, key, settings), _KERNELS[name](sums, variance, key,
                                                                      settings)
    mismatch = (got - want).abs() > 1e-3 * (1 + want.abs())
    if name == "read_noise_codes":  # a value at a rounding edge may round either way
        mismatch = (got - want).abs() > 1.0
    if bool(mismatch.any()):
        raise RuntimeError(f"compiled kernel differs from plain torch at "
                           f"{int(mismatch.sum())} of {_CHECK_SIZE} elements")
    _checked.add(name)
    return kernel


def add_read_noise(sums: Tensor, variance: Tensor | None, out_variance: float,
                   generator: torch.Generator, codes: tuple[float, float] | None = None
                   ) -> Tensor:
    """``sums`` (ADC steps, any shape) plus one read's noise per element: standard
    deviation ``√(variance + out_variance)`` (``variance`` shaped like ``sums`` or None
    for output noise only; steps²). With ``codes = (low, high)`` the result is also
    converted: rounded and saturated. Returns a new tensor shaped like ``sums``; the
    random numbers come from ``generator`` (a key per call)."""
    key = fused.new_key(generator, sums.device)
    flat = sums.reshape(-1)
    var = variance.reshape(-1) if variance is not None else sums.new_zeros(())
    low, high = codes if codes is not None else (0.0, 0.0)
    settings = torch.tensor([out_variance, low, high], dtype=sums.dtype, device=sums.device)
    name = "read_noise_codes" if codes is not None else "read_noise"
    if flat.numel() < fused.COUNTER_LIMIT:
        try:
            kernel = _compiled(name, sums.device)
            if kernel is not None:
                return kernel(flat, var, key, settings).view(sums.shape)
        except Exception as exc:  # any compiler failure: plain torch from now on
            fused.mark_failed(name, "per-read noise", exc)
    std = (var + out_variance).sqrt_()
    out = torch.randn(flat.shape, generator=generator, device=sums.device,
                      dtype=sums.dtype).mul_(std).add_(flat)
    if codes is not None:
        out.round_().clamp_(low, high)
    return out.view(sums.shape)


def fused_active() -> bool:
    """True while the compiled read-noise kernels are used."""
    return fused.fused_active(tuple(_KERNELS))
