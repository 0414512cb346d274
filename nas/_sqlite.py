"""SQLite files: made whole or not at all, read without leaving a trace, written one at a time.

`nas.storage` decides what a storage is and opens it; this module holds what only a SQLite
file needs on disk. SQLAlchemy loads on first use (see `nas.storage`).
"""

from __future__ import annotations

import os
import socket
import sqlite3
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from nas._faults import fault_point

SQLITE_HEADER = b"SQLite format 3\x00"
# Bytes 18 and 19 of the header (the file format's write and read versions) are 2 when the
# database is in write-ahead-log mode, 1 with a rollback journal.
_WAL_VERSIONS = b"\x02\x02"
# How long a SQLite writer waits for the lock before failing: parallel workers queue up here
# instead of failing with "database is locked".
BUSY_TIMEOUT_S = 120
# What SQLite keeps beside a database (or beside our temporary file while it is made).
SIDE_FILES = ("-journal", "-wal", "-shm")


def is_sqlite_file(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(len(SQLITE_HEADER)) == SQLITE_HEADER


def _in_wal_mode(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            header = handle.read(20)
    except OSError:
        return False
    return header.startswith(SQLITE_HEADER) and header[18:20] == _WAL_VERSIONS


def read_only_uri(path: Path) -> str:
    """The SQLite URI that reads `path` as it is now without creating or changing any file.

    A database in write-ahead-log mode is read through its -wal and -shm files, and SQLite
    creates them when they are absent (where the folder allows it; a read-only connection then
    cannot remove them again). They exist while a writer has the database open, and after a
    writer was killed. Without a -wal file no writer is at work and every commit is in the file
    itself, so it is read as immutable: no side file, no lock, and a read-only folder is fine.
    """
    flags = "mode=ro"
    if _in_wal_mode(path) and not Path(f"{path}-wal").exists():
        flags = "immutable=1"
    return f"file:{quote(str(path))}?{flags}"


def read_only_engine_options(path: Path) -> dict:
    """SQLAlchemy engine options that open every connection to `path` with `read_only_uri`.

    Each use opens its own connection (no pool), so each one looks again: a search that starts
    writing after the dashboard opened the database makes the -wal file, and the next read goes
    through it, so live updates keep coming.
    """
    from sqlalchemy.pool import NullPool

    def connect() -> sqlite3.Connection:
        # Dash serves callbacks from several threads; each connection is used by one at a time.
        return sqlite3.connect(read_only_uri(path), uri=True, check_same_thread=False)

    return {"creator": connect, "poolclass": NullPool}


def _url_of(path: Path) -> str:
    """A SQLAlchemy URL of the file `path` (SQLAlchemy decodes %-escapes in the name)."""
    return f"sqlite:///{quote(str(path))}"


def create_database(path: Path, make_schema: Callable[[str], None]) -> bool:
    """Make the database `path` whole or not at all; True when this call made it.

    The schema is made in a temporary file beside `path` and then linked into place. A process
    killed half-way (kill -9, a power cut) so leaves only its temporary file, which the next
    run removes, and never a half-made `path`: that could not be told from a user's own
    database, and a read-only check cannot roll back the journal it leaves (`remove_leftovers`
    clears what the killed one left). When another
    process links its database first, the link fails and this one uses that database.

    Args:
        path: the database file, absent when called.
        make_schema: makes the schema in the database at the URL it is given.
    """
    temporary = path.with_name(f"{_temporary_prefix(path)}{os.getpid()}.creating")
    try:
        sqlite3.connect(temporary).close()
        fault_point("storage:file-created")
        make_schema(_url_of(temporary))
        use_wal(temporary)
        return _link_into_place(temporary, path)
    finally:
        _remove_with_side_files(temporary)


def _link_into_place(temporary: Path, path: Path) -> bool:
    try:
        os.link(temporary, path)  # fails if `path` exists: never replaces a database
    except FileExistsError:
        return False
    except OSError:
        # A file system without hard links: a rename can replace a database that another
        # process linked a moment ago, so look first (the window is this one line).
        if path.exists():
            return False
        os.rename(temporary, path)
    fault_point("storage:schema-made")
    return True


def _temporary_prefix(path: Path) -> str:
    # Named by host and process, so that a run removes only what a dead process of its own
    # machine left, even in a folder that several machines share.
    return f".{path.name}.{socket.gethostname()}-"


def remove_leftovers(path: Path) -> None:
    """Remove the temporary files that processes killed while making `path` left behind."""
    prefix = _temporary_prefix(path)
    for leftover in path.parent.glob(f"{_glob_escape(prefix)}*.creating"):
        pid = leftover.name.removeprefix(prefix).removesuffix(".creating")
        if pid.isdigit() and not process_alive(int(pid)):
            _remove_with_side_files(leftover)


def _glob_escape(text: str) -> str:
    return "".join(f"[{char}]" if char in "*?[" else char for char in text)


def process_alive(pid: int) -> bool:
    """Whether process `pid` of this machine is still running (this process counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return pid > 0


def _remove_with_side_files(path: Path) -> None:
    for name in ("", *SIDE_FILES):
        Path(f"{path}{name}").unlink(missing_ok=True)


def lock_on_begin(engine) -> None:
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


def use_wal(path: Path) -> None:
    """Put the database `path` in write-ahead-log mode (readers never block the writer)."""
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()


def unwritable(path: Path) -> str | None:
    """Why the search cannot write the database `path` (None: it can, as far as one can tell).

    SQLite writes side files beside the database, so its folder must be writable too.
    """
    if not os.access(path.parent, os.W_OK):
        return f"its folder {path.parent} is read-only"
    if path.exists() and not os.access(path, os.W_OK):
        return "the file is read-only"
    return None
