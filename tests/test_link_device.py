"""The host side of the device link against the REAL host simulator (`firmware/build/host/tdn-sim`),
over a pseudo-terminal and over a TCP socket: device info, model loading, bit-exact frames
against QuantizedNetwork, and faults on the live link (garbage, dropped bytes, bad CRCs,
truncated packets, late replies, a killed and restarted device, an over-sized model).

Every test runs under its own deadline (`no_hang`), checks frames sent = answered + counted
failures, and checks that no simulator process outlives it. The tests skip, saying why, until
`firmware/Makefile` exists. TDN_SIM_BINARY=/path/to/tdn-sim runs them against another build.
"""

from __future__ import annotations

import copy
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import deadline, random_params, require_tool

from streamer.backends import open_backend
from streamer.backends.base import BackendError
from streamer.backends.emulator import EmulatorBackend
from streamer.backends.link import LinkBackend, magnitude_bits, mask_values, realtime_baud
from streamer.backends.verify import VerifyingBackend, first_differing_layer
from streamer.distribution import Distribution
from streamer.link.blob import encode_blob
from streamer.link.device import DeviceClient, DeviceError, ModelTooLarge
from streamer.link.messages import ErrorCode, FrameRequest, ModelBeginRequest, ModelChunkRequest, frame_bytes
from streamer.link.protocol import parse_all
from streamer.link.simulator import (
    BINARY_ENV,
    FIRMWARE_DIR,
    Simulator,
    SimulatorError,
    build_simulator,
    needs_build,
)
from streamer.link.transport import LinkError, Transport, TransportSpec
from streamer.quant.arith import f16, sanitize_input
from streamer.quant.calibrate import activation_ranges, trace_activations
from streamer.quant.network import QuantizedNetwork, quantize

TEST_DEADLINE_S = 120
FAST_TIMEOUT_S = 0.4  # a lost request costs this much; the device's stale rule is 0.2 s


def simulator_binary() -> Path | None:
    """The binary under test: TDN_SIM_BINARY, else the firmware build (None = build it)."""
    override = os.environ.get(BINARY_ENV)
    if override:
        return Path(override)
    if not (FIRMWARE_DIR / "Makefile").is_file():
        pytest.skip(f"{FIRMWARE_DIR / 'Makefile'} does not exist yet: the host simulator "
                    f"(tdn-sim) is not written, so there is no device to talk to")
    require_tool("make")
    require_tool("gcc")
    return None


def child_pids(parent: int | None = None, live_only: bool = True) -> set[int]:
    """Child processes of `parent` (default: this test process), read from /proc (no psutil);
    zombies count only with live_only=False."""
    parent, found = os.getpid() if parent is None else parent, set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent and not (live_only and fields[0] == "Z"):
                found.add(int(entry.name))
    return found


def assert_gone(pid: int) -> None:
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (an orphan waits for init to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def assert_child_dies_with_killed_host(start: str, name: str, **env: str) -> None:
    """A host process runs `start` (Python that starts a child as `child`), then SIGKILLs itself
    (no atexit, no finally): the child must still end within 5 s."""
    code = (f"import os, signal\n{start}\n"
            "print(child.pid, flush=True)\nos.kill(os.getpid(), signal.SIGKILL)\n")
    path = os.pathsep.join(filter(None, [str(FIRMWARE_DIR.parent), os.environ.get("PYTHONPATH")]))
    # Wait for the host, not for end of file on its pipes: a child that inherited them would
    # hold them open, and waiting for that would wait for the very child under test.
    with tempfile.TemporaryFile("w+") as errors:
        host = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                stderr=errors, text=True, env=dict(os.environ, PYTHONPATH=path, **env))
        line = host.stdout.readline()
        host.wait(timeout=60)
        errors.seek(0)
        assert host.returncode == -signal.SIGKILL, errors.read()
    host.stdout.close()
    pid = int(line)
    until = time.monotonic() + 5
    while running(pid) and time.monotonic() < until:
        time.sleep(0.05)
    assert not running(pid), f"{name} {pid} outlived its killed host"


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    """Fail (not hang) a test that overruns TEST_DEADLINE_S, whatever it is blocked in."""
    with deadline(TEST_DEADLINE_S, "the link hung"):
        yield


