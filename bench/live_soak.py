"""Soak `streamer live` on a JACK dummy server for N minutes; print JSON.

    python bench/live_soak.py                      # 10 minutes at 48 kHz, the default model
    python bench/live_soak.py --minutes 60 --rate 16000 --quant mixed
    python bench/live_soak.py --minutes 5 --quant mixed --backend sim      # over a device link

Starts its own `jackd -d dummy` (a unique server name, nothing else connects to it) at the
rate given, with one 6.25 ms hop per period, runs the real command (`python -m streamer live
--duration ... --report ... --log ...`) against it, samples the command's resident memory
(VmRSS from /proc) every few seconds, and at the end reads the report and the per-block log.

Prints: frames, deadline misses, lost frames, PortAudio over/underflows, RSS at the start,
after warm-up and at the end, its slope after warm-up (KiB/min, least squares), and the host
time per block (p50/p99/max) in each window (default 10 minutes) to show any drift.
Goal (issue 11): 0 lost frames, RSS growth under 1 MiB after warm-up, no drift.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from streamer.rate_adapter import device_block_size  # noqa: E402


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def start_jack(rate: int, period: int, log: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    jackd = shutil.which("jackd")
    if jackd is None:
        raise SystemExit("jackd not found: apt install jackd2")
    name = f"streamer-soak-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    env = dict(os.environ, JACK_DEFAULT_SERVER=name, JACK_NO_START_SERVER="1",
               JACK_NO_AUDIO_RESERVATION="1")
    with log.open("w") as out:
        process = subprocess.Popen([jackd, "-n", name, "-t", "2000", "-d", "dummy", "-r", str(rate),
                                    "-p", str(period)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    deadline = time.monotonic() + 15
    while True:
        ready = subprocess.run(["jack_wait", "-s", name, "-c"], env=env, capture_output=True, text=True)
        if "running" in ready.stdout and "not" not in ready.stdout:
            return process, env
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"jackd did not start: {log.read_text()[-1000:]}")
        time.sleep(0.1)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def slope_kib_per_min(samples: list[tuple[float, int]]) -> float | None:
    """Least-squares slope of RSS (KiB) over time (minutes)."""
    if len(samples) < 2:
        return None
    t = np.array([s[0] for s in samples]) / 60.0
    rss = np.array([s[1] for s in samples], dtype=np.float64)
    if np.ptp(t) == 0:
        return None
    return float(np.polyfit(t, rss, 1)[0])


def windows(log: Path, block_s: float, window_s: float) -> list[dict]:
    """Host time per block (ms) in consecutive windows of the run."""
    per_window: dict[int, list[float]] = {}
    misses: dict[int, int] = {}
    with log.open() as lines:
        for line in lines:
            record = json.loads(line)
            w = int(record["frame"] * block_s // window_s)
            if record.get("host_ms") is not None:
                per_window.setdefault(w, []).append(record["host_ms"])
            misses[w] = misses.get(w, 0) + int(bool(record.get("deadline_miss")))
    out = []
    for w in sorted(per_window):
        values = np.array(per_window[w])
        out.append({"window": w, "start_min": round(w * window_s / 60, 2), "blocks": int(values.size),
                    "deadline_misses": misses.get(w, 0),
                    "host_ms_p50": round(float(np.percentile(values, 50)), 4),
                    "host_ms_p99": round(float(np.percentile(values, 99)), 4),
                    "host_ms_max": round(float(values.max()), 4)})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=48_000, help="the JACK server's rate (default 48000)")
    parser.add_argument("--model", help="model file (default: the embedded model)")
    parser.add_argument("--quant", help="numeric mode (default: the model's own)")
    parser.add_argument("--backend", help="where the network runs (default: the emulator), e.g. 'sim' "
                        "for the firmware's host simulator over a pseudo-terminal")
    parser.add_argument("--window-minutes", type=float, default=10.0)
    parser.add_argument("--warmup-s", type=float, default=60.0, help="RSS slope counts after this")
    parser.add_argument("--sample-s", type=float, default=5.0, help="RSS sampling interval")
    parser.add_argument("--keep", metavar="DIR", help="keep the report and log in DIR")
    args = parser.parse_args()

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="streamer-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    block = device_block_size(args.rate)
    jack, env = start_jack(args.rate, block, work / "jackd.log")
    report_path, log_path = work / "report.json", work / "frames.jsonl"
    command = [sys.executable, "-m", "streamer", "live", "--duration", str(args.minutes * 60),
               "--report", str(report_path), "--log", str(log_path)]
    if args.model:
        command += ["--model", args.model]
    if args.quant:
        command += ["--quant", args.quant]
    if args.backend:
        command += ["--backend", args.backend]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    samples: list[tuple[float, int]] = []
    try:
        started = time.monotonic()
        live = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        while live.poll() is None:
            rss = rss_kib(live.pid)
            if rss is not None:
                samples.append((time.monotonic() - started, rss))
            time.sleep(args.sample_s)
        stderr = live.stderr.read() if live.stderr else ""
    finally:
        stop(jack)
    if live.returncode != 0 or not report_path.exists():
        print(json.dumps({"error": f"streamer live exited {live.returncode}: {stderr.strip()}"}))
        return 1
    report = json.loads(report_path.read_text())
    after = [s for s in samples if s[0] >= args.warmup_s]
    result = {
        "minutes": args.minutes, "rate": args.rate, "block": block,
        "backend": report["backend"], "quant": report["quant"],
        "frames": report["frames"], "frames_out": report["frames_out"],
        "deadline_misses": report["deadline_misses"], "lost_frames": report["lost_frames"],
        "input_overflows": report["input_overflows"], "output_underflows": report["output_underflows"],
        "reconciled": report["reconciled"],
        "host_ms": report["host_ms"], "end_to_end_latency_ms_p50": report["end_to_end_latency_ms"]["p50"],
        "rss_kib": {"start": samples[0][1] if samples else None,
                    "after_warmup": after[0][1] if after else None,
                    "end": samples[-1][1] if samples else None,
                    "growth_after_warmup": after[-1][1] - after[0][1] if after else None,
                    "max_after_warmup": max(s[1] for s in after) if after else None},
        "rss_slope_kib_per_min_after_warmup": None if slope_kib_per_min(after) is None
        else round(slope_kib_per_min(after), 2),
        "windows": windows(log_path, block / args.rate, args.window_minutes * 60),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    print(json.dumps(result, indent=2))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
