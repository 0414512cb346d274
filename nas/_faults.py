"""Named fault points: the tests' way to kill or interrupt a process at an exact phase.

A test sets `NAS_FAULT_AT=<phase>` (or `<phase>:INT` for a Ctrl-C instead of a kill -9, and
`<phase>@N` to fire on the N-th time the phase is reached, counting from 1) in the environment
of the process it starts; when that process reaches `fault_point(<phase>)` it dies there, as a
power cut or a user's Ctrl-C would stop it. Sleeps that race a process never hit the same
moment twice; a named phase does. Unset, `fault_point` costs one dictionary lookup.

Two more endings: `:INTGROUP` sends the SIGINT to the whole process group, as a terminal's
Ctrl-C reaches a command and the worker processes it started (start the command in a session
of its own); `:FAIL` raises `InjectedFault` there instead, every time from the N-th on, so
that a test can make every trial of a search fail.
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

# What a fault does, by the ending of NAS_FAULT_AT; no ending: SIGKILL.
MODES = ("INT", "INTGROUP", "FAIL")

_reached: dict[str, int] = {}


class InjectedFault(RuntimeError):
    """The error a `:FAIL` fault raises (a RuntimeError, as a failing torch op raises)."""


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
    mode = next((mode for mode in MODES if wanted.endswith(f":{mode}")), None)
    name, _, nth = (wanted.removesuffix(f":{mode}") if mode else wanted).partition("@")
    if name != phase:
        return
    first = int(nth or 1)
    reached = _reached[phase] = _reached.get(phase, 0) + 1
    if reached < first or (reached > first and mode != "FAIL"):
        return
    if mode == "FAIL":
        raise InjectedFault(f"injected fault at {phase}")
    if mode == "INTGROUP":
        os.killpg(os.getpgid(0), signal.SIGINT)
    elif mode == "INT":
        # What Ctrl-C does: SIGINT to this process, raised as KeyboardInterrupt in the main
        # thread (a worker thread's trial sees it through the main thread's handler).
        os.kill(os.getpid(), signal.SIGINT)
    else:
        os.kill(os.getpid(), signal.SIGKILL)
