"""libtdn (firmware/lib) from Python: the native backend is the emulator to the bit, and the
library's own STFT path is the Python pipeline's to float32 precision.

Real parts: the library is the firmware's C built with `make -C firmware lib` and loaded with
ctypes; the comparisons are against the numpy emulator and streamer.pipeline.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from conftest import speechlike
from helpers import random_params

from streamer.backends.base import BackendError
from streamer.backends.emulator import EmulatorBackend
from streamer.backends.native import NativeBackend
from streamer.backends.registry import backend_help, open_backend
from streamer.backends.verify import VerifyingBackend
from streamer.engine import HOP_SAMPLES, StreamingStft
from streamer.link.blob import encode_blob
from streamer.model import load_model
from streamer.native import LATENCY, NativeError, NativeModel
from streamer.pipeline import Denoiser, enhance_signal
from streamer.quant.modes import QUANTIZED_MODES
from streamer.quant.network import quantize

RANGES = dict.fromkeys(("fc0.input", "rnn1.input", "rnn1.cell", "rnn2.cell", "fc2.input"), 4.0)


def frames_of(signal: np.ndarray) -> list[np.ndarray]:
    engine, out = StreamingStft(), []
    for k in range(len(signal) // HOP_SAMPLES):
        spectrum = engine.analyse(signal[k * HOP_SAMPLES:(k + 1) * HOP_SAMPLES])
        if spectrum is not None:
            out.append(np.abs(spectrum).astype(np.float32))
    return out


def small_model(cell: str, mode: str):
    return quantize(random_params(cell, 48, seed=5, scale=0.3), mode, RANGES)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("mode", QUANTIZED_MODES)
def test_native_masks_are_the_emulators_bits(cell, mode):
    model = small_model(cell, mode)
    native, emulator = NativeBackend(model), EmulatorBackend(model)
    frames = frames_of(speechlike(0.6, 16_000, seed=2) * 3.0)
    for index, frame in enumerate(frames):
        got, want = native.step(frame), emulator.step(frame)
        assert got.view(np.uint32).tobytes() == want.view(np.uint32).tobytes(), f"frame {index}"
    # reset zeroes the state: the first frame again gives the first mask again
    native.reset()
    emulator.reset()
    assert np.array_equal(native.step(frames[0]), emulator.step(frames[0]))
    native.close()


def test_verify_counts_a_native_backend_that_differs():
    # The integrity check itself: a native backend running another model is caught.
    other = quantize(random_params("lstm", 48, seed=6, scale=0.3), "fp16", RANGES)
    verifying = VerifyingBackend(NativeBackend(other), EmulatorBackend(small_model("lstm", "fp16")))
    for frame in frames_of(speechlike(0.3, 16_000, seed=1))[:10]:
        verifying.step(frame)
    assert verifying.report()["verify_mismatched_frames"] == 10
    assert verifying.report()["verify_first_mismatch_frame"] == 0
    verifying.close()


def test_open_backend_native_with_verify_and_without():
    model = small_model("gru", "mixed")
    with open_backend("native", model, verify=True) as backend:
        assert backend.is_device is False  # a verified native backend is still no device
        for frame in frames_of(speechlike(0.3, 16_000))[:8]:
            backend.step(frame)
        assert backend.report()["verify_mismatched_frames"] == 0
        assert backend.describe()["backend"] == "native"
    assert "'native'" in backend_help()
    with pytest.raises(BackendError, match="verify.*native or a device backend.*native, sim"):
        open_backend("emulator", model, verify=True)


def test_native_refuses_fp32():
    with pytest.raises(BackendError, match="fp32 runs only on the emulator"):
        NativeBackend(random_params("lstm", 32), quant=None)


@pytest.mark.parametrize("mode", QUANTIZED_MODES)
def test_replay_backend_native_verify_zero_differing_frames(mode, tmp_path, make_wav, streamer_cli):
    noisy = make_wav(tmp_path / "noisy.wav", seconds=1.0, noise=0.05)
    report = tmp_path / "r.json"
    result = streamer_cli("replay", noisy, "--backend", "native", "--quant", mode, "--verify",
                          "--report", report, "--out", tmp_path / "out.wav", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(report.read_text())
    assert data["backend"] == "native"
    assert data["verify_compared_frames"] == 162  # 163 hops of 16,000 + 300 samples, the first has no frame
    assert data["verify_mismatched_frames"] == 0
    assert "0 frame(s) differ from the emulator" in result.stdout
    # the enhanced file is the emulator's, sample for sample
    result = streamer_cli("replay", noisy, "--quant", mode, "--out", tmp_path / "emulated.wav", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.wav").read_bytes() == (tmp_path / "emulated.wav").read_bytes()


# --- the library's own audio path -----------------------------------------------------------

def python_path(model, signal: np.ndarray, atten_lim_db: float | None = None) -> np.ndarray:
    """pipeline.Denoiser over the emulator, hop by hop, without enhance_signal's alignment."""
    denoiser = Denoiser(EmulatorBackend(model), atten_lim_db=atten_lim_db)
    return np.concatenate([denoiser.push(signal[k:k + HOP_SAMPLES])
                           for k in range(0, len(signal), HOP_SAMPLES)])


