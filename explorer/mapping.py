"""Weight → conductance mapping (DESIGN.md §2): schemes, methods, scale, error statistics.

Per layer, weights w are written as conductances with a scale w_max (weight units):

* ``offset`` – one cell per weight against a reference conductance (G_0 + G_{L−1})/2:
  ŵ = w_max · (2·d_k − 1).
* ``differential`` – a pair; the sign picks the programmed cell, the other stays at G_0:
  ŵ = sign(w) · w_max · d_k.
* ``differential_full`` – both cells programmable: ŵ = w_max · (d_i − d_j), L² values.

with d_k the device's normalised levels. Methods:

* ``linear`` – the level a linear device would need (nearest k/(L−1)); realises d_k.
* ``min_error`` – the nearest achievable value (minimum-error substitution).
* ``generalized`` – a free per-layer codebook of L values (Lloyd-Max), each written by
  write-verify to a conductance on the continuous range [G_0, G_{L−1}]; with
  ``snap=True`` each codebook value is moved to the nearest value the device's levels
  realise (so nonlinearity matters again, and it compares with ``min_error``).
* ``exact`` – no level quantization (analog reference; only ``clip`` changes w).

``scale="max"`` uses w_max = max |w| (or the ``clip`` percentile of |w|);
``scale="optimal"`` alternates the level assignment with the least-squares w_max and keeps
the best pair found, so its RMSE is never above ``"max"``. For ``generalized`` and
``exact`` the realised weights do not depend on the scale, which then only sets the
conductance range (w_max = max |codebook| resp. max |w|).

Everything is vectorised (``torch.bucketize``); tensors stay on the weights' device.
Realised weights are always computed from the conductances,
``w_hat = w_scale · (g_pos − g_neg)``, so noisy conductances go through the same formula
(:meth:`MappingResult.to_weight`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from explorer.device import MAX_LEVELS, DeviceModel
from explorer.errors import InputError
from explorer.settings.mapping import METHODS, SCALES, SCHEMES

MAX_SCALE_ITERATIONS = 50
"""Upper bound on the alternating least-squares rounds of ``scale="optimal"``."""
MIN_SCALE = 1e-12
"""Smallest w_max (weight units): an all-zero layer (or one below 1e-12) is mapped with this
scale, so its realised weights are ~0 and float32 conductances stay well defined."""


# --------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------
@dataclass
class MappingResult:
    """One layer written into conductances; all tensors shaped like ``w``.

    ``w_hat == w_scale * (g_pos - g_neg)`` exactly. For ``offset`` (``neg_is_reference``)
    ``g_neg`` is the fixed reference conductance, not a programmed cell. ``indices`` /
    ``indices_neg`` are the level indices of G⁺ / G⁻ (``indices_neg`` None for offset;
    both None for ``generalized`` and ``exact``, whose conductances are continuous).
    """

    w: torch.Tensor
    w_hat: torch.Tensor
    error: torch.Tensor
    g_pos: torch.Tensor
    g_neg: torch.Tensor
    w_scale: float
    neg_is_reference: bool
    indices: torch.Tensor | None
    codebook: torch.Tensor | None
    w_max: float
    method: str
    scheme: str
    scale: str = "max"
    clip: float | None = None
    indices_neg: torch.Tensor | None = None
    device: DeviceModel | None = field(default=None, repr=False)

    def to_weight(self, g_pos: torch.Tensor, g_neg: torch.Tensor) -> torch.Tensor:
        """Weights (weight units) from conductances (S): ``w_scale · (g_pos − g_neg)``."""
        return self.w_scale * (g_pos - g_neg)

    def stats(self) -> dict[str, float]:
        """Error statistics in weight units: rmse, mean_abs, max_abs; plus w_max, n_weights,
        and rmse_rel = rmse / w_max."""
        return _error_stats(self.error.reshape(-1), self.w_max)

    def histogram(self, bins: int = 64,
                  range: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Histogram of the error (weight units): (counts (bins,), edges (bins + 1,)).

        Default range: symmetric, ± max |error| (± 1e-12 when the error is all zero).
        """
        if not isinstance(bins, int) or bins < 1:
            raise InputError(f"bins: must be an integer >= 1, got {bins!r}")
        e = self.error.reshape(-1).double()  # float64 bins: the same edges as numpy
        if range is None:
            m = float(e.abs().max()) if e.numel() else 0.0
            lo, hi = -(m or 1e-12), (m or 1e-12)
        else:
            lo, hi = float(range[0]), float(range[1])
            if not hi > lo:
                raise InputError(f"range: must be (low, high) with high > low, got {range}")
        counts = torch.histc(e, bins=bins, min=lo, max=hi)
        edges = np.linspace(lo, hi, bins + 1)
        return counts.cpu().numpy().astype(np.int64), edges

    def transfer_curve(self, points: int = 257) -> tuple[np.ndarray, np.ndarray]:
        """Realised weight ŵ against w on [−w_max, w_max], same device/method/scale."""
        if self.device is None:
            raise InputError("transfer_curve: this result carries no device")
        w_in = torch.linspace(-self.w_max, self.w_max, points, device=self.w.device)
        levels = _device_levels(self.device, self.w.device)
        if self.method in ("linear", "min_error"):
            table = _level_table(self.device, self.scheme, self.method, self.w.device)
            idx = _nearest(w_in / self.w_max, table.mids)
            target = self.w_max * table.values[idx]
        elif self.method == "generalized":
            if self.codebook is None:
                raise InputError("transfer_curve: a generalized result needs its codebook")
            target = self.codebook[_nearest(w_in, _midpoints(self.codebook))]
        else:
            target = w_in
        g_pos, g_neg, w_scale = _continuous_conductances(target, self.w_max, self.scheme, levels)
        return w_in.cpu().numpy(), (w_scale * (g_pos - g_neg)).cpu().numpy()


