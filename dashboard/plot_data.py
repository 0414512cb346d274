"""The data step of every dashboard figure: a trials frame in, a small named tuple of what to draw.

`dashboard.data` builds the frame (one row per trial, Pareto membership in `pareto_<cost>`
columns); here each figure's share of it is chosen: which trials go into which series, which of
them form each study's front, which are landmarks, what their hovers say and what a click opens.
The builders in `dashboard.figures` and `dashboard.search_figures` draw these tuples and choose
nothing, so tests can check what is plotted here and how it is drawn there, apart. Studies that
nas.search did not make are handed to `dashboard.plain_data`: they are drawn by their own
objectives, and a page that mixes them with ours names them in one line.

Stored strings (study names, architectures, attributes) are anyone's text, and Plotly draws its
own markup in every label (<a href>, <span style>, <b>, <br>, ...), so each one goes through
`plot_text` on its way into a label. The tuples' hover texts and notes are labels already,
composed and escaped here; every other string they hold is raw (it also names a study in a
click's URL), and the builders escape it where they label with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from dashboard.data import (
    hypervolume_series,
    spectrum_frame,
    state_counts,
    state_summary,
    study_infos,
    time_spent,
)
from dashboard.plain_data import (
    HistoryData,
    ReportCurves,
    objectives_data,
    plain_best,
    report_curves,
)
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
from dashboard.trial_data import si

# The rows of the spectrum figure, top to bottom: accuracy, then the costs it was bought with.
SPECTRUM_MEASURES = ("val_acc", "macs", "latency_ms")
# Above this many trials the spectrum's boxes show only their outliers, not every point.
SPECTRUM_ALL_POINTS_UP_TO = 2000
PROGRESS_TABLE_HEADER = ("study", "trials", "wall clock", "trial hours", "best val acc")
# The header when a study that is not ours is among them: its best is no accuracy.
ANY_STUDY_TABLE_HEADER = PROGRESS_TABLE_HEADER[:-1] + ("best",)
_OURS = StudyInfo("", ("maximize", "minimize"), ("val_acc", "macs"), {"space": ""})
IMPORTANCE_TOP = 12
# How many unreadable trials the fronts note names before it only counts the rest.
UNREADABLE_NAMED = 3


def hover_texts(rows: pd.DataFrame) -> tuple[str, ...]:
    """Trial number, study, arch (one stage a line), accuracy and every cost with its unit."""
    texts = []
    for row in rows.itertuples(index=False):
        accuracy = row.val_acc if np.isfinite(row.val_acc) else row.last_acc
        label = "val acc" if np.isfinite(row.val_acc) else "val acc when stopped"
        name = f" ({plot_text(row.landmark)})" if row.landmark else ""
        texts.append(
            f"<b>trial {row.number}</b>{name} · {plot_text(row.study)} · {row.state.lower()}<br>"
            f"{plot_text(row.arch).replace('-', '<br>  ')}<br>"
            f"{label} {accuracy:.4f}<br>"
            f"MACs {si(row.macs)} · params {si(row.params)} · "
            f"latency {'n/a' if not np.isfinite(row.latency_ms) else f'{row.latency_ms:.3f} ms'}"
            f"<br>decoupling {row.decoupling:.2f}"
        )
    return tuple(texts)


def points(rows: pd.DataFrame, x: str, y: str) -> Points:
    """The rows as markers at (`x`, `y`) columns, with their hovers and click targets."""
    return Points(
        x=rows[x].to_numpy(),
        y=rows[y].to_numpy(),
        decoupling=rows["decoupling"].to_numpy(),
        hover=hover_texts(rows),
        click=click_data(rows),
    )


def front_line(rows: pd.DataFrame, cost: str) -> FrontLine:
    """One study's trials on its front for `cost` (the frame's Pareto column), by cost."""
    front = rows[rows[f"pareto_{cost}"]].sort_values([cost, "val_acc"])
    return FrontLine(
        front[cost].to_numpy(), front["val_acc"].to_numpy(), front["number"].to_numpy()
    )


def fronts_data(
    frame: pd.DataFrame, cost: str = "macs", unreadable: Sequence[str] = ()
) -> FrontsData | HistoryData:
    """What the fronts figure draws: validation accuracy against `cost`, per study.

    Studies that nas.search did not make are drawn by their objectives instead (see
    `objectives_data`); with studies of ours among the picked, those are named as not shown.

    Args:
        frame: trials frame of one or several studies (`dashboard.data.trials_frame`).
        cost: the cost column of the x axis: "macs", "params" or "latency_ms".
        unreadable: a note per trial left out of the frame (`dashboard.data.read_trials`),
            named under the counts.
    """
    others = [info for info in study_infos(frame).values() if not info.ours]
    if others and len(others) == len(study_infos(frame)):
        return objectives_data(frame, others)
    if others:
        frame = frame[frame["ours"].astype(bool)]
    data = _our_fronts(frame, cost, unreadable)
    if others:
        names = plot_text(", ".join(info.name for info in others))
        data = data._replace(notice=f"not drawn here, {NOT_OURS}: {names}")
    return data


def _our_fronts(frame: pd.DataFrame, cost: str, unreadable: Sequence[str]) -> FrontsData:
    has_cost = frame[cost].notna()
    complete = frame[(frame["state"] == "COMPLETE") & frame["val_acc"].notna() & has_cost]
    pruned = frame[(frame["state"] == "PRUNED") & frame["last_acc"].notna() & has_cost]
    no_accuracy = frame["state"].isin(["FAIL", "PRUNED"]) & frame["last_acc"].isna()
    # A trial on the rug has no accuracy, whatever else its row holds.
    rug = frame[no_accuracy & has_cost].assign(val_acc=np.nan)
    studies = tuple(
        StudyFront(
            study=study,
            complete=points(complete[complete["study"] == study], cost, "val_acc"),
            pruned=points(pruned[pruned["study"] == study], cost, "last_acc"),
            front=front_line(frame[frame["study"] == study], cost),
        )
        for study in dict.fromkeys(frame["study"])
    )
    landmarks = complete[complete["landmark"] != ""]
    ranks = landmarks[cost].rank(method="first").astype(int)
    note = state_summary(frame) if len(frame) else "no trials yet"
    if cost == "latency_ms" and frame["latency_ms"].isna().all() and len(frame):
        note += " · no trial has a measured latency"
    elif no_accuracy.any() and not len(rug):
        note += f" · {int(no_accuracy.sum())} without accuracy or cost not shown"
    if unreadable:
        named = "; ".join(unreadable[:UNREADABLE_NAMED])
        rest = len(unreadable) - UNREADABLE_NAMED
        more = f"; and {rest} more" if rest > 0 else ""
        trials = "trial" if len(unreadable) == 1 else "trials"
        note += f"<br>{len(unreadable)} {trials} not shown: " + plot_text(named + more)
    return FrontsData(
        cost=cost,
        studies=studies,
        landmarks=Landmarks(
            points=points(landmarks, cost, "val_acc"),
            names=tuple(landmarks["landmark"]),
            label_above=tuple(bool(rank % 2 == 0) for rank in ranks),
        ),
        failed=points(rug[rug["state"] == "FAIL"], cost, "val_acc"),
        skipped=points(rug[rug["state"] == "PRUNED"], cost, "val_acc"),
        note=note,
        empty=len(complete) == 0,
    )


class SpectrumBox(NamedTuple):
    """One study's values of one measure, each at its spectrum position."""

    measure: str  # one of SPECTRUM_MEASURES
    positions: np.ndarray
    values: np.ndarray
    click: np.ndarray | None


