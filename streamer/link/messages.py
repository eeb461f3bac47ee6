"""The frame link protocol's messages, version 1 (docs/protocol.md): one typed class per
message, its payload layout, and the error codes. Packets and their parser are in
streamer/link/protocol.py.

    packet = FrameRequest(7, bits).encode(seq)
    for packet in parser.feed(received_bytes):
        message = decode_message(packet)        # FrameReply, DeviceInfo, ErrorReply, ...

Pure bytes in, bytes out, like the framing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar

import numpy as np

from streamer.link.protocol import OVERHEAD, MsgType, Packet, ProtocolError, encode_packet
from streamer.model.params import CELL_CODES, N_BINS
from streamer.quant.modes import INFO_BITS, LAYERS, WIRE_CODES
from streamer.target import MEMORY_LEVELS

MAX_CHUNK = 1024
MAX_ERROR_TEXT = 200
PROTOCOL_VERSION = 1
COUNTERS_VERSION = 1


class ErrorCode(IntEnum):
    BAD_REQUEST = 1
    NO_MODEL = 2
    MODEL_TOO_LARGE = 3
    BAD_CHECKSUM = 4
    BAD_MODEL = 5
    BAD_SEQUENCE = 6
    UNSUPPORTED = 7
    INTERNAL = 8


def error_name(code: int) -> str:
    """`NO_MODEL` for 2; `CODE_42` for a code this host does not know."""
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"CODE_{code}"



def _require(payload: bytes, size: int, what: str, exact: bool = True) -> None:
    if (len(payload) != size) if exact else (len(payload) < size):
        relation = "" if exact else "at least "
        raise ProtocolError(f"{what} payload is {len(payload)} bytes, expected {relation}{size}")


class Message:
    """Base of the typed messages: `pack()` gives the payload, `unpack(payload)` parses one."""

    TYPE: ClassVar[int]

    def pack(self) -> bytes:
        return b""

    @classmethod
    def unpack(cls, payload: bytes) -> Message:
        _require(payload, 0, cls.__name__)
        return cls()

    def encode(self, seq: int) -> bytes:
        """This message as a complete packet with sequence number `seq`."""
        return encode_packet(self.TYPE, seq, self.pack())


class _U32Message(Message):
    """A message whose payload is one u32."""

    _FIELD: ClassVar[str]

    def pack(self) -> bytes:
        return struct.pack("<I", getattr(self, self._FIELD))

    @classmethod
    def unpack(cls, payload: bytes) -> Message:
        _require(payload, 4, cls.__name__)
        return cls(*struct.unpack("<I", payload))


@dataclass(frozen=True)
class InfoRequest(Message):
    TYPE: ClassVar[int] = MsgType.INFO


PLACEMENT_CODES = {"auto": 0, "L2": 1, "MRAM": 2, "L3": 3}  # MODEL_END's optional u8
SPLIT_LEVEL = 3  # ModelInfo's level when the plan spreads the weights over several levels


@dataclass(frozen=True)
class ModelEndRequest(Message):
    """Empty (the device's placement planner), or a u8 asking for the whole blob in one level."""

    TYPE: ClassVar[int] = MsgType.MODEL_END
    placement: str = "auto"

    def pack(self) -> bytes:
        # "auto" is the empty payload, which firmware before the planner also accepts
        return b"" if self.placement == "auto" else bytes([PLACEMENT_CODES[self.placement]])

    @classmethod
    def unpack(cls, payload: bytes) -> ModelEndRequest:
        if len(payload) > 1:
            raise ProtocolError(f"MODEL_END payload is {len(payload)} bytes, expected 0 or 1")
        if payload and payload[0] >= len(PLACEMENT_CODES):
            raise ProtocolError(f"MODEL_END placement {payload[0]} is not defined")
        return cls(list(PLACEMENT_CODES)[payload[0]] if payload else "auto")


@dataclass(frozen=True)
class ResetRequest(Message):
    TYPE: ClassVar[int] = MsgType.RESET


@dataclass(frozen=True)
class ResetReply(Message):
    TYPE: ClassVar[int] = MsgType.RESET_REPLY


@dataclass(frozen=True)
class StatsRequest(Message):
    TYPE: ClassVar[int] = MsgType.STATS


@dataclass(frozen=True)
class ModelBeginRequest(Message):
    TYPE: ClassVar[int] = MsgType.MODEL_BEGIN
    total_bytes: int
    crc: int

    def pack(self) -> bytes:
        return struct.pack("<II", self.total_bytes, self.crc)

    @classmethod
    def unpack(cls, payload: bytes) -> ModelBeginRequest:
        _require(payload, 8, "MODEL_BEGIN")
        return cls(*struct.unpack("<II", payload))


@dataclass(frozen=True)
class ModelBeginReply(_U32Message):
    TYPE: ClassVar[int] = MsgType.MODEL_BEGIN_REPLY
    _FIELD: ClassVar[str] = "accepted_bytes"
    accepted_bytes: int


@dataclass(frozen=True)
class ModelChunkRequest(Message):
    TYPE: ClassVar[int] = MsgType.MODEL_CHUNK
    offset: int
    data: bytes

    def pack(self) -> bytes:
        if len(self.data) > MAX_CHUNK:
            raise ProtocolError(f"model chunk of {len(self.data)} bytes exceeds {MAX_CHUNK}")
        return struct.pack("<I", self.offset) + bytes(self.data)

    @classmethod
    def unpack(cls, payload: bytes) -> ModelChunkRequest:
        _require(payload, 4, "MODEL_CHUNK", exact=False)
        if len(payload) > 4 + MAX_CHUNK:
            raise ProtocolError(f"MODEL_CHUNK carries {len(payload) - 4} bytes, at most {MAX_CHUNK}")
        return cls(struct.unpack_from("<I", payload)[0], bytes(payload[4:]))


@dataclass(frozen=True)
class ModelChunkReply(_U32Message):
    TYPE: ClassVar[int] = MsgType.MODEL_CHUNK_REPLY
    _FIELD: ClassVar[str] = "received_bytes"
    received_bytes: int


MODE_CODES = WIRE_CODES
MODES = {code: name for name, code in MODE_CODES.items()}
CELLS = {code: name for name, code in CELL_CODES.items()}
_MODE_BITS = INFO_BITS
_CELL_BITS = CELL_CODES  # INFO's supported-cells bit is the cell's code


def _bits_to_names(bits: int, table: dict[str, int]) -> tuple[str, ...]:
    return tuple(name for name, bit in table.items() if bits >> bit & 1)


def _names_to_bits(names: tuple[str, ...], table: dict[str, int]) -> int:
    return sum(1 << table[name] for name in names)


@dataclass(frozen=True)
class DeviceInfo(Message):
    """What the device is: firmware and protocol versions, cores, modes, memories, timer."""

    TYPE: ClassVar[int] = MsgType.INFO_REPLY
    _LAYOUT: ClassVar[struct.Struct] = struct.Struct("<BBBBBBBBIIIII16s")
    firmware_version: tuple[int, int, int]
    protocol_version: int
    cores: int
    modes: tuple[str, ...]
    cells: tuple[str, ...]
    l1_bytes: int
    l2_bytes: int
    mram_bytes: int
    l3_bytes: int
    timer_hz: int
    target: str

    def pack(self) -> bytes:
        return self._LAYOUT.pack(*self.firmware_version, self.protocol_version, self.cores,
                                 _names_to_bits(self.modes, _MODE_BITS),
                                 _names_to_bits(self.cells, _CELL_BITS), 0, self.l1_bytes,
                                 self.l2_bytes, self.mram_bytes, self.l3_bytes, self.timer_hz,
                                 self.target.encode("ascii"))

    @classmethod
    def unpack(cls, payload: bytes) -> DeviceInfo:
        _require(payload, cls._LAYOUT.size, "INFO reply")
        (major, minor, patch, protocol, cores, modes, cells, _reserved, l1, l2, mram, l3, timer,
         target) = cls._LAYOUT.unpack(payload)
        return cls((major, minor, patch), protocol, cores, _bits_to_names(modes, _MODE_BITS),
                   _bits_to_names(cells, _CELL_BITS), l1, l2, mram, l3, timer,
                   target.split(b"\0", 1)[0].decode("ascii", "replace"))

    @property
    def model_capacity(self) -> int:
        """Bytes of weights the device can hold over all its weight memories."""
        return self.l2_bytes + self.mram_bytes + self.l3_bytes

    def as_dict(self) -> dict:
        return {"target": self.target, "firmware": ".".join(map(str, self.firmware_version)),
                "protocol": self.protocol_version, "cores": self.cores, "modes": list(self.modes),
                "cells": list(self.cells), "l1_bytes": self.l1_bytes, "l2_bytes": self.l2_bytes,
                "mram_bytes": self.mram_bytes, "l3_bytes": self.l3_bytes, "timer_hz": self.timer_hz}


@dataclass(frozen=True)
class LayerPlan:
    """Where one layer's weights live: its tiling, bytes per level (L2, MRAM, L3) and, per tile,
    the row cuts (rows [0, c0) from L2, [c0, c1) from MRAM, the rest from L3)."""

    tiles: int
    rows_per_tile: int
    bytes_from: tuple[int, int, int]
    cuts: tuple[tuple[int, int], ...]

    def as_dict(self) -> dict:
        return {"tiles": self.tiles, "rows_per_tile": self.rows_per_tile,
                "bytes": dict(zip(MEMORY_LEVELS, self.bytes_from, strict=True)),
                "cuts": [list(c) for c in self.cuts]}


@dataclass(frozen=True)
class ModelInfo(Message):
    """The model the device accepted, where its weights live, and (firmware with the planner)
    the placement asked for and the plan, per layer. `weights_level` is a level, or the levels
    joined ("L2+MRAM") where the plan spreads them."""

    TYPE: ClassVar[int] = MsgType.MODEL_END_REPLY
    _LAYOUT: ClassVar[struct.Struct] = struct.Struct("<BBHIBBBx")
    _LAYER: ClassVar[struct.Struct] = struct.Struct("<HHIII")
    mode: str
    cell: str
    hidden: int
    blob_bytes: int
    weights_level: str
    placement: str = "auto"
    plan: tuple[LayerPlan, ...] | None = None

    def pack(self) -> bytes:
        level = (MEMORY_LEVELS.index(self.weights_level) if self.weights_level in MEMORY_LEVELS
                 else SPLIT_LEVEL)
        out = self._LAYOUT.pack(MODE_CODES[self.mode], CELL_CODES[self.cell], self.hidden, self.blob_bytes,
                                level, PLACEMENT_CODES[self.placement], len(self.plan or ()))
        for layer in self.plan or ():
            out += self._LAYER.pack(layer.tiles, layer.rows_per_tile, *layer.bytes_from)
            out += b"".join(struct.pack("<HH", *cut) for cut in layer.cuts)
        return out

    @classmethod
    def unpack(cls, payload: bytes) -> ModelInfo:
        _require(payload, cls._LAYOUT.size, "MODEL_END reply", exact=False)
        mode, cell, hidden, blob_bytes, level, placement, layers = cls._LAYOUT.unpack_from(payload)
        if (mode not in MODES or cell not in CELLS or level > SPLIT_LEVEL or placement >= len(PLACEMENT_CODES)
                or layers not in (0, len(LAYERS))):
            raise ProtocolError(f"MODEL_END reply has mode {mode}, cell {cell}, level {level}, placement "
                                f"{placement}, {layers} layers: not all are defined")
        asked = list(PLACEMENT_CODES)[placement]
        if not layers:  # firmware before the planner: the whole blob in one level
            _require(payload, cls._LAYOUT.size, "MODEL_END reply")
            if level == SPLIT_LEVEL or placement:
                raise ProtocolError("MODEL_END reply without a plan names a split level or a placement")
            return cls(MODES[mode], CELLS[cell], hidden, blob_bytes, MEMORY_LEVELS[level])
        plan = _unpack_plan(payload, cls._LAYOUT.size, MODES[mode], CELLS[cell], hidden)
        totals = [sum(layer.bytes_from[lv] for layer in plan) for lv in range(len(MEMORY_LEVELS))]
        used = [lv for lv, n in enumerate(totals) if n]
        if (level == SPLIT_LEVEL) != (len(used) > 1) or (level != SPLIT_LEVEL and used and used != [level]):
            raise ProtocolError(f"MODEL_END reply names level {level} but its plan uses "
                                f"{'+'.join(MEMORY_LEVELS[lv] for lv in used)}")
        if asked != "auto" and used != [MEMORY_LEVELS.index(asked)]:
            raise ProtocolError(f"MODEL_END reply: the whole blob was asked in {asked}, the plan differs")
        where = "+".join(MEMORY_LEVELS[lv] for lv in used)
        return cls(MODES[mode], CELLS[cell], hidden, blob_bytes, where, asked, plan)

    def as_dict(self) -> dict:
        out = {"mode": self.mode, "cell": self.cell, "hidden": self.hidden,
               "blob_bytes": self.blob_bytes, "weights_level": self.weights_level}
        if self.plan is not None:
            out["placement"] = self.placement
            out["plan"] = {name: layer.as_dict() for name, layer in zip(LAYERS, self.plan, strict=True)}
        return out


MAX_PLAN_TILES = 1024  # far above any tiling of H <= 256 (19): a bound on what a reply may claim


def _unpack_plan(payload: bytes, offset: int, mode: str, cell: str, hidden: int) -> tuple[LayerPlan, ...]:
    """The per-layer plan of a ModelInfo, checked against the blob layout of (mode, cell, hidden):
    tiles cover the layer's rows, cuts lie within each tile, bytes per level follow from them."""
    from streamer.link.blob import layout

    try:
        arrays, _total = layout(mode, cell, hidden)
    except Exception as error:  # a shape no blob has (e.g. hidden 0)
        raise ProtocolError(f"MODEL_END reply names a model with no blob layout: {error}") from None
    plan = []
    for name in LAYERS:
        mine = [a for a in arrays if a.name.split(".")[0] == name]
        rows = mine[0].shape[0]
        row_bytes = sum(a.nbytes // rows for a in mine)
        _require(payload, offset + ModelInfo._LAYER.size, "MODEL_END reply", exact=False)
        tiles, per_tile, *bytes_from = ModelInfo._LAYER.unpack_from(payload, offset)
        offset += ModelInfo._LAYER.size
        if not 1 <= per_tile <= rows or tiles != -(-rows // per_tile) or tiles > MAX_PLAN_TILES:
            raise ProtocolError(f"MODEL_END reply: {name} has {tiles} tiles of {per_tile} rows for "
                                f"{rows} rows")
        _require(payload, offset + 4 * tiles, "MODEL_END reply", exact=False)
        cuts = tuple(struct.unpack_from("<HH", payload, offset + 4 * t) for t in range(tiles))
        offset += 4 * tiles
        counted = [0, 0, 0]
        for t, (c0, c1) in enumerate(cuts):
            n = min(per_tile, rows - t * per_tile)
            if not c0 <= c1 <= n:
                raise ProtocolError(f"MODEL_END reply: {name} tile {t} has cuts {c0}, {c1} for {n} rows")
            counted = [counted[0] + c0, counted[1] + c1 - c0, counted[2] + n - c1]
        if [r * row_bytes for r in counted] != bytes_from:
            raise ProtocolError(f"MODEL_END reply: {name}'s bytes per level {bytes_from} are not its "
                                f"cuts' ({[r * row_bytes for r in counted]})")
        plan.append(LayerPlan(tiles, per_tile, tuple(bytes_from), cuts))
    _require(payload, offset, "MODEL_END reply")
    return tuple(plan)


def _u16_array(values: np.ndarray | bytes) -> np.ndarray:
    array = np.frombuffer(values, "<u2") if isinstance(values, bytes | bytearray) else values
    array = np.asarray(array)
    if array.shape != (N_BINS,) or array.dtype.kind not in "ui":
        raise ProtocolError(f"expected {N_BINS} u16 binary16 bit patterns, "
                            f"got {array.dtype}{list(array.shape)}")
    return array.astype("<u2", copy=False)


@dataclass(frozen=True, eq=False)
class FrameRequest(Message):
    """One frame of input: its index and 257 binary16 magnitudes as u16 bit patterns."""

    TYPE: ClassVar[int] = MsgType.FRAME
    SIZE: ClassVar[int] = 4 + 2 * N_BINS
    index: int
    bits: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "bits", _u16_array(self.bits))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, FrameRequest) and self.index == other.index
                and np.array_equal(self.bits, other.bits))

    __hash__ = None  # type: ignore[assignment]

    def pack(self) -> bytes:
        return struct.pack("<I", self.index) + self.bits.tobytes()

    @classmethod
    def unpack(cls, payload: bytes) -> FrameRequest:
        _require(payload, cls.SIZE, "FRAME")
        return cls(struct.unpack_from("<I", payload)[0], np.frombuffer(payload, "<u2", N_BINS, 4).copy())


