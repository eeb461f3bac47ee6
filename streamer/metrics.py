"""Speech quality (PESQ-WB, STOI) and per-frame host timing statistics.

`pesq` and `pystoi` are imported inside the functions that use them, so the timing half of
this module stays cheap for live views that never score quality.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from streamer.engine import DEADLINE_S, SAMPLE_RATE
from streamer.pipeline import FrameEvent


class MetricError(ValueError):
    """A quality metric that cannot be computed for these signals (too short, silent, ...)."""


def _check_pair(clean: np.ndarray, enhanced: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    clean = np.asarray(clean, dtype=np.float64)
    enhanced = np.asarray(enhanced, dtype=np.float64)
    if clean.shape != enhanced.shape or clean.ndim != 1:
        raise MetricError(f"clean and enhanced signals must be mono and equal in length, "
                          f"got {clean.shape} and {enhanced.shape}")
    return clean, enhanced


def pesq_wb(clean: np.ndarray, enhanced: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    """Wide-band PESQ (ITU-T P.862.2) of `enhanced` against `clean`, from the `pesq` package."""
    import pesq

    clean, enhanced = _check_pair(clean, enhanced)
    try:
        # pesq divides by the peak; an all-zero input only warns before failing properly.
        with np.errstate(invalid="ignore", divide="ignore"):
            return float(pesq.pesq(rate, clean, enhanced, "wb"))
    except pesq.PesqError as exc:
        message = exc.args[0] if exc.args else exc
        if isinstance(message, bytes):
            message = message.decode(errors="replace")
        raise MetricError(f"PESQ-WB: {message}") from exc


def stoi(clean: np.ndarray, enhanced: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    """Short-time objective intelligibility (classic STOI, not extended), from `pystoi`."""
    from pystoi import stoi as pystoi_stoi

    clean, enhanced = _check_pair(clean, enhanced)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(pystoi_stoi(clean, enhanced, rate, extended=False))
    # pystoi does not raise on speech too short to score: it warns and returns 1e-5.
    if caught and value <= 1e-5:
        raise MetricError(f"STOI: {caught[0].message}")
    return value


@dataclass
class Quality:
    """PESQ-WB and STOI of one signal against its clean reference; None where not computable."""

    pesq_wb: float | None = None
    stoi: float | None = None
    warnings: list[str] = field(default_factory=list)


def quality(clean: np.ndarray, enhanced: np.ndarray, rate: int = SAMPLE_RATE) -> Quality:
    """Both scores; a metric that fails becomes None with a warning, so one bad file never
    stops an evaluation of many."""
    result = Quality()
    for name, metric in (("pesq_wb", pesq_wb), ("stoi", stoi)):
        try:
            setattr(result, name, metric(clean, enhanced, rate))
        except MetricError as exc:
            result.warnings.append(str(exc))
    return result


class HostTimer:
    """Frame observer that keeps the host compute time of every frame (seconds)."""

    def __init__(self) -> None:
        self.host_s: list[float] = []

    def __call__(self, event: FrameEvent) -> None:
        self.host_s.append(event.host_s)

    def seconds(self) -> np.ndarray:
        return np.asarray(self.host_s, dtype=np.float64)


def deadline_missed(host_s: float | Sequence[float] | np.ndarray, deadline_s: float = DEADLINE_S
                    ) -> bool | np.ndarray:
    """Whether a frame's host time misses the deadline: strictly longer than it (a frame of exactly
    `deadline_s` is in time). A bool for one time, a boolean array for several.

    The one place this comparison is written: timing_stats, the frame log, the dashboards and
    `streamer live` all count misses with it.
    """
    missed = np.greater(host_s, deadline_s)
    return bool(missed) if missed.ndim == 0 else missed


@dataclass(frozen=True)
class TimingStats:
    """Per-frame host compute time against the real-time deadline of one hop."""

    frames: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    mean_ms: float | None
    deadline_ms: float
    misses: int

    def host_ms(self) -> dict[str, float | None]:
        return {"p50": self.p50_ms, "p99": self.p99_ms, "max": self.max_ms, "mean": self.mean_ms}


def timing_stats(host_s: Sequence[float] | np.ndarray, deadline_s: float = DEADLINE_S) -> TimingStats:
    """p50, p99 (linear interpolation), max and mean in ms, and frames slower than `deadline_s`."""
    seconds = np.asarray(host_s, dtype=np.float64)
    deadline_ms = deadline_s * 1e3
    if seconds.size == 0:
        return TimingStats(0, None, None, None, None, deadline_ms, 0)
    ms = seconds * 1e3
    p50, p99 = np.percentile(ms, [50, 99])
    return TimingStats(frames=int(ms.size), p50_ms=float(p50), p99_ms=float(p99),
                       max_ms=float(ms.max()), mean_ms=float(ms.mean()), deadline_ms=deadline_ms,
                       misses=int(np.count_nonzero(deadline_missed(seconds, deadline_s))))
