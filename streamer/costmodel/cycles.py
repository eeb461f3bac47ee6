"""A frame's work into cycles at a clock, and cycles into latency, power and energy at an
operating point (docs/cost-model.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from streamer.costmodel.work import DEADLINE_TOLERANCE, FrameCounters, FrameWork, LayerWork, Tile
from streamer.target import MEMORY_LEVELS, OperatingPoint, Target

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
    bound: tuple[str, ...] = ()  # per layer: "compute", or the level whose copies take longest


def level_cycles(tile: Tile, target: Target, freq_hz: float) -> dict[str, float]:
    """Cycles each level's bytes of `tile` take on its channel (transfer set-up not included)."""
    return {level: target.dma[level].cycles(tile.bytes_from[lv], freq_hz)
            for lv, level in enumerate(MEMORY_LEVELS) if tile.bytes_from[lv]}


def tile_dma(tile: Tile, target: Target, freq_hz: float) -> float:
    """The copy of one tile: worker 0 programs every transfer, then the channels run at once;
    levels that share a channel run one after the other (docs/cost-model.md)."""
    by_channel: dict[str, float] = {}
    for level, cycles in level_cycles(tile, target, freq_hz).items():
        channel = target.dma[level].channel
        by_channel[channel] = by_channel.get(channel, 0.0) + cycles
    return tile.transfers * target.overheads.dma_transfer_cycles + max(by_channel.values(), default=0.0)


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
    by_layer, bound = [], []
    for layer in work.layers:
        dma = [tile_dma(t, target, freq_hz) for t in layer.tiles]
        comp = [_tile_compute(t, layer, target, rates) for t in layer.tiles]
        l_overhead = o.layer_setup_cycles + o.fork_cycles + layer.barriers * o.barrier_cycles
        l_elem = (max(layer.prologue) * c.elementwise_cycles
                  + max(layer.units) * (layer.unit_activations * c.activation_cycles
                                        + layer.unit_elementwise * c.elementwise_cycles))
        l_compute = l_exposed = 0.0
        if layer.in_place:
            # No copies (one core, no L1): each tile's rows are computed from where the plan put
            # them, the core's loads streaming them; one core reads one level after another, so
            # a tile takes the longer of its compute and the sum of its levels' read times.
            for t, tile in enumerate(layer.tiles):
                read = sum(level_cycles(tile, target, freq_hz).values())
                l_compute += comp[t]
                l_exposed += max(0.0, read - comp[t])
            compute, exposed, elementwise, overhead = (compute + l_compute, exposed + l_exposed,
                                                       elementwise + l_elem, overhead + l_overhead)
            by_layer.append(l_compute + l_exposed + l_elem + l_overhead)
            bound.append(_bound(layer, comp, target, freq_hz))
            continue
        l_exposed += dma[0]  # tile 0: copied and waited for before any row is computed
        for t in range(len(layer.tiles)):
            following = dma[t + 1] if t + 1 < len(layer.tiles) else 0.0
            l_compute += comp[t]
            l_exposed += max(0.0, following - comp[t])  # the next copy overlaps this tile's rows
        compute, exposed, elementwise, overhead = (compute + l_compute, exposed + l_exposed,
                                                   elementwise + l_elem, overhead + l_overhead)
        by_layer.append(l_compute + l_exposed + l_elem + l_overhead)
        bound.append(_bound(layer, comp, target, freq_hz))
    total = math.ceil(compute + exposed + elementwise + overhead - 1e-9)
    return Cycles(total, compute, exposed, elementwise, overhead, tuple(by_layer), tuple(bound))


def _bound(layer: LayerWork, comp: list[float], target: Target, freq_hz: float) -> str:
    """What bounds a layer: its tiles' compute, or the level whose copies take the most cycles."""
    by_level: dict[str, float] = {}
    for tile in layer.tiles:
        for level, cycles in level_cycles(tile, target, freq_hz).items():
            by_level[level] = by_level.get(level, 0.0) + cycles
    slowest = max(by_level, key=lambda level: by_level[level]) if by_level else None
    return "compute" if slowest is None or sum(comp) >= by_level[slowest] else slowest


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
