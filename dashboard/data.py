"""Storage -> plain data: one pandas frame of trials per study, and what the pages derive from it.

Everything here is pure (FrozenTrials in, frames and named tuples out) except `FrameCache`, which
remembers the frame of each study until the study changes. Pareto membership is decided here,
never in the figure builders.

Any Optuna study opens: the columns of accuracy, costs and architecture are filled for studies
of `nas.search` only (a study of ours stores its space), and every study has its objective
values as Optuna stores them (`values`), its `best_trial` membership (Optuna's `best_trials`,
honouring the directions) and its `Trial.report` values (`reports`). A frame carries the
`StudyInfo` of its studies in `frame.attrs["studies"]` (`study_infos`), so a page knows each
study's directions and objective labels even when it has no trial yet.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from dashboard.storage import StorageReader, StudyInfo
from nas import Arch
from nas._decoupling import decoupling_degree
from nas.confirm import StoredRuns, stored_runs
from nas.pareto import hypervolume, nondominated_indices, pareto_indices
from nas.record import (
    CONFIRM_PREFIX,
    DEFAULT_OBJECTIVES,
    FINAL_PREFIX,
    TrialRecord,
    confirmation_runs,
    is_skipped,
    objective_value,
)

# Cost axes the fronts can be drawn against; each gets its own Pareto membership column.
COST_COLUMNS = ("macs", "params", "latency_ms")
# How much of a reason an unreadable trial's note quotes: a stored string may be long.
NOTE_CHARS = 160
STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")
MIN_IMPORTANCE_TRIALS = 8

COLUMNS = [
    "study", "number", "state", "val_acc", "last_acc", "macs", "params", "latency_ms",
    "decoupling", "arch", "segments", "landmark", "duplicate_of", "pruned_at_epoch", "constraint",
    "skipped", "failure", "train_seconds", "datetime_start", "datetime_complete", "duration_s",
    "ours", "values", "best_trial", "reports",
]  # fmt: skip


def _number(value) -> float:
    """A finite float, or NaN for anything missing or not a number."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def trial_row(info: StudyInfo, trial: FrozenTrial) -> dict:
    """One trial as a flat record (accuracy and costs from values, else from user attrs).

    A study that is not ours gets no accuracy, cost or architecture: whatever its values and
    attributes mean, it is not that.
    """
    start, complete = trial.datetime_start, trial.datetime_complete
    generic = {
        "study": info.name,
        "number": trial.number,
        "state": trial.state.name,
        "datetime_start": start,
        "datetime_complete": complete,
        "duration_s": (complete - start).total_seconds() if start and complete else math.nan,
        "ours": info.ours,
        "values": tuple(_number(value) for value in trial.values or ()),
        "best_trial": False,  # set over the whole study by trials_frame
        "reports": tuple(sorted(trial.intermediate_values.items())),
    }
    if not info.ours:
        return {**dict.fromkeys(COLUMNS, math.nan), **_NOT_OURS, **generic}
    record = TrialRecord.from_trial(trial)
    curve = record.val_acc_curve or list(trial.intermediate_values.values())

    def objective(name: str) -> float:
        return _or_nan(objective_value(trial, name, info.objectives))

    return {
        "study": info.name,
        "number": trial.number,
        "state": trial.state.name,
        "val_acc": objective("val_acc"),
        "last_acc": _number(curve[-1]) if curve else math.nan,
        "macs": objective("macs"),
        "params": _or_nan(record.params),
        "latency_ms": objective("latency_ms"),
        "decoupling": _or_nan(record.decoupling),
        "arch": record.arch or "",
        # A space that sweeps one shared segments knob stores it as a param: the request, before
        # narrow stages lower it; otherwise spectrum_frame derives it from the architecture.
        "segments": str(trial.params.get("segments", "")),
        "landmark": record.landmark or "",
        "duplicate_of": _or_nan(record.duplicate_of),
        "pruned_at_epoch": _or_nan(record.pruned_at_epoch),
        "constraint": record.constraint or "",
        "skipped": is_skipped(trial),
        "failure": record.failure or "",
        "train_seconds": _or_nan(record.train_seconds),
        **generic,
    }


# The text columns of a trial of a study that is not ours (its numbers are NaN).
_NOT_OURS = dict(arch="", segments="", landmark="", constraint="", skipped=False, failure="")


