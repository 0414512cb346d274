"""A study stored by an earlier version still opens, exports identically and resumes.

tests/data/old_study/ holds a 200-trial study that `nas.search --dataset digits --trials 200
--budget 2x500` stored at commit e34f29c (before the storage, trial record, Pareto and builder
were consolidated), as a SQL dump, and the files `nas.export` wrote from it then.
"""

from __future__ import annotations

import datetime
import gzip
import importlib.util
import os
import re
import sqlite3
import subprocess
import sys
import types
from pathlib import Path

import pytest

from nas import Arch, decoupling_degree

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


def undated(docstring: str) -> str:
    """A docstring with its export date and its decoupling degree blanked out: the date is the
    export's, and the degree's definition changed after the old files were written."""
    docstring = re.sub(r"exported: \d{4}-\d{2}-\d{2} by", "exported: <date> by", docstring)
    return re.sub(r"decoupling: [0-9.]+ ", "decoupling: <degree> ", docstring)


def load_module(path: Path, name: str) -> types.ModuleType:
    """An exported file as a module (it needs only torch)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("which", ["knee", "best", "smallest", "t0"])
def test_an_old_study_exports_the_same_network(old_storage, tmp_path, which):
    """Same pick, provenance, constants and network as the file written before the change.

    The copied builder source may be reorganized (it now carries the layer plan), so the files
    are compared by what they say and build, not byte for byte.
    """
    import torch

    pick = ["--trial", "0"] if which == "t0" else ["--pick", which]
    out = tmp_path / "model.py"
    done = run(
        "nas.export", "--study", STUDY, "--storage", old_storage, *pick, "--out", str(out),
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    before_path = tmp_path / "before.py"
    before_path.write_text(DATA.joinpath(f"export_{which}.py.txt").read_text())
    before, after = load_module(before_path, "before"), load_module(out, "after")
    # The trial, its pick, accuracy and command; the export date is today's, not the fixture's,
    # and the decoupling degree today's definition. A pick now also says what it judged by:
    # an old study holds no confirmation runs.
    picked_on = "    picked on: the search's single proxy run\n"
    assert (picked_on in after.__doc__) == (which != "t0")
    assert undated(after.__doc__.replace(picked_on, "")) == undated(before.__doc__)
    assert f"exported: {datetime.date.today().isoformat()} by" in after.__doc__
    assert f"decoupling: {decoupling_degree(Arch.parse(after.ARCH)):.3f} " in after.__doc__
    for constant in ("ARCH", "INPUT_SHAPE", "NUM_CLASSES", "MACS", "PARAMS", "STAGES"):
        assert getattr(after, constant) == getattr(before, constant), constant
    torch.manual_seed(0)
    old_net, new_net = before.build_model().eval(), after.build_model().eval()
    old_state, new_state = old_net.state_dict(), new_net.state_dict()
    assert {k: v.shape for k, v in new_state.items()} == {k: v.shape for k, v in old_state.items()}
    new_net.load_state_dict(old_state)
    images = torch.randn(4, *before.INPUT_SHAPE)
    with torch.no_grad():
        assert torch.equal(new_net(images), old_net(images))


def test_an_old_study_opens_in_the_dashboard(old_storage):
    from dashboard import callbacks
    from dashboard.data import FrameCache
    from dashboard.plot_data import fronts_data
    from dashboard.storage import StorageReader

    cache = FrameCache(StorageReader(old_storage))
    frame = cache.frame([STUDY])
    assert len(frame) == 201
    data = fronts_data(frame, "macs")
    (study,) = data.studies
    assert study.study == STUDY and len(study.complete.x) == 39
    # The front, worked out here by brute force from the stored values and MACs.
    trials = cache.reader.trials(STUDY)
    done = [(t.number, t.values[0], t.user_attrs["macs"]) for t in trials if t.values]
    front = sorted(
        (macs, number)
        for number, acc, macs in done
        if not any(a >= acc and m <= macs and (a, m) != (acc, macs) for _, a, m in done)
    )
    assert list(study.front.numbers) == [number for _, number in front]
    assert set(data.landmarks.names) == {
        t.user_attrs["landmark"] for t in trials if t.values and "landmark" in t.user_attrs
    }
    page = str(callbacks.trial_view(cache, STUDY, 168).to_plotly_json())
    assert "Trial 168 of inception_to_xception-digits" in page and "stage 3" in page
    cache.reader.close()


def test_an_old_study_resumes(old_storage, tmp_path):
    from nas.storage import load_study

    before = {t.number: (t.state, t.values) for t in load_study(old_storage, STUDY).trials}
    done = run(
        "nas.search", "--dataset", "digits", "--budget", "2x500", "--trials", "201",
        "--storage", old_storage, "--device", "cpu", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "200/201 trials already done" in done.stderr
    trials = load_study(old_storage, STUDY).trials
    assert {t.number: (t.state, t.values) for t in trials[: len(before)]} == before
    new = trials[len(before) :]
    assert len(new) == 1 and new[0].state.is_finished() and new[0].user_attrs["arch"]
