"""The primitive operations of the arithmetic contract, in numpy, every rounding explicit.

docs/arithmetic-contract.md is the specification; the firmware's C follows the same text.
Every function here works on float32 numpy arrays whose IEEE operations round to nearest
even, exactly as scalar binary32 code compiled with -ffp-contract=off does on the target.
"""

from __future__ import annotations

import numpy as np

from streamer.quant import compiled

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

    The definition, written the plain way (one row after another); `SequentialDot` is the
    same sum arranged for speed and for a batch of streams, and tests hold the two equal.
    """
    rows = weights.shape[0]
    start = np.asarray(start, F32).reshape(rows, -1)
    terms = np.empty((rows, start.shape[1] + weights.shape[1]), F32)
    terms[:, :start.shape[1]] = start
    np.multiply(weights, x, out=terms[:, start.shape[1]:])
    # ufunc.accumulate runs strictly left to right, each partial sum rounded to binary32.
    return np.add.accumulate(terms, axis=1, dtype=F32)[:, -1]


# Terms held at once by SequentialDot, per chunk of its sequence (rows x streams x terms): about
# 1 MiB of float32, so that a chunk's products stay in cache between the multiply and the sum.
_CHUNK_FLOATS = 1 << 18


class SequentialDot:
    """`dot_f32_sequential` with its weights arranged once, for one stream or a batch of them.

    The terms of every row's sum are laid out term-major, (terms, rows): the biases first (as
    terms times 1.0, exact) then the weights transposed. Where this process has the compiled
    sum (streamer/quant/compiled.py: the same order in C, checked against the definition
    before use), it does the sums. Otherwise numpy does, this way: a chunk of terms for all streams and
    rows is multiplied at once, then summed over the term axis, the running sum of the chunks
    before it in front. Summing over the leading axis of a C-contiguous array, numpy adds one
    term after another into the whole row of accumulators (its pairwise summation is only
    for the fast axis), so every accumulator sees its terms strictly in order: the contract's
    sequential sum, vectorised across rows and streams. `sequential_reduce_holds` checks
    that on order-sensitive data for each shape used, and a shape that failed would be summed
    by an explicit loop over the terms instead.
    """

    def __init__(self, weights: np.ndarray, start: np.ndarray,
                 kernel: compiled.SumKernel | str | None = "default") -> None:
        """`kernel`: "default" for this process's compiled sum where it has one
        (streamer/quant/compiled.py), a loaded one, or None for numpy."""
        rows = weights.shape[0]
        start = np.asarray(start, F32).reshape(rows, -1)
        self.rows, self.leading = rows, start.shape[1]
        self.terms_t = np.ascontiguousarray(np.vstack([start.T, np.asarray(weights, F32).T]))
        self.kernel = compiled.sum_kernel() if kernel == "default" else kernel

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Sums for `x` of shape (K,) -> (rows,), or (B, K) -> (B, rows)."""
        x = np.asarray(x, F32)
        batch = x.reshape(-1, x.shape[-1])
        streams = batch.shape[0]
        if self.kernel is not None:
            inputs = np.empty((streams, self.terms_t.shape[0]), F32)
            inputs[:, :self.leading] = 1.0
            inputs[:, self.leading:] = batch
            out = np.empty((streams, self.rows), F32)
            self.kernel(self.terms_t, inputs, out)
            return out.reshape(x.shape[:-1] + (self.rows,))
        inputs = np.empty((self.terms_t.shape[0], streams), F32)
        inputs[:self.leading] = 1.0
        inputs[self.leading:] = batch.T
        terms = self.terms_t.shape[0]
        chunk = max(1, _CHUNK_FLOATS // (streams * self.rows))
        acc = None
        for first in range(0, terms, chunk):
            last = min(first + chunk, terms)
            carried = 0 if acc is None else 1
            block = np.empty((last - first + carried, streams, self.rows), F32)
            if acc is not None:
                block[0] = acc
            np.multiply(self.terms_t[first:last, None, :], inputs[first:last, :, None],
                        out=block[carried:])
            acc = _sum_in_order(block)
        assert acc is not None
        return acc.reshape(x.shape[:-1] + (self.rows,))


_REDUCE_CHECKED: dict[tuple[int, ...], bool] = {}


def sequential_reduce_holds(shape: tuple[int, ...], reduce=None) -> bool:
    """Whether np.add.reduce over axis 0 of a C-contiguous float32 array of `shape` adds the
    terms strictly in order (checked once per shape, against an explicit loop, on terms whose
    sum depends on the order: random signs and magnitudes over 24 binades, in enough draws
    that at least 64 sums are compared: one narrow sum can come out the same by chance).
    `reduce` replaces np.add.reduce for a test of the check itself (and is then neither cached
    nor consulted)."""
    known = None if reduce is not None else _REDUCE_CHECKED.get(shape)
    if known is None:
        rng = np.random.default_rng(len(shape) + sum(shape))
        sums = int(np.prod(shape[1:], dtype=np.int64))
        known = True
        for _ in range(-(-_PROBE_SUMS // max(sums, 1))):
            exponents = rng.integers(-12, 12, size=shape)
            probe = (rng.choice([-1.0, 1.0], size=shape) * np.ldexp(1.0 + rng.random(shape), exponents)
                     ).astype(F32)
            expected = probe[0].copy()
            for term in probe[1:]:
                np.add(expected, term, out=expected)
            summed = (reduce or np.add.reduce)(probe, axis=0, dtype=F32)
            known = known and bool(np.array_equal(summed, expected))
        if reduce is not None:
            return known
        _REDUCE_CHECKED[shape] = known
    return known


_PROBE_SUMS = 64


def _sum_in_order(block: np.ndarray) -> np.ndarray:
    if sequential_reduce_holds(block.shape):
        return np.add.reduce(block, axis=0, dtype=F32)
    acc = block[0].copy()
    for term in block[1:]:
        np.add(acc, term, out=acc)
    return acc


def dot_int8(weights_as_f32: np.ndarray, x_int8: np.ndarray) -> np.ndarray:
    """Exact int32 dot products of int8 weights and inputs (see MAX_INT8_DOT), as float32.

    `x_int8` is one input (K,) -> (rows,) or a batch (B, K) -> (B, rows): every sum is an
    exact integer, so the order BLAS adds in does not matter.
    """
    if weights_as_f32.shape[1] > MAX_INT8_DOT:
        raise ValueError(f"int8 dot product of length {weights_as_f32.shape[1]} exceeds {MAX_INT8_DOT}")
    x = x_int8.astype(F32)
    return weights_as_f32 @ x if x.ndim == 1 else (weights_as_f32 @ x.T).T
