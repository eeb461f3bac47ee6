"""What a replay or an evaluation produced, before it becomes a report (`streamer.report`).

The command modules (`replay`, `evaluate`) make these; `report` turns them into JSON, CSV and
summaries; the dashboard's feed reads them. Their own module, so that none of those imports
another for its types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from streamer.engine import SAMPLE_RATE
from streamer.metrics import Quality, TimingStats, timing_stats


@dataclass
class ReplayResult:
    """Everything one replayed file produced, before it becomes a report (see `streamer.report`)."""

    input: Path
    output: Path | None
    clean: Path | None
    model: dict[str, Any]
    backend: str
    quant: str | None
    backend_info: dict[str, Any]
    sample_rate_in: int
    channels_in: int
    subtype_in: str
    samples: int
    host_s: np.ndarray
    wall_s: float
    enhanced_quality: Quality | None = None
    noisy_quality: Quality | None = None
    warnings: list[str] = field(default_factory=list)
    sample_rate_out: int = SAMPLE_RATE
    # Target timing (streamer.costmodel.TargetRecord) per frame, or why there is none.
    target: Any = None
    target_note: str | None = None
    # The attenuation limit the masks were floored at (streamer.pipeline.mask_floor); None: off.
    atten_lim_db: float | None = None
    # Why the file stopped before its end (a device gone); None: it ran to the end. The output
    # then holds the first `samples_done` samples.
    error: str | None = None
    samples_done: int | None = None
    # Frames the device link lost in this file, by cause (the input passed through for them).
    failed_frames: dict[str, int] = field(default_factory=dict)
    # The input's largest magnitude: above 1.0 (float files) the output is clipped, and said.
    input_peak: float | None = None

    @property
    def complete(self) -> bool:
        return self.error is None

    @property
    def duration_s(self) -> float:
        return self.samples / SAMPLE_RATE

    @property
    def timing(self) -> TimingStats:
        return timing_stats(self.host_s)

    @property
    def realtime_factor(self) -> float | None:
        """Audio seconds processed per host second (the whole streaming loop, not just the network)."""
        return self.duration_s / self.wall_s if self.wall_s > 0 else None


@dataclass
class EvalResult:
    """Per-file results (sorted by name) of one evaluation; see `streamer.report.eval_report`."""

    noisy_dir: Path
    clean_dir: Path
    out_dir: Path | None
    model: dict[str, Any]
    backend: str
    quant: str | None
    backend_info: dict[str, Any]
    jobs: int
    files: list[ReplayResult]
    noisy_only: list[str]
    clean_only: list[str]
    complete: bool = True
    atten_lim_db: float | None = None
    # Why the evaluation stopped early (a device gone, with the file it happened in); None: it ran.
    error: str | None = None
    # Streams per network step (streamer/batch.py); 1: each file streamed alone, as replay does.
    batch: int = 1
    # Where a cluster ran the files (streamer/cluster.py: address, workers, retried files); None: here.
    cluster: dict[str, Any] | None = None
