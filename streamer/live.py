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
import json
import os
import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np

from streamer.backends.base import Backend
from streamer.dashboard import MissTimeline
from streamer.distribution import Distribution
from streamer.engine import ALGORITHMIC_LATENCY_SAMPLES, DEADLINE_S, HOP_SAMPLES, SAMPLE_RATE
from streamer.metrics import deadline_missed
from streamer.pipeline import Denoiser, FrameEvent
from streamer.rate_adapter import DeviceRateDenoiser

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
RECENT = 2000
# No audio callback for this long while streaming means the audio system has gone (a JACK
# server killed, a USB device pulled): the run ends instead of waiting forever. The first
# callback may take longer (a JACK server connects the ports first).
STALL_TIMEOUT_S = 1.0
START_TIMEOUT_S = 5.0
# How long stopping or closing a stream may take before it is abandoned: PortAudio's stop on
# a JACK server that died blocks for minutes.
CLOSE_TIMEOUT_S = 1.0
# Input channels opened for the mono downmix, at most (ALSA's 'default' on PulseAudio or
# PipeWire offers 32 or 64, all copies of a stereo source).
MAX_CHANNELS = 8

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
                 record_blocks: int = DEFAULT_RECORD_BLOCKS, rate: int = SAMPLE_RATE,
                 input_channel: int | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        if fallback not in FALLBACKS:
            raise LiveError(f"unknown fallback {fallback!r}; expected one of {', '.join(FALLBACKS)}")
        if slack_blocks < 1:
            raise LiveError("--slack-blocks must be at least 1: the callback cannot wait for the "
                            "block it has just handed over")
        if queue_blocks <= slack_blocks + 1:
            raise LiveError(f"--queue-blocks must exceed --slack-blocks + 1 ({slack_blocks + 1})")
        if input_channel is not None and input_channel < 1:
            raise LiveError(f"--input-channel counts from 1, not {input_channel}")
        self.denoiser = denoiser
        self.backend = denoiser.backend
        self.rate = int(rate)
        # At 16 kHz the Denoiser itself, untouched (the bit-exact path); at any other rate the
        # same Denoiser behind a resampler per direction (streamer/rate_adapter.py).
        self.stream: Denoiser | DeviceRateDenoiser
        if self.rate == SAMPLE_RATE:
            self.stream, self.block = denoiser, HOP_SAMPLES
            self.latency_s = ALGORITHMIC_LATENCY_SAMPLES / SAMPLE_RATE
        else:
            self.stream = DeviceRateDenoiser(denoiser, self.rate)
            self.block, self.latency_s = self.stream.block_size, self.stream.latency_s
        self.input_channel = input_channel
        self.fallback = fallback
        self.slack = slack_blocks
        # The dry substitute is the input delayed exactly as the enhanced block it replaces:
        # the signal's own delay (18.75 ms, plus resampling away from 16 kHz) and the slack.
        self.dry_delay_samples = round(self.latency_s * self.rate) + slack_blocks * self.block
        if record_blocks * self.block <= self.dry_delay_samples + 2 * self.block:
            raise LiveError("record_blocks too small for the dry fallback's delay")
        self.clock = clock
        n, r, b = queue_blocks, record_blocks, self.block
        self._n, self._r = n, r
        self._in = np.zeros((n, b), np.float32)
        self._in_seq = np.full(n, -1, np.int64)
        self._out = np.zeros((n, b), np.float32)
        self._out_seq = np.full(n, -1, np.int64)
        self._drop_seq = np.full(n, -1, np.int64)
        self._zeros = np.zeros(b, np.float32)
        # Per callback k (slot k % r): the input block, the block played, and
        # [adc time, dac time, callback clock, outcome, status bits].
        self.rec_in = np.zeros((r, b), np.float32)
        self.rec_out = np.zeros((r, b), np.float32)
        self.cb_info = np.zeros((r, 5), np.float64)
        # Per processed block s (slot s % r): [seq, start clock, end clock, link rtt or nan,
        # STFT frames completed so far].
        self.proc_info = np.full((r, 5), np.nan, np.float64)
        self.callbacks = 0          # published last in the callback: slots below it are complete
        # A graceful stop: the poller asks, the callback names the first block it no longer
        # takes (only the audio thread writes stop_at), then plays what it still owes.
        self.stop_requested = False
        self.stop_at: int | None = None
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

    @property
    def frames(self) -> int:
        """Input blocks taken into the stream (all callbacks, until a graceful stop)."""
        return self.callbacks if self.stop_at is None else min(self.callbacks, self.stop_at)

    @property
    def drained(self) -> bool:
        """After a stop request: every block taken has had its output slot come round."""
        return self.stop_at is not None and self.callbacks >= self.stop_at + self.slack

    @property
    def resampler_underruns(self) -> int:
        """Device blocks the resampling FIFO could not fill (0 by construction; counted)."""
        return getattr(self.stream, "underruns", 0)

    # -- audio thread -------------------------------------------------------------------------

    def callback(self, indata: np.ndarray, outdata: np.ndarray, frames: int, time_info: Any,
                 status: Any) -> None:
        now = self.clock()
        if frames != self.block:
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
        if self.stop_requested and self.stop_at is None:
            self.stop_at = k
        accepting = self.stop_at is None
        r = k % self._r
        block = self.rec_in[r]
        if self.input_channel is not None:
            block[:] = indata[:, self.input_channel - 1]
        elif indata.shape[1] == 1:
            block[:] = indata[:, 0]
        else:
            np.mean(indata, axis=1, out=block)  # the mono downmix
        slot = k % self._n
        if not accepting:
            pass
        elif k - self.taken >= self._n:
            # The worker is a whole ring behind: this block is never processed.
            self._drop_seq[slot] = k
            self.dropped += 1
        else:
            self._in[slot] = block
            self._in_seq[slot] = k
        played = self.rec_out[r]
        want = k - self.slack
        if want < 0 or (self.stop_at is not None and want >= self.stop_at):
            played[:] = 0
            outcome = PRIMING
        else:
            want_slot = want % self._n
            if self._out_seq[want_slot] == want:
                played[:] = self._out[want_slot]
                outcome = ENHANCED
                self.frames_out += 1
            else:
                dropped = self._drop_seq[want_slot] == want
                outcome = DROPPED if dropped else LATE
                if not dropped:
                    self.late += 1
                if self.fallback == "dry":
                    self._dry(k, played)
                else:
                    played[:] = 0
        outdata[:] = played[:, None]   # every output channel plays the same
        info = self.cb_info[r]
        info[0] = time_info.inputBufferAdcTime
        info[1] = time_info.outputBufferDacTime
        info[2] = now
        info[3] = outcome
        info[4] = bits
        self.callbacks = k + 1
        self._wake.put_nowait(k)

    def _dry(self, k: int, played: np.ndarray) -> None:
        """Fill `played` (callback k's block) with the input `dry_delay_samples` earlier."""
        b = self.block
        start = k * b - self.dry_delay_samples      # stream index of the first sample wanted
        if start < 0:
            played[:] = 0
            return
        first, offset = divmod(start, b)
        head = b - offset
        played[:head] = self.rec_in[first % self._r][offset:]
        if offset:
            played[head:] = self.rec_in[(first + 1) % self._r][:offset]

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
                    out = self.stream.push(block)
                except BaseException as exc:  # noqa: BLE001 - any backend failure ends the stream
                    self.error = exc
                    self._stop.set()
                    return
                end = self.clock()
                rtt = link_round_trip(self.backend)
                info = self.proc_info[s % self._r]
                info[1], info[2], info[3] = start, end, np.nan if rtt is None else rtt
                info[4] = self.denoiser.engine.frames
                info[0] = s
                # Timing first, then the block, then its sequence number: once the callback
                # sees the number, everything about the block is in place.
                out_slot = s % self._n
                self._out[out_slot] = out
                self._out_seq[out_slot] = s
                self.processed = s + 1


