"""The trials page: a table of every trial (sorted, filtered and paged on the server, with a CSV
of what the filter keeps), the search parameters as parallel coordinates, and every trial's
validation curve on one chart. View functions here; `dashboard.callbacks` wires them.
"""

from __future__ import annotations

from dash import dash_table, dcc, html
from dash.dash_table.Format import Format, Scheme

from dashboard.data import STATES
from dashboard.layout import GRAPH_CONFIG
from dashboard.trials_data import TableColumn, TrialsCache
from dashboard.trials_figures import curves_figure, parcoords_figure
from dashboard.trials_plot_data import curves_data, parcoords_data
from dashboard.trials_table import (
    PAGE_SIZE,
    filter_rows,
    page_count,
    page_rows,
    sort_rows,
    table_csv,
)

FORMATS = {
    "int": Format(precision=0, scheme=Scheme.fixed),
    "si": Format(precision=3, scheme=Scheme.decimal_si_prefix),
    "4f": Format(precision=4, scheme=Scheme.fixed),
    "3f": Format(precision=3, scheme=Scheme.fixed),
    "2f": Format(precision=2, scheme=Scheme.fixed),
    "1f": Format(precision=1, scheme=Scheme.fixed),
    "g": Format(precision=6, scheme=Scheme.decimal_or_exponent),
}
FILTER_HINT = (
    "Click a row to open its trial. Sort by a column's arrows; filter in the row under the "
    "headers: 0.9 (equals), > 0.9, <= 2M, or text to look for (compl, xception)."
)


def trials_page() -> html.Div:
    """The table's controls, the table (its rows arrive by callback), and the two figures."""
    states = dcc.Checklist(
        id="trials-states",
        options=[{"label": state.lower(), "value": state} for state in STATES],
        value=list(STATES),
        inline=True,
        persistence=True,
    )
    controls = html.Div(
        [
            html.Span("states", className="label"),
            states,
            html.Button("Download CSV", id="trials-csv-button", n_clicks=0),
            dcc.Download(id="trials-csv"),
            html.Span(id="trials-count", className="hint"),
        ],
        className="controls trials-controls",
    )
    table = dash_table.DataTable(
        id="trials-table",
        columns=[],
        data=[],
        page_action="custom",
        page_current=0,
        page_size=PAGE_SIZE,
        sort_action="custom",
        sort_mode="multi",
        sort_by=[],
        filter_action="custom",
        filter_query="",
        filter_options={"case": "insensitive"},
        style_table={"overflowX": "auto"},
        style_cell={
            "fontSize": "13px",
            "padding": "3px 8px",
            "textAlign": "left",
            "maxWidth": "340px",
            "overflow": "hidden",
            "textOverflow": "ellipsis",
        },  # fmt: skip
        style_header={"fontWeight": "600", "backgroundColor": "#f2f4f7"},
        style_data_conditional=[
            {"if": {"column_id": "number"}, "color": "#1f6feb", "textDecoration": "underline"}
        ],
        css=[{"selector": "td.dash-cell", "rule": "cursor: pointer;"}],
    )
    return html.Div(
        [
            controls,
            html.P(FILTER_HINT, className="hint"),
            table,
            html.Div(id="trials-filter-error", className="error"),
            html.H3("Search parameters"),
            html.P(
                "One line per complete trial through the values it was given; drag along an "
                "axis to keep only the lines that cross it there.",
                className="hint",
            ),
            dcc.Graph(id="parcoords-graph", config=GRAPH_CONFIG),
            html.H3("Validation curves"),
            html.P("Every trial's curve; click one to open its trial.", className="hint"),
            dcc.Graph(id="curves-graph", config=GRAPH_CONFIG),
        ],
        className="trials",
    )


def table_columns(columns: tuple[TableColumn, ...]) -> list[dict]:
    """The DataTable's column definitions (numbers formatted in the browser, sorted here)."""
    defined = []
    for column in columns:
        spec = {"id": column.id, "name": column.label, "type": column.kind}
        if column.fmt in FORMATS:
            spec["format"] = FORMATS[column.fmt].to_plotly_json()
        defined.append(spec)
    return defined


def table_view(
    cache: TrialsCache,
    selection: list[str] | None,
    page: int | None,
    page_size: int | None,
    sort_by: list[dict] | None,
    query: str | None,
    states: list[str] | None,
) -> dict:
    """One page of the filtered, sorted table, and what the page says around it."""
    table = cache.table(selection or [])
    rows, error = filter_rows(table, query, states)
    rows = sort_rows(rows, sort_by)
    size = page_size or PAGE_SIZE
    pages = page_count(len(rows), size)
    page = min(max(page or 0, 0), pages - 1)
    return {
        "data": page_rows(rows, page, size),
        "columns": table_columns(table.columns),
        "page_count": pages,
        "page_current": page,
        "count": f"{len(rows)} of {len(table.rows)} trials",
        "error": f"filter not applied: {error}" if error else "",
    }


def csv_view(
    cache: TrialsCache,
    selection: list[str] | None,
    sort_by: list[dict] | None,
    query: str | None,
    states: list[str] | None,
):
    """The filtered, sorted table as a CSV download (every page, every column)."""
    table = cache.table(selection or [])
    rows, _ = filter_rows(table, query, states)
    names = "_".join(selection or []) or "trials"
    safe = "".join(char if char.isalnum() or char in "-_." else "_" for char in names)[:80]
    return dcc.send_string(table_csv(sort_rows(rows, sort_by), table.columns), f"{safe}.csv")


def row_click_data(data: list[dict] | None, active_cell: dict | None):
    """A clicked cell's row as a graph click's data ({"points": [{"customdata": [study, n]}]})."""
    try:
        row = data[active_cell["row"]]
        return {"points": [{"customdata": [str(row["study"]), int(row["number"])]}]}
    except (TypeError, KeyError, IndexError, ValueError):
        return None


def parcoords_view(cache: TrialsCache, selection: list[str] | None):
    return parcoords_figure(parcoords_data(cache.facts(selection or [])))


def curves_view(cache: TrialsCache, selection: list[str] | None):
    return curves_figure(curves_data(cache.facts(selection or [])))
