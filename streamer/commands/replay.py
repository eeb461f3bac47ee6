"""`streamer replay`: enhance a recorded file as if it arrived live."""

from __future__ import annotations

import argparse
import contextlib
import sys

from streamer.commands.common import link_status, progress_bar, warn
from streamer.options import (
    DASHBOARD_HELP,
    add_model_options,
    add_placement_option,
    add_target_options,
    link_policy,
    make_dashboard,
)

DESCRIPTION = """\
Enhance a recorded file as if it arrived live, one 6.25 ms hop at a time, write the result,
and report speech quality (when a clean reference is given) and the host compute time of
every frame against the 6.25 ms real-time deadline.

Input: any file libsndfile reads (WAV int16/int24/int32/float, FLAC, ...), at any sample
rate, mono or multi-channel. Channels are down-mixed to their mean; rates other than 16 kHz
are resampled to 16 kHz with soxr (HQ).

Output: written at 16 kHz mono -- the rate the network works at, so resampling back would
add no content -- with the same duration as the input and time-aligned with it (the
engine's 18.75 ms algorithmic latency is removed), in the input's sample format
(int16/int24/int32/float; anything else becomes int16). The output never replaces an input.

Quality: PESQ-WB (the `pesq` package, wide band, 16 kHz) and STOI (`pystoi`) of the
enhanced and of the unprocessed signal against --clean, which must have exactly as many
samples at 16 kHz as the noisy file.
"""

EPILOG = """\
exit status: 0 done; 2 an input, model, backend or path problem (one line on stderr,
'streamer: error: ...'); 130 interrupted by Ctrl-C (no enhanced file is written; the frame
log keeps the frames done).

examples:
  streamer replay
      the bundled demo, scored against its clean twin
  streamer replay meeting_44k_stereo.wav --out meeting.clean.wav
  streamer replay noisy/p232_050.wav --clean clean/p232_050.wav --model my.tdn \\
      --report p232_050.json --log p232_050.frames.jsonl
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("noisy", nargs="?", metavar="NOISY.wav",
                        help="file to enhance (default: the bundled demo, demo_noisy.wav, "
                             "with demo_clean.wav as --clean)")
    parser.add_argument("--out", metavar="OUT.wav",
                        help="enhanced file to write (default: <NOISY stem>.enhanced.wav in the "
                             "current directory)")
    parser.add_argument("--clean", metavar="CLEAN.wav",
                        help="clean reference: adds PESQ-WB and STOI to the summary and report")
    add_model_options(parser)
    parser.add_argument("--report", metavar="REPORT.json",
                        help="write the report as JSON: model, backend, quant, frames, pesq_wb, "
                             "stoi, host_ms {p50, p99, max}, deadline_ms, host_deadline_misses, "
                             "realtime_factor, atten_lim_db, input facts, operating_points, "
                             "lowest_feasible_voltage")
    parser.add_argument("--log", metavar="FRAMES.jsonl",
                        help="write one JSON line per frame: frame, host_ms, deadline_miss, "
                             "target_cycles and target_meets per voltage")
    add_target_options(parser)
    add_placement_option(parser)
    parser.add_argument("--dashboard", action="store_true", help=DASHBOARD_HELP)


def run(args: argparse.Namespace) -> int:
    from streamer.replay import replay
    from streamer.report import replay_report, replay_summary

    board = make_dashboard(args, "streamer replay")
    with contextlib.ExitStack() as stack:
        feed = None
        if board is not None:
            from streamer.feeds import StreamFeed

            stack.enter_context(board)  # stopped on every way out, Ctrl-C included
            feed, progress = StreamFeed(board), None
        else:
            progress = stack.enter_context(progress_bar("enhancing", sys.stderr.isatty()))
        result = replay(args.noisy, out=args.out, clean=args.clean, model=args.model,
                        backend=args.backend, quant=args.quant, report=args.report, log=args.log,
                        progress=progress, verify=args.verify, target=args.target,
                        voltages=args.voltages, atten_lim_db=args.atten_lim_db, feed=feed,
                        placement=args.placement,
                        policy=link_policy(args))
    print(replay_summary(replay_report(result)))
    for path, what in ((args.report, "report"), (args.log, "frame log")):
        if path:
            print(f"{what:<9} {path}")
    for warning in result.warnings:
        warn(f"{result.input.name}: {warning}")
    return link_status([result], args)
