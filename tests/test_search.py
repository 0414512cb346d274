from __future__ import annotations

import os
import signal
import subprocess
import time

import optuna
import pytest
from optuna.trial import TrialState

import search_spaces
from nas._worker import run_trials
from nas.train import TrainResult
from search_spaces import LANDMARKS
from tests.search_helpers import TRIAL_ATTRS, load, objective, run_search, search_command


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    """One real search on digits, shared by the checks below."""
    storage = f"sqlite:///{tmp_path_factory.mktemp('search') / 'studies.db'}"
    result = run_search(storage, "--trials", "9", "--seed", "3")
    assert result.returncode == 0, result.stderr
    return storage, result


def test_search_end_to_end_stores_a_complete_study(finished_study):
    storage, result = finished_study
    study = load(storage)
    counted = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(counted) == 9
    for trial in counted:
        assert TRIAL_ATTRS <= set(trial.user_attrs), trial.user_attrs.keys()
        assert trial.user_attrs["arch"] == str(
            search_spaces.get("inception_to_xception").arch_from_params(trial.params)
        )
    complete = [t for t in counted if t.state == TrialState.COMPLETE]
    assert all(t.values[1] == t.user_attrs["macs"] for t in complete)
    landmarks = {t.user_attrs.get("landmark") for t in study.trials[: len(LANDMARKS)]}
    assert landmarks == set(LANDMARKS)
    assert study.best_trials
    attrs = study.user_attrs
    assert attrs["space"] == "inception_to_xception" and attrs["dataset"] == "digits"
    assert attrs["budget"] == "4x600" and attrs["objectives"] == ["val_acc", "macs"]
    assert "version" in attrs and attrs["input_shape"] == [1, 8, 8]
    # The terminal report: progress lines, the front, and what to do next.
    assert "[9/9]" in result.stderr
    assert "Pareto front" in result.stdout and "python -m nas.export" in result.stdout


def test_rerun_continues_without_redoing_work(finished_study):
    storage, _ = finished_study
    before = {t.number: t.datetime_complete for t in load(storage).trials}
    result = run_search(storage, "--trials", "11", "--seed", "3")
    assert result.returncode == 0, result.stderr
    study = load(storage)
    assert len(study.trials) == 11
    assert all(study.trials[n].datetime_complete == done for n, done in before.items())
    result = run_search(storage, "--trials", "11", "--seed", "3")
    assert result.returncode == 0 and len(load(storage).trials) == 11


def test_continuing_at_another_batch_says_so(finished_study):
    storage, _ = finished_study
    study = load(storage)
    assert study.user_attrs["batch_size"] == 64  # 4 x 600 digits is a short budget
    study.set_user_attr("batch_size", 128)  # as the recipe trained before short budgets got 64
    result = run_search(storage, "--trials", "11", "--seed", "3")
    assert result.returncode == 0, result.stderr
    assert "trained its trials at batch 128, continuing at 64" in result.stderr


