"""The trial loop of one worker: ask, heartbeat, run, tell, until the study holds its target.

Workers share nothing but the storage. Each trial keeps a heartbeat in the storage; a worker
that finds another's trial without a heartbeat for the grace period marks it failed with the
reason and enqueues a retry of its parameters, so `--trials N` still ends with N finished.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import optuna
from optuna.trial import TrialState

from nas._objective import Objective, TrialFailed
from nas._study import counts_toward_target

MAX_RETRIES = 2  # a trial that kills its worker this often is given up (it fails for good)
STORAGE_RETRY_DELAYS_S = (1, 2, 4, 8, 16)  # back-off before a lost database ends the worker


class StorageLost(RuntimeError):
    """The database stayed unreachable through every retry."""


@contextmanager
def heartbeat(study: optuna.Study, trial: optuna.Trial, interval_s: int | None):
    """Record the trial's heartbeat every `interval_s` seconds while the block runs."""
    storage = study._storage
    if not interval_s or not hasattr(storage, "record_heartbeat"):
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                storage.record_heartbeat(trial._trial_id)
            except Exception:
                pass  # a missed beat is harmless; a lost database shows up at tell()
            if stop.wait(interval_s):
                return

    thread = threading.Thread(target=beat, name="nas-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def fail_stale_trials(study: optuna.Study) -> list[int]:
    """Mark trials of dead workers failed (with the reason) and enqueue their retries."""
    storage = study._storage
    if not hasattr(storage, "_get_stale_trial_ids") or not storage.get_heartbeat_interval():
        return []
    failed = []
    for trial_id in storage._get_stale_trial_ids(study._study_id):
        try:
            storage.set_trial_user_attr(
                trial_id,
                "failure",
                f"worker lost: no heartbeat for {storage.grace_period} s (killed or crashed)",
            )
            if storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                failed.append(trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker got there first
    for trial_id in failed:
        dead = storage.get_trial(trial_id)
        history = dead.user_attrs.get("retry_history", []) + [dead.number]
        if len(history) <= MAX_RETRIES and dead.params:
            keep = {k: v for k, v in dead.user_attrs.items() if k in ("landmark",)}
            study.enqueue_trial(
                dead.params, user_attrs={**keep, "retry_of": dead.number, "retry_history": history}
            )
    return [storage.get_trial(trial_id).number for trial_id in failed]


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


def run_trials(
    study: optuna.Study,
    objective: Objective,
    target: int,
    *,
    heartbeat_s: int | None,
    on_trial_end=None,
    poll_s: float = 2.0,
) -> None:
    """Run trials until the study holds `target` counted trials."""
    while True:
        finished, running, _waiting = _with_retries(lambda: _slots_taken(study))
        if finished >= target:
            return
        if finished + running >= target:
            # Others are on the last trials; wait in case one of them dies and needs a retry.
            _with_retries(lambda: fail_stale_trials(study))
            time.sleep(poll_s)
            continue
        _with_retries(lambda: fail_stale_trials(study))
        trial = _with_retries(study.ask)
        state, values = _run_one(study, trial, objective, target, heartbeat_s)
        _with_retries(lambda t=trial, v=values, s=state: study.tell(t, v, state=s))
        if on_trial_end is not None:
            on_trial_end(trial.number, state)


def _run_one(study, trial, objective, target, heartbeat_s):
    # Trial numbers are handed out atomically: when racing workers overshoot the target, the
    # higher numbers give way, so the study ends with exactly `target` counted trials.
    if sum(_slots_taken(study, below=trial.number)) >= target:
        trial.set_user_attr("failure", f"surplus: the study already has its {target} trials")
        return TrialState.FAIL, None
    with heartbeat(study, trial, heartbeat_s):
        try:
            return TrialState.COMPLETE, list(objective(trial))
        except optuna.TrialPruned:
            return TrialState.PRUNED, None
        except TrialFailed:
            return TrialState.FAIL, None
        except KeyboardInterrupt:
            study.tell(trial, state=TrialState.FAIL)
            raise


def _with_retries(call):
    """Run a storage call, retrying with back-off while the database is unreachable."""
    for delay in (*STORAGE_RETRY_DELAYS_S, None):
        try:
            return call()
        except Exception as error:  # SQLAlchemy's OperationalError and kin
            if not _is_connection_error(error) or delay is None:
                if _is_connection_error(error):
                    raise StorageLost(str(error).splitlines()[0]) from None
                raise
            time.sleep(delay)
    raise AssertionError("unreachable")


def _is_connection_error(error: Exception) -> bool:
    import sqlalchemy.exc

    return isinstance(error, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError))
