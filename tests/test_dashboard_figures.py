"""Figure builders and the trial page's data, on frames built from fake trials."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dashboard import figures, search_figures
from dashboard.data import (
    add_pareto_columns,
    hypervolume_series,
    spectrum_frame,
    state_counts,
    time_spent,
    trials_frame,
)
from dashboard.storage import StudyInfo
from dashboard.trial_data import arch_diagram, si, trial_details
from nas import Arch
from search_spaces import LANDMARKS
from tests.dashboard_fixtures import make_trials, study_attrs

INFO = StudyInfo(
    "demo",
    ("maximize", "minimize", "minimize"),
    ("val_acc", "macs", "latency_ms"),
    study_attrs(latency=True),
)


@pytest.fixture(scope="module")
def frame():
    return trials_frame(INFO, make_trials(40, seed=3, latency=True))


def traces(figure, start):
    return [trace for trace in figure.data if (trace.name or "").startswith(start)]


def test_fronts_figure_draws_every_finished_trial_once(frame):
    figure = figures.fronts_figure(frame, "macs")
    [complete] = traces(figure, "complete")
    [pruned] = traces(figure, "pruned")
    n_complete = int((frame["state"] == "COMPLETE").sum())
    assert len(complete.x) == n_complete and complete.name == f"complete ({n_complete})"
    stopped = frame[(frame["state"] == "PRUNED") & (frame["constraint"] == "")]
    assert len(pruned.x) == len(stopped)
    assert np.allclose(pruned.y, stopped["last_acc"])
    assert pruned.marker.symbol.endswith("-open")
    # Every complete point carries [study, number] for the click, in frame order.
    numbers = [int(number) for _, number in complete.customdata]
    assert numbers == frame.loc[frame["state"] == "COMPLETE", "number"].tolist()


def test_complete_points_are_coloured_by_decoupling_on_one_labelled_scale(frame):
    figure = figures.fronts_figure(frame, "macs")
    [complete] = traces(figure, "complete")
    expected = frame.loc[frame["state"] == "COMPLETE", "decoupling"].to_numpy()
    assert np.allclose(complete.marker.color, expected)
    assert complete.marker.coloraxis == "coloraxis"
    axis = figure.layout.coloraxis
    assert (axis.cmin, axis.cmax) == (0, 1)
    assert "decoupling" in axis.colorbar.title.text
    assert "normal conv" in axis.colorbar.ticktext[0]
    assert "depthwise" in axis.colorbar.ticktext[-1]
    assert figures.decoupling_color(0.0) != figures.decoupling_color(1.0)


def test_landmarks_are_labelled_by_name(frame):
    [stars] = traces(figures.fronts_figure(frame, "macs"), "landmarks")
    assert list(stars.text) == list(LANDMARKS)
    assert stars.mode == "markers+text" and stars.marker.symbol == "star"


def test_front_is_a_step_line_through_the_pareto_trials(frame):
    for cost in ("macs", "params", "latency_ms"):
        [line] = traces(figures.fronts_figure(frame, cost), "Pareto front")
        front = frame[frame[f"pareto_{cost}"]].sort_values(cost)
        assert line.line.shape == "hv"
        assert list(line.x) == front[cost].tolist()
        assert list(line.y) == front["val_acc"].tolist()
        assert np.all(np.diff(line.y) >= 0)  # a duplicate repeats its original's point


def test_failed_and_skipped_trials_sit_on_a_rug_without_accuracy(frame):
    figure = figures.fronts_figure(frame, "macs")
    [failed] = traces(figure, "failed")
    [skipped] = traces(figure, "skipped")
    assert len(failed.x) == int((frame["state"] == "FAIL").sum())
    assert len(skipped.x) == int((frame["constraint"] != "").sum())
    assert failed.yaxis == "y2" and set(failed.y) == {0}
    assert figure.layout.yaxis2.visible and figure.layout.yaxis.domain[0] > 0


def test_axes_name_their_units_and_use_log_cost(frame):
    figure = figures.fronts_figure(frame, "macs")
    assert figure.layout.xaxis.type == "log"
    assert "multiply-accumulates" in figure.layout.xaxis.title.text
    assert "FLOPs = 2 x MACs" in figure.layout.xaxis.title.text
    assert "ms" in figures.fronts_figure(frame, "latency_ms").layout.xaxis.title.text
    assert "47 trials" in figure.layout.title.text


def test_hover_names_trial_arch_accuracy_and_costs(frame):
    [complete] = traces(figures.fronts_figure(frame, "macs"), "complete")
    text = complete.hovertext[0]
    row = frame[frame["state"] == "COMPLETE"].iloc[0]
    assert f"trial {row.number}" in text and row.arch.split("-")[1] in text
    assert f"{row.val_acc:.4f}" in text
    for label in ("MACs", "params", "latency"):
        assert label in text


def test_many_points_switch_to_webgl(frame):
    big = add_pareto_columns(
        pd.concat([frame] * 30, ignore_index=True).assign(number=lambda f: range(len(f)))
    )
    [complete] = traces(figures.fronts_figure(big, "macs"), "complete")
    assert complete.type == "scattergl"
    [small] = traces(figures.fronts_figure(frame, "macs"), "complete")
    assert small.type == "scatter"


def test_several_studies_get_their_own_symbols_and_fronts(frame):
    other = trials_frame(INFO._replace(name="other"), make_trials(20, seed=5))
    both = pd.concat([frame, other], ignore_index=True)
    figure = figures.fronts_figure(both, "macs")
    assert [t.name for t in traces(figure, "demo: Pareto")]
    assert [t.name for t in traces(figure, "other: Pareto")]
    symbols = {t.marker.symbol for t in figure.data if "complete" in (t.name or "")}
    assert len(symbols) == 2


def test_empty_and_latency_less_frames_still_draw():
    empty = trials_frame(INFO, [])
    figure = figures.fronts_figure(empty, "macs")
    assert "no finished trial yet" in figure.layout.annotations[0].text
    no_latency = trials_frame(INFO, make_trials(5))
    figure = figures.fronts_figure(no_latency, "latency_ms")
    assert "no trial has a measured latency" in figure.layout.title.text


def test_spectrum_progress_and_importance_figures(frame):
    done, order = spectrum_frame(frame, "decoupling")
    figure = figures.spectrum_figure(done, order, "decoupling")
    assert {t.type for t in figure.data} == {"box"}
    assert sum(len(t.y) for t in figure.data if t.yaxis in ("y", None)) == len(done)
    assert list(figure.layout.xaxis.categoryarray) == order

    progress = search_figures.progress_figure(
        hypervolume_series(frame), state_counts(frame), time_spent(frame)
    )
    assert "log-MACs" in progress.layout.annotations[0].text
    bars = [t for t in progress.data if t.type == "bar"]
    assert sum(sum(t.y) for t in bars) == len(frame)

    importance = search_figures.importance_figure(
        {"val_acc": {"a": 0.7, "b": 0.3}, "macs": {"a": 1.0}}
    )
    assert [t.y[-1] for t in importance.data] == ["a", "a"]


def test_trial_details_curve_and_units():
    trials = make_trials(20, seed=3, latency=True)
    pruned = next(t for t in trials if t.user_attrs.get("pruned_at_epoch") is not None)
    details = trial_details(INFO, pruned)
    assert details.state == "PRUNED" and details.pruned_at == 2
    assert len(details.val_curve) == 3 and details.input_shape == (1, 28, 28)
    facts = dict(details.facts)
    assert "multiply-accumulates" in facts["MACs"] and "FLOPs" in facts["MACs"]
    curve = search_figures.curve_figure(details)
    assert list(curve.data[0].y) == list(details.val_curve)
    assert any("pruned" in a.text for a in curve.layout.annotations)
    assert si(12_345_678) == "12.35 M" and si(float("nan")) == "n/a"
    failed = trial_details(INFO, next(t for t in trials if t.state.name == "FAIL"))
    assert dict(failed.facts)["failure"] == "RuntimeError: out of memory"
    assert failed.val_curve == () and "no validation curve" in str(
        search_figures.curve_figure(failed)
    )


def test_block_diagram_shows_where_the_1x1_sits_and_the_segments():
    [stage, *_] = arch_diagram(LANDMARKS["xception"])
    [branch] = stage.branches
    assert [op.kind for op in branch.ops] == ["spatial", "pointwise"]
    assert "depthwise" in branch.ops[0].detail and branch.ops[0].decoupling == 1.0
    assert stage.residual.startswith("1x1 projection")

    [stage, *_] = arch_diagram(LANDMARKS["extreme_inception"])
    assert [op.kind for op in stage.branches[0].ops] == ["pointwise", "spatial"]

    [stage, *_] = arch_diagram(LANDMARKS["inception_v3"])
    assert [b.name for b in stage.branches] == ["1x1", "3x3", "5x5", "pool"]
    assert stage.merge == "concatenate"
    five = stage.branches[2]
    # Factorized: the 5x5 branch is a 1x1 then two stacked 3x3 convs.
    assert [op.label for op in five.ops] == ["1x1 conv", "3x3 conv", "3x3 conv"]
    assert [op.kind for op in stage.branches[3].ops] == ["pool", "pointwise"]

    [stage, *_] = arch_diagram(Arch.parse(str(LANDMARKS["normal"])))
    [op] = stage.branches[0].ops
    assert "1 segment" in op.detail and op.decoupling == 0.0
