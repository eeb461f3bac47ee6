"""Quantisation of a TinyDenoiser into fp16, int8 or mixed storage, and its bit-accurate step.

`quantize(params, mode, activation_ranges)` makes a `QuantizedModel`: weights in their storage
types plus the activation scales. `QuantizedNetwork(model).step` runs one frame following
docs/arithmetic-contract.md to the bit; it is the golden model the firmware is compared with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from streamer.model.params import ModelError, TinyDenoiserParams, tensor_shapes
from streamer.quant import arith
from streamer.quant.arith import F32, STATE_SCALE, f16
from streamer.quant.modes import (  # noqa: F401 - re-exported: the quantised network's vocabulary
    DENSE_LAYERS,
    QUANTIZED_MODES,
    RECURRENT_LAYERS,
    ModeError,
    check_mode,
)
from streamer.quant.modes import layer_precision as _mode_precision


def layer_precision(mode: str, layer: str) -> str:
    """Storage of `layer` ("fp16" or "int8") in quantised `mode` (streamer/quant/modes.py)."""
    try:
        return _mode_precision(check_mode(mode, QUANTIZED_MODES), layer)
    except ModeError as error:
        raise ModelError(str(error)) from None


def required_ranges(mode: str, cell: str) -> list[str]:
    """Activation ranges that calibration must provide for `mode`.

    rnn2's input and fc1's input are recurrent outputs, forced to [-1, 1]: no range needed.
    """
    needed = []
    if layer_precision(mode, "fc0") == "int8":
        needed.append("fc0.input")
    if layer_precision(mode, "rnn1") == "int8":
        needed.append("rnn1.input")
        if cell == "lstm":
            needed += ["rnn1.cell", "rnn2.cell"]
    if layer_precision(mode, "fc2") == "int8":
        needed.append("fc2.input")
    return needed


def code_levels(tensor: str) -> int:
    """Largest code of a calibrated tensor: the LSTM cell state is int16, the rest int8.

    The cell state never feeds a matrix product, so 16 bits cost no MAC throughput; 8 bits
    cost 0.21 PESQ on tt_denoiser_rank_8 (mixed: 1.572 against 1.784 with 16 bits).
    """
    return arith.INT16_MAX if tensor.endswith(".cell") else arith.INT8_MAX


def _per_channel_int8(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-output-channel int8: scale = max|row| / 127, q = round_half_even(w / scale)."""
    peak = np.max(np.abs(weight.astype(np.float64)), axis=1)
    scale = np.where(peak > 0, peak / arith.INT8_MAX, 1.0).astype(F32)
    q = np.clip(np.rint(weight / scale.astype(np.float64)[:, None]), -127, 127).astype(np.int8)
    return q, scale


def _fp16_weights(name: str, weight: np.ndarray) -> np.ndarray:
    if np.max(np.abs(weight)) > float(arith.FP16_MAX):
        raise ModelError(f"{name} holds values beyond binary16's range (65504): cannot store as fp16")
    return weight.astype(np.float16)


@dataclass
class QuantizedModel:
    """A TinyDenoiser in the storage types of one numeric mode, with its activation scales."""

    mode: str
    cell: str
    hidden: int
    tensors: dict[str, np.ndarray]
    activation_scales: dict[str, float]
    calibration: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)

    def describe(self) -> str:
        return (f"{self.cell.upper()} TinyDenoiser, H={self.hidden}, {self.mode}, "
                f"{self.weight_bytes():,} weight bytes")

    @property
    def parameter_count(self) -> int:
        """Weights and biases (per-row scales are storage overhead, not parameters)."""
        return sum(int(t.size) for name, t in self.tensors.items() if not name.endswith("_scale"))

    def weight_bytes(self) -> int:
        return sum(int(t.nbytes) for t in self.tensors.values())

    def layer_bytes(self) -> dict[str, dict[str, int]]:
        """Bytes per layer and storage type (int8, float16, float32 for per-channel scales)."""
        table: dict[str, dict[str, int]] = {}
        for name, tensor in self.tensors.items():
            layer = name.split(".")[0]
            kind = table.setdefault(layer, {})
            kind[tensor.dtype.name] = kind.get(tensor.dtype.name, 0) + int(tensor.nbytes)
        return table


