"""Pareto fronts of accuracy (maximized) against cost (minimized): the one front rule, the
hypervolume, the knee, and the picks that export offers.

The front rule, used by the search's report, the dashboard and export alike: a point is
dominated when another is at least as accurate and at most as costly, and strictly better in
one of the two. Equal points therefore do not dominate each other, and all of them are on the
front: a duplicate architecture reuses its original's result, and both trials are shown. Where
one representative of equal points is needed (the knee), the earliest trial is taken. A point
with a missing (NaN or infinite) coordinate is on no front.

Hypervolume is measured in a fixed normalized plane so that studies, samplers and seeds compare:
accuracy as it is (0..1), and cost as log10(MACs) mapped from [10^4, 10^9] onto [1, 0]
(cheaper is higher). The reference point is (accuracy 0, 10^9 MACs); the best possible
hypervolume is 1.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.record import trial_accuracy, trial_macs

LOG_MACS_RANGE = (4.0, 9.0)
# What each pick of export selects, in the words of the exported file's provenance note.
PICK_WORDS = {
    "best": "the most accurate",
    "knee": "the knee of the accuracy / log-MACs Pareto front",
    "smallest": "the one with the fewest MACs",
}
PICKS = tuple(PICK_WORDS)


def pareto_indices(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the (accuracy, cost) points on the front, cheapest first, equal ones by index.

    See the module docstring for the rule: equal points are all kept.
    """
    # Cost up, then accuracy down, then index: each cost's most accurate points come first.
    ranked = sorted(
        (cost, -accuracy, index)
        for index, (accuracy, cost) in enumerate(points)
        if math.isfinite(accuracy) and math.isfinite(cost)
    )
    front: list[int] = []
    best_cheaper = -math.inf  # the best accuracy among strictly cheaper points
    group_cost, group_top = None, -math.inf
    for cost, negated, index in ranked:
        if cost != group_cost:
            best_cheaper = max(best_cheaper, group_top)
            group_cost, group_top = cost, -negated
        if -negated == group_top and group_top > best_cheaper:
            front.append(index)
    return front


