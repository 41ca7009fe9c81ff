"""IR drop (explorer.wires) against an independent nodal solve written here.

The reference builds the crossbar of DESIGN.md §8 as a plain list of resistors between
named nodes (drivers at v, sense nodes at 0 V) and solves Kirchhoff's current law with
``scipy.sparse.linalg.spsolve`` – none of the code under test is used.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.sparse.linalg import spsolve

from explorer.errors import InputError
from explorer.wires import column_currents, effective_matrix


def reference_currents(G: np.ndarray, V: np.ndarray, r_row: float, r_col: float) -> np.ndarray:
    """Sense currents [B, C] of the resistor network for input voltages V [B, R]; a zero
    resistance merges its two nodes (a row node becomes its driver, a column node the
    sense node's 0 V)."""
    rows, cols = G.shape

    def row(i: int, j: int) -> tuple:
        return ("drv", i) if r_row == 0 else ("row", i, j)

    def col(i: int, j: int) -> tuple:
        return ("sense", j) if r_col == 0 else ("col", i, j)

    resistors = []  # (node, node, conductance)
    for i in range(rows):
        if r_row:
            resistors.append((("drv", i), row(i, 0), 1.0 / r_row))
            for j in range(cols - 1):
                resistors.append((row(i, j), row(i, j + 1), 1.0 / r_row))
        for j in range(cols):
            resistors.append((row(i, j), col(i, j), G[i, j]))
            if r_col:
                below = col(i + 1, j) if i + 1 < rows else ("sense", j)
                resistors.append((col(i, j), below, 1.0 / r_col))
    unknown: dict[tuple, int] = {}
    for a, b, _ in resistors:
        for node in (a, b):
            if node[0] in ("row", "col") and node not in unknown:
                unknown[node] = len(unknown)
    n = len(unknown)
    batch = V.shape[0]
    volts = np.zeros((n, batch))
    if n:
        lap = sp.lil_matrix((n, n))
        rhs = np.zeros((n, batch))
        for a, b, g in resistors:
            for me_node, other in ((a, b), (b, a)):
                me = unknown.get(me_node)
                if me is None:
                    continue
                lap[me, me] += g
                if other in unknown:
                    lap[me, unknown[other]] -= g
                elif other[0] == "drv":
                    rhs[me] += g * V[:, other[1]]
        volts = spsolve(lap.tocsc(), rhs).reshape(n, batch)

    def voltage(node: tuple) -> np.ndarray:
        if node[0] == "drv":
            return V[:, node[1]]
        if node[0] == "sense":
            return np.zeros(batch)
        return volts[unknown[node]]

    out = np.zeros((batch, cols))
    for a, b, g in resistors:  # current into each sense node
        for node, other in ((a, b), (b, a)):
            if node[0] == "sense":
                out[:, node[1]] += g * voltage(other)
    return out


def _random(rows: int, cols: int, seed: int, low: float, high: float) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, (rows, cols))


@pytest.mark.parametrize("size", [8, 32, 64])
def test_solve_matches_direct_nodal_solve(size: int) -> None:
    G = _random(size, size, size, 1e-6, 1e-5)
    rng = np.random.default_rng(100 + size)
    for batch in (3, size + 5):  # fewer vectors than rows: direct; more: effective matrix
        V = rng.uniform(0.0, 0.5, (batch, size))
        ref = reference_currents(G, V, 2.1, 6.4)
        got = column_currents(torch.from_numpy(G), torch.from_numpy(V), 2.1, 6.4, "solve")
        rel = np.abs(got.numpy() - ref) / np.abs(ref)
        assert rel.max() < 1e-5, rel.max()
        assert (ref < V @ G).all()  # the wires lose current


@pytest.mark.parametrize("size", [8, 32, 64])
def test_first_order_within_ten_percent_of_exact_loss(size: int) -> None:
    G = _random(size, size, 7 * size, 1e-7, 5e-6)
    V = np.random.default_rng(size).uniform(0.1, 0.5, (4, size))
    ideal = V @ G
    exact_loss = 1.0 - reference_currents(G, V, 2.1, 6.4) / ideal
    assert 0 < exact_loss.max() < 0.05  # the regime the claim is about
    got = column_currents(torch.from_numpy(G), torch.from_numpy(V), 2.1, 6.4, "first_order")
    first_loss = 1.0 - got.numpy() / ideal
    assert np.abs(first_loss - exact_loss).max() <= 0.1 * exact_loss.min()


