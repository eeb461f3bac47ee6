"""`streamer live`: microphone -> network -> speaker in real time, on PortAudio (sounddevice).

Three threads share preallocated rings and never wait on each other:

* the audio callback (PortAudio's thread) copies each 100-sample input block into the input
  ring, takes the finished block it owes the speaker from the output ring, and substitutes
  the fallback (`dry` or `silence`) when that block is not there yet. It does no allocation
  of consequence, no I/O and takes no lock: a `SimpleQueue.put_nowait` wakes the worker.
* the worker runs `Denoiser.push` on every block in order, so the STFT and the recurrent
  state stay continuous even when a block comes out too late to be played.
* the caller's thread (`LiveSession.poll`) drains the rings into counters, recordings, the
  per-frame log, the latency statistics and the dashboard.

Pipeline: the block captured in callback k is played in callback k + D (D = `slack_blocks`,
default 1), so the worker has D hops (6.25 ms each) from the moment a block arrives until it
is due -- with D = 1 exactly the real-time deadline the rest of the project measures against.

Every input block has exactly one fate, so the counters reconcile by construction:
frames = frames_out (enhanced, played in time) + deadline_misses (processed, too late:
fallback played) + lost_frames (never processed: input queue full, or still in flight when
the stream stopped). PortAudio's own overflow/underflow flags are counted on top: they
mean samples lost outside this process's rings, which cannot be attributed to blocks.
"""

from __future__ import annotations

import argparse
import array
import json
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np

from streamer.backends.base import Backend
from streamer.engine import ALGORITHMIC_LATENCY_SAMPLES, DEADLINE_S, HOP_SAMPLES, SAMPLE_RATE
from streamer.pipeline import Denoiser, FrameEvent

FALLBACKS = ("dry", "silence")
DEFAULT_SLACK_BLOCKS = 1
DEFAULT_QUEUE_BLOCKS = 32
# Blocks the callback keeps for recordings, the dry fallback and the poller: 4096 blocks are
# 25.6 s, so a poller that stalls for seconds (a busy 2-core host) still loses nothing.
DEFAULT_RECORD_BLOCKS = 4096
POLL_INTERVAL_S = 0.05
# Milliseconds of the miss timeline's bins (the dashboard's sparkline) and how many it keeps.
TIMELINE_BIN_S = 0.1
TIMELINE_BINS = 50

# Fates of an input block, decided by the callback when the block's output slot comes round.
PRIMING, ENHANCED, LATE, DROPPED = 0, 1, 2, 3
_OUTCOME_NAMES = {ENHANCED: "enhanced", LATE: "late", DROPPED: "dropped"}

# PortAudio callback status flags, as the bits the callback stores per block.
_FLAG_INPUT_OVERFLOW, _FLAG_INPUT_UNDERFLOW = 1, 2
_FLAG_OUTPUT_UNDERFLOW, _FLAG_OUTPUT_OVERFLOW = 4, 8

_MS_DIGITS = 4


class LiveError(RuntimeError):
    """The live stream cannot start or go on (device, sample rate, paths); one-line message."""


class ReportingObserver(Protocol):
    """A frame observer that also contributes fields to the final report.

    Hook for later measurements: e.g. per-voltage `operating_points` rows from a target cost
    model. `report_fields()` is called at each dashboard refresh and once at the end; its keys
    are merged into the report at top level (and the dashboard shows `operating_points`).
    """

    def __call__(self, event: FrameEvent) -> None: ...

    def report_fields(self) -> dict[str, Any]: ...


@dataclass
class Counters:
    """What happened to the stream so far (see the module docstring for the identity)."""

    frames: int = 0
    frames_out: int = 0
    deadline_misses: int = 0
    lost_queue_full: int = 0
    lost_in_flight: int = 0
    input_overflows: int = 0
    input_underflows: int = 0
    output_underflows: int = 0
    output_overflows: int = 0
    host_deadline_misses: int = 0
    recording_gaps: int = 0

    @property
    def lost_frames(self) -> int:
        return self.lost_queue_full + self.lost_in_flight

    @property
    def reconciled(self) -> bool:
        return self.frames == self.frames_out + self.deadline_misses + self.lost_frames


