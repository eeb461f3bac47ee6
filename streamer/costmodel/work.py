"""A frame's work on the target: the firmware's schedule (forks, tiles, rows per worker, gate
work) rebuilt from (mode, cell, H) and the placement plan (plan.py: which level each tile's rows
are read from), and the counters block it adds up to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streamer.costmodel.plan import PLACEMENTS, Cuts, LayerShape, levels_used, plan_cuts, tile_rows_by_level
from streamer.model.params import CELLS, N_BINS
from streamer.quant.modes import LAYERS, QUANTIZED_MODES, layer_precision, modes_text
from streamer.target import MEMORY_LEVELS, Target

GATES = CELLS
# Gate work per hidden unit (firmware/src/lstm_*.c, gru_*.c `*_units`): tanh/sigmoid calls and
# the other elementwise operations (products, sums, q8/q16, binary16 roundings), counted from
# the kernels.
UNIT_ACTIVATIONS = {"lstm": 5, "gru": 3}
UNIT_ELEMENTWISE = {"lstm": 10, "gru": 8}
DEADLINE_TOLERANCE = 1e-12  # relative: a frame exactly at the deadline meets it


class CostModelError(ValueError):
    """A model the firmware cannot run (a row that does not fit an L1 tile, an unknown mode)."""


def _part(n: int, core: int, workers: int) -> int:
    """schedule.c `part`: the first of worker `core`'s share of n items."""
    return n * core // workers


def _shares(n: int, workers: int) -> tuple[int, ...]:
    return tuple(_part(n, c + 1, workers) - _part(n, c, workers) for c in range(workers))


def layer_int8(mode: str, layer: str) -> bool:
    if mode not in QUANTIZED_MODES:
        raise CostModelError(f"the target runs {modes_text(QUANTIZED_MODES)}, not {mode!r}")
    return layer_precision(mode, layer) == "int8"


# --- the counters block ------------------------------------------------------------------------

@dataclass(frozen=True)
class FrameCounters:
    """What the firmware counts per frame (docs/protocol.md, Counters), without the timer."""

    int8_macs: tuple[int, ...]
    fp16_macs: tuple[int, ...]
    l1_bytes_from: tuple[int, int, int]  # L2, MRAM, L3
    dma_transfers: int
    forks: int
    barrier_waits: int

    @classmethod
    def from_link(cls, counters: Any) -> FrameCounters:
        """From `streamer.link.messages.Counters` (a device's reply)."""
        return cls(tuple(counters.int8_macs), tuple(counters.fp16_macs), tuple(counters.l1_bytes_from),
                   counters.dma_transfers, counters.forks, counters.barrier_waits)

    def as_dict(self) -> dict[str, Any]:
        return {"int8_macs": list(self.int8_macs), "fp16_macs": list(self.fp16_macs),
                "l1_bytes_from": dict(zip(MEMORY_LEVELS, self.l1_bytes_from, strict=True)),
                "dma_transfers": self.dma_transfers, "forks": self.forks,
                "barrier_waits": self.barrier_waits}


# --- the firmware's schedule -------------------------------------------------------------------

@dataclass(frozen=True)
class Tile:
    """One tile of a layer: its rows, what each worker computes of it, what its copy moves."""

    rows: int
    rows_per_core: tuple[int, ...]
    int8_macs: tuple[int, ...]
    fp16_macs: tuple[int, ...]
    nbytes: int
    transfers: int
    # where its rows come from (the placement plan): rows, bytes and transfers per level
    rows_from: tuple[int, int, int] = (0, 0, 0)
    bytes_from: tuple[int, int, int] = (0, 0, 0)
    transfers_from: tuple[int, int, int] = (0, 0, 0)


@dataclass(frozen=True)
class LayerWork:
    """One fork of the frame (schedule.c `layer_task`)."""

    name: str
    int8: bool
    recurrent: bool
    rows: int
    cols: int
    row_bytes: tuple[int, ...]       # per array (segment) of the layer
    rows_per_tile: int
    tiles: tuple[Tile, ...]
    prologue: tuple[int, ...]         # elementwise operations per worker before the tiles
    units: tuple[int, ...]            # hidden units per worker (recurrent gate work)
    dots_per_row: int                 # 2 for recurrent rows (W_ih x and W_hh h)
    activations_per_row: int          # 1 for fc2 (sigmoid), else 0
    unit_activations: int = 0
    unit_elementwise: int = 0
    in_place: bool = False            # no L1: rows read where the plan put them, no copies

    @property
    def barriers(self) -> int:
        if self.in_place:  # schedule.c: one barrier before the gate work, none on one core
            return 1 if len(self.units) > 1 else 0
        return 1 + len(self.tiles)


