"""Target cost model: cycles, latency, deadline, power and energy of every frame at every voltage.

docs/cost-model.md is the specification. In short:

1. The work of one frame is what the firmware does (firmware/src/model.c): five forks (fc0,
   rnn1, rnn2, fc1, fc2); in each, a prologue split by element, then the layer's weights
   streamed tile by tile (rows packed into one 64 kB half of L1, double-buffered), each tile's
   rows split across the workers in contiguous blocks, a barrier after the first copy and
   after every tile; then, for recurrent layers, the gate work split by hidden unit.
   `firmware_work` rebuilds that schedule from (mode, cell, H, level); its sums are exactly
   the counters block the firmware sends with every mask (`FrameCounters`), which a test
   checks against `tdn-sim`. On a device backend the device's own counters are used and
   checked against the schedule.
2. Cycles of a layer = set-up + fork + prologue + DMA of tile 0 (nothing to overlap it with)
   + barrier + sum over tiles t of [max(compute of tile t, DMA of tile t+1) + barrier]
   + gate work. Compute of a tile = the slowest worker's MAC cycles (int8 and fp16 rates) +
   per-row and per-activation costs. DMA = transfers x set-up + bytes / bandwidth of the level.
3. Latency at an operating point = cycles / f(V) (+ link time per frame at a baud rate); a
   frame misses when it exceeds the 6.25 ms hop. Power: active for the compute time, idle for
   the rest of the hop, plus energy per byte read from MRAM or L3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamer.model.params import CELLS, N_BINS
from streamer.quant.modes import LAYERS, QUANTIZED_MODES, layer_precision, modes_text
from streamer.target import MEMORY_LEVELS, OperatingPoint, Target

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
    """model.c `part`: the first of worker `core`'s share of n items."""
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
    """One fork of the frame (model.c `layer_task`)."""

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
    """Size of the TDNB blob (model.c `tdn_blob_size`), which decides the memory level."""
    return _layout(mode, cell, hidden)[1]


def _layout(mode: str, cell: str, hidden: int) -> tuple[list[tuple[str, int, int, tuple[int, ...]]], int]:
    """(layer, rows, cols, row bytes of each array) in blob order, and the blob's size: read
    off the blob's own layout (streamer/link/blob.py), which model.c `layout` follows."""
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
    """Elementwise operations per worker before the tiles (model.c `prologue`)."""
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


# --- cycles ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rates:
    """MACs per cycle per worker the firmware's loops reach, from the target's [compute]."""

    int8: float
    fp16: float

    @classmethod
    def of(cls, target: Target) -> Rates:
        c = target.compute
        int8 = c.int8_macs_per_cycle_per_core / c.int8_cycles_per_simd
        # A worker issues one FPU instruction at most every workers/fpus cycles (shared FPUs).
        fp16_issue = max(c.fp16_cycles_per_simd, target.workers / c.fpus)
        return cls(int8, c.fp16_macs_per_cycle_per_core / fp16_issue)


@dataclass(frozen=True)
class Cycles:
    """Cycles of one frame at one clock, split by where they go (they add up to `total`)."""

    total: int
    compute: float        # tile compute on the critical path (the slowest worker)
    dma_exposed: float    # DMA time not hidden behind compute (tile 0, and DMA-bound tiles)
    elementwise: float    # prologues and gate work
    overhead: float       # forks, layer set-up, barriers
    by_layer: tuple[float, ...]


def _dma(target: Target, level: str, nbytes: int, transfers: int, freq_hz: float) -> float:
    return transfers * target.overheads.dma_transfer_cycles + target.dma[level].cycles(nbytes, freq_hz)


def _tile_compute(tile: Tile, layer: LayerWork, target: Target, rates: Rates) -> float:
    c = target.compute
    per_core = [tile.int8_macs[k] / rates.int8 + tile.fp16_macs[k] / rates.fp16
                + tile.rows_per_core[k] * (layer.dots_per_row * c.row_cycles
                                           + layer.activations_per_row * c.activation_cycles)
                for k in range(len(tile.rows_per_core))]
    return max(per_core)


