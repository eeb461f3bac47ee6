"""GAP9 (1 + 8 cores) against a single-core Cortex-M7 (STM32H743-class), from the cost model:
the paper's "about 10x more energy efficient than single-core MCU solutions".

Two models: the default LSTM H = 256, and a TinyLSTMs-sized GRU H = 128 with random weights
(seeded; calibrated on synthetic frames). Random weights are enough here: the cost model's
cycles, bytes and energy depend on the model's shape and numeric mode only, never on its
weights. Prints JSON: per model and mode, each target's lowest voltage meeting the 6.25 ms
deadline, latency and energy per frame there (or its fastest point and by how much it misses),
and the M7/GAP9 energy ratio.

    python bench/targets.py [--targets gap9,cortex-m7]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from frames import magnitudes  # bench/frames.py: run as python bench/NAME.py

from streamer.compare import compare, parse_targets
from streamer.model.fileformat import save_model
from streamer.model.params import TinyDenoiserParams, tensor_shapes
from streamer.quant.calibrate import activation_ranges, trace_activations
from streamer.quant.modes import QUANTIZED_MODES


def tiny_gru(folder: Path, hidden: int = 128, seed: int = 18) -> Path:
    """A GRU TinyDenoiser of TinyLSTMs size with small random weights, calibrated."""
    rng = np.random.default_rng(seed)
    tensors = {name: (rng.standard_normal(shape) * 0.1).astype(np.float32)
               for name, shape in tensor_shapes("gru", hidden).items()}
    params = TinyDenoiserParams(cell="gru", hidden=hidden, tensors=tensors,
                                metadata={"note": f"random weights, seed {seed}: cost comparison only"})
    params.calibration = {"method": "synthetic frames",
                          "ranges": activation_ranges([trace_activations(params, magnitudes(200))])}
    path = folder / f"gru{hidden}_random.tdn"
    save_model(params, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default="gap9,cortex-m7")
    args = parser.parse_args()
    targets = parse_targets(args.targets)
    out = {}
    with tempfile.TemporaryDirectory() as folder:
        models = (("default LSTM H=256", None), ("GRU H=128, random weights", tiny_gru(Path(folder))))
        for label, model in models:
            report = compare(model, targets=targets, modes=QUANTIZED_MODES)
            out[label] = report["modes"]
    print(json.dumps({"targets": list(targets), "paper_energy_ratio": 10, "models": out}, indent=1))


if __name__ == "__main__":
    main()