@pytest.fixture(scope="module")
def sim_binary() -> Path | None:
    binary = simulator_binary()
    if binary is None:
        build_simulator()  # once, outside every test's deadline
    return binary


@pytest.fixture(params=["pty", "tcp"])
def sim(request, sim_binary) -> Iterator[Simulator]:
    before = child_pids()
    simulator = Simulator(request.param, binary=sim_binary, build=sim_binary is None)
    with simulator:
        yield simulator
    assert child_pids() <= before, "a simulator process outlived its test"


@pytest.fixture
def tcp_sim(sim_binary) -> Iterator[Simulator]:
    with Simulator("tcp", binary=sim_binary, build=sim_binary is None) as simulator:
        yield simulator


def calibrated(params, frames: np.ndarray) -> dict[str, float]:
    return activation_ranges([trace_activations(params, frames)])


def frames_of(frames: int, seed: int = 0, specials: bool = True) -> np.ndarray:
    """Random magnitudes; with `specials`, frame 3 holds NaN, inf, 1e9 and 0 to exercise the
    input stage (NaN -> 0, clamp to 65504) on both sides."""
    rng = np.random.default_rng(seed)
    mags = np.abs(rng.standard_normal((frames, 257))).astype(np.float32) * 3
    if specials and frames > 3:
        mags[3, :4] = [np.nan, np.inf, 1e9, 0.0]
    return mags



def quantized(mode: str, cell: str = "lstm", hidden: int = 128, seed: int = 0):
    params = random_params(cell, hidden, seed=seed)
    ranges = calibrated(params, frames_of(50, seed=seed + 1, specials=False)) if mode != "fp16" else None
    return params, quantize(params, mode, ranges)


def loaded_client(simulator: Simulator, model, **options) -> DeviceClient:
    client = DeviceClient(simulator.connect, **options)
    client.info()
    client.load_model(encode_blob(model))
    return client


def run_frames(client: DeviceClient, network: QuantizedNetwork, mags: np.ndarray, state=None,
               start: int = 0, counters_seen: list | None = None):
    """Step device and golden model over `mags`; the frames whose masks differ in any bit.
    Each frame's Counters are appended to `counters_seen` when given."""
    state = network.initial_state() if state is None else state
    differing = []
    for k, frame in enumerate(mags):
        bits, counters = client.frame(start + k, magnitude_bits(frame))
        if counters_seen is not None:
            counters_seen.append(counters)
        expected, state = network.step(frame, state)
        if not np.array_equal(bits, expected.astype(np.float16).view(np.uint16)):
            differing.append(start + k)
    return differing, state


def assert_accounted(client: DeviceClient) -> None:
    assert client.frames_sent == client.frames_answered + client.frames_failed, (
        client.frames_sent, client.frames_answered, dict(client.frame_failures))


# --- the device itself ----------------------------------------------------------------------------

def test_device_info(sim):
    with DeviceClient(sim.connect) as client:
        info = client.info()
    assert info.protocol_version == 1
    assert info.cores >= 1 and info.timer_hz > 0 and info.target
    assert {"fp16", "mixed"} <= set(info.modes) and "lstm" in info.cells
    assert info.l1_bytes == 131072


@pytest.mark.parametrize("mode,cell", [("fp16", "lstm"), ("mixed", "lstm"), ("int8", "gru")])
def test_frames_are_bit_identical_to_the_golden_model(sim, mode, cell):
    params, model = quantized(mode, cell, hidden=128 if cell == "lstm" else 64, seed=4)
    with loaded_client(sim, model) as client:
        if mode not in client.device_info.modes:
            pytest.skip(f"this device does not run {mode}")
        info = client.model_info
        assert (info.mode, info.cell, info.hidden) == (mode, cell, model.hidden)
        assert info.blob_bytes == len(encode_blob(model))
        differing, _ = run_frames(client, QuantizedNetwork(model), frames_of(100, seed=5))
        assert differing == []
        assert client.frames_answered == 100 and client.frames_failed == 0
        stats = client.stats()
        assert stats.frames >= 100 and stats.bad_crc == stats.bad_header == 0