def link_round_trip(backend: Backend) -> float | None:
    """The link round trip (s) of the step just taken; None without a link (the emulator) or
    when the frame failed."""
    return backend.last_frame().rtt_s


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
        report: dict[str, Any] = {
            "streamer_version": streamer.__version__,
            "command": "live",
            "model": self.model_info,
            "backend": self.backend_spec,
            "quant": self.quant,
            "backend_info": self.backend.describe(),
            "sample_rate": SAMPLE_RATE,
            "device_rate": p.rate,
            "block_samples": p.block,
            "input_channel": p.input_channel,
            "atten_lim_db": self.atten_lim_db,
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
        }
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


# -- devices -----------------------------------------------------------------------------------

def parse_device(value: str | None) -> int | str | None:
    """`--input 3` is device index 3; anything else is a name (sounddevice matches substrings)."""
    if value is None or value == "":
        return None
    return int(value) if value.strip().isdigit() else value


INSTALL_HINT = ("pip install sounddevice (a dependency of streamer: reinstall with the README's "
                "install line) and the PortAudio library (Debian/Ubuntu: apt install libportaudio2)")


def import_sounddevice() -> Any:
    """sounddevice, or a one-line LiveError saying what to install (the package or PortAudio)."""
    try:
        import sounddevice
    except ModuleNotFoundError as exc:
        raise LiveError(f"'streamer live' needs the Python package sounddevice, which is not "
                        f"installed: {INSTALL_HINT}") from exc
    except OSError as exc:  # sounddevice raises OSError when libportaudio is not found
        raise LiveError(f"'streamer live' cannot load the PortAudio library ({exc}): "
                        f"{INSTALL_HINT}") from exc
    return sounddevice


