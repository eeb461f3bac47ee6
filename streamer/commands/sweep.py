"""`streamer sweep`: one model across numeric modes and operating points."""

from __future__ import annotations

import argparse
import sys

from streamer.commands.common import say
from streamer.options import (
    MODEL_HELP,
    add_placement_option,
    add_target_options,
    positive_int,
)
from streamer.quant.modes import QUANTIZED_MODES
from streamer.target import PLACEMENTS

DESCRIPTION = """\
The question: at which supply voltage and clock does a quantised model still meet the
6.25 ms deadline on the MCU, and what does it cost in power and energy? For each numeric
mode the firmware's work per frame (its counters: MACs per core and kind, bytes per memory
level, DMA transfers, forks, barriers) is turned into target cycles, with the weight DMA
overlapped with compute as the double buffering allows; then, at each operating point of
the target, latency = cycles / f(V), the deadline, average power and energy per frame, and
where the weights live. docs/cost-model.md gives the formula and a worked example.

With --noisy and --clean each mode also runs on the emulator over the audio: PESQ-WB per
mode, and the deadline checked on every frame.
"""

EPILOG = """\
examples:
  streamer sweep --plot sweep.png
  streamer sweep --targets gap9,cortex-m7 --report compare.json
  streamer sweep --model my.tdn --voltages 0.65,0.80 --report sweep.json
  streamer sweep --noisy valentini/noisy --clean valentini/clean --plot sweep.png
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="PATH", help=MODEL_HELP + "; int8 and mixed need its "
                       "calibration")
    parser.add_argument("--quants", metavar="MODES", help="numeric modes, comma-separated "
                       f"(default: {','.join(QUANTIZED_MODES)})")
    add_target_options(parser)
    add_placement_option(parser)
    parser.add_argument("--compare-placement", metavar="PLACEMENT", choices=PLACEMENTS,
                       help="also cost the modes with this placement (e.g. whole: the whole blob in the "
                       "first level it fits, as before the planner): a second table, dashed lines in the "
                       "plot")
    parser.add_argument("--targets", metavar="A,B,...", help="compare targets instead (packaged names or "
                       "TOML files, e.g. gap9,cortex-m7): per mode, each one's lowest voltage meeting "
                       "the deadline, latency, energy per frame there, and the energy ratio to the first "
                       "(the paper's ~10x); docs/cortex-m.md")
    parser.add_argument("--baud", type=positive_int, metavar="BAUD",
                       help="add the link time per frame of a serial device at this baud rate")
    parser.add_argument("--noisy", metavar="PATH", help="noisy file or folder: with --clean, score "
                       "each mode (PESQ-WB, STOI) on the emulator and count deadline misses per frame")
    parser.add_argument("--clean", metavar="PATH", help="clean reference file or folder (same names)")
    parser.add_argument("--jobs", type=positive_int, metavar="N",
                       help="worker processes when scoring folders (default: min(2, CPU count))")
    parser.add_argument("--batch", type=positive_int, metavar="N",
                       help="streams per network step when scoring folders, as in streamer eval")
    parser.add_argument("--cluster", metavar="ADDRESS",
                       help="score folders on a Ray cluster, as in streamer eval (ray://HOST:PORT, "
                            "HOST:PORT or auto; pip install 'streamer[cluster]')")
    parser.add_argument("--plot", metavar="OUT.png",
                       help="write the plot: latency and power against voltage, one line per mode")
    parser.add_argument("--report", metavar="R.json", help="write the sweep as JSON")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from streamer.report import write_json
    from streamer.sweep import compare_table, parse_modes, plot, quality_hint, ratio_lines, sweep, sweep_table

    check = {"plot": args.plot, "report": args.report}
    from pathlib import Path

    from streamer.replay import check_output_paths

    check_output_paths({k: None if v is None else Path(v) for k, v in check.items()},
                       {"noisy": None if args.noisy is None else Path(args.noisy),
                        "clean": None if args.clean is None else Path(args.clean)})
    if args.targets is not None:
        return _compare(args)
    report = sweep(args.model, modes=parse_modes(args.quants), target=args.target,
                   voltages=args.voltages, baud=args.baud, noisy=args.noisy, clean=args.clean,
                   jobs=args.jobs, say=say, batch=args.batch, cluster=args.cluster,
                   placement=args.placement, compare=args.compare_placement)
    # Wide enough for every column when the output is a file or a pipe.
    console = Console(width=None if sys.stdout.isatty() else 150)
    console.print(sweep_table(report))
    if compare_table(report) is not None:
        console.print(compare_table(report))
    hint = quality_hint(report)
    if hint:
        print(hint)
    for line in ratio_lines(report):
        print(line)
    if args.report:
        write_json(args.report, report)
        print(f"report  {args.report}")
    if args.plot:
        plot(report, args.plot)
        print(f"plot    {args.plot}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from rich.console import Console

    from streamer.compare import compare, compare_lines, compare_table, parse_targets
    from streamer.replay import ReplayError
    from streamer.report import write_json
    from streamer.sweep import parse_modes

    given = [flag for flag, value in (("--target", args.target), ("--noisy", args.noisy),
                                      ("--clean", args.clean), ("--plot", args.plot)) if value is not None]
    if given:
        raise ReplayError(f"--targets compares the cost model's figures; it does not take {', '.join(given)}")
    report = compare(args.model, targets=parse_targets(args.targets), modes=parse_modes(args.quants),
                     voltages=args.voltages, baud=args.baud, say=say)
    Console(width=None if sys.stdout.isatty() else 150).print(compare_table(report))
    for line in compare_lines(report):
        print(line)
    if args.report:
        write_json(args.report, report)
        print(f"report  {args.report}")
    return 0
