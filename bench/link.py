"""Benchmark: the host simulator over the frame link against the emulator, per frame.

    python bench/link.py [--frames N] [--hidden H] [--modes mixed,fp16] [--transports pty,socket]

Prints one JSON object. For an H=256 LSTM (the embedded default model when it exists and
carries calibration, otherwise random weights calibrated on noise) in each numeric mode and
over each transport (a pseudo-terminal and a TCP socket to `tdn-sim`):

- device compute per frame: the simulator's own timer ticks for the frame (Counters.ticks),
- link round trip per frame: host wall time of one FRAME request and its reply,
- the emulator's time per frame (QuantizedNetwork.step), measured in the same loop on the
  same frames, so that machine noise hits both alike,
- the device counters of a frame: MACs per core, bytes into L1 per memory level, DMA, forks,
  barrier waits,
- and whether every mask was bit-identical to the emulator's.

Times are p50/p99 in milliseconds over the frames after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time

import numpy as np
from frames import magnitudes  # bench/frames.py: run as python bench/NAME.py

from streamer.engine import DEADLINE_S
from streamer.link.blob import encode_blob
from streamer.link.device import DeviceClient
from streamer.link.messages import DeviceInfo, frame_bytes
from streamer.link.simulator import Simulator
from streamer.model import default_model_path, load_model
from streamer.model.params import TinyDenoiserParams, tensor_shapes
from streamer.quant.calibrate import activation_ranges, trace_activations
from streamer.quant.network import QuantizedNetwork, quantize

WARMUP = 20


def bench_model(hidden: int) -> tuple[TinyDenoiserParams, str]:
    """The default model if it is H=`hidden` and calibrated, else random weights calibrated on noise."""
    if default_model_path().is_file():
        params = load_model(None)
        if params.hidden == hidden and params.calibration.get("ranges"):
            return params, f"default model {default_model_path().name}"
    rng = np.random.default_rng(0)
    tensors = {name: (rng.standard_normal(shape) * 0.1).astype(np.float32)
               for name, shape in tensor_shapes("lstm", hidden).items()}
    params = TinyDenoiserParams(cell="lstm", hidden=hidden, tensors=tensors, metadata={})
    params.calibration = {"ranges": activation_ranges([trace_activations(params, magnitudes(200, 1))])}
    return params, f"random LSTM H={hidden} (calibrated on noise)"


def ms(samples: list[float]) -> dict[str, float]:
    return {"p50": round(float(np.percentile(samples, 50)) * 1e3, 4),
            "p99": round(float(np.percentile(samples, 99)) * 1e3, 4)}


def run(transport: str, model, mags: np.ndarray) -> tuple[dict, DeviceInfo]:
    from streamer.backends.link import magnitude_bits

    network = QuantizedNetwork(model)
    state = network.initial_state()
    round_trip, device, emulator, identical = [], [], [], 0
    with Simulator("tcp" if transport == "socket" else "pty") as sim, DeviceClient(sim.connect) as client:
        info = client.info()
        start = time.perf_counter()
        model_info = client.load_model(encode_blob(model))
        load_s = time.perf_counter() - start
        counters = None
        for k, frame in enumerate(mags):
            bits = magnitude_bits(frame)
            start = time.perf_counter()
            mask_bits, counters = client.frame(k, bits)
            middle = time.perf_counter()
            expected, state = network.step(frame, state)
            end = time.perf_counter()
            identical += np.array_equal(mask_bits, expected.astype(np.float16).view(np.uint16))
            if k >= WARMUP:
                round_trip.append(middle - start)
                emulator.append(end - middle)
                device.append(counters.ticks / info.timer_hz)
        up, down = frame_bytes(info.cores)
        result = {
            "transport": transport,
            "weights_level": model_info.weights_level,
            "model_load_s": round(load_s, 3),
            "device_compute_ms": ms(device),
            "link_round_trip_ms": ms(round_trip),
            "emulator_ms": ms(emulator),
            "masks_bit_identical": f"{identical}/{len(mags)}",
            "bytes_per_frame": {"up": up, "down": down},
            "counters_last_frame": counters.as_dict(),
        }
        return result, info


def compact_lists(text: str) -> str:
    """Put each list of numbers or short strings on one line: per-core counters stay readable."""
    return re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=400, help="frames per run (default 400)")
    parser.add_argument("--hidden", type=int, default=256, help="LSTM hidden size (default 256)")
    parser.add_argument("--modes", default="mixed,fp16", help="numeric modes (default mixed,fp16)")
    parser.add_argument("--transports", default="pty,socket", help="default pty,socket")
    args = parser.parse_args(argv)
    params, described = bench_model(args.hidden)
    mags = magnitudes(args.frames + WARMUP, seed=2)
    results, device = [], None
    for mode in args.modes.split(","):
        ranges = params.calibration["ranges"] if mode != "fp16" else None
        model = quantize(params, mode, ranges, params.calibration)
        for transport in args.transports.split(","):
            result, info = run(transport, model, mags)
            results.append({"mode": mode, **result})
            device = info.as_dict()
    print(compact_lists(json.dumps({
        "benchmark": "tdn-sim over the frame link vs the emulator, per frame",
        "model": described,
        "frames": args.frames,
        "warmup_frames": WARMUP,
        "deadline_ms": DEADLINE_S * 1e3,
        "host": {"python": sys.version.split()[0], "machine": platform.machine(),
                 "cpus": os.cpu_count(), "numpy": np.__version__},
        "device": device,
        "results": results,
    }, indent=2)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
