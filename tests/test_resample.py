"""The streaming resampler and the device-rate Denoiser (live audio away from 16 kHz)."""

from __future__ import annotations

import numpy as np
import pytest

from streamer.backends.base import Backend
from streamer.engine import N_BINS, SAMPLE_RATE
from streamer.pipeline import Denoiser
from streamer.rate_adapter import COMMON_RATES, DeviceRateDenoiser, device_block_size, priming_samples
from streamer.resample import StreamResampler

OTHER_RATES = [rate for rate in COMMON_RATES if rate != SAMPLE_RATE]


class IdentityBackend(Backend):
    """Mask of ones: the engine then passes its input through, 300 samples late, so the only
    other change to the signal is the resamplers' (test double: no network needed)."""

    name = "identity"

    def step(self, magnitudes: np.ndarray) -> np.ndarray:
        return np.ones(N_BINS, np.float32)

    def reset(self) -> None:
        pass


def _tone(seconds: np.ndarray, freq: float = 1000.0) -> np.ndarray:
    return np.where(seconds >= 0, 0.5 * np.sin(2 * np.pi * freq * seconds), 0.0)


@pytest.mark.parametrize("rate", OTHER_RATES)
@pytest.mark.parametrize("direction", ["to16", "from16"])
def test_a_tone_comes_out_delayed_by_the_stated_delay(rate: int, direction: str) -> None:
    rate_in, rate_out = (rate, SAMPLE_RATE) if direction == "to16" else (SAMPLE_RATE, rate)
    resampler = StreamResampler(rate_in, rate_out)
    x = _tone(np.arange(rate_in) / rate_in)
    y = resampler.process(x)
    assert len(y) == resampler.output_count(len(x)) == -(-len(x) * rate_out // rate_in)
    expected = _tone(np.arange(len(y)) / rate_out - resampler.delay_s)
    settled = slice(rate_out // 10, None)
    assert np.abs(y - expected)[settled].max() < 1e-4
    # The delay is the filter's: a few ms, never soxr's tens.
    assert resampler.delay_s < 0.006


@pytest.mark.parametrize("rate", [44_100, 48_000])
def test_blocks_of_any_size_give_the_same_samples_as_one_block(rate: int) -> None:
    x = np.random.default_rng(1).standard_normal(rate // 2)
    whole = StreamResampler(rate, SAMPLE_RATE).process(x)
    pieces, resampler, at = [], StreamResampler(rate, SAMPLE_RATE), 0
    for size in np.random.default_rng(2).integers(0, 700, 200):
        pieces.append(resampler.process(x[at:at + size]))
        at += size
    pieces.append(resampler.process(x[at:]))
    np.testing.assert_allclose(np.concatenate(pieces), whole, rtol=0, atol=1e-12)


def test_constant_stays_constant_and_the_stop_band_is_stopped() -> None:
    down = StreamResampler(48_000, SAMPLE_RATE)
    np.testing.assert_allclose(down.process(np.ones(4800))[200:], 1.0, atol=1e-12)
    # 9 kHz at 48 kHz cannot exist at 16 kHz: it must not alias down to 7 kHz.
    t = np.arange(48_000) / 48_000
    alias = StreamResampler(48_000, SAMPLE_RATE).process(np.sin(2 * np.pi * 9000 * t))
    assert np.abs(alias[1000:]).max() < 10 ** (-70 / 20)


def test_bad_rates_are_refused() -> None:
    with pytest.raises(ValueError, match="positive integers"):
        StreamResampler(0, 16_000)
    with pytest.raises(ValueError, match="positive integers"):
        StreamResampler(44_100.5, 16_000)  # type: ignore[arg-type]


def test_device_block_sizes() -> None:
    # One 6.25 ms hop per block, rounded where the ratio is not whole.
    assert {rate: device_block_size(rate) for rate in COMMON_RATES} == {
        8_000: 50, 16_000: 100, 22_050: 138, 32_000: 200, 44_100: 276, 48_000: 300, 96_000: 600}


def test_priming_is_the_largest_shortfall() -> None:
    # Whole ratios: each block completes a hop at once, nothing to prime.
    for rate in (8_000, 32_000, 48_000, 96_000):
        assert priming_samples(StreamResampler(rate, SAMPLE_RATE), StreamResampler(SAMPLE_RATE, rate),
                               device_block_size(rate)) == 0
    # 44.1 kHz in blocks of 276: 100.136 16 kHz samples a block, so a second hop completes in
    # the same block only after 1 / 0.136 = 735 blocks, while 275.625 samples come out per
    # hop: the shortfall peaks at 734 x 0.375 = 275.25 -> under one block, computed exactly.
    to16, from16 = StreamResampler(44_100, SAMPLE_RATE), StreamResampler(SAMPLE_RATE, 44_100)
    assert 0 < priming_samples(to16, from16, 276) <= 276


@pytest.mark.parametrize("rate", OTHER_RATES)
def test_device_rate_denoiser_never_runs_dry_and_delays_by_its_latency(rate: int) -> None:
    adapter = DeviceRateDenoiser(Denoiser(IdentityBackend()), rate)
    block = adapter.block_size
    blocks = round(3.0 * rate / block)
    x = _tone(np.arange(blocks * block) / rate, 440.0)
    out = np.concatenate([adapter.push(x[k * block:(k + 1) * block]) for k in range(blocks)])
    assert adapter.underruns == 0
    expected = _tone(np.arange(len(out)) / rate - adapter.latency_s, 440.0)
    assert np.abs(out - expected)[rate // 10:].max() < 2e-3
    assert adapter.latency_s == pytest.approx(0.01875 + adapter.to_engine.delay_s
                                              + adapter.from_engine.delay_s + adapter.priming / rate)
    # The FIFO stays bounded: at most the priming plus what one block can bring.
    assert len(adapter._fifo) <= adapter.priming + 2 * block


def test_at_16k_the_denoiser_is_used_as_it_is() -> None:
    with pytest.raises(ValueError, match="16 kHz"):
        DeviceRateDenoiser(Denoiser(IdentityBackend()), SAMPLE_RATE)
