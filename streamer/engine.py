"""Streaming STFT analysis and overlap-add synthesis, one 100-sample hop at a time.

Frame t is centred on input sample t * hop (the centred, librosa-style convention of the
reference evaluation): a 400-sample periodic Hann window, zero-padded to the 512-point FFT,
covering samples [t*hop - 200, t*hop + 200). Frame t can be analysed once its last sample
has arrived, i.e. on the push that completes sample t*hop + 199; after its overlap-add the
oldest hop of the output is final. The output therefore lags the input by exactly
ALGORITHMIC_LATENCY_SAMPLES = frame - hop = 300 samples (18.75 ms at 16 kHz).

Synthesis divides the overlap-added, windowed inverse FFTs by the overlap-added squared
window of the frames actually present, so an identity mask reproduces the input exactly,
also in the first frames of a stream, where fewer frames overlap.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16_000
FRAME_SAMPLES = 400
HOP_SAMPLES = 100
FFT_SIZE = 512
N_BINS = FFT_SIZE // 2 + 1
ALGORITHMIC_LATENCY_SAMPLES = FRAME_SAMPLES - HOP_SAMPLES
DEADLINE_S = HOP_SAMPLES / SAMPLE_RATE
_WINDOW_OFFSET = (FFT_SIZE - FRAME_SAMPLES) // 2


def analysis_window(dtype=np.float64) -> np.ndarray:
    """The periodic Hann window of FRAME_SAMPLES (as scipy's get_window('hann', 400))."""
    n = np.arange(FRAME_SAMPLES)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * n / FRAME_SAMPLES)).astype(dtype)


class StreamingStft:
    """Push HOP_SAMPLES in, get the frame to enhance; push its masked spectrum, get HOP_SAMPLES out.

    `analyse(block)` returns the complex spectrum (N_BINS) of the newest complete frame, or
    None on the very first push of a stream (no frame is complete yet). `synthesise(spectrum)`
    takes that frame back, masked, and returns the next HOP_SAMPLES of output; pass None when
    `analyse` returned None. State persists across calls until `reset()`.
    """

    def __init__(self, dtype=np.float64) -> None:
        self.dtype = np.dtype(dtype)
        self.window = analysis_window(self.dtype)
        self._window_sq = self.window * self.window
        self.reset()

    def reset(self) -> None:
        self._input = np.zeros(FRAME_SAMPLES, self.dtype)
        self._output = np.zeros(FRAME_SAMPLES, self.dtype)
        self._weight = np.zeros(FRAME_SAMPLES, self.dtype)
        self._pushes = 0
        self._fft_in = np.zeros(FFT_SIZE, self.dtype)

    @property
    def frames(self) -> int:
        """Frames analysed so far (the first push of a stream yields none)."""
        return max(self._pushes - 1, 0)

    def analyse(self, block: np.ndarray) -> np.ndarray | None:
        block = np.asarray(block, dtype=self.dtype)
        if block.shape != (HOP_SAMPLES,):
            raise ValueError(f"expected {HOP_SAMPLES} samples per push, got shape {block.shape}")
        self._input[:-HOP_SAMPLES] = self._input[HOP_SAMPLES:]
        self._input[-HOP_SAMPLES:] = block
        self._pushes += 1
        if self._pushes == 1:
            # The newest window would be centred before the stream began: the offline
            # convention has no such frame, so neither do we.
            return None
        self._fft_in[_WINDOW_OFFSET:_WINDOW_OFFSET + FRAME_SAMPLES] = self._input * self.window
        return np.fft.rfft(self._fft_in)

    def synthesise(self, spectrum: np.ndarray | None) -> np.ndarray:
        self._output[:-HOP_SAMPLES] = self._output[HOP_SAMPLES:]
        self._output[-HOP_SAMPLES:] = 0.0
        self._weight[:-HOP_SAMPLES] = self._weight[HOP_SAMPLES:]
        self._weight[-HOP_SAMPLES:] = 0.0
        if spectrum is not None:
            frame = np.fft.irfft(spectrum, FFT_SIZE)[_WINDOW_OFFSET:_WINDOW_OFFSET + FRAME_SAMPLES]
            self._output += frame * self.window
            self._weight += self._window_sq
        if self._pushes * HOP_SAMPLES <= ALGORITHMIC_LATENCY_SAMPLES:
            # This hop lies before the stream's first sample: there is no signal there, and
            # dividing by the tiny edge of one window would make a click of the mask's leakage
            # (hundreds of times full scale). Silence, as the offline convention has.
            return np.zeros(HOP_SAMPLES, self.dtype)
        done = self._output[:HOP_SAMPLES]
        weight = self._weight[:HOP_SAMPLES]
        safe = np.where(weight > 1e-10, weight, 1.0)
        return np.where(weight > 1e-10, done / safe, 0.0).astype(self.dtype)


def frame_count(n_samples: int) -> int:
    """Frames of the centred offline STFT of an n-sample signal (librosa's 1 + n // hop)."""
    return 1 + n_samples // HOP_SAMPLES


