"""Pareto fronts and hypervolume for accuracy (maximized) against cost (minimized), pure Python.

Hypervolume is measured in a fixed normalized plane so that studies, samplers and seeds compare:
accuracy as it is (0..1), and cost as log10(MACs) mapped from [10^4, 10^9] onto [1, 0]
(cheaper is higher). The reference point is (accuracy 0, 10^9 MACs); the best possible
hypervolume is 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

LOG_MACS_RANGE = (4.0, 9.0)


def pareto_indices(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated (accuracy, cost) points, cheapest first.

    A point is dominated when another is at least as accurate and at most as costly, and
    strictly better in one of the two. Ties keep the first occurrence only.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][1], -points[i][0], i))
    front, best = [], -math.inf
    for index in order:
        accuracy = points[index][0]
        if accuracy > best:
            front.append(index)
            best = accuracy
    return front


def cost_score(macs: float) -> float:
    """Cost on the normalized axis: 1 at 10^4 MACs or fewer, 0 at 10^9 or more."""
    low, high = LOG_MACS_RANGE
    value = math.log10(max(float(macs), 1.0))
    return min(1.0, max(0.0, (high - value) / (high - low)))


def hypervolume(points: Sequence[tuple[float, float]]) -> float:
    """Area dominated by (accuracy, MACs) points in the normalized plane, in [0, 1]."""
    scored = sorted(
        ((min(1.0, max(0.0, acc)), cost_score(macs)) for acc, macs in points),
        key=lambda p: -p[1],
    )
    area, best_accuracy = 0.0, 0.0
    # Sweep from the cheapest (highest cost score) to the costliest: a point that beats every
    # cheaper one adds the band between its accuracy and theirs, spanning its cost score to 0.
    for accuracy, score in scored:
        if accuracy > best_accuracy:
            area += (accuracy - best_accuracy) * score
            best_accuracy = accuracy
    return area
