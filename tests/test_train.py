"""Training pieces: noise at the requested SNR, mixture shapes, the torch STFT, a tiny training run."""

from __future__ import annotations

import argparse
import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from streamer.engine import stft_centred
from streamer.train import noise, speech

N = 16_000


def _fake_speech(count: int = 4, seconds: float = 1.2, seed: int = 0) -> list[np.ndarray]:
    """Harmonic bursts with a syllable-rate envelope: speech-like enough for plumbing tests."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * N)) / N
    out = []
    for _ in range(count):
        f0 = rng.uniform(90, 250)
        tone = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 12))
        env = np.clip(np.sin(2 * np.pi * rng.uniform(2, 5) * t), 0, None)
        out.append((0.3 * tone * env / np.max(np.abs(tone))).astype(np.float32))
    return out


@pytest.mark.parametrize("name", sorted(noise.GENERATORS) + ["babble"])
def test_noise_generators_hit_requested_snr(name: str) -> None:
    rng = np.random.default_rng(3)
    generator = noise.make_babble(_fake_speech()) if name == "babble" else noise.GENERATORS[name]
    n_out = generator(N, rng)
    assert n_out.shape == (N,) and np.all(np.isfinite(n_out))
    assert np.sqrt(np.mean(n_out ** 2)) == pytest.approx(1.0, rel=1e-6)
    clean = _fake_speech(1)[0][:N]
    for target in (-5.0, 5.0, 20.0):
        scaled = noise.scale_to_snr(clean, n_out, target)
        assert noise.snr_db(clean, scaled) == pytest.approx(target, abs=1e-6)


def test_random_noise_is_reproducible() -> None:
    a, label_a = noise.random_noise(N, np.random.default_rng(5), _fake_speech())
    b, label_b = noise.random_noise(N, np.random.default_rng(5), _fake_speech())
    assert label_a == label_b
    np.testing.assert_array_equal(a, b)


def test_mixture_items_shapes_and_determinism() -> None:
    from streamer.train.dataset import MixtureConfig, MixtureSampler

    sampler = MixtureSampler(_fake_speech(), seed=1, config=MixtureConfig(segment_seconds=0.5))
    noisy, clean, label = sampler.item(7)
    assert noisy.shape == clean.shape == (8000,)
    assert noisy.dtype == clean.dtype == np.float32
    assert np.max(np.abs(noisy)) <= 0.99 + 1e-6 and isinstance(label, str)
    again = sampler.item(7)
    np.testing.assert_array_equal(noisy, again[0])
    pytest.importorskip("torch")
    noisy_b, clean_b = sampler.batch([0, 1, 2])
    assert tuple(noisy_b.shape) == tuple(clean_b.shape) == (3, 8000)


def test_torch_stft_matches_engine() -> None:
    torch = pytest.importorskip("torch")
    from streamer.train.dataset import torch_stft

    signal = np.random.default_rng(0).standard_normal((2, 4321)).astype(np.float32) * 0.3
    mags = torch_stft(torch.from_numpy(signal)).abs().numpy()
    for row in range(2):
        reference = np.abs(stft_centred(signal[row]))
        assert mags[row].shape == reference.shape
        np.testing.assert_allclose(mags[row], reference, atol=1e-4, rtol=0)


def test_three_step_training_writes_loadable_model(tmp_path) -> None:
    pytest.importorskip("torch")
    from streamer.model import load_model
    from streamer.train import recipe

    # Pre-fill the speech cache the recipe looks in, so no TTS engine is needed.
    n, seed = 4, 11
    root = tmp_path / "data" / speech.corpus_key(n, seed)
    root.mkdir(parents=True)
    entries = []
    for k, audio in enumerate(_fake_speech(n)):
        sf.write(root / f"u{k}.wav", audio, N, subtype="FLOAT")
        entries.append({"file": f"u{k}.wav"})
    (root / "manifest.json").write_text(json.dumps({"utterances": entries}))

    parser = argparse.ArgumentParser()
    recipe.add_arguments(parser)
    out = tmp_path / "tiny.tdn"
    args = parser.parse_args(["--out", str(out), "--hidden", "128", "--steps", "3", "--seed", str(seed),
                              "--utterances", str(n), "--data-dir", str(tmp_path / "data"),
                              "--batch", "2", "--segment", "0.5", "--threads", "1"])
    lines: list[str] = []
    assert recipe.run(args, log=lines.append) == 0
    params = load_model(out)
    assert (params.cell, params.hidden) == ("lstm", 128)
    assert params.metadata["seed"] == seed and params.metadata["steps"] == 3
    assert any(line.startswith("step") for line in lines)


@pytest.mark.parametrize("engine,voice", [("flite", "slt"), ("espeak-ng", "en-us+f3")])
def test_speech_synthesis(engine: str, voice: str) -> None:
    if shutil.which(engine) is None:
        pytest.skip(f"{engine} is not installed")
    spec = speech.UtteranceSpec(engine=engine, voice=voice, text="Hello there, this is a test.",
                                rate=1.0, pitch=50.0 if engine == "espeak-ng" else 0.0, warp=1.05)
    audio = speech.synthesise(spec)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 0.5 * N < len(audio) < 5 * N
    assert np.max(np.abs(audio)) == pytest.approx(0.5, rel=1e-5)


def test_specs_are_reproducible_and_exclude_demo_voice() -> None:
    words = ["apple", "river", "stone", "light"]
    a = speech.sample_specs(50, 3, words=words)
    assert a == speech.sample_specs(50, 3, words=words)
    assert all((s.engine, s.voice) != speech.DEMO_VOICE for s in a)
    assert all(s.text.endswith((".", "?")) for s in a)
