"""The named tuples of the fronts figure, and the one way a stored string enters a label.

Shared by the data step of our studies (`dashboard.plot_data`) and of any other Optuna study
(`dashboard.plain_data`), and drawn by `dashboard.figures`.
"""

from __future__ import annotations

import html
from typing import NamedTuple

import numpy as np
import pandas as pd

# What a study that nas.search did not make cannot show, said once above its plot.
NOT_OURS = "not made by nas.search, so no architectures, costs or landmarks"


def plot_text(value: object) -> str:
    """`value` as inert text in a Plotly label: any markup in it shows as typed, never drawn.

    Plotly splits a label at its tags, then decodes &amp; &lt; &gt; in the text between them,
    so escaping those three leaves no tag and shows the original characters. Quotes stay: with
    no tag there is nothing for them to open or close (and Plotly would not decode &quot;).
    """
    return html.escape(str(value), quote=False)


class Points(NamedTuple):
    """One series of trial markers, in frame order."""

    x: np.ndarray
    y: np.ndarray
    decoupling: np.ndarray  # per point, for the shared colour scale
    hover: tuple[str, ...]
    click: np.ndarray | None  # [study, number] per point (opens its page); None when empty


class IntervalPoints(NamedTuple):
    """Networks at their MACs: a mean over seeds with its interval as error bars."""

    x: np.ndarray  # MACs
    y: np.ndarray  # the mean over seeds
    minus: np.ndarray  # the interval's reach below the mean (0 for one seed)
    plus: np.ndarray  # and above it
    decoupling: np.ndarray  # for the shared colour scale
    labels: tuple[str, ...]  # the text beside each marker (a label)
    hover: tuple[str, ...]
    click: np.ndarray | None  # [study, trial] per point (opens its page); None when empty


class FrontLine(NamedTuple):
    """The corners of one study's Pareto front, cheapest first."""

    x: np.ndarray
    y: np.ndarray
    numbers: np.ndarray  # the trials at the corners


class StudyFront(NamedTuple):
    """One study's share of the fronts figure."""

    study: str
    complete: Points  # accuracy = final validation accuracy
    pruned: Points  # accuracy = the last one recorded before the pruner stopped it
    front: FrontLine


class Landmarks(NamedTuple):
    """The complete landmark trials of every study, labelled by name."""

    points: Points
    names: tuple[str, ...]
    label_above: tuple[bool, ...]  # alternate along the cost axis so neighbours do not collide


class FrontsData(NamedTuple):
    """Everything the fronts figure shows, against one cost."""

    cost: str
    studies: tuple[StudyFront, ...]
    landmarks: Landmarks
    failed: Points  # failed trials with a cost: a rug under the plot (they have no accuracy)
    skipped: Points  # pruned trials without accuracy (constraint-skipped): on the rug too
    note: str  # the line of counts above the plot, and the trials left out (a label)
    empty: bool  # no complete trial has both accuracy and this cost yet
    # Set for studies that nas.search did not make, drawn by their objectives instead:
    x_title: str = ""  # the axes' titles (empty: accuracy against the cost, with units)
    y_title: str = ""
    x_log: bool = True
    by_decoupling: bool = True  # colour points by decoupling degree, else by study
    front_shape: str = "hv"  # the front's step line (plotly's line shape); "": markers only
    notice: str = ""  # one line: what these studies cannot show (a label)
    # The networks confirmed with more seeds (nas.confirm): their means and 95% t intervals.
    confirmed: IntervalPoints | None = None


def click_data(rows: pd.DataFrame) -> np.ndarray | None:
    """[study, number] per row: what a click needs to open the trial's page."""
    return np.stack([rows["study"], rows["number"]], axis=1) if len(rows) else None
