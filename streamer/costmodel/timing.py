"""The cost model as an observer: every frame's cycles at each operating point (from the
schedule, or from a device's own counters), and the report rows it sums to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamer.costmodel.cycles import counters_cycles, frame_cycles, ideal_cycles, point_cost
from streamer.costmodel.work import (
    DEADLINE_TOLERANCE,
    CostModelError,
    FrameCounters,
    FrameWork,
    firmware_work,
)
from streamer.quant.modes import QUANTIZED_MODES, modes_text
from streamer.target import MEMORY_LEVELS, OperatingPoint, Target

# --- per-frame observer and the report rows ----------------------------------------------------

@dataclass(frozen=True)
class TimingSpec:
    """What to model: a target, the operating points to check, the link's baud rate (if any)."""

    target: Target
    points: tuple[OperatingPoint, ...]
    baud: int | None = None
    placement: str = "auto"  # the emulator's weights: the planner, or the whole blob in one level

    @classmethod
    def load(cls, path: Any = None, voltages: Any = None, baud: int | None = None,
             placement: str = "auto") -> TimingSpec:
        """From `--target`, `--voltages` (None: the packaged GAP9 target, all its points) and
        `--placement`."""
        from streamer.target import parse_voltages, read_target

        target = read_target(path)
        chosen = parse_voltages(voltages) if voltages is None or isinstance(voltages, str) else [
            float(v) for v in voltages]
        return cls(target, target.select(chosen), baud, placement)


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
    from streamer.link.messages import frame_bytes

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
        if self.device:  # the device's own plan (or, from older firmware, its one level)
            level = None if model.cuts is not None else model.level
            self.work = firmware_work(model.mode, model.cell, model.hidden, target, level, model.cuts,
                                      strict=False)
        else:
            self.work = firmware_work(model.mode, model.cell, model.hidden, target, spec.placement)
        if baud is None and self.device:
            baud = model.baud
        self.baud = baud
        self.record_ = TargetRecord(target, points, level=self.work.level,
                                    l1_bytes_from=self.work.bytes_read(),
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
    """Facts of the model on the target; with `points`, where each point's cycles go, the
    cycles of each layer and what bounds it (compute, or the level its copies wait on)."""
    macs, names = work.macs, [layer.name for layer in work.layers]
    breakdown = {}
    for point in points:
        c = frame_cycles(work, target, point.freq_hz)
        breakdown[f"{point.voltage:g}"] = {
            "total": c.total, "compute": round(c.compute), "dma_exposed": round(c.dma_exposed),
            "elementwise": round(c.elementwise), "overhead": round(c.overhead),
            "by_layer": dict(zip(names, (round(x) for x in c.by_layer), strict=True)),
            "bound": dict(zip(names, c.bound, strict=True))}
    return {"mode": work.mode, "cell": work.cell, "hidden": work.hidden, "workers": work.workers,
            "blob_bytes": work.blob_bytes, "weights_memory": work.level, "placement": work.placement,
            "bytes_by_level": dict(zip(MEMORY_LEVELS, work.counters().l1_bytes_from, strict=True)),
            "plan": work.bytes_by_layer(),
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

