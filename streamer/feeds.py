"""Feeding the dashboard from a recording: `streamer replay --dashboard`, `streamer eval --dashboard`.

`StreamFeed` watches a replay the way `LiveSession.snapshot` watches a live stream, and hands
the same `Dashboard` the same kind of fields: frames, host deadline misses and their
timeline, host and link time, the device link's counters, per-voltage operating points,
input and output levels, plus what only a recording has: progress with the time left, the
file, and PESQ-WB / STOI once a file is scored (eval: files done of total and the running
mean). It only observes: a frame observer, a block hook and a progress callback, all called
by the replay loop; nothing here changes the audio.

Costly fields (the operating points, the backend's description with its link statistics,
levels) are refreshed at most every `REFRESH_S` of wall time, so a fast emulator run is not
slowed by its own view.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from streamer.dashboard import Dashboard, MissTimeline, link_counters_text
from streamer.engine import HOP_SAMPLES, SAMPLE_RATE
from streamer.metrics import deadline_missed
from streamer.pipeline import FrameEvent, blocks_for

REFRESH_S = 0.25
LEVEL_BLOCKS = 16  # the level meters cover the last 100 ms


def blocks_of(paths: list[Path]) -> int | None:
    """Hops the replay loop will stream for these files (their length at 16 kHz plus the
    latency flush), from their headers; None when a header cannot be read."""
    import soundfile

    total = 0
    for path in paths:
        try:
            info = soundfile.info(str(path))
        except (RuntimeError, OSError):  # soundfile raises its LibsndfileError, a RuntimeError
            return None
        total += blocks_for(-(-info.frames * SAMPLE_RATE // int(info.samplerate)))
    return total


def _dbfs(energy: float, samples: int) -> float | None:
    rms = float(np.sqrt(energy / samples)) if samples else 0.0
    return None if rms <= 1e-10 else round(20.0 * np.log10(rms), 2)


class StreamFeed:
    """Feeds `dashboard` from one replay or from the files of an eval, in order.

    Per file: `begin(name, backend, timing, blocks)`, then the replay loop calls the feed for
    every frame (`feed(event)`), every block (`feed.block(i, x, y)`) and as progress
    (`feed.progress(done, total)`); `end(result)` once the file is scored. Files evaluated in
    other processes arrive whole: `file_done_elsewhere(result)`. `files_total` (eval) turns
    on the files row and the running mean of the scores; `frames_total` the whole run's
    progress when it is known in advance (eval: all files' blocks).
    """

    def __init__(self, dashboard: Dashboard, *, files_total: int | None = None,
                 blocks_total: int | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.dashboard = dashboard
        self.files_total = files_total
        self.blocks_total = blocks_total
        self.clock = clock
        self.started = clock()
        self.timeline = MissTimeline()
        self.files_done = 0
        self.blocks_before = 0          # blocks of the files finished so far
        self.frames_before = 0          # STFT frames of the files finished so far
        self._blocks = 0                # blocks of the current file so far
        self._file_blocks = 0
        self._scores: dict[str, list[float]] = {"pesq_wb": [], "stoi": []}
        self._records: list[Any] = []   # TargetRecords of finished files
        self._backend: Any = None
        self._timing: Any = None
        self._energy = np.zeros((LEVEL_BLOCKS, 2))
        self._last_refresh = -np.inf
        if files_total is not None:
            self.dashboard.update(files=f"0 of {files_total} done")
        self._refresh(force=True)

    # -- per file -----------------------------------------------------------------------------

    def begin(self, name: str, backend: Any, timing: Any, blocks: int) -> None:
        """A file starts: `timing` is its TargetTiming (or None), `blocks` its hop count."""
        self._backend, self._timing = backend, timing
        self._blocks, self._file_blocks = 0, blocks
        self.dashboard.update(file=name)
        self._refresh(force=True)

    def __call__(self, event: FrameEvent) -> None:
        t = (self.frames_before + event.index) * HOP_SAMPLES / SAMPLE_RATE
        if deadline_missed(event.host_s):
            self.timeline.bump(t)
        else:
            self.timeline.advance(t)
        self.dashboard.on_frame(event)
        self._refresh()

    def block(self, index: int, block_in: np.ndarray, block_out: np.ndarray) -> None:
        self._energy[index % LEVEL_BLOCKS] = (float(np.dot(block_in, block_in)),
                                              float(np.dot(block_out, block_out)))

    def progress(self, done: int, total: int) -> None:
        self._blocks, self._file_blocks = done, total
        fields = self._progress_fields()
        if fields:
            self.dashboard.update(**fields)  # cheap: every hop, so it keeps step with the frames

    def end(self, result: Any) -> None:
        """The file is done (and scored when it had a clean twin)."""
        # The file's last levels before its counters reset: a file shorter than one refresh
        # interval would otherwise never show any.
        self._refresh(force=True)
        self.frames_before += len(result.host_s)
        self.blocks_before += self._file_blocks
        self._blocks = self._file_blocks = 0
        if result.target is not None:
            self._records.append(result.target)
        self._timing = None
        self._finish(result)

    def file_done_elsewhere(self, result: Any) -> None:
        """A file another process replayed: its frames, misses and scores at once."""
        host = np.asarray(result.host_s, dtype=np.float64)
        for i in np.flatnonzero(deadline_missed(host)):
            self.timeline.bump((self.frames_before + i) * HOP_SAMPLES / SAMPLE_RATE)
        self.timeline.advance((self.frames_before + host.size) * HOP_SAMPLES / SAMPLE_RATE)
        self.dashboard.add_host_times(host)
        self.frames_before += host.size
        self.blocks_before += blocks_for(result.samples)
        if result.target is not None:
            self._records.append(result.target)
        self.dashboard.update(file=result.input.name)
        self._finish(result)

    def _finish(self, result: Any) -> None:
        self.files_done += 1
        quality = result.enhanced_quality
        if quality is not None:
            for key in self._scores:
                value = getattr(quality, key)
                if value is not None:
                    self._scores[key].append(value)
        if self.files_total is None:
            shown = None if quality is None else {"pesq_wb": quality.pesq_wb, "stoi": quality.stoi}
        else:
            shown = {key: float(np.mean(v)) if v else None for key, v in self._scores.items()}
            shown["files"] = max(len(v) for v in self._scores.values())
            self.dashboard.update(files=f"{self.files_done} of {self.files_total} done")
        if shown is not None and any(v is not None for k, v in shown.items() if k != "files"):
            self.dashboard.update(quality=shown)
        self._refresh(force=True)

    # -- the view's fields ----------------------------------------------------------------------

    def _refresh(self, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self._last_refresh < REFRESH_S:
            return
        self._last_refresh = now
        fields: dict[str, Any] = {"miss_timeline": list(self.timeline.counts),
                                  "timeline_bin_s": self.timeline.bin_s}
        fields.update(self._progress_fields())
        done = self.blocks_before + self._blocks
        filled = min(done, LEVEL_BLOCKS) if self._blocks else 0
        if filled:
            energy = self._energy.sum(axis=0)
            fields["input_dbfs"] = _dbfs(energy[0], filled * HOP_SAMPLES)
            fields["output_dbfs"] = _dbfs(energy[1], filled * HOP_SAMPLES)
        if self._backend is not None:
            fields.update(self._link_fields(self._backend.describe()))
        records = list(self._records)
        if self._timing is not None:
            records.append(self._timing.record())
        if records:
            from streamer.costmodel import TargetRecord, target_fields

            pooled = TargetRecord.pooled(records)
            if pooled is not None and pooled.cycles:
                fields["operating_points"] = target_fields(pooled)["operating_points"]
        self.dashboard.update(**fields)

    def _progress_fields(self) -> dict[str, Any]:
        done = self.blocks_before + self._blocks
        total = self.blocks_total if self.blocks_total is not None else self.blocks_before + self._file_blocks
        if not total:
            return {}
        return {"progress": {"done": done, "total": total, "elapsed_s": self.clock() - self.started,
                             "unit": "hops"}}

    @staticmethod
    def _link_fields(info: dict[str, Any]) -> dict[str, Any]:
        """Link time and counters from a device backend's description (none for the emulator)."""
        counters = link_counters_text(info)
        if counters is None:
            return {}
        fields: dict[str, Any] = {"link_counters": counters}
        rtt = info.get("link_rtt_ms")
        if rtt and rtt.get("p50") is not None:
            fields["link_ms"] = rtt
        return fields
