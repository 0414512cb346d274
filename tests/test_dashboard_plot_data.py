"""The figures' data step: which trials each series holds, the fronts, landmarks, and order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboard.data import hypervolume_series, trials_frame
from dashboard.plot_data import (
    PROGRESS_TABLE_HEADER,
    SPECTRUM_MEASURES,
    fronts_data,
    hover_texts,
    importance_data,
    progress_data,
    spectrum_data,
)
from search_spaces import LANDMARKS
from tests.dashboard_fixtures import make_trials
from tests.hand_study import HAND_TRIALS, hand_study


@pytest.fixture(scope="module")
def hand():
    return trials_frame(*hand_study())


@pytest.fixture(scope="module")
def two_studies(hand):
    other = dict(state="COMPLETE", val_acc=0.9, macs=3e7, params=3e5, arch="mobilenet")
    info, trials = hand_study("other", (other, {**other, "val_acc": 0.6, "macs": 1e5}))
    return pd.concat([hand, trials_frame(info, trials)], ignore_index=True)


def numbers(points) -> list[int]:
    """The trial numbers of a series, from its click targets."""
    return [] if points.click is None else [int(number) for _, number in points.click]


def test_each_trial_lands_in_the_series_of_its_state(hand):
    data = fronts_data(hand, "macs")
    [series] = data.studies
    assert series.study == "hand"
    assert numbers(series.complete) == [0, 1, 2, 6, 7]
    assert series.complete.x.tolist() == [4e6, 1e6, 5e6, 2e7, 1e6]
    assert series.complete.y.tolist() == [0.80, 0.70, 0.75, 0.85, 0.70]
    # Pruned: at the last accuracy recorded before it was stopped.
    assert numbers(series.pruned) == [3] and series.pruned.y.tolist() == [0.6]
    # No accuracy, but a cost: on the rug; trial 8 has no cost and is not drawn.
    assert numbers(data.failed) == [5] and data.failed.x.tolist() == [3e6]
    assert numbers(data.skipped) == [4] and data.skipped.x.tolist() == [9e7]
    assert not data.empty


def test_the_front_is_each_studys_pareto_trials_by_cost(hand):
    front = fronts_data(hand, "macs").studies[0].front
    assert front.numbers.tolist()[2:] == [0, 6] and set(front.numbers[:2]) == {1, 7}
    assert front.x.tolist() == [1e6, 1e6, 4e6, 2e7]
    assert front.y.tolist() == [0.70, 0.70, 0.80, 0.85]
    by_params = fronts_data(hand, "params").studies[0].front
    assert by_params.numbers.tolist() == [2, 0, 6]
    assert by_params.x.tolist() == [8e3, 40e3, 2e5]


def test_landmarks_in_frame_order_with_alternating_labels(hand):
    landmarks = fronts_data(hand, "macs").landmarks
    assert landmarks.names == ("normal", "xception")
    assert numbers(landmarks.points) == [0, 6]
    assert landmarks.points.decoupling.tolist() == [0.0, 1.0]
    # The cheapest name goes below its star, the next above, and so on along the cost axis.
    assert landmarks.label_above == (False, True)


def test_hover_names_trial_study_arch_accuracy_and_every_cost(hand):
    [series] = fronts_data(hand, "macs").studies
    arch = str(LANDMARKS["normal"]).replace("-", "<br>  ")
    assert series.complete.hover[0] == (
        f"<b>trial 0</b> (normal) · hand · complete<br>{arch}<br>val acc 0.8000<br>"
        "MACs 4.00 M · params 40.00 k · latency n/a<br>decoupling 0.00"
    )
    assert "val acc when stopped 0.6000" in series.pruned.hover[0]
    assert hover_texts(hand.iloc[[6, 1]]) == (series.complete.hover[3], series.complete.hover[1])


def test_the_note_counts_states_and_says_what_is_missing(hand):
    assert fronts_data(hand, "macs").note == (
        "9 trials: 5 complete, 2 pruned (1 skipped by a constraint), 2 failed"
    )
    assert fronts_data(hand, "latency_ms").note.endswith(" · no trial has a measured latency")
    # Without a rug, trials without accuracy are said to be left out.
    no_rug = hand[hand["number"].isin([0, 1, 8])]
    assert fronts_data(no_rug, "macs").note.endswith(" · 1 without accuracy or cost not shown")


def test_an_empty_frame_has_no_series_and_says_so(hand):
    data = fronts_data(hand.iloc[:0], "macs")
    assert data.studies == () and data.empty and data.note == "no trials yet"
    assert data.landmarks.names == () and data.failed.click is None
    skipped_only = fronts_data(hand[hand["number"] == 4], "macs")
    assert skipped_only.empty and numbers(skipped_only.skipped) == [4]


def test_several_studies_keep_their_order_and_their_own_fronts(two_studies):
    data = fronts_data(two_studies, "macs")
    assert [series.study for series in data.studies] == ["hand", "other"]
    other = data.studies[1]
    assert numbers(other.complete) == [0, 1] and other.pruned.click is None
    assert other.front.numbers.tolist() == [1, 0]  # its own front, not beaten by "hand"
    assert [study for study, _ in other.complete.click] == ["other", "other"]


def test_spectrum_groups_complete_trials_by_position(hand):
    data = spectrum_data(hand, "segments")
    # The hand study's "grouped" trials are the landmark: 4 groups (ResNeXt's, scaled).
    assert data.by == "segments" and data.order == ("1", "4", "dw")
    [series] = data.studies
    assert [box.measure for box in series.boxes] == list(SPECTRUM_MEASURES)
    accuracy, macs, latency = series.boxes
    assert accuracy.positions.tolist() == ["1", "4", "1", "dw", "4"]
    assert accuracy.values.tolist() == [0.80, 0.70, 0.75, 0.85, 0.70]
    assert numbers(accuracy) == [0, 1, 2, 6, 7]
    assert macs.values.tolist() == [4e6, 1e6, 5e6, 2e7, 1e6]
    assert len(latency.values) == 0 and latency.click is None and not data.latency_measured
    assert data.all_points
    # By tenths of the degree (nas._decoupling): normal 0; grouped 1 - 1/4 = 0.75 (each 3x3
    # filter sees one of 4 segments of its 1x1's channels); inception_v1, in inception (3a)'s
    # proportions, 1 - (1/4 * 8/26 + 1/2 * 12/26 + 1/8 * 2/26 + 1/8 * 4/26) = 69/104 = 0.66
    # (each branch in its own space: 8 + 12 + 2 + 4 = 26 channels at width 32); xception 1.
    tenths = spectrum_data(hand, "decoupling")
    assert tenths.order == ("0.0-0.1", "0.6-0.7", "0.7-0.8", "0.9-1.0")
    assert tenths.studies[0].boxes[0].positions.tolist()[:3] == ["0.0-0.1", "0.7-0.8", "0.6-0.7"]


def test_spectrum_of_several_studies_with_latency():
    info, trials = hand_study()
    frame = trials_frame(info._replace(name="a"), make_trials(25, seed=2, latency=True))
    frame = pd.concat([frame, trials_frame(info._replace(name="b"), trials)], ignore_index=True)
    data = spectrum_data(frame, "segments")
    assert [series.study for series in data.studies] == ["a", "b"]
    complete_a = int(((frame["study"] == "a") & (frame["state"] == "COMPLETE")).sum())
    assert len(data.studies[0].boxes[2].values) == complete_a and data.latency_measured
    assert len(data.studies[1].boxes[2].values) == 0


def test_progress_per_study_states_and_table(hand, two_studies):
    data = progress_data(two_studies)
    assert [series.study for series in data.studies] == ["hand", "other"]
    mine = data.studies[0]
    assert mine.numbers.tolist() == list(range(len(HAND_TRIALS)))
    expected = hypervolume_series(hand)["hypervolume"].to_numpy()
    assert np.allclose(mine.hypervolume, expected) and expected[-1] > expected[0] > 0
    assert np.all(np.diff(mine.hours) >= 0) and len(mine.hours) == len(HAND_TRIALS)
    bars = {bar.state: dict(zip(bar.studies, bar.trials.tolist())) for bar in data.states}
    assert [bar.state for bar in data.states] == ["COMPLETE", "PRUNED", "SKIPPED", "FAIL"]
    assert bars["COMPLETE"] == {"hand": 5, "other": 2}
    assert bars["SKIPPED"] == {"hand": 1} and bars["FAIL"] == {"hand": 2}
    assert [(row[0], row[1], row[4]) for row in data.table] == [
        ("hand", 9, "0.8500"),
        ("other", 2, "0.9000"),
    ]


def test_progress_of_no_study_is_empty(hand):
    empty = progress_data(hand.iloc[:0])
    assert (empty.studies, empty.states, empty.table, empty.curves) == ((), (), (), ())
    assert empty.panel == "hypervolume" and empty.header == PROGRESS_TABLE_HEADER


def test_importances_keep_the_top_parameters_least_first():
    data = importance_data({"val_acc": {"a": 0.5, "b": 0.2, "c": 0.3}, "macs": {"a": 1.0}}, 2)
    assert data.top == 2
    [accuracy, macs] = data.objectives
    assert accuracy.objective == "val_acc" and accuracy.params == ("c", "a")
    assert accuracy.importances == (0.3, 0.5)
    assert macs.params == ("a",) and importance_data({}).objectives == ()
