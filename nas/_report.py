"""What the search prints: a progress line while it runs and the Pareto front at the end."""

from __future__ import annotations

import math
import sys
import time

import optuna
from optuna.trial import TrialState

from nas.pareto import hypervolume, pareto_indices
from nas.record import TrialRecord, counts_toward_target, trial_accuracy, trial_macs
from nas.storage import DEFAULT_STORAGE, redact


def completed_points(trials) -> list[tuple[optuna.trial.FrozenTrial, float, float]]:
    """(trial, accuracy, MACs) of the complete trials that have both."""
    points = []
    for trial in trials:
        if trial.state == TrialState.COMPLETE:
            accuracy, macs = trial_accuracy(trial), trial_macs(trial)
            if accuracy is not None and macs is not None:
                points.append((trial, accuracy, macs))
    return points


def front_trials(trials) -> list[optuna.trial.FrozenTrial]:
    """Complete trials on the accuracy-MACs Pareto front, cheapest first (equal ones all)."""
    complete = completed_points(trials)
    return [complete[i][0] for i in pareto_indices([point[1:] for point in complete])]


def study_hypervolume(trials) -> float:
    return hypervolume([point[1:] for point in completed_points(trials)])


class Progress:
    """One line per finished trial: done/total, elapsed, ETA, front size, HV, best accuracy."""

    def __init__(self, study: optuna.Study, target: int, stream=sys.stderr) -> None:
        self.study, self.target, self.stream = study, target, stream
        self.start = time.monotonic()
        self.start_count = self.done()
        self.last_line = ""

    def done(self, trials=None) -> int:
        trials = self.study.get_trials(deepcopy=False) if trials is None else trials
        return sum(counts_toward_target(t) for t in trials)

    def line(self) -> str:
        trials = self.study.get_trials(deepcopy=False)
        done = self.done(trials)
        elapsed = time.monotonic() - self.start
        new = done - self.start_count
        remaining = max(0, self.target - done)
        eta = f"{_clock(elapsed / new * remaining)}" if new > 0 else "?"
        points = [point[1:] for point in completed_points(trials)]
        best = max((accuracy for accuracy, _ in points), default=0.0)
        pruned = sum(t.state == TrialState.PRUNED for t in trials)
        failed = sum(t.state == TrialState.FAIL for t in trials)
        return (
            f"[{done}/{self.target}] elapsed {_clock(elapsed)} eta {eta} | "
            f"front {len(pareto_indices(points))} | HV {hypervolume(points):.4f} | "
            f"best acc {best:.4f} | pruned {pruned} failed {failed}"
        )

    def report(self) -> None:
        line = self.line()
        if line != self.last_line:
            print(line, file=self.stream, flush=True)
            self.last_line = line


def _or(value, default):
    return default if value is None else value


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def front_table(trials) -> str:
    """The Pareto front as a text table."""
    rows = [
        f"{'trial':>5} {'val acc':>8} {'MMACs':>8} {'params':>9} {'lat ms':>7} {'decoup':>6}  arch"
    ]
    for trial in front_trials(trials):
        record = TrialRecord.from_trial(trial)
        name = f" [{record.landmark}]" if record.landmark is not None else ""
        if record.is_duplicate:
            name += f" (duplicate of trial {record.duplicate_of})"
        rows.append(
            f"{trial.number:>5} {trial_accuracy(trial):>8.4f} {trial_macs(trial) / 1e6:>8.3f} "
            f"{_or(record.params, 0):>9,} {_or(record.latency_ms, math.nan):>7.2f} "
            f"{_or(record.decoupling, math.nan):>6.2f}  {record.arch or '?'}{name}"
        )
    return "\n".join(rows)


def summary(study: optuna.Study, storage_url: str, elapsed_s: float) -> str:
    trials = study.get_trials(deepcopy=False)
    by_state = {state.name.lower(): 0 for state in TrialState}
    for trial in trials:
        by_state[trial.state.name.lower()] += 1
    counts = ", ".join(f"{count} {name}" for name, count in by_state.items() if count)
    train_s = sum(_or(TrialRecord.from_trial(t).train_seconds, 0.0) for t in trials)
    # The password stays out of logs: the hint shows *** where it goes.
    default = storage_url == DEFAULT_STORAGE
    storage_arg = "" if default else f" --storage '{redact(storage_url)}'"
    return "\n".join(
        [
            "",
            f"study {study.study_name!r}: {counts or 'no trials'}; wall {_clock(elapsed_s)}, "
            f"training {_clock(train_s)}; hypervolume {study_hypervolume(trials):.4f}",
            "Pareto front (validation accuracy against MACs = multiply-accumulates):",
            front_table(trials),
            "",
            f"browse:  python -m dashboard{storage_arg}",
            f"export:  python -m nas.export --study '{study.study_name}'{storage_arg} "
            "--pick knee --out model.py",
        ]
    )