def test_counters_describe_the_frame(sim):
    _, model = quantized("mixed", hidden=64)
    with loaded_client(sim, model) as client:
        _, counters = client.frame(0, magnitude_bits(frames_of(1)[0]))
        cores = client.device_info.cores
    assert counters.cores == cores and len(counters.int8_macs) == cores
    assert len(counters.instructions) == cores + 1
    # Mixed: the recurrent layers are int8 (2 layers of 4H x (H + H)), the dense layers fp16.
    h, k = 64, 257
    assert sum(counters.int8_macs) == 2 * 4 * h * (h + h)
    assert sum(counters.fp16_macs) == h * k + k * h + k * k
    assert counters.ticks > 0


def test_reset_restarts_the_recurrent_state(sim):
    _, model = quantized("fp16", hidden=64)
    mags = frames_of(10)
    with loaded_client(sim, model) as client:
        network = QuantizedNetwork(model)
        assert run_frames(client, network, mags)[0] == []
        client.reset()
        assert run_frames(client, network, mags, start=10)[0] == []


@pytest.mark.parametrize("mode,cell", [("fp16", "lstm"), ("mixed", "lstm"), ("int8", "gru")])
def test_trace_returns_the_golden_intermediates(sim, mode, cell):
    _, model = quantized(mode, cell, hidden=64, seed=6)
    with loaded_client(sim, model) as client:
        if mode not in client.device_info.modes:
            pytest.skip(f"this device does not run {mode}")
        device = LinkBackend(client, client.model_info, client.device_info, sim.transport)
        with pytest.raises(DeviceError) as before_any_frame:
            client.trace(0)
        assert before_any_frame.value.code == ErrorCode.NO_MODEL
        network = QuantizedNetwork(model)
        state = network.initial_state()
        for frame in frames_of(6, seed=7):
            device.step(frame)
            _, state, golden = network.step_traced(frame, state)
            traced = device.trace_last_frame()
            assert set(traced) == set(golden)
            assert first_differing_layer(traced, golden) is None
        assert ("rnn1.c" in traced) == (cell == "lstm")
        with pytest.raises(DeviceError) as unknown:
            client.trace(7)
        assert unknown.value.code == ErrorCode.BAD_REQUEST
        client.reset()
        with pytest.raises(DeviceError) as after_reset:
            client.trace(0)
        assert after_reset.value.code == ErrorCode.NO_MODEL
        assert_accounted(client)


def test_step_traced_is_step():
    _, model = quantized("mixed", "lstm", hidden=64, seed=2)
    network = QuantizedNetwork(model)
    state_a = state_b = network.initial_state()
    for frame in frames_of(5, seed=1):
        mask_a, state_a = network.step(frame, state_a)
        mask_b, state_b, trace = network.step_traced(frame, state_b)
        assert np.array_equal(mask_a, mask_b) and np.array_equal(trace["mask"], mask_a)
        assert all(np.array_equal(a, b) for a, b in zip(state_a, state_b, strict=True))


@pytest.mark.parametrize("tensor,layer", [("rnn2.weight_ih", "rnn2"), ("fc1.weight", "fc1"),
                                          ("fc0.bias", "fc0")])
