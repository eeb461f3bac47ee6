"""Where each tile's rows of weights live: the placement rule of docs/cost-model.md ("Placement"),
line for line what the firmware does (firmware/src/plan.c); a test compares the two.

The unit is a row of a tile (that row of every array of the layer). L2 is filled first, then
MRAM; L3 (the blob as uploaded) holds the rest. A level that cannot hold every row still
unplaced takes the same share of every tile's unplaced rows (a proportional pass in frame read
order, rounded down) and then tops up, in read order, with the whole rows that still fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from streamer.target import MEMORY_LEVELS, PLACEMENTS

__all__ = ["PLACEMENTS", "Cuts", "LayerShape", "layer_bytes_by_level", "levels_used", "plan_cuts",
           "tile_rows_by_level"]


@dataclass(frozen=True)
class LayerShape:
    """What the planner needs of a layer: its rows, rows per tile and bytes per row (all arrays)."""

    rows: int
    rows_per_tile: int
    row_bytes: int

    @property
    def tiles(self) -> int:
        return -(-self.rows // self.rows_per_tile)

    def tile_rows(self, t: int) -> int:
        return min(self.rows_per_tile, self.rows - t * self.rows_per_tile)


Cuts = tuple[tuple[int, int], ...]  # per tile: rows [0, c0) in L2, [c0, c1) in MRAM, the rest L3


def plan_cuts(layers: Sequence[LayerShape], l2_bytes: int, mram_bytes: int) -> tuple[Cuts, ...]:
    """The plan for these capacities: per layer, per tile, the (L2, MRAM) row cuts."""
    cuts = [[[0, 0] for _ in range(layer.tiles)] for layer in layers]
    unplaced = sum(layer.rows * layer.row_bytes for layer in layers)

    def before(li: int, t: int, lv: int) -> int:
        return 0 if lv == 0 else cuts[li][t][lv - 1]

    for lv, cap in enumerate((l2_bytes, mram_bytes)):
        room, left, used = cap, unplaced, 0
        for li, layer in enumerate(layers):  # the proportional pass
            p = layer.row_bytes
            for t in range(layer.tiles):
                u = layer.tile_rows(t) - before(li, t, lv)
                k = min(u, u * room // left) if left else 0
                cuts[li][t][lv] = before(li, t, lv) + k
                room -= k * p
                left -= u * p
                used += k * p
        for li, layer in enumerate(layers):  # the top-up pass
            p = layer.row_bytes
            for t in range(layer.tiles):
                k = min(layer.tile_rows(t) - cuts[li][t][lv], room // p)
                cuts[li][t][lv] += k
                room -= k * p
                used += k * p
        unplaced -= used
    return tuple(tuple((c0, c1) for c0, c1 in layer) for layer in cuts)


def tile_rows_by_level(layer: LayerShape, t: int, cut: tuple[int, int]) -> tuple[int, int, int]:
    """Rows of tile t from L2, MRAM, L3."""
    return cut[0], cut[1] - cut[0], layer.tile_rows(t) - cut[1]


def layer_bytes_by_level(layer: LayerShape, cuts: Cuts) -> tuple[int, int, int]:
    rows = [0, 0, 0]
    for t, cut in enumerate(cuts):
        for lv, n in enumerate(tile_rows_by_level(layer, t, cut)):
            rows[lv] += n
    return rows[0] * layer.row_bytes, rows[1] * layer.row_bytes, rows[2] * layer.row_bytes


def levels_used(bytes_by_level: Sequence[int]) -> str:
    """"L2", "MRAM", "L3", or the levels joined ("L2+MRAM") where the plan spreads the weights."""
    used = [level for level, n in zip(MEMORY_LEVELS, bytes_by_level, strict=True) if n]
    return "+".join(used) or MEMORY_LEVELS[0]