def frame_cycles(work: FrameWork, target: Target, freq_hz: float) -> Cycles:
    """Cycles of one frame of `work` with the cluster at `freq_hz` (docs/cost-model.md)."""
    rates, o, c = Rates.of(target), target.overheads, target.compute
    compute = exposed = elementwise = overhead = 0.0
    by_layer = []
    for layer in work.layers:
        dma = [_dma(target, work.level, t.nbytes, t.transfers, freq_hz) for t in layer.tiles]
        comp = [_tile_compute(t, layer, target, rates) for t in layer.tiles]
        l_overhead = o.layer_setup_cycles + o.fork_cycles + layer.barriers * o.barrier_cycles
        l_elem = (max(layer.prologue) * c.elementwise_cycles
                  + max(layer.units) * (layer.unit_activations * c.activation_cycles
                                        + layer.unit_elementwise * c.elementwise_cycles))
        l_compute = l_exposed = 0.0
        l_exposed += dma[0]  # tile 0: copied and waited for before any row is computed
        for t in range(len(layer.tiles)):
            following = dma[t + 1] if t + 1 < len(layer.tiles) else 0.0
            l_compute += comp[t]
            l_exposed += max(0.0, following - comp[t])  # the next copy overlaps this tile's rows
        compute, exposed, elementwise, overhead = (compute + l_compute, exposed + l_exposed,
                                                   elementwise + l_elem, overhead + l_overhead)
        by_layer.append(l_compute + l_exposed + l_elem + l_overhead)
    total = math.ceil(compute + exposed + elementwise + overhead - 1e-9)
    return Cycles(total, compute, exposed, elementwise, overhead, tuple(by_layer))


def counters_cycles(counters: FrameCounters, work: FrameWork, target: Target, freq_hz: float) -> Cycles:
    """Cycles from a device's counters alone, for counters that do not match the schedule.

    The frame as one layer: the slowest worker's MACs against all DMA, overlapped; plus forks,
    barriers, transfers and the schedule's elementwise work. Used only when a device runs
    other firmware than this repository's (reports say so: `counters_match_schedule`).
    """
    rates, o = Rates.of(target), target.overheads
    mac = max(i / rates.int8 + f / rates.fp16 for i, f in zip(counters.int8_macs, counters.fp16_macs,
                                                                 strict=True))
    dma = counters.dma_transfers * o.dma_transfer_cycles + sum(
        target.dma[level].cycles(n, freq_hz) for level, n in zip(MEMORY_LEVELS, counters.l1_bytes_from,
                                                                strict=True))
    scheduled = frame_cycles(work, target, freq_hz)
    overhead = (counters.forks * (o.fork_cycles + o.layer_setup_cycles)
                + counters.barrier_waits / max(len(counters.int8_macs), 1) * o.barrier_cycles)
    total = math.ceil(max(mac, dma) + scheduled.elementwise + overhead - 1e-9)
    return Cycles(total, mac, max(0.0, dma - mac), scheduled.elementwise, overhead, ())


def ideal_cycles(work: FrameWork, target: Target) -> float:
    """The physical limit: int8 MACs / (workers x peak) + fp16 MACs / (workers x shared peak)."""
    macs = work.macs
    return (macs["int8"] / (target.workers * target.compute.int8_macs_per_cycle_per_core)
            + macs["fp16"] / (target.workers * target.fp16_macs_per_cycle_shared()))


# --- one frame at one operating point ----------------------------------------------------------

@dataclass(frozen=True)
class PointCost:
    """One frame at one operating point."""

    cycles: int
    compute_s: float
    latency_s: float
    meets: bool
    energy_uj: float      # active energy of the frame + energy of the weight bytes read
    power_mw: float       # average over the hop (active while computing, idle the rest)


def point_cost(cycles: int, point: OperatingPoint, target: Target, l1_bytes_from: tuple[int, int, int],
               link_s: float = 0.0, hop_s: float | None = None) -> PointCost:
    """Latency, deadline and power of a frame of `cycles` at `point`."""
    from streamer.engine import DEADLINE_S

    hop = DEADLINE_S if hop_s is None else hop_s
    compute_s = cycles / point.freq_hz
    latency = compute_s + link_s
    memory_uj = (l1_bytes_from[1] * target.mram_pj_per_byte + l1_bytes_from[2] * target.l3_pj_per_byte) * 1e-6
    active_uj = point.active_mw * compute_s * 1e3
    idle_uj = point.idle_mw * max(hop - compute_s, 0.0) * 1e3
    window_ms = max(hop, compute_s) * 1e3
    return PointCost(cycles, compute_s, latency, latency <= hop * (1 + DEADLINE_TOLERANCE),
                     active_uj + memory_uj, (active_uj + memory_uj + idle_uj) / window_ms)


# --- per-frame observer and the report rows ----------------------------------------------------