@dataclass(frozen=True)
class Counters:
    """The device's account of one frame (docs/protocol.md, Counters)."""

    version: int
    cores: int
    ticks: int
    int8_macs: tuple[int, ...]
    fp16_macs: tuple[int, ...]
    l1_bytes_from: tuple[int, int, int]  # bytes copied into L1 from L2, MRAM, L3
    dma_transfers: int
    forks: int
    barrier_waits: int
    instructions: tuple[int, ...]  # per hart, controller first

    @staticmethod
    def size(cores: int) -> int:
        return 4 + 4 + 8 * cores + 12 + 12 + 8 * (cores + 1)

    def pack(self) -> bytes:
        n = self.cores
        if not (len(self.int8_macs) == len(self.fp16_macs) == n and len(self.instructions) == n + 1):
            raise ProtocolError("counters arrays do not match the core count")
        return (struct.pack("<BBHI", self.version, n, 0, self.ticks)
                + struct.pack(f"<{n}I{n}I3IIII", *self.int8_macs, *self.fp16_macs, *self.l1_bytes_from,
                              self.dma_transfers, self.forks, self.barrier_waits)
                + struct.pack(f"<{n + 1}Q", *self.instructions))

    @classmethod
    def unpack(cls, payload: bytes) -> Counters:
        _require(payload, 8, "counters", exact=False)
        version, n, _reserved, ticks = struct.unpack_from("<BBHI", payload)
        if version != COUNTERS_VERSION:
            raise ProtocolError(f"counters version {version}, this host reads {COUNTERS_VERSION}")
        _require(payload, cls.size(n), "counters")
        values = struct.unpack_from(f"<{n}I{n}I3IIII", payload, 8)
        instructions = struct.unpack_from(f"<{n + 1}Q", payload, 8 + 8 * n + 24)
        return cls(version, n, ticks, values[:n], values[n:2 * n], tuple(values[2 * n:2 * n + 3]),
                   *values[2 * n + 3:], instructions)

    def as_dict(self) -> dict:
        return {"ticks": self.ticks, "cores": self.cores, "int8_macs": list(self.int8_macs),
                "fp16_macs": list(self.fp16_macs),
                "l1_bytes_from": dict(zip(MEMORY_LEVELS, self.l1_bytes_from, strict=True)),
                "dma_transfers": self.dma_transfers, "forks": self.forks,
                "barrier_waits": self.barrier_waits, "instructions": list(self.instructions)}


