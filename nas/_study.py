"""Opening storages and studies safely: validate first, create or write only when all is well."""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path

import optuna
from optuna.storages import RDBStorage

SQLITE_HEADER = b"SQLite format 3\x00"
# Tables an Optuna RDB storage holds; a SQLite file with tables but none of these is foreign.
OPTUNA_TABLES = {"studies", "trials", "version_info"}
# How long a SQLite writer waits for the lock before failing: parallel workers queue up here
# instead of failing with "database is locked".
SQLITE_BUSY_TIMEOUT_S = 120
# Processes that open a new database at the same moment race to create Optuna's tables; the
# losers see "already exists" errors and simply try again.
SCHEMA_RACE_TRIES = 6
# A study system attribute: "in progress" while the process that created the study stores its
# settings and enqueues the landmarks, "done" after; processes that lost the race to create it
# wait for "done" so that they neither run before the landmarks nor enqueue them again.
SETUP_KEY = "nas:setup"
SETUP_WAIT_S = 60.0


class StorageError(ValueError):
    """A storage that cannot be used as it is; the message is one line for the user."""


def sqlite_path(url: str) -> Path | None:
    """The file behind a sqlite:/// URL, or None for other URLs and in-memory SQLite."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///") :]
    if not path or path == ":memory:":
        return None
    return Path(path)


def check_sqlite_file(path: Path) -> None:
    """Refuse a file that is not an (empty or Optuna) SQLite database, without touching it."""
    if not path.exists():
        if not path.parent.exists():
            raise StorageError(f"storage folder {path.parent} does not exist: create it first")
        return
    if path.is_dir():
        raise StorageError(f"storage path {path} is a folder, not a database file")
    with path.open("rb") as handle:
        header = handle.read(len(SQLITE_HEADER))
    if not header:
        return  # an empty file: SQLite treats it as a new database
    if header != SQLITE_HEADER:
        raise StorageError(
            f"{path} is not a SQLite database: refusing to touch it; give another --storage path"
        )
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    if tables and not OPTUNA_TABLES <= tables:
        raise StorageError(
            f"{path} is a SQLite database but not an Optuna storage (tables: "
            f"{', '.join(sorted(tables)[:5])}): refusing to touch it; give another --storage path"
        )


def open_storage(url: str, *, heartbeat_s: int | None = None) -> RDBStorage:
    """An Optuna RDB storage for `url`, checked first; StorageError explains any refusal.

    SQLite files get write-ahead logging (readers never block the writer, so the dashboard
    and parallel workers coexist), a long busy timeout, and transactions that take the write
    lock when they begin: SQLite has no row locks, so without that two workers can both pop
    the same waiting trial. PostgreSQL connections are checked before use (a server restart
    costs no failed call) and give up connecting after 10 s.
    """
    path = sqlite_path(url)
    engine_kwargs: dict = {}
    if path is not None:
        check_sqlite_file(path)
        engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    elif url.startswith("postgresql"):
        engine_kwargs = {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    for attempt in range(SCHEMA_RACE_TRIES):
        try:
            storage = RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_s,
                grace_period=None if heartbeat_s is None else 4 * heartbeat_s,
            )
            break
        except Exception as error:  # SQLAlchemy raises many kinds; the user needs one line.
            if _lost_schema_race(error) and attempt + 1 < SCHEMA_RACE_TRIES:
                time.sleep(0.1 + random.random() * 0.5)
                continue
            reason = _first_line(error)
            raise StorageError(f"cannot open storage {redact(url)}: {reason}") from None
    if path is not None:
        _lock_on_begin(storage.engine)
        with sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
    return storage


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _lost_schema_race(error: BaseException) -> bool:
    """Another process created Optuna's tables (or stamped their version) at the same time."""
    import sqlalchemy.exc

    while error is not None:
        if isinstance(error, sqlalchemy.exc.IntegrityError) or "already exists" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def _lock_on_begin(engine) -> None:
    """Make every SQLite transaction BEGIN IMMEDIATE (the SQLAlchemy recipe for pysqlite).

    Python's sqlite3 starts a transaction only at the first write, so Optuna's read-then-write
    steps (pop a waiting trial, fail a stale one) are not atomic across processes. Taking the
    write lock at BEGIN serializes them; waiting writers queue for up to the busy timeout.
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _autocommit_driver(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy issues BEGIN itself, below

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened before the listeners existed are dropped


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        if ":" in credentials:
            user = credentials.split(":", 1)[0]
            return f"{scheme}://{user}:***@{host}"
    return url


def existing_study(storage: RDBStorage, name: str) -> optuna.Study | None:
    """The study called `name`, or None when the storage has none by that name."""
    try:
        storage.get_study_id_from_name(name)
    except KeyError:
        return None
    return optuna.load_study(study_name=name, storage=storage)


def open_or_create_study(
    storage: RDBStorage,
    name: str,
    directions: list[str],
    user_attrs: dict,
    landmarks: list[tuple[dict, dict]],
    *,
    wait_s: float = SETUP_WAIT_S,
) -> tuple[optuna.Study, bool]:
    """The study `name`, created if absent; True when this call created it.

    Safe when several processes start on the same new study at once: exactly one creates it,
    stores `user_attrs` and enqueues `landmarks` (params, trial user attrs) in order; the
    others load it and wait until that set-up is done, so landmarks are enqueued once and run
    first.
    """
    study = existing_study(storage, name)
    if study is None:
        try:
            study = optuna.create_study(study_name=name, storage=storage, directions=directions)
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=name, storage=storage)
        else:
            _set_up(study, user_attrs, landmarks)
            return study, True
    _wait_for_set_up(study, wait_s)
    return study, False


def _set_up(study: optuna.Study, user_attrs: dict, landmarks: list[tuple[dict, dict]]) -> None:
    storage, study_id = study._storage, study._study_id
    storage.set_study_system_attr(study_id, SETUP_KEY, "in progress")
    for key, value in user_attrs.items():
        study.set_user_attr(key, value)
    for params, attrs in landmarks:
        study.enqueue_trial(params, user_attrs=attrs)
    storage.set_study_system_attr(study_id, SETUP_KEY, "done")


def _wait_for_set_up(study: optuna.Study, wait_s: float) -> None:
    """Wait while another process is still setting the study up.

    A study with neither our set-up mark nor any user attribute may be a second old (its
    creator has not written the mark yet) or made by other tools: wait briefly for it. A
    creator that died half-way leaves "in progress": go on after `wait_s`.
    """
    storage, study_id = study._storage, study._study_id
    start = time.monotonic()
    while True:
        mark = storage.get_study_system_attrs(study_id).get(SETUP_KEY)
        if mark == "done":
            return
        elapsed = time.monotonic() - start
        if mark is None and (storage.get_study_user_attrs(study_id) or elapsed > 3.0):
            return  # made by an older version of this tool or by other tools
        if elapsed > wait_s:
            return
        time.sleep(0.2)


def check_compatible(study: optuna.Study, wanted: dict) -> None:
    """Refuse to continue a study that was started with another space, dataset or objectives."""
    stored = study.user_attrs
    for key in ("space", "dataset", "objectives"):
        if key in stored and stored[key] != wanted[key]:
            raise StorageError(
                f"study {study.study_name!r} was run with {key}={stored[key]!r}, not "
                f"{wanted[key]!r}: give another --study name or the same {key}"
            )
