"""The host side exactly at its boundaries, where an off-by-one or a dropped check would hide.

Each test here was written against a bug that once passed the whole suite (see `bench/mutants.py`
and its list, which plants them again): the header CRC-8 that the CRC-32 and the rescan made
look redundant, the stale rule at exactly RX_STALE_S, a frame of exactly the 6.25 ms deadline
in every place host misses are counted, a model of exactly the L2 weight budget, the
calibration percentile over several files, and the int16 rounding of exact .5 ties.
"""

from __future__ import annotations

import io
import json
import random
import struct
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from streamer.dashboard import Dashboard
from streamer.engine import DEADLINE_S, HOP_SAMPLES, N_BINS
from streamer.feeds import StreamFeed
from streamer.link.messages import InfoRequest, StatsRequest
from streamer.link.protocol import (
    MAX_PAYLOAD,
    OVERHEAD,
    RX_STALE_S,
    SYNC,
    MsgType,
    PacketParser,
    crc8,
    encode_packet,
)
from streamer.metrics import deadline_missed, timing_stats
from streamer.pipeline import FrameEvent
from streamer.quant import arith
from streamer.quant.calibrate import activation_ranges
from streamer.report import FrameLog
from streamer.target import MEMORY_LEVELS, load_target, memory_levels

F32 = np.float32
JUST_OVER = float(np.nextafter(DEADLINE_S, 1.0))
JUST_UNDER = float(np.nextafter(DEADLINE_S, 0.0))


# --- the link parser: the header check and the stale rule -------------------------------------

def claim_length(packet: bytes, length: int) -> bytes:
    """`packet` with its length field changed to `length` and its CRC-8 left as it was."""
    damaged = bytearray(packet)
    damaged[4:6] = struct.pack("<H", length)
    assert crc8(bytes(damaged[2:6])) != damaged[6], "the damage must break the header check"
    return bytes(damaged)


def test_a_damaged_length_byte_costs_only_its_own_packet_at_once():
    # The length claims 1000 bytes that never come. The CRC-8 rejects the header at once, so
    # the good packet right behind it is delivered with it; without the check the parser would
    # wait for the claimed payload (until 1000 more bytes or the stale rule).
    damaged = claim_length(encode_packet(MsgType.INFO, 1, bytes(10)), 1000)
    parser = PacketParser()
    got = parser.feed(damaged + StatsRequest().encode(2), now=0.0)
    assert [(p.type, p.seq) for p in got] == [(MsgType.STATS, 2)]
    assert (parser.stats.bad_header, parser.stats.bad_crc, parser.stats.stale) == (1, 0, 0)
    assert len(parser) == 0


def test_any_damaged_header_byte_is_caught_by_the_header_check():
    """Property: one damaged byte of type, seq, length or CRC-8, then a good packet straight
    after (no silence, no more bytes): the good packet comes out of the same feed, and the
    damage counts as one bad header, never as a bad CRC-32. CRC-8 (poly 0x07) detects every
    single-byte error, so no damage can slip through it."""
    rng = random.Random(2026)
    for trial in range(2000):
        payload = bytes(rng.choice([b for b in range(256) if b != 0xA5]) for _ in range(rng.randrange(40)))
        packet = bytearray(encode_packet(rng.choice(list(MsgType)), rng.randrange(256), payload))
        position = rng.randrange(2, 7)
        packet[position] ^= rng.randrange(1, 256)
        if 0xA5 in packet[1:]:
            continue  # a sync inside the damaged packet would make another (legitimate) header
        good = encode_packet(MsgType.FRAME, 77, bytes(range(rng.randrange(64))))
        parser = PacketParser()
        got = parser.feed(bytes(packet) + good)
        assert [(p.type, p.seq) for p in got] == [(MsgType.FRAME, 77)], (trial, position)
        assert (parser.stats.bad_header, parser.stats.bad_crc) == (1, 0), (trial, position)


def test_a_partial_packet_is_stale_at_exactly_rx_stale_s():
    # The same rule as the firmware's `(now - last) < TDN_RX_STALE_MS` in whole milliseconds:
    # held just before the stale period ends, given up exactly when it does.
    header = struct.pack("<BBH", MsgType.FRAME, 7, MAX_PAYLOAD)
    bogus = SYNC + header + bytes([crc8(header)]) + b"junk"
    parser = PacketParser()
    assert parser.feed(bogus + InfoRequest().encode(1), now=0.0) == []
    assert parser.expire(now=float(np.nextafter(RX_STALE_S, 0.0))) == []
    assert parser.stats.stale == 0 and len(parser) > 0
    assert [p.seq for p in parser.expire(now=RX_STALE_S)] == [1]
    assert parser.stats.stale == 1 and len(parser) == 0