def test_verify_names_the_first_differing_layer(sim, tensor, layer):
    # The device and the emulator run models that differ in exactly one layer's weights.
    params, device_model = quantized("fp16", hidden=64, seed=3)
    other = copy.deepcopy(params)
    other.tensors[tensor] = (other.tensors[tensor] * np.float32(1.25)).astype(np.float32)
    emulator_model = quantize(other, "fp16", None)
    client = loaded_client(sim, device_model)
    device = LinkBackend(client, client.model_info, client.device_info, sim.transport)
    with VerifyingBackend(device, EmulatorBackend(emulator_model)) as backend:
        for frame in frames_of(5, seed=8):
            backend.step(frame)
        report = backend.report()
    assert report["verify_first_mismatch_frame"] == 0
    assert report["verify_first_mismatch_layer"] == layer
    assert report["verify_layer_source"] == "trace"


def test_verify_without_a_device_trace_says_output_only():
    _, model = quantized("fp16", hidden=32, seed=3)
    _, other = quantized("fp16", hidden=32, seed=4)
    with VerifyingBackend(EmulatorBackend(model), EmulatorBackend(other)) as backend:
        backend.step(frames_of(1)[0])
        report = backend.report()
    assert report["verify_first_mismatch_frame"] == 0
    assert report["verify_first_mismatch_layer"] == "output"
    assert report["verify_layer_source"].startswith("output only")


# --- faults on the live link ----------------------------------------------------------------------

class DamagingTransport:
    """A real transport whose next write can be damaged on purpose (fault injection only)."""

    def __init__(self, transport: Transport) -> None:
        self.inner, self.damage = transport, None

    def write(self, data: bytes, deadline: float) -> None:
        damage, self.damage = self.damage, None
        self.inner.write(damage(data) if damage else data, deadline)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_garbage_between_packets_is_skipped(sim):
    _, model = quantized("mixed", hidden=64)
    rng = random.Random(3)
    network = QuantizedNetwork(model)
    state = network.initial_state()
    with loaded_client(sim, model) as client:
        for k, frame in enumerate(frames_of(40)):
            # Sync-rich garbage, written straight to the transport between requests.
            client.send_raw(bytes(rng.choice([0xA5, 0x5A, rng.randrange(256)])
                                  for _ in range(rng.randrange(1, 64))))
            bits, _ = client.frame(k, magnitude_bits(frame))
            expected, state = network.step(frame, state)
            assert np.array_equal(mask_values(bits), expected)
        assert client.frames_failed == 0
        assert_accounted(client)
        assert client.stats().bad_header + client.stats().bad_crc >= 0


@pytest.mark.parametrize("damage", ["dropped byte", "corrupted crc", "truncated"])
def test_a_damaged_request_costs_only_its_frame(sim, damage):
    _, model = quantized("fp16", hidden=64)
    transport_box: list[DamagingTransport] = []

    def connect() -> DamagingTransport:
        transport_box.append(DamagingTransport(sim.connect()))
        return transport_box[-1]

    client = DeviceClient(connect, frame_timeout=FAST_TIMEOUT_S)
    damaging = {
        "dropped byte": lambda data: data[:100] + data[101:],
        "corrupted crc": lambda data: data[:-1] + bytes([data[-1] ^ 0xFF]),
        "truncated": lambda data: data[:300],
    }[damage]
    network = QuantizedNetwork(model)
    state = network.initial_state()
    failed_frames = {5, 12}
    with client:
        client.info()
        client.load_model(encode_blob(model))
        stats_before = client.stats()
        for k, frame in enumerate(frames_of(20)):
            if k in failed_frames:
                transport_box[-1].damage = damaging
                with pytest.raises(LinkError) as caught:
                    client.frame(k, magnitude_bits(frame))
                assert caught.value.cause == "timeout"
                continue  # the device never computed it: the golden model does not step either
            bits, _ = client.frame(k, magnitude_bits(frame))
            expected, state = network.step(frame, state)
            assert np.array_equal(mask_values(bits), expected), k
        assert client.frames_sent == 20 and client.frames_answered == 18
        assert dict(client.frame_failures) == {"timeout": 2}
        assert_accounted(client)
        stats = client.stats()
        rejected = (stats.bad_header + stats.bad_crc + stats.stale
                    - stats_before.bad_header - stats_before.bad_crc - stats_before.stale)
        assert rejected >= 2


