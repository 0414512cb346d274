"""Fake studies for the dashboard's tests: the writer lives in bench/_fake_studies.py.

The dashboard's benchmark (bench/dashboard_scale.py) writes the same studies; this module adds
what only tests need, a study built once per test session.
"""

from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from bench._fake_studies import add_complete_trials, build_study, make_trials, study_attrs

__all__ = [
    "MARKUP",
    "add_complete_trials",
    "add_trial",
    "build_study",
    "make_trials",
    "shared_study",
    "study_attrs",
]

_BUILT: dict[tuple, str] = {}


def shared_study(tmp_path_factory, name: str = "demo", **options) -> str:
    """The URL of a study built once per test session (tests must not write to it)."""
    key = (name, tuple(sorted(options.items())))
    if key not in _BUILT:
        path = tmp_path_factory.mktemp("dashboard") / "studies.db"
        build_study(f"sqlite:///{path}", name, **options)
        _BUILT[key] = f"sqlite:///{path}"
    return _BUILT[key]


# Plotly's label markup that a stored string must never get to draw: a live link, big red text.
MARKUP = '<a href="https://evil.example/">x</a><span style="font-size:60px;color:red">BIG</span>'


def add_trial(url: str, name: str, user_attrs: dict, params: dict | None = None) -> int:
    """Store one COMPLETE trial with these attributes straight through Optuna; its number.

    For attributes the search would never write (a hostile architecture, markup in a name).
    """
    study = optuna.load_study(study_name=name, storage=url)
    params = params or {}
    trial = optuna.trial.create_trial(
        state=TrialState.COMPLETE,
        values=[0.9, 2e6] + [0.5] * (len(study.directions) - 2),
        params=params,
        distributions={key: CategoricalDistribution([value]) for key, value in params.items()},
        user_attrs=user_attrs,
    )
    study.add_trial(trial)
    return len(study.get_trials(deepcopy=False)) - 1
