"""Callbacks: each a few lines around a view function that tests call directly.

View functions take the app's `FrameCache` and plain values (what Dash passes) and return plain
values or components; `register_callbacks` only wires them to component ids.
"""

from __future__ import annotations

import datetime as dt
import shlex
from collections.abc import Callable
from urllib.parse import parse_qs, urlencode

from dash import Dash, Input, Output, State, ctx, dcc, html, no_update
from sqlalchemy.exc import SQLAlchemyError

from dashboard import layout
from dashboard.confirm_data import (
    TABLE_HEADER,
    ConfirmedData,
    confirmed_data,
    confirmed_overlay,
)
from dashboard.confirm_figures import confirmed_figure, final_figure
from dashboard.data import FrameCache, Importances, param_importances
from dashboard.figures import fronts_figure, spectrum_figure
from dashboard.plot_data import (
    FrontsData,
    fronts_data,
    importance_data,
    progress_data,
    spectrum_data,
)
from dashboard.search_figures import importance_figure, progress_figure
from dashboard.trial_data import (
    MAX_COUNTED_WEIGHTS,
    arch_diagram,
    conv_weights,
    cost_table,
    si,
    stem_text,
    trial_details,
)
from dashboard.trial_page import trial_page
from dashboard.trials_data import TrialsCache
from dashboard.trials_page import (
    csv_view,
    curves_view,
    parcoords_view,
    row_click_data,
    table_view,
    trials_page,
)
from nas.export import code_for_trial
from nas.storage import OK, redact


def poll_view(cache: FrameCache, selection: list[str] | None) -> dict:
    """The storage's status, its studies, the default pick, and a version per picked study."""
    status = cache.reader.status()
    result = {"status": {"kind": status.kind, "message": status.message}, "options": []}
    result.update(value=None, versions={}, live=f"checked {dt.datetime.now():%H:%M:%S}")
    if status.kind != OK:
        return result
    try:
        infos = cache.infos()
        picked = selection if selection is not None else list(infos)[-1:]
        result["versions"] = cache.versions(picked)
    except SQLAlchemyError as error:  # e.g. locked by a writer: keep what is shown, retry
        reason = str(getattr(error, "orig", None) or error).splitlines()[0]
        result.update(options=None, versions=None, live=f"storage busy ({reason}); retrying")
        return result
    result["options"] = [
        {"label": _study_label(info.name, info.attrs), "value": name}
        for name, info in infos.items()
    ]
    result["value"] = picked
    trials = sum(int(version.split("/")[0]) for version in result["versions"].values())
    result["live"] = f"live · {trials} trials · checked {dt.datetime.now():%H:%M:%S}"
    return result


def _study_label(name: str, attrs: dict) -> str:
    # A user's data is named by its folder or file, not by the whole path it was read from.
    shown = (attrs.get("space"), attrs.get("dataset_name") or attrs.get("dataset"))
    about = ", ".join(str(value) for value in shown if value)
    return f"{name} ({about})" if about else name


def trial_href(click_data: dict | None) -> str | None:
    """The trial page URL of a clicked point (its customdata is [study, number])."""
    try:
        study, number = click_data["points"][0]["customdata"][:2]
    except (TypeError, KeyError, IndexError, ValueError):
        return None
    return "/trial?" + urlencode({"study": study, "number": int(number)})


def parse_trial_search(search: str | None) -> tuple[str, int] | None:
    query = parse_qs((search or "").lstrip("?"))
    try:
        return query["study"][0], int(query["number"][0])
    except (KeyError, IndexError, ValueError):
        return None


def route_view(cache: FrameCache, pathname: str, search: str, status: dict | None):
    """The page for a URL, or the status page while the storage is not usable."""
    status = status or {"kind": cache.reader.status().kind, "message": ""}
    if status["kind"] != OK:
        return layout.status_page(status["kind"], status["message"], cache.reader.url)
    pages = {
        "/": layout.fronts_page,
        "/confirmed": layout.confirmed_page,
        "/spectrum": layout.spectrum_page,
        "/progress": layout.progress_page,
        "/importance": layout.importance_page,
        "/trials": trials_page,
    }
    if pathname in pages:
        return pages[pathname]()
    if pathname == "/trial":
        target = parse_trial_search(search)
        if target is None:
            return layout.not_found("a trial URL looks like /trial?study=NAME&number=N")
        return trial_view(cache, *target)
    return layout.not_found(f"no page at {pathname}")


