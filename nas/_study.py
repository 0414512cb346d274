"""Opening storages and studies safely: validate first, create or write only when all is well."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

SQLITE_HEADER = b"SQLite format 3\x00"
# Tables an Optuna RDB storage holds; a SQLite file with tables but none of these is foreign.
OPTUNA_TABLES = {"studies", "trials", "version_info"}
# How long a SQLite writer waits for the lock before failing: parallel workers queue up here
# instead of failing with "database is locked".
SQLITE_BUSY_TIMEOUT_S = 120


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
    and parallel workers coexist) and a long busy timeout.
    """
    path = sqlite_path(url)
    engine_kwargs: dict = {}
    if path is not None:
        check_sqlite_file(path)
        engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    elif url.startswith("postgresql"):
        engine_kwargs = {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    try:
        storage = RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_s,
            grace_period=None if heartbeat_s is None else 4 * heartbeat_s,
        )
    except Exception as error:  # SQLAlchemy raises many kinds; the user needs one line.
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StorageError(f"cannot open storage {redact(url)}: {reason}") from None
    if path is not None:
        with sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S) as connection:
            connection.execute("PRAGMA journal_mode=WAL")
    return storage


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        user = credentials.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def existing_study(storage: RDBStorage, name: str) -> optuna.Study | None:
    """The study called `name`, or None when the storage has none by that name."""
    names = {summary.study_name for summary in optuna.get_all_study_summaries(storage)}
    if name not in names:
        return None
    return optuna.load_study(study_name=name, storage=storage)


def check_compatible(study: optuna.Study, wanted: dict) -> None:
    """Refuse to continue a study that was started with another space, dataset or objectives."""
    stored = study.user_attrs
    for key in ("space", "dataset", "objectives"):
        if key in stored and stored[key] != wanted[key]:
            raise StorageError(
                f"study {study.study_name!r} was run with {key}={stored[key]!r}, not "
                f"{wanted[key]!r}: give another --study name or the same {key}"
            )


def counts_toward_target(trial: FrozenTrial) -> bool:
    """Finished trials that count for --trials: complete or early-stopped, not skipped."""
    if trial.state == TrialState.COMPLETE:
        return True
    return trial.state == TrialState.PRUNED and "constraint" not in trial.user_attrs


def finished_count(study: optuna.Study) -> int:
    states = (TrialState.COMPLETE, TrialState.PRUNED)
    return sum(counts_toward_target(t) for t in study.get_trials(deepcopy=False, states=states))
