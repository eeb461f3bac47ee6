"""The frame link protocol on plain bytes: checks, layouts, every message, and the parser
against garbage, dropped bytes, corrupted CRCs and truncated packets (docs/protocol.md)."""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest

from streamer.link.messages import (
    Counters,
    DeviceInfo,
    ErrorCode,
    ErrorReply,
    FrameReply,
    FrameRequest,
    InfoRequest,
    ModelBeginReply,
    ModelBeginRequest,
    ModelChunkReply,
    ModelChunkRequest,
    ModelEndRequest,
    ModelInfo,
    ResetReply,
    ResetRequest,
    StatsReply,
    StatsRequest,
    TraceReply,
    TraceRequest,
    decode_message,
    frame_bytes,
)
from streamer.link.protocol import (
    MAX_PAYLOAD,
    OVERHEAD,
    SYNC,
    MsgType,
    Packet,
    PacketParser,
    ProtocolError,
    crc8,
    crc32,
    encode_packet,
    parse_all,
)

COUNTERS = Counters(1, 8, 123_456, tuple(range(10, 18)), tuple(range(20, 28)), (1000, 2000, 0),
                    17, 5, 42, tuple(range(1 << 33, (1 << 33) + 9)))
BITS = np.arange(257, dtype=np.uint16) * 251

EVERY_MESSAGE = [
    InfoRequest(),
    DeviceInfo((1, 2, 3), 1, 8, ("fp16", "mixed"), ("lstm", "gru"), 131072, 1 << 20, 2 << 20,
               8 << 20, 100_000_000, "host-sim"),
    ModelBeginRequest(123_456, 0xDEADBEEF),
    ModelBeginReply(123_456),
    ModelChunkRequest(2048, bytes(range(256)) * 4),
    ModelChunkReply(3072),
    ModelEndRequest(),
    ModelInfo("mixed", "lstm", 256, 123_456, "MRAM"),
    FrameRequest(7, BITS),
    FrameReply(7, BITS[::-1].copy(), COUNTERS),
    ResetRequest(),
    ResetReply(),
    StatsRequest(),
    StatsReply(1, 2, 3, 4),
    TraceRequest(5),
    TraceReply(5, 1, np.linspace(-2, 2, 257, dtype=np.float32)),
    TraceReply(3, 2, np.arange(-128, 128, dtype=np.int8)),
    TraceReply(4, 3, np.arange(-300, 300, 3, dtype=np.int16)),
    TraceReply(2, 3, np.zeros(0, np.int16)),
    TraceReply(6, 4, BITS),
    ErrorReply(ErrorCode.NO_MODEL, MsgType.FRAME, "no model loaded"),
]


def test_checks_match_their_catalogue_check_values():
    # The standard check inputs: CRC-8/SMBUS (poly 0x07) = 0xF4, CRC-32/ISO-HDLC = 0xCBF43926.
    assert crc8(b"123456789") == 0xF4
    assert crc32(b"123456789") == 0xCBF43926


def test_packet_layout_byte_by_byte():
    packet = encode_packet(MsgType.STATS_REPLY, 0x42, b"\x01\x02\x03")
    header = bytes([0x87, 0x42, 0x03, 0x00])
    assert packet[:2] == SYNC and packet[2:6] == header and packet[6] == crc8(header)
    assert packet[7:10] == b"\x01\x02\x03"
    assert packet[10:] == struct.pack("<I", crc32(packet[2:10]))
    assert len(packet) == 3 + OVERHEAD


def test_payload_limit_is_enforced_on_both_sides():
    with pytest.raises(ProtocolError, match="MAX_PAYLOAD"):
        encode_packet(MsgType.INFO, 0, bytes(MAX_PAYLOAD + 1))
    # A header claiming more than MAX_PAYLOAD is a bad header, whatever follows it.
    header = struct.pack("<BBH", MsgType.INFO, 0, MAX_PAYLOAD + 1)
    parser = PacketParser()
    assert parser.feed(SYNC + header + bytes([crc8(header)]) + bytes(2000)) == []
    assert parser.stats.bad_header == 1


@pytest.mark.parametrize("message", EVERY_MESSAGE, ids=lambda m: type(m).__name__)
def test_every_message_round_trips(message):
    packets = parse_all(message.encode(seq=200))
    assert len(packets) == 1 and packets[0].seq == 200 and packets[0].type == message.TYPE
    assert decode_message(packets[0]) == message


