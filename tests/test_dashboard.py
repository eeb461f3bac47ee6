"""The dashboard: its pieces rendered offline, plain lines without a terminal, and the real
`streamer live --dashboard` in a tmux pane against a JACK dummy server."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import jack
import numpy as np
import pytest
from helpers import require_tool

from streamer.dashboard import Dashboard, link_counters_text, sparkline
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


# -- replay and eval feeds ----------------------------------------------------------------------


def test_miss_timeline_bins_misses_by_audio_time() -> None:
    from streamer.dashboard import MissTimeline

    timeline = MissTimeline(bin_s=0.1, bins=4)
    timeline.bump(0.05)             # bin 0
    timeline.bump(0.25)             # bin 2
    timeline.bump(0.29)             # bin 2
    assert timeline.counts == [0, 1, 0, 2]    # newest bin last: bins -1..2
    timeline.advance(0.45)          # bin 4: bins 1..4
    assert timeline.counts == [0, 2, 0, 0]
    timeline.bump(0.12)             # bin 1, still in the window
    assert timeline.counts == [1, 2, 0, 0]
    timeline.bump(0.01)             # bin 0: out of the window, dropped
    assert timeline.counts == [1, 2, 0, 0]
    timeline.advance(10.0)
    assert timeline.counts == [0, 0, 0, 0]


def _pair(make_wav, folder: Path, name: str, seconds: float, seed: int) -> tuple[Path, Path]:
    (folder / "noisy").mkdir(exist_ok=True)
    (folder / "clean").mkdir(exist_ok=True)
    return (make_wav(folder / "noisy" / name, seconds=seconds, seed=seed, noise=0.05),
            make_wav(folder / "clean" / name, seconds=seconds, seed=seed))


def test_replay_feed_shows_progress_levels_misses_points_and_quality(tmp_path: Path, make_wav,
                                                                     random_model: Path) -> None:
    from streamer.feeds import StreamFeed
    from streamer.pipeline import blocks_for
    from streamer.replay import replay

    noisy, clean = _pair(make_wav, tmp_path, "a.wav", 1.0, 1)
    board = Dashboard("streamer replay", stream=io.StringIO(), interactive=False)
    feed = StreamFeed(board)
    result = replay(noisy, clean=clean, model=random_model, quant="fp16", out=tmp_path / "o.wav",
                    feed=feed)
    s = board.state()
    blocks = blocks_for(16_000)
    assert s["progress"]["done"] == s["progress"]["total"] == blocks
    assert s["frames"] == len(result.host_s) and s["file"] == "a.wav"
    assert s["quality"] == {"pesq_wb": result.enhanced_quality.pesq_wb, "stoi": result.enhanced_quality.stoi}
    assert [row["voltage"] for row in s["operating_points"]] == [0.65, 0.7, 0.75, 0.8]
    assert s["operating_points"][0]["frames"] == len(result.host_s)
    assert s["input_dbfs"] is not None and s["output_dbfs"] is not None
    assert "link_counters" not in s  # the emulator has no link
    # A frame over the hop lands in the timeline at its audio time.
    feed(_event(len(result.host_s) + 3, 2 * DEADLINE_S))
    assert board.state()["host_deadline_misses"] == sum(result.host_s > DEADLINE_S) + 1
    assert feed.timeline.counts[-1] >= 1
    text = _text(board)
    for row in ("file", "a.wav", "progress", "100%", "quality", "PESQ-WB", "operating points"):
        assert row in text


@pytest.mark.parametrize("jobs", [1, 2])
def test_eval_feed_counts_files_and_keeps_the_running_mean(tmp_path: Path, make_wav, random_model: Path,
                                                           jobs: int) -> None:
    from streamer.evaluate import evaluate
    from streamer.feeds import StreamFeed, blocks_of

    for i, seconds in enumerate((0.8, 1.2)):
        _pair(make_wav, tmp_path, f"f{i}.wav", seconds, i)
    board = Dashboard("streamer eval", stream=io.StringIO(), interactive=False)
    feeds = []

    def make(pairing):
        feeds.append(StreamFeed(board, files_total=len(pairing.pairs),
                                blocks_total=blocks_of([n for n, _ in pairing.pairs])))
        return feeds[0]

    result = evaluate(tmp_path / "noisy", tmp_path / "clean", model=random_model, quant="fp16",
                      jobs=jobs, feed=make)
    s = board.state()
    assert s["files"] == "2 of 2 done"
    assert s["progress"]["done"] == s["progress"]["total"] == blocks_of(
        [tmp_path / "noisy" / "f0.wav", tmp_path / "noisy" / "f1.wav"])
    assert s["frames"] == sum(len(r.host_s) for r in result.files)
    pesq = [r.enhanced_quality.pesq_wb for r in result.files]
    assert s["quality"]["files"] == 2 and s["quality"]["pesq_wb"] == pytest.approx(sum(pesq) / 2)
    assert s["operating_points"][0]["frames"] == s["frames"]


def test_replay_dashboard_without_a_terminal_prints_plain_lines(tmp_path: Path, make_wav,
                                                                random_model: Path) -> None:
    noisy, clean = _pair(make_wav, tmp_path, "a.wav", 2.0, 3)
    result = subprocess.run([sys.executable, "-m", "streamer", "replay", str(noisy), "--clean", str(clean),
                             "--model", str(random_model), "--quant", "fp16", "--dashboard"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    view = [line for line in lines if re.match(r"\s*\d+% ", line)]
    final = view[-1]  # the line printed when the view stops
    assert final.startswith("100%")
    assert "a.wav" in final and "PESQ-WB" in final and "V 0.65:0 misses" in final
    assert "\x1b" not in result.stdout
    assert any(line.startswith("quality") for line in lines)  # then the usual summary


def test_eval_dashboard_ctrl_c_writes_the_reports(tmp_path: Path, make_wav, random_model: Path) -> None:
    for i in range(10):
        _pair(make_wav, tmp_path, f"f{i}.wav", 10.0, i)
    process = subprocess.Popen([sys.executable, "-m", "streamer", "eval", "--noisy", "noisy", "--clean",
                                "clean", "--model", str(random_model), "--quant", "fp16",  # slow enough
                                # --batch 1: files come back one by one (a batched piece of five
                                # returns whole, and then the run is over before Ctrl-C)
                                "--jobs", "2", "--batch", "1", "--dashboard",
                                "--report", "r.json"], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True,
                               env=dict(os.environ, PYTHONPATH=str(REPO)))
    seen = []
    for line in process.stdout:
        seen.append(line)
        if re.search(r"files [1-9] of 10 done", line):  # one file or more finished
            break
    os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    if process.returncode == 0:
        pytest.skip("every file finished before Ctrl-C arrived")
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1] == "streamer: interrupted"
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["complete"] is False and 1 <= report["files_evaluated"] < 10
    # The view stopped with a last line, not mid-write.
    assert (seen + stdout.splitlines(keepends=True))[-1].endswith("\n")


def _tmux_command(*args: str) -> str:
    env = {"PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    assignments = [f"{k}={shlex.quote(v)}" for k, v in env.items()]
    return " ".join(["env", "-u", "COLUMNS", "-u", "LINES", *assignments, shlex.quote(sys.executable),
                     "-m", "streamer", *map(shlex.quote, args)])


def _watch_mid_run(tmux: Tmux, target: str, timeout: float = 120) -> str:
    """The pane while the run is under way: progress shown and below 100 %."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = tmux.capture(target)
        shown = re.search(r"progress\s+(\d+)%", text)
        if shown and int(shown.group(1)) < 100 and re.search(r"\n\s*0\.65\s+240\s", text):
            return text
        time.sleep(0.05)
    raise AssertionError(f"never saw the run under way:\n{tmux.capture(target)}")


