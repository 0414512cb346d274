"""Pure builders of the trials page's figures (and the trial page's reported values).

They draw the named tuples of `dashboard.trials_plot_data` and choose nothing. Accuracy gets its
own colour scale (ACCURACY_SCALE): the dashboard's Viridis always means the decoupling degree.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from dashboard.figures import WEBGL_FROM
from dashboard.trials_plot_data import CurvesData, ParcoordsData

ACCURACY_SCALE = "Plasma"
CURVE_COLORS = {
    "complete": "#1F77B4",
    "pruned": "#8C8C8C",
    "running": "#2CA02C",
    "other": "#D62728",
}
STUDY_DASHES = ("solid", "dot", "dash", "longdash", "dashdot", "longdashdot")


def _empty(figure: go.Figure, text: str) -> None:
    figure.add_annotation(
        text=text, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
        font=dict(size=14, color="#666666"),
    )  # fmt: skip
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)


def parcoords_figure(data: ParcoordsData) -> go.Figure:
    """One line per complete trial through its parameters, coloured by the first objective."""
    figure = go.Figure()
    if data.empty:
        _empty(figure, "no complete trial yet")
    else:
        dimensions = []
        for axis in data.axes:
            dimension = dict(label=axis.label, values=axis.values)
            if axis.ticktext is not None:
                dimension.update(
                    tickvals=list(range(len(axis.ticktext))), ticktext=list(axis.ticktext)
                )
            dimensions.append(dimension)
        figure.add_trace(
            go.Parcoords(
                dimensions=dimensions,
                line=dict(
                    color=data.colour,
                    colorscale=ACCURACY_SCALE,
                    reversescale=data.reverse_scale,
                    showscale=True,
                    colorbar=dict(title=dict(text=data.colour_label, side="right"), thickness=14),
                ),
                labelangle=-20,
                labelside="top",
            )
        )
    figure.update_layout(
        template="plotly_white", height=460, margin=dict(l=70, r=120, t=110, b=30),
        title=dict(text=f"<span style='font-size:13px'>{data.note}</span>", x=0.01, y=0.98),
        uirevision="parcoords",  # a poll keeps the ranges brushed on the axes
    )  # fmt: skip
    return figure


def curves_figure(data: CurvesData) -> go.Figure:
    """Every trial's curve on one chart, a line per trial; a click opens the trial."""
    figure = go.Figure()
    studies = list(dict.fromkeys(curve_set.study for curve_set in data.sets))
    for curve_set in data.sets:
        trace = go.Scattergl if len(curve_set.x) >= WEBGL_FROM else go.Scatter
        dash = STUDY_DASHES[studies.index(curve_set.study) % len(STUDY_DASHES)]
        figure.add_trace(
            trace(
                x=curve_set.x,
                y=curve_set.y,
                mode="lines",
                name=curve_set.label,
                line=dict(color=CURVE_COLORS[curve_set.group], width=1, dash=dash),
                opacity=0.5,
                customdata=curve_set.click,
                # The number only: customdata's study is raw stored text, never a label.
                hovertemplate=f"trial %{{customdata[1]}} · {curve_set.group}<br>"
                "%{x}: %{y:.4f}<extra></extra>",
            )
        )
    if data.empty:
        _empty(figure, "no trial has a curve yet")
    figure.update_layout(
        template="plotly_white", height=420, margin=dict(l=60, r=20, t=40, b=50),
        title=dict(text=f"<span style='font-size:13px'>{data.note}</span>", x=0.01, y=0.98),
        xaxis_title=data.x_label, yaxis_title=data.y_label, hovermode="closest",
        legend=dict(orientation="h", y=1.08), uirevision="curves",
    )  # fmt: skip
    return figure


def reports_figure(reports: Sequence[tuple[int, float]]) -> go.Figure:
    """A trial's Trial.report values against their steps."""
    figure = go.Figure(
        go.Scatter(
            x=[step for step, _ in reports],
            y=[value for _, value in reports],
            mode="lines+markers",
            name="reported value",
        )
    )
    figure.update_layout(
        template="plotly_white", height=330, margin=dict(l=60, r=30, t=30, b=50),
        xaxis_title="step (Trial.report)", yaxis_title="reported value",
    )  # fmt: skip
    return figure
