"""The fault points tests use to stop a process at a named phase."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from nas import _faults

SCRIPT = (
    "from nas._faults import fault_point\n"
    "for i in range(3):\n"
    "    fault_point('trial:epoch-done')\n"
    "    print('epoch', i + 1, flush=True)\n"
)


def _run(fault: str | None):
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": ".",
        **({_faults.FAULT_ENV: fault} if fault else {}),
    }
    return subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True)


def test_unset_fault_point_lets_the_process_run():
    done = _run(None)
    assert done.returncode == 0
    assert done.stdout.split("\n")[:3] == ["epoch 1", "epoch 2", "epoch 3"]


def test_nth_arrival_kills_the_process_there():
    done = _run("trial:epoch-done@3")
    assert done.returncode == -signal.SIGKILL
    assert done.stdout.split() == ["epoch", "1", "epoch", "2"]


def test_int_fault_is_a_keyboard_interrupt():
    done = _run("trial:epoch-done@2:INT")
    assert done.returncode != 0
    assert "KeyboardInterrupt" in done.stderr
    assert done.stdout.split() == ["epoch", "1"]


def test_unknown_phase_is_refused_when_faults_are_on(monkeypatch):
    monkeypatch.setenv(_faults.FAULT_ENV, "trial:started")
    with pytest.raises(KeyError, match="unknown fault point"):
        _faults.fault_point("trial:typo")
