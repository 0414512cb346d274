"""End to end in headless Chromium: the fronts, a live update, a click to a trial page, the
trials page (sort, filter, CSV, a row click, parallel coordinates) and the Confirmed page.

Screenshots go to a temporary folder; with NAS_UPDATE_SCREENSHOTS=1 they refresh
docs/screenshots/main.png, trial.png, trials.png and confirmed.png. Needs the system Chromium
and its driver (Debian: chromium, chromium-driver, which .ci/run installs); nothing is
downloaded.
"""

from __future__ import annotations

import csv
import os
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from werkzeug.serving import make_server

from dashboard import create_app
from search_spaces import LANDMARKS
from tests.confirm_study import SMALL, confirmed_study, store_runs
from tests.dashboard_fixtures import MARKUP, add_complete_trials, add_trial, build_study

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
SCREENSHOTS = (
    DOCS_SCREENSHOTS
    if os.environ.get("NAS_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.mkdtemp(prefix="nas-screenshots-"))
)
GRAPH = "#fronts-graph .js-plotly-plot"
TABLE = "#trials-table"

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    raise RuntimeError(
        "the browser test needs /usr/bin/chromium and /usr/bin/chromedriver: "
        "apt-get install chromium chromium-driver (bash .ci/run does)"
    )

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@contextmanager
def serving(url: str):
    """The app on `url`, served from a thread; yields its address."""
    server = make_server("127.0.0.1", 0, create_app(url, poll_seconds=1.0).server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A study of 120 trials in ./studies.db (of a temporary folder), served from a thread."""
    monkeypatch.chdir(tmp_path)
    url = "sqlite:///studies.db"
    trials = build_study(url, "live", count=120, seed=1, latency=True)
    with serving(url) as address:
        yield url, trials, address


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1400,900",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def trace_lengths(driver) -> dict[str, int]:
    """Points per trace name, as plotly drew them (decoded arrays live in _fullData)."""
    return driver.execute_script(
        f"const g = document.querySelector('{GRAPH}');"
        "if (!g || !g._fullData) return {};"
        "return Object.fromEntries(g._fullData.map(t => [t.name, t.x ? t.x.length : 0]));"
    )


def complete_points(driver) -> int:
    return next((n for name, n in trace_lengths(driver).items() if name.startswith("complete")), 0)


def screenshot(driver, name: str) -> None:
    """The whole page at 1400 px wide (the viewport grows to the page's height)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    metrics = {"width": 1400, "height": min(height, 2400), "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    time.sleep(0.5)  # plotly redraws for the new size
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / name))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_fronts_live_update_and_trial_page(served, browser):
    url, trials, address = served
    wait = WebDriverWait(browser, 40)
    n_complete = sum(trial.state.name == "COMPLETE" for trial in trials)

    browser.get(address + "/")
    wait.until(lambda d: complete_points(d) == n_complete)
    labels = browser.execute_script(
        f"const g = document.querySelector('{GRAPH}');"
        "return g._fullData.filter(t => t.name === 'landmarks')[0].text;"
    )
    assert list(labels) == list(LANDMARKS)
    drawn = {e.text for e in browser.find_elements(By.CSS_SELECTOR, f"{GRAPH} .textpoint text")}
    assert set(LANDMARKS) <= drawn
    wait.until(lambda d: "live ·" in d.find_element(By.ID, "live").text)
    screenshot(browser, "main.png")

    # A running search stores three more trials: they appear without a reload.
    browser.execute_script("window.notReloaded = true;")
    add_complete_trials(url, "live", 3)
    wait.until(lambda d: complete_points(d) == n_complete + 3)
    assert browser.execute_script("return window.notReloaded === true;")

    # Click a drawn point of the complete trace and land on that trial's page.
    point = browser.find_elements(By.CSS_SELECTOR, f"{GRAPH} .scatterlayer .trace .points path")
    ActionChains(browser).move_to_element(point[len(point) // 2]).click().perform()
    wait.until(lambda d: urlparse(d.current_url).path == "/trial")
    query = parse_qs(urlparse(browser.current_url).query)
    assert query["study"] == ["live"]
    number = int(query["number"][0])
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".trial h2"))
    assert browser.find_element(By.CSS_SELECTOR, ".trial h2").text.startswith(
        f"Trial {number} of live"
    )
    assert browser.find_elements(By.CSS_SELECTOR, ".stage-card")
    assert "total" in browser.find_element(By.CSS_SELECTOR, ".costs").text

    # The Inception-v3 landmark (trial 3) makes the most telling diagram for the docs.
    browser.get(address + "/trial?study=live&number=3")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".stage-card .branch")) == 12)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#curve .js-plotly-plot"))
    # A fresh load picks the latest study again (nothing stale from the first visit).
    wait.until(lambda d: "130 trials" in d.find_element(By.ID, "live").text)
    screenshot(browser, "trial.png")
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not [e for e in severe if "favicon" not in e["message"]], severe


