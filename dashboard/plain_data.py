"""The data step for any Optuna study that nas.search did not make: what its objectives show.

Such a study has no architectures, accuracy or costs; it has its objective values, their
directions and labels (`StudyInfo.labels`), Optuna's `best_trials` (the frame's `best_trial`)
and the values its trials reported (`Trial.report`, the frame's `reports`). Its fronts are
drawn in those terms, a single objective as its history, and its progress by the reported
curves; `dashboard.plot_data` hands such studies here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from dashboard.data import state_summary
from dashboard.plot_types import (
    NOT_OURS,
    FrontLine,
    FrontsData,
    Landmarks,
    Points,
    StudyFront,
    click_data,
    plot_text,
)
from dashboard.storage import StudyInfo


class StudyHistory(NamedTuple):
    """One single-objective study's complete trials by number, and its best value so far."""

    study: str
    trials: Points  # x: trial number, y: its value
    best: FrontLine  # the best value after each complete trial, as a step line


class HistoryData(NamedTuple):
    """What the fronts page draws for single-objective studies: their optimization history."""

    y_title: str  # the objective's label and direction
    studies: tuple[StudyHistory, ...]
    note: str
    notice: str  # one line: what these studies cannot show, and who is left out (a label)
    empty: bool  # no complete trial yet


def objective_hover(rows: pd.DataFrame, labels: Sequence[str]) -> tuple[str, ...]:
    """Trial number, study, state and each objective value by its label (no arch, no costs)."""
    texts = []
    for row in rows.itertuples(index=False):
        values = " · ".join(
            f"{plot_text(label)} {value:.6g}" for label, value in zip(labels, row.values)
        )
        texts.append(
            f"<b>trial {row.number}</b> · {plot_text(row.study)} · {row.state.lower()}<br>"
            + (values or "no values")
        )
    return tuple(texts)


def _objective_points(rows: pd.DataFrame, x, y, labels: Sequence[str]) -> Points:
    return Points(
        x=np.asarray(x, float),
        y=np.asarray(y, float),
        decoupling=np.full(len(rows), np.nan),
        hover=objective_hover(rows, labels),
        click=click_data(rows),
    )


def _value(rows: pd.DataFrame, index: int) -> np.ndarray:
    """Each row's objective value `index` (NaN where it has none)."""
    return np.array([v[index] if len(v) > index else np.nan for v in rows["values"]], float)


def _axis_title(label: str, direction: str) -> str:
    return f"{plot_text(label)} ({direction}d)"


def objectives_data(frame: pd.DataFrame, infos: Sequence[StudyInfo]) -> FrontsData | HistoryData:
    """Studies that nas.search did not make, by the objectives Optuna stores for them.

    The first study decides what is drawn, and studies with the same objectives (labels and
    directions) join it: with two objectives or more, the first two against each other and
    the front of Optuna's `best_trials` (every objective, as directed); with one, the value of
    each trial and the best so far. Studies with other objectives are named as left out.

    Args:
        frame: trials frame (`dashboard.data.trials_frame`).
        infos: the studies to draw, none of them ours.
    """
    first = infos[0]
    shape = (first.labels, first.directions)
    drawn = [info for info in infos if (info.labels, info.directions) == shape]
    left = [info.name for info in infos if info not in drawn]
    rows = frame[frame["study"].isin([info.name for info in drawn])]
    complete = rows[(rows["state"] == "COMPLETE") & (rows["values"].map(len) > 0)]
    single = len(first.directions) == 1
    notice = f"{NOT_OURS}: " + (
        "each trial's objective and the best so far"
        if single
        else "its objectives as Optuna stores them; the front is Optuna's best_trials"
    )
    if left:
        notice += " · left out, other objectives: " + ", ".join(left)
    notice = plot_text(notice)
    note = state_summary(rows) if len(rows) else "no trials yet"
    if single:
        return _history(complete, first, note, notice)
    x, y = _value(complete, 0), _value(complete, 1)
    usable = np.isfinite(x) & np.isfinite(y)
    studies = []
    for info in drawn:
        mine = (complete["study"] == info.name).to_numpy() & usable
        front = mine & complete["best_trial"].to_numpy(bool)
        order = np.argsort(x[front], kind="stable")
        studies.append(
            StudyFront(
                study=info.name,
                complete=_objective_points(complete[mine], x[mine], y[mine], first.labels),
                pruned=_objective_points(complete.iloc[:0], [], [], first.labels),
                front=FrontLine(
                    x[front][order], y[front][order], complete["number"].to_numpy()[front][order]
                ),
            )
        )
    nothing = _objective_points(complete.iloc[:0], [], [], first.labels)
    two = len(first.directions) == 2
    return FrontsData(
        cost="objectives",
        studies=tuple(studies),
        landmarks=Landmarks(nothing, (), ()),
        failed=nothing,
        skipped=nothing,
        note=note,
        empty=not usable.any(),
        x_title=_axis_title(first.labels[0], first.directions[0]),
        y_title=_axis_title(first.labels[1], first.directions[1]),
        x_log=False,
        by_decoupling=False,
        # The boundary of what the front dominates steps across first when x is minimized.
        front_shape=("hv" if first.directions[0] == "minimize" else "vh") if two else "",
        notice=notice,
    )


def _history(complete: pd.DataFrame, info: StudyInfo, note: str, notice: str) -> HistoryData:
    """Each complete trial's value by number and the best so far, per study."""
    pick = np.fmax.accumulate if info.directions[0] == "maximize" else np.fmin.accumulate
    studies = []
    for study in dict.fromkeys(complete["study"]):
        mine = complete[complete["study"] == study].sort_values("number")
        values, numbers = _value(mine, 0), mine["number"].to_numpy()
        best = pick(values) if len(values) else values
        studies.append(
            StudyHistory(
                study,
                _objective_points(mine, numbers, values, info.labels),
                FrontLine(numbers, best, numbers),
            )
        )
    return HistoryData(
        y_title=_axis_title(info.labels[0], info.directions[0]),
        studies=tuple(studies),
        note=note,
        notice=notice,
        empty=not len(complete),
    )


class ReportCurves(NamedTuple):
    """Every trial's `Trial.report` values of one study, as one line broken between trials."""

    study: str
    steps: np.ndarray  # NaN between two trials' curves
    values: np.ndarray
    trials: int  # how many trials reported


def report_curves(rows: pd.DataFrame, study: str) -> ReportCurves:
    """One study's reported values, trial after trial, with a gap (NaN) between trials."""
    steps: list[float] = []
    values: list[float] = []
    reported = [reports for reports in rows["reports"] if reports]
    for reports in reported:
        steps += [float(step) for step, _ in reports] + [np.nan]
        values += [float(value) for _, value in reports] + [np.nan]
    return ReportCurves(study, np.array(steps), np.array(values), len(reported))


def plain_best(complete: pd.DataFrame, info: StudyInfo) -> str:
    """The best of a study that is not ours, labelled: its single objective's best value (as
    directed), or the number of trials on its front."""
    if len(info.directions) > 1:
        return f"{int(complete['best_trial'].sum())} trials on the Pareto front"
    values = _value(complete, 0)
    values = values[np.isfinite(values)]
    if not len(values):
        return "n/a"
    maximize = info.directions[0] == "maximize"
    best = values.max() if maximize else values.min()
    return f"{info.labels[0]} {best:.6g} ({'max' if maximize else 'min'})"