def trials_frame(info: StudyInfo, trials: Sequence[FrozenTrial]) -> pd.DataFrame:
    """Every trial of one study as a row of COLUMNS plus one `pareto_<cost>` column per cost."""
    frame = pd.DataFrame([trial_row(info, trial) for trial in trials], columns=COLUMNS)
    # The degree on today's scale, from the architecture wherever it can be read: a study stored
    # before the definition changed keeps its old values in its attributes. The stored value
    # stands only where the architecture cannot be read.
    derived = frame["arch"].map(lambda text: _decoupling(text) if text else math.nan)
    frame["decoupling"] = derived.where(derived.notna(), frame["decoupling"]).astype(float)
    complete = (frame["state"] == "COMPLETE").to_numpy()
    best = np.zeros(len(frame), bool)
    best[complete] = best_trial_mask(list(frame.loc[complete, "values"]), info.directions)
    frame["best_trial"] = best
    frame.attrs["studies"] = {info.name: info}
    return add_pareto_columns(frame)


def study_infos(frame: pd.DataFrame) -> dict[str, StudyInfo]:
    """The studies of a frame from `trials_frame` or `FrameCache.frame`, in order, even those
    without a trial. A frame concatenated by hand lost them: its studies of ours are taken to
    be maximize/minimize, any other's objectives to be minimized and unnamed."""
    infos = dict(frame.attrs.get("studies", {}))
    for name, rows in frame.groupby("study", sort=False):
        if name not in infos:
            width = max(2, max(map(len, rows["values"]), default=2))
            if bool(rows["ours"].iloc[0]):
                directions = ("maximize",) + ("minimize",) * (width - 1)
                objectives = DEFAULT_OBJECTIVES[:width]
                infos[name] = StudyInfo(name, directions, objectives, {"space": ""})
            else:
                infos[name] = StudyInfo(name, ("minimize",) * width, (), {})
    return infos


def best_trial_mask(values: Sequence[Sequence[float]], directions: Sequence[str]) -> np.ndarray:
    """True for each point that no other dominates, as Optuna's `best_trials` has them.

    The one front rule (`nas.pareto`) in as many objectives as the study has: a point is
    dominated by one at least as good in every objective (as each is directed) and better in
    one. Equal points are all kept; a point with a missing value is on no front.
    """
    mask = np.zeros(len(values), bool)
    if not len(values):
        return mask
    signs = np.array([-1.0 if direction == "maximize" else 1.0 for direction in directions])
    width = len(directions)
    points = (
        np.array(
            [tuple(v)[:width] if len(v) >= width else (math.nan,) * width for v in values], float
        )
        * signs
    )  # every objective minimized
    usable = np.flatnonzero(np.isfinite(points).all(axis=1))
    mask[usable[nondominated_indices(points[usable].tolist())]] = True
    return mask


