"""Plain Optuna studies (not made by nas.search) in the dashboard: their own objectives, labels
and directions, Optuna's best_trials as the front, and never a label of ours."""

from __future__ import annotations

import warnings

import numpy as np
import optuna
import pytest

from dashboard import callbacks
from dashboard.data import FrameCache, best_trial_mask
from dashboard.figures import fronts_figure
from dashboard.plot_data import HistoryData, fronts_data, progress_data, spectrum_data
from dashboard.storage import StorageReader
from tests.dashboard_fixtures import build_study

# Words that only a study of ours may show: accuracy, costs, decoupling (the one-line notice
# says that a plain study has no costs or landmarks, in those words).
OUR_WORDS = ("validation accuracy", "val acc", "MACs", "decoupling", "hypervolume")


def _named(study: optuna.Study, names: list[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # set_metric_names is "experimental"
        study.set_metric_names(names)


def _pair(trial: optuna.Trial) -> tuple[float, float]:
    x, y = trial.suggest_float("x", 0, 1), trial.suggest_float("y", 0, 1)
    return x, (1 - x) ** 2 + 0.3 * y


def _loss(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -3, 3)
    for step in range(4):
        trial.report((x - 1) ** 2 + 3 + 1 / (step + 1), step)
    return (x - 1) ** 2 + 3


def _make(url: str) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def create(name, directions, objective, trials, names=None):
        study = optuna.create_study(
            study_name=name,
            storage=url,
            directions=directions,
            sampler=optuna.samplers.RandomSampler(seed=len(name)),
        )
        if names:
            _named(study, names)
        study.optimize(objective, n_trials=trials)

    create("minmin", ["minimize", "minimize"], _pair, 40, ["f1", "f2"])
    create("maxmin", ["maximize", "minimize"], _pair, 30)
    create("loss", ["minimize"], _loss, 15, ["loss"])
    create("score", ["maximize"], lambda t: t.suggest_float("x", 0, 5), 12)
    create("three", ["minimize"] * 3, lambda t: (*_pair(t), t.suggest_float("z", 0, 1)), 40)
    optuna.create_study(study_name="empty", storage=url, directions=["minimize", "minimize"])


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('plain') / 'plain.db'}"
    _make(url)
    build_study(url, "ours", count=6)  # a study of nas.search, for mixed picks
    return url


@pytest.fixture
def cache(url):
    return FrameCache(StorageReader(url))


def best_numbers(url: str, name: str) -> set[int]:
    return {t.number for t in optuna.load_study(study_name=name, storage=url).best_trials}


def shown(figure) -> str:
    """Every text of a figure (titles, names, hovers, annotations) as one string."""
    return figure.to_json()


def no_word_of_ours(text: str) -> None:
    for word in OUR_WORDS:
        assert word not in text, word


def test_a_minimize_minimize_study_is_drawn_by_its_named_objectives(url, cache):
    data = fronts_data(cache.frame(["minmin"]))
    assert (data.x_title, data.y_title) == ("f1 (minimized)", "f2 (minimized)")
    (series,) = data.studies
    assert len(series.complete.x) == 40
    best = best_numbers(url, "minmin")
    assert len(best) > 1 and set(series.front.numbers) == best
    assert list(series.front.x) == sorted(series.front.x)
    assert data.front_shape == "hv" and not data.by_decoupling and not data.x_log
    assert data.notice.count("not made by nas.search") == 1 and "best_trials" in data.notice
    assert "<br>" not in data.notice  # one line
    figure = callbacks.fronts_view(cache, ["minmin"], "macs")
    assert figure.layout.xaxis.title.text == "f1 (minimized)"
    assert f"Pareto front ({len(best)})" in {trace.name for trace in figure.data}
    assert "trial" in figure.data[0].hovertext[0] and "f1 " in figure.data[0].hovertext[0]
    no_word_of_ours(shown(figure))


def test_a_study_without_names_gets_optunas_labels_and_its_directions(url, cache):
    data = fronts_data(cache.frame(["maxmin"]))
    assert (data.x_title, data.y_title) == ("objective 0 (maximized)", "objective 1 (minimized)")
    assert set(data.studies[0].front.numbers) == best_numbers(url, "maxmin")
    # x is maximized: the boundary of what the front dominates steps up before it goes across.
    assert data.front_shape == "vh"
    no_word_of_ours(shown(fronts_figure(data)))


def test_more_than_two_objectives_ring_optunas_whole_front(url, cache):
    data = fronts_data(cache.frame(["three"]))
    assert set(data.studies[0].front.numbers) == best_numbers(url, "three")
    assert data.front_shape == ""  # no staircase: the front is not one in the first two
    front = [t for t in fronts_figure(data).data if t.name.startswith("Pareto front")]
    assert front[0].mode == "markers"


@pytest.mark.parametrize("directions", [["minimize"], ["maximize", "minimize"], ["minimize"] * 3])
def test_the_front_rule_agrees_with_optuna_on_random_and_tied_values(directions):
    rng = np.random.default_rng(len(directions))
    values = rng.integers(0, 4, size=(60, len(directions))).astype(float)  # many ties
    study = optuna.create_study(directions=directions)
    for row in values:
        study.add_trial(optuna.trial.create_trial(values=list(row)))
    expected = {t.number for t in study.best_trials}
    mask = best_trial_mask(values.tolist(), directions)
    assert set(np.flatnonzero(mask)) == expected


def test_a_single_objective_study_shows_its_history_and_best_so_far(url, cache):
    study = optuna.load_study(study_name="loss", storage=url)
    data = fronts_data(cache.frame(["loss"]))
    assert isinstance(data, HistoryData) and not data.empty
    assert data.y_title == "loss (minimized)"
    (series,) = data.studies
    values = [t.value for t in study.trials]
    assert list(series.trials.y) == values
    assert list(series.best.y) == list(np.minimum.accumulate(values))
    assert series.best.y[-1] == study.best_value
    figure = callbacks.fronts_view(cache, ["loss"], "macs")
    text = shown(figure)
    assert "no finished trial yet" not in text and "15 complete" in text
    no_word_of_ours(text)


def test_a_maximized_single_objective_keeps_its_best_as_the_highest(url, cache):
    study = optuna.load_study(study_name="score", storage=url)
    data = fronts_data(cache.frame(["score"]))
    assert data.y_title == "objective 0 (maximized)"
    assert data.studies[0].best.y[-1] == study.best_value == max(t.value for t in study.trials)
    figure, table = callbacks.progress_view(cache, ["score"])
    cells = str(table.to_plotly_json())
    assert f"objective 0 {study.best_value:.6g} (max)" in cells and "best val acc" not in cells


def test_the_progress_page_shows_the_reported_curves_and_a_labelled_best(url, cache):
    study = optuna.load_study(study_name="loss", storage=url)
    data = progress_data(cache.frame(["loss"]))
    assert data.panel == "reports"
    (curves,) = data.curves
    assert curves.trials == 15
    reported = [value for t in study.trials for value in t.intermediate_values.values()]
    assert list(curves.values[np.isfinite(curves.values)]) == reported
    figure, table = callbacks.progress_view(cache, ["loss"])
    cells = str(table.to_plotly_json())
    assert f"loss {study.best_value:.6g} (min)" in cells
    assert "'best'" in cells and "best val acc" not in cells
    text = shown(figure)
    assert "Trial.report" in text
    no_word_of_ours(text)


def test_a_multi_objective_study_counts_its_front_in_the_table(url, cache):
    _figure, table = callbacks.progress_view(cache, ["minmin"])
    count = len(best_numbers(url, "minmin"))
    assert f"{count} trials on the Pareto front" in str(table.to_plotly_json())


def test_the_spectrum_says_once_why_it_is_empty(cache):
    data = spectrum_data(cache.frame(["minmin"]))
    assert data.studies == () and "minmin" in data.notice
    text = shown(callbacks.spectrum_view(cache, ["minmin"], "decoupling"))
    assert "not on the spectrum" in text
    no_word_of_ours(text)


def test_an_empty_plain_study_has_no_label_of_ours(cache):
    figure = callbacks.fronts_view(cache, ["empty"], "macs")
    text = shown(figure)
    assert "no finished trial yet" in text and "objective 0 (minimized)" in text
    no_word_of_ours(text)
    no_word_of_ours(shown(callbacks.progress_view(cache, ["empty"])[0]))


def test_importances_are_titled_by_the_studys_own_objectives(cache):
    page = str(
        [child.to_plotly_json() for child in callbacks.importance_view(cache, ["minmin"], {})]
    )
    assert "for f1" in page and "for f2" in page
    assert "validation accuracy" not in page


def test_with_a_study_of_ours_picked_too_ours_is_drawn_and_the_other_named(cache):
    alone = fronts_data(cache.frame(["ours"]))
    both = fronts_data(cache.frame(["ours", "minmin"]))
    assert [s.study for s in both.studies] == ["ours"]
    assert list(both.studies[0].complete.x) == list(alone.studies[0].complete.x)
    assert both.note == alone.note and alone.notice == ""
    assert "minmin" in both.notice and "not made by nas.search" in both.notice
    figure = fronts_figure(both)
    assert "validation accuracy" in figure.layout.yaxis.title.text
    _figure, table = callbacks.progress_view(cache, ["ours", "minmin"])
    cells = str(table.to_plotly_json())
    assert "val acc 0." in cells and "trials on the Pareto front" in cells


def test_our_own_study_keeps_its_labels(cache):
    data = fronts_data(cache.frame(["ours"]))
    assert data.x_title == "" and data.by_decoupling and data.notice == ""
    figure = fronts_figure(data)
    assert figure.layout.yaxis.title.text == "validation accuracy"
    assert figure.layout.xaxis.title.text.startswith("MACs")
    assert cache.infos()["ours"].ours and not cache.infos()["minmin"].ours
