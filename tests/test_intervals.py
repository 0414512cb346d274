"""Intervals and differences against scipy's own Welch test and t interval."""

from __future__ import annotations

import random
import statistics

import pytest
from scipy import stats

from nas.intervals import difference, difference_of_values, mean_interval, verdict


def test_a_mean_interval_is_students_t():
    values = [0.871, 0.875, 0.869, 0.880]
    got = mean_interval(values)
    low, high = stats.t.interval(
        0.95, len(values) - 1, loc=statistics.fmean(values), scale=stats.sem(values)
    )
    assert (got.low, got.high) == pytest.approx((low, high))
    assert got.half_width == pytest.approx((high - low) / 2) and got.seeds == 4
    one = mean_interval([0.9])
    assert one.low == one.high == one.mean == 0.9


def test_a_difference_is_welchs_test():
    rng = random.Random(3)
    for _ in range(20):
        a = [rng.gauss(0.88, 0.004) for _ in range(rng.randint(2, 6))]
        b = [rng.gauss(0.879, 0.002) for _ in range(rng.randint(2, 6))]
        got = difference_of_values(a, b)
        expected = stats.ttest_ind(a, b, equal_var=False)
        interval = expected.confidence_interval(0.95)
        assert got.p == pytest.approx(expected.pvalue)
        assert (got.low, got.high) == pytest.approx((interval.low, interval.high))
        assert got.distinguishable == (expected.pvalue < 0.05)


def test_one_seed_or_no_spread_are_said_as_such():
    one = difference(0.9, 0.0, 1, 0.8, 0.0, 3)
    assert not one.distinguishable and "one seed" in verdict("a", "b", one)
    exact = difference(0.9, 0.0, 3, 0.8, 0.0, 3)
    assert exact.distinguishable and exact.low == exact.high == pytest.approx(0.1)
    assert "a is ahead of b at 3 seeds" in verdict("a", "b", exact)
    behind = difference(0.8, 0.001, 3, 0.9, 0.001, 3)
    assert "b is ahead of a at 3 seeds" in verdict("a", "b", behind)
