"""The app shell and the pages: fronts, confirmed runs, spectrum, progress, importances, and
status pages (the trials page is `dashboard.trials_page`).

Layout functions only arrange components; the data and figures arrive through callbacks.
"""

from __future__ import annotations

from dash import dcc, html

from nas.storage import INVALID, MISSING, redact

PAGES = (
    ("/", "Fronts"),
    ("/confirmed", "Confirmed"),
    ("/spectrum", "Spectrum"),
    ("/progress", "Search progress"),
    ("/importance", "What mattered"),
    ("/trials", "Trials"),
)
GRAPH_CONFIG = {"displaylogo": False, "toImageButtonOptions": {"scale": 2}}
CREATE_COMMAND = "python -m nas.search --space inception_to_xception --trials 200"


def shell(storage_url: str, poll_ms: int) -> html.Div:
    """Header (title, storage, navigation, study picker), the page slot, and the poll timer."""
    return html.Div(
        [
            dcc.Location(id="url", refresh="callback-nav"),
            dcc.Interval(id="poll", interval=poll_ms),
            dcc.Store(id="storage-status", data=None),
            dcc.Store(id="versions", data={}),
            html.Header(
                [
                    html.Div(
                        [
                            html.H1("Spectrum NAS: normal conv → Inception → Xception"),
                            html.Span(
                                redact(storage_url), className="storage", title="storage URL"
                            ),
                            html.Span(id="live", className="live"),
                        ],
                        className="title-row",
                    ),
                    html.Div(
                        [
                            html.Nav(
                                [
                                    dcc.Link(label, href=path, className="nav")
                                    for path, label in PAGES
                                ]
                            ),
                            dcc.Dropdown(
                                id="studies",
                                multi=True,
                                placeholder="pick one or several studies",
                                className="studies",
                            ),
                        ],
                        className="nav-row",
                    ),
                ]
            ),
            dcc.Loading(
                html.Main(id="page"),
                delay_show=400,
                target_components={"page": "children"},
                type="dot",
            ),
        ],
        className="app",
    )


def status_page(kind: str, message: str, storage_url: str) -> html.Div:
    """What to show instead of plots: how to create a study, or why the storage is unreadable."""
    if kind == INVALID:
        return html.Div(
            [
                html.H2("This storage cannot be read"),
                html.P(message, className="error"),
                html.P(
                    "The dashboard only reads Optuna storages (the search writes one) and has "
                    "changed nothing. Start it with --storage pointing at the search's database."
                ),
            ],
            className="status-page",
        )
    where = "does not exist yet" if kind == MISSING else "holds no study yet"
    return html.Div(
        [
            html.H2("No study to show yet"),
            html.P(f"The storage {redact(storage_url)} {where}. Start a search:"),
            html.Pre(CREATE_COMMAND, className="command"),
            html.P(
                "Keep this page open: it checks the storage every few seconds and shows the "
                "first trials as soon as the search stores them. Pass the same storage URL to "
                "both commands if you use another one than the default sqlite:///studies.db."
            ),
        ],
        className="status-page",
    )


def _graph_page(label: str, choice: dcc.RadioItems, hint: str, graph: dcc.Graph) -> html.Div:
    """A row of controls (a labelled choice of what to show, a hint) above one graph."""
    controls = [html.Span(label, className="label"), choice, html.Span(hint, className="hint")]
    return html.Div([html.Div(controls, className="controls"), graph])


def _choice(control_id: str, labels: dict[str, str], value: str) -> dcc.RadioItems:
    """Inline radio items (value -> label) that remember the user's pick across visits."""
    options = [{"label": label, "value": key} for key, label in labels.items()]
    return dcc.RadioItems(
        id=control_id, options=options, value=value, inline=True, persistence=True
    )


def fronts_page() -> html.Div:
    return _graph_page(
        "cost axis",
        _choice(
            "cost-axis",
            {"macs": "MACs", "params": "parameters", "latency_ms": "measured latency"},
            "macs",
        ),
        "Click a point to open its trial. Stars are the landmark designs.",
        dcc.Graph(id="fronts-graph", config=GRAPH_CONFIG, style={"height": "640px"}),
    )


def confirmed_page() -> html.Div:
    return html.Div(
        [
            html.P(
                "The front's points and the landmarks retrained with more seeds "
                "(python -m nas.confirm), and trained to the end (--final). Each mean carries "
                "its 95% t interval over seeds; a difference counts only when its interval "
                "excludes zero. Click a point to open its trial.",
                className="hint",
            ),
            dcc.Graph(id="confirmed-graph", config=GRAPH_CONFIG, style={"height": "560px"}),
            dcc.Graph(id="final-graph", config=GRAPH_CONFIG, style={"height": "560px"}),
            html.Div(id="confirmed-tables"),
        ]
    )


def spectrum_page() -> html.Div:
    return _graph_page(
        "position on the spectrum",
        _choice(
            "spectrum-by",
            {"decoupling": "decoupling degree", "segments": "segments (mixed: stages differ)"},
            "decoupling",
        ),
        "Complete trials only; each box is the spread over trials.",
        dcc.Graph(id="spectrum-graph", config=GRAPH_CONFIG),
    )


def progress_page() -> html.Div:
    return html.Div(
        [dcc.Graph(id="progress-graph", config=GRAPH_CONFIG), html.Div(id="progress-table")]
    )


def importance_page() -> html.Div:
    return html.Div(
        [
            html.P(
                "Optuna's parameter importances per objective, over each study's complete "
                "trials (recomputed when the study changes).",
                className="hint",
            ),
            dcc.Loading(html.Div(id="importance-content")),
        ]
    )


def table(header: list[str], rows: list[list], class_name: str = "table") -> html.Table:
    """A plain HTML table; cells may be strings or components."""
    return html.Table(
        [
            html.Thead(html.Tr([html.Th(cell) for cell in header])),
            html.Tbody([html.Tr([html.Td(cell) for cell in row]) for row in rows]),
        ],
        className=class_name,
    )


def not_found(message: str) -> html.Div:
    return html.Div([html.H2("Not found"), html.P(message)], className="status-page")
