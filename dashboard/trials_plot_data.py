"""The data step of the trials page's figures: study facts in, named tuples of what to draw.

The parallel coordinates draw each complete trial as a line through its search parameters
(`Trial.params`), coloured by the study's first objective (validation accuracy in a study of
ours); the curves chart draws every trial's validation curve (or its `Trial.report` values).
As in `dashboard.plot_data`, labels are composed and escaped here (stored names are anyone's
text); the raw study names kept for clicks are escaped by the builders where they label.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from dashboard.plot_data import plot_text
from dashboard.trials_data import (
    OBJECTIVE_PREFIX,
    PARAM_PREFIX,
    StudyFacts,
    objective_label,
    objective_names,
)

# Category labels on an axis are cut to this many characters (a stored choice may be long).
TICK_CHARS = 24
MISSING = "(none)"
CURVE_GROUPS = (("COMPLETE", "complete"), ("PRUNED", "pruned"), ("RUNNING", "running"))


class Axis(NamedTuple):
    """One axis of the parallel coordinates: a label, a value per line, and category ticks."""

    label: str  # escaped
    values: np.ndarray  # float per drawn trial (a category's index for categorical axes)
    ticktext: tuple[str, ...] | None  # escaped category names, None on a numeric axis


class ParcoordsData(NamedTuple):
    axes: tuple[Axis, ...]  # the parameters that vary, then the colour objective
    colour: np.ndarray
    colour_label: str  # escaped
    reverse_scale: bool  # the objective is minimized: its best lines get the scale's top colour
    note: str  # a label: how many trials are drawn and why others are not
    empty: bool


def _choice_order(facts: Sequence[StudyFacts], name: str) -> list:
    """A categorical parameter's choices in the order its distributions list them."""
    order: list = []
    for fact in facts:
        distribution = fact.distributions.get(name)
        if isinstance(distribution, CategoricalDistribution):
            order += [choice for choice in distribution.choices if choice not in order]
    return order


def _is_log(facts: Sequence[StudyFacts], name: str) -> bool:
    return any(
        isinstance(fact.distributions.get(name), (FloatDistribution, IntDistribution))
        and fact.distributions[name].log
        for fact in facts
    )


def _short(text: str) -> str:
    return text if len(text) <= TICK_CHARS else text[: TICK_CHARS - 1] + "…"


def _axis(name: str, values: list, facts: Sequence[StudyFacts]) -> Axis | None:
    """The axis of one parameter, or None when it takes one value only (nothing to read)."""
    present = [value for value in values if value is not None]
    if len(set(map(repr, values))) < 2:
        return None
    numeric = len(present) == len(values) and all(
        isinstance(value, (int, float)) and not isinstance(value, bool) for value in present
    )
    if numeric:
        numbers = np.asarray(values, float)
        if _is_log(facts, name) and (numbers > 0).all():
            return Axis(plot_text(f"{name} (log10)"), np.log10(numbers), None)
        return Axis(plot_text(name), numbers, None)
    order = [choice for choice in _choice_order(facts, name) if choice in present]
    order += sorted({value for value in present if value not in order}, key=repr)
    labels = [str(choice) for choice in order] + ([MISSING] if len(present) < len(values) else [])
    index = {repr(choice): position for position, choice in enumerate(order)}
    codes = [index.get(repr(value), len(order)) for value in values]
    ticks = tuple(plot_text(_short(label)) for label in labels)
    return Axis(plot_text(name), np.asarray(codes, float), ticks)