def default_rate(input_device: int | str | None) -> int:
    """The input device's own default sample rate (what `streamer live` opens by default)."""
    sd = import_sounddevice()
    info = _query(sd, input_device, "input")
    return int(round(info["default_samplerate"]))


def _query(sd: Any, device: int | str | None, kind: str) -> dict[str, Any]:
    try:
        return sd.query_devices(device, kind)
    except (ValueError, sd.PortAudioError) as exc:
        apis = ", ".join(api["name"] for api in sd.query_hostapis()) or "none"
        what = f"no default {kind} device" if device is None else f"no {kind} device {device!r}"
        raise LiveError(f"{what} ({exc}); PortAudio host APIs here: {apis}; see "
                        f"--list-devices (is the JACK or PulseAudio server running?)") from exc


def check_devices(input_device: int | str | None, output_device: int | str | None,
                  rate: int = SAMPLE_RATE, input_channel: int | None = None) -> tuple[int, int]:
    """The (input, output) channel counts to open; LiveError, naming the device, when one is
    missing, has too few channels or refuses `rate` Hz float32.

    Input: every channel of the device (at most MAX_CHANNELS) for the mono downmix, or the
    first `input_channel` to pick that one; output: every channel (at most MAX_CHANNELS).
    """
    sd = import_sounddevice()
    in_info, out_info = _query(sd, input_device, "input"), _query(sd, output_device, "output")
    have_in = int(in_info["max_input_channels"])
    if input_channel is not None and input_channel > have_in:
        raise LiveError(f"--input-channel {input_channel}: input device {in_info['name']!r} has "
                        f"{have_in} channel(s)")
    channels = (input_channel or min(have_in, MAX_CHANNELS),
                min(int(out_info["max_output_channels"]), MAX_CHANNELS))
    for kind, device, info, n, check in (
            ("input", input_device, in_info, channels[0], sd.check_input_settings),
            ("output", output_device, out_info, channels[1], sd.check_output_settings)):
        try:
            check(device=device, samplerate=rate, channels=n, dtype="float32")
        except sd.PortAudioError as exc:
            raise LiveError(
                f"{kind} device {info['name']!r} refuses {rate:g} Hz, {n} channel(s), float32 ({exc}); "
                f"its default rate is {info['default_samplerate']:g} Hz: pass --rate with a rate it "
                f"accepts, or leave --rate out to use that one") from exc
    return channels


