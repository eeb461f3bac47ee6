"""Training on recordings: corpus trees made here (mixed rates, stereo, corrupt and silent
files, DNS and VoiceBank layouts), the resampling cache, lazy reading, and the mixtures."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from streamer.train.corpus import (
    AudioCorpus,
    CorpusError,
    find_audio,
    load_corpus,
    load_pairs,
    prepare,
)
from streamer.train.dataset import MixtureConfig, MixtureSampler, RealSources, apply_rir

N = 16_000


def _tone(seconds: float, rate: int, freq: float = 440.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _speech_like(seconds: float, rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = rng.uniform(100, 220)
    tone = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 10))
    env = np.clip(np.sin(2 * np.pi * 3 * t), 0, None)
    return (0.2 * tone * env / np.max(np.abs(tone))).astype(np.float32)


def _mixed_tree(root: Path) -> dict[str, int]:
    """Five usable files (8, 16, 22.05, 44.1, 48 kHz; one stereo, one FLAC, one nested) and
    four unusable ones. Returns the expected 16 kHz length of each usable file by name."""
    (root / "a" / "b").mkdir(parents=True)
    sf.write(root / "r8k.wav", _tone(1.0, 8000), 8000)
    sf.write(root / "r16k.WAV", _tone(0.5, 16000), 16000, subtype="PCM_16")
    sf.write(root / "a" / "r22k.flac", _tone(0.75, 22050), 22050)
    sf.write(root / "a" / "b" / "r44k.wav", _tone(1.25, 44100), 44100, subtype="FLOAT")
    stereo = np.stack([_tone(1.0, 48000), np.zeros(48000, np.float32)], axis=1)
    sf.write(root / "a" / "stereo48k.wav", stereo, 48000, subtype="PCM_24")
    (root / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage" + os.urandom(200))
    (root / "empty.flac").write_bytes(b"")
    sf.write(root / "silent.wav", np.zeros(16000, np.float32), 16000)
    sf.write(root / "a" / "tiny.wav", _tone(0.02, 16000), 16000)
    (root / "notes.txt").write_text("not audio")
    return {"r8k": 16000, "r16k": 8000, "r22k": 12000, "r44k": 20000, "stereo48k": 16000}


def test_mixed_tree_is_resampled_and_bad_files_are_counted(tmp_path) -> None:
    expected = _mixed_tree(tmp_path / "speech")
    lines: list[str] = []
    corpus = load_corpus(tmp_path / "speech", tmp_path / "cache", log=lines.append)
    names = {src.stem: n for src, n in zip(corpus.sources, corpus.lengths, strict=True)}
    assert set(names) == set(expected)
    for name, length in expected.items():
        assert abs(names[name] - length) <= 1, name
    assert len(corpus.skipped) == 4
    reasons = " | ".join(corpus.skipped)
    for bad in ("corrupt.wav", "empty.flac", "silent.wav: silent", "tiny.wav: shorter"):
        assert bad in reasons
    assert "4 unusable files skipped" in corpus.describe()
    for k, src in enumerate(corpus.sources):
        audio = corpus[k]
        assert audio.dtype == np.float32 and audio.ndim == 1
        # A 440 Hz tone at any rate is the same tone at 16 kHz; the stereo file is averaged
        # with its silent right channel, so it comes out at half the amplitude.
        spectrum = np.abs(np.fft.rfft(audio))
        assert abs(np.argmax(spectrum) * N / len(audio) - 440) < 3
        peak = float(np.max(np.abs(audio[100:-100])))
        assert peak == pytest.approx(0.15 if src.stem == "stereo48k" else 0.3, rel=0.03)


def test_reading_is_lazy_and_conversion_happens_once(tmp_path) -> None:
    _mixed_tree(tmp_path / "speech")
    files = find_audio(tmp_path / "speech")
    assert prepare(files, tmp_path / "cache") == 5
    assert prepare(files, tmp_path / "cache") == 0          # cached: nothing read again
    corpus = load_corpus(tmp_path / "speech", tmp_path / "cache")
    # Items are memory maps of the cache, not arrays held by the corpus.
    assert all(isinstance(corpus[k], np.memmap) for k in range(len(corpus)))
    assert not any(isinstance(v, np.ndarray) for v in vars(corpus).values())
    # A changed recording is converted again; an unchanged one is not.
    changed = tmp_path / "speech" / "r8k.wav"
    sf.write(changed, _tone(2.0, 8000), 8000)
    assert prepare(files, tmp_path / "cache") == 1
    again = load_corpus(tmp_path / "speech", tmp_path / "cache")
    assert again.lengths[again.sources.index(changed)] == 32000


def test_prepare_shares_the_files_between_ranks(tmp_path) -> None:
    _mixed_tree(tmp_path / "speech")
    files = find_audio(tmp_path / "speech")
    from streamer.train.corpus import open_corpus

    prepare(files, tmp_path / "cache", rank=0, world=2)
    with pytest.raises(CorpusError, match="not in the cache"):
        open_corpus(files, tmp_path / "cache")
    prepare(files, tmp_path / "cache", rank=1, world=2)
    assert len(open_corpus(files, tmp_path / "cache")) == 5
    assert prepare(files, tmp_path / "cache") == 0


def test_missing_or_empty_trees_are_clear_errors(tmp_path) -> None:
    with pytest.raises(CorpusError, match="not a folder"):
        load_corpus(tmp_path / "nowhere", tmp_path / "cache")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no .wav"):
        load_corpus(tmp_path / "empty", tmp_path / "cache")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.wav").write_bytes(b"junk")
    with pytest.raises(CorpusError, match="none of its 1 audio files is usable"):
        load_corpus(tmp_path / "bad", tmp_path / "cache")


def _voicebank(root: Path) -> None:
    """VoiceBank-DEMAND's layout at its native 48 kHz: noisy = clean + noise, plus a file
    with no twin."""
    for folder in ("noisy_trainset_28spk_wav", "clean_trainset_28spk_wav"):
        (root / folder).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(3):
        clean = _speech_like(1.5, 48000, k)
        noise = (0.02 * rng.standard_normal(clean.size)).astype(np.float32)
        sf.write(root / "clean_trainset_28spk_wav" / f"p226_00{k}.wav", clean, 48000)
        sf.write(root / "noisy_trainset_28spk_wav" / f"p226_00{k}.wav", clean + noise, 48000)
    sf.write(root / "noisy_trainset_28spk_wav" / "p226_009.wav", _tone(1.0, 48000), 48000)


def test_voicebank_pairs_are_matched_and_mixed_as_recorded(tmp_path) -> None:
    _voicebank(tmp_path / "vb")
    pairs = load_pairs(tmp_path / "vb" / "noisy_trainset_28spk_wav",
                       tmp_path / "vb" / "clean_trainset_28spk_wav", tmp_path / "cache")
    assert len(pairs) == 3 and pairs.unmatched == 1
    assert [p.name for p in pairs.noisy.sources] == [p.name for p in pairs.clean.sources]
    assert "1 files without a twin" in pairs.describe()
    # Segments longer than the recordings: each item is a whole pair at one gain, then zeros.
    sampler = MixtureSampler([], seed=3, config=MixtureConfig(segment_seconds=2.0, synthetic_share=0.0),
                             real=RealSources(pairs=pairs))
    m = pairs.clean.lengths[0]
    seen = set()
    for i in range(8):
        noisy, clean, label = sampler.item(i)
        assert label == "real:pair" and noisy.shape == clean.shape == (2 * N,)
        assert not np.any(noisy[m:]) and not np.any(clean[m:])
        k = int(np.argmax([abs(np.corrcoef(clean[:m], pairs.clean[j][:m])[0, 1]) for j in range(3)]))
        gain = float(np.dot(clean[:m], pairs.clean[k][:m]) / np.dot(pairs.clean[k][:m], pairs.clean[k][:m]))
        np.testing.assert_allclose(clean[:m], gain * pairs.clean[k][:m], atol=1e-6)
        np.testing.assert_allclose(noisy[:m], gain * pairs.noisy[k][:m], atol=1e-6)
        seen.add(k)
    assert len(seen) >= 2


def test_apply_rir_matches_direct_convolution() -> None:
    rng = np.random.default_rng(1)
    speech = rng.standard_normal(4000)
    rir = np.zeros(3200)
    rir[5] = 1.0                      # direct path 5 samples in
    rir[5 + 160] = 0.5                # a reflection 10 ms later: early
    rir[5 + 1600] = 0.3               # 100 ms later: late reverberation
    wet, target = apply_rir(speech, rir, early_ms=50.0)
    full = np.convolve(speech, rir[5:])[:4000]
    np.testing.assert_allclose(wet, full, atol=1e-9)
    expected = speech.copy()
    expected[160:] += 0.5 * speech[:-160]
    np.testing.assert_allclose(target, expected, atol=1e-9)


def _dns(root: Path) -> None:
    (root / "clean" / "read_speech").mkdir(parents=True)
    (root / "noise").mkdir()
    (root / "rir").mkdir()
    for k in range(3):
        sf.write(root / "clean" / "read_speech" / f"book_{k}.wav", _speech_like(2.0, 16000, k), 16000)
    rng = np.random.default_rng(2)
    for k in range(2):
        sf.write(root / "noise" / f"noise_{k}.wav", 0.1 * rng.standard_normal(44100 * 3), 44100)
    decay = np.exp(-np.arange(4000) / 800.0) * rng.standard_normal(4000)
    decay[0] = 1.0
    sf.write(root / "rir" / "room.wav", 0.5 * decay / np.max(np.abs(decay)), 16000)


def _recipe_args(*argv: str) -> argparse.Namespace:
    from streamer.train import recipe

    parser = argparse.ArgumentParser()
    recipe.add_arguments(parser)
    return parser.parse_args(["--out", "x.tdn", *argv])


def test_dns_layout_with_rirs_feeds_the_mixtures(tmp_path) -> None:
    from streamer.train import sources
    from streamer.train.distributed import World

    _dns(tmp_path / "dns")
    args = _recipe_args("--dns", str(tmp_path / "dns"), "--rir", str(tmp_path / "dns" / "rir"),
                        "--synthetic-share", "0")
    real, described = sources.load_sources(args, tmp_path / "cache", World(), log=lambda _: None)
    assert len(real.speech) == 3 and len(real.noise) == 2 and len(real.rir) == 1
    assert any("clean" in key for key in described)
    config = MixtureConfig(segment_seconds=1.0, synthetic_share=0.0, p_rir=0.5)
    sampler = MixtureSampler([], seed=5, config=config, real=real)
    labels = [sampler.item(i)[2] for i in range(40)]
    assert all(label.startswith("real:speech") for label in labels)
    assert 5 <= sum("/rir" in label for label in labels) <= 35
    assert sum(label.endswith("+noise") or "+noise+noise" in label for label in labels) >= 30
    noisy, clean, _ = sampler.item(0)
    assert noisy.shape == (N,) and np.max(np.abs(noisy)) <= 0.99 + 1e-6
    with pytest.raises(CorpusError, match="clean/ and noise/"):
        sources.load_sources(_recipe_args("--dns", str(tmp_path / "dns" / "rir")), tmp_path / "cache",
                             World(), log=lambda _: None)


def test_synthetic_share_and_unchanged_synthetic_items(tmp_path) -> None:
    _dns(tmp_path / "dns")
    speech = load_corpus(tmp_path / "dns" / "clean", tmp_path / "cache")
    noise = load_corpus(tmp_path / "dns" / "noise", tmp_path / "cache")
    fake_tts = [_speech_like(1.2, 16000, 10 + k) for k in range(3)]
    config = MixtureConfig(segment_seconds=0.5, synthetic_share=0.25)
    mixed = MixtureSampler(fake_tts, seed=9, config=config, real=RealSources(speech=speech, noise=noise))
    plain = MixtureSampler(fake_tts, seed=9, config=config)
    synthetic = 0
    for i in range(400):
        noisy, clean, label = mixed.item(i)
        if not label.startswith("real:"):
            synthetic += 1
            # A synthetic item is the very item the recipe makes without recordings.
            np.testing.assert_array_equal(noisy, plain.item(i)[0])
    # Binomial(400, 0.25): mean 100, sd 8.7.
    assert 65 <= synthetic <= 135
    with pytest.raises(ValueError, match="no speech"):
        MixtureSampler([], config=config, real=RealSources(noise=noise))


def test_real_noise_with_synthetic_speech(tmp_path) -> None:
    _dns(tmp_path / "dns")
    noise = load_corpus(tmp_path / "dns" / "noise", tmp_path / "cache")
    fake_tts = [_speech_like(1.2, 16000, k) for k in range(3)]
    sampler = MixtureSampler(fake_tts, seed=2, config=MixtureConfig(segment_seconds=0.5, synthetic_share=0),
                             real=RealSources(noise=noise))
    assert all(sampler.item(i)[2].startswith("real:synthetic-speech+noise") for i in range(10))


def test_g722_recordings_decode_to_wideband(tmp_path) -> None:
    G722 = pytest.importorskip("G722")
    from streamer.train.corpus import read_audio

    tone = (_tone(1.0, 16000, freq=5000.0) * 32767).astype(np.int16)   # above the narrow band
    encoded = G722.G722(16000, 64000).encode(tone)
    (tmp_path / "p.g722").write_bytes(bytes(encoded))
    audio = read_audio(tmp_path / "p.g722")
    assert len(audio) == 16000
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * N / len(audio) - 5000) < 5


def test_training_on_recordings_writes_a_model(tmp_path) -> None:
    pytest.importorskip("torch")
    from streamer.model import load_model
    from streamer.train import recipe

    _dns(tmp_path / "dns")
    _mixed_tree(tmp_path / "more")
    out = tmp_path / "real.tdn"
    args = _recipe_args("--hidden", "128", "--steps", "2", "--batch", "2", "--segment", "0.5",
                        "--threads", "1", "--data-dir", str(tmp_path / "data"),
                        "--speech", str(tmp_path / "dns" / "clean"), "--speech", str(tmp_path / "more"),
                        "--noise", str(tmp_path / "dns" / "noise"), "--synthetic-share", "0")
    args.out = out
    lines: list[str] = []
    assert recipe.run(args, log=lines.append) == 0
    meta = load_model(out).metadata
    assert meta["synthetic_share"] == 0.0 and meta["processes"] == 1
    assert "4 unusable files skipped" in meta["data"] and "synthetic utterances" not in meta["data"]
    assert any("corpus: skipped" in line and "corrupt.wav" in line for line in lines)
    assert not (tmp_path / "data" / "speech").exists()   # no text-to-speech was needed
    bad = _recipe_args("--speech", str(tmp_path / "nowhere"), "--data-dir", str(tmp_path / "data"))
    lines.clear()
    assert recipe.run(bad, log=lines.append) == 2
    assert lines == [f"error: {tmp_path / 'nowhere'}: not a folder"]


def test_audio_corpus_refuses_slices(tmp_path) -> None:
    corpus = AudioCorpus([], [], [])
    with pytest.raises(TypeError):
        corpus[0:2]


def test_real_noise_share(tmp_path) -> None:
    _dns(tmp_path / "dns")
    real = RealSources(speech=load_corpus(tmp_path / "dns" / "clean", tmp_path / "cache"),
                       noise=load_corpus(tmp_path / "dns" / "noise", tmp_path / "cache"))

    def recorded(share: float) -> int:
        config = MixtureConfig(segment_seconds=0.25, synthetic_share=0.0, p_real_noise=share)
        sampler = MixtureSampler([], seed=4, config=config, real=real)
        return sum("+noise" in sampler.item(i)[2] for i in range(200))

    assert recorded(1.0) == 200 and recorded(0.0) == 0
    assert 70 <= recorded(0.5) <= 130       # Binomial(200, 0.5): sd 7
