"""The firmware's host build against the numpy golden model, the link protocol and the fuzz target.

`make -C firmware` builds tdn-run (a blob and frames in, masks out: bit-exactness without a
link), tdn-sim (the device on a pty or TCP socket) and tdn-fp16 (the software binary16
conversions). Masks must equal `QuantizedNetwork.step` bit for bit (docs/arithmetic-contract.md).
"""

from __future__ import annotations

import os
import select
import socket
import struct
import subprocess
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from helpers import random_params, require_tool

from streamer.link.blob import HEADER, blob_layout, encode_blob
from streamer.model.params import N_BINS
from streamer.quant import arith
from streamer.quant.network import QuantizedNetwork, layer_precision, quantize, required_ranges

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE = ROOT / "firmware"
HOST = FIRMWARE / "build" / "host"
SHARED = ROOT.parent / "shared"
L2_WEIGHTS, MRAM, L3 = 1200 * 1024, 2 * 1024 * 1024, 8 * 1024 * 1024
WORKERS = 8
COUNTERS_BYTES = 8 + 8 * WORKERS + 12 + 12 + 8 * (WORKERS + 1)


@pytest.fixture(scope="session")
def firmware() -> Path:
    require_tool("make")
    require_tool("gcc")
    result = subprocess.run(["make", "-C", str(FIRMWARE), "-j2"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return HOST


# --- helpers --------------------------------------------------------------------------------

def edge_frames(n: int, seed: int) -> np.ndarray:
    """Binary16 magnitudes: ordinary spectra plus zeros, huge values, NaN, inf, subnormals."""
    rng = np.random.default_rng(seed)
    rows = max(n, 9)
    level = rng.choice([0.01, 0.3, 3.0, 30.0, 300.0], size=(rows, 1))
    frames = np.abs(rng.standard_normal((rows, N_BINS))) * level
    frames[0] = 0.0
    frames[1] = 1e9                          # saturates to 65504
    frames[2] = np.nan                       # becomes 0
    frames[3] = 1e-7                         # binary16 subnormals
    frames[4, ::2] = np.inf
    frames[5] = 6e-8                         # the smallest binary16 subnormal
    frames[6] = -2.5                         # negative magnitudes are still defined
    frames[7, ::3] = np.nan
    frames[8] = 65504.0
    with np.errstate(over="ignore", invalid="ignore"):
        return frames[:n].astype(np.float16)


def _preactivations(net: QuantizedNetwork, layer: str, x: np.ndarray, h: np.ndarray) -> list[np.ndarray]:
    """A recurrent layer's binary32 pre-activations, as the contract writes them (LSTM: z; GRU: gi, gh)."""
    lstm = net.cell == "lstm"
    if net.precision[layer] == "int8":
        w_ih, w_hh, m_ih, m_hh, b_ih, b_hh = net.rnn[layer]
        ax, ah = arith.dot_int8(w_ih, x) * m_ih, arith.dot_int8(w_hh, h) * m_hh
        return [(ax + ah) + (b_ih + b_hh)] if lstm else [ax + b_ih, ah + b_hh]
    # fp16: the contract's plain sequential sum (arith.dot_f32_sequential) over the stored
    # tensors, not the network's arranged SequentialDot: the trace checks that arrangement too.
    w_ih, w_hh, b_ih, b_hh = (net.model.tensors[f"{layer}.{name}"].astype(np.float32)
                              for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    if lstm:
        return [arith.dot_f32_sequential(np.hstack([w_ih, w_hh]), np.concatenate([x, h]),
                                         np.stack([b_ih, b_hh], axis=1))]
    return [arith.dot_f32_sequential(w_ih, x, b_ih), arith.dot_f32_sequential(w_hh, h, b_hh)]


def golden_trace(model, frames: np.ndarray) -> tuple[np.ndarray, list[list[np.ndarray]]]:
    """Masks from `QuantizedNetwork.step`, and per frame the intermediates tdn-run traces.

    The intermediates are recomputed from the golden model's own layer methods; each frame's
    state is checked against what `step` returns, so the trace follows the golden model.
    """
    f32 = np.float32
    net = QuantizedNetwork(model)
    state = net.initial_state()
    per_layer = len(state) // 2
    masks, records = [], []
    for frame in frames:
        x = arith.f16(arith.sanitize_input(frame.astype(f32)))
        y0 = np.maximum(net._dense("fc0", net._to_layer_input("fc0", x)), f32(0))
        if net.precision["fc0"] == "fp16":
            y0 = arith.f16(y0)
        layer_in = net._to_layer_input("rnn1", y0) if net.precision["rnn1"] == "int8" else arith.f16(y0)
        record, new_state = [y0], []
        for index, layer in enumerate(("rnn1", "rnn2")):
            own = state[index * per_layer:(index + 1) * per_layer]
            record += _preactivations(net, layer, layer_in, own[0])
            layer_in, updated = net._recurrent(layer, net._rnn_input(layer, layer_in), own)
            record += updated
            new_state += updated
        if net.precision["fc1"] == "int8":
            fc1_in = layer_in
        elif net.precision["rnn2"] == "int8":
            fc1_in = arith.f16(layer_in.astype(f32) * arith.STATE_SCALE)
        else:
            fc1_in = layer_in
        y1 = np.maximum(net._dense("fc1", fc1_in), f32(0))
        record.append(arith.f16(y1) if net.precision["fc2"] == "fp16" else y1)  # what fc2 consumes
        mask, state = net.step(frame.astype(f32), state)
        assert all(np.array_equal(a, b) for a, b in zip(state, new_state, strict=True))
        masks.append(mask.astype(np.float16))
        records.append(record)
    return np.array(masks), records


def golden_masks(model, frames: np.ndarray) -> np.ndarray:
    return golden_trace(model, frames)[0]


def run_firmware(host: Path, model, frames: np.ndarray, tmp_path: Path
                 ) -> tuple[np.ndarray, list[str], bytes]:
    names = ("m.tdnb", "in.f16", "out.f16", "cnt.txt", "trace.bin")
    blob, data, out, counters, trace = (tmp_path / n for n in names)
    blob.write_bytes(encode_blob(model))
    frames.astype("<f2").tofile(data)
    command = [host / "tdn-run", blob, data, out, counters, trace]
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    masks = np.fromfile(out, "<f2").reshape(-1, N_BINS)
    return masks, counters.read_text().splitlines(), trace.read_bytes()


TRACE_NAMES = {"lstm": ["fc0", "rnn1.z", "rnn1.h", "rnn1.c", "rnn2.z", "rnn2.h", "rnn2.c", "fc1"],
               "gru": ["fc0", "rnn1.gi", "rnn1.gh", "rnn1.h", "rnn2.gi", "rnn2.gh", "rnn2.h", "fc1"]}


def trace_differences(model, records: list[list[np.ndarray]], trace: bytes) -> list[str]:
    """Names of the intermediates (frame:tensor) whose bits differ between golden and firmware."""
    differences, offset = [], 0
    for frame, record in enumerate(records):
        for name, golden in zip(TRACE_NAMES[model.cell], record, strict=True):
            golden = np.ascontiguousarray(golden)
            data = trace[offset:offset + golden.nbytes]
            offset += golden.nbytes
            if data != golden.astype(golden.dtype.newbyteorder("<")).tobytes():
                differences.append(f"{frame}:{name}")
    assert offset == len(trace), "trace length"
    return differences


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    bits = [np.asarray(x, np.float16).view(np.uint16) for x in (a, b)]
    return np.array_equal(*bits)


def differing_frames(a: np.ndarray, b: np.ndarray) -> int:
    assert a.shape == b.shape
    return int(np.sum(np.any(a.view(np.uint16) != b.view(np.uint16), axis=1)))


def make_model(cell: str, hidden: int, mode: str, seed: int):
    ranges = {"fc0.input": 40.0, "rnn1.input": 2.5, "rnn1.cell": 3.0, "rnn2.cell": 3.0, "fc2.input": 1.5}
    params = random_params(cell, hidden, seed=seed)
    return quantize(params, mode, {k: ranges[k] for k in required_ranges(mode, cell)})


def expected_macs(model) -> dict[str, int]:
    h, g = model.hidden, {"lstm": 4, "gru": 3}[model.cell] * model.hidden
    per_layer = {"fc0": h * N_BINS, "rnn1": g * 2 * h, "rnn2": g * 2 * h, "fc1": N_BINS * h,
                 "fc2": N_BINS * N_BINS}
    macs = {"int8": 0, "fp16": 0}
    for layer, count in per_layer.items():
        macs[layer_precision(model.mode, layer)] += count
    return macs


def expected_plan(model) -> tuple[int, tuple[int, int, int]]:
    """MODEL_END's level code (3: split) and the bytes per level of the placement planner."""
    from streamer.costmodel import firmware_work
    from streamer.target import read_target

    work = firmware_work(model.mode, model.cell, model.hidden, read_target())
    by_level = work.counters().l1_bytes_from
    used = [lv for lv, n in enumerate(by_level) if n]
    return (used[0] if len(used) == 1 else 3), by_level


# --- binary16 and the blob ------------------------------------------------------------------

def test_fp16_conversion_matches_numpy(firmware, tmp_path):
    rng = np.random.default_rng(7)
    every_half = np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float32)
    bits = every_half[np.isfinite(every_half)].view(np.uint32).astype(np.int64)
    # each binary16 value, the ties between neighbours (+-0x1000 in binary32 bits) and around
    near = [(bits + d) & 0xFFFFFFFF for d in (-4097, -4096, -1, 0, 1, 4095, 4096, 4097, 8192)]
    special = [0x7F800000, 0xFF800000, 0x7FC00000, 0x7F800001, 0xFFFFFFFF, 0x477FF000, 0x477FEFFF,
               0x33000000, 0x33000001, 0x32FFFFFF, 0x387FE000, 0x38800000, 0x80000000]
    values = np.concatenate(near + [rng.integers(0, 2**32, 1_000_000), np.array(special)])
    x = values.astype(np.uint32).view(np.float32)
    x.tofile(tmp_path / "x.f32")
    subprocess.run([str(firmware / "tdn-fp16"), "narrow", str(tmp_path / "x.f32"), str(tmp_path / "y")],
                   check=True)
    got = np.fromfile(tmp_path / "y", np.uint16).reshape(-1, 2)
    with np.errstate(all="ignore"):
        plain = x.astype(np.float16).view(np.uint16)
        saturated = np.clip(x, -65504, 65504).astype(np.float16).view(np.uint16)
    assert np.array_equal(got[:, 0], plain), "fp16_from_f32 differs from numpy's astype"
    assert np.array_equal(got[:, 1], saturated), "fp16_sat differs from the contract's f16()"
    assert not np.any((got[:, 1] & 0x7C00) == 0x7C00) or np.all(np.isnan(x[(got[:, 1] & 0x7C00) == 0x7C00]))
    subprocess.run([str(firmware / "tdn-fp16"), "widen", str(tmp_path / "w")], check=True)
    widened = np.fromfile(tmp_path / "w", np.uint32)
    assert np.array_equal(widened, np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float32)
                          .view(np.uint32))


@pytest.mark.parametrize("mode", ["fp16", "int8", "mixed"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_blob_layout(cell, mode):
    model = make_model(cell, 128, mode, seed=3)
    blob = encode_blob(model)
    arrays, total = blob_layout(model)
    magic, version, mode_code, cell_code, hidden, bins, *scales, size = HEADER.unpack_from(blob)
    assert (magic, version, hidden, bins, size) == (b"TDNB", 1, 128, N_BINS, len(blob))
    assert (mode_code, cell_code) == ({"fp16": 1, "int8": 2, "mixed": 3}[mode], {"lstm": 0, "gru": 1}[cell])
    assert total == len(blob) and arrays[-1].offset + arrays[-1].nbytes == total
    assert all(a.offset % 4 == 0 for a in arrays)
    assert [a.name.split(".")[0] for a in arrays][::1] == sorted(
        [a.name.split(".")[0] for a in arrays], key=["fc0", "rnn1", "rnn2", "fc1", "fc2"].index)
    for a in arrays:
        stored = np.frombuffer(blob, a.dtype, count=int(np.prod(a.shape)), offset=a.offset)
        assert np.array_equal(stored.reshape(a.shape), model.tensors[a.name])
    names = ("fc0.input", "rnn1.input", "rnn1.cell", "rnn2.cell", "fc2.input")
    for name, value in zip(names, scales, strict=True):
        assert value == np.float32(model.activation_scales.get(name, 0.0))


def test_damaged_blob_is_rejected(firmware, tmp_path):
    model = make_model("gru", 128, "int8", seed=4)
    blob = bytearray(encode_blob(model))
    frames = edge_frames(2, 0)
    frames.astype("<f2").tofile(tmp_path / "in.f16")
    cases = {"magic": (0, b"XDNB"), "mode": (6, b"\x09"), "hidden": (8, b"\x00\x02"),
             "bins": (10, b"\x00\x01"), "size": (32, struct.pack("<I", len(blob) + 4)),
             "scale": (16, struct.pack("<f", float("nan")))}
    for name, (offset, data) in cases.items():
        bad = bytearray(blob)
        bad[offset:offset + len(data)] = data
        (tmp_path / "bad.tdnb").write_bytes(bytes(bad))
        command = [firmware / "tdn-run", tmp_path / "bad.tdnb", tmp_path / "in.f16", tmp_path / "out.f16"]
        result = subprocess.run([str(c) for c in command], capture_output=True, text=True)
        assert result.returncode == 3, f"{name}: {result.stderr}"


# --- bit exactness --------------------------------------------------------------------------

@pytest.mark.parametrize("hidden", [128, 256])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("mode", ["fp16", "int8", "mixed"])
def test_bit_exact_random_model(firmware, tmp_path, mode, cell, hidden):
    model = make_model(cell, hidden, mode, seed=hidden + len(mode) + len(cell))
    frames = edge_frames(50, seed=hidden)
    masks, counters, trace = run_firmware(firmware, model, frames, tmp_path)
    golden, records = golden_trace(model, frames)
    assert differing_frames(masks, golden) == 0
    assert trace_differences(model, records, trace) == []
    assert len({m.tobytes() for m in golden}) > 40, "masks should vary from frame to frame"

    # what the counters must say: every MAC of the contract, each weight byte copied into L1
    # once per frame from the levels the planner put it in, five forks (one per layer)
    arrays, total = blob_layout(model)
    level, by_level = expected_plan(model)
    assert counters[0].split()[:2] == ["level", str(level)]
    macs = expected_macs(model)
    for line in counters[1:]:
        ticks, int8, fp16, from_l2, from_mram, from_l3, dma, forks, waits = map(int, line.split())
        assert (int8, fp16) == (macs["int8"], macs["fp16"])
        assert (from_l2, from_mram, from_l3) == by_level
        assert sum([from_l2, from_mram, from_l3]) == sum(a.nbytes for a in arrays)
        assert forks == 5 and dma > 5 and waits % WORKERS == 0


def test_hidden_sizes_other_than_128_and_256(firmware, tmp_path):
    for cell, hidden, mode in (("lstm", 40, "mixed"), ("gru", 7, "int8"), ("lstm", 200, "fp16")):
        model = make_model(cell, hidden, mode, seed=hidden)
        frames = edge_frames(12, seed=hidden)
        masks, _, trace = run_firmware(firmware, model, frames, tmp_path)
        golden, records = golden_trace(model, frames)
        assert differing_frames(masks, golden) == 0, (cell, hidden, mode)
        assert trace_differences(model, records, trace) == [], (cell, hidden, mode)


@pytest.fixture(scope="module")
def real_model():
    if not SHARED.is_dir():
        pytest.skip("../shared is absent")
    try:
        import streamer.model.onnx_import  # noqa: F401
    except ImportError:
        pytest.skip("the ONNX importer is not available yet")
    import soundfile
    import soxr

    from streamer.engine import stft_centred
    from streamer.model import load_model
    from streamer.quant.calibrate import calibrate

    params = load_model(SHARED / "models" / "tt_denoiser_rank_8.onnx")
    signals = []
    for path in sorted((SHARED / "data" / "calibration").glob("*.wav")):
        audio, rate = soundfile.read(path, dtype="float64")
        signals.append((path.name, soxr.resample(audio, rate, 16000) if rate != 16000 else audio))
    record = calibrate(params, signals)
    noisy = sorted((SHARED / "data" / "valentini" / "noisy").glob("*.wav"))[0]
    audio, rate = soundfile.read(noisy, dtype="float64")
    if rate != 16000:
        audio = soxr.resample(audio, rate, 16000)
    with np.errstate(over="ignore"):
        frames = np.abs(stft_centred(audio)).astype(np.float16)
    return params, record, frames


@pytest.mark.parametrize("mode", ["mixed", "fp16", "int8"])
def test_bit_exact_real_model(firmware, tmp_path, real_model, mode):
    params, record, frames = real_model
    model = quantize(params, mode, record["ranges"], record)
    masks, _, trace = run_firmware(firmware, model, frames, tmp_path)
    golden, records = golden_trace(model, frames)
    assert differing_frames(masks, golden) == 0
    assert trace_differences(model, records, trace) == []
    assert len(masks) == len(frames) > 100


# --- the simulator on a link ----------------------------------------------------------------

def crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def packet(kind: int, seq: int, payload: bytes = b"") -> bytes:
    head = struct.pack("<BBH", kind, seq, len(payload))
    body = head + bytes([crc8(head)]) + payload
    return b"\xA5\x5A" + body + struct.pack("<I", zlib.crc32(body))


class Link:
    """A minimal host side written from docs/protocol.md, independent of the firmware's C."""

    def __init__(self, read, write):
        self.read, self.write, self.buf, self.seq = read, write, b"", 0

    def reply(self, timeout: float = 5.0) -> tuple[int, int, bytes]:
        deadline = time.monotonic() + timeout
        while True:
            start = self.buf.find(b"\xA5\x5A")
            if start >= 0 and len(self.buf) >= start + 7:
                kind, seq, n = struct.unpack_from("<BBH", self.buf, start + 2)
                if len(self.buf) >= start + 11 + n:
                    body = self.buf[start + 2:start + 7 + n]
                    (crc,) = struct.unpack_from("<I", self.buf, start + 7 + n)
                    assert crc8(body[:4]) == body[4] and zlib.crc32(body) == crc
                    self.buf = self.buf[start + 11 + n:]
                    return kind, seq, body[5:]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no reply from tdn-sim")
            self.buf += self.read(remaining)

    def request(self, kind: int, payload: bytes = b"") -> tuple[int, bytes]:
        self.seq = (self.seq + 1) % 256
        self.write(packet(kind, self.seq, payload))
        rkind, seq, data = self.reply()
        assert seq == self.seq
        assert rkind in (kind | 0x80, 0x7F)
        return rkind, data

    def no_reply(self, wait: float = 0.4) -> None:
        with pytest.raises(TimeoutError):
            self.reply(timeout=wait)


def start_sim(host: Path, *args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([str(host / "tdn-sim"), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    ready, _, _ = select.select([proc.stdout], [], [], 10)
    if not ready:
        proc.kill()
        pytest.fail("tdn-sim printed no address")
    return proc, proc.stdout.readline().strip()


def stop_sim(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def upload(link: Link, blob: bytes, end: bytes = b"") -> tuple[int, bytes]:
    """MODEL_BEGIN, the chunks, then MODEL_END with payload `end` (a placement byte, or none)."""
    kind, data = link.request(0x02, struct.pack("<II", len(blob), zlib.crc32(blob)))
    assert (kind, data) == (0x82, struct.pack("<I", len(blob)))
    for offset in range(0, len(blob), 1024):
        kind, data = link.request(0x03, struct.pack("<I", offset) + blob[offset:offset + 1024])
        assert (kind, data) == (0x83, struct.pack("<I", min(len(blob), offset + 1024)))
    return link.request(0x04, end)


def test_simulator_over_tcp(firmware):
    proc, line = start_sim(firmware, "--tcp", "0")
    try:
        assert line.startswith("TCP 127.0.0.1:")
        sock = socket.create_connection(("127.0.0.1", int(line.rsplit(":", 1)[1])), timeout=5)

        def read(timeout: float) -> bytes:
            sock.settimeout(max(timeout, 0.01))
            try:
                return sock.recv(4096)
            except TimeoutError:
                return b""

        link = Link(read, sock.sendall)
        kind, info = link.request(0x01)
        assert kind == 0x81 and len(info) == 44
        major, minor, patch, proto, workers, modes, cells, _, l1, l2, mram, l3, hz = struct.unpack_from(
            "<8B5I", info)
        assert (proto, workers, modes, cells, l1) == (1, WORKERS, 7, 3, 131072)
        assert (l2, mram, l3, hz) == (L2_WEIGHTS, MRAM, L3, 1_000_000)
        assert info[28:].rstrip(b"\0") == b"host-sim"

        frames = edge_frames(12, seed=5)
        payload = struct.pack("<I", 0) + frames[0].astype("<f2").tobytes()
        kind, data = link.request(0x05, payload)
        assert kind == 0x7F and data[:2] == bytes([2, 0x05])            # NO_MODEL

        model = make_model("lstm", 256, "mixed", seed=11)
        blob = encode_blob(model)
        kind, data = link.request(0x03, struct.pack("<I", 0) + b"x")   # chunk without a begin
        assert kind == 0x7F and data[0] == 6
        kind, data = link.request(0x02, struct.pack("<II", L3 + 1, 0))
        assert kind == 0x7F and data[0] == 3                            # MODEL_TOO_LARGE
        kind, data = link.request(0x02, struct.pack("<II", len(blob), zlib.crc32(blob) ^ 1))
        for offset in range(0, len(blob), 1024):
            link.request(0x03, struct.pack("<I", offset) + blob[offset:offset + 1024])
        kind, data = link.request(0x04)
        assert kind == 0x7F and data[0] == 4                            # BAD_CHECKSUM

        for bad in (b"\x04", b"\x00\x00"):  # no such placement; a payload too long
            kind, data = upload(link, blob, bad)
            assert kind == 0x7F and data[0] == 1, bad                   # BAD_REQUEST
        kind, data = upload(link, blob, b"\x01")                        # the whole 1.47 MB in L2
        assert kind == 0x7F and data[0] == 3                            # MODEL_TOO_LARGE
        kind, data = upload(link, blob, b"\x02")                        # the whole blob in MRAM
        assert kind == 0x84 and struct.unpack("<BBHIBBB", data[:11]) == (3, 0, 256, len(blob), 1, 2, 5)
        kind, data = upload(link, blob)
        assert kind == 0x84
        level, by_level = expected_plan(model)
        assert struct.unpack("<BBHIB", data[:9]) == (3, 0, 256, len(blob), level)

        golden = golden_masks(model, frames)
        for i, frame in enumerate(frames):
            kind, data = link.request(0x05, struct.pack("<I", 1000 + i) + frame.astype("<f2").tobytes())
            assert kind == 0x85 and len(data) == 4 + 2 * N_BINS + COUNTERS_BYTES
            assert struct.unpack_from("<I", data)[0] == 1000 + i
            assert same_bits(np.frombuffer(data, "<f2", N_BINS, 4), golden[i])
            counters = data[4 + 2 * N_BINS:]
            version, n, _, ticks = struct.unpack_from("<BBHI", counters)
            int8 = struct.unpack_from(f"<{n}I", counters, 8)
            fp16 = struct.unpack_from(f"<{n}I", counters, 8 + 4 * n)
            l2b, mramb, l3b, dma, forks, waits = struct.unpack_from("<6I", counters, 8 + 8 * n)
            assert (version, n, forks) == (1, WORKERS, 5)
            macs = expected_macs(model)
            assert (sum(int8), sum(fp16)) == (macs["int8"], macs["fp16"])
            assert min(int8) > 0 and min(fp16) > 0, "every worker computes"
            weight_bytes = sum(a.nbytes for a in blob_layout(model)[0])
            assert (l2b, mramb, l3b) == by_level and sum(by_level) == weight_bytes
            assert struct.unpack_from(f"<{n + 1}Q", counters, 8 + 8 * n + 24) == (0,) * (n + 1)

        # RESET restarts the recurrent state: frame 0 again gives the first mask
        assert link.request(0x06) == (0x86, b"")
        kind, data = link.request(0x05, struct.pack("<I", 7) + frames[0].astype("<f2").tobytes())
        assert same_bits(np.frombuffer(data, "<f2", N_BINS, 4), golden[0])

        # damage: a corrupted CRC gets no reply; garbage and a truncated packet are skipped
        bad = bytearray(packet(0x01, 99))
        bad[-1] ^= 0xFF
        sock.sendall(bytes(bad))
        link.no_reply()
        sock.sendall(b"\x00\xA5\x13garbage" + packet(0x01, 100)[:9])
        time.sleep(0.35)                                                # > RX_STALE_MS
        link.seq = 100
        kind, data = link.request(0x07)
        assert kind == 0x87
        bad_header, bad_crc, stale, frame_count = struct.unpack("<4I", data)
        assert bad_crc >= 1 and stale >= 1 and frame_count == len(frames) + 1
        kind, data = link.request(0x05, b"\x00" * 10)
        assert kind == 0x7F and data[0] == 1                            # BAD_REQUEST
        sock.close()
    finally:
        stop_sim(proc)


def test_simulator_on_a_pseudo_terminal(firmware):
    import termios
    import tty

    proc, line = start_sim(firmware)
    try:
        assert line.startswith("PTY /dev/")
        fd = os.open(line.split(" ", 1)[1], os.O_RDWR | os.O_NOCTTY)
        tty.setraw(fd)
        termios.tcflush(fd, termios.TCIOFLUSH)

        def read(timeout: float) -> bytes:
            ready, _, _ = select.select([fd], [], [], timeout)
            return os.read(fd, 4096) if ready else b""

        def write(data: bytes) -> None:
            os.write(fd, data)

        link = Link(read, write)
        kind, info = link.request(0x01)
        assert kind == 0x81 and info[28:].rstrip(b"\0") == b"host-sim"
        model = make_model("gru", 128, "int8", seed=2)
        kind, data = upload(link, encode_blob(model))
        assert kind == 0x84 and data[8] == 0                            # fits L2
        frames = edge_frames(3, seed=1)
        golden = golden_masks(model, frames)
        for i, frame in enumerate(frames):
            kind, data = link.request(0x05, struct.pack("<I", i) + frame.astype("<f2").tobytes())
            assert same_bits(np.frombuffer(data, "<f2", N_BINS, 4), golden[i])
        os.close(fd)
    finally:
        stop_sim(proc)


def test_portable_sources_build_for_rv32():
    """Everything but the HAL compiles for the bare-metal RV32 target (no _Float16 there)."""
    from helpers import require_tool

    require_tool("make")
    require_tool("riscv64-unknown-elf-gcc")  # apt: gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf
    result = subprocess.run(["make", "-C", str(FIRMWARE), "-j2", "rv32-check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


# --- fuzz -----------------------------------------------------------------------------------

def test_fuzz_target(firmware):
    started = time.monotonic()
    result = subprocess.run(["make", "-C", str(FIRMWARE), "-j2", "fuzz"], capture_output=True, text=True,
                            timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "fuzz-parser: OK" in output and "runtime error" not in output and "AddressSanitizer" not in output
    assert time.monotonic() - started < 60
