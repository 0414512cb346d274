"""Optuna storages: the one home of the default URL and of opening, checking and reading them.

Two ways in, one rule for what an Optuna storage is (`OPTUNA_TABLES`, applied by
`check_storage`):

- `open_storage` is the search's: it creates the database and Optuna's tables when they are
  absent and refuses any SQLite file that holds something else.
- `open_read_only` and `load_study` are the dashboard's and the exporter's: they never create a
  file, a table or a study, and SQLite files are opened in SQLite's read-only mode.

optuna and SQLAlchemy load on first use: `python -m nas.search --help` imports this module for
the default URL and should not wait for them.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import quote

if TYPE_CHECKING:
    import optuna
    from optuna.storages import RDBStorage

# The embedded default: a SQLite file in the current folder, zero set-up.
DEFAULT_STORAGE = "sqlite:///studies.db"
# The tables of Optuna's RDB schema (a test checks them against the installed Optuna): a
# database that lacks any of them is not a storage Optuna can read, whatever else it holds.
OPTUNA_TABLES = frozenset(
    {"studies", "study_directions", "study_user_attributes", "study_system_attributes",
     "trials", "trial_params", "trial_values", "trial_intermediate_values",
     "trial_user_attributes", "trial_system_attributes", "trial_heartbeats", "version_info"}
)  # fmt: skip
SQLITE_HEADER = b"SQLite format 3\x00"
# How long a SQLite writer waits for the lock before failing: parallel workers queue up here
# instead of failing with "database is locked".
SQLITE_BUSY_TIMEOUT_S = 120
# Processes that open a new database at the same moment race to create Optuna's tables; the
# losers see "already exists" errors, or a schema half made, and simply look again.
SCHEMA_RACE_TRIES = 6
HOW_TO_CREATE = "run nas.search first or give --storage"

OK, MISSING, EMPTY, INVALID = "ok", "missing", "empty", "invalid"


class StorageError(ValueError):
    """A storage that cannot be used as it is; the message is one line for the user."""


class StorageStatus(NamedTuple):
    """What a storage URL points at: ok, missing (no file yet), empty (no study), invalid."""

    kind: str
    message: str
    # The tables found, when the database could be read (empty otherwise).
    tables: frozenset[str] = frozenset()


def redact(url: str) -> str:
    """`url` with its password (if any) replaced by ***, for everything we print or show.

    Works on the text, not on a parsed URL, so that a password with an unescaped @ or / in it
    is hidden whole, and so that arguments which are not URLs at all come back unchanged.
    """
    scheme, separator, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    user, colon, _password = credentials.partition(":")
    if not separator or not at or not colon or "/" in user:
        return url
    return f"{scheme}://{user}:***@{host}"


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, as SQLite opens it; None for other URLs and :memory:.

    The URL is parsed as SQLAlchemy parses it, so a query (`?timeout=5`) is not part of the
    name and escapes (`my%20db.db`) are decoded; a relative path is taken from the current
    folder, as SQLAlchemy does (no ~ expansion).

    Raises:
        StorageError: `url` is not a database URL.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(
            f"{redact(url)!r} is not a database URL (e.g. {DEFAULT_STORAGE})"
        ) from None
    database = parsed.database or ""
    if not parsed.drivername.startswith("sqlite") or database in ("", ":memory:"):
        return None
    if database.startswith("file:"):
        return None  # a SQLite URI: its own options decide; we take it as given
    return Path(os.path.abspath(database))


def read_only_url(url: str) -> str:
    """The URL that reads `url` without writing: SQLite's read-only URI mode, others as given."""
    path = sqlite_path(url)
    if path is None:
        return url
    return f"sqlite:///file:{quote(str(path))}?mode=ro&uri=true"


def _engine_options(url: str) -> dict:
    """SQLAlchemy engine options for `url` (SQLite's own come from the opener)."""
    # PostgreSQL connections are checked before use (a server restart costs no failed call)
    # and give up connecting after 10 s.
    if url.startswith("postgresql"):
        return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    return {}


def check_storage(url: str) -> StorageStatus:
    """Look at a storage without changing it: is it an Optuna storage with studies in it?

    A SQLite file is looked at on disk first (a missing one stays missing), then read through
    SQLite's read-only mode; other databases are read for their table names only.
    """
    try:
        path = sqlite_path(url)
    except StorageError as error:
        return StorageStatus(INVALID, str(error))
    if path is not None:
        problem = _file_status(path)
        if problem is not None:
            return problem
    where = str(path) if path is not None else redact(url)
    import sqlalchemy

    engine = None
    try:
        engine = sqlalchemy.create_engine(read_only_url(url), **_engine_options(url))
        tables = frozenset(sqlalchemy.inspect(engine).get_table_names())
        if not tables:
            return StorageStatus(EMPTY, f"{where} has no tables yet")
        problem = _not_optuna(where, tables)
        if problem is not None:
            return StorageStatus(INVALID, problem, tables)
        with engine.connect() as connection:
            studies = connection.execute(sqlalchemy.text("SELECT COUNT(*) FROM studies"))
            if studies.scalar() == 0:
                return StorageStatus(EMPTY, f"{where} holds no study yet", tables)
    except ImportError as error:
        return StorageStatus(INVALID, f"no database driver for {redact(url)}: {error}")
    except sqlalchemy.exc.SQLAlchemyError as error:
        reason = _first_line(getattr(error, "orig", None) or error)
        return StorageStatus(INVALID, f"cannot read {where}: {reason}")
    finally:
        if engine is not None:
            engine.dispose()
    return StorageStatus(OK, redact(url), tables)