def trial_view(cache: FrameCache, study: str, number: int):
    from nas import Arch

    info = cache.infos().get(study)
    trial = None
    if info is not None:
        trial = next((t for t in cache.reader.trials(study) if t.number == number), None)
    if trial is None:
        return layout.not_found(f"no trial {number} in study {study!r}")
    details = trial_details(info, trial)
    stem, stages, costs, error = None, (), None, "no architecture stored for this trial"
    if details.arch:
        try:
            arch = Arch.parse(details.arch)
            in_chs = details.input_shape[0] if details.input_shape else None
            stem, stages = stem_text(arch, in_chs), arch_diagram(arch)
            error = "the study does not record its input shape, so costs cannot be counted"
            weights = conv_weights(arch)
            if weights > MAX_COUNTED_WEIGHTS:
                error = (
                    f"costs not counted: the network has {si(weights)} conv weights, more than "
                    f"the {si(MAX_COUNTED_WEIGHTS)} this page will build"
                )
            elif details.input_shape:
                costs = cost_table(details.arch, details.input_shape, details.num_classes)
        except (ValueError, RuntimeError) as exc:
            error = f"cannot draw or count this architecture: {exc}"
    return trial_page(details, stem, stages, costs, error)


def fronts_view(cache: FrameCache, selection: list[str] | None, cost: str):
    names, cost = selection or [], cost or "macs"
    frame = cache.frame(names)
    data = fronts_data(frame, cost, cache.unreadable(names))
    if isinstance(data, FrontsData):  # confirmed means with their intervals, where stored
        confirmed = confirmed_data(frame, cache.stored_runs(names))
        data = data._replace(confirmed=confirmed_overlay(confirmed, frame, cost))
    return fronts_figure(data)


def spectrum_view(cache: FrameCache, selection: list[str] | None, by: str):
    return spectrum_figure(spectrum_data(cache.frame(selection or []), by or "decoupling"))


def progress_view(cache: FrameCache, selection: list[str] | None):
    data = progress_data(cache.frame(selection or []))
    table = layout.table(list(data.header), [list(row) for row in data.table])
    return progress_figure(data), table


def confirmed_view(cache: FrameCache, selection: list[str] | None):
    """The Confirmed page's two figures, and per study its table and verdicts."""
    names = selection or []
    data = confirmed_data(cache.frame(names), cache.stored_runs(names))
    return confirmed_figure(data), final_figure(data), confirmed_tables(data, cache.reader.url)


def confirmed_tables(data: ConfirmedData, storage_url: str) -> list:
    """Per study: what was run, the table, each searched point against the landmarks; the
    command for a study with no run yet."""
    children: list = []
    for study in data.studies:
        children += [html.H3(study.study), html.P(study.about, className="hint")]
        children.append(layout.table(list(TABLE_HEADER), [list(row) for row in study.table]))
        for title, verdicts in (
            ("On the proxy (confirmed validation accuracy)", study.verdicts),
            ("Trained to the end (final test accuracy)", study.final_verdicts),
        ):
            if verdicts:
                children += [html.H4(title), html.Ul([html.Li(text) for text in verdicts])]
    for name in data.unconfirmed:
        where = f"--storage {shlex.quote(redact(storage_url))} --study {shlex.quote(name)}"
        command = f"python -m nas.confirm {where}"
        children += [
            html.H3(name),
            html.P(
                "No confirmation run is stored for this study yet: its front is single-seed "
                "proxy results. Retrain its front's points and landmarks with more seeds "
                "(add --final to train them to the end):",
                className="hint",
            ),
            html.Pre(command, className="command"),
        ]
    return children or [html.P("Pick a study above.", className="hint")]


# A graph page: its graph, the control that picks what it shows, and the view that draws it.
FIGURE_VIEWS = (
    ("fronts-graph", "cost-axis", fronts_view),
    ("spectrum-graph", "spectrum-by", spectrum_view),
)


def _register_figure(app: Dash, cache: FrameCache, graph: str, control: str, view: Callable):
    """Redraw `graph` when its studies change or are picked or `control` moves; a click on a
    point opens that trial's page."""

    @app.callback(
        Output(graph, "figure"),
        Input("versions", "data"),
        Input("studies", "value"),
        Input(control, "value"),
    )
    def redraw(_versions, selection, choice):
        return view(cache, selection, choice)

    _open_trial_on_click(app, graph)


def _open_trial_on_click(app: Dash, graph: str) -> None:
    """A click on a point of `graph` opens that trial's page."""
    app.callback(
        Output("url", "href", allow_duplicate=True),
        Input(graph, "clickData"),
        prevent_initial_call=True,
    )(lambda click_data: trial_href(click_data) or no_update)


def importance_view(cache: FrameCache, selection: list[str] | None, memo: dict) -> list:
    """A figure (or a reason) per picked study; `memo` keeps each study's latest result."""
    children: list = []
    infos = cache.infos()
    versions = cache.versions(selection or [])
    for name, version in versions.items():
        if memo.get(name, (None,))[0] != version:
            memo[name] = (version, param_importances(cache.reader.study(name), infos[name]))
        result: Importances = memo[name][1]
        children.append(html.H3(name))
        if result.message:
            children.append(html.P(result.message, className="hint"))
        if result.by_objective:
            figure = importance_figure(importance_data(result.by_objective))
            children.append(dcc.Graph(figure=figure))
    return children or [html.P("Pick a study above.", className="hint")]