def nondominated_indices(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the points, every coordinate minimized, that no other point dominates: the
    front rule above in any number of objectives (any Optuna study's), equal points all kept.

    Every point must have finite coordinates (the caller leaves out those that do not).
    """
    if points and len(points[0]) == 2:  # the 2-D rule as written once, above
        return sorted(pareto_indices([(-first, second) for first, second in points]))
    # Lexicographic order: whatever dominates a point comes before it, and is on the front
    # itself or dominated by a point that is, so comparing with the front so far suffices.
    array = np.asarray(points, float).reshape(len(points), -1)
    front: list[int] = []
    for index in np.lexsort(array.T[::-1]).tolist():
        kept = array[front]
        if not ((kept <= array[index]).all(axis=1) & (kept < array[index]).any(axis=1)).any():
            front.append(index)
    return sorted(front)


def front_ranks(points: Sequence[tuple[float, float]], margin: float = 0.0) -> list[int]:
    """Non-dominated sorting of (accuracy, cost) points: each point's front, 0 for the points
    nothing dominates, 1 for those only front 0 dominates, and so on.

    With `margin` 0 dominance is the front rule above; with a margin, a point dominates another
    only when it is at most as costly and more accurate by at least `margin`, so that accuracy
    differences within the noise rank as ties. Points with a missing coordinate rank last.
    """
    finite = [
        i for i, (acc, cost) in enumerate(points) if math.isfinite(acc) and math.isfinite(cost)
    ]
    ranks = [len(points)] * len(points)
    # Cheapest first (ties most accurate first): whatever dominates a point comes before it,
    # so one pass gives each point 1 + the highest rank of those dominating it.
    order = sorted(finite, key=lambda i: (points[i][1], -points[i][0]))
    for position, index in enumerate(order):
        accuracy, cost = points[index]
        rank = 0
        for earlier in order[:position]:
            other_accuracy, other_cost = points[earlier]
            if _dominates(other_accuracy, other_cost, accuracy, cost, margin):
                rank = max(rank, ranks[earlier] + 1)
        ranks[index] = rank
    return ranks


def _dominates(
    accuracy: float, cost: float, other_accuracy: float, other_cost: float, margin: float
) -> bool:
    if cost > other_cost:
        return False
    if margin > 0:
        return accuracy >= other_accuracy + margin
    return accuracy >= other_accuracy and (accuracy > other_accuracy or cost < other_cost)


def distinct_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """The front with one index per distinct point, the lowest: cheapest (least accurate)
    first, each point strictly costlier and strictly more accurate than the one before."""
    front, seen = [], set()
    for index in pareto_indices(points):
        if tuple(points[index]) not in seen:
            seen.add(tuple(points[index]))
            front.append(index)
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


def knee_index(points: Sequence[tuple[float, float]]) -> int:
    """The index of the knee of (accuracy, MACs) points; equal points count as the first.

    On the front, accuracy and log10(MACs) are each scaled to [0, 1] between its cheapest and
    its most accurate point; the knee lies farthest above the straight line joining the two
    (the largest accuracy gain for its cost). A front of one or two points has no knee: its
    most accurate point is taken.

    Raises:
        ValueError: when no point has finite coordinates.
    """
    front = [(index, *points[index]) for index in distinct_front(points)]
    if not front:
        raise ValueError("no point with a finite accuracy and cost")
    if len(front) <= 2:
        return front[-1][0]
    low_acc, high_acc = front[0][1], front[-1][1]
    low_cost, high_cost = (math.log10(max(1.0, front[i][2])) for i in (0, -1))
    cost_span = (high_cost - low_cost) or 1.0  # every cost below one MAC: only accuracy counts

    def height_above_chord(point: tuple[int, float, float]) -> float:
        accuracy = (point[1] - low_acc) / (high_acc - low_acc)
        cost = (math.log10(max(1.0, point[2])) - low_cost) / cost_span
        return accuracy - cost

    return max(front, key=height_above_chord)[0]


def limits_text(min_acc: float | None, max_mmacs: float | None) -> list[str]:
    """The pick filters in words, e.g. ['accuracy >= 0.9', 'at most 5 M MACs']."""
    limits = [f"accuracy >= {min_acc}"] * (min_acc is not None)
    return limits + [f"at most {max_mmacs} M MACs"] * (max_mmacs is not None)


def pick_trial(
    study: optuna.Study,
    pick: str,
    min_acc: float | None = None,
    max_mmacs: float | None = None,
    exclude: Collection[int] = (),
    accuracies: Mapping[int, float] | None = None,
) -> FrozenTrial:
    """The complete trial that `pick` selects among those that meet the filters.

    The accuracy of a trial is its validation accuracy, or, where `accuracies` is given (by
    trial number: confirmed means, say), that value, and only the trials it holds are picked.

    best: the highest validation accuracy (ties: fewer MACs, then the earlier trial).
    smallest: the fewest MACs (ties: higher accuracy, then the earlier trial).
    knee: the knee of their accuracy / MACs front (`knee_index`).

    Args:
        study: an (accuracy, MACs[, latency]) study.
        pick: "best", "knee" or "smallest".
        min_acc: only trials with validation accuracy >= this (0..1).
        max_mmacs: only trials with at most this many million MACs.
        exclude: numbers of trials not to pick (e.g. ones whose architecture cannot be read).

    Raises:
        ValueError: for an unknown pick, or when no complete trial meets the filters.
    """
    if pick not in PICKS:
        raise ValueError(f"unknown pick {pick!r}: choose from {', '.join(PICKS)}")
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    candidates = []
    for trial in sorted(complete, key=lambda t: t.number):
        if trial.number in exclude:
            continue
        accuracy, macs = trial_accuracy(trial), trial_macs(trial)
        if accuracies is not None:
            accuracy = accuracies.get(trial.number)
        if accuracy is None or macs is None:
            continue
        if min_acc is not None and accuracy < min_acc:
            continue
        if max_mmacs is not None and macs > max_mmacs * 1e6:
            continue
        candidates.append((trial, accuracy, macs))
    if not candidates:
        limits = limits_text(min_acc, max_mmacs)
        measured = "" if accuracies is None else f" ({len(accuracies)} with runs to judge by)"
        raise ValueError(
            f"no trial to pick in study {study.study_name!r}: {len(complete)} complete trials"
            + measured
            + (f", none with {' and '.join(limits)}" if limits and complete else "")
        )
    if pick == "best":
        return min(candidates, key=lambda c: (-c[1], c[2], c[0].number))[0]
    if pick == "smallest":
        return min(candidates, key=lambda c: (c[2], -c[1], c[0].number))[0]
    return candidates[knee_index([(c[1], c[2]) for c in candidates])][0]
