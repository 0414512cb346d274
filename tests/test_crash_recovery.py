"""A search killed while it makes its storage or sets its study up: rerunning it recovers.

The kills go through named fault points (nas._faults), so each test stops the real command at
the same moment every time; the rerun is the same command, and must finish what was begun.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import search_spaces
from nas._faults import FAULT_ENV
from nas._settings import resume_notes
from nas._stops import EXIT_INTERRUPTED
from nas._study import DONE, SETUP_KEY, open_or_create_study
from nas.storage import OK, check_storage, open_storage
from search_spaces import LANDMARKS
from tests.search_helpers import search_command
from tests.test_distributed import pg  # noqa: F401 (a fresh PostgreSQL database per test)
from tests.test_settings import STUDY_ATTRS

optuna.logging.set_verbosity(optuna.logging.WARNING)

STUDY = "inception_to_xception-digits"
# One trial of one epoch on 200 digits: the tests are about what a rerun finds, not training.
CHEAP = ["--budget", "1x200", "--trials", "3", "--no-prune"]
# The landmarks a 3-trial search enqueues: the first three its space reaches, in this order.
FIRST_LANDMARKS = [
    name
    for name, arch in LANDMARKS.items()
    if search_spaces.get("inception_to_xception").params_for(arch) is not None
][:3]


def mark_of(study: optuna.Study):
    return study._storage.get_study_system_attrs(study._study_id)[SETUP_KEY]


def search(folder: Path, fault: str | None = None) -> subprocess.CompletedProcess:
    """The real search command on `folder`/studies.db, killed at `fault` when given."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NAS_NO_DOWNLOAD": "1"}
    env.pop(FAULT_ENV, None)
    if fault:
        env[FAULT_ENV] = fault
    command = search_command(f"sqlite:///{folder / 'studies.db'}", *CHEAP)
    return subprocess.run(
        command, capture_output=True, text=True, timeout=600, env=env, cwd=folder
    )


def assert_complete_study(folder: Path) -> optuna.Study:
    """The study a 3-trial search leaves: every setting, its landmarks once each, in order."""
    study = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{folder / 'studies.db'}")
    assert mark_of(study) == DONE
    assert set(study.user_attrs) == STUDY_ATTRS
    assert [t.user_attrs.get("landmark") for t in study.trials] == FIRST_LANDMARKS
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)
    return study


# --- the storage -----------------------------------------------------------------------------