def download_view(cache: FrameCache, search: str) -> tuple:
    """(dcc.Download data, error text) for the trial in the URL: `nas.export`'s file of it."""
    target = parse_trial_search(search)
    if target is None:
        return no_update, "no trial in the URL"
    name, number = target
    try:
        code = code_for_trial(cache.reader.study(name), number)
    except KeyError:
        return no_update, f"export failed: no study {name!r} in the storage"
    except Exception as error:  # noqa: BLE001 - shown to the user instead of a broken button
        return no_update, f"export failed: {error}"
    return dcc.send_string(code, f"{name}_trial{number}.py"), ""


def _changed(new, old):
    return no_update if new is None or new == old else new


# A change of these (not a page turn or a poll) shows the table's first page again.
TABLE_RESETS = ("studies.value", "trials-states.value", "trials-table.sort_by")
TABLE_RESETS += ("trials-table.filter_query",)


def _register_trials(app: Dash, trials: TrialsCache) -> None:
    """The trials page: the table's page and CSV, clicks on rows and curves, and its figures."""

    @app.callback(
        Output("trials-table", "data"),
        Output("trials-table", "columns"),
        Output("trials-table", "page_count"),
        Output("trials-table", "page_current"),
        Output("trials-count", "children"),
        Output("trials-filter-error", "children"),
        Input("versions", "data"),
        Input("studies", "value"),
        Input("trials-table", "page_current"),
        Input("trials-table", "page_size"),
        Input("trials-table", "sort_by"),
        Input("trials-table", "filter_query"),
        Input("trials-states", "value"),
        State("trials-table", "columns"),
    )
    def table(_versions, selection, page, size, sort_by, query, states, columns):
        if any(prop in TABLE_RESETS for prop in ctx.triggered_prop_ids):
            page = 0
        view = table_view(trials, selection, page, size, sort_by, query, states)
        return (
            view["data"],
            _changed(view["columns"], columns),
            view["page_count"],
            view["page_current"],
            view["count"],
            view["error"],
        )

    @app.callback(
        Output("trials-csv", "data"),
        Input("trials-csv-button", "n_clicks"),
        State("studies", "value"),
        State("trials-table", "sort_by"),
        State("trials-table", "filter_query"),
        State("trials-states", "value"),
        prevent_initial_call=True,
    )
    def download_csv(_clicks, selection, sort_by, query, states):
        return csv_view(trials, selection, sort_by, query, states)

    @app.callback(
        Output("url", "href", allow_duplicate=True),
        Input("trials-table", "active_cell"),
        State("trials-table", "data"),
        prevent_initial_call=True,
    )
    def open_row(active_cell, data):
        return trial_href(row_click_data(data, active_cell)) or no_update

    for graph, view in (("parcoords-graph", parcoords_view), ("curves-graph", curves_view)):
        app.callback(
            Output(graph, "figure"), Input("versions", "data"), Input("studies", "value")
        )(lambda _versions, selection, view=view: view(trials, selection))

    _open_trial_on_click(app, "curves-graph")


def register_callbacks(app: Dash, cache: FrameCache) -> None:
    """Wire every view to its components (pages come and go; ids may be absent)."""
    memo: dict = {}

    @app.callback(
        Output("storage-status", "data"),
        Output("studies", "options"),
        Output("studies", "value"),
        Output("versions", "data"),
        Output("live", "children"),
        Input("poll", "n_intervals"),
        State("studies", "value"),
        State("studies", "options"),
        State("storage-status", "data"),
        State("versions", "data"),
    )
    def poll(_tick, selection, options, status, versions):
        new = poll_view(cache, selection)
        value = new["value"] if selection is None and new["value"] is not None else no_update
        return (
            _changed(new["status"], status),
            _changed(new["options"], options),
            value,
            _changed(new["versions"], versions),
            new["live"],
        )

    @app.callback(
        Output("page", "children"),
        Input("url", "pathname"),
        Input("url", "search"),
        Input("storage-status", "data"),
    )
    def route(pathname, search, status):
        return route_view(cache, pathname or "/", search, status)

    for graph, control, view in FIGURE_VIEWS:
        _register_figure(app, cache, graph, control, view)

    @app.callback(
        Output("confirmed-graph", "figure"),
        Output("final-graph", "figure"),
        Output("confirmed-tables", "children"),
        Input("versions", "data"),
        Input("studies", "value"),
    )
    def confirmed_page(_versions, selection):
        return confirmed_view(cache, selection)

    for graph in ("confirmed-graph", "final-graph"):
        _open_trial_on_click(app, graph)

    @app.callback(
        Output("progress-graph", "figure"),
        Output("progress-table", "children"),
        Input("versions", "data"),
        Input("studies", "value"),
    )
    def progress(_versions, selection):
        return progress_view(cache, selection)

    @app.callback(
        Output("importance-content", "children"),
        Input("versions", "data"),
        Input("studies", "value"),
    )
    def importance(_versions, selection):
        return importance_view(cache, selection, memo)

    @app.callback(
        Output("download", "data"),
        Output("download-error", "children"),
        Input("download-button", "n_clicks"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    def download(_clicks, search):
        return download_view(cache, search)

    _register_trials(app, TrialsCache(cache))
