"""The firmware on QEMU RV32 (`--backend qemu`): 1 controller + 8 worker harts, the 16550 UART
as the link. The same link code and the same fault tests as the host simulator, masks
bit-identical to the emulator on shared Valentini pairs in mixed and fp16, and per-hart
instruction counts in the reports.

Needs qemu-system-riscv32, riscv64-unknown-elf-gcc (+ picolibc), make and gcc: a missing tool
skips with its name, except under CI (require_tool). The image is built once per session.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import deadline, find_key, frame_bits, random_frames, require_tool

# The link fault tests, run here against QEMU through this module's `sim` fixture.
from test_link_device import (  # noqa: F401 - collected by pytest from this module
    assert_child_dies_with_killed_host,
    child_pids,
    loaded_client,
    quantized,
    run_frames,
    running,
    test_a_damaged_request_costs_only_its_frame,
    test_device_killed_mid_stream_restarts_and_reloads,
    test_garbage_between_packets_is_skipped,
    test_late_replies_are_discarded_and_counted,
    test_raw_damaged_packets_between_good_requests,
    test_unanswered_requests_never_hang,
)

from streamer.link.device import DeviceClient
from streamer.link.qemu import Qemu, build_qemu_image
from streamer.quant.network import QuantizedNetwork

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
TEST_DEADLINE_S = 180
PAIRS = ("p232_050", "p257_114")  # two of the shared Valentini pairs (about 280 and 300 frames)


def require_qemu_tools() -> None:
    for tool in ("qemu-system-riscv32", "riscv64-unknown-elf-gcc", "make", "gcc"):
        require_tool(tool)


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    with deadline(TEST_DEADLINE_S, "QEMU or the link hung"):
        yield


@pytest.fixture(scope="module")
def qemu_image() -> Path:
    require_qemu_tools()
    return build_qemu_image()  # once, outside every test's deadline


@pytest.fixture(params=["pty", "tcp"])
def sim(request, qemu_image) -> Iterator[Qemu]:
    """QEMU in place of the host simulator: the fault tests imported above use this."""
    before = child_pids()
    with Qemu(request.param) as qemu:
        yield qemu
    assert child_pids() <= before, "a QEMU process outlived its test"


# --- the device ------------------------------------------------------------------------------------

def test_device_info_and_counters_per_hart(sim):
    _, model = quantized("mixed", hidden=64)
    with loaded_client(sim, model) as client:
        info = client.device_info
        assert info.target == "qemu-rv32" and info.cores == 8 and info.timer_hz == 10_000_000
        differing, _ = run_frames(client, QuantizedNetwork(model), random_frames(12))
        _, counters = client.frame(12, frame_bits(random_frames(13)[12]))
    assert differing == []
    h, k = 64, 257
    assert sum(counters.int8_macs) == 2 * 4 * h * (h + h)
    assert sum(counters.fp16_macs) == h * k + k * h + k * k
    assert counters.forks == 5 and counters.ticks > 0
    # Retired instructions per hart, controller first: every worker computed its share.
    assert len(counters.instructions) == 9
    workers = counters.instructions[1:]
    assert min(workers) > 10_000 and max(workers) / (sum(workers) / 8) < 1.2


@pytest.mark.parametrize("mode,cell", [("fp16", "lstm"), ("int8", "gru")])
def test_frames_are_bit_identical_to_the_golden_model(qemu_image, mode, cell):
    _, model = quantized(mode, cell, hidden=40, seed=7)
    with Qemu("tcp") as qemu, loaded_client(qemu, model) as client:
        differing, _ = run_frames(client, QuantizedNetwork(model), random_frames(30, seed=8))
    assert differing == []


def test_qemu_never_outlives_a_killed_host(qemu_image):
    """The host process is SIGKILLed (no atexit, no finally): the kernel still ends QEMU."""
    assert_child_dies_with_killed_host("from streamer.link.qemu import Qemu\n"
                                       "child = Qemu('tcp').start()", "QEMU")


def test_interrupted_replay_leaves_no_process_and_no_file(qemu_image, tmp_path):
    """Ctrl-C (SIGINT) in the middle of a replay on QEMU: QEMU stops and its RAM file is gone."""
    import soundfile

    ram_dir = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    ram_files = set(ram_dir.glob("tdn-qemu-ram-*"))
    noisy = tmp_path / "noisy.wav"
    noise = np.random.default_rng(0).standard_normal(16000 * 20).astype(np.float32) * 0.1
    soundfile.write(noisy, noise, 16000)
    process = subprocess.Popen([sys.executable, "-m", "streamer", "replay", str(noisy), "--backend", "qemu",
                                "--quant", "fp16", "--model", str(_small_model(tmp_path)),
                                "--out", str(tmp_path / "out.wav")],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    qemu = set()
    while not qemu and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
        qemu = {pid for pid in child_pids(process.pid, live_only=False) if "qemu" in _comm(pid)}
    assert qemu, "QEMU did not start"
    time.sleep(3)  # uploading or streaming by now
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=30)
    assert process.returncode != 0
    for pid in qemu:
        end = time.monotonic() + 5
        while running(pid) and time.monotonic() < end:
            time.sleep(0.05)
        assert not running(pid), "QEMU outlived an interrupted replay"
    assert not set(ram_dir.glob("tdn-qemu-ram-*")) - ram_files


def test_close_leaves_no_process_and_no_file(qemu_image):
    qemu = Qemu("pty").start()
    pid = qemu.pid
    assert pid is not None and qemu._ram_file is None  # unlinked once QEMU mapped it
    with DeviceClient(qemu.connect) as client:
        assert client.info().target == "qemu-rv32"
    qemu.close()
    assert not running(pid)


# --- the real model on shared pairs: `streamer replay --backend qemu --verify` ---------------------

@pytest.fixture(scope="module")
def lstm256_model(qemu_image, tmp_path_factory) -> Path:
    """The default model when it exists and carries calibration; else tt_denoiser_rank_8
    calibrated on the shared calibration set (both LSTM H = 256)."""
    from streamer.model import default_model_path, load_model

    default = default_model_path()
    if default.is_file() and load_model(default).calibration:
        return default
    onnx = SHARED / "models" / "tt_denoiser_rank_8.onnx"
    calib = SHARED / "data" / "calibration"
    if not (onnx.is_file() and calib.is_dir()):
        pytest.skip(f"no calibrated default model and no {onnx} + {calib} to make one")
    out = tmp_path_factory.mktemp("qemu-model") / "rank8.tdn"
    subprocess.run([sys.executable, "-m", "streamer", "quantize", str(onnx), "--quant", "fp32",
                    "--calib", str(calib), "-o", str(out)], check=True, capture_output=True, timeout=300)
    return out


@pytest.mark.parametrize("quant", ["mixed", "fp16"])
@pytest.mark.parametrize("pair", PAIRS)
def test_replay_on_qemu_is_bit_exact(lstm256_model, tmp_path, quant, pair):
    noisy = SHARED / "data" / "valentini" / "noisy" / f"{pair}.wav"
    if not noisy.is_file():
        pytest.skip(f"{noisy} not found")
    report = tmp_path / "report.json"
    before = child_pids()
    result = subprocess.run(
        [sys.executable, "-m", "streamer", "replay", str(noisy), "--model", str(lstm256_model),
         "--quant", quant, "--backend", "qemu", "--verify", "--out", str(tmp_path / "out.wav"),
         "--report", str(report)],
        capture_output=True, text=True, timeout=TEST_DEADLINE_S - 10, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(report.read_text())
    info = find_key(data, "instret_per_hart")
    assert find_key(data, "verify_mismatched_frames") == 0
    assert find_key(data, "frames_sent") == find_key(data, "frames_answered") > 250
    # 9 harts, controller first; the 8 workers share the work evenly.
    assert len(info) == 9 and min(info[1:]) > 100_000
    assert 1.0 <= find_key(data, "instret_worker_imbalance") < 1.05
    assert child_pids() <= before


def test_a_model_split_across_l2_and_mram_is_bit_exact_on_qemu(qemu_image, tmp_path, make_wav):
    """The placement planner spreads a 2.5 MB fp16 H = 256 model over L2 and MRAM; every tile
    is read from two levels, and the masks stay bit-identical to the emulator's."""
    from helpers import random_params

    from streamer.model.fileformat import save_model

    noisy = make_wav(tmp_path / "noisy.wav", seconds=0.5, seed=3, noise=0.05)
    model = tmp_path / "h256.tdn"
    save_model(random_params("lstm", 256, seed=6), model)
    report = tmp_path / "r.json"
    result = subprocess.run(
        [sys.executable, "-m", "streamer", "replay", str(noisy), "--model", str(model), "--quant", "fp16",
         "--backend", "qemu", "--verify", "--out", str(tmp_path / "out.wav"), "--report", str(report)],
        capture_output=True, text=True, timeout=TEST_DEADLINE_S - 10, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(report.read_text())
    assert find_key(data, "weights_level") == "L2+MRAM"
    assert find_key(data, "verify_mismatched_frames") == 0 and find_key(data, "frames_answered") > 70
    # QEMU's MODEL_END reports the cost model's plan, tile by tile
    from streamer.costmodel import firmware_work
    from streamer.target import read_target

    plan = data["backend_info"]["model"]["plan"]
    expected = firmware_work("fp16", "lstm", 256, read_target()).cuts()
    assert [[tuple(c) for c in layer["cuts"]] for layer in plan.values()] == [list(c) for c in expected]


# --- helpers ---------------------------------------------------------------------------------------

def _small_model(folder: Path) -> Path:
    from helpers import random_params

    from streamer.model.fileformat import save_model

    path = folder / "small.tdn"
    save_model(random_params("lstm", 32, seed=1), path)
    return path


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text()
    except OSError:
        return ""


