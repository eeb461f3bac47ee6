"""The reference FP32 network: the TinyDenoiser's forward step in numpy, explicit state."""

from __future__ import annotations

from functools import cached_property

import numpy as np

from streamer.model.params import TinyDenoiserParams

State = list[np.ndarray]


def _product(weight: np.ndarray, x: np.ndarray) -> np.ndarray:
    """weight @ x for one stream (x: (K,)), x @ weight.T for a batch (x: (B, K)).

    One matrix product for the batch; its sums may be ordered differently from the
    single-stream product's, so a stream in a batch agrees with the same stream alone
    within float32 rounding, not bit for bit (tests/test_batch.py bounds it).
    """
    # weight @ x.T, not x @ weight.T: OpenBLAS packs the weights either way, but multiplies a
    # few columns on the right far faster than a few rows on the left (bench/eval_throughput.py).
    return weight @ x if x.ndim == 1 else (weight @ x.T).T


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # sigmoid(x) = 0.5 * tanh(x / 2) + 0.5: one transcendental, no overflow for any input.
    return 0.5 * np.tanh(0.5 * x) + 0.5


class Fp32Network:
    """The reference FP32 forward step, arranged for few numpy calls per frame.

    Each LSTM layer is one product [W_ih | W_hh] @ [x; h]; the rows of the sigmoid gates
    (and fc2) are pre-scaled by 1/2 so that a single tanh over all gates serves both
    nonlinearities (sigmoid(z) = 0.5 * tanh(z / 2) + 0.5). The rolling batch's stages
    (`front`, `recurrent`, `back`) split rnn1's product: W_ih x in the front, W_hh h per step.
    """

    def __init__(self, params: TinyDenoiserParams) -> None:
        t = params.tensors
        self.cell, self.hidden = params.cell, params.hidden
        n = self.hidden
        self.fc0 = (t["fc0.weight"], t["fc0.bias"])
        self.fc1 = (t["fc1.weight"], t["fc1.bias"])
        self.fc2 = ((t["fc2.weight"] * 0.5).astype(np.float32), (t["fc2.bias"] * 0.5).astype(np.float32))
        self.rnn = []
        for layer in ("rnn1", "rnn2"):
            w_ih, w_hh = t[f"{layer}.weight_ih"], t[f"{layer}.weight_hh"]
            b_ih, b_hh = t[f"{layer}.bias_ih"], t[f"{layer}.bias_hh"]
            if self.cell == "lstm":
                half = np.full(4 * n, 0.5, np.float32)
                half[2 * n:3 * n] = 1.0  # the g gate is a true tanh
                weight = np.hstack([w_ih, w_hh]) * half[:, None]
                self.rnn.append((np.ascontiguousarray(weight, np.float32), ((b_ih + b_hh) * half)))
            else:
                self.rnn.append((w_ih, w_hh, b_ih, b_hh))

    @cached_property
    def _rnn1_split(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """rnn1's (W_ih, input bias, W_hh) apart, for the batch's stages; made on first use, so a
        single stream (replay, live) does not hold a second copy of rnn1's weights. A GRU's
        W_hh stays in `rnn` (None here)."""
        if self.cell == "lstm":
            weight, bias = self.rnn[0]
            n = self.hidden
            return np.ascontiguousarray(weight[:, :n]), bias, np.ascontiguousarray(weight[:, n:])
        w_ih, _, b_ih, _ = self.rnn[0]
        return w_ih, b_ih, None

    def initial_state(self, streams: int | None = None) -> State:
        """Zero h (and c) per layer: vectors for one stream, (streams, hidden) for a batch."""
        per_layer = 2 if self.cell == "lstm" else 1
        shape = self.hidden if streams is None else (streams, self.hidden)
        return [np.zeros(shape, np.float32) for _ in range(2 * per_layer)]

    def recurrent_layer(self, layer: int, x: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """Step recurrent layer `layer` (0 or 1) on input x with its own state slice."""
        if self.cell == "lstm":
            h, c = self._lstm(x, state[0], state[1], self.rnn[layer])
            return h, [h, c]
        h = self._gru(x, state[0], self.rnn[layer])
        return h, [h]

    def _lstm(self, x: np.ndarray, h: np.ndarray, c: np.ndarray, weights) -> tuple:
        w, b = weights
        return self._lstm_cell(_product(w, np.concatenate([x, h], axis=-1)) + b, c)

    def _lstm_cell(self, pre: np.ndarray, c: np.ndarray) -> tuple:
        """From the gates' pre-activations (i, f and o halved) and c: the new h and c."""
        n = self.hidden
        z = np.tanh(pre)
        gates = 0.5 * z + 0.5  # i, f, o as sigmoids; the g slice is read from z
        c = gates[..., n:2 * n] * c + gates[..., :n] * z[..., 2 * n:3 * n]
        return gates[..., 3 * n:] * np.tanh(c), c

    def _gru(self, x: np.ndarray, h: np.ndarray, weights) -> np.ndarray:
        w_ih, _, b_ih, _ = weights
        return self._gru_cell(_product(w_ih, x) + b_ih, h, weights)

    def _gru_cell(self, gi: np.ndarray, h: np.ndarray, weights) -> np.ndarray:
        """From the input's gate sums gi and h: the new h."""
        _, w_hh, _, b_hh = weights
        gh = _product(w_hh, h) + b_hh
        n = self.hidden
        r = _sigmoid(gi[..., :n] + gh[..., :n])
        z = _sigmoid(gi[..., n:2 * n] + gh[..., n:2 * n])
        candidate = np.tanh(gi[..., 2 * n:] + r * gh[..., 2 * n:])
        return (1.0 - z) * candidate + z * h

    def step(self, magnitudes: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """One frame of one stream ((N_BINS,) and `initial_state()`), or of B streams at once
        ((B, N_BINS) and `initial_state(B)`, row b being stream b)."""
        x = self._fc0(magnitudes)
        per_layer = len(state) // 2
        h1, s1 = self.recurrent_layer(0, x, state[:per_layer])
        h2, s2 = self.recurrent_layer(1, h1, state[per_layer:])
        return self.back(h2), s1 + s2

    def _fc0(self, magnitudes: np.ndarray) -> np.ndarray:
        return np.maximum(_product(self.fc0[0], magnitudes) + self.fc0[1], 0.0)

    # --- the rolling batch's three stages (streamer/batch.py) -------------------------------------
    def front(self, magnitudes: np.ndarray) -> np.ndarray:
        """(frames, N_BINS) -> (frames, gates): fc0, then rnn1's input product and biases."""
        weight, bias, _ = self._rnn1_split
        return _product(weight, self._fc0(magnitudes)) + bias

    def recurrent(self, inputs: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """B streams: `front`'s (B, gates) and `initial_state(B)` -> rnn2's h (B, hidden), state."""
        per_layer = len(state) // 2
        if self.cell == "lstm":
            h1, c1 = self._lstm_cell(_product(self._rnn1_split[2], state[0]) + inputs, state[1])
            s1 = [h1, c1]
        else:
            h1 = self._gru_cell(inputs, state[0], self.rnn[0])
            s1 = [h1]
        h2, s2 = self.recurrent_layer(1, h1, state[per_layer:])
        return h2, s1 + s2

    def back(self, hidden: np.ndarray) -> np.ndarray:
        """rnn2's h -> the mask: fc1, fc2 and the sigmoid."""
        y = np.maximum(_product(self.fc1[0], hidden) + self.fc1[1], 0.0)
        mask = np.tanh(_product(self.fc2[0], y) + self.fc2[1])
        return 0.5 * mask + 0.5
