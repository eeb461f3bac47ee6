"""The `streamer` console command: argument parsing only; each subcommand calls one function.

Nothing heavy is imported here at module level (numpy, soundfile, pesq, pystoi, rich, onnx,
torch): `streamer --help` must answer at once. Each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import streamer
from streamer.backends.registry import backend_help

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# Exceptions whose message is meant for the user: printed as one line, no traceback. Looked up
# in sys.modules at error time, so that checking them never imports anything.
_USER_ERRORS = (
    ("streamer.model.params", "ModelError"),
    ("streamer.backends.base", "BackendError"),
    ("streamer.audio", "AudioError"),
    ("streamer.replay", "ReplayError"),
    ("streamer.metrics", "MetricError"),
    ("streamer.live", "LiveError"),
    ("streamer.target", "TargetError"),
    ("streamer.pipeline", "PipelineError"),
)

_FORMATTER = argparse.RawDescriptionHelpFormatter

_TOP_DESCRIPTION = """\
Real-time speech enhancement with TinyDenoiser networks, on the host or on an MCU.

Every command streams audio the way the device does it: 16 kHz mono, one 100-sample hop
(6.25 ms, the real-time deadline) at a time, 400-sample Hann window, 512-point FFT; the
network turns each frame's magnitudes into a mask.
"""

_TOP_EPILOG = """\
quick start:
  streamer replay                       enhance the bundled demo and score it
  streamer replay noisy.wav --clean clean.wav --report report.json
  streamer eval --noisy data/noisy --clean data/clean --csv scores.csv
  streamer info model.tdn
  streamer quantize model.onnx --quant mixed --calib calib/ -o model_mixed.tdn

Run 'streamer COMMAND --help' for a command's options. Errors are one line,
'streamer: error: ...', with exit status 2; Ctrl-C exits with 130
(set STREAMER_DEBUG=1 to see the traceback behind an error).
"""

_MODEL_HELP = ("model file: a native .tdn or an .onnx TinyDenoiser graph "
               "(default: the LSTM H=256 model embedded in the package)")
_BACKEND_HELP = backend_help()
_QUANT_HELP = ("numeric mode: fp32, fp16, int8 or mixed (recurrent layers int8, the rest fp16). "
               "fp16 works on any FP32 model; int8 and mixed need the calibration the default "
               "model carries or a file made by 'streamer quantize' (default: the model file's "
               "own mode, fp32 for an FP32 model)")

# Public: `streamer live` (streamer/live.py) can offer the same option with the same words.
ATTEN_LIM_DB_HELP = ("limit the suppression to DB decibels, as DeepFilterNet's option of that name: "
                     "the network's mask is floored at 10^(-DB/20) on the host before it multiplies "
                     "the spectrum, so some ambience remains (e.g. 12; 0: no suppression at all; "
                     "must be >= 0) (default: off, the network's mask unchanged)")

_REPLAY_DESCRIPTION = """\
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

_REPLAY_EPILOG = """\
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

_EVAL_DESCRIPTION = """\
Evaluate a model over a folder of noisy/clean pairs. Files pair by name (noisy/x.wav with
clean/x.wav; .wav and .flac); names found on one side only are listed as a warning and
skipped. Each pair is replayed exactly as 'streamer replay' does and scored with PESQ-WB and
STOI; the summary table, the CSV and the JSON report give one row per file and the means.

Files are spread over --jobs worker processes, each loading the model itself. The emulator
is deterministic, so scores do not depend on --jobs (host timings do, slightly).
"""

_EVAL_EPILOG = """\
examples:
  streamer eval --noisy valentini/noisy --clean valentini/clean
  streamer eval --noisy noisy --clean clean --model my.tdn --csv scores.csv \\
      --report scores.json --out-dir enhanced --jobs 1
"""

_SWEEP_DESCRIPTION = """\
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

_SWEEP_EPILOG = """\
examples:
  streamer sweep --plot sweep.png
  streamer sweep --model my.tdn --voltages 0.65,0.80 --report sweep.json
  streamer sweep --noisy valentini/noisy --clean valentini/clean --plot sweep.png
"""