def _file_status(path: Path) -> StorageStatus | None:
    """What the file alone says (missing, a folder, empty, not SQLite); None: read it."""
    if not path.exists():
        return StorageStatus(MISSING, f"{path} does not exist yet")
    if path.is_dir():
        return StorageStatus(INVALID, f"{path} is a folder, not an Optuna storage")
    if path.stat().st_size == 0:
        return StorageStatus(EMPTY, f"{path} is an empty file, not an Optuna storage yet")
    with path.open("rb") as handle:
        if handle.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
            return StorageStatus(INVALID, f"{path} is not a SQLite database")
    return None


def _not_optuna(where: str, tables: frozenset[str]) -> str | None:
    """The one rule: why a database with these tables is no Optuna storage (None: it is one)."""
    missing = OPTUNA_TABLES - tables
    if not missing:
        return None
    if not tables & OPTUNA_TABLES:
        return f"{where} is not an Optuna storage: it has tables {_listed(tables)}"
    return f"{where} is not an Optuna storage: it lacks Optuna's tables {_listed(missing, 3)}"


def _listed(names: frozenset[str], most: int = 5) -> str:
    ordered = sorted(names)
    return ", ".join(ordered[:most]) + (f" and {len(ordered) - most} more" * (len(ordered) > most))


def open_storage(url: str, *, heartbeat_s: int | None = None) -> RDBStorage:
    """An Optuna RDB storage for writing, created if absent; StorageError explains a refusal.

    SQLite files are checked first (anything but a new, empty or Optuna database is left
    alone) and get write-ahead logging (readers never block the writer, so the dashboard and
    parallel workers coexist), a long busy timeout, and transactions that take the write lock
    when they begin: SQLite has no row locks, so without that two workers can both pop the
    same waiting trial.

    Args:
        url: any SQLAlchemy URL Optuna accepts.
        heartbeat_s: the trials' heartbeat interval (None: no heartbeats); a trial silent for
            four intervals counts as lost.
    """
    from optuna.storages import RDBStorage

    path = sqlite_path(url)
    engine_options = _engine_options(url)
    if path is not None:
        if not path.exists() and not path.parent.is_dir():
            raise StorageError(f"storage folder {path.parent} does not exist: create it first")
        engine_options = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    for attempt in range(SCHEMA_RACE_TRIES):
        last_try = attempt + 1 == SCHEMA_RACE_TRIES
        if path is not None:
            status = check_storage(url)
            if status.kind == INVALID:
                if status.tables & OPTUNA_TABLES and not last_try:
                    _pause()  # another process may be creating Optuna's tables right now
                    continue
                raise StorageError(
                    f"{status.message}: refusing to touch it; give another --storage path"
                )
        try:
            storage = RDBStorage(
                url,
                engine_kwargs=engine_options,
                heartbeat_interval=heartbeat_s,
                grace_period=None if heartbeat_s is None else 4 * heartbeat_s,
            )
            break
        except Exception as error:  # SQLAlchemy raises many kinds; the user needs one line.
            if _lost_schema_race(error) and not last_try:
                _pause()
                continue
            reason = _first_line(error)
            raise StorageError(f"cannot open storage {redact(url)}: {reason}") from None
    if path is not None:
        _lock_on_begin(storage.engine)
        with sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
    return storage


def _pause() -> None:
    time.sleep(0.1 + random.random() * 0.5)


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


def open_read_only(url: str) -> RDBStorage:
    """An Optuna storage on `url` that never creates a file or a table (nor a study).

    SQLite files are opened in SQLite's read-only mode, so the database file is never written;
    a database in write-ahead-log mode (what the search makes) still gets SQLite's -wal and
    -shm side files while no writer holds them, because SQLite reads such a database through
    them. Other databases are opened without Optuna's table creation.

    Raises:
        StorageError: there is no storage at `url`, or it is not an Optuna storage.
    """
    from optuna.storages import RDBStorage

    status = check_storage(url)
    if status.kind == MISSING:
        raise StorageError(f"no storage at {sqlite_path(url)}: {HOW_TO_CREATE}")
    if status.kind == INVALID:
        raise StorageError(status.message)
    if status.kind == EMPTY and not status.tables:
        raise StorageError(f"{status.message}: {HOW_TO_CREATE}")
    try:
        return RDBStorage(
            read_only_url(url), engine_kwargs=_engine_options(url), skip_table_creation=True
        )
    except Exception as error:  # SQLAlchemy and Optuna raise many kinds; one line suffices
        raise StorageError(f"cannot read storage {redact(url)}: {_first_line(error)}") from None


def load_study(url: str, name: str) -> optuna.Study:
    """The existing study `name` in `url`, read-only (see `open_read_only`).

    Raises:
        StorageError: a storage that is missing or not an Optuna storage, or no such study;
            the message names the studies the storage does hold.
    """
    import optuna

    storage = open_read_only(url)
    try:
        names = optuna.get_all_study_names(storage)
    except Exception as error:  # SQLAlchemy raises many kinds; one line suffices
        storage.engine.dispose()
        raise StorageError(f"cannot read storage {redact(url)}: {_first_line(error)}") from None
    if name not in names:
        storage.engine.dispose()
        listed = ", ".join(repr(known) for known in names[:5]) + ", ..." * (len(names) > 5)
        raise StorageError(
            f"no study {name!r} in {redact(url)}; "
            + (f"it holds {listed}" if names else "it holds no studies")
        )
    return optuna.load_study(study_name=name, storage=storage)