def test_replay_dashboard_in_tmux_on_the_simulator(tmp_path: Path, shared_dir: Path) -> None:
    from test_link_device import simulator_binary  # builds the host simulator when needed

    simulator_binary()
    tmux = Tmux(require_tool("tmux"))
    pair = shared_dir / "data" / "valentini"
    command = _tmux_command("replay", str(pair / "noisy" / "p257_062.wav"), "--clean",
                            str(pair / "clean" / "p257_062.wav"), "--backend", "sim", "--quant", "mixed",
                            "--dashboard", "--out", str(tmp_path / "out.wav"))
    try:
        assert tmux("new-session", "-d", "-s", "replay", "-x", "120", "-y", "45", command).returncode == 0
        tmux("set-option", "-t", "replay", "remain-on-exit", "on")
        during = _watch_mid_run(tmux, "replay")
        after = tmux.wait_for("replay", r"quality\s+PESQ-WB \d\.\d+ \(noisy")
    finally:
        tmux.kill()
    for row in ("streamer replay", "sim, mixed", "p257_062.wav", "progress", "host deadline misses",
                "misses / 100 ms", "device link", "sent", "link rtt", "operating points"):
        assert row in during, f"{row!r} missing mid-run:\n{during}"
    assert re.search(r"quality\s+PESQ-WB \d\.\d{3}\s+STOI", after)  # on the view once scored
    if CAPTURE:
        Path(CAPTURE + ".replay").write_text(during)


