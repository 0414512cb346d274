"""The trial record: its keys, a round trip through real storages, tolerant reading, the facts."""

from __future__ import annotations

import math
from dataclasses import asdict

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from nas._worker import MAX_RETRIES, enqueue_retry
from nas.record import (
    COUNTED_TRIAL_KEYS,
    KEYS,
    TrialRecord,
    counts_toward_target,
    finished_count,
    is_skipped,
    objective_value,
    read_attr,
    store,
    trial_accuracy,
    trial_macs,
)

# The keys studies have stored since the first version: renaming one would orphan them.
STORED_KEYS = {
    "arch", "macs", "params", "decoupling", "budget", "device", "landmark", "constraint",
    "latency_ms", "val_acc_curve", "train_loss_curve", "train_seconds", "eval_seconds",
    "failure", "pruned_at_epoch", "pruned_by", "duplicate_of", "worker", "retry_of",
    "retry_history",
}  # fmt: skip

FULL = TrialRecord(
    arch="stem16-c32_d1_s1_k3_g1_pnone_f0_a0_r0",
    macs=123_456,
    params=7_890,
    decoupling=0.25,
    budget="4x600",
    device="cpu",
    landmark="normal",
    constraint="0.12 MMACs > --max-mmacs 0.1",
    latency_ms=0.5,
    val_acc_curve=(0.5, 0.75),
    train_loss_curve=(2.0, math.nan),
    train_seconds=1.5,
    eval_seconds=0.25,
    failure="error: boom",
    pruned_at_epoch=2,
    pruned_by="rungs: after epoch 2, 5 of the 9 trials there ranked in better fronts",
    duplicate_of=3,
    worker="host:42",
    retry_of=1,
    retry_history=(0, 1),
)


def test_the_record_names_exactly_the_stored_keys():
    assert set(KEYS) == STORED_KEYS
    assert COUNTED_TRIAL_KEYS < STORED_KEYS
    assert all(getattr(FULL, key) is not None for key in KEYS)


def same(left: TrialRecord, right: TrialRecord) -> bool:
    """Equal field by field, NaN equal to NaN (a diverged loss keeps its NaN)."""
    return repr(left) == repr(right)


@pytest.mark.parametrize("where", ["memory", "sqlite"])
def test_a_record_round_trips_through_a_real_trial(where, tmp_path):
    storage = None if where == "memory" else f"sqlite:///{tmp_path / 'r.db'}"
    study = optuna.create_study(storage=storage, directions=["maximize", "minimize"])
    trial = study.ask()
    store(trial.set_user_attr, **asdict(FULL))
    study.tell(trial, [0.75, 123_456.0])
    frozen = study.get_trials()[0]
    assert set(frozen.user_attrs) == STORED_KEYS
    assert frozen.user_attrs["val_acc_curve"] == [0.5, 0.75]  # stored as JSON lists
    assert same(TrialRecord.from_trial(frozen), FULL)


def test_store_writes_only_given_fields_and_refuses_unknown_names():
    written: dict = {}
    store(written.__setitem__, macs=10, landmark=None, val_acc_curve=[0.5])
    assert written == {"macs": 10, "val_acc_curve": [0.5]}
    with pytest.raises(TypeError, match="mac"):
        store(written.__setitem__, mac=10)
    assert TrialRecord(val_acc_curve=[0.5]) == TrialRecord(val_acc_curve=(0.5,))


GARBAGE = {
    "arch": 3,
    "macs": "lots",
    "params": 1.5,
    "decoupling": "0.5",
    "budget": ["4", "600"],
    "landmark": {"name": "x"},
    "latency_ms": math.nan,
    "val_acc_curve": [0.1, "x"],
    "train_loss_curve": "2.0",
    "train_seconds": True,
    "pruned_at_epoch": None,
    "duplicate_of": False,
    "retry_history": [0, "1"],
    "worker": 7,
    "someone_elses": {"a": 1},
}


