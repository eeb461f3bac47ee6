"""Calibration: run audio through the FP32 model and measure the activation ranges quantisation needs.

Ranges are peak magnitudes per tensor (symmetric int8: scale = range / 127). Three methods:

- `minmax`: the largest |value| seen. Never clips, but one outlier coarsens every other value.
- `percentile`: the given percentile of |value| (default 99.99): clips rare outliers.
- `mse`: the clipping threshold minimising the mean squared int8 quantisation error over the
  samples, searched on a grid between 10% and 100% of the peak, for the tensor's code width
  (int16 for LSTM cell states, int8 otherwise).

The default is `mse`: it picks, per tensor, the trade-off between clipping and rounding error
that quantisation itself is judged by, needs no tuned constant, and on cell states (long-tailed)
keeps resolution where most values live.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from streamer.engine import stft_centred
from streamer.model.fp32 import Fp32Network
from streamer.model.params import ModelError, TinyDenoiserParams
from streamer.quant.network import code_levels

METHODS = ("mse", "percentile", "minmax")
DEFAULT_METHOD = "mse"
DEFAULT_PERCENTILE = 99.99
# Activations kept per tensor for the percentile and MSE searches: a stride subsample bounds
# memory on long calibration sets without biasing towards any part of the audio.
_MAX_SAMPLES = 2_000_000


def trace_activations(params: TinyDenoiserParams, magnitudes: np.ndarray) -> dict[str, np.ndarray]:
    """Run one utterance (frames x 257 magnitudes) through the FP32 network from a zero state.

    Returns, per calibrated tensor, every value it took (flattened).
    """
    network = Fp32Network(params)
    mags = np.asarray(magnitudes, np.float32)
    fc0_out = np.maximum(mags @ network.fc0[0].T + network.fc0[1], 0.0)
    state = network.initial_state()
    per_layer = len(state) // 2
    h2_all, cells = [], {"rnn1.cell": [], "rnn2.cell": []}
    for x in fc0_out:
        h1, s1 = network.recurrent_layer(0, x, state[:per_layer])
        h2, s2 = network.recurrent_layer(1, h1, state[per_layer:])
        state = s1 + s2
        h2_all.append(h2)
        if params.cell == "lstm":
            cells["rnn1.cell"].append(s1[1])
            cells["rnn2.cell"].append(s2[1])
    fc1_out = np.maximum(np.array(h2_all) @ network.fc1[0].T + network.fc1[1], 0.0)
    traced = {"fc0.input": mags.ravel(), "rnn1.input": fc0_out.ravel(), "fc2.input": fc1_out.ravel()}
    if params.cell == "lstm":
        traced.update({name: np.array(values).ravel() for name, values in cells.items()})
    return traced


def _mse_range(values: np.ndarray, levels: int) -> float:
    peak = float(values.max())
    if peak == 0.0:
        return 0.0
    best, best_error = peak, np.inf
    for clip in np.linspace(0.1, 1.0, 91) * peak:
        scale = clip / levels
        error = np.mean((np.clip(np.rint(values / scale), -levels, levels) * scale - values) ** 2)
        if error < best_error:
            best, best_error = float(clip), error
    return best


def activation_ranges(traces: Iterable[dict[str, np.ndarray]], method: str = DEFAULT_METHOD,
                      percentile: float = DEFAULT_PERCENTILE) -> dict[str, float]:
    """Combine traces of several utterances into one range per tensor with `method`."""
    if method not in METHODS:
        raise ModelError(f"unknown calibration method {method!r}; expected one of {METHODS}")
    pooled: dict[str, list[np.ndarray]] = {}
    for trace in traces:
        for name, values in trace.items():
            pooled.setdefault(name, []).append(np.abs(values.astype(np.float64)))
    if not pooled:
        raise ModelError("calibration needs at least one audio file")
    ranges = {}
    for name in sorted(pooled):
        values = np.concatenate(pooled[name])
        if len(values) > _MAX_SAMPLES:
            values = values[:: -(-len(values) // _MAX_SAMPLES)]
        if method == "minmax":
            ranges[name] = float(values.max())
        elif method == "percentile":
            ranges[name] = float(np.percentile(values, percentile))
        else:
            ranges[name] = _mse_range(values, code_levels(name))
    return ranges


def calibrate(params: TinyDenoiserParams, signals: Iterable[tuple[str, np.ndarray]],
              method: str = DEFAULT_METHOD, percentile: float = DEFAULT_PERCENTILE) -> dict:
    """Calibration record for `params` from named 16 kHz signals; deterministic for equal inputs."""
    names, traces = [], []
    for name, signal in signals:
        names.append(name)
        traces.append(trace_activations(params, np.abs(stft_centred(signal))))
    record = {"method": method, "ranges": activation_ranges(traces, method, percentile), "files": names}
    if method == "percentile":
        record["percentile"] = percentile
    return record
