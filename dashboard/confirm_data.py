"""The data step of the Confirmed page: each study's stored confirmation and final runs in,
what its two figures, its table and its verdicts show out.

`nas.confirm.stored_runs` reads the runs (every seed stored, whoever ran them); the rules that
judge them are nas.confirm's and nas.intervals', the ones the terminal summary prints: a
searched point is told apart from the landmark nearest it in MACs on the proxy, and from the
best landmark at equal or lower MACs on the final test accuracy, and a difference counts only
when its 95% Welch interval excludes zero. Hover texts and labels are composed and escaped
here (`plot_text`); table cells and verdicts are plain text, which Dash shows as typed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from dashboard.data import study_infos
from dashboard.plot_types import NOT_OURS, FrontLine, IntervalPoints, plot_text
from dashboard.trial_data import si
from nas.confirm import (
    Confirmed,
    StoredRuns,
    best_cheaper_landmark,
    interval_text,
    nearest_landmark,
    proxy_final_ranks,
    spread_text,
)
from nas.intervals import LEVEL, Difference, difference_of_values, verdict

TABLE_HEADER = (
    "network", "trial", "MACs", "search's run", f"confirmed mean ± {LEVEL:.0%} t",
    "on confirmed front", "final test mean ± sd", "rank proxy → final",
)  # fmt: skip


class ConfirmedStudy(NamedTuple):
    """One study's confirmed and final runs, as its figures, table and verdicts show them."""

    study: str
    searched: IntervalPoints  # confirmed proxy means of the searched points
    landmarks: IntervalPoints  # and of the landmarks
    search_runs: IntervalPoints  # each confirmed network's one search run: what it was picked on
    front: FrontLine  # the front of the confirmed means
    final_searched: IntervalPoints  # final test means (labels: proxy rank -> final rank)
    final_landmarks: IntervalPoints
    about: str  # one line: seeds, final epochs, the ranks' Kendall tau (plain text)
    table: tuple[tuple[str, ...], ...]  # under TABLE_HEADER, cheapest first (plain text)
    verdicts: tuple[str, ...]  # each searched point against the nearest landmark (proxy)
    final_verdicts: tuple[str, ...]  # and against the best cheaper landmark (final test)


class ConfirmedData(NamedTuple):
    studies: tuple[ConfirmedStudy, ...]  # the picked studies of ours with a finished run
    unconfirmed: tuple[str, ...]  # the picked studies of ours without one
    notice: str = ""  # one line naming the picked studies that are not ours (a label)


def confirmed_data(frame: pd.DataFrame, runs: Mapping[str, StoredRuns]) -> ConfirmedData:
    """What the Confirmed page shows for the studies of `frame`.

    Args:
        frame: the trials frame of the picked studies (`dashboard.data.FrameCache.frame`),
            for each study's name and each trial's decoupling degree.
        runs: each picked study's stored runs (`FrameCache.stored_runs`).
    """
    infos = study_infos(frame)
    others = [name for name, info in infos.items() if not info.ours]
    notice = plot_text(f"no confirmations, {NOT_OURS}: " + ", ".join(others)) if others else ""
    studies, unconfirmed = [], []
    for name, info in infos.items():
        if not info.ours:
            continue
        stored = runs.get(name)
        if stored is None or stored.empty:
            unconfirmed.append(name)
            continue
        rows = frame[frame["study"] == name]
        degrees = dict(zip(rows["number"], rows["decoupling"]))
        studies.append(_study(name, stored, degrees))
    return ConfirmedData(tuple(studies), tuple(unconfirmed), notice)


def _study(name: str, stored: StoredRuns, degrees: Mapping[int, float]) -> ConfirmedStudy:
    proxy, final = list(stored.proxy), list(stored.final)
    ranks, tau = proxy_final_ranks(proxy, final)
    proxy_by_trial = {row.target.trial: row for row in proxy}
    verdicts = []
    final_verdicts = []
    for row in proxy:
        if not row.target.is_landmark and (other := nearest_landmark(proxy, row)) is not None:
            verdicts.append(_verdict(row, other, "the nearest landmark in MACs"))
    for row in final:
        if row.target.is_landmark:
            continue
        if (other := best_cheaper_landmark(final, row)) is None:
            final_verdicts.append(
                f"{_name(row)}: no landmark at equal or lower MACs was trained to the end"
            )
        else:
            final_verdicts.append(_verdict(row, other, "the best landmark at equal or lower MACs"))
    front = sorted((row for row in proxy if row.on_front), key=lambda r: r.target.macs)
    seed_counts = sorted({len(row.accuracies) for row in proxy + final})

    def rank_label(row: Confirmed) -> str:
        rank = ranks.get(row.target.arch)
        return f"{rank[0]}→{rank[1]}" if rank else ""

    return ConfirmedStudy(
        study=name,
        searched=_points(name, [r for r in proxy if not r.target.is_landmark], degrees, "proxy"),
        landmarks=_points(name, [r for r in proxy if r.target.is_landmark], degrees, "proxy"),
        search_runs=_search_runs(name, proxy),
        front=FrontLine(
            np.array([row.target.macs for row in front], float),
            np.array([row.interval.mean for row in front], float),
            np.array([row.target.trial for row in front], int),
        ),
        final_searched=_points(
            name, [r for r in final if not r.target.is_landmark], degrees, "final", rank_label
        ),
        final_landmarks=_points(
            name, [r for r in final if r.target.is_landmark], degrees, "final", rank_label
        ),
        about=_about(stored, seed_counts, tau, len(ranks)),
        table=_table(proxy, final, ranks, proxy_by_trial),
        verdicts=tuple(verdicts),
        final_verdicts=tuple(final_verdicts),
    )


