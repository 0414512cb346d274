"""The trials page's data steps on real studies in temporary SQLite files: the table (every
trial, sorted, filtered, paged, as CSV), the parallel coordinates, the curves, the trial page's
parameters and reported values. The browser half is in test_dashboard_browser.py."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from dashboard import callbacks, trials_page
from dashboard.data import FrameCache
from dashboard.layout import PAGES
from dashboard.plot_data import plot_text
from dashboard.storage import StorageReader
from dashboard.trials_data import TrialsCache
from dashboard.trials_plot_data import curves_data, parcoords_data
from dashboard.trials_table import filter_number, filter_rows, parse_filter, sort_rows, table_csv
from tests.dashboard_fixtures import MARKUP, add_complete_trials, add_trial, build_study
from tests.test_dashboard_hostile import strings

FORMULA = '=HYPERLINK("https://evil.example/","x")'


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    """A study of ours (7 landmarks + 40 sampled, every state, one running)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('ours') / 'studies.db'}"
    trials = build_study(url, "demo", count=40, latency=True, running=1)
    return url, trials


def plain_objective(trial: optuna.Trial) -> float:
    """A plain Optuna objective: no record of ours, three kinds of parameter, Trial.report."""
    x = trial.suggest_float("x", -10.0, 10.0)
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    trial.suggest_categorical("optimizer", ["adam", "sgd"])
    for step in range(4):
        trial.report(x * x / (step + 1) + lr, step)
    if trial.number % 5 == 4:
        raise optuna.TrialPruned()
    return x * x + lr


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('plain') / 'studies.db'}"
    study = optuna.create_study(
        storage=url, study_name="plain", sampler=optuna.samplers.RandomSampler(seed=0)
    )
    study.optimize(plain_objective, n_trials=15)
    return url, study.get_trials()


def trials_cache(url: str) -> TrialsCache:
    return TrialsCache(FrameCache(StorageReader(url)))


def column_ids(table) -> dict[str, str]:
    return {column.label: column.id for column in table.columns}


def test_the_table_has_every_trial_with_the_frames_values(ours):
    url, trials = ours
    cache = trials_cache(url)
    table = cache.table(["demo"])
    rows = table.rows.set_index("number")
    assert sorted(rows.index) == [trial.number for trial in trials]
    assert set(rows["state"]) == {"COMPLETE", "PRUNED", "FAIL", "RUNNING"}
    labels = column_ids(table)
    for label in ("trial", "state", "validation accuracy", "MACs", "parameters", "latency (ms)"):
        assert label in labels
    assert "study" not in labels  # one study picked
    frame = cache.frames.frame(["demo"]).set_index("number")
    for column in ("val_acc", "macs", "latency_ms", "decoupling", "pruned_at_epoch"):
        np.testing.assert_array_equal(rows.loc[frame.index, column], frame[column])
    assert rows.loc[3, "landmark"] == "inception_v3"
    pruned = next(trial for trial in trials if trial.user_attrs.get("pruned_at_epoch"))
    assert rows.loc[pruned.number, "pruned_at_epoch"] == 2
    assert rows.loc[10, "duration_s"] == pytest.approx(
        (trials[10].datetime_complete - trials[10].datetime_start).total_seconds()
    )
    # The search's parameters, named as stored, each a column; its choices are text.
    parameter = labels["s1_segments"]
    assert rows.loc[10, parameter] == trials[10].params["s1_segments"]
    assert cache.table(["demo"]) is table  # nothing changed: the same table


