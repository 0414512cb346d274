"""The data step of every dashboard figure: a trials frame in, a small named tuple of what to draw.

`dashboard.data` builds the frame (one row per trial, Pareto membership in `pareto_<cost>`
columns); here each figure's share of it is chosen: which trials go into which series, which of
them form each study's front, which are landmarks, what their hovers say and what a click opens.
The builders in `dashboard.figures` and `dashboard.search_figures` draw these tuples and choose
nothing, so tests can check what is plotted here and how it is drawn there, apart.

Stored strings (study names, architectures, attributes) are anyone's text, and Plotly draws its
own markup in every label (<a href>, <span style>, <b>, <br>, ...), so each one goes through
`plot_text` on its way into a label. The tuples' hover texts and notes are labels already,
composed and escaped here; every other string they hold is raw (it also names a study in a
click's URL), and the builders escape it where they label with it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from dashboard.data import (
    hypervolume_series,
    spectrum_frame,
    state_counts,
    state_summary,
    time_spent,
)
from dashboard.trial_data import si

# The rows of the spectrum figure, top to bottom: accuracy, then the costs it was bought with.
SPECTRUM_MEASURES = ("val_acc", "macs", "latency_ms")
# Above this many trials the spectrum's boxes show only their outliers, not every point.
SPECTRUM_ALL_POINTS_UP_TO = 2000
PROGRESS_TABLE_HEADER = ("study", "trials", "wall clock", "trial hours", "best val acc")
IMPORTANCE_TOP = 12
# How many unreadable trials the fronts note names before it only counts the rest.
UNREADABLE_NAMED = 3


def plot_text(value: object) -> str:
    """`value` as inert text in a Plotly label: any markup in it shows as typed, never drawn.

    Plotly splits a label at its tags, then decodes &amp; &lt; &gt; in the text between them,
    so escaping those three leaves no tag and shows the original characters. Quotes stay: with
    no tag there is nothing for them to open or close (and Plotly would not decode &quot;).
    """
    return html.escape(str(value), quote=False)


class Points(NamedTuple):
    """One series of trial markers, in frame order."""

    x: np.ndarray
    y: np.ndarray
    decoupling: np.ndarray  # per point, for the shared colour scale
    hover: tuple[str, ...]
    click: np.ndarray | None  # [study, number] per point (opens its page); None when empty


class FrontLine(NamedTuple):
    """The corners of one study's Pareto front, cheapest first."""

    x: np.ndarray
    y: np.ndarray
    numbers: np.ndarray  # the trials at the corners


class StudyFront(NamedTuple):
    """One study's share of the fronts figure."""

    study: str
    complete: Points  # accuracy = final validation accuracy
    pruned: Points  # accuracy = the last one recorded before the pruner stopped it
    front: FrontLine


class Landmarks(NamedTuple):
    """The complete landmark trials of every study, labelled by name."""

    points: Points
    names: tuple[str, ...]
    label_above: tuple[bool, ...]  # alternate along the cost axis so neighbours do not collide


class FrontsData(NamedTuple):
    """Everything the fronts figure shows, against one cost."""

    cost: str
    studies: tuple[StudyFront, ...]
    landmarks: Landmarks
    failed: Points  # failed trials with a cost: a rug under the plot (they have no accuracy)
    skipped: Points  # pruned trials without accuracy (constraint-skipped): on the rug too
    note: str  # the line of counts above the plot, and the trials left out (a label)
    empty: bool  # no complete trial has both accuracy and this cost yet


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


def click_data(rows: pd.DataFrame) -> np.ndarray | None:
    """[study, number] per row: what a click needs to open the trial's page."""
    return np.stack([rows["study"], rows["number"]], axis=1) if len(rows) else None


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
) -> FrontsData:
    """What the fronts figure draws: validation accuracy against `cost`, per study.

    Args:
        frame: trials frame of one or several studies (`dashboard.data.trials_frame`).
        cost: the cost column of the x axis: "macs", "params" or "latency_ms".
        unreadable: a note per trial left out of the frame (`dashboard.data.read_trials`),
            named under the counts.
    """
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


def spectrum_data(frame: pd.DataFrame, by: str = "segments") -> SpectrumData:
    """Accuracy, MACs and latency of each study's complete trials by spectrum position.

    Args:
        frame: trials frame.
        by: "segments" or "decoupling" (see `dashboard.data.spectrum_frame`).
    """
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
    )


class StudyProgress(NamedTuple):
    """One study's running totals after each trial number."""

    study: str
    numbers: np.ndarray
    hypervolume: np.ndarray
    hours: np.ndarray  # cumulative trial hours


class StateBars(NamedTuple):
    """How many trials of one state each study has."""

    state: str
    studies: tuple[str, ...]
    trials: np.ndarray


class ProgressData(NamedTuple):
    studies: tuple[StudyProgress, ...]
    states: tuple[StateBars, ...]
    table: tuple[tuple[str | int, ...], ...]  # one row per study, under PROGRESS_TABLE_HEADER


def progress_data(frame: pd.DataFrame) -> ProgressData:
    """Hypervolume, hours and trial states per study, and the summary table beside them."""
    if not len(frame):  # nothing picked: an empty figure, not a failed callback
        return ProgressData((), (), ())
    hv, counts, hours = hypervolume_series(frame), state_counts(frame), time_spent(frame)
    studies = []
    for study in dict.fromkeys(hv["study"]):
        mine = hv[hv["study"] == study]
        studies.append(
            StudyProgress(
                study,
                mine["number"].to_numpy(),
                mine["hypervolume"].to_numpy(),
                hours.loc[hours["study"] == study, "hours"].to_numpy(),
            )
        )
    states = []
    for state in dict.fromkeys(counts["state"]):
        mine = counts[counts["state"] == state]
        states.append(StateBars(state, tuple(mine["study"]), mine["trials"].to_numpy()))
    return ProgressData(tuple(studies), tuple(states), _progress_table(frame))


def _progress_table(frame: pd.DataFrame) -> tuple[tuple[str | int, ...], ...]:
    rows = []
    for study, trials in frame.groupby("study", sort=False):
        start, end = trials["datetime_start"].min(), trials["datetime_complete"].max()
        wall = (end - start).total_seconds() / 3600 if pd.notna(start) and pd.notna(end) else 0.0
        best = trials["val_acc"].max()
        rows.append(
            (study, len(trials), f"{wall:.2f} h", f"{trials['duration_s'].sum() / 3600:.2f} h",
             "n/a" if pd.isna(best) else f"{best:.4f}")
        )  # fmt: skip
    return tuple(rows)


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