@pytest.mark.parametrize("phase", ["storage:file-created", "storage:schema-made"])
def test_a_search_killed_while_making_its_storage_reruns(phase, tmp_path):
    killed = search(tmp_path, phase)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    rerun = search(tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    # The killed run's temporary file is gone; a finished search leaves only its database.
    assert [path.name for path in tmp_path.iterdir()] == ["studies.db"]
    assert_complete_study(tmp_path)


# Kills the process (as kill -9 would) right after SQLAlchemy made the named table of Optuna's
# schema: the moment a database built in place is half made, with its journal left beside it.
KILL_WHILE_MAKING_TABLES = textwrap.dedent(
    """
    import os, signal, sys
    from sqlalchemy import event
    from optuna.storages._rdb import models
    from nas.storage import open_storage

    table = models.BaseModel.metadata.tables[sys.argv[2]]
    event.listen(table, "after_create", lambda *_, **__: os.kill(os.getpid(), signal.SIGKILL))
    open_storage(sys.argv[1])
    """
)


@pytest.mark.parametrize("table", ["studies", "trial_values", "version_info"])
def test_a_storage_killed_half_made_opens_on_the_rerun(table, tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    killed = subprocess.run(
        [sys.executable, "-c", KILL_WHILE_MAKING_TABLES, url, table],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    storage = open_storage(url)
    study = optuna.create_study(study_name="s", storage=storage)
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
    storage.engine.dispose()
    assert check_storage(url).kind == OK
    assert sorted(path.name for path in tmp_path.iterdir()) == ["studies.db"]


@pytest.mark.parametrize("phase", ["storage:file-created", "setup:attrs-stored"])
def test_ctrl_c_before_the_trials_says_so_and_the_rerun_completes(phase, tmp_path):
    interrupted = search(tmp_path, f"{phase}:INT")
    assert interrupted.returncode == EXIT_INTERRUPTED, interrupted.stderr
    assert "Traceback" not in interrupted.stderr
    assert interrupted.stderr.strip().splitlines()[-1] == (
        "interrupted before any trial ran: rerun the same command to start"
    )
    rerun = search(tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert_complete_study(tmp_path)


# --- the study's set-up ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "phase", ["setup:study-created", "setup:attrs-stored", "setup:landmark-enqueued@2"]
)
def test_a_search_killed_while_setting_up_its_study_finishes_the_set_up(phase, tmp_path):
    killed = search(tmp_path, phase)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    rerun = search(tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert_complete_study(tmp_path)
    assert "waiting while another process" not in rerun.stderr  # no wait on a dead process
    assert "note: study" not in rerun.stderr  # no resume note: nothing was trained before
    assert "[3/3]" in rerun.stderr


def _storage(tmp_path: Path):
    return open_storage(f"sqlite:///{tmp_path / 'studies.db'}")


@pytest.fixture(params=["sqlite", "postgresql"])
def any_storage(request, tmp_path):
    """A new storage of each backend (the set-up's claims are SQL statements of their own)."""
    if request.param == "sqlite":
        storage = _storage(tmp_path)
    else:
        storage = open_storage(request.getfixturevalue("pg")[0])
    yield storage
    storage.engine.dispose()


LANDMARK_TRIALS = [({"x": i}, {"landmark": f"l{i}"}) for i in range(3)]
SETTINGS = {"space": "s", "dataset": "d", "budget": "1x200", "batch_size": 64}


def _half_set_up(storage, mark) -> optuna.Study:
    """What a creator killed after one setting and one landmark leaves, with its `mark`."""
    study = optuna.create_study(study_name="half", storage=storage)
    storage.set_study_system_attr(study._study_id, SETUP_KEY, mark)
    study.set_user_attr("space", "s")
    study.enqueue_trial(*LANDMARK_TRIALS[0])
    return study


def test_an_older_versions_unfinished_set_up_is_finished_after_it_stalls(any_storage, capsys):
    storage = any_storage
    _half_set_up(storage, "in progress")  # the mark of versions before this one: no process
    study, stored = open_or_create_study(
        storage, "half", ["minimize"], SETTINGS, LANDMARK_TRIALS, stalled_s=0.5
    )
    assert stored is False  # one setting was there before: the caller checks and notes
    assert study.user_attrs == SETTINGS and mark_of(study) == DONE
    assert [t.user_attrs["landmark"] for t in study.trials] == ["l0", "l1", "l2"]
    assert [t.system_attrs["fixed_params"] for t in study.trials] == [{"x": i} for i in range(3)]
    assert "finishing the set-up of study 'half'" in capsys.readouterr().err


def test_a_set_up_that_another_machine_is_still_doing_is_waited_for(any_storage, monkeypatch):
    storage = any_storage
    study = _half_set_up(storage, {"host": "another-machine", "pid": os.getpid()})
    waits = []

    def the_other_machine_finishes(seconds):
        waits.append(seconds)
        if len(waits) == 3:  # it stores the rest while this process waits
            study.set_user_attr("dataset", "from-the-other-machine")
            storage.set_study_system_attr(study._study_id, SETUP_KEY, DONE)

    monkeypatch.setattr("nas._study.time.sleep", the_other_machine_finishes)
    _, stored = open_or_create_study(storage, "half", ["minimize"], SETTINGS, LANDMARK_TRIALS)
    assert stored is False and len(waits) == 3
    assert study.user_attrs == {"space": "s", "dataset": "from-the-other-machine"}
    assert len(study.trials) == 1  # nothing enqueued twice


def test_an_unfinished_set_up_of_another_space_is_refused_untouched(tmp_path):
    storage = _storage(tmp_path)
    study = _half_set_up(storage, "in progress")
    with pytest.raises(ValueError, match="was run with space='s', not 'other'"):
        open_or_create_study(
            storage, "half", ["minimize"], {**SETTINGS, "space": "other"}, [], stalled_s=0
        )
    assert study.user_attrs == {"space": "s"} and len(study.trials) == 1


def test_the_batch_note_is_only_for_studies_this_tool_recorded():
    wanted = {"budget": "1x200", "batch_size": 64}
    assert resume_notes("s", {}, wanted) == []  # made by other tools: no batch was recorded
    older = resume_notes("s", {"budget": "1x200"}, wanted)  # before batch sizes were stored
    assert len(older) == 1 and "trained its trials at batch 128, continuing at 64" in older[0]


def test_the_set_up_mark_names_its_process_while_it_works(tmp_path, monkeypatch):
    storage = _storage(tmp_path)
    marks = []
    real = storage.set_study_system_attr

    def remember_the_mark(study_id, key, value):
        marks.append(storage.get_study_system_attrs(study_id)[SETUP_KEY])  # before "done"
        real(study_id, key, value)

    monkeypatch.setattr(storage, "set_study_system_attr", remember_the_mark)
    _, stored = open_or_create_study(storage, "new", ["minimize"], SETTINGS, LANDMARK_TRIALS)
    assert stored is True
    assert marks == [{"host": socket.gethostname(), "pid": os.getpid()}]
