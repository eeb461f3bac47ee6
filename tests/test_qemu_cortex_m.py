"""The firmware on one Cortex-M7 core under QEMU (`--backend qemu-m7`, mps2-an500): the same
portable sources as the RISC-V cluster, one core for the controller and the work, weights read
in place, the CMSDK UART as the link. The link fault tests run against it (imported below, as
tests/test_qemu.py does for RISC-V), masks are bit-identical to the emulator, and the build
refuses an image with a fused multiply-add.

Needs qemu-system-arm, arm-none-eabi-gcc (+ picolibc), make and gcc: a missing tool skips with
its name, except under CI (require_tool). The image is built once per module. The UART moves
one byte per QEMU main-loop turn (about 25 kB/s here), so the uploads dominate: the H = 256
runs on the shared Valentini pair take minutes (docs/cortex-m.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import deadline, find_key, random_frames, random_params, require_tool

# The link fault tests, run here against the Cortex-M7 through this module's `sim` fixture.
from test_link_device import (  # noqa: F401 - collected by pytest from this module
    assert_child_dies_with_killed_host,
    child_pids,
    loaded_client,
    quantized,
    run_frames,
    test_a_damaged_request_costs_only_its_frame,
    test_device_killed_mid_stream_restarts_and_reloads,
    test_garbage_between_packets_is_skipped,
    test_late_replies_are_discarded_and_counted,
    test_raw_damaged_packets_between_good_requests,
    test_unanswered_requests_never_hang,
)

# Replies damaged between the device and the host (tests/adversary.py), through this module's
# `simulator` fixture.
from test_untrusted_device import (  # noqa: F401 - collected by pytest from this module
    noisy,
    test_a_mask_that_cannot_be_true_costs_its_frame_only,
    test_cli_exit_status_says_frames_were_lost_unless_allowed,
)

from streamer.costmodel import FrameCounters, firmware_work
from streamer.link.qemu_arm import QemuArm, QemuM55, build_m7_image, build_m55_image
from streamer.quant.network import QuantizedNetwork
from streamer.target import read_target

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIRMWARE = REPO / "firmware"
TEST_DEADLINE_S = 180
# The H = 256 and H = 128 models over a whole pair: a 1.5-2.9 MB upload at ~25 kB/s, ~280 frames.
LONG_DEADLINE_S = 600
LONG_TESTS = {"test_default_model_on_the_m7_is_bit_exact", "test_unseen_gru_on_the_m7_is_bit_exact",
              "test_default_model_on_the_m55_is_bit_exact"}
PAIR = "p232_050"  # a shared Valentini pair (about 280 frames)


def require_arm_tools() -> None:
    for tool in ("qemu-system-arm", "arm-none-eabi-gcc", "make", "gcc"):
        require_tool(tool)


@pytest.fixture(autouse=True)
def no_hang(request) -> Iterator[None]:
    limit = LONG_DEADLINE_S if request.function.__name__ in LONG_TESTS else TEST_DEADLINE_S
    with deadline(limit, "QEMU (Cortex-M7) or the link hung"):
        yield


@pytest.fixture(scope="module")
def m7_image() -> Path:
    require_arm_tools()
    return build_m7_image()  # once, outside every test's deadline


@pytest.fixture(scope="module")
def m55_image() -> Path:
    require_arm_tools()
    return build_m55_image()


@pytest.fixture(params=["m7", "m55"])
def board(request, m7_image, m55_image):
    """The launcher of each board: (class, DeviceInfo target name, timer Hz)."""
    return {"m7": (QemuArm, "qemu-m7", 25_000_000), "m55": (QemuM55, "qemu-m55", 32_000_000)}[request.param]


@pytest.fixture(params=["pty"])
def sim(request, m7_image) -> Iterator[QemuArm]:
    """The Cortex-M7 in place of the host simulator: the fault tests imported above use this.
    On the pty only (each test uploads a model at ~25 kB/s): the TCP transport is the same
    launcher code as RISC-V's, and the tests below and the damaging proxy's run over it."""
    before = child_pids()
    with QemuArm(request.param) as qemu:
        yield qemu
    assert child_pids() <= before, "a QEMU process outlived its test"


@pytest.fixture
def simulator(m7_image) -> Iterator[QemuArm]:
    """The Cortex-M7 behind test_untrusted_device's damaging proxy (TCP)."""
    with QemuArm("tcp") as qemu:
        yield qemu


