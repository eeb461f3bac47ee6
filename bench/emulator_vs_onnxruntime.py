"""Benchmark: emulator time per frame in every numeric mode against onnxruntime, same run.

    python bench/emulator_vs_onnxruntime.py [--model PATH] [--frames N] [--repeats R]

Prints one JSON object. Every runtime steps the same magnitudes one frame at a time with its
states fed back, as a real-time stream does, interleaved in rounds so that machine noise hits
all alike. Each figure is the mean time per frame of the best round (the round least disturbed
by other processes on a shared machine); medians over rounds are reported beside them.
onnxruntime runs the FP32 model exported by `export_onnx`. The quantised modes use the model's
embedded calibration; a model without one gets unit ranges (timing does not depend on them).
"""

from __future__ import annotations

import os

# Before numpy loads: a stream's matrix-vector products run single-threaded (as `streamer` does).
import streamer  # noqa: F401, E402 - first: single-threaded BLAS before numpy loads (streamer/__init__.py)

# isort: split

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from frames import magnitudes, onnxruntime_session, time_onnxruntime  # noqa: E402  (bench/frames.py: run as python bench/NAME.py)

from streamer.engine import DEADLINE_S, HOP_SAMPLES, StreamingStft  # noqa: E402
from streamer.model import load_model  # noqa: E402
from streamer.model.fp32 import Fp32Network  # noqa: E402
from streamer.quant.network import QUANTIZED_MODES, QuantizedNetwork, quantize  # noqa: E402


def time_emulator(network, mags: np.ndarray) -> float:
    state = network.initial_state()
    start = time.perf_counter()
    for frame in mags:
        _, state = network.step(frame, state)
    return (time.perf_counter() - start) / len(mags)


def time_engine_and_emulator(network: Fp32Network, frames: int) -> float:
    """The whole host path of one hop: analysis, network, masking and overlap-add."""
    rng = np.random.default_rng(1)
    blocks = rng.standard_normal((frames + 1, HOP_SAMPLES)) * 0.05
    engine, state = StreamingStft(), network.initial_state()
    start = time.perf_counter()
    for block in blocks:
        spectrum = engine.analyse(block)
        if spectrum is not None:
            mask, state = network.step(np.abs(spectrum).astype(np.float32), state)
            spectrum = spectrum * mask
        engine.synthesise(spectrum)
    return (time.perf_counter() - start) / frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model file (.tdn or .onnx); default: the embedded model")
    parser.add_argument("--frames", type=int, default=400, help="frames per round (default 400)")
    parser.add_argument("--repeats", type=int, default=7, help="rounds (default 7)")
    args = parser.parse_args(argv)

    params = load_model(args.model)
    network = Fp32Network(params)
    mags = magnitudes(args.frames)
    session = onnxruntime_session(params)

    calibration = params.calibration or {}
    ranges = calibration.get("ranges") or dict.fromkeys(
        ("fc0.input", "rnn1.input", "rnn1.cell", "rnn2.cell", "fc2.input"), 1.0)
    quantized = {mode: QuantizedNetwork(quantize(params, mode, ranges)) for mode in QUANTIZED_MODES}

    time_emulator(network, mags[:20])  # warm caches and lazy initialisation of all
    time_onnxruntime(session, params, mags[:20])
    for net in quantized.values():
        time_emulator(net, mags[:5])
    emulator, onnx_rt, full_path = [], [], []
    per_mode: dict[str, list[float]] = {mode: [] for mode in quantized}
    for _ in range(args.repeats):
        emulator.append(time_emulator(network, mags))
        onnx_rt.append(time_onnxruntime(session, params, mags))
        full_path.append(time_engine_and_emulator(network, args.frames))
        for mode, net in quantized.items():
            per_mode[mode].append(time_emulator(net, mags[: max(args.frames // 4, 20)]))
    emulator_s, ort_s, full_s = (float(np.min(v)) for v in (emulator, onnx_rt, full_path))
    modes_us = {mode: round(float(np.min(v)) * 1e6, 1) for mode, v in per_mode.items()}
    medians_us = {name: round(float(np.median(v)) * 1e6, 1) for name, v in
                  (("emulator", emulator), ("onnxruntime", onnx_rt), ("host_path", full_path),
                   *per_mode.items())}
    result = {
        "benchmark": "emulator_vs_onnxruntime",
        "model": args.model or "default",
        "model_description": params.describe(),
        "quant": "fp32",
        "frames_per_round": args.frames,
        "rounds": args.repeats,
        "emulator_us_per_frame": round(emulator_s * 1e6, 1),
        "onnxruntime_us_per_frame": round(ort_s * 1e6, 1),
        "onnxruntime_over_emulator": round(ort_s / emulator_s, 2),
        "emulator_faster": emulator_s < ort_s,
        "host_path_us_per_frame": round(full_s * 1e6, 1),
        "median_us_per_frame": medians_us,
        "bit_accurate_us_per_frame": modes_us,
        "bit_accurate_realtime": {mode: us < DEADLINE_S * 1e6 for mode, us in modes_us.items()},
        "calibration": "embedded" if calibration else "unit ranges (model carries no calibration)",
        "deadline_us": DEADLINE_S * 1e6,
        "realtime_factor": round(DEADLINE_S / full_s, 1),
        "onnxruntime_threads": 1,
        "blas_threads_env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")},
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": __import__("onnxruntime").__version__,
        "cpu_count": os.cpu_count(),
    }
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
