"""The quantisation and device commands as a user runs them: quantize, info, replay --verify."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
from conftest import REPO, run_streamer
from helpers import require_tool
from test_cli import assert_one_line_error


def calib_folder(folder: Path, make_wav) -> Path:
    folder.mkdir()
    make_wav(folder / "a.wav", seconds=1.0, rate=48_000, noise=0.05, seed=1)
    make_wav(folder / "b.wav", seconds=1.0, noise=0.1, seed=2)
    return folder


def test_quantize_info_and_replay_in_every_mode(tmp_path: Path, make_wav, random_model: Path) -> None:
    calib = calib_folder(tmp_path / "calib", make_wav)
    noisy = make_wav(tmp_path / "noisy.wav", seconds=1.0, noise=0.05)
    mixed = tmp_path / "mixed.tdn"
    result = run_streamer("quantize", random_model, "--quant", "mixed", "--calib", calib,
                          "-o", mixed, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["files"] == ["a.wav", "b.wav"] and summary["quant"] == "mixed"

    info = json.loads(run_streamer("info", mixed, "--json").stdout)
    assert [m["quant"] for m in info["memory"]] == ["mixed"]
    assert info["memory"][0]["bytes_by_type"]["int8"] > 0
    text = run_streamer("info", random_model).stdout
    assert all(mode in text for mode in ("fp32", "fp16", "int8", "mixed")) and "lives in" in text

    calibrated = tmp_path / "calibrated.tdn"
    assert run_streamer("quantize", random_model, "--quant", "fp32", "--calib", calib,
                        "-o", calibrated).returncode == 0
    for model, quant in ((mixed, None), (calibrated, "int8"), (calibrated, "fp16"), (random_model, "fp16")):
        report = tmp_path / "r.json"
        args = ["replay", noisy, "--model", model, "--report", report, "--out", tmp_path / "o.wav"]
        result = run_streamer(*args, *(["--quant", quant] if quant else []))
        assert result.returncode == 0, result.stderr
        data = json.loads(report.read_text())
        assert data["quant"] == (quant or "mixed") and data["weights_bytes"] > 0

    assert_one_line_error(run_streamer("replay", noisy, "--model", random_model, "--quant", "mixed",
                                       "--out", tmp_path / "o.wav"), "streamer quantize")
    assert_one_line_error(run_streamer("replay", noisy, "--model", mixed, "--quant", "fp16",
                                       "--out", tmp_path / "o.wav"), "quantised for mixed")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run_streamer("quantize", random_model, "--quant", "mixed", "--calib",
                                       tmp_path / "empty", "-o", tmp_path / "x.tdn"), "no .wav")


def test_replay_on_the_simulator_verifies_bit_exactness(tmp_path: Path, make_wav, random_model: Path) -> None:
    require_tool("make")
    require_tool("gcc")
    if not (REPO / "firmware" / "Makefile").is_file():
        raise AssertionError("firmware/Makefile missing")
    noisy = make_wav(tmp_path / "noisy.wav", seconds=0.5, noise=0.05)
    clean = make_wav(tmp_path / "clean.wav", seconds=0.5)
    report = tmp_path / "r.json"
    result = run_streamer("replay", noisy, "--clean", clean, "--model", random_model, "--quant", "fp16",
                          "--backend", "sim", "--verify", "--report", report, "--out", tmp_path / "d.wav")
    assert result.returncode == 0, result.stderr
    data = json.loads(report.read_text())
    assert data["verify_mismatched_frames"] == 0 and data["backend"] == "sim"
    assert set(data["link_rtt_ms"]) == {"p50", "p99", "max", "mean"}
    assert data["last_counters"]["cores"] == 8 and data["weights_memory"] == "L2"
    # The device's output is what the emulator gives: the same file, sample for sample.
    emulated = tmp_path / "e.wav"
    assert run_streamer("replay", noisy, "--model", random_model, "--quant", "fp16",
                        "--out", emulated).returncode == 0
    np.testing.assert_array_equal(sf.read(tmp_path / "d.wav")[0], sf.read(emulated)[0])
    assert_one_line_error(run_streamer("replay", noisy, "--model", random_model, "--verify",
                                       "--out", tmp_path / "x.wav"), "device backend")


def test_eval_on_the_simulator_sums_verification_over_files(tmp_path: Path, make_wav,
                                                            random_model: Path) -> None:
    require_tool("make")
    require_tool("gcc")
    noisy, clean = tmp_path / "noisy", tmp_path / "clean"
    noisy.mkdir()
    clean.mkdir()
    for i in range(2):
        make_wav(noisy / f"f{i}.wav", seconds=0.4, noise=0.05, seed=i)
        make_wav(clean / f"f{i}.wav", seconds=0.4, seed=i)
    report = tmp_path / "r.json"
    result = run_streamer("eval", "--noisy", noisy, "--clean", clean, "--model", random_model,
                          "--quant", "fp16", "--backend", "sim", "--verify", "--jobs", "2",
                          "--report", report)
    assert result.returncode == 0, result.stderr
    data = json.loads(report.read_text())
    assert [f["verify_mismatched_frames"] for f in data["files"]] == [0, 0]
    assert data["verify_mismatched_frames"] == 0 and data["verify_first_mismatch_file"] is None
    assert sum(f["verify_compared_frames"] for f in data["files"]) == data["frames"]
