"""Why a worker stops before its study holds its target: Ctrl-C, or trials that never count.

Ctrl-C ends the run, and the trial it cut short is recorded failed and enqueued again, so the
next run redoes it (nas._worker). That record must not be cut short in turn: a terminal's
Ctrl-C reaches every process of the command at once and the starting process passes one on to
workers still running, so it is written with SIGINT held back (`interrupts_deferred`).

Trials that keep failing, or keep being skipped by --max-mmacs, would otherwise run for ever,
filling the database with records of nothing: `Streak` stops a worker after too many in a row
with no finished trial between them, saying what went wrong last.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import NamedTuple

from optuna.trial import TrialState

# 10 failures with no finished trial between: more than the 7 landmarks, so a study stops only
# once sampled networks failed too; failures that come now and then (the largest networks out
# of memory, a run that diverged) almost never make 10 in a row, and each costs a build and a
# start of training, so 10 waste little.
MAX_FAILURES_IN_A_ROW = 10
# A skip costs a cost count and a few writes (50 to 500 ms), little next to training: a search
# goes on while few architectures fit. If 1 random draw in 100 fits, 1000 misses in a row come
# by chance about once in 20,000 finished trials (and NSGA-II's offspring of fitting parents
# fit far more often than random draws); the default 200 trials are likely to stop early only
# when fewer than about 1 in 200 fit.
MAX_SKIPS_IN_A_ROW = 1000
# Exit statuses of a search or worker that stops early (2 is bad input, nas._cli's).
EXIT_STORAGE_LOST = 3  # the database stayed away (nas._worker)
EXIT_NO_PROGRESS = 4  # trials kept failing or being skipped
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report a SIGINT


class NoProgress(RuntimeError):
    """Too many trials in a row failed or were skipped; the message says which and why."""


class Outcome(NamedTuple):
    """How one trial of the worker loop ended."""

    state: TrialState
    values: list[float] | None = None
    failure: str | None = None  # why it failed, when the trial itself failed
    skipped: str | None = None  # why --max-mmacs skipped it
    told: bool = False  # already told (by this worker or another): nothing left to tell


class Streak:
    """The trials in a row, since the last finished one, that failed or were skipped."""

    def __init__(self) -> None:
        self.failed = 0
        self.skipped = 0

    def add(self, outcome: Outcome) -> None:
        """Count one trial's outcome.

        Raises:
            NoProgress: when the failures or the skips in a row reach their limit.
        """
        if outcome.skipped is not None:
            self.skipped += 1
            if self.skipped >= MAX_SKIPS_IN_A_ROW:
                raise NoProgress(
                    f"stopped: {self.skipped} trials in a row were skipped by --max-mmacs "
                    f"(the last: {outcome.skipped}); few architectures of the space fit it: "
                    "raise --max-mmacs"
                )
        elif outcome.failure is not None:
            self.failed += 1
            if self.failed >= MAX_FAILURES_IN_A_ROW:
                raise NoProgress(
                    f"stopped: {self.failed} trials in a row failed (the last: "
                    f"{outcome.failure}); fix the cause, then rerun the same command to continue"
                )
        elif outcome.state in (TrialState.COMPLETE, TrialState.PRUNED):
            self.failed = self.skipped = 0


class Deferred:
    """Whether a SIGINT came while `interrupts_deferred` held it back."""

    pending = False


@contextmanager
def interrupts_deferred():
    """Hold SIGINT back while the block runs; yields a `Deferred` that says whether one came.

    Only the main thread receives signals; elsewhere the block runs as it is.
    """
    deferred = Deferred()
    if threading.current_thread() is not threading.main_thread():
        yield deferred
        return

    def hold(_signum, _frame) -> None:
        deferred.pending = True

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield deferred
    finally:
        signal.signal(signal.SIGINT, previous)
