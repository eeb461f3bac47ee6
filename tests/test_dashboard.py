"""The dashboard: its pieces rendered offline, plain lines without a terminal, and the real
`streamer live --dashboard` in a tmux pane against a JACK dummy server."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import subprocess
import sys
import time
import uuid
from pathlib import Path

import jack
import numpy as np
import pytest
from helpers import require_tool

from streamer.dashboard import Dashboard, sparkline
from streamer.engine import DEADLINE_S
from streamer.pipeline import FrameEvent

REPO = Path(__file__).resolve().parents[1]
CAPTURE = os.environ.get("STREAMER_DASHBOARD_CAPTURE")  # where to keep the pane text, if set


def _event(index: int, host_s: float) -> FrameEvent:
    return FrameEvent(index, host_s, np.ones(257, np.float32))


def _text(dashboard: Dashboard, width: int = 100) -> str:
    from rich.console import Console

    console = Console(file=io.StringIO(), width=width, record=True, color_system=None)
    console.print(dashboard.render())
    return console.export_text()


def test_sparkline_shows_every_miss_and_scales_to_the_bin() -> None:
    assert sparkline([0, 1, 8, 16, 0], capacity=16) == "·▁▄█·"
    assert sparkline([], capacity=16) == ""


def test_replay_view_has_host_time_and_no_live_rows() -> None:
    board = Dashboard("replay")
    for i in range(100):
        board.on_frame(_event(i, 0.001 if i % 10 else 2 * DEADLINE_S))
    board.update(backend="emulator", quant="fp32", model="default")
    text = _text(board)
    assert "frames" in text and "100" in text
    assert "host deadline misses" in text and re.search(r"host deadline misses\s+10\b", text)
    assert re.search(r"host\s+1\.00", text)  # p50 of the host times, ms
    # What replay never feeds is absent, not shown empty.
    for absent in ("input", "output", "portaudio", "operating points", "end to end", "link"):
        assert absent not in text


def test_live_view_shows_counters_levels_timeline_and_operating_points_only_when_given() -> None:
    board = Dashboard("streamer live")
    board.update(frames=1600, deadline_misses=3, lost_frames=1, input_overflows=0,
                 output_underflows=2, input_dbfs=-23.5, output_dbfs=None, miss_timeline=[0] * 48 + [1, 3],
                 timeline_bin_s=0.1, e2e_ms={"p50": 50.0, "p99": 50.1, "max": 56.3},
                 link_ms={"p50": 1.5, "p99": 2.0, "max": 3.0})
    text = _text(board)
    assert re.search(r"deadline misses\s+3 \(0\.19%\)", text)
    assert "lost frames" in text and "output underflows 2" in text
    assert "-23.5 dBFS" in text and "silence" in text
    assert "misses / 100 ms" in text and "··▁▂" in text
    assert "end to end" in text and "link rtt" in text
    assert "operating points" not in text
    board.update(operating_points=[
        {"voltage": 0.65, "freq_mhz": 240, "latency_ms_p99": 2.58, "slack_ms": 3.67, "deadline_misses": 0,
         "meets_deadline": True, "power_mw": 15.4, "energy_uj_per_frame": 85.4, "weights_memory": "MRAM"},
        {"voltage": 0.8, "freq_mhz": 370, "latency_ms_p99": 9.1, "slack_ms": -2.85, "deadline_misses": 7,
         "meets_deadline": False, "power_mw": 27.8, "energy_uj_per_frame": 155.0, "weights_memory": "MRAM"}])
    text = _text(board)
    assert "operating points" in text and "0.65" in text and "370" in text
    for header in ("V", "MHz", "ms p99", "slack ms", "misses", "mW avg", "uJ/frame", "weights"):
        assert header in text
    assert re.search(r"0\.8\s+370\s+9\.1\s+-2\.85\s+7\s+False", text)


def test_without_a_terminal_it_prints_plain_lines_every_interval() -> None:
    out = io.StringIO()
    board = Dashboard("live", stream=out, interactive=False, plain_interval_s=0.05)
    board.start()
    try:
        board.update(frames=160, deadline_misses=1, lost_frames=0, input_overflows=0,
                     output_underflows=0, input_dbfs=-20.0, output_dbfs=-26.0)
        board.on_frame(_event(0, 0.002))
        time.sleep(0.3)
    finally:
        board.stop()
    lines = out.getvalue().splitlines()
    assert len(lines) >= 3  # a few periodic lines plus the final one
    assert lines[-1].startswith("frames 160  misses 1 (0.62%)  lost 0")
    assert "in -20.0 dBFS out -26.0 dBFS" in lines[-1]
    assert "\x1b" not in out.getvalue()  # no terminal control codes in a pipe


# -- in a real terminal ----------------------------------------------------------------------


class Tmux:
    """A private tmux server (its own socket), killed at the end whatever happens."""

    def __init__(self, tmux: str) -> None:
        self.tmux = tmux
        self.socket = f"streamer-test-{uuid.uuid4().hex[:8]}"

    def __call__(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([self.tmux, "-L", self.socket, *args], capture_output=True, text=True,
                              timeout=30)

    def capture(self, target: str) -> str:
        # -S -: from the start of the history too (tmux may scroll the pane's first line
        # away when the command exits); -J: wrapped lines joined.
        return self("capture-pane", "-p", "-J", "-S", "-", "-t", target).stdout

    def wait_for(self, target: str, pattern: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.capture(target)
            if re.search(pattern, text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} never appeared in the pane:\n{text}")
            time.sleep(0.2)

    def kill(self) -> None:
        socket_path = self("display", "-p", "#{socket_path}").stdout.strip()
        self("kill-server")
        if socket_path:
            Path(socket_path).unlink(missing_ok=True)  # tmux leaves the socket file behind


class ToneSource:
    """A JACK client in this process that plays a quiet tone plus noise, forever."""

    def __init__(self) -> None:
        import sounddevice as sd

        rng = np.random.default_rng(0)
        t = np.arange(16_000) / 16_000
        self.loop = (0.05 * np.sin(2 * np.pi * 440 * t) + 0.02 * rng.standard_normal(len(t))
                     ).astype(np.float32)
        self.pos = 0
        self.stream = sd.Stream(samplerate=16_000, blocksize=100, channels=1, dtype="float32",
                                device=(jack.jack_device(), jack.jack_device()), callback=self._play)

    def _play(self, indata, outdata, frames, time_info, status) -> None:
        idx = (self.pos + np.arange(frames)) % len(self.loop)
        outdata[:, 0] = self.loop[idx]
        self.pos += frames


def test_dashboard_in_tmux_against_jack(tmp_path: Path, random_model: Path) -> None:
    tmux = Tmux(require_tool("tmux"))
    report = tmp_path / "r.json"
    with jack.running_server(tmp_path) as server, jack.portaudio_on(server):
        env = {k: server.env[k] for k in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER",
                                          "JACK_NO_AUDIO_RESERVATION")}
        env.update(PYTHONPATH=str(REPO), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        # -u COLUMNS/LINES: a tmux server started from pytest hands its panes COLUMNS=80
        # LINES=24, which rich would believe over the pane's real size.
        command = " ".join(["env", "-u", "COLUMNS", "-u", "LINES",
                            *(f"{k}={shlex.quote(v)}" for k, v in env.items()),
                            shlex.quote(sys.executable), "-m", "streamer.live", "--dashboard",
                            "--model", shlex.quote(str(random_model)), "--input", "system",
                            "--output", "system", "--report", shlex.quote(str(report))])
        before = set(server.ports())
        source = ToneSource()
        source.stream.start()
        try:
            source_ports = server.new_client_ports(before)
            before = set(server.ports())
            assert tmux("new-session", "-d", "-s", "live", "-x", "110", "-y", "40",
                        command).returncode == 0
            tmux("set-option", "-t", "live", "remain-on-exit", "on")
            server.wire(source_ports, server.new_client_ports(before))
            # Running: the view refreshes on its own while audio flows.
            tmux.wait_for("live", r"frames\s+[1-9][\d,]* \(")
            first = re.search(r"frames\s+([\d,]+)", tmux.capture("live")).group(1)
            tmux.wait_for("live", rf"frames\s+(?!{first}\b)[\d,]+ \(")
            tmux.wait_for("live", r"input\s+█+░*\s+-\d")   # the level meter moves
            time.sleep(1.0)
            size = tmux("display", "-p", "-t", "live", "#{pane_width}x#{pane_height}").stdout.strip()
            print(f"pane {size}")
            tmux("send-keys", "-t", "live", "C-c")          # Ctrl-C, as a user stops it
            text = tmux.wait_for("live", r"frames\s+\d+ in = ")  # the summary after the view
        finally:
            tmux.kill()
            source.stream.close()
    if CAPTURE:
        Path(CAPTURE).write_text(text)
    data = json.loads(report.read_text())
    assert data["stopped_by"] == "interrupted" and data["reconciled"]
    # The view's last refresh shows the final counts, the same as the report's.
    shown = re.findall(r"deadline misses\s+(\d+) \(", text)
    assert shown and int(shown[-1]) == data["deadline_misses"]
    frames_shown = re.findall(r"frames\s+([\d,]+) \(", text)
    assert int(frames_shown[-1].replace(",", "")) == data["frames"]
    for row in ("streamer live", "backend", "emulator", "model", "audio", "system -> system",
                "portaudio xruns", "misses / 100 ms", "time per frame", "host", "end to end",
                "input", "output", "dBFS"):
        assert row in text, f"{row!r} missing from the dashboard:\n{text}"
    assert "operating points" not in text  # nothing reports them yet


@pytest.fixture(autouse=True)
def _no_leftover_servers():
    """No jackd of ours may outlive a test."""
    yield
    pattern = f"jackd -n streamer-test-{os.getpid()}-"
    result = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    mine = [line for line in result.stdout.split() if line.strip()]
    assert not mine, f"jackd left running: {mine}"