def test_message_sizes_follow_the_tables():
    assert len(EVERY_MESSAGE[1].pack()) == 44  # DeviceInfo
    assert len(ModelInfo("fp16", "gru", 128, 1, "L2").pack()) == 12
    assert len(COUNTERS.pack()) == Counters.size(8) == 8 + 8 * 8 + 12 + 12 + 8 * 9
    assert frame_bytes(8) == (11 + 4 + 514, 11 + 4 + 514 + Counters.size(8))


@pytest.mark.parametrize("message", [m for m in EVERY_MESSAGE if m.pack()],
                         ids=lambda m: type(m).__name__)
def test_truncated_or_padded_payloads_are_malformed(message):
    payload = message.pack()
    if not isinstance(message, ModelChunkRequest | ErrorReply):
        with pytest.raises(ProtocolError):
            decode_message(Packet(message.TYPE, 0, payload + b"\0"))
    with pytest.raises(ProtocolError):
        decode_message(Packet(message.TYPE, 0, payload[:min(1, len(payload) - 1)]))


def test_trace_layout_and_limits():
    # u8 tensor, u8 dtype, u16 count, then the values; the largest (fc1, 257 binary32) fits.
    reply = TraceReply(5, 1, np.ones(257, np.float32))
    assert reply.pack()[:4] == bytes([5, 1]) + (257).to_bytes(2, "little")
    assert len(reply.pack()) == 4 + 4 * 257 <= MAX_PAYLOAD
    assert TraceRequest(1).pack() == b"\x01" and MsgType.TRACE == 0x08 and MsgType.TRACE_REPLY == 0x88
    with pytest.raises(ProtocolError):
        TraceReply.unpack(bytes([0, 9, 0, 0]))  # unknown dtype


def test_unknown_error_codes_and_modes_are_named_not_crashed_on():
    assert ErrorReply(99, 5, "").name == "CODE_99"
    with pytest.raises(ProtocolError, match="not all are defined"):
        ModelInfo.unpack(bytes([9, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]))
    with pytest.raises(ProtocolError, match="counters version"):
        Counters.unpack(bytes([2, 1]) + bytes(Counters.size(1) - 2))


def stream_of(messages) -> tuple[bytes, list[bytes]]:
    packets = [m.encode(seq) for seq, m in enumerate(messages)]
    return b"".join(packets), packets


def delivered(parser: PacketParser, data: bytes, split: int | None = None) -> list[Packet]:
    if split is None:
        return parser.feed(data)
    out = []
    for start in range(0, len(data), split):
        out += parser.feed(data[start:start + split])
    return out


@pytest.mark.parametrize("split", [None, 1, 7, 333])
def test_garbage_between_packets_costs_nothing(split):
    rng = random.Random(1)
    good = [m.encode(i) for i, m in enumerate(EVERY_MESSAGE)]
    # Garbage rich in sync bytes and half-syncs, the worst kind for a scanner.
    junk = [bytes(rng.choice([0xA5, 0x5A, rng.randrange(256)]) for _ in range(rng.randrange(40)))
            for _ in good]
    parser = PacketParser()
    got = delivered(parser, b"".join(j + g for j, g in zip(junk, good, strict=True)) + bytes(1400), split)
    assert [decode_message(p) for p in got] == EVERY_MESSAGE


def test_dropped_byte_costs_only_its_packet():
    first, second, third = (m.encode(i) for i, m in enumerate(EVERY_MESSAGE[7:10]))
    for position in range(len(second)):
        damaged = second[:position] + second[position + 1:]
        got = PacketParser().feed(first + damaged + third + bytes(1400))
        assert [p.seq for p in got] == [0, 2], position


def test_corrupted_crc_costs_only_its_packet():
    first, second, third = (m.encode(i) for i, m in enumerate(EVERY_MESSAGE[:3]))
    damaged = bytearray(second)
    damaged[-1] ^= 0x10
    parser = PacketParser()
    assert [p.seq for p in parser.feed(first + bytes(damaged) + third)] == [0, 2]
    assert parser.stats.bad_crc == 1


def test_truncated_packet_then_a_good_one():
    truncated = FrameRequest(1, BITS).encode(1)[:300]
    good = StatsRequest().encode(2)
    # Back to back: the truncated packet waits for its length, fails its CRC, and the scan
    # finds the good packet inside the bytes it had swallowed.
    got = PacketParser().feed(truncated + good + bytes(600))
    assert [p.seq for p in got] == [2]
    # With a pause: the receiver's stale rule drops the partial packet first.
    parser = PacketParser()
    assert parser.feed(truncated, now=0.0) == []
    assert parser.feed(good, now=0.1) == []  # still inside the truncated packet's length
    parser = PacketParser()
    parser.feed(truncated, now=0.0)
    assert parser.expire(now=0.1) == [] and parser.stats.stale == 0  # not stale yet
    assert parser.expire(now=0.25) == [] and parser.stats.stale == 1 and len(parser) == 0
    assert [p.seq for p in parser.feed(good, now=0.26)] == [2]


