"""A study of the search's schema with a known front, and runs of nas.confirm stored in it:
shared by the confirmation tests and the dashboard's."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState, create_trial

import nas
from nas.cost import count_cost
from nas.record import DONE, ConfirmationRun
from search_spaces import LANDMARKS

DIGITS_SHAPE = (1, 8, 8)
SMALL = "stem8-c16_d1_s2_k3_gdw_pafter_f0_a1_r0-c16_d1_s2_k3_g1_pnone_f0_a0_r0"
MID = "stem8-c16_d1_s2_k3_g1_pnone_f0_a0_r0-c32_d1_s2_k3_g1_pnone_f0_a0_r0"
LARGE = "stem16-c32_d1_s2_k3_g1_pnone_f0_a0_r0-c64_d1_s2_k3_g1_pnone_f0_a0_r0"
DOMINATED = "stem16-c32_d2_s2_k3_g1_pnone_f0_a0_r0-c64_d1_s2_k3_g1_pnone_f0_a0_r0"


def make_study(url: str, *, seed: int = 0) -> optuna.Study:
    """A study of the search's schema on digits: three front points (MID the knee), one
    dominated trial, a pruned one, and two landmarks."""
    study = optuna.create_study(study_name="s", storage=url, directions=["maximize", "minimize"])
    settings = {
        "space": "inception_to_xception",
        "dataset": "digits",
        "budget": "2x300",
        "batch_size": 32,
        "seed": seed,
        "version": nas.__version__,
        "objectives": ["val_acc", "macs"],
        "input_shape": list(DIGITS_SHAPE),
        "num_classes": 10,
        "device": "cpu",
    }
    for key, value in settings.items():
        study.set_user_attr(key, value)
    rows = [
        (SMALL, 0.60, None),
        (MID, 0.85, None),
        (LARGE, 0.87, None),
        (DOMINATED, 0.70, None),
        (str(LANDMARKS["normal"]), 0.80, "normal"),
        (str(LANDMARKS["mobilenet"]), 0.50, "mobilenet"),
    ]
    for arch, accuracy, landmark in rows:
        macs = count_cost(arch, DIGITS_SHAPE, 10).macs
        attrs = {"arch": arch, "macs": macs, "budget": "2x300", "val_acc_curve": [accuracy]}
        if landmark:
            attrs["landmark"] = landmark
        study.add_trial(
            create_trial(state=TrialState.COMPLETE, values=[accuracy, macs], user_attrs=attrs)
        )
    study.add_trial(create_trial(state=TrialState.PRUNED, user_attrs={"arch": SMALL}))
    # A trial with no readable network, ahead of everything: nothing to confirm there.
    study.add_trial(
        create_trial(state=TrialState.COMPLETE, values=[0.99, 1.0], user_attrs={"arch": "c3x"})
    )
    return study


def store_runs(
    study: optuna.Study, trial: int, arch: str, accuracies, epochs: int | None = None
) -> None:
    """Finished runs of `trial` at seeds 1, 2, ..., one per accuracy (final runs with
    `epochs`), as nas.confirm stores them."""
    for seed, accuracy in enumerate(accuracies, 1):
        run = ConfirmationRun(
            trial, seed, arch, DONE, "test:1", 1000.0 + seed, (accuracy,), 1.0, epochs=epochs
        )
        study.set_user_attr(run.key, run.to_attr())


MOBILENET = str(LANDMARKS["mobilenet"])
# Trials of make_study: 0 SMALL, 1 MID (the knee), 2 LARGE, 5 the mobilenet landmark.
PROXY = {0: [0.61, 0.60, 0.62], 1: [0.86, 0.87, 0.85], 2: [0.84, 0.85, 0.845]}
PROXY[5] = [0.855, 0.86, 0.85]
FINAL = {1: [0.930, 0.931, 0.932], 2: [0.940, 0.941, 0.942], 5: [0.920, 0.925, 0.930]}
ARCHS = {0: SMALL, 1: MID, 2: LARGE, 5: MOBILENET}


def confirmed_study(url: str) -> optuna.Study:
    """make_study with runs of nas.confirm stored: PROXY confirmations and FINAL runs of 10
    epochs, at seeds 1-3."""
    study = make_study(url)
    for trial, accuracies in PROXY.items():
        store_runs(study, trial, ARCHS[trial], accuracies)
    for trial, accuracies in FINAL.items():
        store_runs(study, trial, ARCHS[trial], accuracies, epochs=10)
    return study
