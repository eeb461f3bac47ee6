"""Noisy/clean training pairs mixed on the fly, and the runtime's STFT in torch.

Item `i` of a `MixtureSampler` depends only on (seed, i): the same seed gives the same
mixtures in any order, on any machine with the same speech cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from streamer.engine import FFT_SIZE, FRAME_SAMPLES, HOP_SAMPLES, SAMPLE_RATE
from streamer.train.noise import random_eq, random_noise, scale_to_snr


def torch_stft(signal: torch.Tensor) -> torch.Tensor:
    """The engine's centred STFT (periodic Hann 400, hop 100, FFT 512, zero edges), batched.

    signal [B, N] -> complex [B, 1 + N // 100, 257]; matches `engine.stft_centred` per row.
    """
    window = torch.hann_window(FRAME_SAMPLES, periodic=True, dtype=signal.dtype,
                               device=signal.device)
    spec = torch.stft(signal, n_fft=FFT_SIZE, hop_length=HOP_SAMPLES, win_length=FRAME_SAMPLES,
                      window=window, center=True, pad_mode="constant", return_complex=True)
    return spec.transpose(1, 2)


@dataclass
class MixtureConfig:
    segment_seconds: float = 2.5
    snr_db: tuple[float, float] = (-5.0, 20.0)
    # Speech RMS in dBFS: wide, because the network sees unnormalised magnitudes and must work
    # at whatever level a microphone or file delivers.
    level_dbfs: tuple[float, float] = (-48.0, -14.0)
    p_clean: float = 0.04        # near-clean inputs (40 dB SNR): teach the mask to leave speech alone
    p_noise_only: float = 0.03   # no speech at all: teach it to close down
    # Random smooth EQ on the speech (target and mixture alike): synthetic voices share a
    # handful of spectral colourings, real microphones and talkers do not.
    p_speech_eq: float = 0.5
    # Babble below this SNR is redrawn above it: a louder crowd of voices makes "which talker
    # is the speech" ambiguous and teaches the mask to distrust speech itself. None: no floor.
    babble_min_snr: float | None = None
    # With recordings (`RealSources`): the share of items made only from the built-in
    # generators (synthetic speech and noise); the rest use the recordings.
    synthetic_share: float = 1.0
    p_rir: float = 0.5           # share of real-source mixtures whose speech goes through a real RIR
    p_real_noise: float = 1.0    # share of real-source mixtures (with noise recordings) that use them
    # The target of a reverberant mixture keeps the direct path and this much of the early
    # reflections (the DNS-Challenge convention): late reverberation counts as noise.
    early_ms: float = 50.0


@dataclass
class RealSources:
    """Recordings to mix (any may be None): sequences of 16 kHz float arrays, e.g. `AudioCorpus`."""

    speech: Sequence[np.ndarray] | None = None
    noise: Sequence[np.ndarray] | None = None
    rir: Sequence[np.ndarray] | None = None
    pairs: object | None = None      # a corpus.PairCorpus

    def __bool__(self) -> bool:
        return any(x is not None and len(x) > 0 for x in (self.speech, self.noise, self.pairs))


def _unit_rms(x: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(x * x)))
    return x / rms if rms > 0 else x


def apply_rir(speech: np.ndarray, rir: np.ndarray, early_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """(reverberant speech, target) of `speech` in the room `rir`, both aligned to the direct
    path (the RIR's largest tap) and as long as `speech`; the target keeps `early_ms` after it."""
    rir = np.asarray(rir, dtype=np.float64)
    direct = int(np.argmax(np.abs(rir)))
    rir = rir[direct:]
    early = rir[: int(early_ms * SAMPLE_RATE / 1000) + 1]
    n, size = len(speech), len(speech) + len(rir)
    spectrum = np.fft.rfft(speech, size)
    wet = np.fft.irfft(spectrum * np.fft.rfft(rir, size), size)[:n]
    target = np.fft.irfft(spectrum * np.fft.rfft(early, size), size)[:n]
    return wet, target


class MixtureSampler:
    """Mixes clean utterances with noise; `batch(indices)` returns torch tensors.

    `speech` is the synthetic corpus; with `real`, a share `1 - config.synthetic_share` of the
    items is made from recordings instead: a ready-made pair, or real speech (else synthetic)
    with real noise (else synthetic), optionally through a real room impulse response.
    """

    def __init__(self, speech: Sequence[np.ndarray], seed: int = 0,
                 config: MixtureConfig | None = None, real: RealSources | None = None) -> None:
        self.config = config or MixtureConfig()
        self.real = real if real else None
        # Real recordings are memory-mapped: never copy them, and never drop the share of
        # synthetic items silently.
        self.speech = [np.asarray(s, dtype=np.float32) for s in speech if len(s) > 0]
        if not self.speech and (self.real is None or self.config.synthetic_share > 0):
            raise ValueError("no speech to mix")
        if self.real is not None and not self.real.pairs and not (self.speech or self.real.speech):
            raise ValueError("real noise needs speech to mix with")
        self.seed = seed
        self.samples = int(round(self.config.segment_seconds * SAMPLE_RATE))

    def _speech_segment(self, rng: np.random.Generator, pool: Sequence[np.ndarray] | None = None
                        ) -> np.ndarray:
        """A segment of running speech: utterances back to back with short random pauses."""
        pool = self.speech if pool is None else pool
        n = self.samples
        out = np.zeros(n)
        first = pool[int(rng.integers(len(pool)))]
        # Start anywhere in the first utterance, or after a little silence.
        pos = -int(rng.integers(0, max(len(first) - n // 4, 1))) if rng.random() < 0.7 \
            else int(rng.integers(0, n // 4))
        utt = first
        while pos < n:
            start = max(-pos, 0)
            stop = min(len(utt), n - pos)
            if stop > start:
                out[pos + start:pos + stop] = utt[start:stop]
            pos += len(utt) + int(rng.uniform(0.05, 0.6) * SAMPLE_RATE)
            utt = pool[int(rng.integers(len(pool)))]
        return out

    def _noise_recording(self, rng: np.random.Generator) -> np.ndarray:
        """`samples` of recorded noise, unit RMS: one file from a random point (files shorter
        than a segment are followed by further random files)."""
        noise, n = self.real.noise, self.samples
        for _ in range(8):
            out, pos = np.zeros(n), 0
            while pos < n:
                rec = noise[int(rng.integers(len(noise)))]
                start = int(rng.integers(0, max(len(rec) - (n - pos), 0) + 1))
                piece = np.asarray(rec[start:start + n - pos], dtype=np.float64)
                out[pos:pos + len(piece)] = piece
                pos += max(len(piece), 1)
            if np.sqrt(np.mean(out * out)) > 1e-6:   # not a digitally silent stretch
                return _unit_rms(out)
        return random_noise(n, rng)[0]

    def _finish(self, rng: np.random.Generator, clean: np.ndarray, heard: np.ndarray,
                noise: np.ndarray, label: str) -> tuple[np.ndarray, np.ndarray, str]:
        """SNR, level, noise-only draws and clipping, shared by every kind of mixture; `heard`
        is the speech as the microphone gets it (reverberant), `clean` the target."""
        cfg = self.config
        roll = rng.random()
        snr = 40.0 if roll < cfg.p_clean else float(rng.uniform(*cfg.snr_db))
        if cfg.babble_min_snr is not None and "babble" in label and snr < cfg.babble_min_snr:
            snr = float(rng.uniform(cfg.babble_min_snr, max(cfg.snr_db[1], cfg.babble_min_snr)))
        noise = scale_to_snr(heard, noise, snr)
        level = 10 ** (rng.uniform(*cfg.level_dbfs) / 20)
        gain = level / max(float(np.sqrt(np.mean(clean * clean))), 1e-9)
        clean, heard, noise = clean * gain, heard * gain, noise * gain
        if cfg.p_clean <= roll < cfg.p_clean + cfg.p_noise_only:
            clean, heard = np.zeros_like(clean), np.zeros_like(heard)
            label += "/noise-only"
        return self._clip(heard + noise, clean, label)

    @staticmethod
    def _clip(noisy: np.ndarray, clean: np.ndarray, label: str) -> tuple[np.ndarray, np.ndarray, str]:
        peak = float(np.max(np.abs(noisy)))
        if peak > 0.99:
            # Keep the mixture inside [-1, 1] as an int16 recording would be.
            clean, noisy = clean * (0.99 / peak), noisy * (0.99 / peak)
        return noisy.astype(np.float32), clean.astype(np.float32), label

    def _synthetic_item(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
        clean = self._speech_segment(rng)
        if not np.any(clean):
            clean = self._speech_segment(rng)
        if rng.random() < self.config.p_speech_eq:
            clean = random_eq(clean, rng)
        noise, label = random_noise(self.samples, rng, self.speech)
        return self._finish(rng, clean, clean, noise, label)

    def _real_item(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
        real, cfg = self.real, self.config
        kinds = (["pair"] if real.pairs else []) + (["mix"] if real.speech or real.noise else [])
        if kinds[int(rng.integers(len(kinds)))] == "pair":
            return self._pair_item(rng)
        pool = real.speech if real.speech else self.speech
        clean = self._speech_segment(rng, pool)
        if not np.any(clean):
            clean = self._speech_segment(rng, pool)
        if rng.random() < cfg.p_speech_eq:
            clean = random_eq(clean, rng)
        heard, label = clean, ("speech" if real.speech else "synthetic-speech")
        if real.rir and rng.random() < cfg.p_rir:
            heard, clean = apply_rir(clean, real.rir[int(rng.integers(len(real.rir)))], cfg.early_ms)
            label += "/rir"
        if real.noise and rng.random() < cfg.p_real_noise:
            noise, kind = self._noise_recording(rng), "noise"
            if rng.random() < 0.3:
                second = self._noise_recording(rng) * 10 ** (rng.uniform(-12, 0) / 20)
                noise, kind = _unit_rms(noise + second), "noise+noise"
        else:
            noise, kind = random_noise(self.samples, rng, pool)
        return self._finish(rng, clean, heard, noise, f"real:{label}+{kind}")

    def _pair_item(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
        pairs, n = self.real.pairs, self.samples
        k = int(rng.integers(len(pairs)))
        noisy_rec, clean_rec = pairs.noisy[k], pairs.clean[k]
        m = min(len(noisy_rec), len(clean_rec))
        start = int(rng.integers(0, max(m - n, 0) + 1))
        noisy, clean = np.zeros(n), np.zeros(n)
        stop = min(start + n, m)
        noisy[:stop - start] = noisy_rec[start:stop]
        clean[:stop - start] = clean_rec[start:stop]
        reference = clean if np.any(clean) else noisy
        level = 10 ** (rng.uniform(*self.config.level_dbfs) / 20)
        gain = level / max(float(np.sqrt(np.mean(reference * reference))), 1e-9)
        return self._clip(noisy * gain, clean * gain, "real:pair")

    def item(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        """(noisy, clean, label) float32 arrays of `segment_seconds`."""
        rng = np.random.default_rng([self.seed, index])
        if self.real is None:
            # The synthetic recipe's draws, unchanged: old seeds give the same mixtures.
            return self._synthetic_item(rng)
        share = self.config.synthetic_share if self.speech else 0.0
        if np.random.default_rng([self.seed, index, 1]).random() < share:
            return self._synthetic_item(rng)
        return self._real_item(rng)

    def batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """noisy [B, N], clean [B, N] float32 tensors for the given item indices."""
        items = [self.item(i) for i in indices]
        noisy = torch.from_numpy(np.stack([it[0] for it in items]))
        clean = torch.from_numpy(np.stack([it[1] for it in items]))
        return noisy, clean


DEMO_TEXT = "Please call Stella. Ask her to bring these things with her from the store."


def make_demo_pair(seed: int = 2026, snr: float = 5.0, level_dbfs: float = -26.0,
                   seconds: float = 4.0) -> tuple[np.ndarray, np.ndarray, str]:
    """The bundled demo: a voice and a sentence the default model never trained on, in noise.

    flite's kal16 voice (left out of training) reads DEMO_TEXT (real prose, unlike the random
    word strings of the training corpus); one `random_noise` draw (no babble, so no training
    speech leaks in) is mixed at `snr` dB. Returns (noisy, clean, noise label), float32 at
    16 kHz, `seconds` long.
    """
    from streamer.train.speech import DEMO_VOICE, UtteranceSpec, synthesise

    engine, voice = DEMO_VOICE
    clean = synthesise(UtteranceSpec(engine=engine, voice=voice, text=DEMO_TEXT, rate=1.1,
                                     pitch=0.0, warp=1.0)).astype(np.float64)
    n = int(seconds * SAMPLE_RATE)
    lead = int(0.25 * SAMPLE_RATE)
    # A quarter-second of noise alone before the speech shows the noise being removed.
    clean = np.concatenate([np.zeros(lead), clean, np.zeros(n)])[:n]
    rng = np.random.default_rng(seed)
    noise, label = random_noise(n, rng)
    noise = scale_to_snr(clean, noise, snr)
    gain = 10 ** (level_dbfs / 20) / float(np.sqrt(np.mean(clean * clean)))
    clean, noisy = clean * gain, (clean + noise) * gain
    peak = float(np.max(np.abs(noisy)))
    if peak > 0.99:
        clean, noisy = clean * (0.99 / peak), noisy * (0.99 / peak)
    return noisy.astype(np.float32), clean.astype(np.float32), label