def test_a_stale_partial_packet_cannot_hide_the_packets_behind_it():
    # A damaged header claims the maximum length; two good packets arrive behind it, then
    # silence. Giving up on the stale header rescans what follows it and finds both.
    header = struct.pack("<BBH", MsgType.FRAME_REPLY, 7, MAX_PAYLOAD)
    bogus = SYNC + header + bytes([crc8(header)]) + b"junk"
    parser = PacketParser()
    assert parser.feed(bogus + InfoRequest().encode(1) + StatsRequest().encode(2), now=0.0) == []
    assert [p.seq for p in parser.expire(now=0.3)] == [1, 2]
    assert parser.stats.stale == 1 and len(parser) == 0


def test_a_trailing_half_sync_is_kept_for_the_next_read():
    packet = InfoRequest().encode(9)
    parser = PacketParser()
    assert parser.feed(b"\x00\x01" + packet[:1]) == [] and len(parser) == 1
    assert [p.seq for p in parser.feed(packet[1:])] == [9]


def random_packet(rng: random.Random) -> bytes:
    size = rng.choice([0, 1, 4, rng.randrange(64), rng.randrange(MAX_PAYLOAD + 1)])
    msg_type = rng.choice(list(MsgType))
    return encode_packet(msg_type, rng.randrange(256), rng.randbytes(size))


def mutate(packet: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(4)
    position = rng.randrange(len(packet))
    if kind == 0:  # flip bits in one byte
        return packet[:position] + bytes([packet[position] ^ rng.randrange(1, 256)]) + packet[position + 1:]
    if kind == 1:  # drop a byte
        return packet[:position] + packet[position + 1:]
    if kind == 2:  # truncate
        return packet[:position]
    position = max(position, 1)  # bytes inserted before the sync leave the packet intact
    return packet[:position] + rng.randbytes(rng.randrange(1, 8)) + packet[position:]  # insert


def intact_packets(stream: bytes, placed: list[tuple[bytes, int, bool]]) -> list[bytes]:
    """The packets whose bytes still lie whole in `stream`, each starting before the next one.

    Usually that is just the undamaged ones, but damage can be undone by chance (bytes
    inserted before a sync, a truncated tail that the next bytes happen to restore, taking the
    next packet's first byte with it): the parser then rightly delivers what is there.
    """
    ends = [start for _, start, _ in placed[1:]] + [len(stream)]
    # A packet restored by the damaged tail before it starts inside that packet's bytes.
    earliest = [0] + [start for _, start, _ in placed[:-1]]
    found, position = [], 0
    for (packet, _, _), low, end in zip(placed, earliest, ends, strict=True):
        at = stream.find(packet, max(position, low))
        if 0 <= at < end:
            found.append(packet)
            position = at + len(packet)
    return found


def test_property_random_streams_deliver_each_intact_packet_exactly_once():
    """10,000 random streams of packets, some damaged, with garbage between and random splits.

    Property: the parser delivers exactly the undamaged packets, in order, each once. A
    damaged packet may cost its own delivery and nothing else (the C side fuzzes 1e5 more).
    """
    rng = random.Random(20261125)
    for trial in range(10_000):
        stream, placed = bytearray(), []  # (packet, where its bytes start, damaged?)
        for _ in range(rng.randrange(1, 6)):
            if rng.random() < 0.3:
                stream += rng.randbytes(rng.randrange(1, 30))
            packet = random_packet(rng)
            damaged = rng.random() < 0.3
            placed.append((packet, len(stream), damaged))
            stream += mutate(packet, rng) if damaged else packet
        stream += bytes(MAX_PAYLOAD + OVERHEAD)  # flushes any damaged header still waiting
        expected = intact_packets(bytes(stream), placed)
        parser, got, position = PacketParser(), [], 0
        while position < len(stream):
            step = rng.choice([1, 3, 64, 1000, len(stream)])
            got += parser.feed(bytes(stream[position:position + step]))
            position += step
        assert [encode_packet(p.type, p.seq, p.payload) for p in got] == expected, trial
