"""The frame link protocol's framing, version 1 (docs/protocol.md): the packet, its checks and
the resynchronising parser; the message layouts are in streamer/link/messages.py. The host's
half of firmware/src/protocol.c.

    packet = encode_packet(MsgType.FRAME, seq, payload)
    parser = PacketParser()
    for packet in parser.feed(received_bytes):
        ...                                     # messages.decode_message(packet)

Nothing here touches a port or a clock it is not given: it is pure bytes in, bytes out, so the
same code is tested against damaged traffic offline and used on a live link.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

SYNC = b"\xa5\x5a"
HEADER_SIZE = 7
CRC32_SIZE = 4
OVERHEAD = HEADER_SIZE + CRC32_SIZE
MAX_PAYLOAD = 1280
RX_STALE_S = 0.200
REPLY_BIT = 0x80

_HEADER = struct.Struct("<BBH")  # type, seq, length: bytes 2..5 of a packet


class ProtocolError(ValueError):
    """Bytes the protocol refuses: a payload too long for a packet, or a message payload that
    does not have the layout its type requires (streamer/link/messages.py)."""


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
