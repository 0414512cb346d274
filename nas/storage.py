"""Optuna storages: the one home of the default URL and of opening, checking and reading them.

Two ways in, one rule for what an Optuna storage is (`OPTUNA_TABLES`, applied by
`check_storage`):

- `open_storage` is the search's: it creates the database and Optuna's tables when they are
  absent and refuses any SQLite file that holds something else.
- `open_read_only` and `load_study` are the dashboard's and the exporter's: they never create or
  change a file, a table or a study (see `nas._sqlite.read_only_uri` for SQLite files).

optuna and SQLAlchemy load on first use: `python -m nas.search --help` imports this module for
the default URL and should not wait for them.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from nas._sqlite import (
    BUSY_TIMEOUT_S,
    create_database,
    is_sqlite_file,
    lock_on_begin,
    read_only_engine_options,
    read_only_uri,
    remove_leftovers,
    unwritable,
    use_wal,
)

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
# Processes that open a new database at the same moment race to create Optuna's tables; the
# losers see "already exists" errors, or a schema half made, and simply look again.
SCHEMA_RACE_TRIES = 6
HOW_TO_CREATE = "run nas.search first or give --storage"
# What to do when a database server does not answer (SQLite files have their own messages).
HOW_TO_REACH = "check that the database server is running and reachable, and the URL"

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


def _memory_or_nameless(url: str) -> str | None:
    """':memory:' or '' when `url` is a SQLite URL without a file (None: it names one, or is no
    SQLite URL); `sqlite_path` has refused non-URLs before this is asked."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return None
    if parsed.database is None or parsed.database == ":memory:":
        return ":memory:"  # sqlite:// is SQLAlchemy's own way to write it
    return "" if parsed.database == "" else None


def in_memory(url: str) -> bool:
    """Whether `url` is a SQLite database in memory, which only its own process sees."""
    return sqlite_path(url) is None and _memory_or_nameless(url) == ":memory:"


def check_search_url(url: str, workers: int = 1) -> None:
    """Refuse, before anything exists, a storage URL that a search cannot write through.

    Args:
        url: the --storage URL.
        workers: the worker processes that will share it.

    Raises:
        StorageError: one line: what is wrong with `url` and what to give instead.
    """
    path = sqlite_path(url)
    if path is None:
        without_file = _memory_or_nameless(url)
        if without_file == "":
            raise StorageError(f"{url!r} names no database file: give one, e.g. {DEFAULT_STORAGE}")
        if without_file == ":memory:" and workers > 1:
            raise StorageError(
                f"{url!r} is a database in memory, and each of the {workers} worker processes "
                f"would get its own: give a file, e.g. {DEFAULT_STORAGE}, or --workers 1"
            )
        return
    if not path.exists() and not path.parent.is_dir():
        raise StorageError(f"storage folder {path.parent} does not exist: create it first")
    problem = unwritable(path)
    if problem is not None:
        raise StorageError(
            f"cannot write {path}: {problem}; give a --storage in a writable folder "
            "(python -m dashboard and nas.export can still read it where it is)"
        )


def read_only_url(url: str) -> str:
    """The URL that reads `url` without writing: SQLite's read-only URI, others as given.

    What SQLite opens is decided again for each connection (`_read_options`); this URL is what
    SQLAlchemy and Optuna are told.
    """
    path = sqlite_path(url)
    if path is None:
        return url
    return f"sqlite:///{read_only_uri(path)}&uri=true"


def _read_options(url: str) -> dict:
    path = sqlite_path(url)
    return _engine_options(url) if path is None else read_only_engine_options(path)


