"""The `streamer live` command: its options, its run and its summary."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from streamer.live.devices import check_devices, default_rate, list_devices, parse_device
from streamer.live.processor import (
    DEFAULT_QUEUE_BLOCKS,
    DEFAULT_SLACK_BLOCKS,
    FALLBACKS,
    MAX_CHANNELS,
    LiveError,
)
from streamer.live.session import LiveSession

DESCRIPTION = """\
Enhance audio from an input device to an output device in real time: full-duplex PortAudio at
the device's own rate, one 6.25 ms hop per block, every block checked against the deadline
(docs/live.md).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `streamer live` options."""
    parser.add_argument("--input", metavar="DEV", help="input device: index or name substring "
                        "(default: PortAudio's default input; see --list-devices)")
    parser.add_argument("--output", metavar="DEV", help="output device: index or name substring "
                        "(default: PortAudio's default output)")
    parser.add_argument("--model", metavar="PATH", help="model file: .tdn or .onnx (default: the "
                        "embedded LSTM H=256 model)")
    from streamer.options import QUANT_HELP

    parser.add_argument("--quant", metavar="MODE", default=None, help=QUANT_HELP)
    from streamer.backends.registry import backend_help

    parser.add_argument("--backend", default="emulator", metavar="SPEC", help=backend_help())
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds of audio "
                        "(default: until Ctrl-C)")
    parser.add_argument("--record-in", metavar="IN.wav", help="write the input as captured")
    parser.add_argument("--record-out", metavar="OUT.wav", help="write the output as played "
                        "(fallback blocks included)")
    parser.add_argument("--dashboard", action="store_true", help="live terminal view (plain lines "
                        "every second when stdout is not a terminal)")
    parser.add_argument("--report", metavar="R.json", help="write the run's report as JSON")
    parser.add_argument("--log", metavar="FRAMES.jsonl", help="write one JSON line per block")
    parser.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    parser.add_argument("--fallback", choices=FALLBACKS, default="dry",
                        help="what plays when a block is not ready in time: 'dry' the input delayed "
                        "like the enhanced signal, 'silence' zeros (default: dry)")
    parser.add_argument("--slack-blocks", type=int, default=DEFAULT_SLACK_BLOCKS, metavar="N",
                        help="hops a block may take from capture until it is due (default: 1, "
                        "i.e. the 6.25 ms deadline); each adds 6.25 ms latency")
    parser.add_argument("--queue-blocks", type=int, default=DEFAULT_QUEUE_BLOCKS, metavar="N",
                        help="input ring size; blocks arriving while it is full are lost "
                        f"(default: {DEFAULT_QUEUE_BLOCKS})")
    parser.add_argument("--latency", default="low", metavar="low|high|S",
                        help="PortAudio suggested latency: low, high or seconds (default: low)")
    parser.add_argument("--voltages", metavar="V,V,...", help="target operating points to check "
                        "every block at, volts (default: all points of the target); the report "
                        "and dashboard get operating_points (docs/cost-model.md)")
    parser.add_argument("--target", metavar="NAME|TARGET.toml", help="target description for the cost "
                        "model: a packaged name (gap9, cortex-m7) or a TOML file (default: gap9)")
    from streamer.options import add_placement_option

    add_placement_option(parser)
    parser.add_argument("--rate", type=int, metavar="HZ", help="device sample rate, e.g. 44100 or "
                        "48000; audio is resampled to the network's 16 kHz and back, one 6.25 ms hop "
                        "per device block (default: the input device's own default rate)")
    parser.add_argument("--input-channel", type=int, metavar="N", help="use input channel N "
                        f"(from 1) of a stereo or multichannel device (default: the mono downmix of "
                        f"its channels, up to {MAX_CHANNELS}); the output goes to every output channel")
    from streamer.options import ATTEN_LIM_DB_HELP, add_link_options

    parser.add_argument("--atten-lim-db", type=float, metavar="DB", help=ATTEN_LIM_DB_HELP)
    add_link_options(parser)


def _latency(value: str) -> str | float:
    if value in ("low", "high"):
        return value
    try:
        return float(value)
    except ValueError as exc:
        raise LiveError(f"--latency must be low, high or a number of seconds, not {value!r}") from exc


def summary(report: dict[str, Any]) -> str:
    """A few human lines about a live run."""
    e2e, host = report["end_to_end_latency_ms"], report["host_ms"]

    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}"

    stream = report.get("stream") or {}
    lines = [
        f"stream    {stream.get('summary', '?')}, stopped: {report['stopped_by']}",
        f"model     {report['model'].get('path', '?')}; backend {report['backend']}, {report['quant']}",
        f"frames    {report['frames']} in = {report['frames_out']} enhanced + "
        f"{report['deadline_misses']} deadline misses ({report['fallback']} played) + "
        f"{report['lost_frames']} lost ({report['losses']['input_queue_full']} queue full, "
        f"{report['losses']['in_flight_at_stop']} in flight at stop)",
        f"portaudio {report['input_overflows']} input overflows, {report['output_underflows']} "
        f"output underflows",
        f"latency   end to end p50 {ms(e2e['p50'])} ms, max {ms(e2e['max'])} ms "
        f"(algorithmic {e2e['algorithmic_ms']:.2f} + resampling {e2e['resampling_ms']:.2f} + pipeline "
        f"{e2e['pipeline_ms']:.2f} + device)",
        f"host time p50 {ms(host['p50'])} ms, p99 {ms(host['p99'])} ms, max {ms(host['max'])} ms "
        f"per block; deadline {report['deadline_ms']:g} ms",
    ]
    failed = report["backend_info"].get("failed_by_cause") or {}
    if sum(failed.values()):
        causes = ", ".join(f"{cause} {n}" for cause, n in sorted(failed.items()))
        lines.append(f"link      {sum(failed.values())} frames lost on the device link ({causes}): the "
                     f"input passed through for them")
    if report.get("error"):
        lines.append(f"error     {report['error']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """`streamer live`: returns the exit status (0 also after Ctrl-C: that is how it stops).

    A LiveError (device, sample rate, options) is printed as one line with status 2 here;
    model, backend and path errors propagate for the CLI to report.
    """
    try:
        return _run(args)
    except LiveError as exc:
        print(f"streamer: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from streamer.audio import write_audio
    from streamer.backends.registry import open_backend
    from streamer.replay import check_output_paths, load
    from streamer.report import write_json

    if args.list_devices:
        print(list_devices())
        return 0
    paths = {"report": args.report, "frame log": args.log, "input recording": args.record_in,
             "output recording": args.record_out}
    check_output_paths({k: None if v is None else Path(v) for k, v in paths.items()}, {})
    latency = _latency(args.latency)
    # Options first: cheaper to fix than a device, and no reason to touch audio before.
    if args.slack_blocks < 1:
        raise LiveError("--slack-blocks must be at least 1: the callback cannot wait for the block "
                        "it has just handed over")
    if args.queue_blocks <= args.slack_blocks + 1:
        raise LiveError(f"--queue-blocks must exceed --slack-blocks + 1 ({args.slack_blocks + 1})")
    if args.duration is not None and args.duration <= 0:
        raise LiveError(f"--duration must be positive, not {args.duration:g}")
    if args.rate is not None and args.rate <= 0:
        raise LiveError(f"--rate must be a positive number of Hz, not {args.rate}")
    if args.input_channel is not None and args.input_channel < 1:
        raise LiveError(f"--input-channel counts from 1, not {args.input_channel}")
    from streamer.pipeline import mask_floor

    mask_floor(args.atten_lim_db)  # a bad value fails here, before any audio
    from streamer.options import link_policy

    policy = link_policy(args)
    from streamer.costmodel import TimingSpec

    timing_spec = TimingSpec.load(args.target, args.voltages, placement=args.placement)
    input_device, output_device = parse_device(args.input), parse_device(args.output)
    # Fail on the device before loading a model: the usual mistake is the device.
    rate = args.rate or default_rate(input_device)
    check_devices(input_device, output_device, rate, args.input_channel)
    loaded = load(args.model)
    dashboard = None
    if args.dashboard:
        from streamer.dashboard import Dashboard

        dashboard = Dashboard(title="streamer live")
    # The callback needs the GIL within a fraction of a hop; CPython's default 5 ms switch
    # interval would let the worker or the poller hold it for most of one.
    previous_interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    try:
        with open_backend(args.backend, loaded.params, args.quant, policy=policy,
                          placement=args.placement) as backend:
            from streamer.costmodel import TargetNote
            from streamer.replay import target_observer

            timing, note = target_observer(timing_spec, backend)
            session = LiveSession(backend, model_info=loaded.info(), backend_spec=args.backend,
                                  observers=[timing if timing is not None else TargetNote(note or "")],
                                  quant=args.quant, input_device=input_device,
                                  output_device=output_device, rate=rate,
                                  input_channel=args.input_channel, atten_lim_db=args.atten_lim_db,
                                  fallback=args.fallback,
                                  slack_blocks=args.slack_blocks, queue_blocks=args.queue_blocks,
                                  latency=latency, dashboard=dashboard,
                                  record=bool(args.record_in or args.record_out), log_path=args.log)
            report = session.run(args.duration)
    finally:
        sys.setswitchinterval(previous_interval)
    recorded_in, recorded_out = session.recordings()
    # FLOAT keeps the recordings bit-exact to what the stream carried (tests compare them).
    if args.record_in:
        write_audio(args.record_in, recorded_in, session.rate, "FLOAT")
    if args.record_out:
        write_audio(args.record_out, recorded_out, session.rate, "FLOAT")
    if args.report:
        write_json(args.report, report)
    print(summary(report), flush=True)
    for path, what in ((args.report, "report"), (args.log, "frame log"), (args.record_in, "input"),
                       (args.record_out, "output")):
        if path:
            print(f"{what:<9} {path}")
    failed = sum((report["backend_info"].get("failed_by_cause") or {}).values())
    status = 0
    if session.audio_error is not None:
        print(f"streamer: error: {session.audio_error}; {report['duration_s']:.1f} s of audio "
              f"streamed, report and recordings written", file=sys.stderr)
        status = 1
    elif report["error"]:
        print(f"streamer: error: the backend failed: {report['error']}", file=sys.stderr)
        status = 2
    elif failed and not args.allow_failed_frames:
        print(f"streamer: error: {failed} frame(s) were lost on the device link (the input played "
              f"unchanged for them); pass --allow-failed-frames to accept that", file=sys.stderr)
        status = 1
    if session.abandoned:
        # A stream that would not close leaves PortAudio unable to shut down: its exit hook
        # (Pa_Terminate) then blocks for minutes or aborts the process. Everything is written
        # and flushed, so leave without it.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status