def _error_stats(e: torch.Tensor, w_max: float) -> dict[str, float]:
    n = e.numel()
    if n == 0:
        return {"rmse": 0.0, "mean_abs": 0.0, "max_abs": 0.0, "w_max": w_max, "n_weights": 0,
                "rmse_rel": 0.0}
    e64 = e.double()
    rmse = float(torch.sqrt((e64 * e64).mean()))
    return {
        "rmse": rmse,
        "mean_abs": float(e64.abs().mean()),
        "max_abs": float(e64.abs().max()),
        "w_max": float(w_max),
        "n_weights": int(n),
        "rmse_rel": rmse / w_max if w_max > 0 else 0.0,
    }


def overall_stats(results: dict[str, MappingResult]) -> dict[str, float]:
    """Error statistics pooled over every weight of every layer (weight units)."""
    if not results:
        return _error_stats(torch.zeros(0), 0.0)
    e = torch.cat([r.error.reshape(-1).float() for r in results.values()])
    out = _error_stats(e, max(r.w_max for r in results.values()))
    del out["w_max"], out["rmse_rel"]
    return out


# --------------------------------------------------------------------------------------
# Achievable values per scheme (cached, numpy float64) and their torch copies
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _LevelTable:
    values: torch.Tensor  # (M,) realised unit weights u (ŵ = w_max·u), ascending
    mids: torch.Tensor    # (M−1,) midpoints of the grid used for nearest assignment
    pos: torch.Tensor     # (M,) level index of G⁺
    neg: torch.Tensor     # (M,) level index of G⁻ (−1: the offset reference)
    values_np: np.ndarray  # float64 copies for the scale search
    mids_np: np.ndarray


