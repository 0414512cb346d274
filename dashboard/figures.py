"""Pure figure builders: the named tuples of `dashboard.plot_data` in, plotly figures out.

They draw what they are given and choose nothing: which trials, series, fronts and landmarks
appear is decided by the data step.

One colour scale (DECOUPLING_SCALE) means the same thing everywhere: the decoupling degree, from
normal convolution (0) to depthwise separable (1). Studies are told apart by marker symbol and
line colour, never by that scale.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from dashboard.plot_data import (
    SPECTRUM_MEASURES,
    FrontsData,
    HistoryData,
    Points,
    SpectrumData,
    plot_text,
)

DECOUPLING_SCALE = "Viridis"
STUDY_COLORS = ("#222222", "#D62728", "#1F77B4", "#FF7F0E", "#9467BD", "#8C564B")
STUDY_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "hexagon", "cross")
COST_LABELS = {
    "macs": "MACs (multiply-accumulates per image; FLOPs = 2 x MACs)",
    "params": "parameters",
    "latency_ms": "latency, batch 1, median (ms)",
}
# Above this many points a trace is drawn with WebGL; below it SVG is sharper and lighter.
WEBGL_FROM = 1000


def decoupling_color(degree: float) -> str:
    """The colour of a decoupling degree on the shared scale (grey when unknown)."""
    if degree is None or not np.isfinite(degree):
        return "#BBBBBB"
    return sample_colorscale(DECOUPLING_SCALE, [float(np.clip(degree, 0, 1))])[0]


def decoupling_coloraxis() -> dict:
    return dict(
        colorscale=DECOUPLING_SCALE,
        cmin=0,
        cmax=1,
        colorbar=dict(
            title=dict(text="decoupling degree", side="right"),
            tickvals=[0, 0.5, 1],
            ticktext=["0 normal conv", "0.5 Inception-like", "1 depthwise sep."],
            len=0.75,
            thickness=14,
        ),
    )


def _markers(
    points: Points, mode: str = "markers", y: np.ndarray | None = None, **style
) -> go.Scatter | go.Scattergl:
    trace = go.Scattergl if len(points.x) >= WEBGL_FROM else go.Scatter
    return trace(
        x=points.x,
        y=points.y if y is None else y,
        mode=mode,
        customdata=points.click,
        hovertext=list(points.hover),
        hovertemplate="%{hovertext}<extra></extra>",
        **style,
    )


def fronts_figure(data: FrontsData | HistoryData) -> go.Figure:
    """Validation accuracy against the cost (log x), every study's Pareto front as a step line.

    Networks confirmed with more seeds (nas.confirm) are open black diamonds at their mean,
    with the 95% t interval as error bars. Complete trials are coloured by decoupling degree;
    pruned ones are open grey circles at the accuracy they had when stopped; failed and
    constraint-skipped trials have no accuracy and sit on a rug under the plot. Landmarks are
    stars labelled by name. Studies that nas.search did not make are drawn by their
    objectives, coloured by study, or (with one objective) as their history:
    `history_figure`.

    Args:
        data: what to draw, from `dashboard.plot_data.fronts_data`.
    """
    if isinstance(data, HistoryData):
        return history_figure(data)
    figure = go.Figure()
    several = len(data.studies) > 1
    for index, series in enumerate(data.studies):
        symbol = STUDY_SYMBOLS[index % len(STUDY_SYMBOLS)]
        prefix = f"{plot_text(series.study)}: " if several else ""
        complete = series.complete
        color = STUDY_COLORS[index % len(STUDY_COLORS)]
        colour = dict(color=complete.decoupling, coloraxis="coloraxis")
        figure.add_trace(
            _markers(
                complete,
                name=f"{prefix}complete ({len(complete.x)})",
                marker=dict(
                    **(colour if data.by_decoupling else dict(color=color, opacity=0.7)),
                    symbol=symbol,
                    size=8,
                    line=dict(width=0.5, color="white"),
                ),
            )
        )
        if len(series.pruned.x):
            figure.add_trace(
                _markers(
                    series.pruned,
                    name=f"{prefix}pruned ({len(series.pruned.x)}), accuracy when stopped",
                    marker=dict(symbol=f"{symbol}-open", size=7, color="#8C8C8C"),
                    opacity=0.8,
                )
            )
        if len(series.front.x):
            # Without a step line (more than two objectives: the front is not a staircase in
            # the first two), its trials are ringed instead.
            ringed = dict(symbol="circle-open", size=14, color=color, line=dict(width=2))
            figure.add_trace(
                go.Scatter(
                    x=series.front.x,
                    y=series.front.y,
                    mode="lines" if data.front_shape else "markers",
                    line=dict(shape=data.front_shape or "hv", width=2, color=color),
                    marker=None if data.front_shape else ringed,
                    name=f"{prefix}Pareto front ({len(series.front.x)})",
                    hoverinfo="skip",
                )
            )
    landmarks = data.landmarks
    if len(landmarks.names):
        star = _markers(
            landmarks.points,
            mode="markers+text",
            text=[plot_text(name) for name in landmarks.names],
            textposition=["top center" if up else "bottom center" for up in landmarks.label_above],
            textfont=dict(size=11, color="#222222", shadow="auto"),
            name="landmarks",
            marker=dict(
                symbol="star",
                size=15,
                color=landmarks.points.decoupling,
                coloraxis="coloraxis",
                line=dict(width=1.2, color="black"),
            ),
        )
        figure.add_trace(star)
    confirmed = data.confirmed
    if confirmed is not None and len(confirmed.x):
        # The means of more seeds beside each single search run: how much of a lead is noise.
        figure.add_trace(
            go.Scatter(
                x=confirmed.x,
                y=confirmed.y,
                mode="markers",
                error_y=dict(
                    type="data", symmetric=False, array=confirmed.plus,
                    arrayminus=confirmed.minus, thickness=1.5, width=4, color="#222222",
                ),
                marker=dict(symbol="diamond-open", size=11, color="#222222", line=dict(width=2)),
                customdata=confirmed.click,
                hovertext=list(confirmed.hover),
                hovertemplate="%{hovertext}<extra></extra>",
                name=f"confirmed mean ± 95% t ({len(confirmed.x)})",
            )
        )  # fmt: skip
    for marks, color, label in (
        (data.failed, "#D62728", "failed"),
        (data.skipped, "#8C8C8C", "skipped"),
    ):
        if len(marks.x):
            figure.add_trace(
                _markers(
                    marks,
                    y=np.zeros(len(marks.x)),
                    yaxis="y2",
                    name=f"{label} ({len(marks.x)}), no accuracy",
                    marker=dict(symbol="line-ns-open", size=14, color=color, line=dict(width=2)),
                )
            )
    has_rug = bool(len(data.failed.x) or len(data.skipped.x))
    _fronts_layout(figure, data, has_rug=has_rug)
    return figure


def plot_title(note: str, notice: str) -> dict:
    """The counts line above a plot, and under it the one line of what it cannot show."""
    text = "<br>".join(part for part in (note, notice and f"<i>{notice}</i>") if part)
    return dict(text=f"<span style='font-size:13px'>{text}</span>", x=0.01, y=0.985)


def _fronts_layout(figure: go.Figure, data: FrontsData, has_rug: bool) -> None:
    if data.x_title:
        xaxis = dict(type="log" if data.x_log else "linear", title=data.x_title, anchor="y2")
    else:
        xaxis = dict(
            type="log", title=f"{COST_LABELS[data.cost]}, log scale", anchor="y2", dtick="D2"
        )
    figure.update_layout(
        title=plot_title(data.note, data.notice),
        xaxis=xaxis,
        yaxis=dict(
            title=data.y_title or "validation accuracy", domain=[0.1 if has_rug else 0.0, 1.0]
        ),
        yaxis2=dict(
            domain=[0.0, 0.05],
            visible=has_rug,
            showticklabels=False,
            showgrid=False,
            zeroline=False,
            title=dict(text="no acc.", font=dict(size=10)),
            fixedrange=True,
        ),  # fmt: skip
        legend=dict(orientation="h", yanchor="bottom", y=1.01, x=0.0, font=dict(size=11)),
        margin=dict(l=60, r=20, t=90 if data.notice else 70, b=50),
        hovermode="closest",
        template="plotly_white",
        uirevision=data.cost,  # keep the user's zoom while live updates arrive
    )
    if data.by_decoupling:
        figure.update_layout(coloraxis=decoupling_coloraxis())
    if not has_rug:
        figure.update_layout(xaxis_anchor="y")
    if data.empty:
        _no_trial_yet(figure)


def _no_trial_yet(figure: go.Figure) -> None:
    figure.add_annotation(
        text="no finished trial yet: points appear here while the search runs",
        showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
    )  # fmt: skip


def history_figure(data: HistoryData) -> go.Figure:
    """A single-objective study's value per trial number and its best so far (a step line).

    Args:
        data: what to draw, from `dashboard.plot_data.fronts_data`.
    """
    figure = go.Figure()
    several = len(data.studies) > 1
    for index, series in enumerate(data.studies):
        color = STUDY_COLORS[index % len(STUDY_COLORS)]
        prefix = f"{plot_text(series.study)}: " if several else ""
        figure.add_trace(
            _markers(
                series.trials,
                name=f"{prefix}complete ({len(series.trials.x)})",
                marker=dict(color=color, size=7, opacity=0.6),
            )
        )
        figure.add_trace(
            go.Scatter(
                x=series.best.x, y=series.best.y, mode="lines", name=f"{prefix}best so far",
                line=dict(shape="hv", width=2, color=color), hoverinfo="skip",
            )
        )  # fmt: skip
    figure.update_layout(
        title=plot_title(data.note, data.notice),
        xaxis=dict(title="trial number"),
        yaxis=dict(title=data.y_title),
        legend=dict(orientation="h", yanchor="bottom", y=1.01, x=0.0, font=dict(size=11)),
        margin=dict(l=60, r=20, t=90, b=50),
        hovermode="closest",
        template="plotly_white",
        uirevision="history",
    )
    if data.empty:
        _no_trial_yet(figure)
    return figure


# Each spectrum measure's row: its axis title and scale.
SPECTRUM_AXES = {
    "val_acc": ("validation accuracy", "linear"),
    "macs": ("MACs", "log"),
    "latency_ms": ("latency (ms)", "log"),
}


def spectrum_figure(data: SpectrumData) -> go.Figure:
    """Accuracy, MACs and latency per spectrum position, spread over trials as box plots.

    Args:
        data: what to draw, from `dashboard.plot_data.spectrum_data`.
    """
    figure = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.04)
    for index, series in enumerate(data.studies):
        for row, box in enumerate(series.boxes, 1):
            figure.add_trace(
                go.Box(
                    x=[plot_text(position) for position in box.positions],
                    y=box.values,
                    name=plot_text(series.study),
                    legendgroup=series.study,
                    showlegend=row == 1,
                    offsetgroup=series.study,
                    boxpoints="all" if data.all_points else "outliers",
                    jitter=0.4,
                    pointpos=0,
                    marker=dict(size=4, opacity=0.6),
                    line=dict(width=1.2),
                    fillcolor="rgba(0,0,0,0)",
                    marker_color=STUDY_COLORS[index % len(STUDY_COLORS)],
                    customdata=box.click,
                    hovertemplate="trial %{customdata[1]}<br>%{y}<extra>"
                    + plot_text(series.study)
                    + "</extra>",
                ),
                row=row,
                col=1,
            )
    # Only other studies picked: no axis may call their (absent) values accuracy or MACs.
    only_others = bool(data.notice) and not data.studies
    for row, measure in enumerate(SPECTRUM_MEASURES, 1):
        title, scale = SPECTRUM_AXES[measure]
        figure.update_yaxes(title_text="" if only_others else title, type=scale, row=row, col=1)
        if scale == "log":
            figure.update_yaxes(dtick="D2", row=row, col=1)
    label = (
        "segments of the spatial convs (mixed: stages differ)"
        if data.by == "segments"
        else ("decoupling degree (0 normal conv .. 1 depthwise separable)")
    )
    categories = [plot_text(position) for position in data.order]
    figure.update_xaxes(categoryorder="array", categoryarray=categories, type="category")
    figure.update_xaxes(title_text="" if only_others else label, row=3, col=1)
    if data.notice:
        figure.update_layout(title=plot_title("", data.notice))
    if not data.latency_measured and not only_others:
        figure.add_annotation(
            text="no latency measured", showarrow=False, row=3, col=1,
            xref="x3 domain", yref="y3 domain", x=0.5, y=0.5,
        )  # fmt: skip
    figure.update_layout(
        boxmode="group",
        template="plotly_white",
        margin=dict(l=60, r=20, t=60 if data.notice else 30, b=50),
        legend=dict(orientation="h", y=1.04),
        height=760,
    )
    return figure