def _verdict(row: Confirmed, other: Confirmed, which: str) -> str:
    diff: Difference = difference_of_values(row.accuracies, other.accuracies)
    landmark = other.target.label
    return (
        f"{verdict(_name(row), landmark, diff)}; {landmark} ({si(other.target.macs)} MACs) is "
        f"{which}"
    )


def _name(row: Confirmed) -> str:
    return f"trial {row.target.trial} ({row.target.label}, {si(row.target.macs)} MACs)"


def _points(
    study: str,
    rows: Sequence[Confirmed],
    degrees: Mapping[int, float],
    kind: str,
    label=lambda row: row.target.label if row.target.is_landmark else "",
) -> IntervalPoints:
    """`rows` as markers at their mean with the 95% t interval as error bars."""
    rows = sorted(rows, key=lambda r: r.target.macs)
    means = np.array([row.interval.mean for row in rows], float)
    what = "validation accuracy, confirmed" if kind == "proxy" else "final test accuracy"
    hover = []
    for row in rows:
        target, interval = row.target, row.interval
        reach = (
            f"{LEVEL:.0%} t interval {interval.low:.4f} to {interval.high:.4f}"
            if interval.seeds > 1
            else "one seed: no interval"
        )
        seeds = ", ".join(f"{value:.4f}" for value in row.accuracies)
        hover.append(
            f"<b>trial {target.trial}</b> ({plot_text(target.label)}) · {plot_text(study)}<br>"
            f"{what}: mean {interval.mean:.4f} over {interval.seeds} seed"
            f"{'s' * (interval.seeds != 1)}<br>{reach}<br>sd {row.spread:.4f} · seeds {seeds}<br>"
            f"search's own run {target.search_acc:.4f} · MACs {si(target.macs)}"
        )
    return IntervalPoints(
        x=np.array([row.target.macs for row in rows], float),
        y=means,
        minus=np.array([row.interval.mean - row.interval.low for row in rows], float),
        plus=np.array([row.interval.high - row.interval.mean for row in rows], float),
        decoupling=np.array([degrees.get(row.target.trial, np.nan) for row in rows], float),
        labels=tuple(plot_text(label(row)) for row in rows),
        hover=tuple(hover),
        click=_click(study, rows),
    )


def _search_runs(study: str, proxy: Sequence[Confirmed]) -> IntervalPoints:
    """Each confirmed network's single search run, the draw the search chose it on."""
    rows = sorted(proxy, key=lambda r: r.target.macs)
    zeros = np.zeros(len(rows))
    return IntervalPoints(
        x=np.array([row.target.macs for row in rows], float),
        y=np.array([row.target.search_acc for row in rows], float),
        minus=zeros,
        plus=zeros,
        decoupling=np.full(len(rows), np.nan),
        labels=("",) * len(rows),
        hover=tuple(
            f"trial {row.target.trial} ({plot_text(row.target.label)}): the search's own run "
            f"{row.target.search_acc:.4f}, left out of the confirmed mean"
            for row in rows
        ),
        click=_click(study, rows),
    )


def _click(study: str, rows: Sequence[Confirmed]) -> np.ndarray | None:
    if not rows:
        return None
    return np.array([[study, row.target.trial] for row in rows], object)


def _about(stored: StoredRuns, seed_counts: list[int], tau: float | None, ranked: int) -> str:
    low, high = seed_counts[0], seed_counts[-1]
    counts = f"{low}" if low == high else f"{low} to {high}"
    text = (
        f"{len(stored.proxy)} networks confirmed at the search's budget, {counts} "
        f"seed{'s' * (seed_counts != [1])} each (the search's own run left out of the means)"
    )
    if stored.epochs is not None:
        text += (
            f"; {len(stored.final)} trained to the end: {stored.epochs} epochs of the final "
            "recipe on the whole training split, scored on the test split"
        )
    if tau is not None:
        text += f"; proxy and final order of these {ranked} networks: Kendall tau {tau:.2f}"
    return text


def _table(proxy, final, ranks, proxy_by_trial) -> tuple[tuple[str, ...], ...]:
    final_by_trial = {row.target.trial: row for row in final}
    trials = {row.target.trial: row.target for row in (*proxy, *final)}
    lines = []
    for target in sorted(trials.values(), key=lambda t: (t.macs, t.trial)):
        p, f = proxy_by_trial.get(target.trial), final_by_trial.get(target.trial)
        rank = ranks.get(target.arch)
        lines.append(
            (
                target.label,
                str(target.trial),
                si(target.macs),
                f"{target.search_acc:.2%}",
                interval_text(p) if p else "no run",
                "yes" if p is not None and p.on_front else "",
                spread_text(f) if f else "no run",
                f"{rank[0]} → {rank[1]}" if rank else "",
            )
        )
    return tuple(lines)


def confirmed_overlay(
    data: ConfirmedData, frame: pd.DataFrame, cost: str
) -> IntervalPoints | None:
    """Every confirmed mean of `data` (searched points and landmarks, all studies) at its
    trial's `cost` in `frame`, for the fronts page; None when nothing was confirmed."""
    parts = [p for study in data.studies for p in (study.searched, study.landmarks) if len(p.x)]
    if not parts:
        return None
    costs = dict(zip(zip(frame["study"], frame["number"]), frame[cost]))
    click = np.concatenate([p.click for p in parts])
    x = np.array([costs.get((study, int(number)), np.nan) for study, number in click], float)
    keep = np.isfinite(x)
    joined = {
        field: np.concatenate([getattr(p, field) for p in parts])[keep]
        for field in ("y", "minus", "plus", "decoupling")
    }
    return IntervalPoints(
        x=x[keep],
        labels=("",) * int(keep.sum()),
        hover=tuple(h for h, kept in zip((h for p in parts for h in p.hover), keep) if kept),
        click=click[keep],
        **joined,
    )
