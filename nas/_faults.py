"""Named fault points: the tests' way to kill or interrupt a process at an exact phase.

A test sets `NAS_FAULT_AT=<phase>` (or `<phase>:INT` for a Ctrl-C instead of a kill -9, and
`<phase>@N` to fire on the N-th time the phase is reached, counting from 1) in the environment
of the process it starts; when that process reaches `fault_point(<phase>)` it dies there, as a
power cut or a user's Ctrl-C would stop it. Sleeps that race a process never hit the same
moment twice; a named phase does. Unset, `fault_point` costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "NAS_FAULT_AT"

# Every phase a test may name, with where it is; `fault_point` refuses others so that a typo in
# a test fails loudly instead of never firing.
PHASES = {
    "storage:file-created": "a new SQLite file exists, Optuna's tables not yet made",
    "storage:schema-made": "Optuna's tables made, before the storage is first used",
    "setup:study-created": "the study exists, none of its settings or landmarks stored",
    "setup:attrs-stored": "the study's settings stored, no landmark enqueued yet",
    "setup:landmark-enqueued": "one landmark enqueued (use @N for the N-th)",
    "trial:started": "a trial has its architecture, before training",
    "trial:epoch-done": "a trial finished one training epoch (use @N for the N-th)",
}

_reached: dict[str, int] = {}


def fault_point(phase: str) -> None:
    """Stop this process here when `NAS_FAULT_AT` names `phase`; otherwise do nothing.

    Args:
        phase: one of `PHASES`.
    """
    wanted = os.environ.get(FAULT_ENV)
    if not wanted:
        return
    if phase not in PHASES:
        raise KeyError(f"unknown fault point {phase!r}; add it to nas._faults.PHASES")
    interrupt = wanted.endswith(":INT")
    name, _, nth = wanted.removesuffix(":INT").partition("@")
    if name != phase:
        return
    _reached[phase] = _reached.get(phase, 0) + 1
    if _reached[phase] != int(nth or 1):
        return
    if interrupt:
        # What Ctrl-C does: SIGINT to this process, raised as KeyboardInterrupt in the main
        # thread (a worker thread's trial sees it through the main thread's handler).
        os.kill(os.getpid(), signal.SIGINT)
        return
    os.kill(os.getpid(), signal.SIGKILL)
