"""The arithmetic contract's kernels against float references, edge cases, and quantised models."""

import numpy as np
import pytest
from helpers import random_params

from streamer.model import load_model
from streamer.model.fp32 import Fp32Network
from streamer.model.params import ModelError
from streamer.numerics import build_network
from streamer.quant import arith
from streamer.quant.calibrate import activation_ranges, calibrate
from streamer.quant.network import QuantizedNetwork, quantize
from streamer.quant.storage import encode_quantized, save_quantized

F32 = np.float32
RANGES = {"fc0.input": 8.0, "rnn1.input": 4.0, "rnn1.cell": 3.0, "rnn2.cell": 3.0, "fc2.input": 4.0}


def test_tanh_and_sigmoid_within_stated_bound():
    x = np.linspace(-20, 20, 400_001, dtype=F32)
    assert np.max(np.abs(arith.tanh(x) - np.tanh(x.astype(np.float64)))) < 6e-6
    exact_sigmoid = 1 / (1 + np.exp(-x.astype(np.float64)))
    assert np.max(np.abs(arith.sigmoid(x) - exact_sigmoid)) < 3e-6
    assert arith.tanh(x).dtype == F32 and np.all(np.abs(arith.tanh(x)) <= 1)


def test_tanh_is_odd_and_exact_at_zero():
    x = np.array([0.0, -0.0, 1e-30, 3.0, 50.0, np.finfo(F32).max], F32)
    np.testing.assert_array_equal(arith.tanh(-x), -arith.tanh(x))
    assert arith.tanh(np.array([0.0], F32))[0] == 0 and arith.sigmoid(np.array([0.0], F32))[0] == 0.5


def test_f16_rounds_to_nearest_even_and_saturates():
    values = np.array([1 + 2**-11, 1 + 3 * 2**-11, 65504, 65519.9, 65520, 1e9, -1e9], F32)
    expected = np.array([1.0, 1 + 2**-9, 65504, 65504, 65504, 65504, -65504], F32)
    np.testing.assert_array_equal(arith.f16(values), expected)
    with np.errstate(over="ignore"):
        assert np.isinf(np.float16(np.float32(70000)))  # IEEE conversion overflows; ours saturates


def test_f16_keeps_subnormals():
    smallest = np.float32(2**-24)
    np.testing.assert_array_equal(arith.f16(np.array([smallest, 3 * smallest, 2**-26], F32)),
                                  np.array([smallest, 3 * smallest, 0.0], F32))


def test_q8_rounds_half_to_even_and_saturates():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 126.5, 127.4, 200, -200, -127.6], F32)
    np.testing.assert_array_equal(arith.quantize_int8(x, F32(1.0)),
                                  np.array([0, 2, 2, 0, -2, 126, 127, 127, -127, -127], np.int8))
    assert arith.quantize_int16(np.array([1e9, -1e9], F32), F32(1.0)).tolist() == [32767, -32767]


def test_sequential_fp32_accumulation_matches_a_scalar_loop():
    rng = np.random.default_rng(0)
    w = arith.f16(rng.standard_normal((13, 257)) * 10)
    x = arith.f16(rng.standard_normal(257) * 100)
    b = arith.f16(rng.standard_normal(13))
    got = arith.dot_f32_sequential(w, x, b)
    for r in range(13):
        acc = F32(b[r])
        for k in range(257):
            acc = F32(acc + F32(w[r, k] * x[k]))
        assert got[r] == acc
    exact = w.astype(np.float64) @ x.astype(np.float64) + b
    assert np.max(np.abs(got - exact) / (np.abs(w) @ np.abs(x) + 1)) < 257 * 2**-24


def test_int8_dot_is_exact_at_the_extremes():
    w = np.full((3, 257), -127, np.int8)
    w[1] = 127
    w[2, ::2] = 127
    x = np.full(257, -127, np.int8)
    expected = w.astype(np.int64) @ x.astype(np.int64)
    np.testing.assert_array_equal(arith.dot_int8(w.astype(F32), x), expected)
    with pytest.raises(ValueError):
        arith.dot_int8(np.zeros((1, 2000), F32), np.zeros(2000, np.int8))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("mode,bound", [("fp16", 2e-3), ("mixed", 2e-2), ("int8", 4e-2)])
