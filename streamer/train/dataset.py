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


class MixtureSampler:
    """Mixes clean utterances with synthetic noise; `batch(indices)` returns torch tensors."""

    def __init__(self, speech: Sequence[np.ndarray], seed: int = 0,
                 config: MixtureConfig | None = None) -> None:
        if not speech:
            raise ValueError("no speech to mix")
        self.speech = [np.asarray(s, dtype=np.float32) for s in speech if len(s) > 0]
        self.seed = seed
        self.config = config or MixtureConfig()
        self.samples = int(round(self.config.segment_seconds * SAMPLE_RATE))

    def _speech_segment(self, rng: np.random.Generator) -> np.ndarray:
        """A segment of running speech: utterances back to back with short random pauses."""
        n = self.samples
        out = np.zeros(n)
        first = self.speech[int(rng.integers(len(self.speech)))]
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
            utt = self.speech[int(rng.integers(len(self.speech)))]
        return out

    def item(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        """(noisy, clean, noise label) float32 arrays of `segment_seconds`."""
        cfg = self.config
        rng = np.random.default_rng([self.seed, index])
        clean = self._speech_segment(rng)
        if not np.any(clean):
            clean = self._speech_segment(rng)
        if rng.random() < cfg.p_speech_eq:
            clean = random_eq(clean, rng)
        noise, label = random_noise(self.samples, rng, self.speech)
        roll = rng.random()
        snr = 40.0 if roll < cfg.p_clean else float(rng.uniform(*cfg.snr_db))
        if cfg.babble_min_snr is not None and "babble" in label and snr < cfg.babble_min_snr:
            snr = float(rng.uniform(cfg.babble_min_snr, max(cfg.snr_db[1], cfg.babble_min_snr)))
        noise = scale_to_snr(clean, noise, snr)
        level = 10 ** (rng.uniform(*cfg.level_dbfs) / 20)
        gain = level / max(float(np.sqrt(np.mean(clean * clean))), 1e-9)
        clean, noise = clean * gain, noise * gain
        if cfg.p_clean <= roll < cfg.p_clean + cfg.p_noise_only:
            clean = np.zeros_like(clean)
            label += "/noise-only"
        noisy = clean + noise
        peak = float(np.max(np.abs(noisy)))
        if peak > 0.99:
            # Keep the mixture inside [-1, 1] as an int16 recording would be.
            clean, noisy = clean * (0.99 / peak), noisy * (0.99 / peak)
        return noisy.astype(np.float32), clean.astype(np.float32), label

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
