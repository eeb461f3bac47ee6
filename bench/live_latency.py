"""Benchmark: `streamer live` latency on a real audio server, per backend.

    python bench/live_latency.py [--seconds S] [--model PATH] [--backends emulator,sim]
                                 [--slack-blocks N] [--quant MODE]

Starts `jackd -d dummy -r 16000 -p 100` (the 100-sample block is JACK's period), runs a
LiveSession in this process for S seconds of audio per backend, fed by a second JACK client
that plays noise with a tone and records what comes back. Prints one JSON object:

* `end_to_end_ms`: microphone -> speaker as PortAudio's callback times give it (DAC time of
  the callback that plays a block minus ADC time of the one that captured it, + 18.75 ms);
* `loopback_ms`: the same path measured on the signal, from the second client: where its
  own samples come back, found by matching the streamer's recordings sample for sample
  (client -> streamer input, streamer output -> client) plus the streamer's exact internal
  delay (pipeline + algorithmic). It includes the JACK graph's period for the cycle;
* `callback_to_output_ms`: from the callback that hands a block over until the worker has
  its enhanced block ready (queueing + processing): the slack that decides misses;
* `host_ms` per block, `link_rtt_ms` for device links, deadline misses and losses.

The model: the embedded default (LSTM H=256) when this checkout has it, else a random LSTM
H=256 calibrated on synthetic signals. It runs in `mixed` when the model carries calibration,
else fp32 (the output says which and why). `sim` (the host firmware simulator over a pty) is
skipped with the reason when it cannot be opened here. On a shared, loaded host the numbers
are noisy: read the distributions, not single values.
"""

from __future__ import annotations

import os

# Before numpy loads: a stream's matrix-vector products run single-threaded (as `streamer` does).
import streamer  # noqa: F401, E402 - first: single-threaded BLAS before numpy loads (streamer/__init__.py)

# isort: split

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the JACK server helper lives with the tests

from streamer.engine import ALGORITHMIC_LATENCY_SAMPLES, HOP_SAMPLES, SAMPLE_RATE  # noqa: E402
from streamer.live import LiveSession  # noqa: E402

JACK_TOOLS = ("jackd", "jack_wait", "jack_lsp", "jack_connect", "jack_disconnect")


def bench_model(given: str | None = None) -> tuple[Any, dict[str, Any]]:
    """(params, description): `given`, else the default model, else a calibrated random H=256 LSTM."""
    from streamer.model import default_model_path, load_model

    path = Path(given) if given else default_model_path()
    if given or path.is_file():
        params = load_model(path)
        return params, {"model": given or "default", "path": str(path), "hidden": params.hidden,
                         "cell": params.cell, "calibrated": bool(params.calibration)}
    from helpers import random_params

    from streamer.quant.calibrate import calibrate

    params = random_params("lstm", 256, seed=11)
    rng = np.random.default_rng(3)
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    signals = [(f"synthetic{i}", 0.1 * np.sin(2 * np.pi * (150 + 40 * i) * t)
                + 0.03 * rng.standard_normal(len(t))) for i in range(3)]
    params.calibration = calibrate(params, signals)
    return params, {"model": "random LSTM H=256 (seed 11): no default model in this checkout",
                    "hidden": 256, "cell": "lstm", "calibrated": True,
                    "calibration": "3 synthetic tone+noise signals (timing does not depend on it)"}