def test_old_or_foreign_attributes_read_as_none_never_raise():
    old = create_trial(state=TrialState.PRUNED, user_attrs=GARBAGE)
    assert TrialRecord.from_trial(old) == TrialRecord()
    assert TrialRecord.from_trial(create_trial(state=TrialState.FAIL)) == TrialRecord()
    assert trial_macs(old) is None and trial_accuracy(old) is None
    # Integral floats (a JSON writer that knows no ints) are still counts.
    assert TrialRecord.from_attrs({"macs": 1000.0, "retry_history": [1.0]}).macs == 1000
    with pytest.raises(KeyError, match="not a trial record field"):
        read_attr(old, "val_acc")


def test_accuracy_and_macs_come_from_values_then_attributes():
    complete = create_trial(
        state=TrialState.COMPLETE, values=[0.8, 2000.0, 0.3], user_attrs={"macs": 1999}
    )
    assert trial_accuracy(complete) == 0.8
    assert trial_macs(complete) == 2000.0
    assert objective_value(complete, "latency_ms") == 0.3
    pruned = create_trial(state=TrialState.PRUNED, user_attrs={"macs": 500, "latency_ms": 0.1})
    assert trial_macs(pruned) == 500.0 and trial_accuracy(pruned) is None
    assert objective_value(pruned, "latency_ms") == 0.1
    # A study whose objectives are (accuracy, latency) has no MACs among its values.
    two = create_trial(state=TrialState.COMPLETE, values=[0.8, 0.4], user_attrs={"macs": 7})
    assert objective_value(two, "macs", ("val_acc", "latency_ms")) == 7.0
    assert objective_value(two, "latency_ms", ("val_acc", "latency_ms")) == 0.4


def test_skipped_trials_never_count_toward_the_target():
    study = optuna.create_study(directions=["maximize", "minimize"])
    constraint = TrialRecord(macs=10**9, constraint="1000 MMACs > --max-mmacs 1")
    trials = {
        "complete": create_trial(state=TrialState.COMPLETE, values=[0.5, 1.0]),
        "stopped": create_trial(state=TrialState.PRUNED, user_attrs={"pruned_at_epoch": 1}),
        "skipped": create_trial(state=TrialState.PRUNED, user_attrs=constraint.to_user_attrs()),
        "failed": create_trial(state=TrialState.FAIL, user_attrs={"failure": "oom"}),
    }
    study.add_trials(trials.values())
    assert [name for name, t in trials.items() if is_skipped(t)] == ["skipped"]
    assert [name for name, t in trials.items() if counts_toward_target(t)] == [
        "complete",
        "stopped",
    ]
    assert finished_count(study) == 2


def test_a_retry_carries_the_landmark_and_the_history_of_its_failures():
    study = optuna.create_study(directions=["maximize", "minimize"])
    distributions = {"x": optuna.distributions.CategoricalDistribution(["a", "b"])}
    attrs = TrialRecord(landmark="xception", worker="host:1", retry_history=(0,)).to_user_attrs()
    study.add_trial(create_trial(state=TrialState.FAIL))
    dead = create_trial(
        state=TrialState.FAIL, params={"x": "a"}, distributions=distributions, user_attrs=attrs
    )
    study.add_trial(dead)
    dead = study.get_trials()[1]
    assert enqueue_retry(study, dead)
    waiting = study.get_trials(states=(TrialState.WAITING,))[0]
    assert waiting.user_attrs == {"landmark": "xception", "retry_of": 1, "retry_history": [0, 1]}
    assert TrialRecord.from_trial(waiting).retry_history == (0, 1)
    # Once the parameters have died more than MAX_RETRIES times, they are given up.
    given_up = create_trial(
        state=TrialState.FAIL,
        params={"x": "a"},
        distributions=distributions,
        user_attrs=TrialRecord(retry_history=tuple(range(MAX_RETRIES))).to_user_attrs(),
    )
    assert not enqueue_retry(study, given_up)