@dataclass(frozen=True)
class FrameWork:
    """The firmware's work for one frame of a model, and where its weights live."""

    mode: str
    cell: str
    hidden: int
    workers: int
    level: str                        # "L2", "MRAM", "L3", or "L2+MRAM" etc. where the plan spreads
    blob_bytes: int
    layers: tuple[LayerWork, ...]
    placement: str = "auto"           # what was asked: the planner, or a whole-blob level

    def counters(self) -> FrameCounters:
        """The counters block the firmware reports for this frame (exact)."""
        w = self.workers
        int8, fp16 = [0] * w, [0] * w
        transfers = waits = 0
        by_level = [0, 0, 0]
        for layer in self.layers:
            for tile in layer.tiles:
                for c in range(w):
                    int8[c] += tile.int8_macs[c]
                    fp16[c] += tile.fp16_macs[c]
                if not layer.in_place:  # read in place: nothing is copied into L1
                    for lv in range(len(MEMORY_LEVELS)):
                        by_level[lv] += tile.bytes_from[lv]
                transfers += tile.transfers
            waits += w * layer.barriers
        return FrameCounters(tuple(int8), tuple(fp16), tuple(by_level), transfers, len(self.layers), waits)

    def bytes_read(self) -> tuple[int, int, int]:
        """Weight bytes read per frame from L2, MRAM, L3: copied into L1, or read in place."""
        by_level = [sum(t.bytes_from[lv] for layer in self.layers for t in layer.tiles)
                    for lv in range(len(MEMORY_LEVELS))]
        return (by_level[0], by_level[1], by_level[2])

    def bytes_by_layer(self) -> dict[str, dict[str, int]]:
        """The plan: bytes of each layer in each level."""
        return {layer.name: {level: sum(t.bytes_from[lv] for t in layer.tiles)
                             for lv, level in enumerate(MEMORY_LEVELS)} for layer in self.layers}

    def cuts(self) -> tuple[Cuts, ...]:
        """The plan as the firmware reports it: per layer, per tile, the (L2, MRAM) row cuts."""
        return tuple(tuple((t.rows_from[0], t.rows_from[0] + t.rows_from[1]) for t in layer.tiles)
                     for layer in self.layers)

    @property
    def macs(self) -> dict[str, int]:
        c = self.counters()
        return {"int8": sum(c.int8_macs), "fp16": sum(c.fp16_macs)}


def blob_bytes(mode: str, cell: str, hidden: int) -> int:
    """Size of the TDNB blob (blob.c `tdn_blob_size`), which decides the memory level."""
    return _layout(mode, cell, hidden)[1]