_INFO_EPILOG = """\
The memory table gives, per numeric mode, the weight bytes per layer and storage type and
the memory level the weights need on the target: L2 (its weight budget), the on-chip MRAM,
or external L3.

examples:
  streamer info                 the embedded default model
  streamer info my.onnx --json
  streamer info my.tdn --quant mixed
"""

_QUANTIZE_DESCRIPTION = """\
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

_QUANTIZE_EPILOG = """\
examples:
  streamer quantize my.onnx --quant mixed --calib calib_wavs/ -o my_mixed.tdn
  streamer quantize my.tdn --quant fp32 --calib calib_wavs/ -o my_calibrated.tdn
  streamer replay noisy.wav --model my_mixed.tdn
"""


class CliError(Exception):
    """A command-line mistake found after parsing; printed as one line."""


class _Parser(argparse.ArgumentParser):
    """argparse with the same one-line error format as every other streamer error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"streamer: error: {message} (see '{self.prog} --help')\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="PATH", help=_MODEL_HELP)
    # No `choices=`: an unknown backend or mode is reported by the backend factory, which
    # knows what is really available.
    parser.add_argument("--backend", default="emulator", metavar="NAME", help=_BACKEND_HELP)
    parser.add_argument("--quant", metavar="MODE", help=_QUANT_HELP)
    parser.add_argument("--verify", action="store_true",
                        help="with a device backend: run the emulator beside it and count frames "
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
        raise CliError(str(error)) from None


_VOLTAGES_HELP = ("operating points to check every frame at, volts, comma-separated, e.g. "
                  "0.65,0.70,0.75,0.80 (default: all points of the target)")
_TARGET_HELP = ("target description (TOML) for the cost model: cores, SIMD widths, memories, DMA, "
                "overheads, operating points and power (default: the packaged GAP9 target; "
                "docs/cost-model.md)")


def _add_target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", metavar="TARGET.toml", help=_TARGET_HELP)
    parser.add_argument("--voltages", metavar="V,V,...", help=_VOLTAGES_HELP)


_DASHBOARD_HELP = ("live terminal view while it runs, the same as streamer live's: progress and time "
                   "left, frames, host deadline misses and their timeline, host and link time, the "
                   "device link's counters, per-voltage latency, slack, misses, power and energy, "
                   "levels, and PESQ-WB/STOI as each file is scored (plain lines every second when "
                   "stdout is not a terminal)")


def _dashboard(args: argparse.Namespace, title: str) -> Any:
    """The Dashboard for --dashboard, with the run's header fields; None without the flag."""
    if not args.dashboard:
        return None
    from streamer.dashboard import Dashboard

    board = Dashboard(title=title)
    board.update(backend=args.backend, quant=args.quant or "the model's own",
                 model=args.model or "default")
    return board


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="streamer", description=_TOP_DESCRIPTION, epilog=_TOP_EPILOG,
                     formatter_class=_FORMATTER)
    parser.add_argument("--version", action="version", version=f"streamer {streamer.__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    replay = commands.add_parser(
        "replay", help="enhance a recorded file, report quality and per-frame timing",
        description=_REPLAY_DESCRIPTION, epilog=_REPLAY_EPILOG, formatter_class=_FORMATTER)
    replay.add_argument("noisy", nargs="?", metavar="NOISY.wav",
                        help="file to enhance (default: the bundled demo, demo_noisy.wav, "
                             "with demo_clean.wav as --clean)")
    replay.add_argument("--out", metavar="OUT.wav",
                        help="enhanced file to write (default: <NOISY stem>.enhanced.wav in the "
                             "current directory)")
    replay.add_argument("--clean", metavar="CLEAN.wav",
                        help="clean reference: adds PESQ-WB and STOI to the summary and report")
    _add_model_options(replay)
    replay.add_argument("--report", metavar="REPORT.json",
                        help="write the report as JSON: model, backend, quant, frames, pesq_wb, "
                             "stoi, host_ms {p50, p99, max}, deadline_ms, host_deadline_misses, "
                             "realtime_factor, atten_lim_db, input facts, operating_points, "
                             "lowest_feasible_voltage")
    replay.add_argument("--log", metavar="FRAMES.jsonl",
                        help="write one JSON line per frame: frame, host_ms, deadline_miss, "
                             "target_cycles and target_meets per voltage")
    _add_target_options(replay)
    replay.add_argument("--dashboard", action="store_true", help=_DASHBOARD_HELP)
    replay.set_defaults(func=_cmd_replay)

    evaluate = commands.add_parser(
        "eval", help="score a model over folders of noisy/clean pairs",
        description=_EVAL_DESCRIPTION, epilog=_EVAL_EPILOG, formatter_class=_FORMATTER)
    evaluate.add_argument("--noisy", required=True, metavar="DIR", help="folder of noisy files")
    evaluate.add_argument("--clean", required=True, metavar="DIR",
                          help="folder of clean references, same file names")
    _add_model_options(evaluate)
    evaluate.add_argument("--report", metavar="R.json", help="write per-file entries and means as JSON")
    evaluate.add_argument("--csv", metavar="R.csv",
                          help="write one row per file and a final 'mean' row as CSV")
    evaluate.add_argument("--out-dir", metavar="DIR",
                          help="also write each enhanced file there, under its noisy name "
                               "(default: write no audio)")
    evaluate.add_argument("--jobs", type=_positive_int, metavar="N",
                          help="worker processes (default: min(2, CPU count))")
    _add_target_options(evaluate)
    evaluate.add_argument("--dashboard", action="store_true", help=_DASHBOARD_HELP)
    evaluate.set_defaults(func=_cmd_eval)

    sweep = commands.add_parser(
        "sweep", help="one model across numeric modes and voltages: latency, deadline, power, PESQ",
        description=_SWEEP_DESCRIPTION, epilog=_SWEEP_EPILOG, formatter_class=_FORMATTER)
    sweep.add_argument("--model", metavar="PATH", help=_MODEL_HELP + "; int8 and mixed need its "
                       "calibration")
    sweep.add_argument("--quants", metavar="MODES", help="numeric modes, comma-separated "
                       "(default: fp16,int8,mixed)")
    _add_target_options(sweep)
    sweep.add_argument("--baud", type=_positive_int, metavar="BAUD",
                       help="add the link time per frame of a serial device at this baud rate")
    sweep.add_argument("--noisy", metavar="PATH", help="noisy file or folder: with --clean, score "
                       "each mode (PESQ-WB, STOI) on the emulator and count deadline misses per frame")
    sweep.add_argument("--clean", metavar="PATH", help="clean reference file or folder (same names)")
    sweep.add_argument("--jobs", type=_positive_int, metavar="N",
                       help="worker processes when scoring folders (default: min(2, CPU count))")
    sweep.add_argument("--plot", metavar="OUT.png",
                       help="write the plot: latency and power against voltage, one line per mode")
    sweep.add_argument("--report", metavar="R.json", help="write the sweep as JSON")
    sweep.set_defaults(func=_cmd_sweep)

    quantize = commands.add_parser(
        "quantize", help="calibrate an FP32 model on audio and write it fp16, int8 or mixed",
        description=_QUANTIZE_DESCRIPTION, epilog=_QUANTIZE_EPILOG, formatter_class=_FORMATTER)
    quantize.add_argument("model", nargs="?", metavar="MODEL",
                          help="FP32 model, .tdn or .onnx (default: the embedded default model)")
    quantize.add_argument("--quant", required=True, metavar="MODE",
                          help="fp16, int8 or mixed: write the quantised model; fp32: keep FP32 "
                               "weights and embed the calibration, so the file runs in every mode")
    quantize.add_argument("--calib", required=True, metavar="DIR",
                          help="folder of calibration audio (.wav/.flac, any rate: resampled)")
    quantize.add_argument("-o", "--out", required=True, metavar="OUT.tdn", help="model file to write")
    quantize.add_argument("--method", default="mse", choices=("mse", "percentile", "minmax"),
                          help="how activation ranges are chosen (default: mse)")
    quantize.add_argument("--percentile", type=float, default=99.99, metavar="P",
                          help="the percentile of |value| for --method percentile (default: 99.99)")
    quantize.add_argument("--json", action="store_true", help="print the summary as JSON")
    quantize.set_defaults(func=_cmd_quantize)

    info = commands.add_parser(
        "info", help="describe a model file", epilog=_INFO_EPILOG, formatter_class=_FORMATTER,
        description="Describe a model: recurrent cell, hidden size, parameter count, weight\n"
                    "bytes and its metadata (training recipe, provenance).")
    info.add_argument("model", nargs="?", metavar="MODEL",
                      help="a .tdn or .onnx file (default: the embedded default model)")
    info.add_argument("--quant", metavar="MODE",
                      help="report memory for this mode only (default: every mode)")
    info.add_argument("--target", metavar="TARGET.toml",
                      help="target description for memory sizes (default: the GAP9 target)")
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    info.set_defaults(func=_cmd_info)

    # Listed here for --help only: main() hands these to their own module's parser, imported
    # only when the command runs (they pull in torch, PortAudio, numpy).
    for name, command in _DELEGATED.items():
        commands.add_parser(name, add_help=False, help=command.help)
    return parser


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _warn(message: str) -> None:
    _say(f"streamer: warning: {message}")


