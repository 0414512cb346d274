"""What the search prints: its progress while it runs and the Pareto front at the end.

Everything fits WIDTH columns: a live bar on a terminal (one line, redrawn), plain lines in
logs and pipes, and the front table, whose architecture strings go on lines of their own.
"""

from __future__ import annotations

import math
import os
import shutil
import statistics
import sys
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState
from tqdm import tqdm

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


WIDTH = 100  # columns every line the search prints fits (the terminal's, when narrower)


def fit_width(text: str) -> str:
    """A note in lines of at most WIDTH columns, the lines after the first indented by two."""
    return textwrap.fill(text, WIDTH, subsequent_indent="  ", break_on_hyphens=False)


def eta_seconds(durations: Sequence[float], remaining: int, workers: int) -> float | None:
    """Seconds until the study holds its target: the remaining trials at the median duration
    of the trials this run finished, shared among the workers; None before any finished.

    The median, not elapsed time per finished trial: a slow first trial (a landmark, a cold
    start) would otherwise set the estimate for many trials to come.
    """
    if remaining <= 0:
        return 0.0
    if not durations:
        return None
    return remaining * statistics.median(durations) / max(1, workers)


class EpochLines:
    """An `on_epoch` for a long training (final training, export's --train-epochs): one plain
    line per epoch with its accuracy, the time so far and the ETA (the mean epoch so far times
    the epochs left: epochs of one run take alike, unlike trials)."""

    def __init__(
        self, epochs: int, what: str = "test accuracy", stream=None, clock=time.monotonic
    ):
        self.epochs, self.what, self.clock = epochs, what, clock
        self.stream = sys.stderr if stream is None else stream
        self.start = clock()

    def __call__(self, epoch: int, accuracy: float) -> None:
        elapsed = self.clock() - self.start
        left = elapsed / epoch * (self.epochs - epoch)
        print(
            f"epoch {epoch}/{self.epochs}: {self.what} {accuracy:.4f}, "
            f"{clock_text(elapsed)} elapsed, ETA {clock_text(left)}",
            file=self.stream,
            flush=True,
        )


@dataclass
class Snapshot:
    """Where the study stands, as the progress display shows it."""

    done: int  # trials that count toward the target
    target: int
    front: int  # size of the accuracy-MACs Pareto front
    hypervolume: float
    best_accuracy: float
    pruned: int
    failed: int
    eta_s: float | None
    running: dict[int, int]  # running trial number -> epochs it has stored


