"""The trial page: facts, parameters, validation curve (or Trial.report values), block diagram,
per-block cost table, code download."""

from __future__ import annotations

from dash import dcc, html

from dashboard.figures import decoupling_color
from dashboard.layout import GRAPH_CONFIG, table
from dashboard.search_figures import curve_figure
from dashboard.trial_data import Op, StageView, TrialDetails, si
from dashboard.trials_figures import reports_figure


def _op_box(op: Op) -> html.Div:
    style = {}
    if op.kind == "spatial":
        style = {"background": decoupling_color(op.decoupling)}
        style["color"] = "#111" if op.decoupling > 0.55 else "#fff"
    return html.Div(
        [html.Div(op.label, className="op-label"), html.Div(op.detail, className="op-detail")],
        className=f"op op-{op.kind}",
        style=style,
    )


def _stage_card(view: StageView) -> html.Div:
    branches = []
    for branch in view.branches:
        steps: list = [html.Div(f"{branch.name} branch · {branch.channels} ch", className="bname")]
        for index, op in enumerate(branch.ops):
            if index:
                steps.append(html.Div("↓", className="down"))
            steps.append(_op_box(op))
        branches.append(html.Div(steps, className="branch"))
    footer = []
    if view.merge:
        footer.append(html.Div(view.merge, className="merge"))
    if view.residual:
        footer.append(html.Div(f"+ residual: {view.residual}", className="residual"))
    footer.append(html.Div("ReLU", className="merge"))
    return html.Div(
        [
            html.Div(view.title, className="stage-title"),
            html.Div(view.summary, className="stage-summary"),
            html.Div(branches, className="branches"),
            *footer,
        ],
        className="stage-card",
    )


def block_diagram(stages: tuple[StageView, ...], stem: str, details: TrialDetails) -> html.Div:
    """Stem (`stem`: its description, see trial_data.stem_text) -> one card per stage (its
    first block, branch by branch) -> head."""
    items: list = [
        html.Div(
            [
                html.Div("stem", className="stage-title"),
                html.Div(stem),
            ],
            className="node",
        )
    ]
    for view in stages:
        items += [html.Div("→", className="arrow"), _stage_card(view)]
    items += [
        html.Div("→", className="arrow"),
        html.Div(
            [
                html.Div("head", className="stage-title"),
                html.Div("global average pool"),
                html.Div(f"linear → {details.num_classes} classes"),
            ],
            className="node",
        ),
    ]
    legend = html.Div(
        [
            html.Span("1x1 channel mix", className="op-pointwise key"),
            html.Span("spatial conv, coloured by its segments:", className="key-text"),
            html.Span("1 segment (normal)", className="key", style=_key(0.0)),
            html.Span("grouped", className="key", style=_key(0.5)),
            html.Span("depthwise", className="key", style=_key(1.0)),
            html.Span("pool", className="op-pool key"),
        ],
        className="legend",
    )
    return html.Div([html.Div(items, className="diagram"), legend])


def _key(degree: float) -> dict:
    return {"background": decoupling_color(degree), "color": "#111" if degree > 0.55 else "#fff"}


def cost_rows(costs) -> list[list]:
    """Rows of the per-block cost table with units, and a bar for each part's share."""
    rows = []
    for part in costs.itertuples(index=False):
        share = float(part[3])
        bar = html.Div(
            [
                html.Div(style={"width": f"{100 * share:.1f}%"}, className="bar"),
                html.Span(f"{share:.1%}", className="share-text"),
            ],
            className="share",
        )
        rows.append(
            [part.part, f"{int(part.MACs):,}", si(float(part.MACs)), f"{int(part.params):,}", bar]
        )
    return rows


def trial_page(
    details: TrialDetails,
    stem: str | None,
    stages: tuple[StageView, ...],
    costs,
    cost_error: str,
) -> html.Div:
    """The whole page for one trial; `stem` describes the stem (None without an architecture);
    `costs` is a cost table frame or None (see cost_error)."""
    title = f"Trial {details.number} of {details.study}"
    facts = table(["", ""], [list(fact) for fact in details.facts], "table facts")
    facts_column = [html.H3("Facts"), facts]
    if details.params:
        rows = [list(param) for param in details.params]
        facts_column += [html.H3("Parameters"), table(["", ""], rows, "table facts params")]
    reports = [
        html.H3("Reported values (Trial.report)"),
        dcc.Graph(figure=reports_figure(details.reports), config=GRAPH_CONFIG, id="reports"),
    ]
    # A plain Optuna trial has no stored curve: what it reported takes the curve's place.
    if details.val_curve or (details.ours and not details.reports):
        curve = [
            html.H3("Validation curve"),
            dcc.Graph(figure=curve_figure(details), config=GRAPH_CONFIG, id="curve"),
        ]
        curve += reports if details.reports else []
    else:
        curve = reports if details.reports else []
    parts: list = [
        dcc.Link("← back to the fronts", href="/", className="back"),
        html.H2([title, html.Span(details.state.lower(), className=f"badge {details.state}")]),
        html.Pre(details.arch or "(no architecture stored)", className="arch"),
        html.Div(
            [
                html.Div(facts_column, className="col"),
                html.Div(curve, className="col wide"),
            ],
            className="row",
        ),
    ]
    parts.append(
        html.Div(
            [
                html.Button("Download as PyTorch code", id="download-button", n_clicks=0),
                dcc.Download(id="download"),
                html.Span(id="download-error", className="error"),
            ],
            className="download",
        )
    )
    if stages and stem is not None:
        parts += [
            html.H3("Architecture (first block of each stage)"),
            block_diagram(stages, stem, details),
        ]
    parts.append(html.H3("Cost per block"))
    if costs is not None:
        header = ["part", "MACs (multiply-accumulates)", "MACs", "parameters", "share of MACs"]
        parts.append(table(header, cost_rows(costs), "table costs"))
        parts.append(
            html.P("FLOPs = 2 x MACs. Counted by ptflops on one image.", className="hint")
        )
    else:
        parts.append(html.P(cost_error, className="hint"))
    return html.Div(parts, className="trial")