def column_cells(driver, column: str) -> list[str]:
    """The shown page's cells of one trials-table column, as the browser renders them."""
    return driver.execute_script(
        f"return [...document.querySelectorAll('{TABLE} td[data-dash-column=\"{column}\"]')]"
        ".map(td => td.innerText.trim());"
    )


def figure_types(driver, graph: str) -> list[str]:
    return driver.execute_script(
        f"const g = document.querySelector('#{graph} .js-plotly-plot');"
        "return g && g._fullData ? g._fullData.map(t => t.type) : [];"
    )


def test_trials_page_sort_filter_csv_and_row_click(served, browser, tmp_path):
    _, trials, address = served
    wait = WebDriverWait(browser, 40)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    browser.get(address + "/trials")
    wait.until(lambda d: len(column_cells(d, "number")) == 50)  # one page of 127 trials
    assert column_cells(browser, "number")[:3] == ["0", "1", "2"]
    assert (
        browser.find_element(By.ID, "trials-count").text
        == f"{len(trials)} of {len(trials)} trials"
    )
    # The parallel coordinates: one axis per varying parameter, then the accuracy.
    wait.until(lambda d: figure_types(d, "parcoords-graph") == ["parcoords"])
    axes = browser.execute_script(
        "const g = document.querySelector('#parcoords-graph .js-plotly-plot');"
        "return g._fullData[0].dimensions.map(d => d.label);"
    )
    assert axes[-1] == "validation accuracy" and "s1_segments" in axes
    assert browser.find_elements(By.CSS_SELECTOR, "#parcoords-graph .parcoords .axis")
    wait.until(lambda d: figure_types(d, "curves-graph"))

    # Sort by validation accuracy (the header's arrow), on the server: the best or worst first.
    complete = sorted(t.values[0] for t in trials if t.state.name == "COMPLETE")
    browser.find_element(
        By.CSS_SELECTOR, f'{TABLE} th[data-dash-column="val_acc"] .column-header--sort'
    ).click()
    shown = lambda d: [float(v) for v in column_cells(d, "val_acc") if v]  # noqa: E731
    wait.until(
        lambda d: shown(d) and shown(d)[0] in (round(complete[0], 4), round(complete[-1], 4))
    )
    first = shown(browser)
    assert first == sorted(first) or first == sorted(first, reverse=True)
    screenshot(browser, "trials.png")

    # Filter the state column: only pruned trials, counted over every page.
    pruned = sum(t.state.name == "PRUNED" for t in trials)
    cell = browser.find_element(
        By.CSS_SELECTOR, f'{TABLE} th.dash-filter[data-dash-column="state"] input'
    )
    cell.send_keys("prun", Keys.ENTER)
    wait.until(lambda d: set(column_cells(d, "state")) == {"PRUNED"})
    wait.until(
        lambda d: d.find_element(By.ID, "trials-count").text == f"{pruned} of {len(trials)} trials"
    )

    # The CSV holds the filtered table, every page of it.
    browser.find_element(By.ID, "trials-csv-button").click()
    wait.until(lambda d: [p for p in downloads.iterdir() if p.suffix == ".csv"])
    written = next(p for p in downloads.iterdir() if p.suffix == ".csv")
    with written.open(newline="") as handle:
        lines = list(csv.DictReader(handle))
    assert len(lines) == pruned and {line["state"] for line in lines} == {"PRUNED"}

    # A click on a row opens its trial's page, which lists the trial's parameters.
    number = column_cells(browser, "number")[0]
    browser.find_element(By.CSS_SELECTOR, f'{TABLE} td[data-dash-column="number"]').click()
    wait.until(lambda d: urlparse(d.current_url).path == "/trial")
    assert parse_qs(urlparse(browser.current_url).query) == {"study": ["live"], "number": [number]}
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".trial .params"))
    assert "s1_segments" in browser.find_element(By.CSS_SELECTOR, ".trial .params").text
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not [e for e in severe if "favicon" not in e["message"]], severe


