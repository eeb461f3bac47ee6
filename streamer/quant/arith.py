"""The primitive operations of the arithmetic contract, in numpy, every rounding explicit.

docs/arithmetic-contract.md is the specification; the firmware's C follows the same text.
Every function here works on float32 numpy arrays whose IEEE operations round to nearest
even, exactly as scalar binary32 code compiled with -ffp-contract=off does on the target.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32
FP16_MAX = F32(65504.0)
INT8_MAX = 127
INT16_MAX = 32767
# Recurrent outputs are forced to [-1, 1] and so carry this fixed int8 scale.
STATE_SCALE = F32(1.0 / 127.0)
STATE_INV_SCALE = F32(127.0)
# The longest int8 dot product whose exact integer sum still fits binary32's 24-bit mantissa
# (127 * 127 * 1040 < 2**24): int8 products summed in float32 BLAS are then exact in any order.
MAX_INT8_DOT = 1040

# tanh(x) ~ x * P(x^2) / Q(x^2) on |x| <= 9, our own least-squares fit; max error 5.5e-6.
TANH_CLAMP = F32(9.0)
TANH_P = tuple(F32(v) for v in ("0.99997646", "0.120249294", "0.0020444868", "2.9559355e-06"))
TANH_Q = tuple(F32(v) for v in ("1.0", "0.4535122", "0.019944802", "0.000118415825"))
_HALF = F32(0.5)
_ONE = F32(1.0)


def f16(x: np.ndarray) -> np.ndarray:
    """Round binary32 to binary16 (nearest even), saturating at +-65504; returned as float32."""
    return np.clip(np.asarray(x, F32), -FP16_MAX, FP16_MAX).astype(np.float16).astype(F32)


def sanitize_input(magnitudes: np.ndarray) -> np.ndarray:
    """The network input stage: NaN becomes 0, everything else is clamped to +-65504."""
    return np.clip(np.nan_to_num(np.asarray(magnitudes, F32), nan=0.0), -FP16_MAX, FP16_MAX)


def tanh(x: np.ndarray) -> np.ndarray:
    """Contract tanh in binary32: clamp, Horner in x^2 for P and Q, one division, clamp to 1."""
    x = np.asarray(x, F32)
    a = np.minimum(np.abs(x), TANH_CLAMP)
    a2 = a * a
    p = ((TANH_P[3] * a2 + TANH_P[2]) * a2 + TANH_P[1]) * a2 + TANH_P[0]
    q = ((TANH_Q[3] * a2 + TANH_Q[2]) * a2 + TANH_Q[1]) * a2 + TANH_Q[0]
    t = np.minimum(a * p / q, _ONE)
    return np.where(x < 0, -t, t).astype(F32)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Contract sigmoid: 0.5 * tanh(0.5 * x) + 0.5, each operation rounded to binary32."""
    return (_HALF * tanh(_HALF * np.asarray(x, F32)) + _HALF).astype(F32)


def quantize_int8(x: np.ndarray, inv_scale: np.float32) -> np.ndarray:
    """q = round_half_even(clamp(f32(x * inv_scale), -127, 127)) as int8.

    Clamping before rounding keeps an overflowed product (inf) well defined in C as well.
    """
    with np.errstate(over="ignore"):
        scaled = np.asarray(x, F32) * F32(inv_scale)
    return np.rint(np.clip(scaled, -INT8_MAX, INT8_MAX)).astype(np.int8)


def quantize_int16(x: np.ndarray, inv_scale: np.float32) -> np.ndarray:
    """q = round_half_even(clamp(f32(x * inv_scale), -32767, 32767)) as int16 (LSTM cell state)."""
    with np.errstate(over="ignore"):
        scaled = np.asarray(x, F32) * F32(inv_scale)
    return np.rint(np.clip(scaled, -INT16_MAX, INT16_MAX)).astype(np.int16)


def dot_f32_sequential(weights: np.ndarray, x: np.ndarray, start: np.ndarray) -> np.ndarray:
    """FP16 dense accumulation: acc = start[r]; for k in order: acc = f32(acc + w[r,k] * x[k]).

    `weights` and `x` hold binary16 values (as float32), so each product is exact in binary32
    and a fused multiply-add or a multiply then add round identically: once, per term.
    `start` is one column or several (biases added in order before the products).
    """
    rows = weights.shape[0]
    start = np.asarray(start, F32).reshape(rows, -1)
    terms = np.empty((rows, start.shape[1] + weights.shape[1]), F32)
    terms[:, :start.shape[1]] = start
    np.multiply(weights, x, out=terms[:, start.shape[1]:])
    # ufunc.accumulate runs strictly left to right, each partial sum rounded to binary32.
    return np.add.accumulate(terms, axis=1, dtype=F32)[:, -1]


def dot_int8(weights_as_f32: np.ndarray, x_int8: np.ndarray) -> np.ndarray:
    """Exact int32 dot products of int8 weights and inputs (see MAX_INT8_DOT), as float32."""
    if weights_as_f32.shape[1] > MAX_INT8_DOT:
        raise ValueError(f"int8 dot product of length {weights_as_f32.shape[1]} exceeds {MAX_INT8_DOT}")
    return weights_as_f32 @ x_int8.astype(F32)