def test_eval_dashboard_in_tmux_on_two_pairs(tmp_path: Path, shared_dir: Path) -> None:
    from test_link_device import simulator_binary

    simulator_binary()
    tmux = Tmux(require_tool("tmux"))
    pair = shared_dir / "data" / "valentini"
    for side in ("noisy", "clean"):
        (tmp_path / side).mkdir()
        for name in ("p232_116.wav", "p257_062.wav"):
            (tmp_path / side / name).symlink_to(pair / side / name)
    command = _tmux_command("eval", "--noisy", str(tmp_path / "noisy"), "--clean", str(tmp_path / "clean"),
                            "--backend", "sim", "--quant", "mixed", "--jobs", "1", "--dashboard")
    try:
        assert tmux("new-session", "-d", "-s", "eval", "-x", "120", "-y", "50", command).returncode == 0
        tmux("set-option", "-t", "eval", "remain-on-exit", "on")
        during = _watch_mid_run(tmux, "eval")
        after = tmux.wait_for("eval", r"lowest voltage meeting the deadline")
    finally:
        tmux.kill()
    for row in ("streamer eval", "files", "of 2 done", "progress", "host deadline misses",
                "operating points"):
        assert row in during, f"{row!r} missing mid-run:\n{during}"
    assert re.search(r"files\s+2 of 2 done", after)
    assert re.search(r"PESQ-WB \d\.\d{3}\s+STOI \d\.\d{3}\s+\(mean of 2 files\)", after)
    if CAPTURE:
        Path(CAPTURE + ".eval").write_text(during)


def test_replay_dashboard_ctrl_c_leaves_nothing_half_written(tmp_path: Path, make_wav,
                                                             random_model: Path) -> None:
    noisy = make_wav(tmp_path / "long.wav", seconds=60.0, seed=4, noise=0.05)
    process = subprocess.Popen([sys.executable, "-m", "streamer", "replay", str(noisy), "--model",
                                str(random_model), "--quant", "fp16", "--dashboard", "--report", "r.json",
                                "--out", "out.wav"], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True,
                               env=dict(os.environ, PYTHONPATH=str(REPO)))
    first = process.stdout.readline()  # the view's first plain line: the run is under way
    assert re.match(r"\s*\d+% ", first), first
    os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1] == "streamer: interrupted"
    # As without the view: no report, no output file, no temporary left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.wav"]
    assert stdout.endswith("\n")


def test_the_device_link_row_counts_failures_by_every_cause() -> None:
    described = {"frames_sent": 1234, "frames_answered": 1230,
                 "failed_by_cause": {"timeout": 3, "bad_crc": 1},
                 "late_replies": 2, "reconnects": 0, "model_reloads": 1}
    assert link_counters_text(described) == "sent 1,234, answered 1,230, failed 4, late 2, reloads 1"
    assert link_counters_text({"backend": "emulator", "quant": "fp32"}) is None