def describe_stream(stream: Any, input_device: int | str | None, output_device: int | str | None
                    ) -> dict[str, Any]:
    sd = import_sounddevice()

    info: dict[str, Any] = {"latency_s": list(stream.latency), "samplerate": stream.samplerate,
                            "blocksize": stream.blocksize, "channels": list(stream.channels)}
    names = []
    for kind, device in (("input", input_device), ("output", output_device)):
        dev = sd.query_devices(device, kind)
        api = sd.query_hostapis(dev["hostapi"])["name"]
        info[f"{kind}_device"] = dev["name"]
        info["host_api"] = api
        names.append(dev["name"])
    resampled = "" if stream.samplerate == SAMPLE_RATE else f" <-> {SAMPLE_RATE / 1000:g} kHz"
    info["summary"] = f"{' -> '.join(names)} ({info['host_api']}, {stream.samplerate / 1000:g} kHz" \
                      f"{resampled}, block {stream.blocksize})"
    return info


def list_devices() -> str:
    """The devices PortAudio sees, marked with the defaults."""
    sd = import_sounddevice()

    devices = sd.query_devices()
    lines = [str(devices)] if len(devices) else ["no audio devices (a JACK or PulseAudio server "
                                                 "that is not running shows none)"]
    for api in sd.query_hostapis():
        lines.append(f"host API {api['name']}: {len(api['devices'])} device(s)")
    for device in devices:
        lines.append(f"  {device['name']}: default rate {device['default_samplerate']:g} Hz, "
                     f"{device['max_input_channels']} in, {device['max_output_channels']} out")
    lines.append("'streamer live' opens the input device's default rate (--rate to choose; audio "
                 f"is resampled to and from {SAMPLE_RATE} Hz); pass --input/--output as an index or "
                 "a name")
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
    parser.add_argument("--target", metavar="TARGET.toml", help="target description for the cost "
                        "model (default: the packaged GAP9 target)")
    parser.add_argument("--rate", type=int, metavar="HZ", help="device sample rate, e.g. 44100 or "
                        "48000; audio is resampled to the network's 16 kHz and back, one 6.25 ms hop "
                        "per device block (default: the input device's own default rate)")
    parser.add_argument("--input-channel", type=int, metavar="N", help="use input channel N "
                        f"(from 1) of a stereo or multichannel device (default: the mono downmix of "
                        f"its channels, up to {MAX_CHANNELS}); the output goes to every output channel")
    from streamer.cli import ATTEN_LIM_DB_HELP, add_link_options

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
    from streamer.cli import link_policy

    policy = link_policy(args)
    from streamer.costmodel import TimingSpec

    timing_spec = TimingSpec.load(args.target, args.voltages)
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
        with open_backend(args.backend, loaded.params, args.quant, policy=policy) as backend:
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


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m streamer.live ...`: the same as `streamer live ...`."""
    parser = argparse.ArgumentParser(prog="streamer live", description=__doc__.split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    from streamer.audio import AudioError
    from streamer.backends.base import BackendError
    from streamer.cli import CliError
    from streamer.model.params import ModelError
    from streamer.pipeline import PipelineError
    from streamer.replay import ReplayError
    from streamer.target import TargetError

    try:
        return run(args)
    except (ModelError, BackendError, AudioError, ReplayError, TargetError, PipelineError, CliError,
            OSError) as exc:
        print(f"streamer: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("streamer: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