class SpectrumStudy(NamedTuple):
    study: str
    boxes: tuple[SpectrumBox, ...]  # one per SPECTRUM_MEASURES, in that order


class SpectrumData(NamedTuple):
    """Complete trials spread over the spectrum, per study and measure."""

    by: str  # "segments" or "decoupling"
    order: tuple[str, ...]  # the positions, in spectrum order
    studies: tuple[SpectrumStudy, ...]
    all_points: bool  # few enough trials to show every point beside its box
    latency_measured: bool
    notice: str = ""  # one line naming the picked studies without architectures (a label)


def spectrum_data(frame: pd.DataFrame, by: str = "segments") -> SpectrumData:
    """Accuracy, MACs and latency of each study's complete trials by spectrum position.

    Args:
        frame: trials frame.
        by: "segments" or "decoupling" (see `dashboard.data.spectrum_frame`).
    """
    others = [info.name for info in study_infos(frame).values() if not info.ours]
    notice = plot_text(f"not on the spectrum, {NOT_OURS}: " + ", ".join(others)) if others else ""
    done, order = spectrum_frame(frame, by)
    studies = []
    for study in dict.fromkeys(done["study"]):
        mine = done[done["study"] == study]
        boxes = []
        for measure in SPECTRUM_MEASURES:
            rows = mine[mine[measure].notna()]
            positions, values = rows["position"].to_numpy(), rows[measure].to_numpy()
            boxes.append(SpectrumBox(measure, positions, values, click_data(rows)))
        studies.append(SpectrumStudy(study, tuple(boxes)))
    return SpectrumData(
        by=by,
        order=tuple(order),
        studies=tuple(studies),
        all_points=len(done) <= SPECTRUM_ALL_POINTS_UP_TO,
        latency_measured=not done["latency_ms"].isna().all(),
        notice=notice,
    )


class StudyProgress(NamedTuple):
    """One study's running totals after each trial number."""

    study: str
    numbers: np.ndarray
    hypervolume: np.ndarray | None  # None for a study that is not ours: it has no such scale
    hours: np.ndarray  # cumulative trial hours