def stft_centred(signal: np.ndarray) -> np.ndarray:
    """Offline centred STFT, zero ('constant') edge padding: shape (frames, N_BINS).

    The reference convention the streaming engine is tested against.
    """
    signal = np.asarray(signal, dtype=np.float64)
    pad = FFT_SIZE // 2
    padded = np.concatenate([np.zeros(pad), signal, np.zeros(pad + FFT_SIZE)])
    window = np.zeros(FFT_SIZE)
    window[_WINDOW_OFFSET:_WINDOW_OFFSET + FRAME_SAMPLES] = analysis_window()
    n_frames = frame_count(len(signal))
    index = np.arange(FFT_SIZE)[None, :] + HOP_SAMPLES * np.arange(n_frames)[:, None]
    return np.fft.rfft(padded[index] * window, axis=1)


def istft_centred(spectra: np.ndarray, length: int) -> np.ndarray:
    """Inverse of `stft_centred` by windowed overlap-add and squared-window normalisation."""
    n_frames = spectra.shape[0]
    window = np.zeros(FFT_SIZE)
    window[_WINDOW_OFFSET:_WINDOW_OFFSET + FRAME_SAMPLES] = analysis_window()
    total = FFT_SIZE + HOP_SAMPLES * (n_frames - 1)
    out, weight = np.zeros(total), np.zeros(total)
    frames = np.fft.irfft(spectra, FFT_SIZE, axis=1) * window
    for t in range(n_frames):
        out[t * HOP_SAMPLES:t * HOP_SAMPLES + FFT_SIZE] += frames[t]
        weight[t * HOP_SAMPLES:t * HOP_SAMPLES + FFT_SIZE] += window * window
    nonzero = weight > 1e-10
    out[nonzero] /= weight[nonzero]
    pad = FFT_SIZE // 2
    result = out[pad:pad + length]
    return np.concatenate([result, np.zeros(length - len(result))]) if len(result) < length else result


# --- a whole signal at once, exactly as the stream would go ------------------------------------
# For evaluation at scale (streamer/batch.py): the frames that `StreamingStft` would analyse when
# `pipeline.enhance_signal` streams a signal, and the output its overlap-add would emit, each
# computed in one go with the same float operations in the same order, so the result is
# bit-identical to streaming (tests/test_batch.py holds them equal).

def stream_spectra(signal: np.ndarray) -> np.ndarray:
    """The spectra (frames, N_BINS) that streaming `signal` hop by hop yields, in order.

    Streaming pushes ceil((n + latency) / hop) hops (the signal, then zeros to flush the
    latency); every push but the first completes frame f, the window over samples
    [f*hop - 200, f*hop + 200) of the zero-extended signal.
    """
    signal = np.asarray(signal, dtype=np.float64)
    pushes = -(-(len(signal) + ALGORITHMIC_LATENCY_SAMPLES) // HOP_SAMPLES)
    lead = FRAME_SAMPLES - HOP_SAMPLES
    padded = np.zeros(lead + pushes * HOP_SAMPLES)
    padded[lead:lead + len(signal)] = signal
    frames = pushes - 1
    # Frame f starts at sample f*hop - 200, i.e. at (f + 1) * hop in `padded`.
    index = np.arange(FRAME_SAMPLES)[None, :] + HOP_SAMPLES * (np.arange(frames)[:, None] + 1)
    fft_in = np.zeros((frames, FFT_SIZE))
    fft_in[:, _WINDOW_OFFSET:_WINDOW_OFFSET + FRAME_SAMPLES] = padded[index] * analysis_window()
    return np.fft.rfft(fft_in, axis=1)


def overlap_add_spectra(spectra: np.ndarray, length: int) -> np.ndarray:
    """The `length` samples that streaming emits for the (masked) `spectra` of `stream_spectra`,
    latency removed, before any clipping.

    Output hop h (samples [h*hop, (h+1)*hop)) is the sum, oldest frame first, of the quarter of
    each frame h-1 .. h+2 that covers it, divided by the same sum of squared windows; where no
    window covers a sample it is 0. That is the order `StreamingStft.synthesise` adds in.
    """
    window = analysis_window()
    frames = np.fft.irfft(spectra, FFT_SIZE, axis=1)[:, _WINDOW_OFFSET:_WINDOW_OFFSET + FRAME_SAMPLES]
    frames = frames * window
    quarters = FRAME_SAMPLES // HOP_SAMPLES
    hops = -(-length // HOP_SAMPLES)
    out = np.zeros((hops, HOP_SAMPLES))
    weight = np.zeros((hops, HOP_SAMPLES))
    square = (window * window).reshape(quarters, HOP_SAMPLES)
    count = len(frames)
    for offset in range(-1, quarters - 1):  # frame h + offset, oldest first
        quarter = 1 - offset + 1  # the quarter of frame h + offset that covers hop h
        first, last = max(0, -offset), min(hops, count - offset)
        if first >= last:
            continue
        out[first:last] += frames[first + offset:last + offset,
                                  quarter * HOP_SAMPLES:(quarter + 1) * HOP_SAMPLES]
        weight[first:last] += square[quarter]
    safe = np.where(weight > 1e-10, weight, 1.0)
    return np.where(weight > 1e-10, out / safe, 0.0).reshape(-1)[:length]