def _names(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


@contextlib.contextmanager
def _progress_bar(description: str, enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A transient rich bar on stderr when it is a terminal; None (no output) otherwise."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            # Every call would cost more than a frame does; a few updates a second suffice.
            if done == total or done % 200 == 0:
                progress.update(task, completed=done, total=total)

        yield update


def _cmd_replay(args: argparse.Namespace) -> int:
    from streamer.replay import replay
    from streamer.report import replay_report, replay_summary

    board = _dashboard(args, "streamer replay")
    with contextlib.ExitStack() as stack:
        feed = None
        if board is not None:
            from streamer.feeds import StreamFeed

            stack.enter_context(board)  # stopped on every way out, Ctrl-C included
            feed, progress = StreamFeed(board), None
        else:
            progress = stack.enter_context(_progress_bar("enhancing", sys.stderr.isatty()))
        result = replay(args.noisy, out=args.out, clean=args.clean, model=args.model,
                        backend=args.backend, quant=args.quant, report=args.report, log=args.log,
                        progress=progress, verify=args.verify, target=args.target,
                        voltages=args.voltages, atten_lim_db=args.atten_lim_db, feed=feed,
                        policy=link_policy(args))
    print(replay_summary(replay_report(result)))
    for path, what in ((args.report, "report"), (args.log, "frame log")):
        if path:
            print(f"{what:<9} {path}")
    for warning in result.warnings:
        _warn(f"{result.input.name}: {warning}")
    return _link_status([result], args)


def _link_status(results: Sequence[Any], args: argparse.Namespace) -> int:
    """Exit status after a replay or eval: 1 when a device was given up on, or when frames were
    lost on the link and --allow-failed-frames was not given; the error line says which."""
    stopped = [r for r in results if r.error is not None]
    if stopped:
        _say(f"streamer: error: {stopped[0].input.name}: {stopped[0].error}; the output and "
             f"report hold what was done")
        return 1
    failed = sum(sum(r.failed_frames.values()) for r in results)
    if failed and not args.allow_failed_frames:
        _say(f"streamer: error: {failed} frame(s) were lost on the device link (the input played "
             f"unchanged for them); pass --allow-failed-frames to accept that")
        return 1
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from rich.console import Console

    from streamer.evaluate import evaluate
    from streamer.report import eval_report, eval_table, target_lines

    board = _dashboard(args, "streamer eval")
    interactive = sys.stderr.isatty() and board is None

    def on_pairing(pairing) -> None:
        for side, names, other in (("noisy", pairing.noisy_only, "clean"),
                                   ("clean", pairing.clean_only, "noisy")):
            if names:
                _warn(f"skipping {len(names)} {side} file(s) with no {other} file of the same "
                      f"name: {_names(names)}")

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
            scores = "" if q is None else (f"  PESQ-WB {_fmt(q.pesq_wb)}  STOI {_fmt(q.stoi)}")
            _say(f"[{done}/{total}] {result.input.name}{scores}")

        result = evaluate(args.noisy, args.clean, model=args.model, backend=args.backend,
                          quant=args.quant, out_dir=args.out_dir, jobs=args.jobs, verify=args.verify,
                          report=args.report, csv=args.csv, on_pairing=on_pairing, on_file=on_file,
                          target=args.target, voltages=args.voltages,
                          atten_lim_db=args.atten_lim_db, feed=make_feed, policy=link_policy(args))
    data = eval_report(result)
    Console().print(eval_table(data))
    for line in target_lines(data):
        print(line)
    for path, what in ((args.report, "report"), (args.csv, "csv"), (args.out_dir, "audio")):
        if path:
            print(f"{what:<7} {path}")
    for item in result.files:
        for warning in item.warnings:
            _warn(f"{item.input.name}: {warning}")
    return _link_status(result.files, args)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from rich.console import Console

    from streamer.report import write_json
    from streamer.sweep import parse_modes, plot, quality_hint, ratio_lines, sweep, sweep_table

    check = {"plot": args.plot, "report": args.report}
    from pathlib import Path

    from streamer.replay import check_output_paths

    check_output_paths({k: None if v is None else Path(v) for k, v in check.items()},
                       {"noisy": None if args.noisy is None else Path(args.noisy),
                        "clean": None if args.clean is None else Path(args.clean)})
    report = sweep(args.model, modes=parse_modes(args.quants), target=args.target,
                   voltages=args.voltages, baud=args.baud, noisy=args.noisy, clean=args.clean,
                   jobs=args.jobs, say=_say)
    # Wide enough for every column when the output is a file or a pipe.
    Console(width=None if sys.stdout.isatty() else 150).print(sweep_table(report))
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


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _cmd_info(args: argparse.Namespace) -> int:
    from streamer.model import default_model_path
    from streamer.replay import load
    from streamer.report import model_info, to_json

    loaded = load(args.model)
    info = model_info(loaded.source, loaded.params)
    file = default_model_path() if loaded.path is None else loaded.path
    info["file"] = str(file)
    info["file_bytes"] = file.stat().st_size
    info["memory"] = _memory_reports(loaded.params, args.quant, args.target)
    if args.json:
        print(to_json(info), end="")
        return 0
    where = "" if info["file"] == info["path"] else f" ({info['file']})"
    print(f"model        {info['path']}{where}")
    print(f"description  {info['description']}")
    print(f"cell         {info['cell'].upper()}, hidden {info['hidden']}")
    print(f"parameters   {info['parameters']:,}")
    print(f"weight bytes {info['weight_bytes']:,} as stored; file {info['file_bytes']:,} bytes")
    metadata = info["metadata"] or {}
    print("metadata" + ("     (none)" if not metadata else ""))
    for key, value in sorted(metadata.items()):
        print(f"  {key}: {value}")
    print(_memory_table(info["memory"]))
    return 0


def _memory_reports(params, quant: str | None, target: str | None) -> list[dict]:
    from streamer.quant.memory import memory_report, memory_reports
    from streamer.quant.network import QuantizedModel
    from streamer.target import load_target, memory_levels

    memory = memory_levels(load_target(target), target or "target")
    if isinstance(params, QuantizedModel):
        if quant not in (None, params.mode):
            raise CliError(f"this model is quantised for {params.mode}; it has no {quant} form")
        return [memory_report(params, memory)]
    reports = memory_reports(params, memory)
    if quant is None:
        return reports
    chosen = [r for r in reports if r["quant"] == quant]
    if not chosen:
        raise CliError(f"unknown numeric mode {quant!r}; expected fp32, fp16, int8 or mixed")
    return chosen


def _memory_table(reports: list[dict]) -> str:
    layers = list(reports[0]["layers"])
    lines = ["memory       " + "".join(f"{name:>10}" for name in layers) + "     total  lives in"]
    for report in reports:
        cells = "".join(f"{report['layers'][name]['total']:>10,}" for name in layers)
        lines.append(f"  {report['quant']:<10} {cells}{report['weights_bytes']:>10,}  "
                     f"{report['weights_memory']}")
    return "\n".join(lines)


def _cmd_quantize(args: argparse.Namespace) -> int:
    from streamer.quantize import quantize_model
    from streamer.report import to_json

    progress = None if args.json else _say
    summary = quantize_model(args.model, args.quant, args.calib, args.out, method=args.method,
                             percentile=args.percentile, progress=progress)
    for warning in summary["warnings"]:
        _warn(warning)
    if args.json:
        print(to_json(summary), end="")
        return 0
    print(f"wrote        {summary['out']} ({summary['quant']}, {summary['weights_bytes']:,} weight bytes)")
    print(f"calibration  {summary['method']} over {len(summary['files'])} file(s)")
    for name, value in sorted(summary["ranges"].items()):
        print(f"  {name:<12} range {value:.5g}")
    return 0


@dataclass(frozen=True)
class _Delegated:
    """A subcommand whose module brings its own `add_arguments(parser)` and `run(args)`."""

    module: str
    help: str
    description: str
    install: str  # what to install when the module or one of its dependencies is missing


_DELEGATED = {
    "train": _Delegated("streamer.train.recipe",
                        "train a TinyDenoiser (needs the training extras: torch)",
                        "Train a TinyDenoiser with PyTorch and save it as a .tdn model.",
                        "pip install 'streamer[train]'"),
    "live": _Delegated("streamer.live",
                       "enhance the microphone to the speaker in real time (PortAudio)",
                       "Enhance audio from an input device to an output device in real time.",
                       "pip install sounddevice (and the PortAudio library)"),
}


def _cmd_delegated(name: str, argv: list[str]) -> int:
    command = _DELEGATED[name]
    try:
        module = importlib.import_module(command.module)
    except ModuleNotFoundError as exc:
        missing = exc.name or "?"
        if missing == command.module or command.module.startswith(missing + "."):
            raise CliError(f"'streamer {name}' is not available in this install ({command.module} "
                           f"is missing); it needs: {command.install}") from exc
        if missing.split(".")[0] == "streamer":
            raise  # a broken install or a bug, not a missing extra: keep the traceback
        raise CliError(f"'streamer {name}' needs the Python package {missing.split('.')[0]!r}: "
                       f"{command.install}") from exc
    parser = _Parser(prog=f"streamer {name}", formatter_class=_FORMATTER,
                     description=command.description)
    module.add_arguments(parser)
    args = parser.parse_args(argv)
    return int(module.run(args) or 0)


def _is_user_error(exc: BaseException) -> bool:
    if isinstance(exc, CliError | OSError):
        return True
    if isinstance(exc, ModuleNotFoundError) and not (exc.name or "streamer").startswith("streamer"):
        return True  # a third-party package missing from this install: say which
    for module_name, class_name in _USER_ERRORS:
        module = sys.modules.get(module_name)
        error_class = getattr(module, class_name, None) if module is not None else None
        if error_class is not None and isinstance(exc, error_class):
            return True
    return False


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        message = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    else:
        message = str(exc) or type(exc).__name__
    return " ".join(message.split())


def _guarded(command: Callable[[], int]) -> int:
    try:
        return command()
    except KeyboardInterrupt:
        _say("streamer: interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:
        if not _is_user_error(exc) or os.environ.get("STREAMER_DEBUG"):
            raise
        _say(f"streamer: error: {_one_line(exc)}")
        return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `streamer` console command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in _DELEGATED:
        return _guarded(lambda: _cmd_delegated(argv[0], argv[1:]))
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return EXIT_USAGE
    return _guarded(lambda: args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
