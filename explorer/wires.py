"""IR drop along the word and bit lines of a crossbar tile (DESIGN.md §8).

Conventions (tile ``G[i, j]``, row ``i`` = input, column ``j`` = output): row ``i`` is driven
by ``v[i]`` at its column-0 end; every row-wire segment (driver → (i, 0), (i, j) → (i, j+1))
has ``r_row`` ohm; column ``j`` is sensed at 0 V after its last row, every column-wire
segment ((i, j) → (i+1, j), (R−1, j) → sense) has ``r_col`` ohm; cell (i, j) conducts
``G[i, j]`` siemens between row node (i, j) and column node (i, j). The output is the
current into each sense node (amperes). With ``r_row = r_col = 0`` it is ``v @ G``.

The network is linear, so for a given tile the sensed currents are ``v @ T`` with an
*effective matrix* ``T`` [R, C] (siemens) that depends on ``G`` and the wires only:

* ``"solve"`` – the exact network (2·R·C node voltages), one sparse LU factorisation
  (scipy, float64) and min(R, C) right-hand sides give ``T`` exactly; any number of input
  vectors then costs one matrix product. The residual is checked (1e-6 relative, with
  iterative refinement) and an :class:`~explorer.errors.InputError` says when it is not met.
* ``"first_order"`` – linearised around the ideal currents (every wire carries the
  current of the ideal ``v·G`` network): ``T = G ⊙ (1 − r_row·S_row − r_col·S_col)`` with
  ``S_row[l, j] = Σ_m G[l, m]·(min(m, j) + 1)`` (row segments between the driver and cell
  (l, j), weighted by the cells they feed) and ``S_col[l, j] = Σ_i G[i, j]·(R − max(l, i))``.
  Vectorised over leading (tile) dimensions, so a whole layer's tiles fold at once when
  they are programmed, and the forward pass stays one matrix product. A uniform column of
  ``g`` (``r_row = 0``, equal inputs) loses ``r_col·g·(R+1)(2R+1)/6`` of its current.

:func:`column_currents` is the public entry point; :func:`effective_matrix` gives ``T``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from explorer.errors import InputError
from explorer.settings.wires import MAX_SOLVE_CELLS

METHODS = ("solve", "first_order")
SOLVE_TOLERANCE = 1e-6
"""Largest relative residual ‖A·x − b‖ / ‖b‖ accepted from the exact network solve."""
MAX_ITERATIONS = 300
NEGLIGIBLE_LOSS = 1e-12
"""Wires whose first-order loss stays below this fraction of every cell's current are
taken as ideal (their effect is below float64 resolution of the network equations)."""


def _check_resistance(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise InputError(f"{name}: expected a resistance in ohm per segment (a number >= 0), "
                         f"got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise InputError(f"{name}: {value:g} ohm is not allowed; expected a number >= 0 "
                         "(ohm per wire segment)")
    return value


def _check_conductances(G: Any, batched: bool = False) -> Tensor:
    if not isinstance(G, Tensor) or not G.is_floating_point():
        raise InputError("G: expected a float tensor of conductances in siemens")
    if G.dim() < 2 or (not batched and G.dim() != 2):
        raise InputError(f"G: expected a [rows, cols] tensor, got shape {tuple(G.shape)}")
    if G.shape[-1] < 1 or G.shape[-2] < 1:
        raise InputError(f"G: needs at least one row and one column, got {tuple(G.shape)}")
    if not bool(torch.isfinite(G).all()) or bool((G < 0).any()):
        raise InputError("G: conductances must be finite and >= 0 S")
    return G


def first_order_loss(G: Tensor, r_row: float, r_col: float) -> Tensor:
    """Relative first-order current loss of every cell, ``r_row·S_row + r_col·S_col``
    (dimensionless, shaped like ``G`` [..., R, C]; see the module docstring)."""
    rows, cols = G.shape[-2], G.shape[-1]
    g = G.double()
    loss = torch.zeros_like(g)
    if r_row:
        m = torch.arange(1, cols + 1, dtype=g.dtype, device=g.device)  # m + 1
        weighted = torch.cumsum(g * m, dim=-1)  # Σ_{m<=j} G·(m+1)
        tail = g.sum(-1, keepdim=True) - torch.cumsum(g, dim=-1)  # Σ_{m>j} G
        loss += r_row * (weighted + m * tail)
    if r_col:
        i = torch.arange(rows, dtype=g.dtype, device=g.device).unsqueeze(-1)  # [R, 1]
        below = torch.cumsum(g, dim=-2)  # Σ_{i<=l} G
        weighted = g * (rows - i)
        tail = weighted.sum(-2, keepdim=True) - torch.cumsum(weighted, dim=-2)  # Σ_{i>l}
        loss += r_col * ((rows - i) * below + tail)
    return loss


class _Wires:
    """Tridiagonal systems of a batch of wires (constant coupling ``g`` between neighbours,
    diagonal ``diag`` [W, n]), factorised once (Thomas algorithm; the matrices are
    diagonally dominant, so no pivoting) and solved for many right-hand sides at once."""

    def __init__(self, diag: Tensor, g: float) -> None:
        self.g = g
        n = diag.shape[1]
        inv = torch.empty_like(diag)
        upper = torch.empty_like(diag)  # c'_k
        inv[:, 0] = 1.0 / diag[:, 0]
        upper[:, 0] = -g * inv[:, 0]
        for k in range(1, n):
            inv[:, k] = 1.0 / (diag[:, k] + g * upper[:, k - 1])
            upper[:, k] = -g * inv[:, k]
        self.inv, self.upper = inv.unsqueeze(-1), upper.unsqueeze(-1)

    def solve(self, rhs: Tensor) -> Tensor:
        """``rhs`` [W, n, K] → solutions [W, n, K]."""
        n = rhs.shape[1]
        y = torch.empty_like(rhs)
        y[:, 0] = rhs[:, 0] * self.inv[:, 0]
        for k in range(1, n):
            y[:, k] = (rhs[:, k] + self.g * y[:, k - 1]) * self.inv[:, k]
        for k in range(n - 2, -1, -1):
            y[:, k] -= self.upper[:, k] * y[:, k + 1]
        return y


class _Network:
    """The tile's nodal equations ``A·u = b`` (SPD): row-node voltages ``a`` [R, C, K]
    (unknown when ``r_row`` > 0) and column-node voltages ``c`` [R, C, K] (unknown when
    ``r_col`` > 0), for K input vectors at once."""

    def __init__(self, G: Tensor, r_row: float, r_col: float) -> None:
        rows, cols = G.shape
        self.G = G.unsqueeze(-1)  # [R, C, 1]
        self.gr = 1.0 / r_row if r_row else 0.0
        self.gc = 1.0 / r_col if r_col else 0.0
        self.rows_unknown, self.cols_unknown = bool(r_row), bool(r_col)
        if self.rows_unknown:  # row wire i: G + gr·(left) + gr·(right, if any)
            right = torch.ones(cols, dtype=G.dtype, device=G.device)
            right[-1] = 0.0
            self.row_diag = (G + self.gr * (1.0 + right)).unsqueeze(-1)
            self.row_wires = _Wires(self.row_diag[..., 0], self.gr)
        if self.cols_unknown:  # column wire j: G + gc·(down) + gc·(up, if any)
            up = torch.ones(rows, dtype=G.dtype, device=G.device)
            up[0] = 0.0
            self.col_diag = (G + self.gc * (1.0 + up).unsqueeze(-1)).unsqueeze(-1)
            self.col_wires = _Wires(self.col_diag[..., 0].T.contiguous(), self.gc)

    def rhs(self, v: Tensor) -> list[Tensor]:
        """Right-hand side of input voltages ``v`` [R, K] (the driver or, with ideal row
        wires, the cells feed the unknown nodes)."""
        rows, cols = self.G.shape[:2]
        out = []
        if self.rows_unknown:
            b = v.new_zeros((rows, cols, v.shape[1]))
            b[:, 0] = self.gr * v
            out.append(b)
        if self.cols_unknown:
            out.append(self.G * v.unsqueeze(1) if not self.rows_unknown else
                       v.new_zeros((rows, cols, v.shape[1])))
        return out

    def apply(self, u: list[Tensor]) -> list[Tensor]:
        """``A·u`` (amperes: the net current out of every unknown node)."""
        out = []
        if self.rows_unknown:
            a = u[0]
            ya = a * self.row_diag
            ya[:, 1:].sub_(a[:, :-1], alpha=self.gr)
            ya[:, :-1].sub_(a[:, 1:], alpha=self.gr)
            out.append(ya)
        if self.cols_unknown:
            c = u[-1]
            yc = c * self.col_diag
            yc[1:].sub_(c[:-1], alpha=self.gc)
            yc[:-1].sub_(c[1:], alpha=self.gc)
            out.append(yc)
        if self.rows_unknown and self.cols_unknown:
            out[0].addcmul_(self.G, u[1], value=-1.0)
            out[1].addcmul_(self.G, u[0], value=-1.0)
        return out

    def precondition(self, r: list[Tensor]) -> list[Tensor]:
        """Block-Jacobi: every wire solved exactly, the cells' coupling left out."""
        out = []
        k = 0
        if self.rows_unknown:
            out.append(self.row_wires.solve(r[k]))
            k += 1
        if self.cols_unknown:
            out.append(self.col_wires.solve(r[k].transpose(0, 1)).transpose(0, 1))
        return out

    def currents(self, u: list[Tensor], v: Tensor) -> Tensor:
        """Sensed currents [C, K] of node voltages ``u``."""
        if self.cols_unknown:
            return self.gc * u[-1][-1]
        return (self.G * u[0]).sum(0)  # column nodes at 0 V: Σ_i G·a


