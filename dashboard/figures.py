"""Pure figure builders: plain data from `dashboard.data` in, plotly figures out.

One colour scale (DECOUPLING_SCALE) means the same thing everywhere: the decoupling degree, from
normal convolution (0) to depthwise separable (1). Studies are told apart by marker symbol and
line colour, never by that scale.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from dashboard.data import front_line, state_summary
from dashboard.trial_data import si

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


def _coloraxis() -> dict:
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


def hover_texts(rows: pd.DataFrame) -> list[str]:
    """Trial number, study, arch (one stage a line), accuracy and every cost with its unit."""
    texts = []
    for row in rows.itertuples(index=False):
        accuracy = row.val_acc if np.isfinite(row.val_acc) else row.last_acc
        label = "val acc" if np.isfinite(row.val_acc) else "val acc when stopped"
        name = f" ({row.landmark})" if row.landmark else ""
        texts.append(
            f"<b>trial {row.number}</b>{name} · {row.study} · {row.state.lower()}<br>"
            f"{row.arch.replace('-', '<br>  ')}<br>"
            f"{label} {accuracy:.4f}<br>"
            f"MACs {si(row.macs)} · params {si(row.params)} · "
            f"latency {'n/a' if not np.isfinite(row.latency_ms) else f'{row.latency_ms:.3f} ms'}"
            f"<br>decoupling {row.decoupling:.2f}"
        )
    return texts


def _click_data(rows: pd.DataFrame) -> np.ndarray | None:
    """[study, number] per point: what a click needs to open the trial's page."""
    return np.stack([rows["study"], rows["number"]], axis=1) if len(rows) else None


def _points(
    rows: pd.DataFrame, cost: str, y: str, mode: str = "markers", **style
) -> go.Scatter | go.Scattergl:
    trace = go.Scattergl if len(rows) >= WEBGL_FROM else go.Scatter
    return trace(
        x=rows[cost].to_numpy(),
        y=rows[y].to_numpy(),
        mode=mode,
        customdata=_click_data(rows),
        hovertext=hover_texts(rows),
        hovertemplate="%{hovertext}<extra></extra>",
        **style,
    )


def fronts_figure(frame: pd.DataFrame, cost: str = "macs") -> go.Figure:
    """Validation accuracy against `cost` (log x), every study's Pareto front as a step line.

    Complete trials are coloured by decoupling degree; pruned ones are open grey circles at
    the accuracy they had when stopped; failed and constraint-skipped trials have no accuracy
    and sit on a rug under the plot. Landmarks are stars labelled by name.
    """
    figure = go.Figure()
    has_cost = frame[cost].notna()
    complete = frame[(frame["state"] == "COMPLETE") & frame["val_acc"].notna() & has_cost]
    pruned = frame[(frame["state"] == "PRUNED") & frame["last_acc"].notna() & has_cost]
    no_accuracy = frame[frame["state"].isin(["FAIL", "PRUNED"]) & frame["last_acc"].isna()]
    rug = no_accuracy[no_accuracy[cost].notna()]
    studies = list(dict.fromkeys(frame["study"]))
    several = len(studies) > 1
    for index, study in enumerate(studies):
        symbol = STUDY_SYMBOLS[index % len(STUDY_SYMBOLS)]
        prefix = f"{study}: " if several else ""
        mine = complete[complete["study"] == study]
        figure.add_trace(
            _points(
                mine,
                cost,
                "val_acc",
                name=f"{prefix}complete ({len(mine)})",
                marker=dict(
                    color=mine["decoupling"].to_numpy(),
                    coloraxis="coloraxis",
                    symbol=symbol,
                    size=8,
                    line=dict(width=0.5, color="white"),
                ),
            )
        )
        stopped = pruned[pruned["study"] == study]
        if len(stopped):
            figure.add_trace(
                _points(
                    stopped,
                    cost,
                    "last_acc",
                    name=f"{prefix}pruned ({len(stopped)}), accuracy when stopped",
                    marker=dict(symbol=f"{symbol}-open", size=7, color="#8C8C8C"),
                    opacity=0.8,
                )
            )
        line = front_line(frame[frame["study"] == study], cost)
        if len(line):
            figure.add_trace(
                go.Scatter(
                    x=line[cost],
                    y=line["val_acc"],
                    mode="lines",
                    line=dict(shape="hv", width=2, color=STUDY_COLORS[index % len(STUDY_COLORS)]),
                    name=f"{prefix}Pareto front ({len(line)})",
                    hoverinfo="skip",
                )
            )
    landmarks = complete[complete["landmark"] != ""]
    if len(landmarks):
        star = _points(
            landmarks,
            cost,
            "val_acc",
            mode="markers+text",
            text=landmarks["landmark"].to_list(),
            # Alternate above/below along the cost axis so neighbouring names do not collide.
            textposition=[
                "top center" if rank % 2 == 0 else "bottom center"
                for rank in landmarks[cost].rank(method="first").astype(int)
            ],
            textfont=dict(size=11, color="#222222", shadow="auto"),
            name="landmarks",
            marker=dict(
                symbol="star",
                size=15,
                color=landmarks["decoupling"].to_numpy(),
                coloraxis="coloraxis",
                line=dict(width=1.2, color="black"),
            ),
        )
        figure.add_trace(star)
    for state, color, label in (("FAIL", "#D62728", "failed"), ("PRUNED", "#8C8C8C", "skipped")):
        marks = rug[rug["state"] == state]
        if len(marks):
            trace = _points(
                marks.assign(val_acc=np.nan),
                cost,
                "val_acc",
                name=f"{label} ({len(marks)}), no accuracy",
                marker=dict(symbol="line-ns-open", size=14, color=color, line=dict(width=2)),
            )
            trace.update(y=np.zeros(len(marks)), yaxis="y2")
            figure.add_trace(trace)
    _fronts_layout(figure, frame, cost, has_rug=len(rug) > 0, empty=len(complete) == 0)
    return figure


