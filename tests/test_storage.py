"""nas.storage: URLs to files, one rule for Optuna storages, both openers, redaction."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from optuna.storages._rdb import models

import nas.storage
from dashboard import callbacks, create_app, layout
from dashboard.__main__ import main as dashboard_main
from dashboard.data import FrameCache
from dashboard.storage import StorageReader
from nas.export import main as export_main
from nas.search import main as search_main
from nas.storage import (
    EMPTY,
    HOW_TO_REACH,
    INVALID,
    MISSING,
    OK,
    OPTUNA_TABLES,
    StorageError,
    StorageStatus,
    check_storage,
    load_study,
    open_read_only,
    open_storage,
    read_only_url,
    redact,
    sqlite_path,
)
from search_spaces import LANDMARKS
from tests.dashboard_fixtures import add_complete_trials, build_study

optuna.logging.set_verbosity(optuna.logging.WARNING)

# Nothing listens on port 9 (discard) of the loopback: connecting fails at once.
SECRET_URL = "postgresql+psycopg://nas:s3cret@127.0.0.1:9/nowhere"


def fingerprint(path: Path):
    return path.read_bytes(), path.stat().st_mtime_ns


def folder_state(folder: Path) -> dict:
    return {path.name: fingerprint(path) for path in folder.iterdir()}


def optuna_study(url: str, name: str = "s") -> None:
    """A study with one finished trial, written by Optuna alone (rollback journal, no WAL)."""
    storage = optuna.storages.RDBStorage(url)
    study = optuna.create_study(study_name=name, storage=storage)
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
    storage.engine.dispose()


# --- URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, name",
    [
        ("sqlite:///a.db?timeout=5", "a.db"),  # the query is no part of the file name
        ("sqlite:///my%20db.db", "my db.db"),  # escapes are decoded
        ("sqlite+pysqlite:///sub/b.db", "sub/b.db"),
    ],
    ids=str,
)
def test_sqlite_path_is_the_file_sqlite_opens(url, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert sqlite_path(url) == tmp_path / name


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "postgresql://u:p@db/nas", "mysql://db/nas"]
)
def test_sqlite_path_is_none_without_a_file(url):
    assert sqlite_path(url) is None
    assert read_only_url(url) == url


def test_a_string_that_is_no_url_is_refused_in_one_line():
    with pytest.raises(StorageError, match="'studies.db' is not a database URL"):
        sqlite_path("studies.db")
    assert check_storage("studies.db").kind == INVALID


def test_the_writer_sets_up_the_file_the_url_names(tmp_path):
    url = f"sqlite:///{tmp_path}/my%20db.db?timeout=5"
    open_storage(url).engine.dispose()
    assert {path.name for path in tmp_path.iterdir()} <= {
        "my db.db",
        "my db.db-wal",
        "my db.db-shm",
    }
    with sqlite3.connect(tmp_path / "my db.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert check_storage(url).kind == EMPTY  # Optuna's tables, no study yet


@pytest.mark.parametrize(
    "url, shown",
    [
        (SECRET_URL, "postgresql+psycopg://nas:***@127.0.0.1:9/nowhere"),
        ("postgresql://u:p@ss/w@db:5432/nas", "postgresql://u:***@db:5432/nas"),
        ("--storage=mysql://u:pw@db/nas", "--storage=mysql://u:***@db/nas"),
        ("postgresql://u@db/nas", "postgresql://u@db/nas"),
        ("sqlite:///studies.db", "sqlite:///studies.db"),
        ("--trials", "--trials"),
    ],
)
def test_redact_hides_the_whole_password_and_nothing_else(url, shown):
    assert redact(url) == shown


# --- one rule: what an Optuna storage is -----------------------------------------------------


def test_the_rule_names_every_table_of_optunas_schema():
    assert set(models.BaseModel.metadata.tables) == OPTUNA_TABLES


def test_check_storage_never_creates_or_changes_files(tmp_path):
    missing = tmp_path / "nothing.db"
    assert check_storage(f"sqlite:///{missing}").kind == MISSING
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    status = check_storage(f"sqlite:///{text}")
    assert status.kind == INVALID and "not a SQLite database" in status.message
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE people (name TEXT)")
    before = folder_state(tmp_path)
    status = check_storage(f"sqlite:///{other}")
    assert status.kind == INVALID and "not an Optuna storage" in status.message
    assert "people" in status.message and status.tables == {"people"}
    assert check_storage(f"sqlite:///{tmp_path}").kind == INVALID  # a folder
    assert folder_state(tmp_path) == before


def test_storages_without_a_study_are_empty(tmp_path):
    blank = tmp_path / "blank.db"
    blank.touch()
    status = check_storage(f"sqlite:///{blank}")
    assert status.kind == EMPTY and status.tables == frozenset()
    no_study = tmp_path / "tables.db"
    optuna.storages.RDBStorage(f"sqlite:///{no_study}").engine.dispose()
    status = check_storage(f"sqlite:///{no_study}")
    assert status.kind == EMPTY and OPTUNA_TABLES <= status.tables
    optuna_study(f"sqlite:///{no_study}")
    assert check_storage(f"sqlite:///{no_study}").kind == OK


def _first_three_tables(path: Path) -> None:
    # What the search alone once checked for: enough for it, not for the dashboard.
    with sqlite3.connect(path) as connection:
        for table in ("studies", "trials", "version_info"):
            connection.execute(f"CREATE TABLE {table} (id INTEGER)")


def _someone_elses_table(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE payroll (name TEXT)")


@pytest.mark.parametrize(
    "make", [_first_three_tables, _someone_elses_table], ids=lambda make: make.__name__[1:]
)
def test_search_dashboard_and_export_refuse_the_same_databases(make, tmp_path, capsys):
    path = tmp_path / "studies.db"
    make(path)
    url = f"sqlite:///{path}"
    before = folder_state(tmp_path)
    status = check_storage(url)
    assert status.kind == INVALID and "not an Optuna storage" in status.message
    with pytest.raises(StorageError, match="refusing to touch it"):
        open_storage(url)  # what the search writes through
    with pytest.raises(StorageError) as refused:
        load_study(url, "s")  # what the exporter reads through
    assert str(refused.value) == status.message
    reader = StorageReader(url)
    assert reader.status() == status and reader.studies() == []
    capsys.readouterr()
    out = tmp_path / "model.py"
    commands = {
        "search": search_main(["--storage", url, "--dataset", "digits", "--budget", "1x200"]),
        "dashboard": dashboard_main(["--storage", url]),
        "export": export_main(
            ["--storage", url, "--study", "s", "--trial", "0", "--out", str(out)]
        ),
    }
    assert commands == {"search": 2, "dashboard": 2, "export": 2}
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 3 and all("is not an Optuna storage" in line for line in errors)
    assert folder_state(tmp_path) == before


def test_the_writer_waits_for_a_schema_another_process_is_creating(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    engine = sqlalchemy.create_engine(url)
    models.BaseModel.metadata.create_all(engine, tables=[models.StudyModel.__table__])
    engine.dispose()
    assert check_storage(url).tables == {"studies"}  # caught half-way through creating
    pauses = []

    def other_process_finishes():
        pauses.append(len(pauses))
        optuna.storages.RDBStorage(url).engine.dispose()

    monkeypatch.setattr(nas.storage, "_pause", other_process_finishes)
    open_storage(url).engine.dispose()
    assert pauses == [0] and check_storage(url).kind == EMPTY


# --- the read-only opener --------------------------------------------------------------------


def test_read_only_refuses_a_missing_storage_and_creates_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'absent.db'}"
    message = f"no storage at {tmp_path / 'absent.db'}: run nas.search first or give --storage"
    for read in (lambda: open_read_only(url), lambda: load_study(url, "s")):
        with pytest.raises(StorageError) as refused:
            read()
        assert str(refused.value) == message
    (tmp_path / "empty.db").touch()
    with pytest.raises(StorageError, match="empty file, not an Optuna storage yet: run nas"):
        load_study(f"sqlite:///{tmp_path / 'empty.db'}", "s")
    assert [path.name for path in tmp_path.iterdir()] == ["empty.db"]
    assert (tmp_path / "empty.db").stat().st_size == 0


def test_read_only_reads_and_leaves_the_folder_as_it_was(tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    optuna_study(url, "a")
    optuna_study(url, "b")
    before = folder_state(tmp_path)
    study = load_study(url, "b")
    assert study.study_name == "b" and len(study.trials) == 1
    with pytest.raises(Exception) as write:
        study.set_user_attr("touched", True)
    assert "readonly database" in str(write.value.__cause__ or write.value.__context__)
    with pytest.raises(StorageError) as unknown:
        load_study(url, "x")
    assert str(unknown.value) == f"no study 'x' in {url}; it holds 'a', 'b'"
    assert folder_state(tmp_path) == before


def test_read_only_never_writes_the_searchs_database(tmp_path):
    path = tmp_path / "studies.db"
    writer = open_storage(f"sqlite:///{path}")
    optuna_study(f"sqlite:///{path}")
    writer.engine.dispose()
    before = fingerprint(path)
    storage = open_read_only(f"sqlite:///{path}")
    assert len(optuna.load_study(study_name="s", storage=storage).trials) == 1
    storage.engine.dispose()
    assert fingerprint(path) == before
    # A WAL database is read through SQLite's side files; nothing else may appear.
    assert {p.name for p in tmp_path.iterdir()} <= {
        "studies.db",
        "studies.db-wal",
        "studies.db-shm",
    }


def test_a_storage_without_studies_names_that(tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    open_storage(url).engine.dispose()
    with pytest.raises(StorageError) as refused:
        load_study(url, "s")
    assert str(refused.value) == f"no study 's' in {url}; it holds no studies"


# --- redaction wherever a URL is shown -------------------------------------------------------


def text(component) -> str:
    return str(component.to_plotly_json())


def test_the_dashboard_header_and_pages_hide_the_password():
    app = create_app(SECRET_URL)
    header = text(app.layout)
    assert "nas:***@127.0.0.1:9/nowhere" in header and "s3cret" not in header
    page = layout.status_page(EMPTY, "", SECRET_URL)
    assert "nas:***@" in text(page) and "s3cret" not in text(page)
    cache = FrameCache(StorageReader(SECRET_URL))
    status = callbacks.poll_view(cache, None)["status"]
    assert status["kind"] == INVALID and "nas:***@" in status["message"]
    page = text(callbacks.route_view(cache, "/", "", status))
    assert "cannot read" in page and "s3cret" not in page


def test_errors_about_a_database_hide_the_password(tmp_path, capsys):
    with pytest.raises(StorageError) as refused:
        load_study(SECRET_URL, "s")
    assert "nas:***@" in str(refused.value) and "s3cret" not in str(refused.value)
    with pytest.raises(StorageError) as refused:
        open_storage(SECRET_URL)
    assert "cannot open storage" in str(refused.value) and "s3cret" not in str(refused.value)
    out = tmp_path / "model.py"
    assert (
        export_main(["--storage", SECRET_URL, "--study", "s", "--trial", "0", "--out", str(out)])
        == 2
    )
    assert dashboard_main(["--storage", SECRET_URL]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2 and all("nas:***@" in line for line in errors)
    assert "s3cret" not in "".join(errors)


# --- browsing leaves the folder as it was ----------------------------------------------------


DEMO_TRIALS = 12 + len(LANDMARKS)  # what build_study writes: the landmarks, then 12 more


def searched_storage(folder: Path) -> str:
    """A study as the search leaves it: written through open_storage (WAL), then closed."""
    url = f"sqlite:///{folder / 'studies.db'}"
    assert len(build_study(url, "demo", count=12)) == DEMO_TRIALS
    open_storage(url).engine.dispose()  # the search's settings: write-ahead logging
    return url


def browse(url: str, out: Path) -> list[int]:
    """What the readers do: the dashboard's reader, its command refusing an option, export."""
    reader = StorageReader(url)
    assert [info.name for info in reader.studies()] == ["demo"]
    assert len(reader.trials("demo")) == DEMO_TRIALS
    reader.close()
    assert len(load_study(url, "demo").trials) == DEMO_TRIALS
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        # It checks the storage, then refuses the port in use (bad options are refused before
        # the storage is looked at).
        refused = dashboard_main(["--storage", url, "--port", port])
    return [
        refused,
        export_main(["--storage", url, "--study", "demo", "--pick", "knee", "--out", str(out)]),
    ]


