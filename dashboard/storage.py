"""Open an Optuna storage for reading only, and keep what was read.

The dashboard never creates tables or files: a sqlite URL is checked on disk first (a missing
file stays missing) and then opened through SQLite's read-only mode, so not even a stray
journal can change it. Other SQLAlchemy URLs (PostgreSQL, MySQL) are inspected for Optuna's
tables before Optuna is let near them, and Optuna is told to skip table creation.
"""

from __future__ import annotations

import logging
import threading
import warnings
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote

import optuna
import sqlalchemy
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial

SQLITE_MAGIC = b"SQLite format 3\x00"
# The tables any Optuna RDB storage has; a database without them is someone else's.
OPTUNA_TABLES = frozenset(
    {"studies", "study_directions", "study_user_attributes", "trials", "trial_values",
     "trial_params", "trial_user_attributes", "version_info"}
)  # fmt: skip
CREATE_COMMAND = "python -m nas.search --space inception_to_xception --trials 200"

OK, MISSING, EMPTY, INVALID = "ok", "missing", "empty", "invalid"


class StorageStatus(NamedTuple):
    """What a storage URL points at: ok, missing (no file yet), empty (no study), invalid."""

    kind: str
    message: str


class StudyInfo(NamedTuple):
    """A study's name, directions and the user attributes the search writes."""

    name: str
    directions: tuple[str, ...]
    objectives: tuple[str, ...]
    attrs: dict


def sqlite_path(url: str) -> Path | None:
    """The database file of a sqlite URL (absolute), or None for other URLs and :memory:."""
    parsed = sqlalchemy.engine.make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database).expanduser().resolve()


def read_only_url(url: str) -> str:
    """The URL to open: a sqlite file in SQLite's read-only URI mode, other URLs unchanged."""
    path = sqlite_path(url)
    if path is None:
        return url
    return f"sqlite:///file:{quote(str(path))}?mode=ro&uri=true"


def check_storage(url: str) -> StorageStatus:
    """Look at a storage without changing it: is it an Optuna database with studies in it?"""
    try:
        path = sqlite_path(url)
    except sqlalchemy.exc.ArgumentError:
        return StorageStatus(INVALID, f"{url!r} is not a database URL (e.g. sqlite:///studies.db)")
    if path is not None:
        if not path.exists():
            return StorageStatus(MISSING, f"{path} does not exist yet")
        if path.is_dir():
            return StorageStatus(INVALID, f"{path} is a directory, not an Optuna database")
        if path.stat().st_size == 0:
            return StorageStatus(EMPTY, f"{path} is empty")
        with path.open("rb") as file:
            if file.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
                return StorageStatus(INVALID, f"{path} is not an SQLite database")
    engine = None
    try:
        engine = sqlalchemy.create_engine(read_only_url(url))
        tables = set(sqlalchemy.inspect(engine).get_table_names())
        if not tables:
            return StorageStatus(EMPTY, "the database has no tables yet")
        missing = OPTUNA_TABLES - tables
        if missing:
            return StorageStatus(
                INVALID,
                f"{url} is not an Optuna storage: it has tables {', '.join(sorted(tables))} "
                f"but not {', '.join(sorted(missing))}",
            )
        with engine.connect() as connection:
            studies = connection.execute(sqlalchemy.text("SELECT COUNT(*) FROM studies"))
            if studies.scalar() == 0:
                return StorageStatus(EMPTY, "the storage has no study yet")
    except ImportError as error:
        return StorageStatus(INVALID, f"no database driver for {url}: {error}")
    except sqlalchemy.exc.SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or error).splitlines()[0]
        return StorageStatus(INVALID, f"cannot read {url}: {reason}")
    finally:
        if engine is not None:
            engine.dispose()
    return StorageStatus(OK, url)


def open_storage(url: str) -> RDBStorage:
    """An Optuna storage on `url` that neither creates tables nor (for sqlite) writes at all.

    Call `check_storage` first: this one assumes an Optuna database is there.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return RDBStorage(read_only_url(url), skip_table_creation=True)


def _study_info(frozen) -> StudyInfo:
    directions = tuple(direction.name.lower() for direction in frozen.directions)
    objectives = frozen.user_attrs.get("objectives") or ["val_acc", "macs", "latency_ms"]
    objectives = tuple(objectives)[: len(directions)]
    return StudyInfo(frozen.study_name, directions, objectives, dict(frozen.user_attrs))


class StorageReader:
    """The app's one handle on the storage: status, studies, and trials read incrementally.

    Trials come through Optuna's cached storage (what `optuna.load_study` gives), which re-reads
    only unfinished and new trials, so polling an unchanged study of thousands costs one query.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        self._storage: RDBStorage | None = None
        self._studies: dict[str, optuna.Study] = {}
        self._status = StorageStatus(MISSING, "not checked yet")
        self._file_stamp: tuple | None = None

    def _stamp(self) -> tuple | None:
        path = sqlite_path(self.url) if self._status.kind != INVALID else None
        if path is None or not path.exists():
            return None
        stat = path.stat()
        return (stat.st_ino, stat.st_size > 0)

    def status(self) -> StorageStatus:
        """The storage's status, re-checked unless it was fine and its file is the same one."""
        with self._lock:
            stamp = self._stamp()
            if self._status.kind == OK and stamp == self._file_stamp:
                return self._status
            self._status = check_storage(self.url)
            self._file_stamp = self._stamp()
            self._studies.clear()
            if self._storage is not None:
                self._storage.engine.dispose()
                self._storage = None
            if self._status.kind == OK:
                try:
                    self._storage = open_storage(self.url)
                except Exception as error:  # noqa: BLE001 - any failure here is a bad storage
                    self._status = StorageStatus(INVALID, f"cannot open {self.url}: {error}")
            return self._status

    def studies(self) -> list[StudyInfo]:
        """Every study in the storage, oldest first (an empty list unless the status is ok)."""
        if self.status().kind != OK or self._storage is None:
            return []
        return [_study_info(frozen) for frozen in self._storage.get_all_studies()]

    def study(self, name: str) -> optuna.Study:
        """The Optuna study `name` (KeyError if the storage has none of that name)."""
        if self._storage is None:
            self.status()
        with self._lock:
            if name not in self._studies:
                if self._storage is None:
                    raise KeyError(name)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    self._studies[name] = optuna.load_study(study_name=name, storage=self._storage)
            return self._studies[name]

    def trials(self, name: str) -> list[FrozenTrial]:
        """All trials of study `name`, in number order; the same objects while unchanged."""
        try:
            return self.study(name).get_trials(deepcopy=False)
        except KeyError:
            # The study was deleted (and maybe created again under its name): start afresh.
            with self._lock:
                self._studies.pop(name, None)
            return self.study(name).get_trials(deepcopy=False)

    def close(self) -> None:
        with self._lock:
            if self._storage is not None:
                self._storage.engine.dispose()
            self._storage = None
            self._studies.clear()
