"""Time and wires of one analog layer: drift since programming, IR drop, drift compensation.

:class:`TimeWires` sits between a layer's programmed conductances and the effective weight
its tiles compute with (:mod:`explorer.crossbar` calls it when a trial is programmed and
when the time changes):

1. the programmed conductances (and the reference column of the ``offset`` scheme, a real
   cell per tile row) are laid out on the physical tiles (:class:`~explorer.tile_layout.
   TileLayout`);
2. drift (:mod:`explorer.drift`) moves every cell to its conductance at ``time_s`` from
   normals drawn once per trial (one programming draw evolves in time);
3. the wires (:mod:`explorer.wires`) fold each tile into its effective matrix ``T``; the
   ratio ``T / G`` per cell (the cell's share of current that reaches the sense amplifier)
   is kept, so per-read noise on a conductance still passes through the wires;
4. drift compensation: α = readout after programming / readout at ``time_s`` (mean |effective
   weight|, per layer or per column) rescales the digital outputs – folded into the weight
   when the ADC is ideal (exactly equivalent), applied to the ADC codes otherwise.

Everything happens when a tile is programmed or the time changes; the forward pass stays
the tiles' one grouped product.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from explorer import wires
from explorer.drift import check_time, draw, drifted
from explorer.drift_csv import DriftTable, read_drift_csv
from explorer.tile_layout import TileLayout
from explorer.wires import effective_matrix, first_order_loss


class TimeWires:
    """Drift, IR drop and drift compensation of one analog layer (see module docstring)."""

    def __init__(self, cfg: Any, layer: Any) -> None:
        self.drift: str = cfg.drift
        self.compensation_mode: str = cfg.drift_compensation
        self.time_s = check_time(cfg.time_s)
        self.ir_drop: str = cfg.ir_drop
        self.r_row, self.r_col = float(cfg.r_row), float(cfg.r_col)
        self.v_read = float(cfg.v_read)
        self.g_min, self.g_max = float(cfg.device.g_min), float(cfg.device.g_max)
        self.table: DriftTable | None = read_drift_csv(cfg.drift_csv) \
            if self.drift == "measured" else None
        self.ideal_adc = layer.settings.adc_bits is None
        self.layout = TileLayout.build(layer.plan, layer.out_features, layer.settings.tile_cols,
                                       differential=not layer.mapping.neg_is_reference,
                                       device=layer.weight.device)
        self.generator: torch.Generator | None = None
        self.prog: Tensor | None = None
        self.target: Tensor | None = None
        self.normals: Tensor | None = None
        self.reference: Tensor | None = None
        self.factors: tuple[Tensor, Tensor] | None = None
        self.alpha: Tensor | None = None
        self.tiles: Tensor | None = None
        self.effective: Tensor | None = None
        self._weight: Tensor | None = None
        self._conductances: tuple[Tensor, Tensor] = (torch.empty(0), torch.empty(0))

    @staticmethod
    def needed(cfg: Any) -> bool:
        """Whether ``cfg`` asks for drift or IR drop (else the layer skips this class)."""
        return cfg.drift != "none" or cfg.ir_drop != "none"

    # -- programming and time -----------------------------------------------------------

    def program(self, layer: Any, g_pos: Tensor, g_neg: Tensor) -> tuple[Tensor, Tensor]:
        """Lay out a trial's programmed conductances, draw its drift normals (from
        :attr:`generator`), read the compensation reference and evolve to :attr:`time_s`.
        Returns the per-weight conductances at that time (G⁺, G⁻ or reference)."""
        where = g_pos.device
        if self.layout.source.device != where:
            self.layout = self.layout.to(where)
            self.target = None
        m = layer.mapping
        self.prog = self.layout.gather(g_pos, g_neg)
        if self.target is None or self.target.dtype != self.prog.dtype:  # fixed per mapping
            self.target = self.layout.gather(m.g_pos.to(where, g_pos.dtype),
                                             m.g_neg.to(where, g_pos.dtype))
        self.normals = None
        if self.drift != "none":
            if self.generator is None:
                raise RuntimeError(f"{layer.name}: no drift generator (program via reprogram())")
            self.normals = draw(self.prog.shape, self.generator, where, self.prog.dtype)
        self.reference = None
        if self.compensation_mode != "none":  # the read right after programming
            self.reference = self._readout(self._tile_weight(m, self._through_wires(self.prog)))
        return self.evolve(layer)

    def evolve(self, layer: Any, time_s: float | None = None) -> tuple[Tensor, Tensor]:
        """Move the programmed cells to ``time_s`` (default: the current :attr:`time_s`),
        fold the wires and update the compensation; returns per-weight conductances."""
        if time_s is not None:
            self.time_s = check_time(time_s)
        if self.prog is None:
            raise RuntimeError(f"{layer.name}: not programmed yet")
        tiles = self.prog
        if self.normals is not None:
            tiles = drifted(self.drift, self.prog, self.target, self.normals, self.time_s,
                            self.g_min, self.g_max, self.table)
            tiles = torch.where(self.layout.mask, tiles, torch.zeros_like(tiles))
        self.tiles = tiles
        self.effective = self._through_wires(tiles)
        self.factors = None  # per-weight T/G ratios, made when a read needs them
        w = self._tile_weight(layer.mapping, self.effective)
        self.alpha = None if self.reference is None else \
            compensation_ratio(self.reference, self._readout(w))
        layer.output_scale = None if self.ideal_adc or self.alpha is None else self.alpha
        self._weight = self._compensated(w)
        self._conductances = self.layout.scatter(tiles, layer.weight)
        return self._conductances

    # -- weights ------------------------------------------------------------------------

    def weight(self, mapping: Any, g_pos: Tensor, g_neg: Tensor) -> Tensor:
        """Effective weight (weight units) of per-weight conductances through the wires;
        with an ideal ADC the compensation α is folded in (digital scaling, exact).

        The conductances :meth:`evolve` returned give the folded weight directly; others
        (a read with noise) pass through each cell's share T/G of the current that reaches
        the sense node, taken from the noise-free tile (exact to first order in the noise).
        """
        current = self._conductances
        if g_pos is current[0] and g_neg is current[1]:
            return self._weight
        if self.effective is self.tiles:  # no wires
            return self._compensated(mapping.to_weight(g_pos, g_neg))
        if self.factors is None:
            flat, eff = self.tiles, self.effective
            ratio = torch.where(flat > 0, eff / flat.clamp_min(torch.finfo(flat.dtype).tiny),
                                torch.ones_like(flat))
            self.factors = self.layout.scatter(ratio, g_pos)
        k_pos, k_neg = self.factors
        return self._compensated(mapping.w_scale * (g_pos * k_pos - g_neg * k_neg))

    def _compensated(self, w: Tensor) -> Tensor:
        if self.alpha is None or not self.ideal_adc:
            return w
        if self.alpha.dim():
            return w * self.alpha.view(-1, *([1] * (w.dim() - 1)))
        return w * self.alpha

    def _through_wires(self, tiles: Tensor) -> Tensor:
        """Effective matrices T (S) of the tiles (the tiles themselves without wires)."""
        if self.ir_drop == "none" or (not self.r_row and not self.r_col):
            return tiles
        flat = tiles.reshape(-1, *tiles.shape[-2:])
        return effective_matrix(flat, self.r_row, self.r_col, self.ir_drop,
                                max_iter=wires.MAX_ITERATIONS).view(tiles.shape)

    def _tile_weight(self, mapping: Any, effective: Tensor) -> Tensor:
        """Weight (weight units) read from effective tiles: w_scale · (T⁺ − T⁻ or T_ref)."""
        pos, neg = self.layout.scatter(effective, mapping.w_hat)
        return mapping.w_scale * (pos - neg)

    def _readout(self, w: Tensor) -> Tensor:
        if self.compensation_mode == "layer":
            return w.abs().mean()
        return w.abs().reshape(w.shape[0], -1).mean(1)

    # -- reports ------------------------------------------------------------------------

    def tile_losses(self) -> Tensor:
        """Relative current loss of every tile ``[chunks, column tiles]`` at full-scale input
        (every used word line at ``v_read``): 1 − Σ sensed / Σ ideal currents (0 without
        wires). Uses the cells at the current time."""
        if self.tiles is None:
            raise RuntimeError("not programmed yet")
        tiles = self.tiles
        ideal = tiles.sum((-2, -1)) * self.v_read
        if self.ir_drop == "none":
            return torch.zeros_like(ideal)
        flat = tiles.reshape(-1, *tiles.shape[-2:])
        if self.ir_drop == "first_order":
            lost = (flat.double() * first_order_loss(flat, self.r_row, self.r_col)).sum((-2, -1))
            sensed = ideal.reshape(-1).double() - lost * self.v_read
        else:
            sensed = effective_matrix(flat, self.r_row, self.r_col, "solve").sum((-2, -1)) \
                * self.v_read
        loss = 1.0 - sensed.view(ideal.shape) / ideal.clamp_min(torch.finfo(ideal.dtype).tiny)
        return torch.where(ideal > 0, loss.to(ideal.dtype), torch.zeros_like(ideal))


def compensation_ratio(reference: Tensor, now: Tensor) -> Tensor:
    """α = reference readout / readout now (1 where the readout now is 0)."""
    floor = torch.finfo(now.dtype).tiny
    return torch.where(now > floor, reference / now.clamp_min(floor), torch.ones_like(now))


__all__ = ["TimeWires", "compensation_ratio"]