@dataclass(frozen=True, eq=False)
class FrameReply(Message):
    """The mask for one frame (u16 binary16 bit patterns) and the device's counters."""

    TYPE: ClassVar[int] = MsgType.FRAME_REPLY
    index: int
    bits: np.ndarray
    counters: Counters

    def __post_init__(self) -> None:
        object.__setattr__(self, "bits", _u16_array(self.bits))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, FrameReply) and self.index == other.index
                and np.array_equal(self.bits, other.bits) and self.counters == other.counters)

    __hash__ = None  # type: ignore[assignment]

    def pack(self) -> bytes:
        return struct.pack("<I", self.index) + self.bits.tobytes() + self.counters.pack()

    @classmethod
    def unpack(cls, payload: bytes) -> FrameReply:
        _require(payload, 4 + 2 * N_BINS + 8, "FRAME reply", exact=False)
        index = struct.unpack_from("<I", payload)[0]
        bits = np.frombuffer(payload, "<u2", N_BINS, 4).copy()
        return cls(index, bits, Counters.unpack(payload[4 + 2 * N_BINS:]))


@dataclass(frozen=True)
class StatsReply(Message):
    """The device's receive counters and frames computed since it started."""

    TYPE: ClassVar[int] = MsgType.STATS_REPLY
    bad_header: int
    bad_crc: int
    stale: int
    frames: int

    def pack(self) -> bytes:
        return struct.pack("<4I", self.bad_header, self.bad_crc, self.stale, self.frames)

    @classmethod
    def unpack(cls, payload: bytes) -> StatsReply:
        _require(payload, 16, "STATS reply")
        return cls(*struct.unpack("<4I", payload))


