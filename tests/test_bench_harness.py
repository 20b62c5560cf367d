"""bench/harness.py's statistics, which every benchmark's verdicts rest on."""

from __future__ import annotations

import time

import numpy as np

from bench import harness


def test_median_interval_takes_the_order_statistics_its_level_allows():
    five = harness.median_interval([5, 1, 4, 2, 3])
    assert (five["median"], five["low"], five["high"], five["level"]) == (3, 1, 5, 0.9375)
    nine = harness.median_interval(range(1, 10))
    assert (nine["low"], nine["high"], nine["level"]) == (2, 8, 0.9609)
    assert harness.median_interval([7])["low"] == harness.median_interval([7])["high"] == 7


def test_median_interval_of_many_samples_is_quick_and_near_the_normal_bound():
    samples = np.random.default_rng(3).random(200_000)
    started = time.perf_counter()
    found = harness.median_interval(samples)
    assert time.perf_counter() - started < 5  # it was quadratic: minutes at this size
    assert 0.95 <= found["level"] < 0.951
    ordered = np.sort(samples)
    # The normal approximation's ranks, n/2 -+ 1.96 sqrt(n)/2, within a rank or two.
    half_width = 1.96 * np.sqrt(len(samples)) / 2
    low_rank = int(np.searchsorted(ordered, found["low"]))
    assert abs(low_rank - (len(samples) / 2 - half_width)) <= 2
    assert found["high"] == ordered[len(samples) - 1 - low_rank]


def test_verdicts_read_the_interval_not_the_median():
    assert harness.verdict({"median": 1.5, "low": 1.1, "high": 2.0}) == "ahead"
    assert harness.verdict({"median": 1.5, "low": 0.9, "high": 2.0}) == "level"
    assert harness.verdict({"median": 0.8, "low": 0.7, "high": 0.95}) == "behind"
    assert harness.meets({"median": 1.0, "low": 0.96, "high": 1.1}, 0.95)
    assert not harness.meets({"median": 1.0, "low": 0.94, "high": 1.1}, 0.95)