def test_the_largest_payload_is_delivered_and_one_more_byte_is_a_bad_header():
    largest = encode_packet(MsgType.MODEL_CHUNK, 3, bytes(range(256)) * 5)
    assert len(largest) == MAX_PAYLOAD + OVERHEAD
    parser = PacketParser()
    assert [p.seq for p in parser.feed(largest)] == [3] and parser.stats.bad_header == 0
    header = struct.pack("<BBH", MsgType.MODEL_CHUNK, 4, MAX_PAYLOAD + 1)
    too_long = SYNC + header + bytes([crc8(header)])
    assert parser.feed(too_long + largest) != [] and parser.stats.bad_header == 1


# --- host deadline misses: a frame of exactly 6.25 ms is in time, everywhere -------------------

def test_deadline_missed_is_strictly_over_the_hop():
    assert DEADLINE_S * 16_000 == HOP_SAMPLES
    assert deadline_missed(DEADLINE_S) is False and deadline_missed(JUST_OVER) is True
    assert deadline_missed(JUST_UNDER) is False and deadline_missed(0.0) is False
    np.testing.assert_array_equal(deadline_missed([JUST_UNDER, DEADLINE_S, JUST_OVER, 1.0]),
                                  [False, False, True, True])
    stats = timing_stats([DEADLINE_S, DEADLINE_S, JUST_OVER, JUST_UNDER])
    assert stats.misses == 1 and stats.deadline_ms == DEADLINE_S * 1e3


def event(index: int, host_s: float) -> FrameEvent:
    return FrameEvent(index, host_s, np.ones(N_BINS, F32))


def test_the_frame_log_marks_only_frames_over_the_deadline(tmp_path: Path):
    log = FrameLog(tmp_path / "frames.jsonl")
    for i, host_s in enumerate([DEADLINE_S, JUST_OVER, JUST_UNDER]):
        log(event(i, host_s))
    log.close()
    lines = [json.loads(line) for line in (tmp_path / "frames.jsonl").read_text().splitlines()]
    assert [line["deadline_miss"] for line in lines] == [False, True, False]


def test_the_dashboard_counts_only_frames_over_the_deadline():
    dashboard = Dashboard(stream=io.StringIO(), interactive=False)
    for i, host_s in enumerate([DEADLINE_S, JUST_UNDER, DEADLINE_S]):
        dashboard.on_frame(event(i, host_s))
    assert dashboard.state()["host_deadline_misses"] == 0
    dashboard.on_frame(event(3, JUST_OVER))
    dashboard.add_host_times(np.array([DEADLINE_S, JUST_OVER, DEADLINE_S]))
    assert dashboard.state()["host_deadline_misses"] == 2


def test_the_replay_feed_marks_only_frames_over_the_deadline():
    dashboard = Dashboard(stream=io.StringIO(), interactive=False)
    feed = StreamFeed(dashboard, clock=lambda: 0.0)
    for i in range(4):
        feed(event(i, DEADLINE_S))
    assert sum(feed.timeline.counts) == 0
    feed(event(4, JUST_OVER))
    assert sum(feed.timeline.counts) == 1
    result = SimpleNamespace(host_s=[DEADLINE_S, JUST_OVER, DEADLINE_S, JUST_OVER], samples=400,
                             target=None, input=Path("elsewhere.wav"), enhanced_quality=None)
    feed.file_done_elsewhere(result)
    assert sum(feed.timeline.counts) == 3
    assert dashboard.state()["host_deadline_misses"] == 3


class _ExactClock:
    """The live worker's clock: blocks listed in `over` take just over the hop, every other
    block exactly the hop (start 0.0, end DEADLINE_S: the difference is exact). The callback's
    reads (the audio thread's, here the test's) see 0.0."""

    def __init__(self, over: set[int]) -> None:
        self.over, self.calls = over, 0

    def __call__(self) -> float:
        if threading.current_thread().name != "streamer-live-worker":
            return 0.0
        block, end = divmod(self.calls, 2)
        self.calls += 1
        if not end:
            return 0.0
        return JUST_OVER if block in self.over else DEADLINE_S


