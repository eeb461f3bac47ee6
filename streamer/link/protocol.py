"""The frame link protocol, version 1 (docs/protocol.md): packets, the resynchronising parser,
and one typed class per message.

    packet = encode_packet(MsgType.FRAME, seq, FrameRequest(7, bits).pack())
    parser = PacketParser()
    for packet in parser.feed(received_bytes):
        message = decode_message(packet)        # FrameReply, DeviceInfo, ErrorReply, ...

Nothing here touches a port or a clock it is not given: it is pure bytes in, bytes out, so the
same code is tested against damaged traffic offline and used on a live link.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar

import numpy as np

from streamer.model.params import CELL_CODES, N_BINS
from streamer.quant.modes import INFO_BITS, LAYERS, WIRE_CODES
from streamer.target import MEMORY_LEVELS

SYNC = b"\xa5\x5a"
HEADER_SIZE = 7
CRC32_SIZE = 4
OVERHEAD = HEADER_SIZE + CRC32_SIZE
MAX_PAYLOAD = 1280
MAX_CHUNK = 1024
MAX_ERROR_TEXT = 200
PROTOCOL_VERSION = 1
COUNTERS_VERSION = 1
RX_STALE_S = 0.200
REPLY_BIT = 0x80

_HEADER = struct.Struct("<BBH")  # type, seq, length: bytes 2..5 of a packet


class ProtocolError(ValueError):
    """A payload that does not have the layout its message type requires."""


class MsgType(IntEnum):
    INFO = 0x01
    MODEL_BEGIN = 0x02
    MODEL_CHUNK = 0x03
    MODEL_END = 0x04
    FRAME = 0x05
    RESET = 0x06
    STATS = 0x07
    TRACE = 0x08
    INFO_REPLY = 0x81
    MODEL_BEGIN_REPLY = 0x82
    MODEL_CHUNK_REPLY = 0x83
    MODEL_END_REPLY = 0x84
    FRAME_REPLY = 0x85
    RESET_REPLY = 0x86
    STATS_REPLY = 0x87
    TRACE_REPLY = 0x88
    ERROR = 0x7F


KNOWN_TYPES = frozenset(int(t) for t in MsgType)


def reply_type(request: int) -> int:
    """The reply type of a request type (request | 0x80)."""
    return request | REPLY_BIT


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


# --- checks -------------------------------------------------------------------------------------

def _crc8_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table.append(crc)
    return tuple(table)


_CRC8 = _crc8_table()


def crc8(data: bytes) -> int:
    """CRC-8, poly 0x07, init 0, no reflection, no xor-out (the header check)."""
    crc = 0
    for byte in data:
        crc = _CRC8[crc ^ byte]
    return crc


def crc32(data: bytes) -> int:
    """CRC-32 of IEEE 802.3, as zlib computes it (the packet and blob check)."""
    return zlib.crc32(data) & 0xFFFFFFFF


# --- packets ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Packet:
    """One delivered packet: its type, sequence number and payload bytes."""

    type: int
    seq: int
    payload: bytes


def encode_packet(msg_type: int, seq: int, payload: bytes = b"") -> bytes:
    """Frame `payload` as a packet: sync, header, CRC-8, payload, CRC-32."""
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {len(payload)} bytes exceeds MAX_PAYLOAD ({MAX_PAYLOAD})")
    header = _HEADER.pack(msg_type & 0xFF, seq & 0xFF, len(payload))
    body = header + bytes([crc8(header)]) + payload
    return SYNC + body + struct.pack("<I", crc32(body))


@dataclass
class ParserStats:
    """What the parser threw away, by the protocol's causes, plus the raw byte count."""

    bad_header: int = 0
    bad_crc: int = 0
    stale: int = 0
    skipped_bytes: int = 0
    packets: int = 0


class PacketParser:
    """Incremental receiver: feed it bytes in any split, it returns each intact packet once.

    Resynchronisation follows docs/protocol.md: skip to `A5 5A`; on a bad header or a bad
    CRC-32 drop exactly one byte and rescan, so a packet hidden inside damaged bytes is still
    found. `expire(now)` gives up on a partial packet that has had no new byte for RX_STALE_S,
    so a truncated packet cannot swallow the next one forever.
    """

    def __init__(self, stale_s: float = RX_STALE_S) -> None:
        self.stale_s = stale_s
        self.stats = ParserStats()
        self._buffer = bytearray()
        self._last_byte_at: float | None = None

    def __len__(self) -> int:
        """Bytes held that are not yet a packet."""
        return len(self._buffer)

    def feed(self, data: bytes, now: float | None = None) -> list[Packet]:
        """Add received bytes (at time `now`, if stale detection is wanted); return new packets."""
        if data:
            self._buffer += data
            if now is not None:
                self._last_byte_at = now
        packets = []
        while (packet := self._next()) is not None:
            packets.append(packet)
        return packets

    def expire(self, now: float) -> list[Packet]:
        """Give up on a partial packet that has had no new byte for `stale_s` (counted as stale).

        Its first byte is dropped and the rest rescanned, one byte at a time, as for a bad
        CRC: a damaged header that claimed more bytes than ever came cannot hide the intact
        packets received behind it. Returns those packets.
        """
        if not self._buffer or self._last_byte_at is None or now - self._last_byte_at < self.stale_s:
            return []
        self.stats.stale += 1
        packets = []
        while self._buffer:
            self._drop(1)
            packets += self.feed(b"")
        return packets

    def discard(self) -> None:
        """Drop whatever partial packet is held (counted as stale)."""
        if self._buffer:
            self.stats.stale += 1
            self.stats.skipped_bytes += len(self._buffer)
            self._buffer.clear()

    def _drop(self, count: int) -> None:
        del self._buffer[:count]
        self.stats.skipped_bytes += count

    def _seek_sync(self) -> None:
        start = self._buffer.find(SYNC)
        if start < 0:
            # A trailing A5 may be the first half of the next sync: keep it.
            keep = 1 if self._buffer.endswith(SYNC[:1]) else 0
            self._drop(len(self._buffer) - keep)
        elif start:
            self._drop(start)

    def _next(self) -> Packet | None:
        while True:
            self._seek_sync()
            if len(self._buffer) < HEADER_SIZE:
                return None
            msg_type, seq, length = _HEADER.unpack_from(self._buffer, 2)
            if (crc8(self._buffer[2:6]) != self._buffer[6] or length > MAX_PAYLOAD
                    or msg_type not in KNOWN_TYPES):
                self.stats.bad_header += 1
                self._drop(1)
                continue
            total = HEADER_SIZE + length + CRC32_SIZE
            if len(self._buffer) < total:
                return None
            (received,) = struct.unpack_from("<I", self._buffer, total - CRC32_SIZE)
            if crc32(self._buffer[2:total - CRC32_SIZE]) != received:
                self.stats.bad_crc += 1
                self._drop(1)
                continue
            payload = bytes(self._buffer[HEADER_SIZE:HEADER_SIZE + length])
            del self._buffer[:total]
            self.stats.packets += 1
            return Packet(msg_type, seq, payload)


def parse_all(data: bytes) -> list[Packet]:
    """Every intact packet in `data` (a convenience for tests and captures)."""
    return PacketParser().feed(data)


# --- messages -----------------------------------------------------------------------------------

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
