"""The terminal dashboard: a rich live view on a terminal, plain lines every second otherwise.

`Dashboard` is a frame observer (`on_frame(event)`, or call it) plus a bag of fields a feed
fills with `update(**fields)` -- counters, levels, the miss timeline, operating points,
progress, quality. One view, several feeds: `streamer live` (`LiveSession.snapshot`) and
`streamer replay` / `eval` (`streamer.feeds.StreamFeed`). It renders from its own thread
(rich's refresh thread, or a plain-line timer), never from the thread that produces the
frames, so a slow terminal cannot make the audio late. Rows whose data the feed never gave
are left out rather than shown empty: the per-voltage rows appear only when a feed carries
`operating_points`, progress only for a recording, levels only where audio flows.
"""

from __future__ import annotations

import collections
import sys
import threading
from collections.abc import Sequence
from typing import IO, Any

import numpy as np

from streamer.engine import DEADLINE_S, HOP_SAMPLES, SAMPLE_RATE
from streamer.metrics import deadline_missed, timing_stats
from streamer.pipeline import FrameEvent

SPARK = "▁▂▃▄▅▆▇█"
HOST_WINDOW = 2000  # frames the host percentiles cover (12.5 s of audio)


def sparkline(counts: Sequence[int], capacity: int) -> str:
    """One character per bin: '·' for no miss, else a bar scaled to `capacity` (all missed).

    A single miss always shows (the lowest bar), however large the bin.
    """
    chars = []
    for count in counts:
        if count <= 0:
            chars.append("·")
        else:
            level = max(1, min(len(SPARK), round(count / max(capacity, 1) * len(SPARK))))
            chars.append(SPARK[level - 1])
    return "".join(chars)


class MissTimeline:
    """Deadline misses per `bin_s` of audio over the last `bins` bins: the dashboard's sparkline.

    `bump(t)` counts a miss at audio time t (seconds); `advance(t)` moves the newest bin to t,
    shifting older bins out. Misses older than the window are dropped.
    """

    def __init__(self, bin_s: float = 0.1, bins: int = 50) -> None:
        self.bin_s, self.bins = bin_s, bins
        self.counts = [0] * bins
        self._head = 0          # index of the newest bin

    def advance(self, t_s: float) -> None:
        index = int(t_s / self.bin_s)
        shift = index - self._head
        if shift <= 0:
            return
        self.counts = (self.counts + [0] * min(shift, self.bins))[-self.bins:]
        self._head = index

    def bump(self, t_s: float) -> None:
        self.advance(t_s)
        offset = self._head - int(t_s / self.bin_s)
        if offset < self.bins:
            self.counts[-1 - offset] += 1


