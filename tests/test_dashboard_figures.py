"""Figure builders draw exactly the prepared data; the trial page's data and curve."""

from __future__ import annotations

import numpy as np
import pytest

from dashboard import figures, search_figures
from dashboard.data import trials_frame
from dashboard.plot_data import (
    FrontLine,
    FrontsData,
    Landmarks,
    Points,
    StudyFront,
    fronts_data,
    importance_data,
    progress_data,
    spectrum_data,
)
from dashboard.storage import StudyInfo
from dashboard.trial_data import arch_diagram, si, trial_details
from nas import Arch
from search_spaces import LANDMARKS
from tests.dashboard_fixtures import make_trials, study_attrs
from tests.hand_study import hand_study

INFO = StudyInfo(
    "demo",
    ("maximize", "minimize", "minimize"),
    ("val_acc", "macs", "latency_ms"),
    study_attrs(latency=True),
)


@pytest.fixture(scope="module")
def frame():
    return trials_frame(INFO, make_trials(40, seed=3, latency=True))


@pytest.fixture(scope="module")
def hand():
    return trials_frame(*hand_study())


def made_points(x, y, study="made") -> Points:
    """Points built by hand, with no frame behind them."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    click = np.array([[study, n] for n in range(len(x))], dtype=object) if len(x) else None
    hover = tuple(f"point {n}" for n in range(len(x)))
    return Points(x, y, np.linspace(0, 1, len(x)), hover, click)


def made_fronts(series: tuple[StudyFront, ...], **changes) -> FrontsData:
    nothing = made_points([], [])
    data = FrontsData(
        cost="macs",
        studies=series,
        landmarks=Landmarks(nothing, (), ()),
        failed=nothing,
        skipped=nothing,
        note="a note",
        empty=False,
    )
    return data._replace(**changes)


def drawn(trace, points: Points) -> bool:
    """Whether a trace shows exactly these points, hovers and click targets, in order."""
    click = None if trace.customdata is None else [list(pair) for pair in trace.customdata]
    expected = None if points.click is None else [list(pair) for pair in points.click]
    return (
        list(trace.x) == points.x.tolist()
        and list(trace.y) == points.y.tolist()
        and tuple(trace.hovertext) == points.hover
        and click == expected
    )


def test_fronts_figure_draws_each_prepared_series_once_in_order(hand):
    data = fronts_data(hand, "macs")
    [series] = data.studies
    figure = figures.fronts_figure(data)
    complete, pruned, front, stars, failed, skipped = figure.data
    assert drawn(complete, series.complete) and complete.name == "complete (5)"
    assert drawn(pruned, series.pruned) and pruned.marker.symbol == "circle-open"
    assert pruned.name == "pruned (1), accuracy when stopped"
    assert list(front.x) == series.front.x.tolist() and list(front.y) == series.front.y.tolist()
    assert front.line.shape == "hv" and front.name == "Pareto front (4)"
    assert drawn(stars, data.landmarks.points)
    assert drawn(failed, data.failed._replace(y=np.zeros(1)))
    assert drawn(skipped, data.skipped._replace(y=np.zeros(1)))


def test_a_figure_draws_made_up_data_and_nothing_else():
    series = StudyFront(
        "made",
        complete=made_points([10.0, 1000.0], [0.4, 0.9]),
        pruned=made_points([], []),
        front=FrontLine(np.array([10.0, 1000.0]), np.array([0.4, 0.9]), np.array([0, 1])),
    )
    figure = figures.fronts_figure(made_fronts((series,)))
    complete, front = figure.data
    assert drawn(complete, series.complete) and complete.name == "complete (2)"
    assert list(front.x) == [10.0, 1000.0] and list(front.y) == [0.4, 0.9]
    assert figure.layout.title.text == "<span style='font-size:13px'>a note</span>"
    assert not figure.layout.annotations and figure.layout.xaxis.anchor == "y"


def test_complete_points_are_coloured_by_decoupling_on_one_labelled_scale(hand):
    data = fronts_data(hand, "macs")
    complete = figures.fronts_figure(data).data[0]
    assert list(complete.marker.color) == data.studies[0].complete.decoupling.tolist()
    assert complete.marker.coloraxis == "coloraxis"
    axis = figures.fronts_figure(data).layout.coloraxis
    assert (axis.cmin, axis.cmax) == (0, 1)
    assert "decoupling" in axis.colorbar.title.text
    assert "normal conv" in axis.colorbar.ticktext[0]
    assert "depthwise" in axis.colorbar.ticktext[-1]
    assert figures.decoupling_color(0.0) != figures.decoupling_color(1.0)
    assert figures.decoupling_color(float("nan")) == "#BBBBBB"


def test_landmarks_are_stars_labelled_by_name_above_or_below(hand):
    data = fronts_data(hand, "macs")
    stars = figures.fronts_figure(data).data[3]
    assert stars.text == data.landmarks.names == ("normal", "xception")
    assert stars.textposition == ("bottom center", "top center")
    assert stars.mode == "markers+text" and stars.marker.symbol == "star"
    assert list(stars.marker.color) == [0.0, 1.0]


def test_failed_and_skipped_trials_sit_on_a_rug_without_accuracy(hand):
    figure = figures.fronts_figure(fronts_data(hand, "macs"))
    failed, skipped = figure.data[4:]
    assert failed.name == "failed (1), no accuracy" and skipped.name == "skipped (1), no accuracy"
    assert failed.yaxis == skipped.yaxis == "y2" and list(failed.y) == list(skipped.y) == [0]
    assert failed.marker.color != skipped.marker.color
    assert figure.layout.yaxis2.visible and figure.layout.yaxis.domain[0] > 0
    assert figure.layout.xaxis.anchor == "y2"


def test_axes_name_their_units_and_use_log_cost(frame):
    figure = figures.fronts_figure(fronts_data(frame, "macs"))
    assert figure.layout.xaxis.type == "log"
    assert "multiply-accumulates" in figure.layout.xaxis.title.text
    assert "FLOPs = 2 x MACs" in figure.layout.xaxis.title.text
    assert figure.layout.uirevision == "macs"
    latency = figures.fronts_figure(fronts_data(frame, "latency_ms"))
    assert "ms" in latency.layout.xaxis.title.text
    assert "47 trials" in figure.layout.title.text


def test_every_prepared_point_is_drawn_once(frame):
    data = fronts_data(frame, "macs")
    figure = figures.fronts_figure(data)
    markers = [trace for trace in figure.data if trace.mode != "lines"]
    prepared = [series.complete for series in data.studies] + [data.landmarks.points]
    prepared += [series.pruned for series in data.studies] + [data.failed, data.skipped]
    assert sum(len(trace.x) for trace in markers) == sum(len(points.x) for points in prepared)


def test_many_points_switch_to_webgl():
    many = np.arange(1, figures.WEBGL_FROM + 1, dtype=float)
    line = FrontLine(many[:1], many[:1], np.array([0]))
    big = StudyFront("made", made_points(many, many / many.max()), made_points([], []), line)
    small = big._replace(complete=made_points(many[:-1], many[:-1] / many.max()))
    assert figures.fronts_figure(made_fronts((big,))).data[0].type == "scattergl"
    assert figures.fronts_figure(made_fronts((small,))).data[0].type == "scatter"


def test_several_studies_get_their_own_symbols_colours_and_names():
    def study(name):
        line = FrontLine(np.array([1.0]), np.array([0.5]), np.array([0]))
        return StudyFront(name, made_points([1.0], [0.5], name), made_points([], []), line)

    figure = figures.fronts_figure(made_fronts((study("a"), study("b"))))
    first, first_front, second, second_front = figure.data
    assert (first.name, second.name) == ("a: complete (1)", "b: complete (1)")
    assert first_front.name == "a: Pareto front (1)"
    assert first.marker.symbol != second.marker.symbol
    assert first_front.line.color != second_front.line.color


def test_empty_and_latency_less_data_still_draw(hand):
    empty = figures.fronts_figure(fronts_data(hand.iloc[:0], "macs"))
    assert not empty.data and "no finished trial yet" in empty.layout.annotations[0].text
    figure = figures.fronts_figure(fronts_data(hand, "latency_ms"))
    assert "no trial has a measured latency" in figure.layout.title.text


def test_spectrum_figure_draws_one_box_per_study_and_measure(frame, hand):
    data = spectrum_data(frame, "decoupling")
    figure = figures.spectrum_figure(data)
    [series] = data.studies
    assert len(figure.data) == len(series.boxes) == 3
    for row, (trace, box) in enumerate(zip(figure.data, series.boxes), 1):
        assert list(trace.x) == box.positions.tolist() and list(trace.y) == box.values.tolist()
        assert trace.yaxis == ("y" if row == 1 else f"y{row}") and trace.boxpoints == "all"
        assert trace.showlegend == (row == 1)
    assert list(figure.layout.xaxis.categoryarray) == list(data.order)
    assert figure.layout.yaxis2.type == "log" and figure.layout.yaxis.type == "linear"
    assert not figure.layout.annotations  # this study measured latency
    latency_less = figures.spectrum_figure(spectrum_data(hand, "segments"))
    assert "no latency measured" in latency_less.layout.annotations[0].text
    assert "segments" in latency_less.layout.xaxis3.title.text
    assert figures.spectrum_figure(data._replace(all_points=False)).data[0].boxpoints == "outliers"


def test_progress_figure_draws_each_studys_lines_and_the_state_bars(hand):
    data = progress_data(hand)
    figure = search_figures.progress_figure(data)
    hypervolume, hours, *bars = figure.data
    [series] = data.studies
    assert list(hypervolume.x) == series.numbers.tolist()
    assert list(hypervolume.y) == series.hypervolume.tolist()
    assert list(hours.y) == series.hours.tolist() and hours.xaxis == "x2"
    assert [bar.name for bar in bars] == [state.state.lower() for state in data.states]
    assert [list(bar.y) for bar in bars] == [state.trials.tolist() for state in data.states]
    assert "log-MACs" in figure.layout.annotations[0].text
    assert not search_figures.progress_figure(progress_data(hand.iloc[:0])).data


def test_importance_figure_draws_the_ranked_bars():
    data = importance_data({"val_acc": {"a": 0.7, "b": 0.3}, "macs": {"a": 1.0}})
    figure = search_figures.importance_figure(data)
    assert [list(trace.y) for trace in figure.data] == [["b", "a"], ["a"]]
    assert [list(trace.x) for trace in figure.data] == [[0.3, 0.7], [1.0]]
    titles = [annotation.text for annotation in figure.layout.annotations]
    assert titles == ["for validation accuracy", "for MACs"]
    assert figure.layout.height == 80 + 26 * data.top


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
    # Xception's unit: two separable convs, each after a ReLU, no BN inside.
    assert [op.kind for op in branch.ops] == ["spatial", "pointwise"] * 2
    assert "depthwise" in branch.ops[0].detail and branch.ops[0].decoupling == 1.0
    assert branch.ops[0].detail.startswith("ReLU, then") and "no BN" in branch.ops[0].detail
    assert stage.residual.startswith("1x1 projection")

    [stage, *_] = arch_diagram(LANDMARKS["extreme_inception"])
    assert [op.kind for op in stage.branches[0].ops] == ["pointwise", "spatial"]

    [stage, *_] = arch_diagram(LANDMARKS["inception_v3"])
    assert [b.name for b in stage.branches] == ["1x1", "3x3", "5x5", "avgpool"]
    assert stage.merge == "concatenate"
    five = stage.branches[2]
    # Factorized: the 5x5 branch is a 1x1 then two stacked 3x3 convs.
    assert [op.label for op in five.ops] == ["1x1 conv", "3x3 conv", "3x3 conv"]
    assert [op.kind for op in stage.branches[3].ops] == ["pool", "pointwise"]

    [stage, *_] = arch_diagram(Arch.parse(str(LANDMARKS["normal"])))
    [op] = stage.branches[0].ops
    assert "1 segment" in op.detail and op.decoupling == 0.0