def parcoords_data(facts: Sequence[StudyFacts]) -> ParcoordsData:
    """Complete trials with a first objective, one axis per parameter that varies among them,
    a study axis when several studies are picked, and the objective last."""
    firsts = [(objective_names(fact.info) or [None])[0] for fact in facts]
    colour_label = plot_text(objective_label(firsts[0])) if firsts and firsts[0] else ""
    drawn = []  # (rows, objective column): each study's complete trials with a first objective
    for fact, first in zip(facts, firsts):
        column = f"{OBJECTIVE_PREFIX}{first}"
        if first is not None and column in fact.table.columns:
            table = fact.table
            drawn.append((table[(table["state"] == "COMPLETE") & table[column].notna()], column))
    names = list(dict.fromkeys(k for fact in facts for k in fact.distributions))
    names += [
        key[len(PARAM_PREFIX) :]
        for fact in facts
        for key in fact.table.columns
        if key.startswith(PARAM_PREFIX) and key[len(PARAM_PREFIX) :] not in names
    ]

    def values_of(column: str) -> list:
        return [
            _param(value)
            for done, _ in drawn
            for value in (done[column] if column in done.columns else [None] * len(done))
        ]

    axes = []
    if len(facts) > 1:
        study_axis = _axis("study", values_of("study"), facts)
        axes += [study_axis] if study_axis else []
    for name in names:
        axis = _axis(name, values_of(PARAM_PREFIX + name), facts)
        if axis is not None:
            axes.append(axis)
    colour = np.concatenate([done[column].to_numpy(float) for done, column in drawn] or [[]])
    count = len(colour)
    if count:
        axes.append(Axis(colour_label, colour, None))
    total = sum(len(fact.table) for fact in facts)
    note = f"{count} complete trials of {total} drawn"
    if count and len(axes) == 1:
        note += " · no parameter varies among them"
    reverse = bool(facts) and facts[0].info.directions[:1] == ("minimize",)
    return ParcoordsData(tuple(axes), colour, colour_label, reverse, note, empty=not count)


def _param(value):
    """A parameter value from a table row (missing ones are NaN there, None here)."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


class CurveSet(NamedTuple):
    """The curves of one study's trials in one state, as one line broken between trials."""

    study: str  # raw
    group: str  # "complete", "pruned", "running" or "other"
    label: str  # escaped legend name
    x: np.ndarray  # NaN between trials
    y: np.ndarray
    click: np.ndarray  # [study, number] per point (opens the trial's page); hovers show number


class CurvesData(NamedTuple):
    sets: tuple[CurveSet, ...]
    x_label: str
    y_label: str
    note: str
    empty: bool


def curves_data(facts: Sequence[StudyFacts]) -> CurvesData:
    """Every trial's curve, grouped by study and state (complete, pruned, running, other)."""
    sets = []
    several = len(facts) > 1
    reported = stored = False
    for fact in facts:
        prefix = f"{plot_text(fact.info.name)}: " if several else ""
        known = {state for state, _ in CURVE_GROUPS}
        groups = [*CURVE_GROUPS, (None, "other")]
        for state, name in groups:
            curves = [
                curve
                for curve in fact.curves
                if (curve.state == state if state else curve.state not in known)
            ]
            if not curves:
                continue
            reported |= any(curve.reported for curve in curves)
            stored |= not all(curve.reported for curve in curves)
            x, y, numbers = [], [], []
            for curve in curves:
                x += [*curve.steps, math.nan]
                y += [*curve.values, math.nan]
                numbers += [curve.number] * (len(curve.steps) + 1)
            click = np.empty((len(numbers), 2), object)
            click[:, 0], click[:, 1] = fact.info.name, numbers
            sets.append(
                CurveSet(
                    fact.info.name,
                    name,
                    f"{prefix}{name} ({len(curves)})",
                    np.asarray(x, float),
                    np.asarray(y, float),
                    click,
                )
            )
    x_label, y_label = {
        (False, True): ("epoch", "validation accuracy"),
        (True, False): ("step (Trial.report)", "reported value"),
    }.get((reported, stored), ("epoch, or step of Trial.report", "accuracy or reported value"))
    count = sum(len(fact.curves) for fact in facts)
    total = sum(len(fact.table) for fact in facts)
    note = f"{count} of {total} trials have a curve"
    return CurvesData(tuple(sets), x_label, y_label, note, empty=not sets)