def test_raw_damaged_packets_between_good_requests(sim):
    """Crafted bytes straight onto the wire: a request with a dropped byte, one with a bad CRC,
    a truncated one. None is answered, and the next good request is."""
    _, model = quantized("fp16", hidden=64)
    mags = frames_of(8)
    network = QuantizedNetwork(model)
    with loaded_client(sim, model) as client:
        good = FrameRequest(99, magnitude_bits(mags[0])).encode(seq=200)
        crafted = [good[:50] + good[51:], good[:-1] + bytes([good[-1] ^ 1]), good[:200],
                   ModelBeginRequest(10, 0).encode(seq=201)[:-2]]
        state = network.initial_state()
        for k, bad in enumerate(crafted):
            client.send_raw(bad)
            bits, _ = client.frame(k, magnitude_bits(mags[k + 1]))
            expected, state = network.step(mags[k + 1], state)
            assert np.array_equal(mask_values(bits), expected), k
        assert client.frames_failed == 0 and client.late_replies == 0


def test_late_replies_are_discarded_and_counted(sim):
    _, model = quantized("fp16", hidden=64)
    mags = frames_of(6)
    network = QuantizedNetwork(model)
    state = network.initial_state()
    with loaded_client(sim, model) as client:
        for k, frame in enumerate(mags):
            client.frame_timeout = 0.0 if k == 2 else 1.0  # frame 2's reply comes too late
            try:
                bits, _ = client.frame(k, magnitude_bits(frame))
            except LinkError as error:
                assert k == 2 and error.cause == "timeout"
                bits = None
                time.sleep(0.2)  # let the late reply arrive whole, so it is counted as late
            expected, state = network.step(frame, state)  # the device did compute frame 2
            if bits is not None:
                assert np.array_equal(mask_values(bits), expected), k
        assert client.late_replies == 1
        assert dict(client.frame_failures) == {"timeout": 1}
        assert_accounted(client)


def test_device_killed_mid_stream_restarts_and_reloads(sim):
    _, model = quantized("mixed", hidden=64)
    mags = frames_of(30)
    network = QuantizedNetwork(model)
    with loaded_client(sim, model, frame_timeout=FAST_TIMEOUT_S) as client:
        differing, _ = run_frames(client, network, mags[:10])
        assert differing == []
        old_pid = sim.pid
        sim.kill()
        assert_gone(old_pid)
        # The next requests fail (link closed, then NO_MODEL from the restarted device, which
        # reloads the model); after that frames flow again, from a zero recurrent state.
        k = 10
        while True:
            assert k < 15, "the client did not recover from the device restart"
            try:
                client.frame(k, magnitude_bits(mags[k]))
            except LinkError:
                k += 1
                continue
            break
        assert 1 <= k - 10 <= 3
        assert client.model_reloads == 1 and client.reconnects == 1
        assert sim.alive() and sim.pid != old_pid and sim.restarts == 1
        client.reset()  # both sides from zero state again: identical from here
        differing, _ = run_frames(client, network, mags[k + 1:], start=k + 1)
        assert differing == []
        assert set(client.frame_failures) <= {"disconnected", "timeout", "error:NO_MODEL"}
        assert "error:NO_MODEL" in client.frame_failures
        assert_accounted(client)


def test_oversized_model_is_refused_clearly(sim):
    _, model = quantized("fp16", hidden=64)
    with loaded_client(sim, model) as client:
        capacity = client.device_info.model_capacity
        with pytest.raises(ModelTooLarge) as caught:
            client.load_model(bytes(capacity + 1024))
        message = str(caught.value)
        assert "MODEL_TOO_LARGE" in message and f"{capacity:,}" in message
        # The device keeps answering after the refusal.
        assert client.info().protocol_version == 1