def _dot(x: list[Tensor], y: list[Tensor]) -> Tensor:
    """Per right-hand side (last axis) inner product of two node-voltage lists."""
    return sum((a * b).sum((0, 1)) for a, b in zip(x, y, strict=True))


def _pcg(net: _Network, b: list[Tensor], scale: Tensor, tol: float,
         max_iter: int) -> list[Tensor]:
    """Solve ``A·u = b`` (K right-hand sides) by conjugate gradients preconditioned by exact
    solves of every wire. Converged when the current imbalance at the nodes, ‖A·u − b‖, is
    at most ``tol`` · 1e-3 of ``scale`` (the cell currents, per right-hand side); the true
    residual is recomputed at the end (and the iteration restarted if it is above
    ``tol``); InputError if ``tol`` is not reached in ``max_iter`` iterations."""
    tiny = torch.finfo(scale.dtype).tiny
    # a right-hand side that reaches no cell (an unused word line or bit line) sends no
    # current to the output; its imbalance is measured against its own drive instead
    if bool((scale <= 0).any()):
        scale = torch.where(scale > 0, scale, _dot(b, b).sqrt())
    scale = scale.clamp_min(tiny)
    x = [torch.zeros_like(t) for t in b]
    r = [t.clone() for t in b]
    residual, done = math.inf, 0
    while done < max_iter:  # restarted when the updated residual drifts from the true one
        z = net.precondition(r)
        p = [t.clone() for t in z]
        rz = _dot(r, z)
        while done < max_iter:
            done += 1
            ap = net.apply(p)
            alpha = rz / _dot(p, ap).clamp_min(tiny)
            for xi, ri, pi, api in zip(x, r, p, ap, strict=True):
                xi.add_(pi * alpha)
                ri.sub_(api * alpha)
            estimate = float((_dot(r, r).sqrt() / scale).max())
            if not math.isfinite(estimate) or estimate <= 1e-3 * tol:
                break
            z = net.precondition(r)
            rz_new = _dot(r, z)
            beta = rz_new / rz.clamp_min(tiny)
            rz = rz_new
            p = [zi.add_(pi * beta) for zi, pi in zip(z, p, strict=True)]
        r = [bi - ai for bi, ai in zip(b, net.apply(x), strict=True)]  # the true residual
        residual = float((_dot(r, r).sqrt() / scale).max())
        if not math.isfinite(residual) or residual <= tol:
            break
    if not math.isfinite(residual) or residual > tol:
        raise InputError(f"ir_drop solve: the wire network solve did not converge (current "
                         f"imbalance {residual:.1e} of the cell currents > {tol:.0e} after "
                         f"{done} iterations); the wire and cell conductances span too "
                         "many orders of magnitude, or the wires are too resistive for these "
                         "cells – use ir_drop='first_order', other resistances or smaller tiles")
    return x


