"""Every use of an Optuna internal, in one place, and the check that they all still exist.

Optuna's public API covers what the search and the dashboard need but for a few things: the
storage and the ids behind a study and a trial (heartbeats are kept per trial id), the running
trials whose heartbeat went stale or never came, the heartbeat's grace period, the parameters a
waiting trial was enqueued with, the study system attribute that holds the metric names, and
one row of Optuna's `study_system_attributes` table read and swapped in one statement (the
set-up's lock, `nas._study`). Each is wrapped here under a name that says what it gives, and
nothing else in this project reaches into Optuna.

Those internals can change in any Optuna release, so `check_optuna_internals` probes every one
of them on the installed Optuna where a search starts: a release that moved one stops the
search before any work, with one line that names it, instead of failing trials later.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Iterator

import optuna
import sqlalchemy
from optuna.storages import BaseStorage, InMemoryStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

# The Optuna releases this project is tested with (5.0.0); pyproject.toml declares the same.
SUPPORTED_OPTUNA = ">=5.0,<6"
_MODELS = "optuna.storages._rdb.models"
_CACHED_STORAGE = "optuna.storages._cached_storage"
# The system attribute of a trial that holds the parameters it was enqueued with.
_ENQUEUED_PARAMS_KEY = "fixed_params"


class OptunaMismatch(ValueError):
    """The installed Optuna lacks an internal this project relies on (one line, exit 2)."""


def _internal(module: str, name: str):
    """`module.name` of Optuna, imported on use so that a moved module is named, not a crash."""
    return getattr(importlib.import_module(module), name)


# --- studies and trials -------------------------------------------------------------------


def storage_of(study: optuna.Study) -> BaseStorage:
    """The storage a study reads and writes through (Optuna's cached wrapper of an RDB)."""
    return study._storage


def study_id(study) -> int:
    """The storage's id of a study (an `optuna.Study` or a `FrozenStudy`)."""
    return study._study_id


def trial_id(trial) -> int:
    """The storage's id of a trial (an `optuna.Trial` or a `FrozenTrial`), unique per storage."""
    return trial._trial_id


def enqueued_params(trial: FrozenTrial) -> dict | None:
    """The parameters `study.enqueue_trial` gave a trial (a waiting one has no `params` yet)."""
    return trial.system_attrs.get(_ENQUEUED_PARAMS_KEY)


def metric_names_key() -> str:
    """The study system attribute in which `Study.set_metric_names` stores the names."""
    return _internal("optuna.study.study", "_SYSTEM_ATTR_METRIC_NAMES")


def metric_names_of(frozen_study) -> list[str] | None:
    """A `FrozenStudy`'s metric names (`Study.set_metric_names`), without loading the study."""
    return frozen_study.system_attrs.get(metric_names_key())


# --- storages and heartbeats --------------------------------------------------------------


def rdb_backend(storage: BaseStorage) -> RDBStorage | None:
    """The RDB storage behind `storage` (itself, or what Optuna's cache wraps), else None."""
    if isinstance(storage, _internal(_CACHED_STORAGE, "_CachedStorage")):
        storage = storage._backend
    return storage if isinstance(storage, RDBStorage) else None


def heartbeats_on(storage: BaseStorage) -> bool:
    """Whether the storage keeps trial heartbeats (an RDB opened with an interval)."""
    return hasattr(storage, "get_heartbeat_interval") and bool(storage.get_heartbeat_interval())


def stale_trial_ids(storage: BaseStorage, study: int) -> list[int]:
    """Running trials of study id `study` whose last heartbeat is older than the grace period."""
    if not heartbeats_on(storage):
        return []
    return list(storage._get_stale_trial_ids(study))


def grace_period_s(storage: BaseStorage) -> int:
    """Seconds without a heartbeat after which a running trial counts as abandoned."""
    backend = rdb_backend(storage)
    grace = backend.grace_period if backend is not None else None
    return grace or 2 * storage.get_heartbeat_interval()


def silent_trial_ids(storage: BaseStorage, study: int) -> set[int]:
    """Running trials of study id `study` without any heartbeat (Optuna's stale check skips
    them); empty for a storage that is not an RDB."""
    backend = rdb_backend(storage)
    if backend is None:
        return set()
    trials = _internal(_MODELS, "TrialModel")
    session = backend.scoped_session()
    try:
        rows = (
            session.query(trials.trial_id)
            .filter(trials.study_id == study)
            .filter(trials.state == TrialState.RUNNING)
            .filter(~trials.heartbeats.any())
            .all()
        )
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return {row[0] for row in rows}


# --- one study system attribute, read and swapped atomically --------------------------------


def _study_system_attrs() -> sqlalchemy.Table:
    return _internal(_MODELS, "StudySystemAttributeModel").__table__


def study_system_attr_json(storage: RDBStorage, study: int, key: str) -> str | None:
    """The stored JSON text of a study system attribute, read straight from Optuna's table
    (no cache between, so every process sees every other's latest write)."""
    table = _study_system_attrs()
    with storage.engine.connect() as connection:
        return connection.execute(
            sqlalchemy.select(table.c.value_json).where(
                table.c.study_id == study, table.c.key == key
            )
        ).scalar()


def swap_study_system_attr_json(
    storage: RDBStorage, study: int, key: str, seen: str | None, new: str
) -> bool:
    """Set a study system attribute to the JSON text `new` if it is still `seen`; True if so.

    One statement, so of two processes only one can win: an INSERT when there is no row yet
    (Optuna's table holds one row per study and key), else an UPDATE that matches only `seen`.
    """
    table = _study_system_attrs()
    if seen is None:
        statement = table.insert().values(study_id=study, key=key, value_json=new)
    else:
        statement = (
            table.update()
            .where(table.c.study_id == study, table.c.key == key, table.c.value_json == seen)
            .values(value_json=new)
        )
    try:
        with storage.engine.begin() as connection:
            result = connection.execute(statement)
    except sqlalchemy.exc.IntegrityError:
        return False  # another process inserted its row first
    # An INSERT that did not raise stored its row (its rowcount may say -1: Core fetches the
    # new id with RETURNING); an UPDATE counts the rows that still held `seen`.
    return seen is None or result.rowcount == 1


# --- the check ------------------------------------------------------------------------------


def check_optuna_internals(storage: RDBStorage) -> None:
    """Make sure the installed Optuna has every internal wrapped above.

    Each is probed through its wrapper, on a scratch in-memory study and on `storage` (the
    search's, so that what it holds is checked where it is used); nothing is written to it.

    Args:
        storage: the RDB storage the search opened.

    Raises:
        OptunaMismatch: one line naming the first missing internal, the installed Optuna and
            the supported versions.
    """
    for name, probe in _probes(storage):
        try:
            present = probe()
        except (AttributeError, ImportError, KeyError, TypeError):
            present = False
        if not present:
            raise OptunaMismatch(
                f"the installed Optuna {optuna.__version__} lacks {name}, which this tool "
                f"relies on; install a supported Optuna: pip install 'optuna{SUPPORTED_OPTUNA}'"
            )


def _probes(storage: RDBStorage) -> Iterator[tuple[str, Callable[[], bool]]]:
    """(the internal, in Optuna's words; a probe true when it is there), in order of use."""
    study, frozen_study, waiting, trial = _scratch_study()

    def cached():
        return _internal(_CACHED_STORAGE, "_CachedStorage")

    def trial_model():
        return _internal(_MODELS, "TrialModel")

    yield "optuna.Study._storage", lambda: isinstance(storage_of(study), BaseStorage)
    yield "optuna.Study._study_id", lambda: isinstance(study_id(study), int)
    yield "optuna.trial.Trial._trial_id", lambda: isinstance(trial_id(trial), int)
    yield "optuna.trial.FrozenTrial._trial_id", lambda: isinstance(trial_id(waiting), int)
    yield (
        f"the enqueued parameters in FrozenTrial.system_attrs[{_ENQUEUED_PARAMS_KEY!r}]",
        lambda: enqueued_params(waiting) == {"probe": 1},
    )
    yield (
        "optuna.study.study._SYSTEM_ATTR_METRIC_NAMES (metric names among system attrs)",
        lambda: metric_names_of(frozen_study) == ["probe"],
    )
    yield (
        f"{_CACHED_STORAGE}._CachedStorage._backend",
        lambda: rdb_backend(cached()(storage)) is storage,
    )
    # Their own: the heartbeat base class has one too, that only raises NotImplementedError.
    yield (
        "optuna.storages.RDBStorage._get_stale_trial_ids",
        lambda: callable(vars(RDBStorage).get("_get_stale_trial_ids")),
    )
    yield (
        f"{_CACHED_STORAGE}._CachedStorage._get_stale_trial_ids",
        lambda: callable(vars(cached()).get("_get_stale_trial_ids")),
    )
    yield "optuna.storages.RDBStorage.grace_period", lambda: hasattr(storage, "grace_period")
    yield "optuna.storages.RDBStorage.scoped_session", lambda: callable(storage.scoped_session)
    for column in ("trial_id", "study_id", "state", "heartbeats"):
        yield (
            f"{_MODELS}.TrialModel.{column}",
            lambda column=column: hasattr(trial_model(), column),
        )
    for column in ("study_id", "key", "value_json"):
        yield (
            f"{_MODELS}.StudySystemAttributeModel.{column} (table study_system_attributes)",
            lambda column=column: column in _study_system_attrs().c,
        )


def _scratch_study() -> tuple[optuna.Study, object, FrozenTrial, optuna.Trial]:
    """An in-memory study with metric names, one enqueued trial (as stored) and one asked;
    made through Optuna's public API only, so that it stands whatever the probes find."""
    memory = InMemoryStorage()
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created" line
    try:
        study = optuna.create_study(storage=memory)
    finally:
        optuna.logging.set_verbosity(verbosity)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # set_metric_names is "experimental"
        study.set_metric_names(["probe"])
    study.enqueue_trial({"probe": 1})
    waiting = study.get_trials(deepcopy=False)[0]
    return study, memory.get_all_studies()[0], waiting, study.ask()
