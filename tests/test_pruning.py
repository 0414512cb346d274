from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

import search_spaces
from nas.pruning import NO_PRUNING, DominancePruner, PeerCurve, RungPruner, make_pruner
from nas.record import store
from nas.train import Budget, TrainResult
from search_spaces import LANDMARKS
from tests.search_helpers import objective


def test_pruner_needs_several_cheaper_peers_ahead_by_the_margin():
    pruner = DominancePruner(margin=0.02, min_dominators=2)
    peers = [PeerCurve(100, (0.80, 0.85, 0.90)), PeerCurve(90, (0.81, 0.86, 0.91))]
    assert pruner.should_prune(1, 0.70, macs=150, peers=peers, total_epochs=3)
    # Not clearly worse: within the margin.
    assert not pruner.should_prune(1, 0.79, macs=150, peers=peers, total_epochs=3)
    # The peers cost more: they do not dominate.
    assert not pruner.should_prune(1, 0.70, macs=80, peers=peers, total_epochs=3)
    # One dominator is not enough.
    assert not pruner.should_prune(1, 0.70, macs=95, peers=peers, total_epochs=3)
    # Never at the last epoch (the trial is done anyway).
    assert not pruner.should_prune(3, 0.10, macs=150, peers=peers, total_epochs=3)
    assert pruner.stop_reason(1, 0.70, 150, peers, 3) == (
        "dominance: at least 2 finished trials of no more MACs were 0.02 or more ahead after "
        "epoch 1"
    )


def test_pruner_compares_the_same_epoch():
    pruner = DominancePruner(margin=0.02, min_dominators=1)
    peers = [PeerCurve(10, (0.50, 0.90))]
    assert not pruner.should_prune(1, 0.60, macs=20, peers=peers, total_epochs=3)
    assert pruner.should_prune(2, 0.60, macs=20, peers=peers, total_epochs=3)
    assert not NO_PRUNING.should_prune(2, 0.0, macs=20, peers=peers * 5, total_epochs=3)


# --- the rung pruner (asynchronous multi-objective successive halving) ---------------------


def test_rungs_are_the_epochs_min_epoch_times_powers_of_the_reduction_before_the_last():
    assert RungPruner(reduction=3).rungs(3) == (1,)
    assert RungPruner(reduction=3).rungs(10) == (1, 3, 9)
    assert RungPruner(reduction=2, min_epoch=2).rungs(9) == (2, 4, 8)
    assert RungPruner().rungs(1) == ()
    assert not RungPruner().should_prune(
        2, 0.0, macs=10**9, peers=[PeerCurve(1, (1.0,) * 9)] * 9, total_epochs=3
    )


def test_a_trial_continues_only_if_fewer_than_a_third_of_the_rung_rank_in_better_fronts():
    pruner = RungPruner(reduction=3, margin=0.01)
    # Eight peers at the rung: with the trial, nine, so fewer than three may rank ahead of it.
    peers = [
        PeerCurve(100, (0.90,)),  # front 0
        PeerCurve(50, (0.60,)),  # front 0: the cheapest
        PeerCurve(400, (0.70,)),  # front 1: behind (0.90, 100)
        PeerCurve(500, (0.65,)),  # front 2: behind (0.70, 400) as well
        PeerCurve(600, (0.50,)),  # front 3, and so on: each behind the one before
        PeerCurve(700, (0.40,)),
        PeerCurve(800, (0.30,)),
        PeerCurve(900, (0.20,)),
    ]
    # The most accurate: front 0, nobody ahead.
    assert pruner.ranking(1, 0.95, 300, peers, 3) == (0, 3)
    # Behind (0.90, 100): front 1, with the two of front 0 ahead -> continues.
    assert pruner.ranking(1, 0.80, 200, peers, 3) == (2, 3)
    assert not pruner.should_prune(1, 0.80, macs=200, peers=peers, total_epochs=3)
    # Behind (0.70, 400) as well: front 2, three ahead -> stops.
    assert pruner.ranking(1, 0.55, 450, peers, 3) == (3, 3)
    assert pruner.should_prune(1, 0.55, macs=450, peers=peers, total_epochs=3)
    # Where front 0 alone fills the rung's third, nothing behind it continues.
    assert pruner.should_prune(1, 0.80, macs=200, peers=peers[:3], total_epochs=3)