def _fronts_layout(figure: go.Figure, frame: pd.DataFrame, cost: str, has_rug: bool, empty: bool):
    missing = int((frame["state"].isin(["FAIL", "PRUNED"]) & frame["last_acc"].isna()).sum())
    note = state_summary(frame) if len(frame) else "no trials yet"
    if cost == "latency_ms" and frame["latency_ms"].isna().all() and len(frame):
        note += " · no trial has a measured latency"
    elif missing and not has_rug:
        note += f" · {missing} without accuracy or cost not shown"
    figure.update_layout(
        title=dict(text=f"<span style='font-size:13px'>{note}</span>", x=0.01, y=0.985),
        xaxis=dict(type="log", title=f"{COST_LABELS[cost]}, log scale", anchor="y2", dtick="D2"),
        yaxis=dict(title="validation accuracy", domain=[0.1 if has_rug else 0.0, 1.0]),
        yaxis2=dict(
            domain=[0.0, 0.05],
            visible=has_rug,
            showticklabels=False,
            showgrid=False,
            zeroline=False,
            title=dict(text="no acc.", font=dict(size=10)),
            fixedrange=True,
        ),  # fmt: skip
        coloraxis=_coloraxis(),
        legend=dict(orientation="h", yanchor="bottom", y=1.01, x=0.0, font=dict(size=11)),
        margin=dict(l=60, r=20, t=70, b=50),
        hovermode="closest",
        template="plotly_white",
        uirevision=cost,  # keep the user's zoom while live updates arrive
    )
    if not has_rug:
        figure.update_layout(xaxis_anchor="y")
    if empty:
        figure.add_annotation(
            text="no finished trial yet: points appear here while the search runs",
            showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
        )  # fmt: skip


def spectrum_figure(done: pd.DataFrame, order: list[str], by: str = "segments") -> go.Figure:
    """Accuracy, MACs and latency per spectrum position, spread over trials as box plots."""
    rows = [("val_acc", "validation accuracy", "linear"), ("macs", "MACs", "log")]
    rows.append(("latency_ms", "latency (ms)", "log"))
    figure = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.04)
    studies = list(dict.fromkeys(done["study"]))
    points = "all" if len(done) <= 2000 else "outliers"
    for index, study in enumerate(studies):
        mine = done[done["study"] == study]
        for row, (column, _, _) in enumerate(rows, 1):
            values = mine[mine[column].notna()]
            figure.add_trace(
                go.Box(
                    x=values["position"],
                    y=values[column],
                    name=study,
                    legendgroup=study,
                    showlegend=row == 1,
                    offsetgroup=study,
                    boxpoints=points,
                    jitter=0.4,
                    pointpos=0,
                    marker=dict(size=4, opacity=0.6),
                    line=dict(width=1.2),
                    fillcolor="rgba(0,0,0,0)",
                    marker_color=STUDY_COLORS[index % len(STUDY_COLORS)],
                    customdata=_click_data(values),
                    hovertemplate="trial %{customdata[1]}<br>%{y}<extra>" + study + "</extra>",
                ),
                row=row,
                col=1,
            )
    for row, (_, title, scale) in enumerate(rows, 1):
        figure.update_yaxes(title_text=title, type=scale, row=row, col=1)
        if scale == "log":
            figure.update_yaxes(dtick="D2", row=row, col=1)
    label = (
        "segments of the spatial convs (mixed: stages differ)"
        if by == "segments"
        else ("decoupling degree (0 normal conv .. 1 depthwise separable)")
    )
    figure.update_xaxes(categoryorder="array", categoryarray=order, type="category")
    figure.update_xaxes(title_text=label, row=3, col=1)
    if done["latency_ms"].isna().all():
        figure.add_annotation(
            text="no latency measured", showarrow=False, row=3, col=1,
            xref="x3 domain", yref="y3 domain", x=0.5, y=0.5,
        )  # fmt: skip
    figure.update_layout(
        boxmode="group",
        template="plotly_white",
        margin=dict(l=60, r=20, t=30, b=50),
        legend=dict(orientation="h", y=1.04),
        height=760,
    )
    return figure
