"""The LADSPA plugin (`streamer plugin`) in real hosts: applyplugin and analyseplugin (Debian
ladspa-sdk), sox's ladspa effect, and firmware/tools/ladspa_run.c (any block size, in place,
allocation counting, ASan + UBSan). Its output must equal `streamer replay --quant Q` of the same
file, sample for sample after the latency the plugin reports, within 2 LSB of 16-bit audio.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import run_streamer, speechlike
from helpers import require_tool

from streamer.native import FIRMWARE_DIR, make
from streamer.quant.modes import QUANTIZED_MODES

LSB = 1.0 / 32768.0
SECONDS = 3.0
LADSPA_RUN = FIRMWARE_DIR / "build" / "lib" / "ladspa-run"
LADSPA_RUN_SAN = FIRMWARE_DIR / "build" / "lib-san" / "ladspa-run"
SAN_ENV = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1",
           "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    require_tool("make")
    require_tool("gcc")
    if not Path("/usr/include/ladspa.h").is_file():
        require_tool("ladspa.h (Debian ladspa-sdk)")  # skips, or fails under CI
    folder = tmp_path_factory.mktemp("plugin")
    noisy = speechlike(SECONDS, 16_000, seed=11) + 0.03 * np.random.default_rng(5).standard_normal(
        int(SECONDS * 16_000))
    soundfile.write(str(folder / "noisy.wav"), np.clip(noisy, -1, 1), 16_000, subtype="PCM_16")
    soundfile.write(str(folder / "noisy48k.wav"), np.zeros(4800), 48_000, subtype="PCM_16")
    # the plugin's input as float32, followed by a second of silence to flush its latency
    samples, _ = soundfile.read(str(folder / "noisy.wav"), dtype="float32")
    np.concatenate([samples, np.zeros(16_000, np.float32)]).tofile(folder / "noisy.f32")
    make("lib")
    for mode in QUANTIZED_MODES:
        result = run_streamer("plugin", "--quant", mode, "-o", folder / f"tdn_{mode}.so")
        assert result.returncode == 0, result.stderr
        result = run_streamer("replay", folder / "noisy.wav", "--quant", mode, "--out",
                              folder / f"replay_{mode}.wav", cwd=folder)
        assert result.returncode == 0, result.stderr
    return folder


def pcm(path: Path) -> np.ndarray:
    return soundfile.read(str(path), dtype="int16")[0].astype(np.int64)


def ladspa_run(work: Path, plugin: Path, block: int, *controls: str, binary: Path = LADSPA_RUN,
               env: dict | None = None) -> tuple[np.ndarray, dict[str, float], subprocess.CompletedProcess]:
    out = work / f"out_{plugin.stem}_{block}.f32"
    result = subprocess.run([str(binary), str(plugin), str(work / "noisy.f32"), str(out), str(block),
                             *controls], capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, **(env or {})))
    assert result.returncode == 0, result.stderr
    facts = {line.split()[0]: float(line.split()[1]) for line in result.stdout.splitlines()}
    return np.fromfile(out, np.float32), facts, result


@pytest.mark.parametrize("mode", QUANTIZED_MODES)
def test_applyplugin_output_is_replays_after_the_reported_latency(work, mode):
    applyplugin = require_tool("applyplugin")
    _, facts, _ = ladspa_run(work, work / f"tdn_{mode}.so", 1024)
    latency = int(facts["latency"])
    assert latency == 400
    out = work / f"applyplugin_{mode}.wav"
    # -s1: a second of silence after the input flushes the latency; controls: no limit, no bypass
    result = subprocess.run([applyplugin, "-s1", str(work / "noisy.wav"), str(out),
                             str(work / f"tdn_{mode}.so"), f"tdn_denoise_{mode}", "100", "0"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    got, want = pcm(out), pcm(work / f"replay_{mode}.wav")
    aligned = got[latency:latency + len(want)]
    assert len(aligned) == len(want) == SECONDS * 16_000
    assert np.max(np.abs(aligned - want)) <= 2
    assert np.max(np.abs(want)) > 1000  # enhanced speech, not silence


@pytest.mark.parametrize("mode", QUANTIZED_MODES)
def test_sox_ladspa_output_is_replays(work, mode):
    sox = require_tool("sox")
    out = work / f"sox_{mode}.wav"
    # -D: no dither (sox dithers when it reduces to 16 bits); -l: sox reads the latency port,
    # drops that many samples and flushes at the end, so the output is aligned with the input
    result = subprocess.run([sox, "-D", str(work / "noisy.wav"), str(out), "ladspa", "-l",
                             str(work / f"tdn_{mode}.so"), f"tdn_denoise_{mode}"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    got, want = pcm(out), pcm(work / f"replay_{mode}.wav")
    assert len(got) == len(want)
    assert np.max(np.abs(got - want)) <= 2


@pytest.mark.parametrize("mode", QUANTIZED_MODES)
def test_ffmpeg_ladspa_output_is_replays(work, mode):
    """The README's ffmpeg line: `latency=1` makes ffmpeg read the latency port, drop that many
    samples and flush at the end, so the output is aligned with the input and as long."""
    ffmpeg = require_tool("ffmpeg")
    out = work / f"ffmpeg_{mode}.wav"
    result = subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
                             "-i", str(work / "noisy.wav"),
                             "-af", f"ladspa=file={work / f'tdn_{mode}.so'}:plugin=tdn_denoise_{mode}:"
                                    f"controls=c0=100|c1=0:latency=1", "-c:a", "pcm_s16le", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    got, want = pcm(out), pcm(work / f"replay_{mode}.wav")
    assert len(got) == len(want)
    assert np.max(np.abs(got - want)) <= 2  # ffmpeg's own rounding to 16 bits: 1 LSB here


def test_sox_with_explicit_controls_and_the_latency_by_hand(work):
    sox = require_tool("sox")
    out = work / "sox_hand.wav"
    # sox asks a value for every control port, the output one too; pad before the plugin flushes
    result = subprocess.run([sox, "-D", str(work / "noisy.wav"), str(out), "pad", "0", "1", "ladspa",
                             str(work / "tdn_int8.so"), "tdn_denoise_int8", "100", "0", "0"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    got, want = pcm(out), pcm(work / "replay_int8.wav")
    assert np.max(np.abs(got[400:400 + len(want)] - want)) <= 2


def test_analyseplugin_lists_the_ports(work):
    analyseplugin = require_tool("analyseplugin")
    result = subprocess.run([analyseplugin, str(work / "tdn_mixed.so")], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert 'Plugin Label: "tdn_denoise_mixed"' in text
    assert "Environment: Normal or Hard Real-Time" in text
    assert '"Input" input, audio' in text
    assert '"Output" output, audio' in text
    assert '"Attenuation limit (dB, 100 = none)" input, control, 0 to 100, default 100' in text
    assert '"Bypass" input, control, toggled, default 0' in text
    assert '"latency" output, control' in text


def test_any_block_size_gives_the_same_output(work):
    plugin = work / "tdn_fp16.so"
    outputs = {block: ladspa_run(work, plugin, block)[0] for block in (1, 37, 256, 1024)}
    in_place, _, _ = ladspa_run(work, plugin, 37, env={"INPLACE": "1"})
    for block, out in outputs.items():
        assert out.tobytes() == outputs[1].tobytes(), f"block {block}"
    assert in_place.tobytes() == outputs[1].tobytes()
    assert not outputs[1][:400].any()  # the start of a stream is silence, not a click
    want = pcm(work / "replay_fp16.wav") * LSB
    assert np.max(np.abs(outputs[37][400:400 + len(want)] - want)) <= 1.0 * LSB  # replay's rounding


def test_run_allocates_nothing_and_the_plugin_takes_no_locks(work):
    _, facts, _ = ladspa_run(work, work / "tdn_int8.so", 37)
    assert facts["allocations_in_run"] == 0
    assert facts["allocations_outside_run"] > 0  # the counter counts: instantiate allocates
    symbols = subprocess.run(["nm", "-D", "--undefined-only", str(work / "tdn_int8.so")],
                             capture_output=True, text=True, check=True).stdout
    assert "pthread" not in symbols and "sem_" not in symbols


def test_attenuation_port_matches_replay_atten_lim_db(work):
    result = run_streamer("replay", work / "noisy.wav", "--quant", "int8", "--atten-lim-db", "12",
                          "--out", work / "replay_int8_12.wav", cwd=work)
    assert result.returncode == 0, result.stderr
    limited, _, _ = ladspa_run(work, work / "tdn_int8.so", 256, "12", "0")
    want = pcm(work / "replay_int8_12.wav") * LSB
    assert np.max(np.abs(limited[400:400 + len(want)] - want)) <= 1.0 * LSB
    unlimited = pcm(work / "replay_int8.wav") * LSB
    assert np.max(np.abs(want - unlimited)) > 100 * LSB  # the limit changes the output


def test_bypass_port_passes_the_input_delayed_by_the_latency(work):
    out, facts, _ = ladspa_run(work, work / "tdn_mixed.so", 256, "100", "1")
    samples = np.fromfile(work / "noisy.f32", np.float32)
    latency = int(facts["latency"])
    assert np.max(np.abs(out[latency:] - samples[:len(samples) - latency])) < 1e-6
    assert np.max(np.abs(out[:latency])) < 1e-6


def test_other_sample_rates_are_refused_through_the_host(work):
    result = subprocess.run([str(LADSPA_RUN), str(work / "tdn_fp16.so"), str(work / "noisy.f32"),
                             str(work / "x.f32"), "100"], capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, TDN_RATE="48000"))
    assert result.returncode == 3
    assert "runs at 16000 Hz only, the host asked for 48000 Hz" in result.stderr
    applyplugin = require_tool("applyplugin")
    result = subprocess.run([applyplugin, str(work / "noisy48k.wav"), str(work / "x.wav"),
                             str(work / "tdn_fp16.so"), "tdn_denoise_fp16", "100", "0"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "16000 Hz only" in result.stderr


def test_plugin_under_asan_and_ubsan(work):
    from streamer.model import load_model
    from streamer.plugin import write_plugin

    make("lib", "LIB_SAN=1")
    plugin = write_plugin(load_model(), "mixed", work / "san_mixed.so", sanitize=True).path
    plain, _, _ = ladspa_run(work, work / "tdn_mixed.so", 37, "12", "0")
    # the whole input (3 s and the flush), with a limit so the floor's path runs too
    checked, facts, result = ladspa_run(work, plugin, 37, "12", "0", binary=LADSPA_RUN_SAN, env=SAN_ENV)
    assert "runtime error" not in result.stderr and "AddressSanitizer" not in result.stderr
    assert facts["latency"] == 400
    assert checked.tobytes() == plain.tobytes()


def test_plugin_command_errors_are_one_line(work, tmp_path):
    result = run_streamer("plugin", "--quant", "fp32", "-o", tmp_path / "x.so")
    assert result.returncode == 2
    assert "fp32 runs only on the emulator" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = run_streamer("plugin", "--quant", "int8", "-o", tmp_path)
    assert result.returncode == 2 and "is a folder" in result.stderr
    result = run_streamer("plugin", "--quant", "int8", "--label", "has space", "-o", tmp_path / "y.so")
    assert result.returncode == 2 and "no white space" in result.stderr
    assert not list(tmp_path.iterdir())  # nothing written on failure
    result = run_streamer("plugin", "--quant", "fp16", "--label", "mine", "--id", "4242", "--json",
                          "-o", tmp_path / "mine.so")
    assert result.returncode == 0, result.stderr
    assert '"unique_id": 4242' in result.stdout and '"latency_samples": 400' in result.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["mine.so"]  # no temporary left behind
