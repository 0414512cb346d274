"""Filtering, sorting, paging and the CSV of the trials table, done on the server.

The page's DataTable runs with page, sort and filter actions "custom": it sends its `sort_by`
and `filter_query` here and gets one page of rows back, so a study of thousands of trials never
travels to the browser whole.

`filter_query` is the DataTable's own syntax: clauses `{column} operator value` joined by
` && `; operators =, !=, <, <=, >, >=, contains, datestartswith (or eq, ne, lt, le, gt, ge),
each optionally prefixed by s (case-sensitive) or i (case-insensitive), and `is blank`. A
number may end in k, M or G (`> 2M` is more than 2,000,000), as the MACs column shows them.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Sequence
from typing import NamedTuple

import pandas as pd

from dashboard.trials_data import TableColumn, TrialsTable

PAGE_SIZE = 50
RELATIONS = {
    "=": "=", "eq": "=", "!=": "!=", "ne": "!=", "<": "<", "lt": "<", "<=": "<=", "le": "<=",
    ">": ">", "gt": ">", ">=": ">=", "ge": ">=", "contains": "contains",
    "datestartswith": "startswith",
}  # fmt: skip
COMPARE = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
    ">=": operator.ge,
}  # fmt: skip
SI_SUFFIX = {"k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}
_CLAUSE = re.compile(r"^\{(?P<column>[^{}]*)\}\s+(?P<rest>.+)$", re.DOTALL)
_NUMBER = re.compile(r"^([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([kKMG]?)$")
# A spreadsheet runs a cell that starts with one of these as a formula: stored text is
# anyone's, so such a cell is written with a leading apostrophe (shown, never run).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class Clause(NamedTuple):
    """One filter clause: column id, operator (a RELATIONS value or "blank"), value, case."""

    column: str
    op: str
    value: str
    case_sensitive: bool


def _unquote(text: str) -> str:
    """A filter value without its quotes ("a b", 'a b' or `a b`) and backslash escapes."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        return re.sub(r"\\(.)", r"\1", text[1:-1], flags=re.DOTALL)
    return text


def parse_filter(query: str | None) -> tuple[list[Clause], list[str]]:
    """The clauses of a DataTable filter query, and a reason for each part that is not one."""
    clauses, errors = [], []
    for part in (part.strip() for part in (query or "").split(" && ")):
        if not part:
            continue
        match = _CLAUSE.match(part)
        if match is None:
            errors.append(f"cannot read the filter {part!r}")
            continue
        column, rest = match["column"], match["rest"].strip()
        if rest.lower() in ("is blank", "is nil"):
            clauses.append(Clause(column, "blank", "", False))
            continue
        token, _, value = rest.partition(" ")
        op, case_sensitive = token.lower(), True
        if op not in RELATIONS and op[:1] in ("i", "s") and op[1:] in RELATIONS:
            op, case_sensitive = op[1:], op[0] == "s"
        if op not in RELATIONS or not value.strip():
            errors.append(f"cannot read the filter {part!r}")
            continue
        clauses.append(Clause(column, RELATIONS[op], _unquote(value.strip()), case_sensitive))
    return clauses, errors


def filter_number(text: str) -> float:
    """'2M' -> 2e6, '0.9' -> 0.9 (ValueError for anything else)."""
    match = _NUMBER.match(text.strip().replace(",", ""))
    if match is None:
        raise ValueError(text)
    return float(match[1]) * SI_SUFFIX.get(match[2], 1.0)


def _number_text(value: float) -> str:
    return "" if not math.isfinite(value) else f"{value:g}"


