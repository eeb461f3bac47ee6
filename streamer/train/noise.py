"""Synthetic noises for training mixtures, and mixing at a chosen SNR.

Every generator takes (n_samples, rng) and returns float64 noise of unit RMS, so the mixer
alone sets levels. The families aim at what real recordings contain: broadband noise with all
sorts of spectral tilts and shapes (ventilation, traffic, rain), low-frequency rumble (cars,
buses, fans), mains hum, tonal machinery, amplitude-modulated and switching (non-stationary)
noise, clicks and knocks, babble of several talkers, and reverberant versions of all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

SAMPLE_RATE = 16_000
Generator = Callable[[int, np.random.Generator], np.ndarray]


def _unit_rms(x: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(x * x)))
    return x / rms if rms > 0 else x


def _shape_spectrum(white: np.ndarray, gain: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Filter `white` in the frequency domain by the magnitude response `gain(freq_hz)`."""
    spectrum = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(len(white), 1.0 / SAMPLE_RATE)
    return np.fft.irfft(spectrum * gain(freqs), len(white))


def coloured(n: int, rng: np.random.Generator, exponent: float | None = None) -> np.ndarray:
    """Power-law noise, PSD ~ f**exponent: 0 white, -1 pink, -2 brown, > 0 blue-ish."""
    exponent = float(rng.uniform(-2.2, 0.8)) if exponent is None else exponent
    return _unit_rms(_shape_spectrum(rng.standard_normal(n),
                                     lambda f: np.maximum(f, 20.0) ** (exponent / 2.0)))


def white(n: int, rng: np.random.Generator) -> np.ndarray:
    return coloured(n, rng, 0.0)


def pink(n: int, rng: np.random.Generator) -> np.ndarray:
    return coloured(n, rng, -1.0)


def brown(n: int, rng: np.random.Generator) -> np.ndarray:
    return coloured(n, rng, -2.0)


def _smooth_response(rng: np.random.Generator, tilt: tuple[float, float], bumps: int,
                     gain_db: tuple[float, float]) -> Callable[[np.ndarray], np.ndarray]:
    """A random smooth magnitude response: a spectral tilt plus Gaussian bumps/dips in octaves."""
    slope = rng.uniform(*tilt)
    centres = np.exp(rng.uniform(np.log(80), np.log(7500), size=int(rng.integers(1, bumps + 1))))
    widths = rng.uniform(0.15, 1.0, size=centres.size)        # in octaves
    gains = rng.uniform(*gain_db, size=centres.size)

    def gain(f: np.ndarray) -> np.ndarray:
        f = np.maximum(f, 20.0)
        db = 10 * slope * np.log10(f / 1000.0)
        for c, w, g in zip(centres, widths, gains, strict=True):
            db = db + g * np.exp(-0.5 * ((np.log2(f) - np.log2(c)) / w) ** 2)
        return 10 ** (db / 20)

    return gain


def random_spectrum(n: int, rng: np.random.Generator) -> np.ndarray:
    """Noise with a random smooth spectral envelope: a tilt plus a few resonant bumps/dips."""
    gain = _smooth_response(rng, (-1.5, 0.3), 5, (-15, 20))
    return _unit_rms(_shape_spectrum(rng.standard_normal(n), gain))