def test_differences_within_the_margin_tie_and_peers_short_of_the_rung_do_not_count():
    pruner = RungPruner(reduction=2, margin=0.02)
    ahead_by_noise = [PeerCurve(10, (0.815,)), PeerCurve(20, (0.81,)), PeerCurve(30, (0.805,))]
    assert pruner.ranking(1, 0.80, 100, ahead_by_noise, 3) == (0, 2)
    clearly_ahead = [PeerCurve(10, (0.85, 0.9)), PeerCurve(20, (0.84, 0.9))]
    assert pruner.should_prune(2, 0.80, macs=100, peers=clearly_ahead, total_epochs=4)
    # At rung 2 the peers with one epoch are not there: alone, the trial continues.
    one_epoch = [PeerCurve(10, (0.85,)), PeerCurve(20, (0.84,))]
    assert pruner.ranking(2, 0.80, 100, one_epoch, 4) == (0, 1)
    # The first trial to reach a rung always continues.
    assert not pruner.should_prune(1, 0.0, macs=10**9, peers=[], total_epochs=3)


def test_make_pruner_names_each_rule_and_refuses_others():
    assert isinstance(make_pruner("rungs"), RungPruner)
    assert make_pruner("dominance") == DominancePruner()
    assert make_pruner("none") is NO_PRUNING
    with pytest.raises(ValueError, match="unknown pruner 'asha': choose from rungs, dominance"):
        make_pruner("asha")


def scripted_train(accuracies):
    """A trainer whose epochs reach `accuracies`, asking on_epoch after each, as train does."""

    def train(model, data, budget, *, on_epoch, **_options):
        result = TrainResult()
        for epoch, accuracy in enumerate(accuracies[: budget.epochs], start=1):
            result.val_acc_curve.append(accuracy)
            result.train_loss_curve.append(1.0)
            if on_epoch(epoch, accuracy):
                result.stopped_early = epoch < budget.epochs
                break
        return result

    return train


@pytest.mark.parametrize("others_running", [0, 2])
def test_the_rung_is_read_from_the_storage_with_other_workers_running_trials(
    monkeypatch, tmp_path, others_running
):
    storage = f"sqlite:///{tmp_path / 'rungs.db'}"
    study = optuna.create_study(storage=storage, directions=["maximize", "minimize"])
    # Trials another worker is training: cheaper and more accurate at epoch 1.
    for _ in range(others_running):
        other = study.ask()
        store(other.set_user_attr, macs=1, val_acc_curve=[0.99])
    monkeypatch.setattr("nas._objective.train", scripted_train([0.5, 0.6, 0.7]))
    space = search_spaces.get("inception_to_xception")
    study.enqueue_trial(space.params_for(LANDMARKS["normal"]))
    run = objective(pruner=RungPruner(), budget=Budget(3, 300))
    study.optimize(run, n_trials=1)
    [trial] = [t for t in study.trials if t.state != TrialState.RUNNING]
    if others_running:
        # Three at the rung, two of them in a better front: the trial stops at the rung.
        assert trial.state == TrialState.PRUNED
        assert trial.user_attrs["pruned_at_epoch"] == 1
        assert trial.user_attrs["val_acc_curve"] == [0.5]
        assert trial.user_attrs["pruned_by"] == (
            "rungs: after epoch 1, 2 of the 3 trials there ranked in better fronts, "
            "and only 1 may continue"
        )
    else:
        # Alone at the rung, it trains to the end.
        assert trial.state == TrialState.COMPLETE
        assert trial.user_attrs["val_acc_curve"] == [0.5, 0.6, 0.7]
        assert "pruned_by" not in trial.user_attrs


def test_a_landmark_trains_to_the_end_whatever_its_rung(monkeypatch, tmp_path):
    study = optuna.create_study(directions=["maximize", "minimize"])
    for _ in range(2):
        store(study.ask().set_user_attr, macs=1, val_acc_curve=[0.99])
    monkeypatch.setattr("nas._objective.train", scripted_train([0.5, 0.6, 0.7]))
    space = search_spaces.get("inception_to_xception")
    study.enqueue_trial(space.params_for(LANDMARKS["normal"]))
    names = {str(LANDMARKS["normal"]): "normal"}
    run = objective(pruner=RungPruner(), budget=Budget(3, 300), landmark_names=names)
    study.optimize(run, n_trials=1)
    [trial] = [t for t in study.trials if t.state != TrialState.RUNNING]
    assert trial.user_attrs["landmark"] == "normal"
    assert trial.state == TrialState.COMPLETE and trial.user_attrs["val_acc_curve"] == [
        0.5,
        0.6,
        0.7,
    ]
