"""Optuna's internals behind `nas._optuna`, the check that stops a search on a changed Optuna,
and our studies as Optuna's own tools see them (metric names, optuna-dashboard)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
import warnings
import wsgiref.util
from pathlib import Path

import optuna
import optuna_dashboard
import pytest
from optuna.storages import RDBStorage
from optuna.storages._cached_storage import _CachedStorage
from optuna.trial import Trial, TrialState
from packaging.specifiers import SpecifierSet

from nas import _optuna
from nas._optuna import (
    SUPPORTED_OPTUNA,
    OptunaMismatch,
    check_optuna_internals,
    enqueued_params,
    grace_period_s,
    metric_names_key,
    metric_names_of,
    rdb_backend,
    silent_trial_ids,
    stale_trial_ids,
    storage_of,
    study_id,
    study_system_attr_json,
    swap_study_system_attr_json,
    trial_id,
)
from nas.storage import open_storage
from tests.search_helpers import load, run_search

ROOT = Path(__file__).parent.parent
# We drive heartbeats around ask/tell, as the search does, not through Study.optimize.
pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")


@pytest.fixture
def storage(tmp_path):
    """A real SQLite storage with heartbeats every second and a one-second grace period."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # heartbeats are "experimental"
        opened = RDBStorage(
            f"sqlite:///{tmp_path / 'interop.db'}", heartbeat_interval=1, grace_period=1
        )
    yield opened
    opened.engine.dispose()


@pytest.fixture
def study(storage):
    optuna.create_study(study_name="s", storage=storage, directions=["maximize", "minimize"])
    return optuna.load_study(study_name="s", storage=storage)


def test_ids_and_the_storage_behind_a_study_and_its_trials(study, storage):
    assert isinstance(storage_of(study), _CachedStorage)  # load_study wraps the RDB
    assert rdb_backend(storage_of(study)) is storage
    assert rdb_backend(storage) is storage
    assert rdb_backend(optuna.storages.InMemoryStorage()) is None
    assert study_id(study) == storage.get_study_id_from_name("s")
    first, second = study.ask(), study.ask()
    assert trial_id(first) != trial_id(second)
    assert storage.get_trial(trial_id(second)).number == second.number
    frozen = study.get_trials(deepcopy=False)[1]
    assert trial_id(frozen) == trial_id(second)


def test_enqueued_params_and_metric_names(study, storage):
    study.enqueue_trial({"width": 24})
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))[0]
    assert waiting.params == {} and enqueued_params(waiting) == {"width": 24}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.set_metric_names(["accuracy", "cost"])
    frozen = next(s for s in storage.get_all_studies() if s.study_name == "s")
    assert metric_names_of(frozen) == ["accuracy", "cost"]


def test_heartbeats_silent_and_stale_trials(study, storage):
    cached = storage_of(study)
    assert grace_period_s(cached) == 1
    silent, beating = study.ask(), study.ask()
    cached.record_heartbeat(trial_id(beating))
    # The silent one never beat: Optuna's stale check skips it, ours finds it.
    assert silent_trial_ids(cached, study_id(study)) == {trial_id(silent)}
    assert stale_trial_ids(cached, study_id(study)) == []
    time.sleep(2.2)  # past the grace period without another beat
    assert stale_trial_ids(cached, study_id(study)) == [trial_id(beating)]
    study.tell(beating, [0.5, 1.0])
    assert stale_trial_ids(cached, study_id(study)) == []


