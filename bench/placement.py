"""Benchmark: the cost of the H = 256 LSTM on the target with the placement planner against the
whole blob in one level, same run.

    python bench/placement.py [--target T.toml] [--hidden H] [--cell lstm|gru]

Prints one JSON object: per mode and placement (`auto`: the planner; `whole`: the whole blob in
the first level it fits, as before the planner), per operating point the modelled cycles, the
ratio to the ideal cycles, the latency and what bounds each layer; then the issue's targets
(mixed at 0.65 V: <= 5x ideal, aim 3x; fp16 meeting 6.25 ms) as measured here. Modelled, not
timed: the figures depend on the target file only (docs/cost-model.md).
"""

from __future__ import annotations

import argparse
import json

from streamer.costmodel import firmware_work, frame_cycles, ideal_cycles
from streamer.engine import DEADLINE_S
from streamer.quant.modes import QUANTIZED_MODES
from streamer.target import read_target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", help="target file (default: the packaged GAP9 description)")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--cell", default="lstm", choices=("lstm", "gru"))
    args = parser.parse_args()
    target = read_target(args.target)
    out: dict = {"target": target.source, "cell": args.cell, "hidden": args.hidden, "modes": {}}
    for mode in QUANTIZED_MODES:
        entry = {}
        for placement in ("auto", "whole"):
            work = firmware_work(mode, args.cell, args.hidden, target, placement)
            ideal = ideal_cycles(work, target)
            points = {}
            for point in sorted(target.points, key=lambda p: p.voltage):
                c = frame_cycles(work, target, point.freq_hz)
                points[f"{point.voltage:g}"] = {
                    "cycles": c.total, "x_ideal": round(c.total / ideal, 2),
                    "latency_ms": round(c.total / point.freq_hz * 1e3, 4),
                    "meets_deadline": c.total / point.freq_hz <= DEADLINE_S,
                    "bound": dict(zip((layer.name for layer in work.layers), c.bound, strict=True))}
            by_level = dict(zip(("L2", "MRAM", "L3"), work.counters().l1_bytes_from, strict=True))
            entry[placement] = {"weights": work.level, "bytes_by_level": by_level, "points": points}
        out["modes"][mode] = entry
    low = f"{min(p.voltage for p in target.points):g}"
    mixed = out["modes"]["mixed"]["auto"]["points"][low]
    fp16 = out["modes"]["fp16"]["auto"]["points"]
    out["targets"] = {"mixed_x_ideal_at_lowest_voltage": mixed["x_ideal"],
                      "mixed_at_most_5x": mixed["x_ideal"] <= 5, "mixed_aim_3x": mixed["x_ideal"] <= 3,
                      "fp16_lowest_voltage_meeting_deadline": next(
                          (float(v) for v, p in fp16.items() if p["meets_deadline"]), None)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
