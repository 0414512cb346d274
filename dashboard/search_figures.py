"""Pure figure builders for how a search went: progress, parameter importances, a trial's curve.

Studies keep the line colours of `dashboard.figures`; trial states have colours of their own.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.figures import STUDY_COLORS
from dashboard.trial_data import TrialDetails

STATE_COLORS = {
    "COMPLETE": "#2CA02C", "PRUNED": "#FF7F0E", "SKIPPED": "#BCBD22", "FAIL": "#D62728",
    "RUNNING": "#1F77B4", "WAITING": "#7F7F7F",
}  # fmt: skip


def _study_line(figure, frame, y, study, index, row=None, col=None):
    kwargs = dict(row=row, col=col) if row else {}
    figure.add_trace(
        go.Scatter(
            x=frame["number"],
            y=frame[y],
            mode="lines",
            line=dict(shape="hv", color=STUDY_COLORS[index % len(STUDY_COLORS)]),
            name=study,
        ),
        **kwargs,
    )


def progress_figure(hv: pd.DataFrame, counts: pd.DataFrame, hours: pd.DataFrame) -> go.Figure:
    """Hypervolume and cumulative trial hours against trial number; trials per state."""
    figure = make_subplots(
        rows=1,
        cols=3,
        column_widths=[0.42, 0.33, 0.25],
        horizontal_spacing=0.08,
        subplot_titles=(
            "hypervolume: val acc x log-MACs<br>(normalized, 10^4..10^9 MACs; max 1)",
            "time spent: cumulative trial hours",
            "trials per state",
        ),
    )
    for index, study in enumerate(dict.fromkeys(hv["study"])):
        _study_line(figure, hv[hv["study"] == study], "hypervolume", study, index, 1, 1)
        line = hours[hours["study"] == study]
        figure.add_trace(
            go.Scatter(
                x=line["number"],
                y=line["hours"],
                mode="lines",
                showlegend=False,
                name=study,
                line=dict(color=STUDY_COLORS[index % len(STUDY_COLORS)]),
            ),  # fmt: skip
            row=1,
            col=2,
        )
    for state in dict.fromkeys(counts["state"]):
        mine = counts[counts["state"] == state]
        figure.add_trace(
            go.Bar(
                x=mine["study"],
                y=mine["trials"],
                name=state.lower(),
                marker_color=STATE_COLORS.get(state, "#7F7F7F"),
                texttemplate="%{y}",
                textangle=0,
            ),  # fmt: skip
            row=1,
            col=3,
        )
    figure.update_xaxes(title_text="trial number", row=1, col=1)
    figure.update_xaxes(title_text="trial number", row=1, col=2)
    figure.update_yaxes(title_text="hypervolume (higher is better)", row=1, col=1)
    figure.update_yaxes(title_text="hours", row=1, col=2)
    figure.update_layout(
        barmode="stack",
        template="plotly_white",
        height=420,
        margin=dict(l=60, r=20, t=70, b=50),
        legend=dict(orientation="h", y=-0.22, x=0.0),
        font=dict(size=12),
    )
    figure.update_annotations(font_size=13)
    return figure


OBJECTIVE_TITLES = {"val_acc": "validation accuracy", "macs": "MACs", "latency_ms": "latency"}


def importance_figure(by_objective: dict[str, dict[str, float]], top: int = 12) -> go.Figure:
    """One horizontal bar chart per objective: the `top` most important parameters."""
    objectives = list(by_objective)
    titles = [f"for {OBJECTIVE_TITLES.get(name, name)}" for name in objectives]
    figure = make_subplots(
        rows=1, cols=max(1, len(objectives)), subplot_titles=titles or ("",),
        horizontal_spacing=0.18,
    )  # fmt: skip
    for col, objective in enumerate(objectives, 1):
        ranked = sorted(by_objective[objective].items(), key=lambda item: item[1])[-top:]
        figure.add_trace(
            go.Bar(
                x=[value for _, value in ranked],
                y=[name for name, _ in ranked],
                orientation="h",
                marker_color="#1F77B4",
                showlegend=False,
                hovertemplate="%{y}: %{x:.3f}<extra>" + objective + "</extra>",
            ),  # fmt: skip
            row=1,
            col=col,
        )
        figure.update_xaxes(title_text="importance (normalized)", row=1, col=col)
    figure.update_layout(
        template="plotly_white", height=80 + 26 * top, margin=dict(l=110, r=20, t=40, b=50)
    )
    return figure


def curve_figure(details: TrialDetails) -> go.Figure:
    """Validation accuracy per epoch, the training loss on a second axis, and where it stopped."""
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    epochs = list(range(1, len(details.val_curve) + 1))
    figure.add_trace(
        go.Scatter(x=epochs, y=details.val_curve, mode="lines+markers", name="validation accuracy")
    )
    if details.loss_curve:
        figure.add_trace(
            go.Scatter(
                x=list(range(1, len(details.loss_curve) + 1)),
                y=details.loss_curve,
                mode="lines",
                name="training loss",
                line=dict(dash="dot", color="#7F7F7F"),
            ),  # fmt: skip
            secondary_y=True,
        )
    if details.pruned_at is not None:
        figure.add_vline(x=details.pruned_at + 1, line_dash="dash", line_color="#D62728")
        figure.add_annotation(
            x=details.pruned_at + 1, y=1, yref="paper", text="pruned", showarrow=False,
            font=dict(color="#D62728"), xanchor="left",
        )  # fmt: skip
    if not epochs:
        figure.add_annotation(
            text="no validation curve (the trial stopped before training)", showarrow=False,
            xref="paper", yref="paper", x=0.5, y=0.5,
        )  # fmt: skip
    figure.update_xaxes(title_text="epoch", dtick=1)
    figure.update_yaxes(title_text="validation accuracy", secondary_y=False)
    figure.update_yaxes(title_text="training loss", secondary_y=True, showgrid=False)
    figure.update_layout(
        template="plotly_white", height=330, margin=dict(l=60, r=60, t=30, b=50),
        legend=dict(orientation="h", y=1.12),
    )  # fmt: skip
    return figure
