"""The data step: the storage reader, the trials frame, Pareto membership, derived tables."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from dashboard.data import (
    MIN_IMPORTANCE_TRIALS,
    FrameCache,
    hypervolume_series,
    param_importances,
    pareto_mask,
    segments_label,
    spectrum_frame,
    state_counts,
    state_summary,
    trials_frame,
)
from dashboard.storage import StorageReader, StudyInfo
from nas.pareto import hypervolume
from nas.storage import OK
from search_spaces import LANDMARKS
from tests.dashboard_fixtures import (
    add_complete_trials,
    build_study,
    make_trials,
    shared_study,
    study_attrs,
)
from tests.test_blocks import EARLIER_BLOCKS

INFO = StudyInfo("demo", ("maximize", "minimize"), ("val_acc", "macs"), study_attrs())


@pytest.fixture(scope="session")
def demo_url(tmp_path_factory):
    return shared_study(tmp_path_factory, count=30, latency=True, running=1)


def test_pareto_mask_keeps_only_undominated_points():
    cost = np.array([1.0, 2.0, 2.0, 3.0, 4.0, 5.0, np.nan])
    accuracy = np.array([0.5, 0.7, 0.6, 0.7, 0.9, 0.8, 0.99])
    # (2, .6) loses to (2, .7); (3, .7) to (2, .7); (5, .8) to (4, .9); NaN cost is never on it.
    assert pareto_mask(cost, accuracy).tolist() == [True, True, False, False, True, False, False]


def test_pareto_mask_keeps_both_copies_of_a_duplicate_result():
    assert pareto_mask([1.0, 1.0, 2.0], [0.8, 0.8, 0.7]).tolist() == [True, True, False]


def test_pareto_mask_agrees_with_brute_force():
    rng = np.random.default_rng(0)
    cost, accuracy = rng.integers(1, 8, 60).astype(float), rng.integers(1, 8, 60) / 10
    brute = [
        not any(
            c <= cost[i] and a >= accuracy[i] and (c < cost[i] or a > accuracy[i])
            for c, a in zip(cost, accuracy)
        )
        for i in range(60)
    ]
    assert pareto_mask(cost, accuracy).tolist() == brute


def test_frame_has_one_row_per_trial_with_states_and_landmarks():
    trials = make_trials(40, seed=3)
    frame = trials_frame(INFO, trials)
    assert len(frame) == len(trials)
    assert frame["number"].tolist() == [t.number for t in trials]
    named = frame[frame["landmark"] != ""]
    assert named["landmark"].tolist() == list(LANDMARKS)
    assert named["arch"].tolist() == [str(arch) for arch in LANDMARKS.values()]
    assert (frame.loc[frame["landmark"] == "normal", "decoupling"] == 0).all()
    assert (frame.loc[frame["landmark"] == "xception", "decoupling"] == 1).all()


def test_pruned_and_failed_trials_have_no_accuracy_and_are_never_on_a_front():
    frame = trials_frame(INFO, make_trials(40, seed=3))
    unfinished = frame[frame["state"] != "COMPLETE"]
    assert set(unfinished["state"]) == {"PRUNED", "FAIL"}
    assert unfinished["val_acc"].isna().all()
    assert not unfinished[["pareto_macs", "pareto_params", "pareto_latency_ms"]].any().any()
    pruned = frame[(frame["state"] == "PRUNED") & (frame["constraint"] == "")]
    assert pruned["last_acc"].notna().all() and (pruned["pruned_at_epoch"] == 2).all()
    skipped = frame[frame["constraint"] != ""]
    assert len(skipped) == 2 and skipped["last_acc"].isna().all()
    assert (frame.loc[frame["state"] == "FAIL", "failure"] != "").all()


def test_front_is_the_undominated_complete_trials_of_each_study():
    first = trials_frame(INFO, make_trials(30, seed=1))
    second = trials_frame(INFO._replace(name="other"), make_trials(30, seed=2))
    import pandas as pd

    from dashboard.data import add_pareto_columns

    both = add_pareto_columns(pd.concat([first, second], ignore_index=True))
    for name, alone in (("demo", first), ("other", second)):
        mine = both[both["study"] == name].reset_index(drop=True)
        assert mine["pareto_macs"].tolist() == alone["pareto_macs"].tolist()
        complete = alone[alone["state"] == "COMPLETE"]
        for row in complete[complete["pareto_macs"]].itertuples():
            assert not (
                (complete["macs"] <= row.macs)
                & (complete["val_acc"] >= row.val_acc)
                & ((complete["macs"] < row.macs) | (complete["val_acc"] > row.val_acc))
            ).any()


def test_duplicates_reuse_an_earlier_result():
    frame = trials_frame(INFO, make_trials(40, seed=3))
    duplicates = frame[frame["duplicate_of"].notna()]
    assert len(duplicates) >= 1
    for row in duplicates.itertuples():
        original = frame[frame["number"] == int(row.duplicate_of)].iloc[0]
        assert (row.arch, row.val_acc, row.macs) == (
            original.arch,
            original.val_acc,
            original.macs,
        )


def test_hypervolume_is_non_decreasing_and_matches_a_hand_count():
    frame = trials_frame(INFO, make_trials(40, seed=3))
    series = hypervolume_series(frame)
    assert len(series) == 47
    assert (np.diff(series["hypervolume"]) >= -1e-12).all()
    complete = frame[frame["state"] == "COMPLETE"]
    # The same number the search prints: nas.pareto's normalized hypervolume of all complete.
    expected = hypervolume(list(zip(complete["val_acc"], complete["macs"])))
    assert series["hypervolume"].iloc[-1] == pytest.approx(expected)
    assert 0 < expected <= 1


def test_state_counts_and_summary():
    frame = trials_frame(INFO, make_trials(40, seed=3))
    counts = dict(zip(state_counts(frame)["state"], state_counts(frame)["trials"]))
    assert counts["SKIPPED"] == 2 and counts["FAIL"] == 2 and counts["PRUNED"] == 4
    assert counts["COMPLETE"] == len(frame) - 8
    assert state_summary(frame) == (
        f"47 trials: {counts['COMPLETE']} complete, 6 pruned (2 skipped by a constraint), 2 failed"
    )


def test_spectrum_positions_follow_segments_and_decoupling():
    assert segments_label(str(LANDMARKS["normal"])) == "1"
    assert segments_label(str(LANDMARKS["xception"])) == "dw"
    assert segments_label("not an arch") == "unknown"
    frame = trials_frame(INFO, make_trials(30, seed=2, space="xception_spectrum"))
    done, order = spectrum_frame(frame, "segments")
    assert (done["state"] == "COMPLETE").all()
    assert order == sorted(order, key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0))
    assert order[-1] == "dw"
    done, order = spectrum_frame(frame, "decoupling")
    assert order[-1] == "0.9-1.0" and set(done["position"]) == set(order)


def test_reader_opens_sqlite_read_only(demo_url, tmp_path):
    reader = StorageReader(demo_url)
    assert reader.status().kind == OK
    [info] = reader.studies()
    assert info.name == "demo" and info.objectives == ("val_acc", "macs", "latency_ms")
    assert info.directions == ("maximize", "minimize", "minimize")
    with pytest.raises(Exception, match="(?i)readonly|read-only|commit"):
        reader.study("demo").set_user_attr("touched", True)
    reader.close()


def test_frame_cache_rebuilds_only_when_a_study_changes(tmp_path):
    url = f"sqlite:///{tmp_path / 'live.db'}"
    build_study(url, "live", count=10)
    cache = FrameCache(StorageReader(url))
    version = cache.versions(["live"])
    frame = cache.frame(["live"])
    assert cache.frame(["live"]) is frame  # nothing changed: the same frame object
    assert cache.versions(["live"]) == version
    add_complete_trials(url, "live", 2)
    assert cache.versions(["live"]) != version
    assert len(cache.frame(["live"])) == len(frame) + 2
    assert cache.frame(["no such study"]).empty


def test_importances_per_objective_and_too_few_trials(tmp_path, demo_url):
    reader = StorageReader(demo_url)
    info = reader.studies()[0]
    result = param_importances(reader.study("demo"), info)
    assert result.message == ""
    assert set(result.by_objective) == {"val_acc", "macs", "latency_ms"}
    for importances in result.by_objective.values():
        assert math.isclose(sum(importances.values()), 1.0, rel_tol=1e-6)

    url = f"sqlite:///{tmp_path / 'few.db'}"
    build_study(url, "few", count=0)
    few = StorageReader(url)
    result = param_importances(few.study("few"), few.studies()[0])
    assert result.by_objective == {}
    assert f"needs {MIN_IMPORTANCE_TRIALS} complete trials" in result.message


def test_the_degree_comes_from_the_architecture_and_the_stored_value_only_without_one():
    # A study written before the degree's definition changed stored (the blocks they had then)
    # inception_v1 at 0.3397 and grouped at 0.5095 (log segments / log channels). The frame
    # shows today's scale: 0.75
    # (four equal branches, each in its own quarter of the channels: 1 - 4 * 1/16) and 0.875
    # (8 segments between 1x1s: 1 - 1/8). A stored value stands only where the architecture
    # cannot be read.
    stored = [
        (EARLIER_BLOCKS["inception_v1"], 0.3397),
        (EARLIER_BLOCKS["grouped"], 0.5095),
        ("stem16-not-an-arch", 0.42),
        ("", 0.3),
    ]
    trials = [
        optuna.trial.create_trial(
            state=TrialState.COMPLETE,
            values=[0.7, 1e6],
            user_attrs={"macs": 1e6, "decoupling": degree, **({"arch": arch} if arch else {})},
        )
        for arch, degree in stored
    ]
    frame = trials_frame(INFO, trials)
    assert frame["decoupling"].tolist() == [0.75, 0.875, 0.42, 0.3]