def test_constraint_is_checked_before_training(tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    result = run_search(storage, "--trials", "2", "--max-mmacs", "0.2", "--no-prune")
    assert result.returncode == 0, result.stderr
    study = load(storage)
    skipped = [t for t in study.trials if "constraint" in t.user_attrs]
    assert skipped, "the normal landmark (0.55 MMACs on digits) must be skipped"
    for trial in skipped:
        assert trial.state == TrialState.PRUNED
        assert "val_acc_curve" not in trial.user_attrs  # no training happened
        assert trial.user_attrs["macs"] > 0.2e6
    counted = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(counted) == 2 and all(t.user_attrs["macs"] <= 0.2e6 for t in counted)


def test_duplicate_architecture_reuses_the_result():
    space = search_spaces.get("inception_to_xception")
    study = optuna.create_study(directions=["maximize", "minimize"])
    params = space.params_for(LANDMARKS["mobilenet"])
    study.enqueue_trial(params)
    study.enqueue_trial(params)
    run_trials(study, objective(), 2, heartbeat_s=None)
    first, second = study.trials
    assert second.user_attrs["duplicate_of"] == first.number
    assert second.user_attrs["train_seconds"] == 0.0
    assert TRIAL_ATTRS <= set(second.user_attrs)
    assert second.user_attrs["val_acc_curve"] == first.user_attrs["val_acc_curve"]
    assert second.values == first.values
    assert first.user_attrs["train_seconds"] > 0


def test_diverged_training_is_a_failure_with_its_reason(monkeypatch):
    def diverging(*args, **kwargs):
        return TrainResult(failure="diverged: non-finite loss at epoch 1 step 3")

    monkeypatch.setattr("nas._objective.train", diverging)
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.enqueue_trial(search_spaces.get("inception_to_xception").params_for(LANDMARKS["normal"]))
    with pytest.raises(RuntimeError, match="no finished"):
        run_trials(study, objective(), 1, heartbeat_s=None, on_trial_end=_stop_after_one)
    trial = study.trials[0]
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["failure"].startswith("diverged")


def _stop_after_one(number, state):
    raise RuntimeError("no finished trial: stop the loop after one try")


@pytest.mark.parametrize(
    "args, message",
    # The command line's path to exit 2; tests/test_settings.py checks every refusal's words.
    [
        (["--sampler", "cmaes"], "nsga2"),
        (["--trials", "0"], "at least 1"),
        (["--objectives", "acc"], "acc,macs"),
        (["--budget", "three"], "EPOCHSxSIZE"),
        (["--seed", "-1"], "--seed"),
        (["--seed", "4294967296"], "--seed"),
        (["--max-mmacs", "nan"], "--max-mmacs"),
        (["--heartbeat", "1000000000000"], "--heartbeat"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_creates_nothing(tmp_path, args, message):
    path = tmp_path / "studies.db"
    result = run_search(f"sqlite:///{path}", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not path.exists()


def test_refuses_files_that_are_not_optuna_storages(tmp_path):
    text_file = tmp_path / "notes.db"
    text_file.write_text("my precious notes\n")
    other = tmp_path / "other.db"
    import sqlite3

    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE payroll (name TEXT)")
    for path in (text_file, other):
        before = (path.read_bytes(), path.stat().st_mtime_ns)
        result = run_search(f"sqlite:///{path}", "--trials", "1")
        assert result.returncode == 2 and "refusing" in result.stderr, result.stderr
        assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_refuses_a_study_with_another_space(tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(
        study_name="mine", storage=storage, directions=["maximize", "minimize"]
    )
    study.set_user_attr("space", "xception_spectrum")
    study.set_user_attr("dataset", "digits")
    study.set_user_attr("objectives", ["val_acc", "macs"])
    result = run_search(storage, "--study", "mine", "--trials", "1")
    assert result.returncode == 2 and "xception_spectrum" in result.stderr
    assert len(load(storage, "mine").trials) == 0


def test_unreachable_database_is_one_line_exit_2():
    result = run_search("postgresql+psycopg://nas:secret@127.0.0.1:9/nowhere", "--trials", "1")
    assert result.returncode == 2
    assert "cannot open storage" in result.stderr and "secret" not in result.stderr


def test_ctrl_c_marks_the_running_trial_failed_and_exits_130(tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = search_command(storage, "--trials", "50")
    command[command.index("4x600")] = "40x600"  # long enough to be caught mid-trial
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.5)
        try:
            trials = load(storage).trials
        except Exception:
            continue
        if any(t.state == TrialState.RUNNING and "arch" in t.user_attrs for t in trials):
            break
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted" in err and "Pareto front" in out
    failed = [t for t in load(storage).trials if t.state == TrialState.FAIL]
    assert len(failed) == 1 and failed[0].user_attrs["failure"].startswith("interrupted")
    assert not [t for t in load(storage).trials if t.state == TrialState.RUNNING]


def test_dry_run_and_list_spaces_touch_nothing(tmp_path):
    path = tmp_path / "studies.db"
    result = run_search(f"sqlite:///{path}", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "xception" in result.stdout and "MMACs" in result.stdout
    listing = run_search(f"sqlite:///{path}", "--list-spaces")
    assert "xception_spectrum" in listing.stdout
    assert not path.exists()


def test_auto_workers_one_per_core_share_one_sqlite_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    # Two cores (where the machine has them), whatever the test runner left this test.
    cores = set(sorted(range(os.cpu_count() or 1))[:2])
    result = run_search(storage, "--trials", "10", "--workers", "auto", cores=cores)
    assert result.returncode == 0, result.stderr
    assert f"{len(cores)} worker(s)" in result.stderr
    trials = load(storage).trials
    trained_by = {t.user_attrs["worker"] for t in trials if "worker" in t.user_attrs}
    assert len(trained_by) == len(cores)
    counted = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(counted) == 10
    assert "database is locked" not in result.stderr
    assert len({t.number for t in trials}) == len(trials)