def test_live_counts_only_blocks_over_the_deadline():
    from streamer.backends.base import Backend
    from streamer.live import LiveSession

    class Ones(Backend):
        name = "ones"

        def step(self, magnitudes: np.ndarray) -> np.ndarray:
            return np.ones(N_BINS, F32)

        def reset(self) -> None:
            pass

    session = LiveSession(Ones(), slack_blocks=1)
    processor = session.processor
    clock = _ExactClock(over={3, 7})
    processor.clock = clock
    processor.start()
    try:
        rng = np.random.default_rng(0)
        for k in range(12):
            block = (0.1 * rng.standard_normal((HOP_SAMPLES, 1))).astype(F32)
            t = k * DEADLINE_S
            info = SimpleNamespace(inputBufferAdcTime=t, outputBufferDacTime=t + 0.01, currentTime=t)
            status = SimpleNamespace(input_overflow=False, input_underflow=False, output_underflow=False,
                                     output_overflow=False)
            processor.callback(block, np.zeros((HOP_SAMPLES, 1), F32), HOP_SAMPLES, info, status)
            deadline = time.monotonic() + 10
            while processor.processed < k + 1:
                assert time.monotonic() < deadline, "the live worker is stuck"
                time.sleep(0.001)
    finally:
        processor.stop()
    session.poll(final=True)
    assert clock.calls == 24
    assert session.counters.host_deadline_misses == 2


# --- where the weights go: a model of exactly a level's budget fits it --------------------------

def test_weights_of_exactly_a_levels_size_go_in_that_level():
    memory = memory_levels(load_target())
    l2, mram, l3 = memory.l2_weight_bytes, memory.mram_bytes, memory.l3_bytes
    expected = {1: "L2", l2 - 1: "L2", l2: "L2", l2 + 1: "MRAM", mram: "MRAM", mram + 1: "L3",
                l3: "L3", l3 + 1: None}
    assert {size: memory.placement(size) for size in expected} == expected
    assert set(MEMORY_LEVELS) == {level for level in expected.values() if level}


# --- calibration over several files --------------------------------------------------------------

@pytest.mark.parametrize("method", ["percentile", "minmax", "mse"])
def test_ranges_are_taken_over_the_pooled_values_of_every_file(method: str):
    """Splitting the calibration audio into files must not change the ranges: a percentile of
    several files is the percentile of all their values, not the largest per-file one."""
    rng = np.random.default_rng(5)
    quiet = {"fc0.input": rng.uniform(0, 1, 5000), "rnn1.cell": rng.normal(0, 0.3, 5000)}
    loud = {"fc0.input": rng.uniform(0, 40, 60), "rnn1.cell": rng.normal(0, 3.0, 60)}
    pooled = {name: np.concatenate([quiet[name], loud[name]]) for name in quiet}
    ranges = activation_ranges([quiet, loud], method, percentile=99.0)
    assert ranges == activation_ranges([pooled], method, percentile=99.0)
    if method == "percentile":
        for name in quiet:
            assert ranges[name] == pytest.approx(np.percentile(np.abs(pooled[name]), 99.0), rel=1e-12)
            assert ranges[name] < np.percentile(np.abs(loud[name]), 99.0)


# --- int16 requantisation (the LSTM cell state) on exact ties -----------------------------------

def test_q16_rounds_exact_ties_to_even_and_saturates():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 1000.5, 1001.5, 32765.5, 32766.5, -32766.5, 32767.5,
                  -32767.5, 40000, -40000, np.inf, -np.inf], F32)
    expected = [0, 2, 2, 0, -2, -2, 1000, 1002, 32766, 32766, -32766, 32767, -32767, 32767, -32767,
                32767, -32767]
    assert arith.quantize_int16(x, F32(1.0)).tolist() == expected
    # ties that arise from the scale: 0.75 * 2 = 1.5, 1.25 * 2 = 2.5 (exact in binary32)
    assert arith.quantize_int16(np.array([0.75, 1.25, -0.75], F32), F32(2.0)).tolist() == [2, 2, -2]
    q8 = arith.quantize_int8(np.array([0.75, 1.25, -0.75, 63.25], F32), F32(2.0))
    assert q8.tolist() == [2, 2, -2, 126]
