"""`streamer plugin`: write a LADSPA plugin that runs one model in the firmware's arithmetic."""

from __future__ import annotations

import argparse

from streamer.options import MODEL_HELP
from streamer.quant.modes import QUANTIZED_MODES, modes_text

DESCRIPTION = """\
Write a LADSPA plugin (a shared object) that denoises mono 16 kHz audio with
the model compiled in, in the firmware's exact arithmetic (libtdn: the
firmware's C kernels with the STFT around them): what the MCU would output,
in sox, PipeWire's filter-chain, ffmpeg or Audacity, with no Python in the
audio path.
"""

EPILOG = """\
Ports: Input, Output (audio); "Attenuation limit (dB, 100 = none)" (0..100,
default 100: the mask as the network gives it; below 100 the mask is floored
at 10^(-dB/20) as by --atten-lim-db); Bypass (toggle); latency (output control,
samples: 400 = the STFT's 300 + one 100-sample hop of queueing). Output sample
n is input sample n - 400, enhanced, whatever block size the host uses. Only
16 kHz: at another rate the plugin refuses to instantiate (the host reports
it; resample around it, e.g. sox ... rate 16k). Building needs a C compiler,
make and ladspa.h (Debian: build-essential ladspa-sdk).

examples:
  streamer plugin --quant mixed -o tdn_mixed.so
  sox -D noisy.wav enhanced.wav ladspa -l ./tdn_mixed.so tdn_denoise_mixed
  applyplugin -s1 noisy.wav enhanced.wav ./tdn_mixed.so tdn_denoise_mixed 100 0
  streamer plugin --model my.tdn --quant fp16 --label my_denoiser -o ~/.ladspa/my.so
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="PATH", help=MODEL_HELP)
    parser.add_argument("--quant", metavar="MODE", required=True,
                        help=f"the numeric mode the plugin runs: {modes_text(QUANTIZED_MODES)} (mixed: "
                             "recurrent layers int8, the rest fp16; int8 and mixed need the "
                             "calibration the default model carries or a file made by 'streamer "
                             "quantize')")
    parser.add_argument("-o", "--output", metavar="PLUGIN.so", required=True,
                        help="the plugin file to write (replaced whole if it exists)")
    parser.add_argument("--label", metavar="LABEL",
                        help="the LADSPA label hosts load it by (default: tdn_denoise_MODE)")
    parser.add_argument("--id", type=int, metavar="N", dest="unique_id",
                        help="the LADSPA unique ID, 1..16777215 (default: 0x7A0000 + 16 bits of "
                             "the model blob's CRC-32)")
    parser.add_argument("--json", action="store_true", help="print what was written as JSON")


def run(args: argparse.Namespace) -> int:
    from streamer.plugin import write_plugin
    from streamer.replay import load
    from streamer.report import to_json

    loaded = load(args.model)
    info = write_plugin(loaded.params, args.quant, args.output, label=args.label,
                        unique_id=args.unique_id, model_name=loaded.source.split("/")[-1])
    if args.json:
        print(to_json(info.as_dict()), end="")
        return 0
    print(f"plugin    {info.path}")
    print(f"label     {info.label}   (LADSPA ID {info.unique_id})")
    print(f"model     {info.name}, blob {info.blob_bytes:,} bytes compiled in")
    print(f"latency   {info.latency} samples at 16 kHz ({info.latency / 16:.2f} ms)")
    return 0
