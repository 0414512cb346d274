"""The trials page's data: every trial of the picked studies as one table, read once per change.

`study_facts` reads what the trials frame (`dashboard.data`) does not hold from a study's
FrozenTrials in one pass: every objective value, the search parameters (`Trial.params`), the
curve of each trial and the state and duration of every trial, readable architecture or not.
`trials_table` joins that with the frame's record columns (accuracy, costs, decoupling, ...),
so the table says what the fronts say. `TrialsCache` keeps both until a study changes.
Filtering, sorting, paging and the CSV live in `dashboard.trials_table`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial

from dashboard.data import FrameCache
from dashboard.storage import StudyInfo
from nas._settings import OBJECTIVE_LABELS
from nas.record import finite, read_attr

# Objectives the frame already holds as record columns; any other objective gets its own column.
RECORD_OBJECTIVES = ("val_acc", "macs", "latency_ms")
# Columns taken from the trials frame (what the record and the study's objectives say).
RECORD_COLUMNS = (
    "val_acc", "macs", "params", "latency_ms", "decoupling", "landmark", "pruned_at_epoch",
)  # fmt: skip
OBJECTIVE_PREFIX = "objective:"
PARAM_PREFIX = "param:"


class TableColumn(NamedTuple):
    """One column of the trials table: its id in the table, header, kind and display format.

    kind is "numeric" or "text"; fmt names how the page shows a numeric value ("int", "si",
    "4f", "3f", "2f", "1f", "g") and is "" for text.
    """

    id: str
    label: str
    kind: str
    fmt: str = ""


FIXED_COLUMNS = (
    TableColumn("number", "trial", "numeric", "int"),
    TableColumn("state", "state", "text"),
    TableColumn("val_acc", "validation accuracy", "numeric", "4f"),
    TableColumn("macs", "MACs", "numeric", "si"),
    TableColumn("params", "parameters", "numeric", "si"),
    TableColumn("latency_ms", "latency (ms)", "numeric", "3f"),
    TableColumn("decoupling", "decoupling", "numeric", "2f"),
    TableColumn("landmark", "landmark", "text"),
    TableColumn("pruned_at_epoch", "pruned at epoch", "numeric", "int"),
    TableColumn("duration_s", "duration (s)", "numeric", "1f"),
    TableColumn("arch", "architecture", "text"),
)
STUDY_COLUMN = TableColumn("study", "study", "text")
PLAIN_COLUMNS = ("number", "state", "duration_s")  # what any Optuna trial has


class Curve(NamedTuple):
    """One trial's curve: the stored validation accuracy per epoch, else its Trial.report data."""

    number: int
    state: str
    steps: tuple[int, ...]
    values: tuple[float, ...]
    reported: bool  # True: Trial.report steps (intermediate_values); False: epochs 1..n


class StudyFacts(NamedTuple):
    """What the trials page reads from one study's FrozenTrials, beside the trials frame."""

    info: StudyInfo
    table: pd.DataFrame  # study, number, state, arch, duration_s, objective:*, param:*
    distributions: dict[str, BaseDistribution]  # each parameter's, as first stored
    curves: tuple[Curve, ...]


def objective_label(name: str) -> str:
    return OBJECTIVE_LABELS.get(name, name)


def objective_names(info: StudyInfo) -> list[str]:
    """A name per objective of the study: the ones it records, then "value N" for the rest; a
    study that records none (not ours), its own labels (metric names, else "objective N")."""
    if not info.objectives:
        return list(info.labels)
    names = list(info.objectives)[: len(info.directions)]
    return names + [f"value {index}" for index in range(len(names), len(info.directions))]


def trial_curve(trial: FrozenTrial) -> Curve | None:
    """The trial's validation curve (epochs from 1), else what it reported, else None."""
    stored = read_attr(trial, "val_acc_curve")
    if stored:
        steps, values, reported = tuple(range(1, len(stored) + 1)), stored, False
    elif trial.intermediate_values:
        pairs = sorted(trial.intermediate_values.items())
        steps, values, reported = tuple(s for s, _ in pairs), tuple(v for _, v in pairs), True
    else:
        return None
    values = tuple(math.nan if finite(value) is None else float(value) for value in values)
    return Curve(trial.number, trial.state.name, steps, values, reported)


def _value(values: Sequence[float] | None, index: int) -> float:
    if not values or index >= len(values):
        return math.nan
    value = finite(values[index])
    return math.nan if value is None else value


