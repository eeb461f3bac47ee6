"""A frame's work on the target: the firmware's schedule (forks, tiles, rows per worker, gate
work) rebuilt from (mode, cell, H, level), and the counters block it adds up to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
        """From `streamer.link.protocol.Counters` (a device's reply)."""
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

    @property
    def barriers(self) -> int:
        return 1 + len(self.tiles)


@dataclass(frozen=True)
class FrameWork:
    """The firmware's work for one frame of a model, and where its weights live."""

    mode: str
    cell: str
    hidden: int
    workers: int
    level: str
    blob_bytes: int
    layers: tuple[LayerWork, ...]

    def counters(self) -> FrameCounters:
        """The counters block the firmware reports for this frame (exact)."""
        w = self.workers
        int8, fp16 = [0] * w, [0] * w
        nbytes = transfers = waits = 0
        for layer in self.layers:
            for tile in layer.tiles:
                for c in range(w):
                    int8[c] += tile.int8_macs[c]
                    fp16[c] += tile.fp16_macs[c]
                nbytes += tile.nbytes
                transfers += tile.transfers
            waits += w * layer.barriers
        by_level = [0, 0, 0]
        by_level[MEMORY_LEVELS.index(self.level)] = nbytes
        return FrameCounters(tuple(int8), tuple(fp16), tuple(by_level), transfers, len(self.layers), waits)

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


def firmware_work(mode: str, cell: str, hidden: int, target: Target, level: str | None = None) -> FrameWork:
    """The firmware's schedule for one frame; `level` None places the blob as MODEL_END does."""
    segments, total = _layout(mode, cell, hidden)
    workers, tile_bytes = target.workers, target.tile_bytes
    if level is None:
        level = target.memory.placement(total)
        if level is None:
            raise CostModelError(f"a {total:,}-byte {mode} model fits no memory level of {target.name}")
    layers = []
    for name, rows, cols, segs in segments:
        int8 = layer_int8(mode, name)
        recurrent = name in ("rnn1", "rnn2")
        per_row = sum(segs)
        n = (tile_bytes - 4 * len(segs)) // per_row
        if n >= rows:
            n = rows
        elif n >= workers:
            n -= n % workers
        if n == 0:
            raise CostModelError(f"{name}: one row ({per_row} bytes) does not fit an L1 tile of "
                                 f"{tile_bytes} bytes")
        macs_per_row = cols + hidden if recurrent else cols
        tiles = []
        for row0 in range(0, rows, n):
            count = min(n, rows - row0)
            split = _shares(count, workers)
            macs = tuple(r * macs_per_row for r in split)
            zero = (0,) * workers
            tiles.append(Tile(count, split, macs if int8 else zero, zero if int8 else macs,
                              sum(count * b for b in segs), len(segs)))
        layers.append(LayerWork(
            name=name, int8=int8, recurrent=recurrent, rows=rows, cols=cols, row_bytes=segs,
            rows_per_tile=n, tiles=tuple(tiles), prologue=_prologue(mode, name, hidden, workers),
            units=_shares(hidden, workers) if recurrent else (0,) * workers,
            dots_per_row=2 if recurrent else 1, activations_per_row=1 if name == "fc2" else 0,
            unit_activations=UNIT_ACTIVATIONS[cell] if recurrent else 0,
            unit_elementwise=UNIT_ELEMENTWISE[cell] if recurrent else 0))
    return FrameWork(mode, cell, hidden, workers, level, total, tuple(layers))


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
    """`firmware_work` for a QuantizedModel."""
    return firmware_work(model.mode, model.cell, model.hidden, target, level)