def _mask(values: pd.Series, column: TableColumn, clause: Clause) -> pd.Series:
    """Which rows of one column pass one clause."""
    if clause.op == "blank":
        return values.isna() | (values == "") if column.kind == "text" else values.isna()
    if column.kind == "numeric" and clause.op in COMPARE:
        try:
            target = filter_number(clause.value)
        except ValueError:
            raise ValueError(f"{column.label}: {clause.value!r} is not a number") from None
        return COMPARE[clause.op](values.astype(float), target).fillna(False)
    if column.kind == "text" and clause.op in COMPARE and clause.op not in ("=", "!="):
        numbers = _numbers_in_text(values)
        if numbers is not None:  # '> 4' on the search's number-like choices: 8 and 16, not dw
            try:
                return COMPARE[clause.op](numbers, filter_number(clause.value)).fillna(False)
            except ValueError:
                pass
    text = values.astype(float).map(_number_text) if column.kind == "numeric" else values
    text, target = text.fillna("").astype(str), clause.value
    if not clause.case_sensitive:
        text, target = text.str.lower(), target.lower()
    if clause.op == "contains":
        return text.str.contains(target, regex=False)
    if clause.op == "startswith":
        return text.str.startswith(target)
    return COMPARE[clause.op](text, target)


def filter_rows(
    table: TrialsTable, query: str | None, states: Sequence[str] | None = None
) -> tuple[pd.DataFrame, str]:
    """The rows in one of `states` (all when None) that pass every clause of `query`, and a
    note naming each clause that could not be applied (those filter nothing)."""
    rows = table.rows
    if states is not None:
        rows = rows[rows["state"].isin(list(states))]
    by_id = {column.id: column for column in table.columns}
    clauses, errors = parse_filter(query)
    for clause in clauses:
        column = by_id.get(clause.column)
        if column is None:
            errors.append(f"no column {clause.column!r} to filter")
            continue
        try:
            rows = rows[_mask(rows[clause.column], column, clause)]
        except ValueError as error:
            errors.append(str(error))
    return rows, "; ".join(errors)


def _numbers_in_text(values: pd.Series) -> pd.Series | None:
    """The number-like cells of a text column as numbers (NaN elsewhere), or None when it has
    none: the search stores its choices as text ('8', '16', 'dw')."""
    numbers = pd.to_numeric(values.where(values != ""), errors="coerce")
    return numbers if numbers.notna().any() else None


def _sort_key(values: pd.Series) -> pd.Series:
    # Text sorts with its number-like cells first, as numbers ('8' before '16'), then the rest
    # in text order; an empty cell (no landmark, no architecture) sorts last, like NaN.
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return values
    numbers = _numbers_in_text(values)
    words = values.where((values != "") & (numbers.isna() if numbers is not None else True))
    ranks = words.rank(method="dense")
    if numbers is None:
        return ranks
    return numbers.where(numbers.notna(), numbers.max() + ranks)


def sort_rows(rows: pd.DataFrame, sort_by: Sequence[dict] | None) -> pd.DataFrame:
    """`rows` ordered by the DataTable's sort_by ([{column_id, direction}], first key first);
    blanks last either way, ties in the order they came."""
    keys = [
        (key["column_id"], key.get("direction") != "desc")
        for key in sort_by or []
        if key.get("column_id") in rows.columns
    ]
    if not keys:
        return rows
    return rows.sort_values(
        [column for column, _ in keys],
        ascending=[ascending for _, ascending in keys],
        na_position="last",
        kind="stable",
        key=_sort_key,
    )


def records(rows: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts: NaN as None, numpy scalars as Python ones."""
    return rows.astype(object).where(rows.notna(), None).to_dict("records")


def page_count(total: int, page_size: int) -> int:
    return max(1, math.ceil(total / max(1, page_size)))


def page_rows(rows: pd.DataFrame, page: int, page_size: int) -> list[dict]:
    """The rows of page `page` (from 0) of `page_size` rows."""
    start = max(0, page) * page_size
    return records(rows.iloc[start : start + page_size])


def inert_cell(text: str) -> str:
    """A text cell a spreadsheet shows as typed: a leading apostrophe before a formula start."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def table_csv(rows: pd.DataFrame, columns: Sequence[TableColumn]) -> str:
    """The rows as CSV under the columns' headers: numbers as stored, text never a formula."""
    out = rows.loc[:, [column.id for column in columns]].copy()
    for column in columns:
        if column.kind == "text":
            out[column.id] = out[column.id].fillna("").astype(str).map(inert_cell)
    out.columns = [inert_cell(column.label) for column in columns]
    return out.to_csv(index=False, lineterminator="\n")