def native_path(model, signal: np.ndarray, atten_lim_db: float | None = None,
                bypass: bool = False) -> np.ndarray:
    with NativeModel(encode_blob(model)) as lib:
        lib.set_atten_lim_db(atten_lim_db)
        lib.set_bypass(bypass)
        return np.concatenate([lib.process(signal[k:k + HOP_SAMPLES])
                               for k in range(0, len(signal), HOP_SAMPLES)])


def test_library_process_equals_the_python_pipeline():
    model = load_model()
    signal = speechlike(1.0, 16_000, seed=4).astype(np.float32).astype(np.float64)
    got = native_path(quantize_default(model, "int8"), signal)
    want = python_path(quantize_default(model, "int8"), signal)
    # float32 output of the same float64 path; both start with the stream's silent lead-in
    assert not got[:LATENCY].any() and not want[:LATENCY].any()
    assert np.max(np.abs(got - want)) < 1e-6
    assert np.max(np.abs(want)) > 0.05  # and it is audio, not silence
    # enhance_signal removes exactly the library's latency
    aligned = enhance_signal(Denoiser(EmulatorBackend(quantize_default(model, "int8"))), signal)
    assert np.max(np.abs(got[LATENCY:] - aligned[:len(signal) - LATENCY])) < 1e-6


def quantize_default(model, mode):
    from streamer.backends.link import device_model

    return device_model(model, mode)


@pytest.mark.parametrize("atten", [12.0, 3.5])
def test_library_attenuation_limit_matches_the_pipelines(atten):
    model = small_model("lstm", "fp16")
    signal = speechlike(0.5, 16_000, seed=7).astype(np.float32).astype(np.float64)
    got = native_path(model, signal, atten)
    assert np.max(np.abs(got - python_path(model, signal, atten))[LATENCY:]) < 1e-6
    assert np.max(np.abs(got - native_path(model, signal))) > 1e-3  # the limit does something


def test_library_zero_db_limit_and_bypass_pass_the_input_through():
    model = small_model("gru", "int8")
    signal = speechlike(0.5, 16_000, seed=8).astype(np.float32).astype(np.float64)
    for out in (native_path(model, signal, 0.0), native_path(model, signal, bypass=True)):
        assert np.max(np.abs(out[LATENCY:] - signal[:-LATENCY])) < 1e-6
        assert np.max(np.abs(out[:LATENCY])) < 1e-6


def test_library_reset_starts_the_stream_again():
    model = small_model("lstm", "mixed")
    signal = speechlike(0.3, 16_000, seed=9).astype(np.float32)
    with NativeModel(encode_blob(model)) as lib:
        first = [lib.process(signal[k:k + HOP_SAMPLES]) for k in range(0, len(signal), HOP_SAMPLES)]
        lib.reset()
        again = [lib.process(signal[k:k + HOP_SAMPLES]) for k in range(0, len(signal), HOP_SAMPLES)]
    assert np.array_equal(np.concatenate(first), np.concatenate(again))


