"""A study stored by an earlier version still opens, exports identically and resumes.

tests/data/old_study/ holds a 200-trial study that `nas.search --dataset digits --trials 200
--budget 2x500` stored at commit e34f29c (before the storage, trial record, Pareto and builder
were consolidated), as a SQL dump, and the files `nas.export` wrote from it then.
"""

from __future__ import annotations

import gzip
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).with_name("data") / "old_study"
STUDY = "inception_to_xception-digits"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def old_storage(tmp_path) -> str:
    """A fresh copy of the old study in a temporary SQLite file; its URL."""
    path = tmp_path / "studies.db"
    with sqlite3.connect(path) as connection:
        connection.executescript(
            gzip.decompress(DATA.joinpath("studies_e34f29c.sql.gz").read_bytes()).decode()
        )
    return f"sqlite:///{path}"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize("which", ["knee", "best", "smallest", "t0"])
def test_an_old_study_exports_the_same_file(old_storage, tmp_path, which):
    pick = ["--trial", "0"] if which == "t0" else ["--pick", which]
    out = tmp_path / "model.py"
    done = run(
        "nas.export", "--study", STUDY, "--storage", old_storage, *pick, "--out", str(out),
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert out.read_text() == DATA.joinpath(f"export_{which}.py.txt").read_text()