def test_quantized_network_tracks_fp32(cell, mode, bound):
    params = random_params(cell, 128, seed=3, scale=0.05)
    ref, net = Fp32Network(params), QuantizedNetwork(quantize(params, mode, RANGES))
    rs, qs = ref.initial_state(), net.initial_state()
    rng = np.random.default_rng(1)
    worst = 0.0
    for _ in range(60):
        mags = np.abs(rng.standard_normal(257)).astype(F32) * 2
        a, rs = ref.step(mags, rs)
        b, qs = net.step(mags, qs)
        assert np.array_equal(b, arith.f16(b))  # masks are binary16 values
        worst = max(worst, float(np.max(np.abs(a - b))))
    assert worst < bound


@pytest.mark.parametrize("mode", ["fp16", "mixed", "int8"])
def test_nan_and_inf_inputs_never_reach_the_mask(mode):
    net = QuantizedNetwork(quantize(random_params(scale=0.5), mode, RANGES))
    state = net.initial_state()
    for bad in (np.nan, np.inf, -np.inf, 1e38):
        mags = np.full(257, bad, F32)
        mask, state = net.step(mags, state)
        assert np.all(np.isfinite(mask)) and np.all((mask >= 0) & (mask <= 1))
        assert all(np.all(np.isfinite(s.astype(np.float64))) for s in state)


def test_int8_weights_are_symmetric_per_row():
    params = random_params("lstm", 128, scale=0.3)
    model = quantize(params, "mixed", RANGES)
    wq, scale = model.tensors["rnn1.weight_ih"], model.tensors["rnn1.weight_ih_scale"]
    assert wq.dtype == np.int8 and wq.min() >= -127
    assert np.all(np.max(np.abs(wq), axis=1) == 127)
    dequantised = wq * scale[:, None].astype(np.float64)
    assert np.max(np.abs(dequantised - params.tensors["rnn1.weight_ih"])) <= scale.max() / 2 + 1e-7


def test_memory_shrinks_as_the_paper_says():
    params = random_params("lstm", 256)
    fp16 = quantize(params, "fp16", None).weight_bytes()
    mixed = quantize(params, "mixed", RANGES).weight_bytes()
    int8 = quantize(params, "int8", RANGES).weight_bytes()
    assert fp16 == 2 * params.parameter_count
    assert 1.4 <= round(fp16 / mixed, 2) <= 1.7  # H=256 LSTM: 1.70
    assert int8 < mixed


def test_missing_calibration_names_the_command():
    with pytest.raises(ModelError, match="streamer quantize"):
        quantize(random_params(), "mixed", None)
    with pytest.raises(Exception, match="streamer quantize"):
        build_network(random_params(), "int8")


def test_calibration_is_deterministic_and_ranges_follow_the_method():
    params = random_params("lstm", 128, seed=5)
    rng = np.random.default_rng(0)
    signals = [(f"s{i}", rng.standard_normal(4000) * 0.1) for i in range(2)]
    first, second = calibrate(params, signals), calibrate(params, signals)
    assert first == second and first["method"] == "mse" and first["files"] == ["s0", "s1"]
    traces = [{"t": np.concatenate([np.linspace(0, 1, 10_000), [50.0]])}]
    assert activation_ranges(traces, "minmax")["t"] == 50.0
    assert activation_ranges(traces, "percentile", 99.0)["t"] < 1.0
    assert activation_ranges(traces, "mse")["t"] < 50.0


@pytest.mark.parametrize("mode", ["fp16", "mixed", "int8"])
def test_quantized_file_round_trip_runs_identically(tmp_path, mode):
    params = random_params("gru", 128, seed=9)
    model = quantize(params, mode, RANGES, {"method": "mse", "files": ["a.wav"]})
    loaded = load_model(save_quantized(model, tmp_path / "q.tdn"))
    assert loaded.mode == mode and loaded.calibration["files"] == ["a.wav"]
    a, b = QuantizedNetwork(model), QuantizedNetwork(loaded)
    sa, sb = a.initial_state(), b.initial_state()
    for k in range(10):
        mags = np.full(257, k / 3, F32)
        ma, sa = a.step(mags, sa)
        mb, sb = b.step(mags, sb)
        np.testing.assert_array_equal(ma, mb)


def test_quantized_file_corruption_is_detected(tmp_path):
    blob = bytearray(encode_quantized(quantize(random_params(), "mixed", RANGES)))
    blob[-100] ^= 0xFF
    path = tmp_path / "bad.tdn"
    path.write_bytes(bytes(blob))
    with pytest.raises(ModelError, match="checksum"):
        load_model(path)
    path.write_bytes(bytes(blob[:5000]))
    with pytest.raises(ModelError):
        load_model(path)