def _network_currents(G: Tensor, v: Tensor, r_row: float, r_col: float, tol: float,
                      max_iter: int) -> Tensor:
    """Sensed currents [C, K] of the exact network for input voltages ``v`` [R, K]
    (converged to ``tol`` of the ideal cell currents ‖G·v‖, see :func:`_pcg`)."""
    net = _Network(G, r_row, r_col)
    scale = ((G * G).flatten() @ (v * v).repeat_interleave(G.shape[1], 0)).sqrt()  # ‖G·v‖
    return net.currents(_pcg(net, net.rhs(v), scale, tol, max_iter), v)


def _network_transfer_adjoint(G: Tensor, r_row: float, r_col: float, tol: float,
                              max_iter: int) -> Tensor:
    """The effective matrix T [R, C] from C right-hand sides (for tiles with fewer columns
    than rows): the nodal matrix A is symmetric, so T = Bᵀ·A⁻¹·Eᵀ with B the inputs' and E
    the sense nodes' coupling (reciprocity: 1 V behind each sense node in turn, the current
    into each driver). Converged to ``tol`` of each column's cell currents ‖G[:, j]‖·1 V."""
    net = _Network(G, r_row, r_col)
    rows, cols = G.shape
    pick = torch.eye(cols, dtype=G.dtype, device=G.device)  # [C (column), C (rhs)]
    b = []
    if net.rows_unknown:
        b.append(G.unsqueeze(-1) * pick if not net.cols_unknown else
                 G.new_zeros((rows, cols, cols)))
    if net.cols_unknown:
        bc = G.new_zeros((rows, cols, cols))
        bc[-1] = net.gc * pick
        b.append(bc)
    y = _pcg(net, b, (G * G).sum(0).sqrt(), tol, max_iter)
    if net.rows_unknown:
        return net.gr * y[0][:, 0, :]
    return torch.einsum("lm,lmj->lj", G, y[-1])


