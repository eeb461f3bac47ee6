"""Target cost model: cycles, latency, deadline, power and energy of every frame at every voltage.

docs/cost-model.md is the specification. In short:

1. The work of one frame is what the firmware does (firmware/src/schedule.c): five forks (fc0,
   rnn1, rnn2, fc1, fc2); in each, a prologue split by element, then the layer's weights
   streamed tile by tile (rows packed into one 64 kB half of L1, double-buffered), each tile's
   rows split across the workers in contiguous blocks, a barrier after the first copy and
   after every tile; then, for recurrent layers, the gate work split by hidden unit.
   Each tile's rows are read from the levels the placement plan chose (plan.py, the rule the
   firmware's plan.c follows: L2, then MRAM, spread evenly over the tiles, the rest in L3).
   `firmware_work` rebuilds that schedule from (mode, cell, H, placement); its sums are exactly
   the counters block the firmware sends with every mask (`FrameCounters`), which a test
   checks against `tdn-sim`. On a device backend the device's own counters are used and
   checked against the schedule.
2. Cycles of a layer = set-up + fork + prologue + DMA of tile 0 (nothing to overlap it with)
   + barrier + sum over tiles t of [max(compute of tile t, DMA of tile t+1) + barrier]
   + gate work. Compute of a tile = the slowest worker's MAC cycles (int8 and fp16 rates) +
   per-row and per-activation costs. DMA = transfers x set-up + the slowest DMA channel's
   bytes / bandwidth (levels on separate channels copied at once).
3. Latency at an operating point = cycles / f(V) (+ link time per frame at a baud rate); a
   frame misses when it exceeds the 6.25 ms hop. Power: active for the compute time, idle for
   the rest of the hop, plus energy per byte read from MRAM or L3.

Four rooms: `plan` (where the weights live), `work` (1: the schedule and its counters),
`cycles` (2-3: cycles, latency, power, energy) and `timing` (the per-frame observer and the
report rows). The names below are the
cost model's public face.
"""

from streamer.costmodel.cycles import (
    Cycles,
    PointCost,
    Rates,
    counters_cycles,
    frame_cycles,
    ideal_cycles,
    point_cost,
)
from streamer.costmodel.timing import (
    TargetNote,
    TargetRecord,
    TargetTiming,
    TimingSpec,
    link_seconds,
    lowest_feasible,
    summarise,
    target_fields,
    work_summary,
)
from streamer.costmodel.work import (
    DEADLINE_TOLERANCE,
    GATES,
    UNIT_ACTIVATIONS,
    UNIT_ELEMENTWISE,
    CostModelError,
    FrameCounters,
    FrameWork,
    LayerWork,
    Tile,
    blob_bytes,
    firmware_work,
    layer_int8,
    model_work,
)

__all__ = ["DEADLINE_TOLERANCE", "GATES", "UNIT_ACTIVATIONS", "UNIT_ELEMENTWISE", "CostModelError", "Cycles",
           "FrameCounters", "FrameWork", "LayerWork", "PointCost", "Rates", "TargetNote", "TargetRecord",
           "TargetTiming", "Tile", "TimingSpec", "blob_bytes", "counters_cycles", "firmware_work",
           "frame_cycles", "ideal_cycles", "layer_int8", "link_seconds", "lowest_feasible", "model_work",
           "point_cost", "summarise", "target_fields", "work_summary"]
