"""Inputs shared by the benchmarks."""

from __future__ import annotations

import numpy as np

from streamer.engine import HOP_SAMPLES, StreamingStft


def magnitudes(frames: int, seed: int = 0) -> np.ndarray:
    """STFT magnitudes of low noise, the level of a quiet room: realistic input ranges."""
    rng = np.random.default_rng(seed)
    engine = StreamingStft()
    out = []
    while len(out) < frames:
        spectrum = engine.analyse(rng.standard_normal(HOP_SAMPLES) * 0.05)
        if spectrum is not None:
            out.append(np.abs(spectrum).astype(np.float32))
    return np.array(out)
