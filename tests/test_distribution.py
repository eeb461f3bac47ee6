"""Fixed-memory distributions of durations: percentiles against hand-computed values."""

from __future__ import annotations

import math

import pytest

from streamer.distribution import BINS, HIGH_S, LOW_S, RESOLUTION, Distribution, bin_centre, bin_of


def test_nearest_rank_percentiles_of_a_small_set() -> None:
    d = Distribution()
    for ms in (1, 2, 3, 4, 100):
        d.add(ms / 1e3)
    # Nearest rank: p50 is rank ceil(2.5) = 3 -> 3 ms; p99 rank ceil(4.95) = 5 -> 100 ms;
    # each within the bins' 0.05 % of the value.
    assert d.percentile(50) == pytest.approx(3e-3, rel=RESOLUTION / 2)
    assert d.percentile(99) == pytest.approx(100e-3, rel=RESOLUTION / 2)
    assert d.percentile(0) == pytest.approx(1e-3, rel=RESOLUTION / 2)
    summary = d.summary_ms()
    assert summary["max"] == 100.0 and summary["mean"] == 22.0  # exact: (1+2+3+4+100)/5
    assert summary["p50"] == pytest.approx(3.0, rel=RESOLUTION / 2)


def test_p99_of_a_thousand_values() -> None:
    d = Distribution()
    for i in range(1, 1001):
        d.add(i * 1e-5)  # 0.01 .. 10 ms
    # Rank ceil(0.99 * 1000) = 990 -> 9.9 ms; rank 500 -> 5 ms.
    assert d.percentile(99) == pytest.approx(9.9e-3, rel=RESOLUTION / 2)
    assert d.percentile(50) == pytest.approx(5e-3, rel=RESOLUTION / 2)
    assert len(d) == 1000


def test_values_outside_the_range_are_clamped_and_extremes_stay_exact() -> None:
    d = Distribution()
    d.add(0.0)
    d.add(2 * HIGH_S)
    assert bin_of(0.0) == 0 and bin_of(2 * HIGH_S) == BINS - 1
    # Percentiles never leave [min, max]; max is exact.
    assert d.percentile(0) == 0.0 and d.percentile(100) == 2 * HIGH_S
    assert d.summary_ms()["max"] == 2 * HIGH_S * 1e3


def test_bins_are_a_tenth_of_a_percent_wide() -> None:
    for seconds in (3.3e-6, 1.234e-3, 6.25e-3, 42.0):
        centre = bin_centre(bin_of(seconds))
        assert abs(centre / seconds - 1) <= RESOLUTION / 2 + 1e-12
    assert bin_centre(0) == pytest.approx(LOW_S * math.sqrt(1 + RESOLUTION))


def test_memory_is_fixed() -> None:
    d = Distribution()
    before = d.counts.nbytes
    for i in range(100_000):
        d.add((i % 977) * 1e-5)
    assert d.counts.nbytes == before and len(d) == 100_000


def test_empty() -> None:
    assert Distribution().percentile(50) is None
    assert Distribution().summary_ms() == {"p50": None, "p99": None, "max": None, "mean": None}