def _layout(mode: str, cell: str, hidden: int) -> tuple[list[tuple[str, int, int, tuple[int, ...]]], int]:
    """(layer, rows, cols, row bytes of each array) in blob order, and the blob's size: read
    off the blob's own layout (streamer/link/blob.py), which blob.c `layout` follows."""
    from streamer.link.blob import layout

    if cell not in GATES:
        raise CostModelError(f"unknown recurrent cell {cell!r}")
    layer_int8(mode, "fc0")
    arrays, total = layout(mode, cell, hidden)
    segments = []
    for name in LAYERS:
        mine = [a for a in arrays if a.name.split(".")[0] == name]
        rows, cols = mine[0].shape
        segments.append((name, rows, cols, tuple(a.nbytes // rows for a in mine)))
    return segments, total


def firmware_work(mode: str, cell: str, hidden: int, target: Target, level: str | None = None,
                  cuts: tuple[Cuts, ...] | None = None, strict: bool = True) -> FrameWork:
    """The firmware's schedule for one frame and where each tile's rows are read from.

    `level` None or "auto": the placement planner on the target's L2 weight budget and MRAM
    (plan.py, as MODEL_END does); "whole": the whole blob in the first level it fits (the
    rule before the planner); "L2", "MRAM" or "L3": the whole blob in that level (a
    CostModelError if it does not fit, unless `strict` is False: a device said it put it
    there). `cuts`: a device's own plan (ModelInfo), used as it is.
    """
    segments, total = _layout(mode, cell, hidden)
    workers, tile_bytes = target.workers, target.tile_bytes
    placement = "auto" if level is None else level
    if placement not in PLACEMENTS:
        raise CostModelError(f"placement {placement!r}: expected one of {', '.join(PLACEMENTS)}")
    m = target.memory
    if placement == "whole":
        placement = m.placement(total) or "auto"  # too large for every level: the error below
    capacity = {"auto": m.l3_bytes, "L2": m.l2_weight_bytes, "MRAM": m.mram_bytes, "L3": m.l3_bytes}
    if strict and cuts is None and total > capacity[placement]:
        if placement == "auto":
            raise CostModelError(f"a {total:,}-byte {mode} model fits no memory level of {target.name}")
        raise CostModelError(f"--placement {placement}: a {total:,}-byte {mode} model does not fit "
                             f"{placement} ({capacity[placement]:,} bytes) of {target.name}")
    shapes = []
    for name, rows, _cols, segs in segments:
        per_row = sum(segs)
        n = (tile_bytes - 4 * len(segs)) // per_row
        if n >= rows:
            n = rows
        elif n >= workers:
            n -= n % workers
        if n == 0:
            raise CostModelError(f"{name}: one row ({per_row} bytes) does not fit an L1 tile of "
                                 f"{tile_bytes} bytes")
        shapes.append(LayerShape(rows, n, per_row))
    if cuts is None:
        caps = {"auto": (m.l2_weight_bytes, m.mram_bytes), "L2": (m.l2_weight_bytes, 0),
                "MRAM": (0, m.mram_bytes), "L3": (0, 0)}[placement]
        cuts = plan_cuts(shapes, *caps)
    elif len(cuts) != len(shapes) or any(
            len(c) != s.tiles or any(not 0 <= c0 <= c1 <= s.tile_rows(t) for t, (c0, c1) in enumerate(c))
            for s, c in zip(shapes, cuts, strict=False)):
        raise CostModelError(f"the device's placement plan tiles the model otherwise than an L1 tile of "
                             f"{tile_bytes} bytes of {target.name} does")
    layers = []
    for (name, rows, cols, segs), shape, layer_cuts in zip(segments, shapes, cuts, strict=True):
        int8 = layer_int8(mode, name)
        recurrent = name in ("rnn1", "rnn2")
        n = shape.rows_per_tile
        macs_per_row = cols + hidden if recurrent else cols
        tiles = []
        for t, row0 in enumerate(range(0, rows, n)):
            count = min(n, rows - row0)
            split = _shares(count, workers)
            macs = tuple(r * macs_per_row for r in split)
            zero = (0,) * workers
            by_level = tile_rows_by_level(shape, t, layer_cuts[t])
            copies = 0 if target.weights_in_place else len(segs)  # in place: no transfer at all
            tiles.append(Tile(count, split, macs if int8 else zero, zero if int8 else macs,
                              sum(count * b for b in segs), sum(copies for r in by_level if r),
                              by_level, tuple(r * shape.row_bytes for r in by_level),
                              tuple(copies if r else 0 for r in by_level)))
        layers.append(LayerWork(
            name=name, int8=int8, recurrent=recurrent, rows=rows, cols=cols, row_bytes=segs,
            rows_per_tile=n, tiles=tuple(tiles), prologue=_prologue(mode, name, hidden, workers),
            units=_shares(hidden, workers) if recurrent else (0,) * workers,
            dots_per_row=2 if recurrent else 1, activations_per_row=1 if name == "fc2" else 0,
            unit_activations=UNIT_ACTIVATIONS[cell] if recurrent else 0,
            unit_elementwise=UNIT_ELEMENTWISE[cell] if recurrent else 0,
            in_place=target.weights_in_place))
    asked = "auto" if level is None else level
    work = FrameWork(mode, cell, hidden, workers, "", total, tuple(layers), asked)
    by_level = work.bytes_read()
    return FrameWork(mode, cell, hidden, workers, levels_used(by_level), total, tuple(layers), asked)


def _prologue(mode: str, name: str, hidden: int, workers: int) -> tuple[int, ...]:
    """Elementwise operations per worker before the tiles (schedule.c `prologue`)."""
    ops = 0
    width = N_BINS
    if name == "fc0":
        ops = 1 + (1 if layer_int8(mode, "fc0") else 0)  # input stage (+ q8)
    elif name == "rnn1":
        ops, width = (1 if layer_int8(mode, "rnn1") else 0), hidden
    elif name == "fc1":
        ops = 1 if layer_int8(mode, "rnn2") and not layer_int8(mode, "fc1") else 0
        width = hidden
    elif name == "fc2":
        ops = 1 if layer_int8(mode, "fc2") else 0
    return tuple(ops * s for s in _shares(width, workers))


def model_work(model: Any, target: Target, level: str | None = None) -> FrameWork:
    """`firmware_work` for a QuantizedModel (`level`: the placement, None for the planner)."""
    return firmware_work(model.mode, model.cell, model.hidden, target, level)
