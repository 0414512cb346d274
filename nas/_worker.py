"""The trial loop of one worker: ask, heartbeat, run, tell, until the study holds its target.

Workers share nothing but the storage: any number of processes, on any machines, may run this
loop on one study. Each trial keeps a heartbeat in the storage; a worker that finds another's
trial without a heartbeat for the grace period marks it failed with the reason and enqueues a
retry of its parameters, so `--trials N` still ends with N finished. Storage calls that fail
for want of a connection are retried with back-off; when the database stays away the worker
raises StorageLost, leaving every finished trial as it was.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from contextlib import contextmanager
from functools import partial

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from nas._objective import ConstraintSkipped, Objective, TrialFailed
from nas._optuna import (
    enqueued_params,
    grace_period_s,
    heartbeats_on,
    silent_trial_ids,
    stale_trial_ids,
    storage_of,
    study_id,
    trial_id,
)
from nas._stops import Outcome, Streak, interrupts_deferred
from nas.record import TrialRecord, counts_toward_target, store
from search_spaces import with_later_defaults

MAX_RETRIES = 2  # a trial that kills its worker this often is given up (it fails for good)
STORAGE_RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0, 16.0)  # back-off before a lost database ends it
RETRY_DELAYS_ENV = "NAS_STORAGE_RETRY_DELAYS"  # e.g. "0.2,0.5" (seconds, comma-separated)
INTERRUPTED = "interrupted (Ctrl-C or SIGINT)"  # the failure of a trial that Ctrl-C cut short


class StorageLost(RuntimeError):
    """The database stayed unreachable through every retry."""


def retry_delays() -> tuple[float, ...]:
    """The back-off between storage retries: $NAS_STORAGE_RETRY_DELAYS, else the default."""
    text = os.environ.get(RETRY_DELAYS_ENV, "").strip()
    if not text:
        return STORAGE_RETRY_DELAYS_S
    try:
        delays = tuple(float(part) for part in text.split(","))
    except ValueError:
        delays = ()
    if not delays or any(delay < 0 for delay in delays):
        raise ValueError(f"{RETRY_DELAYS_ENV} must be seconds separated by commas, got {text!r}")
    return delays


def worker_name() -> str:
    """host:pid of this process, stored on each trial it runs (the reason a stale one names)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def core_share(cores: list[int], index: int, workers: int) -> list[int]:
    """The cores worker `index` of `workers` may use on a CPU.

    Each worker gets a contiguous block of the cores, as equal as they divide; with more
    workers than cores, worker i gets core i mod cores, so every core carries the same number
    of single-threaded workers (give or take one) instead of every worker running one thread
    per core on all of them.
    """
    if not cores:
        return []
    if workers >= len(cores):
        return [cores[index % len(cores)]]
    index %= workers
    size, extra = divmod(len(cores), workers)
    start = index * size + min(index, extra)
    return cores[start : start + size + (index < extra)]