def read_trials(
    info: StudyInfo, trials: Sequence[FrozenTrial]
) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The trials frame of the trials that can be read, and a note for each one left out.

    A trial whose stored architecture does not parse (corrupt, hand-edited or hostile) is left
    out of every figure, and its note ("trial 12: architecture cannot be read: ...") says why,
    so one such trial never takes the pages of its study down.
    """
    readable, notes = [], []
    for trial in trials:
        arch = TrialRecord.from_trial(trial).arch if info.ours else None
        parsed = read_arch(arch) if arch else None
        if isinstance(parsed, str):
            notes.append(f"trial {trial.number}: architecture cannot be read: {parsed}")
        else:
            readable.append(trial)
    return trials_frame(info, readable), tuple(notes)


@lru_cache(maxsize=65536)
def read_arch(arch_text: str) -> Arch | str:
    """The architecture of a stored string, or (never raising) why it cannot be read."""
    try:
        return Arch.parse(arch_text)
    except Exception as error:  # noqa: BLE001 - whatever a stored string does, the page stays
        reason = str(error) or type(error).__name__
        return reason if len(reason) <= NOTE_CHARS else reason[: NOTE_CHARS - 3] + "..."


@lru_cache(maxsize=65536)
def _decoupling(arch_text: str) -> float:
    arch = read_arch(arch_text)
    return math.nan if isinstance(arch, str) else decoupling_degree(arch)


def pareto_mask(cost: np.ndarray, accuracy: np.ndarray) -> np.ndarray:
    """True where a point is on the front by nas.pareto's rule, the one the search prints.

    No other point has cost <= and accuracy >= with one of them strict; NaN points are never
    on the front; equal points (a duplicate's reused result) all are.
    """
    cost, accuracy = np.asarray(cost, float), np.asarray(accuracy, float)
    mask = np.zeros(len(cost), bool)
    mask[pareto_indices(list(zip(accuracy.tolist(), cost.tolist())))] = True
    return mask


def add_pareto_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Mark each study's 2-D front of validation accuracy against each cost (COMPLETE only)."""
    frame = frame.copy()
    complete = (frame["state"] == "COMPLETE").to_numpy()
    for cost in COST_COLUMNS:
        column = np.zeros(len(frame), bool)
        for _, rows in frame.groupby("study", sort=False).indices.items():
            rows = rows[complete[rows]]
            column[rows] = pareto_mask(
                frame[cost].to_numpy()[rows], frame["val_acc"].to_numpy()[rows]
            )
        frame[f"pareto_{cost}"] = column
    return frame


def fingerprint(trials: Sequence[FrozenTrial]) -> tuple:
    """What changes whenever a trial is added, finishes or changes state: for cheap polling."""
    finished = [trial for trial in trials if trial.state.is_finished()]
    last = max(
        (trial.datetime_complete for trial in finished if trial.datetime_complete), default=None
    )
    running = sum(trial.state == TrialState.RUNNING for trial in trials)
    return (len(trials), len(finished), running, last.isoformat() if last else None)


def runs_fingerprint(study_attrs: dict) -> tuple:
    """What changes whenever a confirmation or final run (`nas.confirm`) finishes: not each
    epoch of one in progress, which the pages do not show."""
    runs = confirmation_runs(study_attrs).values()
    finished = [run for run in runs if run.accuracy is not None]
    return (len(finished), max((run.beat for run in finished), default=0.0))


def _without_runs(info: StudyInfo) -> StudyInfo:
    """The info without its runs' attributes: a run's beat each epoch changes no trial."""
    prefixes = (CONFIRM_PREFIX, FINAL_PREFIX)
    attrs = {key: value for key, value in info.attrs.items() if not key.startswith(prefixes)}
    return info._replace(attrs=attrs)


class _Loaded(NamedTuple):
    key: tuple  # the trials' fingerprint and the runs'
    frame: pd.DataFrame
    unreadable: tuple[str, ...]
    runs: StoredRuns


class FrameCache:
    """The trials frame and stored runs of each study, rebuilt only when the study's
    fingerprint changes."""

    def __init__(self, reader: StorageReader) -> None:
        self.reader = reader
        self._lock = threading.Lock()
        self._frames: dict[str, _Loaded] = {}

    def infos(self) -> dict[str, StudyInfo]:
        return {info.name: info for info in self.reader.studies()}

    def versions(self, names: Sequence[str]) -> dict[str, str]:
        """A short version string per existing study, changing whenever its trials change or
        a run of it finishes."""
        infos = self.infos()
        return {
            name: "/".join(map(str, self._load(infos[name]).key))
            for name in names
            if name in infos
        }

    def frame(self, names: Sequence[str]) -> pd.DataFrame:
        """The trials of the named studies (unknown names are left out), in one frame; its
        `attrs["studies"]` has their infos (`study_infos`), those without trials too."""
        infos = self.infos()
        picked = {name: infos[name] for name in names if name in infos}
        frames = [self._load(info).frame for info in picked.values()]
        if len(frames) == 1:
            return frames[0]
        if not frames:
            frame = add_pareto_columns(pd.DataFrame(columns=COLUMNS))
        else:
            frame = pd.concat(frames, ignore_index=True)
        frame.attrs["studies"] = picked
        return frame

    def unreadable(self, names: Sequence[str]) -> tuple[str, ...]:
        """A note per trial of the named studies left out of the frame (see `read_trials`)."""
        infos = self.infos()
        several = len(names) > 1
        return tuple(
            f"{name}, {note}" if several else note
            for name in names
            if name in infos
            for note in self._load(infos[name]).unreadable
        )

    def stored_runs(self, names: Sequence[str]) -> dict[str, StoredRuns]:
        """The confirmation and final runs (`nas.confirm.stored_runs`) of each named study."""
        infos = self.infos()
        return {name: self._load(infos[name]).runs for name in names if name in infos}

    def _load(self, info: StudyInfo) -> _Loaded:
        trials = self.reader.trials(info.name)
        attrs, info = info.attrs, _without_runs(info)
        key = fingerprint(trials) + runs_fingerprint(attrs)
        with self._lock:
            cached = self._frames.get(info.name)
            # A study's info changes without a trial changing when its metric names are set.
            if cached is not None and cached.key == key and _info_of(cached.frame) == info:
                return cached
        runs = stored_runs(trials, attrs) if info.ours else stored_runs((), {})
        built = _Loaded(key, *read_trials(info, trials), runs)
        with self._lock:
            self._frames[info.name] = built
        return built


def _info_of(frame: pd.DataFrame) -> StudyInfo | None:
    return next(iter(frame.attrs.get("studies", {}).values()), None)


def hypervolume_series(frame: pd.DataFrame) -> pd.DataFrame:
    """Hypervolume after each trial number, per study: the same normalized measure the search
    prints and the benchmarks use (nas.pareto.hypervolume), so the numbers agree."""
    rows = []
    for study, trials in frame.groupby("study", sort=False):
        trials = trials.sort_values("number")
        front: list[tuple[float, float]] = []
        volume = 0.0
        for number, state, accuracy, macs in trials[
            ["number", "state", "val_acc", "macs"]
        ].itertuples(index=False):
            if state == "COMPLETE" and math.isfinite(accuracy) and math.isfinite(macs):
                front.append((accuracy, macs))
                front = [front[i] for i in pareto_indices(front)]
                volume = hypervolume(front)
            rows.append((study, number, volume))
    return pd.DataFrame(rows, columns=["study", "number", "hypervolume"])


def state_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Trials per study and state (constraint-skipped PRUNED trials counted as SKIPPED)."""
    state = frame["state"].where(~frame["skipped"].astype(bool), "SKIPPED")
    counts = frame.assign(state=state).groupby(["study", "state"], sort=False).size()
    return counts.rename("trials").reset_index()


def time_spent(frame: pd.DataFrame) -> pd.DataFrame:
    """Cumulative trial hours (start to completion) against trial number, per study."""
    ordered = frame.sort_values(["study", "number"])
    hours = ordered["duration_s"].fillna(0.0) / 3600.0
    return ordered.assign(hours=hours.groupby(ordered["study"]).cumsum())[
        ["study", "number", "hours"]
    ]


def state_summary(frame: pd.DataFrame) -> str:
    """'42 trials: 30 complete, 8 pruned (2 skipped by a constraint), 3 failed, 1 running'."""
    counts = frame["state"].value_counts()
    skipped = int(frame["skipped"].astype(bool).sum())
    parts = [f"{int(counts.get('COMPLETE', 0))} complete"]
    pruned = f"{int(counts.get('PRUNED', 0))} pruned"
    parts.append(pruned + (f" ({skipped} skipped by a constraint)" if skipped else ""))
    parts.append(f"{int(counts.get('FAIL', 0))} failed")
    if counts.get("RUNNING", 0):
        parts.append(f"{int(counts['RUNNING'])} running")
    return f"{len(frame)} trials: " + ", ".join(parts)


@lru_cache(maxsize=65536)
def segments_label(arch_text: str) -> str:
    """The segments of an architecture's spatial convs: '1', '4', 'dw', or 'mixed' per stage."""
    arch = read_arch(arch_text)
    if isinstance(arch, str):
        return "unknown"
    values = {str(stage.segments) for stage in arch.stages if stage.spatial_kernels}
    return values.pop() if len(values) == 1 else "mixed"


def _segments_order(label: str) -> tuple:
    return (0, int(label), "") if label.isdigit() else (1, 0, label)


def spectrum_frame(frame: pd.DataFrame, by: str = "segments") -> tuple[pd.DataFrame, list[str]]:
    """COMPLETE trials with a `position` on the spectrum, and the positions in spectrum order.

    Args:
        frame: trials frame.
        by: "segments" (the space's shared segments parameter, else the segments of every
            stage's spatial convs, 'mixed' when stages differ)
            or "decoupling" (the decoupling degree in tenths).
    """
    done = frame[(frame["state"] == "COMPLETE") & (frame["arch"] != "")].copy()
    if by == "segments":
        derived = done["arch"].map(segments_label)
        done["position"] = done["segments"].where(done["segments"] != "", derived)
        order = sorted(done["position"].unique(), key=_segments_order)
    else:
        tenth = np.clip(np.floor(done["decoupling"].fillna(0) * 10), 0, 9).astype(int)
        done["position"] = [f"{t / 10:.1f}-{(t + 1) / 10:.1f}" for t in tenth]
        order = sorted(done["position"].unique())
    return done, [str(label) for label in order]


class Importances(NamedTuple):
    """Parameter importances per objective, or why there are none."""

    by_objective: dict[str, dict[str, float]]
    message: str


def param_importances(study: optuna.Study, info: StudyInfo) -> Importances:
    """Optuna's parameter importances for each objective (COMPLETE trials only)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < MIN_IMPORTANCE_TRIALS:
        return Importances(
            {},
            f"needs {MIN_IMPORTANCE_TRIALS} complete trials to rank parameters; "
            f"{info.name} has {len(complete)} so far",
        )
    result: dict[str, dict[str, float]] = {}
    # Ours by stored name (the figure titles them); any other study's by its labels.
    objectives = info.objectives if info.ours else info.labels
    for index, (objective, direction) in enumerate(zip(objectives, info.directions)):
        # Optuna ranks what drives the target low; a maximized objective is negated.
        sign = -1.0 if direction == "maximize" else 1.0
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result[objective] = optuna.importance.get_param_importances(
                    study, target=lambda trial, i=index, s=sign: s * trial.values[i]
                )
        except (RuntimeError, ValueError, ZeroDivisionError) as error:
            return Importances(result, f"cannot rank parameters of {info.name}: {error}")
    if not any(result.values()):
        return Importances(result, f"no parameter of {info.name} varies over its complete trials")
    return Importances(result, "")