def test_browsing_leaves_the_folder_exactly_as_it_was(tmp_path, capsys):
    folder = tmp_path / "study"
    folder.mkdir()
    url = searched_storage(folder)
    before = folder_state(folder)
    assert browse(url, tmp_path / "model.py") == [2, 0]
    assert folder_state(folder) == before  # no -wal, no -shm, no file touched
    assert (tmp_path / "model.py").exists()


def test_a_study_in_a_read_only_folder_can_be_browsed(tmp_path, capsys):
    folder = tmp_path / "study"
    folder.mkdir()
    url = searched_storage(folder)
    before = folder_state(folder)
    folder.chmod(0o555)
    try:
        # As root, chmod stops no write: then what shows the folder was left alone is that
        # nothing in it changed (a reader that needs side files creates them there).
        assert browse(url, tmp_path / "model.py") == [2, 0]
        assert folder_state(folder) == before
    finally:
        folder.chmod(0o755)


def test_the_reader_follows_a_search_that_starts_writing_after_it_opened(tmp_path):
    url = searched_storage(tmp_path)
    reader = StorageReader(url)
    assert len(reader.trials("demo")) == DEMO_TRIALS
    add_complete_trials(url, "demo", 3)  # a search goes on, and closes again
    assert len(reader.trials("demo")) == DEMO_TRIALS + 3
    writer = open_storage(url)  # a search that is still running: its commits are in the -wal
    study = optuna.load_study(study_name="demo", storage=writer)
    study.add_trial(reader.trials("demo")[-1])
    assert Path(f"{url.removeprefix('sqlite:///')}-wal").exists()
    assert len(reader.trials("demo")) == DEMO_TRIALS + 4
    reader.close()
    writer.engine.dispose()