TRACE_TENSORS = ("fc0", "rnn1.h", "rnn1.c", "rnn2.h", "rnn2.c", "fc1", "mask")
TRACE_DTYPES = {1: np.dtype("<f4"), 2: np.dtype("i1"), 3: np.dtype("<i2"), 4: np.dtype("<u2")}


@dataclass(frozen=True)
class TraceRequest(Message):
    """Ask for one of the last frame's intermediates: its index in TRACE_TENSORS."""

    TYPE: ClassVar[int] = MsgType.TRACE
    tensor: int

    def pack(self) -> bytes:
        return struct.pack("<B", self.tensor)

    @classmethod
    def unpack(cls, payload: bytes) -> TraceRequest:
        _require(payload, 1, "TRACE request")
        return cls(payload[0])


@dataclass(frozen=True, eq=False)
class TraceReply(Message):
    """One intermediate of the last frame in its storage type (dtype code of TRACE_DTYPES;
    binary16 values travel as u16 bit patterns)."""

    TYPE: ClassVar[int] = MsgType.TRACE_REPLY
    tensor: int
    dtype: int
    values: np.ndarray

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, TraceReply) and (self.tensor, self.dtype) == (other.tensor, other.dtype)
                and self.values.tobytes() == other.values.tobytes())

    __hash__ = None  # type: ignore[assignment]

    def pack(self) -> bytes:
        values = np.ascontiguousarray(self.values, TRACE_DTYPES[self.dtype])
        return struct.pack("<BBH", self.tensor, self.dtype, values.size) + values.tobytes()

    @classmethod
    def unpack(cls, payload: bytes) -> TraceReply:
        _require(payload, 4, "TRACE reply", exact=False)
        tensor, dtype, count = struct.unpack_from("<BBH", payload)
        if dtype not in TRACE_DTYPES:
            raise ProtocolError(f"TRACE reply has unknown dtype {dtype}")
        _require(payload, 4 + count * TRACE_DTYPES[dtype].itemsize, "TRACE reply")
        return cls(tensor, dtype, np.frombuffer(payload, TRACE_DTYPES[dtype], count, 4).copy())


