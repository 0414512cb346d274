"""Many workers on one study: PostgreSQL and SQLite, racing starts, killed workers, lost databases.

Every test here runs real processes against a real database: a fresh PostgreSQL database per
test (on the server at $NAS_TEST_POSTGRES_URL, see .ci/postgres.sh) or a fresh SQLite file.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nas._study import open_or_create_study
from nas._worker import (
    RETRY_DELAYS_ENV,
    StorageLost,
    _with_retries,
    core_share,
    is_connection_error,
    retry_delays,
    run_trials,
)
from nas.record import counts_toward_target
from nas.storage import open_storage
from search_spaces import LANDMARKS
from tests.search_helpers import TRIAL_ATTRS, load, search_command

POSTGRES_URL = os.environ.get(
    "NAS_TEST_POSTGRES_URL", "postgresql+psycopg://nas:nas@127.0.0.1:5432/nas_test"
)
ROOT = Path(__file__).parent.parent
# Short heartbeats (a dead worker's trial is retried 8 s after its last beat) and a short
# back-off, so that these tests take seconds, not minutes.
FAST = ["--heartbeat", "2"]
ENV = {
    **os.environ,
    "PYTHONUNBUFFERED": "1",
    "NAS_NO_DOWNLOAD": "1",
    RETRY_DELAYS_ENV: "0.2,0.5",
}


# --- databases -------------------------------------------------------------------------------


def _admin():
    import psycopg

    libpq_url = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    try:
        return psycopg.connect(libpq_url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.fail(f"no PostgreSQL at {POSTGRES_URL} ({error}); run bash .ci/postgres.sh")


@pytest.fixture
def pg():
    """A fresh, empty PostgreSQL database for one test: (storage URL, database name)."""
    name = f"nas_t_{uuid.uuid4().hex[:12]}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base, _ = POSTGRES_URL.rsplit("/", 1)
    try:
        yield f"{base}/{name}", name
    finally:
        with _admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def database_down(name: str):
    """The database refuses connections and loses the ones it had; back on leaving."""
    with _admin() as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        # Only our own role's client connections (the workers'): a background process of the
        # server's, such as an autovacuum worker on the fresh database, is not ours to end.
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s"
            " AND usename = current_user AND backend_type = 'client backend'"
            " AND pid <> pg_backend_pid()",
            (name,),
        )
    try:
        yield
    finally:
        with _admin() as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


# --- processes -------------------------------------------------------------------------------


def start(storage: str, *args: str, core: int | None = None) -> subprocess.Popen:
    """`python -m nas.search` in the background; `core`: bind it to that core (mod cores),
    as if each independent process had a machine of its own, instead of all fighting for all.
    """
    cores = sorted(os.sched_getaffinity(0))
    bind = None if core is None else (lambda: os.sched_setaffinity(0, {cores[core % len(cores)]}))
    return subprocess.Popen(
        search_command(storage, *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        cwd=ROOT,
        preexec_fn=bind,
    )


def finish(process: subprocess.Popen, timeout: float = 240) -> tuple[int, str]:
    try:
        _out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        _out, err = process.communicate()
        pytest.fail(f"search still running after {timeout} s:\n{err[-3000:]}")
    return process.returncode, err


def _trials(storage: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return load(storage).get_trials(deepcopy=False)
    except Exception:  # not created yet
        return []


def kill_mid_trial(storage: str, ours: set[int], timeout: float = 120) -> int:
    """SIGKILL one of our processes while it trains a trial; the trial's number.

    The worker is frozen first (SIGSTOP) and killed only if its trial is still running then,
    so the kill lands inside a trial, not between two.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for trial in _trials(storage):
            attrs = trial.user_attrs
            if trial.state != TrialState.RUNNING or "arch" not in attrs or "worker" not in attrs:
                continue
            pid = int(attrs["worker"].rsplit(":", 1)[1])
            if pid not in ours:
                continue
            os.kill(pid, signal.SIGSTOP)
            now = load(storage).trials[trial.number]
            if now.state == TrialState.RUNNING:
                os.kill(pid, signal.SIGKILL)
                return trial.number
            os.kill(pid, signal.SIGCONT)
        time.sleep(0.2)
    pytest.fail("no trial was seen running")