class Progress:
    """The search's progress on stderr: a live bar on a terminal, else one line per trial.

    On a terminal (tqdm) the bar moves with every trained epoch of the running trials: with
    one worker the trial runs in this process and calls `epoch_done`; with several, `report`
    (every few seconds) reads the running trials' stored accuracy curves. Elsewhere (logs,
    pipes) it prints a plain line whenever a trial finishes: no carriage returns, no escapes.

    Args:
        study: the study being run.
        target: the trials it should hold.
        workers: trials running at once (for the ETA).
        epochs: epochs of one trial (for the bar's ticks inside a trial).
        stream: where to draw (stderr).
        live: draw a bar; by default when `stream` is a terminal.
    """

    def __init__(
        self,
        study: optuna.Study,
        target: int,
        *,
        workers: int = 1,
        epochs: int | None = None,
        stream=None,
        live: bool | None = None,
    ) -> None:
        self.study, self.target, self.workers, self.epochs = study, target, workers, epochs
        self.stream = sys.stderr if stream is None else stream
        self.live = _is_terminal(self.stream) if live is None else live
        self.start = time.monotonic()
        trials = study.get_trials(deepcopy=False)
        self.counted_before = {t.number for t in trials if counts_toward_target(t)}
        self.snapshot: Snapshot | None = None
        self.last_printed: tuple[int, ...] | None = None
        self.bar = None

    def done(self, trials=None) -> int:
        trials = self.study.get_trials(deepcopy=False) if trials is None else trials
        return sum(counts_toward_target(t) for t in trials)

    def read(self) -> Snapshot:
        """The study's standing now (one read of its trials)."""
        trials = self.study.get_trials(deepcopy=False)
        counted = [t for t in trials if counts_toward_target(t)]
        durations = [
            (t.datetime_complete - t.datetime_start).total_seconds()
            for t in counted
            if t.number not in self.counted_before and t.datetime_start and t.datetime_complete
        ]
        points = [point[1:] for point in completed_points(trials)]
        running = {
            t.number: len(TrialRecord.from_trial(t).val_acc_curve or ())
            for t in trials
            if t.state == TrialState.RUNNING
        }
        return Snapshot(
            done=len(counted),
            target=self.target,
            front=len(pareto_indices(points)),
            hypervolume=hypervolume(points),
            best_accuracy=max((accuracy for accuracy, _ in points), default=0.0),
            pruned=sum(t.state == TrialState.PRUNED for t in trials),
            failed=sum(t.state == TrialState.FAIL for t in trials),
            eta_s=eta_seconds(durations, self.target - len(counted), self.workers),
            running=running,
        )

    def line(self, snapshot: Snapshot | None = None) -> str:
        """The plain progress line: done/total, elapsed, ETA, front, HV, best accuracy."""
        s = self.read() if snapshot is None else snapshot
        return (
            f"[{s.done}/{s.target}] {clock_text(time.monotonic() - self.start)} eta {_eta(s)} | "
            f"front {s.front} | HV {s.hypervolume:.4f} | best acc {s.best_accuracy:.4f} | "
            f"pruned {s.pruned} failed {s.failed}"
        )

    def begin(self) -> None:
        """Show the bar at once (on a terminal), before the first trial reports."""
        if self.live:
            self.report()

    def report(self) -> None:
        """Read the study and show where it stands: redraw the bar, or print a line when a
        trial finished since the last one."""
        self.snapshot = self.read()
        if self.live:
            self._draw()
            return
        key = (self.snapshot.done, self.snapshot.pruned, self.snapshot.failed)
        if key != self.last_printed:
            print(self.line(self.snapshot), file=self.stream, flush=True)
            self.last_printed = key

    def epoch_done(self, trial_number: int, epochs: int) -> None:
        """A trial of this process trained its `epochs`-th epoch: move the bar (on a terminal)."""
        if not self.live:
            return
        if self.snapshot is None:
            self.snapshot = self.read()
        self.snapshot.running[trial_number] = epochs
        self._draw()

    def note(self, text: str) -> None:
        """A note of its own, above the bar when there is one."""
        text = fit_width(text)
        if self.bar is not None:
            tqdm.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        """Leave the bar as it last stood; what follows starts on a line of its own."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _draw(self) -> None:
        s = self.snapshot
        # Finished trials plus the trained share of the running ones, so epochs move the bar.
        partial = sum(min(1.0, n / self.epochs) for n in s.running.values()) if self.epochs else 0
        done = min(s.target, s.done + partial)
        desc = f"[{s.done}/{s.target}]"
        stats = (
            f"{clock_text(time.monotonic() - self.start)}<{_eta(s)} | front {s.front} "
            f"HV {s.hypervolume:.3f} best {s.best_accuracy:.3f} | {self._running_text(s.running)}"
        )
        if self.bar is None:
            self.bar = _Bar(
                total=s.target,
                initial=done,
                desc=desc,
                stats=stats,
                ncols=_columns(self.stream),
                file=self.stream,
                bar_format="{desc} {percentage:3.0f}%|{bar}| {stats}",
                mininterval=0,
            )
            return
        self.bar.n, self.bar.stats, self.bar.ncols = done, stats, _columns(self.stream)
        self.bar.set_description_str(desc, refresh=False)
        self.bar.refresh()

    def _running_text(self, running: dict[int, int]) -> str:
        of = f"/{self.epochs}" if self.epochs else ""
        if not running:
            return "starting" if self.snapshot.done < self.target else "done"
        if len(running) == 1:
            ((number, epochs),) = running.items()
            return f"trial {number} epoch {epochs}{of}"
        shown = [f"{epochs}{of}" for _, epochs in sorted(running.items())[:4]]
        more = " ..." if len(running) > 4 else ""
        return f"{len(running)} running, epochs {' '.join(shown)}{more}"


class _Bar(tqdm):
    """A tqdm bar with one more field for its format, `{stats}`: our text after the bar (tqdm's
    own `{postfix}` starts with a comma, and its rate-based `{remaining}` is the unstable ETA)."""

    monitor_interval = 0  # no watcher thread: we redraw it ourselves

    def __init__(self, *args, stats: str = "", **kwargs) -> None:
        self.stats = stats  # before tqdm's constructor, which draws the bar
        super().__init__(*args, **kwargs)

    @property
    def format_dict(self):
        return {**super().format_dict, "stats": self.stats}


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no such method, or a closed stream
        return False


def _columns(stream) -> int:
    """The columns to draw in: the terminal's, at most WIDTH."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        columns = 0
    return min(WIDTH, columns or shutil.get_terminal_size((WIDTH, 24)).columns)