@pytest.fixture
def replay_guard_s() -> int:
    """The proxy tests' hang guard for the M7: its 332 kB model crosses QEMU's one-byte CMSDK UART
    (about 25 kB/s) and each frame's round trip takes about 80 ms, so one replay took 45-65 s
    here; 60 s (the host simulator's guard) cut a healthy run short."""
    return 240


# --- the device ------------------------------------------------------------------------------------

def test_one_core_reads_weights_in_place_and_counts_it(board):
    launcher, name, timer_hz = board
    _, model = quantized("mixed", hidden=64)
    with launcher("pty") as qemu, loaded_client(qemu, model) as client:
        info = client.device_info
        assert info.target == name and info.cores == 1 and info.timer_hz == timer_hz
        seen: list = []
        started = time.monotonic()
        differing, _ = run_frames(client, QuantizedNetwork(model), random_frames(13), counters_seen=seen)
        elapsed_s = time.monotonic() - started
    counters = seen[-1]
    assert differing == []
    h, k = 64, 257
    assert counters.int8_macs == (2 * 4 * h * (h + h),)
    assert counters.fp16_macs == (h * k + k * h + k * k,)
    # One layer is one call: no barrier, no copy into L1, no DMA.
    assert counters.forks == 5 and counters.barrier_waits == 0
    # The clock runs in every frame, at the rate it claims: each reading is one load of a
    # free-running counter, so no frame reads 0 (a clock composed from SysTick's wraps did,
    # when the host starved QEMU), and the frames' time fits in the run's wall time.
    assert all(c.ticks > 0 for c in seen)
    assert sum(c.ticks for c in seen) / timer_hz < elapsed_s
    assert counters.l1_bytes_from == (0, 0, 0) and counters.dma_transfers == 0
    # The core's instructions once, as worker 0's (the controller slot is the same core).
    assert counters.instructions[0] == 0 and counters.instructions[1] > 100_000
    # The cost model's single-core schedule predicts these counters exactly.
    expected = firmware_work("mixed", "lstm", h, read_target("cortex-m7")).counters()
    assert FrameCounters.from_link(counters) == expected


@pytest.mark.parametrize("mode,cell", [("fp16", "lstm"), ("int8", "gru")])
def test_frames_are_bit_identical_to_the_golden_model(board, mode, cell):
    _, model = quantized(mode, cell, hidden=40, seed=7)
    with board[0]("tcp") as qemu, loaded_client(qemu, model) as client:
        differing, _ = run_frames(client, QuantizedNetwork(model), random_frames(30, seed=8))
    assert differing == []


def test_qemu_arm_never_outlives_a_killed_host(board):
    """The host process is SIGKILLed (no atexit, no finally): the kernel still ends QEMU."""
    assert_child_dies_with_killed_host("from streamer.link.qemu_arm import QemuArm, QemuM55\n"
                                       f"child = {board[0].__name__}('tcp').start()", "QEMU")


@pytest.mark.parametrize("target", ["cortex-m7", "cortex-m55"])
def test_the_build_refuses_a_fused_multiply_add(m7_image, tmp_path, target):
    """With contraction allowed the compiler fuses the kernels' multiply-adds (VFMA); the
    build's check must catch that and produce no image."""
    result = subprocess.run(["make", "-C", str(FIRMWARE), f"TARGET={target}", f"BUILD={tmp_path}",
                             "FPFLAGS=-ffp-contract=fast -fno-strict-aliasing"],
                            capture_output=True, text=True, timeout=TEST_DEADLINE_S - 10)
    assert result.returncode != 0
    assert "fused multiply-add in the image" in result.stdout + result.stderr
    image = {"cortex-m7": "tdn-qemu-m7.elf", "cortex-m55": "tdn-qemu-m55.elf"}[target]
    assert not (tmp_path / target / image).exists()