# --- storage URLs a search cannot use --------------------------------------------------------


@pytest.mark.parametrize(
    "url, workers, message",
    [
        ("sqlite:///", "1", "'sqlite:///' names no database file: give one, e.g. sqlite:///"),
        ("sqlite:///:memory:", "2", "'sqlite:///:memory:' is a database in memory, and each"),
        ("sqlite://", "3", "'sqlite://' is a database in memory, and each of the 3 worker"),
    ],
)
def test_the_search_refuses_a_url_without_a_file_it_can_share(
    url, workers, message, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    code = search_main(
        ["--storage", url, "--workers", workers, "--dataset", "digits", "--budget", "1x200"]
    )
    errors = capsys.readouterr().err.splitlines()
    assert code == 2 and len(errors) == 1 and errors[0].startswith(f"error: {message}")
    assert list(tmp_path.iterdir()) == []


def test_the_search_refuses_a_storage_in_a_read_only_folder(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "study"
    folder.mkdir()
    url = searched_storage(folder)
    before = folder_state(folder)
    folder.chmod(0o555)
    if os.geteuid() == 0:  # root writes anyway: the folder looks read-only as to anyone else
        real_access = os.access
        monkeypatch.setattr(
            os, "access", lambda path, mode: Path(path) != folder and real_access(path, mode)
        )
    try:
        code = search_main(["--storage", url, "--dataset", "digits", "--budget", "1x200"])
    finally:
        folder.chmod(0o755)
    errors = capsys.readouterr().err.splitlines()
    assert code == 2 and len(errors) == 1
    assert errors[0] == (
        f"error: cannot write {folder / 'studies.db'}: its folder {folder} is read-only; give a "
        "--storage in a writable folder (python -m dashboard and nas.export can still read it "
        "where it is)"
    )
    assert folder_state(folder) == before


# --- a database server that does not answer --------------------------------------------------


def test_readers_name_an_unreachable_server_and_what_to_do(tmp_path):
    env = {**os.environ, "NAS_NO_DOWNLOAD": "1"}
    # The dashboard is given a port in use: should it pass the storage check, it stops there
    # instead of serving.
    taken = socket.create_server(("127.0.0.1", 0))
    commands = {
        "export": ["nas.export", "--study", "s", "--trial", "0", "--out", "m.py"],
        "dashboard": ["dashboard", "--port", str(taken.getsockname()[1])],
    }
    for command in commands.values():
        done = subprocess.run(
            [sys.executable, "-m", *command, "--storage", SECRET_URL],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            env=env,
        )
        errors = done.stderr.splitlines()
        assert done.returncode == 2 and len(errors) == 1, done.stderr
        assert errors[0].startswith("error: cannot read postgresql+psycopg://nas:***@127.0.0.1:9/")
        assert "Connection refused" in errors[0] and errors[0].endswith(HOW_TO_REACH)
        assert "s3cret" not in errors[0]
    taken.close()
    assert list(tmp_path.iterdir()) == []


def test_a_server_lost_after_the_check_is_named_not_optunas_commit_text(monkeypatch):
    # The server answered the check, then went away before the study was read.
    monkeypatch.setattr(nas.storage, "check_storage", lambda url: StorageStatus(OK, url))
    with pytest.raises(StorageError) as refused:
        load_study(SECRET_URL, "s")
    message = str(refused.value)
    assert message.startswith("cannot read storage postgresql+psycopg://nas:***@127.0.0.1:9/")
    assert "Connection refused" in message and message.endswith(HOW_TO_REACH)
    assert "invalid data" not in message and "\n" not in message
