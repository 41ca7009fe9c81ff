"""Compiled elementwise kernels and their counter-based random numbers.

Some hot loops of the simulator are a chain of elementwise steps with random numbers in
them (relaxed quantization's logistic noise, per-read conductance noise before the
ADC). Unfused, each step is a pass over memory and the noise a serial draw of torch's
generator; ``torch.compile`` turns the chain into one parallel loop (C++/OpenMP on a
CPU, Triton on a GPU) that computes its random numbers itself from a *counter*: a hash
of the element index and a 32-bit key (:func:`counter_uniform`,
:func:`counter_normal`). The key is drawn from the layer's seeded generator, so the
numbers stay seeded and reproducible, and the same key gives the same numbers on any
device, inside or outside a kernel.

Kernels are compiled once per process (sizes dynamic; torch caches the code on disk for
later processes). When compiling is impossible (no C++ compiler) or switched off
(``EXPLORER_COMPILE=0``), or a kernel fails, the callers use plain torch operations with
noise from torch's generator (same distribution, other numbers).
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

log = logging.getLogger(__name__)

MASK32 = 0xFFFFFFFF
COUNTER_LIMIT = 1 << 31
"""Elements one key can number (int32 indices): a kernel call with more elements falls
back to torch's generator."""


def hash32(h: Tensor) -> Tensor:
    """A 32-bit integer hash (two xor-shift-multiply rounds, constants from Wellons'
    hash prospector) on int64 tensors holding values in [0, 2^32): the products stay
    below 2^63, so no step overflows."""
    h = h ^ (h >> 16)
    h = (h * 0x21F0AAAD) & MASK32
    h = h ^ (h >> 15)
    h = (h * 0x735A2D97) & MASK32
    return h ^ (h >> 15)


def _unit(h: Tensor, dtype: torch.dtype) -> Tensor:
    """The top 23 bits of a 32-bit hash as a uniform number in (0, 1), centred in its bin:
    never 0 or 1, and 1 − p is exact in float32."""
    return ((h >> 9).to(dtype) + 0.5) * (1.0 / (1 << 23))


def counter_uniform(key: Tensor, n: int, device: torch.device | str | None = None,
                    dtype: torch.dtype = torch.float32) -> Tensor:
    """``n`` uniform numbers in (0, 1) from a 0-d int64 ``key`` in [0, 2^32):
    ``hash(hash(i) + key)`` of the element index ``i``, 23 bits each (:func:`_unit`)."""
    index = torch.arange(n, device=device if device is not None else key.device)
    return _unit(hash32((hash32(index) + key) & MASK32), dtype)


def hash32_wrapping(h: Tensor) -> Tensor:
    """:func:`hash32` on int32 tensors holding the same 32 bits: products wrap modulo
    2^32 and right shifts are made logical by a mask, so the result equals the int64
    form's bit for bit (as a signed int32), about a third cheaper in a compiled loop
    (no 64-bit products)."""
    h = h ^ ((h >> 16) & 0xFFFF)
    h = h * 0x21F0AAAD
    h = h ^ ((h >> 15) & 0x1FFFF)
    h = h * 0x735A2D97
    return h ^ ((h >> 15) & 0x1FFFF)


def counter_normal(key: Tensor, index: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """Standard normal numbers for the int32 element indices ``index`` from a 0-d int32
    ``key``: Box–Muller of two counter uniforms, ``√(−2 ln u₁)·cos(2π u₂)`` with ``u₁``
    from ``hash(hash(i) + key)`` and ``u₂`` from a further hash of it
    (:func:`hash32_wrapping`; 23 bits each, centred in their bin). 23-bit uniforms bound
    |N| by √(−2 ln 2⁻²⁴) = 5.77 (a tail of 8e−9 is cut)."""
    first = hash32_wrapping(hash32_wrapping(index) + key)
    second = hash32_wrapping(first + 0x1E3779B9)
    u1 = (((first >> 9) & 0x7FFFFF).to(dtype) + 0.5) * (1.0 / (1 << 23))
    u2 = (((second >> 9) & 0x7FFFFF).to(dtype) + 0.5) * (1.0 / (1 << 23))
    return torch.sqrt(-2.0 * torch.log(u1)) * torch.cos((2.0 * math.pi) * u2)


def new_key(generator: torch.Generator, device: torch.device | str,
            dtype: torch.dtype = torch.int32) -> Tensor:
    """A fresh 0-d integer key in [0, 2^31) from a seeded generator (on ``device``)."""
    return torch.randint(0, 1 << 31, (), generator=generator, device=device, dtype=dtype)


# ----------------------------------------------------------------------------- compiling
_lock = threading.Lock()
_compiled: dict[str, Callable[..., Any]] = {}
_failed: set[str] = set()


def compile_enabled() -> bool:
    """Whether fused kernels are wanted: ``EXPLORER_COMPILE`` unset, ``1`` or ``auto``."""
    return os.environ.get("EXPLORER_COMPILE", "auto").strip().lower() not in ("0", "false",
                                                                             "no", "off")


class _NoCudaNotice(logging.Filter):
    """Drops torch's "No CUDA runtime is found" notice, printed when a CUDA build of torch
    compiles a CPU kernel: on a machine without a GPU it says nothing useful."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "No CUDA runtime is found" not in record.getMessage()


def compiled_kernel(name: str, function: Callable[..., Any]) -> Callable[..., Any] | None:
    """``function`` compiled (once per process, dynamic sizes), or None when compiling is
    switched off, unavailable or failed before for ``name``."""
    with _lock:
        if name in _failed or not compile_enabled() or not hasattr(torch, "compile"):
            return None
        if not _compiled and not torch.cuda.is_available():
            logging.getLogger("torch.utils.cpp_extension").addFilter(_NoCudaNotice())
        if name not in _compiled:
            # dynamic_threads: always a parallel loop (OpenMP splits it by size), not a
            # serial one because the first tensor compiled for happened to be small
            _compiled[name] = torch.compile(function, dynamic=True,
                                            options={"cpp.dynamic_threads": True})
        return _compiled[name]


def mark_failed(name: str, what: str, exc: BaseException) -> None:
    """Remember that kernel ``name`` failed (its callers then use plain torch) and say so."""
    with _lock:
        _failed.add(name)
    log.warning("%s: torch.compile failed (%s: %s); using the unfused kernels (slower; same "
                "formulas, noise from torch's generator)", what, type(exc).__name__,
                str(exc).splitlines()[0] if str(exc) else "")


def fused_active(names: tuple[str, ...] = ()) -> bool:
    """True while compiled kernels are used (compiling on, none of ``names`` failed; with
    no names: none failed at all)."""
    failed = _failed & set(names) if names else _failed
    return compile_enabled() and not failed and hasattr(torch, "compile")
