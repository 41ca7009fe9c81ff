"""Where a layer's cells sit on its physical tiles (for IR drop and drift, DESIGN.md §7–8).

A layer's weight ``[out, rows]`` (rows in im2col order ``c·kh·kw + k``) is split into row
chunks (:class:`explorer.tiles.RowChunks`) and column tiles of ``tile_cols`` bit lines.
Physical columns: ``offset`` – one cell per output (column ``o``) and one *reference
column* per tile, right after its last data column (a real cell per row, shared by the
tile's outputs); ``differential`` – the pair G⁺, G⁻ of output ``o`` on adjacent columns
``2o``, ``2o + 1``. Placement: a chunk's used word lines sit next to the sense amplifiers
(the bottom rows of the tile), its used bit lines next to the drivers (the first
columns); unused positions hold no cell (0 S) and change nothing on the wires.

:class:`TileLayout` gathers the conductances into tiles ``[chunks, column tiles, R, C]``
(R the largest chunk, C the widest tile) and scatters per-cell values back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class TileLayout:
    """Index maps between a layer's conductances and its physical tiles.

    ``shape``: ``(chunks, column_tiles, R, C)``; ``pos_index`` / ``neg_index`` ``[out, rows]``:
    flat tile position of each weight's G⁺ cell and of its G⁻ (or reference) cell;
    ``source``: for every tile position, the flat index into ``cat(g_pos, g_neg, [0])``
    (``[out, rows]`` order) it is read from (the last entry: no cell); ``mask``: real cells.
    """

    shape: tuple[int, int, int, int]
    pos_index: Tensor
    neg_index: Tensor
    source: Tensor
    mask: Tensor

    @classmethod
    def build(cls, plan: object, out_features: int, tile_cols: int, differential: bool,
              device: torch.device | str = "cpu") -> TileLayout:
        """The layout of a layer with row plan ``plan`` (:class:`~explorer.tiles.RowChunks`)."""
        kk = plan.kernel  # type: ignore[attr-defined]
        rows = plan.rows  # type: ignore[attr-defined]
        sizes = torch.tensor(plan.sizes, dtype=torch.long)  # type: ignore[attr-defined]
        r = torch.arange(rows)
        channel, k = r // kk, r % kk
        if plan.kernel_splits > 1:  # type: ignore[attr-defined]
            masks = torch.tensor(plan.masks, dtype=torch.long)  # type: ignore[attr-defined]
            split = masks.argmax(0)[k]  # which sub-chunk holds kernel position k
            rank = (masks.cumsum(1) - 1)[split, k]  # its place within the sub-chunk
            chunk = channel * plan.kernel_splits + split  # type: ignore[attr-defined]
            position = rank
        else:
            per = plan.channels_per_chunk  # type: ignore[attr-defined]
            chunk = channel // per
            position = (channel % per) * kk + k
        height = int(sizes.max())
        row_phys = height - sizes[chunk] + position  # used rows at the bottom (sense side)

        per_weight = 2 if differential else 1
        data_cols = out_features * per_weight
        tiles = math.ceil(data_cols / tile_cols)
        width = min(tile_cols, data_cols) + (0 if differential else 1)
        n_chunks = len(plan.sizes)  # type: ignore[attr-defined]
        shape = (n_chunks, tiles, height, width)

        def flat(chunk_: Tensor, tile: Tensor, row: Tensor, col: Tensor) -> Tensor:
            return ((chunk_ * tiles + tile) * height + row) * width + col

        o = torch.arange(out_features).unsqueeze(1)  # [O, 1]
        pos_col = o * per_weight
        pos_index = flat(chunk.unsqueeze(0), pos_col // tile_cols, row_phys.unsqueeze(0),
                         pos_col % tile_cols)
        if differential:
            neg_col = pos_col + 1
            neg_index = flat(chunk.unsqueeze(0), neg_col // tile_cols, row_phys.unsqueeze(0),
                             neg_col % tile_cols)
        else:
            tile = pos_col // tile_cols
            used = torch.clamp(data_cols - tile * tile_cols, max=tile_cols)  # reference column
            neg_index = flat(chunk.unsqueeze(0), tile, row_phys.unsqueeze(0), used)
        pos_index, neg_index = pos_index.expand(out_features, rows), \
            neg_index.expand(out_features, rows)
        cells = out_features * rows
        total = math.prod(shape)
        source = torch.full((total,), 2 * cells, dtype=torch.long)
        source[neg_index.reshape(-1)] = cells + torch.arange(cells)
        source[pos_index.reshape(-1)] = torch.arange(cells)
        mask = source < 2 * cells
        return cls(shape, pos_index.contiguous().to(device), neg_index.contiguous().to(device),
                   source.to(device), mask.view(shape).to(device))

    def to(self, device: torch.device | str) -> TileLayout:
        """This layout with its index tensors on ``device``."""
        return TileLayout(self.shape, self.pos_index.to(device), self.neg_index.to(device),
                          self.source.to(device), self.mask.to(device))

    def gather(self, g_pos: Tensor, g_neg: Tensor) -> Tensor:
        """Tiles ``[chunks, column tiles, R, C]`` of per-cell values (conductances in S)
        given per weight (shaped like the layer's weight)."""
        out = g_pos.shape[0]
        values = torch.cat([g_pos.reshape(out, -1).reshape(-1), g_neg.reshape(out, -1).reshape(-1),
                            g_pos.new_zeros(1)])
        return values[self.source].view(self.shape)

    def scatter(self, tiles: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
        """Per-weight values (G⁺ cell, G⁻ or reference cell) of per-cell ``tiles``, shaped
        like ``like``."""
        flat = tiles.reshape(-1)
        return (flat[self.pos_index].view(like.shape), flat[self.neg_index].view(like.shape))


__all__ = ["TileLayout"]
