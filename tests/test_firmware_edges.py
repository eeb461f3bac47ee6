"""The firmware's helpers on edge values, against the Python side, with `tdn-edge`.

`make -C firmware` builds `tdn-edge` from the firmware's own objects: the activations and
requantisers (`act_q8`, `act_q16`, tanh, sigmoid, the input stage, the int8-state widening) on
a fixed list of ties, bounds, subnormals, infinities and NaN against `streamer.quant.arith`;
the packet receiver on scripted byte streams (a damaged header followed directly by a good
packet; a partial packet at exactly 199 and 200 ms), against `streamer.link.protocol`; and
where MODEL_END places a blob of exactly each memory level's size, against the host's
`MemoryLevels.placement` on the target file. The binary16 conversions (`tdn-fp16`) are
checked on the same kind of list against `arith.f16` and numpy.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from streamer.link.protocol import SYNC, MsgType, PacketParser, crc8, encode_packet
from streamer.quant import arith
from streamer.target import MEMORY_LEVELS, load_target, memory_levels

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
F32 = np.float32
U32 = np.uint32




def bits(values) -> np.ndarray:
    return np.asarray(values, F32).view(U32)


def f32_of_bits(*patterns: int) -> np.ndarray:
    """binary32 values from their bit patterns (kept as float32: a signalling NaN stays one)."""
    return np.array(patterns, U32).view(F32)


# --- the edge values ----------------------------------------------------------------------------

FLT_MAX = float(np.finfo(F32).max)
TINY = f32_of_bits(0x00000001, 0x00000002, 0x007FFFFF, 0x00800000)   # subnormals, smallest normal
# quiet, signalling with only low payload bits (narrows to a NaN, never to inf), negative
NAN = f32_of_bits(0x7FC00000, 0x7F800001, 0x7F801FFF, 0xFFC00000, 0xFF800001, 0x7FFFFFFF)


def act_cases() -> tuple[np.ndarray, np.ndarray]:
    """(x, inv) pairs for q8/q16 (and x for tanh/sigmoid): every int8 and many int16 ties, the
    clamp bounds on both sides, products that overflow, subnormals, zeros, infinities, NaN."""
    ties8 = np.arange(-130, 130) + 0.5
    ties16 = np.concatenate([np.arange(-40, 40) + 0.5, 32767 - np.arange(0, 40) - 0.5,
                             -32767 + np.arange(0, 40) + 0.5, [1000.5, 1001.5, 4095.5, 4096.5]])
    bounds = [126.5, 127, 127.25, 127.49998, 127.5, 128, 128.5, 200, 32766.5, 32767, 32767.5, 32768,
              32768.5, 40000, 1e9, 1e30, FLT_MAX, np.inf]
    bounds = bounds + [-b for b in bounds]
    near = [float(np.nextafter(F32(v), F32(d))) for v in (0.5, 1.5, 126.5, 127.5, 32766.5, 32767.5)
            for d in (0, 1e9)]
    near = near + [-v for v in near]
    plain = [0.0, -0.0, 0.25, 0.75, 1.0, 3.0, 8.999999, 9.0, 9.000001, 10.0, 20.0, 88.0, 89.0]
    plain = plain + [-v for v in plain]
    xs = np.concatenate([np.array([*ties8, *ties16, *bounds, *near, *plain], F32), TINY, -TINY, NAN])
    pairs = [(x, 1.0) for x in xs]
    # the scales the network uses: S_H's inverse 127, calibration-like inverses, and products
    # that reach a tie only through the multiplication (0.75 * 2 = 1.5), or overflow (inf)
    for inv in (127.0, 2.0, 0.5, 1e-3, 3.0e38, float(TINY[0])):
        pairs += [(x, inv) for x in (0.75, 1.25, -0.75, 63.25, 0.5 / 127, 1.5 / 127, 1.0, -1.0, 1e-5, 1e9,
                                     FLT_MAX, -FLT_MAX, np.inf, float(TINY[2]))]
    x = np.concatenate([xs, np.array([x for x, _ in pairs[len(xs):]], F32)])
    inv = np.array([inv for _, inv in pairs], F32)
    return x, inv


def run_act(tools: Path, tmp_path: Path, x: np.ndarray, inv: np.ndarray) -> np.ndarray:
    np.stack([x, inv], axis=1).astype("<f4").tofile(tmp_path / "act.in")
    subprocess.run([str(tools / "tdn-edge"), "act", str(tmp_path / "act.in"), str(tmp_path / "act.out")],
                   check=True, timeout=60)
    record = np.dtype([("q8", "i1"), ("pad", "u1"), ("q16", "<i2"), ("tanh", "<f4"), ("sigmoid", "<f4")])
    out = np.fromfile(tmp_path / "act.out", record)
    assert len(out) == len(x)
    return out


def test_requantisers_match_arith_on_ties_bounds_and_specials(tools, tmp_path):
    x, inv = act_cases()
    out = run_act(tools, tmp_path, x, inv)
    with np.errstate(over="ignore", invalid="ignore"):
        nan = np.isnan(x * inv)
    # NaN is not produced by a valid model; the firmware documents 0 for it (act.h). numpy's
    # cast of NaN is undefined, so arith is compared on the rest only.
    assert not out["q8"][nan].any() and not out["q16"][nan].any()
    with np.errstate(invalid="ignore"):
        q8 = arith.quantize_int8(x[~nan], inv[~nan])
        q16 = arith.quantize_int16(x[~nan], inv[~nan])
    wrong8 = np.flatnonzero(out["q8"][~nan] != q8)
    wrong16 = np.flatnonzero(out["q16"][~nan] != q16)
    assert wrong8.size == 0, [(x[~nan][i], inv[~nan][i], out["q8"][~nan][i], q8[i]) for i in wrong8[:5]]
    assert wrong16.size == 0, [(x[~nan][i], inv[~nan][i], out["q16"][~nan][i], q16[i]) for i in wrong16[:5]]
    # the contract's own words, independently of arith: ties to even, never -128 / -32768
    assert out["q8"].min() == -127 and out["q16"].min() == -32767
    with np.errstate(invalid="ignore"):
        ties = (inv == 1) & (np.abs(x) < 127) & (np.remainder(x, 1) == 0.5)
    assert np.all(out["q8"][ties] % 2 == 0) and ties.sum() > 200


def test_tanh_and_sigmoid_match_arith_bit_for_bit(tools, tmp_path):
    x, _ = act_cases()
    every_half = np.arange(65536, dtype=np.uint16).view(np.float16).astype(F32)
    sweep = np.linspace(-12, 12, 48_001, dtype=F32)
    xs = np.concatenate([x, every_half, sweep])
    out = run_act(tools, tmp_path, xs, np.ones_like(xs))
    with np.errstate(over="ignore", invalid="ignore"):
        tanh, sigmoid = arith.tanh(xs), arith.sigmoid(xs)
    nan = np.isnan(xs)
    assert np.all(np.isnan(out["tanh"][nan])) and np.all(np.isnan(out["sigmoid"][nan]))
    for name, golden in (("tanh", tanh), ("sigmoid", sigmoid)):
        firmware, golden, at = out[name][~nan], golden[~nan], xs[~nan]
        wrong = np.flatnonzero(bits(firmware) != bits(golden))
        assert wrong.size == 0, (name, [(at[i], firmware[i], golden[i]) for i in wrong[:5]])
    # tanh(-0) = +0, tanh(+-inf) = +-1, sigmoid(-inf) = 0: the signs and clamps
    special = run_act(tools, tmp_path, np.array([-0.0, np.inf, -np.inf], F32), np.ones(3, F32))
    assert bits(special["tanh"]).tolist() == bits([0.0, 1.0, -1.0]).tolist()
    assert special["sigmoid"].tolist() == [0.5, 1.0, 0.0]


def test_input_stage_matches_arith_for_every_binary16(tools, tmp_path):
    subprocess.run([str(tools / "tdn-edge"), "input", str(tmp_path / "in.f32")], check=True, timeout=60)
    got = np.fromfile(tmp_path / "in.f32", "<f4")
    halves = np.arange(65536, dtype=np.uint16).view(np.float16).astype(F32)
    with np.errstate(invalid="ignore"):
        expected = arith.f16(arith.sanitize_input(halves))
    assert np.array_equal(bits(got), bits(expected))   # NaN -> +0, +-inf -> +-65504, -0 kept


def test_state_widening_matches_arith(tools, tmp_path):
    subprocess.run([str(tools / "tdn-edge"), "state", str(tmp_path / "state.f32")], check=True, timeout=60)
    got = np.fromfile(tmp_path / "state.f32", "<f4")
    expected = arith.f16(np.arange(-128, 128).astype(F32) * arith.STATE_SCALE)
    assert np.array_equal(bits(got), bits(expected))


def test_fp16_conversions_on_ties_bounds_and_specials(tools, tmp_path):
    """fp16_from_f32 (numpy's astype) and fp16_sat (the contract's f16) on a fixed list."""
    one_ulp = 2.0 ** -10
    ties = [1 + one_ulp / 2, 1 + 3 * one_ulp / 2, 2048 + 1, 2048 + 3, -(1 + one_ulp / 2), 65504 - 16,
            65504 + 8, 65504 + 16, 65519.996, 65520, 65536, 2.0 ** -14 - 2.0 ** -25, 2.0 ** -14 - 2.0 ** -26]
    subnormal = [2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -25, 5 * 2.0 ** -25, 2.0 ** -26, 1.5 * 2.0 ** -24,
                 2.0 ** -25 + 2.0 ** -40, 2.0 ** -25 - 2.0 ** -40, 1023 * 2.0 ** -24, 1023.5 * 2.0 ** -24]
    values = np.array(ties + subnormal + [0.0, 1e9, FLT_MAX, np.inf], F32)
    x = np.concatenate([values, -values, TINY, -TINY, NAN])
    x.tofile(tmp_path / "x.f32")
    subprocess.run([str(tools / "tdn-fp16"), "narrow", str(tmp_path / "x.f32"), str(tmp_path / "y")],
                   check=True, timeout=60)
    got = np.fromfile(tmp_path / "y", "<u2").reshape(-1, 2)
    nan = np.isnan(x)
    with np.errstate(over="ignore", invalid="ignore"):
        plain = x.astype(np.float16).view(np.uint16)
        saturated = arith.f16(x).astype(np.float16).view(np.uint16)
    assert np.array_equal(got[~nan, 0], plain[~nan]), "fp16_from_f32 differs from numpy's astype"
    assert np.array_equal(got[~nan, 1], saturated[~nan]), "fp16_sat differs from the contract's f16"
    assert np.all((got[nan] & 0x7C00) == 0x7C00) and np.all(got[nan] & 0x03FF), "NaN stays NaN"
    assert np.array_equal(got[nan, 0] & 0x8000, (x[nan].view(U32) >> 16 & 0x8000).astype(np.uint16))


# --- the packet receiver ------------------------------------------------------------------------

def run_rx(tools: Path, script: list[str]) -> list[str]:
    result = subprocess.run([str(tools / "tdn-edge"), "rx"], input="\n".join(script) + "\n",
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def damaged_length(packet: bytes, length: int) -> bytes:
    damaged = bytearray(packet)
    damaged[4], damaged[5] = length & 0xFF, length >> 8
    assert crc8(bytes(damaged[2:6])) != damaged[6]
    return bytes(damaged)


def test_c_receiver_rejects_a_damaged_header_at_once(tools):
    # A damaged length byte (claiming 1000 bytes), then a good packet directly behind it: the
    # header check drops the damaged header at once and the good packet comes out of the same
    # feed; without it the receiver would wait for the 1000 claimed bytes or the stale rule.
    bad = damaged_length(encode_packet(MsgType.INFO, 1, bytes(10)), 1000)
    good = encode_packet(MsgType.STATS, 2)
    lines = run_rx(tools, [f"feed 5 {(bad + good).hex()}", "stats"])
    assert lines == ["packet 7 2 0", "stats 1 0 0 0"]
    # the same when the good packet arrives in a later read
    lines = run_rx(tools, [f"feed 5 {bad.hex()}", "stats", f"feed 6 {good.hex()}", "stats"])
    assert lines == ["stats 1 0 0 0", "packet 7 2 0", "stats 1 0 0 0"]
    # and the Python parser agrees
    parser = PacketParser()
    assert [p.seq for p in parser.feed(bad + good)] == [2] and parser.stats.bad_header == 1


def test_c_receiver_gives_up_a_partial_packet_at_exactly_200_ms(tools):
    truncated = encode_packet(MsgType.FRAME, 9, bytes(514))[:100]
    good = encode_packet(MsgType.INFO, 3)
    script = [f"feed 1000 {(truncated + good).hex()}", "poll 1199", "stats", "poll 1200", "stats"]
    lines = run_rx(tools, script)
    held = len(truncated) + len(good)
    assert lines == [f"stats 0 0 0 {held}", "packet 1 3 0", "stats 0 0 1 0"]
    # the millisecond clock wraps (u32): the same rule across the wrap
    start = 2**32 - 100
    lines = run_rx(tools, [f"feed {start} {truncated.hex()}", f"poll {(start + 199) % 2**32}", "stats",
                           f"poll {(start + 200) % 2**32}", "stats"])
    assert lines == [f"stats 0 0 0 {len(truncated)}", "stats 0 0 1 0"]
    # Python: the same stream, the same rule in seconds
    parser = PacketParser()
    assert parser.feed(truncated + good, now=1.0) == []
    assert parser.expire(now=1.0 + float(np.nextafter(0.2, 0))) == [] and parser.stats.stale == 0
    parser = PacketParser()
    parser.feed(truncated + good, now=0.0)
    assert [p.seq for p in parser.expire(now=0.2)] == [3] and parser.stats.stale == 1


def test_c_receiver_takes_the_largest_payload_and_refuses_one_more_byte(tools):
    largest = encode_packet(MsgType.MODEL_CHUNK, 4, bytes(range(256)) * 5)
    header = bytes([MsgType.MODEL_CHUNK, 5, 0x01, 0x05])   # 1281 bytes claimed
    too_long = SYNC + header + bytes([crc8(header)])
    lines = run_rx(tools, [f"feed 0 {largest.hex()}", f"feed 1 {(too_long + largest).hex()}", "stats"])
    assert lines == ["packet 3 4 1280", "packet 3 4 1280", "stats 1 0 0 0"]


def test_c_receiver_matches_the_python_parser_on_damaged_streams(tools):
    """Random streams of request packets, some with a damaged byte, some truncated (a header
    then claims the packets behind it: only the one-byte rescan after the bad CRC-32 finds
    them), back to back, no pauses: the C receiver and the Python parser deliver the same
    packets and count the same damage."""
    rng = np.random.default_rng(11)
    script, stream = [], b""
    for i in range(400):
        payload = rng.integers(0, 256, rng.integers(0, 60)).astype(np.uint8).tobytes()
        packet = bytearray(encode_packet(int(rng.integers(1, 9)), i % 256, payload))
        damage = rng.random()
        if damage < 0.3:
            packet[int(rng.integers(2, len(packet)))] ^= int(rng.integers(1, 256))
        elif damage < 0.45:
            packet = packet[:int(rng.integers(7, len(packet)))]
        stream += bytes(packet)
    stream += bytes(1400)  # flushes a damaged header still waiting for its claimed length
    for start in range(0, len(stream), 977):
        script.append(f"feed {start // 977} {stream[start:start + 977].hex()}")
    script.append("stats")
    lines = run_rx(tools, script)
    parser = PacketParser()
    python = [f"packet {p.type} {p.seq} {len(p.payload)}" for p in parser.feed(stream)]
    assert lines[:-1] == python and len(python) > 200
    s = parser.stats
    assert lines[-1] == f"stats {s.bad_header} {s.bad_crc} {s.stale} 0"


# --- where MODEL_END places a blob ----------------------------------------------------------------

def test_firmware_takes_blobs_where_the_host_does_at_every_boundary(tools):
    """MODEL_END's capacity checks: the planner ("auto") takes any blob the L3 staging region
    holds; a forced level (`--placement`) a blob of at most its size, as `MemoryLevels.placement`
    and the cost model say."""
    memory = memory_levels(load_target())
    l2, mram, l3 = memory.l2_weight_bytes, memory.mram_bytes, memory.l3_bytes
    for code, cap in ((0, l3), (1, l2), (2, mram), (3, l3)):
        sizes = [36, cap - 1, cap, cap + 1]
        result = subprocess.run([str(tools / "tdn-edge"), "place", str(code), *map(str, sizes)],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        capacity, *rows = result.stdout.splitlines()
        assert capacity == f"capacity {l2} {mram} {l3}", "the simulated memories are the target file's"
        firmware = {int(size): bool(int(fits)) for size, fits in (row.split() for row in rows)}
        level = MEMORY_LEVELS[code - 1] if code else None
        host = {size: (memory.placement(size) is not None if level is None
                       else MEMORY_LEVELS.index(memory.placement(size) or "L3") <= code - 1 and size <= cap)
                for size in sizes}
        assert firmware == host == {36: True, cap - 1: True, cap: True, cap + 1: False}
