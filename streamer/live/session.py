"""A live session: one full-duplex PortAudio stream through the processor, with counters,
recordings, the per-block log, latency statistics, the dashboard's fields and the report."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from streamer.backends.base import Backend
from streamer.dashboard import MissTimeline, link_counters_text
from streamer.distribution import Distribution
from streamer.engine import ALGORITHMIC_LATENCY_SAMPLES, SAMPLE_RATE
from streamer.live.devices import check_devices, describe_stream, import_sounddevice
from streamer.live.processor import (
    _MS_DIGITS,
    _OUTCOME_NAMES,
    CLOSE_TIMEOUT_S,
    DEFAULT_QUEUE_BLOCKS,
    DEFAULT_SLACK_BLOCKS,
    ENHANCED,
    LATE,
    POLL_INTERVAL_S,
    PRIMING,
    RECENT,
    STALL_TIMEOUT_S,
    START_TIMEOUT_S,
    TIMELINE_BIN_S,
    TIMELINE_BINS,
    LiveCounters,
    LiveError,
    LiveProcessor,
    dbfs,
    percentiles_ms,
)
from streamer.metrics import deadline_missed
from streamer.pipeline import Denoiser, FrameEvent


@dataclass
class LiveStats:
    """What the poller accumulated from the rings (the report's raw material)."""

    # Fixed memory whatever the run's length (streamer/distribution.py); the dashboard's
    # recent views keep the last RECENT values.
    host_s: Distribution = field(default_factory=Distribution)
    ready_s: Distribution = field(default_factory=Distribution)
    rtt_s: Distribution = field(default_factory=Distribution)
    e2e_s: Distribution = field(default_factory=Distribution)
    device_s: Distribution = field(default_factory=Distribution)
    recent_e2e_s: deque = field(default_factory=lambda: deque(maxlen=RECENT))
    recent_rtt_s: deque = field(default_factory=lambda: deque(maxlen=RECENT))
    recorded_in: list[np.ndarray] = field(default_factory=list)
    recorded_out: list[np.ndarray] = field(default_factory=list)
    timeline: MissTimeline = field(default_factory=lambda: MissTimeline(TIMELINE_BIN_S, TIMELINE_BINS))
    input_dbfs: float | None = None
    output_dbfs: float | None = None


class LiveSession:
    """A full-duplex PortAudio stream through a `Denoiser`, with counters, report and views.

    `run(duration_s)` starts, polls until the duration passes (seconds of audio) or Ctrl-C,
    stops and returns the report dict. `start()`/`poll()`/`stop()` are the same in pieces.
    """

    def __init__(self, backend: Backend, *, model_info: dict[str, Any] | None = None,
                 backend_spec: str = "emulator", quant: str | None = None,
                 input_device: int | str | None = None, output_device: int | str | None = None,
                 rate: int = SAMPLE_RATE, input_channel: int | None = None,
                 atten_lim_db: float | None = None,
                 fallback: str = "dry", slack_blocks: int = DEFAULT_SLACK_BLOCKS,
                 queue_blocks: int = DEFAULT_QUEUE_BLOCKS, latency: str | float = "low",
                 observers: Iterable[Callable[[FrameEvent], None]] = (), dashboard: Any = None,
                 record: bool = False, log_path: str | Path | None = None) -> None:
        self.backend = backend
        self.backend_spec = backend_spec
        self.quant = quant or backend.describe().get("quant", "fp32")
        self.model_info = model_info or {}
        self.input_device, self.output_device = input_device, output_device
        self.latency = latency
        self.atten_lim_db = atten_lim_db
        self.observers = list(observers)
        self.dashboard = dashboard
        frame_observers = list(self.observers)
        if dashboard is not None:
            frame_observers.append(dashboard.on_frame)
        self.denoiser = Denoiser(backend, frame_observers, atten_lim_db=atten_lim_db)
        self.processor = LiveProcessor(self.denoiser, fallback=fallback, slack_blocks=slack_blocks,
                                       queue_blocks=queue_blocks, rate=rate, input_channel=input_channel)
        self.rate, self.block = self.processor.rate, self.processor.block
        self.record = record
        self.counters = LiveCounters()
        self.stats = LiveStats()
        self._log: IO[str] | None = None
        self._log_path = None if log_path is None else Path(log_path)
        self._drained = 0           # callbacks drained by poll()
        self._fates: dict[int, int] = {}   # block -> outcome, until logged
        self._logged = 0            # blocks logged (and timed) so far
        self._stream: Any = None
        self._started_wall: float | None = None
        self._stopped_by: str | None = None
        self.audio_error: str | None = None
        # True when the stream would not stop or close in CLOSE_TIMEOUT_S and was left behind:
        # PortAudio cannot then be shut down either (see `run` in this module).
        self.abandoned = False
        self.stream_info: dict[str, Any] = {}
        self._adc: dict[int, float] = {}   # capture (ADC) time of blocks not yet played

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        sd = import_sounddevice()

        channels = check_devices(self.input_device, self.output_device, self.rate,
                                 self.processor.input_channel)
        if self._log_path is not None:
            self._log = self._log_path.open("w", encoding="utf-8")
        self.processor.stream.reset()
        self.processor.start()
        try:
            self._stream = sd.Stream(samplerate=self.rate, blocksize=self.block, channels=channels,
                                     dtype="float32", device=(self.input_device, self.output_device),
                                     latency=self.latency, callback=self.processor.callback)
            self._stream.start()
        except sd.PortAudioError as exc:
            self.processor.stop()
            raise LiveError(f"cannot open the audio stream: {exc}") from exc
        self._started_wall = time.time()
        self.stream_info = describe_stream(self._stream, self.input_device, self.output_device)
        if self.dashboard is not None:
            self.dashboard.update(backend=self.backend_spec, quant=self.quant,
                                  model=self.model_info.get("path", "?"),
                                  model_description=self.model_info.get("description"),
                                  device=self.stream_info.get("summary"))
            self.dashboard.start()

    def stop(self, reason: str = "stopped") -> None:
        if self._stopped_by is None:
            self._stopped_by = reason
        if self._stream is not None:
            stream, self._stream = self._stream, None
            # A dead audio server makes stop() block for minutes, so it runs aside and is
            # given CLOSE_TIMEOUT_S; after an audio error the stream is aborted, not drained.
            stopper = threading.Thread(target=_close_stream, args=(stream, self.audio_error is None),
                                       name="streamer-live-close", daemon=True)
            stopper.start()
            stopper.join(CLOSE_TIMEOUT_S)
            if stopper.is_alive():
                self.abandoned = True
                if self.audio_error is None:
                    self.audio_error = (f"the audio stream did not stop within {CLOSE_TIMEOUT_S:g} s "
                                        f"(is the audio server still running?)")
        self.processor.stop()
        self.poll(final=True)
        if self.dashboard is not None:
            self.dashboard.stop()
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def audio_seconds(self) -> float:
        return self.processor.frames * self.block / self.rate

    def run(self, duration_s: float | None = None) -> dict[str, Any]:
        """Stream until `duration_s` seconds of audio have passed, Ctrl-C, SIGTERM or an error."""
        self.start()
        reason = "duration"
        restore = _stop_on_sigterm()
        seen, seen_at = 0, time.monotonic()
        try:
            try:
                while duration_s is None or self.audio_seconds < duration_s:
                    time.sleep(POLL_INTERVAL_S)
                    self.poll()
                    now = time.monotonic()
                    if self.processor.callbacks != seen:
                        seen, seen_at = self.processor.callbacks, now
                    if self.processor.error is not None:
                        reason = "backend error"
                        break
                    if self._stream is not None and not self._stream.active:
                        reason = "audio stopped"
                        self.audio_error = ("the audio stream stopped (the audio server quit or the "
                                            "device went away)")
                        break
                    timeout = STALL_TIMEOUT_S if seen else START_TIMEOUT_S
                    if audio_stalled(seen_at, now, timeout):
                        reason = "audio stopped"
                        self.audio_error = (f"no audio for {timeout:g} s (the audio server stalled or quit, "
                                            f"or the device went away)")
                        break
            except KeyboardInterrupt:
                reason = "interrupted"
            if reason in ("duration", "interrupted"):
                self._drain()
        except KeyboardInterrupt:
            pass  # a second Ctrl-C: stop now, what is still in flight is counted lost
        finally:
            restore()
            self.stop(reason)
        return self.report()

    def _drain(self) -> None:
        """Take no more input and play out the blocks still owed (`slack` hops), so a graceful
        stop loses none; gives up after a few hops when the audio stops coming."""
        p = self.processor
        p.stop_requested = True
        deadline = time.monotonic() + (p.slack + 4) * p.block / p.rate + 0.5
        while not p.drained and time.monotonic() < deadline:
            time.sleep(0.002)

    # -- bookkeeping (caller's thread) --------------------------------------------------------

    def poll(self, final: bool = False) -> None:
        """Drain what the callback and the worker published since the last call."""
        p = self.processor
        end = p.callbacks
        if end - self._drained > p._r:
            # Stalled longer than the record ring: those blocks' details (recordings, fates for
            # the log, latencies) are gone; the counters, kept by the callback, are not.
            skipped = end - p._r - self._drained
            self.counters.recording_gaps += skipped
            self._drained = end - p._r
            first_known = self._drained - p.slack
            for s in [s for s in self._fates if s < first_known]:
                del self._fates[s]
            self._logged = max(self._logged, first_known)
        start = self._drained
        fresh_in, fresh_out = [], []
        d = p.slack
        for k in range(start, end):
            r = k % p._r
            adc, dac, _cb, outcome, bits = p.cb_info[r]
            self._adc[k] = adc
            if self.record and (p.stop_at is None or k < p.stop_at + p.slack):
                self.stats.recorded_in.append(p.rec_in[r].copy())
                self.stats.recorded_out.append(p.rec_out[r].copy())
            fresh_in.append(p.rec_in[r])
            fresh_out.append(p.rec_out[r])
            outcome = int(outcome)
            if outcome != PRIMING:
                self._fates[k - d] = outcome
                if outcome != ENHANCED:
                    self.stats.timeline.bump(k * self.block / self.rate)
                adc_src = self._adc.pop(k - d, None)
                if adc_src is not None and adc > 0 and dac > 0:
                    e2e = dac - adc_src + p.latency_s
                    self.stats.e2e_s.add(e2e)
                    self.stats.recent_e2e_s.append(e2e)
                if adc > 0 and dac > 0:
                    self.stats.device_s.add(dac - adc)
        self._drained = end
        self.stats.timeline.advance(end * self.block / self.rate)
        if fresh_in:
            # Levels over the last ~100 ms only: a meter, not an average of the whole run.
            self.stats.input_dbfs = dbfs(np.concatenate(fresh_in[-16:]))
            self.stats.output_dbfs = dbfs(np.concatenate(fresh_out[-16:]))
        self._log_fates(final)
        self._update_counters(final)
        if self.dashboard is not None:
            self.dashboard.update(**self.snapshot())

    def _log_fates(self, final: bool) -> None:
        p = self.processor
        while self._logged in self._fates or (final and self._logged < p.frames):
            s = self._logged
            outcome = self._fates.get(s)
            processed = p.proc_info[s % p._r]
            done = processed[0] == s
            if not done and outcome == LATE and not final and p.error is None:
                break  # late and still queued or being processed: its timing comes later
            self._fates.pop(s, None)
            record: dict[str, Any] = {"frame": s}
            if done:
                _, t0, t1, rtt, _ = processed
                cb_clock = p.cb_info[s % p._r][2] if p.callbacks - s <= p._r else None
                self.stats.host_s.add(t1 - t0)
                if deadline_missed(t1 - t0):
                    self.counters.host_deadline_misses += 1
                record["host_ms"] = round((t1 - t0) * 1e3, _MS_DIGITS)
                if cb_clock is not None:
                    self.stats.ready_s.add(t1 - cb_clock)
                    record["ready_ms"] = round((t1 - cb_clock) * 1e3, _MS_DIGITS)
                if not np.isnan(rtt):
                    self.stats.rtt_s.add(rtt)
                    self.stats.recent_rtt_s.append(rtt)
                    record["rtt_ms"] = round(rtt * 1e3, _MS_DIGITS)
            else:
                record["host_ms"] = None
            if outcome is None:
                # Its output slot never came round: the stream stopped first.
                dropped = p._drop_seq[s % p._n] == s
                record["outcome"] = "dropped" if dropped else "in_flight"
            else:
                record["outcome"] = _OUTCOME_NAMES[outcome]
            record["deadline_miss"] = outcome == LATE
            frames_done = int(processed[4]) if done else 0
            if done and frames_done >= 1:
                # The newest STFT frame this block completed (at 16 kHz block s completes frame
                # s - 1; the first completes none; resampled blocks complete 0 to 2).
                for observer in self.observers:
                    frame_fields = getattr(observer, "frame_log_fields", None)
                    if callable(frame_fields):
                        record.update(frame_fields(frames_done - 1))
            if self._log is not None:
                self._log.write(json.dumps(record) + "\n")
            self._logged = s + 1

    def _update_counters(self, final: bool) -> None:
        p, c = self.processor, self.counters
        c.frames = p.frames
        c.frames_out = p.frames_out
        c.deadline_misses = p.late
        c.lost_queue_full = p.dropped
        c.input_overflows, c.input_underflows, c.output_underflows, c.output_overflows = p.flag_counts
        if final:
            # The last `slack` blocks' output slots never came round; mid-stream they are
            # merely not due yet, and counted nowhere.
            awaiting = range(max(p.callbacks - p.slack, 0), p.frames)
            c.lost_in_flight = sum(1 for s in awaiting if p._drop_seq[s % p._n] != s)

    # -- views --------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The dashboard's fields: counters, levels, the miss timeline, link time, extras."""
        c, s = self.counters, self.stats
        data: dict[str, Any] = {
            "frames": c.frames, "frames_out": c.frames_out, "deadline_misses": c.deadline_misses,
            "lost_frames": c.lost_frames,
            "input_overflows": c.input_overflows, "output_underflows": c.output_underflows,
            "input_dbfs": s.input_dbfs, "output_dbfs": s.output_dbfs,
            "miss_timeline": list(s.timeline.counts), "timeline_bin_s": TIMELINE_BIN_S,
            "e2e_ms": percentiles_ms(s.recent_e2e_s),
            "link_ms": percentiles_ms(s.recent_rtt_s) if s.recent_rtt_s else None,
            "audio_s": self.audio_seconds,
        }
        if self.backend.is_device:
            # Only a device has a link to count; describe() at every poll (20 a second) would
            # also re-read the target file for the emulator, which shows no such row.
            data["link_counters"] = link_counters_text(self.backend.describe())
        data.update(self._observer_fields())
        return data

    def _observer_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for observer in self.observers:
            report_fields = getattr(observer, "report_fields", None)
            if callable(report_fields):
                fields.update(report_fields())
        return fields

    def report(self) -> dict[str, Any]:
        """The live report (JSON-ready); see docs/live.md for every field."""
        from streamer.report import run_header

        c, s, p = self.counters, self.stats, self.processor
        e2e = s.e2e_s.summary_ms(_MS_DIGITS)
        method = ("portaudio-timeinfo: outputBufferDacTime of the callback that plays a block minus "
                  "inputBufferAdcTime of the callback that captured it, plus the signal's delay "
                  "(300-sample algorithmic latency, and resampling away from 16 kHz)") if s.e2e_s else None
        if not s.e2e_s and self.stream_info.get("latency_s"):
            # Some host APIs leave the callback times at zero: fall back on what PortAudio
            # says the stream's buffering is.
            lat_in, lat_out = self.stream_info["latency_s"]
            total = lat_in + lat_out + p.slack * p.block / p.rate + p.latency_s
            e2e = {"p50": round(total * 1e3, _MS_DIGITS), "p99": None, "max": None, "mean": None}
            method = "portaudio-stream-latency (callback times unavailable): input + output latency " \
                     "+ pipeline + algorithmic"
        report: dict[str, Any] = run_header("live", self.model_info, self.backend_spec, self.quant,
                                            self.backend.describe(), self.atten_lim_db)
        report.update({
            "device_rate": p.rate,
            "block_samples": p.block,
            "input_channel": p.input_channel,
            "stream": self.stream_info,
            "fallback": p.fallback,
            "slack_blocks": p.slack,
            "queue_blocks": p._n,
            "worker_nice": p.worker_nice,
            "stopped_by": self._stopped_by,
            "started_at": None if self._started_wall is None else
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._started_wall)),
            "duration_s": round(self.audio_seconds, 6),
            "frames": c.frames,
            "frames_out": c.frames_out,
            "deadline_misses": c.deadline_misses,
            "lost_frames": c.lost_frames,
            "losses": {"input_queue_full": c.lost_queue_full, "in_flight_at_stop": c.lost_in_flight},
            "reconciled": c.reconciled,
            "input_overflows": c.input_overflows,
            "output_underflows": c.output_underflows,
            "input_underflows": c.input_underflows,
            "output_overflows": c.output_overflows,
            "recording_gaps": c.recording_gaps,
            "end_to_end_latency_ms": {
                **e2e, "method": method,
                "algorithmic_ms": ALGORITHMIC_LATENCY_SAMPLES / SAMPLE_RATE * 1e3,
                "resampling_ms": round((p.latency_s - ALGORITHMIC_LATENCY_SAMPLES / SAMPLE_RATE) * 1e3,
                                       _MS_DIGITS),
                "pipeline_ms": round(p.slack * p.block / p.rate * 1e3, _MS_DIGITS),
                "device_round_trip_ms": s.device_s.summary_ms(_MS_DIGITS),
            },
            "resampler_underruns": p.resampler_underruns,
            "host_ms": s.host_s.summary_ms(_MS_DIGITS),
            "host_deadline_misses": c.host_deadline_misses,
            "ready_ms": s.ready_s.summary_ms(_MS_DIGITS),
            "link_rtt_ms": s.rtt_s.summary_ms(_MS_DIGITS) if s.rtt_s else None,
            "error": self.audio_error if self.audio_error is not None else
            None if p.error is None else f"{type(p.error).__name__}: {p.error}",
        })
        report.update(self._observer_fields())
        return report

    def recordings(self) -> tuple[np.ndarray, np.ndarray]:
        """(input as captured, output as played), float32 at the device rate, block-aligned."""
        def join(blocks: list[np.ndarray]) -> np.ndarray:
            return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)

        return join(self.stats.recorded_in), join(self.stats.recorded_out)


def audio_stalled(last_callback_at: float, now: float, timeout_s: float) -> bool:
    """True when no callback has come for more than `timeout_s` (at exactly it: not yet)."""
    return now - last_callback_at > timeout_s


def _close_stream(stream: Any, drain: bool) -> None:
    try:
        if drain:
            stream.stop()
        else:
            stream.abort()
    finally:
        stream.close()


def _stop_on_sigterm() -> Callable[[], None]:
    """Treat SIGTERM like Ctrl-C (report and recordings still written); returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)