@dataclass(frozen=True)
class TimingSpec:
    """What to model: a target, the operating points to check, the link's baud rate (if any)."""

    target: Target
    points: tuple[OperatingPoint, ...]
    baud: int | None = None

    @classmethod
    def load(cls, path: Any = None, voltages: Any = None, baud: int | None = None) -> TimingSpec:
        """From `--target` and `--voltages` (None: the packaged GAP9 target, all its points)."""
        from streamer.target import parse_voltages, read_target

        target = read_target(path)
        chosen = parse_voltages(voltages) if voltages is None or isinstance(voltages, str) else [
            float(v) for v in voltages]
        return cls(target, target.select(chosen), baud)


@dataclass
class TargetRecord:
    """Per-frame cycles at each operating point of one stream (picklable: eval workers send it)."""

    target: Target
    points: tuple[OperatingPoint, ...]
    cycles: list[list[int] | None] = field(default_factory=list)  # per frame; None: no counters
    level: str | None = None
    l1_bytes_from: tuple[int, int, int] = (0, 0, 0)
    link_s: float = 0.0
    counters_mismatch_frames: int = 0
    work: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def pooled(cls, records: list[TargetRecord]) -> TargetRecord | None:
        """Several streams of the same model and target as one (eval: every file's frames)."""
        if not records:
            return None
        first = records[0]
        out = cls(first.target, first.points, [], first.level, first.l1_bytes_from, first.link_s, 0,
                  first.work)
        for record in records:
            out.cycles += record.cycles
            out.counters_mismatch_frames += record.counters_mismatch_frames
        return out


def link_seconds(baud: int | None, workers: int) -> float:
    """Time on the wire per frame at `baud` (request in, then mask and counters out): 0 without one."""
    if not baud:
        return 0.0
    from streamer.backends.link import BITS_PER_BYTE
    from streamer.link.protocol import frame_bytes

    up, down = frame_bytes(workers)
    return (up + down) * BITS_PER_BYTE / baud


class TargetTiming:
    """Frame observer: the target cost of every frame at each operating point.

    On the emulator the counters are computed from the model and the firmware's tiling (they
    do not depend on the data); on a device backend they are the device's own, per frame, and
    a frame the link lost counts as a miss at every voltage. `report_fields()` gives the live
    report its `operating_points`; `record()` the replay/eval report's.
    """

    def __init__(self, spec: TimingSpec, backend: Any) -> None:
        target, points, baud = spec.target, spec.points, spec.baud
        self.target, self.points, self.backend = target, points, backend
        model = backend.target_model()
        if model is None:
            raise CostModelError(f"fp32 does not run on the target: pass --quant "
                                 f"{modes_text(QUANTIZED_MODES)} for target timing")
        self.device = backend.is_device
        self.work = firmware_work(model.mode, model.cell, model.hidden, target, model.level)
        if baud is None and self.device:
            baud = model.baud
        self.baud = baud
        self.record_ = TargetRecord(target, points, level=self.work.level,
                                    l1_bytes_from=self.work.counters().l1_bytes_from,
                                    link_s=link_seconds(baud, target.workers),
                                    work=work_summary(self.work, target, points))
        self._expected = self.work.counters()
        self._scheduled = [frame_cycles(self.work, target, p.freq_hz).total for p in points]
        self.last: list[int] | None = None

    def __call__(self, event: Any) -> None:
        cycles: list[int] | None = self._scheduled
        if self.device:
            last = self.backend.last_frame()
            counters = None if last.failed else last.counters
            if counters is None:
                cycles = None
            else:
                measured = FrameCounters.from_link(counters)
                if measured != self._expected:
                    self.record_.counters_mismatch_frames += 1
                    cycles = [counters_cycles(measured, self.work, self.target, p.freq_hz).total
                              for p in self.points]
        self.last = cycles
        self.record_.cycles.append(cycles)

    def log_fields(self) -> dict[str, Any]:
        """The last frame's cycles and pass/fail per voltage, for the per-frame log."""
        return self._fields(self.last)

    def frame_log_fields(self, index: int) -> dict[str, Any]:
        """The same for frame `index` of the stream (the live log writes frames after the fact)."""
        cycles = self.record_.cycles
        return self._fields(cycles[index]) if 0 <= index < len(cycles) else {}

    def _fields(self, cycles: list[int] | None) -> dict[str, Any]:
        if cycles is None:
            return {"target_cycles": None, "target_meets": {f"{p.voltage:g}": False for p in self.points}}
        return {"target_cycles": {f"{p.voltage:g}": c for p, c in zip(self.points, cycles, strict=True)},
                "target_meets": {f"{p.voltage:g}": point_cost(c, p, self.target, self.record_.l1_bytes_from,
                                                              self.record_.link_s).meets
                                 for p, c in zip(self.points, cycles, strict=True)}}

    def record(self) -> TargetRecord:
        return self.record_

    def report_fields(self) -> dict[str, Any]:
        return target_fields(self.record_)


