"""The FP32 emulator against a plain float64 transcription of the PyTorch cell equations."""

import numpy as np
import pytest
from helpers import random_params

from streamer.backends import open_backend
from streamer.backends.base import BackendError
from streamer.model.fp32 import Fp32Network


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def reference_step(p, x, state):
    """Unfused float64 TinyDenoiser step, written from the PyTorch documentation's equations."""
    t = {k: v.astype(np.float64) for k, v in p.tensors.items()}
    H = p.hidden
    y = np.maximum(t["fc0.weight"] @ x + t["fc0.bias"], 0)
    new_state = []
    for i, layer in enumerate(("rnn1", "rnn2")):
        gi = t[f"{layer}.weight_ih"] @ y + t[f"{layer}.bias_ih"]
        if p.cell == "lstm":
            h, c = state[2 * i], state[2 * i + 1]
            gh = t[f"{layer}.weight_hh"] @ h + t[f"{layer}.bias_hh"]
            g = gi + gh
            i_g, f_g, g_g, o_g = (g[k * H:(k + 1) * H] for k in range(4))
            c = sigmoid(f_g) * c + sigmoid(i_g) * np.tanh(g_g)
            y = sigmoid(o_g) * np.tanh(c)
            new_state += [y, c]
        else:
            h = state[i]
            gh = t[f"{layer}.weight_hh"] @ h + t[f"{layer}.bias_hh"]
            r = sigmoid(gi[:H] + gh[:H])
            z = sigmoid(gi[H:2 * H] + gh[H:2 * H])
            n = np.tanh(gi[2 * H:] + r * gh[2 * H:])
            y = (1 - z) * n + z * h
            new_state.append(y)
    y = np.maximum(t["fc1.weight"] @ y + t["fc1.bias"], 0)
    return sigmoid(t["fc2.weight"] @ y + t["fc2.bias"]), new_state


@pytest.mark.parametrize("cell,hidden", [("lstm", 128), ("lstm", 256), ("gru", 128), ("gru", 256)])
def test_fp32_step_matches_reference_over_a_sequence(cell, hidden):
    params = random_params(cell, hidden, seed=hidden)
    network = Fp32Network(params)
    state = network.initial_state()
    ref_state = [s.astype(np.float64) for s in state]
    rng = np.random.default_rng(7)
    for _ in range(40):
        mags = np.abs(rng.standard_normal(257)).astype(np.float32) * 3
        mask, state = network.step(mags, state)
        ref_mask, ref_state = reference_step(params, mags.astype(np.float64), ref_state)
        assert mask.dtype == np.float32 and mask.shape == (257,)
        np.testing.assert_allclose(mask, ref_mask, rtol=0, atol=2e-6)


def test_backend_keeps_state_and_resets():
    backend = open_backend("emulator", random_params())
    mags = np.ones(257, np.float32)
    first = backend.step(mags)
    second = backend.step(mags)
    assert not np.array_equal(first, second)  # the recurrent state moved on
    backend.reset()
    np.testing.assert_array_equal(backend.step(mags), first)


def test_huge_inputs_saturate_without_nan():
    backend = open_backend("emulator", random_params(scale=1.0))
    mask = backend.step(np.full(257, 1e30, np.float32))
    assert np.all(np.isfinite(mask)) and np.all((mask >= 0) & (mask <= 1))


def test_unknown_backend_and_mode_are_errors():
    with pytest.raises(BackendError, match="unknown backend"):
        open_backend("fpga", random_params())
    with pytest.raises(BackendError, match="streamer quantize"):
        open_backend("emulator", random_params(), quant="int8")
    with pytest.raises(BackendError, match="numeric mode"):
        open_backend("emulator", random_params(), quant="int4")
