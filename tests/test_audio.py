"""Audio I/O: down-mix, resampling, the sample formats read and written, and read errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from streamer.audio import (
    AudioError,
    downmix,
    output_subtype,
    read_audio,
    resample,
    write_audio,
)


def test_downmix_is_the_mean_of_channels() -> None:
    stereo = np.array([[1.0, 0.0], [0.5, -0.5], [-1.0, 1.0]])
    np.testing.assert_array_equal(downmix(stereo), [0.5, 0.0, 0.0])
    four = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(downmix(four), four.mean(axis=1))


def test_downmix_leaves_mono_alone() -> None:
    mono = np.linspace(-1, 1, 7)
    np.testing.assert_array_equal(downmix(mono), mono)
    np.testing.assert_array_equal(downmix(mono[:, None]), mono)


def test_resample_at_16k_is_bit_exact_pass_through() -> None:
    x = np.random.default_rng(0).standard_normal(1234)
    np.testing.assert_array_equal(resample(x, 16_000, 16_000), x)


@pytest.mark.parametrize("rate", [8_000, 22_050, 44_100, 48_000, 96_000])
def test_resample_keeps_a_tone_and_gives_the_rounded_length(rate: int) -> None:
    n = int(1.3 * rate) + 7
    t = np.arange(n) / rate
    tone = 0.5 * np.sin(2 * np.pi * 1000.0 * t)
    out = resample(tone, rate, 16_000)
    assert len(out) == round(n * 16_000 / rate)
    # Away from the edges the tone must come out at 1 kHz with its amplitude.
    middle = out[2000:-2000]
    expected = 0.5 * np.sin(2 * np.pi * 1000.0 * (np.arange(len(out)) / 16_000))[2000:-2000]
    assert np.max(np.abs(middle - expected)) < 1e-3


@pytest.mark.parametrize("subtype, tolerance", [
    ("PCM_16", 2 / 2**15), ("PCM_24", 2 / 2**23), ("PCM_32", 2 / 2**31), ("FLOAT", 1e-7), ("DOUBLE", 0.0),
])
def test_reads_every_pcm_and_float_format(tmp_path: Path, subtype: str, tolerance: float) -> None:
    x = np.random.default_rng(1).uniform(-0.9, 0.9, 1600)
    path = tmp_path / f"x_{subtype}.wav"
    soundfile.write(str(path), x, 16_000, subtype=subtype)
    audio = read_audio(path)
    assert (audio.rate, audio.source_rate, audio.source_channels, audio.source_subtype) == (
        16_000, 16_000, 1, subtype)
    assert audio.samples.dtype == np.float64
    assert np.max(np.abs(audio.samples - x)) <= tolerance


def test_reads_stereo_44k_int24_as_16k_mono(tmp_path: Path, make_wav) -> None:
    path = make_wav(tmp_path / "s.wav", seconds=0.9, rate=44_100, channels=2, subtype="PCM_24")
    raw, _ = soundfile.read(str(path), dtype="float64", always_2d=True)
    audio = read_audio(path)
    assert (audio.source_rate, audio.source_channels, audio.source_subtype) == (44_100, 2, "PCM_24")
    assert len(audio) == round(raw.shape[0] * 16_000 / 44_100)
    np.testing.assert_allclose(audio.samples, resample(raw.mean(axis=1), 44_100), atol=1e-12)
    assert audio.duration_s == pytest.approx(0.9, abs=1e-3)


def test_reads_flac(tmp_path: Path) -> None:
    x = np.random.default_rng(2).uniform(-0.5, 0.5, 800)
    soundfile.write(str(tmp_path / "x.flac"), x, 16_000, subtype="PCM_16")
    assert len(read_audio(tmp_path / "x.flac")) == 800


def test_read_errors_name_the_file_and_the_problem(tmp_path: Path) -> None:
    (tmp_path / "text.wav").write_text("not audio at all\n")
    (tmp_path / "zero_bytes.wav").write_bytes(b"")
    soundfile.write(str(tmp_path / "empty.wav"), np.zeros(0), 16_000)
    soundfile.write(str(tmp_path / "nan.wav"), np.array([0.0, np.nan, 0.1]), 16_000, subtype="FLOAT")
    soundfile.write(str(tmp_path / "one.wav"), np.array([0.1]), 48_000)
    cases = {
        "missing.wav": "not found",
        "text.wav": "not a readable audio file",
        "zero_bytes.wav": "not a readable audio file",
        "empty.wav": "no audio samples",
        "nan.wav": "NaN",
        "one.wav": "too short",
        ".": "directory",
    }
    for name, expected in cases.items():
        with pytest.raises(AudioError, match=expected) as info:
            read_audio(tmp_path / name, what="noisy")
        assert "noisy" in str(info.value) and "\n" not in str(info.value)


def test_write_keeps_plain_formats_and_falls_back_to_int16() -> None:
    for kept in ("PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"):
        assert output_subtype(kept) == kept
    for other in ("ULAW", "IMA_ADPCM", "PCM_U8", None):
        assert output_subtype(other) == "PCM_16"


def test_write_is_atomic_and_follows_the_suffix(tmp_path: Path) -> None:
    x = np.linspace(-0.5, 0.5, 1000)
    wav = write_audio(tmp_path / "out.wav", x, 16_000, "PCM_24")
    info = soundfile.info(str(wav))
    assert (info.format, info.subtype, info.samplerate, info.frames) == ("WAV", "PCM_24", 16_000, 1000)
    flac = write_audio(tmp_path / "out.flac", x, 16_000, "FLOAT")  # FLAC has no float: default subtype
    assert soundfile.info(str(flac)).format == "FLAC"
    odd = write_audio(tmp_path / "out.enhanced", x, 16_000)
    assert soundfile.info(str(odd)).format == "WAV"
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob(".*.partial"))


def test_write_into_a_missing_folder_is_an_audio_error(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="cannot write"):
        write_audio(tmp_path / "no" / "such" / "out.wav", np.zeros(10))
