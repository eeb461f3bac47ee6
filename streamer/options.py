"""Options more than one command offers, written once with their help: the model and where it
runs, the device link's patience, the target, the dashboard. Nothing heavy is imported here:
`--help` must answer at once."""

from __future__ import annotations

import argparse
from typing import Any

from streamer.backends.registry import backend_help
from streamer.quant.modes import modes_text

# `streamer eval --batch` when not given, for a backend that can step many streams at once: the
# knee of the throughput curve measured by bench/eval_throughput.py (README, "Evaluation at scale").
DEFAULT_BATCH = 32


class OptionError(ValueError):
    """An option's value that cannot be used, found after parsing; printed as one line."""


MODEL_HELP = ("model file: a native .tdn or an .onnx TinyDenoiser graph "
               "(default: the LSTM H=256 model embedded in the package)")
QUANT_HELP = (f"numeric mode: {modes_text()} (mixed: recurrent layers int8, the rest fp16). "
               "fp16 works on any FP32 model; int8 and mixed need the calibration the default "
               "model carries or a file made by 'streamer quantize' (default: the model file's "
               "own mode, fp32 for an FP32 model)")


ATTEN_LIM_DB_HELP = ("limit the suppression to DB decibels, as DeepFilterNet's option of that name: "
                     "the network's mask is floored at 10^(-DB/20) on the host before it multiplies "
                     "the spectrum, so some ambience remains (e.g. 12; 0: no suppression at all; "
                     "must be >= 0) (default: off, the network's mask unchanged)")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="PATH", help=MODEL_HELP)
    # No `choices=`: an unknown backend or mode is reported by the backend factory, which
    # knows what is really available.
    parser.add_argument("--backend", default="emulator", metavar="NAME", help=backend_help())
    parser.add_argument("--quant", metavar="MODE", help=QUANT_HELP)
    parser.add_argument("--verify", action="store_true",
                        help="with a device backend or native: run the emulator beside it and count frames "
                             "whose masks differ by even one bit (report: verify_mismatched_frames)")
    parser.add_argument("--atten-lim-db", type=float, metavar="DB", help=ATTEN_LIM_DB_HELP)
    add_link_options(parser)


def add_link_options(parser: argparse.ArgumentParser) -> None:
    """How long a device link is waited for, and whether lost frames fail the run (shared with
    `streamer live`)."""
    from streamer.link.policy import LinkPolicy

    default = LinkPolicy()
    parser.add_argument("--link-timeout", type=float, default=default.give_up_s, metavar="S",
                        help="give a device up after S seconds without any answer: the run ends "
                             "with the output so far kept (default: %(default)s)")
    parser.add_argument("--max-failed-frames", type=int, default=default.max_failed_frames, metavar="N",
                        help="give a device up after N failed frames in a row; 0: never on the count "
                             "(default: %(default)s)")
    parser.add_argument("--allow-failed-frames", action="store_true",
                        help="exit 0 even when frames were lost on the device link (each plays the "
                             "input unchanged; counted in the summary and the report)")


def link_policy(args: argparse.Namespace) -> Any:
    """The LinkPolicy of the options `add_link_options` adds."""
    from streamer.link.policy import LinkPolicy

    try:
        return LinkPolicy(max_failed_frames=args.max_failed_frames, give_up_s=args.link_timeout)
    except ValueError as error:
        raise OptionError(str(error)) from None


VOLTAGES_HELP = ("operating points to check every frame at, volts, comma-separated, e.g. "
                  "0.65,0.70,0.75,0.80 (default: all points of the target)")
TARGET_HELP = ("target description for the cost model, a packaged name (gap9, cortex-m7) or a TOML "
                "file: cores, SIMD widths, memories, DMA, overheads, operating points and power "
                "(default: gap9; docs/cost-model.md, docs/cortex-m.md)")


PLACEMENT_HELP = ("where the weights live on the target: 'auto' (default) plans each tile's rows over "
                  "L2, then MRAM, then L3 (docs/cost-model.md, Placement); 'whole' puts the whole blob "
                  "in the first level it fits, as before the planner; 'L2', 'MRAM' or 'L3' the whole "
                  "blob in that level (an error if it does not fit)")


def add_placement_option(parser: argparse.ArgumentParser) -> None:
    from streamer.target import PLACEMENTS

    parser.add_argument("--placement", choices=PLACEMENTS, default="auto", help=PLACEMENT_HELP)


def add_target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", metavar="NAME|TARGET.toml", help=TARGET_HELP)
    parser.add_argument("--voltages", metavar="V,V,...", help=VOLTAGES_HELP)


DASHBOARD_HELP = ("live terminal view while it runs, the same as streamer live's: progress and time "
                   "left, frames, host deadline misses and their timeline, host and link time, the "
                   "device link's counters, per-voltage latency, slack, misses, power and energy, "
                   "levels, and PESQ-WB/STOI as each file is scored (plain lines every second when "
                   "stdout is not a terminal)")


def make_dashboard(args: argparse.Namespace, title: str) -> Any:
    """The Dashboard for --dashboard, with the run's header fields; None without the flag."""
    if not args.dashboard:
        return None
    from streamer.dashboard import Dashboard

    board = Dashboard(title=title)
    board.update(backend=args.backend, quant=args.quant or "the model's own",
                 model=args.model or "default")
    return board
