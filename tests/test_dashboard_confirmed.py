"""The Confirmed page: stored confirmation and final runs drawn with their intervals, the
verdicts against the landmarks, and the cache that notices a run finishing."""

from __future__ import annotations

import math
import statistics

import numpy as np
import optuna
import pytest
from scipy import stats

from dashboard import layout
from dashboard.callbacks import confirmed_view, fronts_view, route_view
from dashboard.confirm_data import confirmed_data
from dashboard.data import FrameCache
from dashboard.storage import StorageReader
from nas.record import RUNNING, ConfirmationRun
from tests.confirm_study import (
    MOBILENET,
    PROXY,
    SMALL,
    confirmed_study,
    make_study,
    store_runs,
)


@pytest.fixture
def cache(tmp_path) -> FrameCache:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    confirmed_study(url)
    return FrameCache(StorageReader(url))


def half_width(values) -> float:
    """The 95% t interval's half width, computed here apart from nas.intervals."""
    n = len(values)
    return stats.t.ppf(0.975, n - 1) * statistics.stdev(values) / math.sqrt(n)


def the_study(cache: FrameCache):
    data = confirmed_data(cache.frame(["s"]), cache.stored_runs(["s"]))
    assert data.unconfirmed == () and len(data.studies) == 1
    return data.studies[0]


def test_the_table_has_every_run_network_with_its_interval_spread_and_ranks(cache):
    study = the_study(cache)
    rows = {row[1]: row for row in study.table}
    assert list(rows) == ["0", "1", "5", "2"]  # cheapest first; trial 4 (normal) has no run
    assert rows["1"][0] == "knee" and rows["5"][0] == "mobilenet" and rows["2"][0] == "front"
    assert rows["1"][4] == f"86.00% ± {half_width(PROXY[1]):.2%} (3)"
    assert rows["1"][6] == "93.10% ± 0.10% (3)"
    assert rows["0"][6] == "no run"
    # The front of the confirmed means: LARGE and mobilenet fall below the knee.
    assert [row[1] for row in study.table if row[5] == "yes"] == ["0", "1"]
    # By proxy mean: knee 1, mobilenet 2, LARGE 3; by final mean: LARGE 1, knee 2, mobilenet 3.
    assert (rows["1"][7], rows["5"][7], rows["2"][7]) == ("1 → 2", "2 → 3", "3 → 1")
    assert "Kendall tau -0.33" in study.about  # 1 of the 3 pairs kept its order
    assert "10 epochs of the final recipe" in study.about


def test_each_searched_point_is_told_apart_from_the_landmarks_or_said_not_to_be(cache):
    study = the_study(cache)
    proxy = {text.split(" (")[0]: text for text in study.verdicts}
    # On the proxy, mobilenet (96 k MACs) is the nearest landmark of every searched point.
    assert set(proxy) == {"trial 0", "trial 1", "trial 2"}
    assert "mobilenet is ahead of trial 0" in proxy["trial 0"]
    assert (
        "+0.50 points" in proxy["trial 1"] and "not distinguishable at 3 seeds" in proxy["trial 1"]
    )
    assert "not distinguishable at 3 seeds" in proxy["trial 2"]
    final = {text.split(" (")[0]: text for text in study.final_verdicts}
    # The knee (42 k MACs) has no landmark as cheap; LARGE beats mobilenet beyond its noise.
    assert "no landmark at equal or lower MACs" in final["trial 1"]
    assert "+1.60 points" in final["trial 2"]
    assert "trial 2 (front, 157.32 k MACs) is ahead of mobilenet at 3 seeds" in final["trial 2"]


def test_the_figures_draw_each_mean_with_its_interval_and_the_searchs_own_run(cache):
    confirmed, final, _ = confirmed_view(cache, ["s"])
    traces = {trace.name.split(",")[0].split(" (")[0]: trace for trace in confirmed.data}
    searched = traces["searched"]
    assert list(searched.x) == [17194, 41802, 157322]
    assert list(searched.y) == pytest.approx([np.mean(PROXY[t]) for t in (0, 1, 2)])
    expected = [half_width(PROXY[t]) for t in (0, 1, 2)]
    assert list(searched.error_y.array) == pytest.approx(expected)
    assert list(searched.error_y.arrayminus) == pytest.approx(expected)
    assert traces["landmarks"].marker.symbol == "star"
    assert list(traces["landmarks"].text) == ["mobilenet"]
    # The grey crosses: what the search measured once, above most of the confirmed means.
    assert list(traces["the search's own run"].y) == [0.60, 0.85, 0.50, 0.87]
    assert list(traces["front of the confirmed means"].x) == [17194, 41802]
    assert [list(point) for point in searched.customdata] == [["s", 0], ["s", 1], ["s", 2]]
    labels = {trace.name.split(",")[0]: list(trace.text) for trace in final.data}
    assert labels == {"searched": ["1→2", "3→1"], "landmarks": ["2→3"]}