def test_a_trial_with_an_unreadable_architecture_keeps_its_row_as_text(tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    build_study(url, MARKUP, count=3)
    hostile = add_trial(url, MARKUP, {"arch": FORMULA, "macs": 3e6}, params={MARKUP: MARKUP})
    table = trials_cache(url).table([MARKUP])
    row = table.rows.set_index("number").loc[hostile]
    assert row["arch"] == FORMULA and math.isnan(row["val_acc"])  # not in the frame
    assert row[column_ids(table)[MARKUP]] == MARKUP  # a stored name heads a column, as text
    data = trials_page.table_view(trials_cache(url), [MARKUP], 0, 50, [], "", None)
    column = column_ids(table)[MARKUP]
    assert {"id": column, "name": MARKUP, "type": "text"} in data["columns"]
    # The CSV holds the formula as text a spreadsheet shows, never runs.
    written = list(csv.reader(io.StringIO(table_csv(table.rows, table.columns))))
    assert written[0][0] == "trial" and MARKUP in written[0]
    cells = {cell for line in written[1:] for cell in line}
    assert "'" + FORMULA in cells and FORMULA not in cells


def test_sorting_puts_blanks_last_and_orders_number_like_text_as_numbers(ours):
    table = trials_cache(ours[0]).table(["demo"])
    by_accuracy = sort_rows(table.rows, [{"column_id": "val_acc", "direction": "desc"}])
    accuracy = by_accuracy["val_acc"].to_numpy()
    known = accuracy[~np.isnan(accuracy)]
    assert len(known) and (np.diff(known) <= 0).all()
    assert np.isnan(accuracy[len(known) :]).all()  # pruned, failed, running: last
    landmarks = sort_rows(table.rows, [{"column_id": "landmark", "direction": "asc"}])
    assert list(landmarks["landmark"][:7]) == sorted(table.rows["landmark"][:7])
    assert (landmarks["landmark"][7:] == "").all()
    width = column_ids(table)["stem_width"]
    widths = sort_rows(table.rows, [{"column_id": width, "direction": "asc"}])[width]
    numbers = [int(value) for value in widths if value]
    assert numbers == sorted(numbers) and "8" in widths.to_list()
    two_keys = sort_rows(
        table.rows,
        [{"column_id": "state", "direction": "asc"}, {"column_id": "number", "direction": "desc"}],
    )
    for _, group in two_keys.groupby("state", sort=False):
        assert (np.diff(group["number"].to_numpy()) < 0).all()
    assert list(dict.fromkeys(two_keys["state"])) == sorted(set(two_keys["state"]))


def test_the_datatables_filter_queries_are_read():
    clauses, errors = parse_filter(
        '{state} icontains compl && {macs} s> 2M && {number} s= 3 && {arch} scontains "k3 g1"'
        " && {landmark} is blank && {o0} ge 1.5e-3 && nonsense && {x} s>"
    )
    assert [(c.column, c.op, c.value, c.case_sensitive) for c in clauses] == [
        ("state", "contains", "compl", False),
        ("macs", ">", "2M", True),
        ("number", "=", "3", True),
        ("arch", "contains", "k3 g1", True),
        ("landmark", "blank", "", False),
        ("o0", ">=", "1.5e-3", True),
    ]
    assert errors == ["cannot read the filter 'nonsense'", "cannot read the filter '{x} s>'"]
    assert filter_number("2M") == 2e6 and filter_number("1.5k") == 1500.0
    with pytest.raises(ValueError):
        filter_number("2 mega")


def test_filters_keep_the_rows_they_name(ours):
    url, trials = ours
    table = trials_cache(url).table(["demo"])
    rows = table.rows
    kept, error = filter_rows(table, "{state} icontains compl && {macs} s> 2M")
    expected = rows[(rows["state"] == "COMPLETE") & (rows["macs"] > 2e6)]
    assert not error and 0 < len(kept) < len(rows)
    assert list(kept["number"]) == list(expected["number"])
    kept, _ = filter_rows(table, "{landmark} is blank && {number} s<= 20")
    assert list(kept["number"]) == list(range(7, 21))
    kept, _ = filter_rows(table, "{arch} icontains K3.5.7")  # case-insensitive
    assert len(kept) and all("k3.5.7" in arch for arch in kept["arch"])
    segments = column_ids(table)["s1_segments"]
    kept, _ = filter_rows(table, f"{{{segments}}} s> 4")  # '8' and '16', not 'dw'
    assert len(kept) and set(kept[segments]) <= {"8", "16"}
    kept, _ = filter_rows(table, "", states=["FAIL", "RUNNING"])
    failed = [t.number for t in trials if t.state in (TrialState.FAIL, TrialState.RUNNING)]
    assert sorted(kept["number"]) == failed
    kept, error = filter_rows(table, "{macs} s> lots && {nope} s= 1 && {number} s< 5")
    assert list(kept["number"]) == [0, 1, 2, 3, 4]  # the clause it could read still applies
    assert error == "MACs: 'lots' is not a number; no column 'nope' to filter"


def test_the_table_view_pages_and_resets_past_the_end(ours):
    cache = trials_cache(ours[0])
    total = len(cache.table(["demo"]).rows)
    first = trials_page.table_view(cache, ["demo"], 0, 10, [], "", None)
    assert first["page_count"] == math.ceil(total / 10) and len(first["data"]) == 10
    assert first["count"] == f"{total} of {total} trials" and first["error"] == ""
    assert [row["number"] for row in first["data"]] == list(range(10))
    assert all(row["study"] == "demo" for row in first["data"])  # for a click, not shown
    last = trials_page.table_view(cache, ["demo"], 99, 10, [], "", None)
    assert last["page_current"] == first["page_count"] - 1
    assert len(last["data"]) == total - 10 * (first["page_count"] - 1)
    filtered = trials_page.table_view(cache, ["demo"], 0, 10, [], "{macs} s> abc", ["FAIL"])
    assert filtered["error"] == "filter not applied: MACs: 'abc' is not a number"
    assert {row["state"] for row in filtered["data"]} == {"FAIL"}
    # None, not NaN, for what a trial lacks: the page shows a blank cell.
    running = trials_page.table_view(cache, ["demo"], 0, 50, [], "", ["RUNNING"])["data"][0]
    assert running["val_acc"] is None and running["arch"] == ""


def test_the_csv_is_the_filtered_sorted_table(ours):
    cache = trials_cache(ours[0])
    sort_by = [{"column_id": "macs", "direction": "asc"}]
    download = trials_page.csv_view(cache, ["demo"], sort_by, "{state} icontains compl", None)
    assert download["filename"] == "demo.csv"
    lines = list(csv.DictReader(io.StringIO(download["content"])))
    table = cache.table(["demo"])
    kept, _ = filter_rows(table, "{state} icontains compl")
    assert len(lines) == len(kept) and {line["state"] for line in lines} == {"COMPLETE"}
    macs = [float(line["MACs"]) for line in lines]
    assert macs == sorted(macs) and macs[0] == kept["macs"].min()  # raw numbers, not "2.1M"
    assert {"validation accuracy", "architecture", "s1_segments"} <= set(lines[0])


def test_several_studies_get_a_study_column_and_a_study_axis(ours, tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    build_study(url, "a", count=10)
    build_study(url, "b", count=10, seed=3)
    cache = trials_cache(url)
    table = cache.table(["a", "b"])
    assert table.columns[0].label == "study"
    assert sorted(set(table.rows["study"])) == ["a", "b"]
    parcoords = parcoords_data(cache.facts(["a", "b"]))
    assert parcoords.axes[0].label == "study" and parcoords.axes[0].ticktext == ("a", "b")
    curves = curves_data(cache.facts(["a", "b"]))
    assert {curve_set.study for curve_set in curves.sets} == {"a", "b"}
    assert all(label.startswith(("a: ", "b: ")) for label in (s.label for s in curves.sets))


def test_the_table_follows_new_trials(tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    build_study(url, "live", count=5)
    cache = trials_cache(url)
    before = cache.table(["live"])
    add_complete_trials(url, "live", 2)
    after = cache.table(["live"])
    assert len(after.rows) == len(before.rows) + 2
    assert len(cache.facts(["live"])[0].table) == len(after.rows)


def test_parallel_coordinates_of_our_study(ours):
    url, trials = ours
    data = parcoords_data(trials_cache(url).facts(["demo"]))
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(data.colour) == len(complete) and not data.empty
    np.testing.assert_allclose(sorted(data.colour), sorted(t.values[0] for t in complete))
    labels = [axis.label for axis in data.axes]
    assert labels[-1] == "validation accuracy" and not data.reverse_scale
    varying = {
        name
        for name in complete[0].params
        if len({trial.params.get(name) for trial in complete}) > 1
    }
    assert set(labels[:-1]) == varying
    segments = data.axes[labels.index("s1_segments")]
    # Categories in the order the space lists them, each line at its trial's choice.
    chosen = {trial.params["s1_segments"] for trial in complete}
    assert segments.ticktext == tuple(c for c in ("1", "2", "4", "8", "16", "dw") if c in chosen)
    first = complete[0].params["s1_segments"]
    assert segments.ticktext[int(segments.values[0])] == first


def test_a_plain_optuna_study_shows_what_it_has(plain):
    url, trials = plain
    cache = trials_cache(url)
    table = cache.table(["plain"])
    rows = table.rows.set_index("number")
    labels = column_ids(table)
    assert sorted(rows.index) == [trial.number for trial in trials]
    shown = {column.id for column in table.columns}
    assert not shown & {"val_acc", "macs", "params", "arch", "landmark"}  # no record: no column
    assert rows["duration_s"].notna().all()
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    values = [c.id for c in table.columns if c.id == "val_acc" or c.id.startswith("o")]
    assert any(
        all(rows.loc[t.number, column] == pytest.approx(t.values[0]) for t in complete)
        for column in values
    )  # the objective shows in a value column (named as the study names it)
    x = labels["x"]
    assert table.columns[list(labels.values()).index(x)].kind == "numeric"
    assert rows.loc[0, x] == pytest.approx(trials[0].params["x"])
    kept, _ = filter_rows(table, f"{{{x}}} s> 0")
    assert sorted(kept["number"]) == [t.number for t in trials if t.params["x"] > 0]

    data = parcoords_data(cache.facts(["plain"]))
    assert [axis.label for axis in data.axes[:3]] == ["x", "lr (log10)", "optimizer"]
    lr = data.axes[1].values
    np.testing.assert_allclose(sorted(lr), sorted(math.log10(t.params["lr"]) for t in complete))
    assert data.reverse_scale  # minimized: the best lines get the scale's top colour
    curves = curves_data(cache.facts(["plain"]))
    assert curves.x_label == "step (Trial.report)"
    assert sum(np.isnan(s.x).sum() for s in curves.sets) == len(trials)  # one gap per trial
    pruned = next(s for s in curves.sets if s.group == "pruned")
    assert pruned.label == "pruned (3)" and list(pruned.x[:4]) == [0, 1, 2, 3]


def test_more_objectives_than_the_record_names_get_their_own_columns(tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = optuna.create_study(
        storage=url, study_name="energy", directions=["maximize", "minimize", "minimize"]
    )
    study.set_user_attr("space", "inception_to_xception")  # ours, with a third objective
    study.set_user_attr("objectives", ["val_acc", "macs", "energy_mj"])
    for number in range(3):
        study.add_trial(
            optuna.trial.create_trial(
                values=[0.8 + number / 100, 1e6, 5.0 + number],
                params={"width": str(8 * (number + 1))},
                distributions={"width": CategoricalDistribution(["8", "16", "24"])},
            )
        )
    table = trials_cache(url).table(["energy"])
    energy = column_ids(table)["energy_mj"]
    assert list(table.rows[energy]) == [5.0, 6.0, 7.0]
    assert list(table.rows["val_acc"]) == pytest.approx([0.8, 0.81, 0.82])


def test_curves_of_our_study_click_through_to_their_trials(ours):
    url, trials = ours
    data = curves_data(trials_cache(url).facts(["demo"]))
    with_curve = [t for t in trials if t.user_attrs.get("val_acc_curve")]
    drawn = {number for s in data.sets for _, number in s.click}
    assert drawn == {t.number for t in with_curve} and data.x_label == "epoch"
    complete = next(s for s in data.sets if s.group == "complete")
    first = next(t for t in with_curve if t.state == TrialState.COMPLETE)
    curve = first.user_attrs["val_acc_curve"]
    np.testing.assert_allclose(complete.y[: len(curve)], curve)
    assert list(complete.x[: len(curve)]) == list(range(1, len(curve) + 1))
    href = callbacks.trial_href({"points": [{"customdata": complete.click[0]}]})
    assert callbacks.parse_trial_search(href.split("?", 1)[1]) == ("demo", first.number)


def test_a_row_click_opens_its_trial(ours):
    data = trials_page.table_view(trials_cache(ours[0]), ["demo"], 1, 10, [], "", None)["data"]
    click = trials_page.row_click_data(data, {"row": 2, "column": 5, "column_id": "macs"})
    href = callbacks.trial_href(click)
    assert href == "/trial?study=demo&number=12"
    assert trials_page.row_click_data(data, None) is None
    assert trials_page.row_click_data(data, {"row": 99}) is None


def test_markup_in_names_reaches_the_figures_as_text(tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    build_study(url, MARKUP, count=3)
    build_study(url, "other", count=3)
    study = optuna.load_study(study_name=MARKUP, storage=url)
    for choice in ("a", MARKUP):  # a parameter named and valued in markup
        study.add_trial(
            optuna.trial.create_trial(
                values=[0.9, 2e6],
                params={MARKUP: choice},
                distributions={MARKUP: CategoricalDistribution(["a", MARKUP])},
                user_attrs={"val_acc_curve": [0.5, 0.6]},
            )
        )
    facts = trials_cache(url).facts([MARKUP, "other"])
    figures = [
        trials_page.parcoords_figure(parcoords_data(facts)),
        trials_page.curves_figure(curves_data(facts)),
    ]
    escaped = plot_text(MARKUP)
    for figure in figures:
        texts = strings(figure.to_plotly_json())
        assert not [t for t in texts if "<a" in t or '<span style="font-size:60px' in t]
        assert any(escaped in text for text in texts)


def components(node) -> list:
    """Every component of a layout tree, depth first."""
    found, stack = [], [node]
    while stack:
        node = stack.pop()
        if isinstance(node, (list, tuple)):
            stack.extend(reversed(node))
        elif hasattr(node, "to_plotly_json"):
            found.append(node)
            stack.append(getattr(node, "children", None))
    return found


def page_texts(page) -> list[str]:
    texts = [getattr(child, "children", None) for child in components(page)]
    return [text for text in texts if isinstance(text, str)]


def page_ids(page) -> dict:
    return {child.id: child for child in components(page) if getattr(child, "id", None)}


def test_the_trials_page_is_routed_and_in_the_navigation(ours):
    assert ("/trials", "Trials") in PAGES
    page = callbacks.route_view(FrameCache(StorageReader(ours[0])), "/trials", "", None)
    ids = page_ids(page)
    for component in ("trials-table", "trials-csv-button", "parcoords-graph", "curves-graph"):
        assert component in ids
    assert ids["trials-table"].page_action == "custom" and ids["trials-table"].data == []


def test_the_trial_page_lists_parameters_and_draws_reports(plain, ours):
    url, trials = plain
    page = callbacks.trial_view(FrameCache(StorageReader(url)), "plain", 1)
    texts, ids = page_texts(page), page_ids(page)
    assert "Parameters" in texts and "optimizer" in texts
    assert trials[1].params["optimizer"] in texts and f"{trials[1].params['x']:.6g}" in texts
    assert "Reported values (Trial.report)" in texts
    assert "curve" not in ids  # nothing stored for the validation curve to draw
    reports = ids["reports"].figure.data[0]
    assert list(reports.x) == [0, 1, 2, 3]
    np.testing.assert_allclose(reports.y, list(trials[1].intermediate_values.values()))
    ours_page = callbacks.trial_view(FrameCache(StorageReader(ours[0])), "demo", 10)
    texts, ids = page_texts(ours_page), page_ids(ours_page)
    assert "Parameters" in texts and "s1_segments" in texts
    assert "curve" in ids and "reports" not in ids


def test_a_plain_study_s_objectives_are_labelled_by_its_metric_names(tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = optuna.create_study(storage=url, study_name="plain", directions=["minimize"] * 2)
    study.set_metric_names(["f1", "f2"])
    study.optimize(lambda trial: (trial.suggest_float("x", 0, 1), 1.0), n_trials=3)
    table = trials_cache(url).table(["plain"])
    labels = {column.label for column in table.columns}
    assert {"f1", "f2"} <= labels
    assert not labels & {"validation accuracy", "value 0", "value 1"}
    assert list(table.rows[column_ids(table)["f1"]]) == [t.values[0] for t in study.trials]


def test_a_plain_multi_objective_trial_page_shows_its_values_by_name(tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = optuna.create_study(storage=url, study_name="pair", directions=["minimize"] * 2)
    study.set_metric_names(["f1", "f2"])
    study.optimize(lambda trial: (trial.suggest_float("x", 0, 1), 0.5), n_trials=2)
    page = str(callbacks.trial_view(FrameCache(StorageReader(url)), "pair", 1))
    value = study.trials[1].values[0]
    assert "'f1'" in page and f"{value:.6g} (minimized)" in page
    assert "validation accuracy" not in page and "id='curve'" not in page  # no curve to draw