def _ms(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _db(value: float | None) -> str:
    return "silence" if value is None else f"{value:6.1f} dBFS"


def _meter(value: float | None, width: int = 24, floor: float = -60.0) -> str:
    if value is None:
        return " " * width
    filled = int(round(width * (min(max(value, floor), 0.0) - floor) / -floor))
    return "█" * filled + "░" * (width - filled)


def link_counters_text(described: dict[str, Any]) -> str | None:
    """The device-link row from a backend's describe(): frames sent, answered and failed, and
    the link's recoveries; None for a backend without a link."""
    if "frames_sent" not in described:
        return None
    failed = described.get("failed_by_cause") or {}
    text = (f"sent {described['frames_sent']:,}, answered {described['frames_answered']:,}, "
            f"failed {sum(failed.values()):,}")
    for key, label in (("late_replies", "late"), ("reconnects", "reconnects"),
                       ("model_reloads", "reloads")):
        if described.get(key):
            text += f", {label} {described[key]}"
    return text


class Dashboard:
    """Live view of a stream. Thread-safe: `on_frame` and `update` may come from any thread."""

    def __init__(self, title: str = "streamer", *, stream: IO[str] | None = None,
                 interactive: bool | None = None, refresh_per_second: float = 4.0,
                 plain_interval_s: float = 1.0) -> None:
        self.title = title
        self.stream = stream if stream is not None else sys.stdout
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.refresh_per_second = refresh_per_second
        self.plain_interval_s = plain_interval_s
        self._lock = threading.Lock()
        self._host: collections.deque[float] = collections.deque(maxlen=HOST_WINDOW)
        self._events = 0
        self._host_misses = 0
        self._fields: dict[str, Any] = {}
        self._live: Any = None
        self._console: Any = None
        self._timer: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- inputs -------------------------------------------------------------------------------

    def on_frame(self, event: FrameEvent) -> None:
        """Frame observer: keeps the host time (cheap: runs on the processing thread)."""
        with self._lock:
            self._host.append(event.host_s)
            self._events += 1
            if deadline_missed(event.host_s):
                self._host_misses += 1

    __call__ = on_frame

    def add_host_times(self, seconds: Sequence[float] | np.ndarray) -> None:
        """Host times of frames processed elsewhere (eval's worker processes), in one go."""
        values = np.asarray(seconds, dtype=np.float64)
        with self._lock:
            self._host.extend(values[-HOST_WINDOW:].tolist())
            self._events += int(values.size)
            self._host_misses += int(np.count_nonzero(deadline_missed(values)))

    def update(self, **fields: Any) -> None:
        """Set display fields: frames, deadline_misses, lost_frames, input_overflows,
        output_underflows, input_dbfs, output_dbfs, miss_timeline, timeline_bin_s, e2e_ms,
        link_ms, backend, quant, model, device, operating_points, ... (unknown keys are kept)."""
        with self._lock:
            self._fields.update(fields)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        if self.interactive:
            from rich.console import Console
            from rich.live import Live

            self._console = Console(file=self.stream, force_terminal=True)
            # transient: at stop the live region is erased and the final state printed once,
            # plainly; rich's own last refresh can leave the region's first line overwritten.
            self._live = Live(console=self._console, get_renderable=self.render,
                              refresh_per_second=self.refresh_per_second, transient=True,
                              redirect_stdout=False, redirect_stderr=False)
            self._live.start()
        else:
            self._stopping.clear()
            self._timer = threading.Thread(target=self._plain_loop, name="streamer-dashboard",
                                           daemon=True)
            self._timer.start()

    def stop(self) -> None:
        """Stop refreshing; the last state stays on screen (a final line when not a terminal)."""
        if self._live is not None:
            self._live.stop()
            self._live = None
            self._console.print(self.render())
        if self._timer is not None:
            self._stopping.set()
            self._timer.join(2.0)
            self._timer = None
            self._print_line()

    def __enter__(self) -> Dashboard:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _plain_loop(self) -> None:
        while not self._stopping.wait(self.plain_interval_s):
            self._print_line()

    def _print_line(self) -> None:
        try:
            print(self.plain_line(), file=self.stream, flush=True)
        except (OSError, ValueError):
            pass  # a closed pipe must not take the stream down with it

    # -- views --------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """A consistent copy of everything shown, with host percentiles computed."""
        with self._lock:
            fields = dict(self._fields)
            host = list(self._host)
            events, host_misses = self._events, self._host_misses
        fields["host_ms"] = timing_stats(host).host_ms() if host else None
        fields.setdefault("frames", events)
        fields["host_deadline_misses"] = host_misses
        return fields

    def plain_line(self) -> str:
        s = self.state()
        parts = []
        if s.get("progress"):
            parts.append(progress_text(s["progress"]))
        if s.get("files"):
            parts.append(f"files {s['files']}")
        if s.get("file"):
            parts.append(str(s["file"]))
        parts.append(f"frames {s['frames']}")
        if "deadline_misses" in s:
            rate = s["deadline_misses"] / s["frames"] * 100 if s["frames"] else 0.0
            parts.append(f"misses {s['deadline_misses']} ({rate:.2f}%)")
        else:
            parts.append(f"host misses {s['host_deadline_misses']}")
        if "lost_frames" in s:
            parts.append(f"lost {s['lost_frames']}")
        if "input_overflows" in s:
            parts.append(f"xruns in/out {s['input_overflows']}/{s.get('output_underflows', 0)}")
        if s["host_ms"]:
            h = s["host_ms"]
            parts.append(f"host p50 {_ms(h['p50'])} p99 {_ms(h['p99'])} max {_ms(h['max'])} ms")
        if s.get("link_counters"):
            parts.append(f"link {s['link_counters']}")
        if s.get("link_ms"):
            parts.append(f"link p50 {_ms(s['link_ms']['p50'])} ms")
        if s.get("e2e_ms") and s["e2e_ms"].get("p50") is not None:
            parts.append(f"e2e {_ms(s['e2e_ms']['p50'], 1)} ms")
        if "input_dbfs" in s:
            parts.append(f"in {_db(s['input_dbfs']).strip()} out {_db(s.get('output_dbfs')).strip()}")
        if s.get("operating_points"):
            parts.append("V " + " ".join(f"{row['voltage']:g}:{row.get('deadline_misses', '?')} misses"
                                         for row in s["operating_points"]))
        if s.get("quality"):
            parts.append(quality_text(s["quality"]))
        return "  ".join(parts)

    def render(self) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        s = self.state()
        frames = s["frames"]
        head = Table.grid(padding=(0, 2))
        # Labels never shrink: a long model path is what gets cut, with an ellipsis.
        head.add_column(style="bold", no_wrap=True, min_width=len("host deadline misses"))
        head.add_column(no_wrap=True, overflow="ellipsis")
        if "backend" in s:
            head.add_row("backend", f"{s['backend']}, {s.get('quant') or '?'}")
        if "model" in s:
            desc = s.get("model_description")
            head.add_row("model", f"{s['model']}" + (f" ({desc})" if desc else ""))
        if s.get("device"):
            head.add_row("audio", str(s["device"]))
        if s.get("files"):
            head.add_row("files", str(s["files"]))
        if s.get("file"):
            head.add_row("file", str(s["file"]))
        if s.get("progress"):
            head.add_row("progress", progress_text(s["progress"], bar=True))
        if s.get("quality"):
            head.add_row("quality", quality_text(s["quality"]))
        if s.get("link_counters"):
            head.add_row("device link", str(s["link_counters"]))
        seconds = s.get("audio_s", frames * HOP_SAMPLES / SAMPLE_RATE)
        head.add_row("frames", f"{frames:,} ({seconds:.1f} s)")
        if "deadline_misses" in s:
            misses = s["deadline_misses"]
            rate = misses / frames * 100 if frames else 0.0
            style = "bold red" if misses else "green"
            head.add_row("deadline misses", Text(f"{misses} ({rate:.2f}%)", style=style))
        else:
            head.add_row("host deadline misses", str(s["host_deadline_misses"]))
        if "lost_frames" in s:
            head.add_row("lost frames", str(s["lost_frames"]))
        if "input_overflows" in s:
            head.add_row("portaudio xruns", f"input overflows {s['input_overflows']}, "
                         f"output underflows {s.get('output_underflows', 0)}")
        timeline = s.get("miss_timeline")
        if timeline:
            bin_s = s.get("timeline_bin_s", 0.1)
            capacity = round(bin_s * SAMPLE_RATE / HOP_SAMPLES)
            head.add_row(f"misses / {bin_s * 1e3:g} ms",
                         Text(sparkline(timeline, capacity), style="red" if any(timeline) else "dim")
                         + Text(f"  last {len(timeline) * bin_s:g} s", style="dim"))

        timing = Table(title="time per frame (ms)", title_justify="left", box=None, padding=(0, 2))
        timing.add_column("", style="bold", no_wrap=True)
        for name in ("p50", "p99", "max"):
            timing.add_column(name, justify="right", no_wrap=True)
        if s["host_ms"]:
            timing.add_row("host", *(_ms(s["host_ms"][k]) for k in ("p50", "p99", "max")))
        if s.get("link_ms"):
            timing.add_row("link rtt", *(_ms(s["link_ms"].get(k)) for k in ("p50", "p99", "max")))
        e2e = s.get("e2e_ms")
        if e2e and e2e.get("p50") is not None:
            timing.add_row("end to end", *(_ms(e2e.get(k)) for k in ("p50", "p99", "max")))
        timing.add_row("deadline", f"{DEADLINE_S * 1e3:g}", "", "", style="dim")

        parts: list[Any] = [Text(self.title, style="bold"), head, timing]
        if "input_dbfs" in s or "output_dbfs" in s:
            levels = Table.grid(padding=(0, 2))
            levels.add_column(style="bold")
            levels.add_column()
            levels.add_column(justify="right")
            levels.add_row("input", _meter(s.get("input_dbfs")), _db(s.get("input_dbfs")))
            levels.add_row("output", _meter(s.get("output_dbfs")), _db(s.get("output_dbfs")))
            parts.append(levels)
        points = s.get("operating_points")
        if points:
            parts.append(operating_points_table(points))
        return Group(*parts)


def progress_text(progress: dict[str, Any], bar: bool = False, width: int = 24) -> str:
    """'42% ███░░ 1,234 of 2,900 frames, 0:12 left' from {done, total, elapsed_s}."""
    done, total = progress.get("done", 0), progress.get("total") or 0
    fraction = min(1.0, done / total) if total else 0.0
    elapsed = progress.get("elapsed_s") or 0.0
    left = elapsed / fraction - elapsed if fraction > 0 else None
    what = progress.get("unit", "frames")
    text = f"{fraction * 100:3.0f}%"
    if bar:
        filled = int(round(width * fraction))
        text += " " + "█" * filled + "░" * (width - filled)
    text += f" {done:,} of {total:,} {what}"
    if left is not None and fraction < 1:
        text += f", {int(left // 60)}:{int(left % 60):02d} left"
    return text


def quality_text(quality: dict[str, Any]) -> str:
    """'PESQ-WB 1.52  STOI 0.871' (a running mean over N files when `files` is given)."""
    text = f"PESQ-WB {_ms(quality.get('pesq_wb'), 3)}  STOI {_ms(quality.get('stoi'), 3)}"
    if quality.get("files"):
        text += f"  (mean of {quality['files']} file{'s' if quality['files'] != 1 else ''})"
    return text


# The per-voltage columns the operators read, with headers short enough for a terminal.
_POINT_COLUMNS = (("voltage", "V"), ("freq_mhz", "MHz"), ("latency_ms_p99", "ms p99"),
                  ("slack_ms", "slack ms"), ("deadline_misses", "misses"), ("meets_deadline", "meets"),
                  ("power_mw", "mW avg"), ("energy_uj_per_frame", "uJ/frame"),
                  ("weights_memory", "weights"))


def operating_points_table(points: Sequence[dict[str, Any]]) -> Any:
    """Per-voltage rows: latency, slack, misses, power and energy per frame, weight placement."""
    from rich.table import Table

    table = Table(title="operating points", title_justify="left", box=None, padding=(0, 2),
                  min_width=24)
    columns = [(key, header) for key, header in _POINT_COLUMNS if any(key in row for row in points)]
    for _, header in columns:
        table.add_column(header, justify="right", no_wrap=True)
    for row in points:
        table.add_row(*("" if row.get(k) is None else
                        (f"{row[k]:.3g}" if isinstance(row[k], float) else str(row[k]))
                        for k, _ in columns))
    return table
