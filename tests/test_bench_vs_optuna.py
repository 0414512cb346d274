"""bench/vs_optuna.py's measure of a run, on a study whose trial times are known."""

from __future__ import annotations

import argparse
import datetime

import optuna
import pytest

from bench.vs_optuna import _measure, markdown

START = datetime.datetime(2026, 12, 4, 18, 0, tzinfo=datetime.timezone.utc)


def study_finishing_one_a_minute(count: int) -> optuna.Study:
    """`count` complete trials, the i-th finished i minutes after START."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    for i in range(1, count + 1):
        trial = optuna.trial.create_trial(values=[0.80 + 0.01 * i, 2e6])
        trial.datetime_start = START
        trial.datetime_complete = START + datetime.timedelta(minutes=i)
        study.add_trial(trial)
    return study


@pytest.mark.parametrize(
    "target, per_hour, to_target",
    [
        (5, 60.0, 5.0),  # reached at 5 minutes: the rate is over those 5, not the 40 allowed
        (10, 9.0, None),  # not reached: 6 trials over the whole 40 minutes
    ],
)
def test_a_run_that_reaches_its_trials_is_rated_over_the_time_it_took(target, per_hour, to_target):
    args = argparse.Namespace(trials=target, minutes=40.0, checkpoints=[3, 40])
    measured = _measure(study_finishing_one_a_minute(6), START.timestamp(), args)
    assert measured["finished"] == 6
    assert measured["trials_per_hour"] == pytest.approx(per_hour)
    assert measured["minutes_to_target"] == to_target
    assert measured["checkpoints"]["3"]["finished"] == 3
    assert measured["checkpoints"]["40"]["complete"] == 6

    run = {"tool": "ours", "seed": 0, **measured}
    result = {
        "benchmark": "python bench/vs_optuna.py",
        "machine": {"cpu": "AMD EPYC", "cores": 2, "date": "2026-12-04 18:00 UTC"},
        "minutes": 40.0,
        "dataset": "fashion_mnist",
        "trials": target,
        "checkpoints_min": [3, 40],
        "runs": [run],
        "summary": {},
    }
    row = next(line for line in markdown(result) if line.startswith("| ours | 0 |"))
    assert row.split(" | ")[5] == ("not reached" if to_target is None else f"{to_target:.1f}")
