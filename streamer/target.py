"""Target descriptions (calibration/targets/*.toml): the MCU's memories, cores and operating points.

`load_target` parses the TOML; `memory_levels` reads `[memory]`; `parse_target` reads the whole
description the cost model needs (`streamer.costmodel`, docs/cost-model.md) and raises a
`TargetError` naming the file, the section and the missing or malformed field.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_TARGET = Path(__file__).resolve().parent.parent / "calibration" / "targets" / "gap9.toml"
MEMORY_LEVELS = ("L2", "MRAM", "L3")
# `--placement`: the planner; the whole blob in the first level it fits (the rule before the
# planner); or the whole blob in the level named
PLACEMENTS = ("auto", "whole", *MEMORY_LEVELS)


class TargetError(ValueError):
    """A target file that is missing, malformed or incomplete: the message names the field."""


@dataclass(frozen=True)
class MemoryLevels:
    """Sizes in bytes; weights go to the first level they fit: L2 (its weight budget), MRAM, L3."""

    l1_bytes: int
    l2_bytes: int
    l2_weight_bytes: int
    mram_bytes: int
    l3_bytes: int

    def placement(self, weight_bytes: int) -> str | None:
        """Memory level holding `weight_bytes` of weights: "L2", "MRAM", "L3", or None if too large."""
        for level, size in (("L2", self.l2_weight_bytes), ("MRAM", self.mram_bytes), ("L3", self.l3_bytes)):
            if weight_bytes <= size:
                return level
        return None


@dataclass(frozen=True)
class Compute:
    """Peak SIMD widths and what the firmware's loops cost on top of them (cycles)."""

    int8_macs_per_cycle_per_core: float
    fp16_macs_per_cycle_per_core: float
    fpus: int
    int8_cycles_per_simd: float
    fp16_cycles_per_simd: float
    row_cycles: float
    activation_cycles: float
    elementwise_cycles: float


@dataclass(frozen=True)
class Overheads:
    """Fixed costs in cluster cycles."""

    fork_cycles: float
    barrier_cycles: float
    layer_setup_cycles: float
    dma_transfer_cycles: float


@dataclass(frozen=True)
class DmaLink:
    """Bandwidth of copies into L1 from one level: per cluster cycle, or in MB/s of its own clock."""

    level: str
    bytes_per_cycle: float | None = None
    mbytes_per_s: float | None = None
    # Levels on different channels are read at once (the copies of one tile overlap); levels
    # on the same channel one after the other. One shared channel unless the file says.
    channel: str = "dma"

    def cycles(self, nbytes: float, freq_hz: float) -> float:
        """Cluster cycles to move `nbytes` at a cluster clock of `freq_hz`."""
        if self.bytes_per_cycle is not None:
            return nbytes / self.bytes_per_cycle
        assert self.mbytes_per_s is not None
        return nbytes / (self.mbytes_per_s * 1e6) * freq_hz


@dataclass(frozen=True)
class OperatingPoint:
    """A supply voltage, the highest cluster clock it allows and the power at that clock."""

    voltage: float
    freq_mhz: float
    active_mw: float
    idle_mw: float

    @property
    def freq_hz(self) -> float:
        return self.freq_mhz * 1e6


@dataclass(frozen=True)
class Target:
    """Everything the cost model knows about the MCU (one target file)."""

    name: str
    source: str
    workers: int
    memory: MemoryLevels
    compute: Compute
    overheads: Overheads
    dma: dict[str, DmaLink]
    mram_pj_per_byte: float
    l3_pj_per_byte: float
    points: tuple[OperatingPoint, ...]
    # [memory] weights_in_place = true (optional): one core without a scratchpad reads each
    # tile's rows where the plan put them, no copies into L1 (a Cortex-M; docs/cortex-m.md).
    weights_in_place: bool = False

    @property
    def tile_bytes(self) -> int:
        """One half of L1: the firmware double-buffers its weight tiles."""
        return self.memory.l1_bytes // 2

    def fp16_macs_per_cycle_shared(self) -> float:
        """Peak binary16 MACs per cycle per core once the FPUs are shared between the workers."""
        share = min(1.0, self.compute.fpus / self.workers)
        return self.compute.fp16_macs_per_cycle_per_core * share

    def select(self, voltages: list[float] | None) -> tuple[OperatingPoint, ...]:
        """The operating points at `voltages` (None: all), in ascending voltage."""
        if voltages is None:
            return tuple(sorted(self.points, key=lambda p: p.voltage))
        chosen = []
        for v in voltages:
            match = [p for p in self.points if abs(p.voltage - v) < 1e-9]
            if not match:
                have = ", ".join(f"{p.voltage:g}" for p in sorted(self.points, key=lambda p: p.voltage))
                raise TargetError(f"{self.source}: no operating point at {v:g} V (the target has {have})")
            chosen.append(match[0])
        return tuple(sorted(set(chosen), key=lambda p: p.voltage))


def _require(table: dict, key: str, where: str):
    if not isinstance(table, dict):
        raise TargetError(f"{where}: expected a table, got {type(table).__name__}")
    if key not in table:
        raise TargetError(f"{where}: missing field {key!r}")
    return table[key]