@dataclass(frozen=True)
class ErrorReply(Message):
    """The device refused a request: code, the request type it refuses, and a reason."""

    TYPE: ClassVar[int] = MsgType.ERROR
    code: int
    request_type: int
    text: str = field(default="")

    def pack(self) -> bytes:
        return bytes([self.code, self.request_type]) + self.text.encode("utf-8")[:MAX_ERROR_TEXT]

    @classmethod
    def unpack(cls, payload: bytes) -> ErrorReply:
        _require(payload, 2, "ERROR", exact=False)
        if len(payload) > 2 + MAX_ERROR_TEXT:
            raise ProtocolError(f"ERROR text of {len(payload) - 2} bytes exceeds {MAX_ERROR_TEXT}")
        return cls(payload[0], payload[1], payload[2:].decode("utf-8", "replace"))

    @property
    def name(self) -> str:
        return error_name(self.code)


MESSAGE_CLASSES: dict[int, type[Message]] = {cls.TYPE: cls for cls in (
    InfoRequest, ModelBeginRequest, ModelChunkRequest, ModelEndRequest, FrameRequest, ResetRequest,
    StatsRequest, TraceRequest, DeviceInfo, ModelBeginReply, ModelChunkReply, ModelInfo, FrameReply,
    ResetReply, StatsReply, TraceReply, ErrorReply)}


def decode_message(packet: Packet) -> Message:
    """The typed message in `packet`; ProtocolError when its payload is malformed."""
    cls = MESSAGE_CLASSES.get(packet.type)
    if cls is None:
        raise ProtocolError(f"unknown message type 0x{packet.type:02x}")
    return cls.unpack(packet.payload)


def frame_bytes(cores: int) -> tuple[int, int]:
    """Bytes on the wire per frame: (request, reply) for a device with `cores` workers."""
    return OVERHEAD + FrameRequest.SIZE, OVERHEAD + 4 + 2 * N_BINS + Counters.size(cores)
