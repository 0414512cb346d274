"""The one front rule, hypervolume, the knee and the picks; the report and dashboard agree."""

from __future__ import annotations

import math
import random

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from dashboard.data import hypervolume_series, trials_frame
from dashboard.storage import StudyInfo
from nas._report import ARCH_INDENT, Progress, front_table, summary
from nas.pareto import (
    cost_score,
    distinct_front,
    hypervolume,
    knee_index,
    pareto_indices,
    pick_trial,
)
from nas.record import TrialRecord

# Front cheapest first: 0.40@5, 0.50@10, 0.60@20 (twice), 0.70@100; 0.55@30 is dominated.
POINTS = [(0.50, 10), (0.60, 20), (0.55, 30), (0.60, 20), (0.40, 5), (0.70, 100)]


def test_front_is_cheapest_first_and_keeps_every_copy_of_an_equal_point():
    assert pareto_indices(POINTS) == [4, 0, 1, 3, 5]
    # One representative per distinct point: the lowest index.
    assert distinct_front(POINTS) == [4, 0, 1, 5]
    assert distinct_front([POINTS[3], *POINTS]) == [5, 1, 0, 6]


def test_front_leaves_out_points_without_a_finite_coordinate():
    points = [(0.5, 10.0), (math.nan, 1.0), (0.9, math.nan), (0.99, math.inf), (0.6, 20.0)]
    assert pareto_indices(points) == [0, 4]
    assert pareto_indices([]) == []


def test_front_agrees_with_brute_force_on_ties():
    rng = random.Random(0)
    points = [(rng.randint(1, 6) / 10, rng.randint(1, 6)) for _ in range(80)]

    def dominated(i: int) -> bool:
        acc, cost = points[i]
        others = points[:i] + points[i + 1 :]
        return any(a >= acc and c <= cost and (a > acc or c < cost) for a, c in others)

    expected = sorted((i for i in range(80) if not dominated(i)), key=lambda i: (points[i][1], i))
    assert pareto_indices(points) == expected
    assert len(expected) > len({points[i] for i in expected})  # the draw has equal points


def test_hypervolume_is_normalized_and_monotone():
    assert hypervolume([]) == 0.0
    assert hypervolume([(1.0, 1e4)]) == pytest.approx(1.0)
    assert hypervolume([(0.5, 1e4)]) == pytest.approx(0.5)
    one = hypervolume([(0.8, 1e6)])
    assert one == pytest.approx(0.8 * cost_score(1e6))
    assert hypervolume([(0.8, 1e6), (0.6, 1e5)]) > one  # a cheaper point adds area
    assert hypervolume([(0.8, 1e6), (0.7, 2e6)]) == pytest.approx(one)  # a dominated one adds none
    assert hypervolume([(0.8, 1e6), (0.8, 1e6)]) == pytest.approx(one)  # so does a duplicate


# Accuracy scaled 0, .83, .95, 1 against log-MACs 0, .25, .75, 1: index 1 is the knee.
KNEE_FRONT = [(0.5, 1e4), (0.85, 1e5), (0.9, 1e7), (0.92, 1e8)]


def test_knee_is_the_point_farthest_above_the_chord():
    assert knee_index(KNEE_FRONT) == 1
    # A third point almost as accurate at twice the knee's cost lies higher: the new knee.
    assert knee_index([*KNEE_FRONT[:2], (0.91, 2e5), KNEE_FRONT[3]]) == 2
    # Dominated and unusable points change nothing.
    assert knee_index([(0.6, 1e8), *KNEE_FRONT, (math.nan, 1e3), (0.4, 1e6)]) == 2


def test_knee_of_equal_points_is_the_first_of_them():
    assert knee_index([KNEE_FRONT[0], (0.85, 1e5), *KNEE_FRONT[1:]]) == 1
    assert knee_index([*KNEE_FRONT, (0.85, 1e5)]) == 1


def test_a_front_of_one_or_two_points_has_no_knee_but_its_most_accurate():
    assert knee_index([(0.7, 1e5)]) == 0
    assert knee_index([(0.9, 1e7), (0.5, 1e4), (0.6, 1e8)]) == 0
    assert knee_index([(0.5, 1e4), (0.9, 1e7), (0.9, 1e7)]) == 1
    # Every cost below one MAC: the log-cost span is zero, accuracy alone decides.
    assert knee_index([(0.1, 0.1), (0.3, 0.2), (0.9, 0.5)]) == 2
    with pytest.raises(ValueError, match="no point"):
        knee_index([(math.nan, 1.0)])


