"""Pure figure builders for how a search went: progress, parameter importances, a trial's curve.

Each draws a named tuple of `dashboard.plot_data` (the curve: the trial page's `TrialDetails`)
and chooses nothing. Studies keep the line colours of `dashboard.figures`; trial states have
colours of their own.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.figures import STUDY_COLORS
from dashboard.plot_data import ImportanceData, ProgressData, plot_text
from dashboard.trial_data import TrialDetails
from nas._settings import OBJECTIVE_LABELS

STATE_COLORS = {
    "COMPLETE": "#2CA02C", "PRUNED": "#FF7F0E", "SKIPPED": "#BCBD22", "FAIL": "#D62728",
    "RUNNING": "#1F77B4", "WAITING": "#7F7F7F",
}  # fmt: skip


def progress_figure(data: ProgressData) -> go.Figure:
    """Hypervolume and cumulative trial hours against trial number; trials per state.

    Args:
        data: what to draw, from `dashboard.plot_data.progress_data`.
    """
    reports = data.panel == "reports"
    figure = make_subplots(
        rows=1,
        cols=3,
        column_widths=[0.42, 0.33, 0.25],
        horizontal_spacing=0.08,
        subplot_titles=(
            "reported values (Trial.report) per step"
            if reports
            else "hypervolume: val acc x log-MACs<br>(normalized, 10^4..10^9 MACs; max 1)",
            "time spent: cumulative trial hours",
            "trials per state",
        ),
    )
    for index, series in enumerate(data.studies):
        color = STUDY_COLORS[index % len(STUDY_COLORS)]
        if series.hypervolume is not None:
            figure.add_trace(
                go.Scatter(
                    x=series.numbers,
                    y=series.hypervolume,
                    mode="lines",
                    line=dict(shape="hv", color=color),
                    name=plot_text(series.study),
                ),
                row=1,
                col=1,
            )
        figure.add_trace(
            go.Scatter(
                x=series.numbers,
                y=series.hours,
                mode="lines",
                showlegend=series.hypervolume is None and not reports,
                name=plot_text(series.study),
                line=dict(color=color),
            ),  # fmt: skip
            row=1,
            col=2,
        )
    for index, curves in enumerate(data.curves):
        figure.add_trace(
            go.Scatter(
                x=curves.steps, y=curves.values, mode="lines", connectgaps=False,
                line=dict(width=1, color=STUDY_COLORS[index % len(STUDY_COLORS)]),
                opacity=0.6, name=f"{plot_text(curves.study)} ({curves.trials} trials)",
            ),
            row=1,
            col=1,
        )  # fmt: skip
    if reports and not any(curves.trials for curves in data.curves):
        figure.add_annotation(
            text="no trial reported a value", showarrow=False, row=1, col=1,
            xref="x domain", yref="y domain", x=0.5, y=0.5,
        )  # fmt: skip
    for bars in data.states:
        figure.add_trace(
            go.Bar(
                x=[plot_text(study) for study in bars.studies],
                y=bars.trials,
                name=bars.state.lower(),
                marker_color=STATE_COLORS.get(bars.state, "#7F7F7F"),
                texttemplate="%{y}",
                textangle=0,
            ),  # fmt: skip
            row=1,
            col=3,
        )
    figure.update_xaxes(title_text="step" if reports else "trial number", row=1, col=1)
    figure.update_xaxes(title_text="trial number", row=1, col=2)
    first = "reported value" if reports else "hypervolume (higher is better)"
    figure.update_yaxes(title_text=first, row=1, col=1)
    figure.update_yaxes(title_text="hours", row=1, col=2)
    if data.notice:
        figure.update_layout(
            title=dict(text=f"<i style='font-size:13px'>{data.notice}</i>", x=0.01, y=0.985)
        )
    figure.update_layout(
        barmode="stack",
        template="plotly_white",
        height=420,
        margin=dict(l=60, r=20, t=100 if data.notice else 70, b=50),
        legend=dict(orientation="h", y=-0.22, x=0.0),
        font=dict(size=12),
    )
    figure.update_annotations(font_size=13)
    return figure


def importance_figure(data: ImportanceData) -> go.Figure:
    """One horizontal bar chart per objective: its most important parameters, ranked.

    Args:
        data: what to draw, from `dashboard.plot_data.importance_data`.
    """
    titles = [
        f"for {OBJECTIVE_LABELS.get(bars.objective, plot_text(bars.objective))}"
        for bars in data.objectives
    ]
    figure = make_subplots(
        rows=1, cols=max(1, len(data.objectives)), subplot_titles=titles or ("",),
        horizontal_spacing=0.18,
    )  # fmt: skip
    for col, bars in enumerate(data.objectives, 1):
        figure.add_trace(
            go.Bar(
                x=list(bars.importances),
                y=[plot_text(param) for param in bars.params],
                orientation="h",
                marker_color="#1F77B4",
                showlegend=False,
                hovertemplate="%{y}: %{x:.3f}<extra>" + plot_text(bars.objective) + "</extra>",
            ),  # fmt: skip
            row=1,
            col=col,
        )
        figure.update_xaxes(title_text="importance (normalized)", row=1, col=col)
    figure.update_layout(
        template="plotly_white", height=80 + 26 * data.top, margin=dict(l=110, r=20, t=40, b=50)
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
