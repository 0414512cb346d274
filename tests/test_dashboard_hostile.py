"""Stored data the search would never write: the dashboard reads around it and draws it as text."""

from __future__ import annotations

import numpy as np
import pytest

from dashboard import callbacks
from dashboard.data import FrameCache
from dashboard.plot_data import importance_data, plot_text
from dashboard.search_figures import importance_figure
from dashboard.storage import StorageReader
from search_spaces import LANDMARKS
from tests.dashboard_fixtures import MARKUP, add_trial, build_study

OK = {"kind": "ok", "message": ""}
# Too large for an int index (OverflowError before the grammar was bounded), and too wide.
HUGE_DEPTH = "stem16-c32_d99999999999999999999_s2_k3_g1_pnone_f0_a0_r0"
TOO_WIDE = "stem16-c4097_d2_s2_k3_g1_pnone_f0_a0_r0"


# Keys whose strings Plotly never draws: a click's [study, number], and grouping identifiers.
NOT_DRAWN = {"customdata", "legendgroup", "offsetgroup", "uirevision"}


def strings(node) -> list[str]:
    """Every string Plotly may draw, anywhere in a figure's JSON tree (dicts, lists, arrays)."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [
            text for key, value in node.items() if key not in NOT_DRAWN for text in strings(value)
        ]
    if isinstance(node, (list, tuple, np.ndarray)):
        return [text for value in node for text in strings(value)]
    return []


def clicked_numbers(figure) -> set[int]:
    return {
        int(row[1])
        for trace in figure.data
        if trace.customdata is not None
        for row in trace.customdata
    }


@pytest.fixture
def hostile_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    build_study(url, "demo", count=10)
    return url


def test_a_trial_whose_architecture_cannot_be_read_is_left_out_and_named(hostile_url):
    # One without a stored decoupling degree (the dashboard derives it from the architecture),
    # one with everything else a trial of ours stores.
    huge = add_trial(hostile_url, "demo", {"arch": HUGE_DEPTH, "macs": 2e6})
    wide = add_trial(hostile_url, "demo", {"arch": TOO_WIDE, "macs": 2e6, "decoupling": 0.5})
    cache = FrameCache(StorageReader(hostile_url))

    poll = callbacks.poll_view(cache, None)
    assert poll["value"] == ["demo"] and poll["versions"]["demo"].startswith("19/")
    frame = cache.frame(["demo"])
    assert set(frame["number"]) == set(range(huge))  # the 7 landmarks and 10 sampled trials
    figure = callbacks.fronts_view(cache, ["demo"], "macs")
    complete = set(frame.loc[frame["state"] == "COMPLETE", "number"])
    assert complete <= clicked_numbers(figure) <= set(range(huge))
    note = figure.layout.title.text
    assert f"2 trials not shown: trial {huge}: architecture cannot be read" in note
    assert "d99999999999999999999" in note and f"trial {wide}: " in note and "c4097" in note
    landmarks = next(trace for trace in figure.data if trace.name == "landmarks")
    assert list(landmarks.text) == list(LANDMARKS)
    spectrum = callbacks.spectrum_view(cache, ["demo"], "segments")
    assert spectrum.data and clicked_numbers(spectrum) == complete
    progress, table = callbacks.progress_view(cache, ["demo"])
    assert progress.data and "demo" in str(table.to_plotly_json())
    assert "fronts-graph" in str(callbacks.route_view(cache, "/", "", OK).to_plotly_json())
    page = str(callbacks.trial_view(cache, "demo", huge).to_plotly_json())
    assert "cannot draw or count this architecture" in page and "d99999999999999999999" in page


def test_markup_stored_in_a_study_reaches_every_plot_label_as_text(tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    build_study(url, MARKUP, count=10)
    build_study(url, "other", count=3)  # two studies: legend names carry the study name
    add_trial(
        url,
        MARKUP,
        {"arch": str(LANDMARKS["xception"]), "macs": 3e6, "landmark": MARKUP},
        params={"segments": MARKUP},  # a space's segments parameter: a spectrum category
    )
    add_trial(url, MARKUP, {"arch": MARKUP, "macs": 3e6})  # unreadable: named in the note
    cache = FrameCache(StorageReader(url))
    picked = [MARKUP, "other"]
    figures = {
        "fronts": callbacks.fronts_view(cache, picked, "macs"),
        "spectrum": callbacks.spectrum_view(cache, picked, "segments"),
        "progress": callbacks.progress_view(cache, picked)[0],
        # Objectives and parameter names are stored strings too.
        "importance": importance_figure(importance_data({MARKUP: {MARKUP: 0.7, "s1_width": 0.3}})),
    }
    escaped = plot_text(MARKUP)
    assert escaped.startswith("&lt;a href=") and "<" not in escaped
    for name, figure in figures.items():
        texts = strings(figure.to_plotly_json())
        live = [text for text in texts if "<a" in text or '<span style="font-size:60px' in text]
        assert not live, (name, live[:3])
        assert any(escaped in text for text in texts), name  # the string did reach a label
    fronts = strings(figures["fronts"].to_plotly_json())
    # Our own markup still works: bold trial numbers and line breaks in hovers, the note's size.
    assert any(text.startswith("<b>trial ") and "<br>" in text for text in fronts)
    assert any(text.startswith("<span style='font-size:13px'>") for text in fronts)
    landmarks = next(trace for trace in figures["fronts"].data if trace.name == "landmarks")
    assert escaped in list(landmarks.text)
    assert any(trace.name.startswith(escaped + ": complete") for trace in figures["fronts"].data)


def test_the_trial_page_of_a_huge_network_does_not_build_it(hostile_url, monkeypatch):
    # Within the grammar's bounds, yet 210 G weights: building it would take the server down.
    huge = "stem4096-c4096_d256_s1_k7_g1_pnone_f0_a0_r0"
    number = add_trial(hostile_url, "demo", {"arch": huge, "macs": 2e6, "decoupling": 0.0})
    monkeypatch.setattr(callbacks, "cost_table", lambda *args: pytest.fail("built the network"))
    page = str(callbacks.trial_view(FrameCache(StorageReader(hostile_url)), "demo", number))
    assert "costs not counted: the network has 210.45 G conv weights" in page
    assert "stage 1" in page  # the block diagram is still drawn
