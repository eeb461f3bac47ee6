"""`streamer eval`: a model over folders of noisy/clean pairs."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

from streamer.commands.common import fmt, link_status, names, say, warn
from streamer.options import (
    DASHBOARD_HELP,
    DEFAULT_BATCH,
    add_model_options,
    add_placement_option,
    add_target_options,
    link_policy,
    make_dashboard,
    positive_int,
)

DESCRIPTION = """\
Evaluate a model over a folder of noisy/clean pairs. Files pair by name (noisy/x.wav with
clean/x.wav; .wav and .flac); names found on one side only are listed as a warning and
skipped. Each pair is replayed exactly as 'streamer replay' does and scored with PESQ-WB and
STOI; the summary table, the CSV and the JSON report give one row per file and the means.

On the emulator, files run as a rolling batch, longest first: --batch streams share every
network step (one matrix-matrix product per recurrent layer instead of one matrix-vector product
per stream; the layers without state over 64 frames of a file at once), and a slot freed by a
file that ended takes the next file. Per file the output is bit-identical to
'streamer replay' in fp16, int8 and mixed (fp32: within float32 rounding). Files are spread
over --jobs worker processes, or over a Ray cluster's workers with --cluster, each loading the
model once. Scores depend on none of these; timings do. The report's throughput_x_realtime is
the seconds of audio enhanced per second of enhancement work with all workers busy.
"""

EPILOG = """\
examples:
  streamer eval --noisy valentini/noisy --clean valentini/clean
  streamer eval --noisy noisy --clean clean --model my.tdn --csv scores.csv \\
      --report scores.json --out-dir enhanced --jobs 1
  streamer eval --noisy noisy --clean clean --quant mixed --batch 32 --jobs 2
  streamer eval --noisy /data/noisy --clean /data/clean --cluster ray://head:10001
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--noisy", required=True, metavar="DIR", help="folder of noisy files")
    parser.add_argument("--clean", required=True, metavar="DIR",
                          help="folder of clean references, same file names")
    add_model_options(parser)
    parser.add_argument("--report", metavar="R.json", help="write per-file entries and means as JSON")
    parser.add_argument("--csv", metavar="R.csv",
                          help="write one row per file and a final 'mean' row as CSV")
    parser.add_argument("--out-dir", metavar="DIR",
                          help="also write each enhanced file there, under its noisy name "
                               "(default: write no audio)")
    parser.add_argument("--jobs", type=positive_int, metavar="N",
                          help="worker processes (default: min(2, CPU count))")
    parser.add_argument("--batch", type=positive_int, metavar="N",
                          help=f"streams per network step in each worker, a rolling batch (default: "
                               f"{DEFAULT_BATCH} on the emulator, measured; 1 on a device; 1 = one file "
                               f"at a time, streamed exactly as replay does)")
    parser.add_argument("--cluster", metavar="ADDRESS",
                          help="run the files on a Ray cluster: ray://HOST:PORT (Ray Client), HOST:PORT "
                               "(the head's GCS address) or 'auto' (the Ray instance running on this "
                               "machine). The folders (and --out-dir) must be at the same paths on "
                               "every node. Needs pip install 'streamer[cluster]'")
    add_target_options(parser)
    add_placement_option(parser)
    parser.add_argument("--dashboard", action="store_true", help=DASHBOARD_HELP)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from streamer.evaluate import evaluate
    from streamer.report import eval_report, eval_table, target_lines

    board = make_dashboard(args, "streamer eval")
    interactive = sys.stderr.isatty() and board is None

    def on_pairing(pairing) -> None:
        for side, files, other in (("noisy", pairing.noisy_only, "clean"),
                                   ("clean", pairing.clean_only, "noisy")):
            if files:
                warn(f"skipping {len(files)} {side} file(s) with no {other} file of the same "
                     f"name: {names(files)}")

    with contextlib.ExitStack() as stack:
        make_feed = None
        if board is not None:
            stack.enter_context(board)  # stopped on every way out, Ctrl-C included

            def make_feed(pairing) -> Any:
                from streamer.feeds import StreamFeed, blocks_of

                return StreamFeed(board, files_total=len(pairing.pairs),
                                  blocks_total=blocks_of([noisy for noisy, _ in pairing.pairs]))

        if interactive:
            from rich.progress import Progress

            bar = stack.enter_context(Progress(console=Console(stderr=True), transient=True))
            task = bar.add_task("evaluating", total=None)

        def on_file(result, done: int, total: int) -> None:
            if interactive:
                bar.update(task, completed=done, total=total)
                return
            if board is not None:
                return  # the dashboard shows files done and the scores
            q = result.enhanced_quality
            scores = "" if q is None else (f"  PESQ-WB {fmt(q.pesq_wb)}  STOI {fmt(q.stoi)}")
            say(f"[{done}/{total}] {result.input.name}{scores}")

        result = evaluate(args.noisy, args.clean, model=args.model, backend=args.backend,
                          quant=args.quant, out_dir=args.out_dir, jobs=args.jobs, verify=args.verify,
                          report=args.report, csv=args.csv, on_pairing=on_pairing, on_file=on_file,
                          target=args.target, voltages=args.voltages,
                          atten_lim_db=args.atten_lim_db, feed=make_feed, policy=link_policy(args),
                          batch=args.batch, cluster=args.cluster, placement=args.placement)
    data = eval_report(result)
    Console().print(eval_table(data))
    for line in target_lines(data):
        print(line)
    for path, what in ((args.report, "report"), (args.csv, "csv"), (args.out_dir, "audio")):
        if path:
            print(f"{what:<7} {path}")
    for item in result.files:
        for warning in item.warnings:
            warn(f"{item.input.name}: {warning}")
    return link_status(result.files, args)