def test_a_finished_run_changes_the_version_and_a_running_ones_heartbeat_does_not(tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = confirmed_study(url)
    cache = FrameCache(StorageReader(url))
    version, frame = cache.versions(["s"])["s"], cache.frame(["s"])
    claim = ConfirmationRun(0, 1, SMALL, RUNNING, "w:1", 5000.0, (0.5,), epochs=10)
    study.set_user_attr(claim.key, claim.to_attr())
    assert cache.versions(["s"])["s"] == version
    assert cache.frame(["s"]) is frame  # not rebuilt for a run still training
    store_runs(study, 0, SMALL, [0.7], epochs=10)
    assert cache.versions(["s"])["s"] != version
    final = cache.stored_runs(["s"])["s"].final
    assert [row.target.trial for row in final] == [0, 1, 2, 5]  # trial order
    assert next(row for row in final if row.target.trial == 0).accuracies == (0.7,)


def test_a_study_without_runs_gets_the_command_and_another_tools_study_is_named(tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    make_study(url)
    optuna.create_study(study_name="plain", storage=url).optimize(lambda t: 1.0, n_trials=1)
    cache = FrameCache(StorageReader(url))
    _, final, children = confirmed_view(cache, ["s", "plain"])
    commands = [
        child.children for child in children if getattr(child, "className", "") == "command"
    ]
    assert commands == [f"python -m nas.confirm --storage {url} --study s"]
    assert "no confirmations" in final.layout.title.text and "plain" in final.layout.title.text
    assert "no final run yet" in final.layout.annotations[0].text


def test_markup_in_a_stored_landmark_name_is_shown_as_text(tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = make_study(url)
    hostile = "<b>x</b><a href='javascript:alert(1)'>y</a>"
    trial = optuna.trial.create_trial(
        state=optuna.trial.TrialState.COMPLETE,
        values=[0.5, 96330],
        user_attrs={"arch": MOBILENET, "macs": 96330, "landmark": hostile},
    )
    study.add_trial(trial)
    number = study.trials[-1].number
    store_runs(study, number, MOBILENET, [0.5, 0.51])
    confirmed, _, _ = confirmed_view(FrameCache(StorageReader(url)), ["s"])
    landmarks = next(trace for trace in confirmed.data if trace.name.startswith("landmarks"))
    assert list(landmarks.text) == [
        "&lt;b&gt;x&lt;/b&gt;&lt;a href='javascript:alert(1)'&gt;y&lt;/a&gt;"
    ]
    assert "<b>x" not in landmarks.hovertext[0] and "&lt;b&gt;x" in landmarks.hovertext[0]


def test_the_confirmed_page_is_routed_and_listed(cache):
    page = route_view(cache, "/confirmed", "", None)
    ids = {child.id for child in page.children if getattr(child, "id", None)}
    assert ids == {"confirmed-graph", "final-graph", "confirmed-tables"}
    shell = str(layout.shell("sqlite:///studies.db", 5000))
    assert "href='/confirmed'" in shell  # the navigation built links to it


def test_the_fronts_page_draws_the_confirmed_means_at_their_trials_cost(cache):
    cost = "macs"
    figure = fronts_view(cache, ["s"], cost)
    confirmed = next(trace for trace in figure.data if trace.name.startswith("confirmed mean"))
    frame = cache.frame(["s"]).set_index("number")
    trials = [int(number) for _, number in confirmed.customdata]
    assert sorted(trials) == [0, 1, 2, 5]
    assert list(confirmed.x) == [frame.loc[trial, cost] for trial in trials]
    means = {trial: np.mean(values) for trial, values in PROXY.items()}
    assert list(confirmed.y) == pytest.approx([means[trial] for trial in trials])
    assert list(confirmed.error_y.array) == pytest.approx([half_width(PROXY[t]) for t in trials])
    # These trials store no parameter count: against parameters they are not drawn at all.
    against_params = fronts_view(cache, ["s"], "params")
    assert not [trace for trace in against_params.data if trace.name.startswith("confirmed")]


def test_the_fronts_page_of_a_study_without_runs_has_no_confirmed_trace(tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    make_study(url)
    figure = fronts_view(FrameCache(StorageReader(url)), ["s"], "macs")
    assert [trace.name for trace in figure.data if "confirmed" in trace.name] == []
