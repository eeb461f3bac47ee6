"""The 16 kHz Denoiser at an audio device's own rate: resample in, hop by hop, resample out.

A sound card or desktop audio server runs at 44.1 or 48 kHz (sometimes 8, 22.05, 32 or
96 kHz); the network, the engine and every backend run at 16 kHz and stay bit-exact there.
`DeviceRateDenoiser.push(block)` takes one device block (`block_size` samples, the device
samples in one 6.25 ms hop, rounded where the ratio is not whole: 276 at 44.1 kHz) and
returns one, so the live stream's block clock, fates and counters work the same at any rate:

    device block -> StreamResampler(rate -> 16 kHz) -> whole 100-sample hops -> Denoiser.push
                 -> StreamResampler(16 kHz -> rate) -> output FIFO -> one device block

A block does not always complete a whole hop (the resampler's delay, a ratio that is not
whole), so the output FIFO starts with `priming` zeros: the least that, by the exact sample
counts of both resamplers, keeps it from ever running dry. Those counts are integer
arithmetic, so the priming is computed, not guessed, and `underruns` stays 0 by
construction (a test checks it over long runs at every supported rate).

Delay of the enhanced signal behind the input, in seconds (`latency_s`): the engine's
algorithmic 18.75 ms + both resamplers' group delays + priming / rate.
"""

from __future__ import annotations

import numpy as np

from streamer.engine import ALGORITHMIC_LATENCY_SAMPLES, HOP_SAMPLES, SAMPLE_RATE
from streamer.pipeline import Denoiser
from streamer.resample import StreamResampler

# Rates users' devices run at; others work too (any positive integer rate).
COMMON_RATES = (8_000, 16_000, 22_050, 32_000, 44_100, 48_000, 96_000)


def device_block_size(rate: int) -> int:
    """Device samples in one 6.25 ms hop, rounded to the nearest whole sample (at least 1)."""
    return max(1, round(rate * HOP_SAMPLES / SAMPLE_RATE))


def priming_samples(to_engine: StreamResampler, from_engine: StreamResampler, block: int,
                    blocks: int | None = None) -> int:
    """Zeros the output FIFO must start with so that no block ever finds it short.

    After k + 1 device blocks the stream has made `out(k)` output samples and must have played
    (k + 1) * block; the priming is the largest shortfall. The counts are periodic; `blocks`
    (default: enough for the longest period of a rational ratio) bounds the search.
    """
    if blocks is None:
        blocks = 100 * to_engine.down + 2000
    k = np.arange(1, blocks + 1, dtype=np.int64)
    captured = k * block
    engine_in = -(-captured * to_engine.up // to_engine.down)
    hops_done = engine_in // HOP_SAMPLES
    produced = -(-(hops_done * HOP_SAMPLES) * from_engine.up // from_engine.down)
    return int(max(0, (captured - produced).max()))


class DeviceRateDenoiser:
    """`Denoiser.push` at `rate` Hz in blocks of `block_size` samples (see the module doc)."""

    def __init__(self, denoiser: Denoiser, rate: int) -> None:
        if rate == SAMPLE_RATE:
            raise ValueError("at 16 kHz use the Denoiser itself: nothing to resample")
        self.denoiser = denoiser
        self.backend = denoiser.backend
        self.rate = int(rate)
        self.block_size = device_block_size(self.rate)
        self.to_engine = StreamResampler(self.rate, SAMPLE_RATE)
        self.from_engine = StreamResampler(SAMPLE_RATE, self.rate)
        self.priming = priming_samples(self.to_engine, self.from_engine, self.block_size)
        self.underruns = 0
        self.reset()

    @property
    def resampling_s(self) -> float:
        """What resampling adds to the delay: both filters' group delays and the priming."""
        return self.to_engine.delay_s + self.from_engine.delay_s + self.priming / self.rate

    @property
    def latency_s(self) -> float:
        """Delay of the enhanced output behind the input (see the module doc)."""
        return ALGORITHMIC_LATENCY_SAMPLES / SAMPLE_RATE + self.resampling_s

    def reset(self) -> None:
        self.denoiser.reset()
        self.to_engine.reset()
        self.from_engine.reset()
        self._pending = np.zeros(0)                  # 16 kHz samples short of a whole hop
        self._fifo = np.zeros(self.priming)          # device samples ready to play

    def push(self, block: np.ndarray) -> np.ndarray:
        samples = np.concatenate([self._pending, self.to_engine.process(block)])
        hops = len(samples) // HOP_SAMPLES
        if hops:
            enhanced = [self.denoiser.push(samples[i * HOP_SAMPLES:(i + 1) * HOP_SAMPLES])
                        for i in range(hops)]
            self._fifo = np.concatenate([self._fifo, self.from_engine.process(np.concatenate(enhanced))])
        self._pending = samples[hops * HOP_SAMPLES:]
        n = len(block)
        if len(self._fifo) < n:
            # Cannot happen with the computed priming; counted rather than assumed.
            self.underruns += 1
            self._fifo = np.concatenate([self._fifo, np.zeros(n - len(self._fifo))])
        out, self._fifo = self._fifo[:n], self._fifo[n:]
        return out