def percentiles_ms(seconds: Sequence[float] | np.ndarray) -> dict[str, float | None]:
    """p50, p99, max and mean in milliseconds (None for an empty series)."""
    values = np.asarray(seconds, dtype=np.float64) * 1e3
    if values.size == 0:
        return {"p50": None, "p99": None, "max": None, "mean": None}
    p50, p99 = np.percentile(values, [50, 99])
    return {"p50": round(float(p50), _MS_DIGITS), "p99": round(float(p99), _MS_DIGITS),
            "max": round(float(values.max()), _MS_DIGITS), "mean": round(float(values.mean()), _MS_DIGITS)}


def dbfs(samples: np.ndarray) -> float | None:
    """RMS level relative to a full-scale (1.0) constant, in dB; None for digital silence."""
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0
    return None if rms <= 1e-10 else round(20.0 * np.log10(rms), 2)


class LiveProcessor:
    """The callback, the worker and the rings; no PortAudio in here, so tests can drive it.

    `callback(indata, outdata, frames, time_info, status)` has sounddevice's signature;
    `time_info` needs `inputBufferAdcTime`, `outputBufferDacTime` and `currentTime`, and
    `status` the `input_overflow`/`input_underflow`/`output_underflow`/`output_overflow` flags.
    """

    def __init__(self, denoiser: Denoiser, *, fallback: str = "dry",
                 slack_blocks: int = DEFAULT_SLACK_BLOCKS, queue_blocks: int = DEFAULT_QUEUE_BLOCKS,
                 record_blocks: int = DEFAULT_RECORD_BLOCKS,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        if fallback not in FALLBACKS:
            raise LiveError(f"unknown fallback {fallback!r}; expected one of {', '.join(FALLBACKS)}")
        if slack_blocks < 1:
            raise LiveError("--slack-blocks must be at least 1: the callback cannot wait for the "
                            "block it has just handed over")
        if queue_blocks <= slack_blocks + 1:
            raise LiveError(f"--queue-blocks must exceed --slack-blocks + 1 ({slack_blocks + 1})")
        self.denoiser = denoiser
        self.backend = denoiser.backend
        self.fallback = fallback
        self.slack = slack_blocks
        # The dry substitute is the input delayed exactly as the enhanced block it replaces:
        # the algorithmic latency (3 hops) plus the pipeline's slack.
        self.dry_delay_blocks = ALGORITHMIC_LATENCY_SAMPLES // HOP_SAMPLES + slack_blocks
        if record_blocks <= self.dry_delay_blocks + 1:
            raise LiveError("record_blocks too small for the dry fallback's delay")
        self.clock = clock
        n, r = queue_blocks, record_blocks
        self._n, self._r = n, r
        self._in = np.zeros((n, HOP_SAMPLES), np.float32)
        self._in_seq = np.full(n, -1, np.int64)
        self._out = np.zeros((n, HOP_SAMPLES), np.float32)
        self._out_seq = np.full(n, -1, np.int64)
        self._drop_seq = np.full(n, -1, np.int64)
        self._zeros = np.zeros(HOP_SAMPLES, np.float32)
        # Per callback k (slot k % r): the input block, the block played, and
        # [adc time, dac time, callback clock, outcome, status bits].
        self.rec_in = np.zeros((r, HOP_SAMPLES), np.float32)
        self.rec_out = np.zeros((r, HOP_SAMPLES), np.float32)
        self.cb_info = np.zeros((r, 5), np.float64)
        # Per processed block s (slot s % r): [seq, start clock, end clock, link rtt or nan].
        self.proc_info = np.full((r, 4), np.nan, np.float64)
        self.callbacks = 0          # published last in the callback: slots below it are complete
        self.taken = 0              # the worker's next block
        self.processed = 0
        self.dropped = 0
        self.frames_out = 0
        self.late = 0
        self.flag_counts = [0, 0, 0, 0]
        self.wrong_block_sizes = 0
        self.error: BaseException | None = None
        self._wake: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None

    # -- audio thread -------------------------------------------------------------------------

    def callback(self, indata: np.ndarray, outdata: np.ndarray, frames: int, time_info: Any,
                 status: Any) -> None:
        now = self.clock()
        if frames != HOP_SAMPLES:
            # PortAudio honours a fixed blocksize; anything else would break the block clock.
            self.wrong_block_sizes += 1
            outdata.fill(0)
            return
        bits = 0
        if status:
            if status.input_overflow:
                bits |= _FLAG_INPUT_OVERFLOW
                self.flag_counts[0] += 1
            if status.input_underflow:
                bits |= _FLAG_INPUT_UNDERFLOW
                self.flag_counts[1] += 1
            if status.output_underflow:
                bits |= _FLAG_OUTPUT_UNDERFLOW
                self.flag_counts[2] += 1
            if status.output_overflow:
                bits |= _FLAG_OUTPUT_OVERFLOW
                self.flag_counts[3] += 1
        k = self.callbacks
        block = indata[:, 0]
        r = k % self._r
        self.rec_in[r] = block
        slot = k % self._n
        if k - self.taken >= self._n:
            # The worker is a whole ring behind: this block is never processed.
            self._drop_seq[slot] = k
            self.dropped += 1
        else:
            self._in[slot] = block
            self._in_seq[slot] = k
        want = k - self.slack
        if want < 0:
            out, outcome = self._zeros, PRIMING
        else:
            want_slot = want % self._n
            if self._out_seq[want_slot] == want:
                out, outcome = self._out[want_slot], ENHANCED
                self.frames_out += 1
            else:
                dropped = self._drop_seq[want_slot] == want
                outcome = DROPPED if dropped else LATE
                if not dropped:
                    self.late += 1
                d = k - self.dry_delay_blocks
                out = self.rec_in[d % self._r] if self.fallback == "dry" and d >= 0 else self._zeros
        outdata[:, 0] = out
        if outdata.shape[1] > 1:
            outdata[:, 1:] = outdata[:, :1]
        self.rec_out[r] = out
        info = self.cb_info[r]
        info[0] = time_info.inputBufferAdcTime
        info[1] = time_info.outputBufferDacTime
        info[2] = now
        info[3] = outcome
        info[4] = bits
        self.callbacks = k + 1
        self._wake.put_nowait(k)

    # -- worker thread ------------------------------------------------------------------------

    def start(self) -> None:
        self._worker = threading.Thread(target=self._work, name="streamer-live-worker", daemon=True)
        self._worker.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker after the block it is on (call after the audio stream stopped)."""
        self._stop.set()
        self._wake.put_nowait(-1)
        if self._worker is not None:
            self._worker.join(timeout)

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                self._wake.get(timeout=0.1)
            except queue.Empty:
                continue
            while self.taken < self.callbacks and not self._stop.is_set():
                s = self.taken
                slot = s % self._n
                if self._in_seq[slot] != s:
                    self.taken = s + 1  # dropped by the callback: nothing to process
                    continue
                block = self._in[slot].copy()
                self.taken = s + 1
                start = self.clock()
                try:
                    out = self.denoiser.push(block)
                except BaseException as exc:  # noqa: BLE001 - any backend failure ends the stream
                    self.error = exc
                    self._stop.set()
                    return
                end = self.clock()
                rtt = link_round_trip(self.backend)
                info = self.proc_info[s % self._r]
                info[1], info[2], info[3] = start, end, np.nan if rtt is None else rtt
                info[0] = s
                # Timing first, then the block, then its sequence number: once the callback
                # sees the number, everything about the block is in place.
                out_slot = s % self._n
                self._out[out_slot] = out
                self._out_seq[out_slot] = s
                self.processed = s + 1


def link_round_trip(backend: Backend) -> float | None:
    """The link round trip (s) of the step just taken, when the backend is a device link.

    Either a `last_rtt_s` attribute, or the newest entry of a `round_trip_s` list (what
    `LinkBackend` keeps); None for backends without a link (the emulator).
    """
    rtt = getattr(backend, "last_rtt_s", None)
    if rtt is not None:
        return float(rtt)
    trips = getattr(backend, "round_trip_s", None)
    if trips and not getattr(backend, "last_failed", False):
        return float(trips[-1])
    return None


@dataclass
class LiveStats:
    """What the poller accumulated from the rings (the report's raw material)."""

    # array('d'): 8 bytes a value, so an hour-long session keeps its full distributions in
    # a few MB where lists of floats would take tens.
    host_s: array.array = field(default_factory=lambda: array.array("d"))
    ready_s: array.array = field(default_factory=lambda: array.array("d"))
    rtt_s: array.array = field(default_factory=lambda: array.array("d"))
    e2e_s: array.array = field(default_factory=lambda: array.array("d"))
    device_s: array.array = field(default_factory=lambda: array.array("d"))
    recorded_in: list[np.ndarray] = field(default_factory=list)
    recorded_out: list[np.ndarray] = field(default_factory=list)
    timeline: list[int] = field(default_factory=lambda: [0] * TIMELINE_BINS)
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
        self.observers = list(observers)
        self.dashboard = dashboard
        frame_observers = list(self.observers)
        if dashboard is not None:
            frame_observers.append(dashboard.on_frame)
        self.denoiser = Denoiser(backend, frame_observers)
        self.processor = LiveProcessor(self.denoiser, fallback=fallback, slack_blocks=slack_blocks,
                                       queue_blocks=queue_blocks)
        self.record = record
        self.counters = Counters()
        self.stats = LiveStats()
        self._log: IO[str] | None = None
        self._log_path = None if log_path is None else Path(log_path)
        self._drained = 0           # callbacks drained by poll()
        self._fates: dict[int, int] = {}   # block -> outcome, until logged
        self._logged = 0            # blocks logged (and timed) so far
        self._stream: Any = None
        self._started_wall: float | None = None
        self._stopped_by: str | None = None
        self.stream_info: dict[str, Any] = {}
        self._adc: dict[int, float] = {}   # capture (ADC) time of blocks not yet played
        self._timeline_head = 0             # index of the miss timeline's newest bin

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        import sounddevice as sd

        check_devices(self.input_device, self.output_device)
        if self._log_path is not None:
            self._log = self._log_path.open("w", encoding="utf-8")
        self.backend.reset()
        self.denoiser.engine.reset()
        self.processor.start()
        try:
            self._stream = sd.Stream(samplerate=SAMPLE_RATE, blocksize=HOP_SAMPLES, channels=1,
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
            try:
                self._stream.stop()
            finally:
                self._stream.close()
                self._stream = None
        self.processor.stop()
        self.poll(final=True)
        if self.dashboard is not None:
            self.dashboard.stop()
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def audio_seconds(self) -> float:
        return self.processor.callbacks * HOP_SAMPLES / SAMPLE_RATE

    def run(self, duration_s: float | None = None) -> dict[str, Any]:
        """Stream until `duration_s` seconds of audio have passed, Ctrl-C, SIGTERM or an error."""
        self.start()
        reason = "duration"
        restore = _stop_on_sigterm()
        try:
            while duration_s is None or self.audio_seconds < duration_s:
                time.sleep(POLL_INTERVAL_S)
                self.poll()
                if self.processor.error is not None:
                    reason = "backend error"
                    break
                if self._stream is not None and not self._stream.active:
                    reason = "stream ended"
                    break
        except KeyboardInterrupt:
            reason = "interrupted"
        finally:
            restore()
            self.stop(reason)
        return self.report()

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
            if self.record:
                self.stats.recorded_in.append(p.rec_in[r].copy())
                self.stats.recorded_out.append(p.rec_out[r].copy())
            fresh_in.append(p.rec_in[r])
            fresh_out.append(p.rec_out[r])
            outcome = int(outcome)
            if outcome != PRIMING:
                self._fates[k - d] = outcome
                if outcome != ENHANCED:
                    bin_index = int((k * HOP_SAMPLES / SAMPLE_RATE) / TIMELINE_BIN_S)
                    self._bump_timeline(bin_index)
                adc_src = self._adc.pop(k - d, None)
                if adc_src is not None and adc > 0 and dac > 0:
                    self.stats.e2e_s.append(dac - adc_src + ALGORITHMIC_LATENCY_SAMPLES / SAMPLE_RATE)
                if adc > 0 and dac > 0:
                    self.stats.device_s.append(dac - adc)
        self._drained = end
        self._advance_timeline(int((end * HOP_SAMPLES / SAMPLE_RATE) / TIMELINE_BIN_S))
        if fresh_in:
            # Levels over the last ~100 ms only: a meter, not an average of the whole run.
            self.stats.input_dbfs = dbfs(np.concatenate(fresh_in[-16:]))
            self.stats.output_dbfs = dbfs(np.concatenate(fresh_out[-16:]))
        self._log_fates(final)
        self._update_counters(final)
        if self.dashboard is not None:
            self.dashboard.update(**self.snapshot())

    def _advance_timeline(self, bin_index: int) -> None:
        shift = bin_index - self._timeline_head
        if shift <= 0:
            return
        tl = self.stats.timeline
        self.stats.timeline = (tl + [0] * min(shift, TIMELINE_BINS))[-TIMELINE_BINS:]
        self._timeline_head = bin_index

    def _bump_timeline(self, bin_index: int) -> None:
        self._advance_timeline(bin_index)
        offset = self._timeline_head - bin_index
        if offset < TIMELINE_BINS:
            self.stats.timeline[-1 - offset] += 1

    def _log_fates(self, final: bool) -> None:
        p = self.processor
        while self._logged in self._fates or (final and self._logged < p.callbacks):
            s = self._logged
            outcome = self._fates.get(s)
            processed = p.proc_info[s % p._r]
            done = processed[0] == s
            if not done and outcome == LATE and not final and p.error is None:
                break  # late and still queued or being processed: its timing comes later
            self._fates.pop(s, None)
            record: dict[str, Any] = {"frame": s}
            if done:
                _, t0, t1, rtt = processed
                cb_clock = p.cb_info[s % p._r][2] if p.callbacks - s <= p._r else None
                self.stats.host_s.append(t1 - t0)
                if t1 - t0 > DEADLINE_S:
                    self.counters.host_deadline_misses += 1
                record["host_ms"] = round((t1 - t0) * 1e3, _MS_DIGITS)
                if cb_clock is not None:
                    self.stats.ready_s.append(t1 - cb_clock)
                    record["ready_ms"] = round((t1 - cb_clock) * 1e3, _MS_DIGITS)
                if not np.isnan(rtt):
                    self.stats.rtt_s.append(rtt)
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
            if done and s >= 1:
                # Block s completes STFT frame s - 1 (the first block completes none).
                for observer in self.observers:
                    frame_fields = getattr(observer, "frame_log_fields", None)
                    if callable(frame_fields):
                        record.update(frame_fields(s - 1))
            if self._log is not None:
                self._log.write(json.dumps(record) + "\n")
            self._logged = s + 1

    def _update_counters(self, final: bool) -> None:
        p, c = self.processor, self.counters
        c.frames = p.callbacks
        c.frames_out = p.frames_out
        c.deadline_misses = p.late
        c.lost_queue_full = p.dropped
        c.input_overflows, c.input_underflows, c.output_underflows, c.output_overflows = p.flag_counts
        if final:
            # The last `slack` blocks' output slots never came round; mid-stream they are
            # merely not due yet, and counted nowhere.
            awaiting = range(max(p.callbacks - p.slack, 0), p.callbacks)
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
            "miss_timeline": list(s.timeline), "timeline_bin_s": TIMELINE_BIN_S,
            "e2e_ms": percentiles_ms(s.e2e_s[-2000:]),
            "link_ms": percentiles_ms(s.rtt_s[-2000:]) if s.rtt_s else None,
            "audio_s": self.audio_seconds,
        }
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
        import streamer

        c, s, p = self.counters, self.stats, self.processor
        e2e = percentiles_ms(s.e2e_s)
        method = ("portaudio-timeinfo: outputBufferDacTime of the callback that plays a block minus "
                  "inputBufferAdcTime of the callback that captured it, plus the 300-sample "
                  "algorithmic latency") if s.e2e_s else None
        if not s.e2e_s and self.stream_info.get("latency_s"):
            # Some host APIs leave the callback times at zero: fall back on what PortAudio
            # says the stream's buffering is.
            lat_in, lat_out = self.stream_info["latency_s"]
            total = lat_in + lat_out + (p.slack * HOP_SAMPLES + ALGORITHMIC_LATENCY_SAMPLES) / SAMPLE_RATE
            e2e = {"p50": round(total * 1e3, _MS_DIGITS), "p99": None, "max": None, "mean": None}
            method = "portaudio-stream-latency (callback times unavailable): input + output latency " \
                     "+ pipeline + algorithmic"
        report: dict[str, Any] = {
            "streamer_version": streamer.__version__,
            "command": "live",
            "model": self.model_info,
            "backend": self.backend_spec,
            "quant": self.quant,
            "backend_info": self.backend.describe(),
            "sample_rate": SAMPLE_RATE,
            "block_samples": HOP_SAMPLES,
            "deadline_ms": DEADLINE_S * 1e3,
            "stream": self.stream_info,
            "fallback": p.fallback,
            "slack_blocks": p.slack,
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
                "pipeline_ms": p.slack * DEADLINE_S * 1e3,
                "device_round_trip_ms": percentiles_ms(s.device_s),
            },
            "host_ms": percentiles_ms(s.host_s),
            "host_deadline_misses": c.host_deadline_misses,
            "ready_ms": percentiles_ms(s.ready_s),
            "link_rtt_ms": percentiles_ms(s.rtt_s) if s.rtt_s else None,
            "error": None if p.error is None else f"{type(p.error).__name__}: {p.error}",
        }
        report.update(self._observer_fields())
        return report

    def recordings(self) -> tuple[np.ndarray, np.ndarray]:
        """(input as captured, output as played), float32 at 16 kHz, block-aligned."""
        def join(blocks: list[np.ndarray]) -> np.ndarray:
            return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)

        return join(self.stats.recorded_in), join(self.stats.recorded_out)