def children_of(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


def wait_for(predicate, timeout: float = 120, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


# --- what every finished study must satisfy --------------------------------------------------


def check_study(storage: str, target: int, killed: int | None = None) -> list:
    trials = load(storage).trials
    counted = [t for t in trials if counts_toward_target(t)]
    assert len(counted) == target, [(t.number, t.state.name, t.user_attrs) for t in trials]
    assert len({t.number for t in trials}) == len(trials)
    assert not [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    for trial in counted:
        missing = TRIAL_ATTRS - set(trial.user_attrs)
        assert not missing, (trial.number, missing)
    for trial in trials:
        assert "locked" not in trial.user_attrs.get("failure", ""), trial.user_attrs
    # Every landmark enqueued once and run once (a killed one by its retry), never twice.
    names = [t.user_attrs["landmark"] for t in counted if "landmark" in t.user_attrs]
    assert sorted(names) == sorted(list(LANDMARKS)[:target])
    if killed is not None:
        dead = trials[killed]
        assert dead.state == TrialState.FAIL
        assert dead.user_attrs["failure"].startswith("worker lost:"), dead.user_attrs
        assert str(dead.user_attrs["worker"]) in dead.user_attrs["failure"]
        redo = [t for t in counted if t.user_attrs.get("retry_of") == killed]
        assert len(redo) == 1 and redo[0].params == dead.params, dead.params
        assert redo[0].user_attrs["retry_history"] == [killed]
    return trials


# --- racing to create a study ----------------------------------------------------------------


def _race_to_open(url: str, barrier, results) -> None:
    barrier.wait()  # a new database: all race to create Optuna's tables
    storage = open_storage(url, heartbeat_s=2)
    landmarks = [({"x": i}, {"landmark": f"l{i}"}) for i in range(3)]
    barrier.wait()  # then to create the study
    study, created = open_or_create_study(
        storage, "race", ["maximize", "minimize"], {"space": "s"}, landmarks
    )
    results.put((created, [t.number for t in study.get_trials(deepcopy=False)]))


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_processes_racing_on_a_new_database_create_tables_and_study_once(
    backend, request, tmp_path
):
    url = (
        request.getfixturevalue("pg")[0]
        if backend == "postgresql"
        else f"sqlite:///{tmp_path / 's.db'}"
    )
    context = multiprocessing.get_context("fork")  # children inherit the imports
    barrier, results = context.Barrier(4), context.Queue()
    processes = [
        context.Process(target=_race_to_open, args=(url, barrier, results)) for _ in range(4)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    assert sorted(created for created, _ in outcomes) == [False, False, False, True]
    # Nobody came back before the landmarks were in, and they are in once.
    assert all(numbers == [0, 1, 2] for _, numbers in outcomes), outcomes
    study = optuna.load_study(study_name="race", storage=url)
    assert [t.user_attrs["landmark"] for t in study.trials] == ["l0", "l1", "l2"]
    assert study.user_attrs == {"space": "s"}


def _pop_all(url: str, results) -> None:
    study = optuna.load_study(study_name="q", storage=open_storage(url))
    told = []
    while study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        trial = study.ask()
        study.tell(trial, [1.0, 2.0])  # raises if another process had popped the same trial
        told.append(trial.number)
    results.put(told)


def test_sqlite_workers_never_pop_the_same_waiting_trial(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(
        study_name="q", storage=open_storage(url), directions=["maximize", "minimize"]
    )
    for i in range(60):
        study.enqueue_trial({"x": i})
    context = multiprocessing.get_context("fork")  # children inherit the imports
    results = context.Queue()
    processes = [context.Process(target=_pop_all, args=(url, results)) for _ in range(4)]
    for process in processes:
        process.start()
    told = [n for _ in processes for n in results.get(timeout=120)]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    assert len(told) == len(set(told)) >= 60


# --- whole searches --------------------------------------------------------------------------


def test_three_processes_on_postgres_one_killed_mid_trial(pg):
    url, _ = pg
    processes = [start(url, "--trials", "6", *FAST, core=i) for i in range(3)]
    victim = kill_mid_trial(url, {p.pid for p in processes})
    results = [finish(p) for p in processes]
    codes = sorted(code for code, _ in results)
    assert codes == [-signal.SIGKILL, 0, 0], [err[-2000:] for _, err in results]
    for _code, err in results:
        assert "Traceback" not in err and "Duplicated" not in err, err[-2000:]
    check_study(url, 6, killed=victim)
    # The password reaches neither the study (exported files quote its command) nor the logs.
    password = url.split("@", 1)[0].rsplit(":", 1)[1]
    command = load(url).user_attrs["command"]
    assert f":{password}@" not in command and ":***@" in command
    assert all(f":{password}@" not in err for _code, err in results)


@pytest.mark.parametrize("kill", [False, True], ids=["all-live", "one-killed"])
def test_four_workers_on_sqlite(tmp_path, kill):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    main = start(url, "--trials", "6", "--workers", "4", *FAST)
    victim = None
    if kill:
        workers = wait_for(
            lambda: len(children_of(main.pid)) == 4 and children_of(main.pid),
            what="four worker processes",
        )
        victim = kill_mid_trial(url, workers)
    code, err = finish(main)
    assert code == 0, err[-3000:]
    assert "database is locked" not in err and "Traceback" not in err, err[-3000:]
    assert ("was killed by signal 9" in err) == kill
    check_study(url, 6, killed=victim)


@pytest.mark.slow
def test_machines_started_with_the_same_seed_propose_different_architectures(pg):
    url, _ = pg
    args = ("--trials", "4", "--no-landmarks", "--budget", "1x300", "--seed", "5")
    processes = [start(url, *args, core=i) for i in range(2)]
    for process in processes:
        code, err = finish(process)
        assert code == 0, err[-3000:]
    counted = [t for t in load(url).trials if counts_toward_target(t)]
    assert len({t.user_attrs["worker"] for t in counted}) == 2
    assert len({t.user_attrs["arch"] for t in counted}) == 4
    assert not [t.number for t in counted if "duplicate_of" in t.user_attrs]


@pytest.mark.parametrize("others", [False, True], ids=["alone", "with-others"])
def test_a_worker_reseeds_its_sampler_only_when_others_run(others, monkeypatch):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    reseeds = []
    monkeypatch.setattr(study.sampler, "reseed_rng", lambda: reseeds.append(1))
    foreign = None
    if others:
        foreign = study.ask()
        foreign.set_user_attr("worker", "elsewhere:1")

    def objective(trial):
        return (trial.suggest_float("x", 0, 1),)

    def finish_foreign(number, state):
        if foreign is not None and study.trials[foreign.number].state == TrialState.RUNNING:
            study.tell(foreign, 0.5)

    run_trials(study, objective, 2, heartbeat_s=None, on_trial_end=finish_foreign)
    assert len(reseeds) == (1 if others else 0)
    if not others:  # alone, the seed is kept: the same draws as a fresh sampler of seed 0
        replay = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        replay.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
        assert [t.params for t in study.trials] == [t.params for t in replay.trials]


def test_worker_started_while_the_database_is_down(pg):
    url, name = pg
    with database_down(name):
        code, err = finish(start(url, "--trials", "1"), timeout=60)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "cannot open storage" in err and "not currently accepting" in err
    assert "nas:nas@" not in err  # the password is never printed


def test_database_lost_mid_run_stops_workers_and_a_rerun_completes(pg):
    url, name = pg
    args = ("--trials", "6", "--workers", "2", *FAST)
    main = start(url, *args)
    wait_for(
        lambda: (
            sum(counts_toward_target(t) for t in _trials(url)) >= 2
            and any(t.state == TrialState.RUNNING and "arch" in t.user_attrs for t in _trials(url))
        ),
        what="two finished trials and one running",
    )
    before = {t.number: (t.state, t.values) for t in _trials(url)}
    with database_down(name):
        code, err = finish(main, timeout=60)
        assert code == 3, err[-3000:]
        assert "Traceback" not in err, err[-3000:]
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 3, err[-3000:]  # one line from each worker, one from the search
        assert all("lost the database" in line for line in errors)
    after = {t.number: t for t in load(url).trials}
    for number, (state, values) in before.items():
        if state.is_finished():
            assert (after[number].state, after[number].values) == (state, values)
    lost = [n for n, t in after.items() if t.state == TrialState.RUNNING]
    assert lost, "the workers were cut off in the middle of their trials"
    code, err = finish(start(url, *args))
    assert code == 0, err[-3000:]
    trials = check_study(url, 6)
    for number in lost:
        assert trials[number].state == TrialState.FAIL
        assert trials[number].user_attrs["failure"].startswith("worker lost:")


# --- pieces ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cores", [1, 2, 3, 8, 16])
@pytest.mark.parametrize("workers", [1, 2, 3, 4, 5, 17])
def test_core_shares_cover_every_core_evenly(cores, workers):
    available = list(range(100, 100 + cores))
    shares = [core_share(available, i, workers) for i in range(workers)]
    assert all(shares), "every worker gets at least one core"
    used = [core for share in shares for core in share]
    assert set(used) == set(available), "no core idles"
    load_per_core = [used.count(core) for core in available]
    assert max(load_per_core) - min(load_per_core) <= 1
    if workers <= cores:
        assert len(used) == cores  # disjoint
        assert max(map(len, shares)) - min(map(len, shares)) <= 1
        assert all(share == list(range(share[0], share[-1] + 1)) for share in shares)
    else:
        assert all(len(share) == 1 for share in shares)  # one thread each


def test_workers_beyond_the_cores_run_one_thread_on_one_core():
    code = (
        "import os, torch\n"
        "from nas._workers import pin_worker_cores\n"
        "cores = sorted(os.sched_getaffinity(0))\n"
        "pin_worker_cores(len(cores) + 1, 2 * len(cores))\n"
        "print(sorted(os.sched_getaffinity(0)) == [cores[1 % len(cores)]], "
        "torch.get_num_threads())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.stdout.split() == ["True", "1"], result.stderr


def test_retry_delays_come_from_the_environment(monkeypatch):
    monkeypatch.setenv(RETRY_DELAYS_ENV, "0.2, 0.5")
    assert retry_delays() == (0.2, 0.5)
    monkeypatch.setenv(RETRY_DELAYS_ENV, "soon")
    with pytest.raises(ValueError, match=RETRY_DELAYS_ENV):
        retry_delays()
    monkeypatch.delenv(RETRY_DELAYS_ENV)
    assert sum(retry_delays()) >= 30


def test_lost_connection_is_retried_then_reported_in_one_line(pg, monkeypatch):
    url, name = pg
    monkeypatch.setenv(RETRY_DELAYS_ENV, "0.1,0.1")
    storage = open_storage(url)
    study = optuna.create_study(storage=storage, directions=["maximize"])
    with database_down(name):
        start_time = time.monotonic()
        with pytest.raises(StorageLost) as caught:
            _with_retries(lambda: study.get_trials())
        assert time.monotonic() - start_time < 10
    message = str(caught.value)
    assert "\n" not in message and "not currently accepting" in message
    calls = []

    def flaky():  # an error Optuna wraps: StorageInternalError from OperationalError
        calls.append(1)
        if len(calls) < 3:
            raise _wrapped_connection_error()
        return "ok"

    assert is_connection_error(_wrapped_connection_error())
    assert _with_retries(flaky) == "ok" and len(calls) == 3
    assert _with_retries(lambda: study.get_trials()) == []  # back after the outage


def _wrapped_connection_error() -> Exception:
    import sqlalchemy.exc

    try:
        try:
            raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed"))
        except sqlalchemy.exc.OperationalError as error:
            raise optuna.exceptions.StorageInternalError("commit failed") from error
    except optuna.exceptions.StorageInternalError as wrapped:
        return wrapped