def test_library_refuses_bad_blobs_and_values_with_a_reason():
    blob = bytearray(encode_blob(small_model("lstm", "fp16")))
    with pytest.raises(NativeError, match="shorter than its header"):
        NativeModel(b"TDNB")
    with pytest.raises(NativeError, match="magic"):
        NativeModel(b"XDNB" + bytes(blob[4:]))
    with pytest.raises(NativeError, match="refused the model blob"):
        NativeModel(bytes(blob[:-2]))  # truncated
    with NativeModel(bytes(blob)) as lib:
        assert lib.info() == {"mode": 1, "cell": 0, "hidden": 48, "blob_bytes": len(blob)}
        with pytest.raises(NativeError, match=">= 0"):
            lib.set_atten_lim_db(-0.5)
        with pytest.raises(ValueError, match="100 samples"):
            lib.process(np.zeros(99, np.float32))
    with pytest.raises(NativeError, match="closed"):
        lib.reset()


def test_live_processor_runs_the_native_backend():
    """`streamer live`'s callback and worker (driven by hand, as PortAudio would) with
    --backend native: what it plays is the offline pipeline's output, one slack block later."""
    from types import SimpleNamespace

    from streamer.live import ENHANCED, LiveProcessor

    class Flags(SimpleNamespace):
        def __bool__(self) -> bool:
            return False

    flags = Flags(input_overflow=False, input_underflow=False, output_underflow=False,
                  output_overflow=False)
    model = small_model("lstm", "int8")
    signal = (speechlike(0.4, 16_000, seed=3)).astype(np.float32)
    processor = LiveProcessor(Denoiser(NativeBackend(model)), slack_blocks=1)
    processor.start()
    played = []
    try:
        for k in range(len(signal) // HOP_SAMPLES):
            out = np.zeros((HOP_SAMPLES, 1), np.float32)
            t = k * HOP_SAMPLES / 16_000
            info = SimpleNamespace(inputBufferAdcTime=t, outputBufferDacTime=t + 0.01, currentTime=t)
            processor.callback(signal[k * HOP_SAMPLES:(k + 1) * HOP_SAMPLES, None], out, HOP_SAMPLES,
                               info, flags)
            played.append(out[:, 0].copy())
            deadline = time.monotonic() + 10
            while processor.processed < k + 1:
                assert time.monotonic() < deadline, "worker stuck"
                time.sleep(0.001)
    finally:
        processor.stop()
    got = np.concatenate(played)
    want = python_path(model, signal.astype(np.float64))
    assert not got[:HOP_SAMPLES].any()  # the slack block
    # float32 of the same float64 path (rtol: the stream's first samples reach ~50x full scale)
    np.testing.assert_allclose(got[HOP_SAMPLES:], want[:len(got) - HOP_SAMPLES], rtol=1e-6, atol=1e-6)
    assert (processor.cb_info[1:len(played), 3] == ENHANCED).all()


def test_eval_backend_native_verifies_every_file(tmp_path, make_wav, streamer_cli):
    for folder, noise in (("noisy", 0.05), ("clean", 0.0)):
        (tmp_path / folder).mkdir()
        for name, seed in (("a.wav", 1), ("b.wav", 2)):
            make_wav(tmp_path / folder / name, seconds=1.0, seed=seed, noise=noise)
    report = tmp_path / "r.json"
    result = streamer_cli("eval", "--noisy", tmp_path / "noisy", "--clean", tmp_path / "clean",
                          "--backend", "native", "--quant", "int8", "--verify", "--report", report,
                          cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(report.read_text())
    assert data["backend"] == "native"
    assert data["verify_mismatched_frames"] == 0 and data["frames"] == 2 * 162
    assert data["files_evaluated"] == 2
