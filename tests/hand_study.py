"""A small study written trial by trial (enqueue, ask, tell), so every figure's data is known.

Each trial is keyword data; the expected series, fronts and landmarks are worked out by hand in
the comments below and asserted by the tests of `dashboard.plot_data` and the figures.
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

from dashboard.storage import StudyInfo
from nas import decoupling_degree
from search_spaces import LANDMARKS
from tests.dashboard_fixtures import study_attrs

# Against MACs the front is trials 1 and 7 (the same point: 7 reuses 1's result), 0, then 6;
# trial 2 loses to trial 0 (cheaper and better). Against parameters it is 2, 0, 6.
# Trial 3 was pruned at 0.6; trial 4 was skipped by a constraint and trial 5 failed, both with
# a cost (the rug); trial 8 failed before its cost was counted (not drawn at all).
HAND_TRIALS = (
    dict(state="COMPLETE", val_acc=0.80, macs=4e6, params=40e3, arch="normal", landmark="normal"),
    dict(state="COMPLETE", val_acc=0.70, macs=1e6, params=10e3, arch="grouped"),
    dict(state="COMPLETE", val_acc=0.75, macs=5e6, params=8e3, arch="inception_v1"),
    dict(state="PRUNED", macs=2e6, params=20e3, arch="mobilenet", val_acc_curve=[0.5, 0.6]),
    dict(state="PRUNED", macs=9e7, params=9e5, arch="inception_v3", constraint="macs > 5e7"),
    dict(state="FAIL", macs=3e6, params=30e3, arch="extreme_inception", failure="OOM"),
    dict(
        state="COMPLETE", val_acc=0.85, macs=2e7, params=2e5, arch="xception", landmark="xception"
    ),
    dict(state="COMPLETE", val_acc=0.70, macs=1e6, params=10e3, arch="grouped", duplicate_of=1),
    dict(state="FAIL", failure="RuntimeError: cannot build"),
)


def hand_study(
    name: str = "hand", trials: tuple[dict, ...] = HAND_TRIALS
) -> tuple[StudyInfo, list[FrozenTrial]]:
    """The study's info and its trials, told in order (trial numbers follow the tuple)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=name, directions=["maximize", "minimize"])
    for spec in trials:
        spec = dict(spec)
        state, accuracy = TrialState[spec.pop("state")], spec.pop("val_acc", None)
        if "arch" in spec:
            arch = LANDMARKS[spec.pop("arch")]
            spec.update(arch=str(arch), decoupling=decoupling_degree(arch))
        study.enqueue_trial({}, user_attrs=spec)
        trial = study.ask()
        if state == TrialState.COMPLETE:
            study.tell(trial, [accuracy, spec["macs"]])
        else:
            study.tell(trial, state=state)
    info = StudyInfo(name, ("maximize", "minimize"), ("val_acc", "macs"), study_attrs())
    return info, study.get_trials()