def test_markup_in_stored_strings_is_drawn_as_text(tmp_path, browser):
    """A study name, landmark and architecture holding Plotly markup: no link, no big text."""
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    build_study(url, MARKUP, count=10)
    add_trial(url, MARKUP, {"arch": str(LANDMARKS["xception"]), "macs": 3e6, "landmark": MARKUP})
    add_trial(url, MARKUP, {"arch": MARKUP, "macs": 3e6})  # unreadable: named in the note
    with serving(url) as address:
        browser.get(address + "/")
        wait = WebDriverWait(browser, 40)
        wait.until(lambda d: complete_points(d) > 0)
        # Hover the star whose label is the markup, so that its hover label is drawn too.
        hovered = browser.execute_script(
            f"const g = document.querySelector('{GRAPH}');"
            "const curve = g._fullData.findIndex(t => t.name === 'landmarks');"
            "const point = g._fullData[curve].text.findIndex(t => t.includes('evil.example'));"
            "Plotly.Fx.hover(g, [{curveNumber: curve, pointNumber: point}]);"
            "return point;"
        )
        assert hovered >= 0
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f"{GRAPH} .hoverlayer .hovertext"))
        drawn = browser.execute_script(
            f"const g = document.querySelector('{GRAPH}');"
            "return {"
            " links: [...g.querySelectorAll('a')].map(a => a.outerHTML),"
            " big: [...g.querySelectorAll('[style*=\"60px\"]')].map(e => e.outerHTML),"
            " labels: [...g.querySelectorAll('.textpoint text')].map(e => e.textContent),"
            " hover: g.querySelector('.hoverlayer').textContent,"
            " title: g.querySelector('.gtitle').textContent};"
        )
        # The trials table shows the stored strings as typed, as text.
        browser.get(address + "/trials")
        wait.until(lambda d: len(column_cells(d, "number")) == 19)  # 17 built, 2 added
        table = browser.execute_script(
            f"const t = document.querySelector('{TABLE}');"
            "return {links: [...t.querySelectorAll('a')].map(a => a.outerHTML),"
            " big: [...t.querySelectorAll('[style*=\"60px\"]')].length, text: t.innerText};"
        )
    assert not [link for link in drawn["links"] if "evil.example" in link], drawn["links"]
    assert not drawn["big"], drawn["big"]
    # The markup shows as the characters typed, in the star's label, its hover and the note.
    assert MARKUP in drawn["labels"]
    assert MARKUP in drawn["hover"]
    assert (
        "architecture cannot be read" in drawn["title"] and '<a href="https://' in drawn["title"]
    )
    assert not table["links"] and not table["big"], table
    assert MARKUP in table["text"]  # the landmark and the unreadable architecture, as typed


def graph_traces(driver, graph: str) -> dict[str, dict]:
    """Per trace name of one graph, as plotly drew it: its points and error bar reach."""
    return driver.execute_script(
        f"const g = document.querySelector('#{graph} .js-plotly-plot');"
        "if (!g || !g._fullData) return {};"
        "return Object.fromEntries(g._fullData.map(t => [t.name, {"
        " n: t.x ? t.x.length : 0, text: t.text || null,"
        " plus: t.error_y && t.error_y.visible ? Array.from(t.error_y.array) : null}]));"
    )


def test_confirmed_page_draws_intervals_and_gains_a_finished_run_live(tmp_path, browser):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = confirmed_study(url)
    with serving(url) as address:
        wait = WebDriverWait(browser, 40)
        browser.get(address + "/confirmed")

        def searched(graph: str) -> dict:
            traces = graph_traces(browser, graph)
            return next((t for name, t in traces.items() if name.startswith("searched")), {})

        wait.until(lambda d: searched("confirmed-graph").get("n") == 3)
        bars = searched("confirmed-graph")["plus"]
        assert len(bars) == 3 and all(bar > 0 for bar in bars)  # every mean has its interval
        assert searched("final-graph")["text"] == ["1→2", "3→1"]
        tables = browser.find_element(By.ID, "confirmed-tables").text
        assert "not distinguishable at 3 seeds" in tables
        assert "93.10% ± 0.10% (3)" in tables
        screenshot(browser, "confirmed.png")

        # A final run of trial 0 finishes while the page is open: it is drawn without a reload.
        browser.execute_script("window.notReloaded = true;")
        store_runs(study, 0, SMALL, [0.7, 0.71, 0.72], epochs=10)
        wait.until(lambda d: searched("final-graph").get("n") == 3)
        assert browser.execute_script("return window.notReloaded === true;")
        # On the fronts page, the confirmed means sit beside the single search runs.
        browser.get(address + "/")
        wait.until(lambda d: any(name.startswith("confirmed mean") for name in trace_lengths(d)))
        # Read while the server is up: its shutdown would reset the page's next poll.
        severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not [e for e in severe if "favicon" not in e["message"]], severe