def _resolvable(G: Tensor, r_row: float, r_col: float) -> tuple[float, float]:
    """``r_row``, ``r_col`` with wires whose first-order loss is below
    :data:`NEGLIGIBLE_LOSS` set to 0 (solved as ideal wires, exactly eliminated)."""
    if r_row and float(first_order_loss(G, r_row, 0.0).max()) < NEGLIGIBLE_LOSS:
        r_row = 0.0
    if r_col and float(first_order_loss(G, 0.0, r_col).max()) < NEGLIGIBLE_LOSS:
        r_col = 0.0
    return r_row, r_col


def _exact_matrix(G: Tensor, r_row: float, r_col: float, tol: float,
                  max_iter: int) -> Tensor:
    rows, cols = G.shape
    if rows * cols > MAX_SOLVE_CELLS:
        raise InputError(f"ir_drop solve: a {rows}×{cols} tile has more than "
                         f"{MAX_SOLVE_CELLS:,} cells; use ir_drop='first_order' or smaller tiles")
    if not r_row and not r_col:
        return G.clone()
    g = G.detach().double()
    r_row, r_col = _resolvable(g, r_row, r_col)
    if not r_row and not r_col:
        return G.clone()
    if cols < rows:
        return _network_transfer_adjoint(g, r_row, r_col, tol, max_iter).to(G.dtype)
    eye = torch.eye(rows, dtype=g.dtype, device=g.device)
    return _network_currents(g, eye, r_row, r_col, tol, max_iter).T.to(G.dtype)


