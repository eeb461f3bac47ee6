"""Training pieces: noise at the requested SNR, mixture shapes, the torch STFT, a tiny training run."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

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


def _run_tiny_training(tmp_path, *extra: str) -> tuple[Path, list[str]]:
    """Three steps of the recipe on a fake corpus put where the recipe looks (no TTS needed)."""
    from streamer.train import recipe

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
                              "--batch", "2", "--segment", "0.5", "--threads", "1", *extra])
    lines: list[str] = []
    assert recipe.run(args, log=lines.append) == 0
    return out, lines


def test_three_step_training_writes_loadable_model(tmp_path) -> None:
    pytest.importorskip("torch")
    from streamer.model import load_model

    out, lines = _run_tiny_training(tmp_path)
    params = load_model(out)
    assert (params.cell, params.hidden) == ("lstm", 128)
    assert params.metadata["seed"] == 11 and params.metadata["steps"] == 3
    assert params.metadata["ema"] is None
    assert any(line.startswith("step") for line in lines)
    assert not list(tmp_path.glob("tiny-step*.tdn"))


def test_training_keeps_averaged_checkpoints(tmp_path) -> None:
    pytest.importorskip("torch")
    from streamer.model import load_model

    out, lines = _run_tiny_training(tmp_path, "--ema", "0.9", "--keep-checkpoints",
                                    "--checkpoint-minutes", "0")
    snapshots = sorted(tmp_path.glob("tiny-step*.tdn"))
    assert [p.name for p in snapshots] == ["tiny-step1.tdn", "tiny-step2.tdn", "tiny-step3.tdn"]
    final, last = load_model(out), load_model(snapshots[-1])
    assert final.metadata["ema"] == 0.9 and last.metadata["steps"] == 3
    for name, weights in final.tensors.items():
        np.testing.assert_array_equal(weights, last.tensors[name])
    assert sum("checkpoint: step" in line for line in lines) == 3


def test_weight_average_follows_the_ema_formula() -> None:
    torch = pytest.importorskip("torch")
    from streamer.train.recipe import WeightAverage

    model = torch.nn.Linear(3, 2)
    average = WeightAverage(model, decay=0.5)
    expected = [p.detach().clone() for p in model.parameters()]
    for update in range(4):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
        average.update(model)
        # Ramp: the first updates weigh the new weights by 1 - (1 + n) / (10 + n) > 1 - decay.
        weight = 1.0 - min(0.5, (1 + update) / (10 + update))
        expected = [e + weight * (p.detach() - e) for e, p in zip(expected, model.parameters(), strict=True)]
    for e, a in zip(expected, average.model.parameters(), strict=True):
        torch.testing.assert_close(a, e)
    assert all(not p.requires_grad for p in average.model.parameters())
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(model, decay=1.0)


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


def test_closing_the_prefetcher_waits_for_its_thread() -> None:
    """close() returns only once the batch thread has stopped, mid-batch too: a thread left
    running into a torchrun rank's exit aborted that process once."""
    import threading
    import time

    from streamer.train.recipe import _Prefetcher

    building = threading.Event()

    class SlowSampler:
        def batch(self, indices):
            building.set()
            time.sleep(0.3)  # still building when close() is called
            return list(indices), list(indices)

    prefetch = _Prefetcher(SlowSampler(), batch=2, start_step=0)
    assert prefetch.get() == ([0, 1], [0, 1])
    building.clear()
    assert building.wait(5.0)
    prefetch.close()
    assert not prefetch._thread.is_alive()