class StateBars(NamedTuple):
    """How many trials of one state each study has."""

    state: str
    studies: tuple[str, ...]
    trials: np.ndarray


class ProgressData(NamedTuple):
    studies: tuple[StudyProgress, ...]
    states: tuple[StateBars, ...]
    table: tuple[tuple[str | int, ...], ...]  # one row per study, under `header`
    header: tuple[str, ...] = PROGRESS_TABLE_HEADER
    # The first panel: "hypervolume" (studies of ours), else "reports": the Trial.report
    # curves of studies that nas.search did not make.
    panel: str = "hypervolume"
    curves: tuple[ReportCurves, ...] = ()
    notice: str = ""  # one line naming the studies without a hypervolume (a label)


def progress_data(frame: pd.DataFrame) -> ProgressData:
    """Hypervolume, hours and trial states per study, and the summary table beside them.

    A study that nas.search did not make has no hypervolume (its objectives have no common
    scale); when only such studies are picked, the first panel shows their Trial.report curves.
    """
    infos = study_infos(frame)
    others = [info for info in infos.values() if not info.ours]
    panel = "reports" if others and len(others) == len(infos) else "hypervolume"
    notice = ""
    if others:
        instead = "their Trial.report values" if panel == "reports" else "not in the hypervolume"
        notice = plot_text(f"{NOT_OURS}, {instead}: " + ", ".join(info.name for info in others))
    if not len(frame):  # nothing picked: an empty figure, not a failed callback
        return ProgressData((), (), (), panel=panel, notice=notice)
    ours = frame[frame["ours"].astype(bool)]
    hv, counts, hours = hypervolume_series(ours), state_counts(frame), time_spent(frame)
    studies = []
    for study in dict.fromkeys(frame["study"]):
        mine = hv[hv["study"] == study]
        spent = hours[hours["study"] == study]
        studies.append(
            StudyProgress(
                study,
                spent["number"].to_numpy(),
                mine["hypervolume"].to_numpy() if infos.get(study, _OURS).ours else None,
                spent["hours"].to_numpy(),
            )
        )
    states = []
    for state in dict.fromkeys(counts["state"]):
        mine = counts[counts["state"] == state]
        states.append(StateBars(state, tuple(mine["study"]), mine["trials"].to_numpy()))
    curves = tuple(report_curves(frame[frame["study"] == info.name], info.name) for info in others)
    return ProgressData(
        tuple(studies),
        tuple(states),
        _progress_table(frame, infos),
        header=ANY_STUDY_TABLE_HEADER if others else PROGRESS_TABLE_HEADER,
        panel=panel,
        curves=curves if panel == "reports" else (),
        notice=notice,
    )


def _progress_table(
    frame: pd.DataFrame, infos: dict[str, StudyInfo]
) -> tuple[tuple[str | int, ...], ...]:
    anyone = any(not info.ours for info in infos.values())
    rows = []
    for study, trials in frame.groupby("study", sort=False):
        start, end = trials["datetime_start"].min(), trials["datetime_complete"].max()
        wall = (end - start).total_seconds() / 3600 if pd.notna(start) and pd.notna(end) else 0.0
        rows.append(
            (study, len(trials), f"{wall:.2f} h", f"{trials['duration_s'].sum() / 3600:.2f} h",
             _best_cell(trials, infos.get(study), labelled=anyone))
        )  # fmt: skip
    return tuple(rows)


def _best_cell(trials: pd.DataFrame, info: StudyInfo | None, labelled: bool) -> str:
    """A study's best: its validation accuracy, said as such when the header only says best;
    a study that is not ours says what its best is (`plain_best`)."""
    if info is not None and not info.ours:
        return plain_best(trials[trials["state"] == "COMPLETE"], info)
    best = trials["val_acc"].max()
    value = "n/a" if pd.isna(best) else f"{best:.4f}"
    return f"val acc {value}" if labelled else value


class ObjectiveBars(NamedTuple):
    """The most important parameters for one objective, least important first."""

    objective: str
    params: tuple[str, ...]
    importances: tuple[float, ...]


class ImportanceData(NamedTuple):
    objectives: tuple[ObjectiveBars, ...]
    top: int  # how many parameters each objective shows at most


def importance_data(
    by_objective: dict[str, dict[str, float]], top: int = IMPORTANCE_TOP
) -> ImportanceData:
    """The `top` most important parameters of each objective, ranked."""
    objectives = []
    for objective, importances in by_objective.items():
        ranked = sorted(importances.items(), key=lambda item: item[1])[-top:]
        objectives.append(
            ObjectiveBars(
                objective, tuple(name for name, _ in ranked), tuple(value for _, value in ranked)
            )
        )
    return ImportanceData(tuple(objectives), top)