class TargetNote:
    """Stands in for TargetTiming where there is none (fp32): says why in the report."""

    def __init__(self, note: str) -> None:
        self.note = note

    def __call__(self, event: Any) -> None:
        return None

    def report_fields(self) -> dict[str, Any]:
        return {"operating_points": None, "lowest_feasible_voltage": None, "target_note": self.note}


def work_summary(work: FrameWork, target: Target,
                 points: tuple[OperatingPoint, ...] = ()) -> dict[str, Any]:
    """Facts of the model on the target; with `points`, where each point's cycles go."""
    macs = work.macs
    breakdown = {}
    for point in points:
        c = frame_cycles(work, target, point.freq_hz)
        breakdown[f"{point.voltage:g}"] = {"total": c.total, "compute": round(c.compute),
                                           "dma_exposed": round(c.dma_exposed),
                                           "elementwise": round(c.elementwise), "overhead": round(c.overhead)}
    return {"mode": work.mode, "cell": work.cell, "hidden": work.hidden, "workers": work.workers,
            "blob_bytes": work.blob_bytes, "weights_memory": work.level,
            "macs_int8": macs["int8"], "macs_fp16": macs["fp16"],
            "ideal_cycles": round(ideal_cycles(work, target), 1),
            "tiles": {layer.name: len(layer.tiles) for layer in work.layers},
            "counters": work.counters().as_dict(),
            **({"cycles_breakdown": breakdown} if breakdown else {})}


def summarise(record: TargetRecord) -> list[dict[str, Any]]:
    """One row per operating point: frames, misses, p99/worst cycles and latency, slack, power."""
    from streamer.engine import DEADLINE_S

    target, hop = record.target, DEADLINE_S
    frames = len(record.cycles)
    known = np.array([c for c in record.cycles if c is not None], dtype=np.float64)
    known = known.reshape(-1, len(record.points))
    lost = frames - len(known)
    ideal = record.work.get("ideal_cycles")
    memory_uj = (record.l1_bytes_from[1] * target.mram_pj_per_byte
                 + record.l1_bytes_from[2] * target.l3_pj_per_byte) * 1e-6
    rows = []
    for i, point in enumerate(record.points):
        cycles = known[:, i]
        compute_s = cycles / point.freq_hz
        latency = compute_s + record.link_s
        misses = lost + int(np.count_nonzero(latency > hop * (1 + DEADLINE_TOLERANCE)))
        energy = point.active_mw * compute_s * 1e3 + memory_uj
        power = (energy + point.idle_mw * np.maximum(hop - compute_s, 0.0) * 1e3) / (
            np.maximum(hop, compute_s) * 1e3)
        some = len(cycles) > 0
        p99 = float(np.percentile(cycles, 99, method="higher")) if some else None
        worst = float(latency.max()) if some else None
        rows.append({
            "voltage": point.voltage,
            "freq_mhz": point.freq_mhz,
            "frames": frames,
            "cycles_p99": None if p99 is None else int(p99),
            "latency_ms_p99": round(float(np.percentile(latency, 99, method="higher")) * 1e3, 4)
            if some else None,
            "latency_ms_max": None if worst is None else round(worst * 1e3, 4),
            "slack_ms": None if worst is None else round((hop - worst) * 1e3, 4),
            "deadline_misses": misses,
            "meets_deadline": frames > 0 and misses == 0,
            "power_mw": round(float(power.mean()), 3) if some else None,
            "power_active_mw": point.active_mw,
            "energy_uj_per_frame": round(float(energy.mean()), 3) if some else None,
            "weights_memory": record.level,
            "cycles_to_ideal": None if p99 is None or not ideal else round(p99 / ideal, 2),
        })
    return rows


def lowest_feasible(rows: list[dict[str, Any]]) -> float | None:
    feasible = [r["voltage"] for r in rows if r["meets_deadline"]]
    return min(feasible) if feasible else None


def target_fields(record: TargetRecord | None) -> dict[str, Any]:
    """The report keys: operating_points, lowest_feasible_voltage, target (facts of the model)."""
    if record is None:
        return {}
    rows = summarise(record)
    lost = sum(1 for c in record.cycles if c is None)
    return {"operating_points": rows, "lowest_feasible_voltage": lowest_feasible(rows),
            "target": {"name": record.target.name, "file": record.target.source, **record.work,
                       "link_ms_per_frame": round(record.link_s * 1e3, 4), "frames_lost": lost,
                       "counters_mismatch_frames": record.counters_mismatch_frames}}