def test_the_search_storage_waits_four_heartbeats_and_none_without_them(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        beating = open_storage(f"sqlite:///{tmp_path / 'search.db'}", heartbeat_s=3)
    quiet = open_storage(f"sqlite:///{tmp_path / 'quiet.db'}")
    quiet_study = optuna.create_study(storage=quiet)
    quiet_study.ask()
    assert grace_period_s(beating) == 12
    assert stale_trial_ids(quiet, study_id(quiet_study)) == []
    beating.engine.dispose()
    quiet.engine.dispose()


def test_a_system_attribute_is_swapped_only_from_what_was_seen(study, storage):
    sid = study_id(study)
    assert study_system_attr_json(storage, sid, "lock") is None
    assert swap_study_system_attr_json(storage, sid, "lock", None, json.dumps("a"))
    assert not swap_study_system_attr_json(storage, sid, "lock", None, json.dumps("x"))
    assert not swap_study_system_attr_json(storage, sid, "lock", '"x"', json.dumps("y"))
    assert swap_study_system_attr_json(storage, sid, "lock", '"a"', json.dumps({"pid": 7}))
    assert json.loads(study_system_attr_json(storage, sid, "lock")) == {"pid": 7}
    assert storage.get_study_system_attrs(sid)["lock"] == {"pid": 7}  # Optuna reads it too


def test_the_installed_optuna_has_every_internal(storage):
    check_optuna_internals(storage)
    assert optuna.__version__ in SpecifierSet(SUPPORTED_OPTUNA)


def _without_after_init(cls, attribute: str, monkeypatch) -> None:
    """Make `cls` instances lack `attribute`, as an Optuna that renamed it would."""
    original = cls.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        delattr(self, attribute)

    monkeypatch.setattr(cls, "__init__", init)


@pytest.mark.parametrize(
    "internal",
    [
        "optuna.storages.RDBStorage._get_stale_trial_ids",
        "optuna.storages._cached_storage._CachedStorage._backend",
        "optuna.trial.Trial._trial_id",
    ],
)
def test_a_missing_internal_is_named_in_one_line(internal, storage, monkeypatch):
    if internal.endswith("_get_stale_trial_ids"):
        monkeypatch.delattr(RDBStorage, "_get_stale_trial_ids")
    elif internal.endswith("_backend"):
        _without_after_init(_CachedStorage, "_backend", monkeypatch)
    else:
        _without_after_init(Trial, "_trial_id", monkeypatch)
    with pytest.raises(OptunaMismatch) as raised:
        check_optuna_internals(storage)
    message = str(raised.value)
    assert f"lacks {internal}," in message
    assert optuna.__version__ in message and SUPPORTED_OPTUNA in message
    assert "\n" not in message
    assert isinstance(raised.value, ValueError)  # refusing_bad_input: exit 2, one line


def test_a_search_on_a_changed_optuna_stops_before_any_work(tmp_path):
    """The real command, with Optuna's stale-trial query gone: one line, exit 2, no trial."""
    url = f"sqlite:///{tmp_path / 'changed.db'}"
    program = (
        "import sys; from optuna.storages import RDBStorage; "
        "del RDBStorage._get_stale_trial_ids; from nas.search import main; "
        f"sys.exit(main(['--storage', {url!r}, '--dataset', 'digits', '--trials', '1']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=600, cwd=ROOT
    )
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "RDBStorage._get_stale_trial_ids" in lines[0] and SUPPORTED_OPTUNA in lines[0]
    storage = open_storage(url)
    assert storage.get_all_studies() == []  # no study was made


# --- our studies as Optuna's tools see them ------------------------------------------------


def _get_json(app, path: str):
    environ: dict = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
    wsgiref.util.setup_testing_defaults(environ)
    status = []
    body = b"".join(app(environ, lambda code, headers, *_: status.append(code)))
    assert status[0].startswith("200"), (status, body[:300])
    return json.loads(body)


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A study made by a real tiny search on digits: two trials, landmarks first."""
    url = f"sqlite:///{tmp_path_factory.mktemp('ours') / 'studies.db'}"
    done = run_search(url, "--trials", "2", "--study", "ours")
    assert done.returncode == 0, done.stderr
    return url


def test_our_study_names_its_objectives_and_optuna_dashboard_shows_them(searched):
    assert load(searched, "ours").metric_names == ["validation accuracy", "MACs"]
    app = optuna_dashboard.wsgi(searched)
    listed = _get_json(app, "/api/studies")["study_summaries"]
    (entry,) = [study for study in listed if study["study_name"] == "ours"]
    detail = _get_json(app, f"/api/studies/{entry['study_id']}")
    assert detail["objective_names"] == ["validation accuracy", "MACs"]
    assert detail["directions"] == ["maximize", "minimize"]
    assert len(detail["trials"]) == 2 and detail["best_trials"]


def test_an_older_study_without_names_resumes_and_gets_them(searched, tmp_path):
    old = tmp_path / "old.db"
    old.write_bytes(Path(searched.removeprefix("sqlite:///")).read_bytes())
    with sqlite3.connect(old) as connection:  # as a version before named objectives left it
        connection.execute(
            "DELETE FROM study_system_attributes WHERE key = ?", (metric_names_key(),)
        )
    url = f"sqlite:///{old}"
    assert load(url, "ours").metric_names is None
    done = run_search(url, "--trials", "2", "--study", "ours")  # the target is met: no trial
    assert done.returncode == 0, done.stderr
    study = load(url, "ours")
    assert study.metric_names == ["validation accuracy", "MACs"]
    assert len(study.get_trials(deepcopy=False)) == 2


def test_the_wrappers_are_the_only_use_of_optuna_internals():
    """No module outside nas/_optuna.py reaches into Optuna (tests may)."""
    markers = (
        "study._storage", "._trial_id", "._study_id", "_get_stale_trial_ids", "._backend",
        "storages._rdb", "scoped_session", '"fixed_params"', "study:metric_names",
        "FROM study_system_attributes", "INTO study_system_attributes",
        "UPDATE study_system_attributes",
    )  # fmt: skip
    offenders = []
    for folder in ("nas", "dashboard", "bench", "search_spaces"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "_optuna.py":
                continue
            text = path.read_text()
            offenders += [f"{path.name}: {m}" for m in markers if m in text]
    assert offenders == []
    assert Path(_optuna.__file__).name == "_optuna.py"
