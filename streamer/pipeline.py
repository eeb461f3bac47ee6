"""The data path: audio in -> STFT frames -> backend -> masks -> overlap-add -> audio out.

Observers (timing, logs, dashboards) are called after each frame with what happened; they
watch the stream and never change it.

`atten_lim_db` limits the suppression, as DeepFilterNet's option of that name does: the
network's mask is floored at 10 ** (-atten_lim_db / 20) before it multiplies the spectrum, so
no bin is attenuated by more than that many dB and some ambience remains. Off (None) by
default, and then the network's mask is applied untouched.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from streamer.backends.base import Backend, DeviceGone
from streamer.engine import ALGORITHMIC_LATENCY_SAMPLES, HOP_SAMPLES, StreamingStft


class PipelineError(ValueError):
    """A pipeline setting that cannot be used (e.g. a negative attenuation limit); says why."""


def mask_floor(atten_lim_db: float | None) -> float | None:
    """The lowest mask value an attenuation limit of `atten_lim_db` dB allows, or None for no limit.

    floor = 10 ** (-atten_lim_db / 20), rounded to float32 (the masks' type), e.g. 6 dB -> 0.5011872;
    0 dB gives 1.0 (no suppression at all). Raises PipelineError for a negative or non-finite value.
    """
    if atten_lim_db is None:
        return None
    value = float(atten_lim_db)
    if not math.isfinite(value) or value < 0:
        raise PipelineError(f"--atten-lim-db must be a finite number of dB >= 0 (the most a bin may be "
                            f"attenuated), got {value:g}")
    return float(np.float32(10.0 ** (-value / 20.0)))


@dataclass(frozen=True)
class FrameEvent:
    """What one frame cost: its index in the stream, the host time spent on it and the mask applied
    (after the attenuation limit, when there is one)."""

    index: int
    host_s: float
    mask: np.ndarray


FrameObserver = Callable[[FrameEvent], None]


class Denoiser:
    """Push-based enhancer: `push(HOP_SAMPLES samples)` returns HOP_SAMPLES enhanced samples.

    `atten_lim_db` (None: off) floors every mask at `mask_floor(atten_lim_db)` on the host, after
    the network and before the mask multiplies the spectrum.
    """

    def __init__(self, backend: Backend, observers: Iterable[FrameObserver] = (), *,
                 atten_lim_db: float | None = None) -> None:
        floor = mask_floor(atten_lim_db)
        self.backend = backend
        self.engine = StreamingStft()
        self.observers = list(observers)
        self.atten_lim_db = None if atten_lim_db is None else float(atten_lim_db)
        self._floor = None if floor is None else np.float32(floor)

    def reset(self) -> None:
        self.engine.reset()
        self.backend.reset()

    def push(self, block: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        spectrum = self.engine.analyse(block)
        if spectrum is None:
            return self.engine.synthesise(None)
        mask = self.backend.step(np.abs(spectrum).astype(np.float32))
        if self._floor is not None:
            mask = np.maximum(mask, self._floor)
        out = self.engine.synthesise(spectrum * mask)
        event = FrameEvent(self.engine.frames - 1, time.perf_counter() - start, mask)
        for observer in self.observers:
            observer(event)
        return out


class StreamAborted(RuntimeError):
    """The backend's device is gone mid-stream: `output` holds the enhanced samples up to the
    last whole hop (time-aligned with the input, clipped as usual), `cause` the DeviceGone."""

    def __init__(self, cause: DeviceGone, output: np.ndarray) -> None:
        super().__init__(str(cause))
        self.cause, self.output = cause, output


def blocks_for(samples: int) -> int:
    """Hops `enhance_signal` streams for `samples` samples: the signal and the latency flush."""
    return -(-(samples + ALGORITHMIC_LATENCY_SAMPLES) // HOP_SAMPLES)


def enhance_signal(denoiser: Denoiser, signal: np.ndarray,
                   progress: Callable[[int, int], None] | None = None,
                   on_block: Callable[[int, np.ndarray, np.ndarray], None] | None = None) -> np.ndarray:
    """Stream a whole signal through `denoiser`; the result has the input's length and timing.

    The input is followed by zeros to flush the algorithmic latency, which is then removed,
    and the output is clipped to [-1, 1] as a WAV writer would. `progress(done, total)` and
    `on_block(index, block_in, block_out)` watch each hop (a dashboard's levels); they see
    the audio, they do not change it.
    """
    signal = np.asarray(signal, dtype=np.float64)
    n = len(signal)
    blocks = blocks_for(n)
    padded = np.zeros(blocks * HOP_SAMPLES)
    padded[:n] = signal
    out = np.empty_like(padded)
    for k in range(blocks):
        span = slice(k * HOP_SAMPLES, (k + 1) * HOP_SAMPLES)
        try:
            out[span] = denoiser.push(padded[span])
        except DeviceGone as gone:
            done = min(max(k * HOP_SAMPLES - ALGORITHMIC_LATENCY_SAMPLES, 0), n)
            raise StreamAborted(gone, np.clip(out[ALGORITHMIC_LATENCY_SAMPLES:ALGORITHMIC_LATENCY_SAMPLES
                                                  + done], -1.0, 1.0)) from gone
        if on_block is not None:
            on_block(k, padded[span], out[span])
        if progress is not None:
            progress(k + 1, blocks)
    return np.clip(out[ALGORITHMIC_LATENCY_SAMPLES:ALGORITHMIC_LATENCY_SAMPLES + n], -1.0, 1.0)
