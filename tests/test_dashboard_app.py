"""The app factory, the callbacks' view functions, and the command line."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest
from optuna.trial import TrialState

from dashboard import callbacks, create_app
from dashboard.__main__ import main
from dashboard.data import FrameCache
from dashboard.layout import CREATE_COMMAND
from dashboard.plot_data import fronts_data, spectrum_data
from dashboard.storage import StorageReader
from tests.dashboard_fixtures import build_study, shared_study


@pytest.fixture(scope="session")
def demo_url(tmp_path_factory):
    return shared_study(tmp_path_factory, count=30, latency=True, running=1)


@pytest.fixture
def cache(demo_url):
    return FrameCache(StorageReader(demo_url))


def fingerprint(path):
    return path.read_bytes(), path.stat().st_mtime_ns


def ids(component) -> set[str]:
    """Every component id in a layout tree."""
    found = set()
    stack = [component]
    while stack:
        node = stack.pop()
        if isinstance(node, (list, tuple)):
            stack.extend(node)
            continue
        if getattr(node, "id", None):
            found.add(node.id)
        children = getattr(node, "children", None)
        if children is not None and not isinstance(children, str):
            stack.append(children)
    return found


def text(component) -> str:
    return str(component.to_plotly_json())


def test_poll_picks_the_latest_study_and_versions_it(cache):
    result = callbacks.poll_view(cache, None)
    assert result["status"]["kind"] == "ok"
    assert result["options"][0]["value"] == "demo"
    assert "inception_to_xception" in result["options"][0]["label"]
    assert result["value"] == ["demo"]
    assert result["versions"]["demo"].startswith("38/")  # 7 landmarks + 30 + 1 running
    assert "38 trials" in result["live"]
    assert callbacks.poll_view(cache, ["demo"])["versions"] == result["versions"]


def test_missing_storage_shows_the_command_then_the_study_once_it_exists(tmp_path):
    path = tmp_path / "later.db"
    cache = FrameCache(StorageReader(f"sqlite:///{path}"))
    result = callbacks.poll_view(cache, None)
    assert result["status"]["kind"] == "missing" and result["options"] == []
    page = callbacks.route_view(cache, "/", "", result["status"])
    assert CREATE_COMMAND in text(page)
    assert not path.exists()

    build_study(f"sqlite:///{path}", "late", count=3)
    result = callbacks.poll_view(cache, None)
    assert result["status"]["kind"] == "ok" and result["value"] == ["late"]
    assert "fronts-graph" in ids(callbacks.route_view(cache, "/", "", result["status"]))


def test_a_foreign_database_gets_an_error_page_and_stays_untouched(tmp_path):
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE orders (id INTEGER)")
    before = fingerprint(path)
    app = create_app(f"sqlite:///{path}")
    cache = FrameCache(StorageReader(f"sqlite:///{path}"))
    result = callbacks.poll_view(cache, None)
    assert result["status"]["kind"] == "invalid"
    page = text(callbacks.route_view(cache, "/", "", result["status"]))
    assert "cannot be read" in page and "orders" in page and "changed nothing" in page
    assert app.server.test_client().get("/").status_code == 200
    assert fingerprint(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shop.db"]


def test_routes(cache):
    status = {"kind": "ok", "message": ""}
    assert "spectrum-graph" in ids(callbacks.route_view(cache, "/spectrum", "", status))
    assert "progress-graph" in ids(callbacks.route_view(cache, "/progress", "", status))
    page = callbacks.route_view(cache, "/importance", "", status)
    assert "importance-content" in ids(page)
    assert "no page at /nope" in text(callbacks.route_view(cache, "/nope", "", status))
    missing = callbacks.route_view(cache, "/trial", "?study=demo&number=999", status)
    assert "no trial 999" in text(missing)
    assert "a trial URL" in text(callbacks.route_view(cache, "/trial", "?x=1", status))


def test_clicking_a_point_opens_its_trial_url():
    click = {"points": [{"customdata": ["my study", 12], "x": 1, "y": 0.5}]}
    assert callbacks.trial_href(click) == "/trial?study=my+study&number=12"
    assert callbacks.parse_trial_search("?study=my+study&number=12") == ("my study", 12)
    assert callbacks.trial_href(None) is None
    assert callbacks.trial_href({"points": [{"x": 1}]}) is None


def test_trial_page_has_diagram_costs_curve_and_download(cache):
    page = callbacks.trial_view(cache, "demo", 5)
    html = text(page)
    assert "Trial 5 of demo" in html and "stage 3" in html and "depthwise" in html
    assert "stage1.block1" in html and "total" in html and "multiply-accumulates" in html
    assert {"curve", "download-button", "download"} <= ids(page)


def test_figure_views_follow_the_selection(cache):
    figure = callbacks.fronts_view(cache, ["demo"], "params")
    assert "parameters" in figure.layout.xaxis.title.text
    prepared = fronts_data(cache.frame(["demo"]), "params")
    assert list(figure.data[0].x) == prepared.studies[0].complete.x.tolist()
    assert callbacks.fronts_view(cache, [], "macs").layout.annotations
    spectrum = callbacks.spectrum_view(cache, ["demo"], "segments")
    order = spectrum_data(cache.frame(["demo"]), "segments").order
    assert spectrum.data and tuple(spectrum.layout.xaxis.categoryarray) == order
    assert callbacks.spectrum_view(cache, ["demo"], None).layout.xaxis3.title.text.startswith(
        "decoupling degree"
    )
    figure, table = callbacks.progress_view(cache, ["demo"])
    assert figure.data and "demo" in text(table)
    figure, table = callbacks.progress_view(cache, [])  # every study unpicked
    assert not figure.data and "demo" not in text(table)
    memo: dict = {}
    children = callbacks.importance_view(cache, ["demo"], memo)
    assert "demo" in memo and any(type(child).__name__ == "Graph" for child in children)
    assert callbacks.importance_view(cache, ["demo"], memo) is not None  # served from memo


def test_download_serves_the_exporters_file_of_the_trial(cache, monkeypatch):
    data, error = callbacks.download_view(cache, "?study=demo&number=5")
    assert error == "" and data["filename"] == "demo_trial5.py"
    namespace: dict = {}
    exec(compile(data["content"], "<download>", "exec"), namespace)
    assert namespace["ARCH"] == cache.reader.study("demo").trials[5].user_attrs["arch"]

    calls = []
    monkeypatch.setattr(
        callbacks, "code_for_trial", lambda study, number: calls.append((study, number)) or "x"
    )
    data, error = callbacks.download_view(cache, "?study=demo&number=3")
    assert calls == [(cache.reader.study("demo"), 3)] and data["content"] == "x"


def test_download_errors_are_one_line_reasons(cache):
    stopped = next(t for t in cache.reader.trials("demo") if t.state != TrialState.COMPLETE)
    data, error = callbacks.download_view(cache, f"?study=demo&number={stopped.number}")
    assert data is callbacks.no_update and error.startswith("export failed: ")
    assert f"trial {stopped.number}" in error and len(error.splitlines()) == 1
    _, error = callbacks.download_view(cache, "?study=nope&number=0")
    assert error == "export failed: no study 'nope' in the storage"
    assert callbacks.download_view(cache, "?study=demo")[1] == "no trial in the URL"


def test_the_app_always_offers_the_download(demo_url):
    app = create_app(demo_url)
    assert any("download.data" in key for key in app.callback_map)
    for graph, control in (("fronts-graph", "cost-axis"), ("spectrum-graph", "spectrum-by")):
        inputs = [item["id"] for item in app.callback_map[f"{graph}.figure"]["inputs"]]
        assert inputs == ["versions", "studies", control]
        clicks = [
            key for key, value in app.callback_map.items() if value["inputs"][0]["id"] == graph
        ]
        assert len(clicks) == 1 and clicks[0].startswith("url.href")
    assert {"url", "poll", "studies", "page", "versions"} <= ids(app.layout)


def test_cli_refuses_a_text_file_in_one_line(tmp_path, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    before = fingerprint(path)
    assert main(["--storage", f"sqlite:///{path}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "not a SQLite database" in err
    assert fingerprint(path) == before


def test_python_m_dashboard_exits_2_on_a_foreign_database(tmp_path):
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE orders (id INTEGER)")
    before = fingerprint(path)
    result = subprocess.run(
        [sys.executable, "-m", "dashboard", "--storage", f"sqlite:///{path}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "not an Optuna storage" in result.stderr
    assert fingerprint(path) == before


def test_a_busy_storage_keeps_the_page_and_retries(cache, monkeypatch):
    from sqlalchemy.exc import OperationalError

    def locked():
        raise OperationalError("SELECT", {}, Exception("database is locked"))

    monkeypatch.setattr(cache, "infos", locked)
    result = callbacks.poll_view(cache, ["demo"])
    assert result["versions"] is None and result["options"] is None
    assert "database is locked" in result["live"]
    assert callbacks._changed(None, {"demo": "1"}) is callbacks.no_update
