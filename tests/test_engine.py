"""The streaming STFT engine: exact reconstruction and equality with the offline convention."""

import numpy as np
import pytest

from streamer.engine import (
    ALGORITHMIC_LATENCY_SAMPLES,
    HOP_SAMPLES,
    N_BINS,
    StreamingStft,
    frame_count,
    istft_centred,
    stft_centred,
)


def stream(signal, mask_fn=lambda spectrum: 1.0, dtype=np.float64):
    """Push `signal` through a fresh engine; return (output aligned to input, analysed spectra)."""
    engine = StreamingStft(dtype)
    n = len(signal)
    blocks = -(-(n + ALGORITHMIC_LATENCY_SAMPLES) // HOP_SAMPLES)
    padded = np.zeros(blocks * HOP_SAMPLES, dtype)
    padded[:n] = signal
    out, spectra = [], []
    for k in range(blocks):
        spectrum = engine.analyse(padded[k * HOP_SAMPLES:(k + 1) * HOP_SAMPLES])
        if spectrum is not None:
            spectra.append(spectrum)
            spectrum = spectrum * mask_fn(spectrum)
        out.append(engine.synthesise(spectrum))
    y = np.concatenate(out)[ALGORITHMIC_LATENCY_SAMPLES:ALGORITHMIC_LATENCY_SAMPLES + n]
    return y, np.array(spectra)


@pytest.mark.parametrize("n", [1, 99, 100, 399, 400, 401, 16_000, 23_456])
def test_identity_mask_reconstructs_exactly_in_float64(n):
    x = np.random.default_rng(n).uniform(-1, 1, n)
    y, _ = stream(x)
    assert len(y) == n
    assert np.max(np.abs(y - x)) <= 1e-6


def test_identity_mask_reconstructs_in_float32():
    x = np.random.default_rng(1).uniform(-1, 1, 32_000).astype(np.float32)
    y, _ = stream(x, dtype=np.float32)
    assert y.dtype == np.float32
    assert np.max(np.abs(y - x)) <= 1e-4


def test_latency_is_frame_minus_hop():
    impulse = np.zeros(2_000)
    engine = StreamingStft()
    out = []
    for k in range(len(impulse) // HOP_SAMPLES):
        block = impulse[k * HOP_SAMPLES:(k + 1) * HOP_SAMPLES].copy()
        if k == 5:
            block[0] = 1.0
        out.append(engine.synthesise(engine.analyse(block)))
    assert np.argmax(np.abs(np.concatenate(out))) == 5 * HOP_SAMPLES + ALGORITHMIC_LATENCY_SAMPLES


def test_streaming_frames_equal_offline_centred_stft():
    x = np.random.default_rng(2).standard_normal(12_345) * 0.1
    _, spectra = stream(x)
    offline = stft_centred(x)
    assert offline.shape == (frame_count(len(x)), N_BINS)
    # Zero ('constant') edge padding offline equals the silence before a stream: every offline
    # frame, edge frames included, is the streaming frame of the same index. Streaming analyses
    # up to two more frames at the end, while it flushes the latency.
    assert len(spectra) >= len(offline)
    np.testing.assert_allclose(spectra[:len(offline)], offline, rtol=0, atol=1e-9)


def test_streaming_mask_output_equals_offline_except_the_flush_tail():
    x = np.random.default_rng(3).standard_normal(9_999) * 0.1

    def mask_fn(spectrum):  # stateless and nonlinear, so only frame content matters
        return 1.0 / (1.0 + np.abs(spectrum))

    y, _ = stream(x, mask_fn)
    spectra = stft_centred(x)
    offline = istft_centred(spectra * mask_fn(spectra), len(x))
    # Samples after the last offline frame's centre - hop also receive the extra flush frames.
    exact_until = (frame_count(len(x)) - 1) * HOP_SAMPLES - 2 * HOP_SAMPLES
    np.testing.assert_allclose(y[:exact_until], offline[:exact_until], rtol=0, atol=1e-9)
    assert np.max(np.abs(y - offline)) < 0.05


def test_offline_istft_inverts_stft():
    x = np.random.default_rng(4).uniform(-1, 1, 5_000)
    np.testing.assert_allclose(istft_centred(stft_centred(x), len(x)), x, rtol=0, atol=1e-9)


def test_push_rejects_wrong_block_size():
    with pytest.raises(ValueError, match="100 samples"):
        StreamingStft().analyse(np.zeros(99))


def test_reset_restarts_the_stream():
    x = np.random.default_rng(5).uniform(-1, 1, HOP_SAMPLES)
    engine = StreamingStft()
    assert engine.analyse(x) is None
    assert engine.analyse(x) is not None
    engine.reset()
    assert engine.analyse(x) is None and engine.frames == 0


def test_hops_before_the_stream_starts_are_silent() -> None:
    """The first ALGORITHMIC_LATENCY_SAMPLES of output lie before the input's first sample. With
    a mask that is not the identity, dividing there by the edge of a single window gave the
    mask's leakage hundreds of times full scale: a click at the start of every live stream."""
    rng = np.random.default_rng(0)
    engine = StreamingStft()
    outputs = []
    for _ in range(8):
        spectrum = engine.analyse(rng.standard_normal(HOP_SAMPLES) * 0.3)
        outputs.append(engine.synthesise(None if spectrum is None else spectrum * rng.random(N_BINS)))
    lead = ALGORITHMIC_LATENCY_SAMPLES // HOP_SAMPLES
    assert all(not np.any(out) for out in outputs[:lead])
    assert all(np.max(np.abs(out)) < 2.0 for out in outputs[lead:])
    assert np.any(outputs[lead])