def test_a_corrupt_blob_is_refused(sim):
    _, model = quantized("fp16", hidden=64)
    blob = bytearray(encode_blob(model))
    blob[0:4] = b"XXXX"
    with DeviceClient(sim.connect) as client:
        client.info()
        with pytest.raises(DeviceError, match="BAD_MODEL|UNSUPPORTED"):
            client.load_model(bytes(blob))
        with pytest.raises(DeviceError, match="NO_MODEL"):
            client.frame(0, magnitude_bits(frames_of(1)[0]))
        assert_accounted(client)


def test_unanswered_requests_never_hang(sim):
    """A device that says nothing: every request ends at its deadline."""
    with DeviceClient(sim.connect, request_timeout=0.3) as client:
        client.info()
        sim.process.send_signal(signal.SIGSTOP)
        try:
            start = time.monotonic()
            with pytest.raises(LinkError) as caught:
                client.stats()
            assert caught.value.cause == "timeout" and time.monotonic() - start < 1.0
        finally:
            sim.process.send_signal(signal.SIGCONT)
        time.sleep(0.2)  # the woken device answers the old request meanwhile
        # The device wakes up and answers the old request; that reply is discarded by its
        # sequence number and the new request gets its own.
        assert client.stats().frames == 0
        assert client.late_replies == 1


# --- the Backend and the --backend specs ----------------------------------------------------------

@pytest.mark.parametrize("spec", ["sim", "sim-tcp"])
def test_open_backend_verifies_bit_exact(spec, sim_binary):
    params = random_params("lstm", 64, seed=9)
    params.calibration = {"ranges": calibrated(params, frames_of(50, seed=2, specials=False))}
    before = child_pids()
    device = open_backend(spec, params, quant="mixed")
    with VerifyingBackend.for_device(device, params, "mixed") as backend:
        for frame in frames_of(60, seed=3):
            backend.step(frame)
        report = backend.report()
        described = backend.describe()
    assert report["verify_mismatched_frames"] == 0 and report["verify_compared_frames"] == 60
    assert report["verify_first_mismatch_frame"] is None
    assert described["transport"] == ("pty" if spec == "sim" else "socket")
    assert described["frames_sent"] == described["frames_answered"] == 60
    assert described["bytes_per_frame_up"] == 529 and described["baud_carries_realtime"] is None
    assert described["link_rtt_ms"]["p50"] > 0 and described["last_counters"]["ticks"] > 0
    assert child_pids() <= before, "the backend left its simulator running"


def test_link_statistics_cover_every_answered_frame_in_fixed_memory(sim_binary):
    """The report's round trip and compute time summarise every answered frame, as observers see
    them through last_frame(), in a Distribution (fixed memory: a live session has no end)."""
    params = random_params("lstm", 32, seed=4)
    rtt, compute = Distribution(), Distribution()
    with open_backend("sim", params, quant="fp16") as device:
        for frame in frames_of(40, seed=5):
            device.step(frame)
            last = device.last_frame()
            rtt.add(last.rtt_s)
            compute.add(last.counters.ticks / device.device_info.timer_hz)
        described = device.describe()
        held = [value for value in vars(device).values() if isinstance(value, list | tuple | dict)]
    assert described["frames_answered"] == len(rtt) == 40
    assert described["link_rtt_ms"] == rtt.summary_ms()
    assert described["device_compute_ms"] == compute.summary_ms()
    assert all(len(value) < 40 for value in held), "a per-frame container in the backend"