def quantize(params: TinyDenoiserParams, mode: str, activation_ranges: dict[str, float] | None,
             calibration: dict | None = None) -> QuantizedModel:
    """Store `params` in `mode`; `activation_ranges` (peak |value| per tensor) from calibration."""
    ranges = activation_ranges or {}
    missing = [name for name in required_ranges(mode, params.cell) if name not in ranges]
    if missing:
        raise ModelError(f"numeric mode {mode} needs calibrated ranges for {', '.join(missing)}: "
                         f"run `streamer quantize MODEL --quant {mode} --calib DIR -o OUT`")
    t = params.tensors
    tensors: dict[str, np.ndarray] = {}
    for layer in DENSE_LAYERS + RECURRENT_LAYERS:
        precision = layer_precision(mode, layer)
        weights = ["weight"] if layer in DENSE_LAYERS else ["weight_ih", "weight_hh"]
        biases = ["bias"] if layer in DENSE_LAYERS else ["bias_ih", "bias_hh"]
        for w in weights:
            name = f"{layer}.{w}"
            if precision == "int8":
                tensors[name], tensors[f"{name}_scale"] = _per_channel_int8(t[name])
            else:
                tensors[name] = _fp16_weights(name, t[name])
        for b in biases:
            tensors[f"{layer}.{b}"] = _fp16_weights(f"{layer}.{b}", t[f"{layer}.{b}"])
    scales = {name: float(F32(max(ranges[name], 1e-8) / code_levels(name)))
              for name in required_ranges(mode, params.cell)}
    return QuantizedModel(mode=mode, cell=params.cell, hidden=params.hidden, tensors=tensors,
                          activation_scales=scales, calibration=dict(calibration or {}),
                          metadata=dict(params.metadata))


def validate_quantized(model: QuantizedModel) -> None:
    """Raise ModelError unless every tensor has the shape and storage type its mode requires."""
    shapes = tensor_shapes(model.cell, model.hidden)
    expected: dict[str, tuple[str, tuple[int, ...]]] = {}
    for name, shape in shapes.items():
        layer, kind = name.split(".")
        precision = layer_precision(model.mode, layer)
        if kind.startswith("weight") and precision == "int8":
            expected[name] = ("int8", shape)
            expected[f"{name}_scale"] = ("float32", shape[:1])
        else:
            expected[name] = ("float16", shape)
    if set(expected) != set(model.tensors):
        raise ModelError(f"quantised {model.mode} model has tensors {sorted(model.tensors)}, "
                         f"expected {sorted(expected)}")
    for name, (dtype, shape) in expected.items():
        tensor = model.tensors[name]
        if tensor.dtype.name != dtype or tensor.shape != shape:
            raise ModelError(f"tensor {name} is {tensor.dtype.name}{list(tensor.shape)}, "
                             f"expected {dtype}{list(shape)}")
    missing = [n for n in required_ranges(model.mode, model.cell) if n not in model.activation_scales]
    if missing:
        raise ModelError(f"quantised {model.mode} model lacks activation scales for {missing}")