def _engine_options(url: str) -> dict:
    """SQLAlchemy engine options for `url` (SQLite's own come from the opener)."""
    # PostgreSQL connections are checked before use (a server restart costs no failed call)
    # and give up connecting after 10 s.
    if url.startswith("postgresql"):
        return {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    return {}


def check_storage(url: str) -> StorageStatus:
    """Look at a storage without changing it: is it an Optuna storage with studies in it?

    A SQLite file is looked at on disk first (a missing one stays missing), then read without
    writing (`nas._sqlite.read_only_uri`); other databases are read for their table names only.
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
        engine = sqlalchemy.create_engine(read_only_url(url), **_read_options(url))
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
        return StorageStatus(INVALID, _no_driver(url, error))
    except sqlalchemy.exc.SQLAlchemyError as error:
        return StorageStatus(INVALID, _cannot("read", where, url, error))
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
    if not is_sqlite_file(path):
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

    A new SQLite file is made whole or not at all (`nas._sqlite.create_database`). Existing
    files are checked first (anything but an empty or Optuna database is left alone). SQLite
    files get write-ahead logging (readers never block the writer, so the dashboard and
    parallel workers coexist), a long busy timeout, and transactions that take the write lock
    when they begin: SQLite has no row locks, so without that two workers can both pop the
    same waiting trial.

    Args:
        url: any SQLAlchemy URL Optuna accepts.
        heartbeat_s: the trials' heartbeat interval (None: no heartbeats); a trial silent for
            four intervals counts as lost.
    """
    from optuna.storages import RDBStorage

    check_search_url(url)
    path = sqlite_path(url)
    engine_options = _engine_options(url)
    if path is not None:
        engine_options = {"connect_args": {"timeout": BUSY_TIMEOUT_S}}
        remove_leftovers(path)
        if not path.exists():
            try:
                create_database(path, _make_schema)
            except Exception as error:  # SQLAlchemy and the OS raise many kinds; one line
                raise StorageError(_cannot("create", str(path), url, error)) from None
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
            raise StorageError(_cannot("open", "storage " + redact(url), url, error)) from None
    if path is not None:
        lock_on_begin(storage.engine)
        use_wal(path)
    return storage


def _make_schema(url: str) -> None:
    from optuna.storages import RDBStorage

    RDBStorage(url).engine.dispose()


def _pause() -> None:
    time.sleep(0.1 + random.random() * 0.5)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _reason(error: BaseException) -> str:
    """The first line of what went wrong at the bottom: the driver's own error, not the
    wrappers' (Optuna's "invalid data in the commit", SQLAlchemy's "(psycopg...Error)")."""
    deepest = error
    while True:
        inner = getattr(deepest, "orig", None) or deepest.__cause__
        if inner is None:
            return _first_line(deepest)
        deepest = inner


def _cannot(verb: str, where: str, url: str, error: BaseException) -> str:
    """One line: cannot `verb` `where`, why, and (for a database server) what to do."""

    missing = _import_error(error)
    if missing is not None:
        return _no_driver(url, missing)
    message = f"cannot {verb} {where}: {_reason(error)}"
    if not url.startswith("sqlite") and _connection_failed(error):
        message += f"; {HOW_TO_REACH}"
    return message


def _import_error(error: BaseException | None) -> ImportError | None:
    """The deepest ImportError behind `error` (Optuna wraps the driver's own in one)."""
    found = None
    while error is not None:
        found = error if isinstance(error, ImportError) else found
        error = error.__cause__ or error.__context__
    return found


def _no_driver(url: str, error: ImportError) -> str:
    """One line for a URL whose database driver is not installed: what to install."""
    from nas._cli import missing_extra  # nas._cli imports this module: no cycle when run

    message = f"no database driver for {redact(url)} ({_first_line(error)})"
    if not url.startswith("postgresql"):
        return f"{message}: install the driver the URL names"
    extra = missing_extra("a PostgreSQL storage", "postgres")
    if error.name == "psycopg2":  # SQLAlchemy 2.0's driver for a bare postgresql:// URL
        return f"{message}: write the URL as postgresql+psycopg://...; {extra}"
    return f"{message}: {extra}"


def _connection_failed(error: BaseException) -> bool:
    import sqlalchemy.exc

    while error is not None:
        if isinstance(error, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
            return True
        error = error.__cause__ or getattr(error, "orig", None)
    return False


def _lost_schema_race(error: BaseException) -> bool:
    """Another process created Optuna's tables (or stamped their version) at the same time."""
    import sqlalchemy.exc

    while error is not None:
        if isinstance(error, sqlalchemy.exc.IntegrityError) or "already exists" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def open_read_only(url: str) -> RDBStorage:
    """An Optuna storage on `url` that never creates or changes a file, a table or a study.

    A SQLite database is read as `nas._sqlite.read_only_uri` says, so browsing leaves its
    folder as it was and works in a read-only folder; other databases are opened without
    Optuna's table creation.

    Raises:
        StorageError: there is no storage at `url`, it is not an Optuna storage, or it cannot
            be reached.
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
            read_only_url(url), engine_kwargs=_read_options(url), skip_table_creation=True
        )
    except Exception as error:  # SQLAlchemy and Optuna raise many kinds; one line suffices
        raise StorageError(_cannot("read", "storage " + redact(url), url, error)) from None


def load_study(url: str, name: str) -> optuna.Study:
    """The existing study `name` in `url`, read-only (see `open_read_only`).

    Raises:
        StorageError: a storage that is missing, not an Optuna storage or unreachable, or no
            such study; the message names the studies the storage does hold.
    """
    import optuna

    storage = open_read_only(url)
    try:
        names = optuna.get_all_study_names(storage)
    except Exception as error:  # SQLAlchemy raises many kinds; one line suffices
        storage.engine.dispose()
        raise StorageError(_cannot("read", "storage " + redact(url), url, error)) from None
    if name not in names:
        storage.engine.dispose()
        listed = ", ".join(repr(known) for known in names[:5]) + ", ..." * (len(names) > 5)
        raise StorageError(
            f"no study {name!r} in {redact(url)}; "
            + (f"it holds {listed}" if names else "it holds no studies")
        )
    return optuna.load_study(study_name=name, storage=storage)
