"""Pure figure builders of the Confirmed page: `dashboard.confirm_data.ConfirmedData` in,
plotly figures out. They draw what they are given and choose nothing.

Markers keep the fronts page's meaning: colour is the decoupling degree on the shared scale,
stars are landmarks, studies are told apart by marker symbol and line colour. Every mean
carries its 95% t interval over seeds as an error bar.
"""

from __future__ import annotations

from collections.abc import Iterator

import plotly.graph_objects as go

from dashboard.confirm_data import ConfirmedData, ConfirmedStudy
from dashboard.figures import (
    COST_LABELS,
    STUDY_COLORS,
    STUDY_SYMBOLS,
    decoupling_coloraxis,
    plot_title,
)
from dashboard.plot_types import IntervalPoints, plot_text


def _interval_trace(points: IntervalPoints, name: str, symbol: str, size: int) -> go.Scatter:
    return go.Scatter(
        x=points.x,
        y=points.y,
        mode="markers+text",
        text=list(points.labels),
        textposition="middle right",  # above or below, it would sit on the error bar
        textfont=dict(size=11, color="#222222"),
        error_y=dict(
            type="data",
            symmetric=False,
            array=points.plus,
            arrayminus=points.minus,
            thickness=1.5,
            width=4,
            color="#444444",
        ),
        marker=dict(
            symbol=symbol,
            size=size,
            color=points.decoupling,
            coloraxis="coloraxis",
            line=dict(width=1, color="black"),
        ),
        customdata=points.click,
        hovertext=list(points.hover),
        hovertemplate="%{hovertext}<extra></extra>",
        name=name,
    )


def _add_networks(
    figure: go.Figure,
    searched: IntervalPoints,
    landmarks: IntervalPoints,
    prefix: str,
    symbol: str,
    what: str,
) -> None:
    """The searched points in the study's symbol and the landmarks as stars, where any."""
    for points, kind, marker, size in (
        (searched, "searched", symbol, 10),
        (landmarks, "landmarks", "star", 15),
    ):
        if len(points.x):
            name = f"{prefix}{kind}, {what} mean ± 95% t ({len(points.x)})"
            figure.add_trace(_interval_trace(points, name, marker, size))


def _styled(data: ConfirmedData) -> Iterator[tuple[ConfirmedStudy, str, str, str]]:
    """Each study with its legend prefix (when several), marker symbol and line colour."""
    several = len(data.studies) > 1
    for index, study in enumerate(data.studies):
        prefix = f"{plot_text(study.study)}: " if several else ""
        symbol = STUDY_SYMBOLS[index % len(STUDY_SYMBOLS)]
        yield study, prefix, symbol, STUDY_COLORS[index % len(STUDY_COLORS)]


def confirmed_figure(data: ConfirmedData) -> go.Figure:
    """Confirmed validation accuracy (mean ± 95% t interval over seeds) against MACs: the
    searched points and the landmarks, the front of the means as a step line, and each
    network's one search run as a grey cross (the draw the search picked it on).

    Args:
        data: what to draw, from `dashboard.confirm_data.confirmed_data`.
    """
    figure = go.Figure()
    for study, prefix, symbol, color in _styled(data):
        runs = study.search_runs
        figure.add_trace(
            go.Scatter(
                x=runs.x, y=runs.y, mode="markers", name=f"{prefix}the search's own run",
                marker=dict(symbol="x-thin-open", size=9, color="#8C8C8C", line=dict(width=1.5)),
                customdata=runs.click, hovertext=list(runs.hover),
                hovertemplate="%{hovertext}<extra></extra>",
            )
        )  # fmt: skip
        if len(study.front.x):
            figure.add_trace(
                go.Scatter(
                    x=study.front.x, y=study.front.y, mode="lines", hoverinfo="skip",
                    line=dict(shape="hv", width=2, color=color),
                    name=f"{prefix}front of the confirmed means ({len(study.front.x)})",
                )
            )  # fmt: skip
        _add_networks(figure, study.searched, study.landmarks, prefix, symbol, "confirmed")
    note = "a grey cross is the search's own run of a network, left out of its mean"
    _layout(figure, data, "validation accuracy (mean over seeds, 95% t interval)", note)
    return figure


def final_figure(data: ConfirmedData) -> go.Figure:
    """Final test accuracy (mean ± 95% t interval over seeds) against MACs, each network
    labelled with its rank by confirmed proxy mean and by final test mean ("3→1"): where the
    proxy's order holds and where it does not.

    Args:
        data: what to draw, from `dashboard.confirm_data.confirmed_data`.
    """
    figure = go.Figure()
    for study, prefix, symbol, _ in _styled(data):
        searched, landmarks = study.final_searched, study.final_landmarks
        _add_networks(figure, searched, landmarks, prefix, symbol, "final test")
    note = "labels: rank by confirmed proxy mean → rank by final test mean (1 the most accurate)"
    _layout(figure, data, "test accuracy after final training (mean over seeds, 95% t)", note)
    if not any(len(s.final_searched.x) + len(s.final_landmarks.x) for s in data.studies):
        figure.add_annotation(
            text="no final run yet: python -m nas.confirm --study NAME --final",
            showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
        )  # fmt: skip
    return figure


def _layout(figure: go.Figure, data: ConfirmedData, y_title: str, note: str) -> None:
    figure.update_layout(
        title=plot_title(note, data.notice),
        xaxis=dict(type="log", title=f"{COST_LABELS['macs']}, log scale", dtick="D2"),
        yaxis=dict(title=y_title),
        coloraxis=decoupling_coloraxis(),
        legend=dict(orientation="h", yanchor="bottom", y=1.01, x=0.0, font=dict(size=11)),
        margin=dict(l=60, r=20, t=90, b=50),
        hovermode="closest",
        template="plotly_white",
        uirevision="confirmed",  # keep the user's zoom while runs arrive
    )