def _number(table: dict, key: str, where: str, *, positive: bool = True, allow_zero: bool = False) -> float:
    value = _require(table, key, where)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TargetError(f"{where}: field {key!r} must be a number, got {value!r}")
    if positive and (value < 0 or (value == 0 and not allow_zero)):
        raise TargetError(f"{where}: field {key!r} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return float(value)


def packaged_targets() -> tuple[str, ...]:
    """The names `--target` accepts besides a path: the packaged descriptions."""
    return tuple(sorted(p.stem for p in _packaged_dir().glob("*.toml")))


def target_path(spec: str | Path | None = None) -> Path:
    """`--target` as a file: None the packaged GAP9, a packaged name (gap9, cortex-m7), or a path."""
    if spec is None:
        return _packaged_target()
    path = Path(spec)
    if path.exists() or path.suffix or len(path.parts) > 1:
        return path
    named = _packaged_dir() / f"{spec}.toml"
    if named.is_file():
        return named
    raise TargetError(f"unknown target {str(spec)!r}: name a packaged one ({', '.join(packaged_targets())}) "
                      f"or a TOML file")


def load_target(path: str | Path | None = None) -> dict:
    """Parse a target TOML file, by path or packaged name (default: the packaged GAP9 description)."""
    path = target_path(path)
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise TargetError(f"target file not found: {path}") from None
    except IsADirectoryError:
        raise TargetError(f"target file is a directory: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TargetError(f"{path}: not valid TOML ({exc})") from None


def memory_levels(target: dict, where: str = "target") -> MemoryLevels:
    memory = _require(target, "memory", where)
    fields = {name: int(_number(memory, name, f"{where} [memory]"))
              for name in MemoryLevels.__dataclass_fields__}
    return MemoryLevels(**fields)


_MAY_BE_ZERO = ("row_cycles", "activation_cycles", "elementwise_cycles")


def parse_target(data: dict[str, Any], where: str = "target") -> Target:
    """The whole target description from parsed TOML; TargetError names any missing field."""
    cluster = _require(data, "cluster", where)
    workers = int(_number(cluster, "workers", f"{where} [cluster]"))
    memory = memory_levels(data, where)
    section = _require(data, "compute", where)
    # Peak rates must be positive; the per-row and per-element costs may be 0.
    compute = Compute(**{name: _number(section, name, f"{where} [compute]",
                                       allow_zero=name in _MAY_BE_ZERO)
                         for name in Compute.__dataclass_fields__})
    compute = Compute(**{**compute.__dict__, "fpus": int(compute.fpus)})
    section = _require(data, "overheads", where)
    overheads = Overheads(**{name: _number(section, name, f"{where} [overheads]", allow_zero=True)
                             for name in Overheads.__dataclass_fields__})
    dma_table = _require(data, "dma", where)
    dma = {}
    for level in MEMORY_LEVELS:
        link = _require(dma_table, level, f"{where} [dma]")
        here = f"{where} [dma.{level}]"
        if not isinstance(link, dict):
            raise TargetError(f"{here}: expected a table")
        has = [k for k in ("bytes_per_cycle", "mbytes_per_s") if k in link]
        if len(has) != 1:
            raise TargetError(f"{here}: needs exactly one of the fields 'bytes_per_cycle' or "
                              f"'mbytes_per_s'" + (" (has both)" if len(has) == 2 else ""))
        channel = link.get("channel", "dma")
        if not isinstance(channel, str) or not channel:
            raise TargetError(f"{here}: field 'channel' must be a name, got {channel!r}")
        dma[level] = DmaLink(level, **{has[0]: _number(link, has[0], here)}, channel=channel)
    power = _require(data, "power", where)
    mram_pj = _number(power, "mram_pj_per_byte", f"{where} [power]", allow_zero=True)
    l3_pj = _number(power, "l3_pj_per_byte", f"{where} [power]", allow_zero=True)
    rows = _require(data, "operating_points", where)
    if not isinstance(rows, list) or not rows:
        raise TargetError(f"{where}: 'operating_points' must be a non-empty array of tables "
                          f"([[operating_points]])")
    points = []
    for i, row in enumerate(rows, 1):
        here = f"{where} [[operating_points]] #{i}"
        points.append(OperatingPoint(**{name: _number(row, name, here)
                                        for name in OperatingPoint.__dataclass_fields__}))
    voltages = [p.voltage for p in points]
    if len(set(voltages)) != len(voltages):
        raise TargetError(f"{where}: two operating points share a voltage")
    name = data.get("name", Path(where).stem)
    in_place = data["memory"].get("weights_in_place", False)
    if not isinstance(in_place, bool):
        raise TargetError(f"{where} [memory]: field 'weights_in_place' must be true or false, "
                          f"got {in_place!r}")
    return Target(name=str(name), source=where, workers=workers, memory=memory, compute=compute,
                  overheads=overheads, dma=dma, mram_pj_per_byte=mram_pj, l3_pj_per_byte=l3_pj,
                  points=tuple(points), weights_in_place=in_place)


def read_target(path: str | Path | None = None) -> Target:
    """Load and check a target file (default: the packaged GAP9 description)."""
    where = str(target_path(path)) if path is not None else "gap9.toml (default target)"
    return parse_target(load_target(path), where)


def parse_voltages(text: str | None) -> list[float] | None:
    """`--voltages 0.65,0.70`: a list of volts (None or "all": every point of the target)."""
    if text is None or text.strip().lower() in ("", "all"):
        return None
    values = []
    for item in text.split(","):
        try:
            values.append(float(item))
        except ValueError:
            raise TargetError(f"--voltages: {item.strip()!r} is not a voltage (e.g. 0.65,0.80)") from None
    return values


def _packaged_dir() -> Path:
    from importlib import resources

    return Path(str(resources.files("streamer.data")))


def _packaged_target() -> Path:
    packaged = _packaged_dir() / "gap9.toml"
    return packaged if packaged.is_file() else DEFAULT_TARGET