# --- real models on a shared pair: `streamer replay --backend qemu-m7 --verify` --------------------

@pytest.fixture(scope="module")
def lstm256_model(m7_image, tmp_path_factory) -> Path:
    """The default model (LSTM H = 256) when it exists and carries calibration."""
    from streamer.model import default_model_path, load_model

    default = default_model_path()
    if not (default.is_file() and load_model(default).calibration):
        pytest.skip(f"no calibrated default model at {default}")
    return default


@pytest.fixture(scope="module")
def unseen_gru128(m7_image, tmp_path_factory) -> Path:
    """A model no test was written against: random weights, GRU H = 128, calibrated (mixed needs
    it) on synthetic frames."""
    from test_link_device import calibrated, frames_of

    from streamer.model.fileformat import save_model

    params = random_params("gru", 128, seed=1234)
    out = tmp_path_factory.mktemp("m7-unseen") / "gru128.tdn"
    params.calibration = {"method": "synthetic frames", "ranges": calibrated(params, frames_of(
        200, seed=99, specials=False))}
    save_model(params, out)
    return out


def _verify(model: Path, quant: str, tmp_path: Path, backend: str = "qemu-m7") -> dict:
    pair = SHARED / "data" / "valentini" / "noisy" / f"{PAIR}.wav"
    if not pair.is_file():
        pytest.skip(f"{pair} not found")
    report = tmp_path / "report.json"
    before = child_pids()
    result = subprocess.run(
        [sys.executable, "-m", "streamer", "replay", str(pair), "--model", str(model), "--quant", quant,
         "--backend", backend, "--verify", "--target", "cortex-m7", "--out", str(tmp_path / "out.wav"),
         "--report", str(report)],
        capture_output=True, text=True, timeout=580, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert child_pids() <= before
    data = json.loads(report.read_text())
    assert find_key(data, "verify_mismatched_frames") == 0
    assert find_key(data, "frames_sent") == find_key(data, "frames_answered") > 250
    # The device's counters on every frame are the single-core schedule's (target cortex-m7).
    assert find_key(data, "counters_mismatch_frames") == 0
    # The device's clock against the work it timed: QEMU's TCG retires at most a few billion
    # instructions a second, so a frame's compute takes at least its instructions / 5e9 s (a
    # timer read at the wrong rate claims far less), and it lies within the frame's round trip.
    compute_ms, rtt_ms = find_key(data, "device_compute_ms"), find_key(data, "link_rtt_ms")
    assert sum(find_key(data, "instret_per_hart")) / 5e9 * 1e3 <= compute_ms["p50"] <= rtt_ms["p50"]
    return data


@pytest.mark.parametrize("quant", ["mixed", "fp16"])
def test_default_model_on_the_m7_is_bit_exact(lstm256_model, tmp_path, quant):
    data = _verify(lstm256_model, quant, tmp_path)
    per_hart = find_key(data, "instret_per_hart")
    assert len(per_hart) == 2 and per_hart[0] == 0 and per_hart[1] > 1_000_000


@pytest.mark.parametrize("quant", ["mixed", "fp16"])
def test_unseen_gru_on_the_m7_is_bit_exact(unseen_gru128, tmp_path, quant):
    _verify(unseen_gru128, quant, tmp_path)


def test_default_model_on_the_m55_is_bit_exact(lstm256_model, m55_image, tmp_path):
    """The Cortex-M55 build (MVE, GCC's vectoriser on at -O2): the same masks, every frame."""
    _verify(lstm256_model, "mixed", tmp_path, backend="qemu-m55")


# --- helpers ---------------------------------------------------------------------------------------

