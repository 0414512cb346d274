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


def _run(fault: str | None, script: str = SCRIPT, **options):
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": ".",
        **({_faults.FAULT_ENV: fault} if fault else {}),
    }
    return subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, **options
    )


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


def test_fail_fault_raises_from_the_nth_arrival_on():
    script = "from nas import _faults\n" + SCRIPT.replace(
        "    fault_point('trial:epoch-done')\n",
        "    try:\n        fault_point('trial:epoch-done')\n"
        "    except _faults.InjectedFault as error:\n        print(error)\n",
    )
    done = _run("trial:epoch-done@2:FAIL", script)
    assert done.returncode == 0, done.stderr
    injected = "injected fault at trial:epoch-done"
    assert done.stdout.splitlines() == ["epoch 1", injected, "epoch 2", injected, "epoch 3"]


def test_intgroup_fault_interrupts_the_whole_process_group():
    # A child in the same group is interrupted too, as a terminal's Ctrl-C reaches both; it
    # says when it can take the interrupt, so the fault never races its start.
    child = (
        "import sys, time\nprint(flush=True)\n"
        "try:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n    sys.exit(42)"
    )
    script = (
        "import subprocess, sys\n"
        f"child = subprocess.Popen([sys.executable, '-c', {child!r}], stdout=subprocess.PIPE)\n"
        "child.stdout.readline()\n"
        "from nas._faults import fault_point\n"
        "try:\n    fault_point('trial:started')\n"
        "except KeyboardInterrupt:\n    print('parent interrupted', flush=True)\n"
        "print('child', child.wait(timeout=30))\n"
    )
    # A session of its own: the group interrupted is the script's, never pytest's.
    done = _run("trial:started:INTGROUP", script, start_new_session=True, timeout=60)
    assert done.stdout.splitlines() == ["parent interrupted", "child 42"]