class QuantizedNetwork:
    """One-frame step of a QuantizedModel, bit-accurate to the arithmetic contract."""

    def __init__(self, model: QuantizedModel) -> None:
        validate_quantized(model)
        self.model, self.mode, self.cell, self.hidden = model, model.mode, model.cell, model.hidden
        t = model.tensors
        scale = {k: F32(v) for k, v in model.activation_scales.items()}
        self.inv_scale = {k: F32(1.0) / v for k, v in scale.items()}
        self.precision = {layer: layer_precision(self.mode, layer)
                          for layer in DENSE_LAYERS + RECURRENT_LAYERS}
        self.dense = {}
        for layer in DENSE_LAYERS:
            bias = t[f"{layer}.bias"].astype(F32)
            if self.precision[layer] == "int8":
                in_scale = STATE_SCALE if layer == "fc1" else scale[f"{layer}.input"]
                multiplier = (t[f"{layer}.weight_scale"] * in_scale).astype(F32)
                self.dense[layer] = (t[f"{layer}.weight"].astype(F32), multiplier, bias)
            else:
                self.dense[layer] = (arith.SequentialDot(t[f"{layer}.weight"].astype(F32), bias),)
        self.rnn = {}
        for layer in RECURRENT_LAYERS:
            w_ih, w_hh = t[f"{layer}.weight_ih"].astype(F32), t[f"{layer}.weight_hh"].astype(F32)
            b_ih, b_hh = t[f"{layer}.bias_ih"].astype(F32), t[f"{layer}.bias_hh"].astype(F32)
            if self.precision[layer] == "int8":
                in_scale = scale["rnn1.input"] if layer == "rnn1" else STATE_SCALE
                m_ih = (t[f"{layer}.weight_ih_scale"] * in_scale).astype(F32)
                m_hh = (t[f"{layer}.weight_hh_scale"] * STATE_SCALE).astype(F32)
                self.rnn[layer] = (w_ih, w_hh, m_ih, m_hh, b_ih, b_hh)
            elif self.cell == "lstm":
                # One sum per gate row over [x; h]: b_ih, b_hh, then W_ih x, then W_hh h.
                self.rnn[layer] = (arith.SequentialDot(np.hstack([w_ih, w_hh]),
                                                       np.stack([b_ih, b_hh], axis=1)),)
            else:
                self.rnn[layer] = (arith.SequentialDot(w_ih, b_ih), arith.SequentialDot(w_hh, b_hh))

    def initial_state(self, streams: int | None = None) -> list[np.ndarray]:
        """Per layer h (and c for LSTM): int8 h and int16 c for 8-bit layers, binary16 otherwise.

        `streams=None`: one stream, vectors of `hidden`; `streams=B`: B streams, (B, hidden).
        """
        shape = self.hidden if streams is None else (streams, self.hidden)
        if self.precision["rnn1"] != "int8":
            return [np.zeros(shape, F32) for _ in range(4 if self.cell == "lstm" else 2)]
        per_layer = [np.int8, np.int16] if self.cell == "lstm" else [np.int8]
        return [np.zeros(shape, dtype) for dtype in per_layer * 2]

    # --- dense layers -------------------------------------------------------------------------
    def _dense(self, layer: str, x: np.ndarray) -> np.ndarray:
        """Pre-activation (binary32) of a dense layer. `x`: binary16 values, or int8 for int8 layers."""
        if self.precision[layer] == "int8":
            weight, multiplier, bias = self.dense[layer]
            return arith.dot_int8(weight, x) * multiplier + bias
        (sequential_dot,) = self.dense[layer]
        return sequential_dot(x)

    def _to_layer_input(self, layer: str, y: np.ndarray) -> np.ndarray:
        """Convert a binary32/binary16 activation to what `layer` consumes."""
        if self.precision[layer] == "int8":
            return arith.quantize_int8(y, self.inv_scale[f"{layer}.input"])
        return f16(y)

    # --- recurrent layers ---------------------------------------------------------------------
    def _rnn_input(self, layer: str, x: np.ndarray) -> np.ndarray:
        """What recurrent `layer` takes from its input x: an 8-bit layer the input's product
        (exact, then scaled; for a GRU with b_ih added), which depends on no state and so can be
        computed for many frames at once; an fp16 layer x itself, whose sum runs on into h's."""
        if self.precision[layer] != "int8":
            return x
        w_ih, _, m_ih, _, b_ih, _ = self.rnn[layer]
        part = arith.dot_int8(w_ih, x) * m_ih
        return part + b_ih if self.cell == "gru" else part

    def _lstm_int8(self, layer: str, x_part, h_q, c_q):
        _, w_hh, _, m_hh, b_ih, b_hh = self.rnn[layer]
        bias = b_ih + b_hh
        z = (x_part + arith.dot_int8(w_hh, h_q) * m_hh) + bias
        n = self.hidden
        i, f, o = arith.sigmoid(z[..., :n]), arith.sigmoid(z[..., n:2 * n]), arith.sigmoid(z[..., 3 * n:])
        g = arith.tanh(z[..., 2 * n:3 * n])
        c_scale = F32(self.model.activation_scales[f"{layer}.cell"])
        c_prev = c_q.astype(F32) * c_scale
        c_new_q = arith.quantize_int16(f * c_prev + i * g, self.inv_scale[f"{layer}.cell"])
        h = o * arith.tanh(c_new_q.astype(F32) * c_scale)
        return arith.quantize_int8(h, arith.STATE_INV_SCALE), c_new_q

    def _gru_int8(self, layer: str, gi, h_q):
        _, w_hh, _, m_hh, _, b_hh = self.rnn[layer]
        gh = arith.dot_int8(w_hh, h_q) * m_hh + b_hh
        n = self.hidden
        r = arith.sigmoid(gi[..., :n] + gh[..., :n])
        z = arith.sigmoid(gi[..., n:2 * n] + gh[..., n:2 * n])
        candidate = arith.tanh(gi[..., 2 * n:] + r * gh[..., 2 * n:])
        h_prev = h_q.astype(F32) * STATE_SCALE
        h = (F32(1.0) - z) * candidate + z * h_prev
        return arith.quantize_int8(h, arith.STATE_INV_SCALE)

    def _lstm_fp16(self, layer: str, x, h, c):
        (gates,) = self.rnn[layer]
        z = gates(np.concatenate([x, h], axis=-1))
        n = self.hidden
        i, f, o = (f16(arith.sigmoid(z[..., k * n:(k + 1) * n])) for k in (0, 1, 3))
        g = f16(arith.tanh(z[..., 2 * n:3 * n]))
        c_new = f16(f * c + i * g)
        return f16(o * f16(arith.tanh(c_new))), c_new

    def _gru_fp16(self, layer: str, x, h):
        input_dot, hidden_dot = self.rnn[layer]
        gi, gh = input_dot(x), hidden_dot(h)
        n = self.hidden
        r = f16(arith.sigmoid(gi[..., :n] + gh[..., :n]))
        z = f16(arith.sigmoid(gi[..., n:2 * n] + gh[..., n:2 * n]))
        candidate = f16(arith.tanh(gi[..., 2 * n:] + r * gh[..., 2 * n:]))
        return f16((F32(1.0) - z) * candidate + z * h)

    def _recurrent(self, layer: str, x, state: list[np.ndarray]):
        """Step `layer` on `_rnn_input(layer, ...)` with its own state slice."""
        int8 = self.precision[layer] == "int8"
        if self.cell == "lstm":
            h, c = (self._lstm_int8 if int8 else self._lstm_fp16)(layer, x, state[0], state[1])
            return h, [h, c]
        h = (self._gru_int8 if int8 else self._gru_fp16)(layer, x, state[0])
        return h, [h]

    # --- the frame, in the rolling batch's three stages (streamer/batch.py) ------------------
    def _front(self, magnitudes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The input stage and fc0: (fc0's output, rnn1's input)."""
        # Every quantised mode takes binary16 input: a device link carries 2 bytes per bin.
        x = f16(arith.sanitize_input(magnitudes))
        y0 = np.maximum(self._dense("fc0", self._to_layer_input("fc0", x)), F32(0.0))
        if self.precision["fc0"] == "fp16":
            y0 = f16(y0)
        x1 = self._to_layer_input("rnn1", y0) if self.precision["rnn1"] == "int8" else f16(y0)
        return y0, x1

    def _back(self, h2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """rnn2's h through fc1 and fc2: (fc1's output, the mask)."""
        if self.precision["fc1"] == "int8":
            fc1_in = h2  # int8 with the fixed state scale
        elif self.precision["rnn2"] == "int8":
            fc1_in = f16(h2.astype(F32) * STATE_SCALE)
        else:
            fc1_in = h2
        y1 = np.maximum(self._dense("fc1", fc1_in), F32(0.0))
        mask = f16(arith.sigmoid(self._dense("fc2", self._to_layer_input("fc2", y1))))
        return y1, mask

    def front(self, magnitudes: np.ndarray) -> np.ndarray:
        """Magnitudes (frames, N_BINS) -> what rnn1 takes (`_rnn_input`): every row computed as
        a frame alone."""
        return self._rnn_input("rnn1", self._front(magnitudes)[1])

    def recurrent(self, inputs: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """`front`'s rows of B streams and `initial_state(B)` -> rnn2's h, the next state."""
        per_layer = len(state) // 2
        h1, s1 = self._recurrent("rnn1", inputs, state[:per_layer])
        h2, s2 = self._recurrent("rnn2", self._rnn_input("rnn2", h1), state[per_layer:])
        return h2, s1 + s2

    def back(self, hidden: np.ndarray) -> np.ndarray:
        """rnn2's h (frames, hidden) -> the masks: every row computed as a frame alone."""
        return self._back(hidden)[1]

    def _forward(self, magnitudes: np.ndarray, state: list[np.ndarray]) -> tuple:
        """One frame: (fc0 output, rnn1 state, rnn2 state, fc1 output, mask)."""
        per_layer = len(state) // 2
        y0, x1 = self._front(magnitudes)
        h2, new_state = self.recurrent(self._rnn_input("rnn1", x1), state)
        s1, s2 = new_state[:per_layer], new_state[per_layer:]
        y1, mask = self._back(h2)
        return y0, s1, s2, y1, mask

    def step(self, magnitudes: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Magnitudes (float32) -> mask (binary16 values as float32), with the next state.

        One stream: magnitudes (N_BINS,) and the state of `initial_state()`. A batch of B
        independent streams: magnitudes (B, N_BINS) and `initial_state(B)` (row b is stream
        b's); every stream's mask and state are bit-identical to stepping it alone.
        """
        _, s1, s2, _, mask = self._forward(magnitudes, state)
        return mask, s1 + s2

    def step_traced(self, magnitudes: np.ndarray, state: list[np.ndarray]
                    ) -> tuple[np.ndarray, list[np.ndarray], dict[str, np.ndarray]]:
        """`step`, plus the intermediates the firmware's TRACE returns (docs/protocol.md):
        fc0's output, each recurrent layer's new h (and c), fc1's output as fc2 consumes it
        (binary32) and the mask."""
        y0, s1, s2, y1, mask = self._forward(magnitudes, state)
        trace = {"fc0": y0, "rnn1.h": s1[0], "rnn2.h": s2[0],
                 "fc1": f16(y1) if self.precision["fc2"] == "fp16" else y1, "mask": mask}
        if self.cell == "lstm":
            trace["rnn1.c"], trace["rnn2.c"] = s1[1], s2[1]
        return mask, s1 + s2, trace
