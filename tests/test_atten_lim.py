"""--atten-lim-db: the mask floor on the host (pipeline), its CLI options and reports, and 'off' bit-exact."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from streamer.audio import output_subtype, read_audio, write_audio
from streamer.backends.base import Backend
from streamer.backends.emulator import EmulatorBackend
from streamer.cli import main
from streamer.engine import ALGORITHMIC_LATENCY_SAMPLES, HOP_SAMPLES, N_BINS
from streamer.model import load_model
from streamer.pipeline import Denoiser, FrameEvent, PipelineError, enhance_signal, mask_floor

# 10 ** (-6 / 20) = 0.50118723362727...; the nearest float32 is 0.501187205314636...
FLOOR_6DB = np.float32(0.5011872)


class FixedMaskBackend(Backend):
    """Test double for a network whose mask is known in advance: every step returns `mask`.

    The floor is applied on the host after any backend, so a fixed mask isolates it exactly
    (a real network's mask would depend on its weights and state).
    """

    name = "fixed-mask"

    def __init__(self, mask: np.ndarray) -> None:
        self.mask = np.asarray(mask, np.float32)
        self.returned: list[np.ndarray] = []

    def step(self, magnitudes: np.ndarray) -> np.ndarray:
        out = self.mask.copy()
        self.returned.append(out)
        return out

    def reset(self) -> None:
        self.returned.clear()


def stream(denoiser: Denoiser, signal: np.ndarray) -> np.ndarray:
    """Push whole blocks of `signal` (a multiple of the hop); the raw output, latency included."""
    return np.concatenate([denoiser.push(block) for block in signal.reshape(-1, HOP_SAMPLES)])


def test_mask_floor_formula():
    assert mask_floor(None) is None
    assert mask_floor(6) == FLOOR_6DB and mask_floor(6.0) == pytest.approx(0.50118723, abs=1e-7)
    assert mask_floor(0) == 1.0
    assert mask_floor(20) == np.float32(0.1)
    for value in (3, 6, 12.5, 40):
        assert mask_floor(value) == float(np.float32(10 ** (-value / 20)))


def test_zero_mask_gives_the_input_scaled_by_the_floor():
    x = np.random.default_rng(0).uniform(-0.9, 0.9, 16_000)
    events: list[FrameEvent] = []
    denoiser = Denoiser(FixedMaskBackend(np.zeros(N_BINS)), [events.append], atten_lim_db=6)
    y = stream(denoiser, x)
    # Every mask is the floor, so the engine reproduces the input times 0.5011872, 300 samples late.
    np.testing.assert_allclose(y[ALGORITHMIC_LATENCY_SAMPLES:], FLOOR_6DB * x[:-ALGORITHMIC_LATENCY_SAMPLES],
                               rtol=0, atol=1e-12)
    assert np.max(np.abs(y[:ALGORITHMIC_LATENCY_SAMPLES])) < 1e-12  # before the input arrives
    assert len(events) == len(x) // HOP_SAMPLES - 1
    assert all(e.mask.dtype == np.float32 and np.all(e.mask == FLOOR_6DB) for e in events)


def test_without_a_limit_the_zero_mask_silences():
    x = np.random.default_rng(1).uniform(-0.9, 0.9, 4_000)
    assert np.all(stream(Denoiser(FixedMaskBackend(np.zeros(N_BINS))), x) == 0)


@pytest.mark.parametrize("atten_lim_db", [20, 6, 0])
def test_masks_below_the_floor_are_raised_to_it_the_rest_unchanged(atten_lim_db):
    ramp = np.linspace(0, 1, N_BINS, dtype=np.float32)
    backend = FixedMaskBackend(ramp)
    events: list[FrameEvent] = []
    denoiser = Denoiser(backend, [events.append], atten_lim_db=atten_lim_db)
    stream(denoiser, np.random.default_rng(2).standard_normal(1_000) * 0.1)
    floor = np.float32(mask_floor(atten_lim_db))
    below = ramp < floor
    assert events and below.any()
    for event, returned in zip(events, backend.returned, strict=True):
        assert event.mask.dtype == np.float32
        assert np.all(event.mask[below] == floor)
        assert np.array_equal(event.mask[~below], ramp[~below])   # bit for bit
        assert np.array_equal(returned, ramp)                      # the backend's array is not modified


def test_off_passes_the_networks_mask_through_untouched():
    backend = FixedMaskBackend(np.linspace(0, 1, N_BINS))
    events: list[FrameEvent] = []
    stream(Denoiser(backend, [events.append]), np.ones(500) * 0.1)
    assert events and all(e.mask is r for e, r in zip(events, backend.returned, strict=True))


@pytest.mark.parametrize("value", [-0.5, -6, math.nan, math.inf, -math.inf])
def test_a_negative_or_non_finite_limit_is_refused(value):
    with pytest.raises(PipelineError, match="--atten-lim-db must be a finite number of dB >= 0"):
        Denoiser(FixedMaskBackend(np.ones(N_BINS)), atten_lim_db=value)
    assert issubclass(PipelineError, ValueError)


# --- CLI: replay and eval ---------------------------------------------------------------------

def _enhance_like_the_cli(model: Path, noisy: Path, out: Path, atten_lim_db: float | None,
                          quant: str | None = None) -> Path:
    """What `streamer replay` writes, computed here directly: read, enhance, write the input's format."""
    audio = read_audio(noisy)
    denoiser = Denoiser(EmulatorBackend(load_model(model), quant), atten_lim_db=atten_lim_db)
    return write_audio(out, enhance_signal(denoiser, audio.samples), 16_000,
                       output_subtype(audio.source_subtype))


def test_replay_off_is_bit_identical_and_the_report_records_the_limit(tmp_path, random_model, make_wav,
                                                                      streamer_cli):
    noisy = make_wav(tmp_path / "noisy.wav", seconds=1.0, noise=0.05)
    runs = {}
    for name, flag in (("off", []), ("3db", ["--atten-lim-db", "3"])):
        out, report = tmp_path / f"{name}.wav", tmp_path / f"{name}.json"
        done = streamer_cli("replay", noisy, "--model", random_model, "--out", out, "--report", report, *flag)
        assert done.returncode == 0, done.stderr
        runs[name] = (out.read_bytes(), json.loads(report.read_text()))
    off = _enhance_like_the_cli(random_model, noisy, tmp_path / "direct_off.wav", None).read_bytes()
    limited = _enhance_like_the_cli(random_model, noisy, tmp_path / "direct_3db.wav", 3).read_bytes()
    assert runs["off"][0] == off                 # no flag: the pre-existing path, byte for byte
    assert runs["3db"][0] == limited != off      # the flag reaches the Denoiser and changes the audio
    assert runs["off"][1]["atten_lim_db"] is None
    assert runs["3db"][1]["atten_lim_db"] == 3.0


def test_eval_passes_the_limit_to_its_workers_and_reports_it(tmp_path, random_model, make_wav, capsys):
    for folder in ("noisy", "clean"):
        (tmp_path / folder).mkdir()
    for name, seed in (("a.wav", 1), ("b.wav", 2)):
        make_wav(tmp_path / "noisy" / name, seconds=0.5, seed=seed, noise=0.05)
        make_wav(tmp_path / "clean" / name, seconds=0.5, seed=seed)
    reports = {}
    # fp16: eval's rolling batch gives a stream's bits exactly as it streamed alone (in fp32 only
    # within float32 rounding, which can move an output sample by one step of 16 bits).
    for name, flag, jobs in (("off", [], "1"), ("6db", ["--atten-lim-db", "6"], "2")):
        report = tmp_path / f"{name}.json"
        assert main(["eval", "--noisy", str(tmp_path / "noisy"), "--clean", str(tmp_path / "clean"),
                     "--model", str(random_model), "--quant", "fp16", "--jobs", jobs,
                     "--out-dir", str(tmp_path / name), "--report", str(report), *flag]) == 0
        reports[name] = json.loads(report.read_text())
    assert "suppression limited to 6 dB" in capsys.readouterr().out
    assert reports["off"]["atten_lim_db"] is None and reports["6db"]["atten_lim_db"] == 6.0
    assert reports["6db"]["jobs"] == 2
    for name in ("a.wav", "b.wav"):  # written by the worker processes
        noisy = tmp_path / "noisy" / name
        for run, limit in (("off", None), ("6db", 6)):
            direct = _enhance_like_the_cli(random_model, noisy, tmp_path / f"direct_{run}_{name}", limit,
                                           "fp16")
            assert (tmp_path / run / name).read_bytes() == direct.read_bytes()


def test_replay_refuses_a_negative_limit_in_one_line(tmp_path, make_wav, streamer_cli):
    noisy = make_wav(tmp_path / "noisy.wav", seconds=0.2)
    done = streamer_cli("replay", noisy, "--out", tmp_path / "o.wav", "--atten-lim-db", "-3")
    assert done.returncode == 2
    assert done.stderr.startswith("streamer: error: --atten-lim-db must be ")
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "o.wav").exists()


@pytest.mark.parametrize("value", ["-1", "nan"])
def test_eval_refuses_a_bad_limit_in_one_line(tmp_path, capsys, value):
    assert main(["eval", "--noisy", str(tmp_path), "--clean", str(tmp_path), "--atten-lim-db", value]) == 2
    err = capsys.readouterr().err
    assert err.startswith("streamer: error: --atten-lim-db must be ") and len(err.strip().splitlines()) == 1