def crafted_study(points: list[tuple[float, float]]) -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"])
    for accuracy, macs in points:
        attrs = TrialRecord(arch="a", macs=int(macs)).to_user_attrs()
        study.add_trial(
            create_trial(state=TrialState.COMPLETE, values=[accuracy, macs], user_attrs=attrs)
        )
    return study


def test_picks_break_ties_by_cost_then_the_earlier_trial():
    # 0 and 3 tie on accuracy (3 cheaper); 1 and 4 are equal (the earlier, 1, wins).
    study = crafted_study([(0.9, 1e6), (0.5, 1e3), (0.8, 1e4), (0.9, 1e5), (0.5, 1e3)])
    assert pick_trial(study, "best").number == 3
    assert pick_trial(study, "smallest").number == 1
    assert pick_trial(study, "knee").number == 2
    assert pick_trial(study, "knee", max_mmacs=0.01).number == 2  # front of two: most accurate
    with pytest.raises(ValueError, match="none with accuracy >= 0.95"):
        pick_trial(study, "best", min_acc=0.95)


# --- the search's report and the dashboard draw the same front -------------------------------


def study_with_duplicates() -> optuna.Study:
    """A study written as the search writes it: trial 4 reuses trial 1, trial 5 reuses 3."""
    study = optuna.create_study(study_name="dups", directions=["maximize", "minimize"])
    plan = [
        ("a", 0.50, 20_000, None),
        ("b", 0.80, 300_000, None),
        ("c", 0.60, 900_000, None),  # dominated by b
        ("d", 0.90, 4_000_000, None),
        ("b", 0.80, 300_000, 1),
        ("d", 0.90, 4_000_000, 3),
    ]
    for arch, accuracy, macs, original in plan:
        record = TrialRecord(
            arch=arch,
            macs=macs,
            params=macs // 100,
            decoupling=0.5,
            latency_ms=1.0,
            val_acc_curve=(accuracy,),
            train_seconds=0.0 if original is not None else 3.0,
            duplicate_of=original,
        )
        study.enqueue_trial({}, user_attrs=record.to_user_attrs())
        trial = study.ask()
        study.tell(trial, [accuracy, float(macs)])
    return study


def test_report_and_dashboard_show_the_same_front_with_duplicates():
    study = study_with_duplicates()
    trials = study.get_trials()
    info = StudyInfo("dups", ("maximize", "minimize"), ("val_acc", "macs"), {"space": "tiny"})
    frame = trials_frame(info, trials)
    on_dashboard = frame.loc[frame["pareto_macs"], "number"].tolist()
    # A row of numbers per trial; its arch string follows on indented lines of its own.
    lines = front_table(trials).splitlines()[1:]
    table = [line for line in lines if not line.startswith(" " * ARCH_INDENT)]
    arch_below = {int(row.split()[0]): lines[lines.index(row) + 1].strip() for row in table}
    assert arch_below == {0: "a", 1: "b", 3: "d", 4: "b", 5: "d"}
    in_table = [int(row.split()[0]) for row in table]
    assert sorted(in_table) == sorted(on_dashboard) == [0, 1, 3, 4, 5]
    assert "(duplicate of trial 1)" in table[in_table.index(4)]
    assert "duplicate" not in table[in_table.index(1)]
    assert "| front 5 |" in Progress(study, 6).line()
    # The hypervolume the search prints is the dashboard's last one.
    printed = float(summary(study, "sqlite:///x.db", 1.0).split("hypervolume ")[1].split()[0])
    assert printed == pytest.approx(hypervolume_series(frame)["hypervolume"].iloc[-1], abs=1e-4)
    assert pick_trial(study, "knee").number == 1  # the original, not its duplicate 4


def test_front_ranks_peel_the_fronts_and_a_margin_makes_noise_a_tie():
    from nas.pareto import front_ranks

    points = [(0.8, 10), (0.9, 20), (0.7, 20), (0.85, 5), (0.85, 5), (math.nan, 1)]
    # (0.85, 5) twice: equal points do not dominate each other, both on front 0.
    assert front_ranks(points) == [1, 0, 2, 0, 0, len(points)]
    front = [i for i, rank in enumerate(front_ranks(points)) if rank == 0]
    assert front == sorted(pareto_indices(points))  # front 0 is the front rule's front
    assert front_ranks([(0.8, 10), (0.805, 20), (0.7, 20)], margin=0.01) == [0, 0, 1]