class Source:
    """Second JACK client: plays a looped tone + noise, records what comes back."""

    def __init__(self, seconds: float) -> None:
        import jack as jackhelper
        import sounddevice as sd

        rng = np.random.default_rng(0)
        n = int((seconds + 2) * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        self.played = (0.05 * np.sin(2 * np.pi * 440 * t) + 0.03 * rng.standard_normal(n)).astype(np.float32)
        self.captured = np.zeros(n, np.float32)
        self.pos = 0
        device = jackhelper.jack_device()
        self.stream = sd.Stream(samplerate=SAMPLE_RATE, blocksize=HOP_SAMPLES, channels=1,
                                dtype="float32", device=(device, device), callback=self._callback)

    def _callback(self, indata, outdata, frames, time_info, status) -> None:
        n = min(frames, len(self.played) - self.pos)
        outdata.fill(0)
        if n <= 0:
            return
        outdata[:n, 0] = self.played[self.pos:self.pos + n]
        self.captured[self.pos:self.pos + n] = indata[:n, 0]
        self.pos += n


def find_offset(haystack: np.ndarray, needle: np.ndarray, max_offset: int) -> int | None:
    """Smallest offset at which `needle` occurs in `haystack` exactly (float32 copies)."""
    limit = min(max_offset, len(haystack) - len(needle))
    for offset in np.flatnonzero(haystack[:limit] == needle[0]):
        if np.array_equal(haystack[offset:offset + len(needle)], needle):
            return int(offset)
    return None


def run_backend(spec: str, params, quant: str, seconds: float, slack: int, server) -> dict[str, Any]:
    import jack as jackhelper

    from streamer.backends.registry import open_backend

    with open_backend(spec, params, quant) as backend:
        before = set(server.ports())
        source = Source(seconds)
        source.stream.start()
        try:
            source_ports = server.new_client_ports(before)
            before = set(server.ports())
            session = LiveSession(backend, backend_spec=spec, quant=quant,
                                  input_device=jackhelper.jack_device(),
                                  output_device=jackhelper.jack_device(), slack_blocks=slack,
                                  record=True)
            session.start()
            try:
                server.wire(source_ports, server.new_client_ports(before))
                deadline = seconds + session.audio_seconds
                while session.audio_seconds < deadline:
                    time.sleep(0.05)
                    session.poll()
            finally:
                session.stop("duration")
        finally:
            source.stream.close()
        report = session.report()
        recorded_in, recorded_out = session.recordings()

    # Loopback on the signal itself: where a stretch the source played shows up in the
    # streamer's input, and where a stretch the streamer played shows up in the source's capture.
    probe = 4000
    loopback = None
    mid_in = len(recorded_in) // 2
    needle = recorded_in[mid_in:mid_in + probe]
    at_source = find_offset(source.played, needle, len(source.played)) if needle.any() else None
    mid_out = len(recorded_out) // 2
    needle_out = recorded_out[mid_out:mid_out + probe]
    at_capture = find_offset(source.captured, needle_out, len(source.captured)) if needle_out.any() else None
    if at_source is not None and at_capture is not None:
        # Source sample n is the streamer's input sample n + a, which it plays as output sample
        # n + a + internal (exact: pipeline + algorithmic), which the source captures as its
        # sample n + a + internal + b. a and b each contain the two clients' start offset
        # (unknown, opposite signs); their sum is the transport through JACK both ways.
        a = mid_in - at_source
        b = at_capture - mid_out
        internal = slack * HOP_SAMPLES + ALGORITHMIC_LATENCY_SAMPLES
        total = a + internal + b
        loopback = {"p50": total / SAMPLE_RATE * 1e3, "samples": total,
                    "streamer_internal_samples": internal, "jack_transport_samples": a + b,
                    "note": "one probe, client to client: excludes the driver's ADC/DAC latency"}
    e2e = report["end_to_end_latency_ms"]
    return {
        "backend": spec, "quant": report["quant"], "seconds": report["duration_s"],
        "frames": report["frames"], "deadline_misses": report["deadline_misses"],
        "lost_frames": report["lost_frames"], "reconciled": report["reconciled"],
        "input_overflows": report["input_overflows"], "output_underflows": report["output_underflows"],
        "end_to_end_ms": {k: e2e[k] for k in ("p50", "p99", "max", "mean")},
        "end_to_end_method": e2e["method"],
        "device_round_trip_ms": e2e["device_round_trip_ms"],
        "loopback_ms": loopback,
        "callback_to_output_ms": report["ready_ms"],
        "host_ms": report["host_ms"],
        "host_deadline_misses": report["host_deadline_misses"],
        "link_rtt_ms": report["link_rtt_ms"],
        "backend_info": {k: v for k, v in report["backend_info"].items()
                         if k not in ("device", "last_counters", "model")},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--model", default=None, help="model file (default: the embedded model, "
                        "else a calibrated random LSTM H=256)")
    parser.add_argument("--backends", default="emulator,sim")
    parser.add_argument("--slack-blocks", type=int, default=1)
    parser.add_argument("--quant", default=None,
                        help="numeric mode (default: mixed when the model is calibrated, else fp32)")
    args = parser.parse_args(argv)

    result: dict[str, Any] = {
        "benchmark": "live_latency", "sample_rate": SAMPLE_RATE, "block_samples": HOP_SAMPLES,
        "slack_blocks": args.slack_blocks,
        "host": {"python": platform.python_version(), "machine": platform.machine(),
                 "cpus": os.cpu_count(), "load_average": list(os.getloadavg())},
        "runs": [], "skipped": [],
    }
    missing = [tool for tool in JACK_TOOLS if shutil.which(tool) is None]
    if missing:
        result["skipped"].append({"backend": "all", "reason": f"missing {', '.join(missing)} "
                                  "(apt-get install jackd2 libportaudio2)"})
        print(json.dumps(result, indent=2))
        return 0

    import jack as jackhelper

    params, model = bench_model(args.model)
    quant = args.quant or ("mixed" if params.calibration else "fp32")
    model["quant"] = quant
    model["quant_reason"] = ("--quant" if args.quant else "the model carries calibration"
                             if params.calibration else "the model carries no calibration, so fp32")
    result["model"] = model
    sys.setswitchinterval(0.0005)  # as `streamer live` does: the callback needs the GIL promptly
    with tempfile.TemporaryDirectory() as tmp:
        with jackhelper.running_server(Path(tmp)) as server, jackhelper.portaudio_on(server):
            result["audio_server"] = {"jackd": "dummy driver", "rate": server.rate,
                                      "period": server.period}
            for spec in args.backends.split(","):
                try:
                    result["runs"].append(run_backend(spec, params, quant, args.seconds,
                                                      args.slack_blocks, server))
                except Exception as exc:  # noqa: BLE001 - a backend that cannot open is reported
                    result["skipped"].append({"backend": spec, "reason": f"{type(exc).__name__}: {exc}"})
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
