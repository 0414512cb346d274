"""What seeded runs are worth: intervals on a mean, and whether two designs differ.

One home for the rule every published comparison follows: a difference counts only when its
95% interval excludes zero (Welch's t, which does not assume the two designs' seed noise is
equal); otherwise it is "not distinguishable at n seeds". With one seed there is no noise to
measure, so nothing is distinguishable.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

LEVEL = 0.95  # the confidence of every interval we publish


@dataclass(frozen=True)
class MeanInterval:
    """A mean over seeds with its t interval (low == high == mean for one seed)."""

    mean: float
    low: float
    high: float
    seeds: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def mean_interval(values: Sequence[float], level: float = LEVEL) -> MeanInterval:
    """The mean of `values` and its Student-t interval at `level`."""
    if not values:
        raise ValueError("no values to average")
    mean = statistics.fmean(values)
    if len(values) < 2:
        return MeanInterval(mean, mean, mean, len(values))
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * statistics.stdev(values)
    half /= math.sqrt(len(values))
    return MeanInterval(mean, mean - half, mean + half, len(values))


@dataclass(frozen=True)
class Difference:
    """mean(a) - mean(b), its Welch interval at LEVEL and two-sided p value."""

    delta: float
    low: float
    high: float
    p: float
    seeds: int  # the fewer seeds of the two designs

    @property
    def distinguishable(self) -> bool:
        return self.seeds >= 2 and (self.low > 0 or self.high < 0)


def difference(
    mean_a: float, sd_a: float, n_a: int, mean_b: float, sd_b: float, n_b: int
) -> Difference:
    """The difference of two designs' mean accuracies from their means, sample standard
    deviations and seed counts (Welch: unequal variances, Welch-Satterthwaite degrees of
    freedom)."""
    delta, seeds = mean_a - mean_b, min(n_a, n_b)
    if seeds < 2:
        return Difference(delta, -math.inf, math.inf, 1.0, seeds)
    var_a, var_b = sd_a**2 / n_a, sd_b**2 / n_b
    error = math.sqrt(var_a + var_b)
    if error == 0:  # identical seeds on both sides: the difference is exact
        return Difference(delta, delta, delta, 0.0 if delta else 1.0, seeds)
    freedom = (var_a + var_b) ** 2 / (var_a**2 / (n_a - 1) + var_b**2 / (n_b - 1))
    half = stats.t.ppf(0.5 + LEVEL / 2, freedom) * error
    p = 2 * stats.t.sf(abs(delta) / error, freedom)
    return Difference(delta, delta - half, delta + half, float(p), seeds)


def difference_of_values(a: Sequence[float], b: Sequence[float]) -> Difference:
    """`difference` of two lists of per-seed accuracies."""
    return difference(*_summary(a), *_summary(b))


def _summary(values: Sequence[float]) -> tuple[float, float, int]:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), spread, len(values)


def verdict(name_a: str, name_b: str, diff: Difference) -> str:
    """One sentence: by how much `name_a` leads `name_b`, the interval, and what it means."""
    if diff.seeds < 2:
        return (
            f"{name_a} against {name_b}: {diff.delta * 100:+.2f} points at one seed, "
            "not distinguishable (one seed measures no noise)"
        )
    if diff.distinguishable:
        winner, loser = (name_a, name_b) if diff.delta > 0 else (name_b, name_a)
        meaning = f"{winner} is ahead of {loser} at {diff.seeds} seeds"
    else:
        meaning = f"not distinguishable at {diff.seeds} seeds"
    return (
        f"{name_a} against {name_b}: {diff.delta * 100:+.2f} points "
        f"({LEVEL:.0%} interval {diff.low * 100:+.2f} to {diff.high * 100:+.2f}, "
        f"Welch p {_p_text(diff.p)}): {meaning}"
    )


def _p_text(p: float) -> str:
    return f"= {p:.2f}" if p >= 0.01 else "< 0.01"