def _stop_on_sigterm() -> Callable[[], None]:
    """Treat SIGTERM like Ctrl-C (report and recordings still written); returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)


# -- devices -----------------------------------------------------------------------------------

def parse_device(value: str | None) -> int | str | None:
    """`--input 3` is device index 3; anything else is a name (sounddevice matches substrings)."""
    if value is None or value == "":
        return None
    return int(value) if value.strip().isdigit() else value


def check_devices(input_device: int | str | None, output_device: int | str | None) -> None:
    """Raise LiveError, naming the device, when it is missing or refuses 16 kHz mono float32."""
    import sounddevice as sd

    for kind, device, check in (("input", input_device, sd.check_input_settings),
                                ("output", output_device, sd.check_output_settings)):
        try:
            info = sd.query_devices(device, kind)
        except (ValueError, sd.PortAudioError) as exc:
            apis = ", ".join(api["name"] for api in sd.query_hostapis()) or "none"
            what = f"no default {kind} device" if device is None else f"no {kind} device {device!r}"
            raise LiveError(f"{what} ({exc}); PortAudio host APIs here: {apis}; see "
                            f"--list-devices (is the JACK or PulseAudio server running?)") from exc
        try:
            check(device=device, samplerate=SAMPLE_RATE, channels=1, dtype="float32")
        except sd.PortAudioError as exc:
            default_rate = info.get("default_samplerate")
            raise LiveError(
                f"{kind} device {info['name']!r} refuses {SAMPLE_RATE} Hz mono float32 ({exc}); its "
                f"default rate is {default_rate:g} Hz. The network runs at {SAMPLE_RATE} Hz and this "
                f"version does not resample live audio: choose a device or server running at "
                f"{SAMPLE_RATE} Hz (e.g. jackd -r {SAMPLE_RATE}, or an ALSA 'plug' device)") from exc


def describe_stream(stream: Any, input_device: int | str | None, output_device: int | str | None
                    ) -> dict[str, Any]:
    import sounddevice as sd

    info: dict[str, Any] = {"latency_s": list(stream.latency), "samplerate": stream.samplerate,
                            "blocksize": stream.blocksize}
    names = []
    for kind, device in (("input", input_device), ("output", output_device)):
        dev = sd.query_devices(device, kind)
        api = sd.query_hostapis(dev["hostapi"])["name"]
        info[f"{kind}_device"] = dev["name"]
        info["host_api"] = api
        names.append(dev["name"])
    info["summary"] = f"{' -> '.join(names)} ({info['host_api']}, {SAMPLE_RATE / 1000:g} kHz, " \
                      f"block {HOP_SAMPLES})"
    return info


def list_devices() -> str:
    """The devices PortAudio sees, marked with the defaults, and which accept 16 kHz."""
    import sounddevice as sd

    devices = sd.query_devices()
    lines = [str(devices)] if len(devices) else ["no audio devices (a JACK or PulseAudio server "
                                                 "that is not running shows none)"]
    for api in sd.query_hostapis():
        lines.append(f"host API {api['name']}: {len(api['devices'])} device(s)")
    lines.append(f"'streamer live' needs {SAMPLE_RATE} Hz mono on both ends; pass --input/--output "
                 f"as an index or a name")
    return "\n".join(lines)


# -- command -----------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `streamer live` options."""
    parser.add_argument("--input", metavar="DEV", help="input device: index or name substring "
                        "(default: PortAudio's default input; see --list-devices)")
    parser.add_argument("--output", metavar="DEV", help="output device: index or name substring "
                        "(default: PortAudio's default output)")
    parser.add_argument("--model", metavar="PATH", help="model file: .tdn or .onnx (default: the "
                        "embedded LSTM H=256 model)")
    parser.add_argument("--quant", metavar="MODE", default=None,
                        help="numeric mode: fp32, fp16, int8, mixed (default: the model's own)")
    parser.add_argument("--backend", default="emulator", metavar="SPEC",
                        help="where the network runs: emulator (numpy on this host), sim or sim-tcp "
                        "(the host firmware simulator), qemu or qemu-tcp (the firmware on RISC-V "
                        "under QEMU), serial:PATH[@BAUD], socket://HOST:PORT "
                        "(default: emulator)")
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
    parser.add_argument("--target", metavar="TARGET.toml", help="target description for the cost "
                        "model (default: the packaged GAP9 target)")


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
        f"(algorithmic {e2e['algorithmic_ms']:g} + pipeline {e2e['pipeline_ms']:g} + device)",
        f"host time p50 {ms(host['p50'])} ms, p99 {ms(host['p99'])} ms, max {ms(host['max'])} ms "
        f"per block; deadline {report['deadline_ms']:g} ms",
    ]
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
    from streamer.backends.base import open_backend
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
    from streamer.costmodel import TimingSpec

    timing_spec = TimingSpec.load(args.target, args.voltages)
    input_device, output_device = parse_device(args.input), parse_device(args.output)
    # Fail on the device before loading a model: the usual mistake is the device.
    check_devices(input_device, output_device)
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
        with open_backend(args.backend, loaded.params, args.quant) as backend:
            from streamer.costmodel import TargetNote
            from streamer.replay import target_observer

            timing, note = target_observer(timing_spec, backend)
            session = LiveSession(backend, model_info=loaded.info(), backend_spec=args.backend,
                                  observers=[timing if timing is not None else TargetNote(note or "")],
                                  quant=args.quant, input_device=input_device,
                                  output_device=output_device, fallback=args.fallback,
                                  slack_blocks=args.slack_blocks, queue_blocks=args.queue_blocks,
                                  latency=latency, dashboard=dashboard,
                                  record=bool(args.record_in or args.record_out), log_path=args.log)
            report = session.run(args.duration)
    finally:
        sys.setswitchinterval(previous_interval)
    recorded_in, recorded_out = session.recordings()
    # FLOAT keeps the recordings bit-exact to what the stream carried (tests compare them).
    if args.record_in:
        write_audio(args.record_in, recorded_in, SAMPLE_RATE, "FLOAT")
    if args.record_out:
        write_audio(args.record_out, recorded_out, SAMPLE_RATE, "FLOAT")
    if args.report:
        write_json(args.report, report)
    print(summary(report), flush=True)
    for path, what in ((args.report, "report"), (args.log, "frame log"), (args.record_in, "input"),
                       (args.record_out, "output")):
        if path:
            print(f"{what:<9} {path}")
    if report["error"]:
        print(f"streamer: error: the backend failed: {report['error']}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m streamer.live ...`: the same as `streamer live ...`."""
    parser = argparse.ArgumentParser(prog="streamer live", description=__doc__.split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    from streamer.audio import AudioError
    from streamer.backends.base import BackendError
    from streamer.model.params import ModelError
    from streamer.replay import ReplayError
    from streamer.target import TargetError

    try:
        return run(args)
    except (ModelError, BackendError, AudioError, ReplayError, TargetError, OSError) as exc:
        print(f"streamer: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("streamer: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