def effective_matrix(G: Tensor, r_row: float, r_col: float, method: str = "first_order",
                     tol: float = SOLVE_TOLERANCE, max_iter: int = MAX_ITERATIONS) -> Tensor:
    """The matrix ``T`` (siemens, shaped like ``G``) with sensed currents ``v @ T``.

    ``G`` [..., R, C] (leading dimensions: tiles, folded at once for ``first_order``; one
    solve after the other for ``solve``). Raises InputError for bad values, a first-order
    loss of 100 % or more in any cell (the linearisation no longer holds), or a solve that
    does not converge to ``tol`` in ``max_iter`` iterations.
    """
    G = _check_conductances(G, batched=True)
    r_row = _check_resistance("r_row", r_row)
    r_col = _check_resistance("r_col", r_col)
    if method not in METHODS:
        raise InputError(f"method: {method!r} is not one of {list(METHODS)}")
    if not r_row and not r_col:
        return G.clone()
    if method == "first_order":
        loss = first_order_loss(G, r_row, r_col)
        worst = float(loss.max()) if loss.numel() else 0.0
        if worst >= 1.0:
            raise InputError(f"ir_drop first_order: the linearised wire loss reaches "
                             f"{100 * worst:.0f} % of a cell's current, where the first-order "
                             "model does not hold; use ir_drop='solve', lower wire "
                             "resistances or smaller tiles")
        return (G.double() * (1.0 - loss)).to(G.dtype)
    flat = G.reshape(-1, *G.shape[-2:])
    return torch.stack([_exact_matrix(tile, r_row, r_col, tol, max_iter)
                        for tile in flat]).view(G.shape)


def column_currents(G: Tensor, v: Tensor, r_row: float, r_col: float,
                    method: str = "solve", tol: float = SOLVE_TOLERANCE,
                    max_iter: int = MAX_ITERATIONS) -> Tensor:
    """Currents (A) sensed at the end of each column of a tile with resistive wires.

    ``G`` [R, C] conductances (S); ``v`` [R] or [B, R] input voltages (V) on the rows;
    ``r_row`` / ``r_col`` ohm per wire segment (>= 0); ``method`` ``"solve"`` (the exact
    network; relative residual <= ``tol`` within ``max_iter`` iterations, else InputError)
    or ``"first_order"``. Returns [C] or [B, C] amperes, in the dtype of ``G`` and ``v``
    promoted. With both resistances 0 the result is ``v @ G`` exactly.

    ``solve`` handles a batch of B input vectors as min(B, R) right-hand sides: the
    vectors themselves, or the R unit vectors (the effective matrix), then one product.
    """
    G = _check_conductances(G)
    if not isinstance(v, Tensor) or not v.is_floating_point():
        raise InputError("v: expected a float tensor of input voltages in volts")
    if v.dim() not in (1, 2) or v.shape[-1] != G.shape[0]:
        raise InputError(f"v: expected shape [{G.shape[0]}] or [batch, {G.shape[0]}] "
                         f"(one voltage per row), got {tuple(v.shape)}")
    if not bool(torch.isfinite(v).all()):
        raise InputError("v: input voltages must be finite")
    dtype = torch.promote_types(G.dtype, v.dtype)
    r_row = _check_resistance("r_row", r_row)
    r_col = _check_resistance("r_col", r_col)
    if method not in METHODS:
        raise InputError(f"method: {method!r} is not one of {list(METHODS)}")
    v = v.to(device=G.device, dtype=dtype)
    if not r_row and not r_col:
        return v @ G.to(dtype)
    batch = v.reshape(-1, G.shape[0])
    if method == "solve" and batch.shape[0] < G.shape[0]:
        if G.numel() > MAX_SOLVE_CELLS:
            _exact_matrix(G, r_row, r_col, tol, max_iter)  # raises the size message
        r_row, r_col = _resolvable(G.double(), r_row, r_col)
        if not r_row and not r_col:
            return v @ G.to(dtype)
        out = _network_currents(G.double(), batch.double().T, r_row, r_col, tol, max_iter)
        return out.T.to(dtype).reshape(*v.shape[:-1], G.shape[1])
    return v @ effective_matrix(G.to(dtype), r_row, r_col, method, tol, max_iter)


__all__ = ["MAX_ITERATIONS", "MAX_SOLVE_CELLS", "METHODS", "SOLVE_TOLERANCE", "column_currents",
           "effective_matrix", "first_order_loss"]
