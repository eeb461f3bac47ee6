"""`streamer quantize`: calibrate an FP32 model on audio and write it in a numeric mode."""

from __future__ import annotations

import argparse

from streamer.commands.common import say, warn
from streamer.quant.modes import QUANTIZED_MODES, modes_text

DESCRIPTION = """\
Post-training quantisation. Runs the calibration audio through the FP32 model, measures
the activation ranges the chosen mode needs (layer inputs, LSTM cell states), and writes a
model file that embeds the activation scales and the calibration record (files, their
SHA-256, the method). The same inputs always give the same file.

Modes (docs/arithmetic-contract.md): fp16 -- everything IEEE binary16; int8 -- the whole
network 8-bit; mixed -- the recurrent layers 8-bit (weights symmetric per output row,
inputs and h int8, cell state int16), fc0/fc1/fc2 and the mask binary16.

Range methods: mse (default) picks per tensor the clipping threshold that minimises the
quantisation error itself; percentile clips at a percentile of |value|; minmax never clips.
"""

EPILOG = """\
examples:
  streamer quantize my.onnx --quant mixed --calib calib_wavs/ -o my_mixed.tdn
  streamer quantize my.tdn --quant fp32 --calib calib_wavs/ -o my_calibrated.tdn
  streamer replay noisy.wav --model my_mixed.tdn
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", metavar="MODEL",
                          help="FP32 model, .tdn or .onnx (default: the embedded default model)")
    parser.add_argument("--quant", required=True, metavar="MODE",
                          help=f"{modes_text(QUANTIZED_MODES)}: write the quantised model; fp32: keep FP32 "
                               "weights and embed the calibration, so the file runs in every mode")
    parser.add_argument("--calib", required=True, metavar="DIR",
                          help="folder of calibration audio (.wav/.flac, any rate: resampled)")
    parser.add_argument("-o", "--out", required=True, metavar="OUT.tdn", help="model file to write")
    parser.add_argument("--method", default="mse", choices=("mse", "percentile", "minmax"),
                          help="how activation ranges are chosen (default: mse)")
    parser.add_argument("--percentile", type=float, default=99.99, metavar="P",
                          help="the percentile of |value| for --method percentile (default: 99.99)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    from streamer.quantize import quantize_model
    from streamer.report import to_json

    progress = None if args.json else say
    summary = quantize_model(args.model, args.quant, args.calib, args.out, method=args.method,
                             percentile=args.percentile, progress=progress)
    for warning in summary["warnings"]:
        warn(warning)
    if args.json:
        print(to_json(summary), end="")
        return 0
    print(f"wrote        {summary['out']} ({summary['quant']}, {summary['weights_bytes']:,} weight bytes)")
    print(f"calibration  {summary['method']} over {len(summary['files'])} file(s)")
    for name, value in sorted(summary["ranges"].items()):
        print(f"  {name:<12} range {value:.5g}")
    return 0