def _pair_grid(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Differential values −d_{L−1} … −d_1, 0, d_1 … d_{L−1} and their (pos, neg) levels."""
    n = d.size
    values = np.concatenate([-d[:0:-1], d])
    pos = np.concatenate([np.zeros(n - 1, dtype=np.int64), np.arange(n)])
    neg = np.concatenate([np.arange(n - 1, 0, -1), np.zeros(n, dtype=np.int64)])
    return values, pos, neg


@lru_cache(maxsize=64)
def _level_table_np(d_bytes: bytes, scheme: str,
                    method: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(values, assignment grid, pos, neg) for a scheme and method, float64/int64."""
    d = np.frombuffer(d_bytes, dtype=np.float64)
    n = d.size
    ideal = np.arange(n, dtype=np.float64) / (n - 1)
    if scheme == "offset":
        values = 2.0 * d - 1.0
        grid = 2.0 * ideal - 1.0 if method == "linear" else values
        return values, grid, np.arange(n), np.full(n, -1)
    if scheme == "differential" or method == "linear":
        values, pos, neg = _pair_grid(d)
        grid = _pair_grid(ideal)[0] if method == "linear" else values
        return values, grid, pos, neg
    # differential_full, min_error: every pair (i, j); equal values keep the pair met first
    # in row-major order, so a value d_k is written as (k, 0) and −d_k as (0, k).
    diff = (d[:, None] - d[None, :]).ravel()
    _, first = np.unique(np.round(diff, 12), return_index=True)
    first = first[np.argsort(diff[first], kind="stable")]
    values = diff[first]
    return values, values, first // n, first % n


def _level_table(device: DeviceModel, scheme: str, method: str,
                 where: torch.device) -> _LevelTable:
    d = np.ascontiguousarray(device.normalized_levels(), dtype=np.float64)
    values, grid, pos, neg = _level_table_np(d.tobytes(), scheme, method)
    mids = (grid[1:] + grid[:-1]) / 2
    return _LevelTable(
        values=torch.as_tensor(values, dtype=torch.float32, device=where),
        mids=torch.as_tensor(mids, dtype=torch.float32, device=where),
        pos=torch.as_tensor(pos, dtype=torch.long, device=where),
        neg=torch.as_tensor(neg, dtype=torch.long, device=where),
        values_np=values, mids_np=mids,
    )


@dataclass(frozen=True)
class _DeviceLevels:
    g: torch.Tensor  # (L,) conductances, float32, S
    g0: float
    g_last: float

    @property
    def span(self) -> float:
        return self.g_last - self.g0

    @property
    def reference(self) -> float:
        return (self.g0 + self.g_last) / 2


def _device_levels(device: DeviceModel, where: torch.device) -> _DeviceLevels:
    g = device.conductances()
    return _DeviceLevels(torch.as_tensor(g, dtype=torch.float32, device=where),
                         float(g[0]), float(g[-1]))


def _midpoints(sorted_values: torch.Tensor) -> torch.Tensor:
    return ((sorted_values[1:] + sorted_values[:-1]) / 2).contiguous()


def _nearest(u: torch.Tensor, mids: torch.Tensor) -> torch.Tensor:
    """Index of the nearest grid value (grid given by its midpoints); ties go down."""
    return torch.bucketize(u, mids)


# --------------------------------------------------------------------------------------
# Scale
# --------------------------------------------------------------------------------------
def _initial_scale(w: torch.Tensor, clip: float | None) -> float:
    a = w.reshape(-1).abs()
    if a.numel() == 0:
        return MIN_SCALE
    if clip is None or clip == 100:
        s = float(a.max())
    else:
        k = min(max(math.ceil(clip / 100.0 * a.numel()), 1), a.numel())
        s = float(a.kthvalue(k).values)
    return max(s, MIN_SCALE)


def _sorted_float64(x: torch.Tensor) -> np.ndarray:
    """The values of ``x`` sorted ascending, as a float64 numpy array (numpy's SIMD sort
    on CPU; torch.sort on the tensor's own device otherwise)."""
    flat = x.detach().reshape(-1)
    if flat.device.type == "cpu":
        return np.sort(flat.float().numpy().astype(np.float64))
    return torch.sort(flat.float()).values.cpu().numpy().astype(np.float64)


def _sse(w: torch.Tensor, s: float, v: torch.Tensor) -> float:
    r = w.double() - s * v.double()
    return float((r * r).sum())


def _optimal_scale(w: torch.Tensor, values: np.ndarray, mids: np.ndarray, s0: float) -> float:
    """Alternating least squares for the scale: assign each weight to its nearest grid
    value at scale s, then s = Σ w·v / Σ v². Runs on the sorted weights with prefix
    sums (O(M log N) a round for M values, N weights; O(N log M) when M > N)."""
    xs = _sorted_float64(w)
    n = xs.size
    sq_total = float(np.dot(xs, xs))
    csum = np.concatenate([[0.0], np.cumsum(xs)])
    by_cells = values.size <= n
    best_sse, best_s = math.inf, s0
    s, prev = s0, None
    for _ in range(MAX_SCALE_ITERATIONS):
        if by_cells:  # weights in cell i: s·mids[i−1] < w <= s·mids[i] (bucketize's rule)
            cuts = np.searchsorted(xs, s * mids, side="right")
            edges = np.concatenate([[0], cuts, [n]])
            count = np.diff(edges)
            wv = float(np.dot(values, csum[edges[1:]] - csum[edges[:-1]]))
            vv = float(np.dot(values * values, count))
            key = cuts
        else:
            idx = np.searchsorted(s * mids, xs, side="left")
            v = values[idx]
            wv, vv = float(np.dot(xs, v)), float(np.dot(v, v))
            key = idx
        sse = sq_total - 2.0 * s * wv + s * s * vv
        if sse < best_sse:
            best_sse, best_s = sse, s
        if vv == 0 or (prev is not None and np.array_equal(key, prev)):
            break
        prev = key
        s_next = wv / vv
        if not (math.isfinite(s_next) and s_next >= MIN_SCALE):
            break
        s = s_next
    return best_s


def _assign_discrete(w: torch.Tensor, table: _LevelTable, s0: float,
                     optimal: bool) -> tuple[float, torch.Tensor]:
    """Scale and level-table index per weight (nearest grid value of w / s)."""
    idx = _nearest(w / s0, table.mids)
    if not optimal:
        return s0, idx
    s = _optimal_scale(w, table.values_np, table.mids_np, s0)
    if s == s0:
        return s0, idx
    new_idx = _nearest(w / s, table.mids)
    # keep the better of the two, measured on the realised weights themselves
    if _sse(w, s, table.values[new_idx]) <= _sse(w, s0, table.values[idx]):
        return s, new_idx
    return s0, idx


# --------------------------------------------------------------------------------------
# Lloyd-Max (generalized quantization)
# --------------------------------------------------------------------------------------
def lloyd_max(w: torch.Tensor, levels: int, max_iter: int = 300, tol: float = 1e-7
              ) -> torch.Tensor:
    """Lloyd-Max codebook of ``levels`` values for the weights ``w`` (1-D k-means).

    Deterministic: initialised at the weight quantiles (j + ½)/L, iterated on the sorted
    weights with prefix sums (each round costs O(L log N)), until no value moves by more
    than ``tol`` × (max w − min w). Returns (levels,) ascending, float32, on w's device.
    """
    if not isinstance(levels, (int, np.integer)) or not 1 <= levels <= MAX_LEVELS:
        raise InputError(f"levels: must be an integer in [1, {MAX_LEVELS}], got {levels!r}")
    if w.numel() == 0:
        raise InputError("weights: Lloyd-Max needs at least one weight")
    xs = _sorted_float64(w)
    n = xs.size
    csum = np.concatenate([[0.0], np.cumsum(xs)])
    start = np.minimum(((np.arange(levels) + 0.5) * n / levels).astype(np.int64), n - 1)
    c = xs[start]
    limit = tol * float(xs[-1] - xs[0])
    # buffers reused by every round (the rounds are a few µs of arithmetic each, and
    # numpy's per-call overhead was most of it: 20 % of a dashboard change of levels)
    edges = np.empty(levels + 1, dtype=np.int64)
    edges[0], edges[-1] = 0, n
    mids = np.empty(max(levels - 1, 0))
    for _ in range(max_iter):
        np.add(c[1:], c[:-1], out=mids)
        mids *= 0.5  # the midpoints between neighbouring values (exact, as / 2)
        edges[1:-1] = xs.searchsorted(mids)
        count = edges[1:] - edges[:-1]
        total = csum[edges[1:]] - csum[edges[:-1]]
        new = np.where(count > 0, total / np.maximum(count, 1), c)
        moved = np.abs(new - c).max()
        c = new
        if moved <= limit:
            break
    return torch.as_tensor(c, dtype=torch.float32, device=w.device)


# --------------------------------------------------------------------------------------
# Conductances
# --------------------------------------------------------------------------------------
def _continuous_conductances(target: torch.Tensor, s: float, scheme: str,
                             levels: _DeviceLevels) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Conductances realising ``target`` ∈ [−s, s] on the continuous range [G_0, G_{L−1}]."""
    if scheme == "offset":
        w_scale = 2.0 * s / levels.span
        g_pos = levels.reference + target / w_scale
        return g_pos, torch.full_like(target, levels.reference), w_scale
    w_scale = s / levels.span
    return (levels.g0 + target.clamp_min(0) / w_scale,
            levels.g0 + (-target).clamp_min(0) / w_scale, w_scale)


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InputError(f"{name}: must be one of {list(allowed)}, got {value!r}")


def _check_codebook(codebook: Any, where: torch.device) -> torch.Tensor:
    cb = torch.as_tensor(codebook, dtype=torch.float32).to(where).reshape(-1)
    if not 1 <= cb.numel() <= MAX_LEVELS:
        raise InputError(f"codebook: needs 1 … {MAX_LEVELS} values, got {cb.numel()}")
    if not torch.isfinite(cb).all():
        raise InputError("codebook: every value must be finite")
    return torch.sort(cb).values


def _cells_of(table: Any, idx: torch.Tensor, levels: Any, scheme: str,
              s: float) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor,
                                 torch.Tensor, float]:
    """Level indices (G⁺, and G⁻ for pairs), conductances (S) and weight scale of the
    weights assigned to entries ``idx`` of a level ``table`` with scale ``s``."""
    indices = table.pos[idx]
    g_pos = levels.g[indices]
    if scheme == "offset":
        return indices, None, g_pos, torch.full_like(g_pos, levels.reference), \
            2.0 * s / levels.span
    indices_neg = table.neg[idx]
    return indices, indices_neg, g_pos, levels.g[indices_neg], s / levels.span


def map_weights(w: torch.Tensor, device: DeviceModel, method: str = "min_error",
                scheme: str = "offset", scale: str = "max", clip: float | None = None,
                codebook: torch.Tensor | None = None, snap: bool = False) -> MappingResult:
    """Write the weights ``w`` (any shape) into ``device``'s conductances; see module doc.

    ``clip``: percentile of |w| in (0, 100] used as w_max (weights beyond are clipped);
    ``codebook``: a given set of weight values for ``generalized`` instead of Lloyd-Max;
    ``snap`` (``generalized`` only): move each codebook value to the nearest value the
    device's levels can realise in ``scheme`` (scale w_max = max |codebook|), so the
    codebook is written to discrete levels like ``min_error`` instead of to any
    conductance in [G_0, G_{L−1}].
    """
    _check_choice("method", method, METHODS)
    _check_choice("scheme", scheme, SCHEMES)
    _check_choice("scale", scale, SCALES)
    if not isinstance(device, DeviceModel):
        raise InputError(f"device: expected a DeviceModel, got {type(device).__name__}")
    if clip is not None and not (isinstance(clip, (int, float)) and 0 < clip <= 100):
        raise InputError(f"clip: must be a percentile in (0, 100] or None, got {clip!r}")
    if codebook is not None and method != "generalized":
        raise InputError(f"codebook: only used by method='generalized', not {method!r}")
    if snap and method != "generalized":
        raise InputError(f"snap: only used by method='generalized', not {method!r}")
    if not isinstance(w, torch.Tensor):
        w = torch.as_tensor(w, dtype=torch.float32)
    w = w.detach()
    wf = w.float()
    if not torch.isfinite(wf).all():
        raise InputError("weights: contain NaN or inf")
    where = wf.device
    levels = _device_levels(device, where)
    s = _initial_scale(wf, clip)
    indices = indices_neg = cb = None

    if method in ("linear", "min_error"):
        table = _level_table(device, scheme, method, where)
        s, idx = _assign_discrete(wf, table, s, optimal=(scale == "optimal"))
        indices, indices_neg, g_pos, g_neg, w_scale = _cells_of(table, idx, levels, scheme, s)
    else:
        clipped = wf.clamp(-s, s) if clip is not None else wf
        if method == "generalized":
            cb = (_check_codebook(codebook, where) if codebook is not None
                  else lloyd_max(clipped, device.levels))
            s = max(float(cb.abs().max()), MIN_SCALE)
            if snap:
                table = _level_table(device, scheme, "min_error", where)
                snapped = torch.unique(_nearest(cb / s, table.mids))  # ascending values
                cb = table.values[snapped] * s
                idx = snapped[_nearest(clipped, _midpoints(cb))]
                indices, indices_neg, g_pos, g_neg, w_scale = _cells_of(table, idx, levels,
                                                                        scheme, s)
            else:
                target = cb[_nearest(clipped, _midpoints(cb))]
        else:
            target = clipped
        if not (method == "generalized" and snap):
            g_pos, g_neg, w_scale = _continuous_conductances(target, s, scheme, levels)

    w_hat = w_scale * (g_pos - g_neg)
    return MappingResult(
        w=wf, w_hat=w_hat, error=w_hat - wf, g_pos=g_pos, g_neg=g_neg, w_scale=float(w_scale),
        neg_is_reference=(scheme == "offset"), indices=indices, codebook=cb, w_max=float(s),
        method=method, scheme=scheme, scale=scale, clip=clip, indices_neg=indices_neg,
        device=device,
    )


def map_model(model: nn.Module, device: DeviceModel, method: str = "min_error",
              scheme: str = "offset", scale: str = "max",
              clip: float | None = None) -> dict[str, MappingResult]:
    """:func:`map_weights` for every crossbar layer's weight of ``model`` (Conv1d, Conv2d,
    Linear: :func:`explorer.models.analog_layers`), by layer name."""
    from explorer.models import analog_layers

    return {name: map_weights(module.weight, device, method=method, scheme=scheme,
                              scale=scale, clip=clip)
            for name, module in analog_layers(model)}
