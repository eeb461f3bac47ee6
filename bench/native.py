"""Benchmark: the native backend (libtdn, the firmware's C in this process) against the bit-accurate
emulator, per frame, in fp16, int8 and mixed, same run; and the whole host path of one hop.

    python bench/native.py [--model PATH] [--frames N] [--repeats R]

Prints one JSON object. Both backends step the same magnitudes one frame at a time through the
Backend interface (`step`), interleaved in rounds so that machine noise hits both alike; each
figure is the mean time per frame of the best round, with medians over rounds beside it. The
masks of every round are compared bit for bit (`identical_masks`). `host_path` is one hop of
audio in, audio out: the Python engine with the emulator (`pipeline.Denoiser`) against
`tdn_lib_process` (libtdn's own STFT around the same network).
"""

from __future__ import annotations

import os

import streamer  # noqa: F401, E402 - first: single-threaded BLAS before numpy loads (streamer/__init__.py)

# isort: split

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from frames import magnitudes  # noqa: E402  (bench/frames.py: run as python bench/NAME.py)

from streamer.backends.emulator import EmulatorBackend  # noqa: E402
from streamer.backends.native import NativeBackend  # noqa: E402
from streamer.engine import DEADLINE_S, HOP_SAMPLES  # noqa: E402
from streamer.link.blob import encode_blob  # noqa: E402
from streamer.model import load_model  # noqa: E402
from streamer.native import NativeModel  # noqa: E402
from streamer.pipeline import Denoiser  # noqa: E402
from streamer.quant.modes import QUANTIZED_MODES  # noqa: E402


def time_steps(backend, mags: np.ndarray) -> tuple[float, bytes]:
    backend.reset()
    masks = []
    start = time.perf_counter()
    for frame in mags:
        masks.append(backend.step(frame))
    elapsed = time.perf_counter() - start
    return elapsed / len(mags), np.asarray(masks, np.float32).tobytes()


def time_hops(push, blocks: np.ndarray) -> float:
    start = time.perf_counter()
    for block in blocks:
        push(block)
    return (time.perf_counter() - start) / len(blocks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model file (.tdn or .onnx); default: the embedded model")
    parser.add_argument("--frames", type=int, default=200, help="frames per round (default 200)")
    parser.add_argument("--repeats", type=int, default=5, help="rounds (default 5)")
    args = parser.parse_args(argv)

    params = load_model(args.model)
    mags = magnitudes(args.frames)
    blocks = (np.random.default_rng(1).standard_normal((args.frames, HOP_SAMPLES)) * 0.05).astype(np.float32)
    per_mode = {}
    for mode in QUANTIZED_MODES:
        emulator, native = EmulatorBackend(params, quant=mode), NativeBackend(params, quant=mode)
        library = NativeModel(encode_blob(native.model))
        denoiser = Denoiser(EmulatorBackend(params, quant=mode))
        time_steps(emulator, mags[:5])  # warm caches and lazy initialisation
        time_steps(native, mags[:5])
        emu_s, nat_s, path_emu_s, path_nat_s, identical = [], [], [], [], True
        for _ in range(args.repeats):
            t_emu, m_emu = time_steps(emulator, mags)
            t_nat, m_nat = time_steps(native, mags)
            identical &= m_emu == m_nat
            emu_s.append(t_emu)
            nat_s.append(t_nat)
            denoiser.reset()
            library.reset()
            path_emu_s.append(time_hops(denoiser.push, blocks))
            path_nat_s.append(time_hops(library.process, blocks))
        rounds = {"emulator": emu_s, "native": nat_s, "path_emulator": path_emu_s, "path_native": path_nat_s}
        best = {name: float(np.min(v)) for name, v in rounds.items()}
        per_mode[mode] = {
            "emulator_us_per_frame": round(best["emulator"] * 1e6, 1),
            "native_us_per_frame": round(best["native"] * 1e6, 1),
            "emulator_over_native": round(best["emulator"] / best["native"], 2),
            "median_us_per_frame": {"emulator": round(float(np.median(emu_s)) * 1e6, 1),
                                    "native": round(float(np.median(nat_s)) * 1e6, 1)},
            "identical_masks": bool(identical),
            "host_path_us_per_hop": {"python_engine_emulator": round(best["path_emulator"] * 1e6, 1),
                                     "libtdn_process": round(best["path_native"] * 1e6, 1)},
            "native_realtime": best["native"] < DEADLINE_S,
        }
        native.close()
        library.close()
    result = {
        "benchmark": "native_vs_emulator",
        "model": args.model or "default",
        "model_description": params.describe(),
        "frames_per_round": args.frames,
        "rounds": args.repeats,
        "modes": per_mode,
        "deadline_us": DEADLINE_S * 1e6,
        "native_threads": 1,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cpu_count": os.cpu_count(),
    }
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