def test_zero_resistance_is_v_dot_g_exactly() -> None:
    G = torch.from_numpy(_random(16, 9, 1, 1e-6, 1e-5))
    v = torch.rand(5, 16, dtype=torch.float64)
    for method in ("solve", "first_order"):
        assert torch.equal(column_currents(G, v, 0.0, 0.0, method), v @ G)
        assert torch.equal(column_currents(G.float(), v[0].float(), 0, 0, method),
                           v[0].float() @ G.float())


@pytest.mark.parametrize("rows", [1, 2, 16, 128])
def test_uniform_column_first_order_loss(rows: int) -> None:
    g, r = 2e-6, 3.0
    G = torch.full((rows, 1), g, dtype=torch.float64)
    v = torch.full((rows,), 0.5, dtype=torch.float64)
    formula = r * g * (rows + 1) * (2 * rows + 1) / 6
    first = 1.0 - float(column_currents(G, v, 0.0, r, "first_order")) / (rows * g * 0.5)
    assert first == pytest.approx(formula, rel=1e-9)
    exact = 1.0 - float(column_currents(G, v, 0.0, r, "solve")) / (rows * g * 0.5)
    ref = 1.0 - reference_currents(G.numpy(), v.numpy()[None], 0.0, r)[0, 0] / (rows * g * 0.5)
    assert exact == pytest.approx(ref, rel=1e-5)
    # first order is the leading term: exact = formula · (1 − O(formula))
    assert exact < formula and exact == pytest.approx(formula, rel=3 * formula)


def test_reduced_networks_one_ideal_wire() -> None:
    G = _random(12, 7, 3, 1e-6, 1e-5)
    V = np.random.default_rng(3).uniform(0, 0.5, (2, 12))
    for r_row, r_col in ((0.0, 6.4), (2.1, 0.0)):
        ref = reference_currents(G, V, r_row, r_col)
        got = column_currents(torch.from_numpy(G), torch.from_numpy(V), r_row, r_col, "solve")
        assert np.abs(got.numpy() / ref - 1).max() < 1e-5


def test_unused_rows_and_columns_are_solved() -> None:
    """Padding (a row or column without cells, as in a partly used tile) carries nothing."""
    G = _random(12, 9, 4, 1e-6, 1e-5)
    G[:3] = 0.0  # unused word lines
    G[:, -2:] = 0.0  # unused bit lines
    for g in (G, G.T.copy()):  # forward (R <= C) and adjoint (C < R) solves
        V = np.random.default_rng(5).uniform(0, 0.5, (20, g.shape[0]))
        ref = reference_currents(g, V, 2.0, 6.0)
        got = column_currents(torch.from_numpy(g), torch.from_numpy(V), 2.0, 6.0, "solve")
        used = ref.max(0) > 0
        assert np.abs(got.numpy()[:, used] / ref[:, used] - 1).max() < 1e-5
        assert np.abs(got.numpy()[:, ~used]).max() < 1e-15


def test_effective_matrix_folds_many_tiles_at_once() -> None:
    tiles = torch.from_numpy(np.stack([_random(10, 6, s, 1e-6, 1e-5) for s in range(3)]))
    folded = effective_matrix(tiles, 2.0, 10.0, "first_order")
    for k in range(3):
        assert torch.allclose(folded[k], effective_matrix(tiles[k], 2.0, 10.0, "first_order"))
    exact = effective_matrix(tiles, 2.0, 10.0, "solve")
    v = torch.rand(10, dtype=torch.float64)
    ref = reference_currents(tiles[1].numpy(), v.numpy()[None], 2.0, 10.0)[0]
    assert np.abs((v @ exact[1]).numpy() / ref - 1).max() < 1e-5


def test_bad_input_and_non_convergence() -> None:
    G = torch.from_numpy(_random(8, 8, 0, 1e-6, 1e-5))
    v = torch.rand(8, dtype=torch.float64)
    with pytest.raises(InputError, match=r"r_row.*-1"):
        column_currents(G, v, -1.0, 1.0)
    with pytest.raises(InputError, match="r_col"):
        column_currents(G, v, 1.0, float("nan"))
    with pytest.raises(InputError, match="method"):
        column_currents(G, v, 1.0, 1.0, "exact")
    with pytest.raises(InputError, match="G:"):
        column_currents(-G, v, 1.0, 1.0)
    with pytest.raises(InputError, match="v:"):
        column_currents(G, v[:5], 1.0, 1.0)
    with pytest.raises(InputError, match="did not converge"):
        column_currents(G, v, 2.1, 6.4, "solve", max_iter=1)
    with pytest.raises(InputError, match="first-order model does not hold"):
        column_currents(G, v, 1e5, 1e5, "first_order")