@contextmanager
def heartbeat(study: optuna.Study, trial: optuna.Trial, interval_s: int | None):
    """Record the trial's heartbeat now and every `interval_s` seconds while the block runs."""
    storage = storage_of(study)
    if not interval_s or not hasattr(storage, "record_heartbeat"):
        yield
        return
    # The first beat before any work: a trial without one is invisible to stale detection.
    _with_retries(lambda: storage.record_heartbeat(trial_id(trial)))
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval_s):
            try:
                storage.record_heartbeat(trial_id(trial))
            except Exception:
                pass  # a missed beat is harmless; a lost database shows up in the main thread

    thread = threading.Thread(target=beat, name="nas-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


class SilentTrials:
    """Running trials that never sent a heartbeat, with when this process first saw each.

    A worker that dies (or loses the database) between asking for a trial and its first beat
    leaves a running trial that Optuna's stale check skips; such a trial is stale once this
    process has seen it silent for the grace period (its own clock, so no clock skew).
    """

    def __init__(self) -> None:
        self.first_seen: dict[int, float] = {}

    def stale(self, storage, study: int, grace_s: float) -> list[int]:
        silent = silent_trial_ids(storage, study)
        now = time.monotonic()
        self.first_seen = {tid: self.first_seen.get(tid, now) for tid in silent}
        return [tid for tid, seen in self.first_seen.items() if now - seen > grace_s]


def fail_stale_trials(study: optuna.Study, silent: SilentTrials | None = None) -> list[int]:
    """Mark trials of dead workers failed (with the reason) and enqueue their retries.

    Returns the numbers of the trials this call failed. Several workers may call it at once:
    marking a trial failed is a locked row update, so exactly one of them wins and retries it.
    """
    storage = storage_of(study)
    if not heartbeats_on(storage):
        return []
    grace = grace_period_s(storage)
    study_key = study_id(study)
    stale = {tid: f"no heartbeat for {grace} s" for tid in stale_trial_ids(storage, study_key)}
    if silent is not None:
        for tid in silent.stale(storage, study_key, grace):
            stale.setdefault(tid, f"no heartbeat at all in {grace} s")
    failed = []
    for tid, why in stale.items():
        try:
            who = TrialRecord.from_trial(storage.get_trial(tid)).worker or "its worker"
            reason = f"worker lost: {who} sent {why} (killed, crashed or cut off)"
            store(partial(storage.set_trial_user_attr, tid), failure=reason)
            if storage.set_trial_state_values(tid, state=TrialState.FAIL):
                failed.append(tid)
        except UpdateFinishedTrialError:
            continue  # another worker got there first, or the trial finished after all
    numbers = []
    for tid in failed:
        dead = storage.get_trial(tid)
        enqueue_retry(study, dead)
        numbers.append(dead.number)
    return numbers


def enqueue_retry(study: optuna.Study, dead, *, limit: int | None = MAX_RETRIES) -> bool:
    """Enqueue a trial with the parameters of `dead`, unless it has been retried `limit` times
    (None: however often; an interrupted trial is no fault of its parameters)."""
    params = dead.params or enqueued_params(dead) or {}
    record = TrialRecord.from_trial(dead)
    history = [*(record.retry_history or ()), dead.number]
    if not params or (limit is not None and len(history) > limit):
        return False
    retry = TrialRecord(landmark=record.landmark, retry_of=dead.number, retry_history=history)
    study.enqueue_trial(with_later_defaults(params), user_attrs=retry.to_user_attrs())
    return True


def _slots_taken(study: optuna.Study, below: int | None = None) -> tuple[int, int, int]:
    """(finished that count, running, waiting), among trials numbered below `below`."""
    finished = running = waiting = 0
    for trial in study.get_trials(deepcopy=False):
        if below is not None and trial.number >= below:
            continue
        if counts_toward_target(trial):
            finished += 1
        elif trial.state == TrialState.RUNNING:
            running += 1
        elif trial.state == TrialState.WAITING:
            waiting += 1
    return finished, running, waiting


def _others_at_work(study: optuna.Study, mine: int) -> bool:
    """Whether a trial other than ours (number `mine`) is running: another worker's."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return any(trial.number != mine for trial in running)


def run_trials(
    study: optuna.Study,
    objective: Objective,
    target: int,
    *,
    heartbeat_s: int | None,
    on_trial_end=None,
    poll_s: float = 2.0,
) -> None:
    """Run trials until the study holds `target` counted trials.

    A trial that Ctrl-C cuts short is marked failed and enqueued again before the
    KeyboardInterrupt goes on. Raises StorageLost when the database stays unreachable through
    every retry, and NoProgress when trials keep failing or being skipped (nas._stops).
    """
    silent = SilentTrials()
    streak = Streak()
    reseeded = False
    while True:
        finished, running, _waiting = _with_retries(lambda: _slots_taken(study))
        if finished >= target:
            return
        _with_retries(lambda: fail_stale_trials(study, silent))
        if finished + running >= target:
            # Others are on the last trials; wait in case one of them dies and needs a retry.
            time.sleep(poll_s)
            continue
        trial, interrupted = _with_retries(lambda: _ask(study))
        try:
            if interrupted:
                raise KeyboardInterrupt
            if not reseeded and _with_retries(lambda t=trial: _others_at_work(study, t.number)):
                # Processes started with the same --seed (the same command on several
                # machines) would propose the same architectures in lockstep. Parameters are
                # drawn after ask, so a fresh seed now already counts; of two processes asking
                # at once, the later sees the other's trial. A lone worker keeps its seed: its
                # search repeats.
                study.sampler.reseed_rng()
                reseeded = True
            outcome = _run_one(study, trial, objective, target, heartbeat_s)
            if not outcome.told:
                _with_retries(lambda t=trial, o=outcome: _tell(study, t, o.values, o.state))
        except KeyboardInterrupt:
            _record_interrupt(study, trial)
            raise
        if on_trial_end is not None:
            on_trial_end(trial.number, outcome.state)
        streak.add(outcome)


def _ask(study: optuna.Study) -> tuple[optuna.Trial, bool]:
    """A new trial, and whether Ctrl-C came while it was being made.

    A Ctrl-C inside ask could leave a running trial that nobody tells (a landmark among them):
    it waits until ask has returned, and the trial is then recorded and redone like any
    interrupted one. When ask fails instead, there is no trial to record and it stops at once.
    """
    with interrupts_deferred() as deferred:
        try:
            trial = study.ask()
        except Exception:
            if deferred.pending:
                raise KeyboardInterrupt from None
            raise
    return trial, deferred.pending


def _record_interrupt(study: optuna.Study, trial: optuna.Trial) -> None:
    """Mark a trial that Ctrl-C cut short failed, and enqueue it again for the next run."""
    storage = storage_of(study)
    with interrupts_deferred():  # a second Ctrl-C must not cut this record short
        try:
            if storage.get_trial(trial_id(trial)).state.is_finished():
                return  # it was told before the interrupt came
            store(trial.set_user_attr, failure=INTERRUPTED)
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            enqueue_retry(study, storage.get_trial(trial_id(trial)), limit=None)
        except UpdateFinishedTrialError:
            pass  # another worker judged it dead meanwhile, and enqueued its retry
        except Exception as error:
            if not is_connection_error(error):
                raise
            # The database is away: the trial goes stale and another worker or run retries it.


def _tell(study: optuna.Study, trial: optuna.Trial, values, state: TrialState) -> None:
    try:
        study.tell(trial, values, state=state, skip_if_finished=True)
    except UpdateFinishedTrialError:
        pass  # another worker judged it dead and failed it meanwhile; its retry redoes it


def _run_one(study, trial, objective, target, heartbeat_s) -> Outcome:
    """How `trial` ended; `told` when it was told here or by another worker already."""
    lost = None
    with heartbeat(study, trial, heartbeat_s):
        try:
            _with_retries(lambda: store(trial.set_user_attr, worker=worker_name()))
            # Trial numbers are handed out atomically: when racing workers overshoot the
            # target, the higher numbers give way, so the study ends with exactly `target`.
            if sum(_with_retries(lambda: _slots_taken(study, below=trial.number))) >= target:
                reason = f"surplus: the study already has its {target} trials"
                _with_retries(lambda: store(trial.set_user_attr, failure=reason))
                return Outcome(TrialState.FAIL)
            return Outcome(TrialState.COMPLETE, list(objective(trial)))
        except ConstraintSkipped as skipped:
            return Outcome(TrialState.PRUNED, skipped=str(skipped))
        except optuna.TrialPruned:
            return Outcome(TrialState.PRUNED)
        except TrialFailed as failed:
            return Outcome(TrialState.FAIL, failure=str(failed))
        except UpdateFinishedTrialError:
            # Judged dead (a long stall) and failed by another worker.
            return Outcome(TrialState.FAIL, told=True)
        except Exception as error:
            if not is_connection_error(error):
                raise
            lost = error
    assert lost is not None
    # The database went away during the trial: record that once it is back, and redo the work.
    reason = f"database connection lost during the trial: {_first_line(lost)}"
    _with_retries(lambda: store(trial.set_user_attr, failure=reason[:300]))
    _with_retries(lambda: _tell(study, trial, None, TrialState.FAIL))
    _with_retries(lambda: enqueue_retry(study, storage_of(study).get_trial(trial_id(trial))))
    return Outcome(TrialState.FAIL, told=True)


def _with_retries(call):
    """Run a storage call, retrying with back-off while the database is unreachable."""
    for delay in (*retry_delays(), None):
        try:
            return call()
        except Exception as error:
            if not is_connection_error(error):
                raise
            if delay is None:
                raise StorageLost(_first_line(error)) from None
            time.sleep(delay)
    raise AssertionError("unreachable")


def is_connection_error(error: BaseException) -> bool:
    """A database that cannot be reached (or is locked), possibly wrapped by Optuna."""
    import sqlalchemy.exc

    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)):
            return True
        if isinstance(error, sqlalchemy.exc.DBAPIError) and error.connection_invalidated:
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


def _first_line(error: BaseException) -> str:
    """The driver's message, one line: what a user needs to see of a lost connection."""
    root = error
    while root.__cause__ is not None or root.__context__ is not None:
        root = root.__cause__ or root.__context__
    text = str(getattr(root, "orig", None) or root).strip() or type(root).__name__
    return text.splitlines()[0]