def random_eq(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`x` through a mild random EQ (tilt and +-6 dB bumps), RMS preserved: a different mic/talker."""
    gain = _smooth_response(rng, (-0.3, 0.3), 3, (-6, 6))
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    y = _shape_spectrum(np.asarray(x, dtype=np.float64), gain)
    return y * (rms / max(float(np.sqrt(np.mean(y * y))), 1e-12))


def band_limited(n: int, rng: np.random.Generator) -> np.ndarray:
    """White noise through a random band-pass (soft edges)."""
    low = float(np.exp(rng.uniform(np.log(50), np.log(3000))))
    high = float(min(low * np.exp(rng.uniform(np.log(1.5), np.log(40))), 8000))

    def gain(f: np.ndarray) -> np.ndarray:
        return 1 / (1 + (low / np.maximum(f, 1.0)) ** 4) / (1 + (f / high) ** 4)

    return _unit_rms(_shape_spectrum(rng.standard_normal(n), gain))


def hum(n: int, rng: np.random.Generator) -> np.ndarray:
    """Mains or machine hum: a fundamental with decaying, randomly weighted harmonics."""
    f0 = float(rng.choice([50.0, 60.0])) if rng.random() < 0.6 else float(rng.uniform(40, 250))
    t = np.arange(n) / SAMPLE_RATE
    drift = 1 + 0.002 * np.sin(2 * np.pi * rng.uniform(0.05, 0.5) * t)
    out = np.zeros(n)
    for k in range(1, int(min(40, 7000 // f0)) + 1):
        amp = rng.uniform(0.1, 1.0) * k ** -rng.uniform(0.3, 1.5)
        out += amp * np.sin(2 * np.pi * k * f0 * np.cumsum(drift) / SAMPLE_RATE + rng.uniform(0, 6.3))
    return _unit_rms(out + 0.05 * coloured(n, rng, -1.0))


def rumble(n: int, rng: np.random.Generator) -> np.ndarray:
    """Car, bus or fan: strong low-frequency noise, engine/blade harmonics, a little hiss."""
    cutoff = rng.uniform(80, 400)
    low = _shape_spectrum(rng.standard_normal(n), lambda f: 1 / (1 + (f / cutoff) ** 2))
    out = _unit_rms(low)
    if rng.random() < 0.7:
        out = out + rng.uniform(0.1, 0.6) * hum(n, rng)
    return _unit_rms(out + rng.uniform(0.02, 0.3) * coloured(n, rng, rng.uniform(-1.5, 0)))


def _envelope(n: int, rng: np.random.Generator, rate_hz: float) -> np.ndarray:
    """A smooth random positive envelope varying at about `rate_hz`."""
    points = max(int(n / SAMPLE_RATE * rate_hz) + 2, 2)
    knots = rng.uniform(0, 1, size=points)
    return np.interp(np.linspace(0, points - 1, n), np.arange(points), knots)


def modulated(n: int, rng: np.random.Generator) -> np.ndarray:
    """Broadband noise under a periodic or random amplitude modulation."""
    base = random_spectrum(n, rng)
    if rng.random() < 0.5:
        t = np.arange(n) / SAMPLE_RATE
        depth = rng.uniform(0.3, 1.0)
        env = 1 + depth * np.sin(2 * np.pi * rng.uniform(0.2, 12) * t + rng.uniform(0, 6.3))
    else:
        env = _envelope(n, rng, rng.uniform(0.3, 6)) ** rng.uniform(1, 3)
    return _unit_rms(base * env)


def nonstationary(n: int, rng: np.random.Generator) -> np.ndarray:
    """Segments of different noises and levels switching abruptly or with short fades."""
    out = np.zeros(n)
    pos = 0
    simple = (coloured, random_spectrum, band_limited, rumble)
    while pos < n:
        length = int(rng.uniform(0.2, 1.5) * SAMPLE_RATE)
        seg = min(length, n - pos)
        piece = simple[int(rng.integers(len(simple)))](seg, rng) * 10 ** (rng.uniform(-20, 0) / 20)
        fade = min(int(rng.uniform(0, 0.05) * SAMPLE_RATE), seg // 2)
        if fade > 1:
            ramp = np.linspace(0, 1, fade)
            piece[:fade] *= ramp
            piece[-fade:] *= ramp[::-1]
        out[pos:pos + seg] += piece
        pos += seg
    return _unit_rms(out)


def clicks(n: int, rng: np.random.Generator) -> np.ndarray:
    """Knocks, clicks and keyboard-like transients over a faint noise floor."""
    out = 0.02 * coloured(n, rng)
    rate = rng.uniform(1, 15)                     # events per second
    for _ in range(int(rng.poisson(rate * n / SAMPLE_RATE)) + 1):
        length = int(rng.uniform(0.002, 0.06) * SAMPLE_RATE)
        start = int(rng.integers(0, max(n - length, 1)))
        burst = rng.standard_normal(length) * np.exp(-np.arange(length) / (length / 5 + 1))
        if rng.random() < 0.5:
            burst = np.convolve(burst, np.ones(int(rng.integers(1, 8))), mode="same")
        out[start:start + length] += burst[: n - start] * rng.uniform(0.2, 1.0)
    return _unit_rms(out)


def tonal(n: int, rng: np.random.Generator) -> np.ndarray:
    """A few steady or slowly gliding tones (alarms, whine) over broadband noise."""
    t = np.arange(n) / SAMPLE_RATE
    out = np.zeros(n)
    for _ in range(int(rng.integers(1, 4))):
        f = rng.uniform(200, 6000)
        glide = rng.uniform(-0.2, 0.2) * f * np.sin(2 * np.pi * rng.uniform(0.05, 2) * t)
        out += rng.uniform(0.2, 1.0) * np.sin(2 * np.pi * np.cumsum(f + glide) / SAMPLE_RATE)
    return _unit_rms(_unit_rms(out) + rng.uniform(0.3, 1.5) * random_spectrum(n, rng))


def make_babble(speech: Sequence[np.ndarray]) -> Generator:
    """A babble generator drawing 3-8 talkers from `speech` (each at a random level and offset)."""

    def babble(n: int, rng: np.random.Generator) -> np.ndarray:
        out = np.zeros(n)
        for _ in range(int(rng.integers(3, 9))):
            utt = speech[int(rng.integers(len(speech)))]
            if len(utt) == 0:
                continue
            reps = -(-n // len(utt)) + 1
            talker = np.tile(utt, reps)
            start = int(rng.integers(len(utt)))
            out += _unit_rms(talker[start:start + n].astype(np.float64)) * 10 ** (rng.uniform(-8, 0) / 20)
        return _unit_rms(out)

    return babble


def room_impulse(rng: np.random.Generator, rt60: float | None = None) -> np.ndarray:
    """A synthetic room impulse response: direct path plus exponentially decaying noise tail."""
    rt60 = float(rng.uniform(0.15, 0.9)) if rt60 is None else rt60
    length = int(rt60 * SAMPLE_RATE)
    t = np.arange(length) / SAMPLE_RATE
    tail = rng.standard_normal(length) * np.exp(-6.9 * t / rt60)
    # Later reflections lose high frequencies: a gentle one-pole smoothing of the tail.
    tail = np.convolve(tail, np.array([0.6, 0.4]), mode="same")
    tail[: int(0.003 * SAMPLE_RATE)] = 0
    rir = tail * rng.uniform(0.1, 0.5)
    rir[0] = 1.0
    return rir / np.sqrt(np.sum(rir * rir))


def reverberate(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`x` through a random synthetic room, same length."""
    rir = room_impulse(rng)
    wet = np.fft.irfft(np.fft.rfft(x, len(x) + len(rir)) * np.fft.rfft(rir, len(x) + len(rir)))
    return _unit_rms(wet[: len(x)])


GENERATORS: dict[str, Generator] = {
    "white": white, "pink": pink, "brown": brown, "coloured": coloured,
    "random_spectrum": random_spectrum, "band_limited": band_limited, "hum": hum,
    "rumble": rumble, "modulated": modulated, "nonstationary": nonstationary,
    "clicks": clicks, "tonal": tonal,
}
# Sampling weights: broadband shapes dominate real-world noise; hum and tones are rarer.
DEFAULT_WEIGHTS: dict[str, float] = {
    "white": 0.04, "pink": 0.05, "brown": 0.03, "coloured": 0.08, "random_spectrum": 0.16,
    "band_limited": 0.05, "hum": 0.03, "rumble": 0.10, "modulated": 0.08, "nonstationary": 0.08,
    "clicks": 0.04, "tonal": 0.03, "babble": 0.23,
}


def random_noise(n: int, rng: np.random.Generator, speech: Sequence[np.ndarray] | None = None,
                 weights: dict[str, float] | None = None) -> tuple[np.ndarray, str]:
    """One noise of unit RMS from a random family (sometimes two mixed, sometimes reverberant).

    Returns the noise and a short description such as "rumble+babble/reverb".
    """
    weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
    generators = dict(GENERATORS)
    if speech:
        generators["babble"] = make_babble(speech)
    else:
        weights.pop("babble", None)
    names = [k for k in weights if k in generators]
    p = np.array([weights[k] for k in names], dtype=float)
    p /= p.sum()
    first = names[int(rng.choice(len(names), p=p))]
    noise, label = generators[first](n, rng), first
    if rng.random() < 0.3:
        second = names[int(rng.choice(len(names), p=p))]
        noise = _unit_rms(noise + generators[second](n, rng) * 10 ** (rng.uniform(-12, 0) / 20))
        label += "+" + second
    if rng.random() < 0.25:
        noise, label = reverberate(noise, rng), label + "/reverb"
    return noise, label


def snr_db(speech: np.ndarray, noise: np.ndarray) -> float:
    """10 log10 of the speech-to-noise power ratio over the whole signals."""
    return float(10 * np.log10(np.sum(np.square(speech, dtype=np.float64))
                               / np.sum(np.square(noise, dtype=np.float64))))


def scale_to_snr(speech: np.ndarray, noise: np.ndarray, snr: float) -> np.ndarray:
    """`noise` rescaled so that `snr_db(speech, result) == snr`."""
    gain = 10 ** ((snr_db(speech, noise) - snr) / 20)
    return noise * gain