def _eta(snapshot: Snapshot) -> str:
    return "?" if snapshot.eta_s is None else clock_text(snapshot.eta_s)


def _or(value, default):
    return default if value is None else value


def clock_text(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


ARCH_INDENT = 6  # where a front row's architecture string starts, on the lines below it


def front_table(trials) -> str:
    """The Pareto front as a text table of WIDTH columns: a row of numbers per trial, its
    architecture string on the line(s) below, broken after the dashes between stages."""
    rows = [
        f"{'trial':>5} {'val acc':>8} {'MMACs':>8} {'params':>9} {'lat ms':>7} {'decoup':>6}"
        "  (arch below)"
    ]
    for trial in front_trials(trials):
        record = TrialRecord.from_trial(trial)
        name = f"  [{record.landmark}]" if record.landmark is not None else ""
        if record.is_duplicate:
            name += f" (duplicate of trial {record.duplicate_of})"
        rows.append(
            f"{trial.number:>5} {trial_accuracy(trial):>8.4f} {trial_macs(trial) / 1e6:>8.3f} "
            f"{_or(record.params, 0):>9,} {_or(record.latency_ms, math.nan):>7.2f} "
            f"{_or(record.decoupling, math.nan):>6.2f}{name}"
        )
        rows += [" " * ARCH_INDENT + part for part in _arch_lines(record.arch or "?")]
    return "\n".join(rows)


def _arch_lines(arch: str, width: int = WIDTH - ARCH_INDENT) -> list[str]:
    """An architecture string in lines of at most `width`, broken after a dash where it can."""
    # textwrap breaks at spaces; a dash followed by a space marks each place it may break.
    lines = textwrap.wrap(arch.replace("-", "- "), width=width, break_on_hyphens=False)
    return [line.replace("- ", "-") for line in lines]


def command_lines(label: str, words: list[str], width: int = WIDTH) -> list[str]:
    """`label` and a shell command of `words`, continued with a backslash past `width`."""
    lines, line = [], f"{label:<9}{words[0]}"
    for word in words[1:]:
        if len(line) + 1 + len(word) + 2 > width:
            lines.append(line + " \\")
            line = " " * 11 + word
        else:
            line += " " + word
    return [*lines, line]


def summary(study: optuna.Study, storage_url: str, elapsed_s: float) -> str:
    trials = study.get_trials(deepcopy=False)
    by_state = {state.name.lower(): 0 for state in TrialState}
    for trial in trials:
        by_state[trial.state.name.lower()] += 1
    counts = ", ".join(f"{count} {name}" for name, count in by_state.items() if count)
    train_s = sum(_or(TrialRecord.from_trial(t).train_seconds, 0.0) for t in trials)
    # The password stays out of logs: the hint shows *** where it goes.
    default = storage_url == DEFAULT_STORAGE
    storage = [] if default else ["--storage", f"'{redact(storage_url)}'"]
    export = ["python", "-m", "nas.export", "--study", f"'{study.study_name}'", *storage]
    return "\n".join(
        [
            "",
            f"study {study.study_name!r}: {counts or 'no trials'}",
            f"wall {clock_text(elapsed_s)}, training {clock_text(train_s)}; "
            f"hypervolume {study_hypervolume(trials):.4f}",
            "Pareto front (validation accuracy against MACs = multiply-accumulates):",
            front_table(trials),
            "",
            *command_lines("browse:", ["python", "-m", "dashboard", *storage]),
            *command_lines("export:", [*export, "--pick", "knee", "--out", "model.py"]),
        ]
    )