def test_verify_reports_a_restart_as_differing_frames(sim):
    _, model = quantized("fp16", hidden=64)
    client = loaded_client(sim, model, frame_timeout=FAST_TIMEOUT_S)
    device = LinkBackend(client, client.model_info, client.device_info, sim.transport)
    with VerifyingBackend(device, EmulatorBackend(model)) as backend:
        mags = frames_of(30)
        for frame in mags[:10]:
            backend.step(frame)
        sim.kill()
        fallbacks = 0
        for frame in mags[10:]:
            mask = backend.step(frame)
            if device.last_failed:  # the documented fallback: the input passes through
                assert np.array_equal(mask, np.ones(257, np.float32))
                fallbacks += 1
        report = backend.report()
    assert fallbacks == report["verify_failed_frames"] == sum(device.failed_by_cause.values())
    assert report["verify_failed_frames"] >= 1
    assert report["verify_mismatched_frames"] >= 1
    assert report["verify_first_mismatch_frame"] >= 10
    # The reloaded device restarted its recurrent state from zero: the first layer with state differs.
    assert report["verify_first_mismatch_layer"] == "rnn1" and report["verify_layer_source"] == "trace"
    assert device.frames_sent == device.frames_answered + sum(device.failed_by_cause.values()) == 30


def test_link_specs_for_an_existing_device(tcp_sim, sim_binary):
    params = random_params("gru", 64, seed=1)
    with open_backend(tcp_sim.url, params, quant="fp16") as backend:
        mask = backend.step(frames_of(1)[0])
        assert mask.shape == (257,) and mask.dtype == np.float32
        assert backend.describe()["transport"] == "socket"
    assert tcp_sim.alive(), "a backend must not stop a device it did not start"


def test_serial_spec_reports_whether_the_baud_rate_keeps_up(sim_binary):
    with Simulator("pty", binary=sim_binary, build=sim_binary is None) as simulator:
        params = random_params("lstm", 64, seed=1)
        with open_backend(f"serial:{simulator.url}@921600", params, quant="fp16") as backend:
            backend.step(frames_of(1)[0])
            described = backend.describe()
    up, down = described["bytes_per_frame_up"], described["bytes_per_frame_down"]
    assert described["baud"] == 921600 and described["transport"] == "serial"
    assert described["baud_needed_for_realtime"] == int(np.ceil(max(up, down) * 10 / 0.00625))
    assert described["baud_carries_realtime"] == (921600 * 0.00625 >= max(up, down) * 10)


def test_fp32_on_a_device_is_an_error_naming_its_modes(sim_binary):
    before = child_pids()
    with pytest.raises(BackendError, match="fp32 runs only on the emulator; the device runs .*fp16"):
        open_backend("sim", random_params("lstm", 64))
    assert child_pids() <= before


def test_simulator_never_outlives_an_exception(sim_binary):
    pid = None
    with pytest.raises(RuntimeError, match="boom"):
        with Simulator("tcp", binary=sim_binary, build=sim_binary is None) as simulator:
            pid = simulator.pid
            raise RuntimeError("boom")
    assert pid is not None
    assert_gone(pid)


# --- without a device: address parsing, arithmetic, errors -----------------------------------------

@pytest.mark.parametrize("spec,expected", [
    ("serial:/dev/ttyUSB0", ("serial", "/dev/ttyUSB0", 921600)),
    ("serial:/dev/ttyACM1@3000000", ("serial", "/dev/ttyACM1", 3000000)),
    ("/dev/pts/4", ("serial", "/dev/pts/4", 921600)),
    ("socket://127.0.0.1:5555", ("socket", "socket://127.0.0.1:5555", None)),
])
def test_link_addresses_parse(spec, expected):
    parsed = TransportSpec.parse(spec)
    assert (parsed.kind, parsed.url, parsed.baud) == expected


@pytest.mark.parametrize("spec", ["serial:", "serial:/dev/x@fast", "socket://nohost", "COM3"])
def test_bad_link_addresses_are_errors(spec):
    with pytest.raises(LinkError):
        TransportSpec.parse(spec)


def test_a_missing_port_is_a_clear_backend_error():
    with pytest.raises(BackendError, match="cannot open"):
        open_backend("serial:/dev/does-not-exist@115200", random_params("lstm", 64), quant="fp16")


def test_realtime_baud_counts_ten_bits_per_byte_per_hop():
    up, down = frame_bytes(8)
    assert realtime_baud(up, down) == int(np.ceil(down * 10 / 0.00625))  # 697 bytes -> 1,115,200
    assert realtime_baud(up, down) == 1_115_200