def study_facts(info: StudyInfo, trials: Sequence[FrozenTrial]) -> StudyFacts:
    """One pass over a study's trials: a row each (every trial), parameters and curves."""
    rows, curves = [], []
    distributions: dict[str, BaseDistribution] = {}
    objectives = [f"{OBJECTIVE_PREFIX}{name}" for name in objective_names(info)]
    for trial in trials:
        start, complete = trial.datetime_start, trial.datetime_complete
        row = {
            "study": info.name,
            "number": trial.number,
            "state": trial.state.name,
            "arch": read_attr(trial, "arch") or "",
            "duration_s": (complete - start).total_seconds() if start and complete else math.nan,
        }
        for index, column in enumerate(objectives):
            row[column] = _value(trial.values, index)
        for name, value in trial.params.items():
            row[PARAM_PREFIX + name] = value
            if name not in distributions and name in trial.distributions:
                distributions[name] = trial.distributions[name]
        rows.append(row)
        curve = trial_curve(trial)
        if curve is not None:
            curves.append(curve)
    base = ["study", "number", "state", "arch", "duration_s", *objectives]
    table = pd.DataFrame(rows, columns=list(dict.fromkeys(base + [k for r in rows for k in r])))
    return StudyFacts(info, table, distributions, tuple(curves))


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _param_column(values: pd.Series) -> tuple[pd.Series, str]:
    """A parameter's values as numbers when every stored one is, else as text ("" missing)."""
    present = values.dropna()
    if len(present) and all(_is_number(value) for value in present):
        return pd.to_numeric(values, errors="coerce"), "numeric"
    return values.map(lambda value: "" if pd.isna(value) else str(value)), "text"


class TrialsTable(NamedTuple):
    """The rows of the trials table (a study column, then one per column id) and its columns."""

    rows: pd.DataFrame
    columns: tuple[TableColumn, ...]


def trials_table(frame: pd.DataFrame, facts: Sequence[StudyFacts]) -> TrialsTable:
    """Every trial of `facts`' studies: the frame's record columns joined on (study, number).

    A trial the frame leaves out (its architecture cannot be read) keeps its row, with its
    stored text as architecture and the record columns blank. Objectives other than the
    record's (a plain Optuna study's values) and every parameter get a column each, with ids
    `o0, o1, ...` and `p0, p1, ...`: stored names are anyone's text and make no safe ids.
    """
    tables = [fact.table for fact in facts if len(fact.table)]
    if not tables:
        rows = pd.DataFrame(columns=["study", "number", "state", "arch", "duration_s"])
    else:
        rows = pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]
    record = frame.loc[:, ["study", "number", *RECORD_COLUMNS]]
    rows = rows.merge(record, on=["study", "number"], how="left", sort=False)
    rows["landmark"] = rows["landmark"].fillna("")
    fixed = FIXED_COLUMNS
    if not any(fact.info.objectives for fact in facts):
        # None of them ours: no record, so no accuracy, cost or architecture column to fill.
        fixed = tuple(column for column in FIXED_COLUMNS if column.id in PLAIN_COLUMNS)
    columns = ([STUDY_COLUMN] if len(facts) > 1 else []) + list(fixed)
    renamed = {}
    objectives = [c for c in rows.columns if c.startswith(OBJECTIVE_PREFIX)]
    for column in objectives:
        name = column[len(OBJECTIVE_PREFIX) :]
        if name not in RECORD_OBJECTIVES:
            renamed[column] = f"o{len(renamed)}"
            columns.append(TableColumn(renamed[column], objective_label(name), "numeric", "g"))
    for index, column in enumerate(c for c in rows.columns if c.startswith(PARAM_PREFIX)):
        rows[column], kind = _param_column(rows[column])
        renamed[column] = f"p{index}"
        label = column[len(PARAM_PREFIX) :]
        columns.append(TableColumn(f"p{index}", label, kind, "g" if kind == "numeric" else ""))
    rows = rows.rename(columns=renamed)
    # Rows keep their study even when no column shows it: a click on a row needs it.
    kept = list(dict.fromkeys(["study", *(column.id for column in columns)]))
    return TrialsTable(rows[kept], tuple(columns))


class TrialsCache:
    """Each study's facts and the last few tables, rebuilt only when a study changes."""

    def __init__(self, frames: FrameCache, keep_tables: int = 4) -> None:
        self.frames = frames
        self._lock = threading.Lock()
        self._facts: dict[str, tuple[str, StudyFacts]] = {}
        self._tables: dict[tuple, TrialsTable] = {}
        self._keep_tables = keep_tables

    def facts(self, names: Sequence[str] | None) -> list[StudyFacts]:
        """The facts of each named study that exists, in the order named."""
        return [fact for _, fact in self._current(names)]

    def _current(self, names: Sequence[str] | None) -> list[tuple[str, StudyFacts]]:
        versions = self.frames.versions(list(names or []))
        infos = self.frames.infos()
        found = []
        for name, version in versions.items():
            with self._lock:
                cached = self._facts.get(name)
            if cached is None or cached[0] != version:
                cached = (version, study_facts(infos[name], self.frames.reader.trials(name)))
                with self._lock:
                    self._facts[name] = cached
            found.append(cached)
        return found

    def table(self, names: Sequence[str] | None) -> TrialsTable:
        """The trials table of the named studies (unknown names are left out)."""
        current = self._current(names)
        key = tuple((fact.info.name, version) for version, fact in current)
        with self._lock:
            table = self._tables.get(key)
        if table is None:
            frame = self.frames.frame([fact.info.name for _, fact in current])
            table = trials_table(frame, [fact for _, fact in current])
            with self._lock:
                self._tables[key] = table
                while len(self._tables) > self._keep_tables:
                    self._tables.pop(next(iter(self._tables)))
        return table
