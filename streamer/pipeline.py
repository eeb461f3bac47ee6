"""The data path: audio in -> STFT frames -> backend -> masks -> overlap-add -> audio out.

Observers (timing, logs, dashboards) are called after each frame with what happened; they
watch the stream and never change it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from streamer.backends.base import Backend
from streamer.engine import ALGORITHMIC_LATENCY_SAMPLES, HOP_SAMPLES, StreamingStft


@dataclass(frozen=True)
class FrameEvent:
    """What one frame cost: its index in the stream and the host time spent on it."""

    index: int
    host_s: float
    mask: np.ndarray


FrameObserver = Callable[[FrameEvent], None]


class Denoiser:
    """Push-based enhancer: `push(HOP_SAMPLES samples)` returns HOP_SAMPLES enhanced samples."""

    def __init__(self, backend: Backend, observers: Iterable[FrameObserver] = ()) -> None:
        self.backend = backend
        self.engine = StreamingStft()
        self.observers = list(observers)

    def reset(self) -> None:
        self.engine.reset()
        self.backend.reset()

    def push(self, block: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        spectrum = self.engine.analyse(block)
        if spectrum is None:
            return self.engine.synthesise(None)
        mask = self.backend.step(np.abs(spectrum).astype(np.float32))
        out = self.engine.synthesise(spectrum * mask)
        event = FrameEvent(self.engine.frames - 1, time.perf_counter() - start, mask)
        for observer in self.observers:
            observer(event)
        return out


def enhance_signal(denoiser: Denoiser, signal: np.ndarray,
                   progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Stream a whole signal through `denoiser`; the result has the input's length and timing.

    The input is followed by zeros to flush the algorithmic latency, which is then removed,
    and the output is clipped to [-1, 1] as a WAV writer would.
    """
    signal = np.asarray(signal, dtype=np.float64)
    n = len(signal)
    blocks = -(-(n + ALGORITHMIC_LATENCY_SAMPLES) // HOP_SAMPLES)
    padded = np.zeros(blocks * HOP_SAMPLES)
    padded[:n] = signal
    out = np.empty_like(padded)
    for k in range(blocks):
        span = slice(k * HOP_SAMPLES, (k + 1) * HOP_SAMPLES)
        out[span] = denoiser.push(padded[span])
        if progress is not None:
            progress(k + 1, blocks)
    return np.clip(out[ALGORITHMIC_LATENCY_SAMPLES:ALGORITHMIC_LATENCY_SAMPLES + n], -1.0, 1.0)