def test_binary16_conversions_follow_the_contract():
    x = np.array([np.nan, np.inf, -np.inf, 1e9, 0.1, 65519.0, 65520.0] + [1.0] * 250, np.float32)
    bits = magnitude_bits(x)
    assert bits.dtype == np.dtype("<u2")
    np.testing.assert_array_equal(mask_values(bits), f16(sanitize_input(x)))
    assert mask_values(bits)[:4].tolist() == [0.0, 65504.0, -65504.0, 65504.0]


def test_simulator_dies_with_a_killed_host(sim_binary):
    """The host process is SIGKILLed (no atexit, no finally): the kernel still ends the child."""
    env = {BINARY_ENV: str(sim_binary)} if sim_binary is not None else {}
    assert_child_dies_with_killed_host("from streamer.link.simulator import Simulator\n"
                                       "child = Simulator('tcp').start()", "tdn-sim", **env)


def test_the_simulator_is_built_when_missing_or_older_than_its_sources(tmp_path):
    """A stand-in firmware tree whose Makefile counts its runs: make runs only when needed."""
    require_tool("make")
    firmware = tmp_path / "firmware"
    (firmware / "src").mkdir(parents=True)
    (firmware / "src" / "main.c").write_text("int main(void) { return 0; }\n")
    (firmware / "Makefile").write_text(
        "build/host/tdn-sim: src/main.c\n"
        "\tmkdir -p build/host && echo run >> runs.log && printf '#!/bin/sh\\n' > $@ && chmod +x $@\n")
    binary = firmware / "build" / "host" / "tdn-sim"
    runs = firmware / "runs.log"
    assert needs_build(binary, firmware)
    assert build_simulator(binary, firmware) == binary and runs.read_text().count("run") == 1
    assert not needs_build(binary, firmware)
    build_simulator(binary, firmware)
    assert runs.read_text().count("run") == 1  # fresh: make is not even started
    later = binary.stat().st_mtime + 10
    os.utime(firmware / "src" / "main.c", (later, later))
    assert needs_build(binary, firmware)
    build_simulator(binary, firmware)
    assert runs.read_text().count("run") == 2


def test_no_firmware_is_a_clear_error(tmp_path):
    with pytest.raises(SimulatorError, match="Makefile"):
        build_simulator(tmp_path / "tdn-sim", tmp_path)


def test_lost_and_misplaced_chunks_restart_the_transfer(sim):
    """A chunk lost on the wire (timeout) and a chunk at the wrong offset (BAD_SEQUENCE) each
    restart the transfer from MODEL_BEGIN; the model then loads and runs bit-exact."""
    _, model = quantized("fp16", hidden=64)
    blob = encode_blob(model)
    boxes: list[DamagingTransport] = []

    def connect() -> DamagingTransport:
        boxes.append(DamagingTransport(sim.connect()))
        return boxes[-1]

    def misplace(data: bytes) -> bytes:
        packet = parse_all(data)[0]
        chunk = ModelChunkRequest.unpack(packet.payload)
        return ModelChunkRequest(chunk.offset + 1024, chunk.data).encode(packet.seq)

    sent_chunks, begins = 0, 0

    def progress(done: int, total: int) -> None:
        nonlocal sent_chunks, begins
        assert total == len(blob) and 0 <= done <= total
        sent_chunks += 1
        begins += done == 0
        if sent_chunks == 3:
            boxes[-1].damage = lambda data: data[:-1] + bytes([data[-1] ^ 0x55])  # lost
        if sent_chunks == 8:
            boxes[-1].damage = misplace

    with DeviceClient(connect, model_timeout=FAST_TIMEOUT_S) as client:
        client.info()
        info = client.load_model(blob, progress)
        assert info.blob_bytes == len(blob) and begins == 3  # two restarts, then success
        differing, _ = run_frames(client, QuantizedNetwork(model), frames_of(5))
        assert differing == []
