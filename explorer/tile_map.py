"""Where each weight of a tiled layer sits: blocks of (conv group, row chunk, column tile).

A layer's crossbar matrix, per convolution group, has ``in/groups · kh · kw`` rows (word
lines, im2col order: channel-major, kernel positions in raster order) and that group's
``out/groups`` output channels as columns. Rows are split as the layer's
:class:`~explorer.tiles.RowChunks` reads them (a chunk is always a contiguous range of
rows); columns into column tiles of ``tile_cols // cells_per_weight`` weights (a weight
takes one column in the offset scheme, a G⁺/G⁻ pair of columns in the differential ones).
Each :class:`TileBlock` is one such block; the blocks of a layer cover its matrix once.
Block-diagonal packing of small groups into one physical tile (see
:meth:`explorer.tiles.TiledConv2d.counters`) is not reflected here: a block is logical.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor


@dataclass(frozen=True)
class TileBlock:
    """One block of a layer: rows ``[row_start, row_stop)`` of group ``group``'s matrix
    and output channels ``[col_start, col_stop)`` (of the whole layer)."""

    group: int
    row_chunk: int
    column_tile: int
    row_start: int
    row_stop: int
    col_start: int
    col_stop: int

    @property
    def key(self) -> str:
        """A short name: ``g0_r1_c0`` (group, row chunk, column tile)."""
        return f"g{self.group}_r{self.row_chunk}_c{self.column_tile}"

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the block: word lines × weights."""
        return (self.row_stop - self.row_start, self.col_stop - self.col_start)


def row_ranges(plan: Any) -> list[tuple[int, int]]:
    """The ``[start, stop)`` rows of each row chunk of a :class:`~explorer.tiles.RowChunks`."""
    k = plan.kernel
    if plan.kernel_splits > 1:
        splits = []
        start = 0
        for mask in plan.masks:
            size = sum(mask)
            splits.append((start, start + size))
            start += size
        return [(c * k + a, c * k + b) for c in range(plan.in_channels) for a, b in splits]
    per = plan.channels_per_chunk
    return [(c * k, min(c + per, plan.in_channels) * k)
            for c in range(0, plan.in_channels, per)]


def tile_blocks(layer: Any) -> list[TileBlock]:
    """Every block of a tiled layer (:class:`~explorer.tiles.TiledLayer`), group by group,
    row chunk by row chunk, column tile by column tile."""
    groups = int(getattr(layer, "groups", 1))
    out = layer.out_features
    per_group = out // groups
    width = max(1, layer.settings.tile_cols // layer.settings.cells_per_weight)
    blocks = []
    for g in range(groups):
        for r, (r0, r1) in enumerate(row_ranges(layer.plan)):
            for c, c0 in enumerate(range(0, per_group, width)):
                blocks.append(TileBlock(g, r, c, r0, r1, g * per_group + c0,
                                        g * per_group + min(c0 + width, per_group)))
    return blocks


def as_matrix(tensor: Tensor) -> Tensor:
    """A layer-shaped tensor (weights, conductances) as ``[out, in/groups · kernel]``."""
    return tensor.reshape(tensor.shape[0], -1)


def block_of(tensor: Tensor, block: TileBlock) -> Tensor:
    """The block's values of a layer-shaped tensor, as ``[rows, columns]`` (word lines ×
    bit lines)."""
    return as_matrix(tensor)[block.col_start:block.col_stop,
                             block.row_start:block.row_stop].T


__all__ = ["TileBlock", "as_matrix", "block_of", "row_ranges", "tile_blocks"]
