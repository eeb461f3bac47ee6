"""The real-time core of `streamer live`: the audio callback, the worker and their rings.

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

import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from streamer.backends.base import Backend
from streamer.engine import ALGORITHMIC_LATENCY_SAMPLES, HOP_SAMPLES, SAMPLE_RATE
from streamer.metrics import timing_stats
from streamer.pipeline import Denoiser
from streamer.rate_adapter import DeviceRateDenoiser

FALLBACKS = ("dry", "silence")
DEFAULT_SLACK_BLOCKS = 1
# 128 blocks (0.8 s at one hop a block): a worker starved that long by a busy machine still
# loses nothing (its blocks come out late, played as the fallback, and are counted as misses).
# The 60-minute soak at 32 (200 ms) lost 38 blocks while the test suite ran beside it.
DEFAULT_QUEUE_BLOCKS = 128
# The worker's nice value where the system allows it (root, or CAP_SYS_NICE): it must win the
# CPU from the poller, the dashboard and other processes; the audio callback runs in the audio
# server's own (often real-time) thread.
WORKER_NICE = -10
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


@dataclass
class LiveCounters:
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
    """p50, p99, max and mean in milliseconds, rounded (None for an empty series)."""
    return {k: None if v is None else round(v, _MS_DIGITS)
            for k, v in timing_stats(np.asarray(seconds, dtype=np.float64)).host_ms().items()}


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
        self.worker_nice: int | None = None  # set when the worker could raise its priority
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

    def _raise_priority(self) -> None:
        """Lower this thread's nice value (Linux schedules threads by their own) when allowed."""
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICE)
        except (OSError, AttributeError):  # not permitted, or not Linux: keep the default
            return
        self.worker_nice = WORKER_NICE

    def _work(self) -> None:
        self._raise_priority()
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
